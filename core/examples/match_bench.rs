//! Matching throughput on the scenario: a 14-day store with 100 000 sightings
//! of 200 keys, matched against 1 000 000 diagnosis keys of which 50 were met.
//!
//! `cargo run --release -p kith-core --example match_bench [keys] [runs]`
//!
//! Prints keys/s on one core and on all cores, each measured `runs` times (default
//! 3, since a shared machine's speed varies from run to run), and the peak memory
//! (VmHWM).

#[path = "../benches/support/scenario.rs"]
mod scenario;

use std::time::Instant;

use kith_core::SightingIndex;

fn peak_memory_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Nanoseconds this thread has run on a CPU: under load, wall time overstates the cost.
fn thread_cpu_ns() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    stat.split_whitespace().next()?.parse().ok()
}

fn rate(keys: usize, seconds: f64) -> String {
    format!(
        "{:>10.0} keys/s ({:.3} s, {:.3} µs/key)",
        keys as f64 / seconds,
        seconds,
        seconds * 1e6 / keys as f64
    )
}

fn median(seconds: &mut [f64]) -> f64 {
    seconds.sort_by(f64::total_cmp);
    seconds[seconds.len() / 2]
}

fn main() {
    let keys: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse().expect("the number of keys"))
        .unwrap_or(1_000_000);
    let runs: usize = std::env::args()
        .nth(2)
        .map(|n| n.parse().expect("the number of runs"))
        .unwrap_or(3);
    let threads = rayon::current_num_threads();
    let (met, sightings) = scenario::device(1, 200, 100_000);
    println!(
        "store: {} sightings of {} keys over {} days",
        sightings.len(),
        met.len(),
        scenario::DAYS
    );

    let started = Instant::now();
    let index = SightingIndex::new(&sightings);
    println!(
        "index built in {:.1} ms",
        started.elapsed().as_secs_f64() * 1e3
    );

    let started = Instant::now();
    let generated = scenario::diagnosis_keys(2, keys, &met, 50).count();
    let generation = started.elapsed().as_secs_f64();
    println!(
        "generating {generated} keys alone: {}",
        rate(generated, generation)
    );

    let mut one_core = Vec::new();
    let mut all_cores = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        let cpu_before = thread_cpu_ns();
        let found = index
            .matches(scenario::diagnosis_keys(2, keys, &met, 50))
            .count();
        let cpu = thread_cpu_ns()
            .zip(cpu_before)
            .map(|(after, before)| (after - before) as f64 / 1e9);
        let seconds = started.elapsed().as_secs_f64();
        println!("1 core:     {} → {found} matches", rate(keys, seconds));
        if let Some(cpu) = cpu {
            println!("            {} (CPU time of the thread)", rate(keys, cpu));
        }
        one_core.push(seconds);

        let started = Instant::now();
        let found_in_parallel = index
            .par_matches(scenario::diagnosis_keys(2, keys, &met, 50))
            .len();
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "{threads} threads:  {} → {found_in_parallel} matches",
            rate(keys, seconds)
        );
        all_cores.push(seconds);
        assert_eq!(
            found, found_in_parallel,
            "sequential and parallel matching agree"
        );
    }
    println!("median of {runs} runs:");
    println!("  1 core:     {}", rate(keys, median(&mut one_core)));
    println!(
        "  {threads} threads:  {}",
        rate(keys, median(&mut all_cores))
    );
    match peak_memory_kib() {
        Some(kib) => println!("peak memory (VmHWM): {:.1} MiB", kib as f64 / 1024.0),
        None => println!("peak memory: /proc/self/status not available"),
    }
}
