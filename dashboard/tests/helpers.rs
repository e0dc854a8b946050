//! A dashboard over a real nats-server and a real redb file, served on a
//! real socket; the cookie-keeping browser is the test kit's.

#![allow(dead_code)]

use dashboard::Dashboard;
use projector::{Projection, Projector};
use proto::Level;
use proto::bus::Bus;
use proto::commands;
use proto::event::{Actor, Envelope, Event, Logged, Role};
use std::net::SocketAddr;
use testkit::NatsServer;
#[allow(unused_imports)]
pub use testkit::browser::{Browser, Page, url_encode};

pub const ADMIN_PW: &str = "admin-password";
pub const MEMBER_PW: &str = "member-password";

pub struct App {
    pub nats: NatsServer,
    pub dir: tempfile::TempDir,
    pub bus: Bus,
    pub base: String,
    pub projection: Projection,
    pub handle: projector::runner::ProjectorHandle,
}

pub async fn spawn() -> App {
    let nats = NatsServer::start();
    let bus = testkit::bus(&nats.url()).await;
    let dir = tempfile::tempdir().unwrap();
    let projection = Projection::open(&dir.path().join("p.redb"), 4 << 20).unwrap();
    let projector = Projector::start(bus.clone(), projection.clone())
        .await
        .unwrap();
    let handle = projector.handle();
    tokio::spawn(projector.run(std::future::pending()));
    let admin = commands::create_user(&bus, "admin", ADMIN_PW, Role::Admin, Actor::System)
        .await
        .unwrap();
    let member = commands::create_user(&bus, "mia", MEMBER_PW, Role::Member, Actor::System)
        .await
        .unwrap();
    assert!(handle.wait_for(admin.max(member)).await);
    let d = Dashboard::new(
        bus.clone(),
        projection.clone(),
        handle.clone(),
        std::sync::Arc::new(|| true),
    )
    .with_gateway_stats(std::sync::Arc::new(|| vec![("accepted".into(), 7)]))
    // As if behind a proxy on this machine: tests speak for other
    // addresses with X-Forwarded-For.
    .with_trusted_proxies(vec![std::net::Ipv4Addr::LOCALHOST.into()])
    // Rules can be added and tested; no notifier runs here.
    .with_alerts(dashboard::alerts::Settings {
        seal: std::sync::Arc::new(
            proto::seal::SealKey::load_or_create(&dir.path().join("alerts.key")).unwrap(),
        ),
        public_url: None,
        cap_window: std::time::Duration::from_secs(3600),
        retry_for: dashboard::alerts::RETRY_FOR,
        smtp: None,
        enabled: false,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(
            listener,
            d.router()
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap()
    });
    App {
        nats,
        dir,
        bus,
        base,
        projection,
        handle,
    }
}

impl App {
    /// Publishes a `Logged` event as the gateway would; answers its id once applied.
    pub async fn log(&self, key: Option<&str>, level: Level, message: &str) -> u64 {
        self.log_logged(Logged {
            key_id: key.map(str::to_owned),
            ip: Some("203.0.113.7".into()),
            ..Logged::new(level, message)
        })
        .await
    }

    /// Publishes entries as given, in order; answers the last one's id
    /// once the projector has it.
    pub async fn log_many(&self, entries: Vec<Logged>) -> u64 {
        let mut last = 0;
        for logged in entries {
            let key = logged.key_id.clone();
            let env = Envelope::now(
                Actor::Key(key.clone().unwrap_or_else(|| "none".into())),
                Event::Logged(logged),
            );
            let ack = self
                .bus
                .publish_start_unkeyed(self.bus.subjects().entry(key.as_deref()), &env)
                .await
                .unwrap();
            last = ack.stored().await.unwrap().seq;
        }
        assert!(self.handle.wait_for(last).await);
        last
    }

    /// Publishes an entry as given; waits until the projector has it.
    pub async fn log_logged(&self, logged: Logged) -> u64 {
        let key = logged.key_id.clone();
        let env = Envelope::now(
            Actor::Key(key.clone().unwrap_or_else(|| "none".into())),
            Event::Logged(logged),
        );
        let id = format!("test:{}", rand_id());
        let seq = self
            .bus
            .publish(self.bus.subjects().entry(key.as_deref()), &env, &id)
            .await
            .unwrap()
            .seq;
        assert!(self.handle.wait_for(seq).await);
        seq
    }

    pub async fn browser(&self) -> Browser {
        Browser::new(&self.base)
    }

    pub async fn login(&self, name: &str, password: &str) -> Browser {
        let mut b = self.browser().await;
        let r = b.login(name, password).await;
        assert_eq!(r.status, 303, "login of {name}: {}", r.body);
        b
    }
}

fn rand_id() -> u128 {
    use std::time::{SystemTime, UNIX_EPOCH};
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    t + u128::from(N.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}
