//! `projector` turns the `MINILOG` event log into a redb projection and
//! answers queries over it. It never serves HTTP and never publishes.
//!
//! Layout:
//! - [`tables`]: every redb table and the schema version.
//! - [`record`]: the rows the tables hold (MessagePack values).
//! - [`apply`]: applying a batch of events in one write transaction.
//! - [`rules`]: resolve- and unresolve-all rules, applied in chunks.
//! - [`query`]: pages of entries (O(page) via indexes), entries, keys, users.
//! - [`groups`]: group rows kept by entry events, regression, derivation.
//! - [`group_query`]: pages of groups, a group's entries and hourly counts.
//! - [`runner`]: the task that reads the stream and applies it in batches,
//!   publishing its applied sequence and its state on watch channels.
//! - [`rebuild`]: a projection rebuilt from the stream, whole or up to a
//!   sequence or time, with progress; the schema-version check on start.
//! - [`retention`]: what a prune would drop and carry (docs/architecture.md, "Retention").
//! - [`dump`]: every table's rows, for comparing projections row by row.
//! - [`tail`]: entries after an id, oldest first, in bounded steps (the live tail).

pub mod apply;
pub mod dump;
pub mod group_query;
pub mod groups;
pub mod query;
pub mod rebuild;
pub mod record;
pub mod retention;
pub mod rules;
pub mod runner;
pub mod tables;
pub mod tail;

pub use apply::Commit;
pub use query::{Page, Query, Resolved};
pub use runner::{Outcome, Projector, Status};
pub use tail::TailStep;

use redb::{Database, ReadableTable};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("projection storage: {0}")]
    Storage(#[from] redb::Error),
    #[error(transparent)]
    Row(#[from] record::RowError),
    /// Closed after a storage error, and not open again yet.
    #[error(
        "the projection is being reopened after a storage error (a full disk?); \
         the projector retries by itself"
    )]
    Reopening,
}

impl ProjectionError {
    /// A failure of the file or the disk under it (not of the data): redb
    /// refuses every later operation on the handle until it is reopened.
    pub fn is_storage_failure(&self) -> bool {
        matches!(
            self,
            ProjectionError::Reopening
                | ProjectionError::Storage(
                    redb::Error::Io(_) | redb::Error::PreviousIo | redb::Error::DatabaseClosed
                )
        )
    }
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

/// The redb file holding the projection. Cheap to clone: every clone
/// shares one handle, which [`Projection::reopen`] replaces.
#[derive(Clone)]
pub struct Projection {
    shared: Arc<Shared>,
}

struct Shared {
    path: PathBuf,
    cache_bytes: usize,
    /// `None` from a [`Projection::reopen`] until the file is open again.
    db: RwLock<Option<Arc<Database>>>,
    /// One reopen at a time.
    reopening: Mutex<()>,
}

impl Projection {
    /// Opens (or creates) the projection with an explicit cache size, so
    /// the process stays small whatever the data size. A file of another
    /// schema version is replaced by an empty one, which the projector then
    /// fills from the stream (a rebuild, not a migration);
    /// [`rebuild::open_or_rebuild`] does that rebuild first, with progress.
    pub fn open(path: &Path, cache_bytes: usize) -> Result<Projection, ProjectionError> {
        owner_only(path)?;
        let db = create(path, cache_bytes)?;
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
        Ok(Projection {
            shared: Arc::new(Shared {
                path: path.to_owned(),
                cache_bytes,
                db: RwLock::new(Some(Arc::new(db))),
                reopening: Mutex::new(()),
            }),
        })
    }

    /// The open handle, or [`ProjectionError::Reopening`].
    fn db(&self) -> Result<Arc<Database>, ProjectionError> {
        let slot = self.shared.db.read().unwrap_or_else(|p| p.into_inner());
        slot.clone().ok_or(ProjectionError::Reopening)
    }

    /// After an I/O error (ENOSPC on a full disk, say) redb fails every
    /// later operation on its handle, reads included, until the handle is
    /// closed. This closes it and opens the file again, which brings it
    /// back to its last durable commit (the events after it are applied
    /// again from the stream). Meanwhile every operation answers
    /// [`ProjectionError::Reopening`]. A read still running on the old
    /// handle holds the file for a moment: the open waits up to 10 s for
    /// it. If the file cannot be opened yet (no space for its repair), the
    /// handle stays closed and this is to be called again.
    pub fn reopen(&self) -> Result<(), ProjectionError> {
        let _one = self
            .shared
            .reopening
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let old = self
            .shared
            .db
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        drop(old);
        let deadline = Instant::now() + Duration::from_secs(10);
        let db = loop {
            match create(&self.shared.path, self.shared.cache_bytes) {
                Ok(db) => break db,
                Err(redb::DatabaseError::DatabaseAlreadyOpen) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(e.into()),
            }
        };
        *self.shared.db.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(db));
        Ok(())
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
        // Every table, so a read before the first apply finds it empty
        // rather than missing (the notifier met "Table 'alerts' does not
        // exist" on a new data directory).
        txn.open_table(GROUPS)?;
        txn.open_table(GROUP_ENTRIES)?;
        txn.open_table(GROUP_LAST)?;
        txn.open_table(GROUP_LAST_OPEN)?;
        txn.open_table(GROUP_HISTORY)?;
        txn.open_table(GROUP_DIRTY)?;
        txn.open_table(VOLUME)?;
        txn.open_table(ALERTS)?;
        Ok(())
    }
}

/// Opens (or creates) the redb file with the projection's cache size.
fn create(path: &Path, cache_bytes: usize) -> Result<Database, redb::DatabaseError> {
    Database::builder().set_cache_size(cache_bytes).create(path)
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
