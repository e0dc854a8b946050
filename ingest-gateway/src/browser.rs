//! Browser reports without a proxy (docs/api.md, "POST /api/v1/browser"): `GET /minilog.js` serves
//! the snippet; `POST /api/v1/browser` takes its reports.
//!
//! A report carries a token the site's server made (docs/api.md, "Browser
//! tokens"). Checks, in order: the token's form, its key (known and its
//! signature right, else `401`), the key being active, the expiry (past,
//! or further ahead than `max_token_ttl`: `401`), the `Origin` against the
//! key's allowed origins (`403`), the per-address limit and the key's rate
//! limit (`429`, nothing logged). The message is cut to
//! `max_message_chars`; the entry is marked untrusted, with the page's URL
//! and the error's details in `meta`.
//!
//! CORS answers only allowed origins: a preflight (which carries no token)
//! for an origin some active key allows, and every answer to a report
//! from such an origin. Other origins get no CORS headers at all.

use crate::error::{ApiError, KeyRefusal, TokenRefusal};
use crate::publish::{MessageIds, Submission};
use crate::stats::Path;
use crate::{Gateway, body};
use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use proto::secret::{ParsedToken, TokenError};
use serde_json::{Map, Value, json};

/// The snippet: no dependencies, never throws, a few reports per page view.
pub const SCRIPT: &str = include_str!("minilog.js");

/// Largest report body.
const MAX_BODY: usize = 64 * 1024;

pub(crate) async fn script() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/javascript; charset=utf-8"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
        ],
        SCRIPT,
    )
        .into_response()
}

/// The `Origin` header, normalized; `None` if missing or not an origin.
pub(crate) fn origin(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .and_then(proto::commands::normalize_origin)
}

/// CORS for an allowed `origin`, letting the page read the `expose`d
/// answer headers.
pub(crate) fn add_cors(response: &mut Response, origin: &str, expose: &'static str) {
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(expose),
    );
}

pub(crate) async fn preflight(State(gw): State<Gateway>, headers: HeaderMap) -> Response {
    match origin(&headers) {
        Some(o) if gw.registry().origin_allowed_anywhere(&o) => {
            let mut response = StatusCode::NO_CONTENT.into_response();
            add_cors(&mut response, &o, "Retry-After");
            let h = response.headers_mut();
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("POST"),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("content-type"),
            );
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("600"),
            );
            response
        }
        _ => {
            let mut response = StatusCode::FORBIDDEN.into_response();
            response
                .headers_mut()
                .insert(header::VARY, HeaderValue::from_static("Origin"));
            response
        }
    }
}

pub(crate) async fn add(gw: Gateway, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let origin = origin(&parts.headers);
    let result = async {
        let bytes = body::read(body, &parts.headers, MAX_BODY.min(gw.config().body_limit)).await?;
        let text = std::str::from_utf8(&bytes).map_err(|_| ApiError::InvalidUtf8)?;
        let value: Value =
            serde_json::from_str(text).map_err(|e| ApiError::InvalidJson(e.to_string()))?;
        let Value::Object(report) = value else {
            return Err(ApiError::InvalidBody);
        };
        let key_id = check_token(&gw, report.get("token"))?;
        let Some(origin) = origin.as_deref() else {
            return Err(ApiError::OriginNotAllowed);
        };
        let allowed = gw
            .registry()
            .get(&key_id)
            .is_some_and(|k| k.state.origins.iter().any(|o| o == origin));
        if !allowed {
            return Err(ApiError::OriginNotAllowed);
        }
        let item = entry_item(&report, origin, gw.config().browser.max_message_chars);
        let entry =
            proto::input::json_item(&item, &gw.config().limits).map_err(ApiError::InvalidField)?;
        let ip = gw.client_ip(&parts);
        gw.check_address(ip.as_deref().unwrap_or("unknown"))?;
        let published = gw
            .store(Submission {
                path: Path::Browser,
                ip,
                key_id,
                entries: vec![entry],
                ids: MessageIds::Idempotency(None),
                untrusted: true,
            })
            .await?;
        Ok(published.ids.first().copied().unwrap_or_default())
    }
    .await;
    let mut response = match result {
        Ok(id) => Json(json!({ "id": id })).into_response(),
        Err(e) => {
            gw.reject(Path::Browser, &e);
            e.into_response()
        }
    };
    if let Some(o) = &origin
        && gw.registry().origin_allowed_anywhere(o)
    {
        add_cors(&mut response, o, "Retry-After");
    }
    response
}

/// The key id of a valid, current token whose key is active.
fn check_token(gw: &Gateway, token: Option<&Value>) -> Result<String, ApiError> {
    let Some(Value::String(token)) = token else {
        return Err(ApiError::Token(TokenRefusal::Missing));
    };
    let parsed = ParsedToken::parse(token).map_err(|e| match e {
        TokenError::Malformed => ApiError::Token(TokenRefusal::Malformed),
        TokenError::BadSignature => ApiError::Token(TokenRefusal::BadSignature),
    })?;
    if !gw.keys_loaded() {
        return Err(ApiError::Starting);
    }
    // An unknown key reads like a wrong signature: nothing is learnt
    // about which key ids exist.
    let key = gw
        .registry()
        .get(&parsed.key_id)
        .ok_or(ApiError::Token(TokenRefusal::BadSignature))?;
    parsed
        .verify(&key.browser_key)
        .map_err(|_| ApiError::Token(TokenRefusal::BadSignature))?;
    if !key.state.active {
        return Err(ApiError::Key(KeyRefusal::Revoked));
    }
    let now = proto::clock::now_ms() / 1000;
    if parsed.expiry < now {
        return Err(ApiError::Token(TokenRefusal::Expired));
    }
    let max_ahead = i64::try_from(gw.config().browser.max_token_ttl.as_secs()).unwrap_or(i64::MAX);
    if parsed.expiry > now.saturating_add(max_ahead) {
        return Err(ApiError::Token(TokenRefusal::TooLong));
    }
    Ok(key.state.key_id)
}

/// Cuts text to `max` characters, marking the cut with `…`.
fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// The report as an item of `POST /api/v1/entries`: level `error`,
/// source `browser`, details in `meta` (each within the meta limits).
fn entry_item(report: &Map<String, Value>, origin: &str, max_message_chars: usize) -> Value {
    let text = |name: &str| -> Option<String> {
        match report.get(name)? {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    };
    let message = text("message").map(|m| cut(&m, max_message_chars));
    let max_meta = proto::input::MAX_META_VALUE_CHARS - 1;
    let mut meta = Map::new();
    meta.insert("origin".into(), json!(origin));
    for name in [
        "url",
        "file",
        "line",
        "column",
        "stack",
        "user_agent",
        "kind",
    ] {
        if let Some(v) = text(name) {
            meta.insert(name.into(), json!(cut(&v, max_meta)));
        }
    }
    json!({
        "message": message,
        "level": "error",
        "source": "browser",
        "meta": meta,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_cut_on_characters_with_a_mark() {
        assert_eq!(cut("abcdef", 3), "abc…");
        assert_eq!(cut("abc", 3), "abc");
        assert_eq!(cut("ééééé", 2), "éé…");
    }

    #[test]
    fn a_report_becomes_an_untrusted_style_item_within_the_meta_limits() {
        let report: Map<String, Value> = serde_json::from_value(json!({
            "token": "t", "message": "x".repeat(5000), "url": "https://shop.example/cart",
            "line": 12, "stack": "s".repeat(5000), "extra": {"nested": true}
        }))
        .unwrap();
        let item = entry_item(&report, "https://shop.example", 2048);
        assert_eq!(item["message"].as_str().unwrap().chars().count(), 2049);
        assert_eq!(item["meta"]["url"], "https://shop.example/cart");
        assert_eq!(item["meta"]["line"], "12");
        assert_eq!(item["meta"]["origin"], "https://shop.example");
        let entry = proto::input::json_item(&item, &proto::input::Limits::default()).unwrap();
        assert_eq!(entry.level, proto::Level::Error);
        assert_eq!(entry.source.as_deref(), Some("browser"));
    }
}
