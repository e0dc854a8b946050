//! The administrative events, published the one way every caller (the
//! command line, the dashboard, tests) needs: keys and users are created
//! once (the stream refuses a second creation of the same id) and changed
//! only after their last event (optimistic concurrency on the subject).

use crate::bus::{Bus, PublishError};
use crate::event::{
    Actor, DsnIssued, Envelope, Event, KeyChanged, KeyCreated, KeyRef, PasswordChanged,
    Quarantined, Role, RoleChanged, UserCreated, UserRef,
};
use crate::ids::{self, KeyId};
use crate::secret::{self, DsnKey, KeySecret};

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0} already exists")]
    Exists(String),
    #[error("no such {0}")]
    NotFound(String),
    #[error("{0} changed meanwhile; try again")]
    Raced(String),
    #[error(transparent)]
    Publish(PublishError),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// A key that was just created; the secret is shown once, then forgotten.
#[derive(Debug)]
pub struct NewKey {
    pub id: KeyId,
    pub secret: KeySecret,
    /// What the Sentry SDKs present (in the key's DSN), also shown once.
    pub dsn_key: DsnKey,
    pub seq: u64,
}

#[derive(Clone, Debug, Default)]
pub struct KeySpec {
    pub description: String,
    /// Keep an existing secret (so an old installation's clients work).
    pub secret: Option<KeySecret>,
    pub origins: Vec<String>,
    pub rate_limit: Option<u32>,
}

impl KeySpec {
    /// A key with this description, a new secret, no browser origins and
    /// the gateway's default rate limit.
    pub fn described(description: &str) -> KeySpec {
        KeySpec {
            description: description.to_owned(),
            ..KeySpec::default()
        }
    }
}

pub async fn create_key(bus: &Bus, spec: KeySpec, by: Actor) -> Result<NewKey, CommandError> {
    let description = spec.description.trim().to_owned();
    if description.chars().count() < 3 {
        return Err(CommandError::Invalid(
            "a key's description must be at least 3 characters".into(),
        ));
    }
    let origins = normalize_origins(&spec.origins)?;
    let secret = spec.secret.unwrap_or_else(KeySecret::generate);
    let dsn_key = DsnKey::generate();
    // A random id can clash with an existing one; the stream refuses the
    // clash, and a fresh id is tried.
    for _ in 0..5 {
        let id = KeyId::generate();
        let event = Event::KeyCreated(KeyCreated {
            key_id: id.to_string(),
            description: description.clone(),
            verifier: secret.verifier().0,
            browser_key: secret.browser_key(),
            ending: secret.ending(),
            origins: origins.clone(),
            rate_limit: spec.rate_limit,
            dsn_verifier: Some(dsn_key.verifier().0),
        });
        let env = Envelope::now(by.clone(), event);
        match bus.publish_new(bus.subjects().key(id.as_str()), &env).await {
            Ok(stored) => {
                return Ok(NewKey {
                    id,
                    secret,
                    dsn_key,
                    seq: stored.seq,
                });
            }
            Err(PublishError::Conflict) => continue,
            Err(e) => return Err(CommandError::Publish(e)),
        }
    }
    Err(CommandError::Invalid("could not find a free key id".into()))
}

/// Revokes (`active = false`) or restores a key; returns the event's sequence.
pub async fn set_key_active(
    bus: &Bus,
    key_id: &str,
    active: bool,
    by: Actor,
) -> Result<u64, CommandError> {
    let id = KeyId::parse(key_id).map_err(|e| CommandError::Invalid(e.to_string()))?;
    let subject = bus.subjects().key(id.as_str());
    let Some((last, _)) = bus.last_on_subject(&subject).await? else {
        return Err(CommandError::NotFound(format!("key {id}")));
    };
    let r = KeyRef {
        key_id: id.to_string(),
    };
    let event = if active {
        Event::KeyRestored(r)
    } else {
        Event::KeyRevoked(r)
    };
    match bus
        .publish_after(subject, &Envelope::now(by, event), last)
        .await
    {
        Ok(stored) => Ok(stored.seq),
        Err(PublishError::Conflict) => Err(CommandError::Raced(format!("key {id}"))),
        Err(e) => Err(CommandError::Publish(e)),
    }
}

/// Gives a key a new DSN key, after the key's last event; the old one
/// stops working once the gateway has applied it. Returns the new DSN key
/// (shown once) and the event's sequence.
pub async fn issue_dsn(bus: &Bus, key_id: &str, by: Actor) -> Result<(DsnKey, u64), CommandError> {
    let id = KeyId::parse(key_id).map_err(|e| CommandError::Invalid(e.to_string()))?;
    let subject = bus.subjects().key(id.as_str());
    let Some((last, _)) = bus.last_on_subject(&subject).await? else {
        return Err(CommandError::NotFound(format!("key {id}")));
    };
    let dsn_key = DsnKey::generate();
    let event = Event::DsnIssued(DsnIssued {
        key_id: id.to_string(),
        verifier: dsn_key.verifier().0,
    });
    match bus
        .publish_after(subject, &Envelope::now(by, event), last)
        .await
    {
        Ok(stored) => Ok((dsn_key, stored.seq)),
        Err(PublishError::Conflict) => Err(CommandError::Raced(format!("key {id}"))),
        Err(e) => Err(CommandError::Publish(e)),
    }
}

/// What `change_key` changes; `None` leaves a setting as it is.
#[derive(Clone, Debug, Default)]
pub struct KeyChanges {
    /// The allowed browser origins (an empty list allows none).
    pub origins: Option<Vec<String>>,
    /// Entries per minute; `Some(None)` goes back to the gateway's default.
    pub rate_limit: Option<Option<u32>>,
}

/// A rate limit as people write it: entries per minute, or empty or
/// `default` for the gateway's default (`None`).
pub fn rate_limit_setting(text: &str) -> Result<Option<u32>, CommandError> {
    match text.trim() {
        "" | "default" => Ok(None),
        n => n
            .parse::<u32>()
            .ok()
            .filter(|n| *n > 0)
            .map(Some)
            .ok_or_else(|| {
                CommandError::Invalid(format!(
                    "a rate limit is a whole number of entries per minute, or `default`; not {n:?}"
                ))
            }),
    }
}

/// Publishes `KeyChanged` after the key's last event; returns its sequence.
pub async fn change_key(
    bus: &Bus,
    key_id: &str,
    changes: KeyChanges,
    by: Actor,
) -> Result<u64, CommandError> {
    let id = KeyId::parse(key_id).map_err(|e| CommandError::Invalid(e.to_string()))?;
    let origins = changes
        .origins
        .as_deref()
        .map(normalize_origins)
        .transpose()?;
    if changes.rate_limit == Some(Some(0)) {
        return Err(CommandError::Invalid(
            "a rate limit is at least 1 entry per minute".into(),
        ));
    }
    let subject = bus.subjects().key(id.as_str());
    let Some((last, _)) = bus.last_on_subject(&subject).await? else {
        return Err(CommandError::NotFound(format!("key {id}")));
    };
    let event = Event::KeyChanged(KeyChanged {
        key_id: id.to_string(),
        description: None,
        origins,
        rate_limit: changes.rate_limit,
    });
    match bus
        .publish_after(subject, &Envelope::now(by, event), last)
        .await
    {
        Ok(stored) => Ok(stored.seq),
        Err(PublishError::Conflict) => Err(CommandError::Raced(format!("key {id}"))),
        Err(e) => Err(CommandError::Publish(e)),
    }
}

/// A browser origin as browsers send it in `Origin`: `scheme://host` or
/// `scheme://host:port`, lower case, no path. A trailing `/` is dropped.
pub fn normalize_origin(text: &str) -> Option<String> {
    let text = text.trim().trim_end_matches('/').to_ascii_lowercase();
    let rest = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))?;
    let ok = !rest.is_empty()
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
    ok.then_some(text)
}

fn normalize_origins(origins: &[String]) -> Result<Vec<String>, CommandError> {
    let mut out: Vec<String> = Vec::new();
    for o in origins.iter().filter(|o| !o.trim().is_empty()) {
        let n = normalize_origin(o).ok_or_else(|| {
            CommandError::Invalid(format!(
                "{o:?} is not an origin: give scheme and host, like https://shop.example.com \
                 or http://127.0.0.1:8080"
            ))
        })?;
        if !out.contains(&n) {
            out.push(n);
        }
    }
    Ok(out)
}

pub async fn create_user(
    bus: &Bus,
    name: &str,
    password: &str,
    role: Role,
    by: Actor,
) -> Result<u64, CommandError> {
    let user_id = ids::user_id(name).map_err(|e| CommandError::Invalid(e.to_string()))?;
    check_password(password)?;
    let event = Event::UserCreated(UserCreated {
        user_id: user_id.clone(),
        name: name.trim().to_owned(),
        password_hash: secret::hash_password(password),
        role,
        signed_in_with: None,
        subject: None,
    });
    match bus
        .publish_new(bus.subjects().user(&user_id), &Envelope::now(by, event))
        .await
    {
        Ok(stored) => Ok(stored.seq),
        Err(PublishError::Conflict) => Err(CommandError::Exists(format!("user {}", name.trim()))),
        Err(e) => Err(CommandError::Publish(e)),
    }
}

/// Creates the user a single sign-on vouched for, at their first sign-in:
/// no password (the password form treats them as unknown), `via`
/// saying how they came (`auth proxy`, `OIDC <issuer>`), `subject` the
/// provider's own id of them where it gives one. `Exists` when another
/// request created them meanwhile.
pub async fn create_signed_in_user(
    bus: &Bus,
    name: &str,
    role: Role,
    via: &str,
    subject: Option<&str>,
) -> Result<u64, CommandError> {
    let user_id = ids::user_id(name).map_err(|e| CommandError::Invalid(e.to_string()))?;
    let event = Event::UserCreated(UserCreated {
        user_id: user_id.clone(),
        name: name.trim().to_owned(),
        password_hash: String::new(),
        role,
        signed_in_with: Some(via.to_owned()),
        subject: subject.map(str::to_owned),
    });
    let env = Envelope::now(Actor::User(name.trim().to_owned()), event);
    match bus.publish_new(bus.subjects().user(&user_id), &env).await {
        Ok(stored) => Ok(stored.seq),
        Err(PublishError::Conflict) => Err(CommandError::Exists(format!("user {}", name.trim()))),
        Err(e) => Err(CommandError::Publish(e)),
    }
}

/// The one rule for a new password, wherever it is set.
pub fn check_password(password: &str) -> Result<(), CommandError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(CommandError::Invalid(format!(
            "a password must be at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    Ok(())
}

pub const MIN_PASSWORD_CHARS: usize = 8;

/// A change to an existing user.
#[derive(Clone, Debug)]
pub enum UserChange {
    Disable,
    Enable,
    Role(Role),
    /// The new password's hash (hashed by the caller, which may keep a
    /// pool for it); its rule is [`check_password`].
    Password {
        hash: String,
    },
}

/// Publishes a user's change after the user's last event; returns its
/// sequence.
pub async fn change_user(
    bus: &Bus,
    user_id: &str,
    change: UserChange,
    by: Actor,
) -> Result<u64, CommandError> {
    let subject = bus.subjects().user(user_id);
    let Some((last, _)) = bus.last_on_subject(&subject).await? else {
        return Err(CommandError::NotFound(format!("user {user_id}")));
    };
    let user_id = user_id.to_owned();
    let event = match change {
        UserChange::Disable => Event::UserDisabled(UserRef { user_id }),
        UserChange::Enable => Event::UserEnabled(UserRef { user_id }),
        UserChange::Role(role) => Event::RoleChanged(RoleChanged { user_id, role }),
        UserChange::Password { hash } => Event::PasswordChanged(PasswordChanged {
            user_id,
            password_hash: hash,
        }),
    };
    match bus
        .publish_after(subject, &Envelope::now(by, event), last)
        .await
    {
        Ok(stored) => Ok(stored.seq),
        Err(PublishError::Conflict) => Err(CommandError::Raced("the user".into())),
        Err(e) => Err(CommandError::Publish(e)),
    }
}

/// Lets the projector (and every rebuild) pass over the event at `seq`,
/// which must exist and fail to decode: a good event is never passed over.
/// Publishing twice is harmless (one message id per sequence).
pub async fn quarantine(bus: &Bus, seq: u64, reason: &str, by: Actor) -> Result<u64, CommandError> {
    let Some(ev) = bus.event_at(seq).await? else {
        return Err(CommandError::NotFound(format!("event {seq} in the stream")));
    };
    let error = match Envelope::decode(&ev.payload) {
        Ok(env) => {
            return Err(CommandError::Invalid(format!(
                "event {seq} ({}) decodes fine; only an event that cannot be decoded is \
                 quarantined",
                env.event.name()
            )));
        }
        Err(e) => e.to_string(),
    };
    let reason = match reason.trim() {
        "" => format!("cannot be decoded: {error}"),
        given => format!("{given} (cannot be decoded: {error})"),
    };
    let event = Event::Quarantined(Quarantined { seq, reason });
    let stored = bus
        .publish(
            bus.subjects().quarantine(),
            &Envelope::now(by, event),
            &format!("quarantine-{seq}"),
        )
        .await
        .map_err(CommandError::Publish)?;
    Ok(stored.seq)
}

/// What `minilog alert add` and the alerts page are given: a rule with
/// its target in plain text, sealed here.
#[derive(Clone, Debug)]
pub struct AlertSpec {
    pub rule: crate::alert::AlertRule,
    pub target: TargetSpec,
}

#[derive(Clone, Debug)]
pub enum TargetSpec {
    Webhook {
        format: crate::alert::WebhookFormat,
        url: String,
    },
    Email {
        to: Vec<String>,
    },
}

/// A webhook URL as lists show it: scheme, host and port, parsed as an
/// HTTP client reads it (so no secret path or user slips into it).
pub fn shown_url(url: &str) -> String {
    match url::Url::parse(url.trim()) {
        Ok(u) => {
            let host = u.host_str().unwrap_or("");
            match u.port() {
                Some(p) => format!("{}://{host}:{p}/…", u.scheme()),
                None => format!("{}://{host}/…", u.scheme()),
            }
        }
        Err(_) => "(not a URL)".into(),
    }
}

/// The longest quiet period: the alerts bucket remembers two days.
pub const MAX_MIN_INTERVAL_S: u64 = 48 * 3600;

/// Checks a rule and its target; the reason says what to fix.
pub fn check_alert(spec: &AlertSpec) -> Result<(), CommandError> {
    let bad = |m: String| Err(CommandError::Invalid(m));
    if spec.rule.on.is_empty() {
        return bad("say when it fires: --on new, regression or every".into());
    }
    if spec.rule.min_interval_s > MAX_MIN_INTERVAL_S {
        return bad(format!(
            "the quiet period can be at most {MAX_MIN_INTERVAL_S} s (two days)"
        ));
    }
    if spec.rule.cap_per_hour == 0 {
        return bad("the cap per hour must be at least 1".into());
    }
    match &spec.target {
        TargetSpec::Webhook { url, .. } => {
            let parsed = url::Url::parse(url.trim()).ok();
            let ok = url.len() <= 2048
                && parsed.as_ref().is_some_and(|u| {
                    matches!(u.scheme(), "http" | "https")
                        && u.host_str().is_some_and(|h| !h.is_empty())
                });
            if !ok {
                return bad(format!(
                    "the webhook must be an http:// or https:// URL with a host, not {}",
                    shown_url(url)
                ));
            }
        }
        TargetSpec::Email { to } => {
            if to.is_empty() {
                return bad("give at least one address to email".into());
            }
            if let Some(a) = to
                .iter()
                .find(|a| !email_address::EmailAddress::is_valid(a.trim()))
            {
                return bad(format!("{a:?} is not an email address"));
            }
        }
    }
    Ok(())
}

/// Adds an alert rule: its webhook URL sealed with `seal` under the new
/// rule's id. Returns the id and the event's sequence.
pub async fn add_alert(
    bus: &Bus,
    seal: &crate::seal::SealKey,
    spec: AlertSpec,
    by: Actor,
) -> Result<(String, u64), CommandError> {
    check_alert(&spec)?;
    let alert_id = format!("al{:08x}", rand::random::<u32>());
    let target = match spec.target {
        TargetSpec::Webhook { format, url } => crate::alert::Target::Webhook {
            format,
            shown: shown_url(&url),
            sealed_url: seal.seal(&alert_id, &url),
        },
        TargetSpec::Email { to } => crate::alert::Target::Email {
            to: to.iter().map(|a| a.trim().to_owned()).collect(),
        },
    };
    let event = Event::AlertAdded(crate::alert::AlertAdded {
        alert_id: alert_id.clone(),
        rule: crate::alert::AlertRule {
            target,
            ..spec.rule
        },
    });
    match bus
        .publish_new(bus.subjects().alert(&alert_id), &Envelope::now(by, event))
        .await
    {
        Ok(stored) => Ok((alert_id, stored.seq)),
        Err(PublishError::Conflict) => Err(CommandError::Exists(format!("alert {alert_id}"))),
        Err(e) => Err(CommandError::Publish(e)),
    }
}

/// Removes an alert rule; returns the event's sequence.
pub async fn remove_alert(bus: &Bus, alert_id: &str, by: Actor) -> Result<u64, CommandError> {
    if alert_id.is_empty() || !alert_id.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(CommandError::NotFound(format!("alert {alert_id:?}")));
    }
    let subject = bus.subjects().alert(alert_id);
    let live = match bus.last_on_subject(&subject).await? {
        Some((last, payload)) => match Envelope::decode(&payload) {
            Ok(env) if matches!(env.event, Event::AlertAdded(_)) => Some(last),
            _ => None,
        },
        None => None,
    };
    let Some(last) = live else {
        return Err(CommandError::NotFound(format!("alert {alert_id}")));
    };
    let event = Event::AlertRemoved(crate::alert::AlertRef {
        alert_id: alert_id.to_owned(),
    });
    match bus
        .publish_after(subject, &Envelope::now(by, event), last)
        .await
    {
        Ok(stored) => Ok(stored.seq),
        Err(PublishError::Conflict) => Err(CommandError::Raced(format!("alert {alert_id}"))),
        Err(e) => Err(CommandError::Publish(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_urls_are_shown_without_their_secret_path() {
        assert_eq!(
            shown_url("https://hooks.slack.com/services/T0/B0/SECRET"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(
            shown_url("http://user:pw@127.0.0.1:9000/hook?t=1"),
            "http://127.0.0.1:9000/…"
        );
        // Read as an HTTP client reads it: backslashes are slashes.
        assert_eq!(
            shown_url("https://hooks.slack.com\\services\\T\\B\\SECRET"),
            "https://hooks.slack.com/…"
        );
    }

    #[test]
    fn origins_are_normalized_like_browsers_send_them() {
        assert_eq!(
            normalize_origin(" https://Shop.Example.com/ ").as_deref(),
            Some("https://shop.example.com")
        );
        assert_eq!(
            normalize_origin("http://127.0.0.1:8080").as_deref(),
            Some("http://127.0.0.1:8080")
        );
        for bad in [
            "shop.example.com",
            "https://",
            "https://a.com/path",
            "*",
            "ftp://a",
        ] {
            assert_eq!(normalize_origin(bad), None, "{bad}");
        }
    }
}
