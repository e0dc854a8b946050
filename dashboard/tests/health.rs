//! `/readyz` as a load balancer's probe (issue 12, item 11): a projection a
//! few events behind during a write burst is still ready within
//! `--ready-max-lag`; `?max_lag=0` is the exact "caught up" check.

mod helpers;

use dashboard::Dashboard;
use helpers::spawn;
use proto::Level;
use std::net::SocketAddr;

#[tokio::test]
async fn readyz_tolerates_a_lag_up_to_the_limit_and_max_lag_0_is_exact() {
    let app = spawn().await;
    let at = app.log(None, Level::Info, "before the burst").await;
    // A dashboard whose projection stays at `at` while the stream moves on:
    // as a busy projector looks from outside, without a race.
    let behind = Dashboard::new(
        app.bus.clone(),
        app.projection.clone(),
        projector::rebuild::frozen_handle(at),
        std::sync::Arc::new(|| true),
    )
    .with_ready_max_lag(3);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(
            listener,
            behind
                .router()
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap()
    });
    let status = |query: &'static str| {
        let url = format!("{base}/readyz{query}");
        async move { reqwest::get(url).await.unwrap().status().as_u16() }
    };
    assert_eq!(status("").await, 200);
    for i in 0..3 {
        app.log(None, Level::Info, &format!("burst {i}")).await;
    }
    assert_eq!(status("").await, 200, "three behind is within the limit");
    assert_eq!(status("?max_lag=0").await, 503, "but not caught up");
    app.log(None, Level::Info, "one more").await;
    assert_eq!(status("").await, 503, "four behind is past it");
    assert_eq!(status("?max_lag=10").await, 200);
}
