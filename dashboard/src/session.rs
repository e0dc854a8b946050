//! Sessions and CSRF.
//!
//! A session is a signed cookie (HMAC-SHA256 with a key from a file, so
//! several `view`s can share it): user id, the user's epoch, expiry and a
//! CSRF token. HttpOnly, SameSite=Lax. The epoch changes with password,
//! role or disabling (an event), so those end every older session.
//! Login forms, which come before any session, use a double-submit cookie.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use rand::Rng;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

pub const COOKIE: &str = "minilog_session";
pub const LOGIN_CSRF_COOKIE: &str = "minilog_login_csrf";
/// Sessions last this long.
pub const TTL_SECS: i64 = 12 * 3600;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub user_id: String,
    pub epoch: u64,
    /// Unix seconds.
    pub expires: i64,
    pub csrf: String,
}

#[derive(Clone)]
pub struct SessionKey([u8; 32]);

impl SessionKey {
    pub fn new(bytes: [u8; 32]) -> SessionKey {
        SessionKey(bytes)
    }

    pub fn random() -> SessionKey {
        SessionKey(rand::rng().random())
    }

    /// Reads the key from `path`, creating it (owner-only) when missing.
    pub fn from_file(path: &std::path::Path) -> anyhow::Result<SessionKey> {
        use anyhow::Context;
        match std::fs::read(path) {
            Ok(bytes) => {
                let bytes: [u8; 32] = hex::decode(String::from_utf8_lossy(&bytes).trim())
                    .ok()
                    .and_then(|b| b.try_into().ok())
                    .with_context(|| format!("{} must hold 64 hex digits", path.display()))?;
                Ok(SessionKey(bytes))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = SessionKey::random();
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                use std::io::Write;
                let mut f = options
                    .open(path)
                    .with_context(|| format!("creating the session key {}", path.display()))?;
                f.write_all(hex::encode(key.0).as_bytes())?;
                Ok(key)
            }
            Err(e) => Err(e).with_context(|| format!("reading the session key {}", path.display())),
        }
    }

    fn mac(&self, data: &[u8]) -> [u8; 32] {
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&self.0).expect("any key length");
        mac.update(data);
        mac.finalize().into_bytes().into()
    }

    /// `value` as JSON, signed for `purpose` (a value sealed for one
    /// purpose does not open for another, nor as a session).
    pub fn seal_value<T: Serialize>(&self, purpose: &str, value: &T) -> String {
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).expect("plain data encodes"));
        let sig = URL_SAFE_NO_PAD.encode(self.mac(format!("{purpose}\0{body}").as_bytes()));
        format!("{body}.{sig}")
    }

    /// A value [`SessionKey::seal_value`] sealed for `purpose`, if its
    /// signature holds.
    pub fn open_value<T: serde::de::DeserializeOwned>(
        &self,
        purpose: &str,
        sealed: &str,
    ) -> Option<T> {
        let (body, sig) = sealed.split_once('.')?;
        let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
        let mac = self.mac(format!("{purpose}\0{body}").as_bytes());
        if !bool::from(mac.as_slice().ct_eq(&sig)) {
            return None;
        }
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).ok()?).ok()
    }

    /// A token only this key makes from `data`, for `purpose`.
    pub fn derive(&self, purpose: &str, data: &str) -> String {
        URL_SAFE_NO_PAD.encode(&self.mac(format!("{purpose}\0derive\0{data}").as_bytes())[..18])
    }

    pub fn seal(&self, session: &Session) -> String {
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(session).expect("sessions encode"));
        let sig = URL_SAFE_NO_PAD.encode(self.mac(body.as_bytes()));
        format!("{body}.{sig}")
    }

    /// The session in a cookie value, if its signature holds and it has not
    /// expired at `now` (Unix seconds).
    pub fn open(&self, value: &str, now: i64) -> Option<Session> {
        let (body, sig) = value.split_once('.')?;
        let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
        if !bool::from(self.mac(body.as_bytes()).as_slice().ct_eq(&sig)) {
            return None;
        }
        let session: Session = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).ok()?).ok()?;
        (session.expires > now).then_some(session)
    }
}

pub fn random_token() -> String {
    let bytes: [u8; 18] = rand::rng().random();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Constant-time comparison of two tokens.
pub fn tokens_match(a: &str, b: &str) -> bool {
    !a.is_empty() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// How the dashboard's cookies are named and flagged. Behind TLS
/// (`--public-url https://…` or `--secure-cookies`) they carry `Secure`
/// and the `__Host-` prefix, which browsers accept only from a secure
/// origin, for the whole host (`Path=/`, no `Domain`): a sibling subdomain
/// or a plain-HTTP page cannot set or overwrite them.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cookies {
    pub secure: bool,
}

impl Cookies {
    pub fn name(&self, base: &str) -> String {
        if self.secure {
            format!("__Host-{base}")
        } else {
            base.to_owned()
        }
    }

    /// A `Set-Cookie` value; `max_age` 0 removes the cookie.
    pub fn set(&self, base: &str, value: &str, max_age: i64) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!(
            "{}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}",
            self.name(base)
        )
    }

    /// The value of cookie `base` (by its name here) in a request.
    pub fn get<'a>(&self, headers: &'a axum::http::HeaderMap, base: &str) -> Option<&'a str> {
        cookie(headers, &self.name(base))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_sessions_open_until_they_expire_and_not_when_altered() {
        let key = SessionKey::random();
        let s = Session {
            user_id: "alice".into(),
            epoch: 2,
            expires: 1000,
            csrf: random_token(),
        };
        let sealed = key.seal(&s);
        assert_eq!(key.open(&sealed, 999), Some(s.clone()));
        assert_eq!(key.open(&sealed, 1000), None);
        assert_eq!(SessionKey::random().open(&sealed, 0), None);
        let mut forged = s.clone();
        forged.user_id = "admin".into();
        let body = key.seal(&forged);
        let tampered = format!(
            "{}.{}",
            body.split('.').next().unwrap(),
            sealed.split('.').nth(1).unwrap()
        );
        assert_eq!(key.open(&tampered, 0), None);
    }

    #[test]
    fn sealed_values_open_only_for_their_purpose() {
        let key = SessionKey::random();
        let sealed = key.seal_value("oidc", &vec![1, 2, 3]);
        assert_eq!(
            key.open_value::<Vec<i32>>("oidc", &sealed),
            Some(vec![1, 2, 3])
        );
        assert_eq!(key.open_value::<Vec<i32>>("other", &sealed), None);
        assert_eq!(
            SessionKey::random().open_value::<Vec<i32>>("oidc", &sealed),
            None
        );
        // Nor does a session open as a value, or a value as a session.
        assert_eq!(key.open(&sealed, 0), None);
        assert_ne!(key.derive("a", "x"), key.derive("b", "x"));
        assert_eq!(key.derive("a", "x"), key.derive("a", "x"));
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = axum::http::HeaderMap::new();
        h.insert(
            "cookie",
            "a=1; minilog_session=xyz.abc; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&h, COOKIE), Some("xyz.abc"));
        assert_eq!(cookie(&h, "c"), None);
    }
}
