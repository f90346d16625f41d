//! Export files' names: `v1/exports/…` in the export store (the data directory or a bucket),
//! the same relative path as their URL, so nginx, a CDN or the bucket can serve them as
//! they are; and the indexes that list them.

use std::fs;

use super::store::{ExportStore, TEMPORARY, io_error, remove_if_present};
use super::trace_warnings::{TRACE_WARNING_DIR, TRACE_WARNING_INDEX};
use super::window::Window;
use crate::clock::UnixSeconds;
use crate::error::Result;
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

/// Deletes the temporary files in the export and trace-warning directories that nobody
/// will publish any more, left by a batcher that was killed; returns how many. Under the
/// database's write lock, so the indexes' are dead (indexes are written only under that
/// lock), and so are the files of every batch not pending. A pending batch's may be a
/// live batcher's: they are deleted once that batch is complete.
pub fn remove_dead_temporaries(store: &mut dyn BatchStore, exports: &ExportStore) -> Result<usize> {
    // A bucket's files appear whole or not at all: it has no temporaries.
    let Some(data_dir) = exports.data_dir() else {
        return Ok(0);
    };
    let mut removed = 0;
    store.with_pending(&mut |pending| {
        for dir in [EXPORT_DIR, TRACE_WARNING_DIR] {
            let dir = data_dir.join(dir);
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => return Err(io_error(&dir)(source)),
            };
            for entry in entries {
                let entry = entry.map_err(io_error(&dir))?;
                let name = entry.file_name();
                let Some((stem, _)) = name
                    .to_str()
                    .and_then(|n| n.split_once(&format!(".{TEMPORARY}")))
                else {
                    continue;
                };
                let batch_start = stem.split('-').next().and_then(|s| s.parse().ok());
                let live =
                    batch_start.is_some_and(|start| pending.contains(&UnixSeconds::new(start)));
                if !live {
                    remove_if_present(&entry.path())?;
                    removed += 1;
                }
            }
        }
        Ok(())
    })?;
    Ok(removed)
}

/// Rewrites the indexes (of key exports, of trace-warning packages) from the database
/// when they changed, each under the database's index lock, so two batchers write their
/// indexes one after the other and the last one is current.
pub fn write_index(store: &mut dyn BatchStore, exports: &ExportStore) -> Result<()> {
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
            if exports.read(index)?.as_deref() != Some(text.as_bytes()) {
                exports.replace(index, text.into_bytes())?;
            }
            Ok(())
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
