//! The checks every page makes, as axum extractors, so a handler states
//! what it needs in its signature and cannot forget one:
//! - [`SignedIn`]: a valid session, else a redirect to the login page and
//!   back here;
//! - [`AdminOnly`]: the same, and the admin role (else 403);
//! - [`Posted`]: a signed-in user's form, with the session's CSRF token
//!   (else 403), its fields read into a `#[derive(Deserialize)]` type;
//! - [`Action`]: a [`Posted`] form that changes something, refused on a
//!   read-only dashboard (403).

use super::{Current, FormData, PageError};
use crate::Dashboard;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

/// The largest form body read (a hand-added entry's message is the
/// biggest field, at most the message limit).
const FORM_LIMIT: usize = 1 << 20;

/// Pages that are both a form (GET) and its submission (POST): a POST to
/// one without a session returns there after signing in; a POST to any
/// other path, to the list.
const FORM_PAGES: [&str; 5] = [
    "/log/new/",
    "/log/password/",
    "/log/keys/",
    "/log/users/",
    "/log/alerts/",
];

/// A signed-in user's request.
pub struct SignedIn(pub Current);

impl FromRequestParts<Dashboard> for SignedIn {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, d: &Dashboard) -> Result<Self, PageError> {
        let here = parts
            .uri
            .path_and_query()
            .map_or("/log/list/", |p| p.as_str());
        Ok(SignedIn(
            d.current(&parts.headers, parts.extensions.get(), here)
                .await?,
        ))
    }
}

/// A signed-in admin's request.
pub struct AdminOnly(pub Current);

impl FromRequestParts<Dashboard> for AdminOnly {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, d: &Dashboard) -> Result<Self, PageError> {
        let SignedIn(me) = SignedIn::from_request_parts(parts, d).await?;
        me.require_admin()?;
        Ok(AdminOnly(me))
    }
}

/// A form posted by a signed-in user with the right CSRF token: the user,
/// the fields as `T`, and every field as sent (for repeated ones).
pub struct Posted<T> {
    pub me: Current,
    pub form: T,
    pub fields: FormData,
}

impl<T: DeserializeOwned> FromRequest<Dashboard> for Posted<T> {
    type Rejection = PageError;

    async fn from_request(req: Request, d: &Dashboard) -> Result<Self, PageError> {
        let (parts, body) = req.into_parts();
        let path = parts.uri.path();
        let here = FORM_PAGES
            .iter()
            .find(|p| **p == path)
            .copied()
            .unwrap_or("/log/list/");
        let me = d
            .current(&parts.headers, parts.extensions.get(), here)
            .await?;
        let bytes = axum::body::to_bytes(body, FORM_LIMIT)
            .await
            .map_err(|_| PageError::BadRequest("The form is too large.".into()))?;
        let fields = FormData::parse(&bytes);
        me.check_csrf(&fields)?;
        let form = serde_urlencoded::from_bytes(&bytes)
            .map_err(|e| PageError::BadRequest(format!("Please check the form: {e}.")))?;
        Ok(Posted { me, form, fields })
    }
}

/// A [`Posted`] form that changes something: refused on a read-only
/// dashboard.
pub struct Action<T>(pub Posted<T>);

impl<T: DeserializeOwned> FromRequest<Dashboard> for Action<T> {
    type Rejection = PageError;

    async fn from_request(req: Request, d: &Dashboard) -> Result<Self, PageError> {
        let posted = Posted::from_request(req, d).await?;
        if d.is_read_only() {
            return Err(PageError::Forbidden("This dashboard is read-only.".into()));
        }
        Ok(Action(posted))
    }
}

/// A form with no fields of its own (the CSRF token only).
#[derive(serde::Deserialize)]
pub struct NoFields {}

/// An [`Action`] only an admin may take (else 403).
pub struct AdminAction<T>(pub Posted<T>);

impl<T: DeserializeOwned> FromRequest<Dashboard> for AdminAction<T> {
    type Rejection = PageError;

    async fn from_request(req: Request, d: &Dashboard) -> Result<Self, PageError> {
        let Action(posted) = Action::from_request(req, d).await?;
        posted.me.require_admin()?;
        Ok(AdminAction(posted))
    }
}
