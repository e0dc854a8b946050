//! Every row of every table, decoded, for comparing two projections row by
//! row (the rebuild invariant, docs/architecture.md §2) and for looking into a file.

use crate::record::{self, AuditItem, EntryRecord, HistoryItem, KeyRecord, UserRecord};
use crate::rules::PendingRule;
use crate::tables::*;
use crate::{Projection, ProjectionError};
use redb::{ReadableDatabase, ReadableTable, TableHandle};
use std::collections::BTreeMap;

/// Table name → its rows as `(key, value)` text, in key order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dump {
    pub tables: BTreeMap<String, Vec<(String, String)>>,
    /// Tables in the file that this dump does not know how to read: a
    /// table added without extending [`Projection::dump`].
    pub unknown: Vec<String>,
}

impl Dump {
    /// The first difference from `other`, in words; `None` when equal.
    pub fn first_difference(&self, other: &Dump) -> Option<String> {
        if self.unknown != other.unknown {
            return Some(format!(
                "unknown tables {:?} vs {:?}",
                self.unknown, other.unknown
            ));
        }
        let names: std::collections::BTreeSet<_> =
            self.tables.keys().chain(other.tables.keys()).collect();
        let empty = Vec::new();
        for name in names {
            let a = self.tables.get(name).unwrap_or(&empty);
            let b = other.tables.get(name).unwrap_or(&empty);
            for i in 0..a.len().max(b.len()) {
                if a.get(i) != b.get(i) {
                    return Some(format!(
                        "table {name}, row {i}: {:?} vs {:?} ({} vs {} rows)",
                        a.get(i),
                        b.get(i),
                        a.len(),
                        b.len()
                    ));
                }
            }
        }
        None
    }

    /// Rows of every table together.
    pub fn rows(&self) -> usize {
        self.tables.values().map(Vec::len).sum()
    }
}

macro_rules! dump_table {
    ($out:ident, $txn:ident, $def:expr, |$k:ident, $v:ident| $row:expr) => {{
        let t = $txn.open_table($def)?;
        let mut rows = Vec::new();
        for r in t.iter()? {
            let ($k, $v) = r?;
            let ($k, $v) = ($k.value(), $v.value());
            rows.push($row);
        }
        $out.insert($def.name().to_owned(), rows);
    }};
}

fn dec<T: for<'de> serde::Deserialize<'de> + std::fmt::Debug>(
    table: &'static str,
    bytes: &[u8],
) -> Result<String, ProjectionError> {
    Ok(format!("{:?}", record::decode::<T>(table, bytes)?))
}

impl Projection {
    /// Every table's rows, decoded.
    pub fn dump(&self) -> Result<Dump, ProjectionError> {
        let txn = self.db()?.begin_read()?;
        let mut out = BTreeMap::new();
        dump_table!(out, txn, ENTRIES, |k, v| (
            k.to_string(),
            dec::<EntryRecord>("entries", v)?
        ));
        dump_table!(out, txn, LEVEL_ALL, |k, v| (
            format!("{k:?}"),
            format!("{v:?}")
        ));
        dump_table!(out, txn, LEVEL_OPEN, |k, v| (
            format!("{k:?}"),
            format!("{v:?}")
        ));
        dump_table!(out, txn, KEY_ALL, |k, v| (
            format!("{k:?}"),
            format!("{v:?}")
        ));
        dump_table!(out, txn, KEY_OPEN, |k, v| (
            format!("{k:?}"),
            format!("{v:?}")
        ));
        dump_table!(out, txn, HISTORY, |k, v| (
            format!("{k:?}"),
            dec::<HistoryItem>("history", v)?
        ));
        dump_table!(out, txn, KEYS, |k, v| (
            k.to_owned(),
            dec::<KeyRecord>("keys", v)?
        ));
        dump_table!(out, txn, USERS, |k, v| (
            k.to_owned(),
            dec::<UserRecord>("users", v)?
        ));
        dump_table!(out, txn, AUDIT, |k, v| (
            k.to_string(),
            dec::<AuditItem>("audit", v)?
        ));
        dump_table!(out, txn, AUDIT_BY, |k, v| (
            format!("{k:?}"),
            format!("{v:?}")
        ));
        dump_table!(out, txn, COUNTS, |k, v| (k.to_owned(), v.to_string()));
        dump_table!(out, txn, HELD, |k, v| (k.to_string(), v.to_string()));
        dump_table!(out, txn, PENDING_RULES, |k, v| (
            k.to_string(),
            dec::<PendingRule>("pending_rules", v)?
        ));
        dump_table!(out, txn, RULE_DONE, |k, v| (
            format!("{k:?}"),
            format!("{v:?}")
        ));
        dump_table!(out, txn, GROUPS, |k, v| (
            crate::tables::group_id(k),
            dec::<crate::groups::GroupRecord>("groups", v)?
        ));
        dump_table!(out, txn, GROUP_ENTRIES, |k, v| (
            format!("{k:?}"),
            format!("{v:?}")
        ));
        dump_table!(out, txn, GROUP_LAST, |k, v| (
            format!("{k:?}"),
            format!("{v:?}")
        ));
        dump_table!(out, txn, GROUP_LAST_OPEN, |k, v| (
            format!("{k:?}"),
            format!("{v:?}")
        ));
        dump_table!(out, txn, GROUP_HISTORY, |k, v| (
            format!("{k:?}"),
            dec::<crate::groups::GroupEvent>("group_history", v)?
        ));
        dump_table!(out, txn, GROUP_DIRTY, |k, v| (
            k.to_owned(),
            format!("{v:?}")
        ));
        dump_table!(out, txn, VOLUME, |k, v| (format!("{k:?}"), v.to_string()));
        dump_table!(out, txn, ALERTS, |k, v| (
            k.to_owned(),
            dec::<crate::record::AlertRecord>("alerts", v)?
        ));
        dump_table!(out, txn, META, |k, v| (k.to_owned(), v.to_string()));
        let unknown = txn
            .list_tables()?
            .map(|t| t.name().to_owned())
            .filter(|n| !out.contains_key(n))
            .collect();
        Ok(Dump {
            tables: out,
            unknown,
        })
    }
}
