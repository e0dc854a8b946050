//! The groups of the JSON API over a real nats-server and redb: repeats
//! fold, a group resolves as one rule, a new entry regresses it, and the
//! entries carry and filter by their group.

mod helpers;

use helpers::{ADMIN_PW, App, spawn};
use proto::Level;
use serde_json::Value;

async fn get(app: &App, path: &str) -> Value {
    call(app, reqwest::Method::GET, path).await
}

async fn post(app: &App, path: &str) -> Value {
    call(app, reqwest::Method::POST, path).await
}

/// A request as admin; the answer must be a 200 with JSON.
async fn call(app: &App, method: reqwest::Method, path: &str) -> Value {
    let r = reqwest::Client::new()
        .request(method, format!("{}{path}", app.base))
        .basic_auth("admin", Some(ADMIN_PW))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{path}: {body}");
    body
}

#[tokio::test]
async fn repeats_fold_into_a_group_that_resolves_regresses_and_reopens() {
    let app = spawn().await;
    for i in 0..5 {
        app.log(
            Some("k1"),
            if i == 3 {
                Level::Critical
            } else {
                Level::Error
            },
            &format!("timeout after {} ms talking to 10.0.0.{i}", 100 + i),
        )
        .await;
    }
    let disk = app.log(Some("k1"), Level::Warn, "disk full on /var").await;
    let other_key = app
        .log(
            Some("k2"),
            Level::Error,
            "timeout after 7 ms talking to 10.0.0.9",
        )
        .await;

    let page = get(&app, "/api/v1/groups").await;
    let groups = page["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 3, "{page}");
    // Newest first; scoped to the key.
    assert_eq!(groups[0]["last_entry_id"], other_key);
    assert_eq!(groups[1]["last_entry_id"], disk);
    let timeout = &groups[2];
    assert_eq!(timeout["count"], 5);
    assert_eq!(timeout["open_count"], 5);
    assert_eq!(timeout["level"], "critical");
    assert_eq!(timeout["template"], "timeout after <n> ms talking to <ip>");
    assert_eq!(timeout["title"], "timeout after 104 ms talking to 10.0.0.4");
    assert_eq!(timeout["regressed"], false);
    assert_eq!(timeout["resolved"], Value::Null);
    let id = timeout["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 16);

    // One group: its entries newest first, and 24 hourly counts.
    let one = get(&app, &format!("/api/v1/groups/{id}")).await;
    let entries = one["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 5);
    assert!(entries[0]["id"].as_u64() > entries[4]["id"].as_u64());
    assert!(entries.iter().all(|e| e["group"] == id.as_str()));
    let hourly: Vec<u64> = one["hourly"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .collect();
    assert_eq!(hourly.len(), 24);
    assert_eq!(hourly[23], 5, "the current hour is the last");
    assert_eq!(hourly.iter().sum::<u64>(), 5);
    // The entries filter by group.
    let listed = get(&app, &format!("/api/v1/entries?group={id}&resolved=all")).await;
    assert_eq!(listed["entries"].as_array().unwrap().len(), 5);

    // Resolving the group is one rule over its entries up to its newest.
    let done = post(&app, &format!("/api/v1/groups/{id}/resolve")).await;
    assert_eq!(done["matched"], 5);
    let g = get(
        &app,
        &format!("/api/v1/groups/{id}?min_seq={}", done["seq"]),
    )
    .await;
    assert_eq!(g["open_count"], 0);
    assert_eq!(g["resolved"]["by"], "admin");
    let open = get(&app, "/api/v1/groups").await;
    assert_eq!(open["groups"].as_array().unwrap().len(), 2);
    let resolved = get(&app, "/api/v1/groups?resolved=true").await;
    assert_eq!(resolved["groups"][0]["id"], id.as_str());
    // The other groups were not touched.
    let disk_entry = get(&app, &format!("/api/v1/entries/{disk}")).await;
    assert_eq!(disk_entry["resolved"], Value::Null);

    // A new repeat reopens it as regressed.
    let again = app
        .log(
            Some("k1"),
            Level::Error,
            "timeout after 5000 ms talking to 10.0.0.77",
        )
        .await;
    let g = get(&app, &format!("/api/v1/groups/{id}")).await;
    assert_eq!(g["regressed"], true);
    assert_eq!(g["open_count"], 1);
    assert_eq!(g["count"], 6);
    assert_eq!(g["resolved"], Value::Null);
    assert_eq!(g["last_entry_id"], again);
    // Resolved again, it is no longer regressed; reopened, all six are open.
    post(&app, &format!("/api/v1/groups/{id}/resolve")).await;
    let g = get(&app, &format!("/api/v1/groups/{id}")).await;
    assert_eq!(g["regressed"], false);
    let reopened = post(&app, &format!("/api/v1/groups/{id}/unresolve")).await;
    assert_eq!(reopened["matched"], 6);
    let g = get(&app, &format!("/api/v1/groups/{id}")).await;
    assert_eq!(g["open_count"], 6);
    assert_eq!(g["regressed"], false);
    // Its history, newest first: reopened, resolved, regressed by the new
    // repeat, resolved.
    let history = g["history"].as_array().unwrap();
    let kinds: Vec<_> = history
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["reopened", "resolved", "regressed", "resolved"]);
    assert_eq!(history[0]["by"], "admin");
    assert_eq!(history[2]["entry_id"], again);
    assert_eq!(history[2]["by"], Value::Null);
    assert_eq!(history[3]["seq"], done["seq"]);
    assert_eq!(
        app.projection.group_differences().unwrap(),
        Vec::<String>::new()
    );

    // Filters: level (the group's highest), key, text; an unknown group.
    let crit = get(&app, "/api/v1/groups?level=critical").await;
    assert_eq!(crit["groups"].as_array().unwrap().len(), 1);
    let k2 = get(&app, "/api/v1/groups?key=k2").await;
    assert_eq!(k2["groups"][0]["last_entry_id"], other_key);
    let text = get(&app, "/api/v1/groups?q=DISK").await;
    assert_eq!(text["groups"][0]["last_entry_id"], disk);
    let missing = reqwest::Client::new()
        .get(format!("{}/api/v1/groups/nosuchgroup", app.base))
        .basic_auth("admin", Some(ADMIN_PW))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn a_page_of_groups_reads_about_a_page_of_rows_and_follows_its_cursor() {
    let app = spawn().await;
    // 300 groups of 3 entries each, and one big group of 200.
    let mut events = Vec::new();
    for i in 0..300u64 {
        for _ in 0..3 {
            events.push(proto::event::Logged {
                key_id: Some("k1".into()),
                ..proto::event::Logged::new(Level::Error, format!("failure kind {}", word(i)))
            });
        }
    }
    for i in 0..200u64 {
        events.push(proto::event::Logged {
            key_id: Some("k1".into()),
            ..proto::event::Logged::new(Level::Warn, format!("retry {i} of the big one"))
        });
    }
    let last = app.log_many(events).await;
    let query = projector::group_query::GroupQuery {
        limit: 20,
        ..Default::default()
    };
    let page = app.projection.group_page(&query).unwrap();
    assert_eq!(page.groups.len(), 20);
    assert!(page.rows_read <= 2 * 21, "{} rows read", page.rows_read);
    assert_eq!(page.groups[0].1.last_entry_id, last);
    assert_eq!(page.groups[0].1.count, 200);
    // Following the cursor visits every group once.
    let mut seen = std::collections::BTreeSet::new();
    let mut before = None;
    loop {
        let page = get(
            &app,
            &match before {
                Some(b) => format!("/api/v1/groups?limit=50&before={b}"),
                None => "/api/v1/groups?limit=50".into(),
            },
        )
        .await;
        for g in page["groups"].as_array().unwrap() {
            assert!(seen.insert(g["id"].as_str().unwrap().to_owned()));
        }
        match page["next_before"].as_u64() {
            Some(b) => before = Some(b),
            None => break,
        }
    }
    assert_eq!(seen.len(), 301);
}

/// Distinct words (numbers would fold into one group).
fn word(i: u64) -> String {
    let letters = b"abcdefghijklmnopqrstuvwxyz";
    (0..3)
        .map(|d| letters[((i / 26u64.pow(d)) % 26) as usize] as char)
        .collect()
}
