//! `/healthz` (the process runs and reaches NATS, so writes can succeed)
//! and `/readyz` (the key registry and the projector have caught up with
//! the stream).

use crate::Dashboard;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use projector::Status;
use serde_json::json;

pub fn routes() -> Router<Dashboard> {
    Router::new()
        .route(
            "/healthz",
            get(|State(d): State<Dashboard>| async move { liveness(&d.inner.bus) }),
        )
        .route("/readyz", get(readyz))
}

/// `200 ok` while connected to NATS; `503` while not (every write would
/// fail), whatever the reason: the embedded server restarting, a network
/// gone. Shared by every command that serves HTTP.
pub fn liveness(bus: &proto::bus::Bus) -> axum::response::Response {
    if bus.is_connected() {
        (StatusCode::OK, "ok").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(axum::http::header::RETRY_AFTER, "2")],
            "NATS is unreachable: entries cannot be stored right now\n",
        )
            .into_response()
    }
}

#[derive(serde::Deserialize)]
struct ReadyParams {
    /// Events the projection may be behind and still be ready (default:
    /// the dashboard's `--ready-max-lag`); `0` is the exact "caught up"
    /// check tests wait on.
    max_lag: Option<u64>,
}

async fn readyz(
    State(d): State<Dashboard>,
    axum::extract::Query(params): axum::extract::Query<ReadyParams>,
) -> impl IntoResponse {
    let max_lag = params.max_lag.unwrap_or(d.inner.ready_max_lag);
    let applied = *d.inner.projector.applied.borrow();
    // Effects complete up to here (a resolve-all may still be in chunks).
    let settled = *d.inner.projector.settled.borrow();
    let status = d.inner.projector.status.borrow().clone();
    let keys_loaded = (d.inner.keys_loaded)();
    let (stream_last, reason) = match d.inner.bus.last_seq().await {
        Ok(n) => (Some(n), None),
        Err(e) => (None, Some(format!("cannot read the event log: {e:#}"))),
    };
    let reason = match status {
        Status::Stopped { reason, .. } | Status::Failing { reason } => Some(reason),
        Status::Running => reason,
    };
    // A frozen projection (`view --read-only`) is as caught up as it will be.
    let caught_up =
        d.is_read_only() || stream_last.is_some_and(|last| settled.saturating_add(max_lag) >= last);
    let ready = caught_up && keys_loaded && reason.is_none();
    let mut body = json!({
        "ready": ready,
        "applied_seq": applied,
        "stream_last_seq": stream_last,
        "keys_loaded": keys_loaded,
    });
    if let Some(reason) = reason {
        body["reason"] = json!(reason);
    }
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}
