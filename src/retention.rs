//! Retention (docs/architecture.md, "Retention"), the publishing half: with `--retain-days N`,
//! `serve` (or a `view`) prunes resolved entries older than N days. Old
//! open entries are first re-published as `Carried` (same id, times and
//! history), then `Pruned { upto_seq }` is published (message id
//! `prune-<seq>`) and the `entry` subjects below it are purged from the
//! stream. Key, user and triage events stay.
//!
//! The plan comes from the projection once it has caught up with the
//! stream ([`projector::retention`]). Several processes pruning at once
//! publish the same message ids (`carry-<id>-<held at>`, `prune-<seq>`),
//! which JetStream drops as duplicates.

use anyhow::{Context, bail};
use projector::Projection;
use projector::runner::ProjectorHandle;
use proto::bus::Bus;
use proto::event::{Actor, Envelope, Event, Pruned};
use std::future::Future;
use std::time::Duration;

pub const DAY_MS: i64 = 86_400_000;

/// How often the pruner looks again.
pub const EVERY: Duration = Duration::from_secs(3600);

/// What one prune did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The `Pruned` event's sequence.
    pub seq: u64,
    pub upto: u64,
    pub carried: usize,
    pub dropped: u64,
    /// Events purged from the stream.
    pub purged: u64,
}

/// Prunes everything received before `cutoff` (Unix ms) once, after the
/// projection has caught up with the stream. `None`: nothing to prune.
pub async fn prune_once(
    bus: &Bus,
    projection: &Projection,
    projector: &ProjectorHandle,
    cutoff: i64,
) -> anyhow::Result<Option<Report>> {
    let last = bus.last_seq().await?;
    if !projector.wait_for(last).await {
        bail!("the projector stopped before catching up; not pruning");
    }
    let p = projection.clone();
    let Some(plan) = tokio::task::spawn_blocking(move || p.retention_plan(cutoff))
        .await?
        .context("planning the prune")?
    else {
        return Ok(None);
    };
    let subjects = bus.subjects().clone();
    let mut acks = Vec::with_capacity(plan.carry.len());
    let carried = plan.carry.len();
    for (held_at, c) in plan.carry {
        let subject = subjects.entry(c.logged.key_id.as_deref());
        let msg_id = format!("carry-{}-{held_at}", c.id);
        let env = Envelope::now(Actor::System, Event::Carried(c));
        acks.push(bus.publish_start(subject, &env, &msg_id).await?);
    }
    for ack in acks {
        ack.stored().await?;
    }
    let upto = plan.upto;
    let env = Envelope::now(Actor::System, Event::Pruned(Pruned { upto_seq: upto }));
    let stored = bus
        .publish(subjects.retention(), &env, &format!("prune-{upto}"))
        .await?;
    let purged = bus.purge_below(subjects.all_entries(), upto).await?;
    tracing::info!(
        upto,
        carried,
        dropped = plan.drop,
        purged,
        "retention: pruned the event log"
    );
    Ok(Some(Report {
        seq: stored.seq,
        upto,
        carried,
        dropped: plan.drop,
        purged,
    }))
}

/// The pruner of a process that runs a projector.
pub struct Retention {
    bus: Bus,
    projection: Projection,
    days: u32,
    projector: Option<ProjectorHandle>,
}

impl Retention {
    pub fn new(bus: Bus, projection: Projection, days: u32) -> Retention {
        Retention {
            bus,
            projection,
            days,
            projector: None,
        }
    }

    pub fn with_projector(mut self, handle: ProjectorHandle) -> Retention {
        self.projector = Some(handle);
        self
    }

    /// Prunes now and then every [`EVERY`], until `shutdown`.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let Some(handle) = self.projector.clone() else {
            return;
        };
        tokio::pin!(shutdown);
        loop {
            let cutoff = proto::clock::now_ms() - i64::from(self.days) * DAY_MS;
            // Not cancelled halfway: `Pruned` without its purge would leave
            // the pruned events in the stream until the next prune. (It
            // returns soon after shutdown: the projector it waits on stops.)
            if let Err(e) = prune_once(&self.bus, &self.projection, &handle, cutoff).await {
                tracing::error!("retention: {e:#}");
            }
            tokio::select! {
                biased;
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(EVERY) => {}
            }
        }
    }
}
