//! `GET /api/v1/entries/stream`: the live tail, as server-sent events
//! (docs/api.md, "Live tail").
//!
//! One `data:` event per new entry matching the filter, its id the entry's
//! id, in ascending order. The stream follows the projector's applied
//! sequence: on each advance it reads the entries after its cursor, up to
//! the applied sequence, in bounded steps ([`projector::TailStep`]); the
//! cursor is the last id *examined*, so a selective filter never reads an
//! entry twice. `Last-Event-ID` (or `?last_event_id=`) starts it after
//! that id; without one it starts after the newest entry applied when it
//! connects.
//!
//! Limits: [`MAX_STREAMS`] at once and [`MAX_STREAMS_PER_USER`] per user
//! (503 beyond); a stream ends when the server shuts down, when its user is
//! disabled, signs out everywhere or changes password (checked every
//! [`RECHECK`]), or when its session expires; clients reconnect with
//! `Last-Event-ID` and lose nothing.

use crate::Dashboard;
use crate::auth::{ClientIp, same_origin_only};
use crate::error::ApiError;
use crate::pages::PageError;
use axum::Router;
use axum::extract::{Query as QueryParams, State};
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use projector::record::UserRecord;
use proto::filter::Filter;
use serde::Deserialize;
use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;

/// Streams open at once, all users together.
pub const MAX_STREAMS: usize = 64;
/// Streams one user may hold open at once.
pub const MAX_STREAMS_PER_USER: usize = 16;
/// How often an open stream checks that its user may still read.
pub const RECHECK: Duration = Duration::from_secs(60);
/// The keep-alive comment's period.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Rows (index and entry) one read step examines at most.
const STEP_ROWS: u64 = 2_000;
/// Entries one read step returns at most.
const STEP_ENTRIES: usize = 200;

pub fn routes() -> Router<Dashboard> {
    Router::new().route("/api/v1/entries/stream", get(stream))
}

/// The open streams, and the signal that ends them all (shutdown).
pub struct Tails {
    max: usize,
    slots: Arc<Semaphore>,
    per_user: Mutex<HashMap<String, usize>>,
    per_user_max: usize,
    closing: watch::Sender<bool>,
}

impl Tails {
    pub fn new(max: usize, per_user_max: usize) -> Tails {
        Tails {
            max,
            slots: Arc::new(Semaphore::new(max)),
            per_user: Mutex::new(HashMap::new()),
            per_user_max,
            closing: watch::Sender::new(false),
        }
    }

    /// A slot for one more stream of `user_id`, or why not.
    fn take(self: &Arc<Self>, user_id: &str) -> Result<Slot, ApiError> {
        let permit = self.slots.clone().try_acquire_owned().map_err(|_| {
            ApiError::Unavailable(format!(
                "{} live tails are open already; try again later",
                self.max
            ))
        })?;
        let mut counts = self.per_user.lock().unwrap_or_else(|p| p.into_inner());
        let n = counts.entry(user_id.to_owned()).or_default();
        if *n >= self.per_user_max {
            return Err(ApiError::Unavailable(format!(
                "this user has {} live tails open already; close one first",
                self.per_user_max
            )));
        }
        *n += 1;
        Ok(Slot {
            tails: self.clone(),
            user_id: user_id.to_owned(),
            _permit: permit,
        })
    }
}

/// One open stream's place; given back when the stream is dropped.
struct Slot {
    tails: Arc<Tails>,
    user_id: String,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self
            .tails
            .per_user
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(&self.user_id) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.user_id);
            }
        }
    }
}

impl Dashboard {
    /// Ends every live tail (at shutdown: they would hold the graceful
    /// shutdown open, as they never finish by themselves).
    pub fn end_streams(&self) {
        self.inner.tails.closing.send_replace(true);
    }

    /// `shutdown`, then ending every live tail: what to give the HTTP
    /// server as its shutdown signal, so its graceful shutdown does not
    /// wait for streams that never end by themselves.
    pub fn ending_streams(
        &self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = ()> + Send + 'static {
        let d = self.clone();
        async move {
            shutdown.await;
            d.end_streams();
        }
    }

    /// Live tails open now.
    pub fn open_streams(&self) -> usize {
        let t = &self.inner.tails;
        t.max.saturating_sub(t.slots.available_permits())
    }
}

#[derive(Debug, Default, Deserialize)]
struct StreamParams {
    level: Option<String>,
    key: Option<String>,
    q: Option<String>,
    group: Option<String>,
    /// For clients that cannot set `Last-Event-ID`; the header wins.
    last_event_id: Option<String>,
}

/// The user of a stream: HTTP Basic when the request carries
/// `Authorization`, else the dashboard session (what `EventSource`
/// sends); with the session's end, if any (Unix seconds).
async fn stream_user(
    d: &Dashboard,
    headers: &HeaderMap,
    proxied: Option<&crate::sso::ProxyUser>,
    addr: Option<std::net::IpAddr>,
) -> Result<(UserRecord, Option<i64>), ApiError> {
    same_origin_only(headers, d.inner.public_origin.as_deref())?;
    if let Some(crate::sso::ProxyUser(user)) = proxied {
        return Ok((user.clone(), None));
    }
    if headers.contains_key(header::AUTHORIZATION) {
        return Ok((d.inner.auth.basic(headers, addr).await?, None));
    }
    match d.current(headers, None, "/log/list/").await {
        Ok(me) => Ok((me.user, Some(me.session.expires))),
        Err(PageError::Unavailable(m)) => Err(ApiError::Unavailable(m)),
        Err(PageError::Internal(e)) => Err(ApiError::Internal(e)),
        Err(_) => Err(ApiError::Unauthorized),
    }
}

async fn stream(
    State(d): State<Dashboard>,
    ClientIp(addr): ClientIp,
    proxied: Option<axum::Extension<crate::sso::ProxyUser>>,
    headers: HeaderMap,
    QueryParams(params): QueryParams<StreamParams>,
) -> Result<impl IntoResponse, ApiError> {
    let proxied = proxied.map(|axum::Extension(p)| p);
    let (user, expires) = stream_user(&d, &headers, proxied.as_ref(), addr).await?;
    let list = crate::api::ListParams {
        level: params.level,
        key: params.key,
        q: params.q,
        group: params.group,
        ..Default::default()
    };
    let filter = list.query()?.filter;
    let header_id = headers
        .get("last-event-id")
        .map(|v| v.to_str().unwrap_or("?").to_owned());
    let resume = match header_id {
        Some(h) => crate::api::number("Last-Event-ID", Some(&h))?,
        None => crate::api::number("last_event_id", params.last_event_id.as_deref())?,
    };
    let slot = d.inner.tails.take(&user.user_id)?;
    let mut applied = d.inner.projector.applied.clone();
    let cursor = resume.unwrap_or_else(|| *applied.borrow_and_update());
    let state = Tail {
        closing: d.inner.tails.closing.subscribe(),
        d,
        filter,
        cursor,
        applied,
        pending: VecDeque::new(),
        user,
        expires,
        next_check: Instant::now() + RECHECK,
        _slot: slot,
    };
    let events = futures::stream::unfold(state, |mut t| async move {
        let event = t.next_event().await?;
        Some((Ok::<_, Infallible>(event), t))
    });
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive")),
    ))
}

/// One open stream.
struct Tail {
    d: Dashboard,
    filter: Filter,
    /// The last entry id examined (sent or not).
    cursor: u64,
    applied: watch::Receiver<u64>,
    closing: watch::Receiver<bool>,
    /// Read, not sent yet.
    pending: VecDeque<Event>,
    user: UserRecord,
    /// When the session ends (Unix seconds); `None` for HTTP Basic.
    expires: Option<i64>,
    next_check: Instant,
    _slot: Slot,
}

impl Tail {
    /// The next event to send, waiting for one; `None` ends the stream.
    async fn next_event(&mut self) -> Option<Event> {
        loop {
            if *self.closing.borrow() {
                return None;
            }
            if let Some(e) = self.pending.pop_front() {
                return Some(e);
            }
            if Instant::now() >= self.next_check {
                if !self.still_allowed().await {
                    return None;
                }
                self.next_check = Instant::now() + RECHECK;
            }
            let applied = *self.applied.borrow_and_update();
            if self.cursor < applied {
                if let Err(e) = self.read(applied).await {
                    tracing::warn!("live tail: reading the projection: {e:#}; ending the stream");
                    return None;
                }
                continue;
            }
            tokio::select! {
                changed = self.applied.changed() => if changed.is_err() { return None },
                changed = self.closing.changed() => if changed.is_err() { return None },
                () = tokio::time::sleep_until(self.next_check) => {}
            }
        }
    }

    /// One bounded step after the cursor, up to `upto`.
    async fn read(&mut self, upto: u64) -> anyhow::Result<()> {
        let projection = self.d.inner.projection.clone();
        let filter = self.filter.clone();
        let after = self.cursor;
        let step = tokio::task::spawn_blocking(move || {
            projection.tail_after(&filter, after, upto, STEP_ROWS, STEP_ENTRIES)
        })
        .await??;
        let mut keys = HashMap::new();
        for (id, e) in &step.entries {
            let json = self
                .d
                .entry_json(*id, e, &mut keys)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            self.pending
                .push_back(Event::default().id(id.to_string()).data(json.to_string()));
        }
        self.cursor = step.scanned_to.max(after);
        Ok(())
    }

    /// Whether the user may still read: not disabled, not signed out
    /// everywhere (its epoch), its session not expired.
    async fn still_allowed(&self) -> bool {
        if self
            .expires
            .is_some_and(|end| proto::clock::now_ms() / 1000 >= end)
        {
            return false;
        }
        let projection = self.d.inner.projection.clone();
        let id = self.user.user_id.clone();
        match tokio::task::spawn_blocking(move || projection.user(&id)).await {
            Ok(Ok(Some(u))) => !u.disabled && u.epoch == self.user.epoch,
            Ok(Ok(None)) => false,
            // A storage hiccup is not the user's doing: check again later.
            Ok(Err(_)) | Err(_) => true,
        }
    }
}
