//! What distribution needs below HTTP: export files read once from the export store and
//! kept in memory with their ETag, and the `Range` header's meaning.
//!
//! Files are served from the store itself (what nginx or the bucket would serve), so a file
//! dropped from the index stays downloadable until retention deletes it. The cache checks
//! each file's version (a file's inode, size and modification time; an object's size and
//! ETag) on every request, so a replaced or deleted file is never served stale. A cached
//! file of the data directory stays registered with its open file in the cache's
//! [`FileMemory`], so connections send it with `sendfile`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use super::store::{ExportStore, Fetched, Version};
use crate::error::Result;
use crate::zero_copy::{FileMemory, Registration};

/// Bytes of files kept in memory at most; past it the cache starts over.
const CACHE_BYTES: usize = 512 << 20;

/// A file ready to serve.
#[derive(Debug)]
pub struct ServedFile {
    /// Its content.
    pub bytes: axum::body::Bytes,
    /// Strong ETag (quoted): the start of the content's SHA-256.
    pub etag: String,
    /// Keeps `bytes` registered with the file they were read from, while cached.
    _sendfile: Option<Registration>,
}

/// Export files by relative path, read on first request.
#[derive(Debug)]
pub struct ExportCache {
    store: Arc<ExportStore>,
    files: Mutex<HashMap<String, (Version, Arc<ServedFile>)>>,
    memory: Arc<FileMemory>,
}

impl ExportCache {
    /// Serves the files of `store`.
    pub fn new(store: Arc<ExportStore>) -> Self {
        Self {
            store,
            files: Mutex::new(HashMap::new()),
            memory: Arc::default(),
        }
    }

    /// Where cached files are registered: what connections need to send them zero-copy.
    pub fn file_memory(&self) -> Arc<FileMemory> {
        self.memory.clone()
    }

    /// The store the files come from.
    pub fn store(&self) -> &Arc<ExportStore> {
        &self.store
    }

    /// The file at `relative` (a path the caller has checked), or `None` if there is none.
    pub async fn get(&self, relative: &str) -> Result<Option<Arc<ServedFile>>> {
        let Some(version) = self.store.head(relative).await? else {
            self.lock().remove(relative);
            return Ok(None);
        };
        if let Some((cached, file)) = self.lock().get(relative)
            && *cached == version
        {
            return Ok(Some(file.clone()));
        }
        let Some(Fetched {
            version,
            bytes,
            file,
        }) = self.store.get(relative).await?
        else {
            return Ok(None);
        };
        let digest = Sha256::digest(&bytes);
        let file = Arc::new(ServedFile {
            etag: format!("\"{}\"", hex::encode(&digest[..16])),
            _sendfile: file.and_then(|file| self.memory.register(&bytes, file)),
            bytes,
        });
        let mut files = self.lock();
        let held: usize = files.values().map(|(_, f)| f.bytes.len()).sum();
        if held + file.bytes.len() > CACHE_BYTES {
            files.clear();
        }
        files.insert(relative.to_owned(), (version, file.clone()));
        Ok(Some(file))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Version, Arc<ServedFile>)>> {
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

    #[tokio::test]
    async fn a_replaced_or_deleted_file_is_not_served_from_memory() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ExportCache::new(Arc::new(ExportStore::Dir(dir.path().to_owned())));
        assert!(cache.get("a.zip").await.unwrap().is_none());
        std::fs::write(dir.path().join("a.zip"), b"one").unwrap();
        let first = cache.get("a.zip").await.unwrap().unwrap();
        assert_eq!(&first.bytes[..], b"one");
        std::fs::write(dir.path().join("a.tmp"), b"two!").unwrap();
        std::fs::rename(dir.path().join("a.tmp"), dir.path().join("a.zip")).unwrap();
        let second = cache.get("a.zip").await.unwrap().unwrap();
        assert_eq!(&second.bytes[..], b"two!");
        assert_ne!(first.etag, second.etag);
        std::fs::remove_file(dir.path().join("a.zip")).unwrap();
        assert!(cache.get("a.zip").await.unwrap().is_none());
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
