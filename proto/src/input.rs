//! Submissions as clients send them, validated once into a [`NewEntry`].
//! Every ingestion path (form, JSON, NATS, browser) goes through here, so
//! they accept and refuse exactly the same things.

use crate::Level;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// Limits that apply to every submission.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Longer messages are trimmed to this many bytes, with a marker.
    pub max_message_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 64 * 1024,
        }
    }
}

pub const MIN_MESSAGE_CHARS: usize = 3;
pub const MAX_SOURCE_CHARS: usize = 200;
pub const MAX_FINGERPRINT_CHARS: usize = 200;
pub const MAX_META_PAIRS: usize = 32;
pub const MAX_META_KEY_CHARS: usize = 64;
pub const MAX_META_VALUE_CHARS: usize = 1024;

/// A client's `Idempotency-Key` (HTTP header or NATS header): 1 to 128
/// printable ASCII characters. One rule for every path; a bad one is
/// refused, never ignored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyKey(String);

/// Why an `Idempotency-Key` was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("Idempotency-Key must be 1 to 128 printable ASCII characters")]
pub struct BadIdempotencyKey;

impl IdempotencyKey {
    pub const MAX_LEN: usize = 128;

    pub fn parse(bytes: &[u8]) -> Result<IdempotencyKey, BadIdempotencyKey> {
        let printable = bytes.iter().all(|b| (0x20..0x7f).contains(b));
        if bytes.is_empty() || bytes.len() > Self::MAX_LEN || !printable {
            return Err(BadIdempotencyKey);
        }
        // Printable ASCII is UTF-8.
        std::str::from_utf8(bytes)
            .map(|s| IdempotencyKey(s.to_owned()))
            .map_err(|_| BadIdempotencyKey)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What one item got wrong, in words that say what to fix.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ItemError {
    pub code: &'static str,
    pub message: String,
}

impl ItemError {
    fn new(code: &'static str, message: impl Into<String>) -> ItemError {
        ItemError {
            code,
            message: message.into(),
        }
    }
}

/// A valid entry, ready to become a `Logged` event.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEntry {
    pub level: Level,
    pub message: String,
    pub source: Option<String>,
    pub time: Option<i64>,
    pub meta: BTreeMap<String, String>,
    pub fingerprint: Option<String>,
    /// The exception chain, outermost first ([`crate::event::Exception`]).
    pub exception: Option<Vec<crate::event::Exception>>,
    /// Whether the message was trimmed to the limit.
    pub trimmed: bool,
}

/// Who an entry comes from, as its `Logged` event records it.
#[derive(Clone, Debug)]
pub enum Sender {
    /// A program with a key: from `ip` (if known); `untrusted` for a
    /// browser report, which any visitor can send.
    Key {
        key_id: String,
        ip: Option<String>,
        untrusted: bool,
    },
    /// A dashboard user, by hand.
    User(String),
}

impl NewEntry {
    /// The event that stores this entry. A Python traceback in the
    /// message, when no exception came with it, becomes its exception
    /// ([`crate::traceback`]); the message stays as it was sent.
    pub fn into_logged(self, from: Sender) -> crate::event::Logged {
        let (key_id, ip, added_by, untrusted) = match from {
            Sender::Key {
                key_id,
                ip,
                untrusted,
            } => (Some(key_id), ip, None, untrusted),
            Sender::User(name) => (None, None, Some(name), false),
        };
        let exception = self
            .exception
            .or_else(|| crate::traceback::parse(&self.message));
        crate::event::Logged {
            key_id,
            level: self.level,
            message: self.message,
            source: self.source,
            time: self.time,
            ip,
            meta: self.meta,
            fingerprint: self.fingerprint,
            added_by,
            untrusted,
            exception,
        }
    }

    /// 16 hex digits of SHA-256 over everything the client said about the
    /// entry (not where it came from): part of its message id under an
    /// `Idempotency-Key`, so a reused key with a different entry stores the
    /// new one instead of answering the old one's id.
    pub fn digest(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        let mut field = |bytes: &[u8]| {
            h.update((bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        };
        // Optional fields: a tag field, then the value if there is one.
        field(self.level.as_str().as_bytes());
        field(self.message.as_bytes());
        match &self.source {
            Some(s) => {
                field(b"source");
                field(s.as_bytes());
            }
            None => field(b"-"),
        }
        match self.time {
            Some(t) => {
                field(b"time");
                field(&t.to_le_bytes());
            }
            None => field(b"-"),
        }
        match &self.fingerprint {
            Some(f) => {
                field(b"fingerprint");
                field(f.as_bytes());
            }
            None => field(b"-"),
        }
        for (k, v) in &self.meta {
            field(k.as_bytes());
            field(v.as_bytes());
        }
        if let Some(chain) = &self.exception {
            field(b"exception");
            field(&serde_json::to_vec(chain).expect("an exception always encodes"));
        }
        hex::encode(&h.finalize()[..8])
    }
}

/// Checks a message: at least three characters, trimmed to the byte limit
/// (on a character boundary) with the marker `… [trimmed N bytes]`.
pub fn message(text: &str, limits: &Limits) -> Result<(String, bool), ItemError> {
    if text.trim().chars().count() < MIN_MESSAGE_CHARS {
        return Err(ItemError::new(
            "invalid_message",
            format!("message must be at least {MIN_MESSAGE_CHARS} characters"),
        ));
    }
    if text.len() <= limits.max_message_bytes {
        return Ok((text.to_owned(), false));
    }
    let mut cut = limits.max_message_bytes;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let dropped = text.len() - cut;
    Ok((format!("{}… [trimmed {dropped} bytes]", &text[..cut]), true))
}

/// A level as a string (any accepted spelling) or a Python number;
/// missing or empty means `info`.
pub fn level(value: Option<&Value>) -> Result<Level, ItemError> {
    let err = |e: crate::level::LevelError| ItemError::new("invalid_level", e.to_string());
    match value {
        None | Some(Value::Null) => Ok(Level::Info),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(Level::Info),
        Some(Value::String(s)) => Level::parse(s).map_err(err),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(f) if f.is_finite() => Ok(Level::from_python(f.floor() as i64)),
            _ => Err(ItemError::new(
                "invalid_level",
                "level number is out of range",
            )),
        },
        Some(other) => Err(err(crate::level::LevelError {
            given: other.to_string(),
        })),
    }
}

fn optional_text(
    value: Option<&Value>,
    field: &str,
    code: &'static str,
    max: usize,
) -> Result<Option<String>, ItemError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().count() <= max => {
            Ok(Some(s.clone()).filter(|s| !s.is_empty()))
        }
        Some(Value::String(_)) => Err(ItemError::new(
            code,
            format!("{field} must be at most {max} characters"),
        )),
        Some(_) => Err(ItemError::new(code, format!("{field} must be a string"))),
    }
}

fn time(value: Option<&Value>) -> Result<Option<i64>, ItemError> {
    let bad = || {
        ItemError::new(
            "invalid_time",
            "time must be RFC 3339 (2026-11-24T10:00:00Z) or Unix seconds",
        )
    };
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => crate::clock::parse_rfc3339(s).map(Some).ok_or_else(bad),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(secs) if secs.is_finite() && secs.abs() < 1e13 => {
                Ok(Some((secs * 1000.0).round() as i64))
            }
            _ => Err(bad()),
        },
        Some(_) => Err(bad()),
    }
}

/// The meta rule: a flat map of strings within the pair, name and value
/// limits.
pub fn meta(value: Option<&Value>) -> Result<BTreeMap<String, String>, ItemError> {
    let map = match value {
        None | Some(Value::Null) => return Ok(BTreeMap::new()),
        Some(Value::Object(map)) => map,
        Some(_) => {
            return Err(ItemError::new(
                "invalid_meta",
                "meta must be an object of strings",
            ));
        }
    };
    if map.len() > MAX_META_PAIRS {
        return Err(ItemError::new(
            "invalid_meta",
            format!(
                "meta has {} pairs; at most {MAX_META_PAIRS} are allowed",
                map.len()
            ),
        ));
    }
    let mut out = BTreeMap::new();
    for (k, v) in map {
        if k.is_empty() || k.chars().count() > MAX_META_KEY_CHARS {
            return Err(ItemError::new(
                "invalid_meta",
                format!("meta keys must be 1 to {MAX_META_KEY_CHARS} characters"),
            ));
        }
        let v = match v {
            Value::String(s) => s.clone(),
            Value::Number(_) | Value::Bool(_) => v.to_string(),
            Value::Null => String::new(),
            _ => {
                return Err(ItemError::new(
                    "invalid_meta",
                    format!("meta value of {k:?} must be a string, not a nested value"),
                ));
            }
        };
        if v.chars().count() > MAX_META_VALUE_CHARS {
            return Err(ItemError::new(
                "invalid_meta",
                format!("meta value of {k:?} must be at most {MAX_META_VALUE_CHARS} characters"),
            ));
        }
        out.insert(k.clone(), v);
    }
    Ok(out)
}

/// Validates one JSON item of `POST /api/v1/entries` (or a NATS
/// submission). Unknown fields are ignored.
pub fn json_item(item: &Value, limits: &Limits) -> Result<NewEntry, ItemError> {
    let Value::Object(obj) = item else {
        return Err(ItemError::new(
            "invalid_item",
            "each entry must be a JSON object",
        ));
    };
    let text = match obj.get("message") {
        Some(Value::String(s)) => s.as_str(),
        Some(_) => {
            return Err(ItemError::new(
                "invalid_message",
                "message must be a string",
            ));
        }
        None => return Err(ItemError::new("invalid_message", "message is required")),
    };
    let (message, trimmed) = message(text, limits)?;
    Ok(NewEntry {
        level: level(obj.get("level"))?,
        message,
        source: optional_text(
            obj.get("source"),
            "source",
            "invalid_source",
            MAX_SOURCE_CHARS,
        )?,
        time: time(obj.get("time"))?,
        meta: meta(obj.get("meta"))?,
        fingerprint: optional_text(
            obj.get("fingerprint"),
            "fingerprint",
            "invalid_fingerprint",
            MAX_FINGERPRINT_CHARS,
        )?,
        exception: None,
        trimmed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok(v: Value) -> NewEntry {
        json_item(&v, &Limits::default()).unwrap()
    }

    fn code(v: Value) -> &'static str {
        json_item(&v, &Limits::default()).unwrap_err().code
    }

    #[test]
    fn a_full_item_is_read() {
        let e = ok(
            json!({"message": "disk almost full", "level": "warning", "source": "db-1",
            "time": "2026-11-24T10:00:00Z", "meta": {"mount": "/var", "n": 3},
            "fingerprint": "disk-full-db-1", "extra": true}),
        );
        assert_eq!(e.level, Level::Warn);
        assert_eq!(e.source.as_deref(), Some("db-1"));
        assert_eq!(e.time, crate::clock::parse_rfc3339("2026-11-24T10:00:00Z"));
        assert_eq!(e.meta["n"], "3");
        assert_eq!(e.fingerprint.as_deref(), Some("disk-full-db-1"));
    }

    #[test]
    fn defaults_and_numbers() {
        let e = ok(json!({"message": "abc"}));
        assert_eq!(e.level, Level::Info);
        assert_eq!(
            ok(json!({"message": "abc", "level": 45})).level,
            Level::Error
        );
        assert_eq!(ok(json!({"message": "abc", "time": 1.5})).time, Some(1500));
    }

    #[test]
    fn each_bad_field_has_its_code() {
        assert_eq!(code(json!("text")), "invalid_item");
        assert_eq!(code(json!({})), "invalid_message");
        assert_eq!(code(json!({"message": "ab"})), "invalid_message");
        assert_eq!(code(json!({"message": 5})), "invalid_message");
        assert_eq!(
            code(json!({"message": "abc", "level": "loud"})),
            "invalid_level"
        );
        assert_eq!(
            code(json!({"message": "abc", "time": "noon"})),
            "invalid_time"
        );
        assert_eq!(
            code(json!({"message": "abc", "meta": {"a": {"b": 1}}})),
            "invalid_meta"
        );
        assert_eq!(code(json!({"message": "abc", "meta": [1]})), "invalid_meta");
        let many: serde_json::Map<String, Value> =
            (0..33).map(|i| (format!("k{i}"), json!("v"))).collect();
        assert_eq!(
            code(json!({"message": "abc", "meta": many})),
            "invalid_meta"
        );
        assert_eq!(
            code(json!({"message": "abc", "meta": {"k": "v".repeat(1025)}})),
            "invalid_meta"
        );
        assert_eq!(
            code(json!({"message": "abc", "fingerprint": "f".repeat(201)})),
            "invalid_fingerprint"
        );
        assert_eq!(
            code(json!({"message": "abc", "source": 7})),
            "invalid_source"
        );
    }

    #[test]
    fn long_messages_are_trimmed_on_a_char_boundary_with_a_marker() {
        let limits = Limits {
            max_message_bytes: 10,
        };
        let (m, trimmed) = message("ééééééééé", &limits).unwrap(); // 18 bytes
        assert!(trimmed);
        assert!(
            m.starts_with("ééééé") && m.ends_with("[trimmed 8 bytes]"),
            "{m}"
        );
        assert_eq!(
            message("short one", &limits).unwrap(),
            ("short one".into(), false)
        );
    }
}
