//! `--retain-days` (docs/architecture.md, "Retention") end to end: `serve` with retention over
//! a history that is partly old. Old resolved entries leave the projection
//! and the stream; old open ones are carried (same id, times, history);
//! keys and users stay; a rebuild after the prune equals the live
//! projection row by row.

mod common;

use common::{ADMIN_PASSWORD, serve_args};
use minilog::app::App;
use minilog::shutdown::Shutdown;
use proto::Level;
use proto::bus::Bus;
use proto::commands::{self, KeySpec};
use proto::event::*;
use proto::filter::{Filter, MATCHER_VERSION};
use serde_json::Value;
use std::time::Duration;
use testkit::NatsServer;

const DAY: i64 = 86_400_000;

async fn connect(url: String) -> Bus {
    testkit::bus(&url).await
}

async fn log(bus: &Bus, key: Option<&str>, message: &str, at: i64) -> u64 {
    let env = Envelope {
        at,
        by: match key {
            Some(k) => Actor::Key(k.into()),
            None => Actor::User("admin".into()),
        },
        event: Event::Logged(Logged {
            key_id: key.map(str::to_owned),
            ip: Some("192.0.2.9".into()),
            added_by: key.is_none().then(|| "admin".to_owned()),
            ..Logged::new(Level::Error, message)
        }),
    };
    bus.publish(bus.subjects().entry(key), &env, &format!("m-{message}"))
        .await
        .unwrap()
        .seq
}

async fn triage(bus: &Bus, resolve: bool, t: Triage, at: i64) -> u64 {
    let env = Envelope {
        at,
        by: Actor::User("admin".into()),
        event: if resolve {
            Event::Resolved(t)
        } else {
            Event::Unresolved(t)
        },
    };
    let id = format!("t-{}-{at}-{resolve}", proto::clock::now_ms());
    bus.publish(bus.subjects().triage(), &env, &id)
        .await
        .unwrap()
        .seq
}

#[tokio::test]
async fn retention_prunes_old_resolved_entries_keeps_open_ones_keys_users_and_rebuilds_equal() {
    let nats = NatsServer::start();
    let bus = connect(nats.url()).await;
    let now = proto::clock::now_ms();
    let old = now - 40 * DAY;
    commands::create_user(&bus, "admin", ADMIN_PASSWORD, Role::Admin, Actor::System)
        .await
        .unwrap();
    let key = commands::create_key(&bus, KeySpec::described("old service"), Actor::Cli)
        .await
        .unwrap()
        .id
        .to_string();
    // Six old keyed entries and two old hand-added ones.
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(log(&bus, Some(&key), &format!("old keyed {i}"), old + i).await);
    }
    ids.push(log(&bus, None, "old by hand 6", old + 6).await);
    ids.push(log(&bus, None, "old by hand 7", old + 7).await);
    // Resolve #0 and #1; resolve then reopen #2; a rule resolves the hand-added #6 (not #7, text).
    triage(&bus, true, Triage::Entry(ids[0]), old + 100).await;
    triage(&bus, true, Triage::Entry(ids[1]), old + 101).await;
    triage(&bus, true, Triage::Entry(ids[2]), old + 102).await;
    triage(&bus, false, Triage::Entry(ids[2]), old + 103).await;
    triage(
        &bus,
        true,
        Triage::Matching(Rule {
            filter: Filter {
                levels: vec![],
                keys: vec!["hand".into()],
                q: Some("hand 6".into()),
                group: None,
            },
            upto: ids[7],
            matcher: MATCHER_VERSION,
        }),
        old + 104,
    )
    .await;
    commands::set_key_active(&bus, &key, false, Actor::Cli)
        .await
        .unwrap();
    commands::set_key_active(&bus, &key, true, Actor::Cli)
        .await
        .unwrap();
    // Young: one open, one resolved.
    let young_open = log(&bus, Some(&key), "young open", now).await;
    let young_done = log(&bus, Some(&key), "young done", now + 1).await;
    triage(&bus, true, Triage::Entry(young_done), now + 2).await;

    // Serve with --retain-days 30: it prunes once caught up.
    let mut retention = bus
        .read_from(1, Some(bus.subjects().retention()))
        .await
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut args = serve_args(data.path(), Some(nats.url()));
    args.retain_days = Some(30);
    let app = App::build(args).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let handle = app.projector();
    let stop = Shutdown::default();
    let task = tokio::spawn(app.run(stop.wait()));
    let pruned = tokio::time::timeout(Duration::from_secs(20), retention.next())
        .await
        .expect("a Pruned event")
        .unwrap()
        .unwrap();
    let Event::Pruned(p) = Envelope::decode(&pruned.payload).unwrap().event else {
        panic!("expected Pruned")
    };
    assert_eq!(p.upto_seq, young_open);
    assert!(handle.wait_for(pruned.seq).await);

    let http = reqwest::Client::new();
    let get = |path: String| {
        let http = http.clone();
        async move {
            http.get(path)
                .basic_auth("admin", Some(ADMIN_PASSWORD))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let page = get(format!("{base}/api/v1/entries?resolved=all&limit=200")).await;
    let mut seen: Vec<u64> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_u64().unwrap())
        .collect();
    seen.sort();
    // Old #0, #1 (resolved) and #6 (resolved by the rule) are gone; the
    // rest keep their ids; the young ones are untouched.
    let mut want = vec![
        ids[2], ids[3], ids[4], ids[5], ids[7], young_open, young_done,
    ];
    want.sort();
    assert_eq!(seen, want);
    let e2 = get(format!("{base}/api/v1/entries/{}", ids[2])).await;
    let events: Vec<&str> = e2["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["logged", "resolved", "unresolved"]);
    assert_eq!(e2["received"], proto::clock::rfc3339(old + 2));
    assert_eq!(e2["key_id"], key.as_str());
    let e7 = get(format!("{base}/api/v1/entries/{}", ids[7])).await;
    assert_eq!(e7["added_by"], "admin");

    stop.trigger();
    task.await.unwrap().unwrap();

    // The stream: the entry subjects hold the carried five and the young
    // two; key, user and triage events are all still there.
    let entries = bus
        .read_from(1, Some(bus.subjects().all_entries()))
        .await
        .unwrap();
    assert_eq!(entries.pending_at_start, 5 + 2);
    let keys = bus
        .read_from(1, Some(bus.subjects().all_keys()))
        .await
        .unwrap();
    assert_eq!(keys.pending_at_start, 3);
    let users = bus
        .read_from(1, Some(bus.subjects().all_users()))
        .await
        .unwrap();
    assert_eq!(users.pending_at_start, 1);
    let triage_events = bus
        .read_from(1, Some(bus.subjects().triage()))
        .await
        .unwrap();
    assert_eq!(triage_events.pending_at_start, 6);

    // Derived values count retained entries only, and a rebuild from the
    // pruned stream equals the live projection.
    let live = projector::Projection::open(&data.path().join("projection.redb"), 4 << 20).unwrap();
    let k = live.key(&key).unwrap().unwrap();
    assert!(k.key.active);
    assert_eq!(k.entries, 4 + 2);
    assert_eq!(k.last_used, Some(now + 1));
    assert_eq!(live.count(false, Level::Error).unwrap(), 7);
    assert!(live.user("admin").unwrap().is_some());
    let (rebuilt, _) = projector::rebuild::build(
        &bus,
        &data.path().join("rebuilt.redb"),
        4 << 20,
        None,
        &mut |_: &projector::rebuild::Progress| {},
    )
    .await
    .unwrap();
    let (a, b) = (live.dump().unwrap(), rebuilt.dump().unwrap());
    if let Some(diff) = a.first_difference(&b) {
        panic!("live and rebuilt differ after pruning: {diff}");
    }
}
