//! Reading the projection. Every list query reports how many rows it read,
//! so tests can hold pages to O(page) however large the tables grow.

use crate::record::{
    self, AlertRecord, AuditItem, EntryRecord, HistoryItem, KeyRecord, UserRecord,
};
use crate::tables::*;
use crate::{Projection, ProjectionError};
use proto::Level;
use proto::filter::Filter;
use redb::{ReadTransaction, ReadableDatabase, ReadableTable};
use std::iter::Peekable;
use std::sync::atomic::{AtomicBool, Ordering};

/// Which entries by state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Resolved {
    #[default]
    Open,
    Done,
    All,
}

impl Resolved {
    /// Its value in a URL (`resolved=`): `false`, `true` or `all`.
    pub fn as_str(self) -> &'static str {
        match self {
            Resolved::Open => "false",
            Resolved::Done => "true",
            Resolved::All => "all",
        }
    }

    /// Reads a URL value; missing or empty is [`Resolved::Open`], anything
    /// but the three values is `None`.
    pub fn parse(value: Option<&str>) -> Option<Resolved> {
        match value.map(str::trim) {
            None | Some("") | Some("false") => Some(Resolved::Open),
            Some("true") => Some(Resolved::Done),
            Some("all") => Some(Resolved::All),
            Some(_) => None,
        }
    }
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

/// Audit items (seq, item), newest first, and the cursor for older ones.
pub type AuditPage = (Vec<(u64, AuditItem)>, Option<u64>);

type Ids<'a> = Box<dyn Iterator<Item = Result<u64, redb::StorageError>> + 'a>;

/// The tables a page's candidates may come from.
struct IndexTables<'a> {
    entries: &'a redb::ReadOnlyTable<u64, &'static [u8]>,
    level: &'a redb::ReadOnlyTable<(u8, u64), ()>,
    key: &'a redb::ReadOnlyTable<(&'static str, u64), ()>,
    group: &'a redb::ReadOnlyTable<(u64, u64), ()>,
}

/// A page's candidates, newest first ([`Projection::candidates`]).
#[allow(
    clippy::large_enum_variant,
    reason = "one per page query, never moved after it is made"
)]
enum Candidates<'a> {
    /// Ids from an index, each then read from the entries table.
    Index(Ids<'a>),
    /// The entries table itself.
    Table(std::iter::Rev<redb::Range<'a, u64, &'static [u8]>>),
}

impl Page {
    /// Whether the page holds `limit` entries; if so, it gets its cursor.
    fn is_full(&mut self, limit: usize) -> bool {
        let full = self.entries.len() == limit;
        if full {
            self.next_before = self.entries.last().map(|(id, _)| *id);
        }
        full
    }
}

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

/// Whether `haystack` contains `needle` (lower-case ASCII), ignoring ASCII
/// case. A cheap superset test on a raw record: a row that fails it cannot
/// match the text filter (see [`may_lower_into_ascii`]); one that passes is
/// decoded and checked exactly.
fn contains_ascii_ci(haystack: &[u8], needle: &[u8]) -> bool {
    let Some((&first, rest)) = needle.split_first() else {
        return true;
    };
    let last_start = match haystack.len().checked_sub(needle.len()) {
        Some(n) => n,
        None => return false,
    };
    memchr::memchr2_iter(first, first.to_ascii_uppercase(), &haystack[..=last_start]).any(|at| {
        haystack[at + 1..at + needle.len()]
            .iter()
            .zip(rest)
            .all(|(h, n)| h.to_ascii_lowercase() == *n)
    })
}

/// Whether a row holds a character that Unicode lower-casing turns into
/// ASCII: the Kelvin sign (into `k`) and the dotted capital I (into `i`
/// and a combining dot). Such a row is decoded even when its raw bytes
/// lack an ASCII search text, since its lower-cased text may hold it.
/// (MessagePack's own bytes are never ASCII-looking text, but a number may
/// happen to contain these bytes: that only costs a decode.)
fn may_lower_into_ascii(row: &[u8]) -> bool {
    memchr::memmem::find(row, "\u{212A}".as_bytes()).is_some()
        || memchr::memmem::find(row, "\u{130}".as_bytes()).is_some()
}

/// The entry in `bytes` if it passes `query` (state and filter), after
/// the raw-bytes text prefilter when there is an ASCII `needle`.
fn candidate(
    bytes: &[u8],
    query: &Query,
    needle: Option<&[u8]>,
) -> Result<Option<EntryRecord>, ProjectionError> {
    if needle.is_some_and(|n| !contains_ascii_ci(bytes, n) && !may_lower_into_ascii(bytes)) {
        return Ok(None);
    }
    let rec: EntryRecord = record::decode("entries", bytes)?;
    let state_ok = match query.resolved {
        Resolved::Open => rec.resolved.is_none(),
        Resolved::Done => rec.resolved.is_some(),
        Resolved::All => true,
    };
    let f = &query.filter;
    Ok((state_ok
        && f.matches(
            rec.level,
            rec.key_id.as_deref(),
            &rec.message,
            rec.source.as_deref(),
            &rec.group,
        ))
    .then_some(rec))
}

/// Below this many ids a text search scans on one thread.
const SPLIT_SCAN_FROM: u64 = 50_000;

/// What one thread's part of a text search found.
struct Scanned {
    found: Vec<(u64, EntryRecord)>,
    rows: u64,
    /// Rows are left in its range below the last one found.
    more: bool,
}

/// Reads `lo..hi` newest first until `limit` entries matched, the range
/// ends, or `stop` is set (checked every 1024 rows).
fn scan_range(
    entries: &redb::ReadOnlyTable<u64, &'static [u8]>,
    (lo, hi): (u64, u64),
    query: &Query,
    needle: Option<&[u8]>,
    limit: usize,
    stop: &AtomicBool,
) -> Result<Scanned, ProjectionError> {
    let mut out = Scanned {
        found: Vec::new(),
        rows: 0,
        more: false,
    };
    for row in entries.range(lo..hi)?.rev() {
        if out.found.len() == limit
            || (out.rows.is_multiple_of(1024) && stop.load(Ordering::Relaxed))
        {
            out.more = true;
            break;
        }
        let (k, v) = row?;
        out.rows += 1;
        if let Some(rec) = candidate(v.value(), query, needle)? {
            out.found.push((k.value(), rec));
        }
    }
    Ok(out)
}

/// A text search with no key or level to narrow it reads the entries
/// table newest first. A large table is read in two halves at once (ids
/// are stream sequences, so halves of the id range): the older half on a
/// second thread, stopped as soon as the newer half alone fills the page.
fn scan_text(
    entries: &redb::ReadOnlyTable<u64, &'static [u8]>,
    query: &Query,
    needle: Option<&[u8]>,
    before: u64,
) -> Result<Page, ProjectionError> {
    let limit = query.limit.max(1);
    let lo = match entries.first()? {
        Some((k, _)) => k.value(),
        None => 0,
    };
    let hi = match entries.last()? {
        Some((k, _)) => before.min(k.value().saturating_add(1)),
        None => 0,
    };
    let stop = AtomicBool::new(false);
    let split = hi.saturating_sub(lo) >= SPLIT_SCAN_FROM;
    let (newer, older) = if !split {
        let newer = scan_range(entries, (lo, hi), query, needle, limit, &stop)?;
        let older = Scanned {
            found: Vec::new(),
            rows: 0,
            more: false,
        };
        (newer, older)
    } else {
        let mid = lo + (hi - lo) / 2;
        std::thread::scope(|scope| {
            let older = scope.spawn(|| scan_range(entries, (lo, mid), query, needle, limit, &stop));
            let newer = scan_range(entries, (mid, hi), query, needle, limit, &stop);
            if newer.as_ref().map_or(true, |n| n.found.len() == limit) {
                stop.store(true, Ordering::Relaxed);
            }
            let older = older
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            Ok::<_, ProjectionError>((newer?, older?))
        })?
    };
    let rows_read = newer.rows + older.rows;
    let mut entries = newer.found;
    // Rows remain after the newer half's last match if it stopped early
    // or there is an older half.
    let mut more = newer.more || split;
    if entries.len() < limit {
        let take = limit - entries.len();
        more = older.more || older.found.len() > take;
        entries.extend(older.found.into_iter().take(take));
    }
    let next_before = (entries.len() == limit && more)
        .then(|| entries.last().map(|(id, _)| *id))
        .flatten();
    Ok(Page {
        entries,
        next_before,
        rows_read,
    })
}

impl Projection {
    pub(crate) fn read(&self) -> Result<ReadTransaction, ProjectionError> {
        Ok(self.db()?.begin_read()?)
    }

    pub fn last_applied(&self) -> Result<u64, ProjectionError> {
        let txn = self.read()?;
        let meta = txn.open_table(META)?;
        Ok(meta.get(META_LAST_APPLIED)?.map_or(0, |v| v.value()))
    }

    /// A page of entries, newest first. The candidates come from the most
    /// selective index the filter allows ([`Projection::candidates`]); each
    /// is then checked against the whole filter, until the page is full.
    pub fn page(&self, query: &Query) -> Result<Page, ProjectionError> {
        let txn = self.read()?;
        let entries = txn.open_table(ENTRIES)?;
        let (level_t, key_t) = if query.resolved == Resolved::Open {
            (txn.open_table(LEVEL_OPEN)?, txn.open_table(KEY_OPEN)?)
        } else {
            (txn.open_table(LEVEL_ALL)?, txn.open_table(KEY_ALL)?)
        };
        let before = query.before.unwrap_or(u64::MAX);
        let needle = query
            .filter
            .q
            .as_deref()
            .map(str::trim)
            .filter(|q| !q.is_empty() && q.is_ascii())
            .map(|q| q.to_ascii_lowercase().into_bytes());
        let group_t = txn.open_table(GROUP_ENTRIES)?;
        let tables = IndexTables {
            entries: &entries,
            level: &level_t,
            key: &key_t,
            group: &group_t,
        };
        let Some(mut source) = self.candidates(&txn, query, &tables)? else {
            return scan_text(&entries, query, needle.as_deref(), before);
        };
        let limit = query.limit.max(1);
        let mut page = Page {
            entries: Vec::new(),
            next_before: None,
            rows_read: 0,
        };
        loop {
            // The candidate after a full page only says there is a next one.
            let (id, guard) = match &mut source {
                Candidates::Table(rows) => {
                    let Some(row) = rows.next() else { break };
                    let (k, v) = row?;
                    page.rows_read += 1;
                    if page.is_full(limit) {
                        break;
                    }
                    (k.value(), v)
                }
                Candidates::Index(ids) => {
                    let Some(id) = ids.next() else { break };
                    let id = id?;
                    page.rows_read += 1;
                    if page.is_full(limit) {
                        break;
                    }
                    let Some(v) = entries.get(id)? else { continue };
                    page.rows_read += 1;
                    (id, v)
                }
            };
            if let Some(rec) = candidate(guard.value(), query, needle.as_deref())? {
                page.entries.push((id, rec));
            }
        }
        Ok(page)
    }

    /// Where a page's candidates come from: a group's entries; the key
    /// index when it is the smaller, else the level index, else the
    /// entries table in order.
    /// `None` for a text search without a key or level filter, which
    /// [`scan_text`] reads from the table (no index lookups), skipping rows
    /// whose raw bytes cannot contain the text before decoding them.
    fn candidates<'a>(
        &self,
        txn: &ReadTransaction,
        query: &Query,
        t: &IndexTables<'a>,
    ) -> Result<Option<Candidates<'a>>, ProjectionError> {
        let (entries, level_t, key_t) = (t.entries, t.level, t.key);
        let f = &query.filter;
        let before = query.before.unwrap_or(u64::MAX);
        // A group's entries (or its open ones) are the smallest source
        // there is.
        if let Some(g) = &f.group {
            let num = group_num(g);
            let below = before.saturating_sub(1).min(OPEN - 1);
            let range = if query.resolved == Resolved::Open {
                (num, OPEN)..=(num, OPEN | below)
            } else {
                group_members(num, below)
            };
            let ids = t
                .group
                .range(range)?
                .rev()
                .map(|r| r.map(|(k, _)| k.value().1 & !OPEN));
            return Ok(Some(Candidates::Index(Box::new(ids))));
        }
        let open = query.resolved == Resolved::Open;
        let use_keys = !f.keys.is_empty()
            && (f.levels.is_empty()
                || self.key_weight(txn, &f.keys)? <= self.level_weight(txn, &f.levels, open)?);
        let text = f.q.as_deref().is_some_and(|q| !q.trim().is_empty());
        if use_keys {
            let mut heads = Vec::new();
            for k in &f.keys {
                heads.push(key_ids(key_t, k, before)?.peekable());
            }
            return Ok(Some(Candidates::Index(Box::new(Merge { heads }))));
        }
        if f.levels.is_empty() && (!open || text) {
            if text {
                return Ok(None);
            }
            return Ok(Some(Candidates::Table(entries.range(..before)?.rev())));
        }
        let levels: &[Level] = if f.levels.is_empty() {
            &Level::ALL
        } else {
            &f.levels
        };
        let mut heads = Vec::new();
        for l in levels {
            heads.push(level_ids(level_t, *l, before)?.peekable());
        }
        Ok(Some(Candidates::Index(Box::new(Merge { heads }))))
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

    /// Counts per level for the list page's filter: open or all entries,
    /// of the given key tokens (empty = every key). Read from counters, so
    /// O(levels × keys) whatever the table size; the text search is not
    /// counted here (see [`Projection::count_matching`]).
    pub fn level_counts(
        &self,
        open: bool,
        keys: &[String],
    ) -> Result<Vec<(Level, u64)>, ProjectionError> {
        let txn = self.read()?;
        let t = txn.open_table(COUNTS)?;
        let mut out = Vec::new();
        for level in Level::ALL {
            let n = if keys.is_empty() {
                t.get(count_key(open, level).as_str())?
                    .map_or(0, |v| v.value())
            } else {
                let mut n = 0;
                for k in keys {
                    n += t
                        .get(key_count_key(open, level, k).as_str())?
                        .map_or(0, |v| v.value());
                }
                n
            };
            out.push((level, n));
        }
        Ok(out)
    }

    /// The alert rules in force, by id.
    pub fn alerts(&self) -> Result<Vec<(String, AlertRecord)>, ProjectionError> {
        let txn = self.read()?;
        let t = txn.open_table(ALERTS)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            let (k, v) = row?;
            out.push((k.value().to_owned(), record::decode("alerts", v.value())?));
        }
        Ok(out)
    }

    /// Entries received in each of the 24 hours up to the one holding
    /// `now_ms`, oldest first, per level code: the open ones (`open`) or
    /// all, of the given keys (none: every key). What the counts beside
    /// the list count, spread over the day.
    pub fn volume(
        &self,
        open: bool,
        keys: &[String],
        now_ms: i64,
    ) -> Result<[[u64; 6]; 24], ProjectionError> {
        let txn = self.read()?;
        let t = txn.open_table(VOLUME)?;
        let now = crate::group_query::hour_of(now_ms);
        let first = now.saturating_sub(23);
        let all = [String::new()];
        let mut out = [[0; 6]; 24];
        for key in if keys.is_empty() { &all[..] } else { keys } {
            let o = u8::from(open);
            for row in t.range((o, key.as_str(), first, 0)..=(o, key.as_str(), now, 5))? {
                let (k, v) = row?;
                let (_, _, hour, level) = k.value();
                out[(hour - first) as usize][usize::from(level.min(5))] += v.value();
            }
        }
        Ok(out)
    }

    /// How many entries a query matches, reading at most `cap` candidates;
    /// `(count, complete)`.
    pub fn count_matching(
        &self,
        query: &Query,
        cap: usize,
    ) -> Result<(u64, bool), ProjectionError> {
        let mut q = query.clone();
        q.limit = cap;
        let page = self.page(&q)?;
        Ok((page.entries.len() as u64, page.next_before.is_none()))
    }

    /// The audit log, newest first, optionally of one actor.
    pub fn audit(
        &self,
        by: Option<&str>,
        before: Option<u64>,
        limit: usize,
    ) -> Result<AuditPage, ProjectionError> {
        let txn = self.read()?;
        let audit = txn.open_table(AUDIT)?;
        let before = before.unwrap_or(u64::MAX);
        let ids: Vec<u64> = match by {
            Some(by) => {
                let t = txn.open_table(AUDIT_BY)?;
                t.range((by, 0)..(by, before))?
                    .rev()
                    .take(limit + 1)
                    .map(|r| r.map(|(k, _)| k.value().1))
                    .collect::<Result<_, _>>()?
            }
            None => audit
                .range(..before)?
                .rev()
                .take(limit + 1)
                .map(|r| r.map(|(k, _)| k.value()))
                .collect::<Result<_, _>>()?,
        };
        let mut out = Vec::new();
        for id in ids.iter().take(limit) {
            if let Some(v) = audit.get(*id)? {
                out.push((*id, record::decode("audit", v.value())?));
            }
        }
        let next = (ids.len() > limit)
            .then(|| out.last().map(|(id, _)| *id))
            .flatten();
        Ok((out, next))
    }

    /// Everyone who appears in the audit log, for its filter menu.
    pub fn audit_actors(&self) -> Result<Vec<String>, ProjectionError> {
        let txn = self.read()?;
        let t = txn.open_table(AUDIT_BY)?;
        let mut out: Vec<String> = Vec::new();
        for row in t.iter()? {
            let (k, _) = row?;
            let name = k.value().0;
            if out.last().map(String::as_str) != Some(name) {
                out.push(name.to_owned());
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::{contains_ascii_ci, may_lower_into_ascii};
    use crate::{Projection, Query};
    use proto::Level;
    use proto::event::{Actor, Envelope, Event, Logged};
    use proto::filter::Filter;

    fn logged(message: &str) -> Envelope {
        Envelope {
            at: 1_800_000_000_000,
            by: Actor::Key("k000001".into()),
            event: Event::Logged(Logged {
                key_id: Some("k000001".into()),
                ..Logged::new(Level::Error, message)
            }),
        }
    }

    #[test]
    fn a_text_search_finds_text_that_only_unicode_lower_casing_makes_ascii() {
        let dir = tempfile::tempdir().unwrap();
        let p = Projection::open(&dir.path().join("p.redb"), 1 << 20).unwrap();
        p.apply(vec![
            (1, logged("it is 300 \u{212A} in the rack")),
            (2, logged("it is 300 degrees in the rack")),
            (3, logged("IT IS 300 K IN THE RACK")),
        ])
        .unwrap();
        let q = |text: &str| Query {
            filter: Filter {
                q: Some(text.into()),
                ..Default::default()
            },
            limit: 20,
            ..Default::default()
        };
        let ids: Vec<u64> = p
            .page(&q("300 k in"))
            .unwrap()
            .entries
            .iter()
            .map(|e| e.0)
            .collect();
        assert_eq!(ids, [3, 1]);
        let none = p.page(&q("no such words")).unwrap();
        assert!(none.entries.is_empty());
        assert_eq!(none.rows_read, 3);
    }

    #[test]
    fn a_text_search_over_a_large_table_pages_across_both_halves_of_the_scan() {
        let dir = tempfile::tempdir().unwrap();
        let p = Projection::open(&dir.path().join("p.redb"), 4 << 20).unwrap();
        let n = super::SPLIT_SCAN_FROM + 10_000;
        let mut expected = Vec::new();
        for chunk in (1..=n).collect::<Vec<_>>().chunks(10_000) {
            let batch = chunk
                .iter()
                .map(|&i| {
                    let text = if i % 1000 == 7 {
                        expected.push(i);
                        format!("Needle in entry {i}")
                    } else {
                        format!("hay in entry {i}")
                    };
                    (i, logged(&text))
                })
                .collect();
            p.apply(batch).unwrap();
        }
        expected.reverse();
        let q = |before: Option<u64>, text: &str| Query {
            filter: Filter {
                q: Some(text.into()),
                ..Default::default()
            },
            before,
            limit: 20,
            ..Default::default()
        };
        let (mut got, mut before) = (Vec::new(), None);
        loop {
            let page = p.page(&q(before, "needle")).unwrap();
            got.extend(page.entries.iter().map(|e| e.0));
            match page.next_before {
                Some(b) => before = Some(b),
                None => break,
            }
        }
        assert_eq!(got, expected, "newest first, none lost or repeated");
        // The first page is full from the newer half alone.
        assert!(p.page(&q(None, "needle")).unwrap().rows_read < n);
        let none = p.page(&q(None, "no such words")).unwrap();
        assert!(none.entries.is_empty() && none.next_before.is_none());
        assert_eq!(none.rows_read, n, "every row read once");
    }

    #[test]
    fn rows_with_characters_that_lower_case_into_ascii_are_decoded() {
        assert!(may_lower_into_ascii("300 \u{212A}".as_bytes()));
        assert!(may_lower_into_ascii("\u{130}stanbul".as_bytes()));
        assert!(!may_lower_into_ascii("300 K, Istanbul, Straße".as_bytes()));
    }

    #[test]
    fn the_text_prefilter_ignores_ascii_case() {
        assert!(contains_ascii_ci(b"Disk Almost FULL", b"almost full"));
        assert!(contains_ascii_ci(b"abc", b""));
        assert!(!contains_ascii_ci(b"disk almost ful", b"almost full"));
        assert!(!contains_ascii_ci(b"", b"x"));
    }
}
