//! `ingest-gateway` is minilog's front door for programs that send log
//! entries: it checks their keys, validates what they send with the one
//! validation in [`proto::input`], and answers `200` only once JetStream
//! has acknowledged the `Logged` event (docs/architecture.md §4).
//!
//! Layout:
//! - [`registry`]: every key in memory, fed by the key events on the
//!   stream; lookups by the verifier of a presented secret.
//! - `form`: `POST /log/add/`, the seed-compatible form (plain text).
//! - `entries`: `POST /api/v1/entries`, the JSON API (batches,
//!   idempotency).
//! - `publish`: validated entries into `Logged` events, message ids,
//!   many acks in flight.
//! - [`error`]: the one error type and its status mapping.
//! - `body`: reading bodies within the limit; the form encoding.
//! - [`stats`]: accepted and rejected counts for `/metrics` and health.
//! - [`limits`]: token buckets per key and per browser address (moka).
//! - `nats`: draining `MINILOG_INGEST` with the shared durable consumer,
//!   answering `minilog.submit.>` requests.
//! - `browser`: `GET /minilog.js` and `POST /api/v1/browser` (tokens,
//!   origins, CORS, the per-address limit).
//! - `sentry`: the Sentry SDK protocol (`/api/<n>/envelope/`,
//!   `/api/<n>/store/`): envelopes, DSN keys, events and logs as entries.
//! - `otlp`: OTLP/HTTP logs (`/v1/logs`, protobuf and JSON, partial success).
//! - `fields`: entry fields from other protocols' shapes (cut, meta within
//!   its limits, messages kept).
//! - `decode`: `Content-Encoding` (gzip, deflate, br, zstd) within a limit.

mod body;
mod browser;
mod decode;
mod entries;
pub mod error;
mod fields;
mod form;
pub mod limits;
mod nats;
mod otlp;
mod publish;
pub mod registry;
mod retry;
mod sentry;
pub mod stats;

pub use error::ApiError;
pub use form::ADD_BY_HAND_PAGE;
/// The OTLP logs messages, for clients (the benchmark) that send them.
pub use otlp::messages as otlp_messages;
pub use stats::Stats;

use anyhow::Context as _;
use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use error::KeyRefusal;
use futures::FutureExt as _;
use proto::bus::Bus;
use registry::{Lookup, Registry};
use stats::Path;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// Message length limit (longer ones are trimmed with a marker).
    pub limits: proto::input::Limits,
    /// Largest request body in bytes; a bigger one is answered `413`.
    pub body_limit: usize,
    /// Peers whose `X-Forwarded-For` is believed (reverse proxies).
    pub trusted_proxies: Vec<IpAddr>,
    /// Entries per minute per key, unless the key sets its own limit.
    pub rate_limit: u32,
    pub browser: BrowserConfig,
    pub nats: NatsIngestConfig,
    /// `/metrics` answers a request with `Authorization: Bearer <this>`;
    /// without a token, only loopback clients.
    pub metrics_token: Option<String>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            limits: proto::input::Limits::default(),
            body_limit: 4 * 1024 * 1024,
            trusted_proxies: Vec::new(),
            rate_limit: 6000,
            browser: BrowserConfig::default(),
            nats: NatsIngestConfig::default(),
            metrics_token: None,
        }
    }
}

/// Browser reports (`POST /api/v1/browser`).
#[derive(Clone, Debug)]
pub struct BrowserConfig {
    /// Tokens whose expiry lies further ahead are refused.
    pub max_token_ttl: Duration,
    /// Reports per address per `address_window`.
    pub address_limit: u32,
    pub address_window: Duration,
    /// Longer messages are cut to this many characters.
    pub max_message_chars: usize,
    /// Most addresses whose limit is remembered at once.
    pub max_addresses: u64,
}

impl Default for BrowserConfig {
    fn default() -> Self {
        BrowserConfig {
            max_token_ttl: Duration::from_secs(15 * 60),
            address_limit: 7,
            address_window: Duration::from_secs(12 * 3600),
            max_message_chars: 2048,
            max_addresses: 100_000,
        }
    }
}

/// Direct NATS ingestion (`minilog.ingest.>`, `minilog.submit.>`).
#[derive(Clone, Debug)]
pub struct NatsIngestConfig {
    /// Drain `MINILOG_INGEST` and answer submit requests.
    pub enabled: bool,
    /// A submission not acked this long after delivery (its gateway died)
    /// is delivered again.
    pub ack_wait: Duration,
    /// Submissions handled at once.
    pub concurrency: usize,
    /// Tests only: publish the first submission's event, then stop
    /// draining without acking it, as a gateway killed at that moment.
    #[doc(hidden)]
    pub stop_before_ack: bool,
}

impl Default for NatsIngestConfig {
    fn default() -> Self {
        NatsIngestConfig {
            enabled: true,
            ack_wait: Duration::from_secs(30),
            concurrency: 256,
            stop_before_ack: false,
        }
    }
}

/// The running gateway: cheap to clone, every clone shares the registry
/// and the counters.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    bus: Bus,
    config: GatewayConfig,
    registry: Arc<Registry>,
    counters: stats::Counters,
    key_limits: limits::Limiter,
    address_limits: limits::Limiter,
    /// Every task the gateway spawned, awaited by [`Gateway::stopped`].
    tasks: TaskTracker,
}

impl Gateway {
    /// Starts the key registry, which follows the key events until
    /// `shutdown` completes. The `MINILOG` stream must exist.
    pub async fn start(
        bus: Bus,
        config: GatewayConfig,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<Gateway> {
        let shutdown = shutdown.shared();
        let registry = Arc::new(Registry::new(bus.subjects()));
        let connections = bus.connections();
        let reader = bus
            .read_from(1, Some(bus.subjects().all_keys()))
            .await
            .context("starting to read the key events")?;
        if reader.pending_at_start == 0 {
            registry.mark_loaded();
        }
        let tasks = TaskTracker::new();
        tasks.spawn(registry::follow(
            registry.clone(),
            bus.clone(),
            reader,
            connections,
            shutdown.clone(),
        ));
        let address_limits =
            limits::Limiter::new(config.browser.address_window, config.browser.max_addresses);
        let gateway = Gateway {
            inner: Arc::new(Inner {
                bus,
                config,
                registry,
                counters: stats::Counters::default(),
                key_limits: limits::Limiter::new(Duration::from_secs(60), 100_000),
                address_limits,
                tasks,
            }),
        };
        if gateway.config().nats.enabled {
            let tasks = &gateway.inner.tasks;
            tasks.spawn(nats::drain(gateway.clone(), shutdown.clone()));
            tasks.spawn(nats::answer_requests(gateway.clone(), shutdown));
        }
        Ok(gateway)
    }

    /// Waits until every task of the gateway has ended (the key registry's
    /// follower, the drain, the answerer and every submission they were
    /// handling), which they do once the `shutdown` given to
    /// [`Gateway::start`] has completed.
    pub async fn stopped(&self) {
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
    }

    /// Runs `task` as one of the gateway's own ([`Gateway::stopped`] waits
    /// for it).
    pub(crate) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.inner.tasks.spawn(task);
    }

    /// `POST /log/add/` (and `GET`, a redirect), `POST /api/v1/entries`,
    /// `GET /minilog.js`, `POST /api/v1/browser` (and its preflight),
    /// the Sentry SDK protocol's `/api/<n>/envelope/` and `/api/<n>/store/`,
    /// OTLP/HTTP logs at `POST /v1/logs`,
    /// `GET /metrics` (Prometheus text).
    /// Serve it with `into_make_service_with_connect_info::<SocketAddr>()`
    /// so entries record the submitter's address.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/log/add/", get(form::redirect).post(form_add))
            .route("/api/v1/entries", post(entries_add))
            .route(
                "/api/v1/browser",
                post(browser_add).options(browser::preflight),
            )
            .route("/minilog.js", get(browser::script))
            .route(
                "/api/{project}/envelope/",
                post(sentry::envelope).options(sentry::preflight),
            )
            .route(
                "/api/{project}/envelope",
                post(sentry::envelope).options(sentry::preflight),
            )
            .route(
                "/api/{project}/store/",
                post(sentry::store_endpoint).options(sentry::preflight),
            )
            .route(
                "/api/{project}/store",
                post(sentry::store_endpoint).options(sentry::preflight),
            )
            .route(
                "/api/{project}/security/",
                post(sentry::security_endpoint).options(sentry::preflight),
            )
            .route(
                "/api/{project}/security",
                post(sentry::security_endpoint).options(sentry::preflight),
            )
            .route("/v1/logs", post(otlp::logs))
            .route("/metrics", get(metrics))
            .with_state(self.clone())
    }

    /// Whether the key registry has caught up with the stream.
    pub fn keys_loaded(&self) -> bool {
        self.inner.registry.loaded()
    }

    /// The stream sequence of the last key event the registry applied.
    pub fn key_seq(&self) -> watch::Receiver<u64> {
        self.inner.registry.seq()
    }

    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    pub fn stats(&self) -> Stats {
        self.inner.counters.snapshot()
    }

    pub(crate) fn config(&self) -> &GatewayConfig {
        &self.inner.config
    }

    pub(crate) fn bus(&self) -> &Bus {
        &self.inner.bus
    }

    pub(crate) fn counters(&self) -> &stats::Counters {
        &self.inner.counters
    }

    /// The key id of a presented secret, or why it is refused. Until the
    /// registry has caught up, a key might be missing or its revocation
    /// not yet applied, so nothing is decided: `503`, try again.
    pub(crate) fn authenticate(
        &self,
        presented: Result<&[u8], KeyRefusal>,
    ) -> Result<String, ApiError> {
        let presented = presented.map_err(ApiError::Key)?;
        if !self.keys_loaded() {
            return Err(ApiError::Starting);
        }
        match self.inner.registry.lookup(presented) {
            Lookup::Active(key_id) => Ok(key_id),
            Lookup::Revoked => Err(ApiError::Key(KeyRefusal::Revoked)),
            Lookup::Unknown => Err(ApiError::Key(KeyRefusal::Unknown)),
        }
    }

    /// The address to store with an entry, if the server knows the peer.
    pub(crate) fn client_ip(&self, parts: &Parts) -> Option<String> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        proto::client_addr::client_ip(
            peer,
            parts
                .headers
                .get_all("x-forwarded-for")
                .iter()
                .map(|v| v.as_bytes()),
            &self.inner.config.trusted_proxies,
        )
        .map(|ip| ip.to_string())
    }

    /// Takes `cost` entries from the key's rate limit (its own, else the
    /// default); over it, `429` with `Retry-After`.
    pub(crate) fn check_rate(&self, key_id: &str, cost: usize) -> Result<(), ApiError> {
        let limit = self
            .inner
            .registry
            .rate_limit(key_id)
            .unwrap_or(self.inner.config.rate_limit);
        let cost = u32::try_from(cost).unwrap_or(u32::MAX);
        self.inner
            .key_limits
            .check(key_id, limit, cost)
            .map_err(|wait| ApiError::RateLimited {
                retry_after: limits::retry_after_secs(wait),
            })
    }

    /// Takes one report from a browser address's limit.
    pub(crate) fn check_address(&self, addr: &str) -> Result<(), ApiError> {
        self.inner
            .address_limits
            .check(addr, self.inner.config.browser.address_limit, 1)
            .map_err(|wait| ApiError::AddressLimited {
                retry_after: limits::retry_after_secs(wait),
            })
    }

    /// Counts a refusal, and logs it once if it is our failure.
    pub(crate) fn reject(&self, path: Path, e: &ApiError) {
        self.inner.counters.rejected(path, e.reason());
        match e {
            ApiError::Unavailable {
                cause,
                stored_ids,
                unconfirmed,
                disk_free,
            } => tracing::warn!(
                cause = %cause.chain(),
                stored = stored_ids.len(),
                unconfirmed,
                disk_free,
                "entries not stored: the event log is unavailable"
            ),
            ApiError::Internal { cause, stored_ids } => tracing::error!(
                cause = %cause.chain(),
                stored = stored_ids.len(),
                "entries not stored: the event log refused them"
            ),
            _ => {}
        }
    }
}

async fn form_add(State(gw): State<Gateway>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    match form::add(&gw, parts, body).await {
        Ok(response) => response,
        Err(e) => {
            gw.reject(Path::Http, &e);
            e.into_plain_response()
        }
    }
}

async fn entries_add(State(gw): State<Gateway>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    match entries::add(&gw, parts, body).await {
        Ok(response) => response,
        Err(e) => {
            gw.reject(Path::Http, &e);
            e.into_response()
        }
    }
}

async fn browser_add(State(gw): State<Gateway>, request: Request) -> Response {
    browser::add(gw, request).await
}

/// Prometheus text, for clients on this machine (a loopback peer that
/// forwards for nobody) or holders of `--metrics-token`
/// (the counters tell an outsider which keys are refused and how busy
/// minilog is).
async fn metrics(State(gw): State<Gateway>, request: axum::extract::Request) -> Response {
    let (parts, _) = request.into_parts();
    let allowed = match &gw.config().metrics_token {
        Some(token) => parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|given| {
                use subtle::ConstantTimeEq;
                bool::from(given.trim().as_bytes().ct_eq(token.as_bytes()))
            }),
        // A loopback peer that forwards for someone (a proxy on this
        // machine) speaks for a client elsewhere: not local.
        None => {
            let peer = parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_canonical());
            let forwarded = parts.headers.contains_key("x-forwarded-for")
                || parts.headers.contains_key(axum::http::header::FORWARDED);
            peer.is_some_and(|ip| ip.is_loopback()) && !forwarded
        }
    };
    if !allowed {
        let why = if gw.config().metrics_token.is_some() {
            "send Authorization: Bearer <the --metrics-token>"
        } else {
            "it answers clients on this machine only; start minilog with --metrics-token TOKEN \
             and send Authorization: Bearer TOKEN to read it from elsewhere"
        };
        return (
            axum::http::StatusCode::FORBIDDEN,
            format!("/metrics: {why}\n"),
        )
            .into_response();
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        gw.stats().prometheus(),
    )
        .into_response()
}
