//! `minilog serve`: gateway, projector and dashboard in one process on one
//! port, over an embedded or external NATS.

use crate::config::ServeArgs;
use crate::embedded::{self, Embedded};
use crate::paths::DataDir;
use crate::shutdown::{self, Shutdown};
use anyhow::Context;
use ingest_gateway::{Gateway, GatewayConfig};
use projector::Projector;
use projector::runner::ProjectorHandle;
use proto::bus::{Bus, StreamSettings};
use proto::commands::{self, CommandError};
use proto::event::{Actor, Role};
use std::sync::Arc;
use std::time::Duration;

pub struct App {
    listener: tokio::net::TcpListener,
    timeouts: crate::http::Timeouts,
    bus: Bus,
    gateway: Gateway,
    projector: Projector,
    handle: ProjectorHandle,
    dashboard: dashboard::Dashboard,
    embedded: Option<Embedded>,
    /// Stops the gateway's background tasks once HTTP has stopped.
    stop_tasks: Shutdown,
    /// `--retain-days`: the pruner (docs/architecture.md, "Retention").
    retention: Option<crate::retention::Retention>,
}

impl App {
    /// Starts NATS (or connects to it), declares the stream, starts the key
    /// registry, opens the projection and binds the listener (port 0 is
    /// fine: [`App::port`] tells the real one).
    pub async fn build(args: ServeArgs) -> anyhow::Result<App> {
        args.http.check()?;
        private_dir(&args.nats.data)?;
        let embedded = match &args.nats.nats_url {
            Some(_) => None,
            None => {
                let bin = embedded::find_binary(args.nats_server_bin.as_deref())?;
                let e = Embedded::start(
                    &args.nats.data,
                    bin,
                    &args.nats.subject_prefix,
                    args.nats_port,
                    &args.nats_sync,
                )
                .await?;
                Some(e)
            }
        };
        let mut bus = crate::connect::connect(&args.nats, "minilog serve", embedded.as_ref())
            .await?
            .with_ack_timeout(Duration::from_secs(args.ingest.ack_timeout.max(1)));
        if let Some(e) = &embedded {
            bus = bus.with_store_dir(&e.store);
        }
        bus.ensure_streams(&stream_settings(&args)).await?;
        if let Some(e) = &embedded {
            e.watch(bus.clone());
        }

        let stop_tasks = Shutdown::default();
        let gateway = Gateway::start(bus.clone(), gateway_config(&args), stop_tasks.wait()).await?;

        let ReadSide {
            projection,
            projector,
            handle,
            retention,
        } = read_side(&args, &bus, &DataDir(&args.nats.data).projection()).await?;
        let gw = gateway.clone();
        let stats_gw = gateway.clone();
        let dashboard = dashboard(
            &args,
            &bus,
            projection,
            handle.clone(),
            Arc::new(move || gw.keys_loaded()),
        )?
        .with_gateway_stats(Arc::new(move || gateway_counters(&stats_gw.stats())));

        ensure_first_admin(&bus, args.admin_password.as_deref()).await?;

        let listener = crate::http::bind(args.listen).await?;
        Ok(App {
            timeouts: args.http.timeouts(),
            listener,
            bus,
            gateway,
            projector,
            handle,
            dashboard,
            embedded,
            stop_tasks,
            retention,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    pub fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    pub fn projector(&self) -> ProjectorHandle {
        self.handle.clone()
    }

    pub fn router(&self) -> axum::Router {
        self.gateway.router().merge(self.dashboard.router())
    }

    /// Serves until `shutdown`, then stops in order: HTTP (in-flight
    /// requests finish), the projector (its batch commits), the embedded
    /// nats-server.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let router = self.router();
        let stop = Shutdown::default();
        let projector = tokio::spawn(self.projector.run(stop.wait()));
        let retention = self.retention.map(|r| tokio::spawn(r.run(stop.wait())));
        let alerts = self.dashboard.notifier(stop.wait()).map(tokio::spawn);
        let shutdown = self.dashboard.ending_streams(shutdown);
        let served = crate::http::serve(self.listener, router, self.timeouts, shutdown)
            .await
            .context("serving HTTP");
        stop.trigger();
        self.stop_tasks.trigger();
        self.gateway.stopped().await;
        let projected = projector.await.context("projector task");
        if let Some(r) = retention {
            let _ = r.await;
        }
        if let Some(a) = alerts {
            let _ = a.await;
        }
        // Last, and whatever happened above: the embedded server stops.
        if let Some(e) = self.embedded {
            e.stop().await;
        }
        served?;
        projected?
    }
}

/// The `MINILOG` and `MINILOG_INGEST` stream settings the flags ask for.
pub fn stream_settings(args: &ServeArgs) -> StreamSettings {
    StreamSettings {
        duplicate_window: Duration::from_secs(args.duplicate_window),
        replicas: args.stream_replicas,
        ingest: proto::bus::IngestSettings {
            max_age: Duration::from_secs(args.ingest.ingest_max_age),
            max_bytes: args.ingest.ingest_max_bytes,
            max_message_bytes: i32::try_from(args.body_limit).unwrap_or(i32::MAX),
        },
    }
}

/// The gateway settings the flags ask for (`serve` and `gateway`).
/// Creates the data directory (or keeps it) readable by its owner only:
/// it holds the NATS credentials, the session key and the projection.
pub fn private_dir(path: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(path)
        .with_context(|| format!("creating the data directory {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("making {} owner-only", path.display()))?;
    }
    Ok(())
}

/// The read side `serve` and `view` share: the projection (a file of
/// another schema version is rebuilt first, with progress), its projector,
/// and the pruner when `--retain-days` asks for one.
pub struct ReadSide {
    pub projection: projector::Projection,
    pub projector: Projector,
    pub handle: projector::runner::ProjectorHandle,
    pub retention: Option<crate::retention::Retention>,
}

pub async fn read_side(
    args: &ServeArgs,
    bus: &Bus,
    db: &std::path::Path,
) -> anyhow::Result<ReadSide> {
    let (projection, _) = projector::rebuild::open_or_rebuild(
        bus,
        db,
        args.cache_mb << 20,
        &mut crate::rebuild::reporter("schema change: rebuilding the projection"),
    )
    .await?;
    let projector = Projector::start(bus.clone(), projection.clone()).await?;
    let handle = projector.handle();
    let retention = args.retain_days.map(|days| {
        crate::retention::Retention::new(bus.clone(), projection.clone(), days)
            .with_projector(handle.clone())
    });
    Ok(ReadSide {
        projection,
        projector,
        handle,
        retention,
    })
}

/// The dashboard as every command that serves it sets it up (`serve`,
/// `view`, `view --read-only`).
pub fn dashboard(
    args: &ServeArgs,
    bus: &Bus,
    projection: projector::Projection,
    handle: projector::runner::ProjectorHandle,
    ready: dashboard::ReadyCheck,
) -> anyhow::Result<dashboard::Dashboard> {
    let session_file = args
        .session_key_file
        .clone()
        .unwrap_or_else(|| DataDir(&args.nats.data).session_key());
    Ok(
        dashboard::Dashboard::new(bus.clone(), projection, handle, ready)
            .with_session_key(dashboard::session::SessionKey::from_file(&session_file)?)
            .with_trusted_proxies(args.trusted_proxy.clone())
            .with_public_url(args.http.public_url.as_deref(), args.http.secure_cookies)
            .with_ready_max_lag(args.http.ready_max_lag)
            .with_limits(limits(args))
            .with_alerts(alert_settings(args)?)
            .with_sso(proxy_settings(args)?, oidc(args)?),
    )
}

/// `--auth-proxy-header`, which only means something with `--trusted-proxy`.
fn proxy_settings(args: &ServeArgs) -> anyhow::Result<Option<dashboard::sso::ProxySettings>> {
    let Some(name) = args.sso.auth_proxy_header.as_deref() else {
        return Ok(None);
    };
    let header = axum::http::HeaderName::try_from(name.trim())
        .map_err(|_| anyhow::anyhow!("--auth-proxy-header {name:?} is not a header name"))?;
    anyhow::ensure!(
        !args.trusted_proxy.is_empty(),
        "--auth-proxy-header needs --trusted-proxy: the addresses of the proxies whose {name} \
         header is believed (from anyone else it is ignored)"
    );
    Ok(Some(dashboard::sso::ProxySettings {
        header,
        create: args.sso.auth_proxy_create == "on",
    }))
}

/// `--oidc-*`: sign-in with an OpenID Connect provider.
fn oidc(args: &ServeArgs) -> anyhow::Result<Option<dashboard::sso::Oidc>> {
    let sso = &args.sso;
    let Some(issuer) = sso.oidc_issuer.as_deref() else {
        return Ok(None);
    };
    // As the provider writes it, a trailing `/` included: discovery and the
    // token's `iss` compare it exactly.
    let issuer = issuer.trim().to_owned();
    let client_id = sso.oidc_client_id.clone().context(
        "--oidc-issuer needs --oidc-client-id: the client id minilog has at the provider",
    )?;
    let public = args.http.public_url.as_deref().context(
        "--oidc-issuer needs --public-url: the provider sends people back to \
         PUBLIC_URL/login/oidc/callback",
    )?;
    let client_secret = match &sso.oidc_client_secret_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading --oidc-client-secret-file {}", path.display()))?;
            let secret = text.trim().to_owned();
            anyhow::ensure!(!secret.is_empty(), "{} is empty", path.display());
            Some(secret)
        }
        None => None,
    };
    let admin_claim = match sso.oidc_admin_claim.as_deref() {
        Some(text) => {
            let (claim, value) = text
                .split_once('=')
                .filter(|(c, v)| !c.trim().is_empty() && !v.trim().is_empty())
                .with_context(|| {
                    format!("--oidc-admin-claim {text:?}: give CLAIM=VALUE, like groups=ops")
                })?;
            Some((claim.trim().to_owned(), value.trim().to_owned()))
        }
        None => None,
    };
    let label = sso.oidc_label.clone().unwrap_or_else(|| {
        reqwest::Url::parse(&issuer)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| issuer.clone())
    });
    let settings = dashboard::sso::OidcSettings {
        issuer,
        client_id,
        client_secret,
        admin_claim,
        name_claim: sso.oidc_name_claim.clone(),
        label,
        clock_skew: Duration::from_secs(sso.oidc_clock_skew),
        scopes: sso
            .oidc_scopes
            .iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty() && s != "openid")
            .collect(),
        redirect_url: format!(
            "{}/login/oidc/callback",
            public.trim().trim_end_matches('/')
        ),
        post_logout_url: sso
            .oidc_single_logout
            .then(|| format!("{}/login", public.trim().trim_end_matches('/'))),
    };
    Ok(Some(dashboard::sso::Oidc::new(settings)?))
}

/// The alerts key (sealing webhook URLs) of `--alerts-key-file` or the
/// data directory's; `serve` and `view` create it when missing, the
/// admin commands only read it (a key made by a command where no view
/// runs would seal URLs the views cannot open).
pub fn alerts_key(
    data: &std::path::Path,
    file: Option<&std::path::Path>,
    create: bool,
) -> anyhow::Result<proto::seal::SealKey> {
    let path = file.map_or_else(|| DataDir(data).alerts_key(), |f| f.to_owned());
    if create {
        proto::seal::SealKey::load_or_create(&path)
    } else {
        proto::seal::SealKey::load(&path)
    }
}

/// The SMTP server of `--smtp-url`, if given.
pub fn smtp(
    args: &crate::config::SmtpArgs,
) -> anyhow::Result<Option<dashboard::alerts::email::Smtp>> {
    let Some(url) = &args.smtp_url else {
        return Ok(None);
    };
    let from = args
        .smtp_from
        .as_deref()
        .ok_or_else(|| anyhow::anyhow!("--smtp-url needs --smtp-from (the sender)"))?;
    let ca = match &args.smtp_ca_file {
        Some(f) => Some(std::fs::read(f).with_context(|| format!("reading {}", f.display()))?),
        None => None,
    };
    dashboard::alerts::email::Smtp::new(url, from, ca.as_deref()).map(Some)
}

fn alert_settings(args: &ServeArgs) -> anyhow::Result<dashboard::alerts::Settings> {
    Ok(dashboard::alerts::Settings {
        seal: Arc::new(alerts_key(
            &args.nats.data,
            args.alerts.alerts_key_file.as_deref(),
            true,
        )?),
        public_url: args.http.public_url.clone(),
        cap_window: Duration::from_secs(args.alerts.alert_cap_window.max(1)),
        retry_for: Duration::from_secs(args.alerts.alert_retry_for.max(1)),
        smtp: smtp(&args.alerts.smtp)?.map(Arc::new),
        enabled: !args.alerts.no_alerts,
    })
}

/// What an entry may hold, wherever it comes from.
fn limits(args: &ServeArgs) -> proto::input::Limits {
    proto::input::Limits {
        max_message_bytes: args.max_message_bytes,
    }
}

pub fn gateway_config(args: &ServeArgs) -> GatewayConfig {
    GatewayConfig {
        limits: limits(args),
        body_limit: args.body_limit,
        trusted_proxies: args.trusted_proxy.clone(),
        rate_limit: args.ingest.rate_limit,
        browser: ingest_gateway::BrowserConfig {
            max_token_ttl: Duration::from_secs(args.ingest.browser_token_max_ttl),
            address_limit: args.ingest.browser_address_limit,
            address_window: Duration::from_secs(args.ingest.browser_address_window),
            max_message_chars: args.ingest.browser_max_message_chars,
            ..Default::default()
        },
        nats: ingest_gateway::NatsIngestConfig {
            ack_wait: Duration::from_secs(args.ingest.ingest_ack_wait),
            ..Default::default()
        },
        metrics_token: args.http.metrics_token.clone(),
    }
}

/// The gateway's counters as the health page lists them.
pub fn gateway_counters(stats: &ingest_gateway::Stats) -> Vec<(String, u64)> {
    let mut rows = vec![
        ("accepted".to_owned(), stats.accepted),
        (
            "duplicates (retries answered with their first id)".to_owned(),
            stats.duplicates,
        ),
    ];
    rows.extend(
        stats
            .rejected
            .iter()
            .map(|(reason, n)| (format!("rejected: {reason}"), *n)),
    );
    rows
}

/// On a first start (no user events in the stream), creates `admin` with
/// the given password or a printed one-time one. The stream refuses a
/// second creation, so two processes starting together make one admin.
pub async fn ensure_first_admin(bus: &Bus, password: Option<&str>) -> anyhow::Result<()> {
    let reader = bus.read_from(1, Some(bus.subjects().all_users())).await?;
    if reader.pending_at_start > 0 {
        return Ok(());
    }
    let (password, generated) = match password {
        Some(p) => (p.to_owned(), false),
        None => (proto::secret::generate_password(), true),
    };
    match commands::create_user(bus, "admin", &password, Role::Admin, Actor::System).await {
        Ok(_) if generated => {
            println!(
                "Created the first dashboard user: admin / {password}  (shown once; change it)"
            );
        }
        Ok(_) => println!(
            "Created the first dashboard user: admin (password from MINILOG_ADMIN_PASSWORD)"
        ),
        Err(CommandError::Exists(_)) => {}
        Err(e) => return Err(anyhow::anyhow!("creating the first admin: {e}")),
    }
    Ok(())
}

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let app = App::build(args).await?;
    tracing::info!(port = app.port(), "minilog serving");
    println!("minilog is listening on port {}", app.port());
    app.run(shutdown::signal()).await
}
