//! The one module that talks to NATS: connect with credentials, declare
//! the streams, publish an event with its message id, read from a
//! sequence. Everything else in minilog goes through [`Bus`].

use crate::event::Envelope;
use crate::subjects::Subjects;
use anyhow::Context as _;
use async_nats::connection::State;
use async_nats::jetstream::{self, consumer, context::PublishErrorKind, stream};
use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use std::future::IntoFuture;
use std::path::PathBuf;
use std::time::Duration;

/// How minilog proves who it is to NATS.
#[derive(Clone, Debug, Default)]
pub enum NatsAuth {
    #[default]
    None,
    UserPassword {
        user: String,
        password: String,
    },
    Token(String),
    CredsFile(PathBuf),
}

#[derive(Clone, Debug)]
pub struct NatsConfig {
    /// One URL or several, comma-separated (a cluster).
    pub url: String,
    pub auth: NatsAuth,
    /// Shown in the server's connection list.
    pub name: String,
}

/// Settings of the `MINILOG` stream.
#[derive(Clone, Debug)]
pub struct StreamSettings {
    /// How long JetStream remembers message ids to drop duplicates.
    pub duplicate_window: Duration,
    pub replicas: usize,
    /// The `MINILOG_INGEST` work queue of direct NATS submissions.
    pub ingest: IngestSettings,
}

impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings {
            duplicate_window: Duration::from_secs(600),
            replicas: 1,
            ingest: IngestSettings::default(),
        }
    }
}

/// Bounds of the `MINILOG_INGEST` work queue. It discards new
/// submissions when full, so a publisher gets an error instead of an
/// older submission being dropped.
#[derive(Clone, Debug)]
pub struct IngestSettings {
    /// Submissions older than this are dropped unread.
    pub max_age: Duration,
    /// Total size of waiting submissions.
    pub max_bytes: i64,
    /// Largest single submission.
    pub max_message_bytes: i32,
}

impl Default for IngestSettings {
    fn default() -> Self {
        IngestSettings {
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_bytes: 1 << 30,
            max_message_bytes: 1 << 20,
        }
    }
}

/// The durable pull consumer that every gateway shares on `MINILOG_INGEST`.
/// The durable consumer the alert notifiers share.
pub const ALERTS_CONSUMER: &str = "minilog-alerts";
pub const INGEST_CONSUMER: &str = "gateways";

/// One direct submission taken from `MINILOG_INGEST`, to be acked once
/// handled (which deletes it from the work queue).
pub struct IngestMessage {
    msg: jetstream::Message,
    /// Its sequence in `MINILOG_INGEST`.
    pub seq: u64,
    /// How often it was delivered (more than 1 after a gateway died).
    pub delivered: i64,
    /// When JetStream stored it, Unix ms.
    pub published_ms: i64,
}

impl IngestMessage {
    pub fn payload(&self) -> &Bytes {
        &self.msg.payload
    }

    /// A header's value, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.msg
            .headers
            .as_ref()
            .and_then(|h| h.get(name))
            .map(|v| v.as_str())
    }

    /// Done with it: JetStream deletes it.
    pub async fn ack(&self) -> anyhow::Result<()> {
        self.msg
            .ack()
            .await
            .map_err(|e| anyhow::anyhow!("acknowledging submission {}: {e}", self.seq))
    }

    /// Still working on it: the ack wait starts again.
    pub async fn in_progress(&self) -> anyhow::Result<()> {
        self.msg
            .ack_with(jetstream::AckKind::Progress)
            .await
            .map_err(|e| anyhow::anyhow!("extending submission {}: {e}", self.seq))
    }

    /// Not now: deliver it again after `delay`.
    pub async fn retry_later(&self, delay: Duration) -> anyhow::Result<()> {
        self.msg
            .ack_with(jetstream::AckKind::Nak(Some(delay)))
            .await
            .map_err(|e| anyhow::anyhow!("returning submission {}: {e}", self.seq))
    }
}

/// One core NATS request to `<prefix>.submit.>`.
pub struct SubmitRequest {
    pub payload: Bytes,
    /// Where the requester waits for the answer.
    pub reply: Option<String>,
    headers: Option<async_nats::HeaderMap>,
}

impl SubmitRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .as_ref()
            .and_then(|h| h.get(name))
            .map(|v| v.as_str())
    }
}

/// The requests a gateway's share of the queue group receives.
pub struct SubmitRequests(async_nats::Subscriber);

impl SubmitRequests {
    /// The next request; `None` when the subscription ended.
    pub async fn next(&mut self) -> Option<SubmitRequest> {
        let msg = self.0.next().await?;
        Some(SubmitRequest {
            payload: msg.payload,
            reply: msg.reply.map(|r| r.to_string()),
            headers: msg.headers,
        })
    }
}

/// Submissions from the shared durable consumer on `MINILOG_INGEST`.
pub struct IngestReader {
    messages: consumer::pull::Stream,
    /// When `MINILOG_INGEST` was created, Unix nanoseconds: with a sequence
    /// it names a submission for good, even if the stream is recreated.
    pub stream_created: i128,
}

impl IngestReader {
    /// The next submission, waiting for one. `None` when the reader ended.
    pub async fn next(&mut self) -> Option<anyhow::Result<IngestMessage>> {
        let msg = self.messages.next().await?;
        Some((|| {
            let msg = msg.map_err(|e| anyhow::anyhow!("reading MINILOG_INGEST: {e}"))?;
            let info = msg
                .info()
                .map_err(|e| anyhow::anyhow!("submission without stream info: {e}"))?;
            let (seq, delivered) = (info.stream_sequence, info.delivered);
            let published_ms = (info.published.unix_timestamp_nanos() / 1_000_000) as i64;
            Ok(IngestMessage {
                msg,
                seq,
                delivered,
                published_ms,
            })
        })())
    }
}

/// Why a publish did not store the event.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// NATS is down or did not acknowledge in time: try again later (503).
    #[error("the event log is unavailable: {reason}")]
    Unavailable {
        reason: &'static str,
        /// What the client said, when it said something.
        #[source]
        source: Option<async_nats::jetstream::context::PublishError>,
    },
    /// A create-once publish found the subject already in use.
    #[error("already exists")]
    Conflict,
    /// NATS refused the message itself (too large).
    #[error("the event log refused the event")]
    Refused(#[source] async_nats::jetstream::context::PublishError),
}

impl PublishError {
    /// Whether the event may have been stored all the same: it reached
    /// NATS, but no acknowledgement came (refused before sending: no).
    pub fn may_be_stored(&self) -> bool {
        matches!(
            self,
            PublishError::Unavailable {
                source: Some(_),
                ..
            }
        )
    }

    /// The error and every cause under it, on one line (for logs and
    /// answers that may say why).
    pub fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(e) = source {
            text.push_str(": ");
            text.push_str(&e.to_string());
            source = e.source();
        }
        text
    }
}

/// A stored event: its stream sequence, and whether JetStream had it
/// already (same message id inside the duplicate window).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stored {
    pub seq: u64,
    pub duplicate: bool,
}

/// An event handed to the connection ([`Bus::publish_start`]) whose
/// acknowledgement is still to come.
pub struct PendingAck(
    jetstream::context::PublishAckFuture,
    std::sync::Arc<std::sync::atomic::AtomicU32>,
);

impl PendingAck {
    /// Waits for JetStream's acknowledgement.
    pub async fn stored(self) -> Result<Stored, PublishError> {
        use std::sync::atomic::Ordering;
        match self.0.into_future().await.map_err(map_publish_error) {
            Ok(ack) => {
                self.1.store(0, Ordering::Relaxed);
                Ok(Stored {
                    seq: ack.sequence,
                    duplicate: ack.duplicate,
                })
            }
            Err(e) => {
                if matches!(e, PublishError::Unavailable { .. }) {
                    self.1.fetch_add(1, Ordering::Relaxed);
                }
                Err(e)
            }
        }
    }
}

/// One event as read from the stream, not yet decoded.
#[derive(Clone, Debug)]
pub struct RawEvent {
    pub seq: u64,
    /// Messages left after this one for the reader's filter.
    pub pending: u64,
    pub subject: String,
    pub payload: Bytes,
}

#[derive(Clone)]
pub struct Bus {
    client: async_nats::Client,
    js: jetstream::Context,
    subjects: Subjects,
    /// Counts (re)connections. Readers watch it to recreate their consumer
    /// at once after a reconnect, instead of waiting for missed heartbeats
    /// (about 15 s after a server restart).
    connections: tokio::sync::watch::Receiver<u64>,
    /// Publishes in a row that got no acknowledgement (reset by one that
    /// did): how a server that is up but stores nothing shows.
    unacked: std::sync::Arc<std::sync::atomic::AtomicU32>,
    /// The event log's store directory, where this process knows it (the
    /// embedded server's), to tell a full disk from other failures.
    store_dir: Option<std::sync::Arc<std::path::Path>>,
}

/// Free bytes under which the store's disk counts as full: JetStream
/// writes its blocks in pieces of up to a few MiB.
pub const STORE_FULL_BELOW: u64 = 4 << 20;

impl Bus {
    /// Connects and keeps reconnecting for ever, with a short backoff so a
    /// restarted server is found again within a second or two.
    pub async fn connect(config: &NatsConfig, subjects: Subjects) -> anyhow::Result<Bus> {
        let (connected_tx, connections) = tokio::sync::watch::channel(0u64);
        let mut options = async_nats::ConnectOptions::new()
            .name(&config.name)
            .event_callback(move |event| {
                if matches!(event, async_nats::Event::Connected) {
                    connected_tx.send_modify(|n| *n += 1);
                }
                async {}
            })
            .connection_timeout(Duration::from_secs(5))
            .custom_inbox_prefix(subjects.own_inbox_prefix())
            .reconnect_delay_callback(|attempts| {
                Duration::from_millis((attempts as u64 * 100).clamp(50, 2000))
            });
        options = match &config.auth {
            NatsAuth::None => options,
            NatsAuth::UserPassword { user, password } => {
                options.user_and_password(user.clone(), password.clone())
            }
            NatsAuth::Token(t) => options.token(t.clone()),
            NatsAuth::CredsFile(path) => options
                .credentials_file(path)
                .await
                .with_context(|| format!("reading NATS credentials {}", path.display()))?,
        };
        let urls: Vec<async_nats::ServerAddr> = config
            .url
            .split(',')
            .map(|u| u.trim().parse())
            .collect::<Result<_, _>>()
            .with_context(|| format!("reading NATS URL {:?}", config.url))?;
        let client = options
            .connect(urls)
            .await
            .with_context(|| format!("connecting to NATS at {}", config.url))?;
        let js = jetstream::new(client.clone());
        Ok(Bus {
            client,
            js,
            subjects,
            connections,
            unacked: Default::default(),
            store_dir: None,
        })
    }

    pub fn subjects(&self) -> &Subjects {
        &self.subjects
    }

    /// How long a publish waits for JetStream's acknowledgement (5 s by
    /// default); past it the publish is `Unavailable`, though the server
    /// may still store the event.
    pub fn with_ack_timeout(mut self, timeout: Duration) -> Bus {
        self.js.set_timeout(timeout);
        self
    }

    /// Where the event log's store lies (the embedded server's), so that
    /// [`Bus::store_disk_full`] can tell a full disk.
    pub fn with_store_dir(mut self, dir: &std::path::Path) -> Bus {
        self.store_dir = Some(dir.into());
        self
    }

    /// The bytes free on the store's disk, when they are fewer than
    /// [`STORE_FULL_BELOW`]; `None` when there is room or the store's
    /// place is not known (an external NATS).
    pub fn store_disk_full(&self) -> Option<u64> {
        let stat = rustix::fs::statvfs(self.store_dir.as_deref()?).ok()?;
        let free = stat.f_bavail.saturating_mul(stat.f_frsize);
        (free < STORE_FULL_BELOW).then_some(free)
    }

    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// Changes on every reconnection to the server.
    pub fn connections(&self) -> tokio::sync::watch::Receiver<u64> {
        let mut rx = self.connections.clone();
        rx.mark_unchanged();
        rx
    }

    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == State::Connected
    }

    /// Creates the `MINILOG` stream, or updates its settings.
    pub async fn ensure_streams(&self, settings: &StreamSettings) -> anyhow::Result<()> {
        let config = stream::Config {
            name: self.subjects.stream(),
            subjects: vec![self.subjects.all_events()],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            duplicate_window: settings.duplicate_window,
            num_replicas: settings.replicas,
            allow_direct: true,
            description: Some("minilog's event log".into()),
            ..Default::default()
        };
        self.js
            .create_or_update_stream(config)
            .await
            .with_context(|| format!("declaring the stream {}", self.subjects.stream()))?;
        self.ensure_ingest_stream(settings).await
    }

    /// Creates the `MINILOG_INGEST` work queue (direct NATS submissions),
    /// or updates its bounds.
    ///
    /// JetStream reserves `max_bytes` against the store's free space; on a
    /// disk with less room than asked, the bound is halved until it fits
    /// (down to 16 MiB), with a warning, rather than refusing to start.
    pub async fn ensure_ingest_stream(&self, settings: &StreamSettings) -> anyhow::Result<()> {
        let wanted = settings.ingest.max_bytes;
        let mut max_bytes = wanted;
        loop {
            match self.declare_ingest_stream(settings, max_bytes).await {
                Ok(()) => {
                    if max_bytes != wanted {
                        tracing::warn!(
                            wanted,
                            max_bytes,
                            "too little free space for the ingest stream's bound; using a smaller one \
                             (direct NATS submissions beyond it are refused until gateways drain them)"
                        );
                    }
                    return Ok(());
                }
                Err(e)
                    if max_bytes > 16 << 20
                        && format!("{e:#}").to_lowercase().contains("insufficient") =>
                {
                    max_bytes /= 2;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn declare_ingest_stream(
        &self,
        settings: &StreamSettings,
        max_bytes: i64,
    ) -> anyhow::Result<()> {
        let config = stream::Config {
            name: self.subjects.ingest_stream(),
            subjects: vec![self.subjects.ingest()],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::WorkQueue,
            discard: stream::DiscardPolicy::New,
            max_age: settings.ingest.max_age,
            max_bytes,
            max_message_size: settings.ingest.max_message_bytes,
            num_replicas: settings.replicas,
            description: Some("minilog's direct NATS submissions, drained by the gateways".into()),
            ..Default::default()
        };
        self.js
            .create_or_update_stream(config)
            .await
            .with_context(|| format!("declaring the stream {}", self.subjects.ingest_stream()))?;
        Ok(())
    }

    /// Publishes in a row that got no acknowledgement while connected.
    pub fn unacked_in_a_row(&self) -> u32 {
        self.unacked.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Starts counting [`Bus::unacked_in_a_row`] afresh (after a remedy).
    pub fn forget_unacked(&self) {
        self.unacked.store(0, std::sync::atomic::Ordering::Relaxed);
    }

    /// Writes one probe message and waits for its acknowledgement: whether
    /// the server's store takes writes right now. The probe stream (one
    /// message kept, file storage, beside the event log) is declared on
    /// the first call.
    pub async fn probe_store(&self) -> anyhow::Result<()> {
        let config = stream::Config {
            name: self.subjects.probe_stream(),
            subjects: vec![self.subjects.probe()],
            storage: stream::StorageType::File,
            max_messages: 1,
            discard: stream::DiscardPolicy::Old,
            description: Some("minilog's store probe".into()),
            ..Default::default()
        };
        self.js
            .get_or_create_stream(config)
            .await
            .context("declaring the probe stream")?;
        let ack = self
            .js
            .publish(self.subjects.probe(), Bytes::from_static(b"probe"))
            .await
            .context("probing the store")?;
        ack.await.context("probing the store: no acknowledgement")?;
        Ok(())
    }

    /// Reads `MINILOG_INGEST` through the durable pull consumer every
    /// gateway shares ([`INGEST_CONSUMER`]), so each submission goes to
    /// one gateway. A submission not acked within `ack_wait` (its gateway
    /// died) is delivered again.
    pub async fn read_ingest(&self, ack_wait: Duration) -> anyhow::Result<IngestReader> {
        let mut stream = self
            .js
            .get_stream(self.subjects.ingest_stream())
            .await
            .context("looking up the ingest stream")?;
        let created = stream
            .info()
            .await
            .context("reading the ingest stream's state")?
            .created
            .unix_timestamp_nanos();
        let config = consumer::pull::Config {
            durable_name: Some(INGEST_CONSUMER.into()),
            description: Some("minilog gateways".into()),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait,
            max_ack_pending: 10_000,
            ..Default::default()
        };
        let consumer = match stream
            .get_consumer::<consumer::pull::Config>(INGEST_CONSUMER)
            .await
        {
            Ok(c) if c.cached_info().config.ack_wait == ack_wait => c,
            // Missing, or another ack wait: create or update it.
            _ => stream
                .create_consumer(config)
                .await
                .context("declaring the ingest consumer")?,
        };
        let messages = consumer
            .stream()
            .max_messages_per_batch(256)
            .messages()
            .await
            .context("starting to read the ingest stream")?;
        Ok(IngestReader {
            messages,
            stream_created: created,
        })
    }

    /// Reads entry events through the durable consumer every view shares
    /// ([`ALERTS_CONSUMER`]), so each is looked at by one view's notifier;
    /// one not acked within a minute is delivered again. Made when first
    /// asked for, starting at `start` (the first rule's event): rules see
    /// what comes after them, not the history. (Reuses [`IngestMessage`]:
    /// `seq` is the event's sequence in the event stream.)
    pub async fn read_for_alerts(&self, start: u64) -> anyhow::Result<IngestReader> {
        let stream = self
            .js
            .get_stream(self.subjects.stream())
            .await
            .context("looking up the event stream")?;
        let config = consumer::pull::Config {
            durable_name: Some(ALERTS_CONSUMER.into()),
            description: Some("minilog alert notifiers".into()),
            filter_subject: self.subjects.all_entries(),
            deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                start_sequence: start.max(1),
            },
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: Duration::from_secs(60),
            // Entries waiting for a failing target's retry count here.
            max_ack_pending: 10_000,
            ..Default::default()
        };
        let consumer = match stream
            .get_consumer::<consumer::pull::Config>(ALERTS_CONSUMER)
            .await
        {
            Ok(c) => c,
            Err(_) => stream
                .get_or_create_consumer(ALERTS_CONSUMER, config)
                .await
                .context("declaring the alerts consumer")?,
        };
        let messages = consumer
            .stream()
            // Few at a time: a fetched entry's ack wait runs while the ones
            // before it are handled.
            .max_messages_per_batch(4)
            .messages()
            .await
            .context("starting to read for alerts")?;
        Ok(IngestReader {
            messages,
            stream_created: 0,
        })
    }

    /// The alert notifiers' shared state (what was sent, the caps' counts),
    /// a key-value bucket whose entries last two days: retries stop after
    /// one.
    pub async fn alert_state(&self) -> anyhow::Result<jetstream::kv::Store> {
        let bucket = format!("{}_ALERTS", self.subjects.stream());
        if let Ok(kv) = self.js.get_key_value(&bucket).await {
            return Ok(kv);
        }
        let replicas = match self.js.get_stream(self.subjects.stream()).await {
            Ok(mut s) => s.info().await.map_or(1, |i| i.config.num_replicas),
            Err(_) => 1,
        };
        self.js
            .create_key_value(jetstream::kv::Config {
                bucket,
                description: "minilog alert delivery".into(),
                max_age: Duration::from_secs(48 * 3600),
                history: 1,
                num_replicas: replicas,
                storage: jetstream::stream::StorageType::File,
                ..Default::default()
            })
            .await
            .context("creating the alerts state bucket")
    }

    /// Core NATS requests on `<prefix>.submit.>`, shared by every gateway
    /// through one queue group, so each request is answered once.
    pub async fn submit_requests(&self) -> anyhow::Result<SubmitRequests> {
        let sub = self
            .client
            .queue_subscribe(self.subjects.submit(), "minilog-gateways".into())
            .await
            .context("subscribing to submit requests")?;
        Ok(SubmitRequests(sub))
    }

    /// Publishes a plain core NATS message: an answer to a request, or an
    /// outcome sent to a submission's `Minilog-Reply-To`.
    pub async fn answer(&self, subject: String, payload: Bytes) -> anyhow::Result<()> {
        let subject = async_nats::Subject::from(subject);
        self.client
            .publish(subject, payload)
            .await
            .context("publishing an answer")
    }

    /// Publishes an event and waits for JetStream's acknowledgement.
    pub async fn publish(
        &self,
        subject: String,
        env: &Envelope,
        msg_id: &str,
    ) -> Result<Stored, PublishError> {
        self.publish_start(subject, env, msg_id)
            .await?
            .stored()
            .await
    }

    /// [`Bus::publish`] without a message id: for an event no retry will
    /// ever name (a click on the dashboard), which JetStream then need not
    /// remember for the whole duplicate window.
    pub async fn publish_unkeyed(
        &self,
        subject: String,
        env: &Envelope,
    ) -> Result<Stored, PublishError> {
        self.publish_start_unkeyed(subject, env)
            .await?
            .stored()
            .await
    }

    /// Publishes only if nothing was ever published on `subject`
    /// (`Nats-Expected-Last-Subject-Sequence: 0`): two processes cannot
    /// create the same key or user.
    pub async fn publish_new(
        &self,
        subject: String,
        env: &Envelope,
    ) -> Result<Stored, PublishError> {
        let msg = jetstream::message::PublishMessage::build()
            .payload(env.encode().into())
            .expected_last_subject_sequence(0);
        self.send(subject, msg).await
    }

    async fn send(
        &self,
        subject: String,
        msg: jetstream::message::PublishMessage,
    ) -> Result<Stored, PublishError> {
        self.start(subject, msg).await?.stored().await
    }

    /// Hands an event to the connection without waiting for its
    /// acknowledgement. Events handed over one after another are stored in
    /// that order, so a batch started item by item keeps its order in the
    /// stream while all its acknowledgements are in flight at once
    /// (awaiting [`Bus::publish`] futures together does not keep it).
    pub async fn publish_start(
        &self,
        subject: String,
        env: &Envelope,
        msg_id: &str,
    ) -> Result<PendingAck, PublishError> {
        let msg = jetstream::message::PublishMessage::build()
            .payload(env.encode().into())
            .message_id(msg_id);
        self.start(subject, msg).await
    }

    /// [`Bus::publish_start`] without a message id, for an event nothing
    /// will ever publish again (no client retry can name it): JetStream
    /// keeps no entry for it in the duplicate window's memory.
    pub async fn publish_start_unkeyed(
        &self,
        subject: String,
        env: &Envelope,
    ) -> Result<PendingAck, PublishError> {
        let msg = jetstream::message::PublishMessage::build().payload(env.encode().into());
        self.start(subject, msg).await
    }

    async fn start(
        &self,
        subject: String,
        msg: jetstream::message::PublishMessage,
    ) -> Result<PendingAck, PublishError> {
        // The client buffers publishes while it reconnects; a publish that
        // times out might still be delivered later. Refuse up front instead.
        if !self.is_connected() {
            return Err(PublishError::Unavailable {
                reason: "not connected to NATS",
                source: None,
            });
        }
        let ack = self
            .js
            .send_publish(subject, msg)
            .await
            .map_err(map_publish_error)?;
        Ok(PendingAck(ack, self.unacked.clone()))
    }

    /// Publishes only if the last event on `subject` is still `last_seq`:
    /// changes to one key or user are applied in the order they were decided.
    pub async fn publish_after(
        &self,
        subject: String,
        env: &Envelope,
        last_seq: u64,
    ) -> Result<Stored, PublishError> {
        let msg = jetstream::message::PublishMessage::build()
            .payload(env.encode().into())
            .expected_last_subject_sequence(last_seq);
        self.send(subject, msg).await
    }

    /// The sequence and payload of the last event on `subject`, if any.
    pub async fn last_on_subject(&self, subject: &str) -> anyhow::Result<Option<(u64, Bytes)>> {
        let stream = self.event_log().await?;
        match stream.get_last_raw_message_by_subject(subject).await {
            Ok(msg) => Ok(Some((msg.sequence, msg.payload))),
            Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(anyhow::anyhow!("reading the last event on {subject}: {e}")),
        }
    }

    /// The `MINILOG` stream.
    async fn event_log(&self) -> anyhow::Result<stream::Stream> {
        self.js
            .get_stream(self.subjects.stream())
            .await
            .context("looking up the event log stream")
    }

    /// The last sequence in the event log (0 when empty).
    pub async fn last_seq(&self) -> anyhow::Result<u64> {
        let mut stream = self.event_log().await?;
        let info = stream
            .info()
            .await
            .context("reading the event log's state")?;
        Ok(info.state.last_sequence)
    }

    /// The event stored at `seq`, if the stream still holds one there.
    pub async fn event_at(&self, seq: u64) -> anyhow::Result<Option<RawEvent>> {
        let stream = self.event_log().await?;
        match stream.get_raw_message(seq).await {
            Ok(m) => Ok(Some(RawEvent {
                seq: m.sequence,
                pending: 0,
                subject: m.subject.to_string(),
                payload: m.payload,
            })),
            Err(e)
                if matches!(
                    e.kind(),
                    jetstream::stream::RawMessageErrorKind::NoMessageFound
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e).with_context(|| format!("reading event {seq}")),
        }
    }

    /// The sequences an operator quarantined (`Quarantined` events, read
    /// from the start of their subject): the projector and every rebuild
    /// pass over an undecodable event at one of them, and only there.
    pub async fn quarantined(&self) -> anyhow::Result<std::collections::BTreeSet<u64>> {
        let mut out = std::collections::BTreeSet::new();
        let mut reader = self.read_from(1, Some(self.subjects.quarantine())).await?;
        let mut left = reader.pending_at_start;
        while left > 0 {
            let ev = tokio::time::timeout(Duration::from_secs(30), reader.next())
                .await
                .context("reading quarantined events: no answer in 30 s")?
                .context("reading quarantined events: the reader ended")??;
            left = ev.pending;
            if let Some(q) = crate::event::Quarantined::from_payload(&ev.payload) {
                out.insert(q.seq);
            }
        }
        Ok(out)
    }

    /// Retention: removes every event on `filter` subjects below sequence
    /// `upto` from the event log; answers how many went.
    pub async fn purge_below(&self, filter: String, upto: u64) -> anyhow::Result<u64> {
        let stream = self.event_log().await?;
        let done = stream
            .purge()
            .filter(filter)
            .sequence(upto)
            .await
            .context("purging the event log")?;
        Ok(done.purged)
    }

    /// Where the stream's leader runs (a server name), on a cluster.
    pub async fn stream_leader(&self) -> anyhow::Result<Option<String>> {
        let mut stream = self.event_log().await?;
        let info = stream
            .info()
            .await
            .context("reading the event log's state")?;
        Ok(info.cluster.as_ref().and_then(|c| c.leader.clone()))
    }

    /// Reads the event log from `start` on, optionally only `filter`
    /// subjects, with an ordered consumer (no acks, recreated on gaps).
    pub async fn read_from(
        &self,
        start: u64,
        filter: Option<String>,
    ) -> anyhow::Result<EventReader> {
        let stream = self.event_log().await?;
        let consumer = stream
            .create_consumer(consumer::pull::OrderedConfig {
                deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: start.max(1),
                },
                filter_subject: filter.unwrap_or_default(),
                // The client's idle heartbeat is half of this: a reader whose
                // consumer died with its server (a cluster node killed while
                // this connection stays up elsewhere) is recreated after two
                // missed heartbeats, about 2 × 2 × 2 s, instead of a minute.
                max_expires: READER_EXPIRES,
                ..Default::default()
            })
            .await
            .context("creating a reader on the event log")?;
        let pending_at_start = consumer.cached_info().num_pending;
        let messages = consumer
            .messages()
            .await
            .context("starting to read the event log")?;
        Ok(EventReader {
            messages,
            pending_at_start,
        })
    }
}

fn map_publish_error(e: async_nats::jetstream::context::PublishError) -> PublishError {
    match e.kind() {
        PublishErrorKind::WrongLastSequence => PublishError::Conflict,
        PublishErrorKind::MaxPayloadExceeded => PublishError::Refused(e),
        // On a cluster, "no stream found" is what a publish gets while the
        // stream elects a new leader (seconds after its leader died): try
        // again later, like a timeout.
        PublishErrorKind::StreamNotFound => PublishError::Unavailable {
            reason: "the stream has no leader (an election on a cluster, or it is missing)",
            source: Some(e),
        },
        _ => PublishError::Unavailable {
            reason: "no acknowledgement from JetStream",
            source: Some(e),
        },
    }
}

/// How long one pull of a reader waits on the server (see [`Bus::read_from`]).
const READER_EXPIRES: Duration = Duration::from_secs(4);

/// Events in stream order from an ordered consumer.
pub struct EventReader {
    messages: consumer::pull::Ordered,
    /// How many matching events existed when the reader started: 0 means
    /// the reader is caught up before it reads anything.
    pub pending_at_start: u64,
}

impl EventReader {
    /// The next event, waiting for one. `None` when the reader ended.
    pub async fn next(&mut self) -> Option<anyhow::Result<RawEvent>> {
        let msg = self.messages.next().await?;
        Some(raw(msg))
    }

    /// The next event if one is already here, without waiting.
    pub fn next_ready(&mut self) -> Option<anyhow::Result<RawEvent>> {
        self.messages.next().now_or_never().flatten().map(raw)
    }

    /// Adds events to `batch` (which holds at least one) up to `max`. While
    /// the last one says more are in the stream (`pending > 0`) it waits for
    /// them, so catching up fills whole batches (about 40k events/s with
    /// the ~130-event batches that "whatever has arrived" gave, against
    /// 120k with 1000); at the live edge it takes only what has arrived, so
    /// a lone event is not held back, and a wait for a reported-pending
    /// event gives up after 5 ms.
    pub async fn fill(&mut self, batch: &mut Vec<RawEvent>, max: usize) -> anyhow::Result<()> {
        while batch.len() < max {
            let more_in_stream = batch.last().is_some_and(|e| e.pending > 0);
            let next = if more_in_stream {
                match tokio::time::timeout(Duration::from_millis(5), self.messages.next()).await {
                    Ok(next) => next,
                    Err(_) => break,
                }
            } else {
                match self.messages.next().now_or_never() {
                    Some(next) => next,
                    None => break,
                }
            };
            match next {
                Some(msg) => batch.push(raw(msg)?),
                None => break,
            }
        }
        Ok(())
    }
}

fn raw(msg: Result<jetstream::Message, consumer::pull::OrderedError>) -> anyhow::Result<RawEvent> {
    let msg = msg.context("reading the event log")?;
    let info = msg
        .info()
        .map_err(|e| anyhow::anyhow!("event without stream info: {e}"))?;
    Ok(RawEvent {
        seq: info.stream_sequence,
        pending: info.pending,
        subject: msg.subject.to_string(),
        payload: msg.payload.clone(),
    })
}
