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

use kith_launch::test_services;

use super::export_store::ExportBackend;

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
        let missing = match self {
            Self::Sqlite => None,
            Self::Postgres => test_services::postgres_server().err(),
            Self::PostgresS3 => test_services::postgres_server()
                .and(test_services::s3_server())
                .err(),
        };
        if let Some(missing) = missing {
            return kith_test_support::skip(missing);
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
                        ExportBackend::fresh_bucket()
                            .expect("KITH_TEST_S3 was checked when the test began")
                    })
                    .clone()
            }),
        }
    }
}

/// Creates an empty database on the test server (`KITH_TEST_POSTGRES`, which must be set);
/// returns its URL.
pub fn create_database() -> String {
    let server = test_services::postgres_server().unwrap_or_else(|missing| panic!("{missing}"));
    let name = test_services::fresh_name("kith_test_").unwrap();
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
