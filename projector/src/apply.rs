//! Applying events to the projection. One batch is one write transaction
//! that also stores `last_applied`, so a crash between batches replays
//! nothing twice and skips nothing. Applying never reads the clock: every
//! derived value comes from event fields, so a replay computes the same.

use crate::record::{
    self, AuditItem, EntryRecord, HistoryItem, HistoryKind, KeyRecord, Resolution, UserRecord,
};
use crate::tables::*;
use crate::{Projection, ProjectionError};
use proto::event::{Envelope, Event, Logged, Triage};
use redb::{ReadableTable, Table, WriteTransaction};
use std::collections::HashMap;

/// The tables a batch writes, opened once per transaction.
struct Tx<'t> {
    entries: Table<'t, u64, &'static [u8]>,
    level_all: Table<'t, (u8, u64), ()>,
    key_all: Table<'t, (&'static str, u64), ()>,
    level_open: Table<'t, (u8, u64), ()>,
    key_open: Table<'t, (&'static str, u64), ()>,
    history: Table<'t, (u64, u64), &'static [u8]>,
    keys: Table<'t, &'static str, &'static [u8]>,
    users: Table<'t, &'static str, &'static [u8]>,
    audit: Table<'t, u64, &'static [u8]>,
    audit_by: Table<'t, (&'static str, u64), ()>,
    /// Counter changes, written once at the end of the batch.
    counts: HashMap<String, i64>,
    /// Per key: entries added and the last time used, written at the end.
    key_use: HashMap<String, (u64, i64)>,
}

impl<'t> Tx<'t> {
    fn open(txn: &'t WriteTransaction) -> Result<Tx<'t>, redb::Error> {
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
            counts: HashMap::new(),
            key_use: HashMap::new(),
        })
    }

    fn count(&mut self, open: bool, level: proto::Level, delta: i64) {
        *self.counts.entry(count_key(open, level)).or_default() += delta;
    }

    fn entry(&self, id: u64) -> Result<Option<EntryRecord>, ProjectionError> {
        match self.entries.get(id)? {
            Some(v) => Ok(Some(record::decode("entries", v.value())?)),
            None => Ok(None),
        }
    }

    fn logged(&mut self, seq: u64, at: i64, l: Logged) -> Result<(), ProjectionError> {
        let rec = EntryRecord {
            level: l.level,
            message: l.message,
            source: l.source,
            key_id: l.key_id,
            time: l.time,
            received: at,
            ip: l.ip,
            meta: l.meta,
            fingerprint: l.fingerprint,
            added_by: l.added_by,
            untrusted: l.untrusted,
            resolved: None,
        };
        let code = rec.level.code();
        self.entries.insert(seq, record::encode(&rec).as_slice())?;
        self.level_all.insert((code, seq), ())?;
        self.key_all.insert((rec.key_token(), seq), ())?;
        self.level_open.insert((code, seq), ())?;
        self.key_open.insert((rec.key_token(), seq), ())?;
        self.count(true, rec.level, 1);
        self.count(false, rec.level, 1);
        if let Some(key) = &rec.key_id {
            let u = self.key_use.entry(key.clone()).or_insert((0, at));
            u.0 += 1;
            u.1 = u.1.max(at);
        }
        Ok(())
    }

    /// Resolves or reopens one entry, recording who and when in its
    /// history; a no-op when it is already in that state or unknown.
    fn set_resolved(
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
            self.count(true, rec.level, -1);
            rec.resolved = Some(Resolution {
                by: by.to_owned(),
                at,
            });
        } else {
            self.level_open.insert((code, id), ())?;
            self.key_open.insert((rec.key_token(), id), ())?;
            self.count(true, rec.level, 1);
            rec.resolved = None;
        }
        let item = HistoryItem {
            kind: if resolve {
                HistoryKind::Resolved
            } else {
                HistoryKind::Unresolved
            },
            by: by.to_owned(),
            at,
        };
        self.entries.insert(id, record::encode(&rec).as_slice())?;
        self.history
            .insert((id, seq), record::encode(&item).as_slice())?;
        Ok(true)
    }

    /// Applies a resolve or unresolve; answers how many entries changed.
    fn triage(
        &mut self,
        seq: u64,
        env: &Envelope,
        target: &Triage,
        resolve: bool,
    ) -> Result<usize, ProjectionError> {
        let by = env.by.label();
        let ids = match target {
            Triage::Entry(id) => vec![*id],
            Triage::Matching(rule) => {
                // Every entry up to `upto` that matches and is in the other
                // state. A full scan for now; chunked application is the
                // dashboard issue's work.
                let mut ids = Vec::new();
                for row in self.entries.range(..=rule.upto)? {
                    let (k, v) = row?;
                    let rec: EntryRecord = record::decode("entries", v.value())?;
                    if rec.resolved.is_some() != resolve
                        && rule.filter.matches(
                            rec.level,
                            rec.key_id.as_deref(),
                            &rec.message,
                            rec.source.as_deref(),
                        )
                    {
                        ids.push(k.value());
                    }
                }
                ids
            }
        };
        let mut changed = 0;
        for id in ids {
            changed += usize::from(self.set_resolved(seq, id, resolve, &by, env.at)?);
        }
        Ok(changed)
    }

    fn key(&mut self, id: &str) -> Result<Option<KeyRecord>, ProjectionError> {
        match self.keys.get(id)? {
            Some(v) => Ok(Some(record::decode("keys", v.value())?)),
            None => Ok(None),
        }
    }

    fn put_key(&mut self, rec: &KeyRecord) -> Result<(), ProjectionError> {
        self.keys
            .insert(rec.key_id.as_str(), record::encode(rec).as_slice())?;
        Ok(())
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
                let changed = self.triage(seq, &env, t, resolve)?;
                Some(match t {
                    Triage::Entry(id) => format!("#{id}"),
                    Triage::Matching(rule) => format!(
                        "{changed} entries matching {} up to #{}",
                        describe(&rule.filter),
                        rule.upto
                    ),
                })
            }
            Event::KeyCreated(k) => {
                let target = format!("key {} ({})", k.key_id, k.description);
                let rec = KeyRecord {
                    key_id: k.key_id,
                    description: k.description,
                    ending: k.ending,
                    active: true,
                    created_by: by.clone(),
                    created_at: env.at,
                    origins: k.origins,
                    rate_limit: k.rate_limit,
                    entries: 0,
                    last_used: None,
                };
                self.put_key(&rec)?;
                Some(target)
            }
            Event::KeyRevoked(r) => {
                self.update_key(&r.key_id, |k| k.active = false)?;
                Some(format!("key {}", r.key_id))
            }
            Event::KeyRestored(r) => {
                self.update_key(&r.key_id, |k| k.active = true)?;
                Some(format!("key {}", r.key_id))
            }
            Event::KeyChanged(c) => {
                let target = format!("key {}", c.key_id);
                self.update_key(&c.key_id, |k| {
                    if let Some(d) = c.description {
                        k.description = d;
                    }
                    if let Some(o) = c.origins {
                        k.origins = o;
                    }
                    if let Some(r) = c.rate_limit {
                        k.rate_limit = r;
                    }
                })?;
                Some(target)
            }
            Event::UserCreated(u) => {
                let target = format!("user {} ({:?})", u.name, u.role).to_lowercase();
                let rec = UserRecord {
                    user_id: u.user_id,
                    name: u.name,
                    password_hash: u.password_hash,
                    role: u.role,
                    created_at: env.at,
                    disabled: false,
                    epoch: 0,
                };
                self.put_user(&rec)?;
                Some(target)
            }
            Event::PasswordChanged(p) => Some(self.update_user(&p.user_id, |u| {
                u.password_hash = p.password_hash;
                u.epoch += 1;
            })?),
            Event::UserDisabled(r) => Some(self.update_user(&r.user_id, |u| {
                u.disabled = true;
                u.epoch += 1;
            })?),
            Event::UserEnabled(r) => Some(self.update_user(&r.user_id, |u| u.disabled = false)?),
            Event::RoleChanged(r) => Some(self.update_user(&r.user_id, |u| {
                u.role = r.role;
                u.epoch += 1;
            })?),
            // Retention is applied by its own issue's code; until then
            // nothing publishes these.
            Event::Carried(_) | Event::Pruned(_) => None,
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
    fn finish(mut self, txn: &WriteTransaction) -> Result<(), ProjectionError> {
        let key_use = std::mem::take(&mut self.key_use);
        for (id, (n, last)) in key_use {
            if let Some(mut rec) = self.key(&id)? {
                rec.entries += n;
                rec.last_used = Some(rec.last_used.map_or(last, |l| l.max(last)));
                self.put_key(&rec)?;
            }
        }
        let mut counts = txn.open_table(COUNTS)?;
        for (name, delta) in &self.counts {
            let now = counts.get(name.as_str())?.map_or(0, |v| v.value());
            counts.insert(name.as_str(), now.saturating_add_signed(*delta))?;
        }
        Ok(())
    }
}

impl Projection {
    /// Applies decoded events in one transaction, skipping any at or below
    /// `last_applied` (a reader may deliver an event again after it was
    /// recreated), and stores the new `last_applied` with them.
    pub fn apply(&self, events: Vec<(u64, Envelope)>) -> Result<u64, ProjectionError> {
        let txn = self.db.begin_write()?;
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
            tx.finish(&txn)?;
            let mut meta = txn.open_table(META)?;
            meta.insert(META_LAST_APPLIED, last)?;
        }
        txn.commit()?;
        Ok(last)
    }
}

/// A filter in words, for the audit page.
fn describe(f: &proto::filter::Filter) -> String {
    let mut parts = Vec::new();
    if !f.levels.is_empty() {
        let l: Vec<&str> = f.levels.iter().map(|l| l.as_str()).collect();
        parts.push(format!("level {}", l.join(",")));
    }
    if !f.keys.is_empty() {
        parts.push(format!("key {}", f.keys.join(",")));
    }
    if let Some(q) = f.q.as_deref().filter(|q| !q.is_empty()) {
        parts.push(format!("text {q:?}"));
    }
    if parts.is_empty() {
        "anything".into()
    } else {
        parts.join(", ")
    }
}
