//! The live tail's read: entries after an id, oldest first, matching a
//! filter, read in bounded steps so a selective filter over many new
//! entries never holds one read for long (the caller comes back for more).

use crate::record::{self, EntryRecord};
use crate::tables::*;
use crate::{Projection, ProjectionError};
use proto::filter::Filter;
use std::iter::Peekable;

/// What one step of [`Projection::tail_after`] found.
#[derive(Clone, Debug, Default)]
pub struct TailStep {
    /// Matching entries, ascending by id.
    pub entries: Vec<(u64, EntryRecord)>,
    /// The last id this step examined: every entry up to it was decided,
    /// so the next step starts after it. Equal to `upto` when the range
    /// is done.
    pub scanned_to: u64,
    /// Index and entry rows read.
    pub rows_read: u64,
}

type Ids<'a> = Box<dyn Iterator<Item = Result<u64, redb::StorageError>> + 'a>;

/// Oldest first across several oldest-first id streams (an entry has one
/// level and one key, so the streams never share an id).
struct Ascending<'a> {
    heads: Vec<Peekable<Ids<'a>>>,
}

impl Iterator for Ascending<'_> {
    type Item = Result<u64, redb::StorageError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut best: Option<(usize, u64)> = None;
        for (i, head) in self.heads.iter_mut().enumerate() {
            match head.peek() {
                Some(Ok(id)) if best.is_none_or(|(_, b)| *id < b) => best = Some((i, *id)),
                Some(Ok(_)) => {}
                Some(Err(_)) => return head.next(),
                None => {}
            }
        }
        let (i, _) = best?;
        self.heads[i].next()
    }
}

impl Projection {
    /// Entries with `after < id <= upto` that match `filter` (whatever
    /// their state), oldest first. Stops once `max_entries` matched or
    /// `max_rows` rows were read, whichever comes first, and says in
    /// [`TailStep::scanned_to`] how far it got. The candidates come from a
    /// group's index, else the key index, else the level index, else the
    /// entries table; each is checked against the whole filter.
    pub fn tail_after(
        &self,
        filter: &Filter,
        after: u64,
        upto: u64,
        max_rows: u64,
        max_entries: usize,
    ) -> Result<TailStep, ProjectionError> {
        let mut step = TailStep {
            scanned_to: after,
            ..TailStep::default()
        };
        if after >= upto {
            return Ok(step);
        }
        let (lo, hi) = (after + 1, upto);
        let txn = self.read()?;
        let entries = txn.open_table(ENTRIES)?;
        let group_t = txn.open_table(GROUP_ENTRIES)?;
        let key_t = txn.open_table(KEY_ALL)?;
        let level_t = txn.open_table(LEVEL_ALL)?;
        let ids: Option<Ids> = if let Some(g) = &filter.group {
            let num = group_num(g);
            Some(Box::new(
                group_t
                    .range((num, lo)..=(num, hi))?
                    .map(|r| r.map(|(k, _)| k.value().1)),
            ))
        } else if !filter.keys.is_empty() {
            let mut heads = Vec::new();
            for k in &filter.keys {
                let ids: Ids = Box::new(
                    key_t
                        .range((k.as_str(), lo)..=(k.as_str(), hi))?
                        .map(|r| r.map(|(k, _)| k.value().1)),
                );
                heads.push(ids.peekable());
            }
            Some(Box::new(Ascending { heads }))
        } else if !filter.levels.is_empty() {
            let mut heads = Vec::new();
            for l in &filter.levels {
                let code = l.code();
                let ids: Ids = Box::new(
                    level_t
                        .range((code, lo)..=(code, hi))?
                        .map(|r| r.map(|(k, _)| k.value().1)),
                );
                heads.push(ids.peekable());
            }
            Some(Box::new(Ascending { heads }))
        } else {
            None
        };
        let max_rows = max_rows.max(1);
        let max_entries = max_entries.max(1);
        let check = |step: &mut TailStep, id: u64, bytes: &[u8]| {
            let rec: EntryRecord = record::decode("entries", bytes)?;
            if filter.matches(
                rec.level,
                rec.key_id.as_deref(),
                &rec.message,
                rec.source.as_deref(),
                &rec.group,
            ) {
                step.entries.push((id, rec));
            }
            step.scanned_to = id;
            Ok::<_, ProjectionError>(())
        };
        let full =
            |step: &TailStep| step.rows_read >= max_rows || step.entries.len() >= max_entries;
        match ids {
            Some(ids) => {
                for id in ids {
                    if full(&step) {
                        return Ok(step);
                    }
                    let id = id?;
                    step.rows_read += 1;
                    match entries.get(id)? {
                        Some(v) => {
                            step.rows_read += 1;
                            check(&mut step, id, v.value())?;
                        }
                        // An index row without its entry (never expected): passed over.
                        None => step.scanned_to = id,
                    }
                }
            }
            None => {
                for row in entries.range(lo..=hi)? {
                    if full(&step) {
                        return Ok(step);
                    }
                    let (k, v) = row?;
                    step.rows_read += 1;
                    check(&mut step, k.value(), v.value())?;
                }
            }
        }
        // The candidates ran out: nothing else up to `upto` can match.
        step.scanned_to = upto;
        Ok(step)
    }
}
