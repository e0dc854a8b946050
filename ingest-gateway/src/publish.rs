//! Turning validated entries into `Logged` events and storing them.
//!
//! Under an `Idempotency-Key`, every item gets a message id scoped to its
//! key (docs/api.md, "Message ids and idempotency"), so JetStream drops a
//! retried item inside the duplicate window and answers with the original
//! sequence: a retry gets the same ids. Without one, no message id.

use crate::Gateway;
use crate::error::ApiError;
use crate::stats::Path;
use proto::bus::{Bus, PublishError};
use proto::event::{Actor, Envelope, Event};
use proto::input::{IdempotencyKey, NewEntry, Sender};

/// What a stored batch reports back.
pub(crate) struct Published {
    /// One id (stream sequence) per item, in item order.
    pub ids: Vec<u64>,
    /// Items stored now.
    pub new: u64,
    /// Items that JetStream already had (a retry).
    pub duplicates: u64,
}

/// The message ids of one request's items (docs/api.md, "Message ids and idempotency", made
/// stricter here). With the client's `Idempotency-Key`, item `i` gets
/// `<key_id>:<Idempotency-Key>:<i>:<digest of the item>`: a retry of the
/// same items inside the duplicate window gets the same ids, and a key
/// reused for other items stores those (a new digest) instead of
/// answering the old ids for entries never stored. The key id goes first,
/// so two clients that pick the same value cannot collide, and a key id
/// has no `:`, so no client value can reach into another key's ids.
/// Without a key, no message id at all: no retry can name the entry, and
/// JetStream would hold every id in memory for the whole duplicate window
/// for nothing.
pub(crate) fn msg_ids(
    key_id: &str,
    idempotency_key: Option<&IdempotencyKey>,
    entries: &[NewEntry],
) -> Vec<Option<String>> {
    match idempotency_key {
        Some(k) => entries
            .iter()
            .enumerate()
            .map(|(i, e)| Some(format!("{key_id}:{}:{i}:{}", k.as_str(), e.digest())))
            .collect(),
        None => vec![None; entries.len()],
    }
}

/// Entries one ingestion path has validated, from one key: what
/// [`Gateway::store`] needs to store them.
pub(crate) struct Submission {
    pub path: Path,
    pub key_id: String,
    /// The sender's address, when known.
    pub ip: Option<String>,
    pub entries: Vec<NewEntry>,
    pub ids: MessageIds,
    /// Browser reports: any visitor can send one.
    pub untrusted: bool,
}

/// How a submission's items get their message ids.
pub(crate) enum MessageIds {
    /// From the client's `Idempotency-Key`, if it sent one ([`msg_ids`]).
    Idempotency(Option<IdempotencyKey>),
    /// One given per item (a direct NATS submission's own id).
    Given(Vec<Option<String>>),
}

impl Gateway {
    /// The tail every ingestion path shares once its input is valid: the
    /// key's rate limit, the message ids, the publish (acknowledged, or an
    /// error that says what may be stored), and the counters.
    pub(crate) async fn store(&self, s: Submission) -> Result<Published, ApiError> {
        self.check_rate(&s.key_id, s.entries.len())?;
        let ids = match s.ids {
            MessageIds::Idempotency(key) => msg_ids(&s.key_id, key.as_ref(), &s.entries),
            MessageIds::Given(ids) => ids,
        };
        let published =
            publish_with_ids(self.bus(), &s.key_id, s.ip, s.entries, ids, s.untrusted).await?;
        self.counters()
            .stored(s.path, published.new, published.duplicates);
        Ok(published)
    }
}

/// Publishes every entry with all acks in flight at once (one round trip
/// for the batch, not one per item) and waits for all of them, with a
/// message id given for each entry (or none).
async fn publish_with_ids(
    bus: &Bus,
    key_id: &str,
    ip: Option<String>,
    entries: Vec<NewEntry>,
    msg_ids: Vec<Option<String>>,
    untrusted: bool,
) -> Result<Published, ApiError> {
    let subject = bus.subjects().entry(Some(key_id));
    let envelopes: Vec<(Option<String>, Envelope)> = entries
        .into_iter()
        .zip(msg_ids)
        .map(|(e, id)| {
            let event = Event::Logged(e.into_logged(Sender::Key {
                key_id: key_id.to_owned(),
                ip: ip.clone(),
                untrusted,
            }));
            (id, Envelope::now(Actor::Key(key_id.to_owned()), event))
        })
        .collect();
    // Handed to the connection one by one, so the batch keeps its order in
    // the stream; then every acknowledgement is awaited at once. Once one
    // item cannot be handed over (the connection is gone), later ones are
    // not tried, so a retry stores the rest behind the ones already stored.
    let mut pending = Vec::with_capacity(envelopes.len());
    let mut failure: Option<PublishError> = None;
    for (id, env) in &envelopes {
        let started = match id {
            Some(id) => bus.publish_start(subject.clone(), env, id).await,
            None => bus.publish_start_unkeyed(subject.clone(), env).await,
        };
        match started {
            Ok(ack) => pending.push(ack.stored()),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let results = futures::future::join_all(pending).await;

    let mut ids = Vec::with_capacity(results.len());
    let mut duplicates = 0;
    // Handed to NATS but not acknowledged (an ack timeout while NATS
    // stalls): the server may store them all the same.
    let mut unconfirmed = 0;
    for result in results {
        match result {
            Ok(stored) => {
                ids.push(stored.seq);
                duplicates += u64::from(stored.duplicate);
            }
            // "Unavailable" wins over other failures: a retry can mend it.
            Err(e) => {
                unconfirmed += 1;
                if !matches!(failure, Some(PublishError::Unavailable { .. })) {
                    failure = Some(e);
                }
            }
        }
    }
    match failure {
        None => Ok(Published {
            new: ids.len() as u64 - duplicates,
            ids,
            duplicates,
        }),
        Some(cause @ PublishError::Unavailable { .. }) => Err(ApiError::Unavailable {
            stored_ids: ids,
            unconfirmed,
            disk_free: bus.store_disk_full(),
            cause,
        }),
        Some(other) => Err(ApiError::Internal {
            stored_ids: ids,
            cause: other,
        }),
    }
}
