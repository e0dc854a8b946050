//! The `minilog` binary's library: wiring the crates together into the
//! commands a person runs. No business logic lives here.
//!
//! Layout:
//! - [`config`]: command-line flags, each with its `MINILOG_*` twin.
//! - [`embedded`]: the supervised local `nats-server` child with generated
//!   credentials, used when no `--nats-url` is given.
//! - [`app`]: `serve`: gateway + projector + dashboard on one port.
//! - [`admin`]: `key …` and `user …`, which talk to the stream directly.
//! - [`shutdown`]: one signal that every long-running task listens to.

pub mod admin;
pub mod app;
pub mod config;
pub mod embedded;
pub mod shutdown;
