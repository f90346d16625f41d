//! The SQL of venue check-ins and venue exposures in [`SqliteStore`](super::SqliteStore).

use rusqlite::{Connection, Row, Transaction, params};

use super::sqlite::{blob, collect, corrupt, int, storage};
use crate::checkin::{CheckIn, LocationId, Stay, TransmissionRiskLevel, VenueExposure, Visit};
use crate::error::Result;
use crate::time::UnixSeconds;

pub(super) fn add_check_in(conn: &Connection, visit: &Visit) -> Result<u64> {
    conn.execute(
        "INSERT INTO check_ins (location_id, description, address, arrival, departure)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            &visit.location_id.expose_secret()[..],
            visit.description,
            visit.address,
            visit.stay.arrival().get() as i64,
            visit.stay.departure().get() as i64
        ],
    )
    .map_err(storage)?;
    Ok(conn.last_insert_rowid() as u64)
}

pub(super) fn check_ins(conn: &Connection) -> Result<Vec<CheckIn>> {
    collect(
        conn,
        "SELECT id, location_id, description, address, arrival, departure, shared
         FROM check_ins ORDER BY arrival, id",
        [],
        |row| {
            let location_id = zeroize::Zeroizing::new(blob::<32>(row, "location_id")?);
            Ok(CheckIn {
                id: int::<i64>(row, "id")? as u64,
                visit: Visit {
                    location_id: LocationId::from_bytes(*location_id),
                    description: text(row, "description")?,
                    address: text(row, "address")?,
                    stay: stay(row, "arrival", "departure")?,
                },
                shared: int::<i64>(row, "shared")? != 0,
            })
        },
    )
}

pub(super) fn set_stay(conn: &Connection, id: u64, stay: Stay) -> Result<bool> {
    let changed = conn
        .execute(
            "UPDATE check_ins SET arrival = ?2, departure = ?3 WHERE id = ?1",
            params![
                id as i64,
                stay.arrival().get() as i64,
                stay.departure().get() as i64
            ],
        )
        .map_err(storage)?;
    Ok(changed > 0)
}

pub(super) fn set_shared(tx: &Transaction<'_>, ids: &[u64]) -> Result<()> {
    let mut update = tx
        .prepare_cached("UPDATE check_ins SET shared = 1 WHERE id = ?1")
        .map_err(storage)?;
    for &id in ids {
        update.execute([id as i64]).map_err(storage)?;
    }
    Ok(())
}

pub(super) fn add_venue_exposures(
    tx: &Transaction<'_>,
    exposures: &[VenueExposure],
) -> Result<usize> {
    let mut insert = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO venue_exposures
                 (check_in_id, description, address, start, end, transmission_risk_level)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE EXISTS (SELECT 1 FROM check_ins WHERE id = ?1)",
        )
        .map_err(storage)?;
    let mut added = 0;
    for e in exposures {
        added += insert
            .execute(params![
                e.check_in_id as i64,
                e.description,
                e.address,
                e.overlap.arrival().get() as i64,
                e.overlap.departure().get() as i64,
                e.transmission_risk_level.get()
            ])
            .map_err(storage)?;
    }
    Ok(added)
}

pub(super) fn venue_exposures(conn: &Connection) -> Result<Vec<VenueExposure>> {
    collect(
        conn,
        "SELECT check_in_id, description, address, start, end, transmission_risk_level
         FROM venue_exposures ORDER BY id",
        [],
        |row| {
            let overlap = stay(row, "start", "end")?;
            Ok(VenueExposure {
                check_in_id: int::<i64>(row, "check_in_id")? as u64,
                description: text(row, "description")?,
                address: text(row, "address")?,
                overlap_minutes: overlap.minutes() as u32,
                overlap,
                transmission_risk_level: TransmissionRiskLevel::new(int(
                    row,
                    "transmission_risk_level",
                )?)
                .map_err(|_| corrupt("transmission_risk_level"))?,
            })
        },
    )
}

/// Deletes check-ins (and with them their venue exposures) that ended before `cutoff`.
pub(super) fn purge(tx: &Transaction<'_>, cutoff: UnixSeconds) -> Result<()> {
    let cutoff = cutoff.get() as i64;
    tx.execute("DELETE FROM check_ins WHERE departure < ?1", [cutoff])
        .map_err(storage)?;
    tx.execute("DELETE FROM venue_exposures WHERE end < ?1", [cutoff])
        .map_err(storage)?;
    Ok(())
}

fn text(row: &Row<'_>, column: &str) -> Result<String> {
    row.get(column).map_err(storage)
}

fn stay(row: &Row<'_>, arrival: &'static str, departure: &'static str) -> Result<Stay> {
    Stay::new(
        UnixSeconds::new(int::<i64>(row, arrival)? as u64),
        UnixSeconds::new(int::<i64>(row, departure)? as u64),
    )
    .map_err(|_| corrupt(arrival))
}
