//! The key registry as seen from outside: keys created, revoked and
//! restored on the stream take effect at the gateway.

use crate::helpers::{ids_of, json_body, spawn_app};
use serde_json::json;

#[tokio::test]
async fn a_revoked_key_is_refused_from_the_next_request_and_a_restored_one_works_again() {
    let app = spawn_app().await;
    let item = json!({"message": "before the revoke"});
    assert_eq!(ids_of(app.post_json(&item).await).await.len(), 1);

    app.set_key_active(app.key_id(), false).await;
    let json = app.post_json(&json!({"message": "after the revoke"})).await;
    assert_eq!(json.status(), 401);
    assert_eq!(json_body(json).await["error"]["code"], "invalid_key");
    // Revoked is checked before the message, as for any refused key.
    let form = app
        .post_form(&[("key", app.secret()), ("message", "ab")])
        .await;
    assert_eq!(form.status(), 401);
    assert_eq!(form.text().await.unwrap(), "invalid key\n");
    assert_eq!(app.gateway.stats().rejected.get("key_revoked"), Some(&2));

    app.set_key_active(app.key_id(), true).await;
    let form = app
        .post_form(&[("key", app.secret()), ("message", "after the restore")])
        .await;
    assert_eq!(form.status(), 200);
    let messages: Vec<String> = app
        .stored()
        .await
        .into_iter()
        .map(|s| s.entry.message)
        .collect();
    assert_eq!(messages, ["before the revoke", "after the restore"]);
}

#[tokio::test]
async fn revoking_one_key_leaves_the_others_working() {
    let app = spawn_app().await;
    let other = app.create_key("second test key").await;
    app.set_key_active(app.key_id(), false).await;
    let item = json!({"message": "from the other key"});
    let response = app.post_json_with(&item, other.secret.expose(), None).await;
    assert_eq!(ids_of(response).await.len(), 1);
}

#[tokio::test]
async fn a_key_created_while_the_gateway_runs_works_once_its_event_is_applied() {
    let app = spawn_app().await;
    let key = app.create_key("created later").await;
    let response = app
        .post_form(&[("key", key.secret.expose()), ("message", "fresh key")])
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        app.stored().await[0].entry.key_id.as_deref(),
        Some(key.id.as_str())
    );
}

#[tokio::test]
async fn the_gateway_counts_what_it_accepted_and_refused() {
    let app = spawn_app().await;
    assert!(app.gateway.keys_loaded());
    ids_of(
        app.post_json(&json!([{"message": "one"}, {"message": "two"}]))
            .await,
    )
    .await;
    app.post_form(&[("key", app.secret()), ("message", "three")])
        .await;
    app.post_form(&[("key", app.secret()), ("message", "3")])
        .await;
    app.post_json(&json!([])).await;
    let stats = app.gateway.stats();
    assert_eq!(stats.accepted, 3);
    assert_eq!(stats.duplicates, 0);
    assert_eq!(stats.rejected.get("invalid_message"), Some(&1));
    assert_eq!(stats.rejected.get("empty_batch"), Some(&1));
}
