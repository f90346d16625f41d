//! The export batcher: published keys out into signed GAEN files, each key exactly once.
//!
//! Keys carry a release time (`embargo_until`: their arrival, or the end of their validity
//! when they were still in use). Time is cut into contiguous, non-overlapping windows of
//! release times ([`window`]), each only once it ended `min_age` ago, so no key can still
//! land in it. A window becomes a batch that batchers lease ([`batches`]): open → pending
//! with an expiry → complete, each step one transaction. A batch's files have
//! deterministic names, its padding is stored before any file is written, signing is
//! deterministic and the zip carries fixed times, so a batch exported twice (two batchers,
//! or one killed and restarted) gives byte-identical files: no key is exported twice or
//! skipped, and an ETag never changes.

pub mod batches;
pub mod files;
pub mod padding;
pub mod serving;
pub mod store;
pub mod trace_warnings;
pub use crate::window;

use std::collections::HashSet;

use kith_core::{BatchPart, ExportBatch, write_export_part};
use rand_core::OsRng;
use sha2::{Digest, Sha256};

use crate::clock::{Clock, UnixSeconds};
use crate::config::ExportConfig;
use crate::error::{AppError, Result};
use crate::signing_keys::SigningKeys;
use crate::storage::{BatchStore, FileRecord, Lease, Mixed};
use padding::PaddingRule;
use store::{ExportStore, StagedFile};
use window::Windowing;

/// How batches are cut and files made.
#[derive(Clone, Debug)]
pub struct ExportSettings {
    /// Window length and minimum age.
    pub windowing: Windowing,
    /// Padding of small batches.
    pub padding: PaddingRule,
    /// Padding of small trace-warning packages.
    pub report_padding: PaddingRule,
    /// Most keys in one file; bigger batches are split.
    pub max_keys_per_file: usize,
    /// The region written into every file.
    pub region: String,
    /// How long a batcher may hold a batch before another may take it over.
    pub lease_seconds: u64,
}

impl From<&ExportConfig> for ExportSettings {
    fn from(config: &ExportConfig) -> Self {
        Self {
            windowing: Windowing::new(config.period_seconds, config.min_age_seconds)
                .unwrap_or_else(|e| unreachable!("the period is checked when parsed: {e}")),
            padding: PaddingRule {
                minimum: config.min_keys,
                range: config.padding_range,
            },
            report_padding: PaddingRule {
                minimum: config.min_reports,
                range: config.report_padding_range,
            },
            max_keys_per_file: config.max_keys_per_file as usize,
            region: config.region.clone(),
            lease_seconds: config.lease_seconds,
        }
    }
}

/// What one pass of the batcher did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExportRun {
    /// Published keys and check-ins moved out of staging (see [`BatchStore::mix_staged`]).
    pub mixed: Mixed,
    /// Windows newly cut into batches.
    pub cut: usize,
    /// Batches this pass completed.
    pub completed: usize,
    /// Batches another batcher took over while this one worked on them.
    pub lost: usize,
    /// Key export files written.
    pub files: Vec<FileRecord>,
    /// Trace-warning packages written.
    pub packages: Vec<FileRecord>,
}

/// One pass: removes what killed batchers left, cuts the windows that are ready, exports
/// every batch it can lease, and rewrites the index. Safe to run in several processes at
/// once. Reads `clock` at each step, so a long pass's last leases are as long as its first.
pub fn run_once(
    store: &mut dyn BatchStore,
    exports: &ExportStore,
    settings: &ExportSettings,
    keys: &SigningKeys,
    clock: &Clock,
) -> Result<ExportRun> {
    files::remove_dead_temporaries(store, exports)?;
    let mut run = ExportRun {
        mixed: store.mix_staged(clock.now())?,
        cut: store.cut_windows(&settings.windowing, clock.now())?,
        ..ExportRun::default()
    };
    while let Some(lease) = store.lease(clock.now(), settings.lease_seconds)? {
        let published = match stage_batch(store, exports, settings, keys, lease, clock.now())? {
            Some(staged) => publish_batch(store, exports, staged, clock.now())?,
            None => None,
        };
        match published {
            Some((files, packages)) => {
                run.completed += 1;
                run.files.extend(files);
                run.packages.extend(packages);
            }
            None => run.lost += 1,
        }
    }
    files::write_index(store, exports)?;
    Ok(run)
}

/// The files of one leased batch, staged (in the data directory: written and flushed
/// under temporary names), not yet published.
#[derive(Debug)]
pub struct StagedBatch {
    lease: Lease,
    files: Vec<(StagedFile, FileRecord)>,
    packages: Vec<(StagedFile, FileRecord)>,
}

/// Stages the files of a leased batch (key exports, then the trace-warning package),
/// storing their padding first; `None` if the lease was lost meanwhile.
pub fn stage_batch(
    store: &mut dyn BatchStore,
    exports: &ExportStore,
    settings: &ExportSettings,
    keys: &SigningKeys,
    lease: Lease,
    now: UnixSeconds,
) -> Result<Option<StagedBatch>> {
    let window = lease.window;
    let mut real = store.released_keys(window)?;
    // A key published twice (with two codes) goes out once.
    real.sort_by_key(|key| *key.tek.expose_secret());
    real.dedup_by_key(|key| *key.tek.expose_secret());

    let mut padding = store.stored_padding(window.start)?;
    if padding.is_empty() {
        let fresh = settings.padding.padding(&real, &mut OsRng);
        if !fresh.is_empty() {
            match store.store_padding(&lease, fresh)? {
                Some(stored) => padding = stored,
                None => return Ok(None),
            }
        }
    }

    let signers = keys.signers(now);
    if signers.is_empty() {
        return Err(AppError::BadFile {
            path: "signing_keys".into(),
            reason: "no signing key is active: rotate one in (kith-server keys rotate)".into(),
        });
    }
    let fakes: HashSet<[u8; 16]> = padding.iter().map(|key| *key.tek.expose_secret()).collect();
    let mut all = real;
    all.extend(padding);
    all.sort_by_key(|key| *key.tek.expose_secret());

    let mut staged = StagedBatch {
        lease,
        files: Vec::new(),
        packages: Vec::new(),
    };
    let chunks = all.chunks(settings.max_keys_per_file.max(1));
    let parts = chunks.len();
    for (i, chunk) in chunks.enumerate() {
        let padding_keys = chunk
            .iter()
            .filter(|key| fakes.contains(key.tek.expose_secret()))
            .count();
        let part = BatchPart::new(i + 1, parts)
            .ok_or_else(|| AppError::Corrupt(format!("a batch of {parts} files is too big")))?;
        let zip = write_export_part(
            &ExportBatch {
                region: &settings.region,
                start_timestamp: window.start.get(),
                end_timestamp: window.end.get(),
                keys: chunk,
                revised_keys: &[],
            },
            part,
            &signers,
        )
        .map_err(|e| AppError::Corrupt(format!("cannot write an export: {e}")))?;
        let name = files::file_name(window, i + 1);
        let record = FileRecord {
            name,
            real_keys: chunk.len() - padding_keys,
            padding_keys,
            bytes: zip.len() as u64,
            sha256: Sha256::digest(&zip).into(),
        };
        let file = match exports.stage(&record.name, zip) {
            Ok(file) => file,
            Err(e) => {
                staged.discard(exports)?;
                return Err(e);
            }
        };
        staged.files.push((file, record));
    }
    let has_keys = !staged.files.is_empty();
    match trace_warnings::write_package(store, exports, settings, &signers, &staged.lease, has_keys)
    {
        Ok(Some(packages)) => staged.packages = packages,
        Ok(None) => {
            staged.discard(exports)?;
            return Ok(None);
        }
        Err(e) => {
            staged.discard(exports)?;
            return Err(e);
        }
    }
    Ok(Some(staged))
}

/// Publishes a staged batch's files and completes it, if its lease still holds; otherwise
/// deletes them, and returns `None`: whoever took the batch over publishes it.
pub fn publish_batch(
    store: &mut dyn BatchStore,
    exports: &ExportStore,
    staged: StagedBatch,
    now: UnixSeconds,
) -> Result<Option<(Vec<FileRecord>, Vec<FileRecord>)>> {
    let key_files = staged.files.len();
    let (mut unpublished, records): (Vec<StagedFile>, Vec<FileRecord>) =
        staged.files.into_iter().chain(staged.packages).unzip();
    let completed = store.finish(&staged.lease, &records, now, &mut || {
        while let Some(file) = unpublished.pop() {
            exports.publish(file)?;
        }
        Ok(())
    });
    for file in unpublished {
        exports.discard(file)?;
    }
    let mut records = records;
    let packages = records.split_off(key_files);
    Ok(completed?.then_some((records, packages)))
}

impl StagedBatch {
    /// The window of the batch.
    pub fn window(&self) -> window::Window {
        self.lease.window
    }

    /// Whether the batch has no files (a window nothing was released in).
    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.packages.is_empty()
    }

    fn discard(self, exports: &ExportStore) -> Result<()> {
        self.files
            .into_iter()
            .chain(self.packages)
            .try_for_each(|(file, _)| exports.discard(file))
    }
}
