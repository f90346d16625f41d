//! `kith-server`: parses the configuration, sets up logging, and serves until SIGTERM or
//! SIGINT; or runs one of the operator's commands on the data directory.

use clap::{Parser, Subcommand};
use kith_server::{Clock, Config, Server, UnixSeconds, jobs};
use tracing_subscriber::EnvFilter;

/// Kith key server.
#[derive(Debug, Parser)]
#[command(name = "kith-server", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    config: Config,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API (what `kith-server` alone does).
    Serve,
    /// Export the windows that are ready into signed files and apply retention, once, then
    /// exit. The running server does this every minute; running both at once is safe.
    Export {
        /// Run one pass (required: the recurring export runs inside the server).
        #[arg(long, required = true)]
        once: bool,
    },
    /// The export signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Add a signing key. Every active key signs each new file and `/v1/config` lists it,
    /// so devices learn the new key while the old ones still sign.
    Rotate {
        /// Retire the keys before it this many hours from now (they stop signing and
        /// leave `/v1/config` then); without it they stay active.
        #[arg(long)]
        retire_old_after_hours: Option<u64>,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(log_filter())
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        None | Some(Command::Serve) => run(cli.config).await,
        Some(Command::Export { .. }) => export_once(&cli.config),
        Some(Command::Keys {
            command: KeysCommand::Rotate {
                retire_old_after_hours,
            },
        }) => rotate(&cli.config, retire_old_after_hours),
    };
    match result {
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

fn export_once(config: &Config) -> kith_server::Result<()> {
    let storage = jobs::open_existing_storage(config)?;
    let exports = jobs::open_export_store(config)?;
    let pass = jobs::pass(&*storage, &exports, config, &Clock::system())?;
    let export = &pass.export;
    println!(
        "windows cut: {}, batches exported: {}, taken over by another batcher: {}",
        export.cut, export.completed, export.lost
    );
    for file in &export.files {
        println!(
            "  {}  {} keys + {} padding, {} bytes",
            file.name, file.real_keys, file.padding_keys, file.bytes
        );
    }
    let retention = &pass.retention;
    println!(
        "retention: {} files dropped from the index, {} deleted, {} keys and {} codes deleted",
        retention.files_dropped,
        retention.files_deleted,
        retention.keys_deleted,
        retention.codes_deleted
    );
    Ok(())
}

fn rotate(config: &Config, retire_after_hours: Option<u64>) -> kith_server::Result<()> {
    let now = Clock::system().now();
    let retire_at = retire_after_hours.map(|hours| now.plus(hours.saturating_mul(3600)));
    let rotation = jobs::rotate_signing_key(config, now, retire_at)?;
    println!(
        "added signing key {} / {}; {} older key(s) retiring{}",
        rotation.key_id,
        rotation.key_version,
        rotation.retiring,
        retire_at.map_or(String::new(), |t: UnixSeconds| format!(" at {}", t.get()))
    );
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
