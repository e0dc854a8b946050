//! What an alert says and how it goes out: a webhook in minilog's JSON,
//! Slack's or Discord's format, with `Minilog-Alert-Id` the same on every
//! retry.

use proto::alert::{AlertRule, Target, WebhookFormat};
use proto::seal::SealKey;
use serde_json::{Value, json};
use std::time::Duration;

/// How long a receiver may take to answer.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// One alert, ready for any target.
#[derive(Clone, Debug)]
pub struct Alert {
    /// The same on every retry: `<rule>-<entry id>`.
    pub alert_id: String,
    /// `new`, `regression`, `every`, `summary` or `test`.
    pub reason: &'static str,
    /// One line: what happened.
    pub title: String,
    /// A few lines for chat and email.
    pub text: String,
    /// Where to look, when the dashboard's address is known.
    pub url: Option<String>,
    /// minilog's JSON body (the group and the entry).
    pub json: Value,
}

/// The words a reason is said with.
pub fn headline(reason: &str) -> &'static str {
    match reason {
        "new" => "New problem",
        "regression" => "Regressed",
        "every" => "Again",
        "summary" => "Alerts held back",
        _ => "Test alert",
    }
}

/// The client alerts go out with (TLS with the system's roots).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(SEND_TIMEOUT)
        .user_agent(concat!("minilog/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("the HTTP client builds")
}

/// Sends an alert for a rule. The error says what went wrong without the
/// webhook's URL (its path is a secret).
pub async fn send(
    http: &reqwest::Client,
    seal: &SealKey,
    rule_id: &str,
    rule: &AlertRule,
    alert: &Alert,
    smtp: Option<&super::email::Smtp>,
) -> Result<(), String> {
    match &rule.target {
        Target::Webhook {
            format,
            sealed_url,
            shown,
        } => {
            let url = seal.open(rule_id, sealed_url).map_err(|e| e.to_string())?;
            let body = match format {
                WebhookFormat::Json => alert.json.clone(),
                WebhookFormat::Slack => json!({ "text": slack_text(alert) }),
                // No pings, whatever the entry's text says.
                WebhookFormat::Discord => json!({
                    "content": discord_text(alert),
                    "allowed_mentions": {"parse": []},
                }),
            };
            let answer = http
                .post(url)
                .header("Minilog-Alert-Id", &alert.alert_id)
                .json(&body)
                .send()
                .await
                .map_err(|e| format!("{shown}: {}", e.without_url()))?;
            let status = answer.status();
            if status.is_success() {
                Ok(())
            } else {
                Err(format!("{shown} answered {status}"))
            }
        }
        Target::Email { to } => match smtp {
            Some(smtp) => smtp.send(to, alert).await,
            None => Err("email alerts need --smtp-url on serve or view".into()),
        },
    }
}

fn slack_text(a: &Alert) -> String {
    let mut s = format!("*{}*: {}", headline(a.reason), escape_slack(&a.title));
    for line in a.text.lines().skip(1) {
        s.push('\n');
        s.push_str(&escape_slack(line));
    }
    if let Some(url) = &a.url {
        s.push_str(&format!("\n<{url}|Open in minilog>"));
    }
    s
}

/// Slack's three control characters.
fn escape_slack(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn discord_text(a: &Alert) -> String {
    let mut s = format!("**{}**: {}", headline(a.reason), a.title);
    for line in a.text.lines().skip(1) {
        s.push('\n');
        s.push_str(line);
    }
    if let Some(url) = &a.url {
        s.push_str(&format!("\n{url}"));
    }
    // Discord's limit is 2000 characters; mentions are not pinged.
    let s: String = s
        .replace("@everyone", "@\u{200b}everyone")
        .replace("@here", "@\u{200b}here");
    s.chars().take(1900).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert() -> Alert {
        Alert {
            alert_id: "al1-7".into(),
            reason: "new",
            title: "[error] disk <full> & @everyone".into(),
            text: "[error] disk <full> & @everyone\n3 entries, key k1".into(),
            url: Some("https://log.example.com/log/groups/ab/".into()),
            json: json!({}),
        }
    }

    #[test]
    fn chat_formats_escape_what_their_markup_would_read() {
        assert_eq!(
            slack_text(&alert()),
            "*New problem*: [error] disk &lt;full&gt; &amp; @everyone\n3 entries, key k1\n<https://log.example.com/log/groups/ab/|Open in minilog>"
        );
        let d = discord_text(&alert());
        assert!(d.starts_with("**New problem**: [error] disk <full> & @\u{200b}everyone"));
        assert!(d.ends_with("https://log.example.com/log/groups/ab/"));
    }
}
