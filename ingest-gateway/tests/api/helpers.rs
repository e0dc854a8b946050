//! `spawn_app()`: a nats-server, the stream, one key, a gateway serving on
//! a real loopback socket, and typed helpers so test bodies stay short.

use ingest_gateway::{Gateway, GatewayConfig};
use proto::bus::Bus;
use proto::commands::{self, KeySpec, NewKey};
use proto::event::{Actor, Envelope, Event, Logged};
use serde_json::Value;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use testkit::NatsServer;

pub const FORM: &str = "application/x-www-form-urlencoded";

/// A generous bound for things that normally take milliseconds.
const PATIENCE: Duration = Duration::from_secs(20);

pub struct TestApp {
    pub server: NatsServer,
    pub bus: Bus,
    pub gateway: Gateway,
    pub addr: SocketAddr,
    pub key: NewKey,
    pub http: reqwest::Client,
    /// Dropping it stops the key registry.
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

/// One entry as read back from the stream.
#[derive(Debug)]
pub struct StoredEntry {
    pub seq: u64,
    pub by: Actor,
    pub entry: Logged,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(GatewayConfig::default()).await
}

pub async fn spawn_app_with(config: GatewayConfig) -> TestApp {
    let server = NatsServer::start();
    let bus = testkit::bus(&server.url()).await;
    let key = create_key_on(&bus, "first test key").await;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let gateway = Gateway::start(bus.clone(), config, async move {
        let _ = rx.await;
    })
    .await
    .expect("starting the gateway");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback listener");
    let addr = listener.local_addr().expect("the listener's address");
    let service = gateway
        .router()
        .into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move {
        axum::serve(listener, service).await.expect("serving");
    });
    let app = TestApp {
        server,
        bus,
        gateway,
        addr,
        key,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client"),
        _shutdown: tx,
    };
    app.wait_for_key_seq(app.key.seq).await;
    assert!(app.gateway.keys_loaded());
    app
}

/// Another gateway on the same NATS, as a second process would run it.
/// Dropping the returned sender stops its background tasks.
pub async fn start_gateway(
    bus: &Bus,
    config: GatewayConfig,
) -> (Gateway, tokio::sync::oneshot::Sender<()>) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let gateway = Gateway::start(bus.clone(), config, async move {
        let _ = rx.await;
    })
    .await
    .expect("starting another gateway");
    (gateway, tx)
}

/// A gateway configuration that leaves `MINILOG_INGEST` alone.
pub fn without_nats() -> GatewayConfig {
    let mut config = GatewayConfig::default();
    config.nats.enabled = false;
    config
}

async fn create_key_on(bus: &Bus, description: &str) -> NewKey {
    commands::create_key(bus, KeySpec::described(description), Actor::Cli)
        .await
        .expect("creating a key")
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn secret(&self) -> &str {
        self.key.secret.expose()
    }

    pub fn key_id(&self) -> &str {
        self.key.id.as_str()
    }

    /// Creates another key and waits until the gateway knows it.
    pub async fn create_key(&self, description: &str) -> NewKey {
        let key = create_key_on(&self.bus, description).await;
        self.wait_for_key_seq(key.seq).await;
        key
    }

    /// Revokes (`active = false`) or restores a key, and waits until the
    /// gateway has applied the event.
    pub async fn set_key_active(&self, key_id: &str, active: bool) {
        let seq = commands::set_key_active(&self.bus, key_id, active, Actor::Cli)
            .await
            .expect("publishing the key change");
        self.wait_for_key_seq(seq).await;
    }

    pub async fn wait_for_key_seq(&self, seq: u64) {
        let mut rx = self.gateway.key_seq();
        tokio::time::timeout(PATIENCE, rx.wait_for(|s| *s >= seq))
            .await
            .expect("the registry applies the key event in time")
            .expect("the registry is running");
    }

    /// Polls a condition (no fixed sleeps: it returns as soon as it holds).
    pub async fn wait_until(&self, what: &str, mut condition: impl FnMut() -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !condition() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Posts a form given as fields (URL-encoded by the client).
    pub async fn post_form(&self, fields: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(self.url("/log/add/"))
            .form(fields)
            .send()
            .await
            .expect("the form request is answered")
    }

    /// Posts a form body exactly as given.
    pub async fn post_form_raw(&self, body: impl Into<Vec<u8>>) -> reqwest::Response {
        self.http
            .post(self.url("/log/add/"))
            .header("content-type", FORM)
            .body(body.into())
            .send()
            .await
            .expect("the form request is answered")
    }

    /// Posts JSON to `/api/v1/entries` with this app's key as a bearer.
    pub async fn post_json(&self, body: &Value) -> reqwest::Response {
        self.post_json_with(body, self.secret(), None).await
    }

    pub async fn post_json_with(
        &self,
        body: &Value,
        secret: &str,
        idempotency_key: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self
            .http
            .post(self.url("/api/v1/entries"))
            .bearer_auth(secret)
            .json(body);
        if let Some(k) = idempotency_key {
            request = request.header("idempotency-key", k);
        }
        request.send().await.expect("the JSON request is answered")
    }

    /// Posts raw bytes as JSON to `/api/v1/entries` with this app's key.
    pub async fn post_json_raw(&self, body: impl Into<Vec<u8>>) -> reqwest::Response {
        self.http
            .post(self.url("/api/v1/entries"))
            .bearer_auth(self.secret())
            .header("content-type", "application/json")
            .body(body.into())
            .send()
            .await
            .expect("the JSON request is answered")
    }

    /// A plain NATS client on the test server, as a program would use.
    pub async fn nats_client(&self) -> async_nats::Client {
        async_nats::connect(self.server.url())
            .await
            .expect("connecting a test client")
    }

    /// Waits until the stream holds at least `n` entries (reads them as
    /// they arrive; no polling) and returns every entry then stored.
    pub async fn wait_for_entries(&self, n: u64) -> Vec<StoredEntry> {
        let wait = async {
            let mut reader = self
                .bus
                .read_from(1, Some(self.bus.subjects().all_entries()))
                .await
                .expect("reading the stream");
            for _ in 0..n {
                reader
                    .next()
                    .await
                    .expect("the reader goes on")
                    .expect("an event");
            }
        };
        tokio::time::timeout(PATIENCE, wait)
            .await
            .unwrap_or_else(|_| panic!("{n} entries did not arrive in time"));
        self.stored().await
    }

    /// How many submissions `MINILOG_INGEST` still holds.
    pub async fn ingest_waiting(&self) -> u64 {
        let js = async_nats::jetstream::new(self.nats_client().await);
        let mut stream = js
            .get_stream(self.bus.subjects().ingest_stream())
            .await
            .expect("the ingest stream exists");
        stream.info().await.expect("its state").state.messages
    }

    /// Waits (bounded polling of the server) until the ingest stream is empty.
    pub async fn wait_ingest_drained(&self) {
        let deadline = Instant::now() + PATIENCE;
        while self.ingest_waiting().await > 0 {
            assert!(Instant::now() < deadline, "MINILOG_INGEST was not drained");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Every `Logged` event in the stream, in order.
    pub async fn stored(&self) -> Vec<StoredEntry> {
        let read = async {
            let mut reader = self
                .bus
                .read_from(1, Some(self.bus.subjects().all_entries()))
                .await
                .expect("reading the stream");
            let mut out = Vec::new();
            for _ in 0..reader.pending_at_start {
                let raw = reader
                    .next()
                    .await
                    .expect("the reader goes on")
                    .expect("an event");
                let env = Envelope::decode(&raw.payload).expect("a readable event");
                if let Event::Logged(entry) = env.event {
                    out.push(StoredEntry {
                        seq: raw.seq,
                        by: env.by,
                        entry,
                    });
                }
            }
            out
        };
        tokio::time::timeout(PATIENCE, read)
            .await
            .expect("reading the stream back in time")
    }
}

/// The body of an answer as JSON.
pub async fn json_body(response: reqwest::Response) -> Value {
    let text = response.text().await.expect("a body");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The `ids` of a successful JSON answer.
pub async fn ids_of(response: reqwest::Response) -> Vec<u64> {
    let status = response.status();
    let body = json_body(response).await;
    assert_eq!(status, 200, "{body}");
    body["ids"]
        .as_array()
        .expect("an ids array")
        .iter()
        .map(|v| v.as_u64().expect("numeric ids"))
        .collect()
}
