//! Reading groups: a page of them, newest first (by their newest entry),
//! one group's entries, and its hourly counts.

use crate::groups::GroupRecord;
use crate::query::Resolved;
use crate::record::{self, EntryRecord};
use crate::tables::*;
use crate::{Projection, ProjectionError};
use proto::Level;

/// Which groups, like the entries' [`crate::Query`]: `resolved` picks
/// groups with an open entry (`Open`), without one (`Done`), or all;
/// `levels` the group's highest level; `keys` its key (or `hand`); `q` a
/// case-insensitive piece of its title or template; `before` the cursor
/// (a newest entry id).
#[derive(Clone, Debug, Default)]
pub struct GroupQuery {
    pub levels: Vec<Level>,
    pub keys: Vec<String>,
    pub q: Option<String>,
    pub resolved: Resolved,
    pub before: Option<u64>,
    pub limit: usize,
}

/// Entries (id, row) newest first, and the cursor for more.
pub type EntriesPage = (Vec<(u64, EntryRecord)>, Option<u64>);

#[derive(Debug)]
pub struct GroupPage {
    pub groups: Vec<(String, GroupRecord)>,
    /// The cursor for the next page, when there is one.
    pub next_before: Option<u64>,
    /// Index and group rows read to answer.
    pub rows_read: u64,
}

impl GroupQuery {
    fn matches(&self, g: &GroupRecord) -> bool {
        let state = match self.resolved {
            Resolved::Open => g.open_count > 0,
            Resolved::Done => g.open_count == 0,
            Resolved::All => true,
        };
        let key = g.key_id.as_deref().unwrap_or(proto::subjects::HAND);
        state
            && (self.levels.is_empty() || self.levels.contains(&g.level()))
            && (self.keys.is_empty() || self.keys.iter().any(|k| k == key))
            && match self.q.as_deref().map(str::trim) {
                None | Some("") => true,
                Some(q) => {
                    let q = q.to_lowercase();
                    g.title.to_lowercase().contains(&q) || g.template.to_lowercase().contains(&q)
                }
            }
    }
}

impl Projection {
    /// A page of groups, newest first. Open groups come from their own
    /// index, so the default page reads about a page of rows however many
    /// groups and entries there are.
    pub fn group_page(&self, query: &GroupQuery) -> Result<GroupPage, ProjectionError> {
        let txn = self.read()?;
        let order = if query.resolved == Resolved::Open {
            txn.open_table(GROUP_LAST_OPEN)?
        } else {
            txn.open_table(GROUP_LAST)?
        };
        let groups = txn.open_table(GROUPS)?;
        let entries = txn.open_table(ENTRIES)?;
        let before = query.before.unwrap_or(u64::MAX);
        let limit = query.limit.max(1);
        let mut page = GroupPage {
            groups: Vec::new(),
            next_before: None,
            rows_read: 0,
        };
        for row in order.range(..(before, 0))?.rev() {
            let (k, _) = row?;
            let (last, num) = k.value();
            page.rows_read += 1;
            if page.groups.len() == limit {
                page.next_before = page.groups.last().map(|(_, g)| g.last_entry_id);
                break;
            }
            let Some(v) = groups.get(num)? else { continue };
            page.rows_read += 1;
            let g = GroupRecord::read(v.value(), &entries)?;
            debug_assert_eq!(g.last_entry_id, last);
            if query.matches(&g) {
                page.groups.push((group_id(num), g));
            }
        }
        Ok(page)
    }

    /// A group's entries, newest first, below `before`; and the cursor for
    /// more.
    pub fn group_entries(
        &self,
        gid: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<EntriesPage, ProjectionError> {
        let txn = self.read()?;
        let index = txn.open_table(GROUP_ENTRIES)?;
        let entries = txn.open_table(ENTRIES)?;
        let before = before.unwrap_or(u64::MAX);
        let limit = limit.max(1);
        let mut out = Vec::new();
        let mut next = None;
        for row in index
            .range(group_members(group_num(gid), before.saturating_sub(1)))?
            .rev()
        {
            let id = row?.0.value().1;
            if out.len() == limit {
                next = out.last().map(|(id, _)| *id);
                break;
            }
            if let Some(v) = entries.get(id)? {
                out.push((id, record::decode("entries", v.value())?));
            }
        }
        Ok((out, next))
    }

    /// Entries the group received in each of the 24 hours up to the one
    /// holding `now_ms`, oldest first.
    pub fn group_hourly(&self, gid: &str, now_ms: i64) -> Result<[u64; 24], ProjectionError> {
        Ok(self
            .group(gid)?
            .map_or([0; 24], |g| g.hourly_until(hour_of(now_ms))))
    }
}

/// The hour (since the Unix epoch) of a time in Unix ms.
pub fn hour_of(ms: i64) -> u64 {
    u64::try_from(ms.max(0) / 3_600_000).unwrap_or(0)
}
