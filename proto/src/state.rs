//! Keys and users as their events make them: the one fold of those events,
//! shared by the gateway's key registry, the projector and the command
//! line. A state starts at its creation event; [`KeyState::apply`] and
//! [`UserState::apply`] take every later event of it.

use crate::event::{Envelope, Event, KeyCreated, Role, UserCreated};
use serde::{Deserialize, Serialize};

/// A key: what it was created with, and what its later events changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyState {
    pub key_id: String,
    pub description: String,
    /// The secret's last four characters.
    pub ending: String,
    /// Browser origins allowed to report with it.
    pub origins: Vec<String>,
    /// Entries per minute; `None` uses the gateway's default.
    pub rate_limit: Option<u32>,
    /// False once revoked (until restored).
    pub active: bool,
    /// Unix ms of the creation event.
    pub created_at: i64,
    /// Who created it ([`crate::event::Actor::label`]).
    pub created_by: String,
}

impl KeyState {
    /// The state a `KeyCreated` event (in `env`) starts.
    pub fn created(env: &Envelope, k: &KeyCreated) -> KeyState {
        KeyState {
            key_id: k.key_id.clone(),
            description: k.description.clone(),
            ending: k.ending.clone(),
            origins: k.origins.clone(),
            rate_limit: k.rate_limit,
            active: true,
            created_at: env.at,
            created_by: env.by.label(),
        }
    }

    /// Applies a later event of this key; false if `event` is not one
    /// (another key's, or not a key event).
    pub fn apply(&mut self, event: &Event) -> bool {
        match event {
            Event::KeyRevoked(r) if r.key_id == self.key_id => self.active = false,
            Event::KeyRestored(r) if r.key_id == self.key_id => self.active = true,
            // Only the gateway's registry keeps the DSN key's verifier.
            Event::DsnIssued(d) if d.key_id == self.key_id => {}
            Event::KeyChanged(c) if c.key_id == self.key_id => {
                if let Some(d) = &c.description {
                    self.description.clone_from(d);
                }
                if let Some(o) = &c.origins {
                    self.origins.clone_from(o);
                }
                if let Some(r) = c.rate_limit {
                    self.rate_limit = r;
                }
            }
            _ => return false,
        }
        true
    }
}

/// The key id an event of a key names, whatever the event.
pub fn key_of(event: &Event) -> Option<&str> {
    match event {
        Event::KeyCreated(k) => Some(&k.key_id),
        Event::KeyRevoked(r) | Event::KeyRestored(r) => Some(&r.key_id),
        Event::KeyChanged(c) => Some(&c.key_id),
        Event::DsnIssued(d) => Some(&d.key_id),
        _ => None,
    }
}

/// A dashboard user.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserState {
    pub user_id: String,
    pub name: String,
    /// argon2 PHC string.
    pub password_hash: String,
    pub role: Role,
    pub created_at: i64,
    pub disabled: bool,
    /// Changes with the password, the role, or disabling: sessions signed
    /// with an older epoch are no longer valid.
    #[serde(default)]
    pub epoch: u64,
    /// How a user made at a first single sign-on came in ([`UserCreated`]).
    #[serde(default)]
    pub signed_in_with: Option<String>,
    /// The provider's id of that user ([`UserCreated::subject`]).
    #[serde(default)]
    pub subject: Option<String>,
}

impl UserState {
    /// The state a `UserCreated` event (in `env`) starts.
    pub fn created(env: &Envelope, u: &UserCreated) -> UserState {
        UserState {
            user_id: u.user_id.clone(),
            name: u.name.clone(),
            password_hash: u.password_hash.clone(),
            role: u.role.clone(),
            created_at: env.at,
            disabled: false,
            epoch: 0,
            signed_in_with: u.signed_in_with.clone(),
            subject: u.subject.clone(),
        }
    }

    /// Applies a later event of this user; false if `event` is not one.
    pub fn apply(&mut self, event: &Event) -> bool {
        match event {
            Event::PasswordChanged(p) if p.user_id == self.user_id => {
                self.password_hash.clone_from(&p.password_hash);
                self.epoch += 1;
            }
            Event::UserDisabled(r) if r.user_id == self.user_id => {
                self.disabled = true;
                self.epoch += 1;
            }
            Event::UserEnabled(r) if r.user_id == self.user_id => self.disabled = false,
            Event::RoleChanged(r) if r.user_id == self.user_id => {
                self.role = r.role.clone();
                self.epoch += 1;
            }
            _ => return false,
        }
        true
    }
}

/// The user id an event of a user names, whatever the event.
pub fn user_of(event: &Event) -> Option<&str> {
    match event {
        Event::UserCreated(u) => Some(&u.user_id),
        Event::PasswordChanged(p) => Some(&p.user_id),
        Event::UserDisabled(r) | Event::UserEnabled(r) => Some(&r.user_id),
        Event::RoleChanged(r) => Some(&r.user_id),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Actor, KeyChanged, KeyRef, RoleChanged, UserRef};

    fn created() -> (Envelope, KeyCreated) {
        let k = KeyCreated {
            key_id: "k1".into(),
            description: "shop".into(),
            verifier: [1; 32],
            browser_key: [2; 32],
            ending: "abcd".into(),
            origins: vec![],
            rate_limit: Some(10),
            dsn_verifier: None,
        };
        (Envelope::now(Actor::Cli, Event::KeyCreated(k.clone())), k)
    }

    #[test]
    fn a_key_change_changes_what_it_names_and_keeps_the_rest() {
        let (env, k) = created();
        let mut key = KeyState::created(&env, &k);
        assert!(key.apply(&Event::KeyChanged(KeyChanged {
            key_id: "k1".into(),
            description: None,
            origins: Some(vec!["https://a.example".into()]),
            rate_limit: Some(None),
        })));
        assert_eq!(key.description, "shop");
        assert_eq!(key.origins, ["https://a.example"]);
        assert_eq!(key.rate_limit, None);
        assert!(key.apply(&Event::KeyRevoked(KeyRef {
            key_id: "k1".into()
        })));
        assert!(!key.active);
        // Another key's event is not this key's.
        assert!(!key.apply(&Event::KeyRestored(KeyRef {
            key_id: "k2".into()
        })));
        assert!(!key.active);
        assert_eq!(key.created_by, "command line");
    }

    #[test]
    fn disabling_and_role_changes_end_sessions_enabling_does_not() {
        let u = UserCreated {
            user_id: "ann".into(),
            name: "Ann".into(),
            password_hash: "h".into(),
            role: Role::Member,
            signed_in_with: None,
            subject: None,
        };
        let env = Envelope::now(Actor::Cli, Event::UserCreated(u.clone()));
        let mut user = UserState::created(&env, &u);
        let r = UserRef {
            user_id: "ann".into(),
        };
        assert!(user.apply(&Event::UserDisabled(r.clone())));
        assert!(user.apply(&Event::UserEnabled(r)));
        assert!(user.apply(&Event::RoleChanged(RoleChanged {
            user_id: "ann".into(),
            role: Role::Admin,
        })));
        assert_eq!(
            (user.disabled, user.epoch, user.role),
            (false, 2, Role::Admin)
        );
    }
}
