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
    /// Manage ingestion keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Manage dashboard users.
    #[command(subcommand)]
    User(UserCommand),
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
    /// Password of the first admin, created on a first start with no users
    /// (otherwise a one-time password is generated and printed).
    #[arg(long, env = "MINILOG_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,
    /// Peers whose X-Forwarded-For is believed (repeat, or comma-separate).
    #[arg(long, env = "MINILOG_TRUSTED_PROXY", value_delimiter = ',')]
    pub trusted_proxy: Vec<IpAddr>,
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
        /// Allowed browser origin (repeat for several).
        #[arg(long = "origin", env = "MINILOG_ORIGIN", value_delimiter = ',')]
        origins: Vec<String>,
        /// Print one JSON object.
        #[arg(long, env = "MINILOG_JSON")]
        json: bool,
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
