//! Rebuilding a projection from the stream (docs/architecture.md §2, §3): the whole
//! history, or the state as it was at a sequence or a time ("time
//! travel"). The engine reports progress through a callback; the binary
//! draws it (a bar on a terminal, plain lines otherwise).
//!
//! A rebuild never touches the file it replaces until it is complete: it
//! fills `<file>.rebuild` beside it and renames that over the old one, so
//! an interrupted rebuild leaves the old projection as it was.

use crate::runner::{ProjectorHandle, Status};
use crate::tables::{META, META_SCHEMA, SCHEMA_VERSION};
use crate::{Commit, Projection, ProjectionError};
use anyhow::{Context, bail};
use proto::Envelope;
use proto::bus::{Bus, EventReader, RawEvent};
use redb::ReadableDatabase;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How far a rebuild goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Until {
    /// Every event up to and including this stream sequence.
    Seq(u64),
    /// Every event stamped (by its publisher) at or before this time, Unix
    /// ms: the rebuild stops at the first event stamped later.
    Time(i64),
}

impl Until {
    /// A sequence (`1234`) or an RFC 3339 time (`2026-11-24T10:00:00Z`).
    pub fn parse(text: &str) -> Result<Until, String> {
        let text = text.trim();
        if let Ok(seq) = text.parse::<u64>() {
            return Ok(Until::Seq(seq));
        }
        proto::clock::parse_rfc3339(text)
            .map(Until::Time)
            .ok_or_else(|| {
                format!(
                    "{text:?} is neither a stream sequence (a whole number) nor an RFC 3339 time \
                 such as 2026-11-24T10:00:00Z"
                )
            })
    }
}

/// Where a rebuild is.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Progress {
    /// Events applied so far.
    pub done: u64,
    /// Events to apply in all (an upper bound for `--until`; equal to
    /// `done` once finished).
    pub total: u64,
    /// The last sequence applied.
    pub seq: u64,
    pub elapsed: Duration,
    pub finished: bool,
}

impl Progress {
    /// Events per second so far.
    pub fn rate(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 { self.done as f64 / s } else { 0.0 }
    }

    /// Time left at the rate so far.
    pub fn eta(&self) -> Option<Duration> {
        let rate = self.rate();
        (rate > 0.0)
            .then(|| Duration::from_secs_f64(self.total.saturating_sub(self.done) as f64 / rate))
    }
}

/// What a finished rebuild did.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub events: u64,
    /// The projection's `last_applied`.
    pub last_seq: u64,
    pub elapsed: Duration,
}

/// The progress callback.
pub type OnProgress<'a> = &'a mut (dyn FnMut(&Progress) + Send);

/// How long the rebuild waits for the next event the stream says exists.
const IDLE: Duration = Duration::from_secs(30);

/// Events per write transaction in a rebuild: more than the live
/// projector's, since nobody reads the file while it fills (in-process,
/// 1M events: ~170–185k events/s with 4000, ~195k with 10000).
pub const REBUILD_BATCH: usize = 10_000;

/// Fills a new projection at `path` from the stream (replacing any file
/// there). Events published after the rebuild started are left to the
/// projector that opens the file next.
pub async fn build(
    bus: &Bus,
    path: &Path,
    cache_bytes: usize,
    until: Option<Until>,
    on_progress: OnProgress<'_>,
) -> anyhow::Result<(Projection, Summary)> {
    let projection = empty_file(path, cache_bytes)?;
    let started = Instant::now();
    let last = bus.last_seq().await?;
    let end = match until {
        Some(Until::Seq(n)) => n.min(last),
        _ => last,
    };
    let mut progress = Progress::default();
    let quarantined = bus.quarantined().await?;
    let mut reader = bus.read_from(1, None).await?;
    let mut total = reader.pending_at_start;
    let mut done_reading = end == 0 || total == 0;
    let mut first = true;
    // The batch being applied on a blocking thread while the next is read,
    // with its size. Its commit is deferred: the file is made durable at
    // the end, and a rebuild that fails midway is discarded anyway.
    let mut applying: Option<(tokio::task::JoinHandle<Result<u64, ProjectionError>>, u64)> = None;
    while !done_reading {
        let ev = next_event(&mut reader, progress.seq).await?;
        if first {
            first = false;
            if let Some(Until::Seq(_)) = until {
                total = total.min(end.saturating_sub(ev.seq) + 1);
            }
        }
        let mut raw = vec![ev];
        reader.fill(&mut raw, REBUILD_BATCH).await?;
        let sorted = sort(raw, end, until, &quarantined)?;
        done_reading = sorted.done;
        let (batch, through) = (sorted.batch, sorted.through);
        let mut advanced = false;
        if !batch.is_empty() || through > 0 {
            let n = batch.len() as u64;
            if let Some((job, m)) = applying.take() {
                progress.seq = job.await??;
                progress.done += m;
                advanced = true;
            }
            let p = projection.clone();
            let job = tokio::task::spawn_blocking(move || {
                p.apply_through(batch, through, Commit::Deferred)
            });
            applying = Some((job, n));
        }
        progress.total = total.max(progress.done);
        progress.elapsed = started.elapsed();
        if advanced && !done_reading {
            on_progress(&progress);
        }
    }
    if let Some((job, m)) = applying.take() {
        progress.seq = job.await??;
        progress.done += m;
    }
    finish_rules_and_sync(&projection).await?;
    progress.total = progress.done;
    progress.elapsed = started.elapsed();
    progress.finished = true;
    on_progress(&progress);
    let summary = Summary {
        events: progress.done,
        last_seq: projection.last_applied()?,
        elapsed: progress.elapsed,
    };
    Ok((projection, summary))
}

/// The next event the stream said it has, within [`IDLE`].
async fn next_event(reader: &mut EventReader, after: u64) -> anyhow::Result<RawEvent> {
    match tokio::time::timeout(IDLE, reader.next()).await {
        Ok(Some(ev)) => Ok(ev?),
        Ok(None) => bail!("the event log reader ended early"),
        Err(_) => bail!(
            "no event from the stream for {} s after sequence {after}",
            IDLE.as_secs()
        ),
    }
}

/// A new, empty projection at `path` (replacing any file there).
fn empty_file(path: &Path, cache_bytes: usize) -> anyhow::Result<Projection> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
    }
    Projection::open(path, cache_bytes).with_context(|| format!("creating {}", path.display()))
}

/// Resolve-all rules are applied in chunks after their event: finishes
/// them, and puts the whole file on disk.
async fn finish_rules_and_sync(projection: &Projection) -> anyhow::Result<()> {
    let p = projection.clone();
    tokio::task::spawn_blocking(move || {
        while p.apply_rule_chunk(crate::rules::CHUNK)? {}
        p.make_durable()
    })
    .await??;
    Ok(())
}

/// One read from the stream, sorted for the rebuild.
struct Sorted {
    /// The events to apply, decoded.
    batch: Vec<(u64, Envelope)>,
    /// The last quarantined event of the read, passed over (0: none).
    through: u64,
    /// Whether the rebuild has now read everything it will.
    done: bool,
}

/// Decodes `raw` up to `end` or `until`; an undecodable event that is not
/// quarantined stops the rebuild with what to do.
fn sort(
    raw: Vec<RawEvent>,
    end: u64,
    until: Option<Until>,
    quarantined: &BTreeSet<u64>,
) -> anyhow::Result<Sorted> {
    let mut done_reading = false;
    let mut batch = Vec::with_capacity(raw.len());
    // The last quarantined event of this batch, passed over.
    let mut through = 0;
    for ev in raw {
        if ev.seq > end {
            done_reading = true;
            break;
        }
        let env = match Envelope::decode(&ev.payload) {
            Ok(env) => Some(env),
            Err(_) if quarantined.contains(&ev.seq) => None,
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "event {} on {} cannot be decoded (written by a newer minilog, or \
                 damaged); the rebuild stopped there (`minilog events quarantine {}` \
                 passes over it)",
                        ev.seq, ev.subject, ev.seq
                    )
                });
            }
        };
        if let (Some(Until::Time(t)), Some(env)) = (until, &env)
            && env.at > t
        {
            done_reading = true;
            break;
        }
        if ev.seq >= end || ev.pending == 0 {
            done_reading = true;
        }
        match env {
            Some(env) => batch.push((ev.seq, env)),
            None => through = ev.seq,
        }
        if done_reading {
            break;
        }
    }
    Ok(Sorted {
        batch,
        through,
        done: done_reading,
    })
}

/// The file a rebuild fills before it replaces `target`.
pub fn scratch_path(target: &Path) -> PathBuf {
    let mut name = target.file_name().unwrap_or_default().to_os_string();
    name.push(".rebuild");
    target.with_file_name(name)
}

/// Rebuilds `target` from the stream: fills `<target>.rebuild`, then
/// renames it over `target`. The caller makes sure nothing has `target`
/// open (see [`ensure_not_in_use`]).
pub async fn rebuild_file(
    bus: &Bus,
    target: &Path,
    cache_bytes: usize,
    on_progress: OnProgress<'_>,
) -> anyhow::Result<Summary> {
    let scratch = scratch_path(target);
    let (projection, summary) = build(bus, &scratch, cache_bytes, None, on_progress).await?;
    drop(projection);
    std::fs::rename(&scratch, target)
        .with_context(|| format!("replacing {} with {}", target.display(), scratch.display()))?;
    Ok(summary)
}

/// Fails clearly if another process (a running `serve` or `view`) has the
/// projection open: redb holds a lock on the file.
pub fn ensure_not_in_use(path: &Path) -> anyhow::Result<()> {
    if !path.exists() {
        return Ok(());
    }
    match redb::Database::builder().open(path) {
        Err(redb::DatabaseError::DatabaseAlreadyOpen) => bail!(
            "{} is in use: a `minilog serve` or `minilog view` is running on it. Stop it first, \
             then run the rebuild again (or rebuild into another file with --out)",
            path.display()
        ),
        // Another error (a damaged file, another format) is no reason to
        // refuse: the rebuild replaces it.
        _ => Ok(()),
    }
}

/// Whether the projection file passes redb's integrity check (every page
/// against its checksum), so damage from outside (a disk fault, a stray
/// write) is found at start instead of as a failing page later. A missing
/// file is intact; a file another process holds open is an error.
pub fn intact(path: &Path) -> anyhow::Result<bool> {
    if !path.exists() {
        return Ok(true);
    }
    let opened = std::panic::catch_unwind(|| {
        redb::Database::builder()
            .set_check_integrity_on_open(true)
            .open(path)
            .map(drop)
    });
    match opened {
        Ok(Ok(())) => Ok(true),
        Ok(Err(redb::DatabaseError::DatabaseAlreadyOpen)) => {
            bail!("{} is in use by another process", path.display())
        }
        Ok(Err(e)) => {
            tracing::warn!(file = %path.display(), "the projection fails its integrity check: {e}");
            Ok(false)
        }
        Err(_) => Ok(false),
    }
}

/// The schema version recorded in a projection file; `None` when there is
/// no file or it records none.
pub fn schema_version(path: &Path) -> Result<Option<u64>, ProjectionError> {
    if !path.exists() {
        return Ok(None);
    }
    let db = redb::Database::builder().open(path)?;
    let txn = db.begin_read()?;
    let meta = match txn.open_table(META) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    Ok(meta.get(META_SCHEMA)?.map(|v| v.value()))
}

/// Records another schema version in a file (tests and tools: it makes
/// the next start rebuild).
#[doc(hidden)]
pub fn set_schema_version(path: &Path, version: u64) -> Result<(), ProjectionError> {
    let db = redb::Database::builder().open(path)?;
    let txn = db.begin_write()?;
    txn.open_table(META)?.insert(META_SCHEMA, version)?;
    txn.commit()?;
    Ok(())
}

/// Opens the projection at `path` for a projector to run on. A damaged
/// file (see [`intact`]) is moved aside to `<file>.damaged` and a file of
/// another schema version replaced: both are first rebuilt from the stream
/// (beside it, then swapped in), with progress: a rebuild, not a
/// migration. Answers the rebuild's summary when there was one.
pub async fn open_or_rebuild(
    bus: &Bus,
    path: &Path,
    cache_bytes: usize,
    on_progress: OnProgress<'_>,
) -> anyhow::Result<(Projection, Option<Summary>)> {
    if !intact(path)? {
        let damaged = path.with_extension("redb.damaged");
        tracing::error!(
            file = %path.display(),
            kept = %damaged.display(),
            "the projection is damaged; rebuilding it from the stream (the damaged file is kept)"
        );
        std::fs::rename(path, &damaged)
            .with_context(|| format!("moving the damaged {} aside", path.display()))?;
        let summary = rebuild_file(bus, path, cache_bytes, on_progress).await?;
        let projection = Projection::open(path, cache_bytes)
            .with_context(|| format!("opening the projection {}", path.display()))?;
        return Ok((projection, Some(summary)));
    }
    let found = schema_version(path)
        .with_context(|| format!("reading the schema version of {}", path.display()))?;
    let summary = match found {
        Some(v) if v != SCHEMA_VERSION => {
            tracing::warn!(
                found = v,
                want = SCHEMA_VERSION,
                "the projection has another schema version; rebuilding it from the stream"
            );
            Some(rebuild_file(bus, path, cache_bytes, on_progress).await?)
        }
        _ => None,
    };
    let projection = Projection::open(path, cache_bytes)
        .with_context(|| format!("opening the projection {}", path.display()))?;
    Ok((projection, summary))
}

/// A handle for a projection that nothing advances (a rebuild of the
/// past served read-only): its applied sequence stays `seq`.
pub fn frozen_handle(seq: u64) -> ProjectorHandle {
    let (_, applied) = watch::channel(seq);
    let (_, status) = watch::channel(Status::Running);
    ProjectorHandle {
        settled: applied.clone(),
        applied,
        status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_until_as_a_sequence_or_a_time() {
        assert_eq!(Until::parse("1234"), Ok(Until::Seq(1234)));
        assert_eq!(
            Until::parse("2026-11-24T10:00:00Z"),
            Ok(Until::Time(1_795_514_400_000))
        );
        assert!(Until::parse("yesterday").unwrap_err().contains("RFC 3339"));
    }

    #[test]
    fn eta_follows_the_rate() {
        let p = Progress {
            done: 100,
            total: 300,
            seq: 100,
            elapsed: Duration::from_secs(1),
            finished: false,
        };
        assert_eq!(p.rate(), 100.0);
        assert_eq!(p.eta(), Some(Duration::from_secs(2)));
    }
}
