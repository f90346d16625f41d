//! The default storage: SQLite in the data directory, in WAL mode. The writer's connection
//! never checkpoints; a second connection copies the WAL back into the database file every
//! half second, so a commit never waits for a checkpoint. The statements themselves are in
//! [`crate::db`] (publish path), [`crate::export::batches`] (export batches) and here.

use std::path::PathBuf;
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use kith_core::DiagnosisKey;
use kith_core::checkin::{LocationIdHash, ProtectedReport};
use rand_core::RngCore;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::calendar::Day;
use crate::clock::UnixSeconds;
use crate::codes::{CodeHash, CodeOrder};
use crate::config::{Config, Durability};
use crate::db;
use crate::error::{AppError, Result};
use crate::export::{batches, trace_warnings};
use crate::guessing::BudgetState;
use crate::storage::{
    AccountStore, AddedKey, BatchStore, CaseWorkerRow, CodeRow, CodeState, DayCounts, Expired,
    FileRecord, Lease, PrivateKey, PrivateKeyPem, SigningKeyRow, Storage, Venue, VenueStore,
    WriteTx, WriterStore, location_hash,
};
use crate::upload::StoredKey;
use crate::window::{Window, Windowing};

/// How often the WAL is copied back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// SQLite in a data directory.
#[derive(Clone, Debug)]
pub struct SqliteStorage {
    data_dir: PathBuf,
    durability: Durability,
    max_mib: Option<u32>,
}

impl SqliteStorage {
    /// The database in `config`'s data directory, created and migrated if needed.
    pub fn open(config: &Config) -> Result<Self> {
        let storage = Self {
            data_dir: config.data_dir.clone(),
            durability: config.durability,
            max_mib: config.max_database_mib,
        };
        storage.connect()?;
        Ok(storage)
    }

    /// The database of a data directory a server has already set up (the server creates
    /// the keys beside it), for the operator's commands.
    pub fn open_existing(config: &Config) -> Result<Self> {
        if !config.data_dir.join(db::DATABASE_FILE).is_file() {
            return Err(AppError::BadFile {
                path: config.data_dir.display().to_string(),
                reason: "no Kith data directory here; start kith-server on it once first".into(),
            });
        }
        Self::open(config)
    }

    fn connect(&self) -> Result<Connection> {
        db::open(&self.data_dir, self.durability, self.max_mib)
    }
}

impl Storage for SqliteStorage {
    fn writer(&self) -> Result<Box<dyn WriterStore>> {
        let conn = self.connect()?;
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        let checkpoint_conn = self.connect()?;
        let (stop_checkpoints, stopped) = std_mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("kith-checkpoint".into())
            .spawn(move || checkpoint_until_stopped(&checkpoint_conn, &stopped))
            .map_err(|source| AppError::Io {
                path: "database checkpoint thread".into(),
                source,
            })?;
        Ok(Box::new(SqliteWriter {
            conn,
            _stop_checkpoints: stop_checkpoints,
        }))
    }

    fn batcher(&self) -> Result<Box<dyn BatchStore>> {
        Ok(Box::new(SqliteBatcher(self.connect()?)))
    }

    fn accounts(&self) -> Result<Box<dyn AccountStore>> {
        Ok(Box::new(SqliteAccounts(self.connect()?)))
    }

    fn venues(&self) -> Result<Box<dyn VenueStore>> {
        Ok(Box::new(SqliteVenues(self.connect()?)))
    }
}

fn checkpoint_until_stopped(conn: &Connection, stopped: &std_mpsc::Receiver<()>) {
    while let Err(std_mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(CHECKPOINT_EVERY) {
        // PASSIVE never blocks the writer; what it cannot copy now it copies next time.
        if let Err(error) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(%error, "WAL checkpoint failed; retrying");
        }
    }
}

/// The writer's connection; dropping it stops the checkpointer.
struct SqliteWriter {
    conn: Connection,
    _stop_checkpoints: std_mpsc::Sender<()>,
}

impl WriterStore for SqliteWriter {
    fn load_budget(&mut self) -> Result<Option<BudgetState>> {
        db::load_budget(&self.conn)
    }

    fn transaction(&mut self, work: &mut dyn FnMut(&mut dyn WriteTx) -> Result<()>) -> Result<()> {
        // IMMEDIATE: take the write lock up front, waiting for the export batcher (another
        // connection, maybe another process) if it holds it. A deferred transaction that
        // read first would fail with SQLITE_BUSY instead of waiting.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        work(&mut SqliteTx(&tx))?;
        tx.commit()?;
        Ok(())
    }
}

struct SqliteTx<'a>(&'a Connection);

impl WriteTx for SqliteTx<'_> {
    fn find_code(&mut self, hash: &CodeHash) -> Result<CodeState> {
        db::find_code(self.0, hash)
    }

    fn redeem_code(&mut self, code: &CodeRow) -> Result<bool> {
        db::redeem_code(self.0, code)
    }

    fn insert_code(&mut self, hash: &CodeHash, order: &CodeOrder) -> Result<bool> {
        db::insert_code(self.0, hash, order)
    }

    fn insert_keys(
        &mut self,
        keys: &[StoredKey],
        now: UnixSeconds,
        truncate: u64,
        mut rng: &mut dyn RngCore,
    ) -> Result<()> {
        db::insert_keys(self.0, keys, now, truncate, &mut rng)
    }

    fn insert_check_ins(
        &mut self,
        reports: &[ProtectedReport],
        now: UnixSeconds,
        truncate: u64,
        mut rng: &mut dyn RngCore,
    ) -> Result<()> {
        db::insert_check_ins(self.0, reports, now, truncate, &mut rng)
    }

    fn audit_issue(&mut self, who: &str, hash: &CodeHash, now: UnixSeconds) -> Result<()> {
        db::audit_issue(self.0, who, hash, now)
    }

    fn find_sealed_answer(&mut self, id: &[u8; 32]) -> Result<Option<Vec<u8>>> {
        db::find_sealed_answer(self.0, id)
    }

    fn store_sealed_answer(
        &mut self,
        id: &[u8; 32],
        answer: &[u8],
        expires_hour: u64,
    ) -> Result<()> {
        db::store_sealed_answer(self.0, id, answer, expires_hour)
    }

    fn prune_sealed_answers(&mut self, hour: u64) -> Result<()> {
        db::prune_sealed_answers(self.0, hour)
    }

    fn store_budget(&mut self, budget: BudgetState) -> Result<()> {
        db::store_budget(self.0, budget)
    }

    fn add_day_counts(&mut self, day: Day, counts: &DayCounts) -> Result<()> {
        db::add_day_counts(self.0, day, counts)
    }
}

/// A connection for one export pass or operator command.
struct SqliteBatcher(Connection);

impl BatchStore for SqliteBatcher {
    fn cut_windows(&mut self, windowing: &Windowing, now: UnixSeconds) -> Result<usize> {
        batches::cut_windows(&mut self.0, windowing, now)
    }

    fn lease(&mut self, now: UnixSeconds, lease_seconds: u64) -> Result<Option<Lease>> {
        batches::lease(&mut self.0, now, lease_seconds)
    }

    fn released_keys(&mut self, window: Window) -> Result<Vec<DiagnosisKey>> {
        batches::released_keys(&self.0, window)
    }

    fn stored_padding(&mut self, start: UnixSeconds) -> Result<Vec<DiagnosisKey>> {
        batches::stored_padding(&self.0, start)
    }

    fn store_padding(
        &mut self,
        lease: &Lease,
        padding: Vec<DiagnosisKey>,
    ) -> Result<Option<Vec<DiagnosisKey>>> {
        batches::store_padding(&mut self.0, lease, padding)
    }

    fn released_reports(&mut self, window: Window) -> Result<Vec<ProtectedReport>> {
        trace_warnings::released_reports(&self.0, window)
    }

    fn stored_report_padding(&mut self, start: UnixSeconds) -> Result<Vec<ProtectedReport>> {
        trace_warnings::stored_padding(&self.0, start)
    }

    fn store_report_padding(
        &mut self,
        lease: &Lease,
        padding: Vec<ProtectedReport>,
    ) -> Result<Option<Vec<ProtectedReport>>> {
        trace_warnings::store_padding(&mut self.0, lease, padding)
    }

    fn finish(
        &mut self,
        lease: &Lease,
        files: &[FileRecord],
        now: UnixSeconds,
        publish: &mut dyn FnMut() -> Result<()>,
    ) -> Result<bool> {
        batches::finish(&mut self.0, lease, files, now, publish)
    }

    fn with_pending(&mut self, work: &mut dyn FnMut(&[UnixSeconds]) -> Result<()>) -> Result<()> {
        let tx = self
            .0
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        work(&batches::pending(&tx)?)?;
        tx.commit()?;
        Ok(())
    }

    fn with_index(
        &mut self,
        dir: &str,
        write: &mut dyn FnMut(&[String]) -> Result<()>,
    ) -> Result<()> {
        let tx = self
            .0
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        write(&batches::indexed_files(&tx, dir)?)?;
        tx.commit()?;
        Ok(())
    }

    fn expire(&mut self, now: UnixSeconds, cutoff: u64) -> Result<Expired> {
        let tx = self
            .0
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let files_dropped = tx.execute(
            "UPDATE export_files SET expired_at = ?1 WHERE expired_at IS NULL AND batch_end <= ?2",
            params![now.get(), cutoff],
        )?;
        // Only keys and check-ins whose window is exported: before the oldest unfinished
        // batch, or before the last batch's end when every batch is finished.
        let exported = |table: &str, released: &str| {
            tx.execute(
                &format!(
                    "DELETE FROM {table} WHERE {released} < min(?1, coalesce(
                         (SELECT min(start_time) FROM export_batches WHERE status != 'complete'),
                         (SELECT max(end_time) FROM export_batches),
                         0))"
                ),
                [cutoff],
            )
        };
        let keys_deleted = exported("diagnosis_keys", "embargo_until")?;
        let check_ins_deleted = exported("check_in_reports", "released_at")?;
        // Codes that expired unused, and the hashes kept of used ones to refuse them again.
        let codes_deleted = tx.execute(
            "DELETE FROM verification_codes WHERE expires_at < ?1",
            [cutoff],
        )? + tx.execute(
            "DELETE FROM redeemed_codes WHERE expires_hour * 3600 < ?1",
            [cutoff],
        )?;
        for padding in ["export_padding", "trace_warning_padding"] {
            tx.execute(
                &format!(
                    "DELETE FROM {padding} WHERE batch_start IN
                     (SELECT start_time FROM export_batches WHERE end_time <= ?1)"
                ),
                [cutoff],
            )?;
        }
        tx.commit()?;
        Ok(Expired {
            files_dropped,
            keys_deleted,
            check_ins_deleted,
            codes_deleted,
        })
    }

    fn dropped_files(&mut self, before: u64) -> Result<Vec<String>> {
        Ok(self
            .0
            .prepare("SELECT name FROM export_files WHERE expired_at <= ?1")?
            .query_map([before], |row| row.get(0))?
            .collect::<rusqlite::Result<_>>()?)
    }

    fn forget_file(&mut self, name: &str) -> Result<()> {
        self.0
            .execute("DELETE FROM export_files WHERE name = ?1", [name])?;
        Ok(())
    }

    fn day_counts(&mut self, first: Day) -> Result<Vec<(Day, DayCounts)>> {
        db::day_counts(&self.0, first)
    }

    fn signing_keys(&mut self, first: &SigningKeyRow) -> Result<Vec<SigningKeyRow>> {
        let (file, pem) = first.private_key.columns();
        self.0.execute(
            "INSERT INTO signing_keys (key_version, key_id, file, private_key, created_at, not_after)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE NOT EXISTS (SELECT 1 FROM signing_keys)",
            params![
                first.key_version,
                first.key_id,
                file,
                pem,
                first.created_at.get(),
                first.not_after.map(UnixSeconds::get)
            ],
        )?;
        let mut stmt = self.0.prepare(
            "SELECT key_id, key_version, file, private_key, created_at, not_after
             FROM signing_keys ORDER BY created_at, key_version",
        )?;
        let rows = stmt.query_map([], |row| {
            Ok(SigningKeyRow {
                key_id: row.get(0)?,
                key_version: row.get(1)?,
                private_key: PrivateKey::from_columns(row.get(2)?, row.get(3)?),
                created_at: UnixSeconds::new(row.get(4)?),
                not_after: row.get::<_, Option<u64>>(5)?.map(UnixSeconds::new),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn add_signing_key(
        &mut self,
        now: UnixSeconds,
        retire_at: Option<UnixSeconds>,
        private_key: &PrivateKeyPem,
    ) -> Result<AddedKey> {
        let tx = self
            .0
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let key_id: String = tx
            .query_row(
                "SELECT key_id FROM signing_keys ORDER BY created_at DESC, key_version DESC LIMIT 1",
                [],
                |row| row.get(0),
            )
            .map_err(|_| AppError::Corrupt("no signing key is registered yet".into()))?;
        let taken = |version: &str| -> Result<bool> {
            Ok(tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM signing_keys WHERE key_version = ?1)",
                [version],
                |row| row.get(0),
            )?)
        };
        let mut n = 2;
        while taken(&format!("v{n}"))? {
            n += 1;
        }
        let key_version = format!("v{n}");
        let retiring = match retire_at {
            Some(end) => tx.execute(
                "UPDATE signing_keys SET not_after = ?1 WHERE not_after IS NULL",
                [end.get()],
            )?,
            None => 0,
        };
        tx.execute(
            "INSERT INTO signing_keys (key_version, key_id, file, private_key, created_at)
             VALUES (?1, ?2, '', ?3, ?4)",
            params![key_version, key_id, private_key.expose_secret(), now.get()],
        )?;
        tx.commit()?;
        Ok(AddedKey {
            key_id,
            key_version,
            retiring,
        })
    }
}

/// The accounts' connection.
struct SqliteAccounts(Connection);

impl AccountStore for SqliteAccounts {
    fn add_case_worker(&mut self, name: &str, password_hash: &str) -> Result<bool> {
        let inserted = self.0.execute(
            "INSERT INTO case_workers (name, password_hash) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            params![name, password_hash],
        )?;
        Ok(inserted == 1)
    }

    fn case_worker(&mut self, name: &str) -> Result<Option<CaseWorkerRow>> {
        Ok(self
            .0
            .query_row(
                "SELECT password_hash, failed_logins, locked_until FROM case_workers WHERE name = ?1",
                [name],
                |row| {
                    Ok(CaseWorkerRow {
                        password_hash: row.get(0)?,
                        failed_logins: row.get(1)?,
                        locked_until: row.get(2)?,
                    })
                },
            )
            .optional()?)
    }

    fn set_login_state(&mut self, name: &str, failed_logins: u32, locked_until: u64) -> Result<()> {
        self.0.execute(
            "UPDATE case_workers SET failed_logins = ?2, locked_until = ?3 WHERE name = ?1",
            params![name, failed_logins, locked_until],
        )?;
        Ok(())
    }
}

/// The venues' connection.
struct SqliteVenues(Connection);

const VENUE_COLUMNS: &str = "location_id_hash, qr_text, description, address";

fn venue_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Venue>> {
    let hash: Vec<u8> = row.get(0)?;
    Ok(location_hash(&hash).map(|hash| Venue {
        hash,
        qr_text: row.get(1).unwrap_or_default(),
        description: row.get(2).unwrap_or_default(),
        address: row.get(3).unwrap_or_default(),
    }))
}

impl VenueStore for SqliteVenues {
    fn add_venue(&mut self, venue: &Venue, who: &str, now: UnixSeconds) -> Result<()> {
        self.0.execute(
            &format!(
                "INSERT INTO venues ({VENUE_COLUMNS}, registered_at, registered_by)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
            ),
            params![
                venue.hash.to_bytes().as_slice(),
                venue.qr_text,
                venue.description,
                venue.address,
                now.get(),
                who
            ],
        )?;
        Ok(())
    }

    fn venues(&mut self) -> Result<Vec<Venue>> {
        let mut stmt = self.0.prepare(&format!(
            "SELECT {VENUE_COLUMNS} FROM venues ORDER BY description"
        ))?;
        let rows = stmt.query_map([], venue_row)?;
        rows.map(|row| row?).collect()
    }

    fn venue(&mut self, hash: &LocationIdHash) -> Result<Option<Venue>> {
        self.0
            .query_row(
                &format!("SELECT {VENUE_COLUMNS} FROM venues WHERE location_id_hash = ?1"),
                [hash.to_bytes().as_slice()],
                venue_row,
            )
            .optional()?
            .transpose()
    }

    fn check_in_counts(&mut self, after: UnixSeconds) -> Result<Vec<(LocationIdHash, Day, u64)>> {
        let mut stmt = self.0.prepare(
            // The day of the window the report arrived in (it is released at its end).
            "SELECT location_id_hash, (released_at - 1) / 86400, count(*) FROM check_in_reports
             WHERE released_at > ?1 GROUP BY 1, 2",
        )?;
        let rows = stmt.query_map([after.get()], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, u32>(1)?,
                r.get::<_, u64>(2)?,
            ))
        })?;
        rows.map(|row| {
            let (hash, day, n) = row?;
            Ok((location_hash(&hash)?, Day::new(day), n))
        })
        .collect()
    }
}

/// SQLite in a fresh temporary data directory, for tests.
#[cfg(test)]
pub fn fixture() -> Option<crate::storage::conformance::Fixture> {
    let dir = tempfile::tempdir().unwrap();
    let config = crate::storage::conformance::config(dir.path());
    Some(crate::storage::conformance::Fixture {
        storage: std::sync::Arc::new(SqliteStorage::open(&config).unwrap()),
        dir,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyring::Keyring;
    use crate::signing_keys::{Rotation, SigningKeys, rotate};

    crate::storage::conformance::suite!(crate::sqlite::fixture);

    #[test]
    fn rotation_adds_a_key_and_retires_the_old_one_at_its_end_time() {
        let dir = tempfile::tempdir().unwrap();
        Keyring::open_or_create(dir.path()).unwrap();
        let storage =
            SqliteStorage::open(&crate::storage::conformance::config(dir.path())).unwrap();
        let mut store = storage.batcher().unwrap();
        let conn = &mut *store;
        let t0 = UnixSeconds::new(1_800_000_000);
        let first = SigningKeys::load(conn, dir.path(), "310", "v1", t0).unwrap();
        assert_eq!(first.all().len(), 1);
        assert_eq!(first.signers(t0)[0].info().key_version(), "v1");

        let end = t0.plus(7 * 86_400);
        let rotation = rotate(conn, t0.plus(60), Some(end)).unwrap();
        assert_eq!(
            rotation,
            Rotation {
                key_id: "310".into(),
                key_version: "v2".into(),
                retiring: 1
            }
        );
        let keys = SigningKeys::load(conn, dir.path(), "ignored", "ignored", t0).unwrap();
        let versions = |now| -> Vec<String> {
            keys.signers(now)
                .iter()
                .map(|s| s.info().key_version().to_owned())
                .collect()
        };
        assert_eq!(versions(t0.plus(120)), ["v1", "v2"]);
        assert_eq!(versions(end), ["v2"]);
        assert_ne!(
            keys.all()[0].signer.verifying_key(),
            keys.all()[1].signer.verifying_key()
        );
        assert_eq!(rotate(conn, t0.plus(180), None).unwrap().key_version, "v3");
    }
}
