//! Alert rules: when to tell whom (docs/alerts.md). A rule is an event
//! (`AlertAdded`, `AlertRemoved`), so it is audited and replayed; its
//! webhook URL travels sealed (`Target::Webhook::sealed_url`), never in
//! plain text.

use crate::level::Level;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What makes a rule fire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// An entry starts a group.
    New,
    /// An entry reopens a resolved group.
    Regression,
    /// Every matching entry, at most once per group per quiet period.
    Every,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::New => "new",
            Trigger::Regression => "regression",
            Trigger::Every => "every",
        }
    }

    pub fn parse(s: &str) -> Result<Trigger, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "new" => Ok(Trigger::New),
            "regression" | "regressed" => Ok(Trigger::Regression),
            "every" => Ok(Trigger::Every),
            other => Err(format!(
                "{other:?} is not a trigger: use new, regression or every"
            )),
        }
    }
}

/// The body a webhook receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    /// minilog's own JSON: the group, the entry, `url`, `title`, `reason`.
    Json,
    /// Slack's incoming-webhook format (`text`), also Mattermost's.
    Slack,
    /// Discord's (`content`).
    Discord,
}

impl WebhookFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookFormat::Json => "json",
            WebhookFormat::Slack => "slack",
            WebhookFormat::Discord => "discord",
        }
    }

    pub fn parse(s: &str) -> Result<WebhookFormat, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "json" => Ok(WebhookFormat::Json),
            "slack" | "mattermost" => Ok(WebhookFormat::Slack),
            "discord" => Ok(WebhookFormat::Discord),
            other => Err(format!(
                "{other:?} is not a webhook format: use json, slack or discord"
            )),
        }
    }
}

/// Whom to tell.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    /// A webhook; its URL sealed with the alert key (`sealed_url`, see
    /// docs/alerts.md, "Secrets"), `shown` its scheme and host for lists.
    Webhook {
        format: WebhookFormat,
        sealed_url: String,
        shown: String,
    },
    /// Email to these addresses, through the SMTP server `serve`/`view`
    /// are given (`--smtp-url`; its password is never in the stream).
    Email { to: Vec<String> },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertRule {
    pub on: Vec<Trigger>,
    /// Entries below this level do not fire.
    pub min_level: Option<Level>,
    /// Only entries of these keys (`hand` for hand-added ones); empty: any.
    pub keys: Vec<String>,
    /// Only entries whose message holds this text (case-insensitive).
    pub q: Option<String>,
    /// Only entries whose meta has all of these values
    /// (`environment=production`).
    pub meta: BTreeMap<String, String>,
    /// `every`: the quiet period per group, seconds.
    pub min_interval_s: u64,
    /// Alerts per hour at most; past it one summary says how many were
    /// held back.
    pub cap_per_hour: u32,
    pub target: Target,
}

/// The defaults of a rule's limits.
pub const DEFAULT_MIN_INTERVAL_S: u64 = 3600;
pub const DEFAULT_CAP_PER_HOUR: u32 = 20;

impl AlertRule {
    /// Whether an entry (its level, key token, message and meta) passes the
    /// rule's filters. The trigger is decided elsewhere.
    pub fn matches(
        &self,
        level: Level,
        key: &str,
        message: &str,
        meta: &BTreeMap<String, String>,
    ) -> bool {
        self.min_level.is_none_or(|min| level.code() >= min.code())
            && (self.keys.is_empty() || self.keys.iter().any(|k| k == key))
            && self
                .q
                .as_deref()
                .map(str::trim)
                .is_none_or(|q| q.is_empty() || message.to_lowercase().contains(&q.to_lowercase()))
            && self
                .meta
                .iter()
                .all(|(k, v)| meta.get(k).is_some_and(|m| m == v))
    }

    /// The rule in words, for lists and the audit page.
    pub fn describe(&self) -> String {
        let on: Vec<&str> = self.on.iter().map(|t| t.as_str()).collect();
        let mut s = format!("on {}", on.join(", "));
        if let Some(l) = self.min_level {
            s.push_str(&format!(", level {} and up", l.as_str()));
        }
        if !self.keys.is_empty() {
            s.push_str(&format!(", keys {}", self.keys.join(" ")));
        }
        if let Some(q) = &self.q {
            s.push_str(&format!(", text {q:?}"));
        }
        for (k, v) in &self.meta {
            s.push_str(&format!(", {k}={v}"));
        }
        match &self.target {
            Target::Webhook { format, shown, .. } => {
                s.push_str(&format!(" → {} webhook {shown}", format.as_str()))
            }
            Target::Email { to } => s.push_str(&format!(" → email {}", to.join(", "))),
        }
        s
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertAdded {
    pub alert_id: String,
    pub rule: AlertRule,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertRef {
    pub alert_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> AlertRule {
        AlertRule {
            on: vec![Trigger::New],
            min_level: Some(Level::Warn),
            keys: vec!["k1".into()],
            q: Some("Disk".into()),
            meta: [("environment".to_owned(), "production".to_owned())].into(),
            min_interval_s: DEFAULT_MIN_INTERVAL_S,
            cap_per_hour: DEFAULT_CAP_PER_HOUR,
            target: Target::Email {
                to: vec!["ops@example.com".into()],
            },
        }
    }

    #[test]
    fn a_rule_matches_on_level_key_text_and_meta() {
        let r = rule();
        let prod: BTreeMap<String, String> =
            [("environment".to_owned(), "production".to_owned())].into();
        let staging: BTreeMap<String, String> =
            [("environment".to_owned(), "staging".to_owned())].into();
        assert!(r.matches(Level::Error, "k1", "disk full", &prod));
        assert!(r.matches(Level::Warn, "k1", "DISK full", &prod));
        assert!(!r.matches(Level::Info, "k1", "disk full", &prod));
        assert!(!r.matches(Level::Error, "k2", "disk full", &prod));
        assert!(!r.matches(Level::Error, "k1", "cpu hot", &prod));
        assert!(!r.matches(Level::Error, "k1", "disk full", &staging));
        assert!(!r.matches(Level::Error, "k1", "disk full", &BTreeMap::new()));
        assert_eq!(
            r.describe(),
            "on new, level warn and up, keys k1, text \"Disk\", environment=production → email ops@example.com"
        );
    }
}
