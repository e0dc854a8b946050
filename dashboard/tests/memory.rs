//! Memory under a burst of wrong passwords (issue 12, item 3): argon2
//! takes 19 MiB per hash, and each wrong password used to run on a thread
//! of its own (48 at once took a process from 12 MiB to 1.2 GiB). Alone in
//! its test binary, so no other test's memory is counted.

mod helpers;

use base64::Engine;
use futures::future::join_all;
use helpers::spawn;

fn rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib / 1024
}

#[tokio::test]
async fn a_burst_of_wrong_passwords_from_many_addresses_keeps_memory_flat() {
    let app = spawn().await;
    let http = reqwest::Client::new();
    let get = |i: usize| {
        let (http, base) = (&http, &app.base);
        async move {
            let auth = base64::engine::general_purpose::STANDARD.encode(format!("admin:wrong-{i}"));
            http.get(format!("{base}/api/v1/entries"))
                .header("authorization", format!("Basic {auth}"))
                .header(
                    "x-forwarded-for",
                    format!("10.1.{}.{}", i / 250, i % 250 + 1),
                )
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    // Warm up: the dummy hash, the threads, the first allocations.
    get(1000).await;
    let before = rss_mib();
    for round in 0..3 {
        let statuses = join_all((0..48).map(|i| get(round * 48 + i))).await;
        assert!(
            statuses.iter().all(|s| *s == 401 || *s == 429),
            "{statuses:?}"
        );
    }
    let after = rss_mib();
    // Two hashing threads, each with its one 19 MiB buffer, whatever the
    // burst (it grew by 170 MiB when each hash allocated its own).
    assert!(
        after.saturating_sub(before) < 80,
        "RSS went from {before} MiB to {after} MiB"
    );
}
