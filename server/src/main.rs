//! `secureconnect serve`: runs the whole product on the embedded default unless told
//! otherwise.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};
use secureconnect_server::{app, config::Config};
use tracing_subscriber::EnvFilter;

/// mimalloc rather than glibc's malloc: argon2 allocates ~19 MiB per password hash on
/// whichever blocking thread runs it, and glibc kept each thread's arena after the hash
/// (idle RSS 250 MB after 100 registrations, 445 MB after a burst of 200 sign-ins, from
/// 37 MB fresh); mimalloc hands freed memory back (figures in the README).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "secureconnect",
    version,
    about = "SecureConnect real-time communication server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve gRPC and gRPC-web on one port.
    Serve {
        /// A TOML config file (see deploy/config.example.toml).
        #[arg(long, env = "SECURECONNECT_CONFIG")]
        config: Option<PathBuf>,
        /// Address to listen on [default: 127.0.0.1:50051; env SECURECONNECT_LISTEN].
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Data directory [default: ./data; env SECURECONNECT_DATA_DIR].
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Also serve this directory of static files (a web app) on the same port
        /// [env SECURECONNECT_WEB__DIR].
        #[arg(long)]
        web_dir: Option<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let Command::Serve {
        config: config_file,
        listen,
        data_dir,
        web_dir,
    } = Cli::parse().command;
    let mut config = match Config::load(config_file.as_deref()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("invalid configuration: {err}");
            return ExitCode::from(2);
        }
    };
    if let Some(listen) = listen {
        config.listen = listen;
    }
    if let Some(data_dir) = data_dir {
        config.data_dir = data_dir;
    }
    if web_dir.is_some() {
        config.web.dir = web_dir;
    }
    // (`listen`, not `addr`: the line with the bound address comes once it is bound.)
    tracing::info!(
        file = ?config_file,
        listen = %config.listen,
        data_dir = %config.data_dir.display(),
        "configuration loaded"
    );
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "server stopped");
            ExitCode::FAILURE
        }
    }
}

/// How long connections may take to drain after a shutdown signal before the process
/// exits anyway (clients then reconnect elsewhere and resume from their cursors).
const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

async fn run(config: Config) -> secureconnect_server::error::Result<()> {
    let running = app::start(config).await?;
    let stop = running.shutdown_token();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down: asking streams to reconnect, draining connections");
        stop.cancel();
    });
    // Returns once the server has stopped (by the signal, or a fatal error) and the
    // background tasks after it, each logged as it stops.
    running.wait_draining(DRAIN_DEADLINE).await?;
    tracing::info!("stopped");
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
