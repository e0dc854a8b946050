//! The Sentry SDK protocol (docs/api.md, "Sentry SDK protocol"): programs
//! that carry a Sentry SDK report to minilog by changing only their DSN.
//!
//! - `POST /api/<n>/envelope/`: an envelope ([`envelope`]); `event` and
//!   `log` items become entries ([`event`]), every other item is counted
//!   and passed over.
//! - `POST /api/<n>/store/`: one event, as JSON (or base64 of zlib).
//! - `POST /api/<n>/security/`: browsers' CSP violation reports ([`csp`]).
//!
//! The key comes from `X-Sentry-Auth` (or `Authorization: Sentry …`),
//! `?sentry_key=`, or the envelope header's `dsn`; all that are given must
//! agree. It is the key's DSN key, or for browsers (a public DSN) the key
//! id, accepted only from the key's origins, under the per-address limit,
//! and marked untrusted. Everything ends in the one ingestion tail
//! ([`Gateway::store`]), with an event's message id
//! `<key_id>:sentry:<event_id>`, so an SDK's retry is stored once.

mod csp;
mod envelope;
mod event;

use crate::browser::{add_cors, origin};
use crate::error::{ApiError, KeyRefusal};
use crate::publish::{MessageIds, Submission};
use crate::registry::Lookup;
use crate::stats::Path;
use crate::{Gateway, body, decode};
use axum::Json;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use proto::input::NewEntry;
use serde_json::{Map, Value, json};

/// The answer headers a browser SDK may read.
const EXPOSED: &str = "retry-after, x-sentry-rate-limits";

/// Largest envelope or event once decompressed.
const MAX_DECOMPRESSED: usize = 16 * 1024 * 1024;
/// Largest `event` item (and `/store/` body).
const MAX_EVENT: usize = 1024 * 1024;
/// Most entries one envelope may make (log items can hold many records).
const MAX_ENTRIES: usize = crate::error::MAX_BATCH;

/// Item types the SDKs send that minilog passes over, by name for the
/// counters (any other name counts as `other`, so a client cannot make up
/// counter labels).
const KNOWN_SKIPPED: &[&str] = &[
    "transaction",
    "session",
    "sessions",
    "client_report",
    "attachment",
    "span",
    "profile",
    "profile_chunk",
    "replay_event",
    "replay_recording",
    "replay_video",
    "check_in",
    "statsd",
    "metric_meta",
    "feedback",
    "user_report",
    "otel_log",
    "trace_metric",
];

/// Who sent a request, once its key is checked.
struct Sender {
    key_id: String,
    /// A public DSN from a browser: the origin it came from.
    browser_origin: Option<String>,
}

pub(crate) async fn envelope(State(gw): State<Gateway>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let origin = origin(&parts.headers);
    let result = async {
        let compressed = body::read(body, &parts.headers, gw.config().body_limit).await?;
        let given = given_keys(&parts)?;
        // A key in the request's headers or query is checked before any
        // decompression work is done for the caller.
        let early = given
            .as_deref()
            .map(|k| check_key(&gw, k, origin.as_deref()))
            .transpose()?;
        let bytes = decode::body(&parts.headers, compressed.into(), MAX_DECOMPRESSED)?;
        let env = envelope::parse(&bytes).map_err(ApiError::InvalidEnvelope)?;
        let in_envelope = env
            .header
            .get("dsn")
            .and_then(Value::as_str)
            .and_then(dsn_user);
        let sender = match (early, in_envelope) {
            (Some(sender), None) => sender,
            (Some(sender), Some(k)) if given.as_deref() == Some(k.as_str()) => sender,
            (Some(_), Some(_)) => return Err(ApiError::SentryKeyMismatch),
            (None, Some(k)) => check_key(&gw, &k, origin.as_deref())?,
            (None, None) => return Err(ApiError::SentryKey(KeyRefusal::Missing)),
        };
        if env.items.is_empty() {
            return Err(ApiError::EmptyEnvelope);
        }
        let header_id = env.header.get("event_id").and_then(Value::as_str);
        let made = entries_of(&gw, &sender.key_id, &env, header_id)?;
        store(&gw, &parts, sender, made.entries, made.ids).await?;
        Ok(made.event_id.or(header_id.map(str::to_owned)))
    }
    .await;
    answer(&gw, result, origin)
}

pub(crate) async fn store_endpoint(State(gw): State<Gateway>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let origin = origin(&parts.headers);
    let result = async {
        let compressed = body::read(body, &parts.headers, gw.config().body_limit).await?;
        let key = given_keys(&parts)?.ok_or(ApiError::SentryKey(KeyRefusal::Missing))?;
        let sender = check_key(&gw, &key, origin.as_deref())?;
        let bytes = decode::body(&parts.headers, compressed.into(), MAX_DECOMPRESSED)?;
        let bytes = store_body(bytes)?;
        if bytes.len() > MAX_EVENT {
            return Err(ApiError::ItemTooLarge {
                item: "event",
                limit: MAX_EVENT,
            });
        }
        let ev = json_object(&bytes, "the event")?;
        let mapped = event::event(&ev, &gw.config().limits);
        gw.counters().meta_dropped(mapped.meta_dropped);
        let id = mapped
            .event_id
            .as_deref()
            .map(|e| message_id(&sender.key_id, e));
        store(&gw, &parts, sender, vec![mapped.entry], vec![id]).await?;
        Ok(mapped.event_id)
    }
    .await;
    answer(&gw, result, origin)
}

/// Largest CSP report body.
const MAX_CSP_BODY: usize = 64 * 1024;

pub(crate) async fn security_endpoint(State(gw): State<Gateway>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let origin = origin(&parts.headers);
    let result = async {
        let limit = MAX_CSP_BODY.min(gw.config().body_limit);
        let compressed = body::read(body, &parts.headers, limit).await?;
        let key = given_keys(&parts)?.ok_or(ApiError::SentryKey(KeyRefusal::Missing))?;
        let bytes = decode::body(&parts.headers, compressed.into(), limit)?;
        let report: Value =
            serde_json::from_slice(&bytes).map_err(|e| ApiError::InvalidJson(e.to_string()))?;
        let violations = csp::violations(&report).map_err(ApiError::InvalidEnvelope)?;
        // A report-uri POST may come without an Origin: then the page's.
        let from = origin
            .clone()
            .or_else(|| violations.first().and_then(csp::Violation::document_origin));
        let sender = check_key(&gw, &key, from.as_deref())?;
        let entries: Vec<NewEntry> = violations
            .iter()
            .map(|v| csp_entry(v, from.as_deref(), &gw.config().limits))
            .collect();
        let ids = vec![None; entries.len()];
        store(&gw, &parts, sender, entries, ids).await?;
        Ok(None)
    }
    .await;
    answer(&gw, result, origin)
}

fn csp_entry(v: &csp::Violation, origin: Option<&str>, limits: &proto::input::Limits) -> NewEntry {
    let cut = |s: &str| crate::fields::cut(s, proto::input::MAX_META_VALUE_CHARS);
    let mut meta = std::collections::BTreeMap::new();
    meta.insert("directive".to_owned(), cut(&v.directive));
    meta.insert("blocked_uri".to_owned(), cut(&v.blocked_uri));
    meta.insert("document_uri".to_owned(), cut(&v.document_uri));
    for (name, value) in [
        ("source_file", &v.source_file),
        ("line", &v.line),
        ("disposition", &v.disposition),
    ] {
        if let Some(value) = value {
            meta.insert(name.to_owned(), cut(value));
        }
    }
    if let Some(o) = origin {
        meta.insert("origin".to_owned(), o.to_owned());
    }
    let (message, trimmed) =
        proto::input::message(&v.message(), limits).unwrap_or_else(|_| (v.message(), false));
    NewEntry {
        level: proto::Level::Warn,
        message,
        source: Some("csp".to_owned()),
        time: None,
        meta,
        fingerprint: None,
        exception: None,
        trimmed,
    }
}

/// `/store/` bodies are JSON, or (older SDKs) base64 of zlib-compressed JSON.
fn store_body(bytes: Vec<u8>) -> Result<Vec<u8>, ApiError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_none_or(|b| *b == b'{') {
        return Ok(bytes);
    }
    use base64::Engine as _;
    let text: Vec<u8> = bytes
        .into_iter()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let zlib = base64::engine::general_purpose::STANDARD
        .decode(&text)
        .map_err(|_| {
            ApiError::InvalidEnvelope("the body is neither JSON nor base64 of zlib".into())
        })?;
    decode::deflate(&zlib, MAX_DECOMPRESSED)
}

/// What an envelope's items make.
struct Entries {
    entries: Vec<NewEntry>,
    /// One message id per entry.
    ids: Vec<Option<String>>,
    /// The first event's id.
    event_id: Option<String>,
}

/// The entries of an envelope's `event` and `log` items. Other items are
/// counted and passed over.
fn entries_of(
    gw: &Gateway,
    key_id: &str,
    env: &envelope::Envelope<'_>,
    header_id: Option<&str>,
) -> Result<Entries, ApiError> {
    let limits = &gw.config().limits;
    let mut entries = Vec::new();
    let mut ids = Vec::new();
    let mut first_event_id = None;
    for item in &env.items {
        match item.ty.as_str() {
            "event" => {
                if item.payload.len() > MAX_EVENT {
                    return Err(ApiError::ItemTooLarge {
                        item: "event",
                        limit: MAX_EVENT,
                    });
                }
                let ev = json_object(item.payload, "an event item")?;
                let mapped = event::event(&ev, limits);
                gw.counters().meta_dropped(mapped.meta_dropped);
                let event_id = mapped
                    .event_id
                    .or_else(|| header_id.and_then(|h| event::event_id(&json!(h))));
                ids.push(event_id.as_deref().map(|e| message_id(key_id, e)));
                first_event_id = first_event_id.or(event_id);
                entries.push(mapped.entry);
            }
            "log" => {
                let logs = json_object(item.payload, "a log item")?;
                let Some(Value::Array(records)) = logs.get("items") else {
                    return Err(ApiError::InvalidEnvelope(
                        "a log item must hold {\"items\": [...]}".into(),
                    ));
                };
                for record in records {
                    let Value::Object(record) = record else {
                        return Err(ApiError::InvalidEnvelope(
                            "each record of a log item must be a JSON object".into(),
                        ));
                    };
                    let mapped = event::log_record(record, limits);
                    gw.counters().meta_dropped(mapped.meta_dropped);
                    let digest = mapped.entry.digest();
                    ids.push(Some(format!("{key_id}:sentry-log:{digest}")));
                    entries.push(mapped.entry);
                }
            }
            other => {
                let name = KNOWN_SKIPPED
                    .iter()
                    .find(|k| **k == other)
                    .copied()
                    .unwrap_or("other");
                gw.counters().sentry_skipped(name);
            }
        }
        if entries.len() > MAX_ENTRIES {
            return Err(ApiError::BatchTooLarge(entries.len()));
        }
    }
    Ok(Entries {
        entries,
        ids,
        event_id: first_event_id,
    })
}

/// `<key_id>:sentry:<event_id>`: an SDK's retry of an event is stored once.
fn message_id(key_id: &str, event_id: &str) -> String {
    format!("{key_id}:sentry:{event_id}")
}

async fn store(
    gw: &Gateway,
    parts: &Parts,
    sender: Sender,
    entries: Vec<NewEntry>,
    ids: Vec<Option<String>>,
) -> Result<(), ApiError> {
    if entries.is_empty() {
        return Ok(());
    }
    let ip = gw.client_ip(parts);
    let untrusted = sender.browser_origin.is_some();
    if untrusted {
        gw.check_address(ip.as_deref().unwrap_or("unknown"))?;
    }
    gw.store(Submission {
        path: Path::Sentry,
        key_id: sender.key_id,
        ip,
        entries,
        ids: MessageIds::Given(ids),
        untrusted,
    })
    .await?;
    Ok(())
}

/// `200 {"id": …}` (SDKs fail on an empty body), or the error with the
/// headers Sentry SDKs read (`Retry-After`, `X-Sentry-Rate-Limits`), and
/// CORS for a browser on an allowed origin.
fn answer(
    gw: &Gateway,
    result: Result<Option<String>, ApiError>,
    origin: Option<String>,
) -> Response {
    let mut response = match result {
        Ok(id) => Json(json!({ "id": id })).into_response(),
        Err(e) => {
            gw.reject(Path::Sentry, &e);
            let limited = match &e {
                ApiError::RateLimited { retry_after }
                | ApiError::AddressLimited { retry_after } => Some(*retry_after),
                _ => None,
            };
            let mut response = e.into_response();
            if let Some(secs) = limited
                && let Ok(v) = HeaderValue::from_str(&format!("{secs}::key"))
            {
                response.headers_mut().insert("x-sentry-rate-limits", v);
            }
            response
        }
    };
    if let Some(o) = origin
        && gw.registry().origin_allowed_anywhere(&o)
    {
        add_cors(&mut response, &o, EXPOSED);
    }
    response
}

/// The key given in `X-Sentry-Auth` / `Authorization: Sentry …` and in
/// `?sentry_key=`: `None` if neither, `400` if they differ.
fn given_keys(parts: &Parts) -> Result<Option<String>, ApiError> {
    let mut found: Vec<String> = Vec::new();
    for name in ["x-sentry-auth", "authorization"] {
        // Header values may come as a list (the PHP SDK sends several).
        for value in parts.headers.get_all(name) {
            if let Some(k) = value.to_str().ok().and_then(auth_header_key) {
                found.push(k);
            }
        }
    }
    if let Some(query) = parts.uri.query() {
        for (name, value) in form_urlencoded_pairs(query) {
            if name == "sentry_key" && !value.is_empty() {
                found.push(value);
            }
        }
    }
    found.dedup();
    match found.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one.clone())),
        _ => Err(ApiError::SentryKeyMismatch),
    }
}

/// `sentry_key` of `Sentry sentry_key=…, sentry_version=7, …`.
fn auth_header_key(value: &str) -> Option<String> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("sentry") {
        return None;
    }
    rest.split(',').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k.trim() == "sentry_key")
            .then(|| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    })
}

fn form_urlencoded_pairs(query: &str) -> Vec<(String, String)> {
    crate::body::form_pairs(query.as_bytes())
        .into_iter()
        .map(|(k, v)| {
            (
                String::from_utf8_lossy(&k).into_owned(),
                String::from_utf8_lossy(&v).into_owned(),
            )
        })
        .collect()
}

/// The key of a DSN: `scheme://<key>[:<secret>]@host/…`.
fn dsn_user(dsn: &str) -> Option<String> {
    let (_, rest) = dsn.split_once("://")?;
    let (user, _) = rest.split_once('@')?;
    let key = user.split(':').next()?;
    (!key.is_empty() && !key.contains('/')).then(|| key.to_owned())
}

/// Checks a presented key: a DSN key, or a key id (a public DSN) from one
/// of that key's origins.
fn check_key(gw: &Gateway, presented: &str, origin: Option<&str>) -> Result<Sender, ApiError> {
    if !gw.keys_loaded() {
        return Err(ApiError::Starting);
    }
    let registry = gw.registry();
    match registry.lookup_dsn(presented.as_bytes()) {
        Lookup::Active(key_id) => {
            return Ok(Sender {
                key_id,
                browser_origin: None,
            });
        }
        Lookup::Revoked => return Err(ApiError::SentryKey(KeyRefusal::Revoked)),
        Lookup::Unknown => {}
    }
    // A public DSN: the key id in the clear, for browsers of its origins.
    let Some(key) = registry
        .get(presented)
        .filter(|k| !k.state.origins.is_empty())
    else {
        return Err(ApiError::SentryKey(KeyRefusal::Unknown));
    };
    if !key.state.active {
        return Err(ApiError::SentryKey(KeyRefusal::Revoked));
    }
    match origin {
        Some(o) if key.state.origins.iter().any(|k| k == o) => Ok(Sender {
            key_id: key.state.key_id,
            browser_origin: Some(o.to_owned()),
        }),
        _ => Err(ApiError::OriginNotAllowed),
    }
}

/// A CORS preflight for a public DSN: the key (in the query, where the
/// browser SDK puts it) must allow the origin.
pub(crate) async fn preflight(State(gw): State<Gateway>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let origin = origin(&parts.headers);
    let key = given_keys(&parts).ok().flatten();
    let allowed = match (&origin, key) {
        (Some(o), Some(k)) => gw
            .registry()
            .get(&k)
            .is_some_and(|key| key.state.active && key.state.origins.contains(o)),
        (Some(o), None) => gw.registry().origin_allowed_anywhere(o),
        _ => false,
    };
    let mut response = StatusCode::NO_CONTENT.into_response();
    match origin.filter(|_| allowed) {
        Some(o) => {
            add_cors(&mut response, &o, EXPOSED);
            let h = response.headers_mut();
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("POST"),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static(
                    "content-type, content-encoding, x-sentry-auth, sentry-trace, baggage",
                ),
            );
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("600"),
            );
        }
        None => {
            *response.status_mut() = StatusCode::FORBIDDEN;
            response
                .headers_mut()
                .insert(header::VARY, HeaderValue::from_static("Origin"));
        }
    }
    response
}

fn json_object(bytes: &[u8], what: &str) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::InvalidEnvelope(format!(
            "{what} must be a JSON object"
        ))),
        Err(e) => Err(ApiError::InvalidEnvelope(format!(
            "{what} is not valid JSON ({e})"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_read_from_each_auth_form() {
        assert_eq!(
            auth_header_key(
                "Sentry sentry_key=0123456789abcdef0123456789abcdef, sentry_version=7, \
                 sentry_client=sentry.python/2.75.0"
            )
            .as_deref(),
            Some("0123456789abcdef0123456789abcdef")
        );
        assert_eq!(
            auth_header_key("sentry sentry_version=7,sentry_key=abc").as_deref(),
            Some("abc")
        );
        assert_eq!(auth_header_key("Bearer sentry_key=abc"), None);
        assert_eq!(auth_header_key("Sentry sentry_version=7"), None);
        assert_eq!(
            dsn_user("https://abc@logs.example.com/1").as_deref(),
            Some("abc")
        );
        assert_eq!(
            dsn_user("https://abc:secret@logs.example.com/1").as_deref(),
            Some("abc")
        );
        assert_eq!(dsn_user("https://logs.example.com/1"), None);
    }

    #[test]
    fn store_bodies_may_be_base64_of_zlib() {
        use base64::Engine as _;
        use std::io::Write as _;
        let json = br#"{"message": "from an old sdk"}"#;
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(json).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(z.finish().unwrap());
        assert_eq!(store_body(b64.into_bytes()).unwrap(), json);
        assert_eq!(store_body(json.to_vec()).unwrap(), json);
        assert!(store_body(b"%%%".to_vec()).is_err());
    }
}
