//! Starting and stopping: the data directory opened, the writer running, the socket bound.

use std::future::Future;
use std::net::SocketAddr;
use std::thread::JoinHandle;

use kith_core::risk::RiskConfig;
use tokio::net::TcpListener;

use crate::clock::Clock;
use crate::codes::GuessBudget;
use crate::config::Config;
use crate::error::{AppError, Result};
use crate::export::serving::ExportCache;
use crate::keyring::{AdminKey, Keyring};
use crate::router::app;
use crate::sessions::Sessions;
use crate::signing_keys::{SigningKeys, SigningKeysCell};
use crate::state::{AppState, Shared};
use crate::writer::Writer;
use crate::{db, jobs, metrics};

/// A server with its data directory open and its database writer running, not yet
/// listening. Its [`state`](Self::state) serves requests through [`app`] without a
/// socket, which is how most tests drive it.
#[derive(Debug)]
pub struct Server {
    state: AppState,
    writer_thread: JoinHandle<()>,
    new_admin_key: Option<AdminKey>,
}

impl Server {
    /// Opens (creating on first start) the data directory and starts the database
    /// writer; "now" comes from `clock`.
    pub fn open(config: Config, clock: Clock) -> Result<Self> {
        let (keyring, new_admin_key) = Keyring::open_or_create(&config.data_dir)?;
        let risk = risk_config(&config)?;
        let conn = db::open(&config.data_dir, config.durability)?;
        let checkpoint_conn = db::open(&config.data_dir, config.durability)?;
        let signing_keys = SigningKeys::load(
            &conn,
            &config.data_dir,
            &config.export_key_id,
            &config.export_key_version,
            clock.now(),
        )?;
        let budget = GuessBudget::new(
            config.failed_redemptions_burst,
            config.failed_redemptions_per_hour,
            clock.now(),
        );
        let (writer, writer_thread) = Writer::start(
            conn,
            checkpoint_conn,
            keyring.pepper.clone(),
            budget,
            clock.clone(),
            config.write_batch as usize,
        )?;
        let state = AppState::new(Shared {
            clock,
            keyring,
            risk,
            writer,
            metrics: metrics::recorder(),
            sessions: Sessions::default(),
            signing_keys: SigningKeysCell::new(signing_keys),
            exports: ExportCache::new(config.data_dir.clone()),
            config,
        });
        Ok(Self {
            state,
            writer_thread,
            new_admin_key,
        })
    }

    /// The admin API key, if it was created by this start (first start only).
    /// Runs one export pass now (what the background task does every minute) and makes the
    /// signing keys it found current.
    pub fn export_pass(&self) -> Result<jobs::Pass> {
        export_pass(&self.state)
    }

    pub fn take_new_admin_key(&mut self) -> Option<AdminKey> {
        self.new_admin_key.take()
    }

    /// The shared state, to build [`app`] on.
    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    /// Binds the listening socket.
    pub async fn bind(self) -> Result<Listening> {
        let listen = self.state.config.listen;
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| AppError::Io {
                path: listen.to_string(),
                source,
            })?;
        Ok(Listening {
            server: self,
            listener,
        })
    }
}

fn risk_config(config: &Config) -> Result<RiskConfig> {
    let Some(path) = &config.risk_config else {
        return Ok(RiskConfig::enx_defaults());
    };
    let text = std::fs::read_to_string(path).map_err(|source| AppError::Io {
        path: path.display().to_string(),
        source,
    })?;
    RiskConfig::from_json(&text).map_err(|e| AppError::BadFile {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// A [`Server`] with its socket bound.
#[derive(Debug)]
pub struct Listening {
    server: Server,
    listener: TcpListener,
}

impl Listening {
    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.server.state.config.listen)
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests, lets the
    /// writer commit what it was given, and returns.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        let Self { server, listener } = self;
        let Server {
            state,
            writer_thread,
            ..
        } = server;
        let exporter = tokio::spawn(export_in_background(state.clone()));
        axum::serve(listener, app(state))
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(|source| AppError::Io {
                path: "listener".into(),
                source,
            })?;
        // A pass cut short holds a lease that expires; the next pass takes the batch over.
        exporter.abort();
        // The router (and with it every sender to the writer) is gone now; the writer
        // drains its queue and stops.
        tokio::task::spawn_blocking(move || writer_thread.join())
            .await
            .ok();
        Ok(())
    }
}

/// Runs the batcher ([`jobs::pass`]) every minute, or every export period if shorter.
async fn export_in_background(state: AppState) {
    let every = state
        .config
        .export
        .period_seconds
        .min(jobs::MAX_PASS_INTERVAL);
    let mut ticks = tokio::time::interval(std::time::Duration::from_secs(every));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let job = state.clone();
        match tokio::task::spawn_blocking(move || export_pass(&job)).await {
            Ok(Ok(pass)) => {
                if !pass.export.files.is_empty() || pass.retention != Default::default() {
                    tracing::info!(
                        batches = pass.export.completed,
                        files = pass.export.files.len(),
                        dropped = pass.retention.files_dropped,
                        deleted = pass.retention.files_deleted,
                        "export pass"
                    );
                }
            }
            Ok(Err(error)) => tracing::error!(%error, "export pass failed"),
            Err(error) => tracing::error!(%error, "export pass panicked"),
        }
    }
}

fn export_pass(state: &AppState) -> Result<jobs::Pass> {
    let pass = jobs::pass(&state.config, state.clock.now())?;
    state.signing_keys.set(std::sync::Arc::clone(&pass.keys));
    Ok(pass)
}
