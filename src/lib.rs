//! The `minilog` binary's library: wiring the crates together into the
//! commands a person runs. No business logic lives here.
//!
//! Layout:
//! - [`config`]: command-line flags, each with its `MINILOG_*` twin.
//! - [`connect`]: connecting to NATS (flags, embedded server, `DATA/nats.url`).
//! - [`embedded`]: the supervised local `nats-server` child with generated
//!   credentials, used when no `--nats-url` is given.
//! - [`app`]: `serve`: gateway + projector + dashboard on one port.
//! - [`admin`]: `key …` and `user …`, which talk to the stream directly.
//! - [`shutdown`]: one signal that every long-running task listens to.
//! - [`rebuild`]: `rebuild` (whole, or `--until` into another file) and the
//!   progress display of every rebuild.
//! - [`retention`]: `--retain-days`: carry, prune, purge (docs/architecture.md, "Retention").
//! - [`split`]: split mode: `gateway` and `view` (also `view --read-only`).
//! - [`paths`]: the files under the data directory.
//! - [`tail`]: `tail`, which follows a running minilog's live tail over HTTP.
//! - [`import`]: `import django-minimal-log`, an installation of the original
//!   published as events (docs/import.md).

pub mod admin;
pub mod alert_cli;
pub mod app;
pub mod config;
pub mod connect;
pub mod embedded;
pub mod http;
pub mod import;
pub mod paths;
pub mod rebuild;
pub mod retention;
pub mod shutdown;
pub mod split;
pub mod tail;
