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
}

impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings {
            duplicate_window: Duration::from_secs(600),
            replicas: 1,
        }
    }
}

/// Why a publish did not store the event.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// NATS is down or did not acknowledge in time: try again later (503).
    #[error("the event log is unavailable: {0}")]
    Unavailable(String),
    /// A create-once publish found the subject already in use.
    #[error("already exists")]
    Conflict,
    /// NATS refused the message itself (too large, no stream).
    #[error("the event log refused the event: {0}")]
    Refused(String),
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
pub struct PendingAck(jetstream::context::PublishAckFuture);

impl PendingAck {
    /// Waits for JetStream's acknowledgement.
    pub async fn stored(self) -> Result<Stored, PublishError> {
        let ack = self.0.into_future().await.map_err(map_publish_error)?;
        Ok(Stored {
            seq: ack.sequence,
            duplicate: ack.duplicate,
        })
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
}

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
        })
    }

    pub fn subjects(&self) -> &Subjects {
        &self.subjects
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
        Ok(())
    }

    /// Publishes an event and waits for JetStream's acknowledgement.
    pub async fn publish(
        &self,
        subject: String,
        env: &Envelope,
        msg_id: &str,
    ) -> Result<Stored, PublishError> {
        let msg = jetstream::message::PublishMessage::build()
            .payload(env.encode().into())
            .message_id(msg_id);
        self.send(subject, msg).await
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

    async fn start(
        &self,
        subject: String,
        msg: jetstream::message::PublishMessage,
    ) -> Result<PendingAck, PublishError> {
        // The client buffers publishes while it reconnects; a publish that
        // times out might still be delivered later. Refuse up front instead.
        if !self.is_connected() {
            return Err(PublishError::Unavailable("not connected to NATS".into()));
        }
        let ack = self
            .js
            .send_publish(subject, msg)
            .await
            .map_err(map_publish_error)?;
        Ok(PendingAck(ack))
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
        let stream = self
            .js
            .get_stream(self.subjects.stream())
            .await
            .context("looking up the event log stream")?;
        match stream.get_last_raw_message_by_subject(subject).await {
            Ok(msg) => Ok(Some((msg.sequence, msg.payload))),
            Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(anyhow::anyhow!("reading the last event on {subject}: {e}")),
        }
    }

    /// The last sequence in the event log (0 when empty).
    pub async fn last_seq(&self) -> anyhow::Result<u64> {
        let mut stream = self
            .js
            .get_stream(self.subjects.stream())
            .await
            .context("looking up the event log stream")?;
        let info = stream
            .info()
            .await
            .context("reading the event log's state")?;
        Ok(info.state.last_sequence)
    }

    /// Reads the event log from `start` on, optionally only `filter`
    /// subjects, with an ordered consumer (no acks, recreated on gaps).
    pub async fn read_from(
        &self,
        start: u64,
        filter: Option<String>,
    ) -> anyhow::Result<EventReader> {
        let stream = self
            .js
            .get_stream(self.subjects.stream())
            .await
            .context("looking up the event log stream")?;
        let consumer = stream
            .create_consumer(consumer::pull::OrderedConfig {
                deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: start.max(1),
                },
                filter_subject: filter.unwrap_or_default(),
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
        PublishErrorKind::MaxPayloadExceeded | PublishErrorKind::StreamNotFound => {
            PublishError::Refused(e.to_string())
        }
        _ => PublishError::Unavailable(e.to_string()),
    }
}

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
