//! Retention (docs/architecture.md, "Retention"), the reading half: which entries a prune at a
//! cutoff would drop, and which old open ones must first be carried
//! forward. Publishing the plan is the binary's job (the projector never
//! publishes); applying `Carried` and `Pruned` is in [`crate::apply`].

use crate::record::{self, EntryRecord, HistoryItem, HistoryKind};
use crate::tables::*;
use crate::{Projection, ProjectionError};
use proto::event::{Carried, CarriedHistory};
use redb::{ReadableDatabase, ReadableTable};

/// What one prune does.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Everything on the `entry` subjects below this sequence goes.
    pub upto: u64,
    /// Old open entries to re-publish first, each with the sequence of the
    /// event that holds it now (for its message id).
    pub carry: Vec<(u64, Carried)>,
    /// Old resolved entries that will be dropped.
    pub drop: u64,
}

impl Projection {
    /// The prune for entries received before `cutoff` (Unix ms), or `None`
    /// when there is nothing to do. The boundary is the first entry (by id)
    /// received at or after the cutoff, so no younger entry is ever touched.
    /// Call it on a projection that has caught up with the stream.
    pub fn retention_plan(&self, cutoff: i64) -> Result<Option<Plan>, ProjectionError> {
        let txn = self.db()?.begin_read()?;
        let entries = txn.open_table(ENTRIES)?;
        let held = txn.open_table(HELD)?;
        let history = txn.open_table(HISTORY)?;
        let last_applied = txn
            .open_table(META)?
            .get(META_LAST_APPLIED)?
            .map_or(0, |v| v.value());
        let mut upto = last_applied + 1;
        let mut old = Vec::new();
        for row in entries.iter()? {
            let (k, v) = row?;
            let rec: EntryRecord = record::decode("entries", v.value())?;
            if rec.received >= cutoff {
                upto = k.value();
                break;
            }
            old.push((k.value(), rec));
        }
        let mut plan = Plan {
            upto,
            carry: Vec::new(),
            drop: 0,
        };
        for (id, rec) in old {
            let hold = held.get(id)?.map_or(id, |v| v.value());
            if hold >= upto {
                continue;
            }
            if rec.resolved.is_some() {
                plan.drop += 1;
                continue;
            }
            let mut items = Vec::new();
            for row in history.range((id, 0)..=(id, u64::MAX))? {
                let (k, v) = row?;
                let item: HistoryItem = record::decode("history", v.value())?;
                items.push(CarriedHistory {
                    seq: k.value().1,
                    resolved: item.kind == HistoryKind::Resolved,
                    by: item.by,
                    at: item.at,
                });
            }
            let carried = Carried {
                id,
                received: rec.received,
                logged: rec.into_logged(),
                history: items,
            };
            plan.carry.push((hold, carried));
        }
        Ok((plan.drop > 0 || !plan.carry.is_empty()).then_some(plan))
    }
}
