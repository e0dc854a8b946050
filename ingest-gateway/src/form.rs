//! `POST /log/add/`: the seed-compatible form (docs/api.md, "Ingestion over
//! HTTP"). Checks in order: key, message, status; the answer is one line
//! of plain text, as the original's clients expect.

use crate::Gateway;
use crate::body;
use crate::error::{ApiError, KeyRefusal};
use crate::publish::{MessageIds, Submission};
use crate::stats::Path;
use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use proto::input::{self, NewEntry};
use std::collections::BTreeMap;

/// Where `GET /log/add/` sends a browser: the dashboard's add-by-hand page.
pub const ADD_BY_HAND_PAGE: &str = "/log/new/";

/// Fields the form understands; anything else is named in the answer.
const KNOWN_FIELDS: [&str; 4] = ["key", "message", "description", "status"];

/// How many ignored field names the answer lists, and how much of each.
const MAX_IGNORED_SHOWN: usize = 10;
const MAX_NAME_SHOWN: usize = 40;

pub(crate) async fn redirect() -> Redirect {
    Redirect::to(ADD_BY_HAND_PAGE)
}

/// The seed form's fields as an entry, and the notes its answer carries
/// (a legacy field used, fields ignored, the message trimmed).
fn entry_of(
    pairs: Vec<(Vec<u8>, Vec<u8>)>,
    limits: &input::Limits,
) -> Result<(NewEntry, Vec<String>), ApiError> {
    let mut fields: BTreeMap<&str, String> = BTreeMap::new();
    let mut ignored: Vec<String> = Vec::new();
    for (name, value) in pairs {
        let (Ok(name), Ok(value)) = (String::from_utf8(name), String::from_utf8(value)) else {
            return Err(ApiError::InvalidUtf8);
        };
        match KNOWN_FIELDS.iter().find(|known| **known == name) {
            Some(known) => {
                fields.insert(known, value);
            }
            None if !ignored.contains(&name) => ignored.push(name),
            None => {}
        }
    }

    let mut notes = Vec::new();
    let text = match (fields.get("message"), fields.get("description")) {
        (Some(message), None) => message.as_str(),
        (Some(message), Some(_)) => {
            ignored.push("description".to_owned());
            message.as_str()
        }
        (None, Some(description)) => {
            notes.push("used legacy field description".to_owned());
            description.as_str()
        }
        (None, None) => "",
    };
    let (message, trimmed) = input::message(text, limits).map_err(ApiError::InvalidField)?;
    let status = fields.get("status").cloned().unwrap_or_default();
    let level =
        input::level(Some(&serde_json::Value::String(status))).map_err(ApiError::InvalidField)?;
    if !ignored.is_empty() {
        notes.push(format!("ignored fields: {}", list_names(&ignored)));
    }
    if trimmed {
        notes.push(format!(
            "message trimmed to {} bytes",
            limits.max_message_bytes
        ));
    }

    let entry = NewEntry {
        level,
        message,
        source: None,
        time: None,
        meta: BTreeMap::new(),
        fingerprint: None,
        exception: None,
        trimmed,
    };
    Ok((entry, notes))
}

pub(crate) async fn add(gw: &Gateway, parts: Parts, body: Body) -> Result<Response, ApiError> {
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if content_type.trim_start().starts_with("multipart/") {
        return Err(ApiError::UnsupportedMediaType);
    }
    let bytes = body::read(body, &parts.headers, gw.config().body_limit).await?;
    let pairs = body::form_pairs(&bytes);

    // The key first, from raw bytes, so that nothing about the rest of the
    // body is revealed to a caller without a key. Like Django's
    // `QueryDict.get`, the last of repeated fields counts.
    let key = pairs
        .iter()
        .rev()
        .find(|(name, _)| name == b"key")
        .map(|(_, v)| v.as_slice());
    let key_id = gw.authenticate(key.filter(|k| !k.is_empty()).ok_or(KeyRefusal::Missing))?;

    let (entry, notes) = entry_of(pairs, &gw.config().limits)?;
    let level = entry.level;
    // Honoured like on the JSON API, so the retry a 503 asks for cannot
    // store the entry twice.
    let idempotency_key = crate::entries::idempotency_key(&parts.headers)?;
    let published = gw
        .store(Submission {
            path: Path::Http,
            ip: gw.client_ip(&parts),
            key_id,
            entries: vec![entry],
            ids: MessageIds::Idempotency(idempotency_key),
            untrusted: false,
        })
        .await?;
    let id = published.ids.first().copied().unwrap_or_default();

    let mut text = format!("{level} added");
    for note in notes {
        text.push_str("; ");
        text.push_str(&note);
    }
    text.push('\n');
    let mut response = text.into_response();
    response
        .headers_mut()
        .insert("minilog-entry-id", HeaderValue::from(id));
    Ok(response)
}

/// Field names as the caller sent them, but kept to one short line.
fn list_names(names: &[String]) -> String {
    let mut shown: Vec<String> = names
        .iter()
        .take(MAX_IGNORED_SHOWN)
        .map(|n| {
            n.chars()
                .take(MAX_NAME_SHOWN)
                .map(|c| if c.is_control() { '?' } else { c })
                .collect()
        })
        .collect();
    if names.len() > MAX_IGNORED_SHOWN {
        shown.push(format!("and {} more", names.len() - MAX_IGNORED_SHOWN));
    }
    shown.join(", ")
}
