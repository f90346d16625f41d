//! # kith-server
//!
//! The Kith key server: a health authority issues one-time verification codes, people
//! who tested positive publish their Temporary Exposure Keys with a code, and the
//! server stores them (SQLite in WAL mode, one writer thread with group commit) for
//! the export files phones download.
//!
//! ```text
//!  case worker ──/portal, /v1/admin/codes──▶ code (hashed) ─┐
//!  phone ──/v1/publish (JSON or HPKE-sealed, padded)────────┴▶ writer thread ─▶ SQLite
//!  phone ──/v1/config: risk config, export key, HPKE key
//! ```
//!
//! What it does not do (yet): build and serve export files, delete old data, run on
//! PostgreSQL. It never sees IP addresses or logs keys and codes.
//!
//! The router is [`app`]; [`Server`] opens a data directory and serves it:
//!
//! ```no_run
//! # async fn run() -> Result<(), kith_server::AppError> {
//! use clap::Parser;
//! let config = kith_server::Config::parse_from(["kith-server", "--listen", "127.0.0.1:0"]);
//! let server = kith_server::Server::start(config).await?;
//! println!("listening on {}", server.local_addr());
//! server.serve(std::future::pending()).await
//! # }
//! ```
//!
//! Handlers can be tested without a socket:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use tower::ServiceExt;
//! let dir = tempfile::tempdir().unwrap();
//! let server = kith_server::Server::start(kith_server::Config::with_data_dir(dir.path()))
//!     .await
//!     .unwrap();
//! let app = kith_server::app(server.state());
//! let request = axum::http::Request::get("/healthz").body(axum::body::Body::empty()).unwrap();
//! let response = app.oneshot(request).await.unwrap();
//! assert_eq!(response.status(), 200);
//! # }
//! ```
#![forbid(unsafe_code)]

pub mod admin;
pub mod calendar;
pub mod client_config;
pub mod clock;
pub mod codes;
pub mod config;
pub mod db;
pub mod error;
pub mod health;
pub mod json;
pub mod keyring;
pub mod metrics;
pub mod openapi;
pub mod portal;
pub mod publish;
pub mod schema;
pub mod sealed;
pub mod state;
pub mod writer;

use std::future::Future;
use std::net::SocketAddr;
use std::thread::JoinHandle;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Uri;
use tokio::net::TcpListener;

pub use clock::Clock;
pub use config::{Config, Durability};
pub use error::{AppError, ErrorBody, Result};
pub use keyring::{AdminKey, Keyring};
pub use state::{AppState, Shared};

/// The whole HTTP API on `state`.
pub fn app(state: AppState) -> Router {
    let (router, _) = openapi::api_router().split_for_parts();
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(metrics::track))
        .layer(DefaultBodyLimit::max(json::MAX_BODY_BYTES))
        .with_state(state)
}

async fn not_found(uri: Uri) -> AppError {
    AppError::NotFound(uri.path().chars().take(200).collect())
}

async fn method_not_allowed() -> AppError {
    AppError::MethodNotAllowed
}

/// A server with its data directory open and its socket bound, not yet serving.
#[derive(Debug)]
pub struct Server {
    state: AppState,
    listener: TcpListener,
    writer_thread: JoinHandle<()>,
    new_admin_key: Option<AdminKey>,
}

impl Server {
    /// Opens (creating on first start) the data directory, starts the database
    /// writer and binds the listening socket.
    pub async fn start(config: Config) -> Result<Self> {
        let (keyring, new_admin_key) = Keyring::open_or_create(
            &config.data_dir,
            &config.export_key_id,
            &config.export_key_version,
        )?;
        let clock = Clock::with_offset(config.test_clock_offset_seconds);
        let risk = match &config.risk_config {
            None => kith_core::risk::RiskConfig::enx_defaults(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| AppError::Io {
                    path: path.display().to_string(),
                    source,
                })?;
                kith_core::risk::RiskConfig::from_json(&text).map_err(|e| AppError::BadFile {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?
            }
        };
        let conn = db::open(&config.data_dir, config.durability)?;
        let checkpoint_conn = db::open(&config.data_dir, config.durability)?;
        let budget = codes::GuessBudget::new(
            config.failed_redemptions_burst,
            config.failed_redemptions_per_hour,
            clock.now_unix(),
        );
        let (writer, writer_thread) = writer::Writer::start(
            conn,
            checkpoint_conn,
            keyring.pepper.clone(),
            budget,
            clock,
            config.write_batch as usize,
        )?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| AppError::Io {
                path: config.listen.to_string(),
                source,
            })?;
        let state = AppState::new(Shared {
            config,
            clock,
            keyring,
            risk,
            writer,
            metrics: metrics::recorder(),
            sessions: portal::Sessions::default(),
        });
        Ok(Self {
            state,
            listener,
            writer_thread,
            new_admin_key,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.state.config.listen)
    }

    /// The admin API key, if it was created by this start (first start only).
    pub fn take_new_admin_key(&mut self) -> Option<AdminKey> {
        self.new_admin_key.take()
    }

    /// The shared state, e.g. to build [`app`] for tests without a socket.
    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests, lets the
    /// writer commit what it was given, and returns.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        let Self {
            state,
            listener,
            writer_thread,
            ..
        } = self;
        let router = app(state);
        axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(|source| AppError::Io {
                path: "listener".into(),
                source,
            })?;
        // The router (and with it every sender to the writer) is gone now; the writer
        // drains its queue and stops.
        tokio::task::spawn_blocking(move || writer_thread.join())
            .await
            .ok();
        Ok(())
    }
}
