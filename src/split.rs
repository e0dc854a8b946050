//! Split mode (docs/architecture.md, "Processes"): `minilog gateway` (ingestion only,
//! stateless, run many) and `minilog view` (projector + dashboard with its
//! own projection, one per reader; each builds its copy from the stream).
//! `minilog view --db FILE --read-only` serves a rebuilt file of the past
//! with no projector and no actions.

use crate::app::{ensure_first_admin, gateway_config, stream_settings};
use crate::config::{ServeArgs, ViewArgs};
use crate::shutdown::{self, Shutdown};
use anyhow::{Context, bail};
use axum::Json;
use axum::http::StatusCode;
use axum::routing::get;
use ingest_gateway::Gateway;
use projector::rebuild;
use projector::runner::ProjectorHandle;
use projector::{Projection, Projector};
use proto::bus::Bus;
use serde_json::json;
use std::future::Future;
use std::sync::Arc;

/// Connects as `name` with the flags, else like the admin commands
/// (`DATA/nats.url`), with the ack timeout the flags ask for.
async fn connect(args: &ServeArgs, name: &str) -> anyhow::Result<Bus> {
    let ack_timeout = std::time::Duration::from_secs(args.ingest.ack_timeout.max(1));
    let bus = crate::connect::connect(&args.nats, name, None).await?;
    Ok(bus.with_ack_timeout(ack_timeout))
}

use crate::http::bind;

/// `minilog gateway`: HTTP and NATS ingestion, the key registry, health.
pub struct GatewayApp {
    listener: tokio::net::TcpListener,
    timeouts: crate::http::Timeouts,
    bus: Bus,
    gateway: Gateway,
    stop_tasks: Shutdown,
}

impl GatewayApp {
    pub async fn build(args: ServeArgs) -> anyhow::Result<GatewayApp> {
        args.http.check()?;
        if args.nats.nats_url.is_none() {
            bail!(
                "`minilog gateway` needs --nats-url (split mode runs against a NATS server or \
                 cluster; `minilog serve` runs everything in one process instead)"
            );
        }
        let bus = connect(&args, "minilog gateway").await?;
        bus.ensure_streams(&stream_settings(&args)).await?;
        let stop_tasks = Shutdown::default();
        let gateway = Gateway::start(bus.clone(), gateway_config(&args), stop_tasks.wait()).await?;
        let listener = bind(args.listen).await?;
        Ok(GatewayApp {
            timeouts: args.http.timeouts(),
            listener,
            bus,
            gateway,
            stop_tasks,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    /// Ingestion routes, `/healthz`, and `/readyz` (ready once the key
    /// registry has caught up and NATS is connected).
    pub fn router(&self) -> axum::Router {
        let gw = self.gateway.clone();
        let bus = self.bus.clone();
        let health_bus = self.bus.clone();
        let readyz = get(move || {
            let (gw, bus) = (gw.clone(), bus.clone());
            async move {
                let keys_loaded = gw.keys_loaded();
                let connected = bus.is_connected();
                let ready = keys_loaded && connected;
                let code = if ready {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                (
                    code,
                    Json(
                        json!({"ready": ready, "keys_loaded": keys_loaded, "nats_connected": connected}),
                    ),
                )
            }
        });
        self.gateway.router().merge(
            axum::Router::new()
                .route(
                    "/healthz",
                    get(move || {
                        let bus = health_bus.clone();
                        async move { dashboard::health::liveness(&bus) }
                    }),
                )
                .route("/readyz", readyz),
        )
    }

    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let router = self.router();
        let served = crate::http::serve(self.listener, router, self.timeouts, shutdown)
            .await
            .context("serving HTTP");
        self.stop_tasks.trigger();
        self.gateway.stopped().await;
        served
    }
}

/// `minilog view`: a projector on its own projection, and the dashboard.
pub struct ViewApp {
    listener: tokio::net::TcpListener,
    timeouts: crate::http::Timeouts,
    bus: Bus,
    projection: Projection,
    projector: Option<Projector>,
    handle: ProjectorHandle,
    dashboard: dashboard::Dashboard,
    retention: Option<crate::retention::Retention>,
}

impl ViewApp {
    pub async fn build(args: ViewArgs) -> anyhow::Result<ViewApp> {
        let serve = &args.serve;
        let data = &serve.nats.data;
        crate::app::private_dir(data)?;
        let db = args
            .db
            .clone()
            .unwrap_or_else(|| crate::paths::DataDir(data).projection());
        let cache = serve.cache_mb << 20;
        if args.read_only {
            match rebuild::schema_version(&db)
                .with_context(|| format!("reading {}", db.display()))?
            {
                None => bail!(
                    "{} is not a projection (make one with `minilog rebuild --until … --out {}`)",
                    db.display(),
                    db.display()
                ),
                Some(v) if v != projector::tables::SCHEMA_VERSION => bail!(
                    "{} has schema version {v}, this minilog reads {}: rebuild it again",
                    db.display(),
                    projector::tables::SCHEMA_VERSION
                ),
                Some(_) => {}
            }
        }
        let bus = connect(serve, "minilog view").await?;
        let ready: dashboard::ReadyCheck = Arc::new(|| true);

        let (projection, projector, handle, dashboard, retention) = if args.read_only {
            let projection = Projection::open(&db, cache)
                .with_context(|| format!("opening {}", db.display()))?;
            let handle = rebuild::frozen_handle(projection.last_applied()?);
            let dashboard =
                crate::app::dashboard(serve, &bus, projection.clone(), handle.clone(), ready)?
                    .read_only();
            (projection, None, handle, dashboard, None)
        } else {
            bus.ensure_streams(&stream_settings(serve)).await?;
            let crate::app::ReadSide {
                projection,
                projector,
                handle,
                retention,
            } = crate::app::read_side(serve, &bus, &db).await?;
            let dashboard =
                crate::app::dashboard(serve, &bus, projection.clone(), handle.clone(), ready)?;
            ensure_first_admin(&bus, serve.admin_password.as_deref()).await?;
            (projection, Some(projector), handle, dashboard, retention)
        };
        let listener = bind(serve.listen).await?;
        Ok(ViewApp {
            timeouts: serve.http.timeouts(),
            listener,
            bus,
            projection,
            projector,
            handle,
            dashboard,
            retention,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    pub fn projection(&self) -> &Projection {
        &self.projection
    }

    pub fn projector(&self) -> ProjectorHandle {
        self.handle.clone()
    }

    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let stop = Shutdown::default();
        let projector = self.projector.map(|p| tokio::spawn(p.run(stop.wait())));
        let retention = self.retention.map(|r| tokio::spawn(r.run(stop.wait())));
        let alerts = self.dashboard.notifier(stop.wait()).map(tokio::spawn);
        let shutdown = self.dashboard.ending_streams(shutdown);
        let served = crate::http::serve(
            self.listener,
            self.dashboard.router(),
            self.timeouts,
            shutdown,
        )
        .await
        .context("serving HTTP");
        stop.trigger();
        if let Some(r) = retention {
            let _ = r.await;
        }
        if let Some(a) = alerts {
            let _ = a.await;
        }
        let projected = match projector {
            Some(p) => p.await.context("projector task")?,
            None => Ok(()),
        };
        served?;
        projected
    }
}

pub async fn gateway(args: ServeArgs) -> anyhow::Result<()> {
    let app = GatewayApp::build(args).await?;
    tracing::info!(port = app.port(), "minilog gateway serving");
    println!("minilog gateway is listening on port {}", app.port());
    app.run(shutdown::signal()).await
}

pub async fn view(args: ViewArgs) -> anyhow::Result<()> {
    let read_only = args.read_only;
    let app = ViewApp::build(args).await?;
    tracing::info!(port = app.port(), read_only, "minilog view serving");
    println!(
        "minilog view{} is listening on port {}",
        if read_only { " (read-only)" } else { "" },
        app.port()
    );
    app.run(shutdown::signal()).await
}
