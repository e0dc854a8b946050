//! Direct NATS ingestion (docs/api.md, "NATS").
//!
//! - Durable: programs JetStream-publish to `minilog.ingest.<anything>`;
//!   `MINILOG_INGEST` (a work queue) holds the submission until a gateway
//!   has handled it. Every gateway reads through one shared durable pull
//!   consumer, so each submission goes to one of them. The `Logged` event
//!   gets the message id `ingest:<stream created>:<sequence>`, and the
//!   submission is acked only after JetStream stored the event: a gateway
//!   that dies in between leaves it to be delivered again, and the
//!   republished event is dropped as a duplicate. Invalid submissions, and
//!   ones over their key's rate limit (dropped), are acked and counted.
//!   A `Minilog-Reply-To` header names a subject for the outcome.
//! - Synchronous: core NATS requests to `minilog.submit.<anything>`,
//!   answered by one gateway of the queue group once the event is stored.
//!
//! Both validate exactly like HTTP: the same key check, the same
//! `proto::input::json_item`, the same rate limit.

use crate::error::{ApiError, KeyRefusal};
use crate::publish::{MessageIds, Submission};
use crate::retry::{backoff, open_until};
use crate::stats::Path;
use crate::{Gateway, publish};
use bytes::Bytes;
use proto::bus::{IngestMessage, SubmitRequest};
use proto::input::{IdempotencyKey, NewEntry};
use serde_json::{Value, json};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// The header that names where the outcome of a durable submission goes.
pub const REPLY_TO_HEADER: &str = "Minilog-Reply-To";

/// The message id of the event made from ingest submission `seq`.
pub fn ingest_msg_id(stream_created: i128, seq: u64) -> String {
    format!("ingest:{stream_created}:{seq}")
}

/// Reads a submission: a JSON object, or MessagePack of the same.
fn parse_body(payload: &[u8]) -> Result<Value, ApiError> {
    let first = payload.iter().find(|b| !b.is_ascii_whitespace());
    let value: Value = match first {
        Some(b'{') => {
            let text = std::str::from_utf8(payload).map_err(|_| ApiError::InvalidUtf8)?;
            serde_json::from_str(text).map_err(|e| ApiError::InvalidJson(e.to_string()))?
        }
        _ => rmp_serde::from_slice(payload).map_err(|_| ApiError::InvalidBody)?,
    };
    if value.is_object() {
        Ok(value)
    } else {
        Err(ApiError::InvalidBody)
    }
}

/// Validates and stores one submission; its id (stream sequence).
async fn submit(
    gw: &Gateway,
    payload: &[u8],
    msg_id: impl FnOnce(&str, &NewEntry) -> Option<String>,
) -> Result<u64, ApiError> {
    let value = parse_body(payload)?;
    let presented = match value.get("key") {
        Some(Value::String(k)) if !k.trim().is_empty() => Ok(k.trim().as_bytes()),
        _ => Err(KeyRefusal::Missing),
    };
    let key_id = gw.authenticate(presented)?;
    let entry =
        proto::input::json_item(&value, &gw.config().limits).map_err(ApiError::InvalidField)?;
    let id = msg_id(&key_id, &entry);
    let published = gw
        .store(Submission {
            path: Path::Nats,
            ip: None,
            key_id,
            entries: vec![entry],
            ids: MessageIds::Given(vec![id]),
            untrusted: false,
        })
        .await?;
    Ok(published.ids.first().copied().unwrap_or_default())
}

/// The answer a requester (or a `Minilog-Reply-To` subject) gets.
fn outcome_body(outcome: &Result<u64, ApiError>) -> Bytes {
    let value = match outcome {
        Ok(id) => json!({ "id": id }),
        Err(e) => {
            let mut error = json!({ "code": e.code(), "message": e.to_string() });
            match e {
                ApiError::RateLimited { retry_after } => error["retry_after"] = json!(retry_after),
                ApiError::Unavailable {
                    disk_free: Some(_), ..
                } => error["retry_after"] = json!(30),
                ApiError::Starting | ApiError::Unavailable { .. } => {
                    error["retry_after"] = json!(1);
                }
                _ => {}
            }
            json!({ "error": error })
        }
    };
    Bytes::from(value.to_string())
}

/// Handles one durable submission; false if it was left unacked on
/// purpose (`stop_before_ack`).
async fn handle_ingest(gw: &Gateway, msg: IngestMessage, stream_created: i128) -> bool {
    let outcome = submit(gw, msg.payload(), |_, _| {
        Some(ingest_msg_id(stream_created, msg.seq))
    })
    .await;
    // The event log refusing an event is retried for a while (a stream
    // being recreated), then counted as refused rather than retried for ever.
    let given_up = matches!(outcome, Err(ApiError::Internal { .. })) && msg.delivered >= 20;
    match &outcome {
        // Not decided: deliver it again later (to this or another gateway).
        Err(
            e @ (ApiError::Starting | ApiError::Unavailable { .. } | ApiError::Internal { .. }),
        ) if !given_up => {
            if msg.delivered == 1 {
                tracing::warn!(seq = msg.seq, error = %e, "direct submission not stored yet; will retry");
            }
            if let Err(e) = msg.retry_later(Duration::from_secs(1)).await {
                tracing::debug!(error = %e, "returning a submission");
            }
            return true;
        }
        Err(e) => gw.reject(Path::Nats, e),
        Ok(_) => {}
    }
    if gw.config().nats.stop_before_ack && outcome.is_ok() {
        return false;
    }
    if let Err(e) = msg.ack().await {
        // It will be delivered again; the event's message id makes the
        // second publish a duplicate.
        tracing::warn!(error = %e, "acking a direct submission");
    }
    if let Some(to) = msg.header(REPLY_TO_HEADER) {
        if gw.bus().subjects().answerable(to) {
            if let Err(e) = gw.bus().answer(to.to_owned(), outcome_body(&outcome)).await {
                tracing::debug!(error = %e, "answering a direct submission");
            }
        } else {
            gw.counters().rejected(Path::Nats, "invalid_reply_to");
        }
    }
    true
}

/// Drains `MINILOG_INGEST` until `shutdown`, reopening the reader after a
/// reconnection or an error.
pub(crate) async fn drain(gw: Gateway, shutdown: impl Future<Output = ()> + Send + 'static) {
    tokio::pin!(shutdown);
    let bus = gw.bus().clone();
    let permits = Arc::new(Semaphore::new(gw.config().nats.concurrency.max(1)));
    let mut failures: u32 = 0;
    loop {
        let mut connections = bus.connections();
        let ack_wait = gw.config().nats.ack_wait;
        let Some(mut reader) = open_until("opening the ingest reader", &mut shutdown, || {
            bus.read_ingest(ack_wait)
        })
        .await
        else {
            return;
        };
        let created = reader.stream_created;
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => return,
                Ok(()) = connections.changed() => break,
                next = reader.next() => match next {
                    Some(Ok(msg)) => {
                        failures = 0;
                        if gw.config().nats.stop_before_ack {
                            if !handle_ingest(&gw, msg, created).await {
                                tracing::warn!("stopping before the ack (test hook)");
                                // Keep the reader (and its unacked
                                // messages) until shutdown, like a hung
                                // process.
                                shutdown.as_mut().await;
                                return;
                            }
                            continue;
                        }
                        let Ok(permit) = permits.clone().acquire_owned().await else {
                            return;
                        };
                        let worker = gw.clone();
                        gw.spawn(async move {
                            handle_ingest(&worker, msg, created).await;
                            drop(permit);
                        });
                    }
                    Some(Err(e)) => {
                        failures += 1;
                        if failures == 1 {
                            tracing::warn!(error = %format!("{e:#}"), "reading the ingest stream");
                        }
                        if backoff(failures, &mut shutdown).await {
                            return;
                        }
                        if failures > 3 {
                            break;
                        }
                    }
                    None => break,
                },
            }
        }
    }
}

async fn handle_request(gw: &Gateway, req: SubmitRequest) {
    // The gateway answers with full rights: a reply subject outside the
    // requester's inbox (the event log, `$JS.API…`) is refused before
    // anything is stored, since the requester could not read an answer.
    if let Some(reply) = &req.reply
        && !gw.bus().subjects().answerable(reply)
    {
        tracing::debug!(reply, "refusing a submit request's reply subject");
        gw.counters().rejected(Path::Nats, "invalid_reply_to");
        return;
    }
    // The same rule as over HTTP: a bad key is refused, not ignored.
    let outcome = match req
        .header("Idempotency-Key")
        .map(|k| IdempotencyKey::parse(k.as_bytes()))
        .transpose()
    {
        Ok(idempotency) => {
            submit(gw, &req.payload, |key_id, entry| {
                publish::msg_ids(key_id, idempotency.as_ref(), std::slice::from_ref(entry))
                    .remove(0)
            })
            .await
        }
        Err(_) => Err(ApiError::InvalidIdempotencyKey),
    };
    if let Err(e) = &outcome {
        gw.reject(Path::Nats, e);
    }
    if let Some(reply) = req.reply
        && let Err(e) = gw.bus().answer(reply, outcome_body(&outcome)).await
    {
        tracing::debug!(error = %e, "answering a submit request");
    }
}

/// Answers `minilog.submit.>` requests until `shutdown`.
pub(crate) async fn answer_requests(
    gw: Gateway,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    tokio::pin!(shutdown);
    let permits = Arc::new(Semaphore::new(gw.config().nats.concurrency.max(1)));
    loop {
        let Some(mut requests) =
            open_until("subscribing to submit requests", &mut shutdown, || {
                gw.bus().submit_requests()
            })
            .await
        else {
            return;
        };
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => return,
                next = requests.next() => match next {
                    Some(req) => {
                        let Ok(permit) = permits.clone().acquire_owned().await else {
                            return;
                        };
                        let worker = gw.clone();
                        gw.spawn(async move {
                            handle_request(&worker, req).await;
                            drop(permit);
                        });
                    }
                    None => break,
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_json_or_messagepack_objects() {
        let json = parse_body(br#" {"key": "s", "message": "abc"}"#).unwrap();
        assert_eq!(json["message"], "abc");
        let mp =
            rmp_serde::to_vec_named(&json!({"key": "s", "message": "abc", "level": 40})).unwrap();
        let v = parse_body(&mp).unwrap();
        assert_eq!(v["level"], 40);
        assert!(matches!(
            parse_body(b"\xff\x00garbage"),
            Err(ApiError::InvalidBody)
        ));
        assert!(matches!(parse_body(b"[1, 2]"), Err(ApiError::InvalidBody)));
        assert!(matches!(
            parse_body(b"{nope"),
            Err(ApiError::InvalidJson(_))
        ));
        assert!(matches!(parse_body(b""), Err(ApiError::InvalidBody)));
    }

    #[test]
    fn outcomes_read_like_the_http_errors() {
        let ok: Result<u64, ApiError> = Ok(7);
        assert_eq!(outcome_body(&ok), Bytes::from(r#"{"id":7}"#));
        let limited: Result<u64, ApiError> = Err(ApiError::RateLimited { retry_after: 3 });
        let v: Value = serde_json::from_slice(&outcome_body(&limited)).unwrap();
        assert_eq!(v["error"]["code"], "rate_limited");
        assert_eq!(v["error"]["retry_after"], 3);
    }
}
