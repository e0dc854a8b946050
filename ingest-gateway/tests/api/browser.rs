//! Browser reports over HTTP (the snippet's requests, made by hand): tokens,
//! origins, CORS, the per-address limit, trimming. The same in a real
//! browser is `e2e/tests/browser-errors.test.mjs`.

use crate::helpers::{TestApp, json_body, spawn_app_with};
use ingest_gateway::GatewayConfig;
use proto::commands::{self, KeyChanges};
use proto::secret::browser_token;
use serde_json::{Value, json};

const SITE: &str = "https://shop.example";

async fn app_with_origin(config: GatewayConfig) -> TestApp {
    let app = spawn_app_with(config).await;
    let seq = commands::change_key(
        &app.bus,
        app.key_id(),
        KeyChanges {
            origins: Some(vec![format!("{SITE}/")]),
            rate_limit: None,
        },
        proto::Actor::Cli,
    )
    .await
    .unwrap();
    app.wait_for_key_seq(seq).await;
    app
}

fn token(app: &TestApp, ttl: i64) -> String {
    let expiry = proto::clock::now_ms() / 1000 + ttl;
    browser_token(app.key_id(), &app.key.secret.browser_key(), expiry)
}

async fn report(app: &TestApp, origin: Option<&str>, body: &Value) -> reqwest::Response {
    let mut request = app
        .http
        .post(app.url("/api/v1/browser"))
        .header("content-type", "text/plain;charset=UTF-8")
        .body(body.to_string());
    if let Some(o) = origin {
        request = request.header("origin", o);
    }
    request.send().await.unwrap()
}

fn error_report(token: &str) -> Value {
    json!({"token": token, "message": "Uncaught TypeError: x is undefined",
           "file": "https://shop.example/app.js", "line": 12, "column": 7,
           "stack": "TypeError: x is undefined\n    at f (app.js:12:7)",
           "url": "https://shop.example/cart?step=2", "user_agent": "TestBrowser/1.0",
           "kind": "error"})
}

#[tokio::test]
async fn a_report_from_an_allowed_origin_is_stored_untrusted_with_the_page_url() {
    let app = app_with_origin(GatewayConfig::default()).await;
    let response = report(&app, Some(SITE), &error_report(&token(&app, 600))).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["access-control-allow-origin"], SITE);
    let id = json_body(response).await["id"].as_u64().unwrap();
    let stored = app.stored().await;
    assert_eq!(stored.len(), 1);
    let e = &stored[0];
    assert_eq!(e.seq, id);
    assert!(e.entry.untrusted);
    assert_eq!(e.entry.level, proto::Level::Error);
    assert_eq!(e.entry.source.as_deref(), Some("browser"));
    assert_eq!(e.entry.message, "Uncaught TypeError: x is undefined");
    assert_eq!(e.entry.meta["url"], "https://shop.example/cart?step=2");
    assert_eq!(e.entry.meta["line"], "12");
    assert_eq!(e.entry.meta["user_agent"], "TestBrowser/1.0");
    assert_eq!(e.entry.ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(app.gateway.stats().paths["browser"].accepted, 1);
}

#[tokio::test]
async fn wrong_origins_and_bad_tokens_are_refused_and_get_no_cors() {
    let app = app_with_origin(GatewayConfig::default()).await;
    let good = token(&app, 600);
    let evil = report(&app, Some("https://evil.example"), &error_report(&good)).await;
    assert_eq!(evil.status(), 403);
    assert!(!evil.headers().contains_key("access-control-allow-origin"));
    let none = report(&app, None, &error_report(&good)).await;
    assert_eq!(none.status(), 403);

    let expired = report(&app, Some(SITE), &error_report(&token(&app, -5))).await;
    assert_eq!(expired.status(), 401);
    let too_long = report(&app, Some(SITE), &error_report(&token(&app, 3600))).await;
    assert_eq!(too_long.status(), 401);
    let other = proto::secret::KeySecret::generate().browser_key();
    let forged = browser_token(app.key_id(), &other, proto::clock::now_ms() / 1000 + 600);
    let forged = report(&app, Some(SITE), &error_report(&forged)).await;
    assert_eq!(forged.status(), 401);
    assert_eq!(json_body(forged).await["error"]["code"], "invalid_token");
    let malformed = report(&app, Some(SITE), &error_report("nope")).await;
    assert_eq!(malformed.status(), 401);
    let unknown_key = browser_token("k000000", &other, proto::clock::now_ms() / 1000 + 600);
    let unknown_key = report(&app, Some(SITE), &error_report(&unknown_key)).await;
    assert_eq!(unknown_key.status(), 401);

    app.set_key_active(app.key_id(), false).await;
    let revoked = report(&app, Some(SITE), &error_report(&good)).await;
    assert_eq!(revoked.status(), 401);

    assert!(app.stored().await.is_empty());
    let rejected = &app.gateway.stats().paths["browser"].rejected;
    for reason in [
        "origin_not_allowed",
        "token_expired",
        "token_too_long",
        "token_malformed",
        "key_revoked",
    ] {
        assert!(rejected.contains_key(reason), "{reason}: {rejected:?}");
    }
    assert_eq!(rejected["token_signature"], 2);
}

#[tokio::test]
async fn preflight_answers_only_allowed_origins() {
    let app = app_with_origin(GatewayConfig::default()).await;
    let preflight = |origin: &'static str| {
        app.http
            .request(reqwest::Method::OPTIONS, app.url("/api/v1/browser"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let ok = preflight(SITE).await.unwrap();
    assert_eq!(ok.status(), 204);
    assert_eq!(ok.headers()["access-control-allow-origin"], SITE);
    assert_eq!(ok.headers()["access-control-allow-methods"], "POST");
    let refused = preflight("https://evil.example").await.unwrap();
    assert_eq!(refused.status(), 403);
    assert!(
        !refused
            .headers()
            .contains_key("access-control-allow-origin")
    );
}

#[tokio::test]
async fn the_per_address_limit_holds_and_long_messages_are_cut() {
    let mut config = GatewayConfig::default();
    config.browser.address_limit = 3;
    config.browser.max_message_chars = 100;
    let app = app_with_origin(config).await;
    let t = token(&app, 600);
    let mut body = error_report(&t);
    body["message"] = json!("m".repeat(500));
    for _ in 0..3 {
        assert_eq!(report(&app, Some(SITE), &body).await.status(), 200);
    }
    let over = report(&app, Some(SITE), &body).await;
    assert_eq!(over.status(), 429);
    assert!(over.headers().contains_key("retry-after"));
    assert_eq!(over.headers()["access-control-allow-origin"], SITE);
    let stored = app.stored().await;
    assert_eq!(stored.len(), 3);
    assert_eq!(stored[0].entry.message.chars().count(), 101);
    assert!(stored[0].entry.message.ends_with('…'));
    assert_eq!(
        app.gateway.stats().paths["browser"].rejected["address_limited"],
        1
    );
}

#[tokio::test]
async fn the_snippet_is_served_as_javascript() {
    let app = spawn_app_with(GatewayConfig::default()).await;
    let response = app.http.get(app.url("/minilog.js")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    let text = response.text().await.unwrap();
    assert!(text.contains("unhandledrejection") && text.contains("/api/v1/browser"));
    assert!(text.len() < 8 * 1024, "small: {} bytes", text.len());
}
