//! Retention, in two steps, so that a client holding a cached index never meets a missing
//! file (google/exposure-notifications-server#1148 is what happens otherwise).
//!
//! 1. Past the retention period, export files and trace-warning packages leave their
//!    index; keys and check-ins (once exported) and
//!    codes (expired, or the hashes kept of used ones) are deleted, with the padding of old
//!    batches.
//! 2. A delay later, the dropped files are deleted from the data directory, then forgotten.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior, params};

use crate::clock::UnixSeconds;
use crate::error::{AppError, Result};
use crate::export::files;

/// How long things are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Age after which keys, codes and files go (14 days by default).
    pub keep_seconds: u64,
    /// Time between dropping a file from the index and deleting it.
    pub delete_delay_seconds: u64,
}

/// What one pass removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetentionRun {
    /// Files dropped from the index (step 1).
    pub files_dropped: usize,
    /// Files deleted (step 2).
    pub files_deleted: usize,
    /// Diagnosis keys deleted.
    pub keys_deleted: usize,
    /// Venue check-in reports deleted.
    pub check_ins_deleted: usize,
    /// Verification codes deleted.
    pub codes_deleted: usize,
}

impl Retention {
    /// Runs both steps at `now`, then rewrites the index if it changed.
    pub fn run(
        &self,
        conn: &mut Connection,
        data_dir: &Path,
        now: UnixSeconds,
    ) -> Result<RetentionRun> {
        let cutoff = now.get().saturating_sub(self.keep_seconds);
        let mut run = RetentionRun::default();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        run.files_dropped = tx.execute(
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
        run.keys_deleted = exported("diagnosis_keys", "embargo_until")?;
        run.check_ins_deleted = exported("check_in_reports", "released_at")?;
        // Codes that expired unused, and the hashes kept of used ones to refuse them again.
        run.codes_deleted = tx.execute(
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

        let delete_before = now.get().saturating_sub(self.delete_delay_seconds);
        let doomed: Vec<String> = conn
            .prepare("SELECT name FROM export_files WHERE expired_at <= ?1")?
            .query_map([delete_before], |row| row.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for name in doomed {
            let path = data_dir.join(&name);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(AppError::Io {
                        path: path.display().to_string(),
                        source,
                    });
                }
            }
            conn.execute("DELETE FROM export_files WHERE name = ?1", [&name])?;
            run.files_deleted += 1;
        }
        if run.files_dropped > 0 || run.files_deleted > 0 {
            files::write_index(conn, data_dir)?;
        }
        Ok(run)
    }
}
