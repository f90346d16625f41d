//! The database schema, its version and the migrations between versions, together.
//!
//! The version lives in SQLite's `user_version`. Migration `n` takes a database from
//! version `n` to `n + 1`; each runs in its own transaction, so a crash leaves the
//! database at a whole version.

use rusqlite::Connection;

use crate::error::{AppError, Result};

/// Migrations in order; the schema version is their count.
const MIGRATIONS: &[&str] = &[
    // 1: verification codes and diagnosis keys.
    "CREATE TABLE verification_codes (
        -- SHA-256(pepper || code); the code itself is never stored.
        code_hash    BLOB PRIMARY KEY NOT NULL CHECK (length(code_hash) = 32),
        report_type  INTEGER NOT NULL,
        -- Day (days since the Unix epoch) of symptom onset, or of the test when
        -- onset_kind = 'test'; NULL when the health authority gave neither.
        onset_day    INTEGER,
        onset_kind   TEXT CHECK (onset_kind IN ('symptom', 'test')),
        issued_at    INTEGER NOT NULL,
        expires_at   INTEGER NOT NULL,
        redeemed_at  INTEGER
    ) WITHOUT ROWID;
    CREATE INDEX verification_codes_expiry ON verification_codes (expires_at);

    -- Append-only (rowid order = arrival order): a random-keyed B-tree would dirty a
    -- random page per key and make every commit rewrite much of the table. A key
    -- published twice is stored twice; exports de-duplicate by key bytes.
    CREATE TABLE diagnosis_keys (
        key_data          BLOB NOT NULL CHECK (length(key_data) = 16),
        rolling_start     INTEGER NOT NULL,
        rolling_period    INTEGER NOT NULL,
        transmission_risk INTEGER,
        report_type       INTEGER NOT NULL,
        days_since_onset  INTEGER,
        received_at       INTEGER NOT NULL,
        -- Unix seconds before which the key must not be exported: the end of the
        -- key's validity for a key that was still in use when it was published.
        embargo_until     INTEGER NOT NULL
    );
    CREATE INDEX diagnosis_keys_release ON diagnosis_keys (embargo_until);",
    // 2: nothing ties a code to its keys. A redeemed code keeps only its hash and the
    // hour it expires; keys get a random id (so the table's order is not arrival
    // order) and times rounded to the hour (so no time matches a redemption).
    "CREATE TABLE redeemed_codes (
        code_hash    BLOB PRIMARY KEY NOT NULL CHECK (length(code_hash) = 32),
        -- Unix hour (seconds / 3600) after which the code could not be used anyway:
        -- when the row may be deleted.
        expires_hour INTEGER NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO redeemed_codes
        SELECT code_hash, expires_at / 3600 FROM verification_codes WHERE redeemed_at IS NOT NULL;
    DELETE FROM verification_codes WHERE redeemed_at IS NOT NULL;
    ALTER TABLE verification_codes DROP COLUMN redeemed_at;
    ALTER TABLE verification_codes DROP COLUMN issued_at;

    CREATE TABLE diagnosis_keys_random (
        -- Drawn at random for each key: rows sort in no particular order.
        id                INTEGER PRIMARY KEY,
        key_data          BLOB NOT NULL CHECK (length(key_data) = 16),
        rolling_start     INTEGER NOT NULL,
        rolling_period    INTEGER NOT NULL,
        transmission_risk INTEGER,
        report_type       INTEGER NOT NULL,
        days_since_onset  INTEGER,
        -- Unix seconds, rounded down to the hour.
        received_at       INTEGER NOT NULL,
        -- Unix seconds before which the key must not be exported, rounded up to the hour.
        embargo_until     INTEGER NOT NULL
    );
    INSERT INTO diagnosis_keys_random
        SELECT random(), key_data, rolling_start, rolling_period, transmission_risk,
               report_type, days_since_onset, received_at / 3600 * 3600,
               (embargo_until + 3599) / 3600 * 3600
        FROM diagnosis_keys;
    DROP TABLE diagnosis_keys;
    ALTER TABLE diagnosis_keys_random RENAME TO diagnosis_keys;
    CREATE INDEX diagnosis_keys_release ON diagnosis_keys (embargo_until);

    -- Answers to sealed publishes (already sealed to their sender), by SHA-256 of the
    -- body's enc: a replayed body gets its first answer again, real or chaff.
    CREATE TABLE sealed_answers (
        id           BLOB PRIMARY KEY NOT NULL CHECK (length(id) = 32),
        answer       BLOB NOT NULL,
        expires_hour INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX sealed_answers_expiry ON sealed_answers (expires_hour);

    -- The server-wide budget of failed redemptions, so a restart does not refill it.
    CREATE TABLE guess_budget (
        id         INTEGER PRIMARY KEY CHECK (id = 1),
        tokens     REAL NOT NULL,
        updated_at INTEGER NOT NULL
    );",
    // 3: export batches (leased), their stored padding, the files written, signing keys.
    "CREATE TABLE export_batches (
        -- The window [start_time, end_time) of release times (diagnosis_keys.embargo_until).
        start_time    INTEGER PRIMARY KEY NOT NULL,
        end_time      INTEGER NOT NULL CHECK (end_time > start_time),
        status        TEXT NOT NULL CHECK (status IN ('open', 'pending', 'complete')),
        -- Who holds a pending batch, and until when; another batcher may take it after.
        lease_id      BLOB,
        lease_expires INTEGER
    );
    -- Fake keys padding a small batch, stored so that a batch exported again is identical.
    CREATE TABLE export_padding (
        batch_start       INTEGER NOT NULL REFERENCES export_batches (start_time),
        key_data          BLOB NOT NULL CHECK (length(key_data) = 16),
        rolling_start     INTEGER NOT NULL,
        rolling_period    INTEGER NOT NULL,
        transmission_risk INTEGER,
        report_type       INTEGER NOT NULL,
        days_since_onset  INTEGER
    );
    CREATE INDEX export_padding_batch ON export_padding (batch_start);
    CREATE TABLE export_files (
        -- Path relative to the data directory, and to the server's root URL.
        name         TEXT PRIMARY KEY NOT NULL,
        batch_start  INTEGER NOT NULL REFERENCES export_batches (start_time),
        batch_end    INTEGER NOT NULL,
        real_keys    INTEGER NOT NULL,
        padding_keys INTEGER NOT NULL,
        bytes        INTEGER NOT NULL,
        sha256       BLOB NOT NULL CHECK (length(sha256) = 32),
        created_at   INTEGER NOT NULL,
        -- Set when retention drops the file from the index; the file is deleted later.
        expired_at   INTEGER
    ) WITHOUT ROWID;
    CREATE TABLE signing_keys (
        key_version TEXT PRIMARY KEY NOT NULL,
        key_id      TEXT NOT NULL,
        -- The PEM file in the data directory holding the private key.
        file        TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        -- After this time the key signs no new file and leaves /v1/config.
        not_after   INTEGER
    ) WITHOUT ROWID;",
    // 4: case-worker accounts and the audit log of issued codes (no patient data).
    "CREATE TABLE case_workers (
        name          TEXT PRIMARY KEY NOT NULL,
        -- Argon2id PHC string.
        password_hash TEXT NOT NULL,
        failed_logins INTEGER NOT NULL DEFAULT 0,
        -- Unix seconds until which logins are refused.
        locked_until  INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    CREATE TABLE audit_log (
        at          INTEGER NOT NULL,
        case_worker TEXT NOT NULL,
        action      TEXT NOT NULL,
        code_hash   BLOB
    );",
    // 5: venue check-ins of positive people, the padding of trace-warning packages, and
    // the venues the health authority registered.
    "CREATE TABLE check_in_reports (
        -- Drawn at random for each report: rows sort in no particular order.
        id               INTEGER PRIMARY KEY,
        -- SHA-256 of the venue's location id: all the server can read of a report.
        location_id_hash BLOB NOT NULL CHECK (length(location_id_hash) = 32),
        -- The CheckInProtectedReport protobuf, as uploaded.
        report           BLOB NOT NULL,
        -- Unix seconds, the hour after arrival: when the report may be published (the
        -- keys' release rule, so it lands in a window not cut yet).
        released_at      INTEGER NOT NULL
    );
    CREATE INDEX check_in_reports_release ON check_in_reports (released_at);
    -- Fake reports padding a small trace-warning package, stored so that a package
    -- written again is identical.
    CREATE TABLE trace_warning_padding (
        batch_start INTEGER NOT NULL REFERENCES export_batches (start_time),
        report      BLOB NOT NULL
    );
    CREATE INDEX trace_warning_padding_batch ON trace_warning_padding (batch_start);
    CREATE TABLE venues (
        -- SHA-256 of the location id, as reports carry it.
        location_id_hash BLOB PRIMARY KEY NOT NULL CHECK (length(location_id_hash) = 32),
        -- The QR code's text (a CWA-format payload URL).
        qr_text          TEXT NOT NULL,
        description      TEXT NOT NULL,
        address          TEXT NOT NULL,
        registered_at    INTEGER NOT NULL,
        registered_by    TEXT NOT NULL
    ) WITHOUT ROWID;",
    // 6: the dashboard's daily figures, counted when they happen (counts only). Days
    // before this version are filled in from what is still stored: codes issued from
    // the audit log, keys by arrival, export files by creation; redemptions keep no time.
    "CREATE TABLE daily_counts (
        -- Days since the Unix epoch (UTC).
        day            INTEGER PRIMARY KEY NOT NULL,
        codes_issued   INTEGER NOT NULL DEFAULT 0,
        codes_redeemed INTEGER NOT NULL DEFAULT 0,
        keys_published INTEGER NOT NULL DEFAULT 0,
        export_files   INTEGER NOT NULL DEFAULT 0,
        export_bytes   INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    INSERT INTO daily_counts (day, codes_issued)
        SELECT at / 86400, count(*) FROM audit_log WHERE action = 'issue_code' GROUP BY 1;
    INSERT INTO daily_counts (day, keys_published)
        SELECT received_at / 86400, count(*) FROM diagnosis_keys WHERE true GROUP BY 1
        ON CONFLICT (day) DO UPDATE SET keys_published = excluded.keys_published;
    INSERT INTO daily_counts (day, export_files, export_bytes)
        SELECT created_at / 86400, count(*), sum(bytes) FROM export_files
        WHERE name LIKE 'v1/exports/%' GROUP BY 1
        ON CONFLICT (day) DO UPDATE SET export_files = excluded.export_files,
            export_bytes = excluded.export_bytes;",
    // 7: rotated signing keys keep their private key in the database (PEM), so that
    // every server on a shared database signs with them; `file` names the older ones'.
    "ALTER TABLE signing_keys ADD COLUMN private_key TEXT;",
];

/// The schema version this build writes.
pub const VERSION: u32 = MIGRATIONS.len() as u32;

/// Brings the database up to [`VERSION`]; refuses a database from a newer server.
pub fn migrate(conn: &mut Connection) -> Result<()> {
    let found: u32 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if found > VERSION {
        return Err(AppError::SchemaTooNew {
            found,
            supported: VERSION,
        });
    }
    for (version, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version as u32 + 1)?;
        tx.commit()?;
        tracing::info!(version = version + 1, "database schema migrated");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_an_empty_database_once() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap(); // idempotent
        let version: u32 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, VERSION);
        conn.execute(
            "INSERT INTO diagnosis_keys VALUES (7, zeroblob(16), 1, 144, NULL, 1, 0, 0, 0)",
            [],
        )
        .unwrap();
        assert!(
            conn.execute(
                "INSERT INTO diagnosis_keys VALUES (8, zeroblob(15), 1, 144, NULL, 1, 0, 0, 0)",
                []
            )
            .is_err(),
            "the schema itself refuses keys that are not 16 bytes"
        );
    }

    #[test]
    fn version_2_keeps_keys_and_reduces_redeemed_codes() {
        let mut conn = Connection::open_in_memory().unwrap();
        let tx = conn.transaction().unwrap();
        tx.execute_batch(MIGRATIONS[0]).unwrap();
        tx.pragma_update(None, "user_version", 1).unwrap();
        tx.execute_batch(
            "INSERT INTO verification_codes VALUES (zeroblob(32), 1, NULL, NULL, 100, 7300, 5000);
             INSERT INTO verification_codes VALUES (randomblob(32), 1, NULL, NULL, 100, 7300, NULL);
             INSERT INTO diagnosis_keys VALUES (zeroblob(16), 1, 144, NULL, 1, 0, 5000, 5000);",
        )
        .unwrap();
        tx.commit().unwrap();
        migrate(&mut conn).unwrap();
        let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
        assert_eq!(
            count("SELECT count(*) FROM redeemed_codes WHERE expires_hour = 2"),
            1
        );
        assert_eq!(count("SELECT count(*) FROM verification_codes"), 1);
        assert_eq!(
            count(
                "SELECT count(*) FROM diagnosis_keys WHERE received_at = 3600 AND embargo_until = 7200"
            ),
            1
        );
    }

    #[test]
    fn refuses_a_newer_database() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", VERSION + 1)
            .unwrap();
        assert!(matches!(
            migrate(&mut conn),
            Err(AppError::SchemaTooNew { found, supported }) if found == VERSION + 1 && supported == VERSION
        ));
    }
}
