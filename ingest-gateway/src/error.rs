//! The one error type of the ingestion endpoints, split into the caller's
//! fault (a message that says what to fix) and ours (503/500, logged once
//! with its cause by [`crate::Gateway`]). The status mapping lives here
//! only; the JSON API renders it as `{"error": {...}}`, the seed form as
//! one line of plain text.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use proto::bus::PublishError;
use proto::input::ItemError;
use serde::Serialize;
use serde_json::json;

/// Most entries one request may carry.
pub const MAX_BATCH: usize = 1000;

/// Why a key was refused. The caller is told the same for all three, so
/// an unauthenticated caller learns nothing; the stats tell them apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyRefusal {
    Missing,
    Unknown,
    Revoked,
}

/// Why a browser token was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenRefusal {
    Missing,
    Malformed,
    BadSignature,
    Expired,
    /// Its expiry lies further ahead than the gateway accepts.
    TooLong,
}

impl TokenRefusal {
    fn message(self) -> &'static str {
        match self {
            TokenRefusal::Missing => "send the browser token your server made in `token`",
            TokenRefusal::Malformed => "a browser token has the form <key_id>.<expiry>.<signature>",
            TokenRefusal::BadSignature => "the browser token's signature does not match",
            TokenRefusal::Expired => "the browser token has expired; reload the page",
            TokenRefusal::TooLong => "the browser token's expiry is too far ahead",
        }
    }

    fn reason(self) -> &'static str {
        match self {
            TokenRefusal::Missing => "token_missing",
            TokenRefusal::Malformed => "token_malformed",
            TokenRefusal::BadSignature => "token_signature",
            TokenRefusal::Expired => "token_expired",
            TokenRefusal::TooLong => "token_too_long",
        }
    }
}

/// One invalid item of a batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ItemFailure {
    pub index: usize,
    pub code: &'static str,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    // The caller's fault.
    #[error(
        "send a valid, active key as `Authorization: Bearer <secret>` or `X-Minilog-Key: <secret>`"
    )]
    Key(KeyRefusal),
    #[error("the body is larger than {limit} bytes; send less per request")]
    TooLarge { limit: usize },
    #[error("the body ended, or stalled past the body timeout, before its announced length")]
    IncompleteBody,
    #[error("the body is not valid UTF-8 (after percent-decoding, for a form)")]
    InvalidUtf8,
    #[error("the body is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("the body must be one JSON object or an array of 1 to {MAX_BATCH} objects")]
    InvalidBody,
    #[error("the array is empty: send 1 to {MAX_BATCH} entries")]
    EmptyBatch,
    #[error("the array has {0} entries: send at most {MAX_BATCH} per request")]
    BatchTooLarge(usize),
    #[error("Idempotency-Key must be 1 to 128 printable ASCII characters")]
    InvalidIdempotencyKey,
    #[error("{} of {total} entries are invalid; nothing was stored", .items.len())]
    InvalidItems {
        total: usize,
        items: Vec<ItemFailure>,
    },
    /// One field of the seed form (message, status).
    #[error("{}", .0.message)]
    InvalidField(ItemError),
    #[error("send the form as application/x-www-form-urlencoded")]
    UnsupportedMediaType,
    #[error("this key sends more than its rate limit; try again in {retry_after} s")]
    RateLimited { retry_after: u64 },
    #[error("too many browser reports from this address; try again in {retry_after} s")]
    AddressLimited { retry_after: u64 },
    #[error("{}", .0.message())]
    Token(TokenRefusal),
    #[error("this page's origin may not send reports with this key")]
    OriginNotAllowed,
    /// The Sentry protocol's key (`sentry_key`).
    #[error(
        "send the key's DSN key as sentry_key: in X-Sentry-Auth, in ?sentry_key=, or in the \
         envelope header's dsn (`minilog key dsn ID` issues one)"
    )]
    SentryKey(KeyRefusal),
    #[error(
        "the sentry_key of X-Sentry-Auth, of ?sentry_key= and of the envelope's dsn differ; \
         send one key"
    )]
    SentryKeyMismatch,
    #[error("the envelope has no items: send an event or log item")]
    EmptyEnvelope,
    #[error("the envelope is malformed: {0}")]
    InvalidEnvelope(String),
    #[error("the body decompresses to more than {limit} bytes; send less per request")]
    DecompressedTooLarge { limit: usize },
    #[error("an {item} item is larger than {limit} bytes")]
    ItemTooLarge { item: &'static str, limit: usize },
    #[error("Content-Encoding {0:?} is not supported: send gzip, deflate, br, zstd or none")]
    UnsupportedEncoding(String),
    #[error("the body is not valid {0} data")]
    BadCompression(&'static str),
    #[error("send OTLP logs as Content-Type: application/x-protobuf or application/json")]
    UnsupportedMediaTypeOtlp,
    #[error("{0}")]
    InvalidOtlp(String),

    // Ours.
    #[error("the gateway is still loading its keys; try again in a moment")]
    Starting,
    #[error("{}", unavailable_message(*unconfirmed, *disk_free))]
    Unavailable {
        /// Ids of the items JetStream acknowledged before the failure.
        stored_ids: Vec<u64>,
        /// Items handed to NATS whose acknowledgement did not come in
        /// time: they may have been stored.
        unconfirmed: usize,
        /// Bytes free on the event log's disk, when it is full (`507`).
        disk_free: Option<u64>,
        #[source]
        cause: PublishError,
    },
    #[error("the event log refused the entries; this is a problem of the server")]
    Internal {
        stored_ids: Vec<u64>,
        #[source]
        cause: PublishError,
    },
}

/// What a client should know when the event log did not answer: whether
/// something may be stored after all, and how to retry without storing it
/// twice.
fn unavailable_message(unconfirmed: usize, disk_free: Option<u64>) -> String {
    let retry = "retry with the same Idempotency-Key header: entries already stored are not \
                 stored twice (within the server's duplicate window)";
    if let Some(free) = disk_free {
        return format!(
            "the disk that holds the event log is full ({} KiB free): {} not stored; the server \
             stores again by itself once its operator frees space, so {retry}",
            free / 1024,
            match unconfirmed {
                0 => "nothing more was".to_owned(),
                1 => "1 entry was most likely".to_owned(),
                n => format!("{n} entries were most likely"),
            }
        );
    }
    if unconfirmed == 0 {
        format!(
            "the event log is unavailable and nothing more was stored; try again in a moment ({retry})"
        )
    } else {
        format!(
            "the event log did not confirm {unconfirmed} entr{} in time: {} may have been \
             stored; {retry}",
            if unconfirmed == 1 { "y" } else { "ies" },
            if unconfirmed == 1 { "it" } else { "they" }
        )
    }
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Key(_) | ApiError::Token(_) | ApiError::SentryKey(_) => {
                StatusCode::UNAUTHORIZED
            }
            ApiError::DecompressedTooLarge { .. } | ApiError::ItemTooLarge { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ApiError::UnsupportedEncoding(_) | ApiError::UnsupportedMediaTypeOtlp => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            ApiError::InvalidOtlp(_) => StatusCode::BAD_REQUEST,
            ApiError::SentryKeyMismatch
            | ApiError::EmptyEnvelope
            | ApiError::InvalidEnvelope(_)
            | ApiError::BadCompression(_) => StatusCode::BAD_REQUEST,
            ApiError::OriginNotAllowed => StatusCode::FORBIDDEN,
            ApiError::RateLimited { .. } | ApiError::AddressLimited { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::IncompleteBody
            | ApiError::InvalidUtf8
            | ApiError::InvalidJson(_)
            | ApiError::InvalidBody
            | ApiError::EmptyBatch
            | ApiError::BatchTooLarge(_)
            | ApiError::InvalidIdempotencyKey
            | ApiError::InvalidItems { .. }
            | ApiError::InvalidField(_) => StatusCode::BAD_REQUEST,
            ApiError::Unavailable {
                disk_free: Some(_), ..
            } => StatusCode::INSUFFICIENT_STORAGE,
            ApiError::Starting | ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `code` of the JSON body.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Key(_) | ApiError::SentryKey(_) => "invalid_key",
            ApiError::SentryKeyMismatch => "key_mismatch",
            ApiError::EmptyEnvelope => "empty_envelope",
            ApiError::InvalidEnvelope(_) => "invalid_envelope",
            ApiError::DecompressedTooLarge { .. } => "decompressed_too_large",
            ApiError::ItemTooLarge { .. } => "item_too_large",
            ApiError::UnsupportedEncoding(_) => "unsupported_encoding",
            ApiError::BadCompression(_) => "bad_compression",
            ApiError::UnsupportedMediaTypeOtlp => "unsupported_media_type",
            ApiError::InvalidOtlp(_) => "invalid_otlp",
            ApiError::TooLarge { .. } => "body_too_large",
            ApiError::IncompleteBody => "incomplete_body",
            ApiError::InvalidUtf8 => "invalid_utf8",
            ApiError::InvalidJson(_) => "invalid_json",
            ApiError::InvalidBody => "invalid_body",
            ApiError::EmptyBatch => "empty_batch",
            ApiError::BatchTooLarge(_) => "batch_too_large",
            ApiError::InvalidIdempotencyKey => "invalid_idempotency_key",
            ApiError::InvalidItems { .. } => "invalid_items",
            ApiError::InvalidField(e) => e.code,
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::RateLimited { .. } | ApiError::AddressLimited { .. } => "rate_limited",
            ApiError::Token(_) => "invalid_token",
            ApiError::OriginNotAllowed => "origin_not_allowed",
            ApiError::Starting => "starting",
            ApiError::Unavailable {
                disk_free: Some(_), ..
            } => "insufficient_storage",
            ApiError::Unavailable { .. } => "unavailable",
            ApiError::Internal { .. } => "internal",
        }
    }

    /// The reason counted in [`crate::Stats::rejected`]: the code, except
    /// that key refusals are told apart.
    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::Key(KeyRefusal::Missing) => "key_missing",
            ApiError::Key(KeyRefusal::Unknown) => "key_unknown",
            ApiError::Key(KeyRefusal::Revoked) => "key_revoked",
            ApiError::SentryKey(KeyRefusal::Missing) => "key_missing",
            ApiError::SentryKey(KeyRefusal::Unknown) => "key_unknown",
            ApiError::SentryKey(KeyRefusal::Revoked) => "key_revoked",
            ApiError::AddressLimited { .. } => "address_limited",
            ApiError::Token(t) => t.reason(),
            other => other.code(),
        }
    }

    /// The seed form's rendering: one line of plain text.
    pub fn into_plain_response(self) -> Response {
        let text = match &self {
            ApiError::Key(_) => "invalid key\n".to_owned(),
            other => format!("{other}\n"),
        };
        let mut response = (self.status(), text).into_response();
        self.add_headers(&mut response);
        response
    }

    fn add_headers(&self, response: &mut Response) {
        let headers = response.headers_mut();
        match self {
            ApiError::Unavailable {
                disk_free: Some(_), ..
            } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
            }
            ApiError::Starting | ApiError::Unavailable { .. } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ApiError::RateLimited { retry_after } | ApiError::AddressLimited { retry_after } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
            }
            ApiError::Key(_) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"minilog\""),
                );
            }
            _ => {}
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({ "code": self.code(), "message": self.to_string() });
        match &self {
            ApiError::InvalidItems { items, .. } => error["items"] = json!(items),
            ApiError::Unavailable {
                stored_ids,
                unconfirmed,
                ..
            } => {
                error["stored_ids"] = json!(stored_ids);
                error["unconfirmed"] = json!(unconfirmed);
            }
            ApiError::Internal { stored_ids, .. } => {
                error["stored_ids"] = json!(stored_ids);
            }
            _ => {}
        }
        let mut response = (self.status(), Json(json!({ "error": error }))).into_response();
        self.add_headers(&mut response);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_json(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("a body");
        serde_json::from_slice(&bytes).expect("JSON")
    }

    #[tokio::test]
    async fn unavailable_answers_503_with_retry_after_and_the_stored_ids() {
        let e = ApiError::Unavailable {
            stored_ids: vec![7, 9],
            unconfirmed: 1,
            disk_free: None,
            cause: PublishError::Unavailable {
                reason: "timed out",
                source: None,
            },
        };
        let response = e.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        let body = body_json(response).await;
        assert_eq!(body["error"]["code"], "unavailable");
        assert_eq!(body["error"]["stored_ids"], json!([7, 9]));
        assert_eq!(body["error"]["unconfirmed"], 1);
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("may have been stored"),
            "{body}"
        );
        assert!(!body.to_string().contains("timed out"), "{body}");
    }

    #[tokio::test]
    async fn every_key_refusal_reads_the_same_but_counts_apart() {
        let reasons: Vec<_> = [
            KeyRefusal::Missing,
            KeyRefusal::Unknown,
            KeyRefusal::Revoked,
        ]
        .into_iter()
        .map(|r| ApiError::Key(r).reason())
        .collect();
        assert_eq!(reasons, ["key_missing", "key_unknown", "key_revoked"]);
        let a = body_json(ApiError::Key(KeyRefusal::Missing).into_response()).await;
        let b = body_json(ApiError::Key(KeyRefusal::Revoked).into_response()).await;
        assert_eq!(a, b);
    }
}
