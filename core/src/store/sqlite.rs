//! The SQLite [`Store`]: one database file in WAL mode.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};

use crate::checkin::{CheckIn, Stay, VenueExposure, Visit};
use crate::diagnosis::{DaysSinceOnset, DiagnosisKey, ReportType};
use crate::error::{Error, OtherError, Result, StoreError};
use crate::identifiers::{Aem, Rpi};
use crate::interval::{IntervalNumber, KeyValidity, RollingPeriod};
use crate::keys::TemporaryExposureKey;
use crate::matching::{Match, MatchedSighting};
use crate::metadata::{BluetoothMetadata, CalibrationConfidence};
use crate::risk::{ExposureWindow, ScanInstance};
use crate::sighting::Sighting;
use crate::store::schema::{SCHEMA_VERSION, migrate_to, version};
use crate::store::{Exposure, IngestReport, Store, retention_cutoff, sqlite_checkins};
use crate::time::UnixSeconds;

/// A [`Store`] in one SQLite database file (WAL mode, foreign keys on).
#[derive(Debug)]
pub struct SqliteStore {
    conn: Connection,
}

pub(super) fn storage(e: rusqlite::Error) -> Error {
    StoreError::Database(OtherError::new(e)).into()
}

pub(super) fn corrupt(column: &'static str) -> Error {
    StoreError::Corrupt(column).into()
}

impl SqliteStore {
    /// Opens (or creates) the database at `path` and upgrades its schema.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::setup(Connection::open(path).map_err(storage)?)
    }

    /// A private database in memory, gone when dropped.
    pub fn open_in_memory() -> Result<Self> {
        Self::setup(Connection::open_in_memory().map_err(storage)?)
    }

    fn setup(mut conn: Connection) -> Result<Self> {
        // Another process (say, a status command beside the agent) may hold the lock briefly.
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(storage)?;
        // WAL: readers never block the writer, and a killed writer leaves the last
        // committed transaction intact. NORMAL sync is safe against process crashes.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(storage)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(storage)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(storage)?;
        let found = version(&conn).map_err(storage)?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                found,
                supported: SCHEMA_VERSION,
            }
            .into());
        }
        migrate_to(&mut conn, SCHEMA_VERSION).map_err(storage)?;
        Ok(Self { conn })
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<u32> {
        version(&self.conn).map_err(storage)
    }

    fn write<T>(&mut self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let tx = self.conn.transaction().map_err(storage)?;
        let value = f(&tx)?;
        tx.commit().map_err(storage)?;
        Ok(value)
    }
}

pub(super) fn blob<const N: usize>(row: &Row<'_>, column: &'static str) -> Result<[u8; N]> {
    let bytes: Vec<u8> = row.get(column).map_err(storage)?;
    bytes.try_into().map_err(|_| corrupt(column))
}

pub(super) fn int<T: rusqlite::types::FromSql>(row: &Row<'_>, column: &str) -> Result<T> {
    row.get(column).map_err(storage)
}

fn sighting_from(row: &Row<'_>) -> Result<Sighting> {
    Ok(Sighting {
        rpi: Rpi::from_bytes(blob(row, "rpi")?),
        aem: Aem::from_bytes(blob(row, "aem")?),
        rssi: int(row, "rssi")?,
        time: UnixSeconds::new(int::<i64>(row, "time")? as u64),
        scan_id: int::<i64>(row, "scan_id")? as u64,
    })
}

/// A key from the columns `key`, `rolling_start` and `rolling_period`.
fn tek_from(row: &Row<'_>) -> Result<TemporaryExposureKey> {
    let period =
        RollingPeriod::new(int(row, "rolling_period")?).map_err(|_| corrupt("rolling_period"))?;
    let validity = KeyValidity::new(IntervalNumber::new(int(row, "rolling_start")?), period)
        .map_err(|_| corrupt("rolling_start"))?;
    let key = zeroize::Zeroizing::new(blob::<16>(row, "key")?);
    Ok(TemporaryExposureKey::from_bytes(*key, validity))
}

fn days_since_onset(value: Option<i32>) -> Result<Option<DaysSinceOnset>> {
    value
        .map(|d| DaysSinceOnset::new(d).map_err(|_| corrupt("days_since_onset")))
        .transpose()
}

fn report_type(value: i32) -> Result<ReportType> {
    ReportType::try_from(value).map_err(|_| corrupt("report_type"))
}

/// Inserts an exposure with its sightings and windows, unless its key is stored
/// already; returns whether it was new.
fn insert_exposure(tx: &Transaction<'_>, exposure: &Exposure) -> Result<bool> {
    let key = &exposure.matched.key;
    let validity = key.tek.validity();
    let inserted = tx
        .execute(
            "INSERT OR IGNORE INTO exposures (key, rolling_start, rolling_period,
                 report_type, days_since_onset, transmission_risk_level, last_seen, revised)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                &key.tek.expose_secret()[..],
                validity.start().get(),
                validity.period().get(),
                key.report_type as i32,
                key.days_since_onset.map(DaysSinceOnset::get),
                key.transmission_risk_level,
                exposure.last_seen().get() as i64,
                exposure.revised
            ],
        )
        .map_err(storage)?;
    if inserted == 0 {
        return Ok(false);
    }
    let id = tx.last_insert_rowid();
    let mut insert = tx
        .prepare_cached(
            "INSERT INTO exposure_sightings
                 (exposure_id, rpi, aem, rssi, time, scan_id, interval, metadata)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .map_err(storage)?;
    for m in &exposure.matched.sightings {
        let s = &m.sighting;
        insert
            .execute(params![
                id,
                &s.rpi.as_bytes()[..],
                &s.aem.to_bytes()[..],
                s.rssi,
                s.time.get() as i64,
                s.scan_id as i64,
                m.interval.get(),
                &m.metadata.to_bytes()[..]
            ])
            .map_err(storage)?;
    }
    let mut insert = tx
        .prepare_cached(
            "INSERT INTO exposure_windows (exposure_id, start, report_type,
                 days_since_onset, calibration_confidence, scan_instances)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .map_err(storage)?;
    for w in &exposure.windows {
        insert
            .execute(params![
                id,
                w.start.get() as i64,
                w.report_type as i32,
                w.days_since_onset.map(DaysSinceOnset::get),
                w.calibration_confidence as u8,
                encode_scan_instances(&w.scan_instances)
            ])
            .map_err(storage)?;
    }
    Ok(true)
}

/// Gives the stored exposure of `key`'s bytes, and its windows, `key`'s diagnosis,
/// if it was not revised before and GAEN allows the transition (R19); returns
/// whether it did.
fn revise_exposure(tx: &Transaction<'_>, key: &DiagnosisKey) -> Result<bool> {
    let key_bytes = &key.tek.expose_secret()[..];
    let days_since_onset = key.days_since_onset.map(DaysSinceOnset::get);
    let mut from = ReportType::revisable_to(key.report_type).map(|r| r as i32);
    // At most two report types lead to another; -1 matches none.
    let (a, b) = (from.next().unwrap_or(-1), from.next().unwrap_or(-1));
    let revised = tx
        .execute(
            "UPDATE exposures
             SET report_type = ?2, days_since_onset = ?3, transmission_risk_level = ?4,
                 revised = 1
             WHERE key = ?1 AND revised = 0 AND report_type IN (?5, ?6)",
            params![
                key_bytes,
                key.report_type as i32,
                days_since_onset,
                key.transmission_risk_level,
                a,
                b
            ],
        )
        .map_err(storage)?;
    if revised == 0 {
        return Ok(false);
    }
    tx.execute(
        "UPDATE exposure_windows SET report_type = ?2, days_since_onset = ?3
         WHERE exposure_id = (SELECT id FROM exposures WHERE key = ?1)",
        params![key_bytes, key.report_type as i32, days_since_onset],
    )
    .map_err(storage)?;
    Ok(revised > 0)
}

fn encode_scan_instances(scans: &[ScanInstance]) -> Vec<u8> {
    scans
        .iter()
        .flat_map(|s| {
            let [lo, hi] = s.seconds_since_last_scan.to_le_bytes();
            [s.typical_attenuation, s.min_attenuation, lo, hi]
        })
        .collect()
}

fn decode_scan_instances(bytes: &[u8]) -> Result<Vec<ScanInstance>> {
    if bytes.len() % 4 != 0 {
        return Err(corrupt("scan_instances"));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| ScanInstance {
            typical_attenuation: c[0],
            min_attenuation: c[1],
            seconds_since_last_scan: u16::from_le_bytes([c[2], c[3]]),
        })
        .collect())
}

/// Rows of a query, each read by `read`.
pub(super) fn collect<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    read: impl Fn(&Row<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    let mut statement = conn.prepare_cached(sql).map_err(storage)?;
    let mut rows = statement.query(params).map_err(storage)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(storage)? {
        out.push(read(row)?);
    }
    Ok(out)
}

impl Store for SqliteStore {
    fn add_own_key(&mut self, key: &TemporaryExposureKey) -> Result<()> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO own_keys (rolling_start, rolling_period, key) VALUES (?1, ?2, ?3)",
                params![
                    key.validity().start().get(),
                    key.validity().period().get(),
                    &key.expose_secret()[..]
                ],
            )
            .map_err(storage)?;
        Ok(())
    }

    fn own_keys(&self) -> Result<Vec<TemporaryExposureKey>> {
        collect(
            &self.conn,
            "SELECT rolling_start, rolling_period, key FROM own_keys ORDER BY rolling_start",
            [],
            tek_from,
        )
    }

    fn add_sightings(&mut self, sightings: &[Sighting]) -> Result<()> {
        self.write(|tx| {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO sightings (rpi, aem, rssi, time, scan_id) VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(storage)?;
            for s in sightings {
                insert
                    .execute(params![
                        &s.rpi.as_bytes()[..],
                        &s.aem.to_bytes()[..],
                        s.rssi,
                        s.time.get() as i64,
                        s.scan_id as i64
                    ])
                    .map_err(storage)?;
            }
            Ok(())
        })
    }

    fn sightings(&self) -> Result<Vec<Sighting>> {
        collect(
            &self.conn,
            "SELECT rpi, aem, rssi, time, scan_id FROM sightings ORDER BY time, scan_id",
            [],
            sighting_from,
        )
    }

    fn is_file_processed(&self, name: &str) -> Result<bool> {
        self.conn
            .query_row(
                "SELECT 1 FROM processed_files WHERE name = ?1",
                [name],
                |_| Ok(()),
            )
            .optional()
            .map(|found| found.is_some())
            .map_err(storage)
    }

    fn record_ingest(
        &mut self,
        file: Option<&str>,
        exposures: &[Exposure],
        revised: &[DiagnosisKey],
        now: UnixSeconds,
    ) -> Result<IngestReport> {
        self.write(|tx| {
            let mut report = IngestReport::default();
            for exposure in exposures {
                report.new_exposures += usize::from(insert_exposure(tx, exposure)?);
            }
            for key in revised {
                report.revised_exposures += usize::from(revise_exposure(tx, key)?);
            }
            if let Some(file) = file {
                mark_processed(tx, file, now)?;
            }
            Ok(report)
        })
    }

    fn exposures(&self) -> Result<Vec<Exposure>> {
        let heads = collect(
            &self.conn,
            "SELECT id, key, rolling_start, rolling_period, report_type, days_since_onset,
                    transmission_risk_level, revised
             FROM exposures ORDER BY id",
            [],
            |row| {
                let key = DiagnosisKey {
                    tek: tek_from(row)?,
                    report_type: report_type(int(row, "report_type")?)?,
                    days_since_onset: days_since_onset(int(row, "days_since_onset")?)?,
                    transmission_risk_level: int(row, "transmission_risk_level")?,
                };
                let revised: bool = row.get("revised").map_err(storage)?;
                Ok((int::<i64>(row, "id")?, key, revised))
            },
        )?;
        heads
            .into_iter()
            .map(|(id, key, revised)| {
                let sightings = collect(
                    &self.conn,
                    "SELECT rpi, aem, rssi, time, scan_id, interval, metadata
                     FROM exposure_sightings WHERE exposure_id = ?1 ORDER BY time, scan_id",
                    [id],
                    |row| {
                        Ok(MatchedSighting {
                            sighting: sighting_from(row)?,
                            interval: IntervalNumber::new(int(row, "interval")?),
                            metadata: BluetoothMetadata::parse(blob(row, "metadata")?)
                                .map_err(|_| corrupt("metadata"))?,
                        })
                    },
                )?;
                let windows = collect(
                    &self.conn,
                    "SELECT start, report_type, days_since_onset, calibration_confidence,
                            scan_instances
                     FROM exposure_windows WHERE exposure_id = ?1 ORDER BY start",
                    [id],
                    |row| {
                        let scans: Vec<u8> = row.get("scan_instances").map_err(storage)?;
                        Ok(ExposureWindow {
                            start: UnixSeconds::new(int::<i64>(row, "start")? as u64),
                            report_type: report_type(int(row, "report_type")?)?,
                            days_since_onset: days_since_onset(int(row, "days_since_onset")?)?,
                            calibration_confidence: CalibrationConfidence::try_from(int::<u8>(
                                row,
                                "calibration_confidence",
                            )?)
                            .map_err(|_| corrupt("calibration_confidence"))?,
                            scan_instances: decode_scan_instances(&scans)?,
                        })
                    },
                )?;
                Ok(Exposure {
                    matched: Match { key, sightings },
                    windows,
                    revised,
                })
            })
            .collect()
    }

    fn set_setting(&mut self, name: &str, value: &str) -> Result<()> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO settings (name, value) VALUES (?1, ?2)",
                [name, value],
            )
            .map_err(storage)?;
        Ok(())
    }

    fn setting(&self, name: &str) -> Result<Option<String>> {
        self.conn
            .query_row(
                "SELECT value FROM settings WHERE name = ?1",
                [name],
                |row| row.get(0),
            )
            .optional()
            .map_err(storage)
    }

    fn purge(&mut self, now: UnixSeconds) -> Result<()> {
        let cutoff_time = retention_cutoff(now);
        let cutoff = cutoff_time.get() as i64;
        let cutoff_interval = cutoff_time.interval().get();
        self.write(|tx| {
            tx.execute(
                "DELETE FROM own_keys WHERE rolling_start + rolling_period <= ?1",
                [i64::from(cutoff_interval)],
            )
            .map_err(storage)?;
            tx.execute("DELETE FROM sightings WHERE time < ?1", [cutoff])
                .map_err(storage)?;
            tx.execute(
                "DELETE FROM processed_files WHERE processed_at < ?1",
                [cutoff],
            )
            .map_err(storage)?;
            tx.execute("DELETE FROM exposures WHERE last_seen < ?1", [cutoff])
                .map_err(storage)?;
            sqlite_checkins::purge(tx, cutoff_time)
        })
    }

    fn add_check_in(&mut self, visit: &Visit) -> Result<u64> {
        sqlite_checkins::add_check_in(&self.conn, visit)
    }

    fn check_ins(&self) -> Result<Vec<CheckIn>> {
        sqlite_checkins::check_ins(&self.conn)
    }

    fn set_stay(&mut self, id: u64, stay: Stay) -> Result<bool> {
        sqlite_checkins::set_stay(&self.conn, id, stay)
    }

    fn set_shared(&mut self, ids: &[u64]) -> Result<()> {
        self.write(|tx| sqlite_checkins::set_shared(tx, ids))
    }

    fn add_venue_exposures(
        &mut self,
        file: Option<&str>,
        exposures: &[VenueExposure],
        now: UnixSeconds,
    ) -> Result<usize> {
        self.write(|tx| {
            let added = sqlite_checkins::add_venue_exposures(tx, exposures)?;
            if let Some(file) = file {
                mark_processed(tx, file, now)?;
            }
            Ok(added)
        })
    }

    fn venue_exposures(&self) -> Result<Vec<VenueExposure>> {
        sqlite_checkins::venue_exposures(&self.conn)
    }
}

fn mark_processed(tx: &Transaction<'_>, file: &str, now: UnixSeconds) -> Result<()> {
    tx.execute(
        "INSERT OR REPLACE INTO processed_files (name, processed_at) VALUES (?1, ?2)",
        params![file, now.get() as i64],
    )
    .map_err(storage)?;
    Ok(())
}
