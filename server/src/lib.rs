//! # kith-server
//!
//! The Kith key server: a health authority issues one-time verification codes, people
//! who tested positive publish their Temporary Exposure Keys with a code, and the
//! server stores them (SQLite in WAL mode, one writer thread with group commit) for
//! the export files phones download.
//!
//! ```text
//!  operator listener:  case worker ──/portal, /v1/admin/codes──▶ code (hashed) ─┐
//!  public listener:    phone ──/v1/publish (JSON or HPKE-sealed, padded)────────┴▶ writer ─▶ SQLite
//!                      phone ──/v1/config: risk config, export key, HPKE key
//! ```
//!
//! What it does not do (yet): build and serve export files, delete old data, run on
//! PostgreSQL. It never logs or stores IP addresses, keys or codes; a client's address
//! is used only as a keyed hash, in memory, for the guessing limits.
//!
//! [`Server::open`] opens a data directory with a [`Clock`]; [`public`] and [`operator`]
//! are the routers of its two listeners. Handlers are tested without a socket, on a
//! clock the test moves:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use tower::ServiceExt;
//! let dir = tempfile::tempdir().unwrap();
//! let clock = kith_server::ManualClock::starting_now();
//! let server =
//!     kith_server::Server::open(kith_server::Config::with_data_dir(dir.path()), clock.clock())
//!         .unwrap();
//! let app = kith_server::public(server.state());
//! let request = axum::http::Request::get("/healthz").body(axum::body::Body::empty()).unwrap();
//! let response = app.oneshot(request).await.unwrap();
//! assert_eq!(response.status(), 200);
//! # }
//! ```
//!
//! The binary binds and serves:
//!
//! ```no_run
//! # async fn run() -> Result<(), kith_server::AppError> {
//! use clap::Parser;
//! let config = kith_server::Config::parse_from(["kith-server", "--listen", "127.0.0.1:0"]);
//! let server = kith_server::Server::open(config, kith_server::Clock::system())?;
//! let listening = server.bind().await?;
//! println!("listening on {} and {}", listening.public_addr(), listening.operator_addr());
//! listening.serve(std::future::pending()).await
//! # }
//! ```
//!
//! Modules, from the bottom: `clock`, `calendar`, `error` (no server modules below
//! them); the domain — `codes` (codes, orders, the guessing budget), `upload` (the
//! publish document and GAEN's rules), `sealed` (HPKE), `keyring`, `sessions`; storage
//! — `storage` (the traits every backend implements), `sqlite` with `schema` and `db`,
//! `writer` (group commit over any backend); `statistics` (the daily figures); `state`; and
//! on top the HTTP layer — `json`, `html` and one module per resource (`publish`, `admin`,
//! `portal`, `portal_dashboard`, `portal_venues`, `client_config`, `distribution`,
//! `health`, `metrics`, `openapi`). Lower modules never import higher ones.
#![forbid(unsafe_code)]

mod accounts;
mod admin;
mod answer;
pub mod calendar;
mod client_config;
mod clock;
mod codes;
mod config;
mod datadir;
mod db;
mod distribution;
mod error;
pub mod export;
mod guessing;
mod health;
mod html;
pub mod inspect;
pub mod jobs;
mod json;
mod keyring;
mod metrics;
mod openapi;
mod pacing;
mod portal;
mod portal_dashboard;
mod portal_venues;
mod postgres;
mod publish;
mod retention;
mod router;
mod schema;
pub mod sealed;
mod server;
mod serving;
mod sessions;
pub mod signing_keys;
mod sqlite;
mod state;
mod statistics;
pub mod storage;
mod upload;
mod venues;
pub mod window;
mod writer;
pub mod zero_copy;

pub use answer::RESPONSE_LEN;
pub use clock::{Clock, ManualClock, UnixSeconds};
pub use codes::CODE_DIGITS;
pub use config::{Config, Durability, ExportServe, ExportStoreUrl};
pub use error::{AppError, ErrorBody, Result};
pub use keyring::AdminKey;
pub use postgres::create_database;
pub use router::{operator, public};
pub use server::{Listening, Server};
pub use state::AppState;
pub use upload::{ExposureKey, PublishRequest};
