//! The core invariant (docs/architecture.md §2): a projection that lived through a
//! mixed history, with projector crashes in between, equals a fresh
//! rebuild from the stream, table by table and row by row. Also: time
//! travel (`--until`), the schema-version rebuild on open, retention's
//! `Carried`/`Pruned`, and the committed event fixtures.

use projector::groups::GroupEventKind;
use projector::rebuild::{self, Progress, Until};
use projector::{Projection, Projector, Query, Resolved};
use proto::Level;
use proto::bus::Bus;
use proto::commands::{self, KeySpec};
use proto::event::*;
use proto::filter::{Filter, MATCHER_VERSION};
use std::collections::BTreeMap;
use std::path::Path;
use testkit::NatsServer;

const CACHE: usize = 4 << 20;

async fn bus(server: &NatsServer) -> Bus {
    testkit::bus(&server.url()).await
}

/// Publishes on the subject the event belongs to; answers its sequence.
async fn publish(bus: &Bus, env: &Envelope) -> u64 {
    let subject = bus.subjects().of(&env.event);
    let id = format!("t-{}", rand_id());
    bus.publish(subject, env, &id).await.unwrap().seq
}

fn rand_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn entry(key: Option<&str>, level: Level, message: &str, at: i64) -> Envelope {
    let by = match key {
        Some(k) => Actor::Key(k.into()),
        None => Actor::User("alice".into()),
    };
    Envelope {
        at,
        by,
        event: Event::Logged(Logged {
            key_id: key.map(str::to_owned),
            level,
            message: message.into(),
            source: Some(format!("host-{}", message.len() % 3)),
            time: Some(at - 1000),
            ip: Some("192.0.2.1".into()),
            meta: BTreeMap::from([("n".into(), message.len().to_string())]),
            fingerprint: message.len().is_multiple_of(2).then(|| "fp".to_owned()),
            added_by: key.is_none().then(|| "alice".to_owned()),
            untrusted: false,
            exception: None,
        }),
    }
}

fn triage(who: &str, resolve: bool, t: Triage) -> Envelope {
    Envelope::now(
        Actor::User(who.into()),
        if resolve {
            Event::Resolved(t)
        } else {
            Event::Unresolved(t)
        },
    )
}

/// Opens the projection, waiting for an aborted projector's last
/// transaction (it runs to its end on a blocking thread) to let go.
async fn reopen(path: &Path) -> Projection {
    for _ in 0..1000 {
        match Projection::open(path, CACHE) {
            Err(projector::ProjectionError::Storage(redb::Error::DatabaseAlreadyOpen)) => {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await
            }
            other => return other.unwrap(),
        }
    }
    panic!("the projection file stayed open");
}

/// Runs a projector on `path` until `applied` moved past where it
/// started, then kills it (aborts its task) wherever it is.
async fn crash_projector_midway(bus: &Bus, path: &Path) {
    // Small rule chunks: resolve-all rules span several transactions,
    // and the crashes land between them too.
    let pr = Projector::start(bus.clone(), reopen(path).await)
        .await
        .unwrap()
        .with_rule_chunk(7);
    let mut applied = pr.handle().applied.clone();
    let start = *applied.borrow();
    let last = bus.last_seq().await.unwrap();
    let task = tokio::spawn(pr.run(std::future::pending()));
    if start < last {
        applied.wait_for(|s| *s > start).await.unwrap();
    }
    task.abort();
    let _ = task.await;
}

/// Runs a projector on `path` until it has applied the whole stream.
async fn catch_up(bus: &Bus, path: &Path) -> Projection {
    // Small rule chunks: resolve-all rules span several transactions,
    // and the crashes land between them too.
    let pr = Projector::start(bus.clone(), reopen(path).await)
        .await
        .unwrap()
        .with_rule_chunk(7);
    let handle = pr.handle();
    let p = pr.projection().clone();
    let task = tokio::spawn(pr.run(std::future::pending()));
    assert!(handle.wait_for(bus.last_seq().await.unwrap()).await);
    task.abort();
    let _ = task.await;
    drop(p);
    reopen(path).await
}

fn assert_same(live: &Projection, rebuilt: &Projection) {
    let (a, b) = (live.dump().unwrap(), rebuilt.dump().unwrap());
    assert!(
        a.unknown.is_empty(),
        "tables the dump misses: {:?}",
        a.unknown
    );
    if let Some(diff) = a.first_difference(&b) {
        panic!("live and rebuilt projections differ: {diff}");
    }
    assert_eq!(a, b);
}

async fn rebuild_fresh(bus: &Bus, dir: &Path, name: &str) -> (Projection, Vec<Progress>) {
    let mut seen = Vec::new();
    let (p, summary) = rebuild::build(bus, &dir.join(name), CACHE, None, &mut |p: &Progress| {
        seen.push(p.clone())
    })
    .await
    .unwrap();
    assert_eq!(summary.last_seq, bus.last_seq().await.unwrap());
    (p, seen)
}

/// A mixed history in phases, with the projector killed between phases
/// and inside them.
async fn mixed_history(bus: &Bus, path: &Path) -> Vec<u64> {
    let now = proto::clock::now_ms();
    commands::create_user(bus, "alice", "password-alice", Role::Admin, Actor::System)
        .await
        .unwrap();
    commands::create_user(bus, "bob", "password-bob-1", Role::Member, Actor::Cli)
        .await
        .unwrap();
    let mut keys = Vec::new();
    for d in ["billing", "search", "mailer"] {
        let k = commands::create_key(bus, KeySpec::described(&format!("{d} service")), Actor::Cli)
            .await
            .unwrap();
        keys.push(k.id.to_string());
    }
    let mut ids = Vec::new();
    // Phase 1: entries of three keys and by hand.
    for i in 0..120 {
        let key = match i % 4 {
            3 => None,
            n => Some(keys[n].as_str()),
        };
        let level = Level::ALL[i % 6];
        ids.push(
            publish(
                bus,
                &entry(key, level, &format!("message {i} disk"), now + i as i64),
            )
            .await,
        );
    }
    crash_projector_midway(bus, path).await;

    // Phase 2: single resolves and unresolves, a rule, key changes.
    for (n, id) in ids.iter().enumerate().take(40) {
        publish(bus, &triage("alice", true, Triage::Entry(*id))).await;
        if n % 3 == 0 {
            publish(bus, &triage("bob", false, Triage::Entry(*id))).await;
        }
    }
    crash_projector_midway(bus, path).await;
    publish(
        bus,
        &triage(
            "bob",
            true,
            Triage::Matching(Rule {
                filter: Filter {
                    levels: vec![Level::Error, Level::Critical],
                    keys: vec![],
                    q: None,
                    group: None,
                },
                upto: ids[90],
                matcher: MATCHER_VERSION,
            }),
        ),
    )
    .await;
    commands::set_key_active(bus, &keys[1], false, Actor::Cli)
        .await
        .unwrap();
    publish(
        bus,
        &Envelope::now(
            Actor::User("alice".into()),
            Event::KeyChanged(KeyChanged {
                key_id: keys[0].clone(),
                description: Some("billing, renamed".into()),
                origins: Some(vec!["https://shop.example".into()]),
                rate_limit: Some(Some(120)),
            }),
        ),
    )
    .await;
    crash_projector_midway(bus, path).await;

    // Phase 3: more entries (one from the revoked key's last moments),
    // a restore, an unresolve-all rule, users changing.
    for i in 120..200 {
        let key = Some(keys[i % 3].as_str());
        ids.push(
            publish(
                bus,
                &entry(key, Level::ALL[i % 6], &format!("late {i}"), now + i as i64),
            )
            .await,
        );
    }
    commands::set_key_active(bus, &keys[1], true, Actor::Cli)
        .await
        .unwrap();
    publish(
        bus,
        &triage(
            "alice",
            false,
            Triage::Matching(Rule {
                filter: Filter {
                    levels: vec![],
                    keys: vec![keys[2].clone(), "hand".into()],
                    q: Some("DISK".into()),
                    group: None,
                },
                upto: ids[100],
                matcher: MATCHER_VERSION,
            }),
        ),
    )
    .await;
    for ev in [
        Event::PasswordChanged(PasswordChanged {
            user_id: "bob".into(),
            password_hash: proto::secret::hash_password("password-bob-2"),
        }),
        Event::RoleChanged(RoleChanged {
            user_id: "bob".into(),
            role: Role::Admin,
        }),
        Event::UserDisabled(UserRef {
            user_id: "bob".into(),
        }),
        Event::UserEnabled(UserRef {
            user_id: "bob".into(),
        }),
    ] {
        publish(bus, &Envelope::now(Actor::User("alice".into()), ev)).await;
    }
    publish(
        bus,
        &triage(
            "alice",
            true,
            Triage::Matching(Rule {
                filter: Filter::default(),
                upto: ids[150],
                matcher: MATCHER_VERSION,
            }),
        ),
    )
    .await;
    // An entry for a group the rule just resolved, while its chunks may
    // still be pending: the group regressed, as of the stream.
    ids.push(
        publish(
            bus,
            // Odd length: no fingerprint (see `entry`), so it groups by text.
            &entry(Some(&keys[0]), Level::Warn, "message 9999 disk", now + 999),
        )
        .await,
    );
    crash_projector_midway(bus, path).await;
    ids
}

#[tokio::test]
async fn a_mixed_history_with_crashes_equals_a_fresh_rebuild_row_by_row() {
    let server = NatsServer::start();
    let bus = bus(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.redb");
    let ids = mixed_history(&bus, &path).await;
    let live = catch_up(&bus, &path).await;

    // The history did what it says, so the comparison compares something.
    let d = live.dump().unwrap();
    assert_eq!(d.tables["users"].len(), 2);
    assert_eq!(d.tables["keys"].len(), 3);
    assert_eq!(d.tables["entries"].len(), 201);
    // Every group's row is what its entries derive; the regression is seen.
    assert_eq!(live.group_differences().unwrap(), Vec::<String>::new());
    let regressed: Vec<_> = live
        .all_groups()
        .unwrap()
        .into_iter()
        .filter(|(_, g)| g.regressed)
        .collect();
    assert_eq!(regressed.len(), 1, "{regressed:?}");
    assert_eq!(regressed[0].1.title, "message 9999 disk");
    assert_eq!(regressed[0].1.template, "message <n> disk");
    assert_eq!(regressed[0].1.open_count, 1);
    // Its history: resolved by the rule, regressed by the late entry.
    let history = live.group_history(&regressed[0].0, 10).unwrap();
    let kinds: Vec<_> = history.iter().map(|(_, e)| e.kind.clone()).collect();
    assert_eq!(kinds, [GroupEventKind::Regressed, GroupEventKind::Resolved]);
    assert_eq!(history[0].1.entry_id, Some(*ids.last().unwrap()));
    assert_eq!(history[1].1.by.as_deref(), Some("alice"));
    // Per key token: the fingerprint's group (even-length messages, see
    // `entry`: every "late" one) and the text's, "message <n> disk".
    assert_eq!(d.tables["groups"].len(), 8);
    assert!(d.tables["history"].len() > 60);
    assert!(d.tables["audit"].len() > 20);
    let open = live
        .page(&Query {
            limit: 200,
            ..Default::default()
        })
        .unwrap()
        .entries
        .len();
    assert!(open > 20 && open < 200, "{open} open");

    let (rebuilt, progress) = rebuild_fresh(&bus, dir.path(), "rebuilt.redb").await;
    assert_same(&live, &rebuilt);
    let last = progress.last().unwrap();
    assert!(last.finished);
    assert_eq!(last.done, bus.last_seq().await.unwrap());
    assert_eq!(last.total, last.done);
}

#[tokio::test]
async fn rebuild_until_a_sequence_or_a_time_gives_the_state_then() {
    let server = NatsServer::start();
    let bus = bus(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let t0 = 1_795_514_400_000i64;
    let a = publish(&bus, &entry(Some("k1"), Level::Error, "first", t0)).await;
    let b = publish(&bus, &entry(Some("k1"), Level::Warn, "second", t0 + 60_000)).await;
    let mut resolve = triage("alice", true, Triage::Entry(a));
    resolve.at = t0 + 120_000;
    let r = publish(&bus, &resolve).await;
    publish(&bus, &entry(None, Level::Info, "third", t0 + 180_000)).await;

    let (at_b, summary) = rebuild::build(
        &bus,
        &dir.path().join("b.redb"),
        CACHE,
        Some(Until::Seq(b)),
        &mut |_: &Progress| {},
    )
    .await
    .unwrap();
    assert_eq!(summary.last_seq, b);
    assert_eq!(summary.events, 2);
    assert!(at_b.entry(a).unwrap().unwrap().resolved.is_none());
    assert!(at_b.entry(b + 2).unwrap().is_none());

    // Just before the resolve's time: both entries, nothing resolved.
    let (before, s) = rebuild::build(
        &bus,
        &dir.path().join("t.redb"),
        CACHE,
        Some(Until::parse("2026-11-24T10:01:59Z").unwrap()),
        &mut |_: &Progress| {},
    )
    .await
    .unwrap();
    assert_eq!(s.last_seq, b);
    assert_eq!(before.count(true, Level::Error).unwrap(), 1);
    // At the resolve's time, it is in.
    let (after, s) = rebuild::build(
        &bus,
        &dir.path().join("t2.redb"),
        CACHE,
        Some(Until::Time(t0 + 120_000)),
        &mut |_: &Progress| {},
    )
    .await
    .unwrap();
    assert_eq!(s.last_seq, r);
    assert_eq!(
        after.entry(a).unwrap().unwrap().resolved.unwrap().by,
        "alice"
    );
    assert_eq!(
        after
            .page(&Query {
                resolved: Resolved::All,
                limit: 20,
                ..Default::default()
            })
            .unwrap()
            .entries
            .len(),
        2
    );
}

#[tokio::test]
async fn a_changed_schema_version_is_rebuilt_on_open_with_progress() {
    let server = NatsServer::start();
    let bus = bus(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("projection.redb");
    // Three batches' worth, so progress is reported before the end.
    let n = projector::rebuild::REBUILD_BATCH * 5 / 2;
    // In rounds of 1000 acks in flight (the client holds at most 5000).
    for round in 0..n / 1000 {
        let mut acks = Vec::new();
        for i in round * 1000..(round + 1) * 1000 {
            let env = entry(Some("k1"), Level::ALL[i % 6], &format!("entry {i}"), 1);
            let id = format!("t-{}", rand_id());
            let subject = bus.subjects().entry(Some("k1"));
            acks.push(bus.publish_start(subject, &env, &id).await.unwrap());
        }
        for ack in acks {
            ack.stored().await.unwrap();
        }
    }
    let live = catch_up(&bus, &path).await;
    let before = live.dump().unwrap();
    drop(live);

    // Same version: opened as it is, no rebuild.
    let mut calls = 0;
    let (p, summary) = rebuild::open_or_rebuild(&bus, &path, CACHE, &mut |_: &Progress| calls += 1)
        .await
        .unwrap();
    assert!(summary.is_none());
    assert_eq!(calls, 0);
    drop(p);

    rebuild::set_schema_version(&path, 0).unwrap();
    let mut seen = Vec::new();
    let (p, summary) =
        rebuild::open_or_rebuild(&bus, &path, CACHE, &mut |p: &Progress| seen.push(p.clone()))
            .await
            .unwrap();
    let summary = summary.expect("a rebuild");
    assert_eq!(summary.events, n as u64);
    // Progress after each applied batch but the last, then the end.
    assert!(seen.len() >= 2, "{seen:?}");
    assert!(seen.windows(2).all(|w| w[0].done < w[1].done));
    assert!(seen.last().unwrap().finished);
    assert_eq!(seen[0].total, n as u64);
    assert_eq!(p.dump().unwrap(), before);
    assert!(!rebuild::scratch_path(&path).exists());
    drop(p);
    assert_eq!(
        rebuild::schema_version(&path).unwrap(),
        Some(projector::tables::SCHEMA_VERSION)
    );
}

/// Retention's two events, published the way the pruner does: the old
/// open entries carried (with their history), `Pruned`, the purge. The
/// live projection and a rebuild from the purged stream agree.
#[tokio::test]
async fn carried_and_pruned_leave_the_live_projection_equal_to_a_rebuild() {
    let server = NatsServer::start();
    let bus = bus(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.redb");
    let day = 86_400_000i64;
    let now = proto::clock::now_ms();
    let key = commands::create_key(&bus, KeySpec::described("old service"), Actor::Cli)
        .await
        .unwrap()
        .id
        .to_string();
    let mut old = Vec::new();
    for i in 0..10 {
        let k = (i % 5 != 4).then_some(key.as_str());
        old.push(
            publish(
                &bus,
                &entry(k, Level::Error, &format!("old {i}"), now - 30 * day + i),
            )
            .await,
        );
    }
    // Resolve the even ones; resolve then reopen #1 (it keeps a history).
    for id in old.iter().step_by(2) {
        publish(&bus, &triage("alice", true, Triage::Entry(*id))).await;
    }
    publish(&bus, &triage("alice", true, Triage::Entry(old[1]))).await;
    publish(&bus, &triage("bob", false, Triage::Entry(old[1]))).await;
    let young = publish(&bus, &entry(Some(&key), Level::Warn, "young", now)).await;
    publish(&bus, &triage("alice", true, Triage::Entry(young))).await;
    let live = catch_up(&bus, &path).await;

    let plan = live.retention_plan(now - 7 * day).unwrap().expect("a plan");
    assert_eq!(plan.upto, young);
    assert_eq!(plan.drop, 5);
    assert_eq!(plan.carry.len(), 5);
    let carried_1 = &plan.carry.iter().find(|(_, c)| c.id == old[1]).unwrap().1;
    assert_eq!(carried_1.history.len(), 2);
    for (_, c) in &plan.carry {
        publish(
            &bus,
            &Envelope::now(Actor::System, Event::Carried(c.clone())),
        )
        .await;
    }
    publish(
        &bus,
        &Envelope::now(
            Actor::System,
            Event::Pruned(Pruned {
                upto_seq: plan.upto,
            }),
        ),
    )
    .await;
    let purged = bus
        .purge_below(bus.subjects().all_entries(), plan.upto)
        .await
        .unwrap();
    assert_eq!(purged, 10);
    drop(live);
    let live = catch_up(&bus, &path).await;

    for (i, id) in old.iter().enumerate() {
        assert_eq!(live.entry(*id).unwrap().is_some(), i % 2 == 1, "#{id}");
    }
    assert_eq!(live.history(old[1]).unwrap().len(), 2);
    let k = live.key(&key).unwrap().unwrap();
    assert_eq!(k.entries, 1 + 4); // the young one and the carried keyed ones
    assert_eq!(live.count(false, Level::Error).unwrap(), 5);
    assert!(live.retention_plan(now - 7 * day).unwrap().is_none());

    assert_eq!(live.group_differences().unwrap(), Vec::<String>::new());
    let (rebuilt, _) = rebuild_fresh(&bus, dir.path(), "rebuilt.redb").await;
    assert_same(&live, &rebuilt);

    // A second prune later re-carries what is still open; still equal.
    let plan = live.retention_plan(now + day).unwrap().expect("a plan");
    assert_eq!(plan.carry.len(), 5);
    assert_eq!(plan.drop, 1);
    for (_, c) in &plan.carry {
        publish(
            &bus,
            &Envelope::now(Actor::System, Event::Carried(c.clone())),
        )
        .await;
    }
    publish(
        &bus,
        &Envelope::now(
            Actor::System,
            Event::Pruned(Pruned {
                upto_seq: plan.upto,
            }),
        ),
    )
    .await;
    bus.purge_below(bus.subjects().all_entries(), plan.upto)
        .await
        .unwrap();
    drop(live);
    let live = catch_up(&bus, &path).await;
    assert_eq!(live.key(&key).unwrap().unwrap().entries, 4);
    assert_eq!(live.group_differences().unwrap(), Vec::<String>::new());
    let (rebuilt, _) = rebuild_fresh(&bus, dir.path(), "rebuilt2.redb").await;
    assert_same(&live, &rebuilt);
}

/// The committed fixtures (`proto/tests/fixtures`, written by the first
/// shapes of every event) still apply, with the results they meant.
#[tokio::test]
async fn the_committed_event_fixtures_still_apply() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../proto/tests/fixtures");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".v1.msgpack"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 16);
    let events: Vec<(u64, Envelope)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let bytes = std::fs::read(dir.join(n)).unwrap();
            (i as u64 + 1, Envelope::decode(&bytes).unwrap())
        })
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let p = Projection::open(&tmp.path().join("p.redb"), CACHE).unwrap();
    p.apply(events).unwrap();
    assert_eq!(p.last_applied().unwrap(), 16);
    let user = p.user("alice").unwrap().unwrap();
    assert_eq!(user.role, Role::Member);
    assert!(!user.disabled);
    assert_eq!(user.epoch, 3);
    let rec = p.key("k7f3a9").unwrap().unwrap();
    let key = &rec.key;
    assert_eq!(key.description, "billing");
    assert!(key.active);
    assert_eq!(key.rate_limit, Some(1200));
    assert_eq!(rec.entries, 1);
    // #3 was resolved, reopened, then carried (seq 15) and kept by the
    // prune below 15; #4 (by hand) was resolved by the rule, then pruned.
    let e = p.entry(3).unwrap().unwrap();
    assert_eq!(e.message, "disk almost full");
    assert_eq!(e.meta["mount"], "/var");
    assert!(e.resolved.is_none());
    assert!(p.entry(4).unwrap().is_none());
    assert_eq!(p.count(false, Level::Error).unwrap(), 0);
    assert_eq!(p.count(true, Level::Warn).unwrap(), 1);
}

#[tokio::test]
async fn a_quarantined_event_is_passed_over_live_and_in_every_rebuild() {
    let server = NatsServer::start();
    let bus = bus(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.redb");
    let now = proto::clock::now_ms();
    let before = publish(&bus, &entry(None, Level::Error, "before", now)).await;
    // A damaged event in the middle of the log (a newer minilog's, say).
    let js = async_nats::jetstream::new(bus.client().clone());
    let bad = js
        .publish(bus.subjects().triage(), "\u{1}not an event".into())
        .await
        .unwrap()
        .await
        .unwrap()
        .sequence;
    let after = publish(&bus, &entry(None, Level::Warn, "after", now)).await;

    let pr = Projector::start(bus.clone(), reopen(&path).await)
        .await
        .unwrap();
    let handle = pr.handle();
    let live = pr.projection().clone();
    let task = tokio::spawn(pr.run(std::future::pending()));
    assert!(!handle.wait_for(after).await, "stops at the damaged event");
    assert_eq!(*handle.applied.borrow(), before);
    let projector::Status::Stopped { seq, reason } = handle.status.borrow().clone() else {
        panic!("stopped");
    };
    assert_eq!(seq, bad);
    assert!(
        reason.contains(&format!("minilog events quarantine {bad}")),
        "{reason}"
    );

    // A rebuild stops there too, and says how to go on.
    let refused = rebuild::build(&bus, &dir.path().join("r0.redb"), CACHE, None, &mut |_| {})
        .await
        .err()
        .expect("the rebuild stops at the damaged event");
    assert!(format!("{refused:#}").contains(&format!("event {bad}")));

    // A good event is never quarantined, a missing one neither.
    assert!(matches!(
        commands::quarantine(&bus, after, "", Actor::Cli).await,
        Err(commands::CommandError::Invalid(_))
    ));
    assert!(matches!(
        commands::quarantine(&bus, 10_000, "", Actor::Cli).await,
        Err(commands::CommandError::NotFound(_))
    ));
    let q = commands::quarantine(&bus, bad, "checked: a test's garbage", Actor::Cli)
        .await
        .unwrap();
    let mut status = handle.status.clone();
    status
        .wait_for(|s| *s == projector::Status::Running)
        .await
        .unwrap();
    assert!(
        handle.wait_for(q).await,
        "goes on past the quarantined event"
    );
    let page = live
        .page(&Query {
            resolved: Resolved::All,
            limit: 20,
            ..Default::default()
        })
        .unwrap();
    let ids: Vec<u64> = page.entries.iter().map(|e| e.0).collect();
    assert_eq!(ids, [after, before], "the events around it are applied");
    task.abort();
    let _ = task.await;
    drop(live);

    let (rebuilt, _) = rebuild_fresh(&bus, dir.path(), "rebuilt.redb").await;
    assert_same(&reopen(&path).await, &rebuilt);
    // A projector started afresh passes over it at once too.
    let fresh = catch_up(&bus, &dir.path().join("fresh.redb")).await;
    assert_same(&rebuilt, &fresh);
}
