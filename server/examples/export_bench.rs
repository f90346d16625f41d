//! Benchmark (a) of the export issue: one batcher pass over 1 000 000 published keys in one
//! window (sorting, de-duplication, two signed files of 500 000 keys each, index).
//!
//! ```sh
//! cargo run --release -p kith-server --example export_bench -- [--keys 1000000] \
//!     [--export-store 's3://bucket?endpoint=http://127.0.0.1:9000'] \
//!     [--postgres | --database postgres://…]
//! ```
//!
//! With `--database`, the keys are in that PostgreSQL database (which must be empty); with
//! `--postgres`, in a throw-away cluster started for the run (kith-launch's, on a Unix
//! socket in a temporary directory, stopped at the end).
//! With `--export-store`, the files and the index go to that bucket (which must exist;
//! credentials from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), as `kith-server
//! --export-store` writes them.

use std::time::Instant;

use kith_server::{Clock, jobs};
use published_keys::Arrivals;

mod published_keys;

fn main() {
    let flag = |name: &str| std::env::args().skip_while(|a| a != name).nth(1);
    let keys: usize = flag("--keys").map_or(1_000_000, |n| n.parse().expect("--keys N"));
    let store = flag("--export-store").map(|url| url.parse().expect("--export-store s3://…"));
    let cluster_dir = tempfile::tempdir().expect("temporary directory");
    let cluster = std::env::args().any(|a| a == "--postgres").then(|| {
        kith_launch::postgres::Cluster::start(cluster_dir.path(), "")
            .unwrap_or_else(|e| panic!("{e}"))
    });
    let database = flag("--database").or_else(|| cluster.as_ref().map(|c| c.url("postgres")));
    let dir = tempfile::tempdir().expect("temporary directory");
    let hour = Clock::system().now().get() / 3600 * 3600 - 2 * 3600;
    let started = Instant::now();
    let mut config = published_keys::data_dir_with_keys(
        dir.path(),
        database.as_deref(),
        3600,
        &[Arrivals { hour, keys }],
    );
    config.export_store = store;
    println!(
        "inserted {keys} keys into {} in {:.2} s",
        if database.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        },
        started.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let storage = jobs::open_existing_storage(&config).expect("storage");
    let exports = jobs::open_export_store(&config).expect("export store");
    let to = config
        .export_store
        .as_ref()
        .map_or("the data directory", |url| url.as_str());
    let pass = jobs::pass(&*storage, &exports, &config, &Clock::system()).expect("export pass");
    let seconds = started.elapsed().as_secs_f64();
    // Key export files only: not the trace-warning packages beside them.
    let files: Vec<_> = (pass.export.files.iter())
        .filter(|f| f.name.starts_with("v1/exports/"))
        .collect();
    let bytes: u64 = files.iter().map(|f| f.bytes).sum();
    let exported: usize = files.iter().map(|f| f.real_keys).sum();
    let keys_in_files: usize = files.iter().map(|f| f.real_keys + f.padding_keys).sum();
    println!(
        "exported {exported} keys into {} files ({:.1} MB, {keys_in_files} keys with padding, {:.2} bytes a key) to {to} in {seconds:.2} s ({:.0} keys/s)",
        files.len(),
        bytes as f64 / 1e6,
        bytes as f64 / keys_in_files as f64,
        exported as f64 / seconds
    );
    drop(storage);
    drop(cluster);
}
