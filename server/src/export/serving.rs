//! What distribution needs below HTTP: export files read once from the data directory and
//! kept in memory with their ETag, and the `Range` header's meaning.
//!
//! Files are served from the directory itself (what nginx would serve), so a file dropped
//! from the index stays downloadable until retention deletes it. The cache checks each
//! file's identity (inode, size, modification time) on every request, so a replaced or
//! deleted file is never served stale. Each cached copy stays registered with its open file
//! in the cache's [`FileMemory`], so connections send it with `sendfile`.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::http::HeaderValue;
use sha2::{Digest, Sha256};

use crate::zero_copy::{FileBytes, FileMemory};

/// Bytes of files kept in memory at most; past it the cache starts over.
const CACHE_BYTES: u64 = 512 << 20;

/// A file ready to serve.
#[derive(Debug)]
pub struct ServedFile {
    /// Its content.
    pub content: FileBytes,
    /// Strong ETag (quoted): the start of the content's SHA-256.
    pub etag: HeaderValue,
}

/// Which file on disk a cached copy came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    inode: u64,
    len: u64,
    modified_ns: i64,
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Self {
        Self {
            inode: meta.ino(),
            len: meta.len(),
            modified_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
        }
    }
}

/// Export files by relative path, read on first request.
#[derive(Debug)]
pub struct ExportCache {
    data_dir: PathBuf,
    files: Mutex<HashMap<String, (Stamp, Arc<ServedFile>)>>,
    memory: Arc<FileMemory>,
}

impl ExportCache {
    /// Serves files below `data_dir`.
    pub fn new(data_dir: PathBuf) -> Self {
        Self {
            data_dir,
            files: Mutex::new(HashMap::new()),
            memory: Arc::default(),
        }
    }

    /// Where cached files are registered: what connections need to send them zero-copy.
    pub fn file_memory(&self) -> Arc<FileMemory> {
        self.memory.clone()
    }

    /// The file at `relative` (a path the caller has checked), or `None` if there is none.
    pub fn get(&self, relative: &str) -> io::Result<Option<Arc<ServedFile>>> {
        let path = self.data_dir.join(relative);
        let not_found = |e: &io::Error| e.kind() == io::ErrorKind::NotFound;
        let stamp = match std::fs::metadata(&path) {
            Ok(meta) => Stamp::of(&meta),
            Err(e) if not_found(&e) => {
                self.lock().remove(relative);
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        if let Some((cached, file)) = self.lock().get(relative)
            && *cached == stamp
        {
            return Ok(Some(file.clone()));
        }
        // Stamp, content and the descriptor sendfile reads all come from one open file.
        let mut opened = match File::open(&path) {
            Ok(opened) => opened,
            Err(e) if not_found(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        let stamp = Stamp::of(&opened.metadata()?);
        let mut bytes = Vec::with_capacity(stamp.len as usize);
        opened.read_to_end(&mut bytes)?;
        let digest = Sha256::digest(&bytes);
        let etag = HeaderValue::try_from(format!("\"{}\"", hex::encode(&digest[..16])))
            .expect("hex is a valid header value");
        let file = Arc::new(ServedFile {
            content: FileBytes::new(&self.memory, bytes.into(), opened),
            etag,
        });
        let mut files = self.lock();
        let held: u64 = files.values().map(|(s, _)| s.len).sum();
        if held + stamp.len > CACHE_BYTES {
            files.clear();
        }
        files.insert(relative.to_owned(), (stamp, file.clone()));
        Ok(Some(file))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Stamp, Arc<ServedFile>)>> {
        self.files.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What a `Range` header asks of a file of `len` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeRequest {
    /// The whole file (no range, one the server ignores, or several ranges).
    Full,
    /// Bytes `first..=last`.
    Part {
        /// First byte.
        first: u64,
        /// Last byte, inclusive.
        last: u64,
    },
    /// A range that lies wholly past the end (answered 416).
    Unsatisfiable,
}

/// Reads one `Range` header value (RFC 9110 §14.1.2) for a file of `len` bytes. Anything
/// but a single well-formed byte range means the whole file, as a server may choose.
pub fn parse_range(header: &str, len: u64) -> RangeRequest {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return RangeRequest::Full;
    };
    if spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeRequest::Full;
    };
    let number = |text: &str| -> Option<u64> {
        (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
            .then(|| text.parse().ok())
            .flatten()
    };
    match (first.trim(), last.trim()) {
        ("", suffix) => match number(suffix) {
            Some(0) => RangeRequest::Unsatisfiable,
            Some(_) if len == 0 => RangeRequest::Unsatisfiable,
            Some(n) => RangeRequest::Part {
                first: len.saturating_sub(n),
                last: len - 1,
            },
            None => RangeRequest::Full,
        },
        (first, last) => {
            let Some(first) = number(first) else {
                return RangeRequest::Full;
            };
            let last = if last.is_empty() {
                Some(u64::MAX)
            } else {
                number(last)
            };
            match last {
                None => RangeRequest::Full,
                Some(last) if last < first => RangeRequest::Full,
                Some(_) if first >= len => RangeRequest::Unsatisfiable,
                Some(last) => RangeRequest::Part {
                    first,
                    last: last.min(len - 1),
                },
            }
        }
    }
}

/// Whether an `If-None-Match` value names `etag` (weak comparison, as RFC 9110 asks).
pub fn none_match(header: &str, etag: &str) -> bool {
    header
        .split(',')
        .map(|tag| tag.trim())
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn ranges_as_rfc_9110_reads_them() {
        use RangeRequest::*;
        let part = |first, last| Part { first, last };
        assert_eq!(parse_range("bytes=0-99", 1000), part(0, 99));
        assert_eq!(parse_range("bytes=900-", 1000), part(900, 999));
        assert_eq!(parse_range("bytes=-100", 1000), part(900, 999));
        assert_eq!(parse_range("bytes=-5000", 1000), part(0, 999));
        assert_eq!(parse_range("bytes=990-5000", 1000), part(990, 999));
        assert_eq!(parse_range("bytes=1000-", 1000), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 1000), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,5-6", 1000), Full);
        assert_eq!(parse_range("bytes=5-1", 1000), Full);
        assert_eq!(parse_range("items=0-1", 1000), Full);
        assert_eq!(parse_range("bytes=+1-2", 1000), Full);
        assert_eq!(parse_range("bytes=99999999999999999999-", 1000), Full);
    }

    #[test]
    fn if_none_match_lists_and_weak_tags() {
        assert!(none_match("\"a\"", "\"a\""));
        assert!(none_match("\"b\", W/\"a\"", "\"a\""));
        assert!(none_match("*", "\"a\""));
        assert!(!none_match("\"b\"", "\"a\""));
    }

    #[test]
    fn a_replaced_or_deleted_file_is_not_served_from_memory() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ExportCache::new(dir.path().to_owned());
        assert!(cache.get("a.zip").unwrap().is_none());
        std::fs::write(dir.path().join("a.zip"), b"one").unwrap();
        let first = cache.get("a.zip").unwrap().unwrap();
        assert_eq!(first.content.as_slice(), b"one");
        std::fs::write(dir.path().join("a.tmp"), b"two!").unwrap();
        std::fs::rename(dir.path().join("a.tmp"), dir.path().join("a.zip")).unwrap();
        let second = cache.get("a.zip").unwrap().unwrap();
        assert_eq!(second.content.as_slice(), b"two!");
        assert_ne!(first.etag, second.etag);
        std::fs::remove_file(dir.path().join("a.zip")).unwrap();
        assert!(cache.get("a.zip").unwrap().is_none());
    }

    proptest! {
        #[test]
        fn any_header_gives_a_range_inside_the_file(header in ".{0,40}", len in 0u64..10_000) {
            match parse_range(&header, len) {
                RangeRequest::Part { first, last } => {
                    prop_assert!(first <= last && last < len);
                }
                RangeRequest::Full | RangeRequest::Unsatisfiable => {}
            }
        }

        #[test]
        fn well_formed_ranges_are_honoured(first in 0u64..2000, span in 0u64..2000, len in 1u64..2000) {
            let header = format!("bytes={first}-{}", first + span);
            let expected = if first >= len {
                RangeRequest::Unsatisfiable
            } else {
                RangeRequest::Part { first, last: (first + span).min(len - 1) }
            };
            prop_assert_eq!(parse_range(&header, len), expected);
        }
    }
}
