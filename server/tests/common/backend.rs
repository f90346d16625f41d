//! The storage backends every server test runs on: a test written inside
//! [`every_backend!`] runs once per [`Backend`], its servers (in-process and processes
//! alike) on that backend, each data directory on a database of its own.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rand::RngCore;

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
    // The S3 export store's leg plugs in here: `PostgresS3`, PostgreSQL as above plus
    // `--export-store` on a bucket of the test's own, in `database_args` and
    // `configure` below, and a third test in `every_backend!`.
}

tokio::task_local! {
    static BACKEND: Backend;
}

/// The database each data directory was given, so that a server restarted on the same
/// directory finds its data again.
static DATABASES: Mutex<Option<HashMap<PathBuf, String>>> = Mutex::new(None);

impl Backend {
    /// The backend of the running test (SQLite outside [`every_backend!`]).
    pub fn current() -> Self {
        BACKEND.try_with(|backend| *backend).unwrap_or(Self::Sqlite)
    }

    /// Runs `test` with every server it starts on this backend; returns without running
    /// it (after [`kith_test_support::skip`]) when the backend's server is not there.
    pub async fn run(self, test: impl Future<Output = ()>) {
        if self == Self::Postgres && std::env::var(POSTGRES_VAR).is_err() {
            return kith_test_support::skip(format_args!(
                "{POSTGRES_VAR} is not set (scripts/test starts a PostgreSQL server and sets it)"
            ));
        }
        BACKEND.scope(self, test).await;
    }

    /// The `--database` URL for a server on `data_dir`, if this backend has one.
    pub fn database_url(self, data_dir: &Path) -> Option<String> {
        match self {
            Self::Sqlite => None,
            Self::Postgres => {
                let mut databases = DATABASES.lock().unwrap_or_else(|e| e.into_inner());
                let databases = databases.get_or_insert_with(HashMap::new);
                Some(
                    databases
                        .entry(data_dir.to_owned())
                        .or_insert_with(create_database)
                        .clone(),
                )
            }
        }
    }
}

/// Creates an empty database on the test server (`KITH_TEST_POSTGRES`, which must be set);
/// returns its URL.
pub fn create_database() -> String {
    let server = std::env::var(POSTGRES_VAR).expect("KITH_TEST_POSTGRES");
    let name = format!("kith_test_{:016x}", rand::rngs::OsRng.next_u64());
    // On a runtime of its own: the caller may be inside a test's runtime, where blocking
    // on another is not allowed.
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let (admin, connection) = tokio_postgres::connect(&server, tokio_postgres::NoTls)
                    .await
                    .expect("the test PostgreSQL server");
                let connection = tokio::spawn(connection);
                admin
                    .batch_execute(&format!("CREATE DATABASE {name}"))
                    .await
                    .unwrap();
                drop(admin);
                connection.await.unwrap().unwrap();
            });
        });
    });
    // The same server, database `name`.
    match server.split_once('?') {
        Some((base, query)) => format!("{}/{name}?{query}", base.rsplit_once('/').unwrap().0),
        None => format!("{}/{name}", server.rsplit_once('/').unwrap().0),
    }
}

/// Writes each test once per backend: `every_backend! { async fn name() { … } … }` makes a
/// module `name` with the tests `sqlite` and `postgres` (filter with `name`, or
/// `name::postgres`). Tests that read the SQLite file itself stay outside.
#[macro_export]
macro_rules! every_backend {
    ($($(#[$meta:meta])* async fn $name:ident() $body:block)*) => {
        $(
            $(#[$meta])*
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                #[tokio::test]
                async fn sqlite() {
                    $crate::common::Backend::Sqlite.run(async $body).await
                }

                #[tokio::test]
                async fn postgres() {
                    $crate::common::Backend::Postgres.run(async $body).await
                }
            }
        )*
    };
}
