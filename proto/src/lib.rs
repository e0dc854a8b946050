//! `proto` is minilog's shared vocabulary: everything that more than one
//! part of the system (and its clients) must agree on.
//!
//! Layout:
//! - [`level`]: the six levels and every spelling clients send.
//! - [`input`]: a submission as clients send it, validated once into a
//!   [`input::NewEntry`] (message limits, meta limits, times).
//! - [`event`]: the events on the `MINILOG` stream, their MessagePack
//!   encoding and its version story.
//! - [`ids`]: key ids and user ids (tokens safe in a subject and a URL).
//! - [`secret`]: key secrets, their SHA-256 verifier, the browser-signing
//!   key and browser tokens, DSN keys and DSNs; password hashing.
//! - [`subjects`]: subject and stream names, in one place.
//! - [`filter`]: the entry filter shared by queries and bulk triage rules.
//! - [`grouping`]: which group an entry belongs to (its key, normalisation).
//! - [`bus`]: the one module that talks to NATS.
//! - [`commands`]: publishing the administrative events (keys, users).
//! - [`clock`]: server time as Unix milliseconds and its RFC 3339 form.
//! - [`client_addr`]: a client's address behind trusted proxies.
//! - [`state`]: keys and users as their events make them (one fold).
//! - [`traceback`]: Python tracebacks in a message read into an exception
//!   chain.

pub mod alert;
pub mod bus;
pub mod client_addr;
pub mod clock;
pub mod commands;
pub mod event;
pub mod filter;
pub mod grouping;
pub mod ids;
pub mod input;
pub mod level;
pub mod seal;
pub mod secret;
pub mod state;
pub mod subjects;
pub mod traceback;

pub use event::{Actor, Envelope, Event};
pub use level::Level;
