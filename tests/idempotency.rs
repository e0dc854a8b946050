//! "A 200 means durable" under retries (issue 12, items 1 and 2): a reused
//! `Idempotency-Key` never answers ids of entries that were not stored,
//! and a 503 after a stalled NATS says the entry may have been stored, so
//! the retry with the same key stores it once — on the JSON API and on
//! the seed's form alike.

mod common;

use common::{TestApp, spawn_app, spawn_app_with};
use serde_json::{Value, json};
use std::time::Duration;

async fn post_json(app: &TestApp, secret: &str, key: &str, body: Value) -> reqwest::Response {
    app.http
        .post(format!("{}/api/v1/entries", app.base))
        .bearer_auth(secret)
        .header("idempotency-key", key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn post_form(app: &TestApp, secret: &str, key: &str, text: &str) -> reqwest::Response {
    app.http
        .post(format!("{}/log/add/", app.base))
        .header("idempotency-key", key)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(common::form_encode(&[
            ("key", secret),
            ("description", text),
            ("status", "error"),
        ]))
        .send()
        .await
        .unwrap()
}

async fn ids(resp: reqwest::Response) -> Vec<u64> {
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    body["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect()
}

fn form_id(resp: &reqwest::Response) -> u64 {
    assert_eq!(resp.status(), 200);
    resp.headers()["minilog-entry-id"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// Every message on the list (all states), oldest first, after `seq`.
async fn messages(app: &TestApp, seq: u64) -> Vec<String> {
    let page = app
        .get_json(&format!(
            "/api/v1/entries?resolved=all&limit=200&min_seq={seq}"
        ))
        .await;
    let mut out: Vec<String> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap().to_owned())
        .collect();
    out.reverse();
    out
}

#[tokio::test]
async fn a_reused_idempotency_key_with_other_entries_stores_them() {
    let app = spawn_app().await;
    let (_, secret) = app.create_key("nightly").await;
    let a = ids(post_json(
        &app,
        &secret,
        "2026-11-24",
        json!({"message": "backup a", "level": "error"}),
    )
    .await)
    .await;
    // The same key, another day's entries (the README's own example).
    let b = ids(post_json(
        &app,
        &secret,
        "2026-11-24",
        json!([
            {"message": "backup b", "level": "error"},
            {"message": "backup c", "level": "warn"}
        ]),
    )
    .await)
    .await;
    assert_eq!(b.len(), 2);
    assert!(!b.contains(&a[0]), "new entries get new ids: {a:?} {b:?}");
    // A true retry still answers the first ids and stores nothing.
    let again = ids(post_json(
        &app,
        &secret,
        "2026-11-24",
        json!({"message": "backup a", "level": "error"}),
    )
    .await)
    .await;
    assert_eq!(again, a);

    // The form path honours the header the same way.
    let f1 = form_id(&post_form(&app, &secret, "form-1", "form first").await);
    let f2 = form_id(&post_form(&app, &secret, "form-1", "form first").await);
    let f3 = form_id(&post_form(&app, &secret, "form-1", "form other").await);
    assert_eq!(f1, f2);
    assert_ne!(f1, f3);
    // And a bad header is refused there too, nothing stored.
    let bad = post_form(&app, &secret, &"x".repeat(200), "too long a key").await;
    assert_eq!(bad.status(), 400);

    let last = *[b[1], f3].iter().max().unwrap();
    assert_eq!(
        messages(&app, last).await,
        [
            "backup a",
            "backup b",
            "backup c",
            "form first",
            "form other"
        ]
    );
    app.shutdown().await;
}

#[tokio::test]
async fn after_a_stalled_nats_the_503_says_may_be_stored_and_the_retry_stores_once() {
    let app = spawn_app_with(|a| a.ingest.ack_timeout = 1).await;
    let (_, secret) = app.create_key("stalled").await;
    let nats = app.nats.as_ref().unwrap();
    nats.pause();
    let stalled = post_json(
        &app,
        &secret,
        "retry-me",
        json!({"message": "sent while stalled", "level": "error"}),
    )
    .await;
    let form = post_form(&app, &secret, "retry-form", "form while stalled").await;
    nats.resume();

    assert_eq!(stalled.status(), 503);
    assert!(stalled.headers().contains_key("retry-after"));
    let body: Value = stalled.json().await.unwrap();
    assert_eq!(body["error"]["stored_ids"], json!([]), "{body}");
    assert_eq!(body["error"]["unconfirmed"], 1, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("may have been stored"), "{message}");
    assert!(message.contains("Idempotency-Key"), "{message}");
    assert_eq!(form.status(), 503);
    let text = form.text().await.unwrap();
    assert!(text.contains("may have been stored"), "{text}");

    // Retry as a client told to would: same key, until a 200.
    let mut json_id = None;
    let mut form_id_seen = None;
    for _ in 0..100 {
        if json_id.is_none() {
            let r = post_json(
                &app,
                &secret,
                "retry-me",
                json!({"message": "sent while stalled", "level": "error"}),
            )
            .await;
            if r.status() == 200 {
                json_id = Some(ids(r).await[0]);
            }
        }
        if form_id_seen.is_none() {
            let r = post_form(&app, &secret, "retry-form", "form while stalled").await;
            if r.status() == 200 {
                form_id_seen = Some(form_id(&r));
            }
        }
        if json_id.is_some() && form_id_seen.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let last = json_id.unwrap().max(form_id_seen.unwrap());
    assert_eq!(
        messages(&app, last).await,
        ["sent while stalled", "form while stalled"],
        "each entry once"
    );
    app.shutdown().await;
}
