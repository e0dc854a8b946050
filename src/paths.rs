//! The files minilog keeps under `--data`, named in one place (README,
//! "Running it" lists them for people).

use std::path::{Path, PathBuf};

/// The data directory (`--data`).
#[derive(Clone, Copy, Debug)]
pub struct DataDir<'a>(pub &'a Path);

impl DataDir<'_> {
    /// The redb projection `serve` and `view` read and the projector writes.
    pub fn projection(self) -> PathBuf {
        self.0.join("projection.redb")
    }

    /// The key that signs dashboard sessions (unless `--session-key-file`).
    pub fn session_key(self) -> PathBuf {
        self.0.join("session.key")
    }

    /// The key that seals alert webhook URLs (unless `--alerts-key-file`).
    pub fn alerts_key(self) -> PathBuf {
        self.0.join("alerts.key")
    }

    /// The embedded nats-server's address, for admin commands and the
    /// next start (which keeps its port).
    pub fn nats_url(self) -> PathBuf {
        self.0.join("nats.url")
    }

    /// The embedded nats-server's generated users.
    pub fn nats_credentials(self) -> PathBuf {
        self.0.join("nats-credentials.json")
    }

    /// The embedded nats-server's config, log, pid file and store.
    pub fn nats_dir(self) -> PathBuf {
        self.0.join("nats")
    }
}
