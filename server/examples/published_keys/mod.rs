//! A new data directory holding published keys, written straight into its database (as
//! if phones had uploaded them): what the export and download benchmarks start from.

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

/// Sets up a data directory at `dir` whose windows may be exported as soon as they end,
/// stores `arrivals` in it and returns its configuration. Each key is a random daily key
/// of one of the 14 days before today, with a days-since-onset to match.
pub fn data_dir_with_keys(dir: &Path, period_seconds: u64, arrivals: &[Arrivals]) -> Config {
    let mut config = Config::with_data_dir(dir);
    config.export.min_age_seconds = 0;
    config.export.period_seconds = period_seconds;
    drop(Server::open(config.clone(), Clock::system()).expect("set up the data directory"));

    let today = (Clock::system().now().get() / 600) as u32 / 144 * 144;
    let mut conn = rusqlite::Connection::open(dir.join("kith.sqlite3")).unwrap();
    let tx = conn.transaction().unwrap();
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO diagnosis_keys (id, key_data, rolling_start, rolling_period,
                     transmission_risk, report_type, days_since_onset, received_at, embargo_until)
                 VALUES (?1, ?2, ?3, 144, 0, 1, ?4, ?5, ?5)",
            )
            .unwrap();
        let mut rng = rand::thread_rng();
        for arrival in arrivals {
            for _ in 0..arrival.keys {
                let mut key = [0u8; 16];
                rng.fill_bytes(&mut key);
                let day = rng.gen_range(1..=14u32);
                insert
                    .execute(rusqlite::params![
                        rng.r#gen::<i64>(),
                        key.as_slice(),
                        today - 144 * day,
                        day as i32 - 3,
                        arrival.hour
                    ])
                    .unwrap();
            }
        }
    }
    tx.commit().unwrap();
    config
}
