//! SQL: opening the database and every statement the server runs.

use std::fs;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use kith_core::ReportType;
use kith_core::checkin::ProtectedReport;
use rusqlite::{Connection, OptionalExtension, params};

use crate::calendar::Day;
use crate::clock::UnixSeconds;
use crate::codes::{CodeHash, CodeOrder, Diagnosis, Onset, OnsetKind};
use crate::config::Durability;
use crate::error::{AppError, Result};
use crate::guessing::BudgetState;
use crate::schema;
use crate::storage::{CodeRow, CodeState, DayCounts};
use crate::upload::StoredKey;

/// File name of the database inside the data directory.
pub const DATABASE_FILE: &str = "kith.sqlite3";

/// Opens (creating if needed) the database for writing, in WAL mode, migrated.
pub fn open(data_dir: &Path, durability: Durability, max_mib: Option<u32>) -> Result<Connection> {
    let path = data_dir.join(DATABASE_FILE);
    // Create the file ourselves so it is private; SQLite gives its -wal and -shm
    // files the same permissions as the database. Only when it is missing: closing any
    // descriptor of an open database drops every POSIX lock this process holds on it
    // (SQLite's "How To Corrupt" §2.2), and another process (`kith-server export
    // --once`) could then checkpoint and delete the WAL under the server's feet.
    if !path.exists() {
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .map_err(|source| AppError::Io {
                path: path.display().to_string(),
                source,
            })?;
    }
    let mut conn = Connection::open(&path)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(AppError::Corrupt(format!(
            "{}: SQLite refused WAL mode (journal_mode is {mode})",
            path.display()
        )));
    }
    let synchronous = match durability {
        Durability::Normal => "NORMAL",
        Durability::Full => "FULL",
    };
    conn.pragma_update(None, "synchronous", synchronous)?;
    // Code look-ups hit random pages; keep them in memory (64 MiB).
    conn.pragma_update(None, "cache_size", -65_536)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    schema::migrate(&mut conn)?;
    if let Some(mib) = max_mib {
        let page_size: u64 = conn.query_row("PRAGMA page_size", [], |row| row.get(0))?;
        let pages = u64::from(mib) * 1024 * 1024 / page_size.max(512);
        // SQLite answers SQLITE_FULL beyond this size, as it does on a full disk.
        conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))?;
    }
    Ok(conn)
}

/// Looks up a code by its hash.
pub fn find_code(conn: &Connection, hash: &CodeHash) -> Result<CodeState> {
    let mut stmt = conn.prepare_cached(
        "SELECT code_hash, report_type, onset_day, onset_kind, expires_at
         FROM verification_codes WHERE code_hash = ?1",
    )?;
    let row = stmt
        .query_row([hash.as_bytes().as_slice()], |row| {
            Ok((
                row.get::<_, Vec<u8>>(0)?,
                row.get::<_, i32>(1)?,
                row.get::<_, Option<u32>>(2)?,
                row.get::<_, Option<String>>(3)?,
                row.get::<_, u64>(4)?,
            ))
        })
        .optional()?;
    let Some((stored_hash, report_type, onset_day, onset_kind, expires_at)) = row else {
        let redeemed = conn
            .prepare_cached("SELECT 1 FROM redeemed_codes WHERE code_hash = ?1")?
            .exists([hash.as_bytes().as_slice()])?;
        return Ok(if redeemed {
            CodeState::Redeemed
        } else {
            CodeState::Unknown
        });
    };
    let corrupt =
        |what: &str| AppError::Corrupt(format!("verification code row has an invalid {what}"));
    let diagnosis = ReportType::try_from(report_type)
        .ok()
        .and_then(Diagnosis::from_report_type)
        .ok_or_else(|| corrupt("report type"))?;
    let onset = match (onset_day, onset_kind) {
        (Some(day), Some(kind)) => Some(Onset {
            day: Day::new(day),
            kind: OnsetKind::from_name(&kind).ok_or_else(|| corrupt("onset kind"))?,
        }),
        _ => None,
    };
    Ok(CodeState::Unused(CodeRow {
        hash: CodeHash::from_slice(&stored_hash).ok_or_else(|| corrupt("hash"))?,
        diagnosis,
        onset,
        expires_at: UnixSeconds::new(expires_at),
    }))
}

/// Marks a code used: its row shrinks to the hash and the hour it expires, so nothing
/// of it (diagnosis, onset, times) is left to match with the keys stored beside it. False
/// if it was not unused (the writer is the only one to redeem, so that is a bug's sign).
pub fn redeem_code(conn: &Connection, code: &CodeRow) -> Result<bool> {
    let deleted = conn
        .prepare_cached("DELETE FROM verification_codes WHERE code_hash = ?1")?
        .execute([code.hash.as_bytes().as_slice()])?;
    if deleted == 0 {
        return Ok(false);
    }
    conn.prepare_cached("INSERT INTO redeemed_codes (code_hash, expires_hour) VALUES (?1, ?2)")?
        .execute(params![
            code.hash.as_bytes().as_slice(),
            code.expires_at.get().div_ceil(HOUR)
        ])?;
    Ok(true)
}

/// Stores a new code; false if its hash already exists (a collision: draw another).
pub fn insert_code(conn: &Connection, hash: &CodeHash, order: &CodeOrder) -> Result<bool> {
    let hash = hash.as_bytes().as_slice();
    if conn
        .prepare_cached("SELECT 1 FROM redeemed_codes WHERE code_hash = ?1")?
        .exists([hash])?
    {
        return Ok(false);
    }
    let inserted = conn
        .prepare_cached(
            "INSERT INTO verification_codes
               (code_hash, report_type, onset_day, onset_kind, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
        )?
        .execute(params![
            hash,
            order.diagnosis.report_type() as i32,
            order.onset.map(|o| o.day.get()),
            order.onset.map(|o| o.kind.name()),
            order.expires_at.get(),
        ])?;
    Ok(inserted == 1)
}

/// Records in the audit log that `who` (a case worker, or the admin API) issued the
/// code with `hash` at `now`.
pub fn audit_issue(conn: &Connection, who: &str, hash: &CodeHash, now: UnixSeconds) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO audit_log (at, case_worker, action, code_hash) VALUES (?1, ?2, 'issue_code', ?3)",
    )?
    .execute(params![now.get(), who, hash.as_bytes().as_slice()])?;
    Ok(())
}

const HOUR: u64 = 3600;

/// The answer stored for a sealed body (by the SHA-256 of its `enc`), if it was sent before.
pub fn find_sealed_answer(conn: &Connection, id: &[u8; 32]) -> Result<Option<Vec<u8>>> {
    Ok(conn
        .prepare_cached("SELECT answer FROM sealed_answers WHERE id = ?1")?
        .query_row([id.as_slice()], |row| row.get(0))
        .optional()?)
}

/// Stores a sealed body's answer for replays until `expires_hour` (Unix hours).
pub fn store_sealed_answer(
    conn: &Connection,
    id: &[u8; 32],
    answer: &[u8],
    expires_hour: u64,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO sealed_answers (id, answer, expires_hour) VALUES (?1, ?2, ?3)
         ON CONFLICT DO NOTHING",
    )?
    .execute(params![id.as_slice(), answer, expires_hour])?;
    Ok(())
}

/// Deletes the sealed answers kept long enough.
pub fn prune_sealed_answers(conn: &Connection, hour: u64) -> Result<()> {
    conn.prepare_cached("DELETE FROM sealed_answers WHERE expires_hour < ?1")?
        .execute([hour])?;
    Ok(())
}

/// The stored server-wide guessing budget, if one was stored.
pub fn load_budget(conn: &Connection) -> Result<Option<BudgetState>> {
    Ok(conn
        .query_row(
            "SELECT tokens, updated_at FROM guess_budget WHERE id = 1",
            [],
            |row| {
                Ok(BudgetState {
                    tokens: row.get(0)?,
                    at: UnixSeconds::new(row.get(1)?),
                })
            },
        )
        .optional()?)
}

/// Stores the server-wide guessing budget.
pub fn store_budget(conn: &Connection, budget: BudgetState) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO guess_budget (id, tokens, updated_at) VALUES (1, ?1, ?2)
         ON CONFLICT (id) DO UPDATE SET tokens = excluded.tokens, updated_at = excluded.updated_at",
    )?
    .execute(params![budget.tokens, budget.at.get()])?;
    Ok(())
}

/// Adds `counts` to those of `day`.
pub fn add_day_counts(conn: &Connection, day: Day, counts: &DayCounts) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO daily_counts (day, codes_issued, codes_redeemed, keys_published,
             export_files, export_bytes)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (day) DO UPDATE SET
             codes_issued = codes_issued + excluded.codes_issued,
             codes_redeemed = codes_redeemed + excluded.codes_redeemed,
             keys_published = keys_published + excluded.keys_published,
             export_files = export_files + excluded.export_files,
             export_bytes = export_bytes + excluded.export_bytes",
    )?
    .execute(params![
        day.get(),
        counts.codes_issued,
        counts.codes_redeemed,
        counts.keys_published,
        counts.export_files,
        counts.export_bytes,
    ])?;
    Ok(())
}

/// The counts of the days from `first` on, oldest first.
pub fn day_counts(conn: &Connection, first: Day) -> Result<Vec<(Day, DayCounts)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT day, codes_issued, codes_redeemed, keys_published, export_files, export_bytes
         FROM daily_counts WHERE day >= ?1 ORDER BY day",
    )?;
    let rows = stmt.query_map([first.get()], |row| {
        Ok((
            Day::new(row.get(0)?),
            DayCounts {
                codes_issued: row.get(1)?,
                codes_redeemed: row.get(2)?,
                keys_published: row.get(3)?,
                export_files: row.get(4)?,
                export_bytes: row.get(5)?,
            },
        ))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Stores a publish's venue check-ins, each under a random id, released (for the
/// trace-warning packages) at the end of the `truncate` window they arrive in, as keys are.
pub fn insert_check_ins(
    conn: &Connection,
    reports: &[ProtectedReport],
    now: UnixSeconds,
    truncate: u64,
    rng: &mut impl rand_core::RngCore,
) -> Result<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO check_in_reports (id, location_id_hash, report, released_at)
         VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
    )?;
    let released_at = now.get().div_ceil(truncate) * truncate;
    for report in reports {
        let bytes = report.to_bytes();
        let hash = report.location_id_hash().to_bytes();
        while stmt.execute(params![
            (rng.next_u64() >> 1) as i64,
            hash.as_slice(),
            bytes,
            released_at
        ])? == 0
        {}
    }
    Ok(())
}

/// Stores published keys, each under a random id, with their arrival rounded down and
/// their embargo rounded up to a multiple of `truncate` seconds (`--truncate-window`).
pub fn insert_keys(
    conn: &Connection,
    keys: &[StoredKey],
    now: UnixSeconds,
    truncate: u64,
    rng: &mut impl rand_core::RngCore,
) -> Result<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO diagnosis_keys
           (id, key_data, rolling_start, rolling_period, transmission_risk, report_type,
            days_since_onset, received_at, embargo_until)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT DO NOTHING",
    )?;
    let received = now.get() / truncate * truncate;
    for k in keys {
        let validity = k.key.tek.validity();
        // A random id collides with one of n stored keys with probability n / 2^63; then
        // draw again.
        loop {
            let id = (rng.next_u64() >> 1) as i64;
            let inserted = stmt.execute(params![
                id,
                k.key.tek.expose_secret().as_slice(),
                validity.start().get(),
                validity.period().get(),
                k.key.transmission_risk_level,
                k.key.report_type as i32,
                k.key.days_since_onset.map(|d| d.get()),
                received,
                k.embargo_until.get().div_ceil(truncate) * truncate,
            ])?;
            if inserted == 1 {
                break;
            }
        }
    }
    Ok(())
}
