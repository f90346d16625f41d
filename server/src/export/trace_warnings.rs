//! Trace-warning packages: the venue check-ins released in an export batch's window,
//! padded with fake reports, signed with the export keys (core's signed package format)
//! and written beside the key files in the export store, with an index of their own.
//!
//! A package is one more file of the batch: the batch's lease covers it, its padding is
//! stored before it is written (so a package written again is byte-identical and keeps
//! its ETag), it is recorded with the batch's files when the batch completes, and
//! retention drops it from its index and deletes it as it does key files.

use kith_core::ExportSigner;
use kith_core::checkin::{HOUR_SECONDS, ProtectedReport, TraceWarningBatch, write_trace_warnings};
use rand_core::OsRng;
use rusqlite::{Connection, TransactionBehavior, params};
use sha2::{Digest, Sha256};

use super::ExportSettings;
use super::batches::{self, FileRecord, Lease};
use super::files;
use super::store::{ExportStore, StagedFile};
use super::window::Window;
use crate::clock::UnixSeconds;
use crate::error::{AppError, Result};
use crate::storage::BatchStore;

/// The directory of trace-warning packages, relative to the data directory and the URL.
pub const TRACE_WARNING_DIR: &str = "v1/trace-warnings";

/// Their index, one path a line, oldest first.
pub const TRACE_WARNING_INDEX: &str = "v1/trace-warnings/index.txt";

/// The name of the package of `window`: deterministic, sorted by time.
pub fn file_name(window: Window) -> String {
    format!(
        "{TRACE_WARNING_DIR}/{}-{}.zip",
        window.start.get(),
        window.end.get()
    )
}

/// Whether `name` (below [`TRACE_WARNING_DIR`]) looks like a name [`file_name`] makes.
pub fn is_package_name(name: &str) -> bool {
    files::is_numbered_zip(name, 2)
}

/// Writes the package of a leased batch. A window with keys or check-ins gets a package
/// (padded to `padding`, so an hour's package tells neither how many positive people
/// shared visits nor whether any did); an empty one none, as it gets no key file.
/// Returns the package's record (none for an empty window), or `None` when another
/// batcher took the batch.
pub fn write_package(
    store: &mut dyn BatchStore,
    exports: &ExportStore,
    settings: &ExportSettings,
    signers: &[&ExportSigner],
    lease: &Lease,
    has_keys: bool,
) -> Result<Option<Vec<(StagedFile, FileRecord)>>> {
    let window = lease.window;
    let real = store.released_reports(window)?;
    if real.is_empty() && !has_keys {
        return Ok(Some(Vec::new()));
    }
    let mut fake = store.stored_report_padding(window.start)?;
    if fake.is_empty() {
        let count = settings.report_padding.fill(real.len(), &mut OsRng);
        let fresh = (0..count)
            .map(|_| ProtectedReport::padding(&mut OsRng))
            .collect();
        match store.store_report_padding(lease, fresh)? {
            Some(stored) => fake = stored,
            None => return Ok(None),
        }
    }
    let mut reports = real;
    let (real_count, padding_count) = (reports.len(), fake.len());
    reports.extend(fake);
    let zip = write_trace_warnings(
        &TraceWarningBatch {
            region: &settings.region,
            hour: u32::try_from(window.start.get() / HOUR_SECONDS).unwrap_or(u32::MAX),
            reports: &reports,
        },
        signers,
    )
    .map_err(|e| AppError::Corrupt(format!("cannot write a trace-warning package: {e}")))?;
    let record = FileRecord {
        name: file_name(window),
        real_keys: real_count,
        padding_keys: padding_count,
        bytes: zip.len() as u64,
        sha256: Sha256::digest(&zip).into(),
    };
    let file = exports.stage(&record.name, zip)?;
    Ok(Some(vec![(file, record)]))
}

/// The check-ins released in `window`, in SQLite.
pub fn released_reports(conn: &Connection, window: Window) -> Result<Vec<ProtectedReport>> {
    let mut stmt = conn.prepare_cached(
        "SELECT report FROM check_in_reports WHERE released_at >= ?1 AND released_at < ?2",
    )?;
    let rows = stmt.query_map(params![window.start.get(), window.end.get()], |r| {
        r.get::<_, Vec<u8>>(0)
    })?;
    rows.map(|bytes| decode(&bytes?)).collect()
}

/// The padding stored for the batch starting at `start`, in SQLite.
pub fn stored_padding(conn: &Connection, start: UnixSeconds) -> Result<Vec<ProtectedReport>> {
    let mut stmt = conn.prepare_cached(
        "SELECT report FROM trace_warning_padding WHERE batch_start = ?1 ORDER BY rowid",
    )?;
    let rows = stmt.query_map([start.get()], |r| r.get::<_, Vec<u8>>(0))?;
    rows.map(|bytes| decode(&bytes?)).collect()
}

/// Stores `padding` unless some is stored already (then returns that); `None` when the
/// lease was lost. In SQLite.
pub fn store_padding(
    conn: &mut Connection,
    lease: &Lease,
    padding: Vec<ProtectedReport>,
) -> Result<Option<Vec<ProtectedReport>>> {
    let start = lease.window.start;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if !batches::holds(&tx, lease)? {
        return Ok(None);
    }
    let stored = stored_padding(&tx, start)?;
    if !stored.is_empty() {
        return Ok(Some(stored));
    }
    {
        let mut insert =
            tx.prepare("INSERT INTO trace_warning_padding (batch_start, report) VALUES (?1, ?2)")?;
        for report in &padding {
            insert.execute(params![start.get(), report.to_bytes()])?;
        }
    }
    tx.commit()?;
    Ok(Some(padding))
}

pub(crate) fn decode(bytes: &[u8]) -> Result<ProtectedReport> {
    ProtectedReport::from_bytes(bytes)
        .map_err(|e| AppError::Corrupt(format!("stored check-in report: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::UnixSeconds;

    #[test]
    fn names_are_deterministic_and_recognised() {
        let window = Window {
            start: UnixSeconds::new(1_800_000_000),
            end: UnixSeconds::new(1_800_003_600),
        };
        let name = file_name(window);
        assert_eq!(name, "v1/trace-warnings/1800000000-1800003600.zip");
        assert!(is_package_name(
            name.strip_prefix("v1/trace-warnings/").unwrap()
        ));
        for bad in ["index.txt", "1-2-3.zip", "../1-2.zip", "a-2.zip", "1-.zip"] {
            assert!(!is_package_name(bad), "{bad}");
        }
    }
}
