//! Benchmark (a) of the export issue: one batcher pass over 1 000 000 published keys in one
//! window (sorting, de-duplication, two signed files of 500 000 keys each, index).
//!
//! ```sh
//! cargo run --release -p kith-server --example export_bench -- [--keys 1000000]
//! ```

use std::time::Instant;

use kith_server::{Clock, jobs};
use published_keys::Arrivals;

mod published_keys;

fn main() {
    let keys: usize = std::env::args()
        .skip_while(|a| a != "--keys")
        .nth(1)
        .map_or(1_000_000, |n| n.parse().expect("--keys N"));
    let dir = tempfile::tempdir().expect("temporary directory");
    let hour = Clock::system().now().get() / 3600 * 3600 - 2 * 3600;
    let started = Instant::now();
    let config = published_keys::data_dir_with_keys(dir.path(), 3600, &[Arrivals { hour, keys }]);
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
