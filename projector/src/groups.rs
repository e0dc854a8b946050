//! Groups: repeats of one problem folded together (docs/api.md,
//! "Groups"). Every entry belongs to the group [`proto::grouping`] gives
//! it; a group's row is kept up to date as its entries arrive, are
//! resolved or reopened, and are forgotten by retention.
//!
//! Everything a group row holds is a function of its current entries and
//! their histories, taken in stream order ([`Tx::derive_group`]), so a
//! rebuild computes the same row. The incremental updates compute the
//! same as that derivation; retention, which forgets entries (and with
//! them the story of a group), derives the groups it touched anew.
//!
//! Regression "as of" the stream: a group is regressed when an entry
//! arrives after all of the group's earlier entries were resolved. A
//! resolve-all rule is applied in chunks, after later events; when its
//! chunk resolves the last of a group's entries that existed at the rule's
//! place in the stream, and the group's open entries all came after that
//! place, the group was resolved then and regressed since: the chunk says
//! so ([`Tx::group_open_changed`]).

use crate::ProjectionError;
use crate::apply::Tx;
use crate::record::{self, EntryRecord, Resolution};
use crate::tables::{OPEN, group_members, group_num, group_open};
use proto::Level;
use redb::ReadableTable;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupRecord {
    /// The key its entries came with (`None`: added by hand).
    pub key_id: Option<String>,
    /// The message of its newest entry, and that message normalised
    /// ([`proto::grouping::normalize`]): not stored (the newest entry has
    /// them), set when the row is read ([`GroupRecord::read`]). The
    /// projector writes a group's row per batch at a random place when
    /// there are many groups, so the row is kept small.
    #[serde(skip)]
    pub title: String,
    #[serde(skip)]
    pub template: String,
    /// Entries per level code.
    pub levels: [u64; 6],
    pub count: u64,
    pub open_count: u64,
    pub first_entry_id: u64,
    pub last_entry_id: u64,
    /// When its first and its newest entry were received.
    pub first_seen: i64,
    pub last_seen: i64,
    /// An entry arrived after every earlier one was resolved; until the
    /// group is resolved again.
    pub regressed: bool,
    /// The resolve that left no entry open; `None` while any is open.
    pub resolved: Option<Resolution>,
    /// The hour (since the epoch) its newest-received entry came in, and
    /// its entries received in each of the 24 hours up to it, oldest first.
    /// In the row, not a table of its own: one write per group per batch.
    pub hour: u64,
    pub hourly: [u32; 24],
}

impl GroupRecord {
    fn new(id: u64, rec: &EntryRecord) -> GroupRecord {
        GroupRecord {
            key_id: rec.key_id.clone(),
            title: String::new(),
            template: String::new(),
            levels: [0; 6],
            count: 0,
            open_count: 0,
            first_entry_id: id,
            last_entry_id: id,
            first_seen: rec.received,
            last_seen: rec.received,
            regressed: false,
            resolved: None,
            hour: crate::group_query::hour_of(rec.received),
            hourly: [0; 24],
        }
    }

    /// A stored row, with its title and template from its newest entry.
    pub(crate) fn read(
        bytes: &[u8],
        entries: &impl ReadableTable<u64, &'static [u8]>,
    ) -> Result<GroupRecord, ProjectionError> {
        let mut g: GroupRecord = record::decode("groups", bytes)?;
        if let Some(v) = entries.get(g.last_entry_id)? {
            let newest: EntryRecord = record::decode("entries", v.value())?;
            g.template = proto::grouping::normalize(&newest.message);
            g.title = newest.message;
        }
        Ok(g)
    }

    /// Entries received in each of the 24 hours up to `now` (an hour since
    /// the epoch), oldest first.
    pub fn hourly_until(&self, now: u64) -> [u64; 24] {
        let mut out = [0; 24];
        for (i, slot) in out.iter_mut().enumerate() {
            let Some(h) = (now + i as u64).checked_sub(23) else {
                continue;
            };
            if h <= self.hour && self.hour - h < 24 {
                *slot = u64::from(self.hourly[(23 - (self.hour - h)) as usize]);
            }
        }
        out
    }

    /// Counts an entry received at `ms` (`delta` +1 or -1) in its hour.
    /// The window follows the newest hour; older hours fall out of it, so
    /// the counts are those of the current entries in whatever order they
    /// came.
    fn count_hour(&mut self, ms: i64, add: bool) {
        let h = crate::group_query::hour_of(ms);
        if add && h > self.hour {
            let shift = h - self.hour;
            if shift >= 24 {
                self.hourly = [0; 24];
            } else {
                self.hourly.rotate_left(shift as usize);
                self.hourly[24 - shift as usize..].fill(0);
            }
            self.hour = h;
        }
        if h <= self.hour && h + 23 >= self.hour {
            let slot = &mut self.hourly[(23 - (self.hour - h)) as usize];
            *slot = if add {
                slot.saturating_add(1)
            } else {
                slot.saturating_sub(1)
            };
        }
    }

    /// The highest level among its entries.
    pub fn level(&self) -> Level {
        Level::ALL
            .iter()
            .rev()
            .find(|l| self.levels[usize::from(l.code())] > 0)
            .copied()
            .unwrap_or(Level::Debug)
    }

    /// Counts one more entry (`id`, received at `rec.received`), the newest
    /// if its id is the highest.
    fn add(&mut self, id: u64, rec: &EntryRecord) {
        self.count_hour(rec.received, true);
        self.count += 1;
        self.levels[usize::from(rec.level.code())] += 1;
        if id >= self.last_entry_id || self.count == 1 {
            self.last_entry_id = id;
            self.last_seen = rec.received;
        }
        if id <= self.first_entry_id || self.count == 1 {
            self.first_entry_id = id;
            self.first_seen = rec.received;
        }
        if rec.resolved.is_none() {
            self.open_count += 1;
            self.resolved = None;
        } else if self.open_count == 0 && self.resolved.is_none() {
            self.resolved.clone_from(&rec.resolved);
        }
    }
}

/// What happened to a group, in its history (kept by the sequence of the
/// event that did it, or of the entry that reopened it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupEventKind {
    /// Its last open entry was resolved.
    Resolved,
    /// An entry (`entry_id`) arrived after it had been resolved.
    Regressed,
    /// An entry of a resolved group was reopened by hand.
    Reopened,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupEvent {
    pub kind: GroupEventKind,
    /// Who resolved or reopened; `None` for a regression.
    pub by: Option<String>,
    /// When (Unix ms): the triage's time, or the entry's arrival.
    pub at: i64,
    /// The entry that regressed the group.
    pub entry_id: Option<u64>,
}

impl GroupEvent {
    fn triage(kind: GroupEventKind, r: &Resolution) -> GroupEvent {
        GroupEvent {
            kind,
            by: Some(r.by.clone()),
            at: r.at,
            entry_id: None,
        }
    }

    fn regressed(id: u64, at: i64) -> GroupEvent {
        GroupEvent {
            kind: GroupEventKind::Regressed,
            by: None,
            at,
            entry_id: Some(id),
        }
    }
}

/// A group as derived from its entries: its row and its history.
pub(crate) struct Derived {
    pub group: Option<GroupRecord>,
    pub history: Vec<(u64, GroupEvent)>,
}

/// A group row within a batch: as the table holds it, and as it is now.
pub(crate) struct CachedGroup {
    stored: Option<GroupRecord>,
    current: Option<GroupRecord>,
}

/// What happens to a group, in stream order, when it is derived.
enum Step<'a> {
    /// An entry arrives: logged, or carried forward by retention (then
    /// with its state at the carry: `Some(resolution)`).
    Arrive {
        id: u64,
        rec: &'a EntryRecord,
        carried: Option<Option<Resolution>>,
    },
    /// A resolve or unresolve of an entry after it arrived.
    Triage {
        id: u64,
        resolve: bool,
        by: String,
        at: i64,
    },
}

impl Tx<'_> {
    /// A group's row as this batch has it (read once from the table).
    pub(crate) fn group(&mut self, gid: &str) -> Result<Option<GroupRecord>, ProjectionError> {
        if let Some(c) = self.group_cache.get(gid) {
            return Ok(c.current.clone());
        }
        let stored: Option<GroupRecord> = match self.groups.get(group_num(gid))? {
            Some(v) => Some(record::decode("groups", v.value())?),
            None => None,
        };
        self.group_cache.insert(
            gid.to_owned(),
            CachedGroup {
                current: stored.clone(),
                stored,
            },
        );
        Ok(self.group_cache[gid].current.clone())
    }

    /// A group's new row (or `None`: gone), written at the batch's end.
    fn put_group(&mut self, gid: &str, new: Option<GroupRecord>) -> Result<(), ProjectionError> {
        self.group(gid)?;
        if let Some(c) = self.group_cache.get_mut(gid) {
            c.current = new;
        }
        Ok(())
    }

    /// Writes the groups this batch changed: each row once, and its place in the order indexes (by newest entry; the open
    /// ones apart) only when that moved.
    pub(crate) fn flush_groups(&mut self) -> Result<(), ProjectionError> {
        let cache = std::mem::take(&mut self.group_cache);
        for (gid, c) in cache {
            let gid = group_num(&gid);
            let current = c.current;
            if current == c.stored {
                continue;
            }
            let place = |g: &GroupRecord| (g.last_entry_id, g.open_count > 0);
            let (before, after) = (c.stored.as_ref().map(place), current.as_ref().map(place));
            if before != after {
                if let Some((last, open)) = before {
                    self.group_last.remove((last, gid))?;
                    if open {
                        self.group_last_open.remove((last, gid))?;
                    }
                }
                if let Some((last, open)) = after {
                    self.group_last.insert((last, gid), ())?;
                    if open {
                        self.group_last_open.insert((last, gid), ())?;
                    }
                }
            }
            match current {
                Some(g) => self.groups.insert(gid, record::encode(&g).as_slice())?,
                None => self.groups.remove(gid)?,
            };
        }
        Ok(())
    }

    /// An entry joins its group: a new one (`arrived`: logged now, which
    /// may be a regression) or one carried forward by retention.
    pub(crate) fn group_add(
        &mut self,
        id: u64,
        rec: &EntryRecord,
        arrived: bool,
    ) -> Result<(), ProjectionError> {
        let gid = rec.group.as_str();
        let mut g = self
            .group(gid)?
            .unwrap_or_else(|| GroupRecord::new(id, rec));
        let num = group_num(gid);
        if arrived && g.count > 0 && g.open_count == 0 {
            g.regressed = true;
            self.group_event(num, id, &GroupEvent::regressed(id, rec.received))?;
        }
        g.add(id, rec);
        self.group_entries.insert((num, id), ())?;
        if rec.resolved.is_none() {
            self.group_entries.insert((num, OPEN | id), ())?;
        }
        self.put_group(gid, Some(g))
    }

    /// Notes an event in a group's history.
    fn group_event(&mut self, num: u64, seq: u64, e: &GroupEvent) -> Result<(), ProjectionError> {
        self.group_history
            .insert((num, seq), record::encode(e).as_slice())?;
        Ok(())
    }

    /// An entry of the group was resolved (`resolve`) or reopened by the
    /// event at `seq` (a rule's own sequence when a rule did it), by
    /// `change.by` at `change.at`.
    pub(crate) fn group_open_changed(
        &mut self,
        rec: &EntryRecord,
        id: u64,
        seq: u64,
        resolve: bool,
        change: Resolution,
    ) -> Result<(), ProjectionError> {
        let gid = rec.group.as_str();
        let Some(mut g) = self.group(gid)? else {
            return Ok(());
        };
        let num = group_num(gid);
        if resolve {
            self.group_entries.remove((num, OPEN | id))?;
            g.open_count = g.open_count.saturating_sub(1);
            // The oldest entry still open: none, the group is resolved; one
            // that came after this event, it was resolved then, and has
            // regressed since.
            let oldest_open = self
                .group_entries
                .range(group_open(num))?
                .next()
                .transpose()?
                .map(|(k, _)| k.value().1 & !OPEN);
            match oldest_open {
                None => {
                    g.resolved.clone_from(&rec.resolved);
                    g.regressed = false;
                    let e = GroupEvent::triage(GroupEventKind::Resolved, &change);
                    self.group_event(num, seq, &e)?;
                }
                Some(oldest) if oldest > seq => {
                    g.resolved = None;
                    g.regressed = true;
                    let e = GroupEvent::triage(GroupEventKind::Resolved, &change);
                    self.group_event(num, seq, &e)?;
                    let at = self.entry(oldest)?.map_or(change.at, |r| r.received);
                    self.group_event(num, oldest, &GroupEvent::regressed(oldest, at))?;
                }
                Some(_) => {}
            }
        } else {
            self.group_entries.insert((num, OPEN | id), ())?;
            if g.open_count == 0 {
                let e = GroupEvent::triage(GroupEventKind::Reopened, &change);
                self.group_event(num, seq, &e)?;
            }
            g.open_count += 1;
            g.resolved = None;
        }
        self.put_group(gid, Some(g))
    }

    /// An entry leaves its group (retention, or a carried entry about to
    /// come back); an empty group goes. Boundaries are taken from what is
    /// left; the rest is [`Tx::derive_group`]'s once retention is done.
    pub(crate) fn group_remove(
        &mut self,
        id: u64,
        rec: &EntryRecord,
    ) -> Result<(), ProjectionError> {
        let gid = rec.group.as_str();
        let Some(mut g) = self.group(gid)? else {
            return Ok(());
        };
        let num = group_num(gid);
        self.group_entries.remove((num, id))?;
        self.group_entries.remove((num, OPEN | id))?;
        g.count_hour(rec.received, false);
        g.count = g.count.saturating_sub(1);
        let level = usize::from(rec.level.code());
        g.levels[level] = g.levels[level].saturating_sub(1);
        if rec.resolved.is_none() {
            g.open_count = g.open_count.saturating_sub(1);
        }
        if g.count == 0 {
            return self.put_group(gid, None);
        }
        self.set_bounds(gid, &mut g)?;
        self.put_group(gid, Some(g))
    }

    /// First and newest entry (ids, times, title) from the group's entries.
    fn set_bounds(&self, gid: &str, g: &mut GroupRecord) -> Result<(), ProjectionError> {
        let mut range = self
            .group_entries
            .range(group_members(group_num(gid), u64::MAX))?;
        let first = range.next().transpose()?.map(|(k, _)| k.value().1);
        let last = range
            .next_back()
            .transpose()?
            .map(|(k, _)| k.value().1)
            .or(first);
        drop(range);
        if let Some(first) = first
            && let Some(rec) = self.entry(first)?
        {
            g.first_entry_id = first;
            g.first_seen = rec.received;
        }
        if let Some(last) = last
            && let Some(rec) = self.entry(last)?
        {
            g.last_entry_id = last;
            g.last_seen = rec.received;
        }
        Ok(())
    }

    /// The group's row and history as its current entries and their
    /// histories make them, taken in stream order: what a rebuild computes.
    /// `None` for a group without entries.
    pub(crate) fn derive_group(&self, gid: &str) -> Result<Derived, ProjectionError> {
        let mut recs = Vec::new();
        for row in self
            .group_entries
            .range(group_members(group_num(gid), u64::MAX))?
        {
            let id = row?.0.value().1;
            if let Some(rec) = self.entry(id)? {
                recs.push((id, rec));
            }
        }
        let mut steps: Vec<(u64, Step<'_>)> = Vec::new();
        for (id, rec) in &recs {
            let held = self.held.get(*id)?.map(|v| v.value());
            let arrival = held.unwrap_or(*id);
            // A carried entry arrives as it was when carried: resolved if
            // its last resolve or unresolve before that was a resolve.
            let mut at_arrival = None;
            if held.is_some() {
                for row in self.history.range((*id, 0)..(*id, arrival))? {
                    let item: crate::record::HistoryItem =
                        record::decode("history", row?.1.value())?;
                    at_arrival =
                        (item.kind == crate::record::HistoryKind::Resolved).then_some(Resolution {
                            by: item.by,
                            at: item.at,
                        });
                }
            }
            steps.push((
                arrival,
                Step::Arrive {
                    id: *id,
                    rec,
                    carried: held.map(|_| at_arrival),
                },
            ));
            for row in self.history.range((*id, arrival + 1)..=(*id, u64::MAX))? {
                let (k, v) = row?;
                let item: crate::record::HistoryItem = record::decode("history", v.value())?;
                steps.push((
                    k.value().1,
                    Step::Triage {
                        id: *id,
                        resolve: item.kind == crate::record::HistoryKind::Resolved,
                        by: item.by,
                        at: item.at,
                    },
                ));
            }
        }
        // Arrivals before triage at the same sequence (a carried entry's).
        steps.sort_by_key(|(seq, s)| (*seq, matches!(s, Step::Triage { .. })));
        let mut g: Option<GroupRecord> = None;
        let mut history = Vec::new();
        let mut open = std::collections::BTreeSet::new();
        for (seq, step) in steps {
            match step {
                Step::Arrive { id, rec, carried } => {
                    let mut arriving = rec.clone();
                    arriving.resolved = carried.clone().flatten();
                    let g = g.get_or_insert_with(|| GroupRecord::new(id, rec));
                    if carried.is_none() && g.count > 0 && g.open_count == 0 {
                        g.regressed = true;
                        history.push((id, GroupEvent::regressed(id, rec.received)));
                    }
                    g.add(id, &arriving);
                    if arriving.resolved.is_none() {
                        open.insert(id);
                    }
                }
                Step::Triage {
                    id,
                    resolve,
                    by,
                    at,
                } => {
                    let Some(g) = g.as_mut() else { continue };
                    let change = Resolution { by, at };
                    let resolved = || GroupEvent::triage(GroupEventKind::Resolved, &change);
                    if resolve && open.remove(&id) {
                        g.open_count -= 1;
                        match open.first() {
                            None => {
                                history.push((seq, resolved()));
                                g.resolved = Some(change);
                                g.regressed = false;
                            }
                            Some(&oldest) if oldest > seq => {
                                g.resolved = None;
                                g.regressed = true;
                                history.push((seq, resolved()));
                                let at = recs
                                    .iter()
                                    .find(|(i, _)| *i == oldest)
                                    .map_or(at, |(_, r)| r.received);
                                history.push((oldest, GroupEvent::regressed(oldest, at)));
                            }
                            Some(_) => {}
                        }
                    } else if !resolve && open.insert(id) {
                        if g.open_count == 0 {
                            let e = GroupEvent::triage(GroupEventKind::Reopened, &change);
                            history.push((seq, e));
                        }
                        g.open_count += 1;
                        g.resolved = None;
                    }
                }
            }
        }
        // The table's order; of events at one place the table keeps the
        // last.
        history.sort_by_key(|(seq, _)| *seq);
        history.reverse();
        history.dedup_by_key(|(seq, _)| *seq);
        history.reverse();
        Ok(Derived { group: g, history })
    }

    /// A group's history as the table holds it, oldest first.
    pub(crate) fn stored_history(
        &self,
        num: u64,
    ) -> Result<Vec<(u64, GroupEvent)>, ProjectionError> {
        let mut out = Vec::new();
        for row in self.group_history.range((num, 0)..=(num, u64::MAX))? {
            let (k, v) = row?;
            out.push((k.value().1, record::decode("group_history", v.value())?));
        }
        Ok(out)
    }

    /// Retention touched these groups (and those its carried entries are
    /// in, marked in `GROUP_DIRTY`): each is derived anew from what is left.
    pub(crate) fn rederive_groups(
        &mut self,
        mut gids: std::collections::BTreeSet<String>,
    ) -> Result<(), ProjectionError> {
        for row in self.group_dirty.iter()? {
            gids.insert(row?.0.value().to_owned());
        }
        self.group_dirty.retain(|_, _| false)?;
        for gid in gids {
            let derived = self.derive_group(&gid)?;
            let num = group_num(&gid);
            self.group_history
                .retain_in((num, 0)..=(num, u64::MAX), |_, _| false)?;
            for (seq, e) in &derived.history {
                self.group_event(num, *seq, e)?;
            }
            self.put_group(&gid, derived.group)?;
        }
        Ok(())
    }
}

impl crate::Projection {
    /// A group's row.
    pub fn group(&self, id: &str) -> Result<Option<GroupRecord>, ProjectionError> {
        let txn = self.read()?;
        let t = txn.open_table(crate::tables::GROUPS)?;
        let entries = txn.open_table(crate::tables::ENTRIES)?;
        match t.get(group_num(id))? {
            Some(v) => Ok(Some(GroupRecord::read(v.value(), &entries)?)),
            None => Ok(None),
        }
    }

    /// A group's history, newest first, at most `limit` events.
    pub fn group_history(
        &self,
        id: &str,
        limit: usize,
    ) -> Result<Vec<(u64, GroupEvent)>, ProjectionError> {
        let txn = self.read()?;
        let t = txn.open_table(crate::tables::GROUP_HISTORY)?;
        let num = group_num(id);
        let mut out = Vec::new();
        for row in t.range((num, 0)..=(num, u64::MAX))?.rev().take(limit) {
            let (k, v) = row?;
            out.push((k.value().1, record::decode("group_history", v.value())?));
        }
        Ok(out)
    }

    /// What the group's history says happened at `seq`, if anything.
    pub fn group_event_at(
        &self,
        id: &str,
        seq: u64,
    ) -> Result<Option<GroupEvent>, ProjectionError> {
        let txn = self.read()?;
        let t = txn.open_table(crate::tables::GROUP_HISTORY)?;
        match t.get((group_num(id), seq))? {
            Some(v) => Ok(Some(record::decode("group_history", v.value())?)),
            None => Ok(None),
        }
    }

    /// Every group (tests and tools; pages use the paged query).
    pub fn all_groups(&self) -> Result<Vec<(String, GroupRecord)>, ProjectionError> {
        let txn = self.read()?;
        let t = txn.open_table(crate::tables::GROUPS)?;
        let entries = txn.open_table(crate::tables::ENTRIES)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            let (k, v) = row?;
            out.push((
                crate::tables::group_id(k.value()),
                GroupRecord::read(v.value(), &entries)?,
            ));
        }
        Ok(out)
    }

    /// Every group whose row differs from what its entries derive
    /// ([`Tx::derive_group`]), as `id: stored vs derived`: empty when the
    /// incremental updates kept every group exact. (Checks only; nothing
    /// is written.)
    pub fn group_differences(&self) -> Result<Vec<String>, ProjectionError> {
        let txn = self.db()?.begin_write()?;
        let mut out = Vec::new();
        {
            let mut tx = Tx::open(&txn)?;
            let mut ids = Vec::new();
            for row in tx.groups.iter()? {
                ids.push(crate::tables::group_id(row?.0.value()));
            }
            for gid in ids {
                let stored = tx.group(&gid)?;
                let history = tx.stored_history(group_num(&gid))?;
                let derived = tx.derive_group(&gid)?;
                if stored != derived.group || history != derived.history {
                    out.push(format!(
                        "{gid}: {stored:?} {history:?} vs {:?} {:?}",
                        derived.group, derived.history
                    ));
                }
            }
        }
        txn.abort()?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::GroupRecord;
    use crate::record::EntryRecord;

    const HOUR: i64 = 3_600_000;

    fn at(hour: i64) -> EntryRecord {
        let l = proto::event::Logged {
            key_id: None,
            level: proto::Level::Error,
            message: "boom".into(),
            source: None,
            time: None,
            ip: None,
            meta: Default::default(),
            fingerprint: None,
            added_by: None,
            untrusted: false,
            exception: None,
        };
        EntryRecord::from_logged(l, hour * HOUR + 1, None)
    }

    #[test]
    fn hourly_counts_follow_the_newest_hour_in_any_order() {
        let hours = [1000, 1000, 1010, 980, 1023, 999, 1023, 1024];
        let mut forward = GroupRecord::new(1, &at(hours[0]));
        for (i, h) in hours.iter().enumerate() {
            forward.add(i as u64 + 1, &at(*h));
        }
        let mut backward = GroupRecord::new(1, &at(hours[7]));
        for (i, h) in hours.iter().enumerate().rev() {
            backward.add(i as u64 + 1, &at(*h));
        }
        assert_eq!(forward.hourly, backward.hourly);
        assert_eq!(forward.hour, 1024);
        // 24 hours up to 1024: 1001..=1024; 1000, 999 and 980 fell out.
        let last_day = forward.hourly_until(1024);
        assert_eq!(last_day.iter().sum::<u64>(), 4);
        assert_eq!(last_day[23], 1, "1024");
        assert_eq!(last_day[22], 2, "1023 twice");
        assert_eq!(last_day[9], 1, "1010");
        // Seen from later, the window moves on: two hours on, 1001 and
        // 1002 are gone, 1024 sits two slots from the end.
        let later = forward.hourly_until(1026);
        assert_eq!(later[21], 1);
        assert_eq!(later.iter().sum::<u64>(), 4);
        assert_eq!(forward.hourly_until(2000), [0; 24]);
        // Forgetting an entry takes it off its hour.
        forward.count_hour(1023 * HOUR, false);
        assert_eq!(forward.hourly_until(1024)[22], 1);
    }
}
