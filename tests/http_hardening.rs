//! Attacks on `minilog serve` as an HTTP server (issue 11, items 6 and 7):
//! missing browser hardening, cookies without `Secure` behind TLS,
//! connections that never finish a request, `/metrics` read from
//! elsewhere, world-readable data, and names that display as someone else.

mod common;

use common::{ADMIN_PASSWORD, spawn_app, spawn_app_with};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn every_kind_of_response_carries_the_browser_hardening_headers() {
    let app = spawn_app().await;
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let responses = [
        plain
            .get(format!("{}/login", app.base))
            .send()
            .await
            .unwrap(),
        plain
            .get(format!("{}/log/users/", app.base))
            .send()
            .await
            .unwrap(),
        plain
            .get(format!("{}/api/v1/entries", app.base))
            .send()
            .await
            .unwrap(),
        plain
            .post(format!("{}/log/add/", app.base))
            .body("garbage")
            .send()
            .await
            .unwrap(),
        plain
            .get(format!("{}/readyz", app.base))
            .send()
            .await
            .unwrap(),
        plain
            .get(format!("{}/static/minilog.css", app.base))
            .send()
            .await
            .unwrap(),
    ];
    for resp in responses {
        let h = resp.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert_eq!(h["x-frame-options"], "DENY", "{}", resp.url());
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["referrer-policy"], "same-origin");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn behind_tls_the_session_cookies_are_secure_host_only() {
    let app =
        spawn_app_with(|a| a.http.public_url = Some("https://logs.example.com/".into())).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let form = http
        .get(format!("{}/login", app.base))
        .send()
        .await
        .unwrap();
    let csrf_cookie = form.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        csrf_cookie.starts_with("__Host-minilog_login_csrf=") && csrf_cookie.contains("; Secure"),
        "{csrf_cookie}"
    );
    let token = csrf_cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned();
    let login = http
        .post(format!("{}/login", app.base))
        .header("cookie", format!("__Host-minilog_login_csrf={token}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={token}&name=admin&password={ADMIN_PASSWORD}"))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 303);
    let session = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.contains("minilog_session="))
        .unwrap();
    assert!(
        session.starts_with("__Host-minilog_session=")
            && session.contains("; Secure")
            && session.contains("Path=/")
            && !session.contains("Domain"),
        "{session}"
    );
    let value = session
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1;
    // The same value under the old, unprefixed name is no session.
    let page = http
        .get(format!("{}/log/list/", app.base))
        .header("cookie", format!("minilog_session={value}"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 303);
    let page = http
        .get(format!("{}/log/list/", app.base))
        .header("cookie", format!("__Host-minilog_session={value}"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    app.shutdown().await;
}

/// Reads until the server closes the connection; what it sent.
async fn until_closed(stream: &mut tokio::net::TcpStream) -> String {
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "the server kept the connection open");
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn connections_that_never_finish_a_request_are_closed() {
    let app = spawn_app_with(|a| {
        a.http.header_timeout = 1;
        a.http.body_timeout = 1;
    })
    .await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let (_, secret) = app.create_key("slow client").await;
    // Says nothing at all.
    let mut idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    until_closed(&mut idle).await;
    // Half a request line and a header, then silence.
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /login HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    until_closed(&mut slow).await;
    // Headers promising a body that never comes.
    let mut body = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let request = format!(
        "POST /api/v1/entries HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {secret}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"message\""
    );
    body.write_all(request.as_bytes()).await.unwrap();
    let answer = until_closed(&mut body).await;
    assert!(
        answer.is_empty()
            || answer.starts_with("HTTP/1.1 408")
            || (answer.starts_with("HTTP/1.1 400") && answer.contains("incomplete_body")),
        "{answer}"
    );
    // A body trickled one byte at a time: the deadline counts from the
    // start, not between bytes.
    let trickle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let (mut read_half, mut write_half) = trickle.into_split();
    let request = format!(
        "POST /api/v1/entries HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {secret}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    );
    write_half.write_all(request.as_bytes()).await.unwrap();
    let writer = tokio::spawn(async move {
        for _ in 0..100 {
            if write_half.write_all(b" ").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(15), read_half.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "a trickled body kept the request open");
    let answer = String::from_utf8_lossy(&got);
    assert!(
        answer.is_empty() || answer.contains("incomplete_body"),
        "{answer}"
    );
    writer.abort();
    // A kept-alive connection is closed once idle, after a full answer.
    let mut kept = tokio::net::TcpStream::connect(&addr).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = until_closed(&mut kept).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // And the server still serves.
    assert_eq!(app.get("/healthz").await.status(), 200);
    app.shutdown().await;
}

#[tokio::test]
async fn metrics_answer_this_machine_only_unless_a_token_is_given() {
    let app =
        spawn_app_with(|a| a.trusted_proxy = vec![std::net::Ipv4Addr::LOCALHOST.into()]).await;
    let metrics = format!("{}/metrics", app.base);
    let http = reqwest::Client::new();
    assert_eq!(http.get(&metrics).send().await.unwrap().status(), 200);
    // A client elsewhere, through the proxy in front.
    let remote = http
        .get(&metrics)
        .header("x-forwarded-for", "203.0.113.5")
        .send()
        .await
        .unwrap();
    assert_eq!(remote.status(), 403);
    assert!(remote.text().await.unwrap().contains("--metrics-token"));
    // Bytes that are not text before the proxy's entry change nothing.
    let hidden = http
        .get(&metrics)
        .header(
            "x-forwarded-for",
            reqwest::header::HeaderValue::from_bytes(b"\xff, 203.0.113.5").unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(hidden.status(), 403);
    app.shutdown().await;

    // A proxy on this machine that nobody declared: forwarding for
    // someone is not local either.
    let app = spawn_app().await;
    let forwarded = http
        .get(format!("{}/metrics", app.base))
        .header("x-forwarded-for", "203.0.113.5")
        .send()
        .await
        .unwrap();
    assert_eq!(forwarded.status(), 403);
    app.shutdown().await;

    let app = spawn_app_with(|a| {
        a.trusted_proxy = vec![std::net::Ipv4Addr::LOCALHOST.into()];
        a.http.metrics_token = Some("s3cret-metrics-token".into());
    })
    .await;
    let metrics = format!("{}/metrics", app.base);
    let from = |token: &str| {
        http.get(&metrics)
            .header("x-forwarded-for", "203.0.113.5")
            .header("authorization", format!("Bearer {token}"))
            .send()
    };
    assert_eq!(from("guess").await.unwrap().status(), 403);
    let ok = from("s3cret-metrics-token").await.unwrap();
    assert_eq!(ok.status(), 200);
    assert!(
        ok.text()
            .await
            .unwrap()
            .contains("minilog_gateway_accepted_total")
    );
    app.shutdown().await;
}

#[tokio::test]
async fn the_data_directory_and_the_projection_are_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // An existing, world-readable directory and projection are tightened.
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let nats = testkit::NatsServer::start();
    let app = minilog::app::App::build(common::serve_args(&data, Some(nats.url())))
        .await
        .unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("projection.redb")), 0o600);
    assert_eq!(mode(&data.join("session.key")) & 0o077, 0);
    drop(app);
}

#[tokio::test]
async fn names_that_would_display_as_someone_else_are_refused() {
    let app = spawn_app().await;
    for name in ["admin\u{200b}", "\u{202e}nimda", "ad\u{2066}min"] {
        let refused = proto::commands::create_user(
            &app.bus,
            name,
            "password-long-enough",
            proto::event::Role::Admin,
            proto::event::Actor::Cli,
        )
        .await;
        assert!(
            matches!(refused, Err(proto::commands::CommandError::Invalid(_))),
            "{name:?}: {refused:?}"
        );
    }
    app.shutdown().await;
}
