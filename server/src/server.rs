//! Starting and stopping: the data directory locked and opened, the writer running,
//! the two listeners bound and served.

use std::future::Future;
use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::Duration;

use kith_core::risk::RiskConfig;
use tokio::net::TcpListener;
use tokio::sync::watch;

use std::sync::Arc;

use crate::accounts::Accounts;
use crate::clock::Clock;
use crate::config::Config;
use crate::datadir::DataDir;
use crate::error::{AppError, Result};
use crate::export::serving::ExportCache;
use crate::guessing::{Guard, Limits, SourceKey};
use crate::keyring::{AdminKey, Keyring};
use crate::serving::{self, ConnectionLimits};
use crate::sessions::Sessions;
use crate::signing_keys::{SigningKeys, SigningKeysCell};
use crate::state::{AppState, Shared};
use crate::venues::Venues;
use crate::writer::Writer;
use crate::{jobs, metrics, router};

/// Connections the operator listener holds at once: a few case workers and a scraper.
const OPERATOR_CONNECTIONS: usize = 256;

/// A server with its data directory open and its database writer running, not yet
/// listening. Its [`state`](Self::state) serves requests through the routers without
/// a socket, which is how most tests drive it.
#[derive(Debug)]
pub struct Server {
    state: AppState,
    writer_thread: JoinHandle<()>,
    new_admin_key: Option<AdminKey>,
    _data_dir: DataDir,
}

impl Server {
    /// Opens (creating on first start) the data directory and starts the database
    /// writer; "now" comes from `clock`.
    pub fn open(config: Config, clock: Clock) -> Result<Self> {
        let data_dir = DataDir::open(&config.data_dir)?;
        let exports = ExportCache::new(Arc::new(jobs::open_export_store(&config)?));
        let (keyring, new_admin_key) = Keyring::open_or_create(&config.data_dir)?;
        let risk = risk_config(&config)?;
        let storage = jobs::open_storage(&config)?;
        let mut writer_store = storage.writer()?;
        let limits = Limits {
            burst: config.failed_redemptions_burst,
            per_hour: config.failed_redemptions_per_hour,
            per_source_per_day: config.failed_redemptions_per_source,
        };
        let guard = Guard::new(limits, writer_store.load_budget()?, clock.now());
        let signing_keys = SigningKeys::load(
            &mut *storage.batcher()?,
            &config.data_dir,
            &config.export_key_id,
            &config.export_key_version,
            clock.now(),
        )?;
        let (writer, writer_thread) = Writer::start(
            writer_store,
            keyring.pepper.clone(),
            guard,
            clock.clone(),
            config.write_batch as usize,
            config.export.truncate_seconds,
        )?;
        let state = AppState::new(Shared {
            clock,
            keyring,
            risk,
            writer,
            metrics: metrics::recorder(),
            accounts: Arc::new(Accounts::new(storage.accounts()?)),
            venues: Venues::new(storage.venues()?),
            sessions: Sessions::default(),
            sources: SourceKey::default(),
            signing_keys: SigningKeysCell::new(signing_keys),
            exports,
            storage,
            config,
        });
        Ok(Self {
            state,
            writer_thread,
            new_admin_key,
            _data_dir: data_dir,
        })
    }

    /// Runs one export pass now (what the background task does every minute) and makes the
    /// signing keys it found current.
    pub fn export_pass(&self) -> Result<jobs::Pass> {
        export_pass(&self.state)
    }

    /// The admin API key, if it was created by this start (first start only).
    pub fn take_new_admin_key(&mut self) -> Option<AdminKey> {
        self.new_admin_key.take()
    }

    /// The shared state, to build [`router::public`] and [`router::operator`] on.
    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    /// Binds the public and the operator listener.
    pub async fn bind(self) -> Result<Listening> {
        let bind = |address: SocketAddr| async move {
            TcpListener::bind(address)
                .await
                .map_err(|source| AppError::Io {
                    path: address.to_string(),
                    source,
                })
        };
        let public = bind(self.state.config.listen).await?;
        let operator = bind(self.state.config.operator_listen).await?;
        Ok(Listening {
            server: self,
            public,
            operator,
        })
    }
}

fn risk_config(config: &Config) -> Result<RiskConfig> {
    let Some(path) = &config.risk_config else {
        return Ok(RiskConfig::enx_with_15_minute_alert());
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

/// A [`Server`] with its sockets bound.
#[derive(Debug)]
pub struct Listening {
    server: Server,
    public: TcpListener,
    operator: TcpListener,
}

impl Listening {
    /// The public listener's address (useful with port 0).
    pub fn public_addr(&self) -> SocketAddr {
        self.public
            .local_addr()
            .unwrap_or(self.server.state.config.listen)
    }

    /// The operator listener's address.
    pub fn operator_addr(&self) -> SocketAddr {
        self.operator
            .local_addr()
            .unwrap_or(self.server.state.config.operator_listen)
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests, lets the
    /// writer commit what it was given, and returns.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        let Self {
            server,
            public,
            operator,
        } = self;
        let Server {
            state,
            writer_thread,
            _data_dir,
            ..
        } = server;
        let timeout = Duration::from_secs(state.config.request_timeout_seconds);
        let public_limits = ConnectionLimits {
            max_connections: state.config.max_connections as usize,
            header_timeout: timeout,
            trusted_proxy: state.config.trusted_proxy,
        };
        let operator_limits = ConnectionLimits {
            max_connections: OPERATOR_CONNECTIONS,
            header_timeout: timeout,
            trusted_proxy: None,
        };
        let exporter = tokio::spawn(export_in_background(state.clone()));
        let (stop, stopped) = watch::channel(false);
        let memory = state.exports.file_memory();
        let public = tokio::spawn(serving::serve(
            public,
            router::public(state.clone()),
            public_limits,
            memory.clone(),
            stopped.clone(),
        ));
        let operator = tokio::spawn(serving::serve(
            operator,
            router::operator(state),
            operator_limits,
            memory,
            stopped,
        ));
        shutdown.await;
        let _ = stop.send(true);
        let _ = public.await;
        let _ = operator.await;
        // A pass cut short holds a lease that expires; the next pass takes the batch over.
        exporter.abort();
        // The routers (and with them every sender to the writer) are gone now; the
        // writer drains its queue and stops. The data directory's lock goes last.
        tokio::task::spawn_blocking(move || writer_thread.join())
            .await
            .ok();
        drop(_data_dir);
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
    let pass = jobs::pass(
        &*state.storage,
        state.exports.store(),
        &state.config,
        &state.clock,
    )?;
    state.signing_keys.set(std::sync::Arc::clone(&pass.keys));
    Ok(pass)
}
