//! The runner's own HTTP client: readiness, read-API latencies (one
//! request at a time, microsecond timing) and end-to-end latency.

use anyhow::{Context, bail};
use std::time::{Duration, Instant};

pub fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .timeout(Duration::from_secs(60))
        .build()?)
}

/// Waits until `GET /readyz` answers 200; answers how long that took.
pub async fn wait_ready(
    c: &reqwest::Client,
    base: &str,
    within: Duration,
    alive: &mut dyn FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        alive()?;
        if let Ok(r) = c.get(format!("{base}/readyz?max_lag=0")).send().await
            && r.status().is_success()
        {
            return Ok(started.elapsed());
        }
        if started.elapsed() > within {
            bail!("{base}/readyz not ready within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Posts one JSON entry; answers its id.
pub async fn post_entry(
    c: &reqwest::Client,
    base: &str,
    secret: &str,
    body: &str,
) -> anyhow::Result<u64> {
    let r = c
        .post(format!("{base}/api/v1/entries"))
        .bearer_auth(secret)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await?;
    let status = r.status();
    let text = r.text().await?;
    if !status.is_success() {
        bail!("POST /api/v1/entries: {status} {text}");
    }
    let v: serde_json::Value = serde_json::from_str(&text)?;
    v["ids"][0].as_u64().context("no id in the answer")
}

/// Waits until the gateway knows the key (its registry reads the stream).
pub async fn wait_key(
    c: &reqwest::Client,
    base: &str,
    secret: &str,
    within: Duration,
) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        match post_entry(c, base, secret, r#"{"message":"key probe","level":"info"}"#).await {
            Ok(_) => return Ok(()),
            Err(e) if started.elapsed() > within => return Err(e.context("the key never worked")),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// How the sampled GETs authenticate.
#[derive(Clone, Copy)]
pub enum Auth<'a> {
    None,
    /// HTTP Basic (the read API).
    Basic(&'a str, &'a str),
    /// A `Cookie` header holding a dashboard session (the HTML pages).
    Cookie(&'a str),
}

/// Logs in on the dashboard's form the way a browser does (the login
/// page's CSRF cookie and field, then the form); answers the `Cookie`
/// header value that carries the session.
pub async fn login(base: &str, user: &str, password: &str) -> anyhow::Result<String> {
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let cookies = |r: &reqwest::Response| -> Vec<String> {
        r.headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.split(';').next())
            .map(str::to_owned)
            .collect()
    };
    let page = c.get(format!("{base}/login")).send().await?;
    let csrf_cookie = cookies(&page).join("; ");
    let html = page.text().await?;
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .context("no csrf field on the login page")?
        .to_owned();
    let form = format!(
        "csrf={csrf}&next=%2Flog%2Flist%2F&name={user}&password={}",
        password
            .replace('%', "%25")
            .replace('&', "%26")
            .replace('+', "%2B")
    );
    let r = c
        .post(format!("{base}/login"))
        .header(reqwest::header::COOKIE, &csrf_cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await?;
    if !r.status().is_redirection() {
        bail!("logging in as {user}: {}", r.status());
    }
    let session = cookies(&r)
        .into_iter()
        .filter(|c| !c.ends_with('='))
        .collect::<Vec<_>>()
        .join("; ");
    anyhow::ensure!(!session.is_empty(), "no session cookie after logging in");
    Ok(session)
}

/// Latencies of `n` GETs, one at a time (after `warm` unmeasured ones).
/// Every answer must be 200.
pub async fn sample_gets(
    c: &reqwest::Client,
    urls: &dyn Fn(u64) -> String,
    auth: Auth<'_>,
    warm: u64,
    n: u64,
) -> anyhow::Result<Vec<Duration>> {
    let mut times = Vec::with_capacity(n as usize);
    for i in 0..warm + n {
        let url = urls(i);
        let mut req = c.get(&url);
        match auth {
            Auth::None => {}
            Auth::Basic(user, pw) => req = req.basic_auth(user, Some(pw)),
            Auth::Cookie(cookie) => req = req.header(reqwest::header::COOKIE, cookie),
        }
        let t = Instant::now();
        let r = req.send().await.with_context(|| format!("GET {url}"))?;
        if r.url().as_str() != url {
            bail!("GET {url} was redirected to {}", r.url());
        }
        let status = r.status();
        let body = r.bytes().await?;
        let took = t.elapsed();
        if !status.is_success() {
            bail!("GET {url}: {status} {}", String::from_utf8_lossy(&body));
        }
        if i >= warm {
            times.push(took);
        }
    }
    times.sort();
    Ok(times)
}

/// The `p` quantile (0..=1) of sorted durations.
pub fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 * p).ceil() as usize).saturating_sub(1);
    sorted[idx.min(sorted.len() - 1)]
}

/// End-to-end latencies at a steady rate.
pub struct E2e {
    /// From the `200` of the POST to the answer of
    /// `GET /api/v1/entries?min_seq=<id>` (the entry is visible), sorted.
    pub visible: Vec<Duration>,
    /// The POSTs themselves, sorted.
    pub post: Vec<Duration>,
    /// Per entry: when it was sent (since the start), the POST, the wait.
    pub samples: Vec<(Duration, Duration, Duration)>,
    pub errors: u64,
    pub first_error: Option<String>,
    /// The rate the requests were actually started at.
    pub rate: f64,
}

/// Posts one entry every `1/rate` seconds for `secs` seconds; each is then
/// read back with `min_seq` (which waits until the projection has it).
pub async fn end_to_end(
    c: &reqwest::Client,
    base: &str,
    secret: &str,
    admin: (&str, &str),
    rate: u64,
    secs: u64,
) -> anyhow::Result<E2e> {
    let total = rate * secs;
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = tokio::task::JoinSet::new();
    let started = Instant::now();
    for i in 0..total {
        ticker.tick().await;
        let (c, base, secret) = (c.clone(), base.to_owned(), secret.to_owned());
        let (user, pw) = (admin.0.to_owned(), admin.1.to_owned());
        tasks.spawn(async move {
            let body = format!(
                r#"{{"message":"end to end {i} on worker {}","level":"warn","source":"e2e"}}"#,
                i % 7
            );
            let t0 = Instant::now();
            let sent = t0 - started;
            let id = post_entry(&c, &base, &secret, &body).await?;
            let t200 = Instant::now();
            let r = c
                .get(format!("{base}/api/v1/entries?min_seq={id}&limit=1"))
                .basic_auth(user, Some(pw))
                .send()
                .await?;
            let status = r.status();
            let _ = r.bytes().await?;
            let seen = Instant::now();
            if !status.is_success() {
                bail!("GET ?min_seq={id}: {status}");
            }
            Ok::<_, anyhow::Error>((sent, t200 - t0, seen - t200))
        });
    }
    let sending = started.elapsed();
    let mut out = E2e {
        visible: Vec::new(),
        post: Vec::new(),
        samples: Vec::new(),
        errors: 0,
        first_error: None,
        rate: total as f64 / sending.as_secs_f64(),
    };
    while let Some(r) = tasks.join_next().await {
        match r? {
            Ok((sent, post, visible)) => {
                out.samples.push((sent, post, visible));
                out.post.push(post);
                out.visible.push(visible);
            }
            Err(e) => {
                out.errors += 1;
                out.first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    out.samples.sort();
    out.post.sort();
    out.visible.sort();
    Ok(out)
}
