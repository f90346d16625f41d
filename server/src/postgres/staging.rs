//! Published keys and check-ins go through staging tables on their way into the tables the
//! batcher exports from, so that the tables at rest do not show which rows came in one
//! upload.
//!
//! PostgreSQL keeps a row where it was written (a table's heap, what `pg_dump` or a query
//! without `ORDER BY` lists, is in `ctid` order) and stamps it with the id of the
//! transaction that wrote it (`xmin`): rows the writer stored directly would lie in arrival
//! order, one upload's keys side by side, each group commit's rows under one transaction
//! id. So the writer appends them to `staged_keys` and `staged_check_ins` (durably, in its
//! group commit: nothing acknowledged waits anywhere else), and the mixer, run by every
//! export pass on any instance, moves the rows of each truncate window that ended
//! [`MIX_DELAY`] ago in one transaction: it takes them out of staging (`DELETE …
//! RETURNING`, so no row is moved twice, even by two mixers at once), shuffles them,
//! gives each a fresh random id and writes them in the order of those ids. A window's rows
//! then lie in random order under one transaction id, as SQLite's table (ordered by random
//! id) lies, and the window is the one that their times are rounded to anyway.
//!
//! Until its window is mixed a staged row stays linkable to its upload: for the rest of
//! the window, [`MIX_DELAY`], and up to a minute until the next pass. The batcher reads
//! both tables, so a key is exported whether it was mixed yet or not.

use std::collections::HashSet;

use deadpool_postgres::Transaction;
use rand::seq::SliceRandom;
use rand_core::{OsRng, RngCore};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::error::Result;

/// How long after its truncate window ends a window's staged rows are moved: long after
/// the last group commit that read a time inside the window has committed, so that none of
/// its rows is left behind to be moved alone.
pub(crate) const MIX_DELAY: u64 = 60;

/// A kind of row the writer stages and the mixer moves.
pub(crate) trait Staged: Sized + Send + Sync {
    /// Inserts rows into staging: the columns in `$1…` as arrays, then the kind's own
    /// parameters.
    const STAGE: &'static str;
    /// Deletes the staged rows whose window ended at `$1` or before, returning their
    /// columns.
    const TAKE: &'static str;
    /// Inserts rows into their table under the ids in `$1`, the columns in `$2…`,
    /// returning the ids stored (a random id that is taken stores nothing).
    const STORE: &'static str;

    /// A row as [`TAKE`](Self::TAKE) returns it.
    fn read(row: &Row) -> Self;

    /// The rows' columns as arrays, in the order the statements name them.
    fn columns<'a>(rows: &[&'a Self]) -> Vec<Box<dyn ToSql + Sync + Send + 'a>>;
}

/// One column's values for `rows`.
pub(crate) fn column<'a, R, T: ToSql + Sync + Send + 'a>(
    rows: &[&'a R],
    value: impl Fn(&'a R) -> T,
) -> Box<dyn ToSql + Sync + Send + 'a> {
    Box::new(rows.iter().map(|row| value(row)).collect::<Vec<T>>())
}

/// Runs `sql` with `leading` parameters, then `rows`' columns, then `trailing` ones.
async fn execute_with<R: Staged>(
    tx: &Transaction<'_>,
    sql: &str,
    leading: &[&(dyn ToSql + Sync)],
    rows: &[&R],
    trailing: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>> {
    let columns = R::columns(rows);
    let params: Vec<&(dyn ToSql + Sync)> = leading
        .iter()
        .copied()
        .chain(columns.iter().map(|c| &**c as &(dyn ToSql + Sync)))
        .chain(trailing.iter().copied())
        .collect();
    let statement = tx.prepare_cached(sql).await?;
    Ok(tx.query(&statement, &params).await?)
}

/// Stages `rows` in one statement; `extra` are the kind's own parameters.
pub(crate) async fn stage<R: Staged>(
    tx: &Transaction<'_>,
    rows: &[R],
    extra: &[&(dyn ToSql + Sync)],
) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let rows: Vec<&R> = rows.iter().collect();
    execute_with(tx, R::STAGE, &[], &rows, extra).await?;
    Ok(())
}

/// Moves the rows staged in windows that ended at `ended` or before into their table, in
/// random order under fresh random ids; returns how many.
pub(crate) async fn mix<R: Staged>(tx: &Transaction<'_>, ended: i64) -> Result<usize> {
    let taken: Vec<R> = tx
        .query(R::TAKE, &[&ended])
        .await?
        .iter()
        .map(R::read)
        .collect();
    let mut pending: Vec<&R> = taken.iter().collect();
    pending.shuffle(&mut OsRng);
    while !pending.is_empty() {
        // Ascending ids in the shuffled order: the heap's order is then the ids' order, and
        // both are random.
        let ids = fresh_ids(pending.len());
        let stored: HashSet<i64> = execute_with(tx, R::STORE, &[&ids], &pending, &[])
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect();
        // A random id collides with one of n stored rows with probability n / 2^63; those
        // rows go again with new ones.
        let mut kept = ids.iter().map(|id| !stored.contains(id));
        pending.retain(|_| kept.next().unwrap_or(false));
    }
    Ok(taken.len())
}

/// `n` distinct random non-negative ids, ascending.
fn fresh_ids(n: usize) -> Vec<i64> {
    let mut ids = HashSet::with_capacity(n);
    while ids.len() < n {
        ids.insert((OsRng.next_u64() >> 1) as i64);
    }
    let mut ids: Vec<i64> = ids.into_iter().collect();
    ids.sort_unstable();
    ids
}

/// A published key, as staged.
pub(crate) struct StagedKey {
    pub(crate) key_data: Vec<u8>,
    pub(crate) rolling_start: i64,
    pub(crate) rolling_period: i64,
    pub(crate) transmission_risk: Option<i16>,
    pub(crate) report_type: i32,
    pub(crate) days_since_onset: Option<i32>,
    pub(crate) received_at: i64,
    pub(crate) embargo_until: i64,
}

impl Staged for StagedKey {
    // `$9`: the truncate window, whose end (after the arrival's window start) is the mix time.
    const STAGE: &'static str = "INSERT INTO staged_keys (key_data, rolling_start,
             rolling_period, transmission_risk, report_type, days_since_onset, received_at,
             embargo_until, mix_at)
         SELECT k.*, k.received_at + $9::bigint
         FROM unnest($1::bytea[], $2::bigint[], $3::bigint[], $4::smallint[], $5::int[],
                     $6::int[], $7::bigint[], $8::bigint[])
           AS k(key_data, rolling_start, rolling_period, transmission_risk, report_type,
                days_since_onset, received_at, embargo_until)";
    const TAKE: &'static str = "DELETE FROM staged_keys WHERE mix_at <= $1
         RETURNING key_data, rolling_start, rolling_period, transmission_risk, report_type,
             days_since_onset, received_at, embargo_until";
    const STORE: &'static str = "INSERT INTO diagnosis_keys (id, key_data, rolling_start,
             rolling_period, transmission_risk, report_type, days_since_onset, received_at,
             embargo_until)
         SELECT * FROM unnest($1::bigint[], $2::bytea[], $3::bigint[], $4::bigint[],
                              $5::smallint[], $6::int[], $7::int[], $8::bigint[], $9::bigint[])
         ON CONFLICT DO NOTHING RETURNING id";

    fn read(row: &Row) -> Self {
        Self {
            key_data: row.get(0),
            rolling_start: row.get(1),
            rolling_period: row.get(2),
            transmission_risk: row.get(3),
            report_type: row.get(4),
            days_since_onset: row.get(5),
            received_at: row.get(6),
            embargo_until: row.get(7),
        }
    }

    fn columns<'a>(rows: &[&'a Self]) -> Vec<Box<dyn ToSql + Sync + Send + 'a>> {
        vec![
            column(rows, |k| k.key_data.as_slice()),
            column(rows, |k| k.rolling_start),
            column(rows, |k| k.rolling_period),
            column(rows, |k| k.transmission_risk),
            column(rows, |k| k.report_type),
            column(rows, |k| k.days_since_onset),
            column(rows, |k| k.received_at),
            column(rows, |k| k.embargo_until),
        ]
    }
}

/// A published check-in report, as staged.
pub(crate) struct StagedReport {
    pub(crate) location_id_hash: Vec<u8>,
    pub(crate) report: Vec<u8>,
    pub(crate) released_at: i64,
}

impl Staged for StagedReport {
    // Released at the end of the window it arrived in: mixed from then on.
    const STAGE: &'static str = "INSERT INTO staged_check_ins (location_id_hash, report,
             released_at)
         SELECT * FROM unnest($1::bytea[], $2::bytea[], $3::bigint[])";
    const TAKE: &'static str = "DELETE FROM staged_check_ins WHERE released_at <= $1
         RETURNING location_id_hash, report, released_at";
    const STORE: &'static str = "INSERT INTO check_in_reports (id, location_id_hash, report,
             released_at)
         SELECT * FROM unnest($1::bigint[], $2::bytea[], $3::bytea[], $4::bigint[])
         ON CONFLICT DO NOTHING RETURNING id";

    fn read(row: &Row) -> Self {
        Self {
            location_id_hash: row.get(0),
            report: row.get(1),
            released_at: row.get(2),
        }
    }

    fn columns<'a>(rows: &[&'a Self]) -> Vec<Box<dyn ToSql + Sync + Send + 'a>> {
        vec![
            column(rows, |r| r.location_id_hash.as_slice()),
            column(rows, |r| r.report.as_slice()),
            column(rows, |r| r.released_at),
        ]
    }
}
