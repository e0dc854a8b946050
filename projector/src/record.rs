//! What the projection stores, as MessagePack values (decoded by us, so a
//! damaged row is an error, never a panic).

use proto::Level;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Resolution {
    pub by: String,
    pub at: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EntryRecord {
    pub level: Level,
    pub message: String,
    pub source: Option<String>,
    pub key_id: Option<String>,
    /// The client's time, if it sent one.
    pub time: Option<i64>,
    /// When the gateway published it (the event's time).
    pub received: i64,
    pub ip: Option<String>,
    pub meta: BTreeMap<String, String>,
    pub fingerprint: Option<String>,
    pub added_by: Option<String>,
    pub untrusted: bool,
    pub resolved: Option<Resolution>,
    /// Its group's id ([`proto::grouping::group_of`]).
    pub group: String,
    pub exception: Option<Vec<proto::event::Exception>>,
}

impl EntryRecord {
    /// The row of a logged entry, received (published) at `received`.
    pub fn from_logged(
        l: proto::event::Logged,
        received: i64,
        resolved: Option<Resolution>,
    ) -> EntryRecord {
        let group =
            proto::grouping::group_of(&l, l.key_id.as_deref().unwrap_or(proto::subjects::HAND)).id;
        EntryRecord {
            group,
            level: l.level,
            message: l.message,
            source: l.source,
            key_id: l.key_id,
            time: l.time,
            received,
            ip: l.ip,
            meta: l.meta,
            fingerprint: l.fingerprint,
            added_by: l.added_by,
            untrusted: l.untrusted,
            resolved,
            exception: l.exception,
        }
    }

    /// The entry as its `Logged` event said it (what retention carries).
    pub fn into_logged(self) -> proto::event::Logged {
        proto::event::Logged {
            key_id: self.key_id,
            level: self.level,
            message: self.message,
            source: self.source,
            time: self.time,
            ip: self.ip,
            meta: self.meta,
            fingerprint: self.fingerprint,
            added_by: self.added_by,
            untrusted: self.untrusted,
            exception: self.exception,
        }
    }

    /// The index token of its key: the key id, or `hand`.
    pub fn key_token(&self) -> &str {
        self.key_id.as_deref().unwrap_or(proto::subjects::HAND)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum HistoryKind {
    Resolved,
    Unresolved,
}

impl HistoryKind {
    /// What a resolve (`true`) or an unresolve (`false`) records.
    pub fn of(resolve: bool) -> HistoryKind {
        if resolve {
            HistoryKind::Resolved
        } else {
            HistoryKind::Unresolved
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryItem {
    pub kind: HistoryKind,
    pub by: String,
    pub at: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// What the key's events made it.
    pub key: proto::state::KeyState,
    /// Entries logged with this key (retained ones).
    pub entries: u64,
    /// Time of the last entry logged with it.
    pub last_used: Option<i64>,
}

/// A user as the users table holds it: the state its events made.
pub type UserRecord = proto::state::UserState;

/// One line of the audit page: who did what to what, and when.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditItem {
    pub at: i64,
    /// The actor as shown (`alice`, `command line`, `key k1a2b3`).
    pub by: String,
    /// The event's name (`resolved`, `key_revoked`, …).
    pub action: String,
    /// What it acted on, in words (`#12`, `key k1a2b3`, `user bob`).
    pub target: String,
}

#[derive(Debug, thiserror::Error)]
#[error("damaged row in {table}: {source}")]
pub struct RowError {
    pub table: &'static str,
    pub source: rmp_serde::decode::Error,
}

/// An alert rule in force, and who made it when (its `AlertAdded` at
/// `seq`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertRecord {
    pub rule: proto::alert::AlertRule,
    pub created_by: String,
    pub created_at: i64,
    pub seq: u64,
}

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Positional (arrays, not maps): rows a third smaller than with field
    // names, which the projector writes and a text search reads.
    rmp_serde::to_vec(value).expect("records always encode")
}

pub fn decode<T: for<'de> Deserialize<'de>>(
    table: &'static str,
    bytes: &[u8],
) -> Result<T, RowError> {
    rmp_serde::from_slice(bytes).map_err(|source| RowError { table, source })
}
