//! `dashboard` is minilog's read side over HTTP: the JSON read and triage
//! API and the health routes (the HTML pages come next). It reads the
//! projection and never writes it: a user action publishes an event,
//! waits until the projector has applied it, then answers.
//!
//! Layout:
//! - [`auth`]: HTTP Basic with dashboard users, verified credentials cached.
//! - [`api`]: `GET /api/v1/entries`, `GET /api/v1/entries/{id}`, resolve
//!   and unresolve.
//! - [`health`]: `/healthz` and `/readyz`.
//! - [`error`]: the one error type of this boundary and its status mapping.

pub mod api;
pub mod auth;
pub mod error;
pub mod health;

use projector::Projection;
use projector::runner::ProjectorHandle;
use proto::bus::Bus;
use std::sync::Arc;
use std::time::Duration;

/// Whether another part (the gateway's key registry) is ready.
pub type ReadyCheck = Arc<dyn Fn() -> bool + Send + Sync>;

#[derive(Clone)]
pub struct Dashboard {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    projection: Projection,
    projector: ProjectorHandle,
    bus: Bus,
    auth: auth::Authenticator,
    keys_loaded: ReadyCheck,
    /// How long `min_seq` and user actions wait for the projector.
    wait: Duration,
    /// Serving a frozen projection (`minilog view --read-only`): no
    /// actions are offered, and action endpoints answer 403.
    read_only: bool,
}

impl Dashboard {
    pub fn new(
        bus: Bus,
        projection: Projection,
        projector: ProjectorHandle,
        keys_loaded: ReadyCheck,
    ) -> Dashboard {
        Dashboard {
            inner: Arc::new(Inner {
                auth: auth::Authenticator::new(projection.clone()),
                projection,
                projector,
                bus,
                keys_loaded,
                wait: Duration::from_secs(10),
                read_only: false,
            }),
        }
    }

    /// The same dashboard, without actions (a projection of the past).
    pub fn read_only(self) -> Dashboard {
        let mut inner = (*self.inner).clone();
        inner.read_only = true;
        Dashboard {
            inner: Arc::new(inner),
        }
    }

    pub fn is_read_only(&self) -> bool {
        self.inner.read_only
    }

    pub fn router(&self) -> axum::Router {
        api::routes()
            .merge(health::routes())
            .with_state(self.clone())
    }
}
