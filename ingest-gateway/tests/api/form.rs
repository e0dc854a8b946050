//! `POST /log/add/`, row by row of docs/api.md's form behaviour.

use crate::helpers::{FORM, spawn_app, spawn_app_with};
use ingest_gateway::GatewayConfig;
use proto::Level;
use proto::event::Actor;

#[tokio::test]
async fn a_form_post_is_stored_and_answered_with_its_level_and_entry_id() {
    let app = spawn_app().await;
    let response = app
        .post_form(&[
            ("key", app.secret()),
            ("message", "disk almost full"),
            ("status", "warning"),
        ])
        .await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let id: u64 = response.headers()["minilog-entry-id"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(response.text().await.unwrap(), "warn added\n");

    let stored = app.stored().await;
    assert_eq!(stored.len(), 1);
    let s = &stored[0];
    assert_eq!(s.seq, id);
    assert_eq!(s.by, Actor::Key(app.key_id().into()));
    assert_eq!(s.entry.key_id.as_deref(), Some(app.key_id()));
    assert_eq!(s.entry.message, "disk almost full");
    assert_eq!(s.entry.level, Level::Warn);
    assert_eq!(s.entry.ip.as_deref(), Some("127.0.0.1"));
    assert!(!s.entry.untrusted);
}

#[tokio::test]
async fn a_missing_or_empty_status_means_info() {
    let app = spawn_app().await;
    let missing = app
        .post_form(&[("key", app.secret()), ("message", "no status")])
        .await;
    assert_eq!(missing.text().await.unwrap(), "info added\n");
    let empty = app
        .post_form(&[
            ("key", app.secret()),
            ("message", "empty status"),
            ("status", ""),
        ])
        .await;
    assert_eq!(empty.text().await.unwrap(), "info added\n");
    let levels: Vec<Level> = app.stored().await.iter().map(|s| s.entry.level).collect();
    assert_eq!(levels, [Level::Info, Level::Info]);
}

#[tokio::test]
async fn status_spellings_are_answered_with_the_seeds_word() {
    let app = spawn_app().await;
    for (status, answer) in [
        ("success", "good added\n"),
        ("INFO", "info added\n"),
        ("40", "error added\n"),
        ("fatal", "critical added\n"),
        ("trace", "debug added\n"),
    ] {
        let response = app
            .post_form(&[
                ("key", app.secret()),
                ("message", "some message"),
                ("status", status),
            ])
            .await;
        assert_eq!(response.status(), 200, "{status}");
        assert_eq!(response.text().await.unwrap(), answer, "{status}");
    }
}

#[tokio::test]
async fn the_legacy_description_field_is_used_with_a_note() {
    let app = spawn_app().await;
    let response = app
        .post_form(&[
            ("key", app.secret()),
            ("description", "from an old client"),
            ("status", "error"),
        ])
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.text().await.unwrap(),
        "error added; used legacy field description\n"
    );
    assert_eq!(app.stored().await[0].entry.message, "from an old client");
}

#[tokio::test]
async fn extra_fields_are_ignored_with_a_note_naming_them() {
    let app = spawn_app().await;
    let response = app
        .post_form(&[
            ("key", app.secret()),
            ("message", "with extras"),
            ("foo", "1"),
            ("bar", "2"),
            ("foo", "3"),
        ])
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.text().await.unwrap(),
        "info added; ignored fields: foo, bar\n"
    );
}

#[tokio::test]
async fn an_unknown_status_is_refused_naming_the_accepted_levels() {
    let app = spawn_app().await;
    let response = app
        .post_form(&[
            ("key", app.secret()),
            ("message", "a fine message"),
            ("status", "loud"),
        ])
        .await;
    assert_eq!(response.status(), 400);
    let text = response.text().await.unwrap();
    for word in ["loud", "debug", "info", "good", "warn", "error", "critical"] {
        assert!(text.contains(word), "{word} missing from {text:?}");
    }
    assert!(app.stored().await.is_empty());
}

#[tokio::test]
async fn a_message_shorter_than_three_characters_is_refused() {
    let app = spawn_app().await;
    for fields in [
        vec![("key", app.secret()), ("message", "ab")],
        vec![("key", app.secret()), ("message", "  ab  ")],
        vec![("key", app.secret())],
    ] {
        let response = app.post_form(&fields).await;
        assert_eq!(response.status(), 400);
        assert_eq!(
            response.text().await.unwrap(),
            "message must be at least 3 characters\n"
        );
    }
    assert!(app.stored().await.is_empty());
}

#[tokio::test]
async fn a_missing_or_unknown_key_is_refused_before_the_message_and_status_are_checked() {
    let app = spawn_app().await;
    let unknown = "NOT-A-KEY-THAT-EXISTS-ANYWHERE-1";
    for fields in [
        vec![("message", "ab"), ("status", "loud")],
        vec![("key", ""), ("message", "ab"), ("status", "loud")],
        vec![("key", unknown), ("message", "ab"), ("status", "loud")],
        vec![("key", unknown), ("message", "a fine message")],
    ] {
        let response = app.post_form(&fields).await;
        assert_eq!(response.status(), 401, "{fields:?}");
        assert_eq!(response.text().await.unwrap(), "invalid key\n");
    }
    assert!(app.stored().await.is_empty());
    let stats = app.gateway.stats();
    assert_eq!(stats.rejected.get("key_missing"), Some(&2));
    assert_eq!(stats.rejected.get("key_unknown"), Some(&2));
}

#[tokio::test]
async fn invalid_utf8_in_a_form_is_refused_not_replaced() {
    let app = spawn_app().await;
    let key = app.secret().to_owned();
    let encoded = format!("key={key}&message=%FF%FEbroken");
    let mut raw = format!("key={key}&message=").into_bytes();
    raw.extend_from_slice(b"\xff\xfebroken");
    for body in [encoded.into_bytes(), raw] {
        let response = app.post_form_raw(body).await;
        assert_eq!(response.status(), 400);
        assert!(response.text().await.unwrap().contains("UTF-8"));
    }
    // Garbage bytes are answered, never a panic or a hang.
    let response = app.post_form_raw(b"\x00\xff=%%%&&==&key".to_vec()).await;
    assert_eq!(response.status(), 401);
    assert!(app.stored().await.is_empty());
}

#[tokio::test]
async fn a_long_message_is_trimmed_with_a_note() {
    let mut config = GatewayConfig::default();
    config.limits.max_message_bytes = 16;
    let app = spawn_app_with(config).await;
    let response = app
        .post_form(&[("key", app.secret()), ("message", &"x".repeat(40))])
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.text().await.unwrap(),
        "info added; message trimmed to 16 bytes\n"
    );
    let message = &app.stored().await[0].entry.message;
    assert!(
        message.starts_with(&"x".repeat(16)) && message.ends_with("[trimmed 24 bytes]"),
        "{message}"
    );
}

#[tokio::test]
async fn multipart_forms_are_refused_with_415() {
    let app = spawn_app().await;
    let response = app
        .http
        .post(app.url("/log/add/"))
        .header("content-type", "multipart/form-data; boundary=x")
        .body("--x--")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
}

#[tokio::test]
async fn get_on_the_form_redirects_to_the_add_by_hand_page() {
    let app = spawn_app().await;
    let response = app.http.get(app.url("/log/add/")).send().await.unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/log/new/");
}

#[tokio::test]
async fn x_forwarded_for_is_ignored_from_an_untrusted_peer() {
    let app = spawn_app().await;
    let response = app
        .http
        .post(app.url("/log/add/"))
        .header("x-forwarded-for", "203.0.113.7")
        .form(&[("key", app.secret()), ("message", "via a proxy?")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(app.stored().await[0].entry.ip.as_deref(), Some("127.0.0.1"));
}

#[tokio::test]
async fn x_forwarded_for_is_honoured_from_a_trusted_proxy() {
    let app = spawn_app_with(GatewayConfig {
        trusted_proxies: vec!["127.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()],
        ..GatewayConfig::default()
    })
    .await;
    let response = app
        .http
        .post(app.url("/log/add/"))
        .header("x-forwarded-for", "198.51.100.1, 203.0.113.7, 10.0.0.2")
        .form(&[("key", app.secret()), ("message", "via two proxies")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        app.stored().await[0].entry.ip.as_deref(),
        Some("203.0.113.7")
    );
}

/// Served without connect info (a router test, no socket): the entry is
/// stored without an address rather than failing.
#[tokio::test]
async fn without_connect_info_the_entry_is_stored_without_an_address() {
    use tower::ServiceExt;
    let app = spawn_app().await;
    let body = format!("key={}&message=no+socket+here", app.secret());
    let request = axum::http::Request::post("/log/add/")
        .header("content-type", FORM)
        .body(axum::body::Body::from(body))
        .unwrap();
    let response = app.gateway.router().oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let stored = app.stored().await;
    assert_eq!(stored[0].entry.message, "no socket here");
    assert_eq!(stored[0].entry.ip, None);
}

/// The seed's clients send `traceback.format_exc()` in the message: it is
/// kept as sent, and read into the entry's exception chain.
#[tokio::test]
async fn a_python_traceback_in_a_message_becomes_the_entrys_exception() {
    let app = spawn_app().await;
    let message = "checkout failed\nTraceback (most recent call last):\n  \
        File \"/srv/shop/cart.py\", line 42, in total\n    return prices[item.sku]\n\
        KeyError: 'sku-1'\n";
    let response = app
        .post_form(&[
            ("key", app.secret()),
            ("message", message),
            ("status", "error"),
        ])
        .await;
    assert_eq!(response.status(), 200);
    let stored = app.wait_for_entries(1).await;
    let entry = &stored[0].entry;
    assert_eq!(entry.message, message);
    let chain = entry.exception.as_ref().expect("the traceback is read");
    assert_eq!(chain[0].ty, "KeyError");
    assert_eq!(chain[0].value, "'sku-1'");
    assert_eq!(chain[0].frames[0].lineno, Some(42));
    assert_eq!(
        chain[0].frames[0].context_line.as_deref(),
        Some("return prices[item.sku]")
    );
}
