//! Password checks for both ways in: HTTP Basic on the JSON API and the
//! login form. One [`Authenticator::check`] serves both, so the limits
//! cannot drift between them:
//!
//! - **Failures are limited before hashing**, per address (an IPv6
//!   address counts as its /64) and per name. The attempt reserves its
//!   slot atomically first, so a parallel burst is cut off at the limit
//!   instead of being hashed in full; a correct password gives the slot
//!   back.
//! - **A name over its limit is not locked for everyone**: an address with
//!   no failures on that name still gets its attempt, so the owner can log
//!   in while a guesser elsewhere is refused (each address gets one guess
//!   on a locked name per window, no more).
//! - **Unknown and disabled names cost the same** as a wrong password: a
//!   dummy hash is verified, so timing does not tell which names exist.
//! - **argon2 runs on a fixed pool** of [`HASH_THREADS`] threads (19 MiB
//!   each while hashing), whatever the number of requests waiting.
//! - A verified credential is remembered for a minute. The cache key holds
//!   the user's stored hash, so a password change misses it at once; the
//!   user record is read on every request, so a disabled user is refused
//!   at once.

use crate::error::ApiError;
use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use projector::Projection;
use projector::record::UserRecord;
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, LazyLock, Mutex, mpsc};
use std::time::Duration;

/// Failed checks allowed per name, and per address, in [`WINDOW`].
pub const PER_NAME: u32 = 5;
pub const PER_ADDRESS: u32 = 20;
pub const WINDOW: Duration = Duration::from_secs(15 * 60);

/// Threads that verify passwords; requests beyond wait their turn.
pub const HASH_THREADS: usize = 2;

/// Verified against when the name is unknown or disabled, so that answer
/// takes as long as a wrong password.
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| proto::secret::hash_password("minilog dummy password"));

/// Why a check failed.
#[derive(Debug)]
pub enum Refusal {
    /// Wrong name or password (one answer for both).
    Wrong,
    /// Too many failures from this address or on this name; nothing was
    /// checked.
    Limited { retry_after: u64 },
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> ApiError {
        match r {
            Refusal::Wrong => ApiError::Unauthorized,
            Refusal::Limited { retry_after } => ApiError::TooManyFailures { retry_after },
        }
    }
}

#[derive(Clone)]
pub struct Authenticator {
    projection: Projection,
    verified: moka::future::Cache<[u8; 32], ()>,
    failures: moka::sync::Cache<String, Arc<AtomicU32>>,
    pool: HashPool,
}

/// One attempt's reserved failure slots: kept as failures when the check
/// fails, given back when it succeeds or is refused.
struct Reservation(Vec<Arc<AtomicU32>>);

impl Reservation {
    fn give_back(self) {
        for c in self.0 {
            c.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Authenticator {
    pub fn new(projection: Projection) -> Authenticator {
        Authenticator {
            projection,
            verified: moka::future::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(60))
                .build(),
            // moka bounds the counters under many addresses.
            failures: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(WINDOW)
                .build(),
            pool: HashPool::start(HASH_THREADS),
        }
    }

    /// The user behind an `Authorization: Basic …` header.
    pub async fn basic(
        &self,
        headers: &HeaderMap,
        addr: Option<IpAddr>,
    ) -> Result<UserRecord, ApiError> {
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
        Ok(self.check(name, password, addr).await?)
    }

    /// Checks a name and password from `addr`, within the limits.
    pub async fn check(
        &self,
        name: &str,
        password: &str,
        addr: Option<IpAddr>,
    ) -> Result<UserRecord, Refusal> {
        let user_id = proto::ids::user_id(name).unwrap_or_default();
        let reservation = self.reserve(&address_key(addr), &user_id)?;
        let user = self
            .projection
            .user(&user_id)
            .ok()
            .flatten()
            .filter(|u| !u.disabled);
        let phc = user
            .as_ref()
            .map_or_else(|| DUMMY_HASH.clone(), |u| u.password_hash.clone());
        let mut h = Sha256::new();
        h.update(phc.as_bytes());
        h.update([0]);
        h.update(password.as_bytes());
        let cache_key: [u8; 32] = h.finalize().into();
        let ok = match &user {
            Some(_) if self.verified.get(&cache_key).await.is_some() => true,
            _ => self.pool.verify(password.to_owned(), phc).await,
        };
        match user {
            Some(user) if ok => {
                reservation.give_back();
                self.verified.insert(cache_key, ()).await;
                Ok(user)
            }
            // The reserved slots stay: they are this failure.
            _ => Err(Refusal::Wrong),
        }
    }

    /// An argon2 hash of a new password, made on the same bounded pool.
    pub async fn hash(&self, password: &str) -> anyhow::Result<String> {
        let password = password.to_owned();
        self.pool
            .run(move || proto::secret::hash_password(&password))
            .await
            .ok_or_else(|| anyhow::anyhow!("the password-hashing threads are gone"))
    }

    fn counter(&self, key: String) -> Arc<AtomicU32> {
        self.failures.get_with(key, || Arc::new(AtomicU32::new(0)))
    }

    /// Takes a failure slot on the address, the name and the pair, or
    /// refuses (giving back what it took) when the address is over its
    /// limit, or the name is and this address already failed on it.
    fn reserve(&self, addr: &str, user_id: &str) -> Result<Reservation, Refusal> {
        let limited = Refusal::Limited {
            retry_after: WINDOW.as_secs(),
        };
        let by_addr = self.counter(format!("addr:{addr}"));
        if by_addr.fetch_add(1, Ordering::AcqRel) >= PER_ADDRESS {
            Reservation(vec![by_addr]).give_back();
            return Err(limited);
        }
        let by_name = self.counter(format!("name:{user_id}"));
        let pair = self.counter(format!("pair:{addr}|{user_id}"));
        let name_before = by_name.fetch_add(1, Ordering::AcqRel);
        let pair_before = pair.fetch_add(1, Ordering::AcqRel);
        let reservation = Reservation(vec![by_addr, by_name, pair]);
        if name_before >= PER_NAME && pair_before >= 1 {
            reservation.give_back();
            return Err(limited);
        }
        Ok(reservation)
    }
}

/// The client's address: the peer, or what a trusted proxy
/// (`--trusted-proxy`) says, as ingestion records it.
pub struct ClientIp(pub Option<IpAddr>);

impl axum::extract::FromRequestParts<crate::Dashboard> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        d: &crate::Dashboard,
    ) -> Result<ClientIp, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip());
        let forwarded = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .map_while(|v| v.to_str().ok());
        Ok(ClientIp(proto::client_addr::client_ip(
            peer,
            forwarded,
            &d.inner.trusted_proxies,
        )))
    }
}

/// A dashboard user signed in with HTTP Basic, on a request that did not
/// come from another site: a browser holding cached Basic credentials
/// sends them with any site's form, so every route that acts with a
/// user's credentials refuses what the browser marks as cross-site
/// (`Sec-Fetch-Site`) or as from another origin (`Origin`). Programs
/// (curl, scripts) send neither header and are not affected.
pub struct BasicUser(pub UserRecord);

impl axum::extract::FromRequestParts<crate::Dashboard> for BasicUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        d: &crate::Dashboard,
    ) -> Result<BasicUser, ApiError> {
        same_origin_only(&parts.headers, d.inner.public_origin.as_deref())?;
        let ClientIp(addr) = match ClientIp::from_request_parts(parts, d).await {
            Ok(ip) => ip,
            Err(never) => match never {},
        };
        Ok(BasicUser(d.inner.auth.basic(&parts.headers, addr).await?))
    }
}

/// Refuses a request a browser sent on behalf of another site or origin:
/// an `Origin` must name this host (`Host`) or `public_origin`.
pub fn same_origin_only(headers: &HeaderMap, public_origin: Option<&str>) -> Result<(), ApiError> {
    let refuse = |why: String| {
        Err(ApiError::Forbidden(format!(
            "{why}: this API acts with your credentials, so it answers only requests from \
             minilog's own pages or from programs"
        )))
    };
    if let Some(site) = headers.get("sec-fetch-site") {
        let site = site.to_str().unwrap_or("");
        if !matches!(site, "same-origin" | "none") {
            return refuse(format!("the browser marks this request {site:?}"));
        }
    }
    if let Some(origin) = headers.get(axum::http::header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        let host = headers
            .get(axum::http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        let origin_host = origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"))
            .unwrap_or("");
        let public = public_origin.is_some_and(|p| p.eq_ignore_ascii_case(origin));
        if !public && (origin_host.is_empty() || !origin_host.eq_ignore_ascii_case(host)) {
            return refuse(format!("the request comes from origin {origin:?}"));
        }
    }
    Ok(())
}

/// An address as the limits count it: IPv6 by its /64 (one host holds a
/// whole /64), IPv4 as it is.
fn address_key(addr: Option<IpAddr>) -> String {
    match addr.map(|a| a.to_canonical()) {
        Some(IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Some(IpAddr::V4(v4)) => v4.to_string(),
        None => "unknown".to_owned(),
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// A fixed number of threads that run argon2, fed by one queue: memory
/// stays at `threads` × argon2's 19 MiB however many requests wait.
#[derive(Clone)]
struct HashPool {
    jobs: mpsc::Sender<Job>,
}

impl HashPool {
    fn start(threads: usize) -> HashPool {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..threads.max(1) {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("minilog-argon2-{i}"))
                .spawn(move || {
                    loop {
                        // The lock is held only while taking a job.
                        let job = match queue.lock() {
                            Ok(q) => q.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!("starting a password-hashing thread: {e}");
            }
        }
        HashPool { jobs }
    }

    /// Runs `f` on the pool; `None` if the pool is gone.
    async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        self.jobs.send(job).ok()?;
        rx.await.ok()
    }

    /// Whether `password` matches `phc`; false if the pool is gone.
    async fn verify(&self, password: String, phc: String) -> bool {
        self.run(move || proto::secret::verify_password(&password, &phc))
            .await
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_addresses_count_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        assert_eq!(address_key(Some(a)), address_key(Some(b)));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(address_key(Some(mapped)), "192.0.2.7");
    }
}
