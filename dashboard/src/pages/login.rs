//! Login and logout. Failed attempts are limited per address and per name.

use super::{Ctx, FormData, PageError, back_to, render};
use crate::Dashboard;
use crate::session::{self, LOGIN_CSRF_COOKIE};
use askama::Template;
use axum::Extension;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Failed logins allowed per name, and per address, in [`WINDOW`].
pub const PER_NAME: u32 = 5;
pub const PER_ADDRESS: u32 = 20;
pub const WINDOW: Duration = Duration::from_secs(15 * 60);

pub fn routes() -> Router<Dashboard> {
    Router::new()
        .route("/login", get(form).post(submit))
        .route("/logout", post(logout))
}

/// Failure counters; moka bounds them under many addresses.
#[derive(Clone)]
pub struct LoginLimits {
    failures: moka::sync::Cache<String, Arc<AtomicU32>>,
}

impl Default for LoginLimits {
    fn default() -> Self {
        LoginLimits {
            failures: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(WINDOW)
                .build(),
        }
    }
}

impl LoginLimits {
    fn count(&self, key: &str) -> u32 {
        self.failures
            .get(key)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    fn fail(&self, key: String) {
        self.failures
            .get_with(key, || Arc::new(AtomicU32::new(0)))
            .fetch_add(1, Ordering::Relaxed);
    }

    fn blocked(&self, addr: &str, name: &str) -> bool {
        self.count(&format!("addr:{addr}")) >= PER_ADDRESS
            || self.count(&format!("name:{name}")) >= PER_NAME
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    ctx: Option<Ctx>,
    csrf: String,
    next: String,
    name: String,
    error: Option<String>,
}

fn login_page(
    status: StatusCode,
    next: &str,
    name: &str,
    error: Option<String>,
) -> Result<Response, PageError> {
    let csrf = session::random_token();
    let mut resp = render(&LoginPage {
        ctx: None,
        csrf: csrf.clone(),
        next: next.to_owned(),
        name: name.to_owned(),
        error,
    })?;
    *resp.status_mut() = status;
    let cookie = session::set_cookie(LOGIN_CSRF_COOKIE, &csrf, 3600);
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(resp)
}

async fn form(Query(q): Query<HashMap<String, String>>) -> Result<Response, PageError> {
    login_page(
        StatusCode::OK,
        q.get("next").map_or("/log/list/", String::as_str),
        "",
        None,
    )
}

async fn submit(
    State(d): State<Dashboard>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = FormData::parse(&body);
    let next = form.get("next").unwrap_or("/log/list/").to_owned();
    let name = form.get("name").unwrap_or("").trim().to_owned();
    let cookie_csrf = session::cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or("");
    if !session::tokens_match(form.get("csrf").unwrap_or(""), cookie_csrf) {
        return Err(PageError::Forbidden(
            "The login form expired or did not come from minilog (missing or wrong CSRF token). Reload it and try again.".into(),
        ));
    }
    let addr = peer.map_or_else(|| "unknown".to_owned(), |p| p.0.0.ip().to_string());
    let name_key = proto::ids::user_id(&name).unwrap_or_default();
    let limits = &d.inner.login_limits;
    if limits.blocked(&addr, &name_key) {
        return Err(PageError::TooMany(format!(
            "Too many failed logins; try again in {} minutes.",
            WINDOW.as_secs() / 60
        )));
    }
    let password = form.get("password").unwrap_or("");
    match d.inner.auth.check(&name, password).await {
        Ok(user) => {
            let mut resp = back_to(Some(&next));
            d.start_session(&mut resp, &user);
            Ok(resp)
        }
        Err(crate::error::ApiError::Unauthorized) => {
            limits.fail(format!("addr:{addr}"));
            limits.fail(format!("name:{name_key}"));
            login_page(
                StatusCode::UNAUTHORIZED,
                &next,
                &name,
                Some("Wrong name or password.".into()),
            )
        }
        Err(e) => Err(e.into()),
    }
}

async fn logout(
    State(d): State<Dashboard>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    let current = d.current(&headers, "/log/list/").await?;
    current.check_csrf(&FormData::parse(&body))?;
    let mut resp = back_to(Some("/login")).into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_static("minilog_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"),
    );
    Ok(resp)
}
