//! Errors of the dashboard's HTTP boundary: the caller's fault (with what
//! to fix) or ours (logged once, answered plainly).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(&'static str, String),
    #[error("sign in with HTTP Basic as a dashboard user")]
    Unauthorized,
    #[error("too many failed sign-ins from this address or for this name; try again in {} minutes", retry_after.div_ceil(60))]
    TooManyFailures { retry_after: u64 },
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("the projection did not reach sequence {0} within 10 s; try again")]
    WaitTimeout(u64),
    #[error("the projector is stopped at an event it cannot apply: {0}")]
    ProjectorStopped(String),
    /// Try again shortly (503); the message says what is missing.
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl From<projector::ProjectionError> for ApiError {
    /// The disk under the projection failing is a 503 with the reason
    /// (the projector reopens it by itself); anything else is ours.
    fn from(e: projector::ProjectionError) -> Self {
        if e.is_storage_failure() {
            ApiError::Unavailable(format!("the projection cannot be read right now: {e}"))
        } else {
            ApiError::Internal(e.into())
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            ApiError::BadRequest(code, _) => (StatusCode::BAD_REQUEST, *code),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::TooManyFailures { .. } => {
                (StatusCode::TOO_MANY_REQUESTS, "too_many_failures")
            }
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::WaitTimeout(_) => (StatusCode::GATEWAY_TIMEOUT, "min_seq_timeout"),
            ApiError::ProjectorStopped(_) => (StatusCode::SERVICE_UNAVAILABLE, "projector_stopped"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Internal(e) => {
                tracing::error!("internal error: {e:#}");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        };
        let body = json!({"error": {"code": code, "message": self.to_string()}});
        let mut resp = (status, Json(body)).into_response();
        match self {
            ApiError::Unauthorized => {
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"minilog\""),
                );
            }
            ApiError::TooManyFailures { retry_after } => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            }
            ApiError::Unavailable(_) | ApiError::ProjectorStopped(_) => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
            }
            _ => {}
        }
        resp
    }
}
