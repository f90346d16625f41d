//! The SQLite schema, its version and the migrations that lead to it, together.
//!
//! The version lives in SQLite's `user_version`. Opening a database applies every
//! migration above its version, each in its own transaction with the version bump,
//! so an interrupted upgrade leaves the previous version intact.

use rusqlite::Connection;

/// The schema version this code reads and writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Migration `i` upgrades version `i` to `i + 1`.
const MIGRATIONS: [&str; 5] = [
    // 1: keys, sightings, processed files, exposures.
    "CREATE TABLE own_keys (
         rolling_start  INTEGER PRIMARY KEY,
         rolling_period INTEGER NOT NULL,
         key            BLOB NOT NULL
     );
     CREATE TABLE sightings (
         id      INTEGER PRIMARY KEY,
         rpi     BLOB NOT NULL,
         aem     BLOB NOT NULL,
         rssi    INTEGER NOT NULL,
         time    INTEGER NOT NULL,
         scan_id INTEGER NOT NULL
     );
     CREATE TABLE processed_files (
         name         TEXT PRIMARY KEY,
         processed_at INTEGER NOT NULL
     );
     CREATE TABLE exposures (
         id                      INTEGER PRIMARY KEY,
         key                     BLOB NOT NULL UNIQUE,
         rolling_start           INTEGER NOT NULL,
         rolling_period          INTEGER NOT NULL,
         report_type             INTEGER NOT NULL,
         days_since_onset        INTEGER,
         transmission_risk_level INTEGER,
         last_seen               INTEGER NOT NULL
     );
     CREATE TABLE exposure_sightings (
         exposure_id INTEGER NOT NULL REFERENCES exposures(id) ON DELETE CASCADE,
         rpi         BLOB NOT NULL,
         aem         BLOB NOT NULL,
         rssi        INTEGER NOT NULL,
         time        INTEGER NOT NULL,
         scan_id     INTEGER NOT NULL,
         interval    INTEGER NOT NULL,
         metadata    BLOB NOT NULL
     );
     CREATE TABLE exposure_windows (
         exposure_id            INTEGER NOT NULL REFERENCES exposures(id) ON DELETE CASCADE,
         start                  INTEGER NOT NULL,
         report_type            INTEGER NOT NULL,
         days_since_onset       INTEGER,
         calibration_confidence INTEGER NOT NULL,
         -- 4 bytes per ScanInstance: typical dB, min dB, seconds since last scan (u16 LE)
         scan_instances         BLOB NOT NULL
     );",
    // 2: settings (the risk configuration), and purging sightings by time.
    "CREATE TABLE settings (
         name  TEXT PRIMARY KEY,
         value TEXT NOT NULL
     );
     CREATE INDEX sightings_by_time ON sightings(time);
     CREATE INDEX exposure_sightings_by_exposure ON exposure_sightings(exposure_id);
     CREATE INDEX exposure_windows_by_exposure ON exposure_windows(exposure_id);",
    // 3: venue check-ins and the venue exposures found among them.
    "CREATE TABLE check_ins (
         id          INTEGER PRIMARY KEY AUTOINCREMENT,
         location_id BLOB NOT NULL,
         description TEXT NOT NULL,
         address     TEXT NOT NULL,
         arrival     INTEGER NOT NULL,
         departure   INTEGER NOT NULL
     );
     CREATE INDEX check_ins_by_departure ON check_ins(departure);
     CREATE TABLE venue_exposures (
         id                      INTEGER PRIMARY KEY,
         check_in_id             INTEGER NOT NULL REFERENCES check_ins(id) ON DELETE CASCADE,
         description             TEXT NOT NULL,
         address                 TEXT NOT NULL,
         start                   INTEGER NOT NULL,
         end                     INTEGER NOT NULL,
         transmission_risk_level INTEGER NOT NULL,
         UNIQUE (check_in_id, start, end, transmission_risk_level)
     );
     CREATE INDEX venue_exposures_by_end ON venue_exposures(end);",
    // 4: whether an exposure's key was revised (GAEN allows one transition, R19).
    "ALTER TABLE exposures ADD COLUMN revised INTEGER NOT NULL DEFAULT 0;",
    // 5: whether a check-in was shared after a positive test (its warnings are the user's own).
    "ALTER TABLE check_ins ADD COLUMN shared INTEGER NOT NULL DEFAULT 0;",
];

/// The schema version of an open database.
pub(crate) fn version(conn: &Connection) -> rusqlite::Result<u32> {
    conn.query_row("PRAGMA user_version", [], |row| row.get(0))
}

/// Upgrades the database to `target` (at most [`SCHEMA_VERSION`]).
pub(crate) fn migrate_to(conn: &mut Connection, target: u32) -> rusqlite::Result<()> {
    let current = version(conn)?;
    for (index, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .take(target as usize)
        .skip(current as usize)
    {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index as u32 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upgrades_a_version_1_database_in_place() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate_to(&mut conn, 1).unwrap();
        assert_eq!(version(&conn).unwrap(), 1);
        conn.execute(
            "INSERT INTO sightings (rpi, aem, rssi, time, scan_id) VALUES (x'00', x'00', -60, 5, 1)",
            [],
        )
        .unwrap();
        assert!(
            conn.execute("INSERT INTO settings VALUES ('a', 'b')", [])
                .is_err()
        );

        migrate_to(&mut conn, SCHEMA_VERSION).unwrap();
        assert_eq!(version(&conn).unwrap(), SCHEMA_VERSION);
        let kept: i64 = conn
            .query_row("SELECT count(*) FROM sightings", [], |r| r.get(0))
            .unwrap();
        assert_eq!(kept, 1);
        conn.execute("INSERT INTO settings VALUES ('a', 'b')", [])
            .unwrap();
        // Migrating again is a no-op.
        migrate_to(&mut conn, SCHEMA_VERSION).unwrap();
        assert_eq!(version(&conn).unwrap(), SCHEMA_VERSION);
    }
}
