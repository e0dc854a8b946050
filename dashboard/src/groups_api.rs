//! The groups of the JSON API (docs/api.md, "Groups"): a page of groups,
//! one group with its newest entries and hourly counts, and resolving or
//! reopening a group as one rule event over its entries up to its newest.

use crate::Dashboard;
use crate::api::{ListParams, json_body_only, number};
use crate::auth::BasicUser;
use crate::error::ApiError;
use axum::extract::{Path, Query as QueryParams, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use projector::group_query::GroupQuery;
use projector::groups::{GroupEvent, GroupEventKind, GroupRecord};
use projector::{Query, Resolved};
use proto::clock::rfc3339;
use proto::event::{Actor, Envelope, Event, Rule, Triage};
use proto::filter::{Filter, MATCHER_VERSION};
use serde_json::{Value, json};
use std::collections::HashMap;

/// Entries shown with a group.
const GROUP_ENTRIES: usize = 20;
/// The newest events of a group's history its JSON shows.
pub const GROUP_HISTORY: usize = 50;

pub fn routes() -> Router<Dashboard> {
    Router::new()
        .route("/api/v1/groups", get(list))
        .route("/api/v1/groups/{id}", get(one))
        .route("/api/v1/groups/{id}/resolve", post(resolve))
        .route("/api/v1/groups/{id}/unresolve", post(unresolve))
}

/// A group as the API shows it.
pub fn group_json(id: &str, g: &GroupRecord) -> Value {
    json!({
        "id": id,
        "title": g.title,
        "template": g.template,
        "level": g.level(),
        "key_id": g.key_id,
        "count": g.count,
        "open_count": g.open_count,
        "first_seen": rfc3339(g.first_seen),
        "last_seen": rfc3339(g.last_seen),
        "first_entry_id": g.first_entry_id,
        "last_entry_id": g.last_entry_id,
        "regressed": g.regressed,
        "resolved": g.resolved.as_ref().map(|r| json!({"by": r.by, "at": rfc3339(r.at)})),
    })
}

/// The groups query the entries' parameters ask for (the same names).
fn group_query(params: &ListParams) -> Result<GroupQuery, ApiError> {
    let Query {
        filter,
        resolved,
        before,
        limit,
    } = params.query()?;
    Ok(GroupQuery {
        levels: filter.levels,
        keys: filter.keys,
        q: filter.q,
        resolved,
        before,
        limit,
    })
}

async fn list(
    State(d): State<Dashboard>,
    _: BasicUser,
    QueryParams(params): QueryParams<ListParams>,
) -> Result<Json<Value>, ApiError> {
    let query = group_query(&params)?;
    if let Some(seq) = number("min_seq", params.min_seq.as_deref())? {
        d.wait_for(seq).await?;
    }
    let applied = *d.inner.projector.applied.borrow();
    let projection = d.inner.projection.clone();
    let page = tokio::task::spawn_blocking(move || projection.group_page(&query))
        .await
        .map_err(|e| ApiError::Internal(e.into()))??;
    let groups: Vec<Value> = page
        .groups
        .iter()
        .map(|(id, g)| group_json(id, g))
        .collect();
    Ok(Json(json!({
        "groups": groups,
        "next_before": page.next_before,
        "applied_seq": applied,
    })))
}

#[derive(Debug, Default, serde::Deserialize)]
struct OneParams {
    min_seq: Option<String>,
    before: Option<String>,
}

async fn one(
    State(d): State<Dashboard>,
    _: BasicUser,
    Path(id): Path<String>,
    QueryParams(params): QueryParams<OneParams>,
) -> Result<Json<Value>, ApiError> {
    if let Some(seq) = number("min_seq", params.min_seq.as_deref())? {
        d.wait_for(seq).await?;
    }
    let before = number("before", params.before.as_deref())?;
    let g = find(&d, &id)?;
    let (entries, next_before) = d
        .inner
        .projection
        .group_entries(&id, before, GROUP_ENTRIES)?;
    let hourly = d
        .inner
        .projection
        .group_hourly(&id, proto::clock::now_ms())?;
    let mut keys = HashMap::new();
    let entries = entries
        .iter()
        .map(|(eid, e)| d.entry_json(*eid, e, &mut keys))
        .collect::<Result<Vec<_>, _>>()?;
    let mut body = group_json(&id, &g);
    body["entries"] = json!(entries);
    body["next_before"] = json!(next_before);
    body["hourly"] = json!(hourly);
    body["history"] = json!(
        d.inner
            .projection
            .group_history(&id, GROUP_HISTORY)?
            .iter()
            .map(|(seq, e)| history_json(*seq, e))
            .collect::<Vec<_>>()
    );
    body["applied_seq"] = json!(*d.inner.projector.applied.borrow());
    Ok(Json(body))
}

/// One event of a group's history (docs/api.md, "Groups").
pub fn history_json(seq: u64, e: &GroupEvent) -> Value {
    json!({
        "seq": seq,
        "kind": match e.kind {
            GroupEventKind::Resolved => "resolved",
            GroupEventKind::Regressed => "regressed",
            GroupEventKind::Reopened => "reopened",
        },
        "by": e.by,
        "at": e.at,
        "entry_id": e.entry_id,
    })
}

fn find(d: &Dashboard, id: &str) -> Result<GroupRecord, ApiError> {
    d.inner
        .projection
        .group(id)?
        .ok_or_else(|| ApiError::NotFound(format!("there is no group {id:?}")))
}

async fn resolve(
    State(d): State<Dashboard>,
    BasicUser(user): BasicUser,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    triage(&d, &user.name, &headers, &id, true).await
}

async fn unresolve(
    State(d): State<Dashboard>,
    BasicUser(user): BasicUser,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    triage(&d, &user.name, &headers, &id, false).await
}

/// One rule event over the group's entries up to its newest one: the
/// open ones resolved, or the resolved ones reopened. Answers its
/// sequence and how many entries it changes, once applied.
pub async fn triage(
    d: &Dashboard,
    user: &str,
    headers: &HeaderMap,
    id: &str,
    resolve: bool,
) -> Result<Json<Value>, ApiError> {
    json_body_only(headers, false)?;
    let (seq, matched) = triage_group(d, user, id, resolve).await?;
    Ok(Json(json!({"seq": seq, "matched": matched})))
}

/// The rule event of a group's resolve or reopening, published and
/// applied: its sequence and how many entries it changes.
pub async fn triage_group(
    d: &Dashboard,
    user: &str,
    id: &str,
    resolve: bool,
) -> Result<(u64, u64), ApiError> {
    let g = find(d, id)?;
    let filter = Filter {
        group: Some(id.to_owned()),
        ..Filter::default()
    };
    let query = Query {
        filter: filter.clone(),
        resolved: if resolve {
            Resolved::Open
        } else {
            Resolved::Done
        },
        before: Some(g.last_entry_id.saturating_add(1)),
        limit: usize::MAX,
    };
    let projection = d.inner.projection.clone();
    let (matched, _) =
        tokio::task::spawn_blocking(move || projection.count_matching(&query, usize::MAX))
            .await
            .map_err(|e| ApiError::Internal(e.into()))??;
    let rule = Triage::Matching(Rule {
        filter,
        upto: g.last_entry_id,
        matcher: MATCHER_VERSION,
    });
    let event = if resolve {
        Event::Resolved(rule)
    } else {
        Event::Unresolved(rule)
    };
    let env = Envelope::now(Actor::User(user.to_owned()), event);
    let seq = d
        .publish_and_wait(d.inner.bus.subjects().triage(), env)
        .await?;
    Ok((seq, matched))
}
