//! The backends every server test runs on: a test written inside [`every_backend!`] runs
//! once per deployment shape — SQLite with the files in the data directory (the embedded
//! default), and PostgreSQL with the files in a bucket (the scale-out one) — its servers
//! (in-process and processes alike) on that backend, each data directory on a database and
//! a bucket of its own. Tests of the data directory's own files run on both databases with
//! the files in the data directory ([`every_database!`]).

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rand::RngCore;

use super::export_store::{ExportBackend, S3_VARIABLE};

/// The environment variable with the URL of the PostgreSQL server scripts/test starts.
pub const POSTGRES_VAR: &str = "KITH_TEST_POSTGRES";

/// Where a test's servers keep their data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// SQLite and export files in the data directory: the default.
    Sqlite,
    /// A fresh database on the PostgreSQL server of `KITH_TEST_POSTGRES` (created with
    /// `CREATE DATABASE` for each data directory), export files in the data directory.
    Postgres,
    /// A fresh database as [`Backend::Postgres`], and the export files in a fresh bucket
    /// on the S3 server of `KITH_TEST_S3` for each data directory (`--export-store`).
    PostgresS3,
}

tokio::task_local! {
    static BACKEND: Backend;
}

/// What each data directory was given, so that a server restarted on the same directory
/// (or a second process on it) finds its data again.
#[derive(Default)]
struct Given {
    databases: HashMap<PathBuf, String>,
    buckets: HashMap<PathBuf, ExportBackend>,
}

static GIVEN: Mutex<Option<Given>> = Mutex::new(None);

fn given<T>(work: impl FnOnce(&mut Given) -> T) -> T {
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    work(given.get_or_insert_with(Given::default))
}

impl Backend {
    /// The backend of the running test (SQLite outside [`every_backend!`]).
    pub fn current() -> Self {
        BACKEND.try_with(|backend| *backend).unwrap_or(Self::Sqlite)
    }

    /// Runs `test` with every server it starts on this backend; returns without running
    /// it (after [`kith_test_support::skip`]) when the backend's servers are not there.
    pub async fn run(self, test: impl Future<Output = ()>) {
        if self != Self::Sqlite && std::env::var(POSTGRES_VAR).is_err() {
            return kith_test_support::skip(format_args!(
                "{POSTGRES_VAR} is not set (scripts/test starts a PostgreSQL server and sets it)"
            ));
        }
        if self == Self::PostgresS3 && std::env::var(S3_VARIABLE).is_err() {
            return kith_test_support::skip(format_args!(
                "{S3_VARIABLE} is not set (scripts/test starts an S3 server and sets it)"
            ));
        }
        BACKEND.scope(self, test).await;
    }

    /// The `--database` URL for a server on `data_dir`, if this backend has one.
    pub fn database_url(self, data_dir: &Path) -> Option<String> {
        match self {
            Self::Sqlite => None,
            Self::Postgres | Self::PostgresS3 => Some(given(|given| {
                given
                    .databases
                    .entry(data_dir.to_owned())
                    .or_insert_with(create_database)
                    .clone()
            })),
        }
    }

    /// Where a server on `data_dir` keeps its export files.
    pub fn export_store(self, data_dir: &Path) -> ExportBackend {
        match self {
            Self::Sqlite | Self::Postgres => ExportBackend::DataDir,
            Self::PostgresS3 => given(|given| {
                given
                    .buckets
                    .entry(data_dir.to_owned())
                    .or_insert_with(|| {
                        on_a_runtime_of_its_own(ExportBackend::fresh_bucket())
                            .expect("KITH_TEST_S3 was checked when the test began")
                    })
                    .clone()
            }),
        }
    }
}

/// Runs `future` to completion on a runtime of its own, on a thread of its own: the caller
/// may be inside a test's runtime, where blocking on another is not allowed.
fn on_a_runtime_of_its_own<T: Send>(future: impl Future<Output = T> + Send) -> T {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(future)
            })
            .join()
            .unwrap()
    })
}

/// Creates an empty database on the test server (`KITH_TEST_POSTGRES`, which must be set);
/// returns its URL.
pub fn create_database() -> String {
    let server = std::env::var(POSTGRES_VAR).expect("KITH_TEST_POSTGRES");
    let name = format!("kith_test_{:016x}", rand::rngs::OsRng.next_u64());
    kith_server::create_database(&server, &name).unwrap()
}

/// Writes each test once per deployment shape: `every_backend! { async fn name() { … } … }`
/// makes a module `name` with the tests `sqlite` (SQLite, files in the data directory) and
/// `postgres_s3` (PostgreSQL, files in a bucket); filter with `name`, or `::postgres_s3`.
#[macro_export]
macro_rules! every_backend {
    ($($(#[$meta:meta])* async fn $name:ident() $body:block)*) => {
        $($crate::on_backends! {
            $(#[$meta])* $name $body [sqlite: Sqlite, postgres_s3: PostgresS3]
        })*
    };
}

/// Writes each test once per database, the export files in the data directory: for tests
/// of what the data directory itself holds. The tests are `sqlite` and `postgres`.
#[macro_export]
macro_rules! every_database {
    ($($(#[$meta:meta])* async fn $name:ident() $body:block)*) => {
        $($crate::on_backends! {
            $(#[$meta])* $name $body [sqlite: Sqlite, postgres: Postgres]
        })*
    };
}

/// A module `name` with one test of `body` per `leg: Backend variant`.
#[macro_export]
macro_rules! on_backends {
    ($(#[$meta:meta])* $name:ident $body:block [$($leg:ident: $backend:ident),*]) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            $(
                #[tokio::test]
                async fn $leg() {
                    $crate::common::Backend::$backend.run(async $body).await
                }
            )*
        }
    };
}
