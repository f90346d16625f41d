//! SQL: opening the database and every statement the server runs.

use std::fs;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use kith_core::ReportType;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use crate::codes::{CodeHash, CodeOrder, Diagnosis, Onset, OnsetKind};
use crate::config::Durability;
use crate::error::{AppError, Result};
use crate::publish::StoredKey;
use crate::schema;

/// File name of the database inside the data directory.
pub const DATABASE_FILE: &str = "kith.sqlite3";

/// Opens (creating if needed) the database for writing, in WAL mode, migrated.
pub fn open(data_dir: &Path, durability: Durability) -> Result<Connection> {
    let path = data_dir.join(DATABASE_FILE);
    // Create the file ourselves so it is private; SQLite gives its -wal and -shm
    // files the same permissions as the database.
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&path)
        .map_err(|source| AppError::Io {
            path: path.display().to_string(),
            source,
        })?;
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
    Ok(conn)
}

/// Opens the database read-only, e.g. for a benchmark to check what was stored.
pub fn open_read_only(data_dir: &Path) -> Result<Connection> {
    Ok(Connection::open_with_flags(
        data_dir.join(DATABASE_FILE),
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?)
}

/// A stored verification code.
#[derive(Debug)]
pub struct CodeRow {
    /// The hash it is stored under.
    pub hash: CodeHash,
    /// Diagnosis for the keys.
    pub diagnosis: Diagnosis,
    /// Onset or test day.
    pub onset: Option<Onset>,
    /// Unix seconds after which it no longer works.
    pub expires_at: u64,
    /// When it was used, if it was.
    pub redeemed_at: Option<u64>,
}

/// Looks up a code by its hash.
pub fn find_code(conn: &Connection, hash: &CodeHash) -> Result<Option<CodeRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT code_hash, report_type, onset_day, onset_kind, expires_at, redeemed_at
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
                row.get::<_, Option<u64>>(5)?,
            ))
        })
        .optional()?;
    let Some((stored_hash, report_type, onset_day, onset_kind, expires_at, redeemed_at)) = row
    else {
        return Ok(None);
    };
    let corrupt =
        |what: &str| AppError::Corrupt(format!("verification code row has an invalid {what}"));
    let diagnosis = ReportType::try_from(report_type)
        .ok()
        .and_then(Diagnosis::from_report_type)
        .ok_or_else(|| corrupt("report type"))?;
    let onset = match (onset_day, onset_kind) {
        (Some(day), Some(kind)) => Some(Onset {
            day,
            kind: OnsetKind::from_name(&kind).ok_or_else(|| corrupt("onset kind"))?,
        }),
        _ => None,
    };
    Ok(Some(CodeRow {
        hash: CodeHash::from_slice(&stored_hash).ok_or_else(|| corrupt("hash"))?,
        diagnosis,
        onset,
        expires_at,
        redeemed_at,
    }))
}

/// Marks a code used.
pub fn redeem_code(conn: &Connection, hash: &CodeHash, now: u64) -> Result<()> {
    conn.prepare_cached("UPDATE verification_codes SET redeemed_at = ?2 WHERE code_hash = ?1")?
        .execute(params![hash.as_bytes().as_slice(), now])?;
    Ok(())
}

/// Stores a new code; false if its hash already exists (a collision: draw another).
pub fn insert_code(
    conn: &Connection,
    hash: &CodeHash,
    order: &CodeOrder,
    now: u64,
) -> Result<bool> {
    let inserted = conn
        .prepare_cached(
            "INSERT INTO verification_codes
               (code_hash, report_type, onset_day, onset_kind, issued_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
        )?
        .execute(params![
            hash.as_bytes().as_slice(),
            order.diagnosis.report_type() as i32,
            order.onset.map(|o| o.day),
            order.onset.map(|o| o.kind.name()),
            now,
            order.expires_at,
        ])?;
    Ok(inserted == 1)
}

/// Stores published keys.
pub fn insert_keys(conn: &Connection, keys: &[StoredKey], now: u64) -> Result<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO diagnosis_keys
           (key_data, rolling_start, rolling_period, transmission_risk, report_type,
            days_since_onset, received_at, embargo_until)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for k in keys {
        let validity = k.key.tek.validity();
        stmt.execute(params![
            k.key.tek.expose_secret().as_slice(),
            validity.start().get(),
            validity.period().get(),
            k.key.transmission_risk_level,
            k.key.report_type as i32,
            k.key.days_since_onset.map(|d| d.get()),
            now,
            k.embargo_until,
        ])?;
    }
    Ok(())
}

/// Number of stored diagnosis keys.
pub fn count_keys(conn: &Connection) -> Result<u64> {
    Ok(conn.query_row("SELECT count(*) FROM diagnosis_keys", [], |row| row.get(0))?)
}

/// The bytes of every stored key (for checking what a benchmark stored).
pub fn all_key_bytes(conn: &Connection) -> Result<std::collections::HashSet<[u8; 16]>> {
    let mut stmt = conn.prepare("SELECT key_data FROM diagnosis_keys")?;
    let rows = stmt.query_map([], |row| row.get::<_, [u8; 16]>(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// A stored key as the tests and the exporter read it back.
#[derive(Debug, PartialEq, Eq)]
pub struct KeyRecord {
    /// Rolling start interval number.
    pub rolling_start: u32,
    /// Rolling period.
    pub rolling_period: u32,
    /// GAEN report type number.
    pub report_type: i32,
    /// Days since onset.
    pub days_since_onset: Option<i32>,
    /// Unix seconds before which the key is not exported.
    pub embargo_until: u64,
}

/// The stored record of a key, if any (a table scan: for tests and tools).
pub fn key_record(conn: &Connection, key: &[u8; 16]) -> Result<Option<KeyRecord>> {
    Ok(conn
        .prepare_cached(
            "SELECT rolling_start, rolling_period, report_type, days_since_onset, embargo_until
             FROM diagnosis_keys WHERE key_data = ?1 LIMIT 1",
        )?
        .query_row([key.as_slice()], |row| {
            Ok(KeyRecord {
                rolling_start: row.get(0)?,
                rolling_period: row.get(1)?,
                report_type: row.get(2)?,
                days_since_onset: row.get(3)?,
                embargo_until: row.get(4)?,
            })
        })
        .optional()?)
}
