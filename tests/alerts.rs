//! Alerts (issue 16): a real HTTP receiver that fails the first request,
//! a `serve` and a `view` sharing one NATS, a restart. Each new group and
//! each regression is delivered once after a 2xx, with the same
//! `Minilog-Alert-Id` on the retry; a flood sends the cap and one summary;
//! an alert that keeps failing is given up after `--alert-retry-for`.

mod common;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use common::{ADMIN_PASSWORD, serve_args};
use minilog::app::App;
use minilog::shutdown::Shutdown;
use proto::alert::{AlertRule, Target, Trigger, WebhookFormat};
use proto::commands::{self, AlertSpec, KeySpec, TargetSpec};
use proto::event::Actor;
use proto::seal::SealKey;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use testkit::NatsServer;

/// The tests of this file run one at a time: the flood needs the machine
/// to get through 10,000 new groups inside its cap window (in parallel
/// with the others, on a busy 2-core machine, 7,500 were seen in 60 s).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What the receiver saw: (alert id, status it answered, body).
#[derive(Clone, Default)]
struct Receiver {
    seen: Arc<Mutex<Vec<(String, u16, Value)>>>,
    /// Requests to fail before answering 200.
    fail_first: Arc<Mutex<u32>>,
}

impl Receiver {
    async fn start(fail_first: u32) -> (Receiver, String) {
        let r = Receiver::default();
        *r.fail_first.lock().unwrap() = fail_first;
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(r.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (r, url)
    }

    /// The bodies answered with 200, by alert id.
    fn delivered(&self) -> Vec<(String, Value)> {
        let seen = self.seen.lock().unwrap();
        seen.iter()
            .filter(|(_, status, _)| *status == 200)
            .map(|(id, _, b)| (id.clone(), b.clone()))
            .collect()
    }

    /// Waits (bounded) until `n` alerts were delivered.
    async fn wait_delivered(&self, n: usize) -> Vec<(String, Value)> {
        self.wait_delivered_for(n, Duration::from_secs(90)).await
    }

    async fn wait_delivered_for(&self, n: usize, within: Duration) -> Vec<(String, Value)> {
        let deadline = Instant::now() + within;
        loop {
            let d = self.delivered();
            if d.len() >= n {
                return d;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} alerts delivered: {:?}",
                d.len(),
                self.seen.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn receive(
    State(r): State<Receiver>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> StatusCode {
    let id = headers
        .get("minilog-alert-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let status = {
        let mut fail = r.fail_first.lock().unwrap();
        if *fail > 0 {
            *fail -= 1;
            500
        } else {
            200
        }
    };
    r.seen.lock().unwrap().push((id, status, body));
    StatusCode::from_u16(status).unwrap()
}

struct Running {
    base: String,
    bus: proto::bus::Bus,
    stop: Shutdown,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// A `minilog view` (projection, dashboard, API and notifier, no ingestion)
/// with the same alert settings as [`serve`].
async fn view(nats: &NatsServer, data: &Path, key_file: &Path, window_s: u64) -> Running {
    let app = minilog::split::ViewApp::build(minilog::config::ViewArgs {
        serve: alert_args(nats, data, key_file, window_s),
        db: None,
        read_only: false,
    })
    .await
    .unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let bus = app.bus().clone();
    let stop = Shutdown::default();
    let task = tokio::spawn(app.run(stop.wait()));
    testkit::browser::wait_ready(&reqwest::Client::new(), &base).await;
    Running {
        base,
        bus,
        stop,
        task,
    }
}

fn alert_args(
    nats: &NatsServer,
    data: &Path,
    key_file: &Path,
    window_s: u64,
) -> minilog::config::ServeArgs {
    let mut args = serve_args(data, Some(nats.url()));
    args.alerts.alerts_key_file = Some(key_file.to_owned());
    args.alerts.alert_cap_window = window_s;
    args.http.public_url = Some("https://log.example.com".into());
    // A flood is the point here, not the key's rate limit.
    args.ingest.rate_limit = 1_000_000;
    args
}

async fn serve(nats: &NatsServer, data: &Path, key_file: &Path, window_s: u64) -> Running {
    serve_args_app(alert_args(nats, data, key_file, window_s)).await
}

async fn serve_args_app(args: minilog::config::ServeArgs) -> Running {
    let app = App::build(args).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let bus = app.bus().clone();
    let stop = Shutdown::default();
    let task = tokio::spawn(app.run(stop.wait()));
    testkit::browser::wait_ready(&reqwest::Client::new(), &base).await;
    Running {
        base,
        bus,
        stop,
        task,
    }
}

impl Running {
    async fn shutdown(self) {
        self.stop.trigger();
        self.task.await.unwrap().unwrap();
    }

    async fn log(&self, secret: &str, body: Value) -> Value {
        let r = reqwest::Client::new()
            .post(format!("{}/api/v1/entries", self.base))
            .bearer_auth(secret)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }
}

fn webhook_rule(on: &[Trigger], cap: u32, url: &str) -> AlertSpec {
    AlertSpec {
        rule: AlertRule {
            on: on.to_vec(),
            min_level: Some(proto::Level::Warn),
            keys: vec![],
            q: None,
            meta: Default::default(),
            min_interval_s: 3600,
            cap_per_hour: cap,
            target: Target::Email { to: vec![] },
        },
        target: TargetSpec::Webhook {
            format: WebhookFormat::Json,
            url: url.to_owned(),
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_new_group_and_regression_is_delivered_once_across_retries_views_and_restarts() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let (receiver, url) = Receiver::start(1).await;
    let nats = NatsServer::start();
    let (d1, d2, keys) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let key_file = keys.path().join("alerts.key");
    // A serve and a `minilog view` on one NATS, each with its notifier:
    // one durable consumer between them.
    let a = serve(&nats, d1.path(), &key_file, 3600).await;
    let b = view(&nats, d2.path(), &key_file, 3600).await;
    let seal = SealKey::load_or_create(&key_file).unwrap();
    let key = commands::create_key(&a.bus, KeySpec::described("shop"), Actor::Cli)
        .await
        .unwrap();
    let secret = key.secret.expose().to_owned();
    let (rule, _) = commands::add_alert(
        &a.bus,
        &seal,
        webhook_rule(&[Trigger::New, Trigger::Regression], 20, &url),
        Actor::Cli,
    )
    .await
    .unwrap();
    // The URL is not in the stream in plain text.
    let (_, last) = a
        .bus
        .last_on_subject(&a.bus.subjects().alert(&rule))
        .await
        .unwrap()
        .unwrap();
    assert!(!String::from_utf8_lossy(&last).contains("/hook"));
    testkit::browser::wait_ready(&reqwest::Client::new(), &a.base).await;

    let first = a
        .log(
            &secret,
            json!([
                {"level": "error", "message": "disk full on /data: 91% used"},
                {"level": "error", "message": "disk full on /data: 97% used"},
                {"level": "warn", "message": "timeout after 30 ms talking to 10.0.0.1"},
                {"level": "info", "message": "below the level floor"},
            ]),
        )
        .await;
    let ids: Vec<u64> = first["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    // Two new groups (the repeat and the info entry fire nothing); the
    // first answer was a 500, its retry carried the same id.
    let got = receiver.wait_delivered(2).await;
    let mut delivered: Vec<&str> = got.iter().map(|(id, _)| id.as_str()).collect();
    delivered.sort();
    let mut expected = vec![format!("{rule}-{}", ids[0]), format!("{rule}-{}", ids[2])];
    expected.sort();
    assert_eq!(delivered, expected);
    let failed: Vec<String> = receiver
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, s, _)| *s == 500)
        .map(|(id, _, _)| id.clone())
        .collect();
    assert_eq!(failed.len(), 1);
    assert!(
        expected.contains(&failed[0]),
        "the retry has the same id: {failed:?} {expected:?}"
    );
    let (_, body) = got
        .iter()
        .find(|(id, _)| *id == format!("{rule}-{}", ids[0]))
        .unwrap();
    assert_eq!(body["reason"], "new");
    assert_eq!(body["entry"]["id"], ids[0]);
    assert_eq!(body["title"], "[error] disk full on /data: 91% used");
    let gid = body["group"]["id"].as_str().unwrap().to_owned();
    // The failure is on the health page of both processes, though one met
    // it: the counts are shared through the alerts bucket (within a tick).
    for base in [&a.base, &b.base] {
        let mut browser = testkit::browser::Browser::new(base);
        assert_eq!(browser.login("admin", ADMIN_PASSWORD).await.status, 303);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let health = browser.get("/log/health/").await;
            let row = health
                .body
                .split(&format!("id=\"alert-health-{rule}\""))
                .nth(1)
                .unwrap_or("")
                .split("</tr>")
                .next()
                .unwrap_or("")
                .to_owned();
            // Two sent (the two new groups), at least the one 500.
            if row.contains("answered 500") && row.contains("2 sent") {
                assert!(!row.contains(" 0 failed"), "{row}");
                break;
            }
            assert!(Instant::now() < deadline, "{base}: {}", health.body);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    assert_eq!(
        body["url"],
        format!("https://log.example.com/log/groups/{gid}/")
    );

    // Resolved, then a repeat: one regression alert.
    let resolved = reqwest::Client::new()
        .post(format!("{}/api/v1/groups/{gid}/resolve", b.base))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(resolved.status(), 200);
    let again = a
        .log(
            &secret,
            json!({"level": "error", "message": "disk full on /data: 99% used"}),
        )
        .await;
    let got = receiver.wait_delivered(3).await;
    let (id, body) = &got[2];
    assert_eq!(*id, format!("{rule}-{}", again["ids"][0]));
    assert_eq!(body["reason"], "regression");
    assert_eq!(body["group"]["regressed"], true);

    // A restart of one with its projection gone (rebuilt from the stream
    // on start), then a new group: only that one is sent.
    a.shutdown().await;
    std::fs::remove_file(minilog::paths::DataDir(d1.path()).projection()).unwrap();
    let a = serve(&nats, d1.path(), &key_file, 3600).await;
    let c = a
        .log(
            &secret,
            json!({"level": "critical", "message": "payment provider down"}),
        )
        .await;
    let got = receiver.wait_delivered(4).await;
    assert_eq!(got[3].0, format!("{rule}-{}", c["ids"][0]));
    // The restarted process shows every notifier's count since the rule
    // began, not only its own since the restart.
    let mut browser = testkit::browser::Browser::new(&a.base);
    assert_eq!(browser.login("admin", ADMIN_PASSWORD).await.status, 303);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !browser.get("/log/health/").await.body.contains("4 sent · ") {
        assert!(
            Instant::now() < deadline,
            "{}",
            browser.get("/log/health/").await.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Everything once: no alert id delivered twice by the two notifiers.
    let mut all: Vec<String> = receiver.delivered().into_iter().map(|(id, _)| id).collect();
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), n, "{all:?}");
    a.shutdown().await;
    b.shutdown().await;
}

/// `n` (< 160,000) messages that normalise to `n` different groups: four
/// letters from g to z, base 20 (no digits, no hex).
fn distinct(n: usize) -> Vec<String> {
    let l = |x: usize| char::from(b'g' + (x % 20) as u8);
    (0..n)
        .map(|i| format!("flood {}{}{}{}", l(i / 8000), l(i / 400), l(i / 20), l(i)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_new_groups_sends_the_cap_and_one_summary() {
    let _alone = ONE_AT_A_TIME.lock().await;
    // The 10,000 (about 10 s more than 2,000 here); the variables
    // try other sizes and windows (`MINILOG_TEST_FLOOD_WINDOW` seconds).
    let flood: usize = std::env::var("MINILOG_TEST_FLOOD").map_or(10_000, |v| v.parse().unwrap());
    let window: u64 = std::env::var("MINILOG_TEST_FLOOD_WINDOW").map_or(90, |v| v.parse().unwrap());
    const CAP: u32 = 5;
    let (receiver, url) = Receiver::start(0).await;
    let nats = NatsServer::start();
    let (data, keys) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let key_file = keys.path().join("alerts.key");
    // A window long enough to hold the flood on a busy machine (20 s was
    // not, with the other test of this file running beside it).
    let app = serve(&nats, data.path(), &key_file, window).await;
    let seal = SealKey::load_or_create(&key_file).unwrap();
    let key = commands::create_key(&app.bus, KeySpec::described("shop"), Actor::Cli)
        .await
        .unwrap();
    let secret = key.secret.expose().to_owned();
    commands::add_alert(
        &app.bus,
        &seal,
        webhook_rule(&[Trigger::New], CAP, &url),
        Actor::Cli,
    )
    .await
    .unwrap();
    testkit::browser::wait_ready(&reqwest::Client::new(), &app.base).await;
    let messages = distinct(flood);
    for chunk in messages.chunks(500) {
        let batch: Vec<Value> = chunk
            .iter()
            .map(|m| json!({"level": "error", "message": m}))
            .collect();
        app.log(&secret, json!(batch)).await;
    }
    let started = Instant::now();
    // Every entry looked at inside the window: the health page counts them
    // held back (the margin the window leaves is printed).
    let mut browser = testkit::browser::Browser::new(&app.base);
    assert_eq!(browser.login("admin", ADMIN_PASSWORD).await.status, 303);
    let held = format!("{} held back", flood as u64 - u64::from(CAP));
    loop {
        let health = browser.get("/log/health/").await;
        if health.body.contains(&held) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(window + 90),
            "not every entry held: {}",
            health.body
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!(
        "flood looked at in {:?} (window {window} s)",
        started.elapsed()
    );
    // The cap's worth, then, once the window is over, one summary.
    let got = receiver
        .wait_delivered_for(CAP as usize + 1, Duration::from_secs(window + 90))
        .await;
    let reasons: Vec<&str> = got
        .iter()
        .map(|(_, b)| b["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons[..CAP as usize], ["new"; CAP as usize]);
    assert_eq!(reasons[CAP as usize], "summary");
    assert_eq!(got[CAP as usize].1["held"], flood as u64 - u64::from(CAP));
    eprintln!("flood handled, summary after {:?}", started.elapsed());
    // Nothing more comes: wait past another window's tick.
    let quiet = Instant::now() + Duration::from_secs(3);
    while Instant::now() < quiet {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(receiver.delivered().len(), CAP as usize + 1);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_that_keeps_failing_is_retried_with_the_same_id_then_given_up() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let (receiver, url) = Receiver::start(u32::MAX).await;
    let nats = NatsServer::start();
    let (data, keys) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let key_file = keys.path().join("alerts.key");
    let mut args = alert_args(&nats, data.path(), &key_file, 3600);
    // The day of retries, shortened: tries at 0 s and 2 s, given up at the
    // next (4 s later), past the 3 s.
    args.alerts.alert_retry_for = 3;
    let app = serve_args_app(args).await;
    let seal = SealKey::load_or_create(&key_file).unwrap();
    let key = commands::create_key(&app.bus, KeySpec::described("shop"), Actor::Cli)
        .await
        .unwrap();
    let secret = key.secret.expose().to_owned();
    let (rule, _) = commands::add_alert(
        &app.bus,
        &seal,
        webhook_rule(&[Trigger::New], 20, &url),
        Actor::Cli,
    )
    .await
    .unwrap();
    testkit::browser::wait_ready(&reqwest::Client::new(), &app.base).await;
    let sent = app
        .log(
            &secret,
            json!({"level": "error", "message": "the receiver is down"}),
        )
        .await;
    let alert_id = format!("{rule}-{}", sent["ids"][0]);

    // The health page says so once the notifier gave up (bounded wait).
    let mut browser = testkit::browser::Browser::new(&app.base);
    assert_eq!(browser.login("admin", ADMIN_PASSWORD).await.status, 303);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let health = browser.get("/log/health/").await;
        if health.body.contains("1 given up") {
            assert!(health.body.contains("answered 500"), "{}", health.body);
            break;
        }
        assert!(Instant::now() < deadline, "not given up: {}", health.body);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let tries: Vec<(String, u16)> = receiver
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|(id, status, _)| (id.clone(), *status))
        .collect();
    assert!(tries.len() >= 2, "retried: {tries:?}");
    assert!(
        tries.iter().all(|t| *t == (alert_id.clone(), 500)),
        "every try the same alert id: {tries:?}"
    );

    // Given up means acknowledged: with the receiver back, a new group's
    // alert arrives and the old one does not come back with it.
    *receiver.fail_first.lock().unwrap() = 0;
    let next = app
        .log(
            &secret,
            json!({"level": "error", "message": "another problem"}),
        )
        .await;
    let got = receiver.wait_delivered(1).await;
    assert_eq!(got[0].0, format!("{rule}-{}", next["ids"][0]));
    assert_eq!(receiver.delivered().len(), 1);
    app.shutdown().await;
}

fn rule_with(on: Trigger, quiet_s: u64, format: WebhookFormat, url: &str) -> AlertSpec {
    let mut spec = webhook_rule(&[on], 20, url);
    spec.rule.min_interval_s = quiet_s;
    spec.target = TargetSpec::Webhook {
        format,
        url: url.to_owned(),
    };
    spec
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_entry_after_a_quiet_period_in_slack_and_discord_shapes() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let (receiver, url) = Receiver::start(0).await;
    let nats = NatsServer::start();
    let (data, keys) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let key_file = keys.path().join("alerts.key");
    let app = serve(&nats, data.path(), &key_file, 3600).await;
    let seal = SealKey::load_or_create(&key_file).unwrap();
    let key = commands::create_key(&app.bus, KeySpec::described("shop"), Actor::Cli)
        .await
        .unwrap();
    let secret = key.secret.expose().to_owned();
    // Every entry, at most one per group per 2 s, to Slack; new groups to Discord.
    let (slack, _) = commands::add_alert(
        &app.bus,
        &seal,
        rule_with(Trigger::Every, 2, WebhookFormat::Slack, &url),
        Actor::Cli,
    )
    .await
    .unwrap();
    let (discord, _) = commands::add_alert(
        &app.bus,
        &seal,
        rule_with(Trigger::New, 3600, WebhookFormat::Discord, &url),
        Actor::Cli,
    )
    .await
    .unwrap();
    testkit::browser::wait_ready(&reqwest::Client::new(), &app.base).await;
    let of = |rule: &str| {
        let rule = format!("{rule}-");
        receiver
            .delivered()
            .into_iter()
            .filter(|(id, _)| id.starts_with(&rule))
            .collect::<Vec<_>>()
    };

    let first = app
        .log(
            &secret,
            json!([
                {"level": "error", "message": "queue <jobs> stuck @everyone"},
                {"level": "error", "message": "queue <jobs> stuck @everyone"},
            ]),
        )
        .await;
    // Then another group: by the time its alerts are in, the repeat was
    // looked at (one consumer, in order) and fell in the quiet period.
    let other = app
        .log(&secret, json!({"level": "warn", "message": "cache cold"}))
        .await;
    receiver.wait_delivered(4).await;
    let every: Vec<String> = of(&slack).into_iter().map(|(id, _)| id).collect();
    assert_eq!(
        every,
        [
            format!("{slack}-{}", first["ids"][0]),
            format!("{slack}-{}", other["ids"][0])
        ],
        "the repeat within 2 s of its group's alert sends nothing"
    );
    // Slack's shape: `text`, its control characters escaped, and the link.
    let (_, body) = &of(&slack)[0];
    let text = body["text"].as_str().unwrap();
    assert!(text.starts_with("*"), "{text}");
    assert!(text.contains("queue &lt;jobs&gt; stuck"), "{text}");
    assert!(text.contains("|Open in minilog>"), "{text}");
    // Discord's: `content`, mentions defused and not parsed.
    let (_, body) = &of(&discord)[0];
    let content = body["content"].as_str().unwrap();
    assert!(content.contains("queue <jobs> stuck"), "{content}");
    assert!(!content.contains("@everyone"), "{content}");
    assert_eq!(body["allowed_mentions"], json!({"parse": []}));

    // Past the quiet period, the group's next entry alerts again. The
    // quiet period is wall-clock time: let it pass (not a wait on the
    // projector, which the deliveries above already showed done).
    let alerted = Instant::now();
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let later = app
        .log(
            &secret,
            json!({"level": "error", "message": "queue <jobs> stuck @everyone"}),
        )
        .await;
    receiver.wait_delivered(5).await;
    assert_eq!(
        of(&slack).last().unwrap().0,
        format!("{slack}-{}", later["ids"][0])
    );
    assert!(alerted.elapsed() >= Duration::from_secs(2));
    assert_eq!(
        of(&discord).len(),
        2,
        "new groups only: the two, no repeats"
    );
    app.shutdown().await;
}
