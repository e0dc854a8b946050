//! Email alerts over SMTP (lettre): `--smtp-url smtp://user:pass@host:587`
//! (STARTTLS, required), `smtps://…:465` (TLS from the first byte), or
//! `smtp://host:25?tls=none` (a relay on the same machine); `--smtp-from`
//! the sender; `--smtp-ca-file` a CA to trust besides the system's. The
//! password stays in the process's arguments or environment, never in the
//! event log. Each alert is one message with a plain-text and an HTML part.

use super::send::{Alert, headline};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;

/// How long one email may take, connection to the last answer.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// An SMTP server to send through.
pub struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// `host:port`, for errors.
    shown: String,
}

impl Smtp {
    /// From `--smtp-url`, `--smtp-from` and `--smtp-ca-file`; errors say
    /// what to fix.
    pub fn new(url: &str, from: &str, ca_pem: Option<&[u8]>) -> anyhow::Result<Smtp> {
        let (scheme, rest) = url.split_once("://").ok_or_else(|| {
            anyhow::anyhow!("--smtp-url must look like smtp://user:pass@host:587")
        })?;
        // The user and password first: a password may hold `?` or `:`.
        let (auth, rest) = match rest.rsplit_once('@') {
            Some((a, h)) => (Some(a), h),
            None => (None, rest),
        };
        let (hostport, query) = rest.split_once('?').unwrap_or((rest, ""));
        let hostport = hostport.trim_end_matches('/');
        let implicit = match scheme {
            "smtp" => false,
            "smtps" => true,
            other => anyhow::bail!("--smtp-url: {other}:// is not smtp:// or smtps://"),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>()
                    .map_err(|_| anyhow::anyhow!("--smtp-url: the port is not a number"))?,
            ),
            None => (hostport, if implicit { 465 } else { 587 }),
        };
        anyhow::ensure!(!host.is_empty(), "--smtp-url has no host");
        let plain = query.split('&').any(|p| p == "tls=none");
        anyhow::ensure!(
            !(plain && auth.is_some()),
            "--smtp-url: tls=none would send the password in clear; use TLS or no login"
        );
        let tls = if plain {
            anyhow::ensure!(
                !implicit,
                "--smtp-url: smtps:// with tls=none makes no sense"
            );
            Tls::None
        } else {
            let mut params = TlsParameters::builder(host.to_owned());
            if let Some(pem) = ca_pem {
                params = params.add_root_certificate(
                    Certificate::from_pem(pem)
                        .map_err(|e| anyhow::anyhow!("--smtp-ca-file: {e}"))?,
                );
            }
            let params = params
                .build_rustls()
                .map_err(|e| anyhow::anyhow!("--smtp-url: TLS settings: {e}"))?;
            if implicit {
                Tls::Wrapper(params)
            } else {
                Tls::Required(params)
            }
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .tls(tls)
            .timeout(Some(Duration::from_secs(20)));
        if let Some(auth) = auth {
            let (user, pass) = auth.split_once(':').unwrap_or((auth, ""));
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            };
            builder = builder.credentials(Credentials::new(decode(user), decode(pass)));
        }
        let from: Mailbox = from
            .parse()
            .map_err(|e| anyhow::anyhow!("--smtp-from {from:?}: {e}"))?;
        Ok(Smtp {
            transport: builder.build(),
            from,
            shown: format!("{host}:{port}"),
        })
    }

    pub async fn send(&self, to: &[String], alert: &Alert) -> Result<(), String> {
        let mut message = Message::builder().from(self.from.clone()).subject(format!(
            "{}: {}",
            headline(alert.reason),
            alert.title
        ));
        for addr in to {
            let mailbox: Mailbox = addr
                .parse()
                .map_err(|e| format!("{addr:?} is not an address: {e}"))?;
            message = message.to(mailbox);
        }
        let email = message
            .multipart(MultiPart::alternative_plain_html(plain(alert), html(alert)))
            .map_err(|e| format!("building the email: {e}"))?;
        match tokio::time::timeout(SEND_TIMEOUT, self.transport.send(email)).await {
            Ok(sent) => sent
                .map(|_| ())
                .map_err(|e| format!("SMTP {}: {e}", self.shown)),
            Err(_) => Err(format!(
                "SMTP {}: no answer within {} s",
                self.shown,
                SEND_TIMEOUT.as_secs()
            )),
        }
    }
}

/// Lines of the newest entry's message an email shows (a traceback's worth).
const ENTRY_LINES: usize = 60;

/// The newest (triggering) entry: "Newest entry #ID, TIME" and its message,
/// up to [`ENTRY_LINES`] lines. Chat targets keep to the title; an email
/// has room for the whole story.
fn newest_entry(a: &Alert) -> Option<(String, String)> {
    let entry = a.json.get("entry")?;
    let id = entry.get("id")?.as_u64()?;
    let when = entry
        .get("time")
        .or_else(|| entry.get("received"))
        .and_then(|t| t.as_str())
        .unwrap_or("");
    let message = entry.get("message")?.as_str()?;
    let mut shown: Vec<&str> = message.lines().take(ENTRY_LINES).collect();
    let more = message.lines().count().saturating_sub(ENTRY_LINES);
    let note;
    if more > 0 {
        note = format!("… {more} more lines in minilog");
        shown.push(&note);
    }
    Some((format!("Newest entry #{id}, {when}"), shown.join("\n")))
}

fn plain(a: &Alert) -> String {
    let mut s = format!("{}\n\n{}\n", headline(a.reason), a.text);
    if let Some((head, message)) = newest_entry(a) {
        s.push_str(&format!("\n{head}:\n{message}\n"));
    }
    s.push_str(&format!("\nAlert {}\n", a.alert_id));
    s
}

/// Text for HTML: `&`, `<`, `>` and `"` escaped (attributes in double quotes too).
pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn html(a: &Alert) -> String {
    let mut lines = a.text.lines();
    let title = lines.next().unwrap_or("");
    let rest: Vec<String> = lines
        .filter(|l| Some(*l) != a.url.as_deref())
        .map(|l| format!("<p>{}</p>", escape(l)))
        .collect();
    let link = a.url.as_deref().map_or_else(String::new, |u| {
        format!(r#"<p><a href="{}">Open in minilog</a></p>"#, escape(u))
    });
    let entry = newest_entry(a).map_or_else(String::new, |(head, message)| {
        format!(
            "<p>{}:</p><pre style=\"white-space:pre-wrap\">{}</pre>",
            escape(&head),
            escape(&message)
        )
    });
    format!(
        "<!doctype html><html><body><h2>{}</h2><p><strong>{}</strong></p>{}{entry}{link}<p style=\"color:#666\">Alert {}</p></body></html>",
        escape(headline(a.reason)),
        escape(title),
        rest.join(""),
        escape(&a.alert_id)
    )
}
