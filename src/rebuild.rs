//! `minilog rebuild`: the projection rebuilt from the stream, or the state
//! as it was at a sequence or time into another file (`--until --out`);
//! and the progress display every rebuild uses (also the schema-version
//! rebuild on start): a bar on a terminal, plain lines otherwise.
//!
//! Rebuilding DATA/projection.redb refuses while a `serve` or `view` has
//! it open (redb locks the file): stop the server first. The rebuild fills
//! `projection.redb.rebuild` beside the old file and renames it over the
//! old one only when complete, so an interrupted rebuild changes nothing.

use crate::config::RebuildArgs;
use crate::embedded::{self, Embedded};
use anyhow::Context;
use projector::rebuild::{self, Progress, Until};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// Draws rebuild progress on stderr: a bar redrawn in place on a
/// terminal, else a plain line at most every second (and the last one).
pub fn reporter(label: &str) -> impl FnMut(&Progress) + Send + use<> {
    let label = label.to_owned();
    let tty = std::io::stderr().is_terminal();
    let every = if tty {
        Duration::from_millis(100)
    } else {
        Duration::from_secs(1)
    };
    let mut last: Option<Instant> = None;
    move |p: &Progress| {
        let now = Instant::now();
        if !p.finished && last.is_some_and(|t| now - t < every) {
            return;
        }
        last = Some(now);
        if tty {
            eprint!("\r\x1b[2K{label}: {} {}", bar(p.done, p.total), line(p));
            if p.finished {
                eprintln!();
            }
        } else {
            eprintln!("{label}: {}", line(p));
        }
    }
}

/// `[#######.......]`: `done` of `total` as a bar of 30 (full when `total` is 0).
pub fn bar(done: u64, total: u64) -> String {
    const WIDTH: u64 = 30;
    let filled = (done.min(total) * WIDTH)
        .checked_div(total)
        .unwrap_or(WIDTH);
    format!(
        "[{}{}]",
        "#".repeat(filled as usize),
        ".".repeat((WIDTH - filled) as usize)
    )
}

/// `1200/5000 events (24%), 35000 events/s, ETA 0.1 s`, or the summary.
pub fn line(p: &Progress) -> String {
    if p.finished {
        return format!(
            "done, {} events in {:.1} s ({:.0} events/s), applied up to sequence {}",
            p.done,
            p.elapsed.as_secs_f64(),
            p.rate(),
            p.seq
        );
    }
    let pct = (p.done * 100).checked_div(p.total).unwrap_or(100);
    let eta = p
        .eta()
        .map_or_else(|| "?".to_owned(), |d| format!("{:.1} s", d.as_secs_f64()));
    format!(
        "{}/{} events ({pct}%), {:.0} events/s, ETA {eta}",
        p.done,
        p.total,
        p.rate()
    )
}

pub async fn rebuild(args: RebuildArgs) -> anyhow::Result<()> {
    let until = args
        .until
        .as_deref()
        .map(Until::parse)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--until: {e}"))?;
    let default_db = crate::paths::DataDir(&args.nats.data).projection();
    let target = args.out.clone().unwrap_or_else(|| default_db.clone());
    rebuild::ensure_not_in_use(&target)?;

    // NATS: the flag; else a running server's (its projection is locked);
    // else the data directory's own store, served for the rebuild.
    let server_running = rebuild::ensure_not_in_use(&default_db).is_err();
    let (bus, embedded) = if args.nats.nats_url.is_some() || server_running {
        (
            crate::connect::connect(&args.nats, "minilog rebuild", None).await?,
            None,
        )
    } else {
        let store = crate::paths::DataDir(&args.nats.data)
            .nats_dir()
            .join("store");
        anyhow::ensure!(
            store.exists(),
            "no event log under {} (no {}): pass --nats-url, or the --data of a `minilog serve`",
            args.nats.data.display(),
            store.display()
        );
        let bin = embedded::find_binary(args.nats_server_bin.as_deref())?;
        let e = Embedded::start(
            &args.nats.data,
            bin,
            &args.nats.subject_prefix,
            None,
            crate::embedded::DEFAULT_SYNC,
        )
        .await?;
        let bus = crate::connect::connect(&args.nats, "minilog rebuild", Some(&e)).await?;
        (bus, Some(e))
    };

    let label = match until {
        None => "rebuild".to_owned(),
        Some(Until::Seq(n)) => format!("rebuild up to sequence {n}"),
        Some(Until::Time(t)) => format!("rebuild up to {}", proto::clock::rfc3339(t)),
    };
    let mut progress = reporter(&label);
    let cache = args.cache_mb << 20;
    let result = if until.is_none() {
        rebuild::rebuild_file(&bus, &target, cache, &mut progress).await
    } else {
        // Fill beside, then rename: an interrupted rebuild leaves no half file.
        let scratch = rebuild::scratch_path(&target);
        match rebuild::build(&bus, &scratch, cache, until, &mut progress).await {
            Ok((p, summary)) => {
                drop(p);
                std::fs::rename(&scratch, &target)
                    .with_context(|| format!("writing {}", target.display()))
                    .map(|_| summary)
            }
            Err(e) => Err(e),
        }
    };
    if let Some(e) = embedded {
        e.stop().await;
    }
    let summary = result?;
    println!(
        "rebuilt {}: {} events, up to sequence {}, in {:.1} s",
        target.display(),
        summary.events,
        summary.last_seq,
        summary.elapsed.as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_say_done_total_rate_and_eta() {
        let mut p = Progress {
            done: 250,
            total: 1000,
            seq: 260,
            elapsed: Duration::from_secs(1),
            finished: false,
        };
        assert_eq!(line(&p), "250/1000 events (25%), 250 events/s, ETA 3.0 s");
        assert_eq!(
            bar(p.done, p.total),
            format!("[{}{}]", "#".repeat(7), ".".repeat(23))
        );
        p.finished = true;
        assert!(line(&p).starts_with("done, 250 events in 1.0 s"));
    }
}
