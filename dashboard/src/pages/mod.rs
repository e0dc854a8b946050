//! The HTML dashboard (askama templates in `dashboard/templates/`).
//!
//! Every page needs a session (else a redirect to `/login`); admin pages
//! need the admin role (else 403); every POST carries the session's CSRF
//! token (else 403). Actions publish an event, wait until the projector
//! has applied it, then redirect, so the next page shows the change.
//!
//! Layout: [`login`] (login, logout), [`groups`] (the landing page, a
//! group, resolving a group), [`entries`] (list, entry, resolve,
//! resolve-all, add by hand; an entry's exception in [`exception`]), [`admin`] (keys, users, password, audit,
//! health).

pub mod admin;
pub mod alerts;
pub mod charts;
pub mod entries;
pub mod exception;
pub mod extract;
pub mod groups;
pub mod login;

use crate::Dashboard;
use crate::session::{self, Session};
use askama::Template;
use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use projector::record::UserRecord;
use proto::event::{Envelope, Role};

pub fn routes() -> Router<Dashboard> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/log/groups/") }))
        .route("/log/", get(|| async { Redirect::to("/log/groups/") }))
        .route("/static/minilog.css", get(css))
        .route("/static/copy.js", get(copy_js))
        .route("/static/live.js", get(live_js))
        .merge(login::routes())
        .merge(entries::routes())
        .merge(groups::routes())
        .merge(admin::routes())
        .merge(alerts::routes())
}

async fn css() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../static/minilog.css"),
    )
}

async fn copy_js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../static/copy.js"),
    )
}

async fn live_js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../static/live.js"),
    )
}

/// What the page header needs.
pub struct Ctx {
    pub user: String,
    pub is_admin: bool,
    pub csrf: String,
    pub read_only: bool,
}

/// The signed-in user of a request.
pub struct Current {
    pub user: UserRecord,
    pub session: Session,
}

impl Current {
    /// What every page's header shows for the signed-in user (pages
    /// without one, the login and error pages, have `ctx: None`).
    pub fn ctx(&self, d: &Dashboard) -> Ctx {
        Ctx {
            user: self.user.name.clone(),
            is_admin: self.is_admin(),
            csrf: self.session.csrf.clone(),
            read_only: d.is_read_only(),
        }
    }

    pub fn is_admin(&self) -> bool {
        self.user.role == Role::Admin
    }

    pub fn csrf(&self) -> String {
        self.session.csrf.clone()
    }

    /// Refuses a form whose CSRF token is missing or wrong.
    pub fn check_csrf(&self, form: &FormData) -> Result<(), PageError> {
        if session::tokens_match(form.get("csrf").unwrap_or(""), &self.session.csrf) {
            Ok(())
        } else {
            Err(PageError::Forbidden(
                "This form has expired or did not come from minilog (missing or wrong CSRF token). Reload the page and try again.".into(),
            ))
        }
    }

    pub fn require_admin(&self) -> Result<(), PageError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(PageError::Forbidden(
                "Only admins may use this page.".into(),
            ))
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// Not signed in: redirect to the login page, then back here.
    #[error("sign in first")]
    Login(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    TooMany(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl From<projector::ProjectionError> for PageError {
    fn from(e: projector::ProjectionError) -> Self {
        crate::error::ApiError::from(e).into()
    }
}

impl From<askama::Error> for PageError {
    fn from(e: askama::Error) -> Self {
        PageError::Internal(e.into())
    }
}

impl From<crate::error::ApiError> for PageError {
    fn from(e: crate::error::ApiError) -> Self {
        use crate::error::ApiError as A;
        match e {
            A::WaitTimeout(_) | A::ProjectorStopped(_) | A::Unavailable(_) => {
                PageError::Unavailable(e.to_string())
            }
            A::NotFound(m) => PageError::NotFound(m),
            A::Forbidden(m) => PageError::Forbidden(m),
            A::BadRequest(_, m) | A::UnsupportedMediaType(m) => PageError::BadRequest(m),
            A::TooManyFailures { .. } => PageError::TooMany(e.to_string()),
            A::Unauthorized => PageError::Login("/log/list/".into()),
            A::Internal(e) => PageError::Internal(e),
        }
    }
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage {
    ctx: Option<Ctx>,
    title: String,
    message: String,
    is_error: bool,
    back: Option<String>,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, title) = match &self {
            PageError::Login(next) => {
                return Redirect::to(&format!("/login?next={}", encode(next))).into_response();
            }
            PageError::Forbidden(_) => (StatusCode::FORBIDDEN, "Not allowed"),
            PageError::NotFound(_) => (StatusCode::NOT_FOUND, "Not found"),
            PageError::BadRequest(_) => (StatusCode::BAD_REQUEST, "Please check the form"),
            PageError::TooMany(_) => (StatusCode::TOO_MANY_REQUESTS, "Too many attempts"),
            PageError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "Try again shortly"),
            PageError::Internal(e) => {
                tracing::error!("dashboard: {e:#}");
                (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong")
            }
        };
        let page = MessagePage {
            ctx: None,
            title: title.into(),
            message: self.to_string(),
            is_error: true,
            back: Some("/log/list/".into()),
        };
        let body = page.render().unwrap_or_else(|_| self.to_string());
        let mut resp = (status, Html(body)).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
        }
        resp
    }
}

pub fn render(t: &impl Template) -> Result<Response, PageError> {
    Ok(Html(t.render()?).into_response())
}

/// Where a page sends the browser afterwards (`next`): a path on this
/// site, else the list. Browsers drop tabs and newlines inside a URL and
/// read `\\` as `/`, so `/\t/evil.example/` is off-site: anything but
/// visible ASCII is refused, and so is a path that, decoded, starts with
/// two slashes or holds a backslash. Always safe in a `Location` header
/// and in an `href`.
pub fn local_path(next: Option<&str>) -> String {
    // The landing page.
    const LIST: &str = "/log/groups/";
    let Some(next) = next else {
        return LIST.to_owned();
    };
    let visible = |b: &u8| (0x21..0x7f).contains(b);
    let decoded: Vec<u8> = percent_decode_all(next.as_bytes());
    // Decoded, a space or `é` (a search for "café") is fine; a control
    // character, a backslash or a leading `//` is not.
    let ok = next.len() <= 2048
        && next.starts_with('/')
        && next.bytes().all(|b| visible(&b))
        && !decoded.contains(&b'\\')
        && !decoded.starts_with(b"//")
        && !decoded.iter().any(|b| b.is_ascii_control());
    if ok { next.to_owned() } else { LIST.to_owned() }
}

/// Percent-decodes until nothing changes (a few rounds at most), so
/// `%252F` counts as `/` too.
fn percent_decode_all(bytes: &[u8]) -> Vec<u8> {
    let mut current = bytes.to_vec();
    for _ in 0..4 {
        let next: Vec<u8> = percent_encoding::percent_decode(&current).collect();
        if next == current {
            break;
        }
        current = next;
    }
    current
}

/// A 303 to `next` if it is a local path, else to the list.
pub fn back_to(next: Option<&str>) -> Response {
    Redirect::to(&local_path(next)).into_response()
}

pub fn encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Form or query fields, repeated names kept (`level=a&level=b`).
#[derive(Debug, Default)]
pub struct FormData(Vec<(String, String)>);

impl FormData {
    pub fn parse(bytes: &[u8]) -> FormData {
        FormData(form_urlencoded::parse(bytes).into_owned().collect())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }

    /// Every value of `name`, comma lists split, blanks dropped.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// Times as people read them: `2026-11-24 10:00:00 UTC`.
pub fn show_time(ms: i64) -> String {
    let t = proto::clock::rfc3339(ms - ms.rem_euclid(1000));
    t.replace('T', " ").replace('Z', " UTC")
}

impl Dashboard {
    /// Adds a fresh session cookie for `user` to a response.
    pub fn start_session(&self, resp: &mut Response, user: &UserRecord) {
        let s = Session {
            user_id: user.user_id.clone(),
            epoch: user.epoch,
            expires: proto::clock::now_ms() / 1000 + session::TTL_SECS,
            csrf: session::random_token(),
        };
        let sealed = self.inner.session_key.seal(&s);
        let cookie = self
            .inner
            .cookies
            .set(session::COOKIE, &sealed, session::TTL_SECS);
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }

    /// The signed-in user, or a redirect to the login page: the one an
    /// authenticating proxy vouched for ([`crate::sso::proxy_layer`]), else
    /// the session cookie's.
    pub async fn current(
        &self,
        headers: &HeaderMap,
        proxied: Option<&crate::sso::ProxyUser>,
        here: &str,
    ) -> Result<Current, PageError> {
        if let Some(crate::sso::ProxyUser(user)) = proxied {
            return Ok(Current {
                session: self.proxy_session(user),
                user: user.clone(),
            });
        }
        let login = || PageError::Login(here.to_owned());
        let value = self
            .inner
            .cookies
            .get(headers, session::COOKIE)
            .ok_or_else(login)?;
        let now = proto::clock::now_ms() / 1000;
        let session = self.inner.session_key.open(value, now).ok_or_else(login)?;
        let user = self
            .inner
            .projection
            .user(&session.user_id)?
            .ok_or_else(login)?;
        if user.disabled || user.epoch != session.epoch {
            return Err(login());
        }
        Ok(Current { user, session })
    }

    /// A user's action from a page ([`Dashboard::publish_and_wait`]).
    pub async fn act(&self, subject: String, env: Envelope) -> Result<u64, PageError> {
        Ok(self.publish_and_wait(subject, env).await?)
    }
}
