//! Counters of what the gateway accepted and refused, for `/metrics` and
//! the health page ("rejected submissions by reason").

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of the counters since the gateway started.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Entries stored (acknowledged by JetStream as new).
    pub accepted: u64,
    /// Entries a retry sent again inside the duplicate window: answered
    /// with their original id, not stored twice.
    pub duplicates: u64,
    /// Refused requests by reason code (`key_unknown`, `invalid_items`,
    /// `unavailable`, …): one count per request, not per item.
    pub rejected: BTreeMap<String, u64>,
}

#[derive(Default)]
pub(crate) struct Counters {
    accepted: AtomicU64,
    duplicates: AtomicU64,
    // A lock is fine here: rejections are rare next to acceptances, and
    // the section is a map increment.
    rejected: Mutex<BTreeMap<&'static str, u64>>,
}

impl Counters {
    pub(crate) fn stored(&self, new: u64, duplicates: u64) {
        self.accepted.fetch_add(new, Ordering::Relaxed);
        self.duplicates.fetch_add(duplicates, Ordering::Relaxed);
    }

    pub(crate) fn rejected(&self, reason: &'static str) {
        let mut map = self
            .rejected
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *map.entry(reason).or_default() += 1;
    }

    pub(crate) fn snapshot(&self) -> Stats {
        let rejected = self
            .rejected
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect();
        Stats {
            accepted: self.accepted.load(Ordering::Relaxed),
            duplicates: self.duplicates.load(Ordering::Relaxed),
            rejected,
        }
    }
}
