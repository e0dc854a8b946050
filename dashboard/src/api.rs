//! The JSON read and triage API (docs/api.md), HTTP Basic with a dashboard user.

use crate::Dashboard;
use crate::auth::BasicUser;
use crate::error::ApiError;
use axum::extract::{Path, Query as QueryParams, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use projector::record::{EntryRecord, HistoryKind, KeyRecord, UserRecord};
use projector::{Query, Resolved};
use proto::clock::rfc3339;
use proto::event::{Actor, Envelope, Event, Rule, Triage};
use proto::filter::{Filter, MATCHER_VERSION};
use proto::{Level, bus::PublishError};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;

pub const MAX_LIMIT: usize = 200;
pub const DEFAULT_LIMIT: usize = 20;

pub fn routes() -> Router<Dashboard> {
    Router::new()
        .route("/api/v1/entries", get(list))
        .route("/api/v1/entries/{id}", get(one))
        .route("/api/v1/entries/{id}/resolve", post(resolve))
        .route("/api/v1/entries/{id}/unresolve", post(unresolve))
        .route("/api/v1/entries/resolve-matching", post(resolve_matching))
        .merge(crate::groups_api::routes())
}

#[derive(Debug, Default, Deserialize)]
pub struct ListParams {
    pub level: Option<String>,
    pub key: Option<String>,
    pub resolved: Option<String>,
    pub q: Option<String>,
    pub before: Option<String>,
    pub limit: Option<String>,
    pub min_seq: Option<String>,
    /// Entries of one group (its id).
    pub group: Option<String>,
}

pub(crate) fn number(name: &str, text: Option<&str>) -> Result<Option<u64>, ApiError> {
    match text.map(str::trim) {
        None | Some("") => Ok(None),
        Some(t) => t.parse().map(Some).map_err(|_| {
            ApiError::BadRequest(
                "invalid_parameter",
                format!("{name} must be a whole number, not {t:?}"),
            )
        }),
    }
}

fn list_of(text: Option<&str>) -> Vec<&str> {
    text.unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

impl ListParams {
    /// The projection query these parameters ask for.
    pub fn query(&self) -> Result<Query, ApiError> {
        let levels = list_of(self.level.as_deref())
            .into_iter()
            .map(|l| {
                Level::parse(l).map_err(|e| ApiError::BadRequest("invalid_level", e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let keys = list_of(self.key.as_deref())
            .into_iter()
            .map(str::to_owned)
            .collect();
        let resolved = Resolved::parse(self.resolved.as_deref()).ok_or_else(|| {
            ApiError::BadRequest(
                "invalid_parameter",
                format!(
                    "resolved must be false, true or all, not {:?}",
                    self.resolved.as_deref().unwrap_or_default()
                ),
            )
        })?;
        let limit = number("limit", self.limit.as_deref())?.map_or(DEFAULT_LIMIT, |n| n as usize);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(ApiError::BadRequest(
                "invalid_parameter",
                format!("limit must be between 1 and {MAX_LIMIT}"),
            ));
        }
        Ok(Query {
            filter: Filter {
                levels,
                keys,
                q: self.q.clone().filter(|q| !q.trim().is_empty()),
                group: self
                    .group
                    .clone()
                    .map(|g| g.trim().to_owned())
                    .filter(|g| !g.is_empty()),
            },
            resolved,
            before: number("before", self.before.as_deref())?,
            limit,
        })
    }
}

impl Dashboard {
    /// Waits (up to 10 s) until the projection has applied `seq`.
    pub async fn wait_for(&self, seq: u64) -> Result<(), ApiError> {
        let handle = &self.inner.projector;
        if tokio::time::timeout(self.inner.wait, handle.wait_for(seq))
            .await
            .unwrap_or(false)
        {
            return Ok(());
        }
        match handle.status.borrow().clone() {
            projector::Status::Stopped { reason, .. } => Err(ApiError::ProjectorStopped(reason)),
            projector::Status::Failing { reason } => Err(ApiError::Unavailable(format!(
                "the projector cannot apply events right now: {reason}"
            ))),
            projector::Status::Running => Err(ApiError::WaitTimeout(seq)),
        }
    }

    /// An entry's id is its stream sequence: if the stream has it, wait
    /// until the projection does too, so a client can act on an entry right
    /// after logging it. Ids beyond the stream are simply unknown.
    pub async fn wait_for_entry(&self, id: u64) -> Result<(), ApiError> {
        if id > *self.inner.projector.settled.borrow() {
            let last = self
                .inner
                .bus
                .last_seq()
                .await
                .map_err(ApiError::Internal)?;
            if id <= last {
                self.wait_for(id).await?;
            }
        }
        Ok(())
    }

    fn applied(&self) -> u64 {
        *self.inner.projector.applied.borrow()
    }

    pub(crate) fn entry_json(
        &self,
        id: u64,
        e: &EntryRecord,
        keys: &mut HashMap<String, Option<KeyRecord>>,
    ) -> Result<Value, ApiError> {
        let key_description = match &e.key_id {
            Some(k) => {
                if !keys.contains_key(k) {
                    keys.insert(k.clone(), self.inner.projection.key(k)?);
                }
                keys[k].as_ref().map(|r| r.key.description.clone())
            }
            None => None,
        };
        Ok(json!({
            "id": id,
            "level": e.level,
            "message": e.message,
            "source": e.source,
            "key_id": e.key_id,
            "key_description": key_description,
            "time": rfc3339(e.time.unwrap_or(e.received)),
            "received": rfc3339(e.received),
            "ip": e.ip,
            "meta": e.meta,
            "fingerprint": e.fingerprint,
            "group": e.group,
            "added_by": e.added_by,
            "untrusted": e.untrusted,
            "resolved": e.resolved.as_ref().map(|r| json!({"by": r.by, "at": rfc3339(r.at)})),
        }))
    }

    async fn triage(
        &self,
        user: UserRecord,
        headers: &HeaderMap,
        id: &str,
        resolve: bool,
    ) -> Result<Json<Value>, ApiError> {
        json_body_only(headers, false)?;
        if self.inner.read_only {
            return Err(ApiError::Forbidden(
                "this dashboard shows a frozen projection and takes no actions".into(),
            ));
        }
        let id = number("id", Some(id))?.unwrap_or(0);
        self.wait_for_entry(id).await?;
        if self.inner.projection.entry(id)?.is_none() {
            return Err(ApiError::NotFound(format!("there is no entry #{id}")));
        }
        let event = if resolve {
            Event::Resolved(Triage::Entry(id))
        } else {
            Event::Unresolved(Triage::Entry(id))
        };
        let env = Envelope::now(Actor::User(user.name.clone()), event);
        let seq = self
            .publish_and_wait(self.inner.bus.subjects().triage(), env)
            .await?;
        Ok(Json(json!({"seq": seq})))
    }

    /// A user's action, from a page or the JSON API: refused on a
    /// read-only dashboard, else published, and answered once the
    /// projection shows it (read-your-writes). Its sequence.
    pub async fn publish_and_wait(&self, subject: String, env: Envelope) -> Result<u64, ApiError> {
        if self.inner.read_only {
            return Err(ApiError::Forbidden(
                "this dashboard shows a frozen projection and takes no actions".into(),
            ));
        }
        let stored = self
            .inner
            .bus
            .publish_unkeyed(subject, &env)
            .await
            .map_err(|e| match e {
                e if e.may_be_stored() => ApiError::Unavailable(format!(
                    "{e}; the action may still take effect: look again before repeating it"
                )),
                e @ PublishError::Unavailable { .. } => {
                    ApiError::Unavailable(format!("{e}; nothing was changed"))
                }
                other => ApiError::Internal(other.into()),
            })?;
        self.wait_for(stored.seq).await?;
        Ok(stored.seq)
    }
}

async fn list(
    State(d): State<Dashboard>,
    _: BasicUser,
    QueryParams(params): QueryParams<ListParams>,
) -> Result<Json<Value>, ApiError> {
    let query = params.query()?;
    if let Some(seq) = number("min_seq", params.min_seq.as_deref())? {
        d.wait_for(seq).await?;
    }
    let applied = d.applied();
    let projection = d.inner.projection.clone();
    let page = tokio::task::spawn_blocking(move || projection.page(&query))
        .await
        .map_err(|e| ApiError::Internal(e.into()))??;
    let mut keys = HashMap::new();
    let entries = page
        .entries
        .iter()
        .map(|(id, e)| d.entry_json(*id, e, &mut keys))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(json!({
        "entries": entries,
        "next_before": page.next_before,
        "applied_seq": applied,
    })))
}

#[derive(Debug, Default, Deserialize)]
struct OneParams {
    min_seq: Option<String>,
}

async fn one(
    State(d): State<Dashboard>,
    _: BasicUser,
    Path(id): Path<String>,
    QueryParams(params): QueryParams<OneParams>,
) -> Result<Json<Value>, ApiError> {
    let id = number("id", Some(&id))?.unwrap_or(0);
    d.wait_for_entry(id).await?;
    if let Some(seq) = number("min_seq", params.min_seq.as_deref())? {
        d.wait_for(seq).await?;
    }
    let entry = d
        .inner
        .projection
        .entry(id)?
        .ok_or_else(|| ApiError::NotFound(format!("there is no entry #{id}")))?;
    let mut body = d.entry_json(id, &entry, &mut HashMap::new())?;
    // The detail alone carries the exception chain (outermost first, each
    // one's frames oldest call first): the list stays small.
    body["exception"] = json!(entry.exception);
    let logged_by = match (&entry.key_id, &entry.added_by) {
        (_, Some(user)) => Some(user.clone()),
        (Some(k), None) => Some(format!("key {k}")),
        (None, None) => None,
    };
    let mut history = vec![json!({
        "event": "logged", "by": logged_by, "at": rfc3339(entry.received), "seq": id, "ip": entry.ip,
    })];
    for (seq, item) in d.inner.projection.history(id)? {
        let event = match item.kind {
            HistoryKind::Resolved => "resolved",
            HistoryKind::Unresolved => "unresolved",
        };
        history.push(json!({"event": event, "by": item.by, "at": rfc3339(item.at), "seq": seq}));
    }
    body["history"] = Value::Array(history);
    body["applied_seq"] = json!(d.applied());
    Ok(Json(body))
}

async fn resolve(
    State(d): State<Dashboard>,
    BasicUser(user): BasicUser,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    d.triage(user, &headers, &id, true).await
}

async fn unresolve(
    State(d): State<Dashboard>,
    BasicUser(user): BasicUser,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    d.triage(user, &headers, &id, false).await
}

/// Bodies of the triage API are JSON, said so by `Content-Type`: the
/// types a plain cross-site form can send (`text/plain`, form-encoded,
/// multipart) are refused, whatever they hold. `required`: the route
/// takes a body, so the header must be there.
pub(crate) fn json_body_only(headers: &HeaderMap, required: bool) -> Result<(), ApiError> {
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("?"));
    let is_json = |t: &str| {
        t.split(';')
            .next()
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
    };
    match content_type {
        None if !required => Ok(()),
        Some(t) if is_json(t) => Ok(()),
        other => Err(ApiError::UnsupportedMediaType(format!(
            "send the body as JSON with Content-Type: application/json (got {})",
            other.map_or("no Content-Type".to_owned(), |t| format!("{t:?}"))
        ))),
    }
}

/// The body of `POST /api/v1/entries/resolve-matching`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MatchingBody {
    #[serde(default)]
    level: Vec<String>,
    #[serde(default)]
    key: Vec<String>,
    #[serde(default)]
    q: Option<String>,
    /// Only entries of this group.
    #[serde(default)]
    group: Option<String>,
    /// The highest entry id to resolve; default: everything applied now.
    #[serde(default)]
    upto: Option<u64>,
}

/// Resolves every open entry matching a filter up to an id: one event
/// with the rule, applied by the projector in chunks; answers once done.
async fn resolve_matching(
    State(d): State<Dashboard>,
    BasicUser(user): BasicUser,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    json_body_only(&headers, true)?;
    if d.inner.read_only {
        return Err(ApiError::Forbidden(
            "this dashboard shows a frozen projection and takes no actions".into(),
        ));
    }
    let body: MatchingBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(
            "invalid_json",
            format!(
                "expected {{\"level\": [...], \"key\": [...], \"q\": \"...\", \"group\": \"...\", \"upto\": <id>}}: {e}"
            ),
        )
    })?;
    let levels = body
        .level
        .iter()
        .map(|l| Level::parse(l).map_err(|e| ApiError::BadRequest("invalid_level", e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    let filter = Filter {
        levels,
        keys: body.key,
        q: body.q.filter(|q| !q.trim().is_empty()),
        group: body.group.filter(|g| !g.trim().is_empty()),
    };
    let upto = body
        .upto
        .unwrap_or_else(|| *d.inner.projector.settled.borrow());
    d.wait_for_entry(upto).await?;
    let projection = d.inner.projection.clone();
    let query = Query {
        filter: filter.clone(),
        resolved: Resolved::Open,
        before: Some(upto.saturating_add(1)),
        limit: usize::MAX,
    };
    let (matched, _) =
        tokio::task::spawn_blocking(move || projection.count_matching(&query, usize::MAX))
            .await
            .map_err(|e| ApiError::Internal(e.into()))??;
    let rule = Rule {
        filter,
        upto,
        matcher: MATCHER_VERSION,
    };
    let env = Envelope::now(
        Actor::User(user.name.clone()),
        Event::Resolved(Triage::Matching(rule)),
    );
    let seq = d
        .publish_and_wait(d.inner.bus.subjects().triage(), env)
        .await?;
    Ok(Json(json!({"seq": seq, "matched": matched})))
}
