use clap::Parser;
use minilog::config::{Cli, Command};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MINILOG_LOG")
                .unwrap_or_else(|_| "info,async_nats=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => minilog::app::serve(args).await,
        Command::Gateway(args) => minilog::split::gateway(args).await,
        Command::View(args) => minilog::split::view(args).await,
        Command::Rebuild(args) => minilog::rebuild::rebuild(args).await,
        Command::Key(cmd) => minilog::admin::key(cmd).await,
        Command::User(cmd) => minilog::admin::user(cmd).await,
        Command::Events(cmd) => minilog::admin::events(cmd).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
