//! The gateway against a real nats-server: every test starts its own
//! server, gateway and HTTP listener (see `helpers`).

mod entries;
mod form;
mod helpers;
mod keys;
mod limits;
mod outage;
