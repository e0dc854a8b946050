//! Per-key rate limits on every path: `429` with `Retry-After` over HTTP;
//! acked, counted as dropped and answered as an error over NATS; one key's
//! flood does not starve another.

use crate::helpers::{TestApp, ids_of, json_body, spawn_app};
use async_nats::jetstream;
use proto::commands::{self, KeyChanges};
use serde_json::{Value, json};
use std::time::Duration;

async fn set_rate_limit(app: &TestApp, key_id: &str, limit: Option<u32>) {
    let seq = commands::change_key(
        &app.bus,
        key_id,
        KeyChanges {
            origins: None,
            rate_limit: Some(limit),
        },
        proto::Actor::Cli,
    )
    .await
    .expect("changing the key");
    app.wait_for_key_seq(seq).await;
}

#[tokio::test]
async fn over_its_limit_a_key_gets_429_with_retry_after_on_every_path() {
    let app = spawn_app().await;
    set_rate_limit(&app, app.key_id(), Some(3)).await;
    assert_eq!(
        app.gateway
            .registry()
            .get(app.key_id())
            .unwrap()
            .state
            .rate_limit,
        Some(3)
    );
    // A batch counts per entry.
    let ok = app
        .post_json(&json!([{"message": "one"}, {"message": "two"}]))
        .await;
    assert_eq!(ids_of(ok).await.len(), 2);
    let ok = app
        .post_form(&[("key", app.secret()), ("message", "three")])
        .await;
    assert_eq!(ok.status(), 200);

    let over = app.post_json(&json!({"message": "four"})).await;
    assert_eq!(over.status(), 429);
    let retry: u64 = over.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=20).contains(&retry), "{retry}");
    assert_eq!(json_body(over).await["error"]["code"], "rate_limited");
    let over = app
        .post_form(&[("key", app.secret()), ("message", "four")])
        .await;
    assert_eq!(over.status(), 429);
    assert!(over.headers().contains_key("retry-after"));

    // NATS: a durable submission is acked and dropped, answered as an error.
    let client = app.nats_client().await;
    let mut replies = client.subscribe("_INBOX.rate").await.unwrap();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Minilog-Reply-To", "_INBOX.rate");
    let body = json!({"key": app.secret(), "message": "five"}).to_string();
    jetstream::new(client.clone())
        .publish_with_headers("minilog.ingest.x", headers, body.clone().into())
        .await
        .unwrap()
        .await
        .unwrap();
    let reply = tokio::time::timeout(
        Duration::from_secs(20),
        futures::StreamExt::next(&mut replies),
    )
    .await
    .expect("an answer")
    .unwrap();
    let reply: Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(reply["error"]["code"], "rate_limited");
    assert!(reply["error"]["retry_after"].as_u64().unwrap() >= 1);
    app.wait_ingest_drained().await;
    // A request too.
    let answer = client
        .request("minilog.submit.x", body.into())
        .await
        .unwrap();
    let answer: Value = serde_json::from_slice(&answer.payload).unwrap();
    assert_eq!(answer["error"]["code"], "rate_limited");

    let stats = app.gateway.stats();
    assert_eq!(stats.paths["http"].rejected.get("rate_limited"), Some(&2));
    assert_eq!(stats.paths["nats"].rejected.get("rate_limited"), Some(&2));
    assert_eq!(app.stored().await.len(), 3);

    // Back to the default limit: accepted again at once.
    set_rate_limit(&app, app.key_id(), None).await;
    let ok = app.post_json(&json!({"message": "after the change"})).await;
    assert_eq!(ids_of(ok).await.len(), 1);
}

#[tokio::test]
async fn a_flood_from_one_key_does_not_starve_another() {
    let app = spawn_app().await;
    let quiet = app.create_key("quiet key").await;
    set_rate_limit(&app, app.key_id(), Some(5)).await;

    // The flood and the quiet key's entries share MINILOG_INGEST, the
    // quiet ones published behind the whole flood.
    let js = jetstream::new(app.nats_client().await);
    let mut acks = Vec::new();
    for i in 0..500 {
        let body = json!({"key": app.secret(), "message": format!("flood {i}")}).to_string();
        acks.push(
            js.publish("minilog.ingest.flood", body.into())
                .await
                .unwrap(),
        );
    }
    for i in 0..5 {
        let body = json!({"key": quiet.secret.expose(), "message": format!("quiet {i}")});
        acks.push(
            js.publish("minilog.ingest.quiet", body.to_string().into())
                .await
                .unwrap(),
        );
    }
    for ack in acks {
        ack.await.unwrap();
    }
    // Over HTTP at the same time, the flooding key is refused and the
    // quiet one is not.
    let flood = app.post_json(&json!({"message": "flood over http"})).await;
    let calm = app
        .post_json_with(
            &json!({"message": "quiet over http"}),
            quiet.secret.expose(),
            None,
        )
        .await;
    assert_eq!(calm.status(), 200);
    app.wait_ingest_drained().await;
    let stored = app.stored().await;
    let quiet_count = stored
        .iter()
        .filter(|s| s.entry.key_id.as_deref() == Some(quiet.id.as_str()))
        .count();
    let flood_count = stored.len() - quiet_count;
    assert_eq!(quiet_count, 6, "every quiet entry is stored");
    // Five per minute: the bucket's five, and at most a refill or two.
    assert!((5..=7).contains(&flood_count), "{flood_count}");
    assert!(flood.status() == 429 || flood_count <= 7);
    let dropped = app.gateway.stats().paths["nats"].rejected["rate_limited"];
    assert!(dropped >= 493, "{dropped}");
}
