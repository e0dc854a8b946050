//! Direct NATS ingestion through `minilog serve` with its embedded
//! nats-server, as a program holding the generated `ingest` user sees it:
//! durable publishes, synchronous requests, entries readable through the
//! read API, and nothing else allowed.

mod common;

use common::spawn_app_embedded;
use futures::StreamExt;
use minilog::embedded::Credentials;
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test]
async fn the_ingest_user_publishes_and_requests_and_the_entries_are_readable() {
    let app = spawn_app_embedded().await;
    let (key_id, secret) = app.create_key("direct nats").await;
    let data = app.data.path();
    let url = std::fs::read_to_string(data.join("nats.url")).unwrap();
    let creds = Credentials::read(data)
        .unwrap()
        .expect("generated credentials");
    let ingest = async_nats::ConnectOptions::new()
        .user_and_password(creds.ingest.user.clone(), creds.ingest.password.clone())
        .connect(url.trim())
        .await
        .unwrap();

    // Durable, with the outcome asked for on an inbox subject.
    let inbox = ingest.new_inbox();
    let mut outcome = ingest.subscribe(inbox.clone()).await.unwrap();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Minilog-Reply-To", inbox.as_str());
    let js = async_nats::jetstream::new(ingest.clone());
    let body = json!({"key": secret, "message": "published directly", "level": "error",
                      "source": "cron", "meta": {"job": "backup"}});
    js.publish_with_headers("minilog.ingest.cron", headers, body.to_string().into())
        .await
        .unwrap()
        .await
        .expect("MINILOG_INGEST stores the submission");
    let answer = tokio::time::timeout(Duration::from_secs(20), outcome.next())
        .await
        .expect("the outcome arrives")
        .unwrap();
    let answer: Value = serde_json::from_slice(&answer.payload).unwrap();
    let id = answer["id"].as_u64().expect("an id");

    // Synchronous.
    let body = json!({"key": secret, "message": "requested directly", "level": "warn"});
    let reply = ingest
        .request("minilog.submit.cron", body.to_string().into())
        .await
        .expect("a gateway answers");
    let reply: Value = serde_json::from_slice(&reply.payload).unwrap();
    let id2 = reply["id"].as_u64().expect("an id");
    assert!(id2 > id);

    let page = app
        .get_json(&format!("/api/v1/entries?key={key_id}&min_seq={id2}"))
        .await;
    let entries = page["entries"].as_array().unwrap();
    let messages: Vec<&str> = entries
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(messages, ["requested directly", "published directly"]);
    assert_eq!(entries[1]["id"], id);
    assert_eq!(entries[1]["meta"]["job"], "backup");

    // A bad submission is answered as an error and shows in /metrics.
    let bad = ingest
        .request(
            "minilog.submit.cron",
            json!({"key": secret, "message": "loud", "level": "loud"})
                .to_string()
                .into(),
        )
        .await
        .unwrap();
    let bad: Value = serde_json::from_slice(&bad.payload).unwrap();
    assert_eq!(bad["error"]["code"], "invalid_level");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("minilog_gateway_accepted_total{path=\"nats\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics
            .contains("minilog_gateway_rejected_total{path=\"nats\",reason=\"invalid_level\"} 1"),
        "{metrics}"
    );

    // The ingest user cannot read the ingest stream either.
    let mut js = async_nats::jetstream::new(ingest.clone());
    js.set_timeout(Duration::from_secs(1));
    assert!(js.get_stream("MINILOG_INGEST").await.is_err());
    app.shutdown().await;
}
