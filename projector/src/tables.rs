//! Every redb table of the projection, in one place.
//!
//! Entry indexes hold `()` values: the key is the whole fact. Ids are
//! stream sequences, so iterating an index backwards gives newest first and
//! a page costs O(page) whatever the table size.

use redb::TableDefinition;

/// Entry id → MessagePack [`crate::record::EntryRecord`].
pub const ENTRIES: TableDefinition<u64, &[u8]> = TableDefinition::new("entries");
/// (level code, id): every entry by level.
pub const LEVEL_ALL: TableDefinition<(u8, u64), ()> = TableDefinition::new("level_all");
/// (key id or `hand`, id): every entry by key.
pub const KEY_ALL: TableDefinition<(&str, u64), ()> = TableDefinition::new("key_all");
/// (level code, id): open entries by level (all six merged give "all open").
pub const LEVEL_OPEN: TableDefinition<(u8, u64), ()> = TableDefinition::new("level_open");
/// (key id or `hand`, id): open entries by key.
pub const KEY_OPEN: TableDefinition<(&str, u64), ()> = TableDefinition::new("key_open");
/// (entry id, seq) → MessagePack [`crate::record::HistoryItem`]: every
/// resolve and unresolve of the entry (its logging is the entry itself).
pub const HISTORY: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("history");
/// Key id → MessagePack [`crate::record::KeyRecord`].
pub const KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("keys");
/// User id → MessagePack [`crate::record::UserRecord`].
pub const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
/// Stream sequence → MessagePack [`crate::record::AuditItem`]: every user
/// action (everything but entries logged with a key).
pub const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
/// (actor as shown, seq): the audit page filtered by who.
pub const AUDIT_BY: TableDefinition<(&str, u64), ()> = TableDefinition::new("audit_by");
/// Counters: `open.<level>`, `all.<level>`, and per key token
/// `open.<level>.<key>`, `all.<level>.<key>`.
pub const COUNTS: TableDefinition<&str, u64> = TableDefinition::new("counts");
/// Entry id → sequence of the `Carried` event that now holds the entry in
/// the stream (retention); entries without a row are held by their `Logged`.
pub const HELD: TableDefinition<u64, u64> = TableDefinition::new("held");
/// Rule seq → MessagePack [`crate::rules::PendingRule`]: resolve- or
/// unresolve-all rules still being applied, chunk by chunk.
pub const PENDING_RULES: TableDefinition<u64, &[u8]> = TableDefinition::new("pending_rules");
/// (rule seq, entry id): entries a pending rule already decided out of
/// order (because a later event touched them first).
pub const RULE_DONE: TableDefinition<(u64, u64), ()> = TableDefinition::new("rule_done");
/// Group number ([`group_num`]) → MessagePack [`crate::groups::GroupRecord`].
pub const GROUPS: TableDefinition<u64, &[u8]> = TableDefinition::new("groups");
/// A group's entries and, beside them, its open ones: `(group number,
/// entry id)` for every entry, `(group number, OPEN | entry id)` for each
/// open one ([`group_members`], [`group_open`]). A group's number is its
/// id's 64 bits ([`group_num`]). One table, so an arriving entry's two rows
/// usually share a page: the projector writes them per entry, at places
/// spread over the whole table when there are many groups.
pub const GROUP_ENTRIES: TableDefinition<(u64, u64), ()> = TableDefinition::new("group_entries");
/// (newest entry id, group number): every group, newest first backwards.
pub const GROUP_LAST: TableDefinition<(u64, u64), ()> = TableDefinition::new("group_last");
/// (newest entry id, group number): groups with an open entry.
pub const GROUP_LAST_OPEN: TableDefinition<(u64, u64), ()> =
    TableDefinition::new("group_last_open");
/// (group number, stream sequence) → MessagePack
/// [`crate::groups::GroupEvent`]: when a group was resolved, regressed
/// (at the entry that did it) or reopened. Written rarely: on those.
pub const GROUP_HISTORY: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("group_history");
/// Group ids a `Carried` event touched, derived anew at the next `Pruned`.
pub const GROUP_DIRTY: TableDefinition<&str, ()> = TableDefinition::new("group_dirty");
/// (open: 1 or 0, key token or "" for every key, hour since the epoch,
/// level code) → entries received in that hour: the entries list's volume
/// chart. Like [`COUNTS`], a count at zero has no row.
pub const VOLUME: TableDefinition<(u8, &str, u64, u8), u64> = TableDefinition::new("volume");
/// Alert id → MessagePack [`crate::record::AlertRecord`]: the rules in
/// force.
pub const ALERTS: TableDefinition<&str, &[u8]> = TableDefinition::new("alerts");
/// `last_applied` and `schema`.
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

pub const META_LAST_APPLIED: &str = "last_applied";
pub const META_SCHEMA: &str = "schema";

/// Bumped whenever the tables or records change shape; a projection of
/// another version is rebuilt from the stream.
/// 4: a key row holds its `proto::state::KeyState`.
/// 5: groups (`proto::grouping` version 1); entries carry their group.
/// 6: group tables keyed by the group's number, not its id's text.
/// 7: a group's open entries beside its entries, its hourly counts in its
///    row, its template computed when read; group history; volume.
/// 8: a user row says how a sign-on user came and its provider's `sub`
///    (rebuilt so rows of earlier sign-ons say it too).
pub const SCHEMA_VERSION: u64 = 8;

/// The number a group's index rows are kept under: its id (16 hex digits)
/// as the 64 bits they are; an id that is not one (a made-up filter) is 0,
/// which no group has in practice.
pub fn group_num(gid: &str) -> u64 {
    u64::from_str_radix(gid, 16).unwrap_or(0)
}

/// The bit that marks a group's open-entry rows in [`GROUP_ENTRIES`]
/// (entry ids are stream sequences, far below it).
pub const OPEN: u64 = 1 << 63;

/// The key range of a group's entries in [`GROUP_ENTRIES`], up to `last`.
pub fn group_members(num: u64, last: u64) -> std::ops::RangeInclusive<(u64, u64)> {
    (num, 0)..=(num, last.min(OPEN - 1))
}

/// The key range of a group's open entries in [`GROUP_ENTRIES`] (the ids
/// are the keys' second half without [`OPEN`]).
pub fn group_open(num: u64) -> std::ops::RangeInclusive<(u64, u64)> {
    (num, OPEN)..=(num, u64::MAX)
}

/// The group id of a group number.
pub fn group_id(num: u64) -> String {
    format!("{num:016x}")
}

pub fn count_key(open: bool, level: proto::Level) -> String {
    format!("{}.{}", if open { "open" } else { "all" }, level.as_str())
}

pub fn key_count_key(open: bool, level: proto::Level, key: &str) -> String {
    format!("{}.{key}", count_key(open, level))
}
