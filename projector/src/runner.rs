//! The projector task: reads `MINILOG` with an ordered consumer from
//! `last_applied + 1` and applies what is there in batches.
//!
//! [`Projector::step`] is public so tests can drive it one batch at a
//! time; [`Projector::run`] loops over it until shutdown. An event that
//! cannot be decoded stops the projector at that sequence; it is reported,
//! never skipped.

use crate::Projection;
use proto::Envelope;
use proto::bus::{Bus, EventReader, RawEvent};
use std::future::Future;
use tokio::sync::watch;

/// Events applied per write transaction, at most.
pub const BATCH_MAX: usize = 1000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    Running,
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
}

impl Projector {
    pub async fn start(bus: Bus, projection: Projection) -> anyhow::Result<Projector> {
        let last = projection.last_applied()?;
        let settled = projection.settled()?;
        let connections = bus.connections();
        let reader = bus.read_from(last + 1, None).await?;
        Ok(Projector {
            projection,
            bus,
            reader: Some(reader),
            connections,
            applied: watch::Sender::new(last),
            settled: watch::Sender::new(settled),
            status: watch::Sender::new(Status::Running),
            rule_chunk: crate::rules::CHUNK,
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
                self.reader.insert(self.bus.read_from(from, None).await?)
            }
        };
        let mut batch = Vec::new();
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
        }
        if let Err(e) = reader.fill(&mut batch, BATCH_MAX).await {
            // Apply what arrived; the next step starts a fresh reader.
            tracing::warn!("reading the event log: {e:#}");
            self.reader = None;
        }
        self.apply_batch(batch).await
    }

    async fn apply_batch(&mut self, batch: Vec<RawEvent>) -> anyhow::Result<Outcome> {
        let mut decoded = Vec::with_capacity(batch.len());
        let mut failure = None;
        for ev in batch {
            match Envelope::decode(&ev.payload) {
                Ok(env) => decoded.push((ev.seq, env)),
                Err(e) => {
                    failure = Some((ev.seq, format!("event {} on {}: {e}", ev.seq, ev.subject)));
                    break;
                }
            }
        }
        let n = decoded.len();
        if n > 0 {
            let projection = self.projection.clone();
            let last = tokio::task::spawn_blocking(move || projection.apply(decoded)).await??;
            self.applied.send_replace(last);
            self.settled.send_replace(self.projection.settled()?);
        }
        if let Some((seq, reason)) = failure {
            tracing::error!(seq, "projector stopped: {reason}");
            self.status.send_replace(Status::Stopped { seq, reason });
            return Ok(Outcome::Stopped);
        }
        Ok(Outcome::Applied(n))
    }

    /// Applies batches until `shutdown` resolves. A batch in progress is
    /// committed before it returns (the transaction runs to its end on a
    /// blocking thread even if this future is dropped).
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => return Ok(()),
                outcome = self.step() => match outcome {
                    Ok(Outcome::Applied(_)) => {}
                    Ok(Outcome::Stopped) => {
                        shutdown.await;
                        return Ok(());
                    }
                    Err(e) => {
                        // NATS away or redb trouble: say so, and try again
                        // shortly; a retry reads from last_applied + 1.
                        tracing::error!("projector: {e:#}");
                        self.reader = None;
                        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                    }
                },
            }
        }
    }
}
