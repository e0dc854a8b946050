//! The Sentry SDK protocol against a real gateway and nats-server, with
//! requests the official SDKs made (`tests/fixtures/sentry/`, captured by
//! `capture.py` / `capture.mjs` there: the bytes exactly as sent, with
//! their headers). The same with the SDKs running live is in the Python
//! client's tests (`clients/python/tests/test_sentry_sdk.py`).

use crate::helpers::{TestApp, json_body, spawn_app, spawn_app_with};
use ingest_gateway::GatewayConfig;
use proto::Level;
use proto::commands::{self, KeyChanges};
use serde_json::Value;
use std::path::PathBuf;

/// The DSN key the fixtures were captured with.
const CAPTURED_KEY: &str = "0123456789abcdef0123456789abcdef";

struct Capture {
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn capture(name: &str) -> Capture {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sentry");
    let meta: Value =
        serde_json::from_slice(&std::fs::read(dir.join(format!("{name}.json"))).unwrap()).unwrap();
    let body = std::fs::read(dir.join(format!("{name}.body"))).unwrap();
    let headers = meta["headers"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "host" | "content-length" | "transfer-encoding" | "connection"
            )
        })
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    Capture {
        path: meta["path"].as_str().unwrap().to_owned(),
        headers,
        body,
    }
}

/// Sends a captured request as it was, with this app's DSN key in place
/// of the one it was captured with.
async fn replay(app: &TestApp, name: &str) -> reqwest::Response {
    replay_with_key(app, name, app.key.dsn_key.expose()).await
}

async fn replay_with_key(app: &TestApp, name: &str, key: &str) -> reqwest::Response {
    let c = capture(name);
    let mut request = app
        .http
        .post(app.url(&c.path.replace(CAPTURED_KEY, key)))
        .body(c.body);
    for (k, v) in &c.headers {
        request = request.header(k, v.replace(CAPTURED_KEY, key));
    }
    request.send().await.expect("answered")
}

/// Lets the app's key report from `site` (its public DSN), once the
/// gateway knows it.
async fn allow_origin(app: &TestApp, site: &str) {
    let seq = commands::change_key(
        &app.bus,
        app.key_id(),
        KeyChanges {
            origins: Some(vec![site.to_owned()]),
            rate_limit: None,
        },
        proto::Actor::Cli,
    )
    .await
    .unwrap();
    app.wait_for_key_seq(seq).await;
}

async fn ok(response: reqwest::Response) -> Value {
    let status = response.status();
    let body = json_body(response).await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn every_captured_sdk_request_is_stored_as_the_sdk_meant_it() {
    let app = spawn_app().await;
    // Python: capture_message with brotli (Content-Encoding: br).
    let body = ok(replay(&app, "python-message-br").await).await;
    assert_eq!(body["id"].as_str().map(str::len), Some(32), "{body}");
    // Python: a chained exception, gzip.
    ok(replay(&app, "python-exception-gzip").await).await;
    // Python: the logging integration.
    ok(replay(&app, "python-logging-error").await).await;
    // Node: an Error with a cause, uncompressed, key in the query.
    ok(replay(&app, "node-exception").await).await;
    // Node: captureMessage (a synthetic exception, not a real one).
    ok(replay(&app, "node-message").await).await;
    let stored = app.wait_for_entries(5).await;
    let by_message = |m: &str| {
        stored
            .iter()
            .find(|s| s.entry.message == m)
            .unwrap_or_else(|| {
                let all: Vec<_> = stored.iter().map(|s| &s.entry.message).collect();
                panic!("no entry {m:?} in {all:?}")
            })
    };

    let message = &by_message("disk almost full").entry;
    assert_eq!(message.level, Level::Warn);
    assert_eq!(message.key_id.as_deref(), Some(app.key_id()));
    assert_eq!(message.meta["release"], "shop@1.2.3");
    assert_eq!(message.meta["environment"], "production");
    assert_eq!(message.meta["server_name"], "web-1");
    assert!(message.meta["sdk"].starts_with("sentry.python/2."));
    assert!(message.time.is_some());
    assert!(!message.untrusted);

    let exception = stored
        .iter()
        .find(|s| s.entry.message.starts_with("KeyError: "))
        .expect("the Python exception")
        .entry
        .clone();
    assert_eq!(exception.level, Level::Error);
    let chain = exception.exception.expect("the chain is kept");
    assert_eq!(chain[0].ty, "KeyError");
    assert_eq!(chain[1].ty, "ZeroDivisionError");
    let raised = chain[0].frames.last().expect("frames");
    assert!(raised.context_line.is_some(), "{raised:?}");
    assert!(raised.lineno.is_some());
    assert!(chain[0].frames.iter().any(|f| f.in_app == Some(true)));

    let logging = &by_message("payment failed for order 42").entry;
    assert_eq!(logging.source.as_deref(), Some("billing"));
    assert_eq!(logging.level, Level::Error);

    let node = stored
        .iter()
        .find(|s| s.entry.message.starts_with("Error: node boom"))
        .expect("the Node exception")
        .entry
        .clone();
    let chain = node.exception.expect("a chain");
    assert_eq!(chain.len(), 2, "{chain:?}");
    assert_eq!(chain[1].ty, "SyntaxError");
    assert_eq!(node.source.as_deref(), Some("node"));

    let hello = &by_message("node hello").entry;
    assert_eq!(hello.exception, None);
    assert_eq!(hello.level, Level::Info);
}

#[tokio::test]
async fn structured_logs_become_one_entry_per_record_with_their_attributes() {
    let app = spawn_app().await;
    ok(replay(&app, "python-logs").await).await;
    ok(replay(&app, "node-logs").await).await;
    let stored = app.wait_for_entries(6).await;
    let cache = stored
        .iter()
        .find(|s| s.entry.message == "cache miss for user:7")
        .expect("the Python logger.warning");
    assert_eq!(cache.entry.level, Level::Warn);
    assert_eq!(cache.entry.meta["release"], "shop@1.2.3");
    assert_eq!(
        cache.entry.meta["sentry.message.template"],
        "cache miss for {key}"
    );
    let levels: Vec<Level> = stored.iter().map(|s| s.entry.level).collect();
    assert!(levels.contains(&Level::Info) && levels.contains(&Level::Error));
    // A resend of the same log item is stored once.
    ok(replay(&app, "python-logs").await).await;
    assert_eq!(app.stored().await.len(), 6);
}

#[tokio::test]
async fn other_item_types_are_counted_and_skipped_without_failing_the_rest() {
    let app = spawn_app().await;
    for name in [
        "python-session",
        "python-client-report",
        "python-transaction",
        "node-session",
    ] {
        ok(replay(&app, name).await).await;
    }
    // An event beside an attachment: the event is stored.
    ok(replay(&app, "python-attachment").await).await;
    let stored = app.wait_for_entries(1).await;
    assert_eq!(stored.len(), 1);
    let skipped = app.gateway.stats().sentry_skipped;
    assert_eq!(skipped["session"], 2, "{skipped:?}");
    assert_eq!(skipped["client_report"], 1);
    assert_eq!(skipped["transaction"], 1);
    assert_eq!(skipped["attachment"], 1);
    let text = app.gateway.stats().prometheus();
    assert!(
        text.contains("minilog_sentry_items_skipped_total{type=\"session\"} 2"),
        "{text}"
    );
}

#[tokio::test]
async fn a_resent_event_is_stored_once() {
    let app = spawn_app().await;
    let first = ok(replay(&app, "python-exception-plain").await).await;
    let again = ok(replay(&app, "python-exception-plain").await).await;
    assert_eq!(first["id"], again["id"]);
    assert_eq!(app.wait_for_entries(1).await.len(), 1);
    assert_eq!(app.gateway.stats().duplicates, 1);
}

#[tokio::test]
async fn keys_are_checked_in_every_form_and_a_revoke_ends_the_dsn() {
    let app = spawn_app().await;
    let url = app.url("/api/1/envelope/");
    let envelope = "{}\n{\"type\":\"event\"}\n{\"message\":\"hello sentry\"}\n";
    let dsn = app.key.dsn_key.expose().to_owned();
    // No key; a wrong one; the key's secret is not its DSN key.
    let none = app.http.post(&url).body(envelope).send().await.unwrap();
    assert_eq!(none.status(), 401);
    assert!(
        json_body(none).await["error"]["message"]
            .as_str()
            .unwrap()
            .contains("sentry_key")
    );
    let wrong = app
        .http
        .post(format!("{url}?sentry_key=ffffffffffffffffffffffffffffffff"))
        .body(envelope)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let secret = app
        .http
        .post(format!("{url}?sentry_key={}", app.secret()))
        .body(envelope)
        .send()
        .await
        .unwrap();
    assert_eq!(secret.status(), 401);
    // The envelope header's dsn alone is enough.
    let in_header = format!(
        "{{\"dsn\":\"http://{dsn}@127.0.0.1/1\"}}\n{{\"type\":\"event\"}}\n{{\"message\":\"via dsn\"}}\n"
    );
    ok(app.http.post(&url).body(in_header).send().await.unwrap()).await;
    // Header and query that disagree: 400, nothing stored.
    let mismatch = app
        .http
        .post(format!("{url}?sentry_key=ffffffffffffffffffffffffffffffff"))
        .header(
            "x-sentry-auth",
            format!("Sentry sentry_key={dsn}, sentry_version=7"),
        )
        .body(envelope)
        .send()
        .await
        .unwrap();
    assert_eq!(mismatch.status(), 400);
    // A header sent as a list of values (as the PHP SDK does) is read.
    let listed = app
        .http
        .post(&url)
        .header("x-sentry-auth", format!("Sentry sentry_version=7, sentry_key={dsn}"))
        .header("x-sentry-auth", format!("Sentry sentry_key={dsn}"))
        .body("{\"sent_at\":\"2026-12-01T10:00:00.000+00:00\"}\n{\"type\":\"event\"}\n{\"message\":\"listed\"}")
        .send()
        .await
        .unwrap();
    ok(listed).await;
    assert_eq!(app.wait_for_entries(2).await.len(), 2);

    app.set_key_active(app.key_id(), false).await;
    let revoked = replay(&app, "python-message-br").await;
    assert_eq!(revoked.status(), 401);
    app.set_key_active(app.key_id(), true).await;
    // A new DSN key: the old one stops working, the new one works.
    let (new, seq) = commands::issue_dsn(&app.bus, app.key_id(), proto::Actor::Cli)
        .await
        .unwrap();
    app.wait_for_key_seq(seq).await;
    assert_eq!(replay(&app, "python-message-br").await.status(), 401);
    ok(replay_with_key(&app, "python-message-br", new.expose()).await).await;
}

#[tokio::test]
async fn malformed_envelopes_get_a_clear_4xx_and_store_nothing() {
    let app = spawn_app().await;
    let dsn = app.key.dsn_key.expose().to_owned();
    let url = app.url(&format!("/api/1/envelope/?sentry_key={dsn}"));
    let gzip = |data: &[u8]| {
        use std::io::Write as _;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    };
    let deep = format!(
        "{{}}\n{{\"type\":\"event\"}}\n{}{}\n",
        "{\"a\":".repeat(5000),
        "}".repeat(5000)
    );
    let cases: Vec<(&str, Vec<u8>, Option<&str>, u16)> = vec![
        ("empty body", vec![], None, 400),
        (
            "header only",
            b"{\"event_id\":\"9ec79c33ec9942ab8353589fcb2e04dc\"}\n".to_vec(),
            None,
            400,
        ),
        ("not JSON", b"hello\n".to_vec(), None, 400),
        (
            "length past the end",
            b"{}\n{\"type\":\"event\",\"length\":500}\n{}".to_vec(),
            None,
            400,
        ),
        (
            "wrong length",
            b"{}\n{\"type\":\"event\",\"length\":3}\n{\"message\":\"x\"}".to_vec(),
            None,
            400,
        ),
        (
            "event not an object",
            b"{}\n{\"type\":\"event\"}\n[1,2]\n".to_vec(),
            None,
            400,
        ),
        (
            "invalid UTF-8",
            b"{}\n{\"type\":\"event\"}\n{\"message\":\"\xff\xfe\"}\n".to_vec(),
            None,
            400,
        ),
        ("deep JSON", deep.into_bytes(), None, 400),
        ("not gzip", b"plain".to_vec(), Some("gzip"), 400),
        ("unknown encoding", b"x".to_vec(), Some("compress"), 415),
        (
            "zip bomb",
            gzip(&vec![b' '; 40 * 1024 * 1024]),
            Some("gzip"),
            413,
        ),
        (
            "event over 1 MiB",
            format!(
                "{{}}\n{{\"type\":\"event\"}}\n{{\"message\":\"{}\"}}\n",
                "x".repeat(1_100_000)
            )
            .into_bytes(),
            None,
            413,
        ),
    ];
    for (what, body, encoding, want) in cases {
        let mut request = app.http.post(&url).body(body);
        if let Some(e) = encoding {
            request = request.header("content-encoding", e);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let body = json_body(response).await;
        assert_eq!(status, want, "{what}: {body}");
        assert!(
            !body["error"]["message"].as_str().unwrap_or("").is_empty(),
            "{what}: {body}"
        );
    }
    // A huge header is refused by the HTTP server, not a panic.
    let huge = app
        .http
        .post(&url)
        .header("x-sentry-auth", "x".repeat(200_000))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert!(huge.status().is_client_error(), "{}", huge.status());
    assert!(app.stored().await.is_empty());
    // Still serving.
    ok(replay(&app, "python-message-br").await).await;
}

#[tokio::test]
async fn over_the_rate_limit_the_sdks_are_told_when_to_come_back() {
    let app = spawn_app_with(GatewayConfig {
        rate_limit: 2,
        ..GatewayConfig::default()
    })
    .await;
    ok(replay(&app, "python-message-br").await).await;
    ok(replay(&app, "python-exception-plain").await).await;
    let limited = replay(&app, "python-logging-error").await;
    assert_eq!(limited.status(), 429);
    let retry = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(retry.parse::<u64>().unwrap() >= 1);
    assert_eq!(
        limited.headers()["x-sentry-rate-limits"].to_str().unwrap(),
        format!("{retry}::key")
    );
}

#[tokio::test]
async fn a_public_dsn_works_only_from_the_keys_origins_and_is_untrusted() {
    let app = spawn_app().await;
    let site = "https://shop.example";
    allow_origin(&app, site).await;
    let url = app.url(&format!(
        "/api/1/envelope/?sentry_key={}&sentry_version=7",
        app.key_id()
    ));
    let envelope = "{}\n{\"type\":\"event\"}\n{\"message\":\"from the shop page\",\"platform\":\"javascript\"}\n";
    let send = |origin: &'static str| {
        app.http
            .post(&url)
            .header("origin", origin)
            .header("content-type", "text/plain;charset=UTF-8")
            .body(envelope)
            .send()
    };
    let refused = send("https://evil.example").await.unwrap();
    assert_eq!(refused.status(), 403);
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    let allowed = send(site).await.unwrap();
    assert_eq!(allowed.headers()["access-control-allow-origin"], site);
    ok(allowed).await;
    let stored = app.wait_for_entries(1).await;
    assert!(stored[0].entry.untrusted);
    // Preflights: for the key's origins alone.
    let preflight = |origin: &'static str| {
        app.http
            .request(reqwest::Method::OPTIONS, &url)
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
    };
    let ok_pre = preflight(site).await.unwrap();
    assert_eq!(ok_pre.status(), 204);
    assert_eq!(ok_pre.headers()["access-control-allow-origin"], site);
    let bad_pre = preflight("https://evil.example").await.unwrap();
    assert_eq!(bad_pre.status(), 403);
    assert!(
        bad_pre
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    // A key id without an origin (no public DSN): refused.
    let other = app.create_key("no origins").await;
    let response = app
        .http
        .post(app.url(&format!("/api/1/envelope/?sentry_key={}", other.id)))
        .header("origin", site)
        .body(envelope)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn the_store_endpoint_takes_json_and_base64_zlib() {
    use base64::Engine as _;
    use std::io::Write as _;
    let app = spawn_app().await;
    let dsn = app.key.dsn_key.expose().to_owned();
    let url = app.url("/api/1/store/");
    let auth = format!("Sentry sentry_key={dsn}, sentry_version=7");
    let plain = app
        .http
        .post(&url)
        .header("x-sentry-auth", &auth)
        .body(r#"{"event_id":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","message":"stored plainly","level":"warning"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(ok(plain).await["id"], "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(br#"{"message":"stored the old way","level":"error"}"#)
        .unwrap();
    let body = base64::engine::general_purpose::STANDARD.encode(z.finish().unwrap());
    let old = app
        .http
        .post(&url)
        .header("x-sentry-auth", &auth)
        .body(body)
        .send()
        .await
        .unwrap();
    ok(old).await;
    let stored = app.wait_for_entries(2).await;
    assert_eq!(stored[0].entry.message, "stored plainly");
    assert_eq!(stored[0].entry.level, Level::Warn);
    assert_eq!(stored[1].entry.message, "stored the old way");
}

#[tokio::test]
async fn csp_reports_become_warn_entries_under_the_public_dsn_rules() {
    let app = spawn_app().await;
    let site = "https://shop.example";
    allow_origin(&app, site).await;
    let url = app.url(&format!("/api/1/security/?sentry_key={}", app.key_id()));
    let report = |document: &str| {
        serde_json::json!({"csp-report": {
            "document-uri": document, "referrer": "",
            "violated-directive": "script-src-elem", "effective-directive": "script-src-elem",
            "original-policy": "script-src 'self'; report-uri /api/1/security/",
            "blocked-uri": "https://evil.example/steal.js", "status-code": 200,
            "source-file": "https://shop.example/cart", "line-number": 7}})
        .to_string()
    };
    // From a page of the key's origin (a report-uri POST without Origin:
    // the document's origin decides).
    let ok = app
        .http
        .post(&url)
        .header("content-type", "application/csp-report")
        .body(report("https://shop.example/cart"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200, "{}", ok.text().await.unwrap());
    // The Reporting API's shape, with an Origin.
    let reports = serde_json::json!([{"type": "csp-violation", "age": 1, "url": "https://shop.example/",
        "body": {"documentURL": "https://shop.example/", "blockedURL": "inline",
                 "effectiveDirective": "style-src-attr", "disposition": "enforce"}}]);
    let ok = app
        .http
        .post(&url)
        .header("content-type", "application/reports+json")
        .header("origin", site)
        .body(reports.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    // Another site's page, by its Origin or by its document: refused.
    for (origin, document) in [
        (Some("https://evil.example"), "https://shop.example/cart"),
        (None, "https://evil.example/page"),
    ] {
        let mut r = app
            .http
            .post(&url)
            .header("content-type", "application/csp-report")
            .body(report(document));
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        assert_eq!(
            r.send().await.unwrap().status(),
            403,
            "{origin:?} {document}"
        );
    }
    let bad = app
        .http
        .post(&url)
        .body("{\"not\": \"a report\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let stored = app.wait_for_entries(2).await;
    assert_eq!(stored.len(), 2);
    let first = &stored[0].entry;
    assert_eq!(first.level, Level::Warn);
    assert_eq!(
        first.message,
        "CSP: script-src-elem blocked https://evil.example/steal.js on https://shop.example/cart"
    );
    assert_eq!(first.meta["directive"], "script-src-elem");
    assert_eq!(first.meta["blocked_uri"], "https://evil.example/steal.js");
    assert_eq!(first.meta["document_uri"], "https://shop.example/cart");
    assert!(first.untrusted);
    assert_eq!(stored[1].entry.meta["directive"], "style-src-attr");
}

#[tokio::test]
async fn a_public_dsn_is_held_to_the_per_address_limit_of_browser_reports() {
    let mut config = GatewayConfig::default();
    config.browser.address_limit = 2;
    let app = spawn_app_with(config).await;
    let site = "https://shop.example";
    allow_origin(&app, site).await;
    let url = app.url(&format!("/api/1/envelope/?sentry_key={}", app.key_id()));
    let send = || {
        app.http
            .post(&url)
            .header("origin", site)
            .body("{}\n{\"type\":\"event\"}\n{\"message\":\"from a visitor\"}\n")
            .send()
    };
    assert_eq!(send().await.unwrap().status(), 200);
    assert_eq!(send().await.unwrap().status(), 200);
    let limited = send().await.unwrap();
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("retry-after"));
    assert!(limited.headers().contains_key("x-sentry-rate-limits"));
    assert_eq!(limited.headers()["access-control-allow-origin"], site);
    // The server DSN of the same key is not a browser's: no address limit.
    for _ in 0..3 {
        ok(replay(&app, "python-message-br").await).await;
    }
}
