//! Command-line flags. Every flag has an environment twin `MINILOG_<FLAG>`.

use clap::{Args, Parser, Subcommand};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "minilog",
    version,
    about = "A small self-hosted log server for the warnings and errors of many programs"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run gateway, projector and dashboard in one process on one port.
    Serve(ServeArgs),
    /// Split mode: ingestion only (HTTP and NATS), stateless; run as many as
    /// you like. Takes serve's flags; needs --nats-url.
    Gateway(ServeArgs),
    /// Split mode: projector and dashboard with their own projection (one
    /// per reader; needs --nats-url), or a rebuilt file served read-only.
    View(ViewArgs),
    /// Rebuild the projection from the stream, or the state as it was at a
    /// sequence or time into another file (--until, --out).
    Rebuild(RebuildArgs),
    /// Manage ingestion keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Manage dashboard users.
    #[command(subcommand)]
    User(UserCommand),
    /// Operate on the event log itself.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Print new entries of a running minilog as they arrive, until stopped
    /// (its live tail, GET /api/v1/entries/stream, as a dashboard user).
    Tail(TailArgs),
    /// Manage alert rules: when to tell whom (docs/alerts.md).
    #[command(subcommand)]
    Alert(AlertCommand),
    /// Bring another log server's keys and entries into minilog (docs/import.md).
    #[command(subcommand)]
    Import(ImportCommand),
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// From django-minimal-log: its keys with their secrets (its clients keep
    /// working), its entries and their resolves. Safe to run again.
    DjangoMinimalLog(DmlImportArgs),
}

#[derive(Debug, Args)]
pub struct DmlImportArgs {
    #[command(flatten)]
    pub nats: NatsArgs,
    /// The Django project's database: a SQLite file (db.sqlite3), or
    /// postgres://user:password@host:port/dbname.
    #[arg(long, env = "MINILOG_IMPORT_DB", hide_env_values = true)]
    pub db: String,
    /// Count what would be imported; publish nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Names the installation in the entries' meta (imported_from) and in
    /// message ids: give each of several installations its own.
    #[arg(
        long,
        env = "MINILOG_IMPORT_NAME",
        default_value = "django-minimal-log"
    )]
    pub name: String,
    /// The summary as one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum AlertCommand {
    /// Add a rule; prints its id.
    Add(AlertAddArgs),
    /// List the rules in force.
    List {
        #[command(flatten)]
        nats: NatsArgs,
        /// One JSON object a line.
        #[arg(long)]
        json: bool,
    },
    /// Remove a rule.
    Remove {
        #[command(flatten)]
        nats: NatsArgs,
        id: String,
    },
    /// Send a test alert through a rule's target now.
    Test {
        #[command(flatten)]
        nats: NatsArgs,
        id: String,
        /// The alerts key (default DATA/alerts.key).
        #[arg(long, env = "MINILOG_ALERTS_KEY_FILE")]
        alerts_key_file: Option<PathBuf>,
        /// Where people open the dashboard, for the alert's link.
        #[arg(long, env = "MINILOG_PUBLIC_URL")]
        public_url: Option<String>,
        #[command(flatten)]
        smtp: SmtpArgs,
    },
}

#[derive(Debug, Args)]
pub struct AlertAddArgs {
    #[command(flatten)]
    pub nats: NatsArgs,
    /// When it fires: new (a new group), regression, every (comma-separate).
    #[arg(long, value_delimiter = ',', required = true)]
    pub on: Vec<String>,
    /// Send to this webhook (https://hooks.slack.com/…, a Discord webhook, your own).
    #[arg(long, conflicts_with = "email")]
    pub webhook: Option<String>,
    /// The webhook's body: json (minilog's), slack (also Mattermost), discord.
    #[arg(long, default_value = "json")]
    pub format: String,
    /// Email these addresses (repeat); needs --smtp-url on serve/view.
    #[arg(long)]
    pub email: Vec<String>,
    /// Only entries of this level and above.
    #[arg(long)]
    pub level: Option<String>,
    /// Only entries of this key (repeat; `hand` for entries added by hand).
    #[arg(long)]
    pub key: Vec<String>,
    /// Only entries whose message holds this text (case-insensitive).
    #[arg(long)]
    pub q: Option<String>,
    /// Only entries whose meta has this value, like environment=production (repeat).
    #[arg(long)]
    pub meta: Vec<String>,
    /// `every`: at most one alert per group per this many seconds.
    #[arg(long, default_value_t = proto::alert::DEFAULT_MIN_INTERVAL_S)]
    pub min_interval: u64,
    /// At most this many alerts an hour; past it, one summary.
    #[arg(long, default_value_t = proto::alert::DEFAULT_CAP_PER_HOUR)]
    pub cap: u32,
    /// The alerts key that seals the webhook URL (default DATA/alerts.key).
    #[arg(long, env = "MINILOG_ALERTS_KEY_FILE")]
    pub alerts_key_file: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct TailArgs {
    /// The running minilog's base URL (plain HTTP: use it on the server's
    /// machine, over an SSH tunnel, or where the proxy speaks HTTP).
    #[arg(long, env = "MINILOG_URL", default_value = "http://127.0.0.1:8000")]
    pub url: String,
    /// Dashboard user to sign in as (HTTP Basic).
    #[arg(long, env = "MINILOG_USER")]
    pub user: String,
    /// File holding the user's password (its first line). Without it the
    /// password comes from MINILOG_PASSWORD.
    #[arg(long, env = "MINILOG_PASSWORD_FILE")]
    pub password_file: Option<PathBuf>,
    /// Only these levels (repeat it, or separate with commas).
    #[arg(long)]
    pub level: Vec<String>,
    /// Only entries of these keys (ids; `hand` for entries added by hand).
    #[arg(long)]
    pub key: Vec<String>,
    /// Only entries whose message or source holds this text (any case).
    #[arg(long)]
    pub q: Option<String>,
    /// Only entries of this group (its id).
    #[arg(long)]
    pub group: Option<String>,
    /// Start after this entry id (default: only entries newer than the
    /// connection).
    #[arg(long)]
    pub after: Option<u64>,
    /// Print each entry as its JSON (the read API's shape), one a line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Let the projector pass over the event at SEQ, which cannot be
    /// decoded (damaged, or written by a newer minilog). Recorded as an
    /// event, so every rebuild passes over it too; a good event is refused.
    Quarantine {
        #[command(flatten)]
        nats: NatsArgs,
        seq: u64,
        /// Why, for the audit page.
        #[arg(long, default_value = "")]
        reason: String,
    },
}

/// Where the data lives and how to reach NATS.
#[derive(Debug, Clone, Args)]
pub struct NatsArgs {
    /// Data directory: the projection, the embedded nats-server's store and credentials.
    #[arg(long, env = "MINILOG_DATA", default_value = "./data")]
    pub data: PathBuf,
    /// NATS server(s), comma-separated. Without it `serve` runs a local nats-server
    /// and admin commands read DATA/nats.url.
    #[arg(long, env = "MINILOG_NATS_URL")]
    pub nats_url: Option<String>,
    /// NATS user (with --nats-password).
    #[arg(long, env = "MINILOG_NATS_USER")]
    pub nats_user: Option<String>,
    /// NATS password (with --nats-user).
    #[arg(long, env = "MINILOG_NATS_PASSWORD", hide_env_values = true)]
    pub nats_password: Option<String>,
    /// NATS token.
    #[arg(long, env = "MINILOG_NATS_TOKEN", hide_env_values = true)]
    pub nats_token: Option<String>,
    /// NATS credentials file (.creds).
    #[arg(long, env = "MINILOG_NATS_CREDS")]
    pub nats_creds: Option<PathBuf>,
    /// Subject prefix; the stream is named after it in capitals.
    #[arg(long, env = "MINILOG_SUBJECT_PREFIX", default_value = proto::subjects::DEFAULT_PREFIX)]
    pub subject_prefix: String,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub nats: NatsArgs,
    /// Address for HTTP (ingestion, dashboard, API, health).
    #[arg(long, env = "MINILOG_LISTEN", default_value = "127.0.0.1:8000")]
    pub listen: SocketAddr,
    /// The nats-server binary for the embedded server (>= 2.10). Default:
    /// tools/nats/bin/nats-server if present, else nats-server on PATH.
    #[arg(long, env = "MINILOG_NATS_SERVER_BIN")]
    pub nats_server_bin: Option<PathBuf>,
    /// Port of the embedded nats-server (on 127.0.0.1). Default: the one it
    /// had last time (DATA/nats.url), else a free one.
    #[arg(long, env = "MINILOG_NATS_PORT")]
    pub nats_port: Option<u16>,
    /// How often the embedded nats-server fsyncs its store: `always` (each
    /// write), a duration like `1s`, or `default` (nats-server's own, about
    /// every two minutes). What an OS crash or power loss can take back of
    /// acknowledged entries (README, "Reliability").
    #[arg(long, env = "MINILOG_NATS_SYNC", default_value = crate::embedded::DEFAULT_SYNC)]
    pub nats_sync: String,
    /// redb cache size in MiB (the projection's memory bound).
    #[arg(long, env = "MINILOG_CACHE_MB", default_value_t = 16)]
    pub cache_mb: usize,
    /// How long JetStream drops a repeated message id (retries, Idempotency-Key), in seconds.
    #[arg(long, env = "MINILOG_DUPLICATE_WINDOW", default_value_t = 600)]
    pub duplicate_window: u64,
    /// Replicas of the stream (3 on a NATS cluster).
    #[arg(long, env = "MINILOG_STREAM_REPLICAS", default_value_t = 1)]
    pub stream_replicas: usize,
    /// Messages longer than this many bytes are trimmed, with a marker.
    #[arg(long, env = "MINILOG_MAX_MESSAGE_BYTES", default_value_t = 64 * 1024)]
    pub max_message_bytes: usize,
    /// Request bodies larger than this many bytes are refused with 413.
    #[arg(long, env = "MINILOG_BODY_LIMIT", default_value_t = 4 * 1024 * 1024)]
    pub body_limit: usize,
    /// Key that signs dashboard sessions; share the file between `view`s so a
    /// login works on each. Default: DATA/session.key (created if missing).
    #[arg(long, env = "MINILOG_SESSION_KEY_FILE")]
    pub session_key_file: Option<PathBuf>,
    /// Password of the first admin, created on a first start with no users
    /// (otherwise a one-time password is generated and printed).
    #[arg(long, env = "MINILOG_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,
    /// Peers whose X-Forwarded-For is believed (repeat, or comma-separate).
    #[arg(long, env = "MINILOG_TRUSTED_PROXY", value_delimiter = ',')]
    pub trusted_proxy: Vec<IpAddr>,
    /// Retention: prune resolved entries older than this many days, carrying
    /// older open ones forward (off by default). Keys, users and triage stay.
    #[arg(long, env = "MINILOG_RETAIN_DAYS")]
    pub retain_days: Option<u32>,
    #[command(flatten)]
    pub ingest: IngestArgs,
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub alerts: AlertArgs,
    #[command(flatten)]
    pub sso: SsoArgs,
}

/// Single sign-on (docs/sso.md): a proxy that authenticates, OpenID Connect.
#[derive(Debug, Clone, Args)]
pub struct SsoArgs {
    /// The header an authenticating proxy names the user in (oauth2-proxy:
    /// X-Forwarded-User or X-Forwarded-Preferred-Username; Authelia:
    /// Remote-User). Believed only on connections from --trusted-proxy.
    #[arg(long, env = "MINILOG_AUTH_PROXY_HEADER")]
    pub auth_proxy_header: Option<String>,
    /// What to do with a name the proxy sends that minilog does not know:
    /// `on` creates it as a member (an event), `off` refuses it.
    #[arg(long, env = "MINILOG_AUTH_PROXY_CREATE", default_value = "on", value_parser = ["on", "off"])]
    pub auth_proxy_create: String,
    /// The OpenID Connect provider, like https://id.example.com/realms/team
    /// (its /.well-known/openid-configuration is read). Needs --public-url.
    #[arg(long, env = "MINILOG_OIDC_ISSUER")]
    pub oidc_issuer: Option<String>,
    /// The client id minilog has at the provider.
    #[arg(long, env = "MINILOG_OIDC_CLIENT_ID")]
    pub oidc_client_id: Option<String>,
    /// A file holding the client secret (omit for a public client: PKCE alone).
    #[arg(long, env = "MINILOG_OIDC_CLIENT_SECRET_FILE")]
    pub oidc_client_secret_file: Option<PathBuf>,
    /// CLAIM=VALUE that makes an admin, like groups=ops (a string claim equal
    /// to VALUE, or a list holding it); decides the role of users made by
    /// sign-in at each sign-in.
    #[arg(long, env = "MINILOG_OIDC_ADMIN_CLAIM")]
    pub oidc_admin_claim: Option<String>,
    /// The claim that names the user (else `email`).
    #[arg(
        long,
        env = "MINILOG_OIDC_NAME_CLAIM",
        default_value = "preferred_username"
    )]
    pub oidc_name_claim: String,
    /// Scopes asked for besides `openid` (comma-separated).
    #[arg(
        long,
        env = "MINILOG_OIDC_SCOPES",
        value_delimiter = ',',
        default_value = "profile,email"
    )]
    pub oidc_scopes: Vec<String>,
    /// What the button says after "Sign in with" (default: the issuer's host).
    #[arg(long, env = "MINILOG_OIDC_LABEL")]
    pub oidc_label: Option<String>,
    /// Seconds of leeway on the ID token's times (exp, iat) for clocks apart
    /// (at most 600: more would all but switch off the expiry check).
    #[arg(long, env = "MINILOG_OIDC_CLOCK_SKEW", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(0..=600))]
    pub oidc_clock_skew: u64,
    /// Signing out of minilog also ends the session at the provider
    /// (RP-initiated logout, through its end_session_endpoint), for users
    /// who signed in there. Register PUBLIC_URL/login as a post-logout
    /// redirect URI at the provider.
    #[arg(long, env = "MINILOG_OIDC_SINGLE_LOGOUT")]
    pub oidc_single_logout: bool,
}

/// How alerts go out (docs/alerts.md).
#[derive(Debug, Clone, Args)]
pub struct AlertArgs {
    /// Key that seals alert webhook URLs in the event log. Every process that
    /// sends alerts (serve, each view) and `minilog alert add` needs the same
    /// file. Default: DATA/alerts.key (created if missing).
    #[arg(long, env = "MINILOG_ALERTS_KEY_FILE")]
    pub alerts_key_file: Option<PathBuf>,
    /// The window, in seconds, an alert rule's cap counts in.
    #[arg(long, env = "MINILOG_ALERT_CAP_WINDOW", default_value_t = 3600)]
    pub alert_cap_window: u64,
    /// How long, in seconds, a failing alert is tried again (backoff from
    /// 2 s up to an hour between tries) before it is given up.
    #[arg(long, env = "MINILOG_ALERT_RETRY_FOR", default_value_t = 86_400)]
    pub alert_retry_for: u64,
    /// Don't send alerts from this process (another view does).
    #[arg(long, env = "MINILOG_NO_ALERTS")]
    pub no_alerts: bool,
    #[command(flatten)]
    pub smtp: SmtpArgs,
}

/// The SMTP server email alerts go through.
#[derive(Debug, Clone, Default, Args)]
pub struct SmtpArgs {
    /// smtp://user:pass@host:587 (STARTTLS), smtps://user:pass@host:465 (TLS), or
    /// smtp://host:25?tls=none (a relay on this machine).
    #[arg(long, env = "MINILOG_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// The sender of email alerts, like "minilog <minilog@example.com>".
    #[arg(long, env = "MINILOG_SMTP_FROM")]
    pub smtp_from: Option<String>,
    /// A CA certificate (PEM) to trust for the SMTP server, besides the system's.
    #[arg(long, env = "MINILOG_SMTP_CA_FILE")]
    pub smtp_ca_file: Option<PathBuf>,
}

impl Default for SsoArgs {
    fn default() -> Self {
        SsoArgs {
            auth_proxy_header: None,
            auth_proxy_create: "on".into(),
            oidc_issuer: None,
            oidc_client_id: None,
            oidc_client_secret_file: None,
            oidc_admin_claim: None,
            oidc_name_claim: "preferred_username".into(),
            oidc_scopes: vec!["profile".into(), "email".into()],
            oidc_label: None,
            oidc_clock_skew: 60,
            oidc_single_logout: false,
        }
    }
}

impl Default for AlertArgs {
    fn default() -> Self {
        AlertArgs {
            alerts_key_file: None,
            alert_cap_window: 3600,
            alert_retry_for: 86_400,
            no_alerts: false,
            smtp: SmtpArgs::default(),
        }
    }
}

/// How HTTP is served: the public address, cookies, timeouts, /metrics.
#[derive(Debug, Clone, Args)]
pub struct HttpArgs {
    /// The address people open the dashboard at, like https://logs.example.com.
    /// With https, session cookies are Secure with the __Host- prefix; its
    /// origin is accepted by the JSON API behind a proxy that rewrites Host.
    #[arg(long, env = "MINILOG_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Mark cookies Secure (with the __Host- prefix) even without an
    /// https --public-url: when TLS ends at a proxy in front.
    #[arg(long, env = "MINILOG_SECURE_COOKIES")]
    pub secure_cookies: bool,
    /// Serve /metrics to anyone sending `Authorization: Bearer TOKEN`.
    /// Without it, /metrics answers loopback clients only.
    #[arg(long, env = "MINILOG_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// Seconds a connection may take to send its request headers (also how
    /// long an idle kept-alive connection stays open).
    #[arg(long, env = "MINILOG_HEADER_TIMEOUT", default_value_t = 10)]
    pub header_timeout: u64,
    /// Seconds a request may take to send its body (then `400 incomplete_body`).
    #[arg(long, env = "MINILOG_BODY_TIMEOUT", default_value_t = 30)]
    pub body_timeout: u64,
    /// Events the projection may be behind while /readyz still answers 200
    /// (`/readyz?max_lag=0` is the exact check).
    #[arg(long, env = "MINILOG_READY_MAX_LAG", default_value_t = 10_000)]
    pub ready_max_lag: u64,
}

impl Default for HttpArgs {
    fn default() -> Self {
        HttpArgs {
            public_url: None,
            secure_cookies: false,
            metrics_token: None,
            header_timeout: 10,
            body_timeout: 30,
            ready_max_lag: 10_000,
        }
    }
}

impl HttpArgs {
    /// The timeouts, kept between 1 s and an hour.
    pub fn timeouts(&self) -> crate::http::Timeouts {
        crate::http::Timeouts {
            header: std::time::Duration::from_secs(self.header_timeout.clamp(1, 3600)),
            body: std::time::Duration::from_secs(self.body_timeout.clamp(1, 3600)),
        }
    }

    /// Refuses settings that would open more than they say.
    pub fn check(&self) -> anyhow::Result<()> {
        if self
            .metrics_token
            .as_deref()
            .is_some_and(|t| t.trim().len() < 16)
        {
            anyhow::bail!(
                "--metrics-token must be at least 16 characters (an empty one would let anyone read /metrics)"
            );
        }
        Ok(())
    }
}

/// Rate limits, browser reports and direct NATS ingestion.
#[derive(Debug, Clone, Args)]
pub struct IngestArgs {
    /// Entries per minute per key (a token bucket holding one minute's worth),
    /// unless the key has its own (`minilog key set ID --rate-limit N`).
    #[arg(long, env = "MINILOG_RATE_LIMIT", default_value_t = 6000)]
    pub rate_limit: u32,
    /// Browser tokens whose expiry lies more than this many seconds ahead are refused.
    #[arg(long, env = "MINILOG_BROWSER_TOKEN_MAX_TTL", default_value_t = 900)]
    pub browser_token_max_ttl: u64,
    /// Browser reports per address per --browser-address-window.
    #[arg(long, env = "MINILOG_BROWSER_ADDRESS_LIMIT", default_value_t = 7)]
    pub browser_address_limit: u32,
    /// The window of --browser-address-limit, in seconds.
    #[arg(long, env = "MINILOG_BROWSER_ADDRESS_WINDOW", default_value_t = 12 * 3600)]
    pub browser_address_window: u64,
    /// Browser messages are cut to this many characters.
    #[arg(
        long,
        env = "MINILOG_BROWSER_MAX_MESSAGE_CHARS",
        default_value_t = 2048
    )]
    pub browser_max_message_chars: usize,
    /// Direct NATS submissions waiting longer than this many seconds are dropped.
    #[arg(long, env = "MINILOG_INGEST_MAX_AGE", default_value_t = 7 * 24 * 3600)]
    pub ingest_max_age: u64,
    /// Bytes of waiting direct NATS submissions; beyond it publishes are refused.
    #[arg(long, env = "MINILOG_INGEST_MAX_BYTES", default_value_t = 1 << 30)]
    pub ingest_max_bytes: i64,
    /// Seconds after which a submission a gateway took but did not finish
    /// (it died) is delivered again.
    #[arg(long, env = "MINILOG_INGEST_ACK_WAIT", default_value_t = 30)]
    pub ingest_ack_wait: u64,
    /// Seconds to wait for JetStream's acknowledgement of an entry before
    /// answering 503 (the entry may still be stored: retry with the same
    /// Idempotency-Key).
    #[arg(long, env = "MINILOG_ACK_TIMEOUT", default_value_t = 5)]
    pub ack_timeout: u64,
}

impl Default for IngestArgs {
    /// The same values as the flags' defaults.
    fn default() -> Self {
        IngestArgs {
            rate_limit: 6000,
            browser_token_max_ttl: 900,
            browser_address_limit: 7,
            browser_address_window: 12 * 3600,
            browser_max_message_chars: 2048,
            ingest_max_age: 7 * 24 * 3600,
            ingest_max_bytes: 1 << 30,
            ingest_ack_wait: 30,
            ack_timeout: 5,
        }
    }
}

/// Where programs reach minilog, for the DSNs printed.
#[derive(Debug, Clone, Args)]
pub struct PublicUrl {
    /// minilog's address as programs reach it (scheme, host, port, and a
    /// path if a proxy serves it below one), e.g. https://logs.example.com.
    #[arg(
        long,
        env = "MINILOG_PUBLIC_URL",
        default_value = "http://127.0.0.1:8000"
    )]
    pub public_url: String,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create a key; prints its id and its secret (shown once).
    Create {
        #[command(flatten)]
        nats: NatsArgs,
        /// What the key is for (at least 3 characters).
        #[arg(long, env = "MINILOG_DESCRIPTION")]
        description: String,
        /// Keep an existing secret, so an old installation's clients keep working.
        #[arg(long, env = "MINILOG_SECRET", hide_env_values = true)]
        secret: Option<String>,
        /// Allowed browser origin, like https://shop.example.com (repeat for several).
        #[arg(long = "origin", env = "MINILOG_ORIGIN", value_delimiter = ',')]
        origins: Vec<String>,
        /// Entries per minute for this key (default: the gateway's --rate-limit).
        #[arg(long, env = "MINILOG_KEY_RATE_LIMIT")]
        rate_limit: Option<u32>,
        #[command(flatten)]
        public: PublicUrl,
        /// Print one JSON object.
        #[arg(long, env = "MINILOG_JSON")]
        json: bool,
    },
    /// Issue a new DSN key for a key (Sentry SDKs); the old one stops working.
    Dsn {
        #[command(flatten)]
        nats: NatsArgs,
        id: String,
        #[command(flatten)]
        public: PublicUrl,
        /// Print one JSON object.
        #[arg(long, env = "MINILOG_JSON")]
        json: bool,
    },
    /// Change a key's browser origins or rate limit.
    Set {
        #[command(flatten)]
        nats: NatsArgs,
        id: String,
        /// The allowed browser origins become exactly these (repeat for several).
        #[arg(
            long = "origin",
            env = "MINILOG_ORIGIN",
            value_delimiter = ',',
            conflicts_with = "clear_origins"
        )]
        origins: Vec<String>,
        /// Allow no browser origin.
        #[arg(long, env = "MINILOG_CLEAR_ORIGINS")]
        clear_origins: bool,
        /// Entries per minute for this key, or `default` for the gateway's --rate-limit.
        #[arg(long, env = "MINILOG_KEY_RATE_LIMIT")]
        rate_limit: Option<String>,
    },
    /// Print a browser token for a key (for testing; sites make their own, see README).
    BrowserToken {
        #[command(flatten)]
        nats: NatsArgs,
        id: String,
        /// Seconds until it expires (gateways refuse more than their
        /// --browser-token-max-ttl, 900 by default).
        #[arg(long, env = "MINILOG_TTL", default_value_t = 900)]
        ttl: u64,
    },
    /// List keys, read from the stream (works while `serve` runs).
    List {
        #[command(flatten)]
        nats: NatsArgs,
        /// One JSON object per line.
        #[arg(long, env = "MINILOG_JSON")]
        json: bool,
    },
    /// Revoke a key: gateways refuse it as soon as the event reaches them.
    Revoke {
        #[command(flatten)]
        nats: NatsArgs,
        id: String,
    },
    /// Restore a revoked key.
    Restore {
        #[command(flatten)]
        nats: NatsArgs,
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a dashboard user; the password comes from MINILOG_PASSWORD or a prompt.
    Add {
        #[command(flatten)]
        nats: NatsArgs,
        name: String,
        /// Make the user an admin (manages keys and users).
        #[arg(long, env = "MINILOG_ADMIN")]
        admin: bool,
    },
}

#[derive(Debug, Clone, Args)]
pub struct ViewArgs {
    #[command(flatten)]
    pub serve: ServeArgs,
    /// The projection file. Default: DATA/projection.redb.
    #[arg(long, env = "MINILOG_DB")]
    pub db: Option<PathBuf>,
    /// Serve the file as it is (a `rebuild --until` of the past): no
    /// projector runs and the dashboard offers no actions.
    #[arg(long, env = "MINILOG_READ_ONLY")]
    pub read_only: bool,
}

#[derive(Debug, Clone, Args)]
pub struct RebuildArgs {
    #[command(flatten)]
    pub nats: NatsArgs,
    /// Only events up to this stream sequence (`1234`) or time
    /// (`2026-11-24T10:00:00Z`, by the events' own timestamps). Needs --out.
    #[arg(long, env = "MINILOG_UNTIL", requires = "out")]
    pub until: Option<String>,
    /// Write the projection to this file instead of replacing
    /// DATA/projection.redb (which needs the server stopped).
    #[arg(long, env = "MINILOG_OUT")]
    pub out: Option<PathBuf>,
    /// The nats-server binary for the embedded server, when no server runs.
    #[arg(long, env = "MINILOG_NATS_SERVER_BIN")]
    pub nats_server_bin: Option<PathBuf>,
    /// redb cache size in MiB.
    #[arg(long, env = "MINILOG_CACHE_MB", default_value_t = 16)]
    pub cache_mb: usize,
}
