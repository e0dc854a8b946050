//! The projector against a real nats-server and real redb files.

use projector::{Outcome, Projection, Projector, Query, Resolved};
use proto::Level;
use proto::bus::Bus;
use proto::event::{Actor, Envelope, Event, Logged, Triage};
use proto::filter::Filter;
use testkit::NatsServer;

const CACHE: usize = 4 << 20;

async fn bus(server: &NatsServer) -> Bus {
    testkit::bus(&server.url()).await
}

fn logged(key: &str, level: Level, message: &str) -> Envelope {
    Envelope::now(
        Actor::Key(key.into()),
        Event::Logged(Logged {
            key_id: Some(key.into()),
            ip: Some("127.0.0.1".into()),
            ..Logged::new(level, message)
        }),
    )
}

async fn publish(bus: &Bus, env: &Envelope, id: &str) -> u64 {
    let key = match &env.event {
        Event::Logged(l) => l.key_id.clone(),
        _ => None,
    };
    let subject = match &env.event {
        Event::Logged(_) => bus.subjects().entry(key.as_deref()),
        _ => bus.subjects().triage(),
    };
    bus.publish(subject, env, id).await.unwrap().seq
}

/// Opens the projection, waiting for an aborted projector's last
/// transaction (which runs to its end on a blocking thread) to let go of
/// the file.
async fn reopen(path: &std::path::Path) -> Projection {
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

fn all(limit: usize) -> Query {
    Query {
        resolved: Resolved::All,
        limit,
        ..Default::default()
    }
}

#[tokio::test]
async fn a_filtered_page_reads_about_a_page_of_rows_among_many_non_matching_entries() {
    let dir = tempfile::tempdir().unwrap();
    let p = Projection::open(&dir.path().join("p.redb"), CACHE).unwrap();
    // 30,000 info entries of key k1, and 25 errors of key k2 spread among them.
    let mut events = Vec::new();
    for seq in 1..=30_025u64 {
        let env = if seq % 1200 == 0 {
            logged("k2", Level::Error, "rare")
        } else {
            logged("k1", Level::Info, "common")
        };
        events.push((seq, env));
    }
    p.apply(events).unwrap();

    let by_level = Query {
        filter: Filter {
            levels: vec![Level::Error],
            ..Default::default()
        },
        limit: 20,
        ..Default::default()
    };
    let page = p.page(&by_level).unwrap();
    assert_eq!(page.entries.len(), 20);
    assert!(page.entries.iter().all(|(_, e)| e.level == Level::Error));
    assert!(
        page.rows_read <= 45,
        "read {} rows for a page of 20",
        page.rows_read
    );
    let next = p
        .page(&Query {
            before: page.next_before,
            ..by_level.clone()
        })
        .unwrap();
    assert_eq!(next.entries.len(), 5);
    assert_eq!(next.next_before, None);

    let by_key = Query {
        filter: Filter {
            keys: vec!["k2".into()],
            ..Default::default()
        },
        limit: 20,
        ..Default::default()
    };
    assert!(p.page(&by_key).unwrap().rows_read <= 45);

    // Unfiltered open list: newest first, merged over the level indexes.
    let newest = p
        .page(&Query {
            limit: 20,
            ..Default::default()
        })
        .unwrap();
    let ids: Vec<u64> = newest.entries.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, (30_006..=30_025).rev().collect::<Vec<_>>());
    assert!(newest.rows_read <= 45);
}

#[tokio::test]
async fn resolve_and_unresolve_move_an_entry_between_open_and_done_with_history() {
    let dir = tempfile::tempdir().unwrap();
    let p = Projection::open(&dir.path().join("p.redb"), CACHE).unwrap();
    p.apply(vec![(1, logged("k1", Level::Warn, "disk almost full"))])
        .unwrap();
    let resolve = Envelope::now(
        Actor::User("alice".into()),
        Event::Resolved(Triage::Entry(1)),
    );
    p.apply(vec![(2, resolve)]).unwrap();
    assert_eq!(
        p.page(&Query {
            limit: 20,
            ..Default::default()
        })
        .unwrap()
        .entries
        .len(),
        0
    );
    assert_eq!(p.entry(1).unwrap().unwrap().resolved.unwrap().by, "alice");
    assert_eq!(p.count(true, Level::Warn).unwrap(), 0);
    let undo = Envelope::now(
        Actor::User("bob".into()),
        Event::Unresolved(Triage::Entry(1)),
    );
    p.apply(vec![(3, undo)]).unwrap();
    assert_eq!(
        p.page(&Query {
            limit: 20,
            ..Default::default()
        })
        .unwrap()
        .entries
        .len(),
        1
    );
    let history = p.history(1).unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!((history[0].0, history[1].0), (2, 3));
    assert_eq!(history[1].1.by, "bob");
    assert_eq!(p.count(true, Level::Warn).unwrap(), 1);
    // A replayed event at or below last_applied changes nothing.
    p.apply(vec![(
        3,
        Envelope::now(Actor::User("eve".into()), Event::Resolved(Triage::Entry(1))),
    )])
    .unwrap();
    assert!(p.entry(1).unwrap().unwrap().resolved.is_none());
}

#[tokio::test]
async fn a_projector_killed_between_and_inside_batches_holds_every_event_once() {
    let server = NatsServer::start();
    let bus = bus(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.redb");
    // Enough for several full batches (a catching-up batch holds 2000).
    let total = 20_000u64;
    let mut last = 0;
    // In rounds of 1000: the client holds at most 5000 acks in flight.
    for round in 0..total / 1000 {
        let mut acks = Vec::new();
        for i in round * 1000..(round + 1) * 1000 {
            let env = logged("k1", Level::Error, &format!("entry {i}"));
            let subject = bus.subjects().entry(Some("k1"));
            acks.push(
                bus.publish_start(subject, &env, &format!("m{i}"))
                    .await
                    .unwrap(),
            );
        }
        for ack in acks {
            last = ack.stored().await.unwrap().seq;
        }
    }
    // Drop the projector between batches, a few times.
    for _ in 0..3 {
        let mut pr = Projector::start(bus.clone(), reopen(&path).await)
            .await
            .unwrap();
        assert!(matches!(pr.step().await.unwrap(), Outcome::Applied(_)));
        drop(pr);
    }
    // Abort a running projector at an arbitrary point, twice.
    for _ in 0..2 {
        let pr = Projector::start(bus.clone(), reopen(&path).await)
            .await
            .unwrap();
        let mut applied = pr.handle().applied.clone();
        let task = tokio::spawn(pr.run(std::future::pending()));
        let start = *applied.borrow();
        // Some progress (or the end, if earlier runs got there).
        applied
            .wait_for(|s| *s > start || *s >= last)
            .await
            .unwrap();
        task.abort();
        let _ = task.await;
    }
    // Finish.
    let pr = Projector::start(bus.clone(), reopen(&path).await)
        .await
        .unwrap();
    let handle = pr.handle();
    let p = pr.projection().clone();
    let task = tokio::spawn(pr.run(std::future::pending()));
    assert!(handle.wait_for(last).await);
    task.abort();

    assert_eq!(p.count(false, Level::Error).unwrap(), total);
    let mut seen = 0;
    let mut before = None;
    loop {
        let page = p.page(&Query { before, ..all(200) }).unwrap();
        seen += page.entries.len() as u64;
        match page.next_before {
            Some(b) => before = Some(b),
            None => break,
        }
    }
    assert_eq!(seen, total);
}

#[tokio::test]
async fn an_event_it_cannot_decode_stops_the_projector_at_that_sequence() {
    let server = NatsServer::start();
    let bus = bus(&server).await;
    let good = publish(&bus, &logged("k1", Level::Info, "before"), "a").await;
    let js = async_nats::jetstream::new(bus.client().clone());
    let bad = js
        .publish(bus.subjects().entry(Some("k1")), "not messagepack".into())
        .await
        .unwrap()
        .await
        .unwrap()
        .sequence;
    publish(&bus, &logged("k1", Level::Info, "after"), "b").await;

    let dir = tempfile::tempdir().unwrap();
    let mut pr = Projector::start(
        bus.clone(),
        Projection::open(&dir.path().join("p.redb"), CACHE).unwrap(),
    )
    .await
    .unwrap();
    let handle = pr.handle();
    while !matches!(*handle.status.borrow(), projector::Status::Stopped { .. }) {
        pr.step().await.unwrap();
    }
    assert_eq!(*handle.applied.borrow(), good);
    let projector::Status::Stopped { seq, reason } = handle.status.borrow().clone() else {
        unreachable!()
    };
    assert_eq!(seq, bad);
    assert!(reason.contains(&bad.to_string()), "{reason}");
    assert_eq!(pr.step().await.unwrap(), Outcome::Stopped);
    assert!(!handle.wait_for(bad).await);
}

#[test]
fn a_new_projection_answers_every_read_empty_before_its_first_event() {
    // What the notifier, the groups page and the list's chart read at a
    // first start, before the projector applied anything.
    let dir = tempfile::tempdir().unwrap();
    let p = Projection::open(&dir.path().join("p.redb"), CACHE).unwrap();
    assert!(p.alerts().unwrap().is_empty());
    assert!(p.group("g1").unwrap().is_none());
    assert_eq!(
        p.volume(false, &[], 1_800_000_000_000).unwrap(),
        [[0; 6]; 24]
    );
    assert!(p.users().unwrap().is_empty());
}
