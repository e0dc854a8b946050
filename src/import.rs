//! `minilog import django-minimal-log --db …`: an installation of the
//! original (its keys with their secrets, its entries, their resolves)
//! published as events, so its clients keep working unchanged and its
//! history is on the dashboard. docs/import.md has every decision.
//!
//! Idempotent beyond JetStream's duplicate window: before publishing, the
//! event log is read for what an earlier run left (keys by the SHA-256 of
//! their secret, entries by `meta.imported_id` of this `--name`, resolves
//! by the entry they name), and only the rest is published. Message ids
//! (`import:<name>:entry:<id>`, `…:resolve:<id>`) cover two runs at once.

mod map;
mod source;
mod tls;

pub use map::{Address, address_of, level_of, sqlite_time_ms};

use crate::config::{DmlImportArgs, ImportCommand};
use anyhow::{Context, bail};
use proto::bus::{Bus, PendingAck, PublishError, Stored};
use proto::event::{Actor, Envelope, Event, KeyCreated, KeyRef, Logged, Triage};
use proto::ids::KeyId;
use proto::secret::KeySecret;
use serde::Serialize;
use sha2::{Digest, Sha256};
use source::{EntryRow, KeyRow, Source};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// The meta fields an imported entry carries (docs/import.md).
pub const META_FROM: &str = "imported_from";
pub const META_ID: &str = "imported_id";
/// `"true"` on the entries whose key had been deleted (key NULL).
pub const META_KEY_DELETED: &str = "key_deleted";
/// A `status` the original never writes itself, as it was.
pub const META_STATUS: &str = "imported_status";
/// A `from_ip` that holds no readable address, as it was.
pub const META_ADDRESS: &str = "imported_address";

/// Entries read from the database at a time.
const PAGE: i64 = 500;
/// Publishes whose acknowledgements may be outstanding at once.
const IN_FLIGHT: usize = 256;

pub async fn import(cmd: ImportCommand) -> anyhow::Result<()> {
    match cmd {
        ImportCommand::DjangoMinimalLog(args) => django_minimal_log(args).await,
    }
}

/// What a run did (or, with `--dry-run`, would do).
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub dry_run: bool,
    /// Keys created in minilog.
    pub keys: u64,
    /// Revokes published (the original's inactive keys).
    pub revoked: u64,
    /// Keys minilog had already (same secret).
    pub keys_existing: u64,
    pub entries: u64,
    /// Of `entries`, those whose key had been deleted.
    pub entries_of_deleted_keys: u64,
    pub resolves: u64,
    /// Entries imported by an earlier run.
    pub skipped_entries: u64,
    /// Resolves published by an earlier run (or entries triaged in minilog since).
    pub skipped_resolves: u64,
    /// The stream sequences of this run's first and last event.
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
}

impl Summary {
    fn stored(&mut self, seq: u64) {
        self.first_seq = Some(self.first_seq.map_or(seq, |s| s.min(seq)));
        self.last_seq = Some(self.last_seq.map_or(seq, |s| s.max(seq)));
    }

    fn lines(&self) -> String {
        let head = if self.dry_run {
            "would import (dry run)"
        } else {
            "imported"
        };
        let mut out = format!(
            "{head}: {} keys ({} revoked), {} entries ({} of deleted keys), {} resolves\n\
             skipped as already imported: {} keys, {} entries, {} resolves",
            self.keys,
            self.revoked,
            self.entries,
            self.entries_of_deleted_keys,
            self.resolves,
            self.keys_existing,
            self.skipped_entries,
            self.skipped_resolves
        );
        if let (Some(a), Some(b)) = (self.first_seq, self.last_seq) {
            out.push_str(&format!("\nevents {a}–{b} of the stream"));
        }
        out
    }
}

pub async fn django_minimal_log(args: DmlImportArgs) -> anyhow::Result<()> {
    check_name(&args.name)?;
    let db = Source::open(&args.db).await?;
    if !db.has_users() {
        eprintln!(
            "warning: no {} table (a custom user model?): key creators and resolvers are \
             recorded as `command line`",
            source::USERS
        );
    }
    let totals = db.totals().await?;
    let keys = db.keys().await?;
    // Every secret is checked before anything is published.
    let secrets = keys
        .iter()
        .map(|k| {
            KeySecret::parse(&k.secret).map_err(|e| {
                anyhow::anyhow!(
                    "key #{} ({:?}) has a secret minilog cannot take ({e}); give it a new \
                     one in Django's admin (and its clients), or delete it, then run again",
                    k.id,
                    k.description
                )
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let bus = match crate::connect::connect(&args.nats, "minilog import", None).await {
        Ok(bus) => Some(bus),
        Err(e) if args.dry_run => {
            eprintln!("warning: minilog not reached ({e:#}); the counts are of the database alone");
            None
        }
        Err(e) => return Err(e),
    };
    let existing = match &bus {
        Some(bus) => Existing::scan(bus, &args.name).await?,
        None => Existing::default(),
    };
    let mut run = Run {
        bus,
        name: args.name.clone(),
        existing,
        summary: Summary {
            dry_run: args.dry_run,
            ..Summary::default()
        },
        progress: Progress::new(totals.keys + totals.entries + totals.resolved),
        key_ids: HashMap::new(),
        resolves: Vec::new(),
    };
    for (key, secret) in keys.iter().zip(secrets) {
        run.key(key, &secret).await?;
    }
    let mut after = 0;
    loop {
        let page = db.entries_after(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        run.entries(page).await?;
    }
    run.resolves().await?;
    run.progress.finish();
    if args.json {
        println!("{}", serde_json::to_string(&run.summary)?);
    } else {
        println!("{}", run.summary.lines());
    }
    Ok(())
}

/// `--name` goes into message ids and meta: a short token.
fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !ok {
        bail!("--name is 1 to 64 characters of A-Z, a-z, 0-9, '-', '_' and '.'; not {name:?}");
    }
    Ok(())
}

/// A key of minilog as the event log has it.
#[derive(Debug)]
struct MinilogKey {
    key_id: String,
    verifier: [u8; 32],
    active: bool,
    /// The sequence of its creation and of its last event: equal when
    /// nothing happened to it since (a revoke not yet published).
    created_seq: u64,
    last_seq: u64,
}

/// What the event log holds already.
#[derive(Debug, Default)]
struct Existing {
    keys: Vec<MinilogKey>,
    /// `imported_id` → the entry's id, for this `--name`.
    entries: HashMap<i64, u64>,
    /// Entries with a resolve or unresolve of their own.
    triaged: HashSet<u64>,
}

impl Existing {
    async fn scan(bus: &Bus, name: &str) -> anyhow::Result<Existing> {
        let mut keys: BTreeMap<String, MinilogKey> = BTreeMap::new();
        each_event(bus, bus.subjects().all_keys(), "keys", |seq, payload| {
            let Ok(env) = Envelope::decode(payload) else {
                return;
            };
            if let Event::KeyCreated(k) = &env.event {
                keys.insert(
                    k.key_id.clone(),
                    MinilogKey {
                        key_id: k.key_id.clone(),
                        verifier: k.verifier,
                        active: true,
                        created_seq: seq,
                        last_seq: seq,
                    },
                );
            } else if let Some(k) = proto::state::key_of(&env.event).and_then(|id| keys.get_mut(id))
            {
                k.last_seq = seq;
                match env.event {
                    Event::KeyRevoked(_) => k.active = false,
                    Event::KeyRestored(_) => k.active = true,
                    _ => {}
                }
            }
        })
        .await?;
        let mut entries = HashMap::new();
        let finder = memchr::memmem::Finder::new(META_ID.as_bytes());
        each_event(
            bus,
            bus.subjects().all_entries(),
            "entries",
            |seq, payload| {
                // Most entries are not imported ones: skip decoding them.
                if finder.find(payload).is_none() {
                    return;
                }
                let (id, logged) = match Envelope::decode(payload).map(|e| e.event) {
                    Ok(Event::Logged(l)) => (seq, l),
                    // Retention re-published it under its first id.
                    Ok(Event::Carried(c)) => (c.id, c.logged),
                    _ => return,
                };
                if logged.meta.get(META_FROM).map(String::as_str) != Some(name) {
                    return;
                }
                if let Some(orig) = logged.meta.get(META_ID).and_then(|v| v.parse().ok()) {
                    entries.insert(orig, id);
                }
            },
        )
        .await?;
        let mut triaged = HashSet::new();
        each_event(bus, bus.subjects().triage(), "resolves", |_, payload| {
            if let Ok(Event::Resolved(Triage::Entry(id)) | Event::Unresolved(Triage::Entry(id))) =
                Envelope::decode(payload).map(|e| e.event)
            {
                triaged.insert(id);
            }
        })
        .await?;
        Ok(Existing {
            keys: keys.into_values().collect(),
            entries,
            triaged,
        })
    }
}

/// Every event on `filter` up to the stream's end now, with its sequence.
async fn each_event(
    bus: &Bus,
    filter: String,
    what: &str,
    mut each: impl FnMut(u64, &[u8]),
) -> anyhow::Result<()> {
    let mut reader = bus.read_from(1, Some(filter)).await?;
    let mut pending = reader.pending_at_start;
    while pending > 0 {
        let ev = tokio::time::timeout(Duration::from_secs(30), reader.next())
            .await
            .with_context(|| format!("reading the event log's {what}: no answer in 30 s"))?
            .with_context(|| format!("reading the event log's {what}: the reader ended"))??;
        pending = ev.pending;
        each(ev.seq, &ev.payload);
    }
    Ok(())
}

/// A resolve to publish once its entry's id is known.
struct Resolve {
    orig_id: i64,
    entry: u64,
    at: i64,
    by: Actor,
}

struct Run {
    /// `None` on a dry run that could not reach minilog.
    bus: Option<Bus>,
    name: String,
    existing: Existing,
    summary: Summary,
    progress: Progress,
    /// The original's key id → minilog's.
    key_ids: HashMap<i64, String>,
    resolves: Vec<Resolve>,
}

fn user(name: Option<&str>) -> Actor {
    match name.map(str::trim).filter(|n| !n.is_empty()) {
        Some(n) => Actor::User(n.to_owned()),
        // A user since deleted, or no user table: the import did it.
        None => Actor::Cli,
    }
}

/// The id a key of the original gets: derived from `--name` and its id, so
/// two runs at once pick the same one (the stream lets one create it).
/// `attempt` moves past an id that another key already has.
fn derived_key_id(name: &str, orig_id: i64, attempt: u32) -> KeyId {
    let mut h = Sha256::new();
    h.update(format!("minilog-import:{name}:key:{orig_id}:{attempt}"));
    let id = format!("k{}", &hex::encode(h.finalize())[..6]);
    KeyId::parse(&id).expect("k and hex digits make a key id")
}

impl Run {
    async fn key(&mut self, key: &KeyRow, secret: &KeySecret) -> anyhow::Result<()> {
        self.progress.step();
        let verifier = secret.verifier().0;
        if let Some(k) = self.existing.keys.iter().find(|k| k.verifier == verifier) {
            self.key_ids.insert(key.id, k.key_id.clone());
            self.summary.keys_existing += 1;
            // A run stopped between the creation and the revoke; a key
            // restored in minilog since is left as it is.
            if !key.active && k.active && k.last_seq == k.created_seq {
                let (id, created) = (k.key_id.clone(), k.created_seq);
                self.revoke(&id, created).await?;
            }
            return Ok(());
        }
        let description = match key.description.trim() {
            d if d.chars().count() >= 3 => d.to_owned(),
            _ => format!("django-minimal-log key #{}", key.id),
        };
        let Some(bus) = self.bus.clone().filter(|_| !self.summary.dry_run) else {
            self.key_ids
                .insert(key.id, derived_key_id(&self.name, key.id, 0).to_string());
            self.summary.keys += 1;
            self.summary.revoked += u64::from(!key.active);
            return Ok(());
        };
        for attempt in 0..16 {
            let id = derived_key_id(&self.name, key.id, attempt).to_string();
            let event = Event::KeyCreated(KeyCreated {
                key_id: id.clone(),
                description: description.clone(),
                verifier,
                browser_key: secret.browser_key(),
                ending: secret.ending(),
                origins: Vec::new(),
                rate_limit: None,
                // `minilog key dsn ID` gives one (shown once).
                dsn_verifier: None,
            });
            let env = Envelope {
                at: key.added_ms,
                by: user(key.adder.as_deref()),
                event,
            };
            let subject = bus.subjects().key(&id);
            let created = match bus.publish_new(subject.clone(), &env).await {
                Ok(stored) => stored.seq,
                Err(PublishError::Conflict) => {
                    // Taken: by this very key (another run at once), or by
                    // another key, and then the next id is tried.
                    match first_key_event(&bus, &subject).await? {
                        Some(k) if k.verifier == verifier => {
                            self.key_ids.insert(key.id, id);
                            self.summary.keys_existing += 1;
                            return Ok(());
                        }
                        _ => continue,
                    }
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("creating key #{}", key.id));
                }
            };
            self.summary.keys += 1;
            self.summary.stored(created);
            self.key_ids.insert(key.id, id.clone());
            if !key.active {
                self.revoke(&id, created).await?;
            }
            return Ok(());
        }
        bail!("no free key id for key #{} after 16 tries", key.id)
    }

    /// Revokes a key right after its creation: the original does not say
    /// when or by whom, so it is the import's, now.
    async fn revoke(&mut self, key_id: &str, after: u64) -> anyhow::Result<()> {
        let Some(bus) = self.bus.clone().filter(|_| !self.summary.dry_run) else {
            self.summary.revoked += 1;
            return Ok(());
        };
        let env = Envelope::now(
            Actor::Cli,
            Event::KeyRevoked(KeyRef {
                key_id: key_id.to_owned(),
            }),
        );
        match bus
            .publish_after(bus.subjects().key(key_id), &env, after)
            .await
        {
            Ok(stored) => {
                self.summary.revoked += 1;
                self.summary.stored(stored.seq);
            }
            // Changed meanwhile by someone else, whose word stands.
            Err(PublishError::Conflict) => {
                eprintln!("warning: key {key_id} changed meanwhile; not revoking it")
            }
            Err(e) => return Err(e).with_context(|| format!("revoking key {key_id}")),
        }
        Ok(())
    }

    async fn entries(&mut self, page: Vec<EntryRow>) -> anyhow::Result<()> {
        let mut in_flight: VecDeque<(EntryRow, PendingAck)> = VecDeque::new();
        for row in page {
            self.progress.step();
            if let Some(&id) = self.existing.entries.get(&row.id) {
                self.summary.skipped_entries += 1;
                self.queue_resolve(&row, id);
                continue;
            }
            let logged = self.logged(&row);
            let deleted = logged.key_id.is_none();
            let Some(bus) = self.bus.clone().filter(|_| !self.summary.dry_run) else {
                self.summary.entries += 1;
                self.summary.entries_of_deleted_keys += u64::from(deleted);
                self.summary.resolves += u64::from(row.resolved_ms.is_some());
                self.progress.step_if(row.resolved_ms.is_some());
                continue;
            };
            let subject = bus.subjects().entry(logged.key_id.as_deref());
            let env = Envelope {
                at: row.added_ms,
                by: logged.key_id.clone().map_or(Actor::Cli, Actor::Key),
                event: Event::Logged(logged),
            };
            let msg_id = format!("import:{}:entry:{}", self.name, row.id);
            let ack = bus
                .publish_start(subject, &env, &msg_id)
                .await
                .with_context(|| format!("publishing entry #{}", row.id))?;
            in_flight.push_back((row, ack));
            if in_flight.len() >= IN_FLIGHT
                && let Some((row, ack)) = in_flight.pop_front()
            {
                self.entry_stored(row, ack.stored().await)?;
            }
        }
        while let Some((row, ack)) = in_flight.pop_front() {
            self.entry_stored(row, ack.stored().await)?;
        }
        Ok(())
    }

    fn entry_stored(
        &mut self,
        row: EntryRow,
        stored: Result<Stored, PublishError>,
    ) -> anyhow::Result<()> {
        let stored = stored.with_context(|| {
            format!(
                "publishing entry #{} (run the import again: it goes on where it stopped)",
                row.id
            )
        })?;
        if stored.duplicate {
            // Another run at once published it.
            self.summary.skipped_entries += 1;
        } else {
            self.summary.entries += 1;
            self.summary.stored(stored.seq);
            if self.minilog_key(&row).is_none() {
                self.summary.entries_of_deleted_keys += 1;
            }
        }
        self.queue_resolve(&row, stored.seq);
        Ok(())
    }

    fn queue_resolve(&mut self, row: &EntryRow, entry: u64) {
        if let Some(at) = row.resolved_ms {
            self.resolves.push(Resolve {
                orig_id: row.id,
                entry,
                at,
                by: user(row.solver.as_deref()),
            });
        }
    }

    /// The minilog key of an entry; `None` when the original deleted it.
    fn minilog_key(&self, row: &EntryRow) -> Option<String> {
        row.key_id.and_then(|k| self.key_ids.get(&k)).cloned()
    }

    /// The entry as minilog stores it (docs/import.md).
    fn logged(&self, row: &EntryRow) -> Logged {
        let key_id = self.minilog_key(row);
        let mut meta = BTreeMap::from([
            (META_FROM.to_owned(), self.name.clone()),
            (META_ID.to_owned(), row.id.to_string()),
        ]);
        if key_id.is_none() {
            meta.insert(META_KEY_DELETED.into(), "true".into());
        }
        let (level, known) = level_of(&row.status);
        if !known {
            meta.insert(META_STATUS.into(), clip(&row.status));
        }
        let ip = match address_of(row.from_ip.as_deref()) {
            Address::Known(ip) => Some(ip.to_string()),
            Address::Absent => None,
            Address::Unreadable => {
                meta.insert(
                    META_ADDRESS.into(),
                    clip(row.from_ip.as_deref().unwrap_or("")),
                );
                None
            }
        };
        let message = match proto::input::message(&row.text, &proto::input::Limits::default()) {
            Ok((m, _)) => m,
            // Shorter than minilog takes from clients: kept as it was.
            Err(_) => row.text.clone(),
        };
        Logged {
            key_id,
            time: Some(row.added_ms),
            ip,
            meta,
            ..Logged::new(level, message)
        }
    }

    async fn resolves(&mut self) -> anyhow::Result<()> {
        let resolves = std::mem::take(&mut self.resolves);
        let mut in_flight: VecDeque<(i64, PendingAck)> = VecDeque::new();
        for r in resolves {
            self.progress.step();
            if self.existing.triaged.contains(&r.entry) {
                self.summary.skipped_resolves += 1;
                continue;
            }
            let Some(bus) = self.bus.clone().filter(|_| !self.summary.dry_run) else {
                self.summary.resolves += 1;
                continue;
            };
            let env = Envelope {
                at: r.at,
                by: r.by,
                event: Event::Resolved(Triage::Entry(r.entry)),
            };
            let msg_id = format!("import:{}:resolve:{}", self.name, r.orig_id);
            let ack = bus
                .publish_start(bus.subjects().triage(), &env, &msg_id)
                .await
                .with_context(|| format!("publishing the resolve of entry #{}", r.orig_id))?;
            in_flight.push_back((r.orig_id, ack));
            if in_flight.len() >= IN_FLIGHT
                && let Some((id, ack)) = in_flight.pop_front()
            {
                self.resolve_stored(id, ack.stored().await)?;
            }
        }
        while let Some((id, ack)) = in_flight.pop_front() {
            self.resolve_stored(id, ack.stored().await)?;
        }
        Ok(())
    }

    fn resolve_stored(
        &mut self,
        orig_id: i64,
        stored: Result<Stored, PublishError>,
    ) -> anyhow::Result<()> {
        let stored = stored.with_context(|| {
            format!(
                "publishing the resolve of entry #{orig_id} (run the import again: it goes on \
                 where it stopped)"
            )
        })?;
        if stored.duplicate {
            self.summary.skipped_resolves += 1;
        } else {
            self.summary.resolves += 1;
            self.summary.stored(stored.seq);
        }
        Ok(())
    }
}

/// Meta values are at most 1024 characters.
fn clip(text: &str) -> String {
    text.chars()
        .take(proto::input::MAX_META_VALUE_CHARS)
        .collect()
}

/// The first event on a key's subject, if it is its creation.
async fn first_key_event(bus: &Bus, subject: &str) -> anyhow::Result<Option<KeyCreated>> {
    let mut found = None;
    let mut first = true;
    each_event(bus, subject.to_owned(), "key", |_, payload| {
        if std::mem::take(&mut first)
            && let Ok(Event::KeyCreated(k)) = Envelope::decode(payload).map(|e| e.event)
        {
            found = Some(k);
        }
    })
    .await?;
    Ok(found)
}

/// Rows handled so far, on stderr: a bar redrawn in place on a terminal,
/// else a plain line at most every second, and a last one.
struct Progress {
    done: u64,
    total: u64,
    started: Instant,
    last: Option<Instant>,
    tty: bool,
}

impl Progress {
    fn new(total: u64) -> Progress {
        Progress {
            done: 0,
            total,
            started: Instant::now(),
            last: None,
            tty: std::io::stderr().is_terminal(),
        }
    }

    fn step_if(&mut self, yes: bool) {
        if yes {
            self.step();
        }
    }

    fn step(&mut self) {
        self.done += 1;
        let every = if self.tty {
            Duration::from_millis(100)
        } else {
            Duration::from_secs(1)
        };
        let now = Instant::now();
        if self.last.is_some_and(|t| now - t < every) {
            return;
        }
        self.last = Some(now);
        self.draw(false);
    }

    fn finish(&mut self) {
        self.done = self.done.max(self.total);
        self.draw(true);
    }

    fn draw(&self, last: bool) {
        let pct = (self.done.min(self.total) * 100)
            .checked_div(self.total)
            .unwrap_or(100);
        let secs = self.started.elapsed().as_secs_f64();
        let text = format!(
            "{}/{} keys, entries and resolves ({pct}%), {:.1} s",
            self.done, self.total, secs
        );
        if self.tty {
            let bar = crate::rebuild::bar(self.done, self.total);
            eprint!("\r\x1b[2Kimport: {bar} {text}");
            if last {
                eprintln!();
            }
        } else {
            eprintln!("import: {text}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_key_ids_are_stable_and_differ_per_key_and_attempt() {
        let a = derived_key_id("django-minimal-log", 1, 0);
        assert_eq!(a, derived_key_id("django-minimal-log", 1, 0));
        assert_ne!(a, derived_key_id("django-minimal-log", 2, 0));
        assert_ne!(a, derived_key_id("django-minimal-log", 1, 1));
        assert_ne!(a, derived_key_id("other", 1, 0));
        assert_eq!(a.as_str().len(), 7);
    }

    #[test]
    fn names_are_short_tokens() {
        assert!(check_name("django-minimal-log").is_ok());
        assert!(check_name("shop.example_2").is_ok());
        for bad in ["", "a b", "a:b", "ü", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
