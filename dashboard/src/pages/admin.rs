//! Keys, users, one's own password, the audit log and the health page.

use super::extract::{Action, AdminAction, AdminOnly, NoFields, Posted, SignedIn};
use super::{Ctx, Current, FormData, PageError, back_to, encode, render, show_time};
use crate::Dashboard;
use crate::auth::{ClientIp, Refusal};
use askama::Template;
use axum::Router;
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
        .route("/log/users/{id}/disable", post(disable_user))
        .route("/log/users/{id}/enable", post(enable_user))
        .route("/log/users/{id}/role", post(set_role))
        .route("/log/users/{id}/password", post(set_password))
        .route("/log/password/", get(password_form).post(change_password))
        .route("/log/audit/", get(audit))
        .route("/log/health/", get(health))
}

pub(crate) fn command_error(e: CommandError) -> PageError {
    match e {
        CommandError::Invalid(m) => PageError::BadRequest(m),
        CommandError::NotFound(m) => PageError::NotFound(format!("No such {m}.")),
        CommandError::Exists(m) => PageError::BadRequest(format!("{m} already exists.")),
        CommandError::Raced(m) => {
            PageError::Unavailable(format!("{m} changed meanwhile; try again."))
        }
        CommandError::Publish(e) if e.may_be_stored() => PageError::Unavailable(format!(
            "The event log did not confirm the change in time ({e}); it may still take \
             effect: look again before repeating it."
        )),
        CommandError::Publish(e) => PageError::Unavailable(format!(
            "The event log is unavailable ({e}); nothing was changed."
        )),
        CommandError::Other(e) => PageError::Internal(e),
    }
}

pub(crate) fn done(path: &str, message: &str) -> Response {
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
    /// With browser origins: the key's public DSN (Sentry browser SDKs).
    public_dsn: Option<String>,
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
    AdminOnly(me): AdminOnly,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let q = FormData::parse(raw.unwrap_or_default().as_bytes());
    let base = public_base(&headers);
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
                public_dsn: (!k.origins.is_empty())
                    .then(|| proto::secret::dsn(&base, &k.key_id))
                    .flatten(),
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
    dsn: String,
    public_dsn: Option<String>,
}

/// Where programs reach minilog, as this request did: `http://<Host>`.
/// (Behind a TLS proxy, the DSNs shown say `http`; `minilog key dsn
/// --public-url` prints them for the real address.)
fn public_base(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && !h.contains(['/', '@', ' ']))
        .unwrap_or("127.0.0.1:8000");
    format!("http://{host}")
}

/// The new-key form; its origins are read as a list (repeated or
/// comma-separated).
#[derive(serde::Deserialize)]
struct NewKeyForm {
    #[serde(default)]
    description: String,
}

async fn create_key(
    State(d): State<Dashboard>,
    headers: HeaderMap,
    AdminAction(Posted { me, form, fields }): AdminAction<NewKeyForm>,
) -> Result<Response, PageError> {
    let spec = KeySpec {
        origins: fields.list("origins"),
        ..KeySpec::described(&form.description)
    };
    let has_origins = !spec.origins.iter().all(|o| o.trim().is_empty());
    let key = commands::create_key(&d.inner.bus, spec, Actor::User(me.user.name.clone()))
        .await
        .map_err(command_error)?;
    d.wait_for(key.seq).await?;
    let base = public_base(&headers);
    let curl = format!(
        "curl --request POST '{base}/log/add/' \\\n  --data-urlencode 'message=hello from my program' \\\n  --data-urlencode 'status=warn' \\\n  --data-urlencode 'key={}'",
        key.secret.expose()
    );
    let dsn = proto::secret::dsn(&base, key.dsn_key.expose()).unwrap_or_default();
    let public_dsn = has_origins
        .then(|| proto::secret::dsn(&base, key.id.as_str()))
        .flatten();
    let page = KeyCreatedPage {
        ctx: Some(me.ctx(&d)),
        description: form.description.trim().to_owned(),
        secret: key.secret.expose().to_owned(),
        curl,
        dsn,
        public_dsn,
    };
    let mut resp = render(&page)?;
    // The secret must not linger in caches.
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

async fn set_key(
    d: Dashboard,
    me: Current,
    id: String,
    active: bool,
) -> Result<Response, PageError> {
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
    Path(id): Path<String>,
    AdminAction(posted): AdminAction<NoFields>,
) -> Result<Response, PageError> {
    set_key(d, posted.me, id, false).await
}

async fn restore_key(
    State(d): State<Dashboard>,
    Path(id): Path<String>,
    AdminAction(posted): AdminAction<NoFields>,
) -> Result<Response, PageError> {
    set_key(d, posted.me, id, true).await
}

/// A key's settings form; its origins are read as a list.
#[derive(serde::Deserialize)]
struct KeySettingsForm {
    rate_limit: Option<String>,
}

/// Browser origins and the rate limit of a key (`KeyChanged`).
async fn key_settings(
    State(d): State<Dashboard>,
    Path(id): Path<String>,
    AdminAction(Posted { me, form, fields }): AdminAction<KeySettingsForm>,
) -> Result<Response, PageError> {
    let rate_limit = commands::rate_limit_setting(form.rate_limit.as_deref().unwrap_or(""))
        .map_err(|e| PageError::BadRequest(capitalized(&e.to_string())))?;
    let changes = commands::KeyChanges {
        origins: Some(fields.list("origins")),
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
    AdminOnly(me): AdminOnly,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let q = FormData::parse(raw.unwrap_or_default().as_bytes());
    users_page(
        &d,
        &me,
        q.get("done").map(|m| m.chars().take(200).collect()),
        None,
    )
    .await
}

#[derive(serde::Deserialize)]
struct NewUserForm {
    #[serde(default)]
    name: String,
    role: Option<String>,
    #[serde(default)]
    password: String,
}

async fn add_user(
    State(d): State<Dashboard>,
    AdminAction(Posted { me, form, .. }): AdminAction<NewUserForm>,
) -> Result<Response, PageError> {
    let name = form.name.trim().to_owned();
    let role = if form.role.as_deref() == Some("admin") {
        Role::Admin
    } else {
        Role::Member
    };
    let password = form.password;
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

/// The user a change is about, and whether it is the admin making it.
async fn target_user(
    d: &Dashboard,
    me: &Current,
    id: &str,
) -> Result<(projector::record::UserRecord, bool), PageError> {
    let user = d
        .inner
        .projection
        .user(id)?
        .ok_or_else(|| PageError::NotFound(format!("There is no user {id}.")))?;
    let own = user.user_id == me.user.user_id;
    Ok((user, own))
}

async fn disable_user(
    State(d): State<Dashboard>,
    Path(id): Path<String>,
    AdminAction(Posted { me, .. }): AdminAction<NoFields>,
) -> Result<Response, PageError> {
    let (user, own) = target_user(&d, &me, &id).await?;
    if own {
        return Err(PageError::BadRequest("You cannot disable yourself.".into()));
    }
    d.change_user(&id, UserChange::Disable, &me).await?;
    Ok(done("/log/users/", &format!("Disabled {}.", user.name)))
}

async fn enable_user(
    State(d): State<Dashboard>,
    Path(id): Path<String>,
    AdminAction(Posted { me, .. }): AdminAction<NoFields>,
) -> Result<Response, PageError> {
    let (user, _) = target_user(&d, &me, &id).await?;
    d.change_user(&id, UserChange::Enable, &me).await?;
    Ok(done("/log/users/", &format!("Enabled {}.", user.name)))
}

#[derive(serde::Deserialize)]
struct RoleForm {
    role: Option<String>,
}

async fn set_role(
    State(d): State<Dashboard>,
    Path(id): Path<String>,
    AdminAction(Posted { me, form, .. }): AdminAction<RoleForm>,
) -> Result<Response, PageError> {
    let (user, own) = target_user(&d, &me, &id).await?;
    let role = match form.role.as_deref() {
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
    d.change_user(&id, UserChange::Role(role), &me).await?;
    Ok(done("/log/users/", &message))
}

#[derive(serde::Deserialize)]
struct NewPasswordForm {
    #[serde(default)]
    password: String,
}

async fn set_password(
    State(d): State<Dashboard>,
    Path(id): Path<String>,
    AdminAction(Posted { me, form, .. }): AdminAction<NewPasswordForm>,
) -> Result<Response, PageError> {
    let (user, _) = target_user(&d, &me, &id).await?;
    commands::check_password(&form.password)
        .map_err(|e| PageError::BadRequest(capitalized(&e.to_string())))?;
    let hash = hash(&d, &form.password).await?;
    d.change_user(&id, UserChange::Password { hash }, &me)
        .await?;
    Ok(done(
        "/log/users/",
        &format!(
            "Set a new password for {}; their sessions have ended.",
            user.name
        ),
    ))
}

impl Dashboard {
    /// A user's change, published after the user's last event, once the
    /// projection shows it (its callers are [`Action`]s: never read-only).
    async fn change_user(
        &self,
        user_id: &str,
        change: UserChange,
        me: &Current,
    ) -> Result<u64, PageError> {
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
    SignedIn(me): SignedIn,
) -> Result<Response, PageError> {
    render(&PasswordPage {
        ctx: Some(me.ctx(&d)),
        csrf: me.csrf(),
        error: None,
    })
}

#[derive(serde::Deserialize)]
struct ChangePasswordForm {
    #[serde(default)]
    current: String,
    #[serde(default)]
    password: String,
}

async fn change_password(
    State(d): State<Dashboard>,
    ClientIp(addr): ClientIp,
    Action(Posted { me, form, .. }): Action<ChangePasswordForm>,
) -> Result<Response, PageError> {
    let fail = |msg: &str| -> Result<Response, PageError> {
        let mut resp = render(&PasswordPage {
            ctx: Some(me.ctx(&d)),
            csrf: me.csrf(),
            error: Some(msg.into()),
        })?;
        *resp.status_mut() = StatusCode::BAD_REQUEST;
        Ok(resp)
    };
    match d.inner.auth.check(&me.user.name, &form.current, addr).await {
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
    if let Err(e) = commands::check_password(&form.password) {
        return fail(&capitalized(&e.to_string()));
    }
    let hash = hash(&d, &form.password).await?;
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
    SignedIn(me): SignedIn,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let raw = raw.unwrap_or_default();
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
    alerts: Vec<super::alerts::RuleRow>,
}

async fn health(
    State(d): State<Dashboard>,
    AdminOnly(me): AdminOnly,
) -> Result<Response, PageError> {
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
        alerts: super::alerts::rule_rows(&d)?,
    };
    render(&page)
}
