//! Runs `hey` (Debian's package: a fixed number of requests, keep-alive,
//! `-c` workers) and reads its summary.

use anyhow::{Context, bail};
use std::time::Duration;

/// One `hey` run against one URL.
#[derive(Clone, Debug)]
pub struct Load {
    pub url: String,
    pub n: u64,
    pub c: u64,
    pub method: &'static str,
    pub body: Option<Body>,
    pub content_type: Option<&'static str>,
    pub headers: Vec<String>,
}

#[derive(Clone, Debug)]
pub enum Body {
    Text(String),
    File(std::path::PathBuf),
}

#[derive(Clone, Debug)]
pub struct HeyResult {
    pub rps: f64,
    pub p50: Duration,
    pub p99: Duration,
    /// Responses with status 200.
    pub ok: u64,
    pub n: u64,
    /// Other status codes and errors, as hey printed them.
    pub other: Vec<String>,
}

impl HeyResult {
    pub fn all_ok(&self) -> bool {
        self.ok == self.n && self.other.is_empty()
    }
}

impl Load {
    pub fn get(url: String, n: u64, c: u64) -> Load {
        Load {
            url,
            n,
            c,
            method: "GET",
            body: None,
            content_type: None,
            headers: Vec::new(),
        }
    }

    pub async fn run(&self) -> anyhow::Result<HeyResult> {
        let mut cmd = tokio::process::Command::new("hey");
        cmd.args(["-n", &self.n.to_string(), "-c", &self.c.to_string()])
            .args(["-m", self.method, "-t", "30"]);
        match &self.body {
            Some(Body::Text(t)) => {
                cmd.args(["-d", t]);
            }
            Some(Body::File(p)) => {
                cmd.arg("-D").arg(p);
            }
            None => {}
        }
        if let Some(t) = self.content_type {
            cmd.args(["-T", t]);
        }
        for h in &self.headers {
            cmd.args(["-H", h]);
        }
        cmd.arg(&self.url);
        cmd.kill_on_drop(true);
        let out = cmd
            .output()
            .await
            .context("running hey (install it: apt-get install -y hey)")?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            bail!(
                "hey failed ({}): {}{}",
                out.status,
                text,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // hey gives each of its `c` workers n / c requests.
        let sent = (self.n / self.c.max(1)) * self.c.max(1);
        parse(&text, sent).with_context(|| format!("reading hey's summary:\n{text}"))
    }
}

fn secs(text: &str) -> Option<Duration> {
    text.trim().parse::<f64>().ok().map(Duration::from_secs_f64)
}

/// Reads `Requests/sec:`, the `50%`/`99%` latency lines and the status
/// code and error distributions of hey's summary.
pub fn parse(text: &str, n: u64) -> anyhow::Result<HeyResult> {
    let mut rps = None;
    let (mut p50, mut p99, mut slowest) = (None, None, None);
    let mut ok = 0;
    let mut other = Vec::new();
    let mut section = "";
    for line in text.lines() {
        let l = line.trim();
        if let Some(v) = l.strip_prefix("Slowest:") {
            slowest = secs(v.trim_end_matches("secs"));
        } else if let Some(v) = l.strip_prefix("Requests/sec:") {
            rps = v.trim().parse::<f64>().ok();
        } else if let Some(v) = l.strip_prefix("50% in ") {
            p50 = secs(v.trim_end_matches("secs"));
        } else if let Some(v) = l.strip_prefix("99% in ") {
            p99 = secs(v.trim_end_matches("secs"));
        } else if l.starts_with("Status code distribution:") {
            section = "status";
        } else if l.starts_with("Error distribution:") {
            section = "error";
        } else if l.is_empty() {
            section = "";
        } else if section == "status" {
            // `[200]	20000 responses`
            let mut parts = l.split_whitespace();
            let code = parts.next().unwrap_or("");
            let count: u64 = parts.next().and_then(|c| c.parse().ok()).unwrap_or(0);
            if code == "[200]" {
                ok += count;
            } else {
                other.push(l.to_owned());
            }
        } else if section == "error" {
            other.push(l.to_owned());
        }
    }
    Ok(HeyResult {
        rps: rps.context("no Requests/sec")?,
        p50: p50.context("no 50% line")?,
        // hey prints no 99% line for fewer than 100 requests: the slowest then.
        p99: p99.or(slowest).context("no 99% line")?,
        ok,
        n,
        other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_summary() {
        let text = "\nSummary:\n  Total:\t1.0 secs\n  Requests/sec:\t1234.5678\n\n\
            Latency distribution:\n  10% in 0.0001 secs\n  50% in 0.0003 secs\n  99% in 0.0020 secs\n\n\
            Status code distribution:\n  [200]\t990 responses\n  [429]\t10 responses\n\n\
            Error distribution:\n  [3]\tGet ...: connection refused\n";
        let r = parse(text, 1000).unwrap();
        assert_eq!(r.rps, 1234.5678);
        assert_eq!(r.p50, Duration::from_secs_f64(0.0003));
        assert_eq!(r.p99, Duration::from_secs_f64(0.002));
        assert_eq!(r.ok, 990);
        assert_eq!(r.other.len(), 2);
        assert!(!r.all_ok());
    }
}
