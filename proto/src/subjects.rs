//! Subject and stream names (docs/architecture.md §2), in one place. The prefix is
//! configurable (default `minilog`) so several installations can share a
//! NATS account.

/// The event log.
pub const DEFAULT_PREFIX: &str = "minilog";

/// Subject token used for entries added by hand (no key).
pub const HAND: &str = "hand";

/// The inbox prefix of other programs' connections (the NATS clients'
/// default). The `ingest` user may subscribe below it, and the gateway
/// answers only there (docs/architecture.md §5).
pub const CLIENT_INBOX_PREFIX: &str = "_INBOX";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subjects {
    prefix: String,
}

impl Default for Subjects {
    fn default() -> Self {
        Subjects::new(DEFAULT_PREFIX)
    }
}

impl Subjects {
    pub fn new(prefix: &str) -> Subjects {
        Subjects {
            prefix: prefix.to_owned(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `MINILOG` for the default prefix, `<PREFIX>` upper-cased otherwise.
    pub fn stream(&self) -> String {
        self.prefix.to_ascii_uppercase().replace(['.', '-'], "_")
    }

    /// The work-queue stream that holds direct NATS submissions.
    pub fn ingest_stream(&self) -> String {
        format!("{}_INGEST", self.stream())
    }

    /// Everything the event log holds.
    pub fn all_events(&self) -> String {
        format!("{}.events.>", self.prefix)
    }

    /// `Logged` events of one key, or of hand-added entries (`None`).
    pub fn entry(&self, key_id: Option<&str>) -> String {
        format!("{}.events.entry.{}", self.prefix, key_id.unwrap_or(HAND))
    }

    pub fn all_entries(&self) -> String {
        format!("{}.events.entry.>", self.prefix)
    }

    pub fn triage(&self) -> String {
        format!("{}.events.triage", self.prefix)
    }

    pub fn key(&self, key_id: &str) -> String {
        format!("{}.events.key.{key_id}", self.prefix)
    }

    pub fn all_keys(&self) -> String {
        format!("{}.events.key.>", self.prefix)
    }

    pub fn user(&self, user_id: &str) -> String {
        format!("{}.events.user.{user_id}", self.prefix)
    }

    /// The subject an event belongs on.
    pub fn of(&self, event: &crate::event::Event) -> String {
        use crate::event::Event;
        match event {
            Event::Logged(l) => self.entry(l.key_id.as_deref()),
            Event::Carried(c) => self.entry(c.logged.key_id.as_deref()),
            Event::Resolved(_) | Event::Unresolved(_) => self.triage(),
            Event::KeyCreated(k) => self.key(&k.key_id),
            Event::KeyRevoked(k) | Event::KeyRestored(k) => self.key(&k.key_id),
            Event::KeyChanged(k) => self.key(&k.key_id),
            Event::DsnIssued(d) => self.key(&d.key_id),
            Event::UserCreated(u) => self.user(&u.user_id),
            Event::PasswordChanged(p) => self.user(&p.user_id),
            Event::UserDisabled(u) | Event::UserEnabled(u) => self.user(&u.user_id),
            Event::RoleChanged(r) => self.user(&r.user_id),
            Event::Pruned(_) => self.retention(),
            Event::Quarantined(_) => self.quarantine(),
            Event::AlertAdded(a) => self.alert(&a.alert_id),
            Event::AlertRemoved(a) => self.alert(&a.alert_id),
        }
    }

    /// An alert rule's events (kept by retention, like keys and users).
    pub fn alert(&self, alert_id: &str) -> String {
        format!("{}.events.alert.{alert_id}", self.prefix)
    }

    pub fn all_alerts(&self) -> String {
        format!("{}.events.alert.>", self.prefix)
    }

    pub fn all_users(&self) -> String {
        format!("{}.events.user.>", self.prefix)
    }

    pub fn retention(&self) -> String {
        format!("{}.events.retention", self.prefix)
    }

    /// `Quarantined` events: kept by retention, read before replaying.
    pub fn quarantine(&self) -> String {
        format!("{}.events.quarantine", self.prefix)
    }

    /// The store probe: one tiny stream whose writes tell whether the
    /// server can still store anything (a full disk leaves JetStream
    /// refusing writes until it restarts).
    pub fn probe_stream(&self) -> String {
        format!("{}_PROBE", self.stream())
    }

    pub fn probe(&self) -> String {
        format!("{}.probe", self.prefix)
    }

    /// Durable direct submissions (`MINILOG_INGEST`).
    pub fn ingest(&self) -> String {
        format!("{}.ingest.>", self.prefix)
    }

    /// Synchronous submissions, answered by a gateway.
    pub fn submit(&self) -> String {
        format!("{}.submit.>", self.prefix)
    }

    /// The inbox prefix of minilog's own connections (`_MINILOG_INBOX`):
    /// JetStream delivers the event log, ingest submissions with their key
    /// secrets and every API reply below it, so it must not be `_INBOX`,
    /// which the `ingest` user may read.
    pub fn own_inbox_prefix(&self) -> String {
        format!("_{}_INBOX", self.stream())
    }

    /// Whether the gateway, which publishes with full rights, may answer on
    /// `reply`: only a concrete subject under [`CLIENT_INBOX_PREFIX`], one
    /// the requester could have subscribed to itself. Never minilog's own
    /// subjects or inboxes, nor `$…` (JetStream's API), whatever the
    /// requester names.
    pub fn answerable(&self, reply: &str) -> bool {
        let Some(rest) = reply
            .strip_prefix(CLIENT_INBOX_PREFIX)
            .and_then(|r| r.strip_prefix('.'))
        else {
            return false;
        };
        reply.len() <= 256
            && rest
                .split('.')
                .all(|t| !t.is_empty() && t != "*" && t != ">")
            && !reply
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_match_the_design() {
        let s = Subjects::default();
        assert_eq!(s.stream(), "MINILOG");
        assert_eq!(s.ingest_stream(), "MINILOG_INGEST");
        assert_eq!(s.entry(Some("k7f3a9")), "minilog.events.entry.k7f3a9");
        assert_eq!(s.entry(None), "minilog.events.entry.hand");
        assert_eq!(s.key("k7f3a9"), "minilog.events.key.k7f3a9");
        assert_eq!(s.all_events(), "minilog.events.>");
        assert_eq!(s.own_inbox_prefix(), "_MINILOG_INBOX");
    }

    #[test]
    fn answers_go_only_into_client_inboxes() {
        let s = Subjects::default();
        assert!(s.answerable("_INBOX.abc123"));
        assert!(s.answerable("_INBOX.abc.def"));
        for bad in [
            "minilog.events.triage",
            "minilog.events.key.k7f3a9",
            "$JS.API.STREAM.DELETE.MINILOG",
            "_MINILOG_INBOX.x",
            "_INBOX",
            "_INBOX.",
            "_INBOX..x",
            "_INBOX.*",
            "_INBOX.>",
            "_INBOXES.x",
            "_INBOX.a b",
            "_INBOX.a\r\nPUB x",
            "elsewhere.reply",
        ] {
            assert!(!s.answerable(bad), "{bad:?} must not be answered");
        }
        assert!(!s.answerable(&format!("_INBOX.{}", "a".repeat(300))));
    }
}
