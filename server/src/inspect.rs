//! A read-only look into a data directory's database, for tests, benchmarks and tools
//! that check what the server stored.

use std::collections::HashSet;
use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::clock::UnixSeconds;
use crate::db::DATABASE_FILE;
use crate::error::Result;

/// The database of a data directory, opened read-only.
#[derive(Debug)]
pub struct StoredData(Connection);

/// A stored key as the tests read it back.
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
    /// Before this time the key is not exported.
    pub embargo_until: UnixSeconds,
}

impl StoredData {
    /// Opens the database in `data_dir` read-only.
    pub fn open(data_dir: &Path) -> Result<Self> {
        Ok(Self(Connection::open_with_flags(
            data_dir.join(DATABASE_FILE),
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?))
    }

    /// The connection, for queries of a test's own.
    pub fn connection(&self) -> &Connection {
        &self.0
    }

    /// Number of stored diagnosis keys.
    pub fn count_keys(&self) -> Result<u64> {
        Ok(self
            .0
            .query_row("SELECT count(*) FROM diagnosis_keys", [], |row| row.get(0))?)
    }

    /// The bytes of every stored key.
    pub fn all_key_bytes(&self) -> Result<HashSet<[u8; 16]>> {
        let mut stmt = self.0.prepare("SELECT key_data FROM diagnosis_keys")?;
        let rows = stmt.query_map([], |row| row.get::<_, [u8; 16]>(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The stored record of a key, if any (a table scan).
    pub fn key_record(&self, key: &[u8; 16]) -> Result<Option<KeyRecord>> {
        Ok(self
            .0
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
                    embargo_until: UnixSeconds::new(row.get(4)?),
                })
            })
            .optional()?)
    }
}
