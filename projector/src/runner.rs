//! The projector task: reads `MINILOG` with an ordered consumer from
//! `last_applied + 1` and applies what is there in batches.
//!
//! [`Projector::step`] is public so tests can drive it one batch at a
//! time; [`Projector::run`] loops over it until shutdown. An event that
//! cannot be decoded stops the projector at that sequence; it is reported,
//! never skipped.
//!
//! While a batch is decoded and applied on a blocking thread, the next
//! one is read from the stream, so reading and writing overlap. Batches of
//! `Logged` events only are committed without fsync ([`Commit::Deferred`])
//! unless the last durable commit is [`DURABLE_EVERY`] old; any other event
//! (a user's action, a key, retention) commits durably, and so does an idle
//! projector after [`DURABLE_EVERY`] and a stopping one. A crash loses at
//! most that much work, which the projector replays from the stream.

use crate::{Commit, Projection, ProjectionError};
use proto::Envelope;
use proto::bus::{Bus, EventReader, RawEvent};
use proto::event::Event;
use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Events applied per write transaction, at most. Bigger batches apply
/// faster (in-process, 1M events: about 160k events/s with 1000, 185k with
/// 4000) but cost memory while catching up (peak RSS catching up on 220k
/// events: 35 MiB with 1000, 37 with 2000, 40 with 4000; the read-ahead
/// holds up to another batch).
pub const BATCH_MAX: usize = 2000;

/// How old the last durable commit may get while events keep coming or
/// the projector idles.
pub const DURABLE_EVERY: Duration = Duration::from_secs(1);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    Running,
    /// The last step failed (NATS away, the projection's disk full) and is
    /// being retried; the events applied so far stay readable.
    Failing {
        reason: String,
    },
    /// Stopped at an event it cannot apply; the events before it are applied.
    Stopped {
        seq: u64,
        reason: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Applied(usize),
    Stopped,
}

/// What other parts watch: the applied sequence and the state.
#[derive(Clone)]
pub struct ProjectorHandle {
    /// The last stream sequence applied.
    pub applied: watch::Receiver<u64>,
    /// The highest sequence whose effects are complete: below `applied`
    /// while a resolve-all rule is still being applied in chunks.
    pub settled: watch::Receiver<u64>,
    pub status: watch::Receiver<Status>,
}

impl ProjectorHandle {
    /// Waits until the projection has applied at least `seq`, with all its
    /// effects (rules included). Returns false if the projector stopped (or
    /// ended) before getting there.
    pub async fn wait_for(&self, seq: u64) -> bool {
        let mut applied = self.settled.clone();
        let mut status = self.status.clone();
        loop {
            if *applied.borrow_and_update() >= seq {
                return true;
            }
            if matches!(*status.borrow_and_update(), Status::Stopped { .. }) {
                return false;
            }
            tokio::select! {
                r = applied.changed() => if r.is_err() { return *applied.borrow() >= seq },
                r = status.changed() => if r.is_err() { return false },
            }
        }
    }
}

pub struct Projector {
    projection: Projection,
    bus: Bus,
    /// `None` after a reconnect until a new reader is made.
    reader: Option<EventReader>,
    connections: watch::Receiver<u64>,
    applied: watch::Sender<u64>,
    settled: watch::Sender<u64>,
    status: watch::Sender<Status>,
    /// Entries a resolve-all rule examines per transaction.
    rule_chunk: usize,
    /// Events read while the previous batch was being applied.
    ahead: Vec<RawEvent>,
    /// When the last durable commit was made.
    last_durable: Instant,
    /// Whether a deferred commit is not on disk yet.
    deferred: bool,
    /// Sequences quarantined by an operator: an undecodable event at one
    /// of them is passed over instead of stopping the projector.
    quarantined: Arc<BTreeSet<u64>>,
}

/// What a batch's blocking job answers: the last sequence applied (if
/// any), the event it could not decode, and whether it committed durably.
struct Applied {
    /// Events decoded and handed to the projection.
    count: usize,
    last: Option<u64>,
    failure: Option<(u64, String)>,
    durable: bool,
}

impl Projector {
    pub async fn start(bus: Bus, projection: Projection) -> anyhow::Result<Projector> {
        let last = projection.last_applied()?;
        let settled = projection.settled()?;
        let connections = bus.connections();
        let reader = bus.read_from(last + 1, None).await?;
        let quarantined = Arc::new(bus.quarantined().await?);
        Ok(Projector {
            quarantined,
            projection,
            bus,
            reader: Some(reader),
            connections,
            applied: watch::Sender::new(last),
            settled: watch::Sender::new(settled),
            status: watch::Sender::new(Status::Running),
            rule_chunk: crate::rules::CHUNK,
            ahead: Vec::new(),
            last_durable: Instant::now(),
            deferred: false,
        })
    }

    pub fn handle(&self) -> ProjectorHandle {
        ProjectorHandle {
            applied: self.applied.subscribe(),
            settled: self.settled.subscribe(),
            status: self.status.subscribe(),
        }
    }

    /// Entries a resolve-all rule examines per transaction (tests make it
    /// small to see the chunks).
    pub fn with_rule_chunk(mut self, n: usize) -> Projector {
        self.rule_chunk = n.max(1);
        self
    }

    pub fn projection(&self) -> &Projection {
        &self.projection
    }

    /// Waits for the next event, takes every event already here (up to
    /// [`BATCH_MAX`]) and applies them in one transaction.
    pub async fn step(&mut self) -> anyhow::Result<Outcome> {
        if matches!(*self.status.borrow(), Status::Stopped { .. }) {
            return Ok(Outcome::Stopped);
        }
        let reader = match &mut self.reader {
            Some(r) => r,
            None => {
                let from = *self.applied.borrow() + 1;
                self.connections.mark_unchanged();
                self.ahead.clear();
                self.reader.insert(self.bus.read_from(from, None).await?)
            }
        };
        let mut batch = std::mem::take(&mut self.ahead);
        if self.projection.oldest_pending_rule()?.is_some() {
            // A rule is being applied: take the events already here, then
            // one chunk of the rule, and come back without waiting.
            while batch.len() < BATCH_MAX {
                match reader.next_ready() {
                    Some(Ok(ev)) => batch.push(ev),
                    Some(Err(e)) => {
                        tracing::warn!("reading the event log: {e:#}");
                        break;
                    }
                    None => break,
                }
            }
            let n = batch.len();
            if n > 0 && self.apply_batch(batch).await? == Outcome::Stopped {
                return Ok(Outcome::Stopped);
            }
            let projection = self.projection.clone();
            let chunk = self.rule_chunk;
            tokio::task::spawn_blocking(move || projection.apply_rule_chunk(chunk)).await??;
            self.settled.send_replace(self.projection.settled()?);
            return Ok(Outcome::Applied(n));
        }
        if batch.is_empty() {
            tokio::select! {
                next = reader.next() => match next {
                    Some(Ok(ev)) => batch.push(ev),
                    Some(Err(e)) => {
                        // A fresh reader from where we are, rather than
                        // waiting for the client to notice a dead consumer.
                        tracing::warn!("reading the event log: {e:#}");
                        self.reader = None;
                        return Ok(Outcome::Applied(0));
                    }
                    None => {
                        self.reader = None;
                        return Ok(Outcome::Applied(0));
                    }
                },
                _ = self.connections.changed() => {
                    // Reconnected: a fresh reader from where we are.
                    self.reader = None;
                    return Ok(Outcome::Applied(0));
                }
                _ = tokio::time::sleep(DURABLE_EVERY), if self.deferred => {
                    self.make_durable().await?;
                    return Ok(Outcome::Applied(0));
                }
            }
        }
        if let Err(e) = reader.fill(&mut batch, BATCH_MAX).await {
            // Apply what arrived; the next step starts a fresh reader.
            tracing::warn!("reading the event log: {e:#}");
            self.reader = None;
        }
        self.apply_batch(batch).await
    }

    /// Puts a deferred commit on disk.
    async fn make_durable(&mut self) -> anyhow::Result<()> {
        let projection = self.projection.clone();
        tokio::task::spawn_blocking(move || projection.make_durable()).await??;
        self.last_durable = Instant::now();
        self.deferred = false;
        Ok(())
    }

    /// Decodes and applies `batch` on a blocking thread, reading the next
    /// batch into `ahead` meanwhile.
    async fn apply_batch(&mut self, batch: Vec<RawEvent>) -> anyhow::Result<Outcome> {
        let projection = self.projection.clone();
        let force_durable = self.last_durable.elapsed() >= DURABLE_EVERY;
        let quarantined = self.quarantined.clone();
        let job = tokio::task::spawn_blocking(move || {
            apply_raw(&projection, batch, &quarantined, force_durable)
        });
        tokio::pin!(job);
        let applied = loop {
            let reader = match &mut self.reader {
                Some(r) if self.ahead.len() < BATCH_MAX => r,
                _ => break (&mut job).await,
            };
            tokio::select! {
                biased;
                r = &mut job => break r,
                next = reader.next() => match next {
                    Some(Ok(ev)) => self.ahead.push(ev),
                    Some(Err(e)) => {
                        tracing::warn!("reading the event log: {e:#}");
                        self.reader = None;
                    }
                    None => self.reader = None,
                },
            }
        };
        if self.reader.is_none() {
            // The next reader starts after what this batch applied.
            self.ahead.clear();
        }
        let Applied {
            count,
            last,
            failure,
            durable,
        } = applied??;
        if let Some(last) = last {
            if durable {
                self.last_durable = Instant::now();
            }
            self.deferred = !durable;
            self.applied.send_replace(last);
            self.settled.send_replace(self.projection.settled()?);
        }
        if let Some((seq, reason)) = failure {
            tracing::error!(seq, "projector stopped: {reason}");
            self.status.send_replace(Status::Stopped { seq, reason });
            self.ahead.clear();
            return Ok(Outcome::Stopped);
        }
        Ok(Outcome::Applied(count))
    }

    /// Stopped at an event it cannot decode: waits for a `Quarantined`
    /// event naming it, then goes on from there (the stopped event is
    /// passed over, the ones after it are applied).
    async fn wait_for_quarantine(&mut self) -> anyhow::Result<()> {
        let Status::Stopped { seq, .. } = *self.status.borrow() else {
            return Ok(());
        };
        let mut reader = self
            .bus
            .read_from(1, Some(self.bus.subjects().quarantine()))
            .await?;
        loop {
            let Some(ev) = reader.next().await else {
                anyhow::bail!("the reader of quarantined events ended");
            };
            let ev = ev?;
            if let Some(q) = proto::event::Quarantined::from_payload(&ev.payload)
                && q.seq == seq
            {
                let mut set = (*self.quarantined).clone();
                set.insert(seq);
                self.quarantined = Arc::new(set);
                tracing::warn!(seq, reason = %q.reason, "passing over a quarantined event");
                self.reader = None;
                self.ahead.clear();
                self.status.send_replace(Status::Running);
                return Ok(());
            }
        }
    }

    /// Reopens the projection after a storage failure and goes on from
    /// what it holds: a deferred commit lost with the old handle is applied
    /// again from the stream.
    async fn reopen(&mut self) {
        let projection = self.projection.clone();
        let reopened = tokio::task::spawn_blocking(move || {
            projection.reopen()?;
            Ok::<_, ProjectionError>((projection.last_applied()?, projection.settled()?))
        })
        .await;
        match reopened {
            Ok(Ok((applied, settled))) => {
                tracing::warn!(
                    applied,
                    "projector: reopened the projection after a storage error"
                );
                self.applied.send_replace(applied);
                self.settled.send_replace(settled);
                self.deferred = false;
                self.ahead.clear();
                self.reader = None;
            }
            Ok(Err(e)) => tracing::error!("projector: reopening the projection: {e:#}"),
            Err(e) => tracing::error!("projector: reopening the projection: {e}"),
        }
    }

    /// Applies batches until `shutdown` resolves. A batch in progress is
    /// committed before it returns (the transaction runs to its end on a
    /// blocking thread even if this future is dropped).
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                outcome = self.step() => match outcome {
                    Ok(Outcome::Applied(_)) => {
                        self.status.send_if_modified(|s| {
                            let failing = matches!(s, Status::Failing { .. });
                            if failing {
                                tracing::info!("projector: applying again");
                                *s = Status::Running;
                            }
                            failing
                        });
                    }
                    Ok(Outcome::Stopped) => {
                        // Stay stopped until an operator quarantines the
                        // event (or the process stops).
                        tokio::select! {
                            _ = &mut shutdown => break,
                            r = self.wait_for_quarantine() => if let Err(e) = r {
                                tracing::error!("projector: waiting for a quarantine: {e:#}");
                                tokio::time::sleep(Duration::from_secs(1)).await;
                            },
                        }
                    }
                    Err(e) => {
                        // NATS away or redb trouble: say so, and try again
                        // shortly; a retry reads from last_applied + 1.
                        let reason = format!("{e:#}");
                        tracing::error!("projector: {reason}");
                        self.status.send_replace(Status::Failing { reason });
                        self.reader = None;
                        if storage_failure(&e) {
                            self.reopen().await;
                        }
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                },
            }
        }
        if self.deferred {
            self.make_durable().await?;
        }
        Ok(())
    }
}

/// Whether `e` is the projection's file or disk failing (not NATS, not
/// the data), which a reopen mends.
fn storage_failure(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<ProjectionError>()
            .is_some_and(ProjectionError::is_storage_failure)
    })
}

/// Decodes a batch up to the first event it cannot decode and applies
/// what decoded, durably if asked or if any event is more than a `Logged`.
fn apply_raw(
    projection: &Projection,
    batch: Vec<RawEvent>,
    quarantined: &BTreeSet<u64>,
    force_durable: bool,
) -> Result<Applied, ProjectionError> {
    let mut decoded = Vec::with_capacity(batch.len());
    let mut failure = None;
    let mut passed_over = 0;
    for ev in batch {
        match Envelope::decode(&ev.payload) {
            Ok(env) => decoded.push((ev.seq, env)),
            Err(_) if quarantined.contains(&ev.seq) => passed_over = ev.seq,
            Err(e) => {
                failure = Some((
                    ev.seq,
                    format!(
                        "event {} on {}: {e}; after checking it, `minilog events quarantine {}` \
                         lets the projector pass over it",
                        ev.seq, ev.subject, ev.seq
                    ),
                ));
                break;
            }
        }
    }
    if decoded.is_empty() && passed_over == 0 {
        return Ok(Applied {
            count: 0,
            last: None,
            failure,
            durable: false,
        });
    }
    let durable = force_durable
        || decoded
            .iter()
            .any(|(_, env)| !matches!(env.event, Event::Logged(_)));
    let commit = if durable {
        Commit::Durable
    } else {
        Commit::Deferred
    };
    let count = decoded.len();
    let last = projection.apply_through(decoded, passed_over, commit)?;
    Ok(Applied {
        count,
        last: Some(last),
        failure,
        durable,
    })
}
