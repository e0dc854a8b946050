//! The runner's own JetStream and redb work: filling the stream with
//! `Logged` events (many acks in flight), the raw ordered read, the
//! projector in-process, and a raw redb write of the rows it writes.

use anyhow::Context;
use projector::record::{self, EntryRecord};
use projector::{Outcome, Projection, Projector};
use proto::bus::Bus;
use proto::event::{Actor, Envelope, Event, Logged};
use proto::{Level, subjects::Subjects};
use redb::ReadableTable;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;
use std::time::{Duration, Instant};

/// Keys the generated entries are spread over.
pub const KEYS: u64 = 50;

/// The key id of generated entry `i` (`k000000` … `k000049`).
pub fn key_of(i: u64) -> String {
    format!("k{:06}", i % KEYS)
}

/// Levels skewed like real logs: 0.1% critical, 5% error, 25% warn, the rest info.
pub fn level_of(i: u64) -> Level {
    match i % 1000 {
        0 => Level::Critical,
        1..=50 => Level::Error,
        51..=300 => Level::Warn,
        _ => Level::Info,
    }
}

/// The message of generated entry `i`; "worker 3" matches one in seven.
/// Groups the fill makes: each entry's word, with its key, is its group
/// (the numbers fold away), so at 1M entries 100,000 groups of 10.
pub const GROUPS: u64 = 100_000;

pub fn message_of(i: u64) -> String {
    format!(
        "request {i} took too long on worker {} for {}",
        i % 7,
        word(i % GROUPS)
    )
}

/// Four letters, a different word for each `n` below 26⁴ (letters, so no
/// normalisation folds them).
fn word(n: u64) -> String {
    (0..4)
        .map(|d| char::from(b'a' + ((n / 26u64.pow(d)) % 26) as u8))
        .collect()
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Generated `Logged` event number `i`, as a gateway would publish it.
pub fn event(i: u64, at: i64) -> (String, Envelope) {
    let key = key_of(i);
    let env = Envelope {
        at,
        by: Actor::Key(key.clone()),
        event: Event::Logged(Logged {
            key_id: Some(key.clone()),
            level: level_of(i),
            message: message_of(i),
            source: Some("web".into()),
            time: None,
            ip: Some("10.0.0.1".into()),
            meta: BTreeMap::new(),
            fingerprint: None,
            added_by: None,
            untrusted: false,
            exception: None,
        }),
    };
    (key, env)
}

/// Publishes generated events `first..first + n` with up to `window`
/// acknowledgements in flight; answers the time taken and the last sequence.
pub async fn publish_many(
    bus: &Bus,
    first: u64,
    n: u64,
    window: usize,
    tag: &str,
) -> anyhow::Result<(Duration, u64)> {
    let subjects: Subjects = bus.subjects().clone();
    let mut pending = VecDeque::with_capacity(window);
    let mut last = 0;
    let at = now_ms();
    let started = Instant::now();
    for i in first..first + n {
        let (key, env) = event(i, at + (i as i64 / 1000));
        let ack = bus
            .publish_start(subjects.entry(Some(&key)), &env, &format!("{tag}:{i}"))
            .await
            .with_context(|| format!("publishing event {i}"))?;
        pending.push_back(ack);
        if pending.len() >= window
            && let Some(p) = pending.pop_front()
        {
            last = p.stored().await?.seq;
        }
    }
    while let Some(p) = pending.pop_front() {
        last = p.stored().await?.seq;
    }
    Ok((started.elapsed(), last))
}

/// Reads the stream from sequence 1 to `last` with an ordered consumer
/// (no decoding): answers the time and the number of events read.
pub async fn raw_read(bus: &Bus, last: u64) -> anyhow::Result<(Duration, u64)> {
    let started = Instant::now();
    let mut reader = bus.read_from(1, None).await?;
    let mut count = 0;
    while let Some(ev) = reader.next().await {
        let ev = ev?;
        count += 1;
        if ev.seq >= last {
            break;
        }
    }
    Ok((started.elapsed(), count))
}

/// What the in-process projector did.
pub struct Projected {
    pub elapsed: Duration,
    pub projection: Projection,
    /// Write transactions (batches) it took.
    pub batches: u64,
}

/// Runs the projector in-process on an empty redb until it has applied
/// `last`, driving [`Projector::step`] (what `run` loops over) so the
/// batch sizes can be counted; the projection stays open for queries.
pub async fn project(
    bus: &Bus,
    path: &Path,
    cache_bytes: usize,
    last: u64,
    within: Duration,
) -> anyhow::Result<Projected> {
    let projection = Projection::open(path, cache_bytes)?;
    let started = Instant::now();
    let mut projector = Projector::start(bus.clone(), projection.clone()).await?;
    let applied = projector.handle().applied;
    let mut batches = 0;
    tokio::time::timeout(within, async {
        while *applied.borrow() < last {
            match projector.step().await? {
                Outcome::Applied(0) => {}
                Outcome::Applied(_) => batches += 1,
                Outcome::Stopped => anyhow::bail!("the projector stopped before sequence {last}"),
            }
        }
        Ok(())
    })
    .await
    .map_err(|_| anyhow::anyhow!("the projector did not apply {last} within {within:?}"))??;
    Ok(Projected {
        elapsed: started.elapsed(),
        projection,
        batches,
    })
}

/// Writes the rows the projector writes for generated events `1..=n`
/// (entry, four index rows, counters summed per batch, `last_applied`)
/// straight into a fresh redb, batches of `batch` events per transaction,
/// committed like the projector commits them: without fsync unless the
/// last durable commit is a second old, and durably at the end.
/// Answers the time and the rows written.
pub fn raw_redb_write(
    path: &Path,
    cache_bytes: usize,
    n: u64,
    batch: u64,
) -> anyhow::Result<(Duration, u64)> {
    use projector::tables::*;
    let db = redb::Database::builder()
        .set_cache_size(cache_bytes)
        .create(path)?;
    let at = now_ms();
    let mut rows = 0u64;
    let started = Instant::now();
    let mut first = 1;
    let mut last_durable = Instant::now();
    while first <= n {
        let end = (first + batch).min(n + 1);
        let mut txn = db.begin_write()?;
        if last_durable.elapsed() < projector::runner::DURABLE_EVERY {
            txn.set_durability(redb::Durability::None)?;
        } else {
            last_durable = Instant::now();
        }
        {
            let mut entries = txn.open_table(ENTRIES)?;
            let mut level_all = txn.open_table(LEVEL_ALL)?;
            let mut key_all = txn.open_table(KEY_ALL)?;
            let mut level_open = txn.open_table(LEVEL_OPEN)?;
            let mut key_open = txn.open_table(KEY_OPEN)?;
            let mut counts_t = txn.open_table(COUNTS)?;
            let mut meta = txn.open_table(META)?;
            let mut counts: HashMap<String, u64> = HashMap::new();
            for seq in first..end {
                let rec = EntryRecord {
                    level: level_of(seq),
                    message: message_of(seq),
                    source: Some("web".into()),
                    key_id: Some(key_of(seq)),
                    time: None,
                    received: at,
                    ip: Some("10.0.0.1".into()),
                    meta: BTreeMap::new(),
                    fingerprint: None,
                    added_by: None,
                    untrusted: false,
                    resolved: None,
                    group: format!("{:016x}", seq % 1000),
                    exception: None,
                };
                let code = rec.level.code();
                let key = rec.key_token();
                entries.insert(seq, record::encode(&rec).as_slice())?;
                level_all.insert((code, seq), ())?;
                key_all.insert((key, seq), ())?;
                level_open.insert((code, seq), ())?;
                key_open.insert((key, seq), ())?;
                rows += 5;
                for open in [true, false] {
                    *counts.entry(count_key(open, rec.level)).or_default() += 1;
                    *counts
                        .entry(key_count_key(open, rec.level, key))
                        .or_default() += 1;
                }
            }
            for (k, v) in counts {
                let old = counts_t.get(k.as_str())?.map_or(0, |g| g.value());
                counts_t.insert(k.as_str(), old + v)?;
                rows += 1;
            }
            meta.insert(META_LAST_APPLIED, end - 1)?;
            rows += 1;
        }
        txn.commit()?;
        first = end;
    }
    db.begin_write()?.commit()?;
    Ok((started.elapsed(), rows))
}

/// Scans the entries table of a redb file newest first, looking for
/// `needle` (ASCII, any case) in the raw bytes of each row, as a text
/// search that matches nothing must: the second of two scans (the first
/// warms the caches). Answers its time and the rows read.
pub fn raw_scan(path: &Path, cache_bytes: usize, needle: &str) -> anyhow::Result<(Duration, u64)> {
    use redb::ReadableDatabase;
    let db = redb::Database::builder()
        .set_cache_size(cache_bytes)
        .open(path)?;
    let needle = needle.to_ascii_lowercase().into_bytes();
    let mut result = (Duration::ZERO, 0);
    for _ in 0..2 {
        let started = Instant::now();
        let txn = db.begin_read()?;
        let table = txn.open_table(projector::tables::ENTRIES)?;
        let (mut rows, mut found) = (0u64, 0u64);
        for row in table.iter()?.rev() {
            let (_, v) = row?;
            rows += 1;
            if v.value()
                .windows(needle.len())
                .any(|w| w.eq_ignore_ascii_case(&needle))
            {
                found += 1;
            }
        }
        anyhow::ensure!(found == 0, "the raw scan found {found} rows");
        result = (started.elapsed(), rows);
    }
    Ok(result)
}
