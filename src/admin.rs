//! `minilog key …` and `minilog user …`: they publish to and read from the
//! stream directly, so they work while `serve` holds the projection file.
//! NATS is found via `--nats-url`, else `DATA/nats.url` (written by an
//! embedded server) with the credentials beside it.

use crate::config::{EventsCommand, KeyCommand, NatsArgs, UserCommand};
use anyhow::Context;
use proto::bus::Bus;
use proto::commands::{self, KeySpec};
use proto::event::{Actor, Envelope, Event, Role};
use proto::secret::KeySecret;
use proto::state::{KeyState, key_of};
use serde_json::json;
use std::collections::BTreeMap;
use std::io::BufRead;

/// An admin command's connection (see [`crate::connect::connect`]).
pub async fn connect(nats: &NatsArgs) -> anyhow::Result<Bus> {
    crate::connect::connect(nats, "minilog admin", None).await
}

pub async fn key(cmd: KeyCommand) -> anyhow::Result<()> {
    match cmd {
        KeyCommand::Create {
            nats,
            description,
            secret,
            origins,
            rate_limit,
            public,
            json,
        } => {
            let secret = secret
                .map(|s| KeySecret::parse(&s))
                .transpose()
                .map_err(|e| anyhow::anyhow!("--secret: {e}"))?;
            let spec = KeySpec {
                description,
                secret,
                origins,
                rate_limit,
            };
            create_key(&connect(&nats).await?, spec, &public.public_url, json).await
        }
        KeyCommand::Dsn {
            nats,
            id,
            public,
            json,
        } => {
            let bus = connect(&nats).await?;
            let (dsn_key, seq) = commands::issue_dsn(&bus, &id, Actor::Cli).await?;
            let dsn = dsn_of(&public.public_url, dsn_key.expose())?;
            if json {
                println!("{}", json!({"id": id, "dsn": dsn, "event": seq}));
            } else {
                println!("dsn: {dsn}\n(shown once; the key's old DSN no longer works)");
            }
            Ok(())
        }
        KeyCommand::List { nats, json } => {
            for k in list_keys(&connect(&nats).await?).await?.values() {
                if json {
                    println!("{}", key_json(k));
                } else {
                    let state = if k.active { "active" } else { "revoked" };
                    println!("{}  {state:8}  …{}  {}", k.key_id, k.ending, k.description);
                }
            }
            Ok(())
        }
        KeyCommand::Revoke { nats, id } => {
            let seq =
                commands::set_key_active(&connect(&nats).await?, &id, false, Actor::Cli).await?;
            println!("revoked {id} (event {seq})");
            Ok(())
        }
        KeyCommand::Restore { nats, id } => {
            let seq =
                commands::set_key_active(&connect(&nats).await?, &id, true, Actor::Cli).await?;
            println!("restored {id} (event {seq})");
            Ok(())
        }
        KeyCommand::Set {
            nats,
            id,
            origins,
            clear_origins,
            rate_limit,
        } => set_key(&nats, &id, origins, clear_origins, rate_limit.as_deref()).await,
        KeyCommand::BrowserToken { nats, id, ttl } => {
            let key = created_event(&connect(&nats).await?, &id).await?;
            let expiry = proto::clock::now_ms() / 1000 + i64::try_from(ttl)?;
            println!(
                "{}",
                proto::secret::browser_token(&key.key_id, &key.browser_key, expiry)
            );
            Ok(())
        }
    }
}

/// `key create`: the id, the secret and the DSN, shown once, and with
/// browser origins the public DSN.
async fn create_key(bus: &Bus, spec: KeySpec, public_url: &str, json: bool) -> anyhow::Result<()> {
    // Checked before anything is created.
    dsn_of(public_url, "k")?;
    let has_origins = !spec.origins.is_empty();
    let key = commands::create_key(bus, spec, Actor::Cli).await?;
    let dsn = dsn_of(public_url, key.dsn_key.expose())?;
    let public_dsn = has_origins
        .then(|| dsn_of(public_url, key.id.as_str()))
        .transpose()?;
    if json {
        let mut out = json!({"id": key.id.as_str(), "secret": key.secret.expose(), "dsn": dsn});
        if let Some(p) = &public_dsn {
            out["public_dsn"] = json!(p);
        }
        println!("{out}");
    } else {
        println!(
            "key id: {}\nsecret: {}\ndsn:    {dsn}\n(the secret and the dsn are shown once)",
            key.id,
            key.secret.expose()
        );
        if let Some(p) = public_dsn {
            println!("public dsn (browsers, from the key's origins only): {p}");
        }
    }
    Ok(())
}

/// A DSN with `--public-url`, or an error saying how to write it.
fn dsn_of(public_url: &str, user: &str) -> anyhow::Result<String> {
    proto::secret::dsn(public_url, user).ok_or_else(|| {
        anyhow::anyhow!(
            "--public-url {public_url:?}: give scheme and host, like https://logs.example.com \
             or http://127.0.0.1:8000"
        )
    })
}

/// `key set`: browser origins and the rate limit; at least one of them.
async fn set_key(
    nats: &NatsArgs,
    id: &str,
    origins: Vec<String>,
    clear_origins: bool,
    rate_limit: Option<&str>,
) -> anyhow::Result<()> {
    let rate_limit = rate_limit
        .map(commands::rate_limit_setting)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--rate-limit: {e}"))?;
    let origins = if clear_origins {
        Some(Vec::new())
    } else {
        Some(origins).filter(|o| !o.is_empty())
    };
    if origins.is_none() && rate_limit.is_none() {
        anyhow::bail!("nothing to change: give --origin, --clear-origins or --rate-limit");
    }
    let changes = commands::KeyChanges {
        origins,
        rate_limit,
    };
    let seq = commands::change_key(&connect(nats).await?, id, changes, Actor::Cli).await?;
    println!("changed {id} (event {seq})");
    Ok(())
}

/// The `KeyCreated` event of a key: the first on its subject. It holds the
/// browser-signing key (never the secret).
async fn created_event(bus: &Bus, id: &str) -> anyhow::Result<proto::event::KeyCreated> {
    let id = proto::ids::KeyId::parse(id)?;
    let subject = bus.subjects().key(id.as_str());
    if bus.last_on_subject(&subject).await?.is_none() {
        anyhow::bail!("no such key {id}");
    }
    let mut reader = bus.read_from(1, Some(subject)).await?;
    let first = reader
        .next()
        .await
        .ok_or_else(|| anyhow::anyhow!("reading key {id}: the reader ended"))??;
    match Envelope::decode(&first.payload)?.event {
        Event::KeyCreated(k) => Ok(k),
        other => anyhow::bail!("key {id} begins with {}, not its creation", other.name()),
    }
}

/// Every event on `filter` up to the stream's end now, oldest first, to
/// `each`: what admin commands fold their lists from.
pub(crate) async fn fold_events(
    bus: &Bus,
    filter: String,
    mut each: impl FnMut(Envelope),
) -> anyhow::Result<()> {
    let mut reader = bus.read_from(1, Some(filter)).await?;
    let mut pending = reader.pending_at_start;
    while pending > 0 {
        let Some(ev) = reader.next().await else { break };
        let ev = ev?;
        pending = ev.pending;
        each(Envelope::decode(&ev.payload).with_context(|| format!("event {}", ev.seq))?);
    }
    Ok(())
}

/// Every key, folded from its events on the stream.
async fn list_keys(bus: &Bus) -> anyhow::Result<BTreeMap<String, KeyState>> {
    let mut keys = BTreeMap::new();
    fold_events(bus, bus.subjects().all_keys(), |env| match &env.event {
        Event::KeyCreated(k) => {
            keys.insert(k.key_id.clone(), KeyState::created(&env, k));
        }
        event => {
            if let Some(key) = key_of(event).and_then(|id| keys.get_mut(id)) {
                key.apply(event);
            }
        }
    })
    .await?;
    Ok(keys)
}

/// One line of `key list --json`.
fn key_json(k: &KeyState) -> serde_json::Value {
    json!({"id": k.key_id, "description": k.description, "ending": k.ending,
           "active": k.active, "origins": k.origins, "rate_limit": k.rate_limit,
           "created": proto::clock::rfc3339(k.created_at), "created_by": k.created_by})
}

pub async fn user(cmd: UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Add { nats, name, admin } => {
            let password = match std::env::var("MINILOG_PASSWORD") {
                Ok(p) => p,
                Err(_) => {
                    eprint!("password for {name}: ");
                    let mut line = String::new();
                    std::io::stdin().lock().read_line(&mut line)?;
                    line.trim_end_matches(['\n', '\r']).to_owned()
                }
            };
            let bus = connect(&nats).await?;
            let role = if admin { Role::Admin } else { Role::Member };
            commands::create_user(&bus, &name, &password, role, Actor::Cli).await?;
            println!("added user {name}");
        }
    }
    Ok(())
}

pub async fn events(cmd: EventsCommand) -> anyhow::Result<()> {
    match cmd {
        EventsCommand::Quarantine { nats, seq, reason } => {
            let bus = connect(&nats).await?;
            let at = commands::quarantine(&bus, seq, &reason, Actor::Cli).await?;
            println!(
                "quarantined event {seq} (recorded as event {at}); the projector passes over it"
            );
        }
    }
    Ok(())
}
