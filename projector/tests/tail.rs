//! The live tail's read ([`Projection::tail_after`]) on a real redb file:
//! bounded steps, oldest first, every match once, whatever the filter.

use projector::Projection;
use proto::Level;
use proto::event::{Actor, Envelope, Event, Logged};
use proto::filter::Filter;

fn logged(key: &str, level: Level, message: &str) -> Envelope {
    Envelope::now(
        Actor::Key(key.into()),
        Event::Logged(Logged {
            key_id: Some(key.into()),
            ..Logged::new(level, message)
        }),
    )
}

/// 6,000 info entries of k1; every 500th an error of k2 saying "disk".
fn projection(dir: &std::path::Path) -> Projection {
    let p = Projection::open(&dir.join("p.redb"), 4 << 20).unwrap();
    let events = (1..=6_000u64)
        .map(|seq| {
            let env = if seq % 500 == 0 {
                logged("k2", Level::Error, &format!("disk {seq} full"))
            } else {
                logged("k1", Level::Info, "routine work")
            };
            (seq, env)
        })
        .collect();
    p.apply(events).unwrap();
    p
}

/// Every step from `after` to `upto`: the ids found, and the most rows
/// one step read.
fn follow(p: &Projection, f: &Filter, after: u64, upto: u64, rows: u64) -> (Vec<u64>, u64) {
    let (mut ids, mut most, mut cursor) = (Vec::new(), 0, after);
    while cursor < upto {
        let step = p.tail_after(f, cursor, upto, rows, 200).unwrap();
        assert!(step.scanned_to > cursor, "every step gets further");
        assert!(step.scanned_to <= upto);
        most = most.max(step.rows_read);
        ids.extend(step.entries.iter().map(|(id, _)| *id));
        cursor = step.scanned_to;
    }
    (ids, most)
}

#[test]
fn every_filter_gets_each_match_once_in_order_in_bounded_steps() {
    let dir = tempfile::tempdir().unwrap();
    let p = projection(dir.path());
    let errors: Vec<u64> = (1..=12).map(|i| i * 500).collect();
    for filter in [
        Filter {
            q: Some("DISK".into()),
            ..Default::default()
        },
        Filter {
            levels: vec![Level::Error, Level::Critical],
            ..Default::default()
        },
        Filter {
            keys: vec!["k2".into(), "hand".into()],
            ..Default::default()
        },
    ] {
        let (ids, most) = follow(&p, &filter, 0, 6_000, 1_000);
        assert_eq!(ids, errors, "{filter:?}");
        assert!(most <= 1_000, "{filter:?}: a step read {most} rows");
    }
    // From an id, up to another: only those between.
    let text = Filter {
        q: Some("disk".into()),
        ..Default::default()
    };
    assert_eq!(
        follow(&p, &text, 1_000, 2_500, 300).0,
        vec![1_500, 2_000, 2_500]
    );
    // A level filter reads its index, not the 6,000 rows.
    let by_level = Filter {
        levels: vec![Level::Error],
        ..Default::default()
    };
    let step = p.tail_after(&by_level, 0, 6_000, 10_000, 200).unwrap();
    assert_eq!(step.entries.len(), 12);
    assert_eq!(step.scanned_to, 6_000);
    assert!(step.rows_read <= 24, "read {}", step.rows_read);
    // At most `max_entries` per step, and the cursor at the last one.
    let all = Filter::default();
    let step = p.tail_after(&all, 10, 6_000, 10_000, 200).unwrap();
    assert_eq!(step.entries.len(), 200);
    assert_eq!(step.scanned_to, 210);
    assert_eq!(step.entries.first().unwrap().0, 11);

    // A group's entries: the group of the first error.
    let group = step_group(&p, 500);
    let of_group = Filter {
        group: Some(group),
        ..Default::default()
    };
    let found = follow(&p, &of_group, 0, 6_000, 1_000).0;
    assert!(found.contains(&500));
    assert!(found.iter().all(|id| errors.contains(id)));

    // Nothing to read, or a range that is already behind.
    for (after, upto) in [(6_000, 6_000), (7_000, 6_000), (u64::MAX, 6_000)] {
        let s = p.tail_after(&all, after, upto, 100, 10).unwrap();
        assert!(s.entries.is_empty());
        assert_eq!(s.scanned_to, after);
    }
    // Beyond the applied entries there is nothing yet.
    let s = p.tail_after(&all, 5_999, u64::MAX, 100, 10).unwrap();
    assert_eq!(s.entries.iter().map(|e| e.0).collect::<Vec<_>>(), [6_000]);
}

fn step_group(p: &Projection, id: u64) -> String {
    p.entry(id).unwrap().unwrap().group
}
