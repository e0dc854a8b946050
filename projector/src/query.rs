//! Reading the projection. Every list query reports how many rows it read,
//! so tests can hold pages to O(page) however large the tables grow.

use crate::record::{self, EntryRecord, HistoryItem, KeyRecord, UserRecord};
use crate::tables::*;
use crate::{Projection, ProjectionError};
use proto::Level;
use proto::filter::Filter;
use redb::{ReadTransaction, ReadableDatabase, ReadableTable};
use std::iter::Peekable;

/// Which entries by state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Resolved {
    #[default]
    Open,
    Done,
    All,
}

#[derive(Clone, Debug, Default)]
pub struct Query {
    pub filter: Filter,
    pub resolved: Resolved,
    /// Only ids below this one (the cursor).
    pub before: Option<u64>,
    pub limit: usize,
}

#[derive(Clone, Debug)]
pub struct Page {
    pub entries: Vec<(u64, EntryRecord)>,
    /// The cursor for the next page, when there is one.
    pub next_before: Option<u64>,
    /// Index and entry rows read to answer.
    pub rows_read: u64,
}

type Ids<'a> = Box<dyn Iterator<Item = Result<u64, redb::StorageError>> + 'a>;

/// Newest first across several newest-first id streams.
struct Merge<'a> {
    heads: Vec<Peekable<Ids<'a>>>,
}

impl Iterator for Merge<'_> {
    type Item = Result<u64, redb::StorageError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut best: Option<(usize, u64)> = None;
        for (i, head) in self.heads.iter_mut().enumerate() {
            match head.peek() {
                Some(Ok(id)) if best.is_none_or(|(_, b)| *id > b) => best = Some((i, *id)),
                Some(Ok(_)) => {}
                Some(Err(_)) => return head.next(),
                None => {}
            }
        }
        let (i, _) = best?;
        self.heads[i].next()
    }
}

fn level_ids<'a>(
    t: &'a redb::ReadOnlyTable<(u8, u64), ()>,
    level: Level,
    before: u64,
) -> Result<Ids<'a>, redb::StorageError> {
    let code = level.code();
    Ok(Box::new(
        t.range((code, 0)..(code, before))?
            .rev()
            .map(|r| r.map(|(k, _)| k.value().1)),
    ))
}

fn key_ids<'a>(
    t: &'a redb::ReadOnlyTable<(&'static str, u64), ()>,
    key: &str,
    before: u64,
) -> Result<Ids<'a>, redb::StorageError> {
    Ok(Box::new(
        t.range((key, 0)..(key, before))?
            .rev()
            .map(|r| r.map(|(k, _)| k.value().1)),
    ))
}

impl Projection {
    fn read(&self) -> Result<ReadTransaction, ProjectionError> {
        Ok(self.db.begin_read()?)
    }

    pub fn last_applied(&self) -> Result<u64, ProjectionError> {
        let txn = self.read()?;
        let meta = txn.open_table(META)?;
        Ok(meta.get(META_LAST_APPLIED)?.map_or(0, |v| v.value()))
    }

    /// A page of entries, newest first. The candidates come from the most
    /// selective index the filter allows; each is then checked against the
    /// whole filter (text search reads entries until the page is full).
    pub fn page(&self, query: &Query) -> Result<Page, ProjectionError> {
        let txn = self.read()?;
        let entries = txn.open_table(ENTRIES)?;
        let before = query.before.unwrap_or(u64::MAX);
        let open = query.resolved == Resolved::Open;
        let (level_t, key_t) = if open {
            (txn.open_table(LEVEL_OPEN)?, txn.open_table(KEY_OPEN)?)
        } else {
            (txn.open_table(LEVEL_ALL)?, txn.open_table(KEY_ALL)?)
        };
        let f = &query.filter;
        let use_keys = !f.keys.is_empty()
            && (f.levels.is_empty()
                || self.key_weight(&txn, &f.keys)? <= self.level_weight(&txn, &f.levels, open)?);
        let ids: Ids<'_> = if use_keys {
            let mut heads = Vec::new();
            for k in &f.keys {
                heads.push(key_ids(&key_t, k, before)?.peekable());
            }
            Box::new(Merge { heads })
        } else if !f.levels.is_empty() || open {
            let levels: &[Level] = if f.levels.is_empty() {
                &Level::ALL
            } else {
                &f.levels
            };
            let mut heads = Vec::new();
            for l in levels {
                heads.push(level_ids(&level_t, *l, before)?.peekable());
            }
            Box::new(Merge { heads })
        } else {
            Box::new(
                entries
                    .range(..before)?
                    .rev()
                    .map(|r| r.map(|(k, _)| k.value())),
            )
        };
        let limit = query.limit.max(1);
        let mut page = Page {
            entries: Vec::new(),
            next_before: None,
            rows_read: 0,
        };
        for id in ids {
            let id = id?;
            page.rows_read += 1;
            if page.entries.len() == limit {
                page.next_before = page.entries.last().map(|(id, _)| *id);
                break;
            }
            let Some(v) = entries.get(id)? else { continue };
            page.rows_read += 1;
            let rec: EntryRecord = record::decode("entries", v.value())?;
            let state_ok = match query.resolved {
                Resolved::Open => rec.resolved.is_none(),
                Resolved::Done => rec.resolved.is_some(),
                Resolved::All => true,
            };
            if state_ok
                && f.matches(
                    rec.level,
                    rec.key_id.as_deref(),
                    &rec.message,
                    rec.source.as_deref(),
                )
            {
                page.entries.push((id, rec));
            }
        }
        Ok(page)
    }

    fn level_weight(
        &self,
        txn: &ReadTransaction,
        levels: &[Level],
        open: bool,
    ) -> Result<u64, ProjectionError> {
        let counts = txn.open_table(COUNTS)?;
        let mut n = 0;
        for l in levels {
            n += counts
                .get(count_key(open, *l).as_str())?
                .map_or(0, |v| v.value());
        }
        Ok(n)
    }

    fn key_weight(&self, txn: &ReadTransaction, keys: &[String]) -> Result<u64, ProjectionError> {
        let t = txn.open_table(KEYS)?;
        let mut n = 0;
        for k in keys {
            if let Some(v) = t.get(k.as_str())? {
                n += record::decode::<KeyRecord>("keys", v.value())?.entries;
            }
        }
        Ok(n)
    }

    pub fn entry(&self, id: u64) -> Result<Option<EntryRecord>, ProjectionError> {
        let txn = self.read()?;
        let t = txn.open_table(ENTRIES)?;
        match t.get(id)? {
            Some(v) => Ok(Some(record::decode("entries", v.value())?)),
            None => Ok(None),
        }
    }

    /// Resolves and unresolves of an entry, oldest first, with their seqs.
    pub fn history(&self, id: u64) -> Result<Vec<(u64, HistoryItem)>, ProjectionError> {
        let txn = self.read()?;
        let t = txn.open_table(HISTORY)?;
        let mut out = Vec::new();
        for row in t.range((id, 0)..=(id, u64::MAX))? {
            let (k, v) = row?;
            out.push((k.value().1, record::decode("history", v.value())?));
        }
        Ok(out)
    }

    pub fn key(&self, id: &str) -> Result<Option<KeyRecord>, ProjectionError> {
        let txn = self.read()?;
        let t = txn.open_table(KEYS)?;
        match t.get(id)? {
            Some(v) => Ok(Some(record::decode("keys", v.value())?)),
            None => Ok(None),
        }
    }

    pub fn keys(&self) -> Result<Vec<KeyRecord>, ProjectionError> {
        let txn = self.read()?;
        let t = txn.open_table(KEYS)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            out.push(record::decode("keys", row?.1.value())?);
        }
        Ok(out)
    }

    pub fn user(&self, user_id: &str) -> Result<Option<UserRecord>, ProjectionError> {
        let txn = self.read()?;
        let t = txn.open_table(USERS)?;
        match t.get(user_id)? {
            Some(v) => Ok(Some(record::decode("users", v.value())?)),
            None => Ok(None),
        }
    }

    pub fn users(&self) -> Result<Vec<UserRecord>, ProjectionError> {
        let txn = self.read()?;
        let t = txn.open_table(USERS)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            out.push(record::decode("users", row?.1.value())?);
        }
        Ok(out)
    }

    /// Counter `open.<level>` or `all.<level>`.
    pub fn count(&self, open: bool, level: Level) -> Result<u64, ProjectionError> {
        let txn = self.read()?;
        let t = txn.open_table(COUNTS)?;
        Ok(t.get(count_key(open, level).as_str())?
            .map_or(0, |v| v.value()))
    }
}
