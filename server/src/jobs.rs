//! What the operator's commands and the server's background task run on a data directory:
//! the export pass (export what is ready, then apply retention), which the server runs
//! every minute (or every export period if shorter) and `kith-server export --once` runs
//! once, and `kith-server keys rotate`. Several passes at once, in one process or several,
//! are safe.

use std::path::Path;
use std::sync::Arc;

use crate::clock::{Clock, UnixSeconds};
use crate::config::Config;
use crate::db;
use crate::error::{AppError, Result};
use crate::export::{self, ExportRun, ExportSettings};
use crate::retention::{Retention, RetentionRun};
use crate::signing_keys::{self, Rotation, SigningKeys};

/// Seconds between passes at most.
pub const MAX_PASS_INTERVAL: u64 = 60;

/// What one pass did, and the signing keys it found.
#[derive(Debug)]
pub struct Pass {
    /// The export step.
    pub export: ExportRun,
    /// The retention step.
    pub retention: RetentionRun,
    /// The signing keys as the database lists them now.
    pub keys: Arc<SigningKeys>,
}

/// Runs one pass on the data directory of `config`, reading the time from `clock`.
pub fn pass(config: &Config, clock: &Clock) -> Result<Pass> {
    let now = clock.now();
    let data_dir: &Path = &config.data_dir;
    let mut conn = open_existing(config)?;
    let keys = SigningKeys::load(
        &conn,
        data_dir,
        &config.export_key_id,
        &config.export_key_version,
        now,
    )?;
    let settings = ExportSettings::from(&config.export);
    let export = export::run_once(&mut conn, data_dir, &settings, &keys, clock)?;
    let retention = Retention {
        keep_seconds: config.export.retention_days * 86_400,
        delete_delay_seconds: config.export.delete_delay_seconds,
    }
    .run(&mut conn, data_dir, clock.now())?;
    Ok(Pass {
        export,
        retention,
        keys: Arc::new(keys),
    })
}

/// Adds an export signing key to the data directory of `config`; with `retire_at`, the
/// keys before it stop signing then.
pub fn rotate_signing_key(
    config: &Config,
    now: UnixSeconds,
    retire_at: Option<UnixSeconds>,
) -> Result<Rotation> {
    let mut conn = open_existing(config)?;
    // Registers the first key if no server has run since the upgrade.
    SigningKeys::load(
        &conn,
        &config.data_dir,
        &config.export_key_id,
        &config.export_key_version,
        now,
    )?;
    signing_keys::rotate(&mut conn, &config.data_dir, now, retire_at)
}

/// The database of a data directory a server has already set up (it creates the keys).
fn open_existing(config: &Config) -> Result<rusqlite::Connection> {
    let database = config.data_dir.join(db::DATABASE_FILE);
    if !database.is_file() {
        return Err(AppError::BadFile {
            path: config.data_dir.display().to_string(),
            reason: "no Kith data directory here; start kith-server on it once first".into(),
        });
    }
    db::open(&config.data_dir, config.durability, config.max_database_mib)
}
