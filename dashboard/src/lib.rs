//! `dashboard` is minilog's read side over HTTP: the HTML pages (login,
//! sessions, CSRF), the JSON read and triage API and the health routes. It reads the
//! projection and never writes it: a user action publishes an event,
//! waits until the projector has applied it, then answers.
//!
//! Layout:
//! - [`auth`]: password checks for Basic and the login form: failure
//!   limits before hashing, a fixed argon2 pool, verified credentials cached.
//! - [`api`]: `GET /api/v1/entries`, `GET /api/v1/entries/{id}`, resolve
//!   and unresolve.
//! - [`groups_api`]: `GET /api/v1/groups`, `GET /api/v1/groups/{id}`,
//!   resolving and reopening a group.
//! - [`health`]: `/healthz` and `/readyz`.
//! - [`pages`]: the HTML pages (login, list, entry, keys, users, audit,
//!   health), askama templates in `templates/`.
//! - [`session`]: signed session cookies and CSRF tokens.
//! - [`sso`]: single sign-on, an authenticating proxy's header and OpenID Connect.
//! - [`tail`]: `GET /api/v1/entries/stream`, the live tail (server-sent events).
//! - [`error`]: the one error type of this boundary and its status mapping.

pub mod alerts;
pub mod api;
pub mod auth;
pub mod error;
pub mod groups_api;
pub mod health;
pub mod pages;
pub mod session;
pub mod sso;
pub mod tail;

use projector::Projection;
use projector::runner::ProjectorHandle;
use proto::bus::Bus;
use std::sync::Arc;
use std::time::Duration;

/// Whether another part (the gateway's key registry) is ready.
pub type ReadyCheck = Arc<dyn Fn() -> bool + Send + Sync>;

/// Counters to show on the health page (the gateway's, when it runs here).
pub type StatsSource = Arc<dyn Fn() -> Vec<(String, u64)> + Send + Sync>;

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
    session_key: session::SessionKey,
    gateway_stats: Option<StatsSource>,
    /// Peers whose `X-Forwarded-For` is believed (login limits count the
    /// client behind them).
    trusted_proxies: Vec<std::net::IpAddr>,
    cookies: session::Cookies,
    /// Origins besides the request's own `Host` that the JSON API accepts
    /// in `Origin` (the `--public-url` behind a proxy that rewrites Host).
    public_origin: Option<String>,
    /// Events `/readyz` lets the projection be behind (a load balancer's
    /// probe must not flap during every write burst).
    ready_max_lag: u64,
    /// The limits of entries added by hand (the gateway's, `--max-message-bytes`).
    limits: proto::input::Limits,
    /// The open live tails (shared by every copy of this dashboard).
    tails: Arc<tail::Tails>,
    /// How alerts go out, when this process sends them.
    alerts: Option<Arc<alerts::Settings>>,
    alert_status: alerts::Status,
    /// `--auth-proxy-header`: who an authenticating proxy says it is.
    proxy: Option<Arc<sso::ProxySettings>>,
    /// `--oidc-issuer`: sign-in with an OpenID Connect provider.
    oidc: Option<Arc<sso::Oidc>>,
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
                // Replaced by `with_session_key`; alone it lasts as long as the process.
                session_key: session::SessionKey::random(),
                gateway_stats: None,
                trusted_proxies: Vec::new(),
                cookies: session::Cookies::default(),
                public_origin: None,
                ready_max_lag: 0,
                limits: proto::input::Limits::default(),
                tails: Arc::new(tail::Tails::new(
                    tail::MAX_STREAMS,
                    tail::MAX_STREAMS_PER_USER,
                )),
                alerts: None,
                alert_status: alerts::Status::default(),
                proxy: None,
                oidc: None,
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

    /// Signs sessions with this key (from a file shared by several views).
    pub fn with_session_key(self, key: session::SessionKey) -> Dashboard {
        let mut inner = (*self.inner).clone();
        inner.session_key = key;
        Dashboard {
            inner: Arc::new(inner),
        }
    }

    /// Single sign-on: an authenticating proxy's header (believed from the
    /// trusted proxies only), an OpenID Connect provider, or both.
    pub fn with_sso(self, proxy: Option<sso::ProxySettings>, oidc: Option<sso::Oidc>) -> Dashboard {
        let mut inner = (*self.inner).clone();
        inner.proxy = proxy.map(Arc::new);
        inner.oidc = oidc.map(Arc::new);
        Dashboard {
            inner: Arc::new(inner),
        }
    }

    /// Believes `X-Forwarded-For` from these peers.
    pub fn with_trusted_proxies(self, proxies: Vec<std::net::IpAddr>) -> Dashboard {
        let mut inner = (*self.inner).clone();
        inner.trusted_proxies = proxies;
        Dashboard {
            inner: Arc::new(inner),
        }
    }

    /// The address people use (`--public-url`): its origin is accepted in
    /// `Origin`, and `https://` makes the cookies `Secure` (also forced
    /// with `secure_cookies`).
    pub fn with_public_url(self, public_url: Option<&str>, secure_cookies: bool) -> Dashboard {
        let mut inner = (*self.inner).clone();
        let origin = public_url.map(|u| {
            let u = u.trim().trim_end_matches('/');
            match u.find("://").map(|i| i + 3) {
                Some(start) => match u[start..].find('/') {
                    Some(slash) => u[..start + slash].to_owned(),
                    None => u.to_owned(),
                },
                None => u.to_owned(),
            }
        });
        inner.cookies.secure =
            secure_cookies || origin.as_deref().is_some_and(|o| o.starts_with("https://"));
        inner.public_origin = origin.map(|o| o.to_ascii_lowercase());
        Dashboard {
            inner: Arc::new(inner),
        }
    }

    /// Lets `/readyz` answer 200 while the projection is up to `lag`
    /// events behind (`?max_lag=0` asks for the exact check).
    pub fn with_ready_max_lag(self, lag: u64) -> Dashboard {
        let mut inner = (*self.inner).clone();
        inner.ready_max_lag = lag;
        Dashboard {
            inner: Arc::new(inner),
        }
    }

    /// Entries added by hand keep the limits entries sent by programs do.
    pub fn with_limits(self, limits: proto::input::Limits) -> Dashboard {
        let mut inner = (*self.inner).clone();
        inner.limits = limits;
        Dashboard {
            inner: Arc::new(inner),
        }
    }

    /// Sends alerts with these settings ([`Dashboard::notifier`]).
    pub fn with_alerts(self, settings: alerts::Settings) -> Dashboard {
        let mut inner = (*self.inner).clone();
        inner.alerts = Some(Arc::new(settings));
        Dashboard {
            inner: Arc::new(inner),
        }
    }

    /// The alert notifier, to run until `shutdown`, unless this dashboard
    /// does not send alerts (read-only, `--no-alerts`, none configured).
    pub fn notifier(
        &self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
        let settings = self
            .inner
            .alerts
            .clone()
            .filter(|s| s.enabled && !self.inner.read_only)?;
        Some(alerts::run(
            self.clone(),
            settings,
            self.inner.alert_status.clone(),
            shutdown,
        ))
    }

    /// Shows these counters on the health page.
    pub fn with_gateway_stats(self, stats: StatsSource) -> Dashboard {
        let mut inner = (*self.inner).clone();
        inner.gateway_stats = Some(stats);
        Dashboard {
            inner: Arc::new(inner),
        }
    }

    pub fn is_read_only(&self) -> bool {
        self.inner.read_only
    }

    pub fn router(&self) -> axum::Router {
        api::routes()
            .merge(tail::routes())
            .merge(health::routes())
            .merge(pages::routes())
            .merge(sso::routes())
            .layer(axum::middleware::from_fn_with_state(
                self.clone(),
                sso::proxy_layer,
            ))
            .with_state(self.clone())
    }
}
