//! Keys, users, one's own password, the audit log and the health page.

use super::{Ctx, Current, FormData, PageError, back_to, encode, render, show_time};
use crate::Dashboard;
use crate::auth::{ClientIp, Refusal};
use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use proto::commands::{self, CommandError, KeySpec, UserChange};
use proto::event::{Actor, Role};

pub fn routes() -> Router<Dashboard> {
    Router::new()
        .route("/log/keys/", get(keys).post(create_key))
        .route("/log/keys/{id}/revoke", post(revoke_key))
        .route("/log/keys/{id}/restore", post(restore_key))
        .route("/log/keys/{id}/settings", post(key_settings))
        .route("/log/users/", get(users).post(add_user))
        .route("/log/users/{id}/{action}", post(change_user))
        .route("/log/password/", get(password_form).post(change_password))
        .route("/log/audit/", get(audit))
        .route("/log/health/", get(health))
}

fn command_error(e: CommandError) -> PageError {
    match e {
        CommandError::Invalid(m) => PageError::BadRequest(m),
        CommandError::NotFound(m) => PageError::NotFound(format!("No such {m}.")),
        CommandError::Exists(m) => PageError::BadRequest(format!("{m} already exists.")),
        CommandError::Raced(m) => {
            PageError::Unavailable(format!("{m} changed meanwhile; try again."))
        }
        CommandError::Publish(e) => PageError::Unavailable(format!(
            "The event log is unavailable ({e}); nothing was changed."
        )),
        CommandError::Other(e) => PageError::Internal(e),
    }
}

async fn admin(d: &Dashboard, headers: &HeaderMap, here: &str) -> Result<Current, PageError> {
    let me = d.current(headers, here).await?;
    me.require_admin()?;
    Ok(me)
}

/// An admin's POST: signed in, admin, right CSRF token, not read-only.
async fn admin_post(
    d: &Dashboard,
    headers: &HeaderMap,
    form: &FormData,
) -> Result<Current, PageError> {
    let me = admin(d, headers, "/log/list/").await?;
    me.check_csrf(form)?;
    if d.is_read_only() {
        return Err(PageError::Forbidden("This dashboard is read-only.".into()));
    }
    Ok(me)
}

fn done(path: &str, message: &str) -> Response {
    back_to(Some(&format!("{path}?done={}", encode(message))))
}

struct KeyRow {
    id: String,
    description: String,
    ending: String,
    created: String,
    created_by: String,
    active: bool,
    last_used: String,
    entries: u64,
    origins: String,
    /// The same, as the edit form shows them.
    origins_input: String,
    rate_limit: String,
    rate_limit_input: String,
}

#[derive(Template)]
#[template(path = "keys.html")]
struct KeysPage {
    ctx: Option<Ctx>,
    csrf: String,
    read_only: bool,
    flash: Option<String>,
    error: Option<String>,
    keys: Vec<KeyRow>,
}

async fn keys(
    State(d): State<Dashboard>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let me = admin(&d, &headers, "/log/keys/").await?;
    let q = FormData::parse(raw.unwrap_or_default().as_bytes());
    let mut list = d.inner.projection.keys()?;
    list.sort_by_key(|k| std::cmp::Reverse(k.key.created_at));
    let keys = list
        .into_iter()
        .map(|r| {
            let k = r.key;
            KeyRow {
                created: show_time(k.created_at),
                last_used: r.last_used.map_or_else(|| "never".into(), show_time),
                entries: r.entries,
                origins: if k.origins.is_empty() {
                    "—".into()
                } else {
                    k.origins.join(", ")
                },
                origins_input: k.origins.join(", "),
                rate_limit: k
                    .rate_limit
                    .map_or_else(|| "default limit".into(), |n| format!("{n}/min")),
                rate_limit_input: k.rate_limit.map(|n| n.to_string()).unwrap_or_default(),
                id: k.key_id,
                description: k.description,
                ending: k.ending,
                created_by: k.created_by,
                active: k.active,
            }
        })
        .collect();
    render(&KeysPage {
        ctx: Some(me.ctx(&d)),
        csrf: me.csrf(),
        read_only: d.is_read_only(),
        flash: q.get("done").map(|m| m.chars().take(200).collect()),
        error: None,
        keys,
    })
}

#[derive(Template)]
#[template(path = "key_created.html")]
struct KeyCreatedPage {
    ctx: Option<Ctx>,
    description: String,
    secret: String,
    curl: String,
}

async fn create_key(
    State(d): State<Dashboard>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = FormData::parse(&body);
    let me = admin_post(&d, &headers, &form).await?;
    let spec = KeySpec {
        description: form.get("description").unwrap_or("").to_owned(),
        secret: None,
        origins: form.list("origins"),
        rate_limit: None,
    };
    let key = commands::create_key(&d.inner.bus, spec, Actor::User(me.user.name.clone()))
        .await
        .map_err(command_error)?;
    d.wait_for(key.seq).await?;
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1:8000");
    let curl = format!(
        "curl --request POST 'http://{host}/log/add/' \\\n  --data-urlencode 'message=hello from my program' \\\n  --data-urlencode 'status=warn' \\\n  --data-urlencode 'key={}'",
        key.secret.expose()
    );
    let page = KeyCreatedPage {
        ctx: Some(me.ctx(&d)),
        description: form.get("description").unwrap_or("").trim().to_owned(),
        secret: key.secret.expose().to_owned(),
        curl,
    };
    let mut resp = render(&page)?;
    // The secret must not linger in caches.
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

async fn set_key(
    d: Dashboard,
    headers: HeaderMap,
    id: String,
    body: Bytes,
    active: bool,
) -> Result<Response, PageError> {
    let form = FormData::parse(&body);
    let me = admin_post(&d, &headers, &form).await?;
    let seq =
        commands::set_key_active(&d.inner.bus, &id, active, Actor::User(me.user.name.clone()))
            .await
            .map_err(command_error)?;
    d.wait_for(seq).await?;
    let verb = if active { "Restored" } else { "Revoked" };
    Ok(done("/log/keys/", &format!("{verb} key {id}.")))
}

async fn revoke_key(
    State(d): State<Dashboard>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, PageError> {
    set_key(d, headers, id, body, false).await
}

async fn restore_key(
    State(d): State<Dashboard>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, PageError> {
    set_key(d, headers, id, body, true).await
}

/// Browser origins and the rate limit of a key (`KeyChanged`).
async fn key_settings(
    State(d): State<Dashboard>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = FormData::parse(&body);
    let me = admin_post(&d, &headers, &form).await?;
    let rate_limit = match form.get("rate_limit").map(str::trim) {
        None | Some("") | Some("default") => None,
        Some(n) => Some(n.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| {
            PageError::BadRequest(format!("The rate limit must be a whole number of entries per minute, or empty for the default; not {n:?}."))
        })?),
    };
    let changes = commands::KeyChanges {
        origins: Some(form.list("origins")),
        rate_limit: Some(rate_limit),
    };
    let seq = commands::change_key(
        &d.inner.bus,
        &id,
        changes,
        Actor::User(me.user.name.clone()),
    )
    .await
    .map_err(command_error)?;
    d.wait_for(seq).await?;
    Ok(done(
        "/log/keys/",
        &format!("Saved the settings of key {id}."),
    ))
}

struct UserRow {
    id: String,
    name: String,
    role: &'static str,
    disabled: bool,
    created: String,
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    ctx: Option<Ctx>,
    csrf: String,
    read_only: bool,
    flash: Option<String>,
    error: Option<String>,
    users: Vec<UserRow>,
}

fn role_name(r: &Role) -> &'static str {
    match r {
        Role::Admin => "admin",
        Role::Member => "member",
    }
}

async fn users_page(
    d: &Dashboard,
    me: &Current,
    flash: Option<String>,
    error: Option<String>,
) -> Result<Response, PageError> {
    let mut list = d.inner.projection.users()?;
    list.sort_by_key(|u| u.name.to_lowercase());
    let users = list
        .into_iter()
        .map(|u| UserRow {
            id: u.user_id,
            name: u.name,
            role: role_name(&u.role),
            disabled: u.disabled,
            created: show_time(u.created_at),
        })
        .collect();
    render(&UsersPage {
        ctx: Some(me.ctx(d)),
        csrf: me.csrf(),
        read_only: d.is_read_only(),
        flash,
        error,
        users,
    })
}

async fn users(
    State(d): State<Dashboard>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let me = admin(&d, &headers, "/log/users/").await?;
    let q = FormData::parse(raw.unwrap_or_default().as_bytes());
    users_page(
        &d,
        &me,
        q.get("done").map(|m| m.chars().take(200).collect()),
        None,
    )
    .await
}

async fn add_user(
    State(d): State<Dashboard>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = FormData::parse(&body);
    let me = admin_post(&d, &headers, &form).await?;
    let name = form.get("name").unwrap_or("").trim().to_owned();
    let role = if form.get("role") == Some("admin") {
        Role::Admin
    } else {
        Role::Member
    };
    let password = form.get("password").unwrap_or("").to_owned();
    let bus = d.inner.bus.clone();
    let by = Actor::User(me.user.name.clone());
    match commands::create_user(&bus, &name, &password, role, by).await {
        Ok(seq) => {
            d.wait_for(seq).await?;
            Ok(done("/log/users/", &format!("Added {name}.")))
        }
        Err(e @ (CommandError::Invalid(_) | CommandError::Exists(_))) => {
            let msg = command_error(e).to_string();
            let mut resp = users_page(&d, &me, None, Some(msg)).await?;
            *resp.status_mut() = StatusCode::BAD_REQUEST;
            Ok(resp)
        }
        Err(e) => Err(command_error(e)),
    }
}

async fn change_user(
    State(d): State<Dashboard>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = FormData::parse(&body);
    let me = admin_post(&d, &headers, &form).await?;
    let user = d
        .inner
        .projection
        .user(&id)?
        .ok_or_else(|| PageError::NotFound(format!("There is no user {id}.")))?;
    let own = user.user_id == me.user.user_id;
    let (change, message) = match action.as_str() {
        "disable" if own => {
            return Err(PageError::BadRequest("You cannot disable yourself.".into()));
        }
        "disable" => (UserChange::Disable, format!("Disabled {}.", user.name)),
        "enable" => (UserChange::Enable, format!("Enabled {}.", user.name)),
        "role" => {
            let role = match form.get("role") {
                Some("admin") => Role::Admin,
                Some("member") => Role::Member,
                _ => return Err(PageError::BadRequest("role must be admin or member".into())),
            };
            if own && role != Role::Admin {
                return Err(PageError::BadRequest(
                    "You cannot take your own admin role; ask another admin.".into(),
                ));
            }
            let message = format!("{} is now {}.", user.name, role_name(&role));
            (UserChange::Role(role), message)
        }
        "password" => {
            let password = form.get("password").unwrap_or("");
            commands::check_password(password)
                .map_err(|e| PageError::BadRequest(capitalized(&e.to_string())))?;
            let hash = hash(&d, password).await?;
            (
                UserChange::Password { hash },
                format!(
                    "Set a new password for {}; their sessions have ended.",
                    user.name
                ),
            )
        }
        _ => return Err(PageError::NotFound(format!("Unknown action {action}."))),
    };
    d.change_user(&id, change, &me).await?;
    Ok(done("/log/users/", &message))
}

impl Dashboard {
    /// A user's change, published after the user's last event, once the
    /// projection shows it.
    async fn change_user(
        &self,
        user_id: &str,
        change: UserChange,
        me: &Current,
    ) -> Result<u64, PageError> {
        if self.is_read_only() {
            return Err(PageError::Forbidden("This dashboard is read-only.".into()));
        }
        let by = Actor::User(me.user.name.clone());
        let seq = commands::change_user(&self.inner.bus, user_id, change, by)
            .await
            .map_err(command_error)?;
        self.wait_for(seq).await?;
        Ok(seq)
    }
}

/// "a password …" → "A password ….", for a sentence on a page.
fn capitalized(message: &str) -> String {
    let mut chars = message.chars();
    match chars.next() {
        Some(first) => format!("{}{}.", first.to_uppercase(), chars.as_str()),
        None => String::new(),
    }
}

async fn hash(d: &Dashboard, password: &str) -> Result<String, PageError> {
    d.inner
        .auth
        .hash(password)
        .await
        .map_err(PageError::Internal)
}

#[derive(Template)]
#[template(path = "password.html")]
struct PasswordPage {
    ctx: Option<Ctx>,
    csrf: String,
    error: Option<String>,
}

async fn password_form(
    State(d): State<Dashboard>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let me = d.current(&headers, "/log/password/").await?;
    render(&PasswordPage {
        ctx: Some(me.ctx(&d)),
        csrf: me.csrf(),
        error: None,
    })
}

async fn change_password(
    State(d): State<Dashboard>,
    ClientIp(addr): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    let me = d.current(&headers, "/log/password/").await?;
    let form = FormData::parse(&body);
    me.check_csrf(&form)?;
    let fail = |msg: &str| -> Result<Response, PageError> {
        let mut resp = render(&PasswordPage {
            ctx: Some(me.ctx(&d)),
            csrf: me.csrf(),
            error: Some(msg.into()),
        })?;
        *resp.status_mut() = StatusCode::BAD_REQUEST;
        Ok(resp)
    };
    match d
        .inner
        .auth
        .check(&me.user.name, form.get("current").unwrap_or(""), addr)
        .await
    {
        Ok(_) => {}
        Err(Refusal::Wrong) => return fail("The current password is wrong."),
        Err(Refusal::Limited { retry_after }) => {
            return Err(PageError::TooMany(format!(
                "Too many wrong passwords; try again in {} minutes.",
                retry_after.div_ceil(60)
            )));
        }
        Err(Refusal::Busy) => {
            return Err(PageError::Unavailable(
                "Too many sign-ins are being checked at once; try again in a moment.".into(),
            ));
        }
    }
    let password = form.get("password").unwrap_or("");
    if let Err(e) = commands::check_password(password) {
        return fail(&capitalized(&e.to_string()));
    }
    let hash = hash(&d, password).await?;
    d.change_user(&me.user.user_id, UserChange::Password { hash }, &me)
        .await?;
    // Every older session ended with the change; this one continues.
    let user = d
        .inner
        .projection
        .user(&me.user.user_id)?
        .ok_or_else(|| PageError::Login("/log/list/".into()))?;
    let mut resp = done(
        "/log/list/",
        "Your password was changed; other sessions have ended.",
    );
    d.start_session(&mut resp, &user);
    Ok(resp)
}

struct AuditRow {
    at: String,
    by: String,
    action: String,
    target: String,
    seq: u64,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    ctx: Option<Ctx>,
    /// Everyone in the log, and whether the filter picks them.
    actors: Vec<(String, bool)>,
    items: Vec<AuditRow>,
    next_link: Option<String>,
}

async fn audit(
    State(d): State<Dashboard>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let raw = raw.unwrap_or_default();
    let me = d.current(&headers, &format!("/log/audit/?{raw}")).await?;
    let q = FormData::parse(raw.as_bytes());
    let by = q.get("by").unwrap_or("").to_owned();
    let before = q.get("before").and_then(|b| b.parse().ok());
    let (items, next) =
        d.inner
            .projection
            .audit((!by.is_empty()).then_some(by.as_str()), before, 50)?;
    let page = AuditPage {
        ctx: Some(me.ctx(&d)),
        actors: d
            .inner
            .projection
            .audit_actors()?
            .into_iter()
            .map(|a| {
                let picked = a == by;
                (a, picked)
            })
            .collect(),
        items: items
            .into_iter()
            .map(|(seq, i)| AuditRow {
                at: show_time(i.at),
                by: i.by,
                action: i.action.replace('_', " "),
                target: i.target,
                seq,
            })
            .collect(),
        next_link: next.map(|n| format!("/log/audit/?by={}&before={n}", encode(&by))),
    };
    render(&page)
}

#[derive(Template)]
#[template(path = "health.html")]
struct HealthPage {
    ctx: Option<Ctx>,
    projector_state: String,
    applied: u64,
    stream_last: String,
    lag: String,
    nats: &'static str,
    stats: Vec<(String, u64)>,
}

async fn health(State(d): State<Dashboard>, headers: HeaderMap) -> Result<Response, PageError> {
    let me = admin(&d, &headers, "/log/health/").await?;
    let applied = *d.inner.projector.applied.borrow();
    let state = match d.inner.projector.status.borrow().clone() {
        projector::Status::Running => "running".to_owned(),
        projector::Status::Failing { reason } => format!("retrying: {reason}"),
        projector::Status::Stopped { seq, reason } => format!("stopped at event {seq}: {reason}"),
    };
    let last = d.inner.bus.last_seq().await.ok();
    let page = HealthPage {
        ctx: Some(me.ctx(&d)),
        projector_state: state,
        applied,
        stream_last: last.map_or_else(|| "unknown (NATS unreachable)".into(), |l| l.to_string()),
        lag: last.map_or_else(
            || "unknown".into(),
            |l| format!("{} events", l.saturating_sub(applied)),
        ),
        nats: if d.inner.bus.is_connected() {
            "connected"
        } else {
            "disconnected"
        },
        stats: d
            .inner
            .gateway_stats
            .as_ref()
            .map(|f| f())
            .unwrap_or_default(),
    };
    render(&page)
}
