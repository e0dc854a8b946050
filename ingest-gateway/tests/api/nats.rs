//! Direct NATS ingestion: durable submissions on `minilog.ingest.>` and
//! requests on `minilog.submit.>`, against a real nats-server.

use crate::helpers::{TestApp, spawn_app, spawn_app_with, start_gateway, without_nats};
use async_nats::HeaderMap;
use async_nats::jetstream;
use futures::StreamExt;
use ingest_gateway::GatewayConfig;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(20);

/// JetStream-publishes a submission and waits for the stream's ack (it is
/// then durable), optionally asking for the outcome on `reply_to`.
async fn publish(js: &jetstream::Context, body: Vec<u8>, reply_to: Option<&str>) -> u64 {
    let mut headers = HeaderMap::new();
    if let Some(r) = reply_to {
        headers.insert("Minilog-Reply-To", r);
    }
    js.publish_with_headers("minilog.ingest.tests", headers, body.into())
        .await
        .expect("publishing a submission")
        .await
        .expect("MINILOG_INGEST stores it")
        .sequence
}

fn submission(app: &TestApp, message: &str) -> Vec<u8> {
    json!({"key": app.secret(), "message": message, "level": "warn", "source": "nats-test"})
        .to_string()
        .into_bytes()
}

/// Collects `n` answers from a subscription.
async fn answers(sub: &mut async_nats::Subscriber, n: usize) -> Vec<Value> {
    let mut out = Vec::new();
    while out.len() < n {
        let msg = tokio::time::timeout(PATIENCE, sub.next())
            .await
            .expect("an answer in time")
            .expect("the subscription goes on");
        out.push(serde_json::from_slice(&msg.payload).expect("a JSON answer"));
    }
    out
}

#[tokio::test]
async fn submissions_published_while_no_gateway_runs_are_stored_once_one_starts() {
    let app = spawn_app_with(without_nats()).await;
    let client = app.nats_client().await;
    let js = jetstream::new(client.clone());
    publish(&js, submission(&app, "json while none runs"), None).await;
    let packed = rmp_serde::to_vec_named(&json!({
        "key": app.secret(), "message": "messagepack while none runs", "level": 40,
        "meta": {"host": "db-1"}, "time": 1_800_000_000,
    }))
    .unwrap();
    publish(&js, packed, None).await;
    let mut replies = client.subscribe("_INBOX.tests.reply").await.unwrap();
    let seq = publish(
        &js,
        submission(&app, "with a reply"),
        Some("_INBOX.tests.reply"),
    )
    .await;
    assert_eq!(seq, 3);
    assert_eq!(app.ingest_waiting().await, 3);
    assert!(app.stored().await.is_empty());

    let (gateway, _stop) = start_gateway(&app.bus, GatewayConfig::default()).await;
    let stored = app.wait_for_entries(3).await;
    let mut messages: Vec<&str> = stored.iter().map(|s| s.entry.message.as_str()).collect();
    messages.sort();
    assert_eq!(
        messages,
        [
            "json while none runs",
            "messagepack while none runs",
            "with a reply"
        ]
    );
    let packed = stored
        .iter()
        .find(|s| s.entry.message.starts_with("messagepack"))
        .unwrap();
    assert_eq!(packed.entry.level, proto::Level::Error);
    assert_eq!(packed.entry.meta["host"], "db-1");
    assert_eq!(packed.entry.time, Some(1_800_000_000_000));
    assert_eq!(packed.entry.key_id.as_deref(), Some(app.key_id()));
    let answer = &answers(&mut replies, 1).await[0];
    let with_reply = stored
        .iter()
        .find(|s| s.entry.message == "with a reply")
        .unwrap();
    assert_eq!(answer["id"], with_reply.seq);
    app.wait_ingest_drained().await;
    assert_eq!(gateway.stats().paths["nats"].accepted, 3);
}

#[tokio::test]
async fn a_gateway_killed_between_publish_and_ack_leaves_each_entry_once() {
    let app = spawn_app_with(without_nats()).await;
    let js = jetstream::new(app.nats_client().await);
    let ack_wait = Duration::from_secs(1);
    let mut dying = GatewayConfig::default();
    dying.nats.ack_wait = ack_wait;
    dying.nats.stop_before_ack = true;
    let (first, stop_first) = start_gateway(&app.bus, dying).await;
    for i in 0..3 {
        publish(&js, submission(&app, &format!("submission {i}")), None).await;
    }
    // The first gateway stores one event, then "dies" before its ack.
    app.wait_for_entries(1).await;
    assert_eq!(first.stats().accepted, 1);
    drop(stop_first);

    let mut config = GatewayConfig::default();
    config.nats.ack_wait = ack_wait;
    let (second, _stop) = start_gateway(&app.bus, config).await;
    app.wait_ingest_drained().await;
    let stored = app.stored().await;
    let messages: BTreeSet<&str> = stored.iter().map(|s| s.entry.message.as_str()).collect();
    assert_eq!(stored.len(), 3, "{stored:?}");
    assert_eq!(messages.len(), 3);
    // The redelivered submission was published again and dropped as a
    // duplicate by its message id.
    let stats = second.stats();
    assert_eq!((stats.accepted, stats.duplicates), (2, 1));
}

#[tokio::test]
async fn two_gateways_drain_together_without_duplicates() {
    let app = spawn_app().await;
    let (second, _stop) = start_gateway(&app.bus, GatewayConfig::default()).await;
    let js = jetstream::new(app.nats_client().await);
    let acks: Vec<_> = futures::future::join_all((0..300).map(|i| {
        let js = js.clone();
        let body = submission(&app, &format!("entry {i}"));
        async move {
            js.publish("minilog.ingest.many", body.into())
                .await
                .expect("publishing")
                .await
                .expect("stored")
        }
    }))
    .await;
    assert_eq!(acks.len(), 300);
    app.wait_for_entries(300).await;
    app.wait_ingest_drained().await;
    let stored = app.stored().await;
    let messages: BTreeSet<&str> = stored.iter().map(|s| s.entry.message.as_str()).collect();
    assert_eq!((stored.len(), messages.len()), (300, 300));
    let (a, b) = (app.gateway.stats(), second.stats());
    assert_eq!(a.accepted + b.accepted, 300);
    assert_eq!(a.duplicates + b.duplicates, 0);
}

#[tokio::test]
async fn bad_key_level_or_garbage_is_acked_counted_and_answered_and_nothing_is_stored() {
    let app = spawn_app().await;
    let other = app.create_key("soon revoked").await;
    app.set_key_active(other.id.as_str(), false).await;
    let client = app.nats_client().await;
    let js = jetstream::new(client.clone());
    let mut replies = client.subscribe("_INBOX.bad.>").await.unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "key_unknown",
            json!({"key": "NOT-A-KEY-AT-ALL-0000", "message": "unknown key"})
                .to_string()
                .into_bytes(),
        ),
        (
            "key_missing",
            json!({"message": "no key"}).to_string().into_bytes(),
        ),
        (
            "key_revoked",
            json!({"key": other.secret.expose(), "message": "revoked key"})
                .to_string()
                .into_bytes(),
        ),
        (
            "invalid_level",
            json!({"key": app.secret(), "message": "bad level", "level": "loud"})
                .to_string()
                .into_bytes(),
        ),
        (
            "invalid_message",
            json!({"key": app.secret(), "message": "ab"})
                .to_string()
                .into_bytes(),
        ),
        ("invalid_body", b"\xc1\xff\x00 garbage bytes".to_vec()),
        ("invalid_json", b"{\"key\": nope".to_vec()),
    ];
    for (i, (_, body)) in cases.iter().enumerate() {
        publish(&js, body.clone(), Some(&format!("_INBOX.bad.{i}"))).await;
    }
    let got = answers(&mut replies, cases.len()).await;
    for answer in &got {
        assert!(answer["error"]["code"].is_string(), "{answer}");
    }
    app.wait_ingest_drained().await;
    let nats = app.gateway.stats().paths["nats"].clone();
    for (reason, _) in &cases {
        assert_eq!(nats.rejected.get(*reason), Some(&1), "{reason}: {nats:?}");
    }
    assert_eq!(nats.accepted, 0);
    assert!(app.stored().await.is_empty());
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .contains("minilog_gateway_rejected_total{path=\"nats\",reason=\"invalid_level\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_reply_subject_inside_minilog_is_not_written_to() {
    let app = spawn_app().await;
    let js = jetstream::new(app.nats_client().await);
    publish(
        &js,
        submission(&app, "tries to write the log"),
        Some("minilog.events.entry.evil"),
    )
    .await;
    app.wait_for_entries(1).await;
    app.wait_ingest_drained().await;
    let stored = app.stored().await;
    assert_eq!(
        stored.len(),
        1,
        "only the entry itself, no reply in the log"
    );
    assert_eq!(
        app.gateway.stats().paths["nats"]
            .rejected
            .get("invalid_reply_to"),
        Some(&1)
    );
}

#[tokio::test]
async fn submit_requests_are_answered_once_the_entry_is_stored() {
    let app = spawn_app().await;
    let client = app.nats_client().await;
    let answer = client
        .request("minilog.submit.app", submission(&app, "synchronous").into())
        .await
        .expect("a gateway answers");
    let answer: Value = serde_json::from_slice(&answer.payload).unwrap();
    let stored = app.stored().await;
    assert_eq!(stored.len(), 1);
    assert_eq!(answer["id"], stored[0].seq);
    assert_eq!(stored[0].entry.message, "synchronous");

    let bad = client
        .request(
            "minilog.submit.app",
            json!({"key": app.secret(), "message": "x", "level": "warn"})
                .to_string()
                .into(),
        )
        .await
        .unwrap();
    let bad: Value = serde_json::from_slice(&bad.payload).unwrap();
    assert_eq!(bad["error"]["code"], "invalid_message");

    // An Idempotency-Key makes a retried request an answer, not a second entry.
    let mut headers = HeaderMap::new();
    headers.insert("Idempotency-Key", "job-42");
    let mut ids = Vec::new();
    for _ in 0..2 {
        let a = client
            .request_with_headers(
                "minilog.submit.app",
                headers.clone(),
                submission(&app, "retried").into(),
            )
            .await
            .unwrap();
        let a: Value = serde_json::from_slice(&a.payload).unwrap();
        ids.push(a["id"].as_u64().unwrap());
    }
    assert_eq!(ids[0], ids[1]);
    assert_eq!(app.stored().await.len(), 2);
}

#[tokio::test]
async fn a_full_ingest_stream_refuses_new_submissions_and_keeps_the_old_ones() {
    let app = spawn_app_with(without_nats()).await;
    let settings = proto::bus::StreamSettings {
        ingest: proto::bus::IngestSettings {
            max_bytes: 4096,
            ..Default::default()
        },
        ..Default::default()
    };
    app.bus.ensure_streams(&settings).await.unwrap();
    let js = jetstream::new(app.nats_client().await);
    let mut stored = 0u64;
    let refused = loop {
        let body = submission(&app, &format!("filling {stored:04} {}", "x".repeat(200)));
        match js.publish("minilog.ingest.full", body.into()).await {
            Ok(ack) => match ack.await {
                Ok(_) => stored += 1,
                Err(e) => break e.to_string(),
            },
            Err(e) => break e.to_string(),
        }
        assert!(stored < 100, "the stream never filled up");
    };
    assert!(stored > 0);
    assert!(
        refused.contains("maximum bytes") || refused.contains("resource limits"),
        "{refused}"
    );
    // Nothing old was dropped to make room: a gateway stores every one.
    assert_eq!(app.ingest_waiting().await, stored);
    let (_gateway, _stop) = start_gateway(&app.bus, GatewayConfig::default()).await;
    let entries = app.wait_for_entries(stored).await;
    assert!(
        entries
            .iter()
            .any(|e| e.entry.message.starts_with("filling 0000"))
    );
}
