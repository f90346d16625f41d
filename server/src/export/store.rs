//! Where export files and their indexes live: below the data directory (the default, which
//! nginx or a CDN can serve as it is), or in an S3-compatible bucket that every instance
//! shares (`--export-store s3://bucket?endpoint=…&region=…`), at the same relative paths.
//!
//! Files are created once and never replaced: a batch exported twice gives byte-identical
//! files, so finding a file already there with the same bytes is success, and finding one
//! with other bytes is an [`AppError::ExportConflict`], never an overwrite. Only the indexes
//! are replaced (atomically: readers see the old index or the new one).
//!
//! The batcher runs on a blocking thread and calls the synchronous methods; the public
//! listener awaits the asynchronous ones. A bucket's requests all run on a small runtime
//! of the bucket's own, so its HTTP connections outlive whichever runtime asked first.

use std::fmt;
use std::fs;
use std::future::Future;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Bytes;
use object_store::aws::{AmazonS3, AmazonS3Builder, S3ConditionalPut};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload};
use rand_core::{OsRng, RngCore};

use crate::config::ExportStoreUrl;
use crate::error::{AppError, Result};

/// Which content a file had when it was read: compared on each request, so a replaced
/// index or a deleted file is never served stale from memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Version {
    /// A file in the data directory: inode, size and modification time.
    File {
        /// Inode number.
        inode: u64,
        /// Size in bytes.
        len: u64,
        /// Modification time, in nanoseconds since the epoch.
        modified_ns: i64,
    },
    /// An object in a bucket: its size and the store's ETag.
    Object {
        /// Size in bytes.
        len: u64,
        /// The store's entity tag, if it gives one.
        e_tag: Option<String>,
    },
}

/// A file as [`ExportStore::get`] read it.
#[derive(Debug)]
pub struct Fetched {
    /// Which content it is.
    pub version: Version,
    /// The content.
    pub bytes: Bytes,
    /// The open file it was read from, when it is one in the data directory (so it can be
    /// sent with `sendfile`).
    pub file: Option<fs::File>,
}

/// The export files' store: the data directory or a bucket.
#[derive(Debug)]
pub enum ExportStore {
    /// Below this data directory.
    Dir(PathBuf),
    /// In an S3-compatible bucket.
    Bucket(Bucket),
}

/// An S3-compatible bucket and the runtime its requests run on.
pub struct Bucket {
    name: String,
    store: Arc<AmazonS3>,
    public_url: String,
    runtime: Option<tokio::runtime::Runtime>,
}

/// A file written for its place but not visible there yet: the batcher publishes its files
/// only once it knows it still holds their batch.
#[derive(Debug)]
pub enum StagedFile {
    /// Written and flushed under a temporary name next to where it belongs.
    Dir {
        /// The temporary file.
        temporary: PathBuf,
        /// Where it belongs.
        path: PathBuf,
    },
    /// Held in memory until it is put (a bucket's put is atomic: no temporary needed).
    Bucket {
        /// Its path in the bucket.
        path: String,
        /// Its content.
        bytes: Bytes,
    },
}

/// What follows a temporary file's stem, before a random suffix: `<stem>.tmp-<hex>`.
pub const TEMPORARY: &str = "tmp-";

impl ExportStore {
    /// The store `url` names (a bucket), else the data directory `data_dir`. A bucket's
    /// credentials come from the usual AWS variables (`AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, …); `public_url` is where devices reach
    /// it when downloads are redirected (default: the endpoint's path-style URL).
    pub fn open(
        url: Option<&ExportStoreUrl>,
        public_url: Option<&str>,
        data_dir: &Path,
    ) -> Result<Self> {
        match url {
            None => Ok(Self::Dir(data_dir.to_owned())),
            Some(url) => Bucket::open(url, public_url).map(Self::Bucket),
        }
    }

    /// The data directory the files are in, if they are in one.
    pub fn data_dir(&self) -> Option<&Path> {
        match self {
            Self::Dir(dir) => Some(dir),
            Self::Bucket(_) => None,
        }
    }

    /// Where a device can download `relative` straight from the store, if it is a bucket.
    pub fn public_url(&self, relative: &str) -> Option<String> {
        match self {
            Self::Dir(_) => None,
            Self::Bucket(bucket) => Some(format!("{}/{relative}", bucket.public_url)),
        }
    }

    /// Prepares `bytes` for `relative` without making it visible ([`Self::publish`] does).
    pub fn stage(&self, relative: &str, bytes: Vec<u8>) -> Result<StagedFile> {
        match self {
            Self::Dir(dir) => {
                let path = dir.join(relative);
                if let Some(parent) = path.parent() {
                    fs::create_dir_all(parent).map_err(io_error(parent))?;
                }
                let temporary =
                    path.with_extension(format!("{TEMPORARY}{:016x}", OsRng.next_u64()));
                let mut file = fs::File::create(&temporary).map_err(io_error(&temporary))?;
                file.write_all(&bytes).map_err(io_error(&temporary))?;
                file.sync_all().map_err(io_error(&temporary))?;
                Ok(StagedFile::Dir { temporary, path })
            }
            Self::Bucket(_) => Ok(StagedFile::Bucket {
                path: relative.to_owned(),
                bytes: bytes.into(),
            }),
        }
    }

    /// Makes a staged file visible at its place, create-only: if a file is there already,
    /// the same bytes are success and other bytes an [`AppError::ExportConflict`] (logged
    /// as an error), and the file there stays as it was.
    pub fn publish(&self, staged: StagedFile) -> Result<()> {
        match (self, staged) {
            (_, StagedFile::Dir { temporary, path }) => {
                // A hard link, unlike a rename, never replaces what is there.
                let linked = fs::hard_link(&temporary, &path);
                let outcome = match linked {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        let ours = fs::read(&temporary).map_err(io_error(&temporary))?;
                        let theirs = fs::read(&path).map_err(io_error(&path))?;
                        same_or_conflict(&path.display().to_string(), &ours, &theirs)
                    }
                    Err(source) => Err(io_error(&path)(source)),
                };
                remove_if_present(&temporary)?;
                outcome
            }
            (Self::Bucket(bucket), StagedFile::Bucket { path, bytes }) => {
                bucket.put_create(&path, bytes)
            }
            (Self::Dir(_), StagedFile::Bucket { path, .. }) => Err(AppError::Corrupt(format!(
                "{path} was staged for a bucket but published to the data directory"
            ))),
        }
    }

    /// Drops a staged file unpublished.
    pub fn discard(&self, staged: StagedFile) -> Result<()> {
        match staged {
            StagedFile::Dir { temporary, .. } => remove_if_present(&temporary),
            StagedFile::Bucket { .. } => Ok(()),
        }
    }

    /// Writes `bytes` at `relative` create-only ([`Self::stage`], then [`Self::publish`]).
    pub fn put_create(&self, relative: &str, bytes: Vec<u8>) -> Result<()> {
        self.publish(self.stage(relative, bytes)?)
    }

    /// Writes `bytes` at `relative`, replacing what is there atomically (for the indexes).
    pub fn replace(&self, relative: &str, bytes: Vec<u8>) -> Result<()> {
        match self {
            Self::Dir(dir) => {
                let staged = self.stage(relative, bytes)?;
                let StagedFile::Dir { temporary, .. } = &staged else {
                    unreachable!("a data directory stages files on disk")
                };
                let path = dir.join(relative);
                let renamed = fs::rename(temporary, &path).map_err(io_error(&path));
                if renamed.is_err() {
                    self.discard(staged)?;
                }
                renamed
            }
            Self::Bucket(bucket) => {
                let path = ObjectPath::from(relative);
                bucket.block_on(relative, move |store| async move {
                    store.put(&path, PutPayload::from(bytes)).await.map(drop)
                })
            }
        }
    }

    /// The content of `relative` and its version, or `None` if there is none.
    pub async fn get(&self, relative: &str) -> Result<Option<Fetched>> {
        match self {
            Self::Dir(dir) => read_file(&dir.join(relative)),
            Self::Bucket(bucket) => {
                let path = ObjectPath::from(relative);
                let got = bucket
                    .run(relative, move |store| async move {
                        get_object(&store, &path).await
                    })
                    .await?;
                Ok(got.map(|(version, bytes)| Fetched {
                    version,
                    bytes,
                    file: None,
                }))
            }
        }
    }

    /// The version of `relative`, or `None` if there is none.
    pub async fn head(&self, relative: &str) -> Result<Option<Version>> {
        match self {
            Self::Dir(dir) => {
                let path = dir.join(relative);
                match fs::metadata(&path) {
                    Ok(meta) => Ok(Some(file_version(&meta))),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(source) => Err(io_error(&path)(source)),
                }
            }
            Self::Bucket(bucket) => {
                let path = ObjectPath::from(relative);
                bucket
                    .run(relative, move |store| async move {
                        not_found_as_none(store.head(&path).await.map(|meta| object_version(&meta)))
                    })
                    .await
            }
        }
    }

    /// [`Self::get`] for the batcher's thread: the content only.
    pub fn read(&self, relative: &str) -> Result<Option<Bytes>> {
        let got = match self {
            Self::Dir(dir) => read_file(&dir.join(relative))?.map(|f| (f.version, f.bytes)),
            Self::Bucket(bucket) => {
                let path = ObjectPath::from(relative);
                bucket.block_on(relative, move |store| async move {
                    get_object(&store, &path).await
                })?
            }
        };
        Ok(got.map(|(_, bytes)| bytes))
    }

    /// Deletes `relative`; nothing there is success.
    pub fn delete(&self, relative: &str) -> Result<()> {
        match self {
            Self::Dir(dir) => remove_if_present(&dir.join(relative)),
            Self::Bucket(bucket) => {
                let path = ObjectPath::from(relative);
                bucket
                    .block_on(relative, move |store| async move {
                        not_found_as_none(store.delete(&path).await.map(Some))
                    })
                    .map(drop)
            }
        }
    }
}

impl Bucket {
    fn open(url: &ExportStoreUrl, public_url: Option<&str>) -> Result<Self> {
        let bad = |reason: String| AppError::ExportStoreUrl(reason);
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(url.bucket())
            .with_conditional_put(S3ConditionalPut::ETagMatch);
        let mut endpoint = None;
        for (key, value) in url.options() {
            builder = match key {
                "endpoint" => {
                    endpoint = Some(value.trim_end_matches('/').to_owned());
                    builder
                        .with_endpoint(value)
                        .with_allow_http(value.starts_with("http://"))
                }
                "region" => builder.with_region(value),
                other => {
                    return Err(bad(format!(
                        "unknown option {other:?} (endpoint and region are known)"
                    )));
                }
            };
        }
        let store = builder
            .build()
            .map_err(|e| bad(format!("{}: {e}", url.as_str())))?;
        let public_url = match (public_url, endpoint) {
            (Some(public), _) => public.trim_end_matches('/').to_owned(),
            (None, Some(endpoint)) => format!("{endpoint}/{}", url.bucket()),
            (None, None) => format!("https://{}.s3.amazonaws.com", url.bucket()),
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("kith-export-store")
            .enable_all()
            .build()
            .map_err(|source| AppError::Io {
                path: "the export store's runtime".into(),
                source,
            })?;
        Ok(Self {
            name: url.bucket().to_owned(),
            store: Arc::new(store),
            public_url,
            runtime: Some(runtime),
        })
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        self.runtime
            .as_ref()
            .unwrap_or_else(|| unreachable!("the runtime goes only when the bucket is dropped"))
            .handle()
    }

    /// Runs `request` on the bucket's runtime and awaits it from any runtime.
    async fn run<T, F>(&self, relative: &str, request: impl FnOnce(Arc<AmazonS3>) -> F) -> Result<T>
    where
        F: Future<Output = object_store::Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        let joined = self.handle().spawn(request(self.store.clone())).await;
        self.outcome(relative, joined.map_err(|e| e.to_string()))
    }

    /// Runs `request` on the bucket's runtime and waits for it, from a thread that may be
    /// inside another runtime (tests call the batcher from async code).
    fn block_on<T, F>(&self, relative: &str, request: impl FnOnce(Arc<AmazonS3>) -> F) -> Result<T>
    where
        F: Future<Output = object_store::Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        let (done, outcome) = std::sync::mpsc::sync_channel(1);
        let request = request(self.store.clone());
        self.handle().spawn(async move {
            let _ = done.send(request.await);
        });
        let received = outcome
            .recv()
            .map_err(|_| "the request was dropped".to_owned());
        self.outcome(relative, received)
    }

    fn outcome<T>(
        &self,
        relative: &str,
        outcome: std::result::Result<object_store::Result<T>, String>,
    ) -> Result<T> {
        let path = || format!("s3://{}/{relative}", self.name);
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(source)) => Err(AppError::ExportStore {
                path: path(),
                source,
            }),
            Err(reason) => Err(AppError::Corrupt(format!("{}: {reason}", path()))),
        }
    }

    fn put_create(&self, relative: &str, bytes: Bytes) -> Result<()> {
        let path = ObjectPath::from(relative);
        let ours = bytes.clone();
        let existing = self.block_on(relative, move |store| async move {
            let create = PutOptions::from(PutMode::Create);
            match store.put_opts(&path, PutPayload::from(bytes), create).await {
                Ok(_) => Ok(None),
                Err(object_store::Error::AlreadyExists { .. }) => get_object(&store, &path)
                    .await
                    .map(|got| got.map(|(_, b)| b)),
                Err(e) => Err(e),
            }
        })?;
        match existing {
            None => Ok(()),
            Some(theirs) => {
                same_or_conflict(&format!("s3://{}/{relative}", self.name), &ours, &theirs)
            }
        }
    }
}

impl Drop for Bucket {
    fn drop(&mut self) {
        // A runtime may not be dropped (it would block) inside another runtime, where a
        // test or the server drops its state.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl fmt::Debug for Bucket {
    // Not derived: the client's configuration holds the credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bucket")
            .field("name", &self.name)
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

fn same_or_conflict(path: &str, ours: &[u8], theirs: &[u8]) -> Result<()> {
    if ours == theirs {
        return Ok(());
    }
    metrics::counter!("kith_export_conflicts_total").increment(1);
    tracing::error!(
        path,
        "an export file exists with other content than this server made for it; it was \
         left as it is (do two servers with different settings or keys share the store?)"
    );
    Err(AppError::ExportConflict {
        path: path.to_owned(),
    })
}

async fn get_object(
    store: &AmazonS3,
    path: &ObjectPath,
) -> object_store::Result<Option<(Version, Bytes)>> {
    let got = match store.get(path).await {
        Ok(got) => got,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let version = object_version(&got.meta);
    Ok(Some((version, got.bytes().await?)))
}

fn not_found_as_none<T>(result: object_store::Result<T>) -> object_store::Result<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

fn object_version(meta: &object_store::ObjectMeta) -> Version {
    Version::Object {
        len: meta.size,
        e_tag: meta.e_tag.clone(),
    }
}

fn file_version(meta: &fs::Metadata) -> Version {
    Version::File {
        inode: meta.ino(),
        len: meta.len(),
        modified_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
    }
}

/// The file, the version of what was read and the open file (metadata and content from
/// the open file, so they match even if the file is replaced meanwhile).
fn read_file(path: &Path) -> Result<Option<Fetched>> {
    let mut file = match fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(io_error(path)(source)),
    };
    let meta = file.metadata().map_err(io_error(path))?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.read_to_end(&mut bytes).map_err(io_error(path))?;
    Ok(Some(Fetched {
        version: file_version(&meta),
        bytes: bytes.into(),
        file: Some(file),
    }))
}

pub(crate) fn remove_if_present(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(io_error(path)(source)),
    }
}

pub(crate) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> AppError {
    let path = path.display().to_string();
    move |source| AppError::Io { path, source }
}
