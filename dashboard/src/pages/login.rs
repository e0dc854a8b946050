//! Login and logout. Failed attempts are limited per address and per name
//! before any hashing, by the same rule as HTTP Basic ([`crate::auth`]).

use super::{Ctx, FormData, PageError, back_to, local_path, render};
use crate::Dashboard;
use crate::auth::{ClientIp, Refusal};
use crate::session::{self, LOGIN_CSRF_COOKIE};
use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::collections::HashMap;

pub fn routes() -> Router<Dashboard> {
    Router::new()
        .route("/login", get(form).post(submit))
        .route("/logout", post(logout))
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    ctx: Option<Ctx>,
    csrf: String,
    next: String,
    name: String,
    error: Option<String>,
    /// "Sign in with …" beside the form, when an OpenID Connect provider is set.
    oidc_label: Option<String>,
    /// `next`, as a query parameter for the button's link.
    next_query: String,
}

/// The login page (also where a refused single sign-on explains itself).
pub(crate) fn login_page(
    d: &Dashboard,
    status: StatusCode,
    next: &str,
    name: &str,
    error: Option<String>,
) -> Result<Response, PageError> {
    let csrf = session::random_token();
    let mut resp = render(&LoginPage {
        ctx: None,
        csrf: csrf.clone(),
        next: local_path(Some(next)),
        name: name.to_owned(),
        error,
        oidc_label: d.inner.oidc.as_ref().map(|o| o.label().to_owned()),
        next_query: form_urlencoded::byte_serialize(local_path(Some(next)).as_bytes()).collect(),
    })?;
    *resp.status_mut() = status;
    let cookie = d.inner.cookies.set(LOGIN_CSRF_COOKIE, &csrf, 3600);
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(resp)
}

async fn form(
    State(d): State<Dashboard>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, PageError> {
    login_page(
        &d,
        StatusCode::OK,
        &local_path(q.get("next").map(String::as_str)),
        "",
        None,
    )
}

async fn submit(
    State(d): State<Dashboard>,
    ClientIp(addr): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = FormData::parse(&body);
    let next = local_path(form.get("next"));
    let name = form.get("name").unwrap_or("").trim().to_owned();
    let cookie_csrf = d
        .inner
        .cookies
        .get(&headers, LOGIN_CSRF_COOKIE)
        .unwrap_or("");
    if !session::tokens_match(form.get("csrf").unwrap_or(""), cookie_csrf) {
        return Err(PageError::Forbidden(
            "The login form expired or did not come from minilog (missing or wrong CSRF token). Reload it and try again.".into(),
        ));
    }
    let password = form.get("password").unwrap_or("");
    match d.inner.auth.check(&name, password, addr).await {
        Ok(user) => {
            let mut resp = back_to(Some(&next));
            d.start_session(&mut resp, &user);
            Ok(resp)
        }
        Err(Refusal::Limited { retry_after }) => Err(PageError::TooMany(format!(
            "Too many failed logins from this address or for this name; try again in {} minutes.",
            retry_after.div_ceil(60)
        ))),
        Err(Refusal::Busy) => Err(PageError::Unavailable(
            "Too many sign-ins are being checked at once; try again in a moment.".into(),
        )),
        Err(Refusal::Wrong) => login_page(
            &d,
            StatusCode::UNAUTHORIZED,
            &next,
            &name,
            Some("Wrong name or password.".into()),
        ),
    }
}

async fn logout(
    State(d): State<Dashboard>,
    posted: super::extract::Posted<super::extract::NoFields>,
) -> Result<Response, PageError> {
    // Off to the provider too, where single logout is on (`--oidc-single-logout`).
    let provider = match d.inner.oidc.clone() {
        Some(oidc) => oidc.logout_url(&posted.me.user).await,
        None => None,
    };
    let mut resp = match provider {
        Some(url) => to_provider(&url),
        None => back_to(Some("/login")).into_response(),
    };
    if let Ok(v) = HeaderValue::from_str(&d.inner.cookies.set(session::COOKIE, "", 0)) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(resp)
}

/// A page that moves on to the provider's sign-out (a redirect would be a
/// form's, which `form-action 'self'` stops; a refresh is not), with the
/// link for browsers that do not refresh.
fn to_provider(url: &str) -> Response {
    let url = crate::alerts::email::escape(url);
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"0;url={url}\"><title>Signing out</title>\
         </head><body><p>Signed out of minilog. <a id=\"provider-logout\" href=\"{url}\">\
         Sign out at the identity provider too</a>.</p></body></html>"
    );
    (
        [(header::CACHE_CONTROL, "no-store")],
        axum::response::Html(page),
    )
        .into_response()
}
