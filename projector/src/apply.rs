//! Applying events to the projection. One batch is one write transaction
//! that also stores `last_applied`, so a crash between batches replays
//! nothing twice and skips nothing. Applying never reads the clock: every
//! derived value comes from event fields, so a replay computes the same.

use crate::record::{
    self, AuditItem, EntryRecord, HistoryItem, HistoryKind, KeyRecord, Resolution, UserRecord,
};
use crate::tables::*;
use crate::{Projection, ProjectionError};
use proto::event::{Carried, Envelope, Event, Logged, Triage};
use proto::state::{KeyState, UserState, key_of, user_of};
use redb::{ReadableTable, Table, WriteTransaction};
use std::collections::{BTreeSet, HashMap};

/// The tables a batch writes, opened once per transaction.
pub(crate) struct Tx<'t> {
    pub(crate) entries: Table<'t, u64, &'static [u8]>,
    level_all: Table<'t, (u8, u64), ()>,
    key_all: Table<'t, (&'static str, u64), ()>,
    level_open: Table<'t, (u8, u64), ()>,
    key_open: Table<'t, (&'static str, u64), ()>,
    pub(crate) history: Table<'t, (u64, u64), &'static [u8]>,
    keys: Table<'t, &'static str, &'static [u8]>,
    users: Table<'t, &'static str, &'static [u8]>,
    audit: Table<'t, u64, &'static [u8]>,
    audit_by: Table<'t, (&'static str, u64), ()>,
    /// Entries held in the stream by a `Carried` event (retention).
    pub(crate) held: Table<'t, u64, u64>,
    /// Counter changes per key token, written once at the end of the
    /// batch: `[open?][level code]`.
    counts: HashMap<String, [[i64; 6]; 2]>,
    /// Volume changes per key token and (open?, hour), by level code.
    volume: HashMap<String, Vec<(bool, u64, [i64; 6])>>,
    /// Per key: entries added and the last time used, written at the end.
    key_use: HashMap<String, (u64, i64)>,
    pub(crate) pending_rules: Table<'t, u64, &'static [u8]>,
    pub(crate) rule_done: Table<'t, (u64, u64), ()>,
    pub(crate) groups: Table<'t, u64, &'static [u8]>,
    pub(crate) group_entries: Table<'t, (u64, u64), ()>,
    pub(crate) group_last: Table<'t, (u64, u64), ()>,
    pub(crate) group_last_open: Table<'t, (u64, u64), ()>,
    pub(crate) group_dirty: Table<'t, &'static str, ()>,
    alerts: Table<'t, &'static str, &'static [u8]>,
    pub(crate) group_history: Table<'t, (u64, u64), &'static [u8]>,
    /// Group rows this batch read or changed, written at its end.
    pub(crate) group_cache: HashMap<String, crate::groups::CachedGroup>,
}

impl<'t> Tx<'t> {
    pub(crate) fn open(txn: &'t WriteTransaction) -> Result<Tx<'t>, redb::Error> {
        Ok(Tx {
            entries: txn.open_table(ENTRIES)?,
            level_all: txn.open_table(LEVEL_ALL)?,
            key_all: txn.open_table(KEY_ALL)?,
            level_open: txn.open_table(LEVEL_OPEN)?,
            key_open: txn.open_table(KEY_OPEN)?,
            history: txn.open_table(HISTORY)?,
            keys: txn.open_table(KEYS)?,
            users: txn.open_table(USERS)?,
            audit: txn.open_table(AUDIT)?,
            audit_by: txn.open_table(AUDIT_BY)?,
            held: txn.open_table(HELD)?,
            counts: HashMap::new(),
            volume: HashMap::new(),
            key_use: HashMap::new(),
            pending_rules: txn.open_table(PENDING_RULES)?,
            rule_done: txn.open_table(RULE_DONE)?,
            groups: txn.open_table(GROUPS)?,
            group_entries: txn.open_table(GROUP_ENTRIES)?,
            group_last: txn.open_table(GROUP_LAST)?,
            group_last_open: txn.open_table(GROUP_LAST_OPEN)?,
            group_dirty: txn.open_table(GROUP_DIRTY)?,
            alerts: txn.open_table(ALERTS)?,
            group_history: txn.open_table(GROUP_HISTORY)?,
            group_cache: HashMap::new(),
        })
    }

    /// Counts per level, overall and per key token, and per hour received.
    fn count(&mut self, open: bool, rec: &EntryRecord, delta: i64) {
        let (level, key) = (usize::from(rec.level.code()), rec.key_token());
        let per_key = match self.counts.get_mut(key) {
            Some(c) => c,
            None => self.counts.entry(key.to_owned()).or_default(),
        };
        per_key[usize::from(open)][level] += delta;
        let hour = crate::group_query::hour_of(rec.received);
        // Per key a few (state, hour) slots a batch: no allocation per entry.
        let slots = match self.volume.get_mut(key) {
            Some(v) => v,
            None => self.volume.entry(key.to_owned()).or_default(),
        };
        match slots.iter_mut().find(|(o, h, _)| *o == open && *h == hour) {
            Some((_, _, per_level)) => per_level[level] += delta,
            None => {
                let mut per_level = [0; 6];
                per_level[level] = delta;
                slots.push((open, hour, per_level));
            }
        }
    }

    pub(crate) fn entry(&self, id: u64) -> Result<Option<EntryRecord>, ProjectionError> {
        match self.entries.get(id)? {
            Some(v) => Ok(Some(record::decode("entries", v.value())?)),
            None => Ok(None),
        }
    }

    fn logged(&mut self, seq: u64, at: i64, l: Logged) -> Result<(), ProjectionError> {
        let rec = EntryRecord::from_logged(l, at, None);
        let code = rec.level.code();
        self.entries.insert(seq, record::encode(&rec).as_slice())?;
        self.level_all.insert((code, seq), ())?;
        self.key_all.insert((rec.key_token(), seq), ())?;
        self.level_open.insert((code, seq), ())?;
        self.key_open.insert((rec.key_token(), seq), ())?;
        self.count(true, &rec, 1);
        self.count(false, &rec, 1);
        if let Some(key) = &rec.key_id {
            let u = self.key_use.entry(key.clone()).or_insert((0, at));
            u.0 += 1;
            u.1 = u.1.max(at);
        }
        self.group_add(seq, &rec, true)
    }

    /// Resolves or reopens one entry, recording who and when in its
    /// history; a no-op when it is already in that state or unknown.
    pub(crate) fn set_resolved(
        &mut self,
        seq: u64,
        id: u64,
        resolve: bool,
        by: &str,
        at: i64,
    ) -> Result<bool, ProjectionError> {
        let Some(mut rec) = self.entry(id)? else {
            return Ok(false);
        };
        if rec.resolved.is_some() == resolve {
            return Ok(false);
        }
        let code = rec.level.code();
        if resolve {
            self.level_open.remove((code, id))?;
            self.key_open.remove((rec.key_token(), id))?;
            self.count(true, &rec, -1);
            rec.resolved = Some(Resolution {
                by: by.to_owned(),
                at,
            });
        } else {
            self.level_open.insert((code, id), ())?;
            self.key_open.insert((rec.key_token(), id), ())?;
            self.count(true, &rec, 1);
            rec.resolved = None;
        }
        let item = HistoryItem {
            kind: HistoryKind::of(resolve),
            by: by.to_owned(),
            at,
        };
        self.entries.insert(id, record::encode(&rec).as_slice())?;
        self.history
            .insert((id, seq), record::encode(&item).as_slice())?;
        let change = Resolution {
            by: by.to_owned(),
            at,
        };
        self.group_open_changed(&rec, id, seq, resolve, change)?;
        Ok(true)
    }

    /// Applies a resolve or unresolve.
    fn triage(
        &mut self,
        seq: u64,
        env: &Envelope,
        target: &Triage,
        resolve: bool,
    ) -> Result<(), ProjectionError> {
        match target {
            Triage::Entry(id) => {
                // Rules still being applied decide this entry first, so
                // this later event acts on the state it was published on.
                self.rules_before(*id)?;
                self.set_resolved(seq, *id, resolve, &env.by.label(), env.at)?;
            }
            // Applied in chunks by `rules.rs`, between other events.
            Triage::Matching(rule) => self.start_rule(seq, env, rule.clone(), resolve)?,
        }
        Ok(())
    }

    fn key(&mut self, id: &str) -> Result<Option<KeyRecord>, ProjectionError> {
        match self.keys.get(id)? {
            Some(v) => Ok(Some(record::decode("keys", v.value())?)),
            None => Ok(None),
        }
    }

    fn put_key(&mut self, rec: &KeyRecord) -> Result<(), ProjectionError> {
        self.keys
            .insert(rec.key.key_id.as_str(), record::encode(rec).as_slice())?;
        Ok(())
    }

    /// A key's event on its row ([`KeyState::apply`]); the audit target.
    fn key_event(&mut self, env: &Envelope) -> Result<String, ProjectionError> {
        if let Event::KeyCreated(k) = &env.event {
            let rec = KeyRecord {
                key: KeyState::created(env, k),
                entries: 0,
                last_used: None,
            };
            self.put_key(&rec)?;
            return Ok(format!("key {} ({})", k.key_id, k.description));
        }
        let id = key_of(&env.event).unwrap_or_default();
        self.update_key(id, |k| {
            k.key.apply(&env.event);
        })?;
        Ok(format!("key {id}"))
    }

    /// A user's event on its row ([`UserState::apply`]); the audit target.
    fn user_event(&mut self, env: &Envelope) -> Result<String, ProjectionError> {
        if let Event::UserCreated(u) = &env.event {
            self.put_user(&UserState::created(env, u))?;
            return Ok(format!("user {} ({:?})", u.name, u.role).to_lowercase());
        }
        let id = user_of(&env.event).unwrap_or_default();
        self.update_user(id, |u| {
            u.apply(&env.event);
        })
    }

    fn apply(&mut self, seq: u64, env: Envelope) -> Result<(), ProjectionError> {
        let by = env.by.label();
        let action = env.event.name();
        let audit_target = match env.event {
            Event::Logged(l) => {
                let target = l
                    .added_by
                    .is_some()
                    .then(|| format!("#{seq} (added by hand)"));
                self.logged(seq, env.at, l)?;
                target
            }
            Event::Resolved(ref t) | Event::Unresolved(ref t) => {
                let resolve = matches!(env.event, Event::Resolved(_));
                self.triage(seq, &env, t, resolve)?;
                Some(match t {
                    Triage::Entry(id) => format!("#{id}"),
                    // Not the number changed: the rule is applied in later
                    // chunks, and after retention a rebuild would count fewer.
                    Triage::Matching(rule) => format!(
                        "entries matching {} up to #{}",
                        rule.filter.describe(),
                        rule.upto
                    ),
                })
            }
            Event::KeyCreated(_)
            | Event::KeyRevoked(_)
            | Event::KeyRestored(_)
            | Event::KeyChanged(_)
            | Event::DsnIssued(_) => Some(self.key_event(&env)?),
            Event::UserCreated(_)
            | Event::PasswordChanged(_)
            | Event::UserDisabled(_)
            | Event::UserEnabled(_)
            | Event::RoleChanged(_) => Some(self.user_event(&env)?),
            // Retention (docs/architecture.md, "Retention"). A carried entry is not a user
            // action; the prune is, by minilog itself.
            Event::Carried(c) => {
                self.carried(seq, c)?;
                None
            }
            Event::Pruned(p) => {
                self.pruned(p.upto_seq)?;
                Some(format!("entries below #{}", p.upto_seq))
            }
            // The event it names was passed over when it was reached
            // (`apply_through`); here it only enters the audit.
            Event::Quarantined(q) => Some(format!("event {} ({})", q.seq, q.reason)),
            Event::AlertAdded(ref a) => {
                let row = record::AlertRecord {
                    rule: a.rule.clone(),
                    created_by: by.clone(),
                    created_at: env.at,
                    seq,
                };
                self.alerts
                    .insert(a.alert_id.as_str(), record::encode(&row).as_slice())?;
                Some(format!("alert {} ({})", a.alert_id, a.rule.describe()))
            }
            Event::AlertRemoved(ref a) => {
                self.alerts.remove(a.alert_id.as_str())?;
                Some(format!("alert {}", a.alert_id))
            }
        };
        if let Some(target) = audit_target {
            let item = AuditItem {
                at: env.at,
                by: by.clone(),
                action: action.to_owned(),
                target,
            };
            self.audit.insert(seq, record::encode(&item).as_slice())?;
            self.audit_by.insert((by.as_str(), seq), ())?;
        }
        Ok(())
    }

    /// Retention: an old open entry re-published by `Carried`. Whatever
    /// the projection had of it is replaced by what the event says, so a
    /// live projection and a rebuild (which has only this event) agree.
    fn carried(&mut self, seq: u64, c: Carried) -> Result<(), ProjectionError> {
        let id = c.id;
        // A rule still being applied decides the entry as it was first
        // (a rebuild, lacking the entry then, marks it decided the same).
        self.rules_before(id)?;
        self.forget(id)?;
        let resolved = c.history.last().filter(|h| h.resolved).map(|h| Resolution {
            by: h.by.clone(),
            at: h.at,
        });
        let rec = EntryRecord::from_logged(c.logged, c.received, resolved);
        let (code, open) = (rec.level.code(), rec.resolved.is_none());
        self.entries.insert(id, record::encode(&rec).as_slice())?;
        self.level_all.insert((code, id), ())?;
        self.key_all.insert((rec.key_token(), id), ())?;
        self.count(false, &rec, 1);
        if open {
            self.level_open.insert((code, id), ())?;
            self.key_open.insert((rec.key_token(), id), ())?;
            self.count(true, &rec, 1);
        }
        if let Some(key) = &rec.key_id {
            let u = self.key_use.entry(key.clone()).or_insert((0, c.received));
            u.0 += 1;
            u.1 = u.1.max(c.received);
        }
        for h in c.history {
            let item = HistoryItem {
                kind: HistoryKind::of(h.resolved),
                by: h.by,
                at: h.at,
            };
            self.history
                .insert((id, h.seq), record::encode(&item).as_slice())?;
        }
        self.held.insert(id, seq)?;
        // Its group takes it back now, and is derived anew at the prune:
        // in a rebuild the entry arrives only here.
        self.group_add(id, &rec, false)?;
        self.group_dirty.insert(rec.group.as_str(), ())?;
        Ok(())
    }

    /// Removes an entry with everything derived from it (indexes, counts,
    /// its key's count, history); answers its key id.
    fn forget(&mut self, id: u64) -> Result<Option<String>, ProjectionError> {
        let Some(rec) = self.entry(id)? else {
            return Ok(None);
        };
        self.flush_key_use()?;
        let code = rec.level.code();
        self.entries.remove(id)?;
        self.level_all.remove((code, id))?;
        self.key_all.remove((rec.key_token(), id))?;
        self.count(false, &rec, -1);
        if rec.resolved.is_none() {
            self.level_open.remove((code, id))?;
            self.key_open.remove((rec.key_token(), id))?;
            self.count(true, &rec, -1);
        }
        let mut seqs = Vec::new();
        for row in self.history.range((id, 0)..=(id, u64::MAX))? {
            seqs.push(row?.0.value().1);
        }
        for s in seqs {
            self.history.remove((id, s))?;
        }
        self.held.remove(id)?;
        self.group_remove(id, &rec)?;
        if let Some(key) = &rec.key_id
            && let Some(mut k) = self.key(key)?
        {
            k.entries = k.entries.saturating_sub(1);
            self.put_key(&k)?;
        }
        Ok(rec.key_id)
    }

    /// Retention: every entry held by an event below `upto` is gone from
    /// the stream (the open ones were carried first), and so is every
    /// `Logged` event below it: the projection forgets them likewise, and
    /// its derived values count what is left.
    fn pruned(&mut self, upto: u64) -> Result<(), ProjectionError> {
        // Rules published before the prune act on what it drops first.
        while self.rule_chunk(usize::MAX)? {}
        let mut doomed = Vec::new();
        for row in self.entries.range(..upto)? {
            let id = row?.0.value();
            let hold = self.held.get(id)?.map_or(id, |v| v.value());
            if hold < upto {
                doomed.push(id);
            }
        }
        let mut keys = BTreeSet::new();
        let mut groups = BTreeSet::new();
        for id in doomed {
            if let Some(rec) = self.entry(id)? {
                groups.insert(rec.group);
            }
            if let Some(key) = self.forget(id)? {
                keys.insert(key);
            }
        }
        self.rederive_groups(groups)?;
        for key in keys {
            let mut last = None;
            for row in self
                .key_all
                .range((key.as_str(), 0)..=(key.as_str(), u64::MAX))?
            {
                let id = row?.0.value().1;
                if let Some(rec) = self.entry(id)? {
                    last = Some(last.map_or(rec.received, |l: i64| l.max(rec.received)));
                }
            }
            if let Some(mut k) = self.key(&key)? {
                k.last_used = last;
                self.put_key(&k)?;
            }
        }
        // Hand-added entries' audit lines stand on their `Logged` events.
        let mut lines = Vec::new();
        for row in self.audit.range(..upto)? {
            let (k, v) = row?;
            let item: AuditItem = record::decode("audit", v.value())?;
            if item.action == "logged" {
                lines.push((k.value(), item.by));
            }
        }
        for (seq, by) in lines {
            self.audit.remove(seq)?;
            self.audit_by.remove((by.as_str(), seq))?;
        }
        Ok(())
    }

    /// Writes the key usage gathered so far in this batch.
    fn flush_key_use(&mut self) -> Result<(), ProjectionError> {
        let key_use = std::mem::take(&mut self.key_use);
        for (id, (n, last)) in key_use {
            if let Some(mut rec) = self.key(&id)? {
                rec.entries += n;
                rec.last_used = Some(rec.last_used.map_or(last, |l| l.max(last)));
                self.put_key(&rec)?;
            }
        }
        Ok(())
    }

    fn update_key(
        &mut self,
        id: &str,
        change: impl FnOnce(&mut KeyRecord),
    ) -> Result<(), ProjectionError> {
        if let Some(mut rec) = self.key(id)? {
            change(&mut rec);
            self.put_key(&rec)?;
        }
        Ok(())
    }

    fn put_user(&mut self, rec: &UserRecord) -> Result<(), ProjectionError> {
        self.users
            .insert(rec.user_id.as_str(), record::encode(rec).as_slice())?;
        Ok(())
    }

    /// Changes a user; answers the audit target (`user <name>`).
    fn update_user(
        &mut self,
        id: &str,
        change: impl FnOnce(&mut UserRecord),
    ) -> Result<String, ProjectionError> {
        let found = match self.users.get(id)? {
            Some(v) => Some(record::decode::<UserRecord>("users", v.value())?),
            None => None,
        };
        match found {
            Some(mut rec) => {
                change(&mut rec);
                self.put_user(&rec)?;
                Ok(format!("user {}", rec.name))
            }
            None => Ok(format!("user {id}")),
        }
    }

    /// Writes the counters and key usage gathered during the batch.
    pub(crate) fn finish(mut self, txn: &WriteTransaction) -> Result<(), ProjectionError> {
        self.flush_key_use()?;
        self.flush_groups()?;
        let mut totals = [[0i64; 6]; 2];
        let mut changes = Vec::new();
        for (key, per_key) in &self.counts {
            for open in [false, true] {
                for level in proto::Level::ALL {
                    let delta = per_key[usize::from(open)][usize::from(level.code())];
                    if delta != 0 {
                        totals[usize::from(open)][usize::from(level.code())] += delta;
                        changes.push((key_count_key(open, level, key), delta));
                    }
                }
            }
        }
        for open in [false, true] {
            for level in proto::Level::ALL {
                let delta = totals[usize::from(open)][usize::from(level.code())];
                if delta != 0 {
                    changes.push((count_key(open, level), delta));
                }
            }
        }
        let mut volume = txn.open_table(VOLUME)?;
        let mut hours: HashMap<(bool, u64), [i64; 6]> = HashMap::new();
        for (key, slots) in &self.volume {
            for (open, hour, per_level) in slots {
                let all = hours.entry((*open, *hour)).or_default();
                for (level, delta) in per_level.iter().enumerate() {
                    all[level] += delta;
                    add_volume(
                        &mut volume,
                        (u8::from(*open), key, *hour, level as u8),
                        *delta,
                    )?;
                }
            }
        }
        for ((open, hour), per_level) in hours {
            for (level, delta) in per_level.iter().enumerate() {
                add_volume(&mut volume, (u8::from(open), "", hour, level as u8), *delta)?;
            }
        }
        let mut counts = txn.open_table(COUNTS)?;
        for (name, delta) in changes {
            let now = counts.get(name.as_str())?.map_or(0, |v| v.value());
            // A counter at zero has no row, so a rebuild (which never saw
            // the pruned entries) has the same rows as the live projection.
            match now.saturating_add_signed(delta) {
                0 => counts.remove(name.as_str())?,
                n => counts.insert(name.as_str(), n)?,
            };
        }
        Ok(())
    }
}

/// Adds `delta` to a volume count; a count at zero has no row.
fn add_volume(
    t: &mut Table<'_, (u8, &'static str, u64, u8), u64>,
    key: (u8, &str, u64, u8),
    delta: i64,
) -> Result<(), ProjectionError> {
    if delta == 0 {
        return Ok(());
    }
    let now = t.get(key)?.map_or(0, |v| v.value());
    match now.saturating_add_signed(delta) {
        0 => t.remove(key)?,
        n => t.insert(key, n)?,
    };
    Ok(())
}

/// How a batch's write transaction is committed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Commit {
    /// Flushed to disk (fsync) before `apply` returns.
    Durable,
    /// Visible to readers at once, but on disk only with the next durable
    /// commit (or when the file is closed). A crash loses it, which costs
    /// a replay from the stream and nothing else: the projection is
    /// derived, and `last_applied` is in the same transaction.
    Deferred,
}

impl Projection {
    /// Applies decoded events in one durable transaction; see
    /// [`Projection::apply_as`].
    pub fn apply(&self, events: Vec<(u64, Envelope)>) -> Result<u64, ProjectionError> {
        self.apply_as(events, Commit::Durable)
    }

    /// Applies decoded events in one transaction, skipping any at or below
    /// `last_applied` (a reader may deliver an event again after it was
    /// recreated), and stores the new `last_applied` with them.
    pub fn apply_as(
        &self,
        events: Vec<(u64, Envelope)>,
        commit: Commit,
    ) -> Result<u64, ProjectionError> {
        self.apply_through(events, 0, commit)
    }

    /// Like [`Projection::apply_as`], and counts every sequence up to
    /// `through` as applied: the quarantined events of the batch, which
    /// have no effect wherever they sit in it.
    pub fn apply_through(
        &self,
        events: Vec<(u64, Envelope)>,
        through: u64,
        commit: Commit,
    ) -> Result<u64, ProjectionError> {
        let mut txn = self.db()?.begin_write()?;
        if commit == Commit::Deferred {
            txn.set_durability(redb::Durability::None)?;
        }
        let mut last = {
            let meta = txn.open_table(META)?;
            meta.get(META_LAST_APPLIED)?.map_or(0, |v| v.value())
        };
        {
            let mut tx = Tx::open(&txn)?;
            for (seq, env) in events {
                if seq <= last {
                    continue;
                }
                tx.apply(seq, env)?;
                last = seq;
            }
            last = last.max(through);
            tx.finish(&txn)?;
            let mut meta = txn.open_table(META)?;
            meta.insert(META_LAST_APPLIED, last)?;
        }
        txn.commit()?;
        Ok(last)
    }

    /// Puts every deferred commit on disk (an empty durable transaction).
    pub fn make_durable(&self) -> Result<(), ProjectionError> {
        self.db()?.begin_write()?.commit()?;
        Ok(())
    }
}
