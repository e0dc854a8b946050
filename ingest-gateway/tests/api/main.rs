//! The gateway against a real nats-server: every test starts its own
//! server, gateway and HTTP listener (see `helpers`).

mod browser;
mod entries;
mod form;
mod helpers;
mod keys;
mod limits;
mod nats;
mod otlp;
mod outage;
mod rate;
mod sentry;
