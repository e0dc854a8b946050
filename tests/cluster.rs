//! The cluster layout of `docker-compose.yml`, as processes on loopback: a
//! 3-node JetStream cluster with credentials, the stream with 3 replicas,
//! two `minilog gateway`s and one `minilog view`. Clients send a steady
//! stream of entries with idempotency keys (retrying 503s and refused
//! connections on the other gateway); the stream's leader node is killed
//! with SIGKILL midway. Ingestion resumes after the election, and every
//! entry that got a 200 is in the projection exactly once.

mod common;

use common::serve_args;
use minilog::config::{ServeArgs, ViewArgs};
use minilog::shutdown::Shutdown;
use minilog::split::{GatewayApp, ViewApp};
use projector::{Query, Resolved};
use proto::bus::{Bus, NatsAuth, NatsConfig, StreamSettings};
use proto::commands::{self, KeySpec};
use proto::event::Actor;
use proto::subjects::Subjects;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use testkit::NatsCluster;

const PASSWORD: &str = "cluster-minilog-password";
const AUTH: &str = r#"
authorization {
  users = [
    { user: minilog, password: "cluster-minilog-password" }
    { user: ingest, password: "cluster-ingest-password",
      permissions: {
        publish: { allow: ["minilog.ingest.>", "minilog.submit.>"] }
        subscribe: { allow: ["_INBOX.>"], deny: ["_MINILOG_INBOX.>"] } } }
  ]
}
"#;
const CLIENTS: usize = 4;
const PER_CLIENT: usize = 150;

fn args(data: &std::path::Path, urls: &str) -> ServeArgs {
    let mut a = serve_args(data, Some(urls.to_owned()));
    a.nats.nats_user = Some("minilog".into());
    a.nats.nats_password = Some(PASSWORD.into());
    a.stream_replicas = 3;
    a
}

/// Waits until the cluster has a JetStream meta leader and the stream
/// with three replicas exists (the first election takes a few seconds).
async fn cluster_bus(urls: &str) -> Bus {
    let bus = Bus::connect(
        &NatsConfig {
            url: urls.to_owned(),
            auth: NatsAuth::UserPassword {
                user: "minilog".into(),
                password: PASSWORD.into(),
            },
            name: "cluster test".into(),
        },
        Subjects::default(),
    )
    .await
    .unwrap();
    let settings = StreamSettings {
        replicas: 3,
        ..Default::default()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match bus.ensure_streams(&settings).await {
            Ok(()) => return bus,
            Err(e) if Instant::now() < deadline => {
                tracing::debug!("cluster not ready yet: {e:#}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("the cluster did not get ready: {e:#}"),
        }
    }
}

/// One acknowledged entry: who sent it, and its id.
#[derive(Default)]
struct Log {
    acked: BTreeMap<String, u64>,
    times: Vec<Instant>,
    retries: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_three_node_cluster_survives_the_stream_leader_being_killed() {
    let mut cluster = NatsCluster::start(3, Some(AUTH));
    let urls = cluster.urls();
    let bus = cluster_bus(&urls).await;

    let stop = Shutdown::default();
    let mut gateways = Vec::new();
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let dir = tempfile::tempdir().unwrap();
        let app = GatewayApp::build(args(dir.path(), &urls)).await.unwrap();
        gateways.push(format!("http://127.0.0.1:{}", app.port()));
        tasks.push(tokio::spawn(app.run(stop.wait())));
    }
    let view_dir = tempfile::tempdir().unwrap();
    let view = ViewApp::build(ViewArgs {
        serve: args(view_dir.path(), &urls),
        db: None,
        read_only: false,
    })
    .await
    .unwrap();
    let projection = view.projection().clone();
    let handle = view.projector();
    tasks.push(tokio::spawn(view.run(stop.wait())));

    let key = commands::create_key(
        &bus,
        KeySpec {
            rate_limit: Some(1_000_000),
            ..KeySpec::described("cluster client")
        },
        Actor::Cli,
    )
    .await
    .unwrap();
    let secret = key.secret.expose().to_owned();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    for g in &gateways {
        testkit::browser::wait_ready(&http, g).await;
    }

    // Steady senders: one entry per request, each with its own
    // Idempotency-Key, retried (same key, the other gateway) until a 200.
    let log = Arc::new(Mutex::new(Log::default()));
    let mut senders = Vec::new();
    for c in 0..CLIENTS {
        let (http, gateways, log, secret) =
            (http.clone(), gateways.clone(), log.clone(), secret.clone());
        senders.push(tokio::spawn(async move {
            for i in 0..PER_CLIENT {
                let name = format!("c{c}-{i}");
                let mut attempt = 0;
                let id = loop {
                    let g = &gateways[(c + attempt) % gateways.len()];
                    let sent = http
                        .post(format!("{g}/api/v1/entries"))
                        .bearer_auth(&secret)
                        .header("idempotency-key", &name)
                        .json(&json!({"message": name, "level": "error"}))
                        .send()
                        .await;
                    match sent {
                        Ok(r) if r.status() == 200 => {
                            let body: Value = r.json().await.unwrap();
                            break body["ids"][0].as_u64().unwrap();
                        }
                        Ok(r) if r.status() == 503 || r.status() == 504 => {}
                        Ok(r) => {
                            let status = r.status();
                            panic!("{name}: unexpected {status}: {}", r.text().await.unwrap())
                        }
                        Err(_) => {}
                    }
                    attempt += 1;
                    log.lock().unwrap().retries += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                };
                let mut l = log.lock().unwrap();
                l.acked.insert(name, id);
                l.times.push(Instant::now());
            }
        }));
    }

    // A third of the way in, SIGKILL the node that leads the stream.
    loop {
        if log.lock().unwrap().acked.len() >= CLIENTS * PER_CLIENT / 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let leader = bus
        .stream_leader()
        .await
        .unwrap()
        .expect("a replicated stream has a leader");
    let killed_at = Instant::now();
    let before_kill = log.lock().unwrap().acked.len();
    cluster.node(&leader).kill();
    for s in senders {
        s.await.unwrap();
    }
    let total_time = killed_at.elapsed();

    let l = std::mem::take(&mut *log.lock().unwrap());
    let mut times = l.times.clone();
    times.sort();
    let longest_gap = times.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    println!(
        "cluster: killed stream leader {leader} after {before_kill} acked entries; longest gap \
         between two 200s {:.2} s; {} retries; all {} acked {:.2} s after the kill",
        longest_gap.as_secs_f64(),
        l.retries,
        l.acked.len(),
        total_time.as_secs_f64()
    );
    assert_eq!(l.acked.len(), CLIENTS * PER_CLIENT);
    let new_leader = bus.stream_leader().await.unwrap().unwrap();
    assert_ne!(new_leader, leader);

    // Every acknowledged entry is in the projection exactly once, with
    // the id its 200 answered.
    let last = bus.last_seq().await.unwrap();
    let caught_up = Instant::now();
    let waited = tokio::time::timeout(Duration::from_secs(45), handle.wait_for(last)).await;
    assert!(
        matches!(waited, Ok(true)),
        "the view did not catch up: applied {}, stream {last}, status {:?}",
        *handle.applied.borrow(),
        *handle.status.borrow()
    );
    println!(
        "cluster: the view applied everything {:.2} s after the senders finished",
        caught_up.elapsed().as_secs_f64()
    );
    let mut seen: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut before = None;
    loop {
        let page = projection
            .page(&Query {
                resolved: Resolved::All,
                before,
                limit: 500,
                ..Default::default()
            })
            .unwrap();
        for (id, e) in &page.entries {
            seen.entry(e.message.clone()).or_default().push(*id);
        }
        match page.next_before {
            Some(b) => before = Some(b),
            None => break,
        }
    }
    let dups: Vec<_> = seen.iter().filter(|(_, ids)| ids.len() > 1).collect();
    assert!(dups.is_empty(), "duplicated entries: {dups:?}");
    for (name, id) in &l.acked {
        assert_eq!(seen.get(name), Some(&vec![*id]), "{name}");
    }
    let extra: BTreeSet<_> = seen.keys().filter(|m| !l.acked.contains_key(*m)).collect();
    assert!(extra.is_empty(), "entries nobody got a 200 for: {extra:?}");

    stop.trigger();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
}
