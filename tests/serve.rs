//! `minilog serve` end to end, in process: ingestion through the gateway,
//! the projector, and the read API, over a real nats-server.

mod common;

use common::{ADMIN_PASSWORD, spawn_app, spawn_app_embedded};
use serde_json::{Value, json};

#[tokio::test]
async fn readyz_reports_the_contract_shape_once_caught_up() {
    let app = spawn_app().await;
    let body = app.wait_ready().await;
    assert_eq!(body["ready"], true);
    assert_eq!(body["keys_loaded"], true);
    // The first admin's creation is the first event; it is applied.
    assert!(body["applied_seq"].as_u64().unwrap() >= 1);
    assert_eq!(body["applied_seq"], body["stream_last_seq"]);
    let health = app
        .http
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.unwrap(), "ok");
    app.shutdown().await;
}

#[tokio::test]
async fn an_entry_sent_with_the_seed_form_is_read_back_with_its_fields() {
    let app = spawn_app().await;
    let (key_id, secret) = app.create_key("billing service").await;
    let resp = app
        .post_form(&[
            ("key", &secret),
            ("message", "disk almost full"),
            ("status", "warning"),
        ])
        .await;
    assert_eq!(resp.status(), 200);
    let id: u64 = resp.headers()["minilog-entry-id"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(resp.text().await.unwrap(), "warn added\n");

    let body = app.get_json(&format!("/api/v1/entries?min_seq={id}")).await;
    let e = &body["entries"][0];
    assert_eq!(e["id"], id);
    assert_eq!(e["level"], "warn");
    assert_eq!(e["message"], "disk almost full");
    assert_eq!(e["key_id"], key_id.as_str());
    assert_eq!(e["key_description"], "billing service");
    assert_eq!(e["ip"], "127.0.0.1");
    assert_eq!(e["resolved"], Value::Null);
    assert_eq!(e["added_by"], Value::Null);
    assert!(body["applied_seq"].as_u64().unwrap() >= id);
    app.shutdown().await;
}

#[tokio::test]
async fn the_read_api_filters_by_level_key_state_and_text_with_a_cursor() {
    let app = spawn_app().await;
    let (k1, s1) = app.create_key("first service").await;
    let (_k2, s2) = app.create_key("second service").await;
    let mut items = Vec::new();
    for i in 0..25 {
        items.push(json!({"message": format!("routine message {i}"), "level": "info"}));
    }
    let r = app.post_json(&s1, Value::Array(items)).await;
    assert_eq!(r.status(), 200);
    let r = app
        .post_json(
            &s2,
            json!([{"message": "database is on fire", "level": "critical", "fingerprint": "fire"},
                               {"message": "slow query", "level": "warn", "meta": {"ms": "900"}}]),
        )
        .await;
    let ids: Vec<u64> =
        serde_json::from_value(r.json::<Value>().await.unwrap()["ids"].clone()).unwrap();
    let last = *ids.last().unwrap();

    let page = app
        .get_json(&format!("/api/v1/entries?min_seq={last}"))
        .await;
    assert_eq!(page["entries"].as_array().unwrap().len(), 20);
    assert_eq!(page["entries"][0]["id"], last);
    let next = page["next_before"].as_u64().unwrap();
    let rest = app
        .get_json(&format!("/api/v1/entries?before={next}"))
        .await;
    assert_eq!(rest["entries"].as_array().unwrap().len(), 7);
    assert_eq!(rest["next_before"], Value::Null);

    let crit = app.get_json("/api/v1/entries?level=critical,error").await;
    assert_eq!(crit["entries"].as_array().unwrap().len(), 1);
    assert_eq!(crit["entries"][0]["fingerprint"], "fire");

    let by_key = app
        .get_json(&format!("/api/v1/entries?key={k1}&limit=200"))
        .await;
    assert_eq!(by_key["entries"].as_array().unwrap().len(), 25);

    let text = app.get_json("/api/v1/entries?q=SLOW").await;
    assert_eq!(text["entries"].as_array().unwrap().len(), 1);
    assert_eq!(text["entries"][0]["meta"]["ms"], "900");

    let bad = app.get("/api/v1/entries?level=loud").await;
    assert_eq!(bad.status(), 400);
    let err: Value = bad.json().await.unwrap();
    assert_eq!(err["error"]["code"], "invalid_level");
    assert_eq!(app.get("/api/v1/entries?limit=201").await.status(), 400);
    assert_eq!(
        app.get("/api/v1/entries?resolved=maybe").await.status(),
        400
    );
    app.shutdown().await;
}

#[tokio::test]
async fn resolve_and_unresolve_show_in_the_entry_history_and_the_filters() {
    let app = spawn_app().await;
    let (_k, secret) = app.create_key("history test").await;
    let r = app
        .post_json(
            &secret,
            json!({"message": "needs a look", "level": "error"}),
        )
        .await;
    let id = r.json::<Value>().await.unwrap()["ids"][0].as_u64().unwrap();

    let resolved = app
        .post_as_admin(&format!("/api/v1/entries/{id}/resolve"))
        .await;
    assert_eq!(resolved.status(), 200);
    let seq = resolved.json::<Value>().await.unwrap()["seq"]
        .as_u64()
        .unwrap();
    // Read-your-writes: the answer came after the projector applied it.
    let open = app.get_json("/api/v1/entries").await;
    assert!(
        open["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["id"] != id)
    );
    let done = app.get_json("/api/v1/entries?resolved=true").await;
    assert_eq!(done["entries"][0]["id"], id);
    assert_eq!(done["entries"][0]["resolved"]["by"], "admin");

    let undone = app
        .post_as_admin(&format!("/api/v1/entries/{id}/unresolve"))
        .await;
    assert_eq!(undone.status(), 200);
    let entry = app.get_json(&format!("/api/v1/entries/{id}")).await;
    assert_eq!(entry["resolved"], Value::Null);
    let events: Vec<&str> = entry["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["logged", "resolved", "unresolved"]);
    assert_eq!(entry["history"][1]["seq"], seq);
    assert_eq!(entry["history"][2]["by"], "admin");

    let missing = app.post_as_admin("/api/v1/entries/999999/resolve").await;
    assert_eq!(missing.status(), 404);
    assert_eq!(app.get("/api/v1/entries/999999").await.status(), 404);
    app.shutdown().await;
}

#[tokio::test]
async fn the_read_api_refuses_missing_and_wrong_credentials() {
    let app = spawn_app().await;
    let url = format!("{}/api/v1/entries", app.base);
    let none = app.http.get(&url).send().await.unwrap();
    assert_eq!(none.status(), 401);
    assert!(none.headers().contains_key("www-authenticate"));
    let wrong = app
        .http
        .get(&url)
        .basic_auth("admin", Some("nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let nobody = app
        .http
        .get(&url)
        .basic_auth("mallory", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(nobody.status(), 401);
    // Twice right: the second answer comes from the verified-credential cache.
    for _ in 0..2 {
        let ok = app
            .http
            .get(&url)
            .basic_auth("Admin", Some(ADMIN_PASSWORD))
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), 200);
    }
    let post = app
        .http
        .post(format!("{url}/1/resolve"))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 401);
    app.shutdown().await;
}

#[tokio::test]
async fn min_seq_beyond_the_stream_times_out_with_504() {
    let app = spawn_app().await;
    let started = std::time::Instant::now();
    let resp = app.get("/api/v1/entries?min_seq=1000000").await;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["error"]["code"], "min_seq_timeout");
    assert!(started.elapsed() >= std::time::Duration::from_secs(9));
    app.shutdown().await;
}

#[tokio::test]
async fn readyz_reports_a_projector_stopped_at_an_event_it_cannot_apply() {
    let app = spawn_app().await;
    app.wait_ready().await;
    let js = async_nats::jetstream::new(app.bus.client().clone());
    let bad = js
        .publish(app.bus.subjects().triage(), "\u{1}not an event".into())
        .await
        .unwrap()
        .await
        .unwrap()
        .sequence;
    let mut status = app.projector.status.clone();
    status
        .wait_for(|s| matches!(s, projector::Status::Stopped { .. }))
        .await
        .unwrap();
    let resp = app
        .http
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["ready"], false);
    assert_eq!(body["stream_last_seq"], bad);
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .contains(&format!("event {bad}")),
        "{body}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn nats_down_gives_503_and_after_recovery_nothing_acknowledged_is_lost() {
    let mut app = spawn_app().await;
    let (_k, secret) = app.create_key("outage test").await;
    let mut acked = Vec::new();
    for i in 0..5 {
        let r = app
            .post_json(&secret, json!({"message": format!("before outage {i}")}))
            .await;
        assert_eq!(r.status(), 200);
        acked.push(r.json::<Value>().await.unwrap()["ids"][0].as_u64().unwrap());
    }
    app.nats.as_mut().unwrap().stop();
    // The client notices the closed connection; from then on every
    // submission is refused, never answered with a fake 200.
    let mut refused = None;
    for _ in 0..500 {
        let r = app
            .post_json(&secret, json!({"message": "during outage"}))
            .await;
        if r.status() == 503 {
            refused = Some(r);
            break;
        }
        assert_eq!(
            r.status(),
            200,
            "only 200 (stored before the drop was seen) or 503"
        );
        acked.push(r.json::<Value>().await.unwrap()["ids"][0].as_u64().unwrap());
    }
    let refused = refused.expect("a 503 while NATS is down");
    assert!(refused.headers().contains_key("retry-after"));
    app.nats.as_mut().unwrap().restart();
    let mut recovered = false;
    for _ in 0..500 {
        let r = app
            .post_json(&secret, json!({"message": "after outage"}))
            .await;
        if r.status() == 200 {
            acked.push(r.json::<Value>().await.unwrap()["ids"][0].as_u64().unwrap());
            recovered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(recovered, "ingestion recovers after NATS is back");
    let last = *acked.iter().max().unwrap();
    let caught_up = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        app.projector.wait_for(last),
    )
    .await;
    assert_eq!(
        caught_up,
        Ok(true),
        "the projector applies every acked entry"
    );
    let body = app
        .get_json(&format!("/api/v1/entries?min_seq={last}&limit=200"))
        .await;
    let seen: Vec<u64> = body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_u64().unwrap())
        .collect();
    for id in &acked {
        assert!(
            seen.contains(id),
            "acknowledged entry {id} is in the projection"
        );
    }
    app.shutdown().await;
}

#[tokio::test]
async fn the_embedded_server_gives_programs_an_ingest_user_that_cannot_touch_the_event_log() {
    let app = spawn_app_embedded().await;
    app.wait_ready().await;
    let data = app.data.path();
    let url = std::fs::read_to_string(data.join("nats.url")).unwrap();
    let creds: Value =
        serde_json::from_slice(&std::fs::read(data.join("nats-credentials.json")).unwrap())
            .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join("nats-credentials.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o077,
            0,
            "credentials are readable by their owner only"
        );
    }
    let ingest = async_nats::ConnectOptions::new()
        .user_and_password(
            creds["ingest"]["user"].as_str().unwrap().into(),
            creds["ingest"]["password"].as_str().unwrap().into(),
        )
        .connect(url.trim())
        .await
        .unwrap();
    let mut js = async_nats::jetstream::new(ingest.clone());
    js.set_timeout(std::time::Duration::from_secs(1));
    // Publishing into the event log is refused (no ack ever comes).
    let publish = js
        .publish("minilog.events.entry.hand", "forged".into())
        .await;
    let acked = match publish {
        Ok(ack) => ack.await.is_ok(),
        Err(_) => false,
    };
    assert!(
        !acked,
        "the ingest user must not publish to minilog.events.>"
    );
    // Reading the stream (any $JS.API call) is refused too.
    assert!(js.get_stream("MINILOG").await.is_err());
    // Without credentials nothing connects.
    assert!(async_nats::connect(url.trim()).await.is_err());
    let before = app.bus.last_seq().await.unwrap();
    app.wait_ready().await;
    assert_eq!(app.bus.last_seq().await.unwrap(), before);
    app.shutdown().await;
}

#[tokio::test]
async fn two_first_starts_at_once_create_one_admin() {
    let nats = testkit::NatsServer::start();
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a1 = common::serve_args(d1.path(), Some(nats.url()));
    let mut a2 = common::serve_args(d2.path(), Some(nats.url()));
    a1.admin_password = Some("first-password".into());
    a2.admin_password = Some("second-password".into());
    let (r1, r2) = tokio::join!(minilog::app::App::build(a1), minilog::app::App::build(a2));
    let (app1, _app2) = (r1.unwrap(), r2.unwrap());
    let mut reader = app1
        .bus()
        .read_from(1, Some(app1.bus().subjects().all_users()))
        .await
        .unwrap();
    assert_eq!(
        reader.pending_at_start, 1,
        "one UserCreated event in the stream"
    );
    let ev = reader.next().await.unwrap().unwrap();
    let env = proto::Envelope::decode(&ev.payload).unwrap();
    assert!(matches!(env.event, proto::Event::UserCreated(ref u) if u.name == "admin"));
}

#[tokio::test]
async fn entries_added_by_hand_keep_the_configured_message_limit() {
    let app = common::spawn_app_with(|a| a.max_message_bytes = 100).await;
    let mut b = testkit::browser::Browser::new(&app.base);
    assert_eq!(b.login("admin", ADMIN_PASSWORD).await.status, 303);
    let long = "the printer is on fire again ".repeat(20);
    let page = b
        .submit(
            "/log/new/",
            "/log/new/",
            &[("message", &long), ("level", "error"), ("source", "office")],
        )
        .await;
    assert_eq!(page.status, 303, "{}", page.body);
    let id: u64 = page
        .location
        .unwrap()
        .trim_start_matches("/log/entry/")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let entry = app
        .get_json(&format!("/api/v1/entries/{id}?min_seq={id}"))
        .await;
    let message = entry["message"].as_str().unwrap();
    assert!(
        message.starts_with(&long[..100]) && message.contains("[trimmed 480 bytes]"),
        "{message}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_resolve_whose_ack_times_out_says_it_may_still_take_effect_and_it_does() {
    let app = common::spawn_app_with(|a| a.ingest.ack_timeout = 2).await;
    let (_, secret) = app.create_key("stalled resolve").await;
    let sent = app
        .post_json(
            &secret,
            json!({"message": "resolve me while NATS is frozen", "level": "error"}),
        )
        .await;
    let id = sent.json::<Value>().await.unwrap()["ids"][0]
        .as_u64()
        .unwrap();
    app.wait_ready().await;

    // NATS frozen: the publish reaches its socket, the ack never comes.
    let nats = app.nats.as_ref().unwrap();
    nats.pause();
    let resolved = app
        .post_as_admin(&format!("/api/v1/entries/{id}/resolve"))
        .await;
    nats.resume();
    assert_eq!(resolved.status(), 503);
    let body: Value = resolved.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("may still take effect"), "{message}");
    assert!(!message.contains("nothing was changed"), "{message}");

    // And it did take effect once NATS went on.
    app.wait_ready().await;
    let entry = app
        .get_json(&format!("/api/v1/entries/{id}?min_seq={}", id + 1))
        .await;
    assert!(entry["resolved"].is_object(), "{entry}");
    app.shutdown().await;
}
