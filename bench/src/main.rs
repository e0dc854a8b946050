//! `minilog-bench`: the benchmark behind `make bench` and `make bench-quick`.
//!
//! Starts its own nats-server and `minilog serve` (release build) on free
//! loopback ports, measures each figure of issue 6 beside a ceiling taken in
//! the same run, prints one markdown table and writes it to
//! `target/bench/report.md`. Every process it starts is stopped when it
//! ends, also on errors.

mod hey;
mod http;
mod procs;
mod report;
mod stream;

use anyhow::{Context, bail};
use clap::Parser;
use hey::{Body, Load};
use procs::{Mem, Proc};
use projector::{Query, Resolved};
use proto::Level;
use proto::bus::{Bus, NatsAuth, NatsConfig};
use proto::filter::Filter;
use proto::subjects::Subjects;
use report::{Row, ms, pct, thousands, times};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(about = "minilog's benchmark: each figure beside its same-run ceiling")]
struct Args {
    /// Smaller counts, for a quick look (a minute or two).
    #[arg(long)]
    quick: bool,
    /// Events to put in the stream (default 1,000,000; 100,000 with --quick).
    #[arg(long)]
    events: Option<u64>,
    /// The minilog binary (a release build).
    #[arg(long, env = "MINILOG_BIN", default_value = "target/release/minilog")]
    minilog: PathBuf,
    /// nats-server >= 2.10 (default: what scripts/ensure-nats.sh finds or installs).
    #[arg(long, env = "MINILOG_NATS_SERVER_BIN")]
    nats_server: Option<PathBuf>,
    /// Where the report and the run's data go.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
    /// Keep the run's data (stream store, projections, logs) afterwards.
    #[arg(long)]
    keep: bool,
    /// The nats-server's JetStream `sync_interval` (`always`, `1s`, …, or
    /// `default`); minilog's embedded server uses `--nats-sync`'s default.
    #[arg(long, default_value = "1s")]
    nats_sync: String,
}

/// Counts of one run.
#[derive(Clone, Debug)]
struct Plan {
    events: u64,
    /// Requests per `hey` run at c=16 and c=64; `http_n_c1` at c=1.
    http_n: u64,
    http_n_c1: u64,
    batches: u64,
    batch_c: u64,
    e2e_rate: u64,
    e2e_secs: u64,
    dash_n: u64,
    dash_slow_n: u64,
    healthz_n: u64,
}

impl Plan {
    fn new(quick: bool, events: Option<u64>) -> Plan {
        let mut p = if quick {
            Plan {
                events: 100_000,
                http_n: 3000,
                http_n_c1: 1500,
                batches: 64,
                batch_c: 4,
                e2e_rate: 1000,
                e2e_secs: 3,
                dash_n: 100,
                dash_slow_n: 3,
                healthz_n: 500,
            }
        } else {
            Plan {
                events: 1_000_000,
                http_n: 20_000,
                http_n_c1: 10_000,
                batches: 200,
                batch_c: 4,
                e2e_rate: 1000,
                e2e_secs: 10,
                dash_n: 500,
                dash_slow_n: 10,
                healthz_n: 2000,
            }
        };
        if let Some(n) = events {
            p.events = n;
        }
        p
    }

    /// Size-dependent targets (stated for 1M entries) are judged only at 1M.
    fn judge_size(&self) -> bool {
        self.events >= 1_000_000
    }
}

const ADMIN: &str = "admin";
const ADMIN_PASSWORD: &str = "bench-admin-password-0123";
const CACHE_BYTES: usize = 16 << 20;
const WINDOW: usize = 1024;
/// Each HTTP ingest figure and its ceiling are measured this often,
/// interleaved; the table shows the run with the median rate.
const HTTP_REPEATS: usize = 3;

fn median(mut runs: Vec<hey::HeyResult>) -> hey::HeyResult {
    runs.sort_by(|a, b| a.rps.total_cmp(&b.rps));
    runs.swap_remove(runs.len() / 2)
}

/// What goes into the report besides the table.
#[derive(Default)]
struct Out {
    rows: Vec<Row>,
    notes: Vec<String>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let plan = Plan::new(args.quick, args.events);
    let started = Instant::now();
    let header = header(&args, &plan);
    let mut out = Out::default();
    let result = tokio::select! {
        r = run(&args, &plan, &mut out) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    let mut text = header;
    text.push_str(&format!(
        "- run took {:.0} s; load average at the end: {}\n\n",
        started.elapsed().as_secs_f64(),
        loadavg()
    ));
    text.push_str(&report::table(&out.rows));
    if !out.notes.is_empty() {
        text.push_str("\nNotes:\n");
        for n in &out.notes {
            text.push_str(&format!("- {n}\n"));
        }
    }
    if let Err(e) = &result {
        text.push_str(&format!("\n**The run failed:** {e:#}\n"));
    }
    println!("\n{text}");
    let path = args.out.join("report.md");
    if let Err(e) = std::fs::create_dir_all(&args.out).and_then(|_| std::fs::write(&path, &text)) {
        eprintln!("writing {}: {e}", path.display());
        return std::process::ExitCode::FAILURE;
    }
    eprintln!("report written to {}", path.display());
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn sh(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn header(args: &Args, plan: &Plan) -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let commit = sh("git", &["rev-parse", "--short", "HEAD"]);
    let dirty = !sh("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty();
    format!(
        "# minilog benchmark ({mode})\n\n\
         - command: `{cmd}`\n\
         - date: {date}\n\
         - machine: {cores} cores ({cpu}); load average at the start: {load}\n\
         - minilog: commit {commit}{dirty}, release build; load generator: `hey` ({hey}, Debian)\n\
         - {events} `Logged` events put in the stream for the projector, rebuild and read figures\n",
        mode = if args.quick { "quick" } else { "full" },
        cmd = if args.quick {
            "make bench-quick"
        } else {
            "make bench"
        },
        date = sh("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        load = loadavg(),
        dirty = if dirty {
            " with uncommitted changes"
        } else {
            ""
        },
        hey = sh("dpkg-query", &["-W", "-f", "${Version}", "hey"]),
        events = thousands(plan.events as f64),
    )
}

fn nats_bin(args: &Args) -> anyhow::Result<PathBuf> {
    if let Some(p) = &args.nats_server {
        return Ok(p.clone());
    }
    let out = Command::new("scripts/ensure-nats.sh")
        .output()
        .context("running scripts/ensure-nats.sh (run from the workspace root)")?;
    anyhow::ensure!(out.status.success(), "scripts/ensure-nats.sh failed");
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

fn start_serve(
    minilog: &Path,
    nats_url: &str,
    data: &Path,
    port: u16,
    log: &Path,
) -> anyhow::Result<Proc> {
    let mut cmd = Command::new(minilog);
    cmd.arg("serve")
        .arg("--nats-url")
        .arg(nats_url)
        .arg("--data")
        .arg(data)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .env("MINILOG_ADMIN_PASSWORD", ADMIN_PASSWORD)
        // The benchmark's key sends far more than a real one may.
        .env("MINILOG_RATE_LIMIT", "1000000000")
        .env("MINILOG_CACHE_MB", (CACHE_BYTES >> 20).to_string())
        .env("MINILOG_LOG", "warn,async_nats=error");
    Proc::spawn("minilog serve", cmd, log)
}

fn create_key(minilog: &Path, nats_url: &str, data: &Path) -> anyhow::Result<String> {
    let out = Command::new(minilog)
        .args(["key", "create", "--description", "benchmark", "--json"])
        .args([
            "--rate-limit",
            "1000000000",
            "--nats-url",
            nats_url,
            "--data",
        ])
        .arg(data)
        .output()
        .context("running minilog key create")?;
    anyhow::ensure!(
        out.status.success(),
        "minilog key create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("reading {:?}", String::from_utf8_lossy(&out.stdout)))?;
    Ok(v["secret"]
        .as_str()
        .context("no secret in key create's answer")?
        .to_owned())
}

fn mib(m: f64) -> String {
    format!("{m:.1} MiB")
}

fn rate(events: u64, took: Duration) -> f64 {
    events as f64 / took.as_secs_f64().max(1e-9)
}

/// Waits until `serve` has applied everything in the stream.
async fn settle(c: &reqwest::Client, base: &str, bus: &Bus) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let last = bus.last_seq().await?;
        let r = c
            .get(format!("{base}/api/v1/entries?min_seq={last}&limit=1"))
            .basic_auth(ADMIN, Some(ADMIN_PASSWORD))
            .send()
            .await?;
        if r.status().is_success() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("serve did not apply sequence {last} within 300 s");
        }
    }
}

/// A read figure's row: p50/p99 beside `/healthz`'s, judged against
/// 10 ms (300 ms for a search that reads everything).
fn read_row(
    figure: String,
    (p50, p99): (Duration, Duration),
    (h50, h99): (Duration, Duration),
    full_search: bool,
    judge: bool,
) -> Row {
    let (limit, text) = if full_search {
        (Duration::from_millis(300), "p99 ≤ 300 ms")
    } else {
        (Duration::from_millis(10), "p99 ≤ 10 ms")
    };
    Row::new(figure, lat(p50, p99))
        .ceiling(
            format!("`GET /healthz` {}", lat(h50, h99)),
            times(p99.as_secs_f64() / h99.as_secs_f64()),
        )
        .target(text, judge.then_some(p99 <= limit))
}

fn lat(p50: Duration, p99: Duration) -> String {
    format!("p50 {} · p99 {}", ms(p50), ms(p99))
}

fn failures(r: &hey::HeyResult) -> String {
    if r.all_ok() {
        String::new()
    } else {
        format!(
            " **({} of {} not 200: {})**",
            r.n - r.ok,
            r.n,
            r.other.join("; ")
        )
    }
}

async fn run(args: &Args, plan: &Plan, out: &mut Out) -> anyhow::Result<()> {
    let n = plan.events;
    let judge = plan.judge_size();
    anyhow::ensure!(
        args.minilog.exists(),
        "{} not found: build it first (cargo build --release --bin minilog)",
        args.minilog.display()
    );
    let nats_bin = nats_bin(args)?;
    let work = args.out.join("run");
    if work.exists() {
        std::fs::remove_dir_all(&work).with_context(|| format!("clearing {}", work.display()))?;
    }
    std::fs::create_dir_all(&work)?;
    let data = work.join("data");
    eprintln!(
        "bench: {} events; nats-server {}; data in {}",
        thousands(n as f64),
        procs::nats_version(&nats_bin),
        work.display()
    );

    // 1. nats-server and a first `minilog serve`: idle memory, a key.
    let (mut nats, nats_url) = procs::start_nats(&nats_bin, &work.join("nats"), &args.nats_sync)?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let nats_idle = nats.mem()?;
    let port = procs::free_port()?;
    let base = format!("http://127.0.0.1:{port}");
    let c = http::client()?;
    let mut serve = start_serve(
        &args.minilog,
        &nats_url,
        &data,
        port,
        &work.join("serve-1.log"),
    )?;
    http::wait_ready(&c, &base, Duration::from_secs(60), &mut || {
        serve.check_alive()
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let serve_idle = serve.mem()?;
    let secret = create_key(&args.minilog, &nats_url, &data)?;
    http::wait_key(&c, &base, &secret, Duration::from_secs(30)).await?;
    serve.stop();
    eprintln!("bench: idle memory taken, key created; serve stopped for the stream phases");

    // 2. The million, straight into the stream (serve stopped: no consumer competes).
    let bus = Bus::connect(
        &NatsConfig {
            url: nats_url.clone(),
            auth: NatsAuth::None,
            name: "minilog-bench".into(),
        },
        Subjects::default(),
    )
    .await?;
    let (fill_t, last) = stream::publish_many(&bus, 1, n, WINDOW, "fill").await?;
    let first_id = last + 1 - n;
    eprintln!("bench: filled {n} in {fill_t:.1?}");
    out.rows.push(
        Row::new(
            format!(
                "Fill: raw JetStream publish of {} `Logged`, {WINDOW} acks in flight (runner, serve stopped)",
                thousands(n as f64)
            ),
            format!("{} events/s", thousands(rate(n, fill_t))),
        )
        .target("(how the data gets in)", None),
    );

    // 3. Projector vs the raw read of the same stream and a raw redb write.
    let (read_t, read_n) = stream::raw_read(&bus, last).await?;
    let read_rate = rate(read_n, read_t);
    eprintln!("bench: raw read {read_n} in {read_t:.1?}");
    let stream::Projected {
        elapsed: proj_t,
        projection,
        batches: proj_batches,
    } = stream::project(
        &bus,
        &work.join("projector.redb"),
        CACHE_BYTES,
        last,
        Duration::from_secs(900),
    )
    .await?;
    let proj_rate = rate(last, proj_t);
    eprintln!("bench: projector applied {last} in {proj_t:.1?}");
    let mean_batch = (last / proj_batches.max(1)).max(1);
    let raw_path = work.join("raw.redb");
    let (redb_t, redb_rows) = tokio::task::spawn_blocking(move || {
        stream::raw_redb_write(&raw_path, CACHE_BYTES, n, 1000)
    })
    .await??;
    let redb_rate = rate(n, redb_t);
    eprintln!("bench: raw redb write of {redb_rows} rows in {redb_t:.1?}");
    // The same rows in transactions of the projector's mean batch size.
    let small_path = work.join("raw-small.redb");
    let (small_t, _) = tokio::task::spawn_blocking(move || {
        stream::raw_redb_write(&small_path, CACHE_BYTES, n, mean_batch)
    })
    .await??;
    let small_rate = rate(n, small_t);
    eprintln!("bench: raw redb write in batches of {mean_batch}: {small_t:.1?}");
    out.rows.push(
        Row::new(
            format!(
                "Projector: apply {} events in-process (empty redb, 16 MiB cache)",
                thousands(last as f64)
            ),
            format!(
                "{} events/s ({:.1} s)",
                thousands(proj_rate),
                proj_t.as_secs_f64()
            ),
        )
        .ceiling(
            format!(
                "raw ordered-consumer read: {} events/s",
                thousands(read_rate)
            ),
            pct(proj_rate / read_rate),
        )
        .target("≥ 100,000 events/s", Some(proj_rate >= 100_000.0)),
    );
    out.rows.push(
        Row::new(
            "Projector vs a raw redb write of the same rows",
            format!("{} events/s", thousands(proj_rate)),
        )
        .ceiling(
            format!(
                "raw redb write: {} events/s ({} rows/s, 1000 events per transaction)",
                thousands(redb_rate),
                thousands(rate(redb_rows, redb_t))
            ),
            pct(proj_rate / redb_rate),
        ),
    );
    out.rows.push(
        Row::new(
            format!(
                "Projector batches: {} write transactions, {} events each on average",
                thousands(proj_batches as f64),
                thousands(mean_batch as f64)
            ),
            format!("{} events/s", thousands(proj_rate)),
        )
        .ceiling(
            format!(
                "raw redb write of the same rows, {} events per transaction: {} events/s",
                thousands(mean_batch as f64),
                thousands(small_rate)
            ),
            pct(proj_rate / small_rate),
        ),
    );
    out.notes.push(format!(
        "Raw redb write: per event the entry row and its four index rows (level/key × all/open), \
         the counters summed per transaction, `last_applied`; {} rows for {} events, written into \
         the projector's own table definitions with the same cache size and the projector's commit policy (no fsync but once a second, and at the end).",
        thousands(redb_rows as f64),
        thousands(n as f64)
    ));

    // 4. `minilog rebuild`, if this build has it.
    let help = sh(&args.minilog.to_string_lossy(), &["--help"]);
    let has_rebuild = help.lines().any(|l| l.trim_start().starts_with("rebuild"));
    if has_rebuild {
        let out_file = work.join("rebuilt.redb");
        let t = Instant::now();
        let r = tokio::process::Command::new(&args.minilog)
            .args(["rebuild", "--nats-url", &nats_url, "--data"])
            .arg(&data)
            .arg("--out")
            .arg(&out_file)
            .env("MINILOG_CACHE_MB", (CACHE_BYTES >> 20).to_string())
            .env("MINILOG_LOG", "warn")
            .kill_on_drop(true)
            .output()
            .await
            .context("running minilog rebuild")?;
        let rebuild_t = t.elapsed();
        anyhow::ensure!(
            r.status.success(),
            "minilog rebuild failed: {}",
            String::from_utf8_lossy(&r.stderr)
        );
        eprintln!("bench: rebuild took {rebuild_t:.1?}");
        out.rows.push(
            Row::new(
                format!(
                    "`minilog rebuild --out` of {} events (wall clock)",
                    thousands(last as f64)
                ),
                format!("{:.1} s", rebuild_t.as_secs_f64()),
            )
            .ceiling(
                format!(
                    "raw ordered read of the stream: {:.1} s",
                    read_t.as_secs_f64()
                ),
                times(rebuild_t.as_secs_f64() / read_t.as_secs_f64()),
            )
            .target(
                "≤ 10 s at 1M",
                judge.then_some(rebuild_t <= Duration::from_secs(10)),
            ),
        );
    } else {
        out.rows.push(
            Row::new("`minilog rebuild`", "not available in this build")
                .target("≤ 10 s at 1M", None),
        );
    }
    let nats_million = nats.mem()?;

    // 5. serve again: it catches up on the million itself.
    let mut serve = start_serve(
        &args.minilog,
        &nats_url,
        &data,
        port,
        &work.join("serve-2.log"),
    )?;
    let catch_t = http::wait_ready(&c, &base, Duration::from_secs(900), &mut || {
        serve.check_alive()
    })
    .await?;
    settle(&c, &base, &bus).await?;
    let serve_caught = serve.mem()?;
    eprintln!("bench: serve caught up in {catch_t:.1?}");
    out.rows.push(
        Row::new(
            format!(
                "`minilog serve` catching up on {} events (start → `/readyz` 200)",
                thousands(n as f64)
            ),
            format!(
                "{} events/s ({:.1} s)",
                thousands(rate(n, catch_t)),
                catch_t.as_secs_f64()
            ),
        )
        .ceiling(
            format!("projector in-process: {} events/s", thousands(proj_rate)),
            pct(rate(n, catch_t) / proj_rate),
        ),
    );

    // 6. The read API at the million, one request at a time.
    let health = http::sample_gets(
        &c,
        &|_| format!("{base}/healthz"),
        http::Auth::None,
        50,
        plan.healthz_n,
    )
    .await?;
    let (h50, h99) = (http::pct(&health, 0.5), http::pct(&health, 0.99));
    let q = |levels: Vec<Level>, keys: Vec<String>, text: Option<&str>| Query {
        filter: Filter {
            levels,
            keys,
            q: text.map(str::to_owned),
        },
        resolved: Resolved::Open,
        before: None,
        limit: 20,
    };
    let cases: Vec<(&str, String, Query, bool)> = vec![
        (
            "list, unfiltered",
            String::new(),
            q(vec![], vec![], None),
            false,
        ),
        (
            "rare level (critical, 0.1%)",
            "?level=critical".into(),
            q(vec![Level::Critical], vec![], None),
            false,
        ),
        (
            "one key among 50",
            "?key=k000007".into(),
            q(vec![], vec!["k000007".into()], None),
            false,
        ),
        (
            "text search, common term (`worker 3`, 1 in 7)",
            "?q=worker%203".into(),
            q(vec![], vec![], Some("worker 3")),
            false,
        ),
        (
            "text search, no match (full search)",
            "?q=no%20such%20words".into(),
            q(vec![], vec![], Some("no such words")),
            true,
        ),
    ];
    let size = thousands(n as f64);
    let mut nomatch_inproc = Duration::ZERO;
    for (name, params, query, slow) in cases {
        let count = if slow { plan.dash_slow_n } else { plan.dash_n };
        let url = format!("{base}/api/v1/entries{params}");
        let t = http::sample_gets(
            &c,
            &|_| url.clone(),
            http::Auth::Basic(ADMIN, ADMIN_PASSWORD),
            if slow { 1 } else { 20 },
            count,
        )
        .await?;
        let (p50, p99) = (http::pct(&t, 0.5), http::pct(&t, 0.99));
        let p = projection.clone();
        let (inproc, rows_read) = tokio::task::spawn_blocking(move || {
            let mut times = Vec::new();
            let mut rows = 0;
            for _ in 0..count {
                let t = Instant::now();
                let page = p.page(&query)?;
                times.push(t.elapsed());
                rows = page.rows_read;
            }
            times.sort();
            Ok::<_, anyhow::Error>((times, rows))
        })
        .await??;
        if slow {
            nomatch_inproc = http::pct(&inproc, 0.5);
        }
        out.rows.push(read_row(
            format!("`GET /api/v1/entries{params}` at {size}: {name}"),
            (p50, p99),
            (h50, h99),
            slow,
            judge,
        ));
        out.notes.push(format!(
            "{name}: the same query in-process on the runner's projection (no HTTP) {}, {} rows read \
             ({count} requests over HTTP, one at a time)",
            lat(http::pct(&inproc, 0.5), http::pct(&inproc, 0.99)),
            rows_read
        ));
    }
    // What a full search costs below minilog: the same entry rows (the
    // runner's raw redb file) scanned straight, with the same cache and a
    // large one.
    let raw_path = work.join("raw.redb");
    let (scan_t, scan_rows) = tokio::task::spawn_blocking({
        let p = raw_path.clone();
        move || stream::raw_scan(&p, CACHE_BYTES, "no such words")
    })
    .await??;
    let (big_t, _) =
        tokio::task::spawn_blocking(move || stream::raw_scan(&raw_path, 1 << 30, "no such words"))
            .await??;
    eprintln!("bench: raw scan {scan_t:.1?} (16 MiB cache), {big_t:.1?} (1 GiB cache)");
    out.rows.push(
        Row::new(
            format!("Text search, no match, in-process at {size} (no HTTP): p50"),
            ms(nomatch_inproc),
        )
        .ceiling(
            format!(
                "raw redb scan of the same {} entry rows for the text: {} with a 16 MiB cache, {} with 1 GiB",
                thousands(scan_rows as f64),
                ms(scan_t),
                ms(big_t)
            ),
            pct(nomatch_inproc.as_secs_f64() / scan_t.as_secs_f64()),
        ),
    );
    let entry_url = |i: u64| format!("{base}/api/v1/entries/{}", first_id + (i * 7919) % n);
    let t = http::sample_gets(
        &c,
        &entry_url,
        http::Auth::Basic(ADMIN, ADMIN_PASSWORD),
        20,
        plan.dash_n,
    )
    .await?;
    let (p50, p99) = (http::pct(&t, 0.5), http::pct(&t, 0.99));
    out.rows.push(
        Row::new(
            format!("`GET /api/v1/entries/{{id}}` at {size}: one entry with its history"),
            lat(p50, p99),
        )
        .ceiling(
            format!("`GET /healthz` {}", lat(h50, h99)),
            times(p99.as_secs_f64() / h99.as_secs_f64()),
        )
        .target(
            "p99 ≤ 10 ms",
            judge.then_some(p99 <= Duration::from_millis(10)),
        ),
    );

    // 6b. The dashboard's HTML pages (askama), logged in with a session
    // cookie: the same queries rendered as pages.
    let cookie = http::login(&base, ADMIN, ADMIN_PASSWORD).await?;
    let pages: Vec<(&str, String, bool)> = vec![
        ("list page, unfiltered", "/log/list/".into(), false),
        (
            "list page, rare level (critical)",
            "/log/list/?level=critical".into(),
            false,
        ),
        (
            "list page, one key among 50",
            "/log/list/?key=k000007".into(),
            false,
        ),
        (
            "list page, text search, common term",
            "/log/list/?q=worker+3".into(),
            false,
        ),
        (
            "list page, text search, no match",
            "/log/list/?q=no+such+words".into(),
            true,
        ),
        ("entry page", "/log/entry/{id}/".into(), false),
    ];
    for (name, path, slow) in pages {
        let count = if slow { plan.dash_slow_n } else { plan.dash_n };
        let url = |i: u64| {
            format!(
                "{base}{}",
                path.replace("{id}", &(first_id + (i * 7919) % n).to_string())
            )
        };
        let t = http::sample_gets(
            &c,
            &url,
            http::Auth::Cookie(&cookie),
            if slow { 1 } else { 20 },
            count,
        )
        .await?;
        let (p50, p99) = (http::pct(&t, 0.5), http::pct(&t, 0.99));
        out.rows.push(read_row(
            format!("HTML `GET {path}` at {size}: {name}"),
            (p50, p99),
            (h50, h99),
            slow,
            judge,
        ));
    }
    let serve_million = serve.mem()?;

    // 7. HTTP ingest: the seed form and the JSON API against a route that does nothing.
    let form_body = format!("key={secret}&message=disk+almost+full+on+db-1&status=warn");
    let json_body = r#"{"message":"disk almost full on db-1","level":"warn","source":"db-1"}"#;
    let bearer = format!("Authorization: Bearer {secret}");
    for conc in [1u64, 16, 64] {
        let count = if conc == 1 {
            plan.http_n_c1
        } else {
            plan.http_n
        };
        let (mut ceilings, mut forms, mut jsons) = (Vec::new(), Vec::new(), Vec::new());
        for rep in 0..HTTP_REPEATS {
            settle(&c, &base, &bus).await?;
            let cpu0 = (serve.cpu(), nats.cpu());
            let ceiling = Load::get(format!("{base}/healthz"), count, conc)
                .run()
                .await?;
            let cpu1 = (serve.cpu(), nats.cpu());
            let form = Load {
                url: format!("{base}/log/add/"),
                n: count,
                c: conc,
                method: "POST",
                body: Some(Body::Text(form_body.clone())),
                content_type: Some("application/x-www-form-urlencoded"),
                headers: vec![],
            }
            .run()
            .await?;
            let cpu2 = (serve.cpu(), nats.cpu());
            settle(&c, &base, &bus).await?;
            if conc == 64 && rep + 1 == HTTP_REPEATS {
                let per = |d: Duration, r: &hey::HeyResult| {
                    format!("{:.0} µs", d.as_secs_f64() * 1e6 / r.n as f64)
                };
                out.notes.push(format!(
                    "CPU per request at c=64 (from /proc/PID/stat): `GET /healthz` serve {}; \
                     `POST /log/add/` serve {} (HTTP, publish, and its projector applying the entry \
                     meanwhile) + nats-server {}. The 2 cores also run `hey`.",
                    per(cpu1.0 - cpu0.0, &ceiling),
                    per(cpu2.0 - cpu1.0, &form),
                    per(cpu2.1 - cpu1.1, &form),
                ));
            }
            let json = Load {
                url: format!("{base}/api/v1/entries"),
                n: count,
                c: conc,
                method: "POST",
                body: Some(Body::Text(json_body.into())),
                content_type: Some("application/json"),
                headers: vec![bearer.clone()],
            }
            .run()
            .await?;
            ceilings.push(ceiling);
            forms.push(form);
            jsons.push(json);
        }
        for r in forms.iter().chain(&jsons).chain(&ceilings) {
            if !r.all_ok() {
                out.notes.push(format!(
                    "c={conc}: a run had answers other than 200:{}",
                    failures(r)
                ));
            }
        }
        let (ceiling, form, json) = (median(ceilings), median(forms), median(jsons));
        eprintln!(
            "bench: c={conc}: healthz {:.0}/s, form {:.0}/s, json {:.0}/s",
            ceiling.rps, form.rps, json.rps
        );
        let ceil_text = format!(
            "`GET /healthz` {} req/s, {}",
            thousands(ceiling.rps),
            lat(ceiling.p50, ceiling.p99)
        );
        for (name, r, target) in [
            ("`POST /log/add/` (seed form)", &form, conc == 64),
            ("`POST /api/v1/entries` (one entry)", &json, false),
        ] {
            let ratio = r.rps / ceiling.rps;
            let row = Row::new(
                format!("{name}, c={conc}, {} requests", thousands(r.n as f64)),
                format!(
                    "{} req/s, {}{}",
                    thousands(r.rps),
                    lat(r.p50, r.p99),
                    failures(r)
                ),
            )
            .ceiling(ceil_text.clone(), pct(ratio));
            out.rows.push(if target {
                row.target("≥ 50% of ceiling", Some(ratio >= 0.5 && r.all_ok()))
            } else {
                row
            });
        }
    }

    // 8. Batch ingest: arrays of 1000 over HTTP vs the runner's raw pipelined publish.
    let batch_file = work.join("batch.json");
    let items: Vec<serde_json::Value> = (1..=1000u64)
        .map(|i| {
            serde_json::json!({
                "message": stream::message_of(i),
                "level": stream::level_of(i).as_str(),
                "source": "web",
            })
        })
        .collect();
    std::fs::write(&batch_file, serde_json::to_vec(&items)?)?;
    settle(&c, &base, &bus).await?;
    let batch = Load {
        url: format!("{base}/api/v1/entries"),
        n: plan.batches,
        c: plan.batch_c,
        method: "POST",
        body: Some(Body::File(batch_file)),
        content_type: Some("application/json"),
        headers: vec![bearer.clone()],
    }
    .run()
    .await?;
    let batch_rate = batch.rps * 1000.0 * (batch.ok as f64 / batch.n as f64);
    settle(&c, &base, &bus).await?;
    let raw_n = plan.batches * 1000;
    // The same shape as the HTTP load: `batch_c` publishers at once, each
    // with a batch's worth (1000) of acknowledgements in flight.
    let raw_started = Instant::now();
    let mut publishers = tokio::task::JoinSet::new();
    for p in 0..plan.batch_c {
        let (bus, share) = (bus.clone(), raw_n / plan.batch_c);
        publishers.spawn(async move {
            stream::publish_many(&bus, 1 + p * share, share, 1000, "raw-batch").await
        });
    }
    while let Some(r) = publishers.join_next().await {
        r??;
    }
    let raw_t = raw_started.elapsed();
    let raw_rate = rate(raw_n, raw_t);
    settle(&c, &base, &bus).await?;
    eprintln!("bench: batch {batch_rate:.0} entries/s, raw publish {raw_rate:.0}/s");
    out.rows.push(
        Row::new(
            format!(
                "Batch ingest: {} × 1000-entry arrays, c={}",
                plan.batches, plan.batch_c
            ),
            format!(
                "{} entries/s (p50 {} per request){}",
                thousands(batch_rate),
                ms(batch.p50),
                failures(&batch)
            ),
        )
        .ceiling(
            format!(
                "raw pipelined JetStream publish of {} `Logged` by {} tasks, 1000 acks in flight each: {} events/s",
                thousands(raw_n as f64),
                plan.batch_c,
                thousands(raw_rate)
            ),
            pct(batch_rate / raw_rate),
        )
        .target("≥ 70% of ceiling", Some(batch_rate / raw_rate >= 0.7)),
    );
    out.notes.push(
        "HTTP ingest: each row is the median (by rate) of 3 interleaved `hey` runs of \
         ceiling, form and JSON. `hey` reports latencies in steps of 0.1 ms; the runner's own timings (read API, end to end) \
         are in microseconds."
            .into(),
    );
    out.notes.push(
        "Batch ingest and its ceiling both run while `serve`'s projector applies what they publish \
         (the same conditions for both); the runner waits for it to catch up between runs."
            .into(),
    );

    // 9. End-to-end latency at a steady rate. The read API remembers a
    // verified password for a minute: one read first, so the first
    // requests do not all pay for argon2 at once.
    settle(&c, &base, &bus).await?;
    let e2e = http::end_to_end(
        &c,
        &base,
        &secret,
        (ADMIN, ADMIN_PASSWORD),
        plan.e2e_rate,
        plan.e2e_secs,
    )
    .await?;
    let (v50, v99) = (http::pct(&e2e.visible, 0.5), http::pct(&e2e.visible, 0.99));
    // Every sample, to see when slow ones happen.
    let mut csv = String::from("sent_ms,post_ms,visible_ms\n");
    for (sent, post, visible) in &e2e.samples {
        csv.push_str(&format!(
            "{:.3},{:.3},{:.3}\n",
            sent.as_secs_f64() * 1e3,
            post.as_secs_f64() * 1e3,
            visible.as_secs_f64() * 1e3
        ));
    }
    std::fs::write(args.out.join("e2e.csv"), csv)?;
    let errs = if e2e.errors > 0 {
        format!(
            " **({} failed: {})**",
            e2e.errors,
            e2e.first_error.clone().unwrap_or_default()
        )
    } else {
        String::new()
    };
    out.rows.push(
        Row::new(
            format!(
                "End to end at {:.0} entries/s for {} s: `200` → visible (`?min_seq=<id>` answered)",
                e2e.rate, plan.e2e_secs
            ),
            format!("{}{errs}", lat(v50, v99)),
        )
        .ceiling(
            format!("`GET /healthz` {}", lat(h50, h99)),
            times(v99.as_secs_f64() / h99.as_secs_f64()),
        )
        .target("p99 ≤ 20 ms", Some(v99 <= Duration::from_millis(20) && e2e.errors == 0)),
    );
    out.notes.push(format!(
        "End to end: the POSTs themselves took {} ({} entries, one request each, runner's own \
         client on the same 2 cores); every sample is in `target/bench/e2e.csv`.",
        lat(http::pct(&e2e.post, 0.5), http::pct(&e2e.post, 0.99)),
        e2e.post.len()
    ));

    // 10. Memory.
    let serve_end = serve.mem()?;
    let nats_end = nats.mem()?;
    serve.stop();

    // 11. What the projector costs the seed form: the same c=64 load on
    // `minilog gateway` (split mode: ingestion only, no projector), with
    // serve stopped so nothing else applies the entries meanwhile.
    let gw_port = procs::free_port()?;
    let gw_base = format!("http://127.0.0.1:{gw_port}");
    let mut cmd = Command::new(&args.minilog);
    cmd.arg("gateway")
        .arg("--nats-url")
        .arg(&nats_url)
        .arg("--data")
        .arg(work.join("gateway-data"))
        .arg("--listen")
        .arg(format!("127.0.0.1:{gw_port}"))
        .env("MINILOG_RATE_LIMIT", "1000000000")
        .env("MINILOG_LOG", "warn,async_nats=error");
    let mut gateway = Proc::spawn("minilog gateway", cmd, &work.join("gateway.log"))?;
    http::wait_ready(&c, &gw_base, Duration::from_secs(60), &mut || {
        gateway.check_alive()
    })
    .await?;
    let (mut ceilings, mut forms, mut cpus) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..HTTP_REPEATS {
        let ceiling = Load::get(format!("{gw_base}/healthz"), plan.http_n, 64)
            .run()
            .await?;
        let cpu0 = (gateway.cpu(), nats.cpu());
        let form = Load {
            url: format!("{gw_base}/log/add/"),
            n: plan.http_n,
            c: 64,
            method: "POST",
            body: Some(Body::Text(form_body.clone())),
            content_type: Some("application/x-www-form-urlencoded"),
            headers: vec![],
        }
        .run()
        .await?;
        let per = |d: Duration| d.as_secs_f64() * 1e6 / form.n as f64;
        cpus.push((per(gateway.cpu() - cpu0.0), per(nats.cpu() - cpu0.1)));
        ceilings.push(ceiling);
        forms.push(form);
    }
    gateway.stop();
    nats.stop();
    let all_ok = forms.iter().all(|r| r.all_ok());
    let (ceiling, form) = (median(ceilings), median(forms));
    let cpu = cpus.iter().map(|c| c.0).sum::<f64>() / cpus.len() as f64;
    let nats_cpu = cpus.iter().map(|c| c.1).sum::<f64>() / cpus.len() as f64;
    eprintln!(
        "bench: gateway c=64: healthz {:.0}/s, form {:.0}/s",
        ceiling.rps, form.rps
    );
    out.rows.push(
        Row::new(
            format!(
                "`POST /log/add/` (seed form), c=64, on `minilog gateway` (ingestion only, no projector; serve stopped), {} requests",
                thousands(form.n as f64)
            ),
            format!(
                "{} req/s, {}{}",
                thousands(form.rps),
                lat(form.p50, form.p99),
                failures(&form)
            ),
        )
        .ceiling(
            format!(
                "`GET /healthz` on the gateway {} req/s, {}",
                thousands(ceiling.rps),
                lat(ceiling.p50, ceiling.p99)
            ),
            pct(form.rps / ceiling.rps),
        ),
    );
    out.notes.push(format!(
        "Seed form on `minilog gateway` at c=64: {cpu:.0} µs of gateway CPU and {nats_cpu:.0} µs of \
         nats-server CPU per request (mean of {HTTP_REPEATS} runs){}.",
        if all_ok { "" } else { "; a run had answers other than 200" }
    ));
    let mem_row = |what: String, m: Mem| {
        Row::new(
            what,
            format!("{} (now {})", mib(m.hwm_mib()), mib(m.rss_mib())),
        )
    };
    out.rows.push(mem_row(
        "`minilog serve` peak RSS (VmHWM), idle: started, empty projection".into(),
        serve_idle,
    ));
    out.rows.push(mem_row(
        format!("`minilog serve` peak RSS after catching up on {size}, before the read figures"),
        serve_caught,
    ));
    out.rows.push(
        mem_row(
            format!("`minilog serve` peak RSS after catching up on {size} and the read figures"),
            serve_million,
        )
        .target(
            "≤ 64 MiB",
            judge.then_some(serve_million.hwm_kib <= 64 * 1024),
        ),
    );
    out.rows.push(mem_row(
        "`minilog serve` peak RSS at the end (after all HTTP load)".into(),
        serve_end,
    ));
    out.rows
        .push(mem_row("nats-server peak RSS, idle".into(), nats_idle));
    out.rows.push(mem_row(
        format!("nats-server peak RSS after the {size} (publish, reads, rebuild)"),
        nats_million,
    ));
    out.rows
        .push(mem_row("nats-server peak RSS at the end".into(), nats_end));

    drop(projection);
    if !args.keep {
        let _ = std::fs::remove_dir_all(&work);
    }
    Ok(())
}
