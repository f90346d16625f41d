//! The batch table and what goes with it: cutting windows, leases, stored padding, the files
//! of completed batches, in SQLite ([`crate::sqlite`] runs them). Every state change is one
//! transaction.
//!
//! ```text
//!  (no row) ──cut──▶ open ──lease──▶ pending (lease_id, lease_expires) ──finish──▶ complete
//!                                     └── lease expired: another batcher may lease it again
//! ```
//!
//! Every lease gets a fresh random token. A batcher's writes (its padding, its files, the
//! completion) check in the same transaction that the batch still carries its token, so a
//! batcher that outlived its lease and was taken over changes nothing.

use kith_core::{DaysSinceOnset, DiagnosisKey, KeyValidity, ReportType, RollingPeriod};
use kith_core::{IntervalNumber, TemporaryExposureKey};
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

use crate::calendar::Day;
use crate::clock::UnixSeconds;
use crate::db;
use crate::error::{AppError, Result};
use crate::export::files::EXPORT_DIR;
use crate::storage::DayCounts;
pub use crate::storage::{FileRecord, Lease};
use crate::window::{Window, Windowing};

/// Inserts an open batch for every window that is old enough and not cut yet. The first
/// window holds the oldest key's arrival (every later key is released no earlier).
/// Returns how many were cut.
pub fn cut_windows(
    conn: &mut Connection,
    windowing: &Windowing,
    now: UnixSeconds,
) -> Result<usize> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let last_end: Option<u64> =
        tx.query_row("SELECT max(end_time) FROM export_batches", [], |r| r.get(0))?;
    let first = match last_end {
        Some(end) => end,
        None => {
            let oldest: Option<u64> =
                tx.query_row("SELECT min(received_at) FROM diagnosis_keys", [], |r| {
                    r.get(0)
                })?;
            let Some(oldest) = oldest else { return Ok(0) };
            oldest
        }
    };
    let mut cut = 0;
    {
        let mut insert = tx.prepare(
            "INSERT INTO export_batches (start_time, end_time, status) VALUES (?1, ?2, 'open')",
        )?;
        for window in windowing.ready(UnixSeconds::new(first), now) {
            insert.execute(params![window.start.get(), window.end.get()])?;
            cut += 1;
        }
    }
    tx.commit()?;
    Ok(cut)
}

/// Takes the oldest batch that is open, or pending with an expired lease, until
/// `lease_seconds` after `now`.
pub fn lease(conn: &mut Connection, now: UnixSeconds, lease_seconds: u64) -> Result<Option<Lease>> {
    let token = Lease::fresh_token();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let window = tx
        .query_row(
            "UPDATE export_batches SET status = 'pending', lease_id = ?1, lease_expires = ?2
             WHERE start_time = (
                 SELECT start_time FROM export_batches
                 WHERE status = 'open' OR (status = 'pending' AND lease_expires <= ?3)
                 ORDER BY start_time LIMIT 1)
             RETURNING start_time, end_time",
            params![token.as_slice(), now.plus(lease_seconds).get(), now.get()],
            |r| {
                Ok(Window {
                    start: UnixSeconds::new(r.get(0)?),
                    end: UnixSeconds::new(r.get(1)?),
                })
            },
        )
        .optional()?;
    tx.commit()?;
    Ok(window.map(|window| Lease::new(window, token)))
}

/// Whether `lease` still holds its batch: nobody took it over, nobody completed it. An
/// expired lease nobody took over still holds, so a slow batcher alone still gets done.
pub fn holds(conn: &Connection, lease: &Lease) -> Result<bool> {
    Ok(conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM export_batches
         WHERE start_time = ?1 AND status = 'pending' AND lease_id = ?2)",
        params![lease.window.start.get(), lease.token().as_slice()],
        |r| r.get(0),
    )?)
}

/// The start times of the pending batches: some batcher may be writing their files.
pub fn pending(conn: &Connection) -> Result<Vec<UnixSeconds>> {
    let mut stmt =
        conn.prepare_cached("SELECT start_time FROM export_batches WHERE status = 'pending'")?;
    let starts = stmt.query_map([], |r| Ok(UnixSeconds::new(r.get(0)?)))?;
    Ok(starts.collect::<rusqlite::Result<_>>()?)
}

/// The keys released in `window`, in the table's (random) order.
pub fn released_keys(conn: &Connection, window: Window) -> Result<Vec<DiagnosisKey>> {
    let mut stmt = conn.prepare_cached(
        "SELECT key_data, rolling_start, rolling_period, transmission_risk, report_type,
                days_since_onset
         FROM diagnosis_keys WHERE embargo_until >= ?1 AND embargo_until < ?2 ORDER BY rowid",
    )?;
    let rows = stmt.query_map(params![window.start.get(), window.end.get()], key_columns)?;
    rows.map(|row| row?).collect()
}

/// The padding stored for the batch starting at `start` (empty if none was stored).
pub fn stored_padding(conn: &Connection, start: UnixSeconds) -> Result<Vec<DiagnosisKey>> {
    let mut stmt = conn.prepare_cached(
        "SELECT key_data, rolling_start, rolling_period, transmission_risk, report_type,
                days_since_onset
         FROM export_padding WHERE batch_start = ?1 ORDER BY rowid",
    )?;
    let rows = stmt.query_map([start.get()], key_columns)?;
    rows.map(|row| row?).collect()
}

/// Stores `padding` for the leased batch unless padding is stored already; returns the
/// batch's padding (ours, or the one stored first), or `None` when the lease was lost.
pub fn store_padding(
    conn: &mut Connection,
    lease: &Lease,
    padding: Vec<DiagnosisKey>,
) -> Result<Option<Vec<DiagnosisKey>>> {
    let start = lease.window.start;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if !holds(&tx, lease)? {
        return Ok(None);
    }
    let stored = stored_padding(&tx, start)?;
    if !stored.is_empty() {
        return Ok(Some(stored));
    }
    {
        let mut insert = tx.prepare(
            "INSERT INTO export_padding (batch_start, key_data, rolling_start, rolling_period,
                 transmission_risk, report_type, days_since_onset)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for key in &padding {
            let validity = key.tek.validity();
            insert.execute(params![
                start.get(),
                key.tek.expose_secret().as_slice(),
                validity.start().get(),
                validity.period().get(),
                key.transmission_risk_level,
                key.report_type as i32,
                key.days_since_onset.map(|d| d.get()),
            ])?;
        }
    }
    tx.commit()?;
    Ok(Some(padding))
}

/// If `lease` still holds its batch: runs `publish` (which puts the files in place),
/// records the files and marks the batch complete, all under the database's write lock,
/// so no other batcher can take the batch over or complete it in between. Returns
/// `false`, without running `publish`, when the lease was lost.
pub fn finish(
    conn: &mut Connection,
    lease: &Lease,
    files: &[FileRecord],
    now: UnixSeconds,
    publish: &mut dyn FnMut() -> Result<()>,
) -> Result<bool> {
    let window = lease.window;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if !holds(&tx, lease)? {
        return Ok(false);
    }
    {
        let mut insert = tx.prepare(
            "INSERT OR IGNORE INTO export_files (name, batch_start, batch_end, real_keys,
                 padding_keys, bytes, sha256, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        let mut exported = DayCounts::default();
        for file in files {
            let inserted = insert.execute(params![
                file.name,
                window.start.get(),
                window.end.get(),
                file.real_keys as u64,
                file.padding_keys as u64,
                file.bytes,
                file.sha256.as_slice(),
                now.get(),
            ])?;
            if inserted == 1 && file.name.starts_with(&format!("{EXPORT_DIR}/")) {
                exported.export_files += 1;
                exported.export_bytes += file.bytes;
            }
        }
        if !exported.is_empty() {
            db::add_day_counts(&tx, Day::of(now), &exported)?;
        }
    }
    tx.execute(
        "UPDATE export_batches SET status = 'complete', lease_id = NULL, lease_expires = NULL
         WHERE start_time = ?1",
        [window.start.get()],
    )?;
    // Last before the commit: if it fails, nothing is recorded and the batch stays
    // pending for a retry, which writes the same files again.
    publish()?;
    tx.commit()?;
    Ok(true)
}

/// The names of the files below `dir` in the index: not expired, oldest window first.
pub fn indexed_files(conn: &Connection, dir: &str) -> Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT name FROM export_files WHERE expired_at IS NULL AND substr(name, 1, length(?1)) = ?1
         ORDER BY batch_start, name",
    )?;
    let names = stmt.query_map([format!("{dir}/")], |r| r.get(0))?;
    Ok(names.collect::<rusqlite::Result<_>>()?)
}

fn key_columns(row: &Row<'_>) -> rusqlite::Result<Result<DiagnosisKey>> {
    let bytes: Vec<u8> = row.get(0)?;
    let start: u32 = row.get(1)?;
    let period: u32 = row.get(2)?;
    let risk: Option<u8> = row.get(3)?;
    let report_type: i32 = row.get(4)?;
    let onset: Option<i32> = row.get(5)?;
    Ok(decode_key(&bytes, start, period, risk, report_type, onset))
}

pub(crate) fn decode_key(
    bytes: &[u8],
    start: u32,
    period: u32,
    risk: Option<u8>,
    report_type: i32,
    onset: Option<i32>,
) -> Result<DiagnosisKey> {
    let corrupt = |what: &str| AppError::Corrupt(format!("stored key has an invalid {what}"));
    let period = RollingPeriod::new(period).map_err(|_| corrupt("rolling period"))?;
    let validity =
        KeyValidity::new(IntervalNumber::new(start), period).map_err(|_| corrupt("validity"))?;
    Ok(DiagnosisKey {
        tek: TemporaryExposureKey::from_slice(bytes, validity).map_err(|_| corrupt("key"))?,
        report_type: ReportType::try_from(report_type).map_err(|_| corrupt("report type"))?,
        days_since_onset: onset
            .map(DaysSinceOnset::new)
            .transpose()
            .map_err(|_| corrupt("days since onset"))?,
        transmission_risk_level: risk,
    })
}
