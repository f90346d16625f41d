//! SQL: opening the database and every statement the server runs.

use std::fs;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use kith_core::ReportType;
use rusqlite::{Connection, OptionalExtension, params};

use crate::calendar::Day;
use crate::clock::UnixSeconds;
use crate::codes::{CodeHash, CodeOrder, Diagnosis, Onset, OnsetKind};
use crate::config::Durability;
use crate::error::{AppError, Result};
use crate::schema;
use crate::upload::StoredKey;

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

/// A stored verification code.
#[derive(Debug)]
pub struct CodeRow {
    /// The hash it is stored under.
    pub hash: CodeHash,
    /// Diagnosis for the keys.
    pub diagnosis: Diagnosis,
    /// Onset or test day.
    pub onset: Option<Onset>,
    /// When it stops working.
    pub expires_at: UnixSeconds,
    /// When it was used, if it was.
    pub redeemed_at: Option<UnixSeconds>,
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
            day: Day::new(day),
            kind: OnsetKind::from_name(&kind).ok_or_else(|| corrupt("onset kind"))?,
        }),
        _ => None,
    };
    Ok(Some(CodeRow {
        hash: CodeHash::from_slice(&stored_hash).ok_or_else(|| corrupt("hash"))?,
        diagnosis,
        onset,
        expires_at: UnixSeconds::new(expires_at),
        redeemed_at: redeemed_at.map(UnixSeconds::new),
    }))
}

/// Marks a code used.
pub fn redeem_code(conn: &Connection, hash: &CodeHash, now: UnixSeconds) -> Result<()> {
    conn.prepare_cached("UPDATE verification_codes SET redeemed_at = ?2 WHERE code_hash = ?1")?
        .execute(params![hash.as_bytes().as_slice(), now.get()])?;
    Ok(())
}

/// Stores a new code; false if its hash already exists (a collision: draw another).
pub fn insert_code(
    conn: &Connection,
    hash: &CodeHash,
    order: &CodeOrder,
    now: UnixSeconds,
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
            order.onset.map(|o| o.day.get()),
            order.onset.map(|o| o.kind.name()),
            now.get(),
            order.expires_at.get(),
        ])?;
    Ok(inserted == 1)
}

/// Stores published keys.
pub fn insert_keys(conn: &Connection, keys: &[StoredKey], now: UnixSeconds) -> Result<()> {
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
            now.get(),
            k.embargo_until.get(),
        ])?;
    }
    Ok(())
}
