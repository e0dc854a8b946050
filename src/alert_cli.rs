//! `minilog alert add | list | remove | test`: alert rules as events
//! (docs/alerts.md). Rules are read back from the stream, like keys.

use crate::admin::connect;
use crate::config::{AlertAddArgs, AlertCommand};
use anyhow::Context;
use proto::alert::{AlertRule, Target, Trigger, WebhookFormat};
use proto::bus::Bus;
use proto::commands::{self, AlertSpec, TargetSpec};
use proto::event::{Actor, Event};
use proto::level::Level;
use serde_json::json;
use std::collections::BTreeMap;

pub async fn alert(cmd: AlertCommand) -> anyhow::Result<()> {
    match cmd {
        AlertCommand::Add(args) => add(args).await,
        AlertCommand::List { nats, json } => {
            for (id, rule) in list_alerts(&connect(&nats).await?).await? {
                if json {
                    println!("{}", rule_json(&id, &rule));
                } else {
                    println!("{id}  {}", rule.describe());
                }
            }
            Ok(())
        }
        AlertCommand::Remove { nats, id } => {
            let seq = commands::remove_alert(&connect(&nats).await?, &id, Actor::Cli).await?;
            println!("removed {id} (event {seq})");
            Ok(())
        }
        AlertCommand::Test {
            nats,
            id,
            alerts_key_file,
            public_url,
            smtp,
        } => {
            let rules = list_alerts(&connect(&nats).await?).await?;
            let rule = rules
                .get(&id)
                .with_context(|| format!("no alert rule {id} (see `minilog alert list`)"))?;
            let seal = crate::app::alerts_key(&nats.data, alerts_key_file.as_deref(), false)?;
            let smtp = crate::app::smtp(&smtp)?;
            dashboard::alerts::send_test(&seal, public_url.as_deref(), smtp.as_ref(), &id, rule)
                .await
                .map_err(|e| anyhow::anyhow!("the test alert was not delivered: {e}"))?;
            println!("sent a test alert through {id}");
            Ok(())
        }
    }
}

/// A rule from the command line's words; errors say what to fix.
pub fn spec(args: &AlertAddArgs) -> anyhow::Result<AlertSpec> {
    let on = args
        .on
        .iter()
        .map(|t| Trigger::parse(t))
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?;
    let min_level = args
        .level
        .as_deref()
        .map(Level::parse)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--level: {e}"))?;
    let mut meta = BTreeMap::new();
    for m in &args.meta {
        let (k, v) = m
            .split_once('=')
            .with_context(|| format!("--meta {m:?}: write it as name=value"))?;
        meta.insert(k.trim().to_owned(), v.trim().to_owned());
    }
    let target = match (&args.webhook, args.email.is_empty()) {
        (Some(url), true) => TargetSpec::Webhook {
            format: WebhookFormat::parse(&args.format).map_err(anyhow::Error::msg)?,
            url: url.trim().to_owned(),
        },
        (None, false) => TargetSpec::Email {
            to: args.email.clone(),
        },
        _ => anyhow::bail!("say whom to tell: --webhook URL or --email ADDRESS"),
    };
    Ok(AlertSpec {
        rule: AlertRule {
            on,
            min_level,
            keys: args.key.clone(),
            q: args.q.clone().filter(|q| !q.trim().is_empty()),
            meta,
            min_interval_s: args.min_interval,
            cap_per_hour: args.cap,
            // Replaced by the sealed target.
            target: Target::Email { to: vec![] },
        },
        target,
    })
}

async fn add(args: AlertAddArgs) -> anyhow::Result<()> {
    let spec = spec(&args)?;
    let seal = crate::app::alerts_key(&args.nats.data, args.alerts_key_file.as_deref(), false)?;
    let bus = connect(&args.nats).await?;
    let (id, seq) = commands::add_alert(&bus, &seal, spec, Actor::Cli).await?;
    if args.json {
        println!("{}", json!({"id": id, "seq": seq}));
    } else {
        println!("added alert {id} (event {seq})");
    }
    Ok(())
}

/// The rules in force, from their events.
pub async fn list_alerts(bus: &Bus) -> anyhow::Result<BTreeMap<String, AlertRule>> {
    let mut rules = BTreeMap::new();
    crate::admin::fold_events(bus, bus.subjects().all_alerts(), |env| match env.event {
        Event::AlertAdded(a) => {
            rules.insert(a.alert_id, a.rule);
        }
        Event::AlertRemoved(a) => {
            rules.remove(&a.alert_id);
        }
        _ => {}
    })
    .await?;
    Ok(rules)
}

/// One line of `alert list --json`: never the webhook's URL.
pub fn rule_json(id: &str, r: &AlertRule) -> serde_json::Value {
    let target = match &r.target {
        Target::Webhook { format, shown, .. } => {
            json!({"webhook": shown, "format": format.as_str()})
        }
        Target::Email { to } => json!({"email": to}),
    };
    json!({"id": id, "on": r.on.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
           "level": r.min_level.map(|l| l.as_str()), "keys": r.keys, "q": r.q, "meta": r.meta,
           "min_interval": r.min_interval_s, "cap": r.cap_per_hour, "target": target,
           "description": r.describe()})
}
