//! Shared test helpers: a real nats-server, `minilog serve` built in
//! process on port 0, and typed HTTP helpers so test bodies stay short.

#![allow(dead_code)]

use minilog::app::App;
use minilog::config::{NatsArgs, ServeArgs};
use minilog::shutdown::Shutdown;
use projector::runner::ProjectorHandle;
use proto::bus::Bus;
use proto::commands::{self, KeySpec};
use proto::event::Actor;
use serde_json::Value;
use testkit::NatsServer;

pub const ADMIN_PASSWORD: &str = "admin-password-1";

pub fn serve_args(data: &std::path::Path, nats_url: Option<String>) -> ServeArgs {
    ServeArgs {
        nats: NatsArgs {
            data: data.to_owned(),
            nats_url,
            nats_user: None,
            nats_password: None,
            nats_token: None,
            nats_creds: None,
            subject_prefix: "minilog".into(),
        },
        listen: "127.0.0.1:0".parse().unwrap(),
        nats_server_bin: Some(testkit::nats_server_bin()),
        nats_port: None,
        nats_sync: minilog::embedded::DEFAULT_SYNC.into(),
        cache_mb: 4,
        duplicate_window: 600,
        stream_replicas: 1,
        max_message_bytes: 64 * 1024,
        body_limit: 1 << 20,
        admin_password: Some(ADMIN_PASSWORD.into()),
        session_key_file: None,
        trusted_proxy: vec![],
        retain_days: None,
        // A busy machine can take seconds to acknowledge (issue 12, item 9).
        ingest: minilog::config::IngestArgs {
            ack_timeout: 30,
            ..Default::default()
        },
        http: Default::default(),
        alerts: Default::default(),
        sso: Default::default(),
    }
}

pub struct TestApp {
    pub nats: Option<NatsServer>,
    pub data: tempfile::TempDir,
    pub base: String,
    pub bus: Bus,
    pub projector: ProjectorHandle,
    pub http: reqwest::Client,
    pub stop: Shutdown,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// `minilog serve` against its own nats-server, on a free port.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// The same, with flags changed by `change`.
pub async fn spawn_app_with(change: impl FnOnce(&mut ServeArgs)) -> TestApp {
    let nats = NatsServer::start();
    let data = tempfile::tempdir().unwrap();
    let mut args = serve_args(data.path(), Some(nats.url()));
    change(&mut args);
    let app = App::build(args).await.unwrap();
    let app = start(app, Some(nats), data);
    app.wait_ready().await;
    app
}

/// `minilog serve` with its embedded nats-server.
pub async fn spawn_app_embedded() -> TestApp {
    let data = tempfile::tempdir().unwrap();
    let app = App::build(serve_args(data.path(), None)).await.unwrap();
    let app = start(app, None, data);
    app.wait_ready().await;
    app
}

fn start(app: App, nats: Option<NatsServer>, data: tempfile::TempDir) -> TestApp {
    let base = format!("http://127.0.0.1:{}", app.port());
    let bus = app.bus().clone();
    let projector = app.projector();
    let stop = Shutdown::default();
    let task = tokio::spawn(app.run(stop.wait()));
    TestApp {
        nats,
        data,
        base,
        bus,
        projector,
        http: reqwest::Client::new(),
        stop,
        task,
    }
}

impl TestApp {
    pub async fn create_key(&self, description: &str) -> (String, String) {
        let key = commands::create_key(&self.bus, KeySpec::described(description), Actor::Cli)
            .await
            .unwrap();
        // The gateway refuses a key until its registry has the event.
        self.wait_ready().await;
        (key.id.to_string(), key.secret.expose().to_owned())
    }

    /// Waits on `/readyz` (bounded), never on a sleep of a guessed length.
    pub async fn wait_ready(&self) -> Value {
        testkit::browser::wait_ready(&self.http, &self.base).await
    }

    pub async fn post_form(&self, form: &[(&str, &str)]) -> reqwest::Response {
        let body: String = form_encode(form);
        self.http
            .post(format!("{}/log/add/", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn post_json(&self, secret: &str, body: Value) -> reqwest::Response {
        self.http
            .post(format!("{}/api/v1/entries", self.base))
            .bearer_auth(secret)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// `GET` on the read API as the first admin.
    pub async fn get(&self, path_and_query: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path_and_query}", self.base))
            .basic_auth("admin", Some(ADMIN_PASSWORD))
            .send()
            .await
            .unwrap()
    }

    pub async fn get_json(&self, path_and_query: &str) -> Value {
        let resp = self.get(path_and_query).await;
        assert_eq!(resp.status(), 200, "GET {path_and_query}");
        resp.json().await.unwrap()
    }

    pub async fn post_as_admin(&self, path: &str) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .basic_auth("admin", Some(ADMIN_PASSWORD))
            .send()
            .await
            .unwrap()
    }

    pub async fn shutdown(self) {
        self.stop.trigger();
        self.task.await.unwrap().unwrap();
    }
}

pub use testkit::browser::form_encode;
