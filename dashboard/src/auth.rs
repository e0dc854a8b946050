//! HTTP Basic with dashboard users. argon2 is slow on purpose, so a
//! verified credential is remembered for a minute. The cache key includes
//! the user's stored hash, so a password change misses the cache at once;
//! the user record is read on every request, so a disabled user is refused
//! at once.

use crate::error::ApiError;
use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use projector::Projection;
use projector::record::UserRecord;
use sha2::{Digest, Sha256};
use std::time::Duration;

#[derive(Clone)]
pub struct Authenticator {
    projection: Projection,
    verified: moka::future::Cache<[u8; 32], ()>,
}

impl Authenticator {
    pub fn new(projection: Projection) -> Authenticator {
        Authenticator {
            projection,
            verified: moka::future::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(60))
                .build(),
        }
    }

    /// The user behind an `Authorization: Basic …` header.
    pub async fn basic(&self, headers: &HeaderMap) -> Result<UserRecord, ApiError> {
        let value = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
            .ok_or(ApiError::Unauthorized)?;
        let decoded = STANDARD
            .decode(value.trim())
            .map_err(|_| ApiError::Unauthorized)?;
        let text = String::from_utf8(decoded).map_err(|_| ApiError::Unauthorized)?;
        let (name, password) = text.split_once(':').ok_or(ApiError::Unauthorized)?;
        self.check(name, password).await
    }

    pub async fn check(&self, name: &str, password: &str) -> Result<UserRecord, ApiError> {
        let id = proto::ids::user_id(name).map_err(|_| ApiError::Unauthorized)?;
        let user = self.projection.user(&id)?.ok_or(ApiError::Unauthorized)?;
        if user.disabled {
            return Err(ApiError::Unauthorized);
        }
        let mut h = Sha256::new();
        h.update(user.password_hash.as_bytes());
        h.update([0]);
        h.update(password.as_bytes());
        let cache_key: [u8; 32] = h.finalize().into();
        if self.verified.get(&cache_key).await.is_some() {
            return Ok(user);
        }
        let (password, phc) = (password.to_owned(), user.password_hash.clone());
        let ok =
            tokio::task::spawn_blocking(move || proto::secret::verify_password(&password, &phc))
                .await
                .map_err(|e| ApiError::Internal(e.into()))?;
        if !ok {
            return Err(ApiError::Unauthorized);
        }
        self.verified.insert(cache_key, ()).await;
        Ok(user)
    }
}
