//! `minilog tail`: follows a running minilog's live tail
//! (`GET /api/v1/entries/stream`) over HTTP, as a dashboard user with HTTP
//! Basic, and prints each new entry, one a line, until stopped.
//!
//! No other command talks to a running server (the admin commands talk
//! to NATS), so it takes the server's URL (`--url`, `MINILOG_URL`) and a
//! user (`--user`/`MINILOG_USER`, the password from `--password-file` or
//! `MINILOG_PASSWORD`). A dropped connection is made again with
//! `Last-Event-ID`, after a short backoff: nothing is lost or repeated.
//! A connection silent for [`IDLE`] (three keep-alives missed) counts as
//! dropped.

use crate::config::TailArgs;
use anyhow::{Context, bail};
use serde_json::Value;
use std::io::Write;
use std::time::Duration;

/// No bytes for this long (the server sends a keep-alive every 15 s):
/// the connection is gone.
const IDLE: Duration = Duration::from_secs(45);
const BACKOFF_FIRST: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// An event larger than this is not one of ours: the stream is dropped.
const MAX_EVENT_BYTES: usize = 8 << 20;

pub async fn tail(args: TailArgs) -> anyhow::Result<()> {
    let password = password(&args)?;
    let url = format!("{}/api/v1/entries/stream", args.url.trim_end_matches('/'));
    let mut query: Vec<(&str, String)> = Vec::new();
    let join = |v: &[String]| v.join(",");
    if !args.level.is_empty() {
        query.push(("level", join(&args.level)));
    }
    if !args.key.is_empty() {
        query.push(("key", join(&args.key)));
    }
    if let Some(q) = &args.q {
        query.push(("q", q.clone()));
    }
    if let Some(g) = &args.group {
        query.push(("group", g.clone()));
    }
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .build()
        .context("making the HTTP client")?;
    let mut last = args.after;
    let mut backoff = BACKOFF_FIRST;
    let mut out = std::io::stdout();
    loop {
        let mut req = client
            .get(&url)
            .query(&query)
            .basic_auth(&args.user, Some(&password))
            .header(reqwest::header::ACCEPT, "text/event-stream");
        if let Some(id) = last {
            req = req.header("last-event-id", id.to_string());
        }
        match req.send().await {
            Ok(resp) if resp.status().is_success() => {
                match last {
                    Some(id) => eprintln!("minilog tail: connected to {}, after #{id}", args.url),
                    None => eprintln!("minilog tail: connected to {}", args.url),
                }
                backoff = BACKOFF_FIRST;
                match follow(resp, &mut last, args.json, &mut out).await {
                    Ok(Followed::Ended) => {
                        eprintln!("minilog tail: the server ended the stream; reconnecting")
                    }
                    Ok(Followed::OutputClosed) => return Ok(()),
                    Err(e) => eprintln!("minilog tail: connection lost ({e:#}); reconnecting"),
                }
            }
            Ok(resp) => {
                let status = resp.status();
                let body = resp.text().await.unwrap_or_default();
                let message = serde_json::from_str::<Value>(&body)
                    .ok()
                    .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
                    .unwrap_or(body);
                // The server is there but says no: retrying cannot help,
                // except when it is busy or not ready (5xx, 429).
                if !(status.is_server_error() || status.as_u16() == 429) {
                    bail!("{url} answered {status}: {}", message.trim());
                }
                eprintln!(
                    "minilog tail: {url} answered {status}: {}; retrying",
                    message.trim()
                );
            }
            Err(e) => eprintln!("minilog tail: cannot reach {url} ({e}); retrying"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

fn password(args: &TailArgs) -> anyhow::Result<String> {
    match &args.password_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the password file {}", path.display()))?;
            Ok(text.lines().next().unwrap_or("").to_owned())
        }
        None => std::env::var("MINILOG_PASSWORD").map_err(|_| {
            anyhow::anyhow!("give the password with --password-file or MINILOG_PASSWORD")
        }),
    }
}

enum Followed {
    /// The stream ended (the server stopping, or the user's session).
    Ended,
    /// Where we print is gone (`minilog tail | head`): stop.
    OutputClosed,
}

/// Reads events until the stream ends, printing each entry; `last` keeps
/// the id of the last one printed.
async fn follow(
    mut resp: reqwest::Response,
    last: &mut Option<u64>,
    json: bool,
    out: &mut impl Write,
) -> anyhow::Result<Followed> {
    let mut parser = Parser::default();
    loop {
        let chunk = match tokio::time::timeout(IDLE, resp.chunk()).await {
            Err(_) => bail!("nothing heard for {} s", IDLE.as_secs()),
            Ok(chunk) => chunk?,
        };
        let Some(chunk) = chunk else {
            return Ok(Followed::Ended);
        };
        for event in parser.push(&chunk)? {
            let Some(id) = event
                .id
                .as_deref()
                .and_then(|i| i.trim().parse::<u64>().ok())
            else {
                continue;
            };
            if last.is_some_and(|l| id <= l) {
                continue;
            }
            let line = if json {
                event.data.clone()
            } else {
                match serde_json::from_str::<Value>(&event.data) {
                    Ok(entry) => line_of(&entry),
                    Err(_) => continue,
                }
            };
            if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                return Ok(Followed::OutputClosed);
            }
            *last = Some(id);
        }
    }
}

/// `<time> <level> <key> <message's first line>`; control characters
/// (a terminal's escape sequences) shown as `�`.
pub fn line_of(entry: &Value) -> String {
    let text = |name: &str| entry[name].as_str().unwrap_or("").to_owned();
    let key = entry["key_id"].as_str().unwrap_or(proto::subjects::HAND);
    let message = text("message");
    let first = message.lines().next().unwrap_or("");
    let line = format!("{} {} {key} {first}", text("time"), text("level"));
    line.chars()
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect()
}

/// One server-sent event: its `id` and its `data` lines joined.
#[derive(Debug, Default, PartialEq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub data: String,
}

/// Server-sent events from a byte stream, as the HTML standard reads them
/// (lines ending in LF, CRLF or CR; `:` comments; an empty line ends an
/// event).
#[derive(Default)]
pub struct Parser {
    buf: Vec<u8>,
    /// The previous chunk ended in CR: an LF first in this one belongs to it.
    after_cr: bool,
    event: SseEvent,
    has_data: bool,
}

impl Parser {
    /// The events completed by `bytes`.
    pub fn push(&mut self, bytes: &[u8]) -> anyhow::Result<Vec<SseEvent>> {
        let mut done = Vec::new();
        let mut bytes = bytes;
        if self.after_cr && bytes.first() == Some(&b'\n') {
            bytes = &bytes[1..];
        }
        self.after_cr = false;
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\n' | b'\r' => {
                    let line = std::mem::take(&mut self.buf);
                    if bytes[i] == b'\r' {
                        match bytes.get(i + 1) {
                            Some(b'\n') => i += 1,
                            None => self.after_cr = true,
                            Some(_) => {}
                        }
                    }
                    if let Some(event) = self.line(&line) {
                        done.push(event);
                    }
                }
                b => {
                    if self.buf.len() + self.event.data.len() >= MAX_EVENT_BYTES {
                        bail!("an event of more than {MAX_EVENT_BYTES} bytes");
                    }
                    self.buf.push(b);
                }
            }
            i += 1;
        }
        Ok(done)
    }

    fn line(&mut self, line: &[u8]) -> Option<SseEvent> {
        if line.is_empty() {
            let event = std::mem::take(&mut self.event);
            return std::mem::take(&mut self.has_data).then_some(event);
        }
        let line = String::from_utf8_lossy(line);
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line.as_ref(), ""),
        };
        match field {
            "" => {}
            "id" => self.event.id = Some(value.to_owned()),
            "data" => {
                if self.has_data {
                    self.event.data.push('\n');
                }
                self.event.data.push_str(value);
                self.has_data = true;
            }
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_anywhere_read_the_same() {
        let text = b": keep-alive\n\nid: 7\ndata: {\"a\":1}\n\r\nid:8\r\ndata: x\rdata: y\n\n";
        let whole = Parser::default().push(text).unwrap();
        assert_eq!(
            whole,
            vec![
                SseEvent {
                    id: Some("7".into()),
                    data: "{\"a\":1}".into()
                },
                SseEvent {
                    id: Some("8".into()),
                    data: "x\ny".into()
                },
            ]
        );
        for cut in 0..text.len() {
            let mut p = Parser::default();
            let mut got = p.push(&text[..cut]).unwrap();
            got.extend(p.push(&text[cut..]).unwrap());
            assert_eq!(got, whole, "cut at {cut}");
        }
    }

    #[test]
    fn a_line_shows_the_first_line_without_control_characters() {
        let entry = serde_json::json!({
            "time": "2026-01-02T03:04:05.000Z", "level": "error", "key_id": null,
            "message": "boom \u{1b}[31mred\nsecond line",
        });
        assert_eq!(
            line_of(&entry),
            "2026-01-02T03:04:05.000Z error hand boom \u{FFFD}[31mred"
        );
    }
}
