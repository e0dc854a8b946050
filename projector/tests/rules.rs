//! Resolve-all rules are applied in chunks, other events in between, and
//! the result is exactly what applying them at their place would give.

use projector::{Outcome, Projection, Projector, Query, Resolved};
use proto::Level;
use proto::event::{Actor, Envelope, Event, Logged, Rule, Triage};
use proto::filter::{Filter, MATCHER_VERSION};

fn logged(level: Level, message: &str) -> Envelope {
    Envelope {
        at: 1_000,
        by: Actor::Key("k1".into()),
        event: Event::Logged(Logged {
            key_id: Some("k1".into()),
            ..Logged::new(level, message)
        }),
    }
}

fn by(user: &str, at: i64, event: Event) -> Envelope {
    Envelope {
        at,
        by: Actor::User(user.into()),
        event,
    }
}

fn resolve_errors_upto(upto: u64) -> Event {
    Event::Resolved(Triage::Matching(Rule {
        filter: Filter {
            levels: vec![Level::Error],
            ..Default::default()
        },
        upto,
        matcher: MATCHER_VERSION,
    }))
}

fn open_ids(p: &Projection) -> Vec<u64> {
    p.page(&Query {
        resolved: Resolved::Open,
        limit: 1000,
        ..Default::default()
    })
    .unwrap()
    .entries
    .into_iter()
    .map(|(id, _)| id)
    .collect()
}

const N: u64 = 100_000;

/// The events after the entries: the rule, then (while it is still being
/// applied) a late entry, an unresolve of an entry the rule has not
/// reached, and a resolve of one it has.
fn tail() -> Vec<(u64, Envelope)> {
    vec![
        (N + 1, by("alice", 2_000, resolve_errors_upto(N))),
        (N + 2, logged(Level::Error, "arrived after the rule")),
        (
            N + 3,
            by("bob", 3_000, Event::Unresolved(Triage::Entry(51))),
        ),
        (
            N + 4,
            by("carol", 4_000, Event::Resolved(Triage::Entry(N - 1))),
        ),
    ]
}

fn fill(p: &Projection) {
    for start in (1..=N).step_by(20_000) {
        let batch = (start..start + 20_000)
            .map(|seq| {
                (
                    seq,
                    logged(
                        if seq % 10 == 0 {
                            Level::Info
                        } else {
                            Level::Error
                        },
                        "disk failing",
                    ),
                )
            })
            .collect();
        p.apply(batch).unwrap();
    }
}

#[test]
fn a_rule_over_100k_entries_is_applied_in_chunks_between_other_events_and_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let p = Projection::open(&dir.path().join("chunked.redb"), 16 << 20).unwrap();
    fill(&p);
    let mut rest = tail().into_iter();
    p.apply(vec![rest.next().unwrap()]).unwrap();
    assert_eq!(p.oldest_pending_rule().unwrap(), Some(N + 1));
    assert_eq!(
        p.settled().unwrap(),
        N,
        "the rule's effects are not complete yet"
    );
    assert!(
        p.apply_rule_chunk(5000).unwrap(),
        "one chunk does not finish it"
    );
    // Other events go in between chunks.
    p.apply(rest.collect()).unwrap();
    assert_eq!(p.last_applied().unwrap(), N + 4);
    let mut chunks = 1;
    while p.apply_rule_chunk(5000).unwrap() {
        chunks += 1;
    }
    assert!(chunks >= 19, "applied in {chunks} chunks");
    assert_eq!(p.settled().unwrap(), N + 4);

    // Exactly as if the rule had been applied at once, at its place.
    let dir2 = tempfile::tempdir().unwrap();
    let at_once = Projection::open(&dir2.path().join("at_once.redb"), 16 << 20).unwrap();
    fill(&at_once);
    for ev in tail() {
        at_once.apply(vec![ev]).unwrap();
        while at_once.apply_rule_chunk(usize::MAX).unwrap() {}
    }
    let mut open = open_ids(&p);
    open.sort();
    assert_eq!(
        open,
        open_ids(&at_once).into_iter().rev().collect::<Vec<_>>()
    );
    // The info entries, entry 51 (reopened by bob) and the late entry.
    assert_eq!(p.count(true, Level::Error).unwrap(), 2);
    assert_eq!(p.count(true, Level::Info).unwrap(), N / 10);
    assert!(p.entry(51).unwrap().unwrap().resolved.is_none());
    assert!(p.entry(N + 2).unwrap().unwrap().resolved.is_none());
    let h51 = p.history(51).unwrap();
    assert_eq!(h51.len(), 2);
    assert_eq!((h51[0].0, h51[0].1.by.as_str()), (N + 1, "alice"));
    assert_eq!((h51[1].0, h51[1].1.by.as_str()), (N + 3, "bob"));
    // Already resolved by the rule when carol's resolve came: no change.
    let h = p.history(N - 1).unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].1.by, "alice");
    assert_eq!(
        p.entry(N - 3).unwrap().unwrap().resolved.unwrap().by,
        "alice"
    );
    for id in [1, 1234, 77_777] {
        assert_eq!(p.history(id).unwrap(), at_once.history(id).unwrap());
        assert_eq!(p.entry(id).unwrap(), at_once.entry(id).unwrap());
    }
}

#[tokio::test]
async fn the_projector_keeps_applying_new_events_while_a_rule_is_in_chunks() {
    let server = testkit::NatsServer::start();
    let bus = testkit::bus(&server.url()).await;
    let mut pending = Vec::new();
    for i in 0..2000 {
        let env = logged(Level::Error, &format!("entry {i}"));
        pending.push(
            bus.publish_start(bus.subjects().entry(Some("k1")), &env, &format!("e{i}"))
                .await
                .unwrap(),
        );
    }
    let mut last_entry = 0;
    for p in pending {
        last_entry = p.stored().await.unwrap().seq;
    }
    let rule = bus
        .publish(
            bus.subjects().triage(),
            &by("alice", 1, resolve_errors_upto(last_entry)),
            "rule",
        )
        .await
        .unwrap()
        .seq;
    let dir = tempfile::tempdir().unwrap();
    let projection = Projection::open(&dir.path().join("p.redb"), 4 << 20).unwrap();
    let mut pr = Projector::start(bus.clone(), projection.clone())
        .await
        .unwrap()
        .with_rule_chunk(100);
    let handle = pr.handle();
    while *handle.applied.borrow() < rule {
        pr.step().await.unwrap();
    }
    assert_eq!(*handle.settled.borrow(), rule - 1);
    // A new entry while the rule is being applied: it is applied within a
    // chunk or two, long before the rule finishes.
    let late = bus
        .publish(
            bus.subjects().entry(Some("k1")),
            &logged(Level::Error, "late"),
            "late",
        )
        .await
        .unwrap()
        .seq;
    let mut steps = 0;
    while *handle.applied.borrow() < late {
        assert!(matches!(pr.step().await.unwrap(), Outcome::Applied(_)));
        steps += 1;
        assert!(steps < 5, "the late entry waited for the whole rule");
    }
    assert!(
        projection.oldest_pending_rule().unwrap().is_some(),
        "the rule is still in chunks"
    );
    assert!(
        *handle.settled.borrow() < late,
        "settled waits for the rule"
    );
    while projection.oldest_pending_rule().unwrap().is_some() {
        pr.step().await.unwrap();
    }
    assert_eq!(*handle.settled.borrow(), late);
    assert_eq!(
        projection.count(true, Level::Error).unwrap(),
        1,
        "only the late entry is open"
    );
}
