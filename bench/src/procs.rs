//! The processes a run starts (nats-server, `minilog serve`), stopped on
//! drop (SIGTERM, then SIGKILL), and their memory from `/proc`.

use anyhow::{Context, bail};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Peak and current resident memory of a process, in KiB.
#[derive(Clone, Copy, Debug, Default)]
pub struct Mem {
    pub hwm_kib: u64,
    pub rss_kib: u64,
}

impl Mem {
    pub fn hwm_mib(&self) -> f64 {
        self.hwm_kib as f64 / 1024.0
    }
    pub fn rss_mib(&self) -> f64 {
        self.rss_kib as f64 / 1024.0
    }
}

pub fn mem_of(pid: u32) -> anyhow::Result<Mem> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    Ok(Mem {
        hwm_kib: field("VmHWM:"),
        rss_kib: field("VmRSS:"),
    })
}

/// CPU time (user + system) a process has used so far.
pub fn cpu_of(pid: u32) -> Duration {
    let ticks = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the command name (which is in parentheses).
            let rest = s.get(s.rfind(')')? + 2..)?.to_owned();
            let f: Vec<&str> = rest.split_whitespace().collect();
            // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0);
    Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64)
}

fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100)
    })
}

/// A child process that is stopped when dropped, also on error paths.
pub struct Proc {
    pub name: String,
    child: Option<Child>,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> anyhow::Result<Proc> {
        let file =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        cmd.stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {name} ({:?})", cmd.get_program()))?;
        Ok(Proc {
            name: name.to_owned(),
            child: Some(child),
            log: log.to_owned(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub fn cpu(&self) -> Duration {
        cpu_of(self.pid())
    }

    pub fn mem(&self) -> anyhow::Result<Mem> {
        mem_of(self.pid())
    }

    /// Fails if the process has exited already.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(child) = &mut self.child
            && let Some(status) = child.try_wait()?
        {
            bail!(
                "{} exited ({status}); see {}",
                self.name,
                self.log.display()
            );
        }
        Ok(())
    }

    /// SIGTERM, up to 15 s for a clean exit, then SIGKILL.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(None) = child.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
        }
        let _ = child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Waits until something listens on `port`.
pub fn wait_listening(port: u16, within: Duration, proc: &mut Proc) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        proc.check_alive()?;
        if Instant::now() > deadline {
            bail!(
                "{} did not listen on port {port} within {within:?}; see {}",
                proc.name,
                proc.log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// A nats-server with JetStream on a free loopback port and its own store.
/// Starts a JetStream nats-server; `sync` is its `sync_interval`
/// (`always`, a duration like `1s`, or `default` for nats-server's own,
/// about two minutes), the setting minilog's `--nats-sync` gives the
/// embedded server.
pub fn start_nats(bin: &Path, dir: &Path, sync: &str) -> anyhow::Result<(Proc, String)> {
    let port = free_port()?;
    std::fs::create_dir_all(dir)?;
    let mut cmd = Command::new(bin);
    cmd.args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
        .arg(dir.join("store"));
    // As minilog's embedded server runs (src/embedded.rs, MEMORY_LIMIT).
    if std::env::var_os("GOMEMLIMIT").is_none() {
        cmd.env("GOMEMLIMIT", "64MiB");
    }
    if sync != "default" {
        let conf = dir.join("nats.conf");
        std::fs::write(&conf, format!("jetstream {{ sync_interval: {sync} }}\n"))?;
        cmd.arg("-c").arg(conf);
    }
    let mut proc = Proc::spawn("nats-server", cmd, &dir.join("nats-server.log"))?;
    wait_listening(port, Duration::from_secs(15), &mut proc)?;
    Ok((proc, format!("nats://127.0.0.1:{port}")))
}

pub fn nats_version(bin: &Path) -> String {
    Command::new(bin)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}
