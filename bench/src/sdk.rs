//! The SDK protocols' figures (issue 14): Sentry envelopes beside the
//! single-entry JSON path, OTLP protobuf batches beside JSON batches of
//! the same size. `hey` sends one body over and over, and these need a
//! fresh one per request (an SDK's event_id is new for every event; an
//! exporter's records have new times), so the runner loads them itself:
//! `c` tasks on one keep-alive client, each taking the next request
//! number, all paths measured the same way in the same run.

use crate::hey::HeyResult;
use ingest_gateway::otlp_messages as otlp;
use prost::Message as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Makes request number `i`.
pub type MakeRequest = Arc<dyn Fn(u64) -> reqwest::RequestBuilder + Send + Sync>;

/// `n` requests from `c` tasks; the wall time, and the answers in `hey`'s
/// terms (rate, p50/p99 latency, how many were 200).
pub async fn load(n: u64, c: u64, make: MakeRequest) -> (HeyResult, Duration) {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..c {
        let (next, make) = (next.clone(), make.clone());
        tasks.spawn(async move {
            let mut lat = Vec::new();
            let mut other = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let t = Instant::now();
                match make(i).send().await {
                    Ok(r) if r.status() == 200 => {
                        let _ = r.bytes().await;
                        lat.push(t.elapsed());
                    }
                    Ok(r) => other.push(format!("[{}]", r.status().as_u16())),
                    Err(e) => other.push(format!("{e}")),
                }
            }
            (lat, other)
        });
    }
    let (mut lat, mut other) = (Vec::new(), Vec::new());
    while let Some(Ok((l, o))) = tasks.join_next().await {
        lat.extend(l);
        other.extend(o);
    }
    let took = started.elapsed();
    lat.sort();
    let at = |q: f64| {
        lat.get(((lat.len() as f64 * q) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    other.truncate(5);
    (
        HeyResult {
            rps: lat.len() as f64 / took.as_secs_f64().max(1e-9),
            p50: at(0.5),
            p99: at(0.99),
            ok: lat.len() as u64,
            n,
            other,
        },
        took,
    )
}

/// One ~1 KB Sentry error event (a Python SDK's exception with three
/// frames and tags), in its envelope, with event id `i`.
pub fn envelope(i: u64) -> Vec<u8> {
    let event_id = format!("{:032x}", i + 0xbe9c_0000_0000_0000);
    let event = serde_json::json!({
        "event_id": event_id, "level": "error", "platform": "python",
        "timestamp": 1_800_000_000.0 + i as f64 / 1000.0,
        "release": "shop@1.2.3", "environment": "production", "server_name": "web-1",
        "sdk": {"name": "sentry.python", "version": "2.75.0"},
        "tags": {"order_id": i.to_string(), "region": "eu-1"},
        "exception": {"values": [{"type": "KeyError", "value": "'price for sku-1'",
            "mechanism": {"type": "generic", "handled": true},
            "stacktrace": {"frames": [
                {"filename": "shop/app.py", "function": "handle", "module": "shop.app",
                 "lineno": 88, "in_app": true, "context_line": "    return checkout(cart)",
                 "pre_context": ["def handle(request):", "    cart = load(request)"],
                 "post_context": [""]},
                {"filename": "shop/cart.py", "function": "checkout", "module": "shop.cart",
                 "lineno": 42, "in_app": true, "context_line": "    total = price(cart.items)",
                 "pre_context": ["def checkout(cart):"], "post_context": ["    return total"]},
                {"filename": "shop/prices.py", "function": "price", "module": "shop.prices",
                 "lineno": 9, "in_app": true, "context_line": "    return PRICES[item.sku]",
                 "pre_context": ["def price(items):"], "post_context": [""]}
            ]}}]}
    })
    .to_string();
    let mut out = format!("{{\"event_id\":\"{event_id}\",\"sent_at\":\"2027-01-15T08:00:00Z\"}}\n")
        .into_bytes();
    out.extend_from_slice(
        format!(
            "{{\"type\":\"event\",\"content_type\":\"application/json\",\"length\":{}}}\n",
            event.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(event.as_bytes());
    out.push(b'\n');
    out
}

/// An OTLP protobuf request of `records` log records (request `i`: its
/// own times), like an SDK's batch processor sends.
pub fn otlp_batch(i: u64, records: u64) -> Vec<u8> {
    let kv = |key: &str, value: otlp::Value| otlp::KeyValue {
        key: key.into(),
        value: Some(otlp::AnyValue { value: Some(value) }),
    };
    let log_records = (0..records)
        .map(|r| otlp::LogRecord {
            time_unix_nano: 1_800_000_000_000_000_000 + (i * records + r) * 1000,
            severity_number: 13,
            severity_text: "WARN".into(),
            body: Some(otlp::AnyValue {
                value: Some(otlp::Value::String(crate::stream::message_of(r + 1))),
            }),
            attributes: vec![kv("code.function", otlp::Value::String("checkout".into()))],
            trace_id: vec![0x5b; 16],
            span_id: vec![0xee; 8],
            ..otlp::LogRecord::default()
        })
        .collect();
    otlp::ExportLogsServiceRequest {
        resource_logs: vec![otlp::ResourceLogs {
            resource: Some(otlp::Resource {
                attributes: vec![kv("service.name", otlp::Value::String("web".into()))],
            }),
            scope_logs: vec![otlp::ScopeLogs {
                scope: None,
                log_records,
            }],
        }],
    }
    .encode_to_vec()
}

/// A JSON batch of `records` entries like [`otlp_batch`]'s.
pub fn json_batch(records: u64) -> Vec<u8> {
    let items: Vec<serde_json::Value> = (0..records)
        .map(|r| {
            serde_json::json!({"message": crate::stream::message_of(r + 1), "level": "warn",
                "source": "web", "meta": {"code.function": "checkout"}})
        })
        .collect();
    serde_json::to_vec(&items).expect("JSON")
}
