//! The key registry: every key in memory, fed by an ordered consumer on
//! `minilog.events.key.>` (docs/architecture.md §5). A revoke takes effect as soon as
//! its event is applied here, which is within the delivery of one message.
//!
//! Undecodable key events: the projector stops at an event it cannot read
//! (docs/architecture.md §2), but the registry keeps going, because stopping would
//! freeze every later revocation too. It fails closed instead: the event's
//! subject names the key, and that key is refused until a later event of
//! the same key that this build can read says what it is. The error is
//! logged; an operator who sees it has a gateway older than the stream.

use proto::bus::{Bus, EventReader, RawEvent};
use proto::event::{Envelope, Event};
use proto::secret::{Verifier, verifier_of};
use proto::state::{KeyState, key_of};
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use tokio::sync::watch;

use crate::retry::{backoff, open_until};

/// What the registry knows of one key: its state, and what checks a
/// secret and a browser token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyInfo {
    pub state: KeyState,
    pub verifier: Verifier,
    pub browser_key: [u8; 32],
    /// What checks the key's DSN key (Sentry SDKs), if it has one.
    pub dsn: Option<Verifier>,
}

/// The answer to "who holds this secret?".
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    Active(String),
    Revoked,
    Unknown,
}

#[derive(Default)]
struct State {
    keys: HashMap<String, KeyInfo>,
    /// Key ids by verifier, in creation order: `key create --secret` can
    /// give two keys the same secret, and then the first active one wins.
    by_verifier: HashMap<[u8; 32], Vec<String>>,
    /// Key ids by the verifier of their current DSN key (each is random,
    /// so one key per DSN key).
    by_dsn: HashMap<[u8; 32], String>,
}

pub struct Registry {
    // A std lock: lookups and updates are map operations, never held
    // across an await.
    state: RwLock<State>,
    loaded: AtomicBool,
    seq: watch::Sender<u64>,
    /// Subject prefix of key events, to name the key of an unreadable one.
    key_subject_prefix: String,
}

impl Registry {
    pub(crate) fn new(subjects: &proto::subjects::Subjects) -> Registry {
        let prefix = subjects.key("");
        Registry {
            state: RwLock::default(),
            loaded: AtomicBool::new(false),
            seq: watch::Sender::new(0),
            key_subject_prefix: prefix,
        }
    }

    /// Finds the key of a presented secret (any bytes).
    pub fn lookup(&self, presented: &[u8]) -> Lookup {
        let presented = verifier_of(presented);
        let state = self.read();
        let mut revoked = false;
        for id in state.by_verifier.get(&presented.0).into_iter().flatten() {
            let Some(key) = state.keys.get(id) else {
                continue;
            };
            // The map lookup found it by hash; the decision is made by the
            // constant-time comparison.
            if key.verifier.matches(&presented) {
                if key.state.active {
                    return Lookup::Active(key.state.key_id.clone());
                }
                revoked = true;
            }
        }
        if revoked {
            Lookup::Revoked
        } else {
            Lookup::Unknown
        }
    }

    /// Finds the key of a presented DSN key (a Sentry SDK's `sentry_key`).
    pub fn lookup_dsn(&self, presented: &[u8]) -> Lookup {
        let presented = verifier_of(presented);
        let state = self.read();
        let Some(key) = state
            .by_dsn
            .get(&presented.0)
            .and_then(|id| state.keys.get(id))
        else {
            return Lookup::Unknown;
        };
        match key.dsn {
            Some(dsn) if dsn.matches(&presented) && key.state.active => {
                Lookup::Active(key.state.key_id.clone())
            }
            Some(dsn) if dsn.matches(&presented) => Lookup::Revoked,
            _ => Lookup::Unknown,
        }
    }

    /// Whether some active key allows browser reports from `origin`
    /// (normalized): what a CORS preflight, which carries no token, can
    /// be answered with.
    pub fn origin_allowed_anywhere(&self, origin: &str) -> bool {
        self.read()
            .keys
            .values()
            .any(|k| k.state.active && k.state.origins.iter().any(|o| o == origin))
    }

    /// A key's own rate limit, if it has one (without cloning the key).
    pub fn rate_limit(&self, key_id: &str) -> Option<u32> {
        self.read()
            .keys
            .get(key_id)
            .and_then(|k| k.state.rate_limit)
    }

    pub fn get(&self, key_id: &str) -> Option<KeyInfo> {
        self.read().keys.get(key_id).cloned()
    }

    /// Whether the registry has caught up with the stream once.
    pub fn loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    pub fn seq(&self) -> watch::Receiver<u64> {
        self.seq.subscribe()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn mark_loaded(&self) {
        if !self.loaded.swap(true, Ordering::AcqRel) {
            tracing::info!(keys = self.read().keys.len(), "key registry loaded");
        }
    }

    /// Applies one event read from `minilog.events.key.>`.
    pub(crate) fn apply(&self, raw: &RawEvent) {
        match Envelope::decode(&raw.payload) {
            Ok(env) => self.apply_event(env),
            Err(e) => {
                let key_id = raw.subject.strip_prefix(&self.key_subject_prefix);
                tracing::error!(
                    seq = raw.seq,
                    subject = %raw.subject,
                    error = %e,
                    "cannot read a key event (is this gateway older than the stream?); \
                     refusing that key until a readable event of it arrives"
                );
                if let Some(id) = key_id
                    && let Some(key) = self.write().keys.get_mut(id)
                {
                    key.state.active = false;
                }
            }
        }
        // Published even for events that changed nothing, so a waiter on
        // "the registry has seen seq N" is released.
        self.seq.send_replace(raw.seq);
        if raw.pending == 0 {
            self.mark_loaded();
        }
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn apply_event(&self, env: Envelope) {
        let mut state = self.write();
        match &env.event {
            Event::KeyCreated(k) => {
                let ids = state.by_verifier.entry(k.verifier).or_default();
                if !ids.contains(&k.key_id) {
                    ids.push(k.key_id.clone());
                }
                if let Some(dsn) = k.dsn_verifier {
                    state.by_dsn.insert(dsn, k.key_id.clone());
                }
                let info = KeyInfo {
                    state: KeyState::created(&env, k),
                    verifier: Verifier(k.verifier),
                    browser_key: k.browser_key,
                    dsn: k.dsn_verifier.map(Verifier),
                };
                state.keys.insert(k.key_id.clone(), info);
            }
            Event::DsnIssued(d) => {
                let state = &mut *state;
                let Some(key) = state.keys.get_mut(&d.key_id) else {
                    tracing::warn!(key_id = %d.key_id, "DSN for a key that was never created");
                    return;
                };
                if let Some(old) = key.dsn.replace(Verifier(d.verifier)) {
                    state.by_dsn.remove(&old.0);
                }
                state.by_dsn.insert(d.verifier, d.key_id.clone());
            }
            event => {
                // Only key events are read; anything else is not ours.
                let Some(id) = key_of(event) else { return };
                match state.keys.get_mut(id) {
                    Some(key) => {
                        key.state.apply(event);
                    }
                    None => {
                        tracing::warn!(key_id = %id, "key event for a key that was never created")
                    }
                }
            }
        }
    }
}

/// Follows the key events until `shutdown`. `connections` is taken before
/// `reader` was opened, so no reconnection falls between the two.
pub(crate) async fn follow(
    registry: Arc<Registry>,
    bus: Bus,
    reader: EventReader,
    mut connections: watch::Receiver<u64>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    tokio::pin!(shutdown);
    let mut reader = Some(reader);
    let mut failures: u32 = 0;
    loop {
        let Some(current) = reader.as_mut() else {
            // A fresh reader from the next unseen event: after a reconnect
            // the old one would only notice after missing heartbeats
            // (about 15 s), and revocations would wait that long.
            connections.mark_unchanged();
            let start = *registry.seq.borrow() + 1;
            let keys = bus.subjects().all_keys();
            let Some(r) = open_until("reopening the key event reader", &mut shutdown, || {
                bus.read_from(start, Some(keys.clone()))
            })
            .await
            else {
                return;
            };
            if r.pending_at_start == 0 {
                registry.mark_loaded();
            }
            reader = Some(r);
            failures = 0;
            continue;
        };
        tokio::select! {
            biased;
            () = &mut shutdown => return,
            Ok(()) = connections.changed() => reader = None,
            next = current.next() => match next {
                Some(Ok(raw)) => {
                    failures = 0;
                    registry.apply(&raw);
                }
                Some(Err(e)) => {
                    failures += 1;
                    // One line per outage, not one per retry.
                    if failures == 1 {
                        tracing::warn!(error = %format!("{e:#}"), "reading key events");
                    }
                    if backoff(failures, &mut shutdown).await {
                        return;
                    }
                }
                None => reader = None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::event::{Actor, KeyCreated, KeyRef};
    use proto::secret::KeySecret;
    use proto::subjects::Subjects;

    fn raw(seq: u64, pending: u64, subject: String, event: Event) -> RawEvent {
        RawEvent {
            seq,
            pending,
            subject,
            payload: Envelope::now(Actor::Cli, event).encode().into(),
        }
    }

    fn created(id: &str, secret: &KeySecret) -> Event {
        Event::KeyCreated(KeyCreated {
            key_id: id.into(),
            description: "test key".into(),
            verifier: secret.verifier().0,
            browser_key: secret.browser_key(),
            ending: secret.ending(),
            origins: vec![],
            rate_limit: None,
            dsn_verifier: Some(dsn_of(id).verifier().0),
        })
    }

    /// A DSN key per test key id, so tests can present it.
    fn dsn_of(id: &str) -> proto::secret::DsnKey {
        use std::sync::{Mutex, OnceLock};
        static KEYS: OnceLock<Mutex<HashMap<String, proto::secret::DsnKey>>> = OnceLock::new();
        let mut keys = KEYS.get_or_init(Mutex::default).lock().unwrap();
        keys.entry(id.to_owned())
            .or_insert_with(proto::secret::DsnKey::generate)
            .clone()
    }

    #[test]
    fn a_dsn_key_works_while_its_key_is_active_and_a_new_one_replaces_it() {
        let s = Subjects::default();
        let reg = Registry::new(&s);
        let secret = KeySecret::generate();
        reg.apply(&raw(1, 0, s.key("kd1"), created("kd1", &secret)));
        let dsn = dsn_of("kd1");
        let presented = dsn.expose().as_bytes();
        assert_eq!(reg.lookup_dsn(presented), Lookup::Active("kd1".into()));
        // The DSN key is not the secret, nor the other way round.
        assert_eq!(reg.lookup(presented), Lookup::Unknown);
        assert_eq!(reg.lookup_dsn(secret.expose().as_bytes()), Lookup::Unknown);
        let r = KeyRef {
            key_id: "kd1".into(),
        };
        reg.apply(&raw(2, 0, s.key("kd1"), Event::KeyRevoked(r.clone())));
        assert_eq!(reg.lookup_dsn(presented), Lookup::Revoked);
        reg.apply(&raw(3, 0, s.key("kd1"), Event::KeyRestored(r)));
        let new = proto::secret::DsnKey::generate();
        reg.apply(&raw(
            4,
            0,
            s.key("kd1"),
            Event::DsnIssued(proto::event::DsnIssued {
                key_id: "kd1".into(),
                verifier: new.verifier().0,
            }),
        ));
        assert_eq!(reg.lookup_dsn(presented), Lookup::Unknown);
        assert_eq!(
            reg.lookup_dsn(new.expose().as_bytes()),
            Lookup::Active("kd1".into())
        );
    }

    #[test]
    fn keys_are_found_revoked_and_restored_by_their_events() {
        let s = Subjects::default();
        let reg = Registry::new(&s);
        let secret = KeySecret::generate();
        assert_eq!(reg.lookup(secret.expose().as_bytes()), Lookup::Unknown);
        reg.apply(&raw(1, 2, s.key("k1"), created("k1", &secret)));
        assert!(!reg.loaded());
        assert_eq!(
            reg.lookup(secret.expose().as_bytes()),
            Lookup::Active("k1".into())
        );
        let r = KeyRef {
            key_id: "k1".into(),
        };
        reg.apply(&raw(2, 1, s.key("k1"), Event::KeyRevoked(r.clone())));
        assert_eq!(reg.lookup(secret.expose().as_bytes()), Lookup::Revoked);
        reg.apply(&raw(3, 0, s.key("k1"), Event::KeyRestored(r)));
        assert!(reg.loaded());
        assert_eq!(*reg.seq().borrow(), 3);
        assert_eq!(
            reg.lookup(secret.expose().as_bytes()),
            Lookup::Active("k1".into())
        );
        assert_eq!(reg.lookup(b"something else"), Lookup::Unknown);
    }

    #[test]
    fn an_unreadable_event_of_a_key_refuses_that_key_until_a_readable_one() {
        let s = Subjects::default();
        let reg = Registry::new(&s);
        let secret = KeySecret::generate();
        reg.apply(&raw(1, 0, s.key("k1"), created("k1", &secret)));
        reg.apply(&RawEvent {
            seq: 2,
            pending: 0,
            subject: s.key("k1"),
            payload: bytes::Bytes::from_static(b"\xc1not an event"),
        });
        assert_eq!(*reg.seq().borrow(), 2);
        assert_eq!(reg.lookup(secret.expose().as_bytes()), Lookup::Revoked);
        let r = KeyRef {
            key_id: "k1".into(),
        };
        reg.apply(&raw(3, 0, s.key("k1"), Event::KeyRestored(r)));
        assert_eq!(
            reg.lookup(secret.expose().as_bytes()),
            Lookup::Active("k1".into())
        );
    }

    #[test]
    fn key_changes_set_origins_and_limits_and_none_keeps_them() {
        let s = Subjects::default();
        let reg = Registry::new(&s);
        let secret = KeySecret::generate();
        reg.apply(&raw(1, 0, s.key("k1"), created("k1", &secret)));
        let change = |origins: Option<Vec<String>>, rate_limit| {
            Event::KeyChanged(proto::event::KeyChanged {
                key_id: "k1".into(),
                description: None,
                origins,
                rate_limit,
            })
        };
        reg.apply(&raw(
            2,
            0,
            s.key("k1"),
            change(Some(vec!["https://a.example".into()]), Some(Some(5))),
        ));
        let k = reg.get("k1").unwrap();
        assert_eq!(k.state.origins, ["https://a.example"]);
        assert_eq!(k.state.rate_limit, Some(5));
        assert!(reg.origin_allowed_anywhere("https://a.example"));
        assert!(!reg.origin_allowed_anywhere("https://b.example"));
        reg.apply(&raw(3, 0, s.key("k1"), change(None, Some(None))));
        let k = reg.get("k1").unwrap();
        assert_eq!(k.state.origins, ["https://a.example"]);
        assert_eq!(k.state.rate_limit, None);
    }

    #[test]
    fn two_keys_with_one_secret_resolve_to_the_first_active_one() {
        let s = Subjects::default();
        let reg = Registry::new(&s);
        let secret = KeySecret::generate();
        reg.apply(&raw(1, 1, s.key("k1"), created("k1", &secret)));
        reg.apply(&raw(2, 0, s.key("k2"), created("k2", &secret)));
        let presented = secret.expose().as_bytes();
        assert_eq!(reg.lookup(presented), Lookup::Active("k1".into()));
        let r = KeyRef {
            key_id: "k1".into(),
        };
        reg.apply(&raw(3, 0, s.key("k1"), Event::KeyRevoked(r)));
        assert_eq!(reg.lookup(presented), Lookup::Active("k2".into()));
    }
}
