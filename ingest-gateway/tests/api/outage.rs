//! NATS down: `503` with `Retry-After`, never a fake `200`; ingestion
//! recovers when NATS is back, and nothing acknowledged is lost.

use crate::helpers::{ids_of, json_body, spawn_app};
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test]
async fn nats_down_answers_503_with_retry_after_and_ingestion_recovers_after_restart() {
    let mut app = spawn_app().await;
    let before = ids_of(
        app.post_json(&json!([{"message": "before one"}, {"message": "before two"}]))
            .await,
    )
    .await;
    let form = app
        .post_form(&[("key", app.secret()), ("message", "before three")])
        .await;
    assert_eq!(form.status(), 200);

    app.server.stop();
    let bus = app.bus.clone();
    app.wait_until("the client sees NATS gone", || !bus.is_connected())
        .await;

    let response = app.post_json(&json!({"message": "while down"})).await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let body = json_body(response).await;
    assert_eq!(body["error"]["code"], "unavailable");
    assert_eq!(body["error"]["stored_ids"], json!([]));
    let form = app
        .post_form(&[("key", app.secret()), ("message", "while down")])
        .await;
    assert_eq!(form.status(), 503);
    assert!(form.headers().contains_key("retry-after"));
    assert_eq!(app.gateway.stats().rejected.get("unavailable"), Some(&2));

    app.server.restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    let after = loop {
        let response = app
            .post_json_with(
                &json!({"message": "after restart"}),
                app.secret(),
                Some("after"),
            )
            .await;
        if response.status() == 200 {
            break ids_of(response).await;
        }
        assert_eq!(response.status(), 503);
        assert!(Instant::now() < deadline, "ingestion did not recover");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    let stored = app.stored().await;
    let messages: Vec<&str> = stored.iter().map(|s| s.entry.message.as_str()).collect();
    assert_eq!(
        messages,
        ["before one", "before two", "before three", "after restart"]
    );
    assert_eq!(stored[0].seq, before[0]);
    assert_eq!(stored[1].seq, before[1]);
    assert_eq!(stored[3].seq, after[0]);
}

#[tokio::test]
async fn the_key_registry_follows_revocations_after_nats_restarts() {
    let mut app = spawn_app().await;
    app.server.restart();
    // JetStream answers nothing while it starts up (a request waits for
    // its 10 s timeout), so ask with a short one until it answers.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !matches!(
        tokio::time::timeout(Duration::from_millis(500), app.bus.last_seq()).await,
        Ok(Ok(_))
    ) {
        assert!(Instant::now() < deadline, "JetStream did not come back");
    }
    let seq = proto::commands::set_key_active(&app.bus, app.key_id(), false, proto::Actor::Cli)
        .await
        .expect("revoking");
    // Well inside the ~15 s a reader needs to notice a restart by missed
    // heartbeats: the registry reopens its reader on reconnection.
    let mut rx = app.gateway.key_seq();
    tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|s| *s >= seq))
        .await
        .expect("the revoke is applied promptly after a restart")
        .expect("the registry is running");
    let response = app
        .post_json(&json!({"message": "revoked meanwhile"}))
        .await;
    assert_eq!(response.status(), 401);
}
