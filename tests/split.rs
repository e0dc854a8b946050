//! Split mode in process: two `minilog gateway`s and two `minilog view`s
//! on one nats-server. Each view builds its own projection from the
//! stream (the second one starts late, from nothing); both end identical,
//! table by table and row by row.

mod common;

use common::{ADMIN_PASSWORD, serve_args};
use minilog::config::ViewArgs;
use minilog::shutdown::Shutdown;
use minilog::split::{GatewayApp, ViewApp};
use proto::commands::{self, KeySpec};
use proto::event::{Actor, Envelope, Event, Rule, Triage};
use proto::filter::{Filter, MATCHER_VERSION};
use serde_json::{Value, json};
use testkit::NatsServer;
use testkit::browser::wait_ready;

struct Running {
    base: String,
    stop: Shutdown,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    async fn stop(self) {
        self.stop.trigger();
        self.task.await.unwrap().unwrap();
    }
}

async fn gateway(url: &str) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let app = GatewayApp::build(serve_args(dir.path(), Some(url.to_owned())))
        .await
        .unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let stop = Shutdown::default();
    let task = tokio::spawn(app.run(stop.wait()));
    Running { base, stop, task }
}

async fn view(url: &str, data: &std::path::Path) -> (Running, projector::runner::ProjectorHandle) {
    let app = ViewApp::build(ViewArgs {
        serve: serve_args(data, Some(url.to_owned())),
        db: None,
        read_only: false,
    })
    .await
    .unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let handle = app.projector();
    let stop = Shutdown::default();
    let task = tokio::spawn(app.run(stop.wait()));
    (Running { base, stop, task }, handle)
}

#[tokio::test]
async fn two_gateways_and_two_views_converge_to_identical_projections() {
    let nats = NatsServer::start();
    let url = nats.url();
    let http = reqwest::Client::new();
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (v1, h1) = view(&url, d1.path()).await;
    let gws = [gateway(&url).await, gateway(&url).await];
    let bus = proto::bus::Bus::connect(
        &proto::bus::NatsConfig {
            url: url.clone(),
            auth: proto::bus::NatsAuth::None,
            name: "test".into(),
        },
        proto::subjects::Subjects::default(),
    )
    .await
    .unwrap();
    let key = commands::create_key(&bus, KeySpec::described("split service"), Actor::Cli)
        .await
        .unwrap();
    let secret = key.secret.expose().to_owned();
    for g in &gws {
        wait_ready(&http, &g.base).await;
    }

    // Entries through both gateways, with idempotency keys.
    let mut ids = Vec::new();
    for batch in 0..10 {
        let g = &gws[batch % 2];
        let items: Vec<Value> = (0..5)
            .map(|i| json!({"message": format!("batch {batch} item {i}"), "level": if i % 2 == 0 {"error"} else {"warn"}}))
            .collect();
        let r = http
            .post(format!("{}/api/v1/entries", g.base))
            .bearer_auth(&secret)
            .header("idempotency-key", format!("b{batch}"))
            .json(&items)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let got: Vec<u64> =
            serde_json::from_value(r.json::<Value>().await.unwrap()["ids"].clone()).unwrap();
        ids.extend(got);
    }
    // Triage through view 1's API, and a rule on the bus.
    for id in ids.iter().take(6) {
        let r = http
            .post(format!("{}/api/v1/entries/{id}/resolve", v1.base))
            .basic_auth("admin", Some(ADMIN_PASSWORD))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let rule = Envelope::now(
        Actor::User("admin".into()),
        Event::Resolved(Triage::Matching(Rule {
            filter: Filter {
                levels: vec![proto::Level::Warn],
                ..Default::default()
            },
            upto: ids[30],
            matcher: MATCHER_VERSION,
        })),
    );
    bus.publish(bus.subjects().triage(), &rule, "rule-1")
        .await
        .unwrap();

    // View 2 starts now, from nothing, and catches up.
    let (v2, h2) = view(&url, d2.path()).await;
    let last = bus.last_seq().await.unwrap();
    assert!(h1.wait_for(last).await);
    assert!(h2.wait_for(last).await);
    wait_ready(&http, &v2.base).await;
    let page: Value = http
        .get(format!(
            "{}/api/v1/entries?limit=200&min_seq={last}",
            v2.base
        ))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let open = page["entries"].as_array().unwrap().len();
    assert!(open > 10 && open < 50, "{open} open");

    v1.stop().await;
    v2.stop().await;
    for g in gws {
        g.stop().await;
    }
    let dump = |d: &std::path::Path| {
        projector::Projection::open(&d.join("projection.redb"), 4 << 20)
            .unwrap()
            .dump()
            .unwrap()
    };
    let (a, b) = (dump(d1.path()), dump(d2.path()));
    assert_eq!(a.tables["entries"].len(), 50);
    if let Some(diff) = a.first_difference(&b) {
        panic!("the two views differ: {diff}");
    }
}

#[tokio::test]
async fn a_gateway_needs_a_nats_url() {
    let dir = tempfile::tempdir().unwrap();
    let err = GatewayApp::build(serve_args(dir.path(), None))
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("--nats-url"), "{err}");
}
