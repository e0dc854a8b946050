//! `POST /api/v1/entries`: single objects, batches, all-or-nothing
//! validation, idempotency.

use crate::helpers::{ids_of, json_body, spawn_app};
use proto::Level;
use serde_json::{Value, json};
use std::collections::BTreeMap;

#[tokio::test]
async fn a_single_json_object_is_stored_with_every_field() {
    let app = spawn_app().await;
    let response = app
        .post_json(&json!({
            "message": "disk almost full", "level": "warn", "source": "db-1",
            "time": "2026-11-24T10:00:00Z", "meta": {"mount": "/var", "n": 3},
            "fingerprint": "disk-full-db-1"
        }))
        .await;
    let ids = ids_of(response).await;
    let stored = app.stored().await;
    assert_eq!(stored.len(), 1);
    let s = &stored[0];
    assert_eq!(ids, [s.seq]);
    assert_eq!(s.entry.message, "disk almost full");
    assert_eq!(s.entry.level, Level::Warn);
    assert_eq!(s.entry.source.as_deref(), Some("db-1"));
    assert_eq!(
        s.entry.time,
        proto::clock::parse_rfc3339("2026-11-24T10:00:00Z")
    );
    assert_eq!(
        s.entry.meta,
        BTreeMap::from([("mount".into(), "/var".into()), ("n".into(), "3".into())])
    );
    assert_eq!(s.entry.fingerprint.as_deref(), Some("disk-full-db-1"));
    assert_eq!(s.entry.key_id.as_deref(), Some(app.key_id()));
    assert_eq!(s.entry.ip.as_deref(), Some("127.0.0.1"));
}

#[tokio::test]
async fn a_batch_gets_one_id_per_item_in_order() {
    let app = spawn_app().await;
    let items: Vec<Value> = (0..50)
        .map(|i| json!({"message": format!("entry number {i}"), "level": 30 + i % 20}))
        .collect();
    let ids = ids_of(app.post_json(&Value::Array(items)).await).await;
    assert_eq!(ids.len(), 50);
    let by_seq: BTreeMap<u64, String> = app
        .stored()
        .await
        .into_iter()
        .map(|s| (s.seq, s.entry.message))
        .collect();
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(by_seq[id], format!("entry number {i}"));
    }
    assert_eq!(by_seq.len(), 50);
}

#[tokio::test]
async fn the_x_minilog_key_header_works_like_a_bearer_token() {
    let app = spawn_app().await;
    let response = app
        .http
        .post(app.url("/api/v1/entries"))
        .header("x-minilog-key", app.secret())
        .json(&json!({"message": "by header"}))
        .send()
        .await
        .unwrap();
    assert_eq!(ids_of(response).await.len(), 1);
}

#[tokio::test]
async fn a_missing_or_unknown_key_is_refused_with_a_json_error() {
    let app = spawn_app().await;
    let missing = app
        .http
        .post(app.url("/api/v1/entries"))
        .json(&json!({"message": "no key"}))
        .send()
        .await
        .unwrap();
    let unknown = app
        .post_json_with(
            &json!({"message": "bad key"}),
            "WRONG-SECRET-0123456789",
            None,
        )
        .await;
    for response in [missing, unknown] {
        assert_eq!(response.status(), 401);
        let body = json_body(response).await;
        assert_eq!(body["error"]["code"], "invalid_key");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("Bearer")
        );
    }
    assert!(app.stored().await.is_empty());
}

#[tokio::test]
async fn one_invalid_item_refuses_the_whole_batch_and_stores_nothing() {
    let app = spawn_app().await;
    let response = app
        .post_json(&json!([
            {"message": "fine one"},
            {"message": "bad level", "level": "loud"},
            {"message": "fine two"},
            {"message": "ab"},
            "not an object",
        ]))
        .await;
    assert_eq!(response.status(), 400);
    let body = json_body(response).await;
    assert_eq!(body["error"]["code"], "invalid_items");
    let items: Vec<(u64, &str)> = body["error"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["index"].as_u64().unwrap(), i["code"].as_str().unwrap()))
        .collect();
    assert_eq!(
        items,
        [
            (1, "invalid_level"),
            (3, "invalid_message"),
            (4, "invalid_item")
        ]
    );
    assert!(app.stored().await.is_empty());
    assert_eq!(app.gateway.stats().rejected.get("invalid_items"), Some(&1));
}

#[tokio::test]
async fn batches_of_zero_or_more_than_a_thousand_are_refused() {
    let app = spawn_app().await;
    let empty = app.post_json(&json!([])).await;
    assert_eq!(empty.status(), 400);
    assert_eq!(json_body(empty).await["error"]["code"], "empty_batch");

    let item = json!({"message": "one of many"});
    let too_many = app.post_json(&Value::Array(vec![item.clone(); 1001])).await;
    assert_eq!(too_many.status(), 400);
    assert_eq!(
        json_body(too_many).await["error"]["code"],
        "batch_too_large"
    );
    assert!(app.stored().await.is_empty());

    let ids = ids_of(app.post_json(&Value::Array(vec![item; 1000])).await).await;
    assert_eq!(ids.len(), 1000);
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(app.stored().await.len(), 1000);
}

#[tokio::test]
async fn meta_over_its_limits_is_refused_per_item() {
    let app = spawn_app().await;
    let pairs = |n: usize| -> Value {
        Value::Object((0..n).map(|i| (format!("k{i}"), json!("v"))).collect())
    };
    let response = app
        .post_json(&json!([
            {"message": "32 pairs", "meta": pairs(32)},
            {"message": "33 pairs", "meta": pairs(33)},
            {"message": "long key", "meta": {"k".repeat(65): "v"}},
            {"message": "long value", "meta": {"k": "v".repeat(1025)}},
            {"message": "nested", "meta": {"k": {"deep": 1}}},
        ]))
        .await;
    assert_eq!(response.status(), 400);
    let body = json_body(response).await;
    let items = body["error"]["items"].as_array().unwrap();
    let indexes: Vec<u64> = items.iter().map(|i| i["index"].as_u64().unwrap()).collect();
    assert_eq!(indexes, [1, 2, 3, 4]);
    assert!(items.iter().all(|i| i["code"] == "invalid_meta"));

    let ids = ids_of(
        app.post_json(&json!({"message": "at the limits", "meta": pairs(32)}))
            .await,
    )
    .await;
    assert_eq!(ids.len(), 1);
    assert_eq!(app.stored().await[0].entry.meta.len(), 32);
}

#[tokio::test]
async fn bad_json_bad_utf8_and_bad_shapes_are_refused_with_their_codes() {
    let app = spawn_app().await;
    for (body, code) in [
        (b"{\"message\": ".to_vec(), "invalid_json"),
        (b"{\"message\": \"\xff\xfe\"}".to_vec(), "invalid_utf8"),
        (b"\"just a string\"".to_vec(), "invalid_body"),
        (b"42".to_vec(), "invalid_body"),
        ("[".repeat(10_000).into_bytes(), "invalid_json"),
        (Vec::new(), "invalid_json"),
    ] {
        let response = app.post_json_raw(body).await;
        assert_eq!(response.status(), 400, "{code}");
        let json = json_body(response).await;
        assert_eq!(json["error"]["code"], code, "{json}");
        assert!(
            json["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    assert!(app.stored().await.is_empty());
}

#[tokio::test]
async fn a_retry_with_the_same_idempotency_key_gets_the_same_ids_and_stores_once() {
    let app = spawn_app().await;
    let batch = json!([{"message": "first of two"}, {"message": "second of two"}]);
    let first = ids_of(
        app.post_json_with(&batch, app.secret(), Some("deploy-42"))
            .await,
    )
    .await;
    let again = ids_of(
        app.post_json_with(&batch, app.secret(), Some("deploy-42"))
            .await,
    )
    .await;
    assert_eq!(first, again);
    assert_eq!(app.stored().await.len(), 2);
    let stats = app.gateway.stats();
    assert_eq!((stats.accepted, stats.duplicates), (2, 2));
}

#[tokio::test]
async fn two_keys_with_the_same_idempotency_key_do_not_collide() {
    let app = spawn_app().await;
    let other = app.create_key("second test key").await;
    let item = json!({"message": "same idempotency key"});
    let a = ids_of(app.post_json_with(&item, app.secret(), Some("same")).await).await;
    let b = ids_of(
        app.post_json_with(&item, other.secret.expose(), Some("same"))
            .await,
    )
    .await;
    assert_ne!(a, b);
    let stored = app.stored().await;
    let keys: Vec<Option<&str>> = stored.iter().map(|s| s.entry.key_id.as_deref()).collect();
    assert_eq!(keys, [Some(app.key_id()), Some(other.id.as_str())]);
}

#[tokio::test]
async fn requests_without_an_idempotency_key_are_never_merged() {
    let app = spawn_app().await;
    let item = json!({"message": "the same text twice"});
    let a = ids_of(app.post_json(&item).await).await;
    let b = ids_of(app.post_json(&item).await).await;
    assert_ne!(a, b);
    assert_eq!(app.stored().await.len(), 2);
}

#[tokio::test]
async fn an_invalid_idempotency_key_is_refused() {
    let app = spawn_app().await;
    let item = json!({"message": "a fine message"});
    let long = "x".repeat(129);
    let response = app.post_json_with(&item, app.secret(), Some(&long)).await;
    assert_eq!(response.status(), 400);
    assert_eq!(
        json_body(response).await["error"]["code"],
        "invalid_idempotency_key"
    );
    let ok = "x".repeat(128);
    assert_eq!(
        app.post_json_with(&item, app.secret(), Some(&ok))
            .await
            .status(),
        200
    );
}
