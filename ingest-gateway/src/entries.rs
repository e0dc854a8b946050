//! `POST /api/v1/entries`: one JSON object or an array of 1 to 1000,
//! validated all-or-nothing, stored with many acks in flight.

use crate::Gateway;
use crate::body;
use crate::error::{ApiError, ItemFailure, KeyRefusal, MAX_BATCH};
use crate::publish::{MessageIds, Submission};
use crate::stats::Path;
use axum::Json;
use axum::body::Body;
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use proto::input::IdempotencyKey;
use serde_json::{Value, json};

pub(crate) async fn add(gw: &Gateway, parts: Parts, body: Body) -> Result<Response, ApiError> {
    let key_id = gw.authenticate(presented_key(&parts.headers))?;
    let idempotency_key = idempotency_key(&parts.headers)?;
    let bytes = body::read(body, &parts.headers, gw.config().body_limit).await?;
    let text = std::str::from_utf8(&bytes).map_err(|_| ApiError::InvalidUtf8)?;
    let value: Value =
        serde_json::from_str(text).map_err(|e| ApiError::InvalidJson(e.to_string()))?;
    let items = match value {
        Value::Array(items) if items.is_empty() => return Err(ApiError::EmptyBatch),
        Value::Array(items) if items.len() > MAX_BATCH => {
            return Err(ApiError::BatchTooLarge(items.len()));
        }
        Value::Array(items) => items,
        item @ Value::Object(_) => vec![item],
        _ => return Err(ApiError::InvalidBody),
    };

    let limits = &gw.config().limits;
    let mut entries = Vec::with_capacity(items.len());
    let mut failures = Vec::new();
    for (index, item) in items.iter().enumerate() {
        match proto::input::json_item(item, limits) {
            Ok(entry) => entries.push(entry),
            Err(e) => failures.push(ItemFailure {
                index,
                code: e.code,
                message: e.message,
            }),
        }
    }
    if !failures.is_empty() {
        return Err(ApiError::InvalidItems {
            total: items.len(),
            items: failures,
        });
    }

    let published = gw
        .store(Submission {
            path: Path::Http,
            ip: gw.client_ip(&parts),
            key_id,
            entries,
            ids: MessageIds::Idempotency(idempotency_key),
            untrusted: false,
        })
        .await?;
    Ok(Json(json!({ "ids": published.ids })).into_response())
}

/// `Authorization: Bearer <secret>` (the scheme in any case), else
/// `X-Minilog-Key: <secret>`.
pub(crate) fn presented_key(headers: &HeaderMap) -> Result<&[u8], KeyRefusal> {
    let bearer = headers.get(AUTHORIZATION).and_then(|v| {
        let v = v.as_bytes();
        let (scheme, rest) = v.split_at_checked(7)?;
        scheme
            .eq_ignore_ascii_case(b"bearer ")
            .then_some(rest.trim_ascii())
    });
    let key = bearer.or_else(|| {
        headers
            .get("x-minilog-key")
            .map(|v| v.as_bytes().trim_ascii())
    });
    key.filter(|k| !k.is_empty()).ok_or(KeyRefusal::Missing)
}

/// The request's `Idempotency-Key`, if it sent one (the form path too).
pub(crate) fn idempotency_key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, ApiError> {
    headers
        .get("idempotency-key")
        .map(|v| IdempotencyKey::parse(v.as_bytes()).map_err(|_| ApiError::InvalidIdempotencyKey))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn the_key_comes_from_bearer_or_x_minilog_key() {
        let h = headers(&[("authorization", "bearer  SECRET ")]);
        assert_eq!(presented_key(&h), Ok(&b"SECRET"[..]));
        let h = headers(&[("x-minilog-key", "OTHER")]);
        assert_eq!(presented_key(&h), Ok(&b"OTHER"[..]));
        let h = headers(&[("authorization", "Basic abc"), ("x-minilog-key", "OTHER")]);
        assert_eq!(presented_key(&h), Ok(&b"OTHER"[..]));
        assert_eq!(presented_key(&headers(&[])), Err(KeyRefusal::Missing));
        let h = headers(&[("authorization", "Bearer ")]);
        assert_eq!(presented_key(&h), Err(KeyRefusal::Missing));
    }

    #[test]
    fn idempotency_keys_are_short_printable_ascii() {
        let ok = "a".repeat(128);
        assert_eq!(
            idempotency_key(&headers(&[("idempotency-key", &ok)]))
                .unwrap()
                .map(|k| k.as_str().to_owned()),
            Some(ok)
        );
        assert_eq!(idempotency_key(&headers(&[])).unwrap(), None);
        let long = "a".repeat(129);
        assert!(idempotency_key(&headers(&[("idempotency-key", &long)])).is_err());
        let mut h = HeaderMap::new();
        h.insert(
            "idempotency-key",
            axum::http::HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap(),
        );
        assert!(idempotency_key(&h).is_err());
    }
}
