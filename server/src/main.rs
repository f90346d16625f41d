//! `kith-server`: parses the configuration, sets up logging, and serves until SIGTERM or SIGINT.

use clap::Parser;
use kith_server::{Clock, Config, Server};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(log_filter())
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let config = Config::parse();
    match run(config).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "kith-server stopped");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `KITH_LOG` (a level: `info` by default) applies to this crate only; other crates
/// log warnings and errors, never their per-connection lines, which name the peer.
fn log_filter() -> EnvFilter {
    let level = std::env::var("KITH_LOG").unwrap_or_else(|_| "info".into());
    let level = level.trim();
    let level = if ["error", "warn", "info", "debug", "trace", "off"].contains(&level) {
        level
    } else {
        "info"
    };
    EnvFilter::new(format!("warn,kith_server={level}"))
}

async fn run(config: Config) -> kith_server::Result<()> {
    let key_file = config.admin_key_file.clone();
    let mut server = Server::open(config, Clock::system())?;
    if let Some(key) = server.take_new_admin_key() {
        match key_file {
            Some(path) => {
                key.write_to(&path)?;
                println!("admin API key written to {}", path.display());
            }
            // Straight to stdout, never through the log: it is shown this once only.
            None => println!(
                "admin API key (shown once, store it now): {}",
                key.expose_secret()
            ),
        }
    }
    let listening = server.bind().await?;
    println!("listening on http://{}", listening.public_addr());
    println!("operator listening on http://{}", listening.operator_addr());
    // The addresses go to stdout only: the log never holds an IP address.
    tracing::info!("serving");
    listening.serve(shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(error) => {
            tracing::error!(%error, "cannot listen for SIGTERM");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = terminate.recv() => tracing::info!("SIGTERM: finishing in-flight requests"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: finishing in-flight requests"),
    }
}
