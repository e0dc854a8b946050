//! Attacks by a program holding the embedded server's `ingest` NATS user
//! (issue 11, items 1 and 2): it must read nothing of minilog's own
//! traffic, and it must not make the gateway write where it may not.

mod common;

use common::{TestApp, spawn_app_embedded};
use futures::StreamExt;
use minilog::embedded::Credentials;
use proto::event::{Actor, Role};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::sync::mpsc;

/// A connection as the `ingest` user, with the server's errors (permission
/// violations) collected.
async fn connect_ingest(app: &TestApp) -> (async_nats::Client, mpsc::UnboundedReceiver<String>) {
    let data = app.data.path();
    let url = std::fs::read_to_string(data.join("nats.url")).unwrap();
    let creds = Credentials::read(data).unwrap().expect("credentials");
    let (tx, rx) = mpsc::unbounded_channel();
    let client = async_nats::ConnectOptions::new()
        .user_and_password(creds.ingest.user.clone(), creds.ingest.password.clone())
        .event_callback(move |event| {
            let tx = tx.clone();
            async move {
                if let async_nats::Event::ServerError(e) = event {
                    let _ = tx.send(e.to_string());
                }
            }
        })
        .connect(url.trim())
        .await
        .unwrap();
    (client, rx)
}

async fn metric(app: &TestApp, line: &str) -> bool {
    let text = app.get("/metrics").await.text().await.unwrap();
    text.lines().any(|l| l == line)
}

#[tokio::test]
async fn the_ingest_user_reads_none_of_minilogs_own_traffic() {
    let app = spawn_app_embedded().await;
    let (_key_id, secret) = app.create_key("victim").await;
    let (spy, mut errors) = connect_ingest(&app).await;
    let mut everything = spy.subscribe("_INBOX.>").await.unwrap();
    // minilog's own inbox is denied outright.
    let _denied = spy.subscribe("_MINILOG_INBOX.>").await.unwrap();
    spy.flush().await.unwrap();
    let error = tokio::time::timeout(Duration::from_secs(10), errors.recv())
        .await
        .expect("the server answers the denied subscription")
        .unwrap();
    assert!(
        error.to_lowercase().contains("permissions violation") && error.contains("_MINILOG_INBOX"),
        "{error}"
    );

    // Another program sends durably and synchronously; an admin adds a user
    // and a key. All of it travels through minilog's inboxes.
    let (victim, _) = connect_ingest(&app).await;
    let js = async_nats::jetstream::new(victim.clone());
    let body = json!({"key": secret, "message": "durable, with its secret", "level": "error"});
    js.publish("minilog.ingest.victim", body.to_string().into())
        .await
        .unwrap()
        .await
        .unwrap();
    let body = json!({"key": secret, "message": "requested, with its secret", "level": "warn"});
    let answer = victim
        .request("minilog.submit.victim", body.to_string().into())
        .await
        .unwrap();
    let id: Value = serde_json::from_slice(&answer.payload).unwrap();
    assert!(id["id"].as_u64().is_some(), "{id}");
    let seq = proto::commands::create_user(
        &app.bus,
        "carol",
        "carol-password-1",
        Role::Admin,
        Actor::Cli,
    )
    .await
    .unwrap();
    app.create_key("second key").await;
    assert!(app.projector.wait_for(seq).await);
    app.wait_ready().await;

    // The spy's own request: its answer arrives on `_INBOX.>` after
    // everything the server delivered before it, so it marks the end.
    let marker = spy.new_inbox();
    let body = json!({"key": secret, "message": "marker", "level": "info"});
    spy.publish_with_reply(
        "minilog.submit.spy",
        marker.clone(),
        body.to_string().into(),
    )
    .await
    .unwrap();
    let mut seen = Vec::new();
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(20), everything.next())
            .await
            .expect("the spy's own answer arrives")
            .unwrap();
        if msg.subject.as_str() == marker {
            break;
        }
        seen.push(msg);
    }
    for msg in &seen {
        let text = String::from_utf8_lossy(&msg.payload);
        assert!(
            !text.contains(&secret),
            "a key secret leaked on {}",
            msg.subject
        );
        assert!(
            !text.contains("$argon2"),
            "a password hash leaked on {}",
            msg.subject
        );
        assert!(
            proto::Envelope::decode(&msg.payload).is_err(),
            "an event of the log leaked on {}",
            msg.subject
        );
    }
    app.shutdown().await;
}

#[tokio::test]
async fn the_gateway_answers_no_request_into_minilogs_or_jetstreams_subjects() {
    let app = spawn_app_embedded().await;
    let (key_id, secret) = app.create_key("target").await;
    let (attacker, _) = connect_ingest(&app).await;
    let before = app.bus.last_seq().await.unwrap();
    let body = json!({"key": secret, "message": "aimed elsewhere", "level": "error"});
    let targets = [
        "minilog.events.triage".to_owned(),
        format!("minilog.events.key.{key_id}"),
        "$JS.API.STREAM.PURGE.MINILOG".to_owned(),
        "_MINILOG_INBOX.guess".to_owned(),
    ];
    for reply in &targets {
        attacker
            .publish_with_reply("minilog.submit.x", reply.clone(), body.to_string().into())
            .await
            .unwrap();
    }
    attacker.flush().await.unwrap();
    // Wait for the gateway to have refused all four (a real client would
    // poll the same way).
    let refused = format!(
        "minilog_gateway_rejected_total{{path=\"nats\",reason=\"invalid_reply_to\"}} {}",
        targets.len()
    );
    let mut counted = false;
    for _ in 0..1000 {
        if metric(&app, &refused).await {
            counted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(counted, "four refusals counted");
    assert_eq!(
        app.bus.last_seq().await.unwrap(),
        before,
        "nothing stored and nothing written into the event log"
    );

    // The key still works, the projector still runs, the stream is whole.
    let answer = attacker
        .request("minilog.submit.x", body.to_string().into())
        .await
        .unwrap();
    let id: Value = serde_json::from_slice(&answer.payload).unwrap();
    let id = id["id"].as_u64().expect("the key is still active");
    let ready = app.wait_ready().await;
    assert!(ready["applied_seq"].as_u64().unwrap() >= id, "{ready}");
    let page = app.get_json(&format!("/api/v1/entries?min_seq={id}")).await;
    assert_eq!(page["entries"][0]["message"], "aimed elsewhere");
    app.shutdown().await;
}
