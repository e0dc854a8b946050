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
mod sdk;
mod stream;

use anyhow::{Context, bail};
use clap::Parser;
use hey::{Body, Load};
use procs::{Mem, Proc};
use projector::{Projection, Query, Resolved};
use proto::Level;
use proto::bus::{Bus, NatsAuth, NatsConfig};
use proto::filter::Filter;
use proto::subjects::Subjects;
use report::{Row, ms, pct, thousands, times};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
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

impl Out {
    /// A later phase's rows and notes go after these: the report keeps
    /// the order the figures were taken in.
    fn add(&mut self, more: Out) {
        self.rows.extend(more.rows);
        self.notes.extend(more.notes);
    }

    /// [`Out::add`] for a phase that also answers what a later one needs.
    fn take<T>(&mut self, (value, more): (T, Out)) -> T {
        self.add(more);
        value
    }
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

/// A key with no rate limit to speak of: its secret and its DSN key.
fn create_key(minilog: &Path, nats_url: &str, data: &Path) -> anyhow::Result<(String, String)> {
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
    let secret = v["secret"]
        .as_str()
        .context("no secret in key create's answer")?
        .to_owned();
    // `http://<dsn key>@host/1`.
    let dsn_key = v["dsn"]
        .as_str()
        .and_then(|d| d.split_once("://"))
        .and_then(|(_, rest)| rest.split_once('@'))
        .map(|(key, _)| key.to_owned())
        .context("no dsn in key create's answer")?;
    Ok((secret, dsn_key))
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

/// What the phases share: the processes a run starts, the stream and the key.
struct Ctx<'a> {
    args: &'a Args,
    plan: &'a Plan,
    work: PathBuf,
    data: PathBuf,
    c: reqwest::Client,
    nats: Proc,
    nats_url: String,
    /// Stopped while the runner works on the stream alone, started again
    /// to catch up on it.
    serve: Proc,
    /// Each `serve` listens where the first did.
    port: u16,
    base: String,
    secret: String,
    /// The key's DSN key (Sentry envelopes).
    dsn_key: String,
    bus: Bus,
    /// Taken along the way; the memory rows come last.
    mem: Mems,
}

/// Peak memory at the points the memory rows name.
#[derive(Default)]
struct Mems {
    serve_idle: Mem,
    serve_caught: Mem,
    serve_million: Mem,
    serve_end: Mem,
    nats_idle: Mem,
    nats_million: Mem,
    nats_end: Mem,
}

/// Where the fill left the stream.
#[derive(Clone, Copy)]
struct Filled {
    /// The stream's last sequence: the fill's events and the key's before them.
    last: u64,
    /// The first filled entry, for the figures that read single entries.
    first_id: u64,
}

/// What the projector figures leave for the later ones.
struct ProjectorRun {
    /// The raw ordered read of the stream, also rebuild's ceiling.
    read_t: Duration,
    /// Also the ceiling of `serve` catching up.
    rate: f64,
    /// Open for the read figures' in-process queries.
    projection: Projection,
}

/// The raw redb writes of the projector's rows.
struct RedbWrites {
    /// In transactions of 1000 events.
    t: Duration,
    rows: u64,
    /// In transactions of the projector's mean batch size.
    small_t: Duration,
    mean_batch: u64,
}

/// The phases in the order the report shows their rows; each answers
/// its own, so a figure and its ceiling stay side by side.
async fn run(args: &Args, plan: &Plan, out: &mut Out) -> anyhow::Result<()> {
    let (nats_bin, work) = prepare(args, plan)?;
    let mut cx = start_up(args, plan, &nats_bin, work).await?;
    let filled = out.take(fill(&cx).await?);
    let proj = out.take(projector_figures(&cx, filled).await?);
    out.add(rebuild(&cx, filled, proj.read_t).await?);
    cx.mem.nats_million = cx.nats.mem()?;
    out.add(catch_up(&mut cx, proj.rate).await?);
    let health = healthz_ceiling(&cx).await?;
    out.add(read_api(&cx, filled, &proj.projection, health).await?);
    out.add(dashboard_pages(&cx, filled, health).await?);
    out.add(group_pages(&cx, &proj.projection, health).await?);
    cx.mem.serve_million = cx.serve.mem()?;
    out.add(http_ingest(&cx).await?);
    out.add(batch_ingest(&cx).await?);
    out.add(sdk_ingest(&cx).await?);
    out.add(end_to_end(&cx, health).await?);
    cx.mem.serve_end = cx.serve.mem()?;
    cx.mem.nats_end = cx.nats.mem()?;
    cx.serve.stop();
    out.add(gateway_only(&cx).await?);
    cx.nats.stop();
    out.add(memory_rows(&cx.mem, plan));
    // The projection's file is in the run's directory.
    drop(proj);
    if !args.keep {
        let _ = std::fs::remove_dir_all(&cx.work);
    }
    Ok(())
}

/// A fresh run directory, so no figure reads a previous run's data;
/// answers the nats-server to run and the directory.
fn prepare(args: &Args, plan: &Plan) -> anyhow::Result<(PathBuf, PathBuf)> {
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
    eprintln!(
        "bench: {} events; nats-server {}; data in {}",
        thousands(plan.events as f64),
        procs::nats_version(&nats_bin),
        work.display()
    );
    Ok((nats_bin, work))
}

/// nats-server and a first `minilog serve`: idle memory, a key. serve is
/// stopped again so that nothing competes with the stream phases.
async fn start_up<'a>(
    args: &'a Args,
    plan: &'a Plan,
    nats_bin: &Path,
    work: PathBuf,
) -> anyhow::Result<Ctx<'a>> {
    let data = work.join("data");
    let (nats, nats_url) = procs::start_nats(nats_bin, &work.join("nats"), &args.nats_sync)?;
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
    let (secret, dsn_key) = create_key(&args.minilog, &nats_url, &data)?;
    http::wait_key(&c, &base, &secret, Duration::from_secs(30)).await?;
    serve.stop();
    eprintln!("bench: idle memory taken, key created; serve stopped for the stream phases");
    let bus = Bus::connect(
        &NatsConfig {
            url: nats_url.clone(),
            auth: NatsAuth::None,
            name: "minilog-bench".into(),
        },
        Subjects::default(),
    )
    .await?;
    Ok(Ctx {
        args,
        plan,
        work,
        data,
        c,
        nats,
        nats_url,
        serve,
        port,
        base,
        secret,
        dsn_key,
        bus,
        mem: Mems {
            serve_idle,
            nats_idle,
            ..Mems::default()
        },
    })
}

/// The million, straight into the stream (serve stopped: no consumer competes).
async fn fill(cx: &Ctx<'_>) -> anyhow::Result<(Filled, Out)> {
    let n = cx.plan.events;
    let (fill_t, last) = stream::publish_many(&cx.bus, 1, n, WINDOW, "fill").await?;
    let first_id = last + 1 - n;
    eprintln!("bench: filled {n} in {fill_t:.1?}");
    let mut out = Out::default();
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
    Ok((Filled { last, first_id }, out))
}

/// The projector in-process beside the raw read of the same stream and
/// raw redb writes of the same rows.
async fn projector_figures(cx: &Ctx<'_>, filled: Filled) -> anyhow::Result<(ProjectorRun, Out)> {
    let last = filled.last;
    let (read_t, read_n) = stream::raw_read(&cx.bus, last).await?;
    eprintln!("bench: raw read {read_n} in {read_t:.1?}");
    let stream::Projected {
        elapsed: proj_t,
        projection,
        batches: proj_batches,
    } = stream::project(
        &cx.bus,
        &cx.work.join("projector.redb"),
        CACHE_BYTES,
        last,
        Duration::from_secs(900),
    )
    .await?;
    eprintln!("bench: projector applied {last} in {proj_t:.1?}");
    let mean_batch = (last / proj_batches.max(1)).max(1);
    let writes = redb_ceilings(&cx.work, cx.plan.events, mean_batch).await?;
    let read_rate = rate(read_n, read_t);
    let out = projector_rows(
        cx.plan.events,
        last,
        read_rate,
        proj_t,
        proj_batches,
        &writes,
    );
    let run = ProjectorRun {
        read_t,
        rate: rate(last, proj_t),
        projection,
    };
    Ok((run, out))
}

/// The rows the projector writes for the fill's `n` events, written
/// straight: in transactions of 1000 events, and of the projector's own
/// mean batch size. `raw.redb` stays for the read figures' raw scan.
async fn redb_ceilings(work: &Path, n: u64, mean_batch: u64) -> anyhow::Result<RedbWrites> {
    let raw_path = work.join("raw.redb");
    let (redb_t, redb_rows) = tokio::task::spawn_blocking(move || {
        stream::raw_redb_write(&raw_path, CACHE_BYTES, n, 1000)
    })
    .await??;
    eprintln!("bench: raw redb write of {redb_rows} rows in {redb_t:.1?}");
    // The same rows in transactions of the projector's mean batch size.
    let small_path = work.join("raw-small.redb");
    let (small_t, _) = tokio::task::spawn_blocking(move || {
        stream::raw_redb_write(&small_path, CACHE_BYTES, n, mean_batch)
    })
    .await??;
    eprintln!("bench: raw redb write in batches of {mean_batch}: {small_t:.1?}");
    Ok(RedbWrites {
        t: redb_t,
        rows: redb_rows,
        small_t,
        mean_batch,
    })
}

/// The projector's rate beside each of its three ceilings.
fn projector_rows(
    n: u64,
    last: u64,
    read_rate: f64,
    proj_t: Duration,
    proj_batches: u64,
    w: &RedbWrites,
) -> Out {
    let proj_rate = rate(last, proj_t);
    let redb_rate = rate(n, w.t);
    let small_rate = rate(n, w.small_t);
    let mut out = Out::default();
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
                thousands(rate(w.rows, w.t))
            ),
            pct(proj_rate / redb_rate),
        ),
    );
    out.rows.push(
        Row::new(
            format!(
                "Projector batches: {} write transactions, {} events each on average",
                thousands(proj_batches as f64),
                thousands(w.mean_batch as f64)
            ),
            format!("{} events/s", thousands(proj_rate)),
        )
        .ceiling(
            format!(
                "raw redb write of the same rows, {} events per transaction: {} events/s",
                thousands(w.mean_batch as f64),
                thousands(small_rate)
            ),
            pct(proj_rate / small_rate),
        ),
    );
    out.notes.push(format!(
        "Raw redb write: per event the entry row and its four index rows (level/key × all/open), \
         the counters summed per transaction, `last_applied`; {} rows for {} events, written into \
         the projector's own table definitions with the same cache size and the projector's commit policy (no fsync but once a second, and at the end).",
        thousands(w.rows as f64),
        thousands(n as f64)
    ));
    out
}

/// `minilog rebuild --out` of the filled stream, beside the raw read of it.
async fn rebuild(cx: &Ctx<'_>, filled: Filled, read_t: Duration) -> anyhow::Result<Out> {
    let out_file = cx.work.join("rebuilt.redb");
    let t = Instant::now();
    let r = tokio::process::Command::new(&cx.args.minilog)
        .args(["rebuild", "--nats-url", &cx.nats_url, "--data"])
        .arg(&cx.data)
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
    let mut out = Out::default();
    out.rows.push(
        Row::new(
            format!(
                "`minilog rebuild --out` of {} events (wall clock)",
                thousands(filled.last as f64)
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
            cx.plan
                .judge_size()
                .then_some(rebuild_t <= Duration::from_secs(10)),
        ),
    );
    Ok(out)
}

/// serve again: it catches up on the million itself.
async fn catch_up(cx: &mut Ctx<'_>, proj_rate: f64) -> anyhow::Result<Out> {
    let n = cx.plan.events;
    cx.serve = start_serve(
        &cx.args.minilog,
        &cx.nats_url,
        &cx.data,
        cx.port,
        &cx.work.join("serve-2.log"),
    )?;
    let catch_t = http::wait_ready(&cx.c, &cx.base, Duration::from_secs(900), &mut || {
        cx.serve.check_alive()
    })
    .await?;
    settle(&cx.c, &cx.base, &cx.bus).await?;
    cx.mem.serve_caught = cx.serve.mem()?;
    eprintln!("bench: serve caught up in {catch_t:.1?}");
    let mut out = Out::default();
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
    Ok(out)
}

/// `GET /healthz`'s p50 and p99: the ceiling of every read figure, a
/// request that reads nothing.
async fn healthz_ceiling(cx: &Ctx<'_>) -> anyhow::Result<(Duration, Duration)> {
    let health = http::sample_gets(
        &cx.c,
        &|_| format!("{}/healthz", cx.base),
        http::Auth::None,
        50,
        cx.plan.healthz_n,
    )
    .await?;
    Ok((http::pct(&health, 0.5), http::pct(&health, 0.99)))
}

/// A read API query: its name, its parameters, the same as a [`Query`]
/// and whether it reads everything (a full search).
type ReadCase = (&'static str, String, Query, bool);

/// The read API at the million, one request at a time.
async fn read_api(
    cx: &Ctx<'_>,
    filled: Filled,
    projection: &Projection,
    health: (Duration, Duration),
) -> anyhow::Result<Out> {
    let mut out = Out::default();
    let mut nomatch_inproc = Duration::ZERO;
    for case in read_cases() {
        let slow = case.3;
        let inproc_p50 = out.take(read_case(cx, projection, health, case).await?);
        if slow {
            nomatch_inproc = inproc_p50;
        }
    }
    out.rows.push(raw_scan_row(cx, nomatch_inproc).await?);
    out.rows.push(entry_row(cx, filled, health).await?);
    Ok(out)
}

fn read_cases() -> Vec<ReadCase> {
    let q = |levels: Vec<Level>, keys: Vec<String>, text: Option<&str>| Query {
        filter: Filter {
            levels,
            keys,
            q: text.map(str::to_owned),
            group: None,
        },
        resolved: Resolved::Open,
        before: None,
        limit: 20,
    };
    vec![
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
    ]
}

/// One read API query over HTTP, and the same query in-process on the
/// runner's projection to show what HTTP adds; answers the in-process p50.
async fn read_case(
    cx: &Ctx<'_>,
    projection: &Projection,
    (h50, h99): (Duration, Duration),
    (name, params, query, slow): ReadCase,
) -> anyhow::Result<(Duration, Out)> {
    let Ctx { c, base, plan, .. } = cx;
    let size = thousands(plan.events as f64);
    let count = if slow { plan.dash_slow_n } else { plan.dash_n };
    let url = format!("{base}/api/v1/entries{params}");
    let t = http::sample_gets(
        c,
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
    let mut out = Out::default();
    out.rows.push(read_row(
        format!("`GET /api/v1/entries{params}` at {size}: {name}"),
        (p50, p99),
        (h50, h99),
        slow,
        plan.judge_size(),
    ));
    out.notes.push(format!(
        "{name}: the same query in-process on the runner's projection (no HTTP) {}, {} rows read \
         ({count} requests over HTTP, one at a time)",
        lat(http::pct(&inproc, 0.5), http::pct(&inproc, 0.99)),
        rows_read
    ));
    Ok((http::pct(&inproc, 0.5), out))
}

/// What a full search costs below minilog: the same entry rows (the
/// runner's raw redb file) scanned straight, with the same cache and a
/// large one.
async fn raw_scan_row(cx: &Ctx<'_>, nomatch_inproc: Duration) -> anyhow::Result<Row> {
    let size = thousands(cx.plan.events as f64);
    let raw_path = cx.work.join("raw.redb");
    let (scan_t, scan_rows) = tokio::task::spawn_blocking({
        let p = raw_path.clone();
        move || stream::raw_scan(&p, CACHE_BYTES, "no such words")
    })
    .await??;
    let (big_t, _) =
        tokio::task::spawn_blocking(move || stream::raw_scan(&raw_path, 1 << 30, "no such words"))
            .await??;
    eprintln!("bench: raw scan {scan_t:.1?} (16 MiB cache), {big_t:.1?} (1 GiB cache)");
    Ok(Row::new(
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
    ))
}

/// One entry with its history, spread over the filled entries.
async fn entry_row(
    cx: &Ctx<'_>,
    filled: Filled,
    (h50, h99): (Duration, Duration),
) -> anyhow::Result<Row> {
    let Ctx { c, base, plan, .. } = cx;
    let (n, first_id) = (plan.events, filled.first_id);
    let size = thousands(n as f64);
    let entry_url = |i: u64| format!("{base}/api/v1/entries/{}", first_id + (i * 7919) % n);
    let t = http::sample_gets(
        c,
        &entry_url,
        http::Auth::Basic(ADMIN, ADMIN_PASSWORD),
        20,
        plan.dash_n,
    )
    .await?;
    let (p50, p99) = (http::pct(&t, 0.5), http::pct(&t, 0.99));
    Ok(Row::new(
        format!("`GET /api/v1/entries/{{id}}` at {size}: one entry with its history"),
        lat(p50, p99),
    )
    .ceiling(
        format!("`GET /healthz` {}", lat(h50, h99)),
        times(p99.as_secs_f64() / h99.as_secs_f64()),
    )
    .target(
        "p99 ≤ 10 ms",
        plan.judge_size()
            .then_some(p99 <= Duration::from_millis(10)),
    ))
}

/// The dashboard's HTML pages (askama), logged in with a session
/// cookie: the same queries rendered as pages.
async fn dashboard_pages(
    cx: &Ctx<'_>,
    filled: Filled,
    (h50, h99): (Duration, Duration),
) -> anyhow::Result<Out> {
    let Ctx { c, base, plan, .. } = cx;
    let (n, first_id) = (plan.events, filled.first_id);
    let size = thousands(n as f64);
    let cookie = http::login(base, ADMIN, ADMIN_PASSWORD).await?;
    let mut out = Out::default();
    for (name, path, slow) in dashboard_paths() {
        let count = if slow { plan.dash_slow_n } else { plan.dash_n };
        let url = |i: u64| {
            format!(
                "{base}{}",
                path.replace("{id}", &(first_id + (i * 7919) % n).to_string())
            )
        };
        let t = http::sample_gets(
            c,
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
            plan.judge_size(),
        ));
    }
    Ok(out)
}

/// The pages: name, path (`{id}` for an entry's) and whether it reads
/// everything (a full search).
/// The groups API and pages at the fill's size (100,000 groups at 1M),
/// beside `/healthz`.
async fn group_pages(
    cx: &Ctx<'_>,
    projection: &Projection,
    health: (Duration, Duration),
) -> anyhow::Result<Out> {
    let Ctx { c, base, plan, .. } = cx;
    let groups = projection.all_groups()?;
    let ids: Vec<String> = groups
        .iter()
        .step_by(97)
        .map(|(id, _)| id.clone())
        .collect();
    anyhow::ensure!(!ids.is_empty(), "the fill made no groups");
    let size = format!(
        "{} entries, {} groups",
        thousands(plan.events as f64),
        thousands(groups.len() as f64)
    );
    drop(groups);
    let cookie = http::login(base, ADMIN, ADMIN_PASSWORD).await?;
    let mut out = Out::default();
    let cases: [(&str, &str, bool); 4] = [
        (
            "`GET /api/v1/groups` (a page of 20)",
            "/api/v1/groups",
            false,
        ),
        (
            "`GET /api/v1/groups/{id}` (with 20 entries and 24 hours)",
            "/api/v1/groups/{id}",
            false,
        ),
        (
            "HTML `GET /log/groups/` (the landing page)",
            "/log/groups/",
            true,
        ),
        ("HTML `GET /log/groups/{id}/`", "/log/groups/{id}/", true),
    ];
    for (name, path, html) in cases {
        let url = |i: u64| {
            format!(
                "{base}{}",
                path.replace("{id}", &ids[i as usize % ids.len()])
            )
        };
        let auth = if html {
            http::Auth::Cookie(&cookie)
        } else {
            http::Auth::Basic(ADMIN, ADMIN_PASSWORD)
        };
        let t = http::sample_gets(c, &url, auth, 20, plan.dash_n).await?;
        let (p50, p99) = (http::pct(&t, 0.5), http::pct(&t, 0.99));
        out.rows.push(read_row(
            format!("{name} at {size}"),
            (p50, p99),
            health,
            false,
            plan.judge_size(),
        ));
    }
    Ok(out)
}

fn dashboard_paths() -> Vec<(&'static str, String, bool)> {
    vec![
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
    ]
}

/// The seed form's POST of one entry, the figure its targets are stated for.
fn form_load(base: &str, secret: &str, n: u64, c: u64) -> Load {
    Load {
        url: format!("{base}/log/add/"),
        n,
        c,
        method: "POST",
        body: Some(Body::Text(format!(
            "key={secret}&message=disk+almost+full+on+db-1&status=warn"
        ))),
        content_type: Some("application/x-www-form-urlencoded"),
        headers: vec![],
    }
}

/// HTTP ingest: the seed form and the JSON API against a route that does
/// nothing, at c=1, 16 and 64.
async fn http_ingest(cx: &Ctx<'_>) -> anyhow::Result<Out> {
    let mut out = Out::default();
    for conc in [1u64, 16, 64] {
        out.add(http_ingest_at(cx, conc).await?);
    }
    out.notes.push(
        "HTTP ingest: each row is the median (by rate) of 3 interleaved `hey` runs of \
         ceiling, form and JSON. `hey` reports latencies in steps of 0.1 ms; the runner's own timings (read API, end to end) \
         are in microseconds."
            .into(),
    );
    Ok(out)
}

/// The form and the JSON API at one concurrency, each the median of
/// [`HTTP_REPEATS`] rounds interleaved with the ceiling's.
async fn http_ingest_at(cx: &Ctx<'_>, conc: u64) -> anyhow::Result<Out> {
    let mut out = Out::default();
    let count = if conc == 1 {
        cx.plan.http_n_c1
    } else {
        cx.plan.http_n
    };
    let (mut ceilings, mut forms, mut jsons) = (Vec::new(), Vec::new(), Vec::new());
    for rep in 0..HTTP_REPEATS {
        let cpu_note = conc == 64 && rep + 1 == HTTP_REPEATS;
        let (ceiling, form, json) = out.take(ingest_round(cx, conc, count, cpu_note).await?);
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
    Ok(out)
}

/// One round of the ceiling, the form and the JSON API, serve caught up
/// before each of its loads; with `cpu_note`, the CPU each request cost.
async fn ingest_round(
    cx: &Ctx<'_>,
    conc: u64,
    count: u64,
    cpu_note: bool,
) -> anyhow::Result<((hey::HeyResult, hey::HeyResult, hey::HeyResult), Out)> {
    let Ctx {
        c,
        base,
        bus,
        secret,
        serve,
        nats,
        ..
    } = cx;
    let mut out = Out::default();
    settle(c, base, bus).await?;
    let cpu0 = (serve.cpu(), nats.cpu());
    let ceiling = Load::get(format!("{base}/healthz"), count, conc)
        .run()
        .await?;
    let cpu1 = (serve.cpu(), nats.cpu());
    let form = form_load(base, secret, count, conc).run().await?;
    let cpu2 = (serve.cpu(), nats.cpu());
    settle(c, base, bus).await?;
    if cpu_note {
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
        body: Some(Body::Text(
            r#"{"message":"disk almost full on db-1","level":"warn","source":"db-1"}"#.into(),
        )),
        content_type: Some("application/json"),
        headers: vec![format!("Authorization: Bearer {secret}")],
    }
    .run()
    .await?;
    Ok(((ceiling, form, json), out))
}

/// Batch ingest: arrays of 1000 over HTTP vs the runner's raw pipelined publish.
async fn batch_ingest(cx: &Ctx<'_>) -> anyhow::Result<Out> {
    let Ctx {
        plan,
        c,
        base,
        bus,
        secret,
        ..
    } = cx;
    let batch_file = write_batch_file(&cx.work)?;
    settle(c, base, bus).await?;
    let batch = Load {
        url: format!("{base}/api/v1/entries"),
        n: plan.batches,
        c: plan.batch_c,
        method: "POST",
        body: Some(Body::File(batch_file)),
        content_type: Some("application/json"),
        headers: vec![format!("Authorization: Bearer {secret}")],
    }
    .run()
    .await?;
    let batch_rate = batch.rps * 1000.0 * (batch.ok as f64 / batch.n as f64);
    settle(c, base, bus).await?;
    let raw_n = plan.batches * 1000;
    let raw_rate = rate(raw_n, raw_batch_publish(bus, plan, raw_n).await?);
    settle(c, base, bus).await?;
    eprintln!("bench: batch {batch_rate:.0} entries/s, raw publish {raw_rate:.0}/s");
    let mut out = Out::default();
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
        "Batch ingest and its ceiling both run while `serve`'s projector applies what they publish \
         (the same conditions for both); the runner waits for it to catch up between runs."
            .into(),
    );
    Ok(out)
}

/// Sentry envelopes beside the single-entry JSON path at c=16 and c=64,
/// and OTLP protobuf batches beside JSON batches (issue 14); all with the
/// runner's own load ([`sdk::load`]), which sends a fresh body per request.
async fn sdk_ingest(cx: &Ctx<'_>) -> anyhow::Result<Out> {
    let mut out = Out::default();
    for conc in [16u64, 64] {
        out.add(sentry_at(cx, conc).await?);
    }
    out.add(otlp_batches(cx).await?);
    out.notes.push(
        "Sentry and OTLP rows: the runner's own load (`c` tasks on one keep-alive client), since \
         each request needs its own body (a fresh event_id; new record times), which `hey` cannot \
         send; the JSON rows beside them are measured the same way in the same run. \
         \"Stored\" counts until serve's projector has applied the last one."
            .into(),
    );
    Ok(out)
}

/// Loads `n` requests and waits for the projector: the answers, and the
/// entries per second stored end to end (`entries_per_request` each).
async fn load_and_settle(
    cx: &Ctx<'_>,
    n: u64,
    conc: u64,
    entries_per_request: u64,
    make: sdk::MakeRequest,
) -> anyhow::Result<(hey::HeyResult, f64)> {
    settle(&cx.c, &cx.base, &cx.bus).await?;
    let (r, took) = sdk::load(n, conc, make).await;
    let t = Instant::now();
    settle(&cx.c, &cx.base, &cx.bus).await?;
    Ok((r, rate(n * entries_per_request, took + t.elapsed())))
}

async fn sentry_at(cx: &Ctx<'_>, conc: u64) -> anyhow::Result<Out> {
    let n = cx.plan.http_n;
    let (c, base, secret) = (cx.c.clone(), cx.base.clone(), cx.secret.clone());
    let json: sdk::MakeRequest = Arc::new(move |_| {
        c.post(format!("{base}/api/v1/entries"))
            .bearer_auth(&secret)
            .header("content-type", "application/json")
            .body(bytes::Bytes::from_static(
                br#"{"message":"disk almost full on db-1","level":"warn","source":"db-1"}"#,
            ))
    });
    let (json, json_stored) = load_and_settle(cx, n, conc, 1, json).await?;
    let (c, base, dsn) = (cx.c.clone(), cx.base.clone(), cx.dsn_key.clone());
    // Event ids unique across the runs of one benchmark.
    let offset = conc << 32;
    // Made before the load, so the runner's own work is the same on both
    // sides (a clone of a ready body per request).
    let bodies: Arc<Vec<bytes::Bytes>> =
        Arc::new((0..n).map(|i| sdk::envelope(offset + i).into()).collect());
    let sentry: sdk::MakeRequest = Arc::new(move |i| {
        c.post(format!("{base}/api/1/envelope/"))
            .header(
                "x-sentry-auth",
                format!("Sentry sentry_key={dsn}, sentry_version=7"),
            )
            .header("content-type", "application/x-sentry-envelope")
            .body(bodies[i as usize].clone())
    });
    let (sentry, sentry_stored) = load_and_settle(cx, n, conc, 1, sentry).await?;
    eprintln!(
        "bench: c={conc}: sentry {:.0}/s ({sentry_stored:.0} stored/s), json {:.0}/s ({json_stored:.0} stored/s)",
        sentry.rps, json.rps
    );
    let accepted = sentry.rps / json.rps;
    let stored = sentry_stored / json_stored;
    let mut out = Out::default();
    out.rows.push(
        Row::new(
            format!(
                "`POST /api/1/envelope/` (Sentry, one ~1 KB error event, a fresh event_id each), c={conc}, {} requests",
                thousands(n as f64)
            ),
            format!(
                "{} accepted/s, {}; {} stored/s end to end{}",
                thousands(sentry.rps),
                lat(sentry.p50, sentry.p99),
                thousands(sentry_stored),
                failures(&sentry)
            ),
        )
        .ceiling(
            format!(
                "`POST /api/v1/entries` (one entry), same load: {} accepted/s, {} stored/s",
                thousands(json.rps),
                thousands(json_stored)
            ),
            format!("{} accepted, {} stored", pct(accepted), pct(stored)),
        )
        .target(
            "≥ 80% of it",
            Some(accepted >= 0.8 && stored >= 0.8 && sentry.all_ok() && json.all_ok()),
        ),
    );
    Ok(out)
}

/// OTLP protobuf batches of 100 records at c=4 beside JSON batches of 100.
async fn otlp_batches(cx: &Ctx<'_>) -> anyhow::Result<Out> {
    const RECORDS: u64 = 100;
    const CONC: u64 = 4;
    let n = cx.plan.batches * 5;
    let (c, base, secret) = (cx.c.clone(), cx.base.clone(), cx.secret.clone());
    let body = bytes::Bytes::from(sdk::json_batch(RECORDS));
    let json: sdk::MakeRequest = Arc::new(move |_| {
        c.post(format!("{base}/api/v1/entries"))
            .bearer_auth(&secret)
            .header("content-type", "application/json")
            .body(body.clone())
    });
    let (json, json_stored) = load_and_settle(cx, n, CONC, RECORDS, json).await?;
    let (c, base, secret) = (cx.c.clone(), cx.base.clone(), cx.secret.clone());
    let bodies: Arc<Vec<bytes::Bytes>> =
        Arc::new((0..n).map(|i| sdk::otlp_batch(i, RECORDS).into()).collect());
    let otlp: sdk::MakeRequest = Arc::new(move |i| {
        c.post(format!("{base}/v1/logs"))
            .bearer_auth(&secret)
            .header("content-type", "application/x-protobuf")
            .body(bodies[i as usize].clone())
    });
    let (otlp, otlp_stored) = load_and_settle(cx, n, CONC, RECORDS, otlp).await?;
    let (json_rate, otlp_rate) = (json.rps * RECORDS as f64, otlp.rps * RECORDS as f64);
    eprintln!("bench: otlp {otlp_rate:.0} records/s, json batches {json_rate:.0} entries/s");
    let ratio = otlp_rate / json_rate;
    let mut out = Out::default();
    out.rows.push(
        Row::new(
            format!(
                "`POST /v1/logs` (OTLP protobuf, {RECORDS} records a request), c={CONC}, {} requests",
                thousands(n as f64)
            ),
            format!(
                "{} records/s accepted (p50 {} per request); {} stored/s end to end{}",
                thousands(otlp_rate),
                ms(otlp.p50),
                thousands(otlp_stored),
                failures(&otlp)
            ),
        )
        .ceiling(
            format!(
                "`POST /api/v1/entries` with {RECORDS}-entry arrays, same load: {} entries/s accepted, {} stored/s",
                thousands(json_rate),
                thousands(json_stored)
            ),
            pct(ratio),
        )
        .target("≥ 70% of it", Some(ratio >= 0.7 && otlp.all_ok() && json.all_ok())),
    );
    Ok(out)
}

/// The batch `hey` posts: 1000 entries like the fill's.
fn write_batch_file(work: &Path) -> anyhow::Result<PathBuf> {
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
    Ok(batch_file)
}

/// The same shape as the HTTP load: `batch_c` publishers at once, each
/// with a batch's worth (1000) of acknowledgements in flight.
async fn raw_batch_publish(bus: &Bus, plan: &Plan, raw_n: u64) -> anyhow::Result<Duration> {
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
    Ok(raw_started.elapsed())
}

/// End-to-end latency at a steady rate. The read API remembers a
/// verified password for a minute: one read first, so the first
/// requests do not all pay for argon2 at once.
async fn end_to_end(cx: &Ctx<'_>, (h50, h99): (Duration, Duration)) -> anyhow::Result<Out> {
    let Ctx {
        args,
        plan,
        c,
        base,
        bus,
        secret,
        ..
    } = cx;
    settle(c, base, bus).await?;
    let e2e = http::end_to_end(
        c,
        base,
        secret,
        (ADMIN, ADMIN_PASSWORD),
        plan.e2e_rate,
        plan.e2e_secs,
    )
    .await?;
    let (v50, v99) = (http::pct(&e2e.visible, 0.5), http::pct(&e2e.visible, 0.99));
    write_e2e_csv(&args.out.join("e2e.csv"), &e2e.samples)?;
    let errs = if e2e.errors > 0 {
        format!(
            " **({} failed: {})**",
            e2e.errors,
            e2e.first_error.clone().unwrap_or_default()
        )
    } else {
        String::new()
    };
    let mut out = Out::default();
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
    Ok(out)
}

/// Every sample, to see when slow ones happen.
fn write_e2e_csv(path: &Path, samples: &[(Duration, Duration, Duration)]) -> anyhow::Result<()> {
    let mut csv = String::from("sent_ms,post_ms,visible_ms\n");
    for (sent, post, visible) in samples {
        csv.push_str(&format!(
            "{:.3},{:.3},{:.3}\n",
            sent.as_secs_f64() * 1e3,
            post.as_secs_f64() * 1e3,
            visible.as_secs_f64() * 1e3
        ));
    }
    std::fs::write(path, csv)?;
    Ok(())
}

/// What the projector costs the seed form: the same c=64 load on
/// `minilog gateway` (split mode: ingestion only, no projector), with
/// serve stopped so nothing else applies the entries meanwhile.
async fn gateway_only(cx: &Ctx<'_>) -> anyhow::Result<Out> {
    let Ctx {
        plan, secret, nats, ..
    } = cx;
    let (mut gateway, gw_base) = start_gateway(cx).await?;
    let (mut ceilings, mut forms, mut cpus) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..HTTP_REPEATS {
        let ceiling = Load::get(format!("{gw_base}/healthz"), plan.http_n, 64)
            .run()
            .await?;
        let cpu0 = (gateway.cpu(), nats.cpu());
        let form = form_load(&gw_base, secret, plan.http_n, 64).run().await?;
        let per = |d: Duration| d.as_secs_f64() * 1e6 / form.n as f64;
        cpus.push((per(gateway.cpu() - cpu0.0), per(nats.cpu() - cpu0.1)));
        ceilings.push(ceiling);
        forms.push(form);
    }
    gateway.stop();
    let all_ok = forms.iter().all(|r| r.all_ok());
    let (ceiling, form) = (median(ceilings), median(forms));
    let cpu = cpus.iter().map(|c| c.0).sum::<f64>() / cpus.len() as f64;
    let nats_cpu = cpus.iter().map(|c| c.1).sum::<f64>() / cpus.len() as f64;
    eprintln!(
        "bench: gateway c=64: healthz {:.0}/s, form {:.0}/s",
        ceiling.rps, form.rps
    );
    let mut out = Out::default();
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
    Ok(out)
}

/// `minilog gateway` on a free port with its own data; answers it and its base URL.
async fn start_gateway(cx: &Ctx<'_>) -> anyhow::Result<(Proc, String)> {
    let gw_port = procs::free_port()?;
    let gw_base = format!("http://127.0.0.1:{gw_port}");
    let mut cmd = Command::new(&cx.args.minilog);
    cmd.arg("gateway")
        .arg("--nats-url")
        .arg(&cx.nats_url)
        .arg("--data")
        .arg(cx.work.join("gateway-data"))
        .arg("--listen")
        .arg(format!("127.0.0.1:{gw_port}"))
        .env("MINILOG_RATE_LIMIT", "1000000000")
        .env("MINILOG_LOG", "warn,async_nats=error");
    let mut gateway = Proc::spawn("minilog gateway", cmd, &cx.work.join("gateway.log"))?;
    http::wait_ready(&cx.c, &gw_base, Duration::from_secs(60), &mut || {
        gateway.check_alive()
    })
    .await?;
    Ok((gateway, gw_base))
}

/// Peak memory at each point the run took it.
fn memory_rows(mem: &Mems, plan: &Plan) -> Out {
    let size = thousands(plan.events as f64);
    let mem_row = |what: String, m: Mem| {
        Row::new(
            what,
            format!("{} (now {})", mib(m.hwm_mib()), mib(m.rss_mib())),
        )
    };
    let mut out = Out::default();
    out.rows.push(mem_row(
        "`minilog serve` peak RSS (VmHWM), idle: started, empty projection".into(),
        mem.serve_idle,
    ));
    out.rows.push(mem_row(
        format!("`minilog serve` peak RSS after catching up on {size}, before the read figures"),
        mem.serve_caught,
    ));
    out.rows.push(
        mem_row(
            format!("`minilog serve` peak RSS after catching up on {size} and the read figures"),
            mem.serve_million,
        )
        .target(
            "≤ 64 MiB",
            plan.judge_size()
                .then_some(mem.serve_million.hwm_kib <= 64 * 1024),
        ),
    );
    out.rows.push(mem_row(
        "`minilog serve` peak RSS at the end (after all HTTP load)".into(),
        mem.serve_end,
    ));
    out.rows
        .push(mem_row("nats-server peak RSS, idle".into(), mem.nats_idle));
    out.rows.push(mem_row(
        format!("nats-server peak RSS after the {size} (publish, reads, rebuild)"),
        mem.nats_million,
    ));
    out.rows.push(mem_row(
        "nats-server peak RSS at the end".into(),
        mem.nats_end,
    ));
    out
}
