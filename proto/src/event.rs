//! The events on the `MINILOG` stream.
//!
//! Version story: events are MessagePack maps with field names
//! (`rmp_serde::to_vec_named`). A field added later carries
//! `#[serde(default)]`, so bytes written before it existed still decode;
//! names are never reused. An event this build does not know (a newer
//! variant) fails to decode, and the projector stops there instead of
//! skipping it (docs/architecture.md §2).

use crate::Level;
use crate::filter::Filter;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Who did it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Actor {
    /// A dashboard user, by name.
    User(String),
    /// A program holding a key, by key id.
    Key(String),
    /// Someone at the server's command line (`minilog key …`).
    Cli,
    /// minilog itself (first admin, retention).
    System,
}

impl Actor {
    pub fn label(&self) -> String {
        match self {
            Actor::User(name) => name.clone(),
            Actor::Key(id) => format!("key {id}"),
            Actor::Cli => "command line".to_owned(),
            Actor::System => "minilog".to_owned(),
        }
    }
}

/// Every event: who, when (server time of the publisher, Unix ms), what.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub at: i64,
    pub by: Actor,
    pub event: Event,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Event {
    Logged(Logged),
    Resolved(Triage),
    Unresolved(Triage),
    KeyCreated(KeyCreated),
    KeyRevoked(KeyRef),
    KeyRestored(KeyRef),
    KeyChanged(KeyChanged),
    /// A new DSN key for a key (`minilog key dsn ID`); the old one stops
    /// working.
    DsnIssued(DsnIssued),
    UserCreated(UserCreated),
    PasswordChanged(PasswordChanged),
    UserDisabled(UserRef),
    UserEnabled(UserRef),
    RoleChanged(RoleChanged),
    /// Retention: an old unresolved entry re-published so it survives the
    /// purge of the subjects below [`Pruned::upto_seq`].
    Carried(Carried),
    Pruned(Pruned),
    /// An operator passed over an event that cannot be decoded, so the
    /// projector can go on (`minilog events quarantine SEQ`).
    Quarantined(Quarantined),
    /// An alert rule (`minilog alert add`, the alerts page).
    AlertAdded(crate::alert::AlertAdded),
    AlertRemoved(crate::alert::AlertRef),
}

impl Event {
    pub fn name(&self) -> &'static str {
        match self {
            Event::Logged(_) => "logged",
            Event::Resolved(_) => "resolved",
            Event::Unresolved(_) => "unresolved",
            Event::KeyCreated(_) => "key_created",
            Event::KeyRevoked(_) => "key_revoked",
            Event::KeyRestored(_) => "key_restored",
            Event::KeyChanged(_) => "key_changed",
            Event::DsnIssued(_) => "dsn_issued",
            Event::UserCreated(_) => "user_created",
            Event::PasswordChanged(_) => "password_changed",
            Event::UserDisabled(_) => "user_disabled",
            Event::UserEnabled(_) => "user_enabled",
            Event::RoleChanged(_) => "role_changed",
            Event::Carried(_) => "carried",
            Event::Pruned(_) => "pruned",
            Event::Quarantined(_) => "quarantined",
            Event::AlertAdded(_) => "alert_added",
            Event::AlertRemoved(_) => "alert_removed",
        }
    }
}

/// One log entry arrived. Its id is this event's stream sequence.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Logged {
    /// `None` for entries added by hand on the dashboard.
    pub key_id: Option<String>,
    pub level: Level,
    pub message: String,
    #[serde(default)]
    pub source: Option<String>,
    /// The client's own time for the entry, Unix ms, if it sent one.
    #[serde(default)]
    pub time: Option<i64>,
    /// The submitter's address.
    #[serde(default)]
    pub ip: Option<String>,
    #[serde(default)]
    pub meta: BTreeMap<String, String>,
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// The dashboard user who added it by hand.
    #[serde(default)]
    pub added_by: Option<String>,
    /// Browser reports: any visitor can send one.
    #[serde(default)]
    pub untrusted: bool,
    /// The exception chain, when the sender reported one (a Sentry SDK's
    /// event, OTLP `exception.*` attributes, a Python traceback in the
    /// message). Not written when absent, so an entry without one encodes
    /// as it did before the field existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exception: Option<Vec<Exception>>,
}

/// One exception of a chain. A chain is listed outermost first: the one
/// raised last (whose type and value are the entry's message) at index 0,
/// then the one it was raised from or while handling, and so on.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exception {
    /// The exception's type (`ZeroDivisionError`, `TypeError`).
    #[serde(rename = "type")]
    pub ty: String,
    #[serde(default)]
    pub value: String,
    #[serde(default)]
    pub module: Option<String>,
    /// Oldest call first, as Sentry and Python list them: the frame that
    /// raised is the last.
    #[serde(default)]
    pub frames: Vec<Frame>,
}

/// One stack frame.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    #[serde(default)]
    pub filename: Option<String>,
    #[serde(default)]
    pub function: Option<String>,
    #[serde(default)]
    pub module: Option<String>,
    #[serde(default)]
    pub lineno: Option<u32>,
    #[serde(default)]
    pub colno: Option<u32>,
    /// The sender's own code, not a library's.
    #[serde(default)]
    pub in_app: Option<bool>,
    #[serde(default)]
    pub context_line: Option<String>,
    #[serde(default)]
    pub pre_context: Vec<String>,
    #[serde(default)]
    pub post_context: Vec<String>,
}

impl Logged {
    /// An entry with only a level and a message (no key, source, time,
    /// address, meta or fingerprint); set the rest with struct update
    /// syntax, `Logged { key_id: …, ..Logged::new(level, message) }`.
    pub fn new(level: Level, message: impl Into<String>) -> Logged {
        Logged {
            key_id: None,
            level,
            message: message.into(),
            source: None,
            time: None,
            ip: None,
            meta: BTreeMap::new(),
            fingerprint: None,
            added_by: None,
            untrusted: false,
            exception: None,
        }
    }
}

/// A resolve or an unresolve: of one entry, or of every entry a rule matches.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Triage {
    Entry(u64),
    Matching(Rule),
}

/// "Entries matching `filter` with id ≤ `upto`", read with `matcher`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub filter: Filter,
    pub upto: u64,
    pub matcher: u16,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyCreated {
    pub key_id: String,
    pub description: String,
    /// SHA-256 of the secret.
    #[serde(with = "serde_bytes32")]
    pub verifier: [u8; 32],
    /// SHA-256 of `minilog-browser-v1:` + secret: mints browser tokens only.
    #[serde(with = "serde_bytes32")]
    pub browser_key: [u8; 32],
    /// The secret's last four characters, for people to recognise a key.
    pub ending: String,
    #[serde(default)]
    pub origins: Vec<String>,
    /// Entries per minute; `None` uses the gateway's default.
    #[serde(default)]
    pub rate_limit: Option<u32>,
    /// SHA-256 of the key's DSN key (docs/api.md, "Sentry SDK protocol").
    /// Keys made before DSNs existed have none until `minilog key dsn`.
    #[serde(
        default,
        with = "serde_opt_bytes32",
        skip_serializing_if = "Option::is_none"
    )]
    pub dsn_verifier: Option<[u8; 32]>,
}

/// A key's new DSN key, by its SHA-256.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DsnIssued {
    pub key_id: String,
    #[serde(with = "serde_bytes32")]
    pub verifier: [u8; 32],
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRef {
    pub key_id: String,
}

/// A change to a key's settings; `None` fields stay as they were.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyChanged {
    pub key_id: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub origins: Option<Vec<String>>,
    /// `Some(None)` goes back to the gateway's default limit. (MessagePack
    /// writes it as nil, which a plain `Option<Option<_>>` would read back
    /// as `None`: a present nil is read as `Some(None)`, and `None` is
    /// not written at all.)
    #[serde(
        default,
        deserialize_with = "present_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub rate_limit: Option<Option<u32>>,
}

/// A field that is present (even as nil) is `Some`; a missing one takes
/// the `#[serde(default)]`, `None`.
fn present_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRef {
    pub user_id: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordChanged {
    pub user_id: String,
    /// argon2 PHC string.
    pub password_hash: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleChanged {
    pub user_id: String,
    pub role: Role,
}

/// An entry carried forward by retention: same id, times and state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Carried {
    /// The entry's id (the sequence of its original `Logged`).
    pub id: u64,
    /// When it was first received.
    pub received: i64,
    pub logged: Logged,
    /// The entry's resolves and unresolves so far, oldest first: a rebuild
    /// after the purge no longer has the `Logged` event those triage events
    /// acted on, so the carried entry brings its history along. Added after
    /// v1 (fixture `15-carried.v1`), hence the default.
    #[serde(default)]
    pub history: Vec<CarriedHistory>,
}

/// One resolve or unresolve of a carried entry, as it was applied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CarriedHistory {
    /// The sequence of the triage event.
    pub seq: u64,
    /// `true` for a resolve, `false` for an unresolve.
    pub resolved: bool,
    pub by: String,
    pub at: i64,
}

/// Everything on the `entry` subjects below `upto_seq` was purged, except
/// what was carried.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pruned {
    pub upto_seq: u64,
}

/// The event at `seq` cannot be decoded (damaged, or written by a newer
/// minilog) and is passed over by the projector and by every rebuild.
/// Only an event that fails to decode is ever passed over: naming a good
/// one changes nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quarantined {
    pub seq: u64,
    /// Why the operator did it, and what the decoder said.
    pub reason: String,
}

impl Quarantined {
    /// The quarantine in a raw event, if it is one (anything else, or
    /// bytes that do not decode, is `None`).
    pub fn from_payload(payload: &[u8]) -> Option<Quarantined> {
        match Envelope::decode(payload) {
            Ok(Envelope {
                event: Event::Quarantined(q),
                ..
            }) => Some(q),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Member,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserCreated {
    pub user_id: String,
    pub name: String,
    /// argon2 PHC string; empty for a user made at a first single sign-on,
    /// who signs in that way only.
    pub password_hash: String,
    pub role: Role,
    /// How a user made at a first single sign-on came in (`auth proxy`,
    /// `OIDC https://id.example.com`); `None` for users made by an admin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_in_with: Option<String>,
    /// The provider's own, stable id of that user (an OpenID Connect
    /// `sub`): later sign-ins under this name must carry the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot decode event: {0}")]
pub struct DecodeError(#[from] rmp_serde::decode::Error);

impl Envelope {
    pub fn now(by: Actor, event: Event) -> Envelope {
        Envelope {
            at: crate::clock::now_ms(),
            by,
            event,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        rmp_serde::to_vec_named(self).expect("events always encode")
    }

    pub fn decode(bytes: &[u8]) -> Result<Envelope, DecodeError> {
        Ok(rmp_serde::from_slice(bytes)?)
    }
}

/// An optional 32-byte digest: MessagePack binary, or absent.
mod serde_opt_bytes32 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<[u8; 32]>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => super::serde_bytes32::serialize(v, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<[u8; 32]>, D::Error> {
        #[derive(Deserialize)]
        struct Wrapped(#[serde(with = "super::serde_bytes32")] [u8; 32]);
        Ok(Option::<Wrapped>::deserialize(d)?.map(|w| w.0))
    }
}

/// 32-byte digests as MessagePack binary.
mod serde_bytes32 {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let v: serde_bytes_buf::Buf = Deserialize::deserialize(d)?;
        v.0.try_into()
            .map_err(|_| D::Error::custom("expected 32 bytes"))
    }

    mod serde_bytes_buf {
        use serde::de::{Deserialize, Deserializer, SeqAccess, Visitor};
        use std::fmt;

        pub struct Buf(pub Vec<u8>);

        impl<'de> Deserialize<'de> for Buf {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Buf, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = Buf;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str("bytes")
                    }
                    fn visit_bytes<E>(self, v: &[u8]) -> Result<Buf, E> {
                        Ok(Buf(v.to_vec()))
                    }
                    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Buf, A::Error> {
                        let mut out = Vec::new();
                        while let Some(b) = seq.next_element::<u8>()? {
                            out.push(b);
                        }
                        Ok(Buf(out))
                    }
                }
                d.deserialize_bytes(V)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logged() -> Logged {
        Logged {
            key_id: Some("k7f3a9".into()),
            level: Level::Warn,
            message: "disk almost full".into(),
            source: Some("db-1".into()),
            time: Some(1_800_000_000_000),
            ip: Some("203.0.113.7".into()),
            meta: BTreeMap::from([("mount".into(), "/var".into())]),
            fingerprint: Some("disk-full".into()),
            added_by: None,
            untrusted: false,
            exception: None,
        }
    }

    #[test]
    fn every_event_round_trips() {
        let with_exception = Logged {
            exception: Some(vec![Exception {
                ty: "KeyError".into(),
                value: "'sku'".into(),
                module: None,
                frames: vec![Frame {
                    filename: Some("shop/cart.py".into()),
                    function: Some("total".into()),
                    lineno: Some(42),
                    in_app: Some(true),
                    pre_context: vec!["def total(cart):".into()],
                    ..Frame::default()
                }],
            }]),
            ..logged()
        };
        let events = vec![
            Event::Logged(logged()),
            Event::Logged(with_exception),
            Event::DsnIssued(DsnIssued {
                key_id: "k1".into(),
                verifier: [3; 32],
            }),
            Event::Resolved(Triage::Entry(7)),
            Event::Unresolved(Triage::Matching(Rule {
                filter: Filter {
                    levels: vec![Level::Error],
                    keys: vec!["k1".into()],
                    q: Some("disk".into()),
                    group: None,
                },
                upto: 99,
                matcher: crate::filter::MATCHER_VERSION,
            })),
            Event::KeyCreated(KeyCreated {
                key_id: "k1".into(),
                description: "billing".into(),
                verifier: [1; 32],
                browser_key: [2; 32],
                ending: "2345".into(),
                origins: vec!["https://example.com".into()],
                rate_limit: Some(600),
                dsn_verifier: Some([4; 32]),
            }),
            Event::KeyRevoked(KeyRef {
                key_id: "k1".into(),
            }),
            Event::KeyChanged(KeyChanged {
                key_id: "k1".into(),
                description: None,
                origins: Some(vec![]),
                rate_limit: Some(None),
            }),
            Event::KeyChanged(KeyChanged {
                key_id: "k1".into(),
                description: Some("d".into()),
                origins: None,
                rate_limit: None,
            }),
            Event::KeyChanged(KeyChanged {
                key_id: "k1".into(),
                description: None,
                origins: None,
                rate_limit: Some(Some(60)),
            }),
            Event::KeyRestored(KeyRef {
                key_id: "k1".into(),
            }),
            Event::UserCreated(UserCreated {
                user_id: "alice".into(),
                name: "alice".into(),
                password_hash: "$argon2id$x".into(),
                role: Role::Admin,
                signed_in_with: None,
                subject: None,
            }),
        ];
        for event in events {
            let env = Envelope::now(Actor::User("alice".into()), event);
            assert_eq!(Envelope::decode(&env.encode()).unwrap(), env);
        }
    }

    /// The shape `Logged` had before `meta`, `fingerprint`, `added_by` and
    /// `untrusted` existed: bytes written by such a build must still decode.
    #[test]
    fn bytes_of_an_older_logged_shape_still_decode() {
        #[derive(Serialize)]
        struct OldLogged {
            key_id: Option<String>,
            level: Level,
            message: String,
        }
        #[derive(Serialize)]
        enum OldEvent {
            Logged(OldLogged),
        }
        #[derive(Serialize)]
        struct OldEnvelope {
            at: i64,
            by: Actor,
            event: OldEvent,
        }
        let old = OldEnvelope {
            at: 5,
            by: Actor::Key("k1".into()),
            event: OldEvent::Logged(OldLogged {
                key_id: Some("k1".into()),
                level: Level::Error,
                message: "boom".into(),
            }),
        };
        let bytes = rmp_serde::to_vec_named(&old).unwrap();
        let env = Envelope::decode(&bytes).unwrap();
        let Event::Logged(l) = env.event else {
            panic!("expected Logged")
        };
        assert_eq!(l.message, "boom");
        assert_eq!(l.fingerprint, None);
        assert!(l.meta.is_empty());
        assert!(!l.untrusted);
    }

    #[test]
    fn an_unknown_event_does_not_decode() {
        #[derive(Serialize)]
        enum FutureEvent {
            Teleported { to: String },
        }
        #[derive(Serialize)]
        struct FutureEnvelope {
            at: i64,
            by: Actor,
            event: FutureEvent,
        }
        let bytes = rmp_serde::to_vec_named(&FutureEnvelope {
            at: 1,
            by: Actor::System,
            event: FutureEvent::Teleported { to: "mars".into() },
        })
        .unwrap();
        assert!(Envelope::decode(&bytes).is_err());
        assert!(Envelope::decode(b"\xc1garbage").is_err());
    }
}
