//! What the operator's commands and the server's background task run on a data directory:
//! the export pass (export what is ready, then apply retention), which the server runs
//! every minute (or every export period if shorter) and `kith-server export --once` runs
//! once, and `kith-server keys rotate`. Several passes at once, in one process or several,
//! are safe.

use std::path::Path;
use std::sync::Arc;

use crate::clock::{Clock, UnixSeconds};
use crate::config::Config;
use crate::error::Result;
use crate::export::store::ExportStore;
use crate::export::{self, ExportRun, ExportSettings};
use crate::postgres::PostgresStorage;
use crate::retention::{Retention, RetentionRun};
use crate::signing_keys::{self, Rotation, SigningKeys};
use crate::sqlite::SqliteStorage;
use crate::storage::Storage;

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

/// The storage `config` names (PostgreSQL with `--database`, else SQLite in the data
/// directory), created and migrated if needed.
pub fn open_storage(config: &Config) -> Result<Arc<dyn Storage>> {
    Ok(match &config.database_url {
        Some(url) => Arc::new(PostgresStorage::open(url.expose())?),
        None => Arc::new(SqliteStorage::open(config)?),
    })
}

/// The storage of a server that has run before, for the operator's commands.
pub fn open_existing_storage(config: &Config) -> Result<Arc<dyn Storage>> {
    Ok(match &config.database_url {
        Some(url) => Arc::new(PostgresStorage::open(url.expose())?),
        None => Arc::new(SqliteStorage::open_existing(config)?),
    })
}

/// The export store `config` names (the bucket of `--export-store`, else the data
/// directory).
pub fn open_export_store(config: &Config) -> Result<ExportStore> {
    ExportStore::open(
        config.export_store.as_ref(),
        config.export_public_url.as_deref(),
        &config.data_dir,
    )
}

/// Runs one pass on `storage` and `exports` with the settings of `config`, reading the
/// time from `clock`.
pub fn pass(
    storage: &dyn Storage,
    exports: &ExportStore,
    config: &Config,
    clock: &Clock,
) -> Result<Pass> {
    let now = clock.now();
    let data_dir: &Path = &config.data_dir;
    let mut store = storage.batcher()?;
    let keys = SigningKeys::load(
        &mut *store,
        data_dir,
        &config.export_key_id,
        &config.export_key_version,
        now,
    )?;
    let settings = ExportSettings::from(&config.export);
    let export = export::run_once(&mut *store, exports, &settings, &keys, clock)?;
    let retention = Retention {
        keep_seconds: config.export.retention_days * 86_400,
        delete_delay_seconds: config.export.delete_delay_seconds,
    }
    .run(&mut *store, exports, clock.now())?;
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
    let mut store = open_existing_storage(config)?.batcher()?;
    // Registers the first key if no server has run since the upgrade.
    SigningKeys::load(
        &mut *store,
        &config.data_dir,
        &config.export_key_id,
        &config.export_key_version,
        now,
    )?;
    signing_keys::rotate(&mut *store, now, retire_at)
}
