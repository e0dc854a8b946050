//! The live tail: `GET /api/v1/entries/stream` read with a real HTTP
//! client, and `minilog tail` as a person runs it, against an in-process
//! `minilog serve` and a real nats-server; entries go in through the real
//! ingestion path (`POST /api/v1/entries` with a key).

mod common;

use common::{ADMIN_PASSWORD, TestApp, spawn_app};
use minilog::tail::{Parser, SseEvent};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, ChildStdout, Command};

const BIN: &str = env!("CARGO_BIN_EXE_minilog");
/// However busy the machine, an event comes within this.
const WAIT: Duration = Duration::from_secs(60);

/// An open stream, read event by event.
struct Stream {
    resp: reqwest::Response,
    parser: Parser,
    ready: VecDeque<SseEvent>,
}

impl Stream {
    /// The next entry event: its id and its entry.
    async fn next(&mut self) -> (u64, Value) {
        loop {
            if let Some(e) = self.ready.pop_front() {
                let id: u64 = e.id.expect("every event has an id").parse().unwrap();
                return (id, serde_json::from_str(&e.data).unwrap());
            }
            let chunk = tokio::time::timeout(WAIT, self.resp.chunk())
                .await
                .expect("an event within the wait")
                .unwrap()
                .expect("the stream goes on");
            self.ready.extend(self.parser.push(&chunk).unwrap());
        }
    }

    async fn ids(&mut self, n: usize) -> Vec<u64> {
        let mut ids = Vec::new();
        for _ in 0..n {
            ids.push(self.next().await.0);
        }
        ids
    }
}

async fn connect(app: &TestApp, query: &str, last_event_id: Option<u64>) -> reqwest::Response {
    let mut req = app
        .http
        .get(format!("{}/api/v1/entries/stream{query}", app.base))
        .basic_auth("admin", Some(ADMIN_PASSWORD));
    if let Some(id) = last_event_id {
        req = req.header("last-event-id", id.to_string());
    }
    req.send().await.unwrap()
}

async fn open(app: &TestApp, query: &str, last_event_id: Option<u64>) -> Stream {
    let resp = connect(app, query, last_event_id).await;
    assert_eq!(resp.status(), 200, "{query}");
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    Stream {
        resp,
        parser: Parser::default(),
        ready: VecDeque::new(),
    }
}

/// Sends entries with a key's secret; their ids.
async fn send(app: &TestApp, secret: &str, entries: Value) -> Vec<u64> {
    let r = app.post_json(secret, entries).await;
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    serde_json::from_value(body["ids"].clone()).unwrap()
}

fn entry(level: &str, message: &str) -> Value {
    json!({"level": level, "message": message})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_sends_new_matching_entries_in_order_and_resumes_without_gaps() {
    let app = spawn_app().await;
    let (k1, s1) = app.create_key("billing").await;
    let (_k2, s2) = app.create_key("shop").await;
    let before = send(&app, &s1, json!([entry("error", "from before the stream")])).await;
    app.get_json(&format!("/api/v1/entries?min_seq={}", before[0]))
        .await;

    let mut all = open(&app, "", None).await;
    let mut errors = open(&app, &format!("?level=error&key={k1}"), None).await;
    let mut text = open(&app, "?q=DISK", None).await;

    // Of another level, of another key, then three that match.
    let other_level = send(&app, &s1, json!([entry("info", "routine")])).await;
    let other_key = send(&app, &s2, json!([entry("error", "shop broke")])).await;
    let wanted = send(
        &app,
        &s1,
        json!([
            entry("error", "number one"),
            entry("error", "two: disk full"),
            entry("error", "three")
        ]),
    )
    .await;

    // Without Last-Event-ID: only what came after the connection, everything.
    let (id, first) = all.next().await;
    assert_eq!(id, other_level[0], "the entry from before is not sent");
    assert_eq!(first["id"], id);
    assert_eq!(first["level"], "info");
    assert_eq!(first["key_id"], k1.as_str());
    assert_eq!(first["key_description"], "billing");
    assert!(first["group"].as_str().is_some_and(|g| g.len() == 16));
    assert_eq!(first["resolved"], Value::Null);
    let mut expected = vec![other_key[0]];
    expected.extend(&wanted);
    assert_eq!(all.ids(4).await, expected);

    // The filter: the info entry and the other key's are not sent.
    let (id, e) = errors.next().await;
    assert_eq!(id, wanted[0]);
    assert_eq!(e["message"], "number one");
    assert_eq!(errors.ids(2).await, wanted[1..]);
    let (id, e) = text.next().await;
    assert_eq!(
        (id, e["message"].as_str()),
        (wanted[1], Some("two: disk full"))
    );

    // The same shape as the read API's entry.
    let listed = app
        .get_json(&format!("/api/v1/entries?key={k1}&limit=1"))
        .await;
    let mut resumed = open(&app, &format!("?level=error&key={k1}"), Some(wanted[0])).await;
    assert_eq!(
        resumed.ids(2).await,
        wanted[1..],
        "exactly the missing ones"
    );
    let (id, e) = resumed.next_after_sentinel(&app, &s1).await;
    assert_eq!(e["message"], "sentinel");
    assert_eq!(
        listed["entries"][0]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        e.as_object().unwrap().keys().collect::<Vec<_>>()
    );
    // The query-parameter form, for clients that cannot set headers;
    // resuming from long ago sends what matched since, in order.
    let mut from_param = open(&app, "?level=error&last_event_id=0", None).await;
    let mut since = vec![before[0], other_key[0]];
    since.extend(&wanted);
    since.push(id);
    assert_eq!(from_param.ids(since.len()).await, since);
    // The header wins over the parameter (an EventSource reconnecting
    // keeps its URL and sends the newer id in the header).
    let mut both = open(
        &app,
        &format!("?last_event_id=0&level=error&key={k1}"),
        Some(wanted[2]),
    )
    .await;
    assert_eq!(both.next().await.0, id);

    // The tail of one group: the group of "three".
    let group = errors_group(&app, wanted[2]).await;
    let mut grouped = open(&app, &format!("?group={group}"), Some(0)).await;
    assert_eq!(grouped.next().await.0, wanted[2]);
    app.shutdown().await;
}

async fn errors_group(app: &TestApp, id: u64) -> String {
    let e = app.get_json(&format!("/api/v1/entries/{id}")).await;
    e["group"].as_str().unwrap().to_owned()
}

impl Stream {
    /// Sends a non-matching info entry and a matching error "sentinel",
    /// and answers the next event, which must be the sentinel.
    async fn next_after_sentinel(&mut self, app: &TestApp, secret: &str) -> (u64, Value) {
        let ids = send(
            app,
            secret,
            json!([entry("info", "not this"), entry("error", "sentinel")]),
        )
        .await;
        let (id, e) = self.next().await;
        assert_eq!(id, ids[1]);
        (id, e)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_needs_a_user_checks_its_parameters_and_is_limited() {
    let app = spawn_app().await;
    let url = format!("{}/api/v1/entries/stream", app.base);
    let none = app.http.get(&url).send().await.unwrap();
    assert_eq!(none.status(), 401);
    assert!(none.headers().contains_key("www-authenticate"));
    let wrong = app
        .http
        .get(&url)
        .basic_auth("admin", Some("not the password"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    // A page from another site may not read it with the user's session.
    let cross = app
        .http
        .get(&url)
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), 403);

    for (query, last, code) in [
        ("?level=loud", None, "invalid_level"),
        ("?last_event_id=x", None, "invalid_parameter"),
        ("", Some("-1"), "invalid_parameter"),
        ("", Some("18446744073709551616"), "invalid_parameter"),
    ] {
        let mut req = app
            .http
            .get(format!("{url}{query}"))
            .basic_auth("admin", Some(ADMIN_PASSWORD));
        if let Some(l) = last {
            req = req.header("last-event-id", l);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 400, "{query} {last:?}");
        assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], code);
    }
    // An id far beyond the stream is no error: it waits for that id.
    let far = connect(&app, "", Some(u64::MAX)).await;
    assert_eq!(far.status(), 200);
    drop(far);

    // The dashboard's session works too (what EventSource sends).
    let mut b = testkit::browser::Browser::new(&app.base);
    assert_eq!(b.login("admin", ADMIN_PASSWORD).await.status, 303);
    let cookie = b
        .cookies
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    let session = app
        .http
        .get(&url)
        .header("cookie", cookie)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(session.status(), 200);
    drop(session);

    // One user holds at most 16 at once; closing one frees its place.
    let seq = proto::commands::create_user(
        &app.bus,
        "lena",
        "lena-password-1",
        proto::event::Role::Member,
        proto::event::Actor::Cli,
    )
    .await
    .unwrap();
    assert!(app.projector.wait_for(seq).await);
    let as_lena = || {
        app.http
            .get(&url)
            .basic_auth("lena", Some("lena-password-1"))
            .send()
    };
    let mut held = Vec::new();
    for _ in 0..16 {
        let r = as_lena().await.unwrap();
        assert_eq!(r.status(), 200);
        held.push(r);
    }
    let refused = as_lena().await.unwrap();
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    held.pop();
    // The server notices the closed connection when it next writes or
    // polls; a new stream is accepted once it has.
    // (at the latest when the next keep-alive fails to go out, 15 s).
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let r = as_lena().await.unwrap();
        if r.status() == 200 {
            break;
        }
        assert_eq!(r.status(), 503);
        assert!(tokio::time::Instant::now() < deadline, "the slot came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(held);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_streams_end_at_shutdown_so_it_does_not_wait_for_them() {
    let app = spawn_app().await;
    let mut s = open(&app, "", None).await;
    let started = std::time::Instant::now();
    let TestApp {
        stop, task, nats, ..
    } = app;
    stop.trigger();
    task.await.unwrap().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "shutdown waited {:?}, as if for the stream",
        started.elapsed()
    );
    let end = tokio::time::timeout(WAIT, s.resp.chunk()).await.unwrap();
    assert!(matches!(end, Ok(None) | Err(_)), "the stream ended");
    drop(nats);
}

/// `minilog tail` running, its stdout and stderr read line by line.
struct TailCli {
    child: Child,
    stdout: Lines<BufReader<ChildStdout>>,
    stderr: Lines<BufReader<ChildStderr>>,
}

impl TailCli {
    fn start(base: &str, args: &[&str]) -> TailCli {
        let mut child = Command::new(BIN)
            .arg("tail")
            .args(["--url", base, "--user", "admin"])
            .args(args)
            .env("MINILOG_PASSWORD", ADMIN_PASSWORD)
            .env("MINILOG_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("running minilog tail");
        TailCli {
            stdout: BufReader::new(child.stdout.take().unwrap()).lines(),
            stderr: BufReader::new(child.stderr.take().unwrap()).lines(),
            child,
        }
    }

    /// Waits for its next "connected" line on stderr.
    async fn connected(&mut self) -> String {
        loop {
            let line = tokio::time::timeout(WAIT, self.stderr.next_line())
                .await
                .expect("minilog tail says it connected")
                .unwrap()
                .expect("minilog tail is still running");
            if line.contains("connected to") {
                return line;
            }
        }
    }

    async fn line(&mut self) -> String {
        tokio::time::timeout(WAIT, self.stdout.next_line())
            .await
            .expect("a line within the wait")
            .unwrap()
            .expect("minilog tail is still running")
    }

    async fn stop(mut self) {
        self.child.kill().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minilog_tail_prints_entries_sent_after_it_started() {
    let app = spawn_app().await;
    let (k1, s1) = app.create_key("billing").await;
    let old = send(&app, &s1, json!([entry("error", "old news")])).await;
    app.get_json(&format!("/api/v1/entries?min_seq={}", old[0]))
        .await;

    let mut plain = TailCli::start(&app.base, &["--level", "error,critical"]);
    let mut as_json = TailCli::start(&app.base, &["--json", "--key", &k1]);
    plain.connected().await;
    as_json.connected().await;
    let ids = send(
        &app,
        &s1,
        json!([entry("info", "not an error"),
               {"level": "error", "message": "disk full\nsecond line", "time": "2026-01-02T03:04:05Z"},
               entry("critical", "on fire")]),
    )
    .await;

    assert_eq!(
        plain.line().await,
        format!("2026-01-02T03:04:05Z error {k1} disk full")
    );
    assert!(
        plain
            .line()
            .await
            .ends_with(&format!(" critical {k1} on fire"))
    );

    let mut seen = Vec::new();
    for _ in 0..3 {
        let e: Value = serde_json::from_str(&as_json.line().await).expect("JSON");
        seen.push((
            e["id"].as_u64().unwrap(),
            e["message"].as_str().unwrap().to_owned(),
        ));
    }
    assert_eq!(
        seen,
        vec![
            (ids[0], "not an error".to_owned()),
            (ids[1], "disk full\nsecond line".to_owned()),
            (ids[2], "on fire".to_owned()),
        ],
        "nothing from before it started, everything after"
    );
    plain.stop().await;
    as_json.stop().await;

    // Credentials it cannot use: it says so and stops (no retrying).
    let out = std::process::Command::new(BIN)
        .args(["tail", "--url", &app.base, "--user", "admin"])
        .env("MINILOG_PASSWORD", "wrong")
        .env("MINILOG_LOG", "warn")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minilog_tail_reconnects_after_a_restart_and_loses_or_repeats_nothing() {
    let app = spawn_app().await;
    let (_k1, s1) = app.create_key("billing").await;
    let port = app.base.rsplit(':').next().unwrap().to_owned();
    let mut cli = TailCli::start(&app.base, &["--json"]);
    cli.connected().await;
    let first = send(
        &app,
        &s1,
        json!([entry("error", "alpha"), entry("warn", "bravo")]),
    )
    .await;
    let mut got = Vec::new();
    for _ in 0..2 {
        let e: Value = serde_json::from_str(&cli.line().await).unwrap();
        got.push(e["id"].as_u64().unwrap());
    }
    assert_eq!(got, first);

    // The server stops (ending the stream) and comes back on its port with
    // its data; meanwhile the tail retries.
    let TestApp {
        nats,
        data,
        stop,
        task,
        ..
    } = app;
    stop.trigger();
    task.await.unwrap().unwrap();
    let nats = nats.unwrap();
    let mut args = common::serve_args(data.path(), Some(nats.url()));
    args.listen = format!("127.0.0.1:{port}").parse().unwrap();
    let again = minilog::app::App::build(args).await.unwrap();
    let projector = again.projector();
    let stop = minilog::shutdown::Shutdown::default();
    let task = tokio::spawn(again.run(stop.wait()));
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    testkit::browser::wait_ready(&http, &base).await;

    // Sent while the tail may still be waiting to reconnect.
    let r = http
        .post(format!("{base}/api/v1/entries"))
        .bearer_auth(&s1)
        .json(&json!([entry("error", "charlie"), entry("info", "delta")]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let later: Vec<u64> =
        serde_json::from_value(r.json::<Value>().await.unwrap()["ids"].clone()).unwrap();
    let line = cli.connected().await;
    assert!(line.contains(&format!("after #{}", first[1])), "{line}");
    for _ in 0..2 {
        let e: Value = serde_json::from_str(&cli.line().await).unwrap();
        got.push(e["id"].as_u64().unwrap());
    }
    let mut expected = first.clone();
    expected.extend(&later);
    assert_eq!(got, expected, "no gap, no repeat");
    assert!(projector.wait_for(later[1]).await);
    cli.stop().await;
    stop.trigger();
    task.await.unwrap().unwrap();
    drop(nats);
}
