//! Body limits: a body over the limit is answered `413`, and the answer
//! reaches the client.

use crate::helpers::{json_body, spawn_app};
use ingest_gateway::GatewayConfig;

#[tokio::test]
async fn a_body_over_the_default_limit_is_answered_413_on_both_routes() {
    let app = spawn_app().await;
    let limit = GatewayConfig::default().body_limit;
    let mut form = format!("key={}&message=", app.secret()).into_bytes();
    form.resize(limit + 1, b'x');
    let response = app.post_form_raw(form).await;
    assert_eq!(response.status(), 413);
    assert!(response.text().await.unwrap().contains("larger than"));

    let mut json = b"{\"message\": \"".to_vec();
    json.resize(limit + 1, b'x');
    json.extend_from_slice(b"\"}");
    let response = app.post_json_raw(json).await;
    assert_eq!(response.status(), 413);
    assert_eq!(json_body(response).await["error"]["code"], "body_too_large");

    assert!(app.stored().await.is_empty());
    assert_eq!(app.gateway.stats().rejected.get("body_too_large"), Some(&2));
}

#[tokio::test]
async fn a_body_just_under_the_limit_is_read() {
    let app = spawn_app().await;
    let limit = GatewayConfig::default().body_limit;
    // A valid message, padded with an ignored field to just the limit.
    let mut form = format!("key={}&message=fits&pad=", app.secret()).into_bytes();
    form.resize(limit, b'x');
    let response = app.post_form_raw(form).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.text().await.unwrap(),
        "info added; ignored fields: pad\n"
    );
}
