//! `projector` turns the `MINILOG` event log into a redb projection and
//! answers queries over it. It never serves HTTP and never publishes.
//!
//! Layout:
//! - [`tables`]: every redb table and the schema version.
//! - [`record`]: the rows the tables hold (MessagePack values).
//! - [`apply`]: applying a batch of events in one write transaction.
//! - [`rules`]: resolve- and unresolve-all rules, applied in chunks.
//! - [`query`]: pages of entries (O(page) via indexes), entries, keys, users.
//! - [`runner`]: the task that reads the stream and applies it in batches,
//!   publishing its applied sequence and its state on watch channels.
//! - [`rebuild`]: a projection rebuilt from the stream, whole or up to a
//!   sequence or time, with progress; the schema-version check on start.
//! - [`retention`]: what a prune would drop and carry (DESIGN.md §7).
//! - [`dump`]: every table's rows, for comparing projections row by row.

pub mod apply;
pub mod dump;
pub mod query;
pub mod rebuild;
pub mod record;
pub mod retention;
pub mod rules;
pub mod runner;
pub mod tables;

pub use apply::Commit;
pub use query::{Page, Query, Resolved};
pub use runner::{Outcome, Projector, Status};

use redb::{Database, ReadableTable};
use std::path::Path;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("projection storage: {0}")]
    Storage(#[from] redb::Error),
    #[error(transparent)]
    Row(#[from] record::RowError),
}

macro_rules! storage_from {
    ($($t:ty),*) => {$(
        impl From<$t> for ProjectionError {
            fn from(e: $t) -> Self {
                ProjectionError::Storage(e.into())
            }
        }
    )*};
}
storage_from!(
    redb::StorageError,
    redb::TransactionError,
    redb::TableError,
    redb::CommitError,
    redb::DatabaseError,
    redb::SetDurabilityError
);

/// The redb file holding the projection. Cheap to clone.
#[derive(Clone)]
pub struct Projection {
    db: Arc<Database>,
}

impl Projection {
    /// Opens (or creates) the projection with an explicit cache size, so
    /// the process stays small whatever the data size. A file of another
    /// schema version is replaced by an empty one, which the projector then
    /// fills from the stream (a rebuild, not a migration);
    /// [`rebuild::open_or_rebuild`] does that rebuild first, with progress.
    pub fn open(path: &Path, cache_bytes: usize) -> Result<Projection, ProjectionError> {
        owner_only(path)?;
        let open = || Database::builder().set_cache_size(cache_bytes).create(path);
        let db = open()?;
        let schema = {
            let txn = db.begin_write()?;
            let schema = {
                let mut meta = txn.open_table(tables::META)?;
                let found = meta.get(tables::META_SCHEMA)?.map(|v| v.value());
                if found.is_none() {
                    meta.insert(tables::META_SCHEMA, tables::SCHEMA_VERSION)?;
                }
                found.unwrap_or(tables::SCHEMA_VERSION)
            };
            Self::create_tables(&txn)?;
            txn.commit()?;
            schema
        };
        if schema != tables::SCHEMA_VERSION {
            tracing::warn!(
                found = schema,
                want = tables::SCHEMA_VERSION,
                "projection has another schema version; rebuilding it from the stream"
            );
            drop(db);
            std::fs::remove_file(path)
                .map_err(|e| ProjectionError::Storage(redb::StorageError::Io(e).into()))?;
            return Projection::open(path, cache_bytes);
        }
        Ok(Projection { db: Arc::new(db) })
    }

    fn create_tables(txn: &redb::WriteTransaction) -> Result<(), ProjectionError> {
        use tables::*;
        txn.open_table(ENTRIES)?;
        txn.open_table(LEVEL_ALL)?;
        txn.open_table(KEY_ALL)?;
        txn.open_table(LEVEL_OPEN)?;
        txn.open_table(KEY_OPEN)?;
        txn.open_table(HISTORY)?;
        txn.open_table(KEYS)?;
        txn.open_table(USERS)?;
        txn.open_table(COUNTS)?;
        txn.open_table(AUDIT)?;
        txn.open_table(AUDIT_BY)?;
        txn.open_table(PENDING_RULES)?;
        txn.open_table(RULE_DONE)?;
        txn.open_table(HELD)?;
        Ok(())
    }
}

/// The projection holds password hashes and key verifiers: its file is
/// created readable by its owner only, and an older file is made so.
fn owner_only(path: &Path) -> Result<(), ProjectionError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let io = |e: std::io::Error| ProjectionError::Storage(redb::Error::Io(e));
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    Ok(())
}
