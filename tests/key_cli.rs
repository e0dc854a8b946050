//! `minilog key create --origin`, `key set` and `key browser-token` as a
//! person runs them, against an in-process `minilog serve` with its
//! embedded nats-server.

mod common;

use common::spawn_app_embedded;
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_minilog");

fn cli(data: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .arg("--data")
        .arg(data)
        .env("MINILOG_LOG", "warn")
        .output()
        .expect("running minilog")
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn listed(data: &Path, id: &str) -> Value {
    ok(cli(data, &["key", "list", "--json"]))
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|k| k["id"] == id)
        .expect("the key is listed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origins_limits_and_browser_tokens_from_the_command_line() {
    let app = spawn_app_embedded().await;
    let data = app.data.path();
    let created = ok(cli(
        data,
        &[
            "key",
            "create",
            "--description",
            "shop front",
            "--origin",
            "https://Shop.Example/",
            "--json",
        ],
    ));
    let created: Value = serde_json::from_str(created.trim()).unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(
        listed(data, &id)["origins"],
        json!(["https://shop.example"])
    );

    let bad = cli(
        data,
        &["key", "create", "--description", "bad", "--origin", "shop"],
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not an origin"));

    ok(cli(
        data,
        &[
            "key",
            "set",
            &id,
            "--origin",
            "http://127.0.0.1:9999",
            "--origin",
            "https://shop.example",
            "--rate-limit",
            "120",
        ],
    ));
    let k = listed(data, &id);
    assert_eq!(
        k["origins"],
        json!(["http://127.0.0.1:9999", "https://shop.example"])
    );
    assert_eq!(k["rate_limit"], 120);
    ok(cli(data, &["key", "set", &id, "--rate-limit", "default"]));
    assert_eq!(listed(data, &id)["rate_limit"], Value::Null);
    assert!(!cli(data, &["key", "set", &id]).status.success());

    let token = ok(cli(data, &["key", "browser-token", &id, "--ttl", "300"]));
    let token = token.trim();
    let parsed = proto::secret::ParsedToken::parse(token).unwrap();
    assert_eq!(parsed.key_id, id);
    let now = proto::clock::now_ms() / 1000;
    assert!((now + 290..=now + 310).contains(&parsed.expiry));

    // Once the gateway has applied the change (it follows the stream on
    // its own; bounded polling), the token works from the new origin.
    let mut attempts = 0;
    let (status, body) = loop {
        let response = app
            .http
            .post(format!("{}/api/v1/browser", app.base))
            .header("origin", "http://127.0.0.1:9999")
            .body(
                json!({"token": token, "message": "from the cli's token",
                       "url": "http://127.0.0.1:9999/page"})
                .to_string(),
            )
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        attempts += 1;
        if status == 200 || attempts == 200 {
            break (status, body);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(status, 200, "{body}");
    let id_seq = body["id"].as_u64().unwrap();
    let page = app
        .get_json(&format!("/api/v1/entries?key={id}&min_seq={id_seq}"))
        .await;
    assert_eq!(
        page["entries"][0]["meta"]["url"],
        "http://127.0.0.1:9999/page"
    );
    app.shutdown().await;
}

/// Sends one Sentry event to a DSN as the SDKs derive the endpoint from it
/// (`<scheme>://<key>@<host>/<n>` → `POST <scheme>://<host>/api/<n>/envelope/`),
/// retrying while the gateway has not yet applied the key's event.
async fn send_to_dsn(http: &reqwest::Client, dsn: &str, message: &str) -> reqwest::StatusCode {
    let (scheme, rest) = dsn.split_once("://").unwrap();
    let (key, host_and_project) = rest.split_once('@').unwrap();
    let (host, project) = host_and_project.rsplit_once('/').unwrap();
    let url = format!("{scheme}://{host}/api/{project}/envelope/");
    let body = format!("{{}}\n{{\"type\":\"event\"}}\n{{\"message\":\"{message}\"}}\n");
    let mut status = reqwest::StatusCode::IM_A_TEAPOT;
    for _ in 0..200 {
        status = http
            .post(&url)
            .header(
                "x-sentry-auth",
                format!("Sentry sentry_key={key}, sentry_version=7"),
            )
            .body(body.clone())
            .send()
            .await
            .unwrap()
            .status();
        if status != 401 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_create_prints_dsns_and_key_dsn_replaces_the_dsn_key() {
    let app = spawn_app_embedded().await;
    let data = app.data.path();
    let public_url = app.base.clone();
    let created = ok(cli(
        data,
        &[
            "key",
            "create",
            "--description",
            "sentry users",
            "--origin",
            "https://shop.example",
            "--public-url",
            &public_url,
            "--json",
        ],
    ));
    let created: Value = serde_json::from_str(created.trim()).unwrap();
    let id = created["id"].as_str().unwrap();
    let dsn = created["dsn"].as_str().unwrap().to_owned();
    let host = public_url.trim_start_matches("http://");
    let key = dsn
        .strip_prefix("http://")
        .and_then(|d| d.strip_suffix(&format!("@{host}/1")))
        .unwrap_or_else(|| panic!("{dsn}"));
    assert_eq!(key.len(), 32);
    assert!(key.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(created["public_dsn"], format!("http://{id}@{host}/1"));
    // Without origins, no public DSN.
    let plain = ok(cli(
        data,
        &["key", "create", "--description", "no browsers", "--json"],
    ));
    let plain: Value = serde_json::from_str(plain.trim()).unwrap();
    assert!(plain.get("public_dsn").is_none());
    assert!(
        plain["dsn"]
            .as_str()
            .unwrap()
            .ends_with("@127.0.0.1:8000/1")
    );
    let bad = cli(
        data,
        &[
            "key",
            "create",
            "--description",
            "x y z",
            "--public-url",
            "logs",
        ],
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--public-url"));

    assert_eq!(send_to_dsn(&app.http, &dsn, "through the dsn").await, 200);
    let issued = ok(cli(
        data,
        &["key", "dsn", id, "--public-url", &public_url, "--json"],
    ));
    let issued: Value = serde_json::from_str(issued.trim()).unwrap();
    let new_dsn = issued["dsn"].as_str().unwrap().to_owned();
    assert_ne!(new_dsn, dsn);
    assert_eq!(
        send_to_dsn(&app.http, &new_dsn, "through the new dsn").await,
        200
    );
    // The new key works, so the gateway has applied the event: the old is gone.
    assert_eq!(send_to_dsn(&app.http, &dsn, "the old dsn").await, 401);
    // Caught up with the whole stream, so the entries are in the projection.
    app.wait_ready().await;
    let page = app
        .get_json(&format!("/api/v1/entries?key={id}&q=dsn"))
        .await;
    let messages: Vec<&str> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert!(messages.contains(&"through the dsn"), "{messages:?}");
    app.shutdown().await;
}
