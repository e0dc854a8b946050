use clap::Parser;
use minilog::config::{Cli, Command};

fn main() -> std::process::ExitCode {
    few_malloc_arenas();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("starting the async runtime");
    runtime.block_on(run())
}

/// glibc gives threads that allocate at once their own heaps ("arenas",
/// up to 8 per core) and hands little of them back: under the
/// benchmark's HTTP load `serve` peaked at 83.5 MiB with glibc's default
/// and at 66.6 MiB with two arenas, at the same throughput (README,
/// "Footprint"). glibc reads the number from `MALLOC_ARENA_MAX` when a
/// process starts, so a process started without it starts itself again
/// with it: the same pid, arguments and descriptors (`exec`). Set
/// `MALLOC_ARENA_MAX` yourself to choose another number.
fn few_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt;
        const VAR: &str = "MALLOC_ARENA_MAX";
        if std::env::var_os(VAR).is_some() {
            return;
        }
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        let mut args = std::env::args_os();
        let arg0 = args.next().unwrap_or_else(|| exe.clone().into());
        // Returns only if the exec failed (the binary replaced meanwhile):
        // then this process goes on with glibc's default.
        let _ = std::process::Command::new(&exe)
            .arg0(arg0)
            .args(args)
            .env(VAR, "2")
            .exec();
    }
}

async fn run() -> std::process::ExitCode {
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
        Command::Tail(args) => minilog::tail::tail(args).await,
        Command::Alert(cmd) => minilog::alert_cli::alert(cmd).await,
        Command::Import(cmd) => minilog::import::import(cmd).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
