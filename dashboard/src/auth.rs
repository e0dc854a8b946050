//! Password checks for both ways in: HTTP Basic on the JSON API and the
//! login form. One [`Authenticator::check`] serves both, so the limits
//! cannot drift between them:
//!
//! - **Failures are limited before hashing**, per address (an IPv6
//!   address counts as its /64) and per name. Each attempt reserves its
//!   slot atomically first, so a parallel burst is cut off at the limit
//!   instead of being hashed in full; a correct password (or an attempt
//!   that never finished) gives the slot back.
//! - **A name over its limit is not locked for its owner**: addresses that
//!   signed in as that name before always get their attempt, and an
//!   address with no failures on it gets one, up to [`PER_NAME_BYPASS`]
//!   such addresses per window; past that, only known addresses. Per-name
//!   state lives in a plain map of existing users (never evicted by a
//!   flood of other keys).
//! - **Identical credentials in flight are checked once**: concurrent
//!   requests with the same name and password wait for one result, so a
//!   program firing parallel requests is not refused for its own traffic.
//! - **Unknown and disabled names cost the same** as a wrong password: a
//!   dummy hash is verified, so timing does not tell which names exist.
//!   So do users without a password (made by a single sign-on, [`crate::sso`]).
//! - **argon2 runs on a fixed pool** of [`HASH_THREADS`] threads (19 MiB
//!   each while hashing) with a bounded queue ([`HASH_QUEUE`]; beyond it,
//!   `503`), whatever the number of requests.
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
/// Addresses that may still try a name over its limit per [`WINDOW`]
/// (one attempt each), besides those that signed in as it before.
pub const PER_NAME_BYPASS: u32 = 20;
/// Addresses remembered per user as having signed in.
const KNOWN_ADDRESSES: usize = 32;

/// Threads that verify passwords; requests beyond wait their turn.
pub const HASH_THREADS: usize = 2;
/// Checks waiting for a thread, at most; beyond, `503`.
pub const HASH_QUEUE: usize = 256;

/// Verified against when the name is unknown or disabled, so that answer
/// takes as long as a wrong password.
/// (Made on the hashing pool at its first use, never on a request thread.)
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| proto::secret::hash_password("minilog dummy password"));

/// Why a check failed.
#[derive(Clone, Debug)]
pub enum Refusal {
    /// Wrong name or password (one answer for both).
    Wrong,
    /// Too many failures from this address or on this name; nothing was
    /// checked.
    Limited { retry_after: u64 },
    /// Too many checks waiting for the hashing threads; try again shortly.
    Busy,
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> ApiError {
        match r {
            Refusal::Wrong => ApiError::Unauthorized,
            Refusal::Limited { retry_after } => ApiError::TooManyFailures { retry_after },
            Refusal::Busy => ApiError::Unavailable(
                "too many sign-ins are being checked at once; try again in a moment".into(),
            ),
        }
    }
}

/// The per-name states, by user id.
type Names = Arc<Mutex<std::collections::HashMap<String, NameState>>>;

/// What the limits know of one existing user in the current window.
#[derive(Default)]
struct NameState {
    window_start: Option<std::time::Instant>,
    /// Failures (and attempts in flight) on this name.
    failures: u32,
    /// Addresses let through while the name was over its limit.
    bypasses: u32,
    /// Addresses that signed in as this user (kept across windows).
    known: std::collections::VecDeque<String>,
}

impl NameState {
    fn roll(&mut self, now: std::time::Instant) {
        if self
            .window_start
            .is_none_or(|t| now.duration_since(t) >= WINDOW)
        {
            self.window_start = Some(now);
            self.failures = 0;
            self.bypasses = 0;
        }
    }
}

#[derive(Clone)]
pub struct Authenticator {
    projection: Projection,
    verified: moka::future::Cache<[u8; 32], ()>,
    /// Per address and per (address, name): bounded under many addresses.
    failures: moka::sync::Cache<String, Arc<AtomicU32>>,
    /// Per existing user id.
    names: Names,
    pool: HashPool,
}

/// One attempt's reserved failure slots: kept as failures when the check
/// fails ([`Reservation::keep`]), given back otherwise, also when the
/// attempt is dropped halfway (a client that went away).
struct Reservation {
    counters: Vec<Arc<AtomicU32>>,
    /// The user whose name failures (and bypass) this holds.
    name: Option<(Names, String, bool)>,
    kept: bool,
}

impl Reservation {
    fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        for c in &self.counters {
            c.fetch_sub(1, Ordering::AcqRel);
        }
        if let Some((names, user_id, bypass)) = &self.name
            && let Ok(mut names) = names.lock()
            && let Some(state) = names.get_mut(user_id)
        {
            state.failures = state.failures.saturating_sub(1);
            if *bypass {
                state.bypasses = state.bypasses.saturating_sub(1);
            }
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
            names: Arc::default(),
            pool: HashPool::start(HASH_THREADS, HASH_QUEUE),
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
        let user = self
            .projection
            .user(&user_id)
            .ok()
            .flatten()
            // A user made by a single sign-on has no password: as unknown here.
            .filter(|u| !u.disabled && !u.password_hash.is_empty());
        let phc = user.as_ref().map(|u| u.password_hash.clone());
        let mut h = Sha256::new();
        h.update(phc.as_deref().unwrap_or("unknown").as_bytes());
        h.update([0]);
        h.update(user_id.as_bytes());
        h.update([0]);
        h.update(password.as_bytes());
        let cache_key: [u8; 32] = h.finalize().into();
        let addr = address_key(addr);
        // Concurrent checks of the same credentials share one result;
        // only a success is remembered.
        let checked = self
            .verified
            .try_get_with(cache_key, async {
                let reservation = self.reserve(&addr, &user_id, user.is_some())?;
                let ok = self.pool.verify(password.to_owned(), phc.clone()).await?;
                if ok && user.is_some() {
                    drop(reservation);
                    self.remember(&user_id, &addr);
                    Ok(())
                } else {
                    reservation.keep();
                    Err(Refusal::Wrong)
                }
            })
            .await;
        match (checked, user) {
            (Ok(()), Some(user)) => Ok(user),
            (Ok(()), None) => Err(Refusal::Wrong),
            (Err(refusal), _) => Err((*refusal).clone()),
        }
    }

    /// An argon2 hash of a new password, made on the same bounded pool.
    pub async fn hash(&self, password: &str) -> anyhow::Result<String> {
        let password = password.to_owned();
        self.pool
            .run(move |_| proto::secret::hash_password(&password))
            .await
            .map_err(|_| anyhow::anyhow!("the password-hashing threads are busy; try again"))
    }

    fn counter(&self, key: String) -> Arc<AtomicU32> {
        self.failures.get_with(key, || Arc::new(AtomicU32::new(0)))
    }

    /// Takes a failure slot on the address, and for an existing user on the
    /// name and the (address, name) pair, or refuses, giving back what it
    /// took.
    fn reserve(&self, addr: &str, user_id: &str, exists: bool) -> Result<Reservation, Refusal> {
        let limited = Refusal::Limited {
            retry_after: WINDOW.as_secs(),
        };
        let by_addr = self.counter(format!("addr:{addr}"));
        let mut reservation = Reservation {
            counters: Vec::new(),
            name: None,
            kept: false,
        };
        if by_addr.fetch_add(1, Ordering::AcqRel) >= PER_ADDRESS {
            by_addr.fetch_sub(1, Ordering::AcqRel);
            return Err(limited);
        }
        reservation.counters.push(by_addr);
        if !exists {
            // Nobody to protect; the address limit and the dummy hash do.
            return Ok(reservation);
        }
        let pair = self.counter(format!("pair:{addr}|{user_id}"));
        let mut names = self.names.lock().map_err(|_| Refusal::Busy)?;
        let state = names.entry(user_id.to_owned()).or_default();
        state.roll(std::time::Instant::now());
        let mut bypass = false;
        if state.failures >= PER_NAME {
            let known = state.known.iter().any(|a| a == addr);
            let fresh = pair.load(Ordering::Acquire) == 0 && state.bypasses < PER_NAME_BYPASS;
            if !known && !fresh {
                return Err(limited);
            }
            if !known {
                state.bypasses += 1;
                bypass = true;
            }
        }
        state.failures += 1;
        drop(names);
        pair.fetch_add(1, Ordering::AcqRel);
        reservation.counters.push(pair);
        reservation.name = Some((self.names.clone(), user_id.to_owned(), bypass));
        Ok(reservation)
    }

    /// Remembers that `addr` signed in as `user_id`.
    fn remember(&self, user_id: &str, addr: &str) {
        if let Ok(mut names) = self.names.lock() {
            let state = names.entry(user_id.to_owned()).or_default();
            if !state.known.iter().any(|a| a == addr) {
                if state.known.len() >= KNOWN_ADDRESSES {
                    state.known.pop_front();
                }
                state.known.push_back(addr.to_owned());
            }
        }
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
            .map(|v| v.as_bytes());
        Ok(ClientIp(proto::client_addr::client_ip(
            peer,
            forwarded,
            &d.inner.trusted_proxies,
        )))
    }
}

/// A dashboard user signed in with HTTP Basic (or named by a trusted
/// authenticating proxy, [`crate::sso`]), on a request that did not
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
        if let Some(crate::sso::ProxyUser(user)) = parts.extensions.get() {
            return Ok(BasicUser(user.clone()));
        }
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

/// A job for a hashing thread, given the thread's reusable verifier.
type Job = Box<dyn FnOnce(&mut proto::secret::PasswordVerifier) + Send>;

/// A fixed number of threads that run argon2, fed by one bounded queue:
/// memory stays at `threads` × argon2's 19 MiB however many requests come.
#[derive(Clone)]
struct HashPool {
    jobs: mpsc::SyncSender<Job>,
}

impl HashPool {
    fn start(threads: usize, queue: usize) -> HashPool {
        let (jobs, receiver) = mpsc::sync_channel::<Job>(queue);
        let receiver = Arc::new(Mutex::new(receiver));
        for i in 0..threads.max(1) {
            let receiver = receiver.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("minilog-argon2-{i}"))
                .spawn(move || {
                    let mut verifier = proto::secret::PasswordVerifier::default();
                    loop {
                        // The lock is held only while taking a job.
                        let job = match receiver.lock() {
                            Ok(q) => q.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(&mut verifier),
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

    /// Runs `f` on the pool; `Busy` when the queue is full or the pool gone.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut proto::secret::PasswordVerifier) -> T + Send + 'static,
    ) -> Result<T, Refusal> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |verifier| {
            let _ = tx.send(f(verifier));
        });
        self.jobs.try_send(job).map_err(|_| Refusal::Busy)?;
        rx.await.map_err(|_| Refusal::Busy)
    }

    /// Whether `password` matches `phc` (the dummy hash when `None`).
    async fn verify(&self, password: String, phc: Option<String>) -> Result<bool, Refusal> {
        self.run(move |verifier| {
            let phc = phc.as_deref().unwrap_or(&DUMMY_HASH);
            verifier.verify(&password, phc)
        })
        .await
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
