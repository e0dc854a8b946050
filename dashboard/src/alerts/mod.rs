//! Alerts (docs/alerts.md): a notifier follows the entry events through a
//! durable JetStream consumer every `view` shares, so each entry is looked
//! at by one of them; for each rule it matches and fires on (a new group, a
//! regression, every entry after a quiet period), it sends one alert.
//!
//! Delivery, at most once after a success: an alert's id is `<rule>-<entry
//! id>`; after a 2xx it is written to the alerts bucket (`sent.<id>`), and
//! an entry is acked once every alert it fired was delivered (or held back
//! by the cap). A failed send leaves the entry unacked, redelivered with
//! backoff for 24 hours; the alerts sent already are skipped then. Only a
//! crash between a 2xx and that write sends one again, with the same
//! `Minilog-Alert-Id`, so a receiver can drop it.
//!
//! Storms: each rule sends at most `cap_per_hour` alerts per window (an
//! hour); what is held back is counted, and once the window is over one
//! summary says how many.

pub mod email;
pub mod send;

use crate::Dashboard;
use async_nats::jetstream::kv::Store;
use proto::alert::{AlertRule, Trigger};
use proto::bus::IngestMessage;
use proto::event::{Envelope, Event};
use proto::seal::SealKey;
use send::Alert;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long failed alerts are retried.
pub const RETRY_FOR: Duration = Duration::from_secs(24 * 3600);

/// What the notifier is given.
pub struct Settings {
    pub seal: Arc<SealKey>,
    /// The dashboard's address for links (`--public-url`).
    pub public_url: Option<String>,
    /// The window a rule's cap counts in (an hour).
    pub cap_window: Duration,
    /// How long a failing alert is tried again ([`RETRY_FOR`], a day).
    pub retry_for: Duration,
    pub smtp: Option<Arc<email::Smtp>>,
    /// Whether this process sends alerts (`--no-alerts`: another does).
    pub enabled: bool,
}

/// How a rule's alerts went (the health and alerts pages): every
/// notifier's counts together, kept in the alerts bucket (`stat.RULE`) so
/// each view shows the same and a restart keeps them; this process's own
/// news shows at once, the others' within a tick (5 s).
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct RuleStatus {
    pub sent: u64,
    pub failed: u64,
    pub held: u64,
    /// Alerts given up after `retry_for` of failures.
    pub given_up: u64,
    /// When (Unix ms) and what.
    pub last_error: Option<(i64, String)>,
}

pub type Status = Arc<Mutex<BTreeMap<String, RuleStatus>>>;

/// `total` with `delta`'s counts added and the newer of the two last errors.
fn add_status(total: &mut RuleStatus, delta: &RuleStatus) {
    total.sent += delta.sent;
    total.failed += delta.failed;
    total.held += delta.held;
    total.given_up += delta.given_up;
    if delta.last_error.as_ref().map(|e| e.0) > total.last_error.as_ref().map(|e| e.0) {
        total.last_error.clone_from(&delta.last_error);
    }
}

struct Notifier {
    d: Dashboard,
    /// Rules whose target just failed: until when it is not tried again,
    /// and why.
    cooling: Mutex<BTreeMap<String, (std::time::Instant, String)>>,
    /// Per rule, the start of its cap window as last read: it cannot
    /// change before the window is over, so a flood does not read it for
    /// every entry.
    windows: Mutex<BTreeMap<String, i64>>,
    /// Per rule, the window whose cap is reached: counts only grow inside
    /// a window, so the rest of it is held back without reading the count.
    full: Mutex<BTreeMap<String, i64>>,
    /// What [`Self::note`] counted since the last [`Self::share`].
    news: Mutex<BTreeMap<String, RuleStatus>>,
    settings: Arc<Settings>,
    http: reqwest::Client,
    kv: Store,
    status: Status,
}

/// Follows the stream and sends alerts until `shutdown` resolves; comes
/// back after NATS trouble.
pub async fn run(
    d: Dashboard,
    settings: Arc<Settings>,
    status: Status,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut backoff = Duration::from_millis(500);
    loop {
        match follow(&d, &settings, &status, shutdown.as_mut()).await {
            Ok(()) => return,
            Err(e) => tracing::warn!("alerts: {e:#}; trying again in {backoff:?}"),
        }
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

/// Follows until `shutdown` (then `Ok`, with this process's counts shared
/// first) or a failure.
async fn follow(
    d: &Dashboard,
    settings: &Arc<Settings>,
    status: &Status,
    mut shutdown: std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
) -> anyhow::Result<()> {
    let bus = &d.inner.bus;
    // No rule, no reading: entries cost nothing here until one exists.
    let mut applied = d.inner.projector.applied.clone();
    let start = loop {
        if let Some(first) = d
            .inner
            .projection
            .alerts()?
            .iter()
            .map(|(_, r)| r.seq)
            .min()
        {
            break first;
        }
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            changed = applied.changed() => {
                if changed.is_err() {
                    anyhow::bail!("the projector stopped");
                }
            }
        }
    };
    let kv = tokio::select! {
        _ = &mut shutdown => return Ok(()),
        kv = bus.alert_state() => kv?,
    };
    let mut reader = tokio::select! {
        _ = &mut shutdown => return Ok(()),
        reader = bus.read_for_alerts(start) => reader?,
    };
    let n = Notifier {
        d: d.clone(),
        cooling: Mutex::default(),
        windows: Mutex::default(),
        full: Mutex::default(),
        news: Mutex::default(),
        settings: settings.clone(),
        http: send::client(),
        kv,
        status: status.clone(),
    };
    let mut tick = tokio::time::interval(
        Duration::from_secs(5)
            .min(settings.cap_window / 2)
            .max(Duration::from_millis(200)),
    );
    loop {
        tokio::select! {
            _ = &mut shutdown => {
                n.share_before_exit().await;
                return Ok(());
            }
            _ = tick.tick() => {
                let work = async {
                    n.summaries().await;
                    n.share().await;
                };
                if finish_or_stop(work, shutdown.as_mut()).await {
                    n.share_before_exit().await;
                    return Ok(());
                }
            }
            m = reader.next() => match m {
                None => anyhow::bail!("the alerts consumer ended"),
                Some(Err(e)) => return Err(e),
                Some(Ok(m)) => {
                    if finish_or_stop(n.handle(m), shutdown.as_mut()).await {
                        n.share_before_exit().await;
                        return Ok(());
                    }
                }
            },
        }
    }
}

/// Runs `work` to its end, or, once `shutdown` resolves, for at most
/// [`STOP_GRACE`] more (an alert whose 2xx came is then marked sent, not
/// sent again by whoever gets the entry next). True when shutting down.
async fn finish_or_stop(
    work: impl std::future::Future<Output = ()>,
    mut shutdown: std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
) -> bool {
    tokio::pin!(work);
    tokio::select! {
        _ = &mut work => false,
        _ = &mut shutdown => {
            // Cut short past the grace: not acked, so the entry comes back.
            let _ = tokio::time::timeout(STOP_GRACE, &mut work).await;
            true
        }
    }
}

/// How long a stopping notifier lets the entry or tick at hand finish.
const STOP_GRACE: Duration = Duration::from_secs(3);

impl Notifier {
    /// Sends an alert through the rule's target.
    async fn send(&self, rule_id: &str, rule: &AlertRule, alert: &Alert) -> Result<(), String> {
        let smtp = self.settings.smtp.as_deref();
        send::send(&self.http, &self.settings.seal, rule_id, rule, alert, smtp).await
    }

    /// Counts what happened to a rule's alert: at once on this process's
    /// pages, and as news for the bucket at the next tick ([`Self::share`]).
    fn note(&self, rule: &str, f: impl Fn(&mut RuleStatus)) {
        f(self
            .status
            .lock()
            .expect("status lock")
            .entry(rule.to_owned())
            .or_default());
        f(self
            .news
            .lock()
            .expect("news lock")
            .entry(rule.to_owned())
            .or_default());
    }

    /// Adds this process's news to the bucket's totals (one compare-and-set
    /// per rule), then shows the totals: what every notifier counted.
    async fn share(&self) {
        let news = std::mem::take(&mut *self.news.lock().expect("news lock"));
        for (rule, delta) in news {
            if let Err(e) = self.merge(&rule, &delta).await {
                tracing::warn!(rule = %rule, "alerts: counts not shared yet: {e:#}");
                let mut back = self.news.lock().expect("news lock");
                let pending = back.entry(rule).or_default();
                add_status(pending, &delta);
            }
        }
        let Ok(rules) = self.d.inner.projection.alerts() else {
            return;
        };
        for (rule, _) in rules {
            if let Ok(Some(e)) = self.kv.entry(&format!("stat.{rule}")).await
                && let Ok(mut total) = serde_json::from_slice::<RuleStatus>(&e.value)
            {
                // News that came meanwhile stays counted.
                if let Some(pending) = self.news.lock().expect("news lock").get(&rule) {
                    add_status(&mut total, pending);
                }
                self.status.lock().expect("status lock").insert(rule, total);
            }
        }
    }

    /// [`Self::share`] at shutdown, bounded: a NATS that is gone must not
    /// hold the process up (the counts of the last seconds are lost then).
    async fn share_before_exit(&self) {
        if tokio::time::timeout(Duration::from_secs(2), self.share())
            .await
            .is_err()
        {
            tracing::warn!("alerts: the last counts were not shared (NATS did not answer)");
        }
    }

    async fn merge(&self, rule: &str, delta: &RuleStatus) -> anyhow::Result<()> {
        self.change(&format!("stat.{rule}"), |old| {
            let mut total: RuleStatus = match old {
                Some(v) if !v.is_empty() => serde_json::from_slice(v)?,
                _ => RuleStatus::default(),
            };
            add_status(&mut total, delta);
            Ok(serde_json::to_vec(&total)?)
        })
        .await?;
        Ok(())
    }

    /// Replaces a value in the bucket by `f` of the one there (none: not
    /// there yet), compare and swap, so notifiers in several views change
    /// it together; answers the value stored.
    async fn change(
        &self,
        key: &str,
        f: impl Fn(Option<&[u8]>) -> anyhow::Result<Vec<u8>>,
    ) -> anyhow::Result<Vec<u8>> {
        for _ in 0..20 {
            let found = self.kv.entry(key).await?;
            let value = f(found.as_ref().map(|e| &e.value[..]))?;
            let stored = match &found {
                Some(e) => self
                    .kv
                    .update(key, value.clone().into(), e.revision)
                    .await
                    .is_ok(),
                None => self.kv.create(key, value.clone().into()).await.is_ok(),
            };
            if stored {
                return Ok(value);
            }
        }
        anyhow::bail!("{key} kept changing")
    }

    async fn handle(&self, m: IngestMessage) {
        // Still working on it: JetStream must not hand it to another view
        // meanwhile (a slow receiver, the projector catching up).
        let work = self.alerts_for(&m);
        tokio::pin!(work);
        let mut progress = tokio::time::interval(Duration::from_secs(20));
        progress.tick().await;
        let outcome = loop {
            tokio::select! {
                r = &mut work => break r,
                _ = progress.tick() => { let _ = m.in_progress().await; }
            }
        };
        let expired =
            proto::clock::now_ms() - m.published_ms > self.settings.retry_for.as_millis() as i64;
        match outcome {
            Ok(failed) if failed.is_empty() => {
                let _ = m.ack().await;
            }
            Ok(failed) if expired => {
                tracing::warn!(
                    "alerts: entry {} given up after {:?} of failures",
                    m.seq,
                    self.settings.retry_for
                );
                for rule in failed {
                    self.note(&rule, |s| s.given_up += 1);
                }
                let _ = m.ack().await;
            }
            Err(_) if expired => {
                tracing::warn!("alerts: entry {} given up", m.seq);
                let _ = m.ack().await;
            }
            Ok(_) => {
                // 2 s, 4 s, 8 s … up to an hour.
                let delay = Duration::from_secs(2 << (m.delivered.clamp(1, 12) - 1) as u32)
                    .min(Duration::from_secs(3600));
                let _ = m.retry_later(delay).await;
            }
            Err(e) => {
                tracing::warn!("alerts: entry {}: {e:#}", m.seq);
                let _ = m.retry_later(Duration::from_secs(5)).await;
            }
        }
    }

    /// Sends what the entry at `m.seq` fires; answers the rules whose
    /// alert failed (none: all of it is done, sent or held back by a cap).
    async fn alerts_for(&self, m: &IngestMessage) -> anyhow::Result<Vec<String>> {
        let Ok(env) = Envelope::decode(m.payload()) else {
            return Ok(Vec::new());
        };
        if !matches!(env.event, Event::Logged(_)) {
            return Ok(Vec::new());
        }
        // The rules as of this entry, its group and the group's history:
        // all in the projection once it has applied the entry.
        self.d
            .wait_for(m.seq)
            .await
            .map_err(|e| anyhow::anyhow!("waiting for the projector: {e}"))?;
        let projection = &self.d.inner.projection;
        let rules = projection.alerts()?;
        if rules.is_empty() {
            return Ok(Vec::new());
        }
        let Some(entry) = projection.entry(m.seq)? else {
            tracing::info!("alerts: entry {} is gone (retention), skipped", m.seq);
            return Ok(Vec::new());
        };
        let Some(group) = projection.group(&entry.group)? else {
            return Ok(Vec::new());
        };
        let mut failed = Vec::new();
        for (rule_id, rec) in rules {
            // A rule sees the entries that came after it.
            if rec.seq > m.seq
                || !rec
                    .rule
                    .matches(entry.level, entry.key_token(), &entry.message, &entry.meta)
            {
                continue;
            }
            let Some(reason) = self.reason(&rec.rule, m.seq, &entry.group, &group)? else {
                continue;
            };
            let alert = self.alert(&rule_id, reason, m.seq, &entry, &group)?;
            if let Err(e) = self.deliver(&rule_id, &rec.rule, &entry.group, alert).await {
                tracing::warn!(rule = %rule_id, entry = m.seq, "alert not delivered: {e}");
                self.note(&rule_id, |s| {
                    s.failed += 1;
                    s.last_error = Some((proto::clock::now_ms(), e.clone()));
                });
                failed.push(rule_id);
            }
        }
        Ok(failed)
    }

    /// Why the rule fires for the entry at `seq`, if it does.
    fn reason(
        &self,
        rule: &AlertRule,
        seq: u64,
        gid: &str,
        group: &projector::groups::GroupRecord,
    ) -> anyhow::Result<Option<Trigger>> {
        if rule.on.contains(&Trigger::New) && group.first_entry_id == seq {
            return Ok(Some(Trigger::New));
        }
        if rule.on.contains(&Trigger::Regression)
            && self
                .d
                .inner
                .projection
                .group_event_at(gid, seq)?
                .is_some_and(|e| e.kind == projector::groups::GroupEventKind::Regressed)
        {
            return Ok(Some(Trigger::Regression));
        }
        Ok(rule.on.contains(&Trigger::Every).then_some(Trigger::Every))
    }

    fn alert(
        &self,
        rule_id: &str,
        reason: Trigger,
        seq: u64,
        entry: &projector::record::EntryRecord,
        group: &projector::groups::GroupRecord,
    ) -> anyhow::Result<Alert> {
        let first_line: String = entry
            .message
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(200)
            .collect();
        let title = format!("[{}] {first_line}", entry.level.as_str());
        let url = self.link(&format!("/log/groups/{}/", entry.group));
        let mut text = format!(
            "{title}\n{} entries ({} open) in its group, key {}",
            group.count,
            group.open_count,
            entry.key_token()
        );
        if let Some(u) = &url {
            text.push_str(&format!("\n{u}"));
        }
        let mut keys = std::collections::HashMap::new();
        let body = json!({
            "alert_id": format!("{rule_id}-{seq}"),
            "reason": reason.as_str(),
            "rule": rule_id,
            "title": title,
            "url": url,
            "group": crate::groups_api::group_json(&entry.group, group),
            "entry": self.d.entry_json(seq, entry, &mut keys)
                .map_err(|e| anyhow::anyhow!("{e}"))?,
        });
        Ok(Alert {
            alert_id: format!("{rule_id}-{seq}"),
            reason: reason.as_str(),
            title,
            text,
            url,
            json: body,
        })
    }

    fn link(&self, path: &str) -> Option<String> {
        self.settings
            .public_url
            .as_deref()
            .map(|u| format!("{}{path}", u.trim_end_matches('/')))
    }

    fn window_ms(&self) -> i64 {
        self.settings.cap_window.as_millis().max(1) as i64
    }

    /// The start (Unix ms) of the rule's current cap window: a window
    /// opens with the first alert after the last one closed, so a flood
    /// falls in one window. Closing one sends its summary.
    async fn window(&self, rule_id: &str, rule: &AlertRule) -> anyhow::Result<i64> {
        let now = proto::clock::now_ms();
        let cached = self
            .windows
            .lock()
            .expect("windows lock")
            .get(rule_id)
            .copied();
        if let Some(start) = cached
            && now < start + self.window_ms()
        {
            return Ok(start);
        }
        let start = self.read_window(rule_id, rule, now).await?;
        self.windows
            .lock()
            .expect("windows lock")
            .insert(rule_id.to_owned(), start);
        Ok(start)
    }

    async fn read_window(&self, rule_id: &str, rule: &AlertRule, now: i64) -> anyhow::Result<i64> {
        let key = format!("window.{rule_id}");
        for _ in 0..20 {
            match self.kv.entry(&key).await? {
                None => {
                    if self.kv.create(&key, now.to_string().into()).await.is_ok() {
                        return Ok(now);
                    }
                }
                Some(e) => {
                    let start: i64 = std::str::from_utf8(&e.value)
                        .ok()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    if now < start + self.window_ms() {
                        return Ok(start);
                    }
                    if self
                        .kv
                        .update(&key, now.to_string().into(), e.revision)
                        .await
                        .is_ok()
                    {
                        self.summarize(rule_id, rule, start).await;
                        return Ok(now);
                    }
                }
            }
        }
        anyhow::bail!("{key} kept changing")
    }

    /// Sends one alert unless it was sent, is in its quiet period, or is
    /// over its rule's cap (then counted as held back).
    async fn deliver(
        &self,
        rule_id: &str,
        rule: &AlertRule,
        gid: &str,
        alert: Alert,
    ) -> Result<(), String> {
        let kv_err = |e: &dyn std::fmt::Display| format!("the alerts bucket: {e}");
        let sent_key = format!("sent.{}", alert.alert_id);
        if self
            .kv
            .get(&sent_key)
            .await
            .map_err(|e| kv_err(&e))?
            .is_some()
        {
            return Ok(());
        }
        let every_key = format!("every.{rule_id}.{gid}");
        let now = proto::clock::now_ms();
        if alert.reason == "every"
            && let Some(last) = self.number(&every_key).await.map_err(|e| kv_err(&e))?
            && now.saturating_sub(last as i64) < (rule.min_interval_s as i64).saturating_mul(1000)
        {
            return Ok(());
        }
        let window = self.window(rule_id, rule).await.map_err(|e| kv_err(&e))?;
        let cap_key = format!("cap.{rule_id}.{window}");
        let full = self.full.lock().expect("full lock").get(rule_id) == Some(&window);
        let full = full || {
            let count = self.number(&cap_key).await.map_err(|e| kv_err(&e))?;
            count.unwrap_or(0) >= u64::from(rule.cap_per_hour)
        };
        if full {
            self.full
                .lock()
                .expect("full lock")
                .insert(rule_id.to_owned(), window);
            self.add(&format!("held.{rule_id}.{window}"), 1)
                .await
                .map_err(|e| kv_err(&e))?;
            self.kv
                .put(&sent_key, "held".into())
                .await
                .map_err(|e| kv_err(&e))?;
            self.note(rule_id, |s| s.held += 1);
            return Ok(());
        }
        // A target that just failed is not tried again for every entry
        // (each would wait for its timeout): the entry comes back later.
        if let Some((until, error)) = self.cooling.lock().expect("cooling lock").get(rule_id)
            && std::time::Instant::now() < *until
        {
            return Err(format!("{error} (moments ago; retried later)"));
        }
        let sent = self.send(rule_id, rule, &alert).await;
        {
            let mut cooling = self.cooling.lock().expect("cooling lock");
            match &sent {
                Ok(()) => {
                    cooling.remove(rule_id);
                }
                Err(e) => {
                    cooling.insert(
                        rule_id.to_owned(),
                        (
                            std::time::Instant::now() + Duration::from_secs(2),
                            e.clone(),
                        ),
                    );
                }
            }
        }
        sent?;
        self.kv
            .put(&sent_key, "sent".into())
            .await
            .map_err(|e| kv_err(&e))?;
        self.add(&cap_key, 1).await.map_err(|e| kv_err(&e))?;
        // Any alert about the group starts its quiet period.
        self.kv
            .put(&every_key, now.to_string().into())
            .await
            .map_err(|e| kv_err(&e))?;
        self.note(rule_id, |s| s.sent += 1);
        Ok(())
    }

    async fn number(&self, key: &str) -> anyhow::Result<Option<u64>> {
        Ok(self
            .kv
            .get(key)
            .await?
            .and_then(|v| std::str::from_utf8(&v).ok()?.parse().ok()))
    }

    /// Adds to a counter in the bucket (see [`Self::change`]).
    async fn add(&self, key: &str, n: u64) -> anyhow::Result<u64> {
        let stored = self
            .change(key, |old| {
                let was = old
                    .and_then(|v| std::str::from_utf8(v).ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
                Ok((was + n).to_string().into_bytes())
            })
            .await?;
        Ok(String::from_utf8_lossy(&stored).parse().unwrap_or(0))
    }

    /// Rules whose cap window is over: the summary of what it held back.
    async fn summaries(&self) {
        let Ok(rules) = self.d.inner.projection.alerts() else {
            return;
        };
        for (rule_id, rec) in rules {
            let start = match self.number(&format!("window.{rule_id}")).await {
                Ok(Some(s)) => s as i64,
                _ => continue,
            };
            if proto::clock::now_ms() >= start + self.window_ms() {
                self.summarize(&rule_id, &rec.rule, start).await;
            }
        }
    }

    /// One summary for the window that started at `start`, if it held
    /// alerts back and no notifier sent it yet.
    async fn summarize(&self, rule_id: &str, rule: &AlertRule, start: i64) {
        let held = match self.number(&format!("held.{rule_id}.{start}")).await {
            Ok(Some(n)) if n > 0 => n,
            _ => return,
        };
        let mark = format!("summary.{rule_id}.{start}");
        // One notifier claims the summary.
        if self.kv.create(&mark, "".into()).await.is_err() {
            return;
        }
        let alert = self.summary(rule_id, rule, start, held);
        let sent = self.send(rule_id, rule, &alert).await;
        match sent {
            Ok(()) => self.note(rule_id, |s| s.sent += 1),
            Err(e) => {
                // Unclaimed, so the next tick tries again.
                let _ = self.kv.delete(&mark).await;
                self.note(rule_id, |s| {
                    s.failed += 1;
                    s.last_error = Some((proto::clock::now_ms(), e.clone()));
                });
            }
        }
    }

    fn summary(&self, rule_id: &str, rule: &AlertRule, window: i64, held: u64) -> Alert {
        let title = format!(
            "{held} more alerts held back (at most {} an hour: {})",
            rule.cap_per_hour,
            rule.describe()
        );
        let url = self.link("/log/groups/");
        let alert_id = format!("{rule_id}-summary-{window}");
        Alert {
            json: json!({"alert_id": alert_id, "reason": "summary", "rule": rule_id,
                         "title": title, "url": url, "held": held}),
            alert_id,
            reason: "summary",
            text: title.clone(),
            title,
            url,
        }
    }
}

/// A test alert for a rule (`minilog alert test`, the alerts page).
pub async fn send_test(
    seal: &SealKey,
    public_url: Option<&str>,
    smtp: Option<&email::Smtp>,
    rule_id: &str,
    rule: &AlertRule,
) -> Result<(), String> {
    let url = public_url.map(|u| format!("{}/log/groups/", u.trim_end_matches('/')));
    let title = format!("Test alert from minilog ({})", rule.describe());
    let alert_id = format!("{rule_id}-test-{}", proto::clock::now_ms());
    let alert = Alert {
        json: json!({"alert_id": alert_id, "reason": "test", "rule": rule_id,
                     "title": title, "url": url}),
        alert_id,
        reason: "test",
        text: title.clone(),
        title,
        url,
    };
    send::send(&send::client(), seal, rule_id, rule, &alert, smtp).await
}
