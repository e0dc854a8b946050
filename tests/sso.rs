//! Signing in behind an authenticating proxy (`--auth-proxy-header`),
//! attacked as a client that talks to minilog directly would: the header is
//! believed from the trusted proxy's address only. The proxy here is a real
//! connection from another loopback address (127.0.0.2, which Linux routes
//! to 127.0.0.1), so minilog sees the peer it would see behind one.

mod common;

use common::{ADMIN_PASSWORD, TestApp, spawn_app_with};
use reqwest::StatusCode;
use serde_json::Value;
use std::net::{IpAddr, Ipv4Addr};

const PROXY: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// A client connecting from `from`, following no redirects.
fn client_from(from: IpAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(from)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn proxied_app(create: &str) -> TestApp {
    let create = create.to_owned();
    spawn_app_with(move |a| {
        a.trusted_proxy = vec![PROXY];
        a.sso.auth_proxy_header = Some("Remote-User".into());
        a.sso.auth_proxy_create = create;
    })
    .await
}

/// The users page, as the first admin sees it through the proxy.
async fn users_page(app: &TestApp) -> String {
    app.projector
        .wait_for(app.bus.last_seq().await.unwrap())
        .await;
    let page = client_from(PROXY)
        .get(format!("{}/log/users/", app.base))
        .header("remote-user", "admin")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    page.text().await.unwrap()
}

#[tokio::test]
async fn the_header_is_believed_from_the_trusted_proxy_only() {
    let app = proxied_app("on").await;
    let (_, secret) = app.create_key("proxied service").await;
    let sent = app
        .post_json(
            &secret,
            serde_json::json!({"message": "disk full", "level": "error"}),
        )
        .await;
    assert_eq!(sent.status(), 200);
    let id = sent.json::<Value>().await.unwrap()["ids"][0]
        .as_u64()
        .unwrap();

    // The attack: a client reaching minilog directly names the admin.
    let direct = client_from(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let page = direct
        .get(format!("{}/log/keys/", app.base))
        .header("remote-user", "admin")
        .send()
        .await
        .unwrap();
    assert_eq!(
        page.status(),
        StatusCode::SEE_OTHER,
        "a page redirects to the login"
    );
    assert!(
        page.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/login")
    );
    let api = direct
        .get(format!("{}/api/v1/entries", app.base))
        .header("remote-user", "admin")
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), StatusCode::UNAUTHORIZED);
    let made_up = direct
        .get(format!("{}/log/groups/", app.base))
        .header("remote-user", "mallory")
        .send()
        .await
        .unwrap();
    assert_eq!(made_up.status(), StatusCode::SEE_OTHER);
    assert!(
        !users_page(&app).await.contains(">mallory<"),
        "no user made from it"
    );

    // Through the proxy: a new name is a member from its first request on.
    let proxy = client_from(PROXY);
    let groups = proxy
        .get(format!("{}/log/groups/", app.base))
        .header("remote-user", "carol")
        .send()
        .await
        .unwrap();
    assert_eq!(groups.status(), StatusCode::OK);
    let html = groups.text().await.unwrap();
    assert!(html.contains("<bdi>carol</bdi>"), "the header shows carol");
    assert!(users_page(&app).await.contains(">carol<"));
    let keys = proxy
        .get(format!("{}/log/keys/", app.base))
        .header("remote-user", "carol")
        .send()
        .await
        .unwrap();
    assert_eq!(
        keys.status(),
        StatusCode::FORBIDDEN,
        "carol is a member, not an admin"
    );

    // A client's copy of the header passed on beside the proxy's own is
    // not a choice between them: refused.
    let twice = proxy
        .get(format!("{}/log/keys/", app.base))
        .header("remote-user", "carol")
        .header("remote-user", "admin")
        .send()
        .await
        .unwrap();
    assert_eq!(twice.status(), StatusCode::FORBIDDEN);
    assert!(twice.text().await.unwrap().contains("2 times"));

    // The JSON API takes the same user; an action is carol's.
    let resolved = proxy
        .post(format!("{}/api/v1/entries/{id}/resolve", app.base))
        .header("remote-user", "carol")
        .send()
        .await
        .unwrap();
    assert_eq!(resolved.status(), StatusCode::OK);
    let entry = app.get_json(&format!("/api/v1/entries/{id}")).await;
    assert_eq!(entry["resolved"]["by"], "carol", "{entry}");

    // A form posted through the proxy carries the CSRF token its page gave.
    let form_page = proxy
        .get(format!("{}/log/list/?resolved=true", app.base))
        .header("remote-user", "carol")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = form_page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a CSRF token on the page")
        .to_owned();
    let unresolve = |token: String| {
        proxy
            .post(format!("{}/log/entry/{id}/unresolve", app.base))
            .header("remote-user", "carol")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(common::form_encode(&[("csrf", &token)]))
            .send()
    };
    let forged = unresolve("not-the-token".into()).await.unwrap();
    assert_eq!(
        forged.status(),
        StatusCode::FORBIDDEN,
        "a wrong CSRF token is refused"
    );
    let ok = unresolve(csrf).await.unwrap();
    assert!(ok.status().is_redirection(), "{}", ok.status());
    let entry = app.get_json(&format!("/api/v1/entries/{id}")).await;
    assert_eq!(entry["resolved"], Value::Null, "{entry}");
    assert_eq!(entry["history"][2]["by"], "carol", "{entry}");

    // carol has no password: not even the dummy hash's lets her in.
    let basic = direct
        .get(format!("{}/api/v1/entries", app.base))
        .basic_auth("carol", Some("minilog dummy password"))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);

    // From the proxy without the header: the password ways still work.
    let admin = proxy
        .get(format!("{}/api/v1/entries", app.base))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(admin.status(), StatusCode::OK);

    // The audit names the user's own first sign-in and how it came.
    let audit = proxy
        .get(format!("{}/log/audit/", app.base))
        .header("remote-user", "admin")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        audit.contains("<bdi>carol</bdi></td><td>user created</td><td><bdi>user carol (member)"),
        "{audit}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn with_creation_off_unknown_names_are_refused_and_disabled_users_too() {
    let app = proxied_app("off").await;
    let proxy = client_from(PROXY);
    let unknown = proxy
        .get(format!("{}/log/groups/", app.base))
        .header("remote-user", "dave")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::FORBIDDEN);
    let why = unknown.text().await.unwrap();
    assert!(why.contains("no minilog user \"dave\""), "{why}");
    assert!(why.contains("minilog user add"), "says what to do: {why}");
    let api = proxy
        .get(format!("{}/api/v1/entries", app.base))
        .header("remote-user", "dave")
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), StatusCode::FORBIDDEN);
    assert!(api.json::<Value>().await.unwrap()["error"].is_string());
    assert!(!users_page(&app).await.contains(">dave<"));

    // A known user comes in; once disabled, no longer.
    let admin = proxy
        .get(format!("{}/log/keys/", app.base))
        .header("remote-user", "admin")
        .send()
        .await
        .unwrap();
    assert_eq!(admin.status(), StatusCode::OK);
    proto::commands::create_user(
        &app.bus,
        "erin",
        "erin-password-1",
        proto::event::Role::Member,
        proto::event::Actor::Cli,
    )
    .await
    .unwrap();
    let seq = proto::commands::change_user(
        &app.bus,
        "erin",
        proto::commands::UserChange::Disable,
        proto::event::Actor::Cli,
    )
    .await
    .unwrap();
    app.projector.wait_for(seq).await;
    let disabled = proxy
        .get(format!("{}/log/groups/", app.base))
        .header("remote-user", "erin")
        .send()
        .await
        .unwrap();
    assert_eq!(disabled.status(), StatusCode::FORBIDDEN);
    assert!(disabled.text().await.unwrap().contains("disabled"));
    app.shutdown().await;
}
