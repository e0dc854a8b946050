//! Counters of what the gateway accepted and refused, for `/metrics` and
//! the health page ("rejected submissions by reason"), in total and per
//! ingestion path.

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// The ways in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Path {
    /// `POST /log/add/` and `POST /api/v1/entries`.
    Http,
    /// `minilog.ingest.>` (durable) and `minilog.submit.>` (requests).
    Nats,
    /// `POST /api/v1/browser`.
    Browser,
    /// The Sentry SDK protocol (`/api/<n>/envelope/`, `/api/<n>/store/`).
    Sentry,
    /// OTLP/HTTP logs (`/v1/logs`).
    Otlp,
}

impl Path {
    pub const ALL: [Path; 5] = [
        Path::Http,
        Path::Nats,
        Path::Browser,
        Path::Sentry,
        Path::Otlp,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Path::Http => "http",
            Path::Nats => "nats",
            Path::Browser => "browser",
            Path::Sentry => "sentry",
            Path::Otlp => "otlp",
        }
    }
}

/// A snapshot of the counters since the gateway started.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Entries stored (acknowledged by JetStream as new), all paths.
    pub accepted: u64,
    /// Entries a retry sent again inside the duplicate window: answered
    /// with their original id, not stored twice.
    pub duplicates: u64,
    /// Refused requests by reason code (`key_unknown`, `invalid_items`,
    /// `rate_limited`, `unavailable`, …), all paths: one count per
    /// request or NATS submission, not per item. Rate-limited submissions
    /// (dropped) count as `rate_limited`.
    pub rejected: BTreeMap<String, u64>,
    /// The same, per path (`http`, `nats`, `browser`, `sentry`, `otlp`).
    pub paths: BTreeMap<String, PathStats>,
    /// Sentry envelope items passed over (sessions, transactions, …), by
    /// item type (types minilog does not know count as `other`).
    pub sentry_skipped: BTreeMap<String, u64>,
    /// Fields of Sentry events and logs left out of an entry's meta (past
    /// its 32 pairs, or a name longer than 64 characters).
    pub meta_dropped: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PathStats {
    pub accepted: u64,
    pub duplicates: u64,
    pub rejected: BTreeMap<String, u64>,
}

impl Stats {
    /// Prometheus text format.
    pub fn prometheus(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP minilog_gateway_accepted_total Entries stored, by ingestion path.\n\
             # TYPE minilog_gateway_accepted_total counter\n",
        );
        for (path, s) in &self.paths {
            out.push_str(&format!(
                "minilog_gateway_accepted_total{{path=\"{path}\"}} {}\n",
                s.accepted
            ));
        }
        out.push_str(
            "# HELP minilog_gateway_duplicates_total Retried entries answered with their first id.\n\
             # TYPE minilog_gateway_duplicates_total counter\n",
        );
        for (path, s) in &self.paths {
            out.push_str(&format!(
                "minilog_gateway_duplicates_total{{path=\"{path}\"}} {}\n",
                s.duplicates
            ));
        }
        out.push_str(
            "# HELP minilog_gateway_rejected_total Refused submissions, by path and reason \
             (rate_limited: dropped over a rate limit).\n\
             # TYPE minilog_gateway_rejected_total counter\n",
        );
        for (path, s) in &self.paths {
            for (reason, n) in &s.rejected {
                out.push_str(&format!(
                    "minilog_gateway_rejected_total{{path=\"{path}\",reason=\"{reason}\"}} {n}\n"
                ));
            }
        }
        out.push_str(
            "# HELP minilog_sentry_items_skipped_total Sentry envelope items passed over, by type.\n\
             # TYPE minilog_sentry_items_skipped_total counter\n",
        );
        for (ty, n) in &self.sentry_skipped {
            out.push_str(&format!(
                "minilog_sentry_items_skipped_total{{type=\"{ty}\"}} {n}\n"
            ));
        }
        out.push_str(
            "# HELP minilog_meta_dropped_total Fields left out of entries' meta (over its limits).\n\
             # TYPE minilog_meta_dropped_total counter\n",
        );
        out.push_str(&format!(
            "minilog_meta_dropped_total {}\n",
            self.meta_dropped
        ));
        out
    }
}

#[derive(Default)]
pub(crate) struct Counters {
    accepted: [AtomicU64; Path::ALL.len()],
    duplicates: [AtomicU64; Path::ALL.len()],
    sentry_skipped: Mutex<BTreeMap<&'static str, u64>>,
    meta_dropped: AtomicU64,
    // A lock is fine here: rejections are rare next to acceptances, and
    // the section is a map increment.
    rejected: Mutex<BTreeMap<(Path, &'static str), u64>>,
}

impl Counters {
    pub(crate) fn stored(&self, path: Path, new: u64, duplicates: u64) {
        self.accepted[path as usize].fetch_add(new, Ordering::Relaxed);
        self.duplicates[path as usize].fetch_add(duplicates, Ordering::Relaxed);
    }

    pub(crate) fn rejected(&self, path: Path, reason: &'static str) {
        let mut map = self
            .rejected
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *map.entry((path, reason)).or_default() += 1;
    }

    pub(crate) fn sentry_skipped(&self, item_type: &'static str) {
        let mut map = self
            .sentry_skipped
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *map.entry(item_type).or_default() += 1;
    }

    pub(crate) fn meta_dropped(&self, n: u64) {
        self.meta_dropped.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Stats {
        let mut stats = Stats::default();
        for path in Path::ALL {
            let p = PathStats {
                accepted: self.accepted[path as usize].load(Ordering::Relaxed),
                duplicates: self.duplicates[path as usize].load(Ordering::Relaxed),
                rejected: BTreeMap::new(),
            };
            stats.accepted += p.accepted;
            stats.duplicates += p.duplicates;
            stats.paths.insert(path.name().to_owned(), p);
        }
        let map = self
            .rejected
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for ((path, reason), n) in map.iter() {
            *stats.rejected.entry((*reason).to_owned()).or_default() += n;
            if let Some(p) = stats.paths.get_mut(path.name()) {
                p.rejected.insert((*reason).to_owned(), *n);
            }
        }
        drop(map);
        let skipped = self
            .sentry_skipped
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (ty, n) in skipped.iter() {
            stats.sentry_skipped.insert((*ty).to_owned(), *n);
        }
        stats.meta_dropped = self.meta_dropped.load(Ordering::Relaxed);
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_per_path_and_render_as_prometheus_text() {
        let c = Counters::default();
        c.stored(Path::Http, 3, 1);
        c.stored(Path::Nats, 2, 0);
        c.rejected(Path::Nats, "invalid_level");
        c.rejected(Path::Http, "invalid_level");
        c.rejected(Path::Nats, "rate_limited");
        let s = c.snapshot();
        assert_eq!(s.accepted, 5);
        assert_eq!(s.duplicates, 1);
        assert_eq!(s.rejected["invalid_level"], 2);
        assert_eq!(s.paths["nats"].rejected["rate_limited"], 1);
        let text = s.prometheus();
        assert!(
            text.contains("minilog_gateway_accepted_total{path=\"nats\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "minilog_gateway_rejected_total{path=\"nats\",reason=\"invalid_level\"} 1\n"
            ),
            "{text}"
        );
        assert!(text.contains("minilog_gateway_accepted_total{path=\"browser\"} 0\n"));
    }
}
