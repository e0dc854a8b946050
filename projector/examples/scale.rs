//! How list pages cost at scale: fills a projection with N `Logged` events
//! (50 keys, levels skewed like real logs), then times page queries.
//!
//! `cargo run --release -p projector --example scale -- 1000000 [batch size, 1000] [groups per key, 1]`
//! (`SCALE_CACHE_MB` sets the redb cache, 16 MiB by default).

use projector::{Projection, Query, Resolved};
use proto::Level;
use proto::event::{Actor, Envelope, Event, Logged};
use proto::filter::Filter;
use std::collections::BTreeMap;
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let n: u64 = std::env::args()
        .nth(1)
        .map_or(Ok(1_000_000), |a| a.parse())?;
    let batch_size: u64 = std::env::args().nth(2).map_or(Ok(1000), |a| a.parse())?;
    // Distinct words per key: each (key, word) is a group.
    let words: u64 = std::env::args().nth(3).map_or(Ok(1), |a| a.parse())?;
    let dir = tempfile::tempdir()?;
    let cache_mb: usize = std::env::var("SCALE_CACHE_MB").map_or(Ok(16), |v| v.parse())?;
    let p = Projection::open(&dir.path().join("scale.redb"), cache_mb << 20)?;
    let started = Instant::now();
    let mut seq = 0;
    while seq < n {
        let batch: Vec<(u64, Envelope)> = (0..batch_size.min(n - seq))
            .map(|_| {
                seq += 1;
                let level = match seq % 1000 {
                    0 => Level::Critical,
                    1..=50 => Level::Error,
                    51..=300 => Level::Warn,
                    _ => Level::Info,
                };
                let key = format!("k{:06}", seq % 50);
                let env = Envelope {
                    at: 1_800_000_000_000 + seq as i64,
                    by: Actor::Key(key.clone()),
                    event: Event::Logged(Logged {
                        key_id: Some(key),
                        level,
                        message: format!(
                            "request {seq} took too long on worker {} for {}",
                            seq % 7,
                            word((seq / 50) % words)
                        ),
                        source: Some("web".into()),
                        time: None,
                        ip: Some("10.0.0.1".into()),
                        meta: BTreeMap::new(),
                        fingerprint: None,
                        added_by: None,
                        untrusted: false,
                        exception: None,
                    }),
                };
                (seq, env)
            })
            .collect();
        // Committed as the projector commits batches of entries.
        p.apply_as(batch, projector::Commit::Deferred)?;
    }
    p.make_durable()?;
    let fill = started.elapsed();
    println!(
        "filled {n} entries in {:.1} s ({:.0} events/s)",
        fill.as_secs_f64(),
        n as f64 / fill.as_secs_f64()
    );
    let cases: Vec<(&str, Query)> = vec![
        (
            "open list, unfiltered",
            Query {
                limit: 20,
                ..Default::default()
            },
        ),
        (
            "all entries, unfiltered",
            Query {
                resolved: Resolved::All,
                limit: 20,
                ..Default::default()
            },
        ),
        (
            "rare level (critical)",
            Query {
                filter: Filter {
                    levels: vec![Level::Critical],
                    ..Default::default()
                },
                limit: 20,
                ..Default::default()
            },
        ),
        (
            "one key among 50",
            Query {
                filter: Filter {
                    keys: vec!["k000007".into()],
                    ..Default::default()
                },
                limit: 20,
                ..Default::default()
            },
        ),
        (
            "key + rare level",
            Query {
                filter: Filter {
                    keys: vec!["k000000".into()],
                    levels: vec![Level::Critical],
                    ..Default::default()
                },
                limit: 20,
                ..Default::default()
            },
        ),
        (
            "deep page (cursor at n/2)",
            Query {
                before: Some(n / 2),
                limit: 20,
                ..Default::default()
            },
        ),
        (
            "text, common term",
            Query {
                filter: Filter {
                    q: Some("worker 3".into()),
                    ..Default::default()
                },
                limit: 20,
                ..Default::default()
            },
        ),
        (
            "text, no match (full scan)",
            Query {
                filter: Filter {
                    q: Some("no such words".into()),
                    ..Default::default()
                },
                limit: 20,
                ..Default::default()
            },
        ),
    ];
    println!("| query | p50 | p99 | rows read |");
    println!("|---|---|---|---|");
    for (name, q) in cases {
        let runs = if name.contains("full scan") { 5 } else { 200 };
        let mut times = Vec::new();
        let mut rows = 0;
        for _ in 0..runs {
            let t = Instant::now();
            let page = p.page(&q)?;
            times.push(t.elapsed());
            rows = page.rows_read;
        }
        times.sort();
        let p50 = times[times.len() / 2];
        let p99 = times[(times.len() * 99 / 100).min(times.len() - 1)];
        println!(
            "| {name} | {:.2} ms | {:.2} ms | {rows} |",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3
        );
    }
    let mut times = Vec::new();
    for i in 0..1000u64 {
        let t = Instant::now();
        p.entry(1 + (i * 7919) % n)?;
        p.history(1 + (i * 7919) % n)?;
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "| entry + history | {:.3} ms | {:.3} ms | 1 + history |",
        times[500].as_secs_f64() * 1e3,
        times[990].as_secs_f64() * 1e3
    );
    Ok(())
}

/// Four letters, a different word for each `n` below 26⁴.
fn word(n: u64) -> String {
    (0..4)
        .map(|d| char::from(b'a' + ((n / 26u64.pow(d)) % 26) as u8))
        .collect()
}
