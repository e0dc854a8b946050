//! The alerts page (admins): the rules in force with how their alerts
//! went in this process, add one, send a test, remove one
//! (docs/alerts.md).

use super::admin::{command_error, done};
use super::extract::{AdminAction, AdminOnly, NoFields, Posted};
use super::{Ctx, FormData, PageError, render, show_time};
use crate::Dashboard;
use askama::Template;
use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use axum::routing::{get, post};
use proto::alert::{AlertRule, Target, Trigger, WebhookFormat};
use proto::commands::{self, AlertSpec, TargetSpec};
use proto::event::Actor;
use proto::level::Level;

pub fn routes() -> Router<Dashboard> {
    Router::new()
        .route("/log/alerts/", get(list).post(add))
        .route("/log/alerts/{id}/test", post(test))
        .route("/log/alerts/{id}/remove", post(remove))
}

pub(crate) struct RuleRow {
    pub(crate) id: String,
    pub(crate) description: String,
    pub(crate) created: String,
    pub(crate) created_by: String,
    pub(crate) sent: u64,
    pub(crate) failed: u64,
    pub(crate) held: u64,
    pub(crate) given_up: u64,
    pub(crate) last_error: Option<(String, String)>,
}

#[derive(Template)]
#[template(path = "alerts.html")]
struct AlertsPage {
    ctx: Option<Ctx>,
    csrf: String,
    read_only: bool,
    flash: Option<String>,
    /// Whether this process sends alerts.
    sending: bool,
    rules: Vec<RuleRow>,
    levels: Vec<&'static str>,
}

/// Each rule's row, with this process's delivery counts.
pub(crate) fn rule_rows(d: &Dashboard) -> Result<Vec<RuleRow>, PageError> {
    let status = d.inner.alert_status.lock().expect("status lock").clone();
    let mut rules = d.inner.projection.alerts()?;
    rules.sort_by_key(|(_, r)| std::cmp::Reverse(r.seq));
    Ok(rules
        .into_iter()
        .map(|(id, r)| {
            let s = status.get(&id).cloned().unwrap_or_default();
            RuleRow {
                description: r.rule.describe(),
                created: show_time(r.created_at),
                created_by: r.created_by,
                sent: s.sent,
                failed: s.failed,
                held: s.held,
                given_up: s.given_up,
                last_error: s.last_error.map(|(at, e)| (show_time(at), e)),
                id,
            }
        })
        .collect())
}

async fn list(
    State(d): State<Dashboard>,
    AdminOnly(me): AdminOnly,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let q = FormData::parse(raw.unwrap_or_default().as_bytes());
    render(&AlertsPage {
        ctx: Some(me.ctx(&d)),
        csrf: me.csrf(),
        read_only: d.is_read_only(),
        flash: q.get("done").map(|m| m.chars().take(200).collect()),
        sending: d.inner.alerts.as_ref().is_some_and(|a| a.enabled),
        rules: rule_rows(&d)?,
        levels: Level::ALL.iter().map(|l| l.as_str()).collect(),
    })
}

/// The rule the add form describes; errors say what to fix.
fn spec(fields: &FormData) -> Result<AlertSpec, PageError> {
    let bad = PageError::BadRequest;
    let on = fields
        .list("on")
        .iter()
        .map(|t| Trigger::parse(t))
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad)?;
    let min_level = match fields.get("level").map(str::trim) {
        None | Some("") => None,
        Some(l) => Some(Level::parse(l).map_err(|e| bad(e.to_string()))?),
    };
    let mut meta = std::collections::BTreeMap::new();
    for m in fields.list("meta") {
        let (k, v) = m
            .split_once('=')
            .ok_or_else(|| bad(format!("Meta {m:?}: write it as name=value.")))?;
        meta.insert(k.trim().to_owned(), v.trim().to_owned());
    }
    let number = |name: &str, default: u64| -> Result<u64, PageError> {
        match fields.get(name).map(str::trim) {
            None | Some("") => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| bad(format!("{name} must be a whole number, not {v:?}."))),
        }
    };
    let cap = u32::try_from(number("cap", proto::alert::DEFAULT_CAP_PER_HOUR.into())?)
        .map_err(|_| bad("The cap is too large.".into()))?;
    let target = match fields.get("target") {
        Some("email") => TargetSpec::Email {
            to: fields.list("email"),
        },
        _ => TargetSpec::Webhook {
            format: WebhookFormat::parse(fields.get("format").unwrap_or("json")).map_err(bad)?,
            url: fields.get("webhook").unwrap_or("").trim().to_owned(),
        },
    };
    Ok(AlertSpec {
        rule: AlertRule {
            on,
            min_level,
            keys: fields.list("keys"),
            q: fields
                .get("q")
                .map(str::trim)
                .filter(|q| !q.is_empty())
                .map(str::to_owned),
            meta,
            min_interval_s: number("min_interval", proto::alert::DEFAULT_MIN_INTERVAL_S)?,
            cap_per_hour: cap,
            target: Target::Email { to: vec![] },
        },
        target,
    })
}

fn seal(d: &Dashboard) -> Result<std::sync::Arc<crate::alerts::Settings>, PageError> {
    d.inner.alerts.clone().ok_or_else(|| {
        PageError::Unavailable("This process has no alerts key, so it cannot add rules.".into())
    })
}

async fn add(
    State(d): State<Dashboard>,
    AdminAction(Posted { me, fields, .. }): AdminAction<NoFields>,
) -> Result<Response, PageError> {
    let spec = spec(&fields)?;
    let settings = seal(&d)?;
    let (id, seq) = commands::add_alert(
        &d.inner.bus,
        &settings.seal,
        spec,
        Actor::User(me.user.name.clone()),
    )
    .await
    .map_err(command_error)?;
    d.wait_for(seq).await?;
    Ok(done("/log/alerts/", &format!("Added alert {id}.")))
}

async fn test(
    State(d): State<Dashboard>,
    Path(id): Path<String>,
    AdminAction(_): AdminAction<NoFields>,
) -> Result<Response, PageError> {
    let settings = seal(&d)?;
    let rule = d
        .inner
        .projection
        .alerts()?
        .into_iter()
        .find(|(i, _)| *i == id)
        .ok_or_else(|| PageError::NotFound(format!("There is no alert {id}.")))?
        .1
        .rule;
    let message = match crate::alerts::send_test(
        &settings.seal,
        settings.public_url.as_deref(),
        settings.smtp.as_deref(),
        &id,
        &rule,
    )
    .await
    {
        Ok(()) => format!("Sent a test alert through {id}."),
        Err(e) => format!("The test alert through {id} failed: {e}"),
    };
    Ok(done("/log/alerts/", &message))
}

async fn remove(
    State(d): State<Dashboard>,
    Path(id): Path<String>,
    AdminAction(Posted { me, .. }): AdminAction<NoFields>,
) -> Result<Response, PageError> {
    let seq = commands::remove_alert(&d.inner.bus, &id, Actor::User(me.user.name.clone()))
        .await
        .map_err(command_error)?;
    d.wait_for(seq).await?;
    Ok(done("/log/alerts/", &format!("Removed alert {id}.")))
}
