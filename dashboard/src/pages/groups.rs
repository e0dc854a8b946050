//! The Groups page (the landing page): repeats folded together, each with
//! a 24-hour sparkline; a group's page with its hourly chart, its newest
//! entry's exception and its entries; resolving or reopening a group.
//! Charts are SVG drawn here, so they need no JavaScript.

use super::charts::{hourly_chart, sparkline};
use super::entries::{CONFIRM_ABOVE, KeyChoice, LevelChoice, ListFilter, Row, icon, key_choices};
use super::exception::{ExceptionView, views};
use super::extract::{Action, NoFields, Posted, SignedIn};
use super::{Ctx, FormData, PageError, back_to, encode, render, show_time};
use crate::Dashboard;
use askama::Template;
use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use axum::routing::{get, post};
use projector::Resolved;
use projector::group_query::GroupQuery;
use projector::groups::GroupRecord;
use projector::groups::{GroupEvent, GroupEventKind};
use std::collections::HashMap;

const PAGE_SIZE: usize = 20;

pub fn routes() -> Router<Dashboard> {
    Router::new()
        .route("/log/groups/", get(list))
        .route("/log/groups/{id}/", get(one))
        .route("/log/groups/{id}/resolve", post(resolve))
        .route("/log/groups/{id}/unresolve", post(unresolve))
}

/// A group as the pages show it.
pub struct GroupRow {
    pub id: String,
    pub title: String,
    pub template: String,
    pub level: &'static str,
    pub icon: &'static str,
    pub count: u64,
    pub open_count: u64,
    pub first_seen: String,
    pub first_entry_id: u64,
    pub last_seen: String,
    pub regressed: bool,
    pub resolved: Option<(String, String)>,
    /// Inline SVG of the last 24 hours.
    pub spark: String,
}

fn group_row(id: &str, g: &GroupRecord, hourly: &[u64; 24]) -> GroupRow {
    GroupRow {
        id: id.to_owned(),
        title: g.title.clone(),
        template: g.template.clone(),
        level: g.level().as_str(),
        icon: icon(g.level()),
        count: g.count,
        open_count: g.open_count,
        first_seen: show_time(g.first_seen),
        first_entry_id: g.first_entry_id,
        last_seen: show_time(g.last_seen),
        regressed: g.regressed,
        resolved: g.resolved.as_ref().map(|r| (r.by.clone(), show_time(r.at))),
        spark: sparkline(hourly),
    }
}

#[derive(Template)]
#[template(path = "groups.html")]
struct GroupsPage {
    ctx: Option<Ctx>,
    csrf: String,
    read_only: bool,
    flash: Option<String>,
    levels: Vec<LevelChoice>,
    keys: Vec<KeyChoice>,
    resolved: Resolved,
    q: String,
    groups: Vec<GroupRow>,
    here: String,
    newest_link: Option<String>,
    next_link: Option<String>,
    /// The live tail whose first entry shows the "new entries" notice.
    live: Option<String>,
}

async fn list(
    State(d): State<Dashboard>,
    SignedIn(me): SignedIn,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let form = FormData::parse(raw.unwrap_or_default().as_bytes());
    let lf = ListFilter::parse(&form);
    // Entries after this one are news to this page.
    let upto = *d.inner.projector.applied.borrow();
    let query = GroupQuery {
        levels: lf.levels.clone(),
        keys: lf.keys.clone(),
        q: (!lf.q.is_empty()).then(|| lf.q.clone()),
        resolved: lf.resolved,
        before: lf.before,
        limit: PAGE_SIZE,
    };
    let projection = d.inner.projection.clone();
    let now = proto::clock::now_ms();
    let (page, hourly) = tokio::task::spawn_blocking(move || {
        let page = projection.group_page(&query)?;
        let hourly = page
            .groups
            .iter()
            .map(|(id, _)| projection.group_hourly(id, now))
            .collect::<Result<Vec<_>, _>>()?;
        Ok::<_, projector::ProjectionError>((page, hourly))
    })
    .await
    .map_err(|e| PageError::Internal(e.into()))??;
    let groups = page
        .groups
        .iter()
        .zip(&hourly)
        .map(|((id, g), h)| group_row(id, g, h))
        .collect();
    render(&GroupsPage {
        ctx: Some(me.ctx(&d)),
        csrf: me.csrf(),
        read_only: d.is_read_only(),
        flash: form.get("done").map(|m| m.chars().take(200).collect()),
        levels: LevelChoice::all(&lf),
        keys: key_choices(&d, &lf)?,
        resolved: lf.resolved,
        q: lf.q.clone(),
        groups,
        here: lf.url_at("/log/groups/", lf.before),
        newest_link: lf.before.map(|_| lf.url_at("/log/groups/", None)),
        next_link: page.next_before.map(|b| lf.url_at("/log/groups/", Some(b))),
        live: lf.is_live().then(|| lf.stream_url(upto, false)),
    })
}

#[derive(Template)]
#[template(path = "group.html")]
struct GroupPage {
    ctx: Option<Ctx>,
    csrf: String,
    read_only: bool,
    group: GroupRow,
    chart: String,
    /// The newest entry's exception.
    exception: Vec<ExceptionView>,
    /// What happened to it, newest first: (what, who or which entry, when).
    history: Vec<HistoryLine>,
    rows: Vec<Row>,
    here: String,
    newest_link: Option<String>,
    next_link: Option<String>,
}

/// One line of a group's history on its page.
struct HistoryLine {
    what: &'static str,
    /// Who resolved or reopened it.
    by: Option<String>,
    /// The entry that regressed it.
    entry_id: Option<u64>,
    at: String,
}

fn history_line(e: &GroupEvent) -> HistoryLine {
    HistoryLine {
        what: match e.kind {
            GroupEventKind::Resolved => "Resolved",
            GroupEventKind::Regressed => "Regressed",
            GroupEventKind::Reopened => "Reopened",
        },
        by: e.by.clone(),
        entry_id: e.entry_id,
        at: show_time(e.at),
    }
}

async fn one(
    State(d): State<Dashboard>,
    SignedIn(me): SignedIn,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let form = FormData::parse(raw.unwrap_or_default().as_bytes());
    let before = form.get("before").and_then(|b| b.parse().ok());
    let g = d
        .inner
        .projection
        .group(&id)?
        .ok_or_else(|| PageError::NotFound(format!("There is no group {id}.")))?;
    let now = proto::clock::now_ms();
    let hourly = d.inner.projection.group_hourly(&id, now)?;
    let (entries, next_before) = d.inner.projection.group_entries(&id, before, PAGE_SIZE)?;
    let newest = d.inner.projection.entry(g.last_entry_id)?;
    let history = d
        .inner
        .projection
        .group_history(&id, crate::groups_api::GROUP_HISTORY)?;
    let mut keys = HashMap::new();
    let rows = entries
        .iter()
        .map(|(eid, e)| d.row(*eid, e, &mut keys))
        .collect::<Result<Vec<_>, _>>()?;
    let base = format!("/log/groups/{id}/");
    render(&GroupPage {
        ctx: Some(me.ctx(&d)),
        csrf: me.csrf(),
        read_only: d.is_read_only(),
        group: group_row(&id, &g, &hourly),
        chart: hourly_chart(&hourly, now),
        exception: newest
            .and_then(|e| e.exception)
            .map(|chain| views(&chain))
            .unwrap_or_default(),
        history: history.iter().map(|(_, e)| history_line(e)).collect(),
        rows,
        here: match before {
            Some(b) => format!("{base}?before={b}"),
            None => base.clone(),
        },
        newest_link: before.map(|_| base.clone()),
        next_link: next_before.map(|b| format!("{base}?before={b}")),
    })
}

#[derive(Template)]
#[template(path = "confirm_group.html")]
struct ConfirmGroupPage {
    ctx: Option<Ctx>,
    csrf: String,
    id: String,
    title: String,
    count: u64,
    next: String,
}

async fn resolve(
    State(d): State<Dashboard>,
    Path(id): Path<String>,
    action: Action<NoFields>,
) -> Result<Response, PageError> {
    triage(d, id, action, true).await
}

async fn unresolve(
    State(d): State<Dashboard>,
    Path(id): Path<String>,
    action: Action<NoFields>,
) -> Result<Response, PageError> {
    triage(d, id, action, false).await
}

/// Resolves (asking first above [`CONFIRM_ABOVE`] open entries) or
/// reopens a group, then goes back with a note of what it did.
async fn triage(
    d: Dashboard,
    id: String,
    Action(Posted { me, fields, .. }): Action<NoFields>,
    resolve: bool,
) -> Result<Response, PageError> {
    let next = super::local_path(fields.get("next"));
    let g = d
        .inner
        .projection
        .group(&id)?
        .ok_or_else(|| PageError::NotFound(format!("There is no group {id}.")))?;
    if resolve && g.open_count > CONFIRM_ABOVE && fields.get("confirm") != Some("yes") {
        return render(&ConfirmGroupPage {
            ctx: Some(me.ctx(&d)),
            csrf: me.csrf(),
            id,
            title: g.title,
            count: g.open_count,
            next,
        });
    }
    let (_, matched) = crate::groups_api::triage_group(&d, &me.user.name, &id, resolve).await?;
    let sep = if next.contains('?') { '&' } else { '?' };
    let what = if resolve { "Resolved" } else { "Reopened" };
    Ok(back_to(Some(&format!(
        "{next}{sep}done={}",
        encode(&format!("{what} {matched} entries of the group."))
    ))))
}
