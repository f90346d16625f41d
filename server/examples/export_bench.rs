//! Benchmark (a) of the export issue: one batcher pass over 1 000 000 published keys in one
//! window (sorting, de-duplication, two signed files of 500 000 keys each, index).
//!
//! ```sh
//! cargo run --release -p kith-server --example export_bench -- [--keys 1000000]
//! ```

use std::time::Instant;

use kith_server::{Clock, Config, Server, jobs};
use rand::{Rng, RngCore};

fn main() {
    let keys: usize = std::env::args()
        .skip_while(|a| a != "--keys")
        .nth(1)
        .map_or(1_000_000, |n| n.parse().expect("--keys N"));
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut config = Config::with_data_dir(dir.path());
    config.export.min_age_seconds = 0;
    drop(Server::open(config.clone(), Clock::system()).expect("set up the data directory"));

    let now = Clock::system().now().get();
    let hour = now / 3600 * 3600 - 2 * 3600;
    let mut conn = rusqlite::Connection::open(dir.path().join("kith.sqlite3")).unwrap();
    let started = Instant::now();
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
        let today = (now / 600) as u32 / 144 * 144;
        for _ in 0..keys {
            let mut key = [0u8; 16];
            rng.fill_bytes(&mut key);
            let day = rng.gen_range(1..=14u32);
            insert
                .execute(rusqlite::params![
                    rng.r#gen::<i64>(),
                    key.as_slice(),
                    today - 144 * day,
                    day as i32 - 3,
                    hour
                ])
                .unwrap();
        }
    }
    tx.commit().unwrap();
    println!(
        "inserted {keys} keys in {:.2} s",
        started.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let storage = jobs::open_existing_storage(&config).expect("storage");
    let pass = jobs::pass(&*storage, &config, &Clock::system()).expect("export pass");
    let seconds = started.elapsed().as_secs_f64();
    let bytes: u64 = pass.export.files.iter().map(|f| f.bytes).sum();
    let exported: usize = pass.export.files.iter().map(|f| f.real_keys).sum();
    println!(
        "exported {exported} keys into {} files ({:.1} MB) in {seconds:.2} s ({:.0} keys/s)",
        pass.export.files.len(),
        bytes as f64 / 1e6,
        exported as f64 / seconds
    );
}
