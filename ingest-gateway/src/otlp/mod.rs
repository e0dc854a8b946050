//! OTLP/HTTP logs (docs/api.md, "OTLP/HTTP logs"): `POST /v1/logs` from
//! OpenTelemetry SDKs and collectors, protobuf ([`messages`]) or JSON
//! ([`json`]), optionally gzip. Each LogRecord is one entry; a record that
//! cannot be one (no body) is rejected without failing the rest and
//! reported in `partial_success`. The rest ends in the one ingestion tail
//! ([`Gateway::store`]), each record with the message id
//! `<key_id>:otlp:<index>:<digest>`, so an exporter's retry of the same
//! request is stored once.

mod json;
pub mod messages;

use crate::entries::presented_key;
use crate::error::ApiError;
use crate::fields::{Meta, cut, kept_message};
use crate::publish::{MessageIds, Submission};
use crate::stats::Path;
use crate::{Gateway, body, decode};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use messages::{
    AnyValue, ExportLogsPartialSuccess, ExportLogsServiceResponse, KeyValue, Value as Any,
};
use prost::Message as _;
use proto::Level;
use proto::event::Exception;
use proto::input::{Limits, NewEntry};

/// Largest request once decompressed.
const MAX_DECOMPRESSED: usize = 16 * 1024 * 1024;
/// Most records one request may carry (exporters send batches of 512).
const MAX_RECORDS: usize = 10_000;

#[derive(Clone, Copy, PartialEq)]
enum Encoding {
    Protobuf,
    Json,
}

pub(crate) async fn logs(State(gw): State<Gateway>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    let encoding = match content_type.as_deref() {
        Some("application/x-protobuf" | "application/protobuf") => Encoding::Protobuf,
        Some("application/json") => Encoding::Json,
        _ => {
            let e = ApiError::UnsupportedMediaTypeOtlp;
            gw.reject(Path::Otlp, &e);
            return e.into_response();
        }
    };
    let result = async {
        let key_id = gw.authenticate(presented_key(&parts.headers))?;
        let compressed = body::read(body, &parts.headers, gw.config().body_limit).await?;
        let bytes = decode::body(&parts.headers, compressed.into(), MAX_DECOMPRESSED)?;
        let request = match encoding {
            Encoding::Protobuf => messages::ExportLogsServiceRequest::decode(&bytes[..])
                .map_err(|e| ApiError::InvalidOtlp(format!("not an OTLP protobuf request: {e}")))?,
            Encoding::Json => {
                let value: serde_json::Value = serde_json::from_slice(&bytes)
                    .map_err(|e| ApiError::InvalidJson(e.to_string()))?;
                json::request(&value).map_err(ApiError::InvalidOtlp)?
            }
        };
        let made = entries(&request, &gw.config().limits, &key_id)?;
        gw.counters().meta_dropped(made.meta_dropped);
        if !made.entries.is_empty() {
            gw.store(Submission {
                path: Path::Otlp,
                ip: gw.client_ip(&parts),
                key_id,
                entries: made.entries,
                ids: MessageIds::Given(made.ids),
                untrusted: false,
            })
            .await?;
        }
        Ok(ExportLogsServiceResponse {
            partial_success: (made.rejected > 0).then_some(ExportLogsPartialSuccess {
                rejected_log_records: made.rejected,
                error_message: made.first_error,
            }),
        })
    }
    .await;
    match result {
        Ok(answer) => success(encoding, answer),
        Err(e) => {
            gw.reject(Path::Otlp, &e);
            failure(encoding, e)
        }
    }
}

/// The records of a request as entries, and what was rejected.
struct Made {
    entries: Vec<NewEntry>,
    ids: Vec<Option<String>>,
    rejected: i64,
    first_error: String,
    meta_dropped: u64,
}

fn entries(
    request: &messages::ExportLogsServiceRequest,
    limits: &Limits,
    key_id: &str,
) -> Result<Made, ApiError> {
    let total: usize = request
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .map(|s| s.log_records.len())
        .sum();
    if total > MAX_RECORDS {
        return Err(ApiError::BatchTooLarge(total));
    }
    let mut made = Made {
        entries: Vec::with_capacity(total),
        ids: Vec::with_capacity(total),
        rejected: 0,
        first_error: String::new(),
        meta_dropped: 0,
    };
    let mut index = 0;
    for resource_logs in &request.resource_logs {
        let resource: &[KeyValue] = resource_logs
            .resource
            .as_ref()
            .map_or(&[], |r| &r.attributes);
        for scope in &resource_logs.scope_logs {
            for record in &scope.log_records {
                index += 1;
                match entry(record, resource, limits) {
                    Ok((entry, dropped)) => {
                        made.meta_dropped += dropped;
                        made.ids
                            .push(Some(format!("{key_id}:otlp:{index}:{}", entry.digest())));
                        made.entries.push(entry);
                    }
                    Err(why) => {
                        made.rejected += 1;
                        if made.first_error.is_empty() {
                            made.first_error = format!("log record {index}: {why}");
                        }
                    }
                }
            }
        }
    }
    Ok(made)
}

/// One record as an entry (docs/api.md, "OTLP/HTTP logs"), and how many
/// attributes did not fit in its meta.
fn entry(
    record: &messages::LogRecord,
    resource: &[KeyValue],
    limits: &Limits,
) -> Result<(NewEntry, u64), &'static str> {
    let text = match record.body.as_ref().and_then(|b| b.value.as_ref()) {
        Some(Any::String(s)) => s.clone(),
        Some(other) => json_of(other).to_string(),
        None if !record.event_name.is_empty() => record.event_name.clone(),
        None => return Err("it has no body"),
    };
    let text = text.trim();
    if text.is_empty() {
        return Err("its body is empty");
    }
    let (message, trimmed) = kept_message(text, limits);
    let mut meta = Meta::default();
    let mut exception = ExceptionAttributes::default();
    for kv in resource.iter().chain(&record.attributes) {
        let Some(value) = kv.value.as_ref().and_then(|v| v.value.as_ref()) else {
            continue;
        };
        if exception.take(&kv.key, value) {
            continue;
        }
        flatten(&kv.key, value, &mut |name, text| meta.put_text(&name, text));
    }
    for (name, id) in [("trace_id", &record.trace_id), ("span_id", &record.span_id)] {
        if id.iter().any(|b| *b != 0) {
            meta.put_text(name, hex::encode(id));
        }
    }
    let source = resource
        .iter()
        .find(|kv| kv.key == "service.name")
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            Any::String(s) if !s.is_empty() => Some(cut(s, proto::input::MAX_SOURCE_CHARS)),
            _ => None,
        });
    let nanos = match record.time_unix_nano {
        0 => record.observed_time_unix_nano,
        t => t,
    };
    let entry = NewEntry {
        level: level(record.severity_number, &record.severity_text),
        message,
        source,
        time: (nanos > 0).then(|| i64::try_from(nanos / 1_000_000).unwrap_or(i64::MAX)),
        meta: meta.pairs,
        fingerprint: None,
        exception: exception.chain(),
        trimmed,
    };
    Ok((entry, meta.dropped))
}

/// severityNumber 1–8 debug, 9–12 info, 13–16 warn, 17–20 error, 21–24
/// critical; 0 (unset) from severityText, else info.
fn level(number: i32, text: &str) -> Level {
    match number {
        1..=8 => Level::Debug,
        9..=12 => Level::Info,
        13..=16 => Level::Warn,
        17..=20 => Level::Error,
        21.. => Level::Critical,
        _ => {
            let word = serde_json::Value::String(text.trim().to_owned());
            proto::input::level(Some(&word)).unwrap_or(Level::Info)
        }
    }
}

/// The `exception.*` attributes of a record (OpenTelemetry's semantic
/// conventions), which become its exception rather than meta.
#[derive(Default)]
struct ExceptionAttributes {
    ty: Option<String>,
    message: Option<String>,
    stacktrace: Option<String>,
}

impl ExceptionAttributes {
    fn take(&mut self, key: &str, value: &Any) -> bool {
        let slot = match key {
            "exception.type" => &mut self.ty,
            "exception.message" => &mut self.message,
            "exception.stacktrace" => &mut self.stacktrace,
            _ => return false,
        };
        *slot = Some(match value {
            Any::String(s) => s.clone(),
            other => json_of(other).to_string(),
        });
        true
    }

    /// The chain: the stack trace read like a traceback in a message (a
    /// Python one gives its whole chain), with the attributes' type and
    /// message on the outermost exception.
    fn chain(self) -> Option<Vec<Exception>> {
        if self.ty.is_none() && self.message.is_none() && self.stacktrace.is_none() {
            return None;
        }
        let mut chain = self
            .stacktrace
            .as_deref()
            .and_then(proto::traceback::parse_stack)
            .unwrap_or_default();
        if chain.is_empty() {
            chain.push(Exception::default());
        }
        let outer = &mut chain[0];
        if let Some(ty) = self.ty {
            outer.ty = ty;
        }
        if let Some(message) = self.message {
            outer.value = message;
        }
        if outer.ty.is_empty() {
            outer.ty = "Exception".to_owned();
        }
        Some(chain)
    }
}

/// Attributes as meta pairs: nested maps as `a.b`, anything else as text
/// (arrays as JSON).
fn flatten(name: &str, value: &Any, put: &mut dyn FnMut(String, String)) {
    match value {
        Any::KvList(list) => {
            for kv in &list.values {
                if let Some(v) = kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                    flatten(&format!("{name}.{}", kv.key), v, put);
                }
            }
        }
        Any::String(s) => put(name.to_owned(), s.clone()),
        other => put(name.to_owned(), json_of(other).to_string()),
    }
}

/// A value as JSON (a body or an attribute that is not text).
fn json_of(value: &Any) -> serde_json::Value {
    use serde_json::{Value, json};
    let of = |v: &AnyValue| v.value.as_ref().map_or(Value::Null, json_of);
    match value {
        Any::String(s) => json!(s),
        Any::Bool(b) => json!(b),
        Any::Int(i) => json!(i),
        Any::Double(d) => json!(d),
        Any::Array(a) => Value::Array(a.values.iter().map(of).collect()),
        Any::KvList(kv) => Value::Object(
            kv.values
                .iter()
                .map(|kv| (kv.key.clone(), kv.value.as_ref().map_or(Value::Null, of)))
                .collect(),
        ),
        Any::Bytes(b) => {
            use base64::Engine as _;
            json!(base64::engine::general_purpose::STANDARD.encode(b))
        }
    }
}

/// `200` with an ExportLogsServiceResponse in the request's encoding.
fn success(encoding: Encoding, answer: ExportLogsServiceResponse) -> Response {
    match encoding {
        Encoding::Protobuf => (
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            answer.encode_to_vec(),
        )
            .into_response(),
        Encoding::Json => {
            let body = match answer.partial_success {
                Some(p) => serde_json::json!({"partialSuccess": {
                    "rejectedLogRecords": p.rejected_log_records.to_string(),
                    "errorMessage": p.error_message,
                }}),
                None => serde_json::json!({}),
            };
            axum::Json(body).into_response()
        }
    }
}

/// A `google.rpc.Status`: what OTLP/HTTP answers a protobuf request's
/// failure with (exporters log its message).
#[derive(Clone, PartialEq, prost::Message)]
struct Status {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// The error with its status and headers (`Retry-After` on 429 and 503,
/// which exporters honour); a protobuf request gets a `Status` body.
fn failure(encoding: Encoding, e: ApiError) -> Response {
    if encoding == Encoding::Json {
        return e.into_response();
    }
    let message = e.to_string();
    // gRPC codes: INVALID_ARGUMENT, UNAUTHENTICATED, RESOURCE_EXHAUSTED,
    // UNAVAILABLE, else INTERNAL.
    let code = match e.status().as_u16() {
        400 | 413 | 415 => 3,
        401 => 16,
        429 => 8,
        503 | 507 => 14,
        _ => 13,
    };
    let (mut parts, _) = e.into_response().into_parts();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-protobuf"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(Status { code, message }.encode_to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use messages::{LogRecord, Resource, ResourceLogs, ScopeLogs};

    fn kv(key: &str, value: Any) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
        }
    }

    fn request(records: Vec<LogRecord>) -> messages::ExportLogsServiceRequest {
        messages::ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource {
                    attributes: vec![
                        kv("service.name", Any::String("billing".into())),
                        kv(
                            "host",
                            Any::KvList(messages::KeyValueList {
                                values: vec![kv("name", Any::String("web-1".into()))],
                            }),
                        ),
                    ],
                }),
                scope_logs: vec![ScopeLogs {
                    scope: None,
                    log_records: records,
                }],
            }],
        }
    }

    #[test]
    fn records_map_to_entries_and_bodiless_ones_are_rejected() {
        let records = vec![
            LogRecord {
                time_unix_nano: 1_800_000_000_123_456_789,
                severity_number: 17,
                body: Some(AnyValue {
                    value: Some(Any::String("payment failed".into())),
                }),
                attributes: vec![kv("order", Any::Int(42))],
                trace_id: vec![0xab; 16],
                span_id: vec![0; 8],
                ..LogRecord::default()
            },
            LogRecord::default(),
            LogRecord {
                severity_text: "WARNING".into(),
                observed_time_unix_nano: 1_700_000_000_000_000_000,
                body: Some(AnyValue {
                    value: Some(Any::KvList(messages::KeyValueList {
                        values: vec![kv("event", Any::String("cache miss".into()))],
                    })),
                }),
                ..LogRecord::default()
            },
        ];
        let made = entries(&request(records), &Limits::default(), "k1").unwrap();
        assert_eq!(made.entries.len(), 2);
        assert_eq!(made.rejected, 1);
        assert_eq!(made.first_error, "log record 2: it has no body");
        let first = &made.entries[0];
        assert_eq!(first.level, Level::Error);
        assert_eq!(first.source.as_deref(), Some("billing"));
        assert_eq!(first.time, Some(1_800_000_000_123));
        assert_eq!(first.meta["order"], "42");
        assert_eq!(first.meta["host.name"], "web-1");
        assert_eq!(first.meta["trace_id"], "ab".repeat(16));
        assert!(!first.meta.contains_key("span_id"));
        let second = &made.entries[1];
        assert_eq!(second.level, Level::Warn);
        assert_eq!(second.message, r#"{"event":"cache miss"}"#);
        assert_eq!(second.time, Some(1_700_000_000_000));
        assert!(made.ids[0].as_deref().unwrap().starts_with("k1:otlp:1:"));
    }

    #[test]
    fn severity_numbers_and_texts() {
        for (n, want) in [
            (1, Level::Debug),
            (9, Level::Info),
            (13, Level::Warn),
            (20, Level::Error),
            (24, Level::Critical),
        ] {
            assert_eq!(level(n, ""), want);
        }
        assert_eq!(level(0, "fatal"), Level::Critical);
        assert_eq!(level(0, "nonsense"), Level::Info);
        assert_eq!(level(0, ""), Level::Info);
    }

    #[test]
    fn exception_attributes_fill_the_exception() {
        let record = LogRecord {
            body: Some(AnyValue { value: Some(Any::String("charge failed".into())) }),
            attributes: vec![
                kv("exception.type", Any::String("ValueError".into())),
                kv("exception.message", Any::String("bad amount".into())),
                kv(
                    "exception.stacktrace",
                    Any::String(
                        "Traceback (most recent call last):\n  File \"/app/pay.py\", line 9, in charge\n    \
                         raise ValueError(\"bad amount\")\nValueError: bad amount\n"
                            .into(),
                    ),
                ),
            ],
            ..LogRecord::default()
        };
        let (entry, _) = entry(&record, &[], &Limits::default()).unwrap();
        let chain = entry.exception.unwrap();
        assert_eq!(chain[0].ty, "ValueError");
        assert_eq!(chain[0].value, "bad amount");
        assert_eq!(chain[0].frames[0].lineno, Some(9));
        assert!(!entry.meta.contains_key("exception.stacktrace"));
    }
}
