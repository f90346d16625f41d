//! A new data directory holding published keys, written straight into its database (its
//! SQLite file, or the PostgreSQL database given) as if phones had uploaded them: what the
//! export and download benchmarks start from.

use std::path::Path;

use kith_server::{Clock, Config, Server};
use rand::{Rng, RngCore};

/// Keys that arrived within one hour.
#[derive(Clone, Copy, Debug)]
pub struct Arrivals {
    /// The hour they arrived in (Unix seconds, a multiple of 3600).
    pub hour: u64,
    /// How many.
    pub keys: usize,
}

/// Sets up a data directory at `dir` (on the PostgreSQL database at `database`, if given)
/// whose windows may be exported as soon as they end, stores `arrivals` in it and returns
/// its configuration. Each key is a random daily key of one of the 14 days before today,
/// with a days-since-onset to match.
pub fn data_dir_with_keys(
    dir: &Path,
    database: Option<&str>,
    period_seconds: u64,
    arrivals: &[Arrivals],
) -> Config {
    let mut config = Config::with_data_dir(dir);
    config.export.min_age_seconds = 0;
    config.export.period_seconds = period_seconds;
    config.database_url = database.map(|url| url.parse().expect("a postgres:// URL"));
    drop(Server::open(config.clone(), Clock::system()).expect("set up the data directory"));

    let today = (Clock::system().now().get() / 600) as u32 / 144 * 144;
    let mut rng = rand::thread_rng();
    // id, key, rolling start, days since onset, arrival (and release) time.
    let rows = arrivals
        .iter()
        .flat_map(|arrival| std::iter::repeat_n(arrival.hour, arrival.keys));
    let rows: Vec<(i64, [u8; 16], u32, i32, u64)> = rows
        .map(|hour| {
            let mut key = [0u8; 16];
            rng.fill_bytes(&mut key);
            let day = rng.gen_range(1..=14u32);
            (
                rng.r#gen::<i64>() >> 1,
                key,
                today - 144 * day,
                day as i32 - 3,
                hour,
            )
        })
        .collect();
    match database {
        None => insert_sqlite(dir, &rows),
        Some(url) => insert_postgres(url, &rows),
    }
    config
}

const INSERT: &str = "INSERT INTO diagnosis_keys (id, key_data, rolling_start, rolling_period,
    transmission_risk, report_type, days_since_onset, received_at, embargo_until)";

fn insert_sqlite(dir: &Path, rows: &[(i64, [u8; 16], u32, i32, u64)]) {
    let mut conn = rusqlite::Connection::open(dir.join("kith.sqlite3")).unwrap();
    let tx = conn.transaction().unwrap();
    {
        let mut insert = tx
            .prepare(&format!(
                "{INSERT} VALUES (?1, ?2, ?3, 144, 0, 1, ?4, ?5, ?5)"
            ))
            .unwrap();
        for (id, key, start, onset, hour) in rows {
            insert
                .execute(rusqlite::params![id, key.as_slice(), start, onset, hour])
                .unwrap();
        }
    }
    tx.commit().unwrap();
}

/// Inserts in chunks of 10 000 rows, each one statement over arrays.
fn insert_postgres(url: &str, rows: &[(i64, [u8; 16], u32, i32, u64)]) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        let statement = format!(
            "{INSERT} SELECT id, key, start, 144, 0, 1, onset, at, at
             FROM unnest($1::bigint[], $2::bytea[], $3::bigint[], $4::int[], $5::bigint[])
                  AS t(id, key, start, onset, at)"
        );
        for chunk in rows.chunks(10_000) {
            let ids: Vec<i64> = chunk.iter().map(|r| r.0).collect();
            let keys: Vec<&[u8]> = chunk.iter().map(|r| r.1.as_slice()).collect();
            let starts: Vec<i64> = chunk.iter().map(|r| i64::from(r.2)).collect();
            let onsets: Vec<i32> = chunk.iter().map(|r| r.3).collect();
            let ats: Vec<i64> = chunk.iter().map(|r| r.4 as i64).collect();
            client
                .execute(&statement, &[&ids, &keys, &starts, &onsets, &ats])
                .await
                .unwrap();
        }
    });
}
