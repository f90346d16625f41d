//! Storage on a shared PostgreSQL database (`--database postgres://…`), for several
//! servers at once. The same guarantees as [`crate::sqlite`], kept by PostgreSQL:
//! * a code is redeemed by deleting its row; a second server's delete waits for the first
//!   one's commit and then deletes nothing, so exactly one transaction redeems it;
//! * the writer's group commit is one PostgreSQL transaction, committed with
//!   `synchronous_commit` on (the server's default), so an acknowledged publish is on disk;
//! * every change to the export batches (cut, lease, padding, completion, the indexes)
//!   takes one transaction-scoped advisory lock, so batchers on every server see the batch
//!   table change one step at a time, as SQLite's single write lock makes them.
//!
//! The traits are synchronous; the driver is asynchronous. A private Tokio runtime drives
//! the connections, and each call waits for its statement on it (see [`wait`]).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use kith_core::DiagnosisKey;
use kith_core::checkin::{LocationIdHash, ProtectedReport};
use rand_core::RngCore;
use tokio::runtime::{Handle, Runtime};
use tokio_postgres::{GenericClient, NoTls, Row};

use crate::calendar::Day;
use crate::clock::UnixSeconds;
use crate::codes::{CodeHash, CodeOrder, Diagnosis, Onset, OnsetKind};
use crate::error::{AppError, Result};
use crate::export::files::EXPORT_DIR;
use crate::export::{batches, trace_warnings};
use crate::guessing::BudgetState;
use crate::storage::{
    AccountStore, AddedKey, BatchStore, CaseWorkerRow, CodeRow, CodeState, DayCounts, Expired,
    FileRecord, Lease, Mixed, PrivateKey, PrivateKeyPem, SigningKeyRow, Storage, Venue, VenueStore,
    WriteTx, WriterStore, location_hash,
};
use crate::upload::StoredKey;
use crate::window::{Window, Windowing};
use staging::{MIX_DELAY, StagedKey, StagedReport};

mod staging;

/// Migrations in order; the schema version is their count. Each runs in its own
/// transaction, under the migration lock, so two servers starting at once migrate once.
const MIGRATIONS: &[&str] = &[
    // 1: what SQLite's schema holds at its version 5, but venues (added in 3).
    // Integers are BIGINT (Unix seconds); ids of keys and reports are random, as in SQLite,
    // so a table's order is not arrival order.
    "CREATE TABLE verification_codes (
        code_hash    BYTEA PRIMARY KEY CHECK (length(code_hash) = 32),
        report_type  INTEGER NOT NULL,
        onset_day    INTEGER,
        onset_kind   TEXT CHECK (onset_kind IN ('symptom', 'test')),
        expires_at   BIGINT NOT NULL
    );
    CREATE INDEX verification_codes_expiry ON verification_codes (expires_at);
    CREATE TABLE redeemed_codes (
        code_hash    BYTEA PRIMARY KEY CHECK (length(code_hash) = 32),
        expires_hour BIGINT NOT NULL
    );
    CREATE TABLE diagnosis_keys (
        id                BIGINT PRIMARY KEY,
        key_data          BYTEA NOT NULL CHECK (length(key_data) = 16),
        rolling_start     BIGINT NOT NULL,
        rolling_period    BIGINT NOT NULL,
        transmission_risk SMALLINT,
        report_type       INTEGER NOT NULL,
        days_since_onset  INTEGER,
        received_at       BIGINT NOT NULL,
        embargo_until     BIGINT NOT NULL
    );
    CREATE INDEX diagnosis_keys_release ON diagnosis_keys (embargo_until);
    CREATE TABLE sealed_answers (
        id           BYTEA PRIMARY KEY CHECK (length(id) = 32),
        answer       BYTEA NOT NULL,
        expires_hour BIGINT NOT NULL
    );
    CREATE INDEX sealed_answers_expiry ON sealed_answers (expires_hour);
    CREATE TABLE guess_budget (
        id         INTEGER PRIMARY KEY CHECK (id = 1),
        tokens     DOUBLE PRECISION NOT NULL,
        updated_at BIGINT NOT NULL
    );
    CREATE TABLE export_batches (
        start_time    BIGINT PRIMARY KEY,
        end_time      BIGINT NOT NULL CHECK (end_time > start_time),
        status        TEXT NOT NULL CHECK (status IN ('open', 'pending', 'complete')),
        lease_id      BYTEA,
        lease_expires BIGINT
    );
    CREATE TABLE export_padding (
        seq               BIGSERIAL PRIMARY KEY,
        batch_start       BIGINT NOT NULL REFERENCES export_batches (start_time),
        key_data          BYTEA NOT NULL CHECK (length(key_data) = 16),
        rolling_start     BIGINT NOT NULL,
        rolling_period    BIGINT NOT NULL,
        transmission_risk SMALLINT,
        report_type       INTEGER NOT NULL,
        days_since_onset  INTEGER
    );
    CREATE INDEX export_padding_batch ON export_padding (batch_start);
    CREATE TABLE export_files (
        name         TEXT PRIMARY KEY,
        batch_start  BIGINT NOT NULL REFERENCES export_batches (start_time),
        batch_end    BIGINT NOT NULL,
        real_keys    BIGINT NOT NULL,
        padding_keys BIGINT NOT NULL,
        bytes        BIGINT NOT NULL,
        sha256       BYTEA NOT NULL CHECK (length(sha256) = 32),
        created_at   BIGINT NOT NULL,
        expired_at   BIGINT
    );
    CREATE TABLE signing_keys (
        key_version TEXT PRIMARY KEY,
        key_id      TEXT NOT NULL,
        file        TEXT NOT NULL,
        created_at  BIGINT NOT NULL,
        not_after   BIGINT
    );
    CREATE TABLE case_workers (
        name          TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL,
        failed_logins INTEGER NOT NULL DEFAULT 0,
        locked_until  BIGINT NOT NULL DEFAULT 0
    );
    CREATE TABLE audit_log (
        at          BIGINT NOT NULL,
        case_worker TEXT NOT NULL,
        action      TEXT NOT NULL,
        code_hash   BYTEA
    );
    CREATE TABLE check_in_reports (
        id               BIGINT PRIMARY KEY,
        location_id_hash BYTEA NOT NULL CHECK (length(location_id_hash) = 32),
        report           BYTEA NOT NULL,
        released_at      BIGINT NOT NULL
    );
    CREATE INDEX check_in_reports_release ON check_in_reports (released_at);
    CREATE TABLE trace_warning_padding (
        seq         BIGSERIAL PRIMARY KEY,
        batch_start BIGINT NOT NULL REFERENCES export_batches (start_time),
        report      BYTEA NOT NULL
    );
    CREATE INDEX trace_warning_padding_batch ON trace_warning_padding (batch_start);",
    // 2: the dashboard's daily figures (SQLite's version 6), counted when they happen.
    "CREATE TABLE daily_counts (
        day            BIGINT PRIMARY KEY,
        codes_issued   BIGINT NOT NULL DEFAULT 0,
        codes_redeemed BIGINT NOT NULL DEFAULT 0,
        keys_published BIGINT NOT NULL DEFAULT 0,
        export_files   BIGINT NOT NULL DEFAULT 0,
        export_bytes   BIGINT NOT NULL DEFAULT 0
    );",
    // 3: rotated signing keys keep their private key here (PEM), so that every server
    // signs with a key any of them added (SQLite's version 7); the venues, which every
    // server's portal registers and shows (SQLite's since version 5).
    "ALTER TABLE signing_keys ADD COLUMN private_key TEXT;
    CREATE TABLE venues (
        location_id_hash BYTEA PRIMARY KEY CHECK (length(location_id_hash) = 32),
        qr_text          TEXT NOT NULL,
        description      TEXT NOT NULL,
        address          TEXT NOT NULL,
        registered_at    BIGINT NOT NULL,
        registered_by    TEXT NOT NULL
    );",
    // 4: PostgreSQL keeps a row where it was written and stamps it with the transaction that
    // wrote it (`xmin`), so a key table written by the writer would show which keys (and
    // check-ins) came in one upload. The writer stages them instead; the mixer moves each
    // truncate window's, once it ended, into the tables in one transaction, in random
    // order (see [`BatchStore::mix_staged`]). The rows already stored were written in
    // arrival order: rewritten once in the order of their random ids.
    "CREATE TABLE staged_keys (
        key_data          BYTEA NOT NULL CHECK (length(key_data) = 16),
        rolling_start     BIGINT NOT NULL,
        rolling_period    BIGINT NOT NULL,
        transmission_risk SMALLINT,
        report_type       INTEGER NOT NULL,
        days_since_onset  INTEGER,
        received_at       BIGINT NOT NULL,
        embargo_until     BIGINT NOT NULL,
        mix_at            BIGINT NOT NULL
    );
    CREATE TABLE staged_check_ins (
        location_id_hash BYTEA NOT NULL CHECK (length(location_id_hash) = 32),
        report           BYTEA NOT NULL,
        released_at      BIGINT NOT NULL
    );
    CLUSTER diagnosis_keys USING diagnosis_keys_pkey;
    CLUSTER check_in_reports USING check_in_reports_pkey;",
];

/// The schema version this build writes.
pub const VERSION: u32 = MIGRATIONS.len() as u32;

/// Advisory lock keys (arbitrary, fixed): migrations, and every change to export batches.
const MIGRATION_LOCK: i64 = 0x6b69_7468_0001;
const BATCH_LOCK: i64 = 0x6b69_7468_0002;

const HOUR: u64 = 3600;

/// How long getting a connection may take before the call fails as unavailable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A PostgreSQL database, shared by every server that names it.
#[derive(Debug)]
pub struct PostgresStorage {
    pool: Pool,
    handle: Handle,
    runtime: Arc<OwnedRuntime>,
}

/// The runtime driving the connections, kept alive by the storage and every client it
/// gave out (a client outlives its storage in an operator command), shut down with the
/// last of them.
#[derive(Debug)]
pub(crate) struct OwnedRuntime(Option<Runtime>);

impl OwnedRuntime {
    /// A runtime of one worker thread for PostgreSQL connections.
    pub(crate) fn new() -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("kith-postgres")
            .enable_all()
            .build()
            .map_err(|source| AppError::Io {
                path: "PostgreSQL runtime".into(),
                source,
            })?;
        Ok(Self(Some(runtime)))
    }

    /// Its handle.
    pub(crate) fn handle(&self) -> &Handle {
        self.0
            .as_ref()
            .expect("shut down only when dropped")
            .handle()
    }
}

impl Drop for OwnedRuntime {
    fn drop(&mut self) {
        // Without blocking: the last holder may be dropped inside an async context (the
        // server's shutdown, `main`), where a runtime may not block.
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

impl PostgresStorage {
    /// Connects to the database at `url` (`postgres://user@host/db`, or with
    /// `?host=/socket/dir`), and brings its schema up to [`VERSION`].
    pub fn open(url: &str) -> Result<Self> {
        let config = url
            .parse()
            .map_err(|e: tokio_postgres::Error| AppError::DatabaseUrl(e.to_string()))?;
        Self::open_config(config)
    }

    fn open_config(config: tokio_postgres::Config) -> Result<Self> {
        let runtime = OwnedRuntime::new()?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        // Bounded waits, so that while the database is away requests fail in seconds
        // (503) instead of hanging.
        let pool = Pool::builder(manager)
            .max_size(16)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| AppError::DatabaseUrl(e.to_string()))?;
        let storage = Self {
            pool,
            handle: runtime.handle().clone(),
            runtime: Arc::new(runtime),
        };
        storage.migrate()?;
        Ok(storage)
    }

    /// A client that takes its connection from the pool when it is first used.
    fn client(&self) -> Result<Client> {
        Ok(Client {
            pool: self.pool.clone(),
            client: None,
            handle: self.handle.clone(),
            _runtime: Arc::clone(&self.runtime),
        })
    }

    fn migrate(&self) -> Result<()> {
        let mut db = self.client()?;
        db.run(|client| async move {
            let tx = client.transaction().await?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
                .await?;
            tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (
                     version    INTEGER PRIMARY KEY,
                     applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
            )
            .await?;
            let found: i32 = tx
                .query_one(
                    "SELECT coalesce(max(version), 0) FROM schema_migrations",
                    &[],
                )
                .await?
                .get(0);
            let found = found as u32;
            if found > VERSION {
                return Err(AppError::SchemaTooNew {
                    found,
                    supported: VERSION,
                });
            }
            for (index, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
                let version = index as i32 + 1;
                tx.batch_execute(sql).await?;
                tx.execute(
                    "INSERT INTO schema_migrations (version) VALUES ($1)",
                    &[&version],
                )
                .await?;
                tracing::info!(version, "PostgreSQL schema migrated");
            }
            tx.commit().await?;
            Ok(())
        })
    }
}

/// Creates an empty database `name` (letters, digits and `_`) on the PostgreSQL server at
/// `server_url`, connecting to the database that URL names; returns the new database's URL
/// (the same server, user and options). For tests and benchmarks that want a fresh one.
pub fn create_database(server_url: &str, name: &str) -> Result<String> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(AppError::DatabaseUrl(format!(
            "{name:?} is not a plain database name (letters, digits and _)"
        )));
    }
    let config: tokio_postgres::Config = server_url
        .parse()
        .map_err(|e: tokio_postgres::Error| AppError::DatabaseUrl(e.to_string()))?;
    let runtime = OwnedRuntime::new()?;
    wait(runtime.handle(), async {
        let (client, connection) = config.connect(NoTls).await?;
        let connection = tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await?;
        drop(client);
        let _ = connection.await;
        Ok::<_, AppError>(())
    })?;
    // The same URL with the database part (the path) replaced.
    let (base, query) = server_url
        .split_once('?')
        .map_or((server_url, None), |(base, query)| (base, Some(query)));
    let (authority, _) = base
        .strip_prefix("postgres://")
        .or_else(|| base.strip_prefix("postgresql://"))
        .map(|rest| rest.split_once('/').unwrap_or((rest, "")))
        .ok_or_else(|| AppError::DatabaseUrl("expected a postgres:// URL".into()))?;
    Ok(match query {
        Some(query) => format!("postgres://{authority}/{name}?{query}"),
        None => format!("postgres://{authority}/{name}"),
    })
}

/// Waits for `future` on the storage's runtime. From a thread outside any runtime (the
/// writer's) it blocks right there; from inside one (a handler, `spawn_blocking`, a test),
/// where blocking on another runtime is not allowed, on a helper thread.
pub(crate) fn wait<F>(handle: &Handle, future: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    if Handle::try_current().is_err() {
        return handle.block_on(future);
    }
    std::thread::scope(|scope| {
        scope
            .spawn(|| handle.block_on(future))
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// A pooled connection, and the runtime that drives it. A connection that was lost
/// (PostgreSQL restarted, the network failed) is replaced by a fresh one from the pool
/// at the next call, so the writer and the batchers, which keep their `Client` for the
/// server's life, recover by themselves once the database is back; the calls in between
/// fail with errors that [`AppError::is_database_unavailable`] recognises (503).
struct Client {
    pool: Pool,
    client: Option<deadpool_postgres::Object>,
    handle: Handle,
    _runtime: Arc<OwnedRuntime>,
}

impl Client {
    /// The connection, a new one if there is none or it was lost.
    fn connection(&mut self) -> Result<&mut tokio_postgres::Client> {
        if self.client.as_ref().is_none_or(|c| c.is_closed()) {
            // Dropping a closed connection returns it to the pool, which discards it.
            self.client = None;
            self.client = Some(wait(&self.handle, self.pool.get())?);
        }
        let client: &mut tokio_postgres::Client = self.client.as_mut().expect("connected above");
        Ok(client)
    }

    /// Runs `work` on the connection and waits for it.
    fn run<'a, T, F, Fut>(&'a mut self, work: F) -> Result<T>
    where
        F: FnOnce(&'a mut tokio_postgres::Client) -> Fut,
        Fut: Future<Output = Result<T>> + Send + 'a,
        T: Send,
    {
        let handle = self.handle.clone();
        let future = work(self.connection()?);
        wait(&handle, future)
    }

    /// Stores a leased batch's `padding` unless some is stored already: `stored` reads the
    /// batch's, `insert` stores one item. Returns the batch's padding (ours, or the one
    /// stored first), or `None` when the lease was lost.
    fn store_once<T>(
        &mut self,
        lease: &Lease,
        padding: Vec<T>,
        stored: impl Fn(&Tx<'_>) -> Result<Vec<T>>,
        insert: impl Fn(&Tx<'_>, &T) -> Result<u64>,
    ) -> Result<Option<Vec<T>>> {
        let tx = self.begin(true)?;
        if !tx.wait(holds(&tx.tx, lease))? {
            return Ok(None);
        }
        let already = stored(&tx)?;
        if !already.is_empty() {
            return Ok(Some(already));
        }
        for item in &padding {
            insert(&tx, item)?;
        }
        tx.commit()?;
        Ok(Some(padding))
    }

    /// Begins a transaction; with `lock`, one that holds the batch lock.
    fn begin(&mut self, lock: bool) -> Result<Tx<'_>> {
        self.connection()?;
        // The pool's wrapper, whose transactions prepare statements once per connection.
        let client: &mut deadpool_postgres::Object = self.client.as_mut().expect("connected above");
        let tx = Tx {
            tx: wait(&self.handle, client.transaction())?,
            handle: &self.handle,
        };
        if lock {
            tx.run(
                tx.tx
                    .execute("SELECT pg_advisory_xact_lock($1)", &[&BATCH_LOCK]),
            )?;
        }
        Ok(tx)
    }
}

/// An open transaction, and the runtime that drives it.
struct Tx<'a> {
    tx: deadpool_postgres::Transaction<'a>,
    handle: &'a Handle,
}

impl Tx<'_> {
    /// `sql` prepared on this connection, the first time it is used there: each statement
    /// after that is one round trip instead of two (parse, then execute).
    fn prepared(&self, sql: &str) -> Result<tokio_postgres::Statement> {
        self.run(self.tx.prepare_cached(sql))
    }

    /// Waits for one statement.
    fn run<T: Send>(
        &self,
        statement: impl Future<Output = std::result::Result<T, tokio_postgres::Error>> + Send,
    ) -> Result<T> {
        Ok(wait(self.handle, statement)?)
    }

    /// Waits for several statements.
    fn wait<T: Send>(&self, work: impl Future<Output = Result<T>> + Send) -> Result<T> {
        wait(self.handle, work)
    }

    fn commit(self) -> Result<()> {
        Ok(wait(self.handle, self.tx.commit())?)
    }
}

impl Storage for PostgresStorage {
    fn writer(&self) -> Result<Box<dyn WriterStore>> {
        Ok(Box::new(self.client()?))
    }

    fn batcher(&self) -> Result<Box<dyn BatchStore>> {
        Ok(Box::new(self.client()?))
    }

    fn accounts(&self) -> Result<Box<dyn AccountStore>> {
        Ok(Box::new(self.client()?))
    }

    fn venues(&self) -> Result<Box<dyn VenueStore>> {
        Ok(Box::new(self.client()?))
    }
}

/// Adds `counts` to those of `day`, in `tx`.
async fn add_day_counts(
    tx: &tokio_postgres::Transaction<'_>,
    day: Day,
    counts: &DayCounts,
) -> Result<()> {
    tx.execute(
        "INSERT INTO daily_counts (day, codes_issued, codes_redeemed, keys_published,
             export_files, export_bytes)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (day) DO UPDATE SET
             codes_issued = daily_counts.codes_issued + excluded.codes_issued,
             codes_redeemed = daily_counts.codes_redeemed + excluded.codes_redeemed,
             keys_published = daily_counts.keys_published + excluded.keys_published,
             export_files = daily_counts.export_files + excluded.export_files,
             export_bytes = daily_counts.export_bytes + excluded.export_bytes",
        &[
            &i64::from(day.get()),
            &int(counts.codes_issued),
            &int(counts.codes_redeemed),
            &int(counts.keys_published),
            &int(counts.export_files),
            &int(counts.export_bytes),
        ],
    )
    .await?;
    Ok(())
}

fn int(value: u64) -> i64 {
    value as i64
}

fn seconds(row: &Row, column: usize) -> UnixSeconds {
    UnixSeconds::new(row.get::<_, i64>(column) as u64)
}

impl WriterStore for Client {
    fn load_budget(&mut self) -> Result<Option<BudgetState>> {
        self.run(|client| async move {
            let row = client
                .query_opt(
                    "SELECT tokens, updated_at FROM guess_budget WHERE id = 1",
                    &[],
                )
                .await?;
            Ok(row.map(|row| BudgetState {
                tokens: row.get(0),
                at: seconds(&row, 1),
            }))
        })
    }

    fn transaction(&mut self, work: &mut dyn FnMut(&mut dyn WriteTx) -> Result<()>) -> Result<()> {
        let mut tx = self.begin(false)?;
        work(&mut tx)?;
        tx.commit()
    }
}

impl WriteTx for Tx<'_> {
    fn find_code(&mut self, hash: &CodeHash) -> Result<CodeState> {
        let hash = hash.as_bytes().as_slice();
        let row = self.run(self.tx.query_opt(
            &self.prepared(
                "SELECT code_hash, report_type, onset_day, onset_kind, expires_at
             FROM verification_codes WHERE code_hash = $1",
            )?,
            &[&hash],
        ))?;
        let Some(row) = row else {
            let redeemed = self.run(self.tx.query_opt(
                &self.prepared("SELECT 1 FROM redeemed_codes WHERE code_hash = $1")?,
                &[&hash],
            ))?;
            return Ok(if redeemed.is_some() {
                CodeState::Redeemed
            } else {
                CodeState::Unknown
            });
        };
        let corrupt =
            |what: &str| AppError::Corrupt(format!("verification code row has an invalid {what}"));
        let diagnosis = kith_core::ReportType::try_from(row.get::<_, i32>(1))
            .ok()
            .and_then(Diagnosis::from_report_type)
            .ok_or_else(|| corrupt("report type"))?;
        let onset = match (
            row.get::<_, Option<i32>>(2),
            row.get::<_, Option<String>>(3),
        ) {
            (Some(day), Some(kind)) => Some(Onset {
                day: Day::new(day as u32),
                kind: OnsetKind::from_name(&kind).ok_or_else(|| corrupt("onset kind"))?,
            }),
            _ => None,
        };
        Ok(CodeState::Unused(CodeRow {
            hash: CodeHash::from_slice(row.get(0)).ok_or_else(|| corrupt("hash"))?,
            diagnosis,
            onset,
            expires_at: seconds(&row, 4),
        }))
    }

    fn redeem_code(&mut self, code: &CodeRow) -> Result<bool> {
        let hash = code.hash.as_bytes().as_slice();
        // Another server's delete of the same row makes this one wait for its commit,
        // then delete nothing.
        let deleted = self.run(self.tx.execute(
            &self.prepared("DELETE FROM verification_codes WHERE code_hash = $1")?,
            &[&hash],
        ))?;
        if deleted == 0 {
            return Ok(false);
        }
        let expires_hour = int(code.expires_at.get().div_ceil(HOUR));
        self.run(
            self.tx.execute(
                &self.prepared(
                    "INSERT INTO redeemed_codes (code_hash, expires_hour) VALUES ($1, $2)",
                )?,
                &[&hash, &expires_hour],
            ),
        )?;
        Ok(true)
    }

    fn insert_code(&mut self, hash: &CodeHash, order: &CodeOrder) -> Result<bool> {
        let hash = hash.as_bytes().as_slice();
        let redeemed = self.run(self.tx.query_opt(
            &self.prepared("SELECT 1 FROM redeemed_codes WHERE code_hash = $1")?,
            &[&hash],
        ))?;
        if redeemed.is_some() {
            return Ok(false);
        }
        let inserted = self.run(self.tx.execute(
            &self.prepared(
                "INSERT INTO verification_codes
               (code_hash, report_type, onset_day, onset_kind, expires_at)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            )?,
            &[
                &hash,
                &(order.diagnosis.report_type() as i32),
                &order.onset.map(|o| o.day.get() as i32),
                &order.onset.map(|o| o.kind.name()),
                &int(order.expires_at.get()),
            ],
        ))?;
        Ok(inserted == 1)
    }

    fn insert_keys(
        &mut self,
        keys: &[StoredKey],
        now: UnixSeconds,
        truncate: u64,
        _rng: &mut dyn RngCore,
    ) -> Result<()> {
        // Staged (see `staging`), in one statement for all the keys: a round trip each was
        // most of a publish's time on PostgreSQL. Their ids are drawn when they are mixed.
        let received_at = int(now.get() / truncate * truncate);
        let keys: Vec<StagedKey> = keys
            .iter()
            .map(|k| StagedKey {
                key_data: k.key.tek.expose_secret().to_vec(),
                rolling_start: i64::from(k.key.tek.validity().start().get()),
                rolling_period: i64::from(k.key.tek.validity().period().get()),
                transmission_risk: k.key.transmission_risk_level.map(i16::from),
                report_type: k.key.report_type as i32,
                days_since_onset: k.key.days_since_onset.map(|d| d.get()),
                received_at,
                embargo_until: int(k.embargo_until.get().div_ceil(truncate) * truncate),
            })
            .collect();
        self.wait(staging::stage(&self.tx, &keys, &[&int(truncate)]))
    }

    fn insert_check_ins(
        &mut self,
        reports: &[ProtectedReport],
        now: UnixSeconds,
        truncate: u64,
        _rng: &mut dyn RngCore,
    ) -> Result<()> {
        let released_at = int(now.get().div_ceil(truncate) * truncate);
        let reports: Vec<StagedReport> = reports
            .iter()
            .map(|report| StagedReport {
                location_id_hash: report.location_id_hash().to_bytes().to_vec(),
                report: report.to_bytes(),
                released_at,
            })
            .collect();
        self.wait(staging::stage(&self.tx, &reports, &[]))
    }

    fn insert_codes(
        &mut self,
        hashes: &[CodeHash],
        order: &CodeOrder,
        who: &str,
        now: UnixSeconds,
    ) -> Result<Vec<bool>> {
        let given: Vec<&[u8]> = hashes.iter().map(|h| h.as_bytes().as_slice()).collect();
        let rows = self.run(self.tx.query(
            &self.prepared(
                "WITH fresh AS (
                     SELECT h FROM unnest($1::bytea[]) AS f(h)
                     WHERE NOT EXISTS (SELECT 1 FROM redeemed_codes WHERE code_hash = f.h)),
                 stored AS (
                     INSERT INTO verification_codes
                         (code_hash, report_type, onset_day, onset_kind, expires_at)
                     SELECT h, $2::int, $3::int, $4::text, $5::bigint FROM fresh
                     ON CONFLICT DO NOTHING RETURNING code_hash),
                 audited AS (
                     INSERT INTO audit_log (at, case_worker, action, code_hash)
                     SELECT $6::bigint, $7::text, 'issue_code', code_hash FROM stored)
                 SELECT code_hash FROM stored",
            )?,
            &[
                &given,
                &(order.diagnosis.report_type() as i32),
                &order.onset.map(|o| o.day.get() as i32),
                &order.onset.map(|o| o.kind.name()),
                &int(order.expires_at.get()),
                &int(now.get()),
                &who,
            ],
        ))?;
        // A hash given twice was stored once: only its first place counts.
        let mut stored: std::collections::HashSet<Vec<u8>> =
            rows.iter().map(|row| row.get(0)).collect();
        Ok(given.iter().map(|hash| stored.remove(*hash)).collect())
    }

    fn audit_issue(&mut self, who: &str, hash: &CodeHash, now: UnixSeconds) -> Result<()> {
        self.run(self.tx.execute(
            &self.prepared(
                "INSERT INTO audit_log (at, case_worker, action, code_hash)
             VALUES ($1, $2, 'issue_code', $3)",
            )?,
            &[&int(now.get()), &who, &hash.as_bytes().as_slice()],
        ))?;
        Ok(())
    }

    fn find_sealed_answer(&mut self, id: &[u8; 32]) -> Result<Option<Vec<u8>>> {
        let row = self.run(self.tx.query_opt(
            &self.prepared("SELECT answer FROM sealed_answers WHERE id = $1")?,
            &[&id.as_slice()],
        ))?;
        Ok(row.map(|row| row.get(0)))
    }

    fn store_sealed_answer(
        &mut self,
        id: &[u8; 32],
        answer: &[u8],
        expires_hour: u64,
    ) -> Result<()> {
        self.run(self.tx.execute(
            &self.prepared(
                "INSERT INTO sealed_answers (id, answer, expires_hour) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
            )?,
            &[&id.as_slice(), &answer, &int(expires_hour)],
        ))?;
        Ok(())
    }

    fn prune_sealed_answers(&mut self, hour: u64) -> Result<()> {
        self.run(self.tx.execute(
            &self.prepared("DELETE FROM sealed_answers WHERE expires_hour < $1")?,
            &[&int(hour)],
        ))?;
        Ok(())
    }

    fn store_budget(&mut self, budget: BudgetState) -> Result<()> {
        self.run(self.tx.execute(
            &self.prepared(
                "INSERT INTO guess_budget (id, tokens, updated_at) VALUES (1, $1, $2)
             ON CONFLICT (id) DO UPDATE
             SET tokens = excluded.tokens, updated_at = excluded.updated_at",
            )?,
            &[&budget.tokens, &int(budget.at.get())],
        ))?;
        Ok(())
    }

    fn add_day_counts(&mut self, day: Day, counts: &DayCounts) -> Result<()> {
        self.wait(add_day_counts(&self.tx, day, counts))
    }

    fn lock_budget(&mut self, own: BudgetState) -> Result<BudgetState> {
        self.wait(async {
            // The row must exist to be locked; the first server to need it stores its own.
            self.tx
                .execute(
                    "INSERT INTO guess_budget (id, tokens, updated_at) VALUES (1, $1, $2)
                     ON CONFLICT (id) DO NOTHING",
                    &[&own.tokens, &int(own.at.get())],
                )
                .await?;
            let row = self
                .tx
                .query_one(
                    "SELECT tokens, updated_at FROM guess_budget WHERE id = 1 FOR UPDATE",
                    &[],
                )
                .await?;
            Ok(BudgetState {
                tokens: row.get(0),
                at: seconds(&row, 1),
            })
        })
    }
}

const KEY_COLUMNS: &str =
    "key_data, rolling_start, rolling_period, transmission_risk, report_type, days_since_onset";

fn key(row: &Row) -> Result<DiagnosisKey> {
    batches::decode_key(
        row.get(0),
        row.get::<_, i64>(1) as u32,
        row.get::<_, i64>(2) as u32,
        row.get::<_, Option<i16>>(3).map(|risk| risk as u8),
        row.get(4),
        row.get(5),
    )
}

async fn holds(tx: &tokio_postgres::Transaction<'_>, lease: &Lease) -> Result<bool> {
    Ok(tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM export_batches
             WHERE start_time = $1 AND status = 'pending' AND lease_id = $2)",
            &[&int(lease.window.start.get()), &lease.token().as_slice()],
        )
        .await?
        .get(0))
}

impl BatchStore for Client {
    fn cut_windows(&mut self, windowing: &Windowing, now: UnixSeconds) -> Result<usize> {
        let tx = self.begin(true)?;
        let value = tx.wait(async {
            let tx = &tx.tx;
            let last_end: Option<i64> = tx
                .query_one("SELECT max(end_time) FROM export_batches", &[])
                .await?
                .get(0);
            let first = match last_end {
                Some(end) => end,
                None => {
                    let oldest: Option<i64> = tx
                        .query_one(
                            "SELECT least((SELECT min(received_at) FROM diagnosis_keys),
                                          (SELECT min(received_at) FROM staged_keys))",
                            &[],
                        )
                        .await?
                        .get(0);
                    let Some(oldest) = oldest else { return Ok(0) };
                    oldest
                }
            };
            let mut cut = 0;
            for window in windowing.ready(UnixSeconds::new(first as u64), now) {
                tx.execute(
                    "INSERT INTO export_batches (start_time, end_time, status)
                     VALUES ($1, $2, 'open')",
                    &[&int(window.start.get()), &int(window.end.get())],
                )
                .await?;
                cut += 1;
            }
            Ok(cut)
        })?;
        tx.commit()?;
        Ok(value)
    }

    fn mix_staged(&mut self, now: UnixSeconds) -> Result<Mixed> {
        let ended = int(now.get().saturating_sub(MIX_DELAY));
        let tx = self.begin(true)?;
        let mixed = tx.wait(async {
            Ok::<_, AppError>(Mixed {
                keys: staging::mix::<StagedKey>(&tx.tx, ended).await?,
                check_ins: staging::mix::<StagedReport>(&tx.tx, ended).await?,
            })
        })?;
        tx.commit()?;
        if mixed != Mixed::default() {
            // The staged rows' dead tuples (in arrival order, under their commits' ids) go
            // now rather than at autovacuum's next visit.
            self.run(|client| async move {
                client
                    .batch_execute("VACUUM staged_keys, staged_check_ins")
                    .await?;
                Ok(())
            })?;
        }
        Ok(mixed)
    }

    fn lease(&mut self, now: UnixSeconds, lease_seconds: u64) -> Result<Option<Lease>> {
        let token = Lease::fresh_token();
        let tx = self.begin(true)?;
        let value = tx.wait(async {
            let tx = &tx.tx;
            let row = tx
                .query_opt(
                    "UPDATE export_batches SET status = 'pending', lease_id = $1,
                         lease_expires = $2
                     WHERE start_time = (
                         SELECT start_time FROM export_batches
                         WHERE status = 'open' OR (status = 'pending' AND lease_expires <= $3)
                         ORDER BY start_time LIMIT 1)
                     RETURNING start_time, end_time",
                    &[
                        &token.as_slice(),
                        &int(now.plus(lease_seconds).get()),
                        &int(now.get()),
                    ],
                )
                .await?;
            Ok(row.map(|row| {
                let window = Window {
                    start: seconds(&row, 0),
                    end: seconds(&row, 1),
                };
                Lease::new(window, token)
            }))
        })?;
        tx.commit()?;
        Ok(value)
    }

    fn released_keys(&mut self, window: Window) -> Result<Vec<DiagnosisKey>> {
        self.run(|client| async move {
            let rows = client
                .query(
                    &format!(
                        // Mixed or not yet (see `staging`): each key is in one of the
                        // two tables, and this one statement sees both at one moment.
                        "SELECT {KEY_COLUMNS} FROM diagnosis_keys
                         WHERE embargo_until >= $1 AND embargo_until < $2
                         UNION ALL SELECT {KEY_COLUMNS} FROM staged_keys
                         WHERE embargo_until >= $1 AND embargo_until < $2"
                    ),
                    &[&int(window.start.get()), &int(window.end.get())],
                )
                .await?;
            rows.iter().map(key).collect()
        })
    }

    fn stored_padding(&mut self, start: UnixSeconds) -> Result<Vec<DiagnosisKey>> {
        self.run(|client| async move { stored_padding(client, start).await })
    }

    fn store_padding(
        &mut self,
        lease: &Lease,
        padding: Vec<DiagnosisKey>,
    ) -> Result<Option<Vec<DiagnosisKey>>> {
        let start = int(lease.window.start.get());
        let insert = format!(
            "INSERT INTO export_padding (batch_start, {KEY_COLUMNS})
             VALUES ($1, $2, $3, $4, $5, $6, $7)"
        );
        self.store_once(
            lease,
            padding,
            |tx| tx.wait(stored_padding(&*tx.tx, lease.window.start)),
            |tx, key| {
                let validity = key.tek.validity();
                tx.run(tx.tx.execute(
                    &insert,
                    &[
                        &start,
                        &key.tek.expose_secret().as_slice(),
                        &i64::from(validity.start().get()),
                        &i64::from(validity.period().get()),
                        &key.transmission_risk_level.map(i16::from),
                        &(key.report_type as i32),
                        &key.days_since_onset.map(|d| d.get()),
                    ],
                ))
            },
        )
    }

    fn released_reports(&mut self, window: Window) -> Result<Vec<ProtectedReport>> {
        self.run(|client| async move {
            let rows = client
                .query(
                    "SELECT report FROM check_in_reports
                     WHERE released_at >= $1 AND released_at < $2
                     UNION ALL SELECT report FROM staged_check_ins
                     WHERE released_at >= $1 AND released_at < $2",
                    &[&int(window.start.get()), &int(window.end.get())],
                )
                .await?;
            rows.iter()
                .map(|row| trace_warnings::decode(row.get(0)))
                .collect()
        })
    }

    fn stored_report_padding(&mut self, start: UnixSeconds) -> Result<Vec<ProtectedReport>> {
        self.run(|client| async move { stored_report_padding(client, start).await })
    }

    fn store_report_padding(
        &mut self,
        lease: &Lease,
        padding: Vec<ProtectedReport>,
    ) -> Result<Option<Vec<ProtectedReport>>> {
        let start = int(lease.window.start.get());
        self.store_once(
            lease,
            padding,
            |tx| tx.wait(stored_report_padding(&*tx.tx, lease.window.start)),
            |tx, report| {
                tx.run(tx.tx.execute(
                    "INSERT INTO trace_warning_padding (batch_start, report) VALUES ($1, $2)",
                    &[&start, &report.to_bytes()],
                ))
            },
        )
    }

    fn finish(
        &mut self,
        lease: &Lease,
        files: &[FileRecord],
        now: UnixSeconds,
        publish: &mut dyn FnMut() -> Result<()>,
    ) -> Result<bool> {
        let (start, end) = (int(lease.window.start.get()), int(lease.window.end.get()));
        let tx = self.begin(true)?;
        let recorded = tx.wait(async {
            let tx = &tx.tx;
            if !holds(tx, lease).await? {
                return Ok(false);
            }
            let mut exported = DayCounts::default();
            for file in files {
                let inserted = tx
                    .execute(
                        "INSERT INTO export_files (name, batch_start, batch_end, real_keys,
                         padding_keys, bytes, sha256, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
                        &[
                            &file.name,
                            &start,
                            &end,
                            &(file.real_keys as i64),
                            &(file.padding_keys as i64),
                            &int(file.bytes),
                            &file.sha256.as_slice(),
                            &int(now.get()),
                        ],
                    )
                    .await?;
                if inserted == 1 && file.name.starts_with(&format!("{EXPORT_DIR}/")) {
                    exported.export_files += 1;
                    exported.export_bytes += file.bytes;
                }
            }
            if !exported.is_empty() {
                add_day_counts(tx, Day::of(now), &exported).await?;
            }
            tx.execute(
                "UPDATE export_batches SET status = 'complete', lease_id = NULL,
                     lease_expires = NULL
                 WHERE start_time = $1",
                &[&start],
            )
            .await?;
            Ok::<_, AppError>(true)
        })?;
        if !recorded {
            return Ok(false);
        }
        // Last before the commit, still holding the lock: if it fails, nothing is recorded
        // and the batch stays pending for a retry.
        publish()?;
        tx.commit()?;
        Ok(true)
    }

    fn with_pending(&mut self, work: &mut dyn FnMut(&[UnixSeconds]) -> Result<()>) -> Result<()> {
        let tx = self.begin(true)?;
        let pending = tx.wait(async {
            let rows = tx
                .tx
                .query(
                    "SELECT start_time FROM export_batches WHERE status = 'pending'",
                    &[],
                )
                .await?;
            Ok::<_, AppError>(rows.iter().map(|row| seconds(row, 0)).collect::<Vec<_>>())
        })?;
        work(&pending)?;
        tx.commit()
    }

    fn with_index(
        &mut self,
        dir: &str,
        write: &mut dyn FnMut(&[String]) -> Result<()>,
    ) -> Result<()> {
        let tx = self.begin(true)?;
        let names = tx.wait(async {
            let rows = tx
                .tx
                .query(
                    "SELECT name FROM export_files
                     WHERE expired_at IS NULL AND left(name, length($1)) = $1
                     ORDER BY batch_start, name",
                    &[&format!("{dir}/")],
                )
                .await?;
            Ok::<_, AppError>(rows.iter().map(|row| row.get(0)).collect::<Vec<String>>())
        })?;
        write(&names)?;
        tx.commit()
    }

    fn expire(&mut self, now: UnixSeconds, cutoff: u64) -> Result<Expired> {
        let cutoff = int(cutoff);
        let tx = self.begin(true)?;
        let value = tx.wait(async {
            let tx = &tx.tx;
            let files_dropped = tx
                .execute(
                    "UPDATE export_files SET expired_at = $1
                     WHERE expired_at IS NULL AND batch_end <= $2",
                    &[&int(now.get()), &cutoff],
                )
                .await? as usize;
            // Only keys and check-ins whose window is exported: before the oldest
            // unfinished batch, or before the last batch's end when every batch is finished.
            // Keys (`0`) and check-ins (`1`), mixed or still staged.
            let mut deleted = [0; 2];
            for (kind, table, released) in [
                (0, "diagnosis_keys", "embargo_until"),
                (1, "check_in_reports", "released_at"),
                (0, "staged_keys", "embargo_until"),
                (1, "staged_check_ins", "released_at"),
            ] {
                deleted[kind] += tx
                    .execute(
                        &format!(
                            "DELETE FROM {table} WHERE {released} < least($1, coalesce(
                                 (SELECT min(start_time) FROM export_batches
                                  WHERE status != 'complete'),
                                 (SELECT max(end_time) FROM export_batches),
                                 0))"
                        ),
                        &[&cutoff],
                    )
                    .await? as usize;
            }
            let codes_deleted = tx
                .execute(
                    "DELETE FROM verification_codes WHERE expires_at < $1",
                    &[&cutoff],
                )
                .await?
                + tx.execute(
                    "DELETE FROM redeemed_codes WHERE expires_hour * 3600 < $1",
                    &[&cutoff],
                )
                .await?;
            for padding in ["export_padding", "trace_warning_padding"] {
                tx.execute(
                    &format!(
                        "DELETE FROM {padding} WHERE batch_start IN
                         (SELECT start_time FROM export_batches WHERE end_time <= $1)"
                    ),
                    &[&cutoff],
                )
                .await?;
            }
            Ok(Expired {
                files_dropped,
                keys_deleted: deleted[0],
                check_ins_deleted: deleted[1],
                codes_deleted: codes_deleted as usize,
            })
        })?;
        tx.commit()?;
        Ok(value)
    }

    fn dropped_files(&mut self, before: u64) -> Result<Vec<String>> {
        self.run(|client| async move {
            let rows = client
                .query(
                    "SELECT name FROM export_files WHERE expired_at <= $1",
                    &[&int(before)],
                )
                .await?;
            Ok(rows.iter().map(|row| row.get(0)).collect())
        })
    }

    fn forget_file(&mut self, name: &str) -> Result<()> {
        self.run(|client| async move {
            client
                .execute("DELETE FROM export_files WHERE name = $1", &[&name])
                .await?;
            Ok(())
        })
    }

    fn day_counts(&mut self, first: Day) -> Result<Vec<(Day, DayCounts)>> {
        self.run(|client| async move {
            let rows = client
                .query(
                    "SELECT day, codes_issued, codes_redeemed, keys_published, export_files,
                         export_bytes
                     FROM daily_counts WHERE day >= $1 ORDER BY day",
                    &[&i64::from(first.get())],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|row| {
                    let count = |column| row.get::<_, i64>(column) as u64;
                    (
                        Day::new(row.get::<_, i64>(0) as u32),
                        DayCounts {
                            codes_issued: count(1),
                            codes_redeemed: count(2),
                            keys_published: count(3),
                            export_files: count(4),
                            export_bytes: count(5),
                        },
                    )
                })
                .collect())
        })
    }

    fn signing_keys(&mut self, first: &SigningKeyRow) -> Result<Vec<SigningKeyRow>> {
        let (file, pem) = first.private_key.columns();
        self.run(|client| async move {
            client
                .execute(
                    "INSERT INTO signing_keys
                       (key_version, key_id, file, private_key, created_at, not_after)
                     SELECT $1, $2, $3, $4, $5, $6 WHERE NOT EXISTS (SELECT 1 FROM signing_keys)
                     ON CONFLICT DO NOTHING",
                    &[
                        &first.key_version,
                        &first.key_id,
                        &file,
                        &pem,
                        &int(first.created_at.get()),
                        &first.not_after.map(|t| int(t.get())),
                    ],
                )
                .await?;
            let rows = client
                .query(
                    "SELECT key_id, key_version, file, private_key, created_at, not_after
                     FROM signing_keys ORDER BY created_at, key_version",
                    &[],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|row| SigningKeyRow {
                    key_id: row.get(0),
                    key_version: row.get(1),
                    private_key: PrivateKey::from_columns(row.get(2), row.get(3)),
                    created_at: seconds(row, 4),
                    not_after: row
                        .get::<_, Option<i64>>(5)
                        .map(|t| UnixSeconds::new(t as u64)),
                })
                .collect())
        })
    }

    fn add_signing_key(
        &mut self,
        now: UnixSeconds,
        retire_at: Option<UnixSeconds>,
        private_key: &PrivateKeyPem,
    ) -> Result<AddedKey> {
        let tx = self.begin(true)?;
        let (key_id, key_version) = tx.wait(async {
            let tx = &tx.tx;
            let key_id: String = tx
                .query_opt(
                    "SELECT key_id FROM signing_keys
                     ORDER BY created_at DESC, key_version DESC LIMIT 1",
                    &[],
                )
                .await?
                .ok_or_else(|| AppError::Corrupt("no signing key is registered yet".into()))?
                .get(0);
            let mut n = 2;
            while tx
                .query_opt(
                    "SELECT 1 FROM signing_keys WHERE key_version = $1",
                    &[&format!("v{n}")],
                )
                .await?
                .is_some()
            {
                n += 1;
            }
            Ok::<_, AppError>((key_id, format!("v{n}")))
        })?;
        let retiring = tx.wait(async {
            let tx = &tx.tx;
            let retiring = match retire_at {
                Some(end) => {
                    tx.execute(
                        "UPDATE signing_keys SET not_after = $1 WHERE not_after IS NULL",
                        &[&int(end.get())],
                    )
                    .await?
                }
                None => 0,
            };
            tx.execute(
                "INSERT INTO signing_keys (key_version, key_id, file, private_key, created_at)
                 VALUES ($1, $2, '', $3, $4)",
                &[
                    &key_version,
                    &key_id,
                    &private_key.expose_secret(),
                    &int(now.get()),
                ],
            )
            .await?;
            Ok::<_, AppError>(retiring as usize)
        })?;
        tx.commit()?;
        Ok(AddedKey {
            key_id,
            key_version,
            retiring,
        })
    }
}

async fn stored_padding(
    client: &impl GenericClient,
    start: UnixSeconds,
) -> Result<Vec<DiagnosisKey>> {
    let rows = client
        .query(
            &format!(
                "SELECT {KEY_COLUMNS} FROM export_padding WHERE batch_start = $1 ORDER BY seq"
            ),
            &[&int(start.get())],
        )
        .await?;
    rows.iter().map(key).collect()
}

async fn stored_report_padding(
    client: &impl GenericClient,
    start: UnixSeconds,
) -> Result<Vec<ProtectedReport>> {
    let rows = client
        .query(
            "SELECT report FROM trace_warning_padding WHERE batch_start = $1 ORDER BY seq",
            &[&int(start.get())],
        )
        .await?;
    rows.iter()
        .map(|row| trace_warnings::decode(row.get(0)))
        .collect()
}

impl AccountStore for Client {
    fn add_case_worker(&mut self, name: &str, password_hash: &str) -> Result<bool> {
        self.run(|client| async move {
            let inserted = client
                .execute(
                    "INSERT INTO case_workers (name, password_hash) VALUES ($1, $2)
                     ON CONFLICT DO NOTHING",
                    &[&name, &password_hash],
                )
                .await?;
            Ok(inserted == 1)
        })
    }

    fn case_worker(&mut self, name: &str) -> Result<Option<CaseWorkerRow>> {
        self.run(|client| async move {
            let row = client
                .query_opt(
                    "SELECT password_hash, failed_logins, locked_until
                     FROM case_workers WHERE name = $1",
                    &[&name],
                )
                .await?;
            Ok(row.map(|row| CaseWorkerRow {
                password_hash: row.get(0),
                failed_logins: row.get::<_, i32>(1) as u32,
                locked_until: row.get::<_, i64>(2) as u64,
            }))
        })
    }

    fn set_login_state(&mut self, name: &str, failed_logins: u32, locked_until: u64) -> Result<()> {
        self.run(|client| async move {
            client
                .execute(
                    "UPDATE case_workers SET failed_logins = $2, locked_until = $3
                     WHERE name = $1",
                    &[&name, &(failed_logins as i32), &int(locked_until)],
                )
                .await?;
            Ok(())
        })
    }
}

fn venue(row: &Row) -> Result<Venue> {
    Ok(Venue {
        hash: location_hash(row.get(0))?,
        qr_text: row.get(1),
        description: row.get(2),
        address: row.get(3),
    })
}

impl VenueStore for Client {
    fn add_venue(&mut self, venue: &Venue, who: &str, now: UnixSeconds) -> Result<()> {
        self.run(|client| async move {
            client
                .execute(
                    "INSERT INTO venues (location_id_hash, qr_text, description, address,
                         registered_at, registered_by)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                    &[
                        &venue.hash.to_bytes().as_slice(),
                        &venue.qr_text,
                        &venue.description,
                        &venue.address,
                        &int(now.get()),
                        &who,
                    ],
                )
                .await?;
            Ok(())
        })
    }

    fn venues(&mut self) -> Result<Vec<Venue>> {
        self.run(|client| async move {
            let rows = client
                .query(
                    "SELECT location_id_hash, qr_text, description, address FROM venues
                     ORDER BY description",
                    &[],
                )
                .await?;
            rows.iter().map(venue).collect()
        })
    }

    fn venue(&mut self, hash: &LocationIdHash) -> Result<Option<Venue>> {
        let hash = hash.to_bytes();
        self.run(|client| async move {
            let row = client
                .query_opt(
                    "SELECT location_id_hash, qr_text, description, address FROM venues
                     WHERE location_id_hash = $1",
                    &[&hash.as_slice()],
                )
                .await?;
            row.as_ref().map(venue).transpose()
        })
    }

    fn check_in_counts(&mut self, after: UnixSeconds) -> Result<Vec<(LocationIdHash, Day, u64)>> {
        self.run(|client| async move {
            let rows = client
                .query(
                    // The day of the window the report arrived in (released at its end).
                    "SELECT location_id_hash, (released_at - 1) / 86400, count(*)
                     FROM (SELECT location_id_hash, released_at FROM check_in_reports
                           UNION ALL SELECT location_id_hash, released_at FROM staged_check_ins)
                         AS r
                     WHERE released_at > $1 GROUP BY 1, 2",
                    &[&int(after.get())],
                )
                .await?;
            rows.iter()
                .map(|row| {
                    Ok((
                        location_hash(row.get(0))?,
                        Day::new(row.get::<_, i64>(1) as u32),
                        row.get::<_, i64>(2) as u64,
                    ))
                })
                .collect()
        })
    }
}

/// The environment variable with the URL of the PostgreSQL server the tests use (the test
/// command starts a private one); each test gets a database of its own on it.
#[cfg(test)]
pub const TEST_SERVER_VAR: &str = "KITH_TEST_POSTGRES";

/// A fresh, empty database on the test server, or `None` after a skip when there is none.
#[cfg(test)]
pub fn test_database() -> Option<PostgresStorage> {
    let Ok(url) = std::env::var(TEST_SERVER_VAR) else {
        kith_test_support::skip(format_args!(
            "{TEST_SERVER_VAR} is not set (scripts/test starts a PostgreSQL server and sets it)"
        ));
        return None;
    };
    let name = format!("kith_test_{:016x}", rand_core::OsRng.next_u64());
    let url = create_database(&url, &name).expect("a database on the test server");
    Some(PostgresStorage::open(&url).unwrap())
}

#[cfg(test)]
pub fn fixture() -> Option<crate::storage::conformance::Fixture> {
    let storage = test_database()?;
    Some(crate::storage::conformance::Fixture {
        storage: std::sync::Arc::new(storage),
        dir: tempfile::tempdir().unwrap(),
    })
}

#[cfg(test)]
mod tests {
    use crate::clock::UnixSeconds;
    use crate::guessing::BudgetState;
    use crate::storage::WriterStore;

    crate::storage::conformance::suite!(crate::postgres::fixture);

    fn locked(writer: &mut dyn WriterStore, own: BudgetState) -> BudgetState {
        let mut seen = None;
        writer
            .transaction(&mut |tx| {
                let shared = tx.lock_budget(own)?;
                seen = Some(shared);
                tx.store_budget(BudgetState {
                    tokens: shared.tokens - 1.0,
                    ..shared
                })
            })
            .unwrap();
        seen.unwrap()
    }

    /// Two servers' writers spend one budget: each takes it as the other left it.
    #[test]
    fn the_guessing_budget_is_one_for_all_servers() {
        let Some(fixture) = super::fixture() else {
            return;
        };
        let (mut a, mut b) = (
            fixture.storage.writer().unwrap(),
            fixture.storage.writer().unwrap(),
        );
        let full = BudgetState {
            tokens: 5.0,
            at: UnixSeconds::new(1_800_000_000),
        };
        assert_eq!(locked(&mut *a, full), full, "the first one stores its own");
        assert_eq!(locked(&mut *b, full).tokens, 4.0, "B sees what A spent");
        assert_eq!(locked(&mut *a, full).tokens, 3.0, "and A what B spent");
    }
}
