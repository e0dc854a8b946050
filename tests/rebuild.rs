//! `minilog rebuild`, `rebuild --until --out`, `view --read-only` and the
//! schema-version rebuild on start, as real child processes over the
//! embedded nats-server, with real redb files.

use serde_json::{Value, json};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;
use testkit::browser::wait_ready;

const BIN: &str = env!("CARGO_BIN_EXE_minilog");
const ADMIN_PASSWORD: &str = "rebuild-admin-pass";

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn command(data: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .arg("--data")
        .arg(data)
        .env("MINILOG_NATS_SERVER_BIN", testkit::nats_server_bin())
        .env("MINILOG_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("MINILOG_LOG", "warn");
    cmd
}

/// A long-running command, its stderr into `log`.
fn spawn(data: &Path, args: &[&str], log: &Path) -> Proc {
    let err = std::fs::File::create(log).unwrap();
    Proc(
        command(data, args)
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("starting minilog"),
    )
}

fn run(data: &Path, args: &[&str]) -> Output {
    command(data, args).output().expect("running minilog")
}

async fn wait_listening(http: &reqwest::Client, base: &str) {
    for _ in 0..1000 {
        if http.get(format!("{base}/healthz")).send().await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{base} did not listen");
}

fn sigterm_and_wait(p: &mut Proc) {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(p.0.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    assert!(p.0.wait().unwrap().success());
}

fn dump(path: &Path) -> projector::dump::Dump {
    projector::Projection::open(path, 4 << 20)
        .unwrap()
        .dump()
        .unwrap()
}

#[tokio::test]
async fn rebuild_time_travel_read_only_view_and_schema_rebuild_on_start() {
    let data = tempfile::tempdir().unwrap();
    let d = data.path();
    let http = reqwest::Client::new();
    let port = testkit::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let serve_args = ["serve", "--listen", &format!("127.0.0.1:{port}")];
    let mut serve = spawn(d, &serve_args, &d.join("serve-1.log"));
    wait_ready(&http, &base).await;

    let out = run(d, &["key", "create", "--description", "billing", "--json"]);
    assert!(out.status.success());
    let secret = serde_json::from_slice::<Value>(&out.stdout).unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_ready(&http, &base).await;
    let items: Vec<Value> = (0..30)
        .map(|i| json!({"message": format!("entry {i}"), "level": "error"}))
        .collect();
    let r = http
        .post(format!("{base}/api/v1/entries"))
        .bearer_auth(&secret)
        .json(&items)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let ids: Vec<u64> =
        serde_json::from_value(r.json::<Value>().await.unwrap()["ids"].clone()).unwrap();
    let before_resolve = *ids.last().unwrap();
    let r = http
        .post(format!("{base}/api/v1/entries/{}/resolve", ids[0]))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // While serve runs: rebuilding its projection is refused, clearly.
    let refused = run(d, &["rebuild"]);
    assert!(!refused.status.success());
    let msg = String::from_utf8_lossy(&refused.stderr);
    assert!(
        msg.contains("is in use") && msg.contains("Stop it first"),
        "{msg}"
    );

    // …but the past can go into another file: plain progress lines (no
    // terminal here), and a summary.
    let past = d.join("past.redb");
    let out = run(
        d,
        &[
            "rebuild",
            "--until",
            &before_resolve.to_string(),
            "--out",
            past.to_str().unwrap(),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!("rebuild up to sequence {before_resolve}: done,")),
        "{err}"
    );
    assert!(!err.contains('\r'), "no bar without a terminal: {err:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("up to sequence {before_resolve}"))
    );
    let until_time = run(d, &["rebuild", "--until", "yesterday", "--out", "x.redb"]);
    assert!(!until_time.status.success());
    assert!(String::from_utf8_lossy(&until_time.stderr).contains("RFC 3339"));

    // The past, served read-only: everything open, and no actions.
    let vport = testkit::free_port();
    let vbase = format!("http://127.0.0.1:{vport}");
    let _view = spawn(
        d,
        &[
            "view",
            "--read-only",
            "--db",
            past.to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{vport}"),
        ],
        &d.join("view.log"),
    );
    wait_listening(&http, &vbase).await;
    let page: Value = http
        .get(format!("{vbase}/api/v1/entries?limit=200"))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["entries"].as_array().unwrap().len(), 30, "{page}");
    assert_eq!(page["applied_seq"], before_resolve);
    let r = http
        .post(format!("{vbase}/api/v1/entries/{}/unresolve", ids[1]))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    drop(_view);
    // A file it cannot serve as it is: refused, never replaced.
    let missing = run(d, &["view", "--read-only", "--db", "missing.redb"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("is not a projection"));
    projector::rebuild::set_schema_version(&past, 0).unwrap();
    let other = run(d, &["view", "--read-only", "--db", past.to_str().unwrap()]);
    assert!(!other.status.success());
    assert!(String::from_utf8_lossy(&other.stderr).contains("schema version 0"));
    assert_eq!(projector::rebuild::schema_version(&past).unwrap(), Some(0));

    // Serve stopped: the rebuild replaces the file, equal row by row.
    sigterm_and_wait(&mut serve);
    let db = d.join("projection.redb");
    let live = dump(&db);
    let out = run(d, &["rebuild"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("rebuild: done, "), "{err}");
    assert_eq!(dump(&db), live);
    assert!(!d.join("projection.redb.rebuild").exists());

    // Another schema version: serve rebuilds on start, saying so.
    projector::rebuild::set_schema_version(&db, 0).unwrap();
    let log = d.join("serve-2.log");
    let mut serve = spawn(d, &serve_args, &log);
    wait_ready(&http, &base).await;
    let err = std::fs::read_to_string(&log).unwrap();
    assert!(
        err.contains("schema change: rebuilding the projection: done, "),
        "{err}"
    );
    let page: Value = http
        .get(format!("{base}/api/v1/entries?resolved=all&limit=200"))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["entries"].as_array().unwrap().len(), 30);
    sigterm_and_wait(&mut serve);
    assert_eq!(dump(&db), live);
}
