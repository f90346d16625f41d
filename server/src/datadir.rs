//! The data directory: created private (0700), tightened with a warning when it is
//! not, and locked so that one server at a time uses it.

use std::fs::{self, File};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use crate::error::{AppError, Result};

/// The lock file's name.
pub const LOCK_FILE: &str = "kith.lock";

/// A data directory this process holds the lock of, until it is dropped.
#[derive(Debug)]
pub struct DataDir {
    _lock: File,
}

impl DataDir {
    /// Creates `path` (mode 0700) or tightens it to 0700, and takes its lock; fails
    /// with [`AppError::DataDirInUse`] when another process has it.
    pub fn open(path: &Path) -> Result<Self> {
        let io = |source| AppError::Io {
            path: path.display().to_string(),
            source,
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .map_err(io)?;
        let mode = fs::metadata(path).map_err(io)?.permissions().mode() & 0o777;
        if mode != 0o700 {
            tracing::warn!(
                mode = format!("{mode:o}"),
                "the data directory was readable by others; its mode is now 0700"
            );
            fs::set_permissions(path, fs::Permissions::from_mode(0o700)).map_err(io)?;
        }
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path.join(LOCK_FILE))
            .map_err(io)?;
        match rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Self { _lock: lock }),
            Err(rustix::io::Errno::WOULDBLOCK) => Err(AppError::DataDirInUse {
                path: path.display().to_string(),
            }),
            Err(errno) => Err(io(errno.into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_and_modes_are_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        fs::create_dir(&data).unwrap();
        fs::set_permissions(&data, fs::Permissions::from_mode(0o777)).unwrap();
        let first = DataDir::open(&data).unwrap();
        assert_eq!(
            fs::metadata(&data).unwrap().permissions().mode() & 0o777,
            0o700
        );
        // flock locks belong to the open file, so a second open in this process
        // conflicts as another process would.
        assert!(matches!(
            DataDir::open(&data),
            Err(AppError::DataDirInUse { .. })
        ));
        drop(first);
        DataDir::open(&data).unwrap();
    }
}
