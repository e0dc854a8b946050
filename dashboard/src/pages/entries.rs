//! The list of entries, one entry, triage, and adding by hand.

use super::extract::{Action, NoFields, Posted, SignedIn};
use super::{Ctx, Current, FormData, PageError, back_to, encode, render, show_time};
use crate::Dashboard;
use askama::Template;
use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::response::{Redirect, Response};
use axum::routing::{get, post};
use projector::record::{EntryRecord, HistoryKind};
use projector::{Page, Query, Resolved};
use proto::Level;
use proto::event::{Actor, Envelope, Event, Rule, Triage};
use proto::filter::{Filter, MATCHER_VERSION};
use proto::input::Sender;
use std::collections::HashMap;

pub const PAGE_SIZE: usize = 20;
/// Resolving more than this many at once asks for confirmation.
pub const CONFIRM_ABOVE: u64 = 3;
/// Counting with a text search stops at this many matches ("more than
/// 1000 match"): each match is decoded, and at 1M entries 10,000 of them
/// took 15–30 ms, more than the page itself.
const COUNT_CAP: usize = 1_000;

pub fn routes() -> Router<Dashboard> {
    Router::new()
        .route("/log/list/", get(list))
        .route("/log/entry/{id}/", get(entry))
        .route("/log/entry/{id}/resolve", post(resolve))
        .route("/log/entry/{id}/unresolve", post(unresolve))
        .route("/log/resolve-matching/", post(resolve_matching))
        .route("/log/new/", get(new_form).post(new_submit))
}

pub(super) fn icon(level: Level) -> &'static str {
    match level {
        Level::Debug => "·",
        Level::Info => "ℹ",
        Level::Good => "✓",
        Level::Warn => "⚠",
        Level::Error => "✖",
        Level::Critical => "‼",
    }
}

/// An entry as the templates show it.
pub struct Row {
    pub id: u64,
    pub level: &'static str,
    pub icon: &'static str,
    pub message: String,
    pub source: Option<String>,
    /// The key's description, or who added it by hand.
    pub source_label: String,
    pub key_ending: String,
    pub ip: String,
    pub received: String,
    pub untrusted: bool,
    pub resolved: Option<(String, String)>,
}

impl Dashboard {
    pub(super) fn row(
        &self,
        id: u64,
        e: &EntryRecord,
        keys: &mut HashMap<String, (String, String)>,
    ) -> Result<Row, PageError> {
        let (label, ending) = match (&e.key_id, &e.added_by) {
            (_, Some(user)) => (format!("added by {user}"), String::new()),
            (Some(k), None) => {
                if !keys.contains_key(k) {
                    let found = self.inner.projection.key(k)?;
                    let v = found.map_or_else(
                        || (format!("key {k}"), String::new()),
                        |r| (r.key.description, r.key.ending),
                    );
                    keys.insert(k.clone(), v);
                }
                keys[k].clone()
            }
            (None, None) => ("unknown source".into(), String::new()),
        };
        Ok(Row {
            id,
            level: e.level.as_str(),
            icon: icon(e.level),
            message: e.message.clone(),
            source: e.source.clone(),
            source_label: label,
            key_ending: ending,
            ip: e.ip.clone().unwrap_or_else(|| "—".into()),
            received: show_time(e.received),
            untrusted: e.untrusted,
            resolved: e.resolved.as_ref().map(|r| (r.by.clone(), show_time(r.at))),
        })
    }
}

/// The list's filter, read from the URL; the original's names
/// (`show`, `from`, a bare `resolved`) keep working.
pub(super) struct ListFilter {
    pub(super) levels: Vec<Level>,
    pub(super) keys: Vec<String>,
    pub(super) resolved: Resolved,
    pub(super) q: String,
    pub(super) before: Option<u64>,
    /// Entries of one group (its id).
    pub(super) group: Option<String>,
}

impl ListFilter {
    pub(super) fn parse(f: &FormData) -> ListFilter {
        let mut levels: Vec<Level> = f
            .list("level")
            .into_iter()
            .chain(f.list("show"))
            .filter_map(|l| Level::parse(&l).ok())
            .collect();
        levels.sort();
        levels.dedup();
        let mut keys: Vec<String> = f.list("key").into_iter().chain(f.list("from")).collect();
        keys.sort();
        keys.dedup();
        let resolved = match f.get("resolved").map(str::trim) {
            // The original's bare `?resolved` showed resolved entries too,
            // and so does anything this page does not know.
            Some("") => Resolved::All,
            other => Resolved::parse(other).unwrap_or(Resolved::All),
        };
        ListFilter {
            levels,
            keys,
            resolved,
            q: f.get("q").unwrap_or("").trim().to_owned(),
            before: f.get("before").and_then(|b| b.parse().ok()),
            group: f
                .get("group")
                .map(str::trim)
                .filter(|g| !g.is_empty())
                .map(str::to_owned),
        }
    }

    fn filter(&self) -> Filter {
        Filter {
            levels: self.levels.clone(),
            keys: self.keys.clone(),
            q: (!self.q.is_empty()).then(|| self.q.clone()),
            group: self.group.clone(),
        }
    }

    /// The live tail of this filter's entries after `upto`
    /// (`/api/v1/entries/stream`), for the page's script; `text`: with
    /// the text search (the groups page's search is of titles, not
    /// entries).
    pub(super) fn stream_url(&self, upto: u64, text: bool) -> String {
        let mut parts = self.query_parts(false, text);
        parts.push(format!("last_event_id={upto}"));
        format!("/api/v1/entries/stream?{}", parts.join("&"))
    }

    /// The filter as query parameters: levels, keys, the state (with
    /// `resolved`, when not the default), the text (with `text`), the group.
    fn query_parts(&self, resolved: bool, text: bool) -> Vec<String> {
        let mut parts = Vec::new();
        if !self.levels.is_empty() {
            let l: Vec<&str> = self.levels.iter().map(|l| l.as_str()).collect();
            parts.push(format!("level={}", l.join(",")));
        }
        if !self.keys.is_empty() {
            parts.push(format!("key={}", encode(&self.keys.join(","))));
        }
        if resolved && self.resolved != Resolved::Open {
            parts.push(format!("resolved={}", self.resolved.as_str()));
        }
        if text && !self.q.is_empty() {
            parts.push(format!("q={}", encode(&self.q)));
        }
        if let Some(g) = &self.group {
            parts.push(format!("group={}", encode(g)));
        }
        parts
    }

    /// Whether the page shows new entries as they come: its first page,
    /// and not the resolved ones only (a new entry is open).
    pub(super) fn is_live(&self) -> bool {
        self.before.is_none() && self.resolved != Resolved::Done
    }

    /// The URL of this filter, optionally at a cursor.
    fn url(&self, before: Option<u64>) -> String {
        self.url_at("/log/list/", before)
    }

    /// The URL of this filter on the page at `path`, optionally at a cursor.
    pub(super) fn url_at(&self, path: &str, before: Option<u64>) -> String {
        let mut parts = self.query_parts(true, true);
        if let Some(b) = before {
            parts.push(format!("before={b}"));
        }
        if parts.is_empty() {
            path.into()
        } else {
            format!("{path}?{}", parts.join("&"))
        }
    }
}

pub struct LevelChoice {
    pub(super) name: &'static str,
    pub(super) icon: &'static str,
    pub(super) checked: bool,
}

impl LevelChoice {
    /// Every level, checked as the filter says.
    pub(super) fn all(lf: &ListFilter) -> Vec<LevelChoice> {
        Level::ALL
            .iter()
            .map(|l| LevelChoice {
                name: l.as_str(),
                icon: icon(*l),
                checked: lf.levels.contains(l),
            })
            .collect()
    }
}

pub struct KeyChoice {
    pub(super) id: String,
    pub(super) description: String,
    pub(super) checked: bool,
}

#[derive(Template)]
#[template(path = "list.html")]
struct ListPage {
    ctx: Option<Ctx>,
    csrf: String,
    read_only: bool,
    flash: Option<String>,
    levels: Vec<LevelChoice>,
    keys: Vec<KeyChoice>,
    resolved: Resolved,
    q: String,
    open_count: u64,
    counts: Vec<(&'static str, u64)>,
    counts_note: String,
    /// Entries per hour by level, for the counts' keys, levels and state.
    chart: String,
    rows: Vec<Row>,
    here: String,
    upto: u64,
    newest_link: Option<String>,
    next_link: Option<String>,
    /// The live tail the page's script follows (`static/live.js`).
    live: Option<String>,
}

/// What the list page reads from the projection, on a blocking thread.
struct ListReads {
    page: Page,
    /// Per level, for the filter's state, and open.
    counts: LevelCounts,
    open_counts: LevelCounts,
    /// For a text search, how many match (capped), and whether that is all.
    counted: Option<(u64, bool)>,
    /// The last 24 hours, per hour and level code.
    volume: [[u64; 6]; 24],
}

async fn list_reads(
    d: &Dashboard,
    lf: &ListFilter,
    q: Query,
    now: i64,
) -> Result<ListReads, PageError> {
    let projection = d.inner.projection.clone();
    let lf_keys = lf.keys.clone();
    let with_text = !lf.q.is_empty();
    tokio::task::spawn_blocking(move || -> Result<_, projector::ProjectionError> {
        let page = projection.page(&q)?;
        let open = q.resolved == Resolved::Open;
        let counts = projection.level_counts(open, &lf_keys)?;
        let open_counts = projection.level_counts(true, &lf_keys)?;
        let counted = if !with_text {
            None
        } else if q.before.is_none() && page.next_before.is_none() {
            // The first page already holds every match: no second scan.
            Some((page.entries.len() as u64, true))
        } else {
            Some(projection.count_matching(&Query { before: None, ..q }, COUNT_CAP)?)
        };
        let volume = projection.volume(open, &lf_keys, now)?;
        Ok(ListReads {
            page,
            counts,
            open_counts,
            counted,
            volume,
        })
    })
    .await
    .map_err(|e| PageError::Internal(e.into()))?
    .map_err(PageError::from)
}

/// The filter's key checkboxes: every key, then "added by hand".
pub(super) fn key_choices(d: &Dashboard, lf: &ListFilter) -> Result<Vec<KeyChoice>, PageError> {
    let mut keys: Vec<KeyChoice> = d
        .inner
        .projection
        .keys()?
        .into_iter()
        .map(|r| KeyChoice {
            checked: lf.keys.contains(&r.key.key_id),
            id: r.key.key_id,
            description: r.key.description,
        })
        .collect();
    keys.push(KeyChoice {
        checked: lf.keys.iter().any(|k| k == proto::subjects::HAND),
        id: proto::subjects::HAND.into(),
        description: "added by hand".into(),
    });
    Ok(keys)
}

async fn list(
    State(d): State<Dashboard>,
    SignedIn(me): SignedIn,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let raw = raw.unwrap_or_default();
    let form = FormData::parse(raw.as_bytes());
    let lf = ListFilter::parse(&form);
    // Everything shown is at or below this sequence: "resolve all" stops here.
    let upto = *d.inner.projector.applied.borrow();
    let query = Query {
        filter: lf.filter(),
        resolved: lf.resolved,
        before: lf.before,
        limit: PAGE_SIZE,
    };
    let now = proto::clock::now_ms();
    let ListReads {
        page,
        counts,
        open_counts,
        counted,
        volume,
    } = list_reads(&d, &lf, query, now).await?;
    let mut key_cache = HashMap::new();
    let rows = page
        .entries
        .iter()
        .map(|(id, e)| d.row(*id, e, &mut key_cache))
        .collect::<Result<Vec<_>, _>>()?;
    let level_set = &lf.levels;
    let in_levels = |l: Level| level_set.is_empty() || level_set.contains(&l);
    let open_count: u64 = open_counts
        .iter()
        .filter(|(l, _)| in_levels(*l))
        .map(|(_, n)| n)
        .sum();
    let counts_note = match counted {
        Some((n, true)) => format!("{n} match the search"),
        Some((n, false)) => format!("more than {n} match the search"),
        None => String::new(),
    };
    let keys = key_choices(&d, &lf)?;
    let chart = super::charts::volume_chart(&volume, &lf.levels, now);
    let page = ListPage {
        ctx: Some(me.ctx(&d)),
        csrf: me.csrf(),
        read_only: d.is_read_only(),
        flash: form.get("done").map(|m| m.chars().take(200).collect()),
        levels: LevelChoice::all(&lf),
        keys,
        resolved: lf.resolved,
        q: lf.q.clone(),
        open_count,
        counts: counts
            .into_iter()
            .filter(|(l, _)| in_levels(*l))
            .map(|(l, n)| (l.as_str(), n))
            .collect(),
        counts_note,
        chart,
        rows,
        here: lf.url(lf.before),
        upto,
        newest_link: lf.before.map(|_| lf.url(None)),
        next_link: page.next_before.map(|b| lf.url(Some(b))),
        live: lf.is_live().then(|| lf.stream_url(upto, true)),
    };
    render(&page)
}

struct HistoryRow {
    event: &'static str,
    by: String,
    at: String,
    seq: u64,
}

#[derive(Template)]
#[template(path = "entry.html")]
struct EntryPage {
    ctx: Option<Ctx>,
    csrf: String,
    read_only: bool,
    row: Row,
    key_id: Option<String>,
    time: String,
    fingerprint: Option<String>,
    meta: Vec<(String, String)>,
    exception: Vec<super::exception::ExceptionView>,
    history: Vec<HistoryRow>,
}

fn parse_id(id: &str) -> Result<u64, PageError> {
    id.parse()
        .map_err(|_| PageError::NotFound(format!("There is no entry #{id}.")))
}

async fn entry(
    State(d): State<Dashboard>,
    SignedIn(me): SignedIn,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id = parse_id(&id)?;
    d.wait_for_entry(id).await?;
    let e = d
        .inner
        .projection
        .entry(id)?
        .ok_or_else(|| PageError::NotFound(format!("There is no entry #{id}.")))?;
    let logged_by = match (&e.added_by, &e.key_id) {
        (Some(u), _) => u.clone(),
        (None, Some(k)) => format!(
            "key {k} from {}",
            e.ip.as_deref().unwrap_or("unknown address")
        ),
        (None, None) => "unknown".into(),
    };
    let mut history = vec![HistoryRow {
        event: "logged",
        by: logged_by,
        at: show_time(e.received),
        seq: id,
    }];
    for (seq, h) in d.inner.projection.history(id)? {
        history.push(HistoryRow {
            event: match h.kind {
                HistoryKind::Resolved => "resolved",
                HistoryKind::Unresolved => "unresolved",
            },
            by: h.by,
            at: show_time(h.at),
            seq,
        });
    }
    let page = EntryPage {
        ctx: Some(me.ctx(&d)),
        csrf: me.csrf(),
        read_only: d.is_read_only(),
        row: d.row(id, &e, &mut HashMap::new())?,
        key_id: e.key_id.clone(),
        time: e.time.map_or_else(|| "not sent".into(), show_time),
        fingerprint: e.fingerprint.clone(),
        meta: e.meta.clone().into_iter().collect(),
        exception: super::exception::views(e.exception.as_deref().unwrap_or_default()),
        history,
    };
    render(&page)
}

/// Where a form sends the browser afterwards (`next`), if it says.
#[derive(serde::Deserialize)]
struct Next {
    next: Option<String>,
}

async fn triage(
    d: Dashboard,
    Posted { me, form, .. }: Posted<Next>,
    id: String,
    resolve: bool,
) -> Result<Response, PageError> {
    let id = parse_id(&id)?;
    d.wait_for_entry(id).await?;
    if d.inner.projection.entry(id)?.is_none() {
        return Err(PageError::NotFound(format!(
            "There is no entry #{id}; nothing was changed."
        )));
    }
    let event = if resolve {
        Event::Resolved(Triage::Entry(id))
    } else {
        Event::Unresolved(Triage::Entry(id))
    };
    let env = Envelope::now(Actor::User(me.user.name.clone()), event);
    d.act(d.inner.bus.subjects().triage(), env).await?;
    Ok(back_to(form.next.as_deref()))
}

async fn resolve(
    State(d): State<Dashboard>,
    Path(id): Path<String>,
    Action(posted): Action<Next>,
) -> Result<Response, PageError> {
    triage(d, posted, id, true).await
}

async fn unresolve(
    State(d): State<Dashboard>,
    Path(id): Path<String>,
    Action(posted): Action<Next>,
) -> Result<Response, PageError> {
    triage(d, posted, id, false).await
}

#[derive(Template)]
#[template(path = "confirm.html")]
struct ConfirmPage {
    ctx: Option<Ctx>,
    csrf: String,
    count: u64,
    upto: u64,
    description: String,
    levels: Vec<&'static str>,
    keys: Vec<String>,
    q: String,
    next: String,
}

async fn resolve_matching(
    State(d): State<Dashboard>,
    Action(Posted {
        me, fields: form, ..
    }): Action<NoFields>,
) -> Result<Response, PageError> {
    let lf = ListFilter::parse(&form);
    let upto: u64 = form
        .get("upto")
        .and_then(|u| u.parse().ok())
        .ok_or_else(|| {
            PageError::BadRequest("The form lacks the highest entry id it showed (upto).".into())
        })?;
    let filter = lf.filter();
    let next = super::local_path(form.get("next"));
    let projection = d.inner.projection.clone();
    let q = Query {
        filter: filter.clone(),
        resolved: Resolved::Open,
        before: Some(upto.saturating_add(1)),
        limit: usize::MAX,
    };
    let (count, _) = tokio::task::spawn_blocking(move || projection.count_matching(&q, usize::MAX))
        .await
        .map_err(|e| PageError::Internal(e.into()))??;
    if count == 0 {
        return Ok(back_to(Some(&next)));
    }
    if count > CONFIRM_ABOVE && form.get("confirm") != Some("yes") {
        return render(&ConfirmPage {
            ctx: Some(me.ctx(&d)),
            csrf: me.csrf(),
            count,
            upto,
            description: filter.describe(),
            levels: filter.levels.iter().map(|l| l.as_str()).collect(),
            keys: filter.keys.clone(),
            q: lf.q.clone(),
            next,
        });
    }
    let rule = Rule {
        filter,
        upto,
        matcher: MATCHER_VERSION,
    };
    let env = Envelope::now(
        Actor::User(me.user.name.clone()),
        Event::Resolved(Triage::Matching(rule)),
    );
    d.act(d.inner.bus.subjects().triage(), env).await?;
    let sep = if next.contains('?') { '&' } else { '?' };
    Ok(back_to(Some(&format!(
        "{next}{sep}done={}",
        encode(&format!("Resolved {count} entries."))
    ))))
}

#[derive(Template)]
#[template(path = "new.html")]
struct NewPage {
    ctx: Option<Ctx>,
    csrf: String,
    error: Option<String>,
    /// Each level, and whether it is the one selected.
    levels: Vec<(&'static str, bool)>,
    message: String,
    source: String,
}

/// The fields of the add-by-hand form.
#[derive(Default, serde::Deserialize)]
struct NewEntryForm {
    #[serde(default)]
    message: String,
    #[serde(default)]
    level: String,
    #[serde(default)]
    source: String,
}

fn new_page(me: &Current, d: &Dashboard, error: Option<String>, form: &NewEntryForm) -> NewPage {
    let selected = if form.level.is_empty() {
        "info"
    } else {
        form.level.as_str()
    };
    NewPage {
        ctx: Some(me.ctx(d)),
        csrf: me.csrf(),
        error,
        levels: Level::ALL
            .iter()
            .map(|l| (l.as_str(), l.as_str() == selected))
            .collect(),
        message: form.message.clone(),
        source: form.source.clone(),
    }
}

async fn new_form(
    State(d): State<Dashboard>,
    SignedIn(me): SignedIn,
) -> Result<Response, PageError> {
    if d.is_read_only() {
        return Err(PageError::Forbidden("This dashboard is read-only.".into()));
    }
    render(&new_page(&me, &d, None, &NewEntryForm::default()))
}

async fn new_submit(
    State(d): State<Dashboard>,
    Action(Posted { me, form, .. }): Action<NewEntryForm>,
) -> Result<Response, PageError> {
    let item = serde_json::json!({
        "message": form.message,
        "level": form.level,
        "source": form.source.trim(),
    });
    let entry = match proto::input::json_item(&item, &d.inner.limits) {
        Ok(e) => e,
        Err(e) => {
            let mut resp = render(&new_page(&me, &d, Some(e.message), &form))?;
            *resp.status_mut() = axum::http::StatusCode::BAD_REQUEST;
            return Ok(resp);
        }
    };
    let logged = entry.into_logged(Sender::User(me.user.name.clone()));
    let env = Envelope::now(Actor::User(me.user.name.clone()), Event::Logged(logged));
    let seq = d.act(d.inner.bus.subjects().entry(None), env).await?;
    Ok(Redirect::to(&format!("/log/entry/{seq}/")).into_response())
}

use axum::response::IntoResponse;

/// Entries per level.
type LevelCounts = Vec<(Level, u64)>;
