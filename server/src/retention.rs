//! Retention, in two steps, so that a client holding a cached index never meets a missing
//! file (google/exposure-notifications-server#1148 is what happens otherwise).
//!
//! 1. Past the retention period, export files and trace-warning packages leave their
//!    index; keys and check-ins (once exported) and
//!    codes (expired, or the hashes kept of used ones) are deleted, with the padding of old
//!    batches.
//! 2. A delay later, the dropped files are deleted from the export store (the data
//!    directory or the bucket), then forgotten.

use crate::clock::UnixSeconds;
use crate::error::Result;
use crate::export::files;
use crate::export::store::ExportStore;
use crate::storage::BatchStore;

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
        store: &mut dyn BatchStore,
        exports: &ExportStore,
        now: UnixSeconds,
    ) -> Result<RetentionRun> {
        let cutoff = now.get().saturating_sub(self.keep_seconds);
        let expired = store.expire(now, cutoff)?;
        let mut run = RetentionRun {
            files_dropped: expired.files_dropped,
            keys_deleted: expired.keys_deleted,
            check_ins_deleted: expired.check_ins_deleted,
            codes_deleted: expired.codes_deleted,
            files_deleted: 0,
        };
        let delete_before = now.get().saturating_sub(self.delete_delay_seconds);
        for name in store.dropped_files(delete_before)? {
            exports.delete(&name)?;
            store.forget_file(&name)?;
            run.files_deleted += 1;
        }
        if run.files_dropped > 0 || run.files_deleted > 0 {
            files::write_index(store, exports)?;
        }
        Ok(run)
    }
}
