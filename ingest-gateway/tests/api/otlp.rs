//! OTLP/HTTP logs (`POST /v1/logs`) against a real gateway and
//! nats-server, with hand-written OTLP/JSON requests (the protobuf path
//! with the official Python exporter is in the Python client's tests,
//! `clients/python/tests/test_otlp.py`). Also: 503 on the new paths while
//! NATS is down.

use crate::helpers::{TestApp, json_body, spawn_app, spawn_app_with};
use ingest_gateway::GatewayConfig;
use proto::Level;
use serde_json::{Value, json};
use std::io::Write as _;

fn record(body: Value, severity: u64) -> Value {
    json!({
        "timeUnixNano": "1800000000123456789",
        "severityNumber": severity,
        "body": body,
        "attributes": [
            {"key": "order_id", "value": {"intValue": "42"}},
            {"key": "http", "value": {"kvlistValue": {"values": [
                {"key": "method", "value": {"stringValue": "POST"}}]}}}
        ],
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": "0000000000000000"
    })
}

fn request(records: Vec<Value>) -> Value {
    json!({"resourceLogs": [{
        "resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "billing-svc"}}]},
        "scopeLogs": [{"scope": {"name": "test"}, "logRecords": records}]
    }]})
}

async fn post(app: &TestApp, body: Vec<u8>, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut r = app
        .http
        .post(app.url("/v1/logs"))
        .bearer_auth(app.secret())
        .header("content-type", "application/json")
        .body(body);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.send().await.expect("answered")
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[tokio::test]
async fn records_are_stored_and_a_bad_one_is_reported_in_partial_success() {
    let app = spawn_app().await;
    let body = request(vec![
        record(json!({"stringValue": "payment failed"}), 17),
        record(Value::Null, 9),
        record(
            json!({"kvlistValue": {"values": [
            {"key": "event", "value": {"stringValue": "cache miss"}}]}}),
            13,
        ),
    ]);
    let response = post(&app, body.to_string().into_bytes(), &[]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let answer = json_body(response).await;
    assert_eq!(answer["partialSuccess"]["rejectedLogRecords"], "1");
    assert!(
        answer["partialSuccess"]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("log record 2")
    );
    let stored = app.wait_for_entries(2).await;
    let first = &stored[0].entry;
    assert_eq!(first.message, "payment failed");
    assert_eq!(first.level, Level::Error);
    assert_eq!(first.source.as_deref(), Some("billing-svc"));
    assert_eq!(first.time, Some(1_800_000_000_123));
    assert_eq!(first.meta["order_id"], "42");
    assert_eq!(first.meta["http.method"], "POST");
    assert_eq!(first.meta["trace_id"], "5b8efff798038103d269b633813fc60c");
    assert!(!first.meta.contains_key("span_id"));
    assert_eq!(stored[1].entry.level, Level::Warn);
    assert_eq!(stored[1].entry.message, r#"{"event":"cache miss"}"#);

    // The exporter's retry of the same request stores nothing twice.
    let again = post(&app, body.to_string().into_bytes(), &[]).await;
    assert_eq!(again.status(), 200);
    assert_eq!(app.stored().await.len(), 2);
    assert_eq!(app.gateway.stats().paths["otlp"].duplicates, 2);
}

#[tokio::test]
async fn gzip_bodies_are_read_and_every_refusal_has_its_status() {
    let app = spawn_app().await;
    let body = request(vec![record(json!({"stringValue": "zipped up"}), 9)]).to_string();
    let ok = post(&app, gzip(body.as_bytes()), &[("content-encoding", "gzip")]).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(json_body(ok).await, json!({}));
    assert_eq!(app.wait_for_entries(1).await[0].entry.message, "zipped up");

    let wrong_key = app
        .http
        .post(app.url("/v1/logs"))
        .bearer_auth("not-a-key")
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_key.status(), 401);
    let text = app
        .http
        .post(app.url("/v1/logs"))
        .bearer_auth(app.secret())
        .header("content-type", "text/plain")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(text.status(), 415);
    // What, body, Content-Encoding, status, error code.
    type Case = (
        &'static str,
        Vec<u8>,
        Option<&'static str>,
        u16,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        ("not JSON", b"{".to_vec(), None, 400, "invalid_json"),
        (
            "wrong type",
            br#"{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"severityNumber": "x"}]}]}]}"#
                .to_vec(),
            None,
            400,
            "invalid_otlp",
        ),
        (
            "deep",
            format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes(),
            None,
            400,
            "invalid_json",
        ),
        (
            "not gzip",
            b"plain".to_vec(),
            Some("gzip"),
            400,
            "bad_compression",
        ),
        (
            "zip bomb",
            gzip(&vec![b' '; 40 * 1024 * 1024]),
            Some("gzip"),
            413,
            "decompressed_too_large",
        ),
    ];
    for (what, body, encoding, status, code) in cases {
        let headers: Vec<(&str, &str)> = encoding
            .map(|e| ("content-encoding", e))
            .into_iter()
            .collect();
        let response = post(&app, body, &headers).await;
        assert_eq!(response.status(), status, "{what}");
        assert_eq!(json_body(response).await["error"]["code"], code, "{what}");
    }
    // A protobuf body that is not one: 400 with a google.rpc.Status.
    let garbage = app
        .http
        .post(app.url("/v1/logs"))
        .bearer_auth(app.secret())
        .header("content-type", "application/x-protobuf")
        .body(vec![0xff, 0xff, 0xff, 0xff, 0x0f])
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), 400);
    assert_eq!(garbage.headers()["content-type"], "application/x-protobuf");
    let status = garbage.bytes().await.unwrap();
    assert!(String::from_utf8_lossy(&status).contains("not an OTLP protobuf request"));
    // A real protobuf request cut short, and one with a string that is
    // not UTF-8: 400, nothing stored.
    use ingest_gateway::otlp_messages as m;
    use prost::Message as _;
    let full = m::ExportLogsServiceRequest {
        resource_logs: vec![m::ResourceLogs {
            resource: None,
            scope_logs: vec![m::ScopeLogs {
                scope: None,
                log_records: vec![m::LogRecord {
                    body: Some(m::AnyValue {
                        value: Some(m::Value::String("cut short".into())),
                    }),
                    ..m::LogRecord::default()
                }],
            }],
        }],
    }
    .encode_to_vec();
    let mut not_utf8 = full.clone();
    let at = not_utf8.windows(3).position(|w| w == b"cut").unwrap();
    not_utf8[at] = 0xff;
    for body in [full[..full.len() - 4].to_vec(), not_utf8] {
        let response = app
            .http
            .post(app.url("/v1/logs"))
            .bearer_auth(app.secret())
            .header("content-type", "application/x-protobuf")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
    }
    let bad_utf8_json = post(&app, b"{\"resourceLogs\": \"\xff\"}".to_vec(), &[]).await;
    assert_eq!(bad_utf8_json.status(), 400);
    assert_eq!(app.stored().await.len(), 1);
    // The whole request, not cut: stored.
    let ok = app
        .http
        .post(app.url("/v1/logs"))
        .bearer_auth(app.secret())
        .header("content-type", "application/x-protobuf")
        .body(full)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["content-type"], "application/x-protobuf");
    assert_eq!(app.wait_for_entries(2).await[1].entry.message, "cut short");
}

#[tokio::test]
async fn over_the_rate_limit_exporters_get_429_with_retry_after() {
    let app = spawn_app_with(GatewayConfig {
        rate_limit: 2,
        ..GatewayConfig::default()
    })
    .await;
    let three = request(vec![
        record(json!({"stringValue": "one of three"}), 9),
        record(json!({"stringValue": "two of three"}), 9),
        record(json!({"stringValue": "three of three"}), 9),
    ]);
    // A batch past the limit from a full bucket is let through once (the
    // bucket goes into debt); the next one waits.
    let first = post(&app, three.to_string().into_bytes(), &[]).await;
    assert_eq!(first.status(), 200);
    let next = request(vec![record(json!({"stringValue": "one too many"}), 9)]);
    let response = post(&app, next.to_string().into_bytes(), &[]).await;
    assert_eq!(response.status(), 429);
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    assert_eq!(app.stored().await.len(), 3);
}

#[tokio::test]
async fn while_nats_is_down_the_new_paths_answer_503_with_retry_after() {
    let mut app = spawn_app().await;
    app.server.stop();
    let bus = app.bus.clone();
    app.wait_until("the client sees NATS gone", || !bus.is_connected())
        .await;
    let otlp = post(
        &app,
        request(vec![record(json!({"stringValue": "while down"}), 9)])
            .to_string()
            .into_bytes(),
        &[],
    )
    .await;
    assert_eq!(otlp.status(), 503);
    assert_eq!(otlp.headers()["retry-after"], "1");
    let sentry = app
        .http
        .post(app.url(&format!(
            "/api/1/envelope/?sentry_key={}",
            app.key.dsn_key.expose()
        )))
        .body("{}\n{\"type\":\"event\"}\n{\"event_id\":\"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\",\"message\":\"while down\"}\n")
        .send()
        .await
        .unwrap();
    assert_eq!(sentry.status(), 503);
    assert_eq!(sentry.headers()["retry-after"], "1");
    assert_eq!(json_body(sentry).await["error"]["code"], "unavailable");
}
