//! Where export files live: `v1/exports/` in the data directory, the same relative path as
//! their URL, so nginx or a CDN can serve the directory as it is.

use std::fs;
use std::io::Write;
use std::path::Path;

use rand_core::{OsRng, RngCore};

use super::trace_warnings::{TRACE_WARNING_DIR, TRACE_WARNING_INDEX};
use super::window::Window;
use crate::error::{AppError, Result};
use crate::storage::BatchStore;

/// The directory of export files, relative to the data directory and to the server's URL.
pub const EXPORT_DIR: &str = "v1/exports";

/// The index of export files, relative to the data directory and to the server's URL.
pub const INDEX_FILE: &str = "v1/exports/index.txt";

/// The name of file `seq` (from 1) of the batch for `window`: deterministic, so a batch
/// exported twice writes the same names, and sorted by time.
pub fn file_name(window: Window, seq: usize) -> String {
    format!(
        "{EXPORT_DIR}/{}-{}-{seq:05}.zip",
        window.start.get(),
        window.end.get()
    )
}

/// Whether `name` (below [`EXPORT_DIR`]) looks like a file [`file_name`] makes.
pub fn is_export_name(name: &str) -> bool {
    is_numbered_zip(name, 3)
}

/// Whether `name` is `<n>-<n>….zip` with `parts` numbers: a name a batch's file has.
pub fn is_numbered_zip(name: &str, parts: usize) -> bool {
    let Some(stem) = name.strip_suffix(".zip") else {
        return false;
    };
    let numbers: Vec<&str> = stem.split('-').collect();
    numbers.len() == parts
        && numbers
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 20 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Writes `bytes` to `relative` in `data_dir` so that readers see the old file or the new,
/// never part of one: a temporary file, flushed, then renamed over.
pub fn write_atomically(data_dir: &Path, relative: &str, bytes: &[u8]) -> Result<()> {
    let path = data_dir.join(relative);
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| AppError::Io { path, source }
    };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let tmp = path.with_extension(format!("tmp-{:016x}", OsRng.next_u64()));
    let mut file = fs::File::create(&tmp).map_err(io(&tmp))?;
    file.write_all(bytes).map_err(io(&tmp))?;
    file.sync_all().map_err(io(&tmp))?;
    fs::rename(&tmp, &path).map_err(io(&path))
}

/// Rewrites the indexes (of key exports, of trace-warning packages) from the database
/// when they changed, each under the database's index lock, so two batchers write their
/// indexes one after the other and the last one is current.
pub fn write_index(store: &mut dyn BatchStore, data_dir: &Path) -> Result<()> {
    for (dir, index) in [
        (EXPORT_DIR, INDEX_FILE),
        (TRACE_WARNING_DIR, TRACE_WARNING_INDEX),
    ] {
        store.with_index(dir, &mut |names| {
            let mut text = String::new();
            for name in names {
                text.push_str(name);
                text.push('\n');
            }
            let current = fs::read(data_dir.join(index)).ok();
            if current.as_deref() != Some(text.as_bytes()) {
                write_atomically(data_dir, index, text.as_bytes())?;
            }
            Ok(())
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::UnixSeconds;

    #[test]
    fn names_are_deterministic_and_recognised() {
        let window = Window {
            start: UnixSeconds::new(1_800_000_000),
            end: UnixSeconds::new(1_800_003_600),
        };
        let name = file_name(window, 2);
        assert_eq!(name, "v1/exports/1800000000-1800003600-00002.zip");
        assert!(is_export_name(name.strip_prefix("v1/exports/").unwrap()));
        for bad in [
            "index.txt",
            "1-2.zip",
            "1-2-3.zip.tmp",
            "../1-2-3.zip",
            "a-2-3.zip",
            "1--3.zip",
        ] {
            assert!(!is_export_name(bad), "{bad}");
        }
    }
}
