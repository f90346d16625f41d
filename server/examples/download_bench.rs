//! Benchmarks (b) and (c) of the export issue: what devices download.
//!
//! ```sh
//! cargo build --release -p kith-server --bin kith-server --example download_bench
//! target/release/examples/download_bench            # both
//! target/release/examples/download_bench serve      # (b) only
//! target/release/examples/download_bench day        # (c) only
//! ```
//!
//! **(b) serve**: the export index, a typical hourly zip (~23 KB), the issue's ~1 MB zip and
//! a ~10 MB one, each downloaded over and over by 1, 64 and 256 concurrent clients (`wrk`,
//! keep-alive), from the release `kith-server` and from `nginx` serving the same file from
//! the same data directory, one after the other, in rounds; requests/s, p99 latency and
//! each server's CPU time, as a table at the end. `--files` and `--clients` pick a part of
//! that matrix (`serve --files daily --clients 256 --seconds 10` is the issue's run). nginx
//! runs on a temporary configuration (as many workers as cores, sendfile, tcp_nopush, an
//! open-file cache, no access log, keep-alive without a request limit, kith-server's
//! `Cache-Control`), on a free loopback port, and is stopped by its PID. The benchmark
//! checks that both send the same bytes with the same length, type and caching headers,
//! and prints both sides' headers, worker processes and threads.
//!
//! **(c) day**: 14 daily export files; 100 000 devices, each starting at its own moment
//! spread evenly over the run, fetch the index (conditionally, with the ETag of the index
//! they hold) and then the files they lack, each device on its own connection. What a
//! device holds is drawn once per device: half synced earlier today (the index answers
//! 304), 35 % yesterday (one new file), 12 % two to seven days ago, 3 % are new installs
//! (every file). Prints latency percentiles per request and per device (from the moment a
//! device was due, so a server that falls behind shows it) and the server's CPU time from
//! `/proc/<pid>/stat`.
//!
//! Both talk to loopback only and are bounded in time and count. Needs `wrk` and `nginx`
//! (Debian packages `wrk`, `nginx`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use kith_launch::{Nginx, ServerProcess};
use kith_server::{Clock, jobs};
use published_keys::Arrivals;
use rand::{Rng, SeedableRng};

mod published_keys;

#[derive(Debug, Parser)]
#[command(about = "Export download benchmarks against a local kith-server (and nginx)")]
struct Args {
    #[command(subcommand)]
    bench: Option<Bench>,
    /// The server binary (default: kith-server next to this example's directory).
    #[arg(long, global = true)]
    server: Option<PathBuf>,
}

#[derive(Clone, Debug, Subcommand)]
enum Bench {
    /// (b) export files of several sizes to 1–256 keep-alive clients, kith-server beside nginx.
    Serve(ServeArgs),
    /// (c) a day of downloads by many devices, compressed into one run.
    Day(DayArgs),
}

#[derive(Clone, Debug, Parser)]
struct ServeArgs {
    /// Files to download, one run of each per connection count.
    #[arg(long, value_delimiter = ',', default_values_t = [Served::Index, Served::Hourly, Served::Daily, Served::Large])]
    files: Vec<Served>,
    /// Concurrent connections, one run per count.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 64, 256])]
    clients: Vec<u32>,
    /// Seconds per server, file, connection count and round (at most 60).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=60))]
    seconds: u64,
    /// Rounds; each runs nginx then kith-server.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=5))]
    rounds: u32,
}

/// A file the serve benchmark downloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Served {
    /// The export index (a few lines).
    Index,
    /// A typical hourly export (1 100 keys, about 23 KB).
    Hourly,
    /// The issue's file: 50 000 keys, about 1 MB.
    Daily,
    /// A big day: 480 000 keys, about 10 MB.
    Large,
}

impl std::fmt::Display for Served {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let value = clap::ValueEnum::to_possible_value(self).expect("no variant is skipped");
        f.write_str(value.get_name())
    }
}

impl Served {
    /// Keys in the file (none for the index).
    fn keys(self) -> usize {
        match self {
            Self::Index => 0,
            Self::Hourly => 1_100,
            Self::Daily => 50_000,
            Self::Large => 480_000,
        }
    }
}

#[derive(Clone, Copy, Debug, Parser)]
struct DayArgs {
    /// Simulated devices.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    devices: u64,
    /// Length of the run in seconds, over which the devices' starts are spread (at most 600).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=600))]
    seconds: u64,
    /// Keys published per day (one export file each, 14 days).
    #[arg(long, default_value_t = 3_500)]
    keys_per_day: usize,
    /// Devices syncing at once at most (more wait, and their wait counts as latency).
    #[arg(long, default_value_t = 1024)]
    in_flight: usize,
}

const DAY: u64 = 86_400;

fn main() {
    let args = Args::parse();
    let binary = kith_launch::server_binary(args.server.clone()).unwrap_or_else(|e| panic!("{e}"));
    match args.bench {
        Some(Bench::Serve(serve)) => serve_bench(&binary, serve),
        Some(Bench::Day(day)) => day_bench(&binary, day),
        None => {
            serve_bench(&binary, ServeArgs::parse_from(["serve"]));
            day_bench(&binary, DayArgs::parse_from(["day"]));
        }
    }
}

/// A data directory with one exported daily file per entry of `keys_per_day` (oldest
/// first, the last one yesterday's), and the export's file names and sizes.
fn exported(dir: &Path, keys_per_day: &[usize]) -> Vec<(String, u64)> {
    let today = Clock::system().now().get() / DAY * DAY;
    let days = keys_per_day.len() as u64;
    let arrivals: Vec<Arrivals> = keys_per_day
        .iter()
        .zip((1..=days).rev())
        .map(|(&keys, ago)| Arrivals {
            hour: today - ago * DAY,
            keys,
        })
        .collect();
    let started = Instant::now();
    let config = published_keys::data_dir_with_keys(dir, None, DAY, &arrivals);
    let storage = jobs::open_existing_storage(&config).expect("storage");
    let exports = jobs::open_export_store(&config).expect("export store");
    let pass = jobs::pass(&*storage, &exports, &config, &Clock::system()).expect("export pass");
    let files: Vec<(String, u64)> = pass
        .export
        .files
        .iter()
        .map(|f| (f.name.clone(), f.bytes))
        .collect();
    println!(
        "exported {} keys into {} files ({:.2} MB) in {:.1} s",
        keys_per_day.iter().sum::<usize>(),
        files.len(),
        files.iter().map(|f| f.1).sum::<u64>() as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    files
}

/// kith-server on `dir`, with as many runtime worker threads as nginx's `worker_processes
/// auto` starts workers: one per core.
fn start_kith(binary: &Path, dir: &Path) -> ServerProcess {
    ServerProcess::start(
        binary,
        dir,
        &["--export-period", &DAY.to_string()],
        &[
            ("KITH_LOG", "warn"),
            ("TOKIO_WORKER_THREADS", &cores().to_string()),
        ],
    )
    .unwrap_or_else(|e| panic!("cannot start kith-server: {e}"))
}

/// CPU time (user + system) a process and, with `children`, its direct children have used.
fn cpu_seconds(pid: u32, with_children: bool) -> f64 {
    let used = |pid: u32| -> u64 {
        let fields = stat_fields(pid).unwrap_or_default();
        let field = |n: usize| fields.get(n).and_then(|f| f.parse::<u64>().ok());
        field(11)
            .zip(field(12))
            .map_or(0, |(user, system)| user + system)
    };
    let mut total = used(pid);
    if with_children {
        total += children(pid).into_iter().map(used).sum::<u64>();
    }
    total as f64 / clock_ticks_per_second()
}

/// The fields of `/proc/<pid>/stat` after the command name (which may hold spaces): state,
/// parent, ...
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields = stat.rsplit_once(')')?.1.split_whitespace();
    Some(fields.map(str::to_owned).collect())
}

/// Processes whose parent is `pid`.
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .filter(|&child| stat_fields(child).and_then(|f| f.get(1)?.parse().ok()) == Some(pid))
        .collect()
}

/// The cores this process may run on.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100.0)
}

fn require(tool: &str, package: &str) {
    let found = Command::new("sh")
        .args([
            "-c",
            &format!("command -v {tool} || test -x /usr/sbin/{tool}"),
        ])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(found, "{tool} not found: apt-get install {package}");
}

// ---------------------------------------------------------------- (b) serve

/// nginx on a temporary configuration (kith-launch's launcher), serving `root` on a loopback
/// port, tuned as a static file server would be, with kith-server's `Cache-Control`.
fn start_nginx(root: &Path, scratch: &Path) -> (Nginx, SocketAddr) {
    let addr = kith_launch::free_loopback_addr().unwrap();
    let http = format!(
        r#"    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    open_file_cache max=1000 inactive=60s;
    types {{ application/zip zip; text/plain txt; }}
    server {{
        listen {addr};
        root {root};
        charset utf-8;
        location /v1/exports/ {{ add_header Cache-Control "public, max-age=31536000, immutable"; }}
        location = /v1/exports/index.txt {{ add_header Cache-Control "public, max-age=60"; }}
    }}"#,
        root = root.display()
    );
    let nginx = Nginx::start(scratch, &http, &[addr]).unwrap_or_else(|e| panic!("{e}"));
    (nginx, addr)
}

/// What one wrk run measured.
#[derive(Debug)]
struct WrkRun {
    requests_per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    megabytes_per_second: f64,
    errors: String,
    cpu_seconds: f64,
}

/// `wrk` on `url` with `clients` connections for `seconds`, measuring the CPU time of `pid`
/// (and of its children: nginx's workers).
fn wrk(url: &str, clients: u32, seconds: u64, pid: u32, children: bool) -> WrkRun {
    let cpu_before = cpu_seconds(pid, children);
    let output = Command::new("wrk")
        .args([
            // wrk needs at least one connection per thread.
            &format!("-t{}", clients.min(2)),
            &format!("-c{clients}"),
            &format!("-d{seconds}s"),
            "--timeout",
            "10s",
            "--latency",
            url,
        ])
        .output()
        .expect("cannot run wrk: apt-get install wrk");
    let cpu_seconds = cpu_seconds(pid, children) - cpu_before;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "wrk failed: {text}");
    let after = |prefix: &str| {
        text.lines()
            .find_map(|line| line.trim().strip_prefix(prefix).map(str::trim))
            .unwrap_or_else(|| panic!("no {prefix:?} in wrk's output:\n{text}"))
    };
    let errors = ["Socket errors:", "Non-2xx or 3xx responses:"]
        .iter()
        .filter_map(|prefix| text.lines().find(|l| l.trim().starts_with(prefix)))
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("; ");
    WrkRun {
        requests_per_second: after("Requests/sec:").parse().unwrap(),
        p50_ms: wrk_duration_ms(after("50%")),
        p99_ms: wrk_duration_ms(after("99%")),
        megabytes_per_second: wrk_size_mb(after("Transfer/sec:")),
        errors,
        cpu_seconds,
    }
}

/// A number wrk printed with its unit (`1.23ms`, `1.02GB`), in the unit `units` maps to 1.
fn wrk_value(text: &str, units: &[(&str, f64)]) -> f64 {
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let scale = units
        .iter()
        .find(|(name, _)| *name == unit)
        .map_or(f64::NAN, |(_, scale)| *scale);
    number.parse::<f64>().unwrap_or(f64::NAN) * scale
}

/// A wrk latency in milliseconds.
fn wrk_duration_ms(text: &str) -> f64 {
    wrk_value(
        text,
        &[("us", 0.001), ("ms", 1.0), ("s", 1000.0), ("m", 60_000.0)],
    )
}

/// A wrk transfer rate in MiB (wrk's units are binary).
fn wrk_size_mb(text: &str) -> f64 {
    wrk_value(
        text,
        &[
            ("B", 1.0 / 1_048_576.0),
            ("KB", 1.0 / 1024.0),
            ("MB", 1.0),
            ("GB", 1024.0),
        ],
    )
}

/// What `curl` saw of `url`: the body's length and the response headers, without `Date`.
fn fetch_once(url: &str) -> (u64, Vec<String>) {
    let out = Command::new("curl")
        .args([
            "-sf",
            "-o",
            "/dev/null",
            "-D",
            "-",
            "-w",
            "%{size_download}",
            url,
        ])
        .output()
        .expect("cannot run curl: apt-get install curl");
    assert!(out.status.success(), "{url} does not answer");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (headers, size) = text
        .rsplit_once("\r\n\r\n")
        .expect("headers, then the size");
    let headers = headers
        .lines()
        .skip(1)
        .filter(|line| !line.to_ascii_lowercase().starts_with("date:"))
        .map(str::to_owned)
        .collect();
    (size.trim().parse().expect("a size"), headers)
}

/// The value of header `name` in `headers` as [`fetch_once`] returns them.
fn header<'a>(headers: &'a [String], name: &str) -> Option<&'a str> {
    headers.iter().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// One line of the result table: a file at a connection count, best rounds of each server.
struct Compared {
    served: Served,
    bytes: u64,
    clients: u32,
    kith: Vec<WrkRun>,
    nginx: Vec<WrkRun>,
}

fn serve_bench(binary: &Path, args: ServeArgs) {
    require("wrk", "wrk");
    println!(
        "(b) export files, {:?} connections, {} s per server, file, connection count and round",
        args.clients, args.seconds
    );
    let data = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let zips: Vec<Served> = args
        .files
        .iter()
        .copied()
        .filter(|&f| f != Served::Index)
        .collect();
    let keys: Vec<usize> = zips.iter().map(|f| f.keys()).collect();
    // With no zip asked for, one small one, so the index lists something.
    let exported = exported(data.path(), if keys.is_empty() { &[1_100] } else { &keys });
    let kith = start_kith(binary, data.path());
    let (nginx, nginx_addr) = start_nginx(data.path(), scratch.path());
    // Both sides' settings, as running: nginx's worker processes, kith-server's runtime.
    println!(
        "nginx: {} worker processes (worker_processes auto), sendfile, tcp_nopush, open_file_cache; \
         kith-server: {} tokio worker threads (TOKIO_WORKER_THREADS); wrk: min(2, connections) \
         threads, keep-alive; on {} cores",
        children(nginx.pid()).len(),
        cores(),
        cores(),
    );
    let mut table = Vec::new();
    for &served in &args.files {
        let path = match zips.iter().position(|&z| z == served) {
            Some(n) => exported[n].0.clone(),
            None => "v1/exports/index.txt".to_owned(),
        };
        let kith_url = format!("{}/{path}", kith.url());
        let nginx_url = format!("http://{nginx_addr}/{path}");
        let (bytes, kith_headers) = fetch_once(&kith_url);
        let (nginx_bytes, nginx_headers) = fetch_once(&nginx_url);
        assert_eq!(bytes, nginx_bytes, "both serve the same {path}");
        for name in ["content-length", "cache-control", "content-type"] {
            assert_eq!(
                header(&kith_headers, name),
                header(&nginx_headers, name),
                "both send the same {name} for {path}"
            );
        }
        let header_bytes = |headers: &[String]| headers.iter().map(|h| h.len() + 2).sum::<usize>();
        println!(
            "{served} = {path}: {bytes} bytes; headers (without Date) kith-server {} bytes {:?}, nginx {} bytes {:?}",
            header_bytes(&kith_headers),
            kith_headers,
            header_bytes(&nginx_headers),
            nginx_headers,
        );
        for &clients in &args.clients {
            let mut compared = Compared {
                served,
                bytes,
                clients,
                kith: Vec::new(),
                nginx: Vec::new(),
            };
            for round in 1..=args.rounds {
                let run = wrk(&nginx_url, clients, args.seconds, nginx.pid(), true);
                print_run(served, clients, "nginx", round, &run, args.seconds);
                compared.nginx.push(run);
                let run = wrk(&kith_url, clients, args.seconds, kith.pid(), false);
                print_run(served, clients, "kith-server", round, &run, args.seconds);
                compared.kith.push(run);
            }
            table.push(compared);
        }
    }
    nginx.stop().expect("nginx stops");
    kith.stop().expect("kith-server stops");
    print_table(&table, args.seconds);
}

fn print_run(served: Served, clients: u32, server: &str, round: u32, run: &WrkRun, seconds: u64) {
    println!(
        "  {served:<6} c={clients:<3} round {round} {server:<11} {:>8.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  {:>7.0} MiB/s  CPU {:.2} cores{}",
        run.requests_per_second,
        run.p50_ms,
        run.p99_ms,
        run.megabytes_per_second,
        run.cpu_seconds / seconds as f64,
        if run.errors.is_empty() {
            String::new()
        } else {
            format!("  ({})", run.errors)
        }
    );
}

/// The result: per file and connection count, each server's best round by requests/s (the
/// least disturbed by the rest of the machine) and its worst p99.
fn print_table(table: &[Compared], seconds: u64) {
    println!(
        "(b) result (best round's req/s, worst round's p99, CPU in cores of the best round):\n\
         file          bytes conns   kith req/s  nginx req/s  kith/nginx   kith p99  nginx p99  kith CPU nginx CPU"
    );
    let best = |runs: &[WrkRun]| {
        runs.iter()
            .max_by(|a, b| a.requests_per_second.total_cmp(&b.requests_per_second))
            .map_or((f64::NAN, f64::NAN), |r| {
                (r.requests_per_second, r.cpu_seconds / seconds as f64)
            })
    };
    let worst_p99 = |runs: &[WrkRun]| runs.iter().map(|r| r.p99_ms).fold(0.0, f64::max);
    for row in table {
        let (kith, kith_cpu) = best(&row.kith);
        let (nginx, nginx_cpu) = best(&row.nginx);
        println!(
            "{:<6} {:>12} {:>5} {kith:>12.0} {nginx:>12.0} {:>10.2}× {:>7.2} ms {:>7.2} ms {kith_cpu:>9.2} {nginx_cpu:>9.2}",
            row.served,
            row.bytes,
            row.clients,
            kith / nginx,
            worst_p99(&row.kith),
            worst_p99(&row.nginx),
        );
    }
}

// ---------------------------------------------------------------- (c) day

/// What one device holds before it syncs.
#[derive(Clone, Copy, Debug)]
enum Holding {
    /// The current index and every file.
    Current,
    /// An older index, and every file but the newest `n`.
    DaysBehind(usize),
    /// Nothing (a new install).
    Nothing,
}

impl Holding {
    fn draw(rng: &mut impl Rng) -> Self {
        match rng.gen_range(0..100) {
            0..50 => Self::Current,
            50..85 => Self::DaysBehind(1),
            85..97 => Self::DaysBehind(rng.gen_range(2..=7)),
            _ => Self::Nothing,
        }
    }
}

/// What one device saw.
#[derive(Debug, Default)]
struct Synced {
    /// Each request's latency, microseconds.
    requests_us: Vec<u32>,
    /// From when the device was due to when it had everything, microseconds.
    device_us: u32,
    not_modified: u32,
    files: u32,
    bytes: u64,
    errors: u32,
}

async fn sync_device(base: &str, index_etag: &str, holding: Holding, due: Instant) -> Synced {
    let mut synced = Synced::default();
    // Plain HTTP on loopback: loading TLS roots for every device's client would cost the
    // benchmark more CPU than the server spends answering.
    let http = match reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .tls_built_in_root_certs(false)
        .build()
    {
        Ok(http) => http,
        Err(_) => {
            synced.errors += 1;
            return synced;
        }
    };
    let mut request = http.get(format!("{base}/v1/exports/index.txt"));
    match holding {
        Holding::Current => request = request.header("if-none-match", index_etag),
        Holding::DaysBehind(_) => request = request.header("if-none-match", "\"an-older-index\""),
        Holding::Nothing => {}
    }
    let sent = Instant::now();
    let index = match request.send().await {
        Ok(r) if r.status() == 304 => {
            synced.not_modified += 1;
            None
        }
        Ok(r) if r.status() == 200 => r.text().await.ok(),
        _ => {
            synced.errors += 1;
            None
        }
    };
    synced.requests_us.push(sent.elapsed().as_micros() as u32);
    if let Some(index) = index {
        let names: Vec<&str> = index.lines().collect();
        let lacking = match holding {
            Holding::Current => 0,
            Holding::DaysBehind(n) => n.min(names.len()),
            Holding::Nothing => names.len(),
        };
        for name in &names[names.len() - lacking..] {
            let sent = Instant::now();
            match http.get(format!("{base}/{name}")).send().await {
                Ok(r) if r.status() == 200 => match r.bytes().await {
                    Ok(body) => {
                        synced.files += 1;
                        synced.bytes += body.len() as u64;
                    }
                    Err(_) => synced.errors += 1,
                },
                _ => synced.errors += 1,
            }
            synced.requests_us.push(sent.elapsed().as_micros() as u32);
        }
    }
    synced.device_us = due.elapsed().as_micros() as u32;
    synced
}

fn percentile_ms(sorted: &[u32], p: f64) -> f64 {
    let Some(last) = sorted.len().checked_sub(1) else {
        return 0.0;
    };
    f64::from(sorted[(last as f64 * p).round() as usize]) / 1000.0
}

fn day_bench(binary: &Path, args: DayArgs) {
    println!(
        "(c) a day of downloads: {} devices over {} s, 14 daily files of {} keys",
        args.devices, args.seconds, args.keys_per_day
    );
    let data = tempfile::tempdir().unwrap();
    let files = exported(data.path(), &[args.keys_per_day; 14]);
    let kith = start_kith(binary, data.path());
    let base = kith.url();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let index_etag = runtime.block_on(async {
        let index = reqwest::get(format!("{base}/v1/exports/index.txt"))
            .await
            .expect("index");
        let listed = index.headers()["etag"].to_str().unwrap().to_owned();
        let text = index.text().await.unwrap();
        assert_eq!(
            text.lines().count(),
            files.len(),
            "the index lists every file"
        );
        listed
    });

    let mut rng = rand::rngs::StdRng::seed_from_u64(14);
    let holdings: Vec<Holding> = (0..args.devices).map(|_| Holding::draw(&mut rng)).collect();
    let spacing = Duration::from_secs(args.seconds).div_f64(args.devices as f64);
    let cpu_before = cpu_seconds(kith.pid(), false);
    let started = Instant::now();
    let results = runtime.block_on(async {
        let slots = Arc::new(tokio::sync::Semaphore::new(args.in_flight));
        let base: Arc<str> = base.into();
        let etag: Arc<str> = index_etag.into();
        let mut tasks = Vec::with_capacity(holdings.len());
        for (i, holding) in holdings.into_iter().enumerate() {
            let due = started + spacing.mul_f64(i as f64);
            tokio::time::sleep_until(due.into()).await;
            let slot = slots.clone().acquire_owned().await.unwrap();
            let (base, etag) = (base.clone(), etag.clone());
            tasks.push(tokio::spawn(async move {
                let synced = sync_device(&base, &etag, holding, due).await;
                drop(slot);
                synced
            }));
        }
        let mut results = Vec::with_capacity(tasks.len());
        for task in tasks {
            results.push(task.await.unwrap_or_default());
        }
        results
    });
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(kith.pid(), false) - cpu_before;
    kith.stop().expect("kith-server stops");

    let mut requests: Vec<u32> = results
        .iter()
        .flat_map(|r| r.requests_us.iter().copied())
        .collect();
    let mut devices: Vec<u32> = results.iter().map(|r| r.device_us).collect();
    requests.sort_unstable();
    devices.sort_unstable();
    let sum = |f: fn(&Synced) -> u64| results.iter().map(f).sum::<u64>();
    println!(
        "(c) result: {} devices in {elapsed:.1} s: {} requests ({} index 304, {} files, {:.2} GB), {} errors",
        results.len(),
        requests.len(),
        sum(|r| r.not_modified.into()),
        sum(|r| r.files.into()),
        sum(|r| r.bytes) as f64 / 1e9,
        sum(|r| r.errors.into()),
    );
    println!(
        "    request latency ms: p50 {:.2}  p99 {:.2}  max {:.2};  device sync from due ms: p50 {:.2}  p99 {:.2}  max {:.2}",
        percentile_ms(&requests, 0.5),
        percentile_ms(&requests, 0.99),
        percentile_ms(&requests, 1.0),
        percentile_ms(&devices, 0.5),
        percentile_ms(&devices, 0.99),
        percentile_ms(&devices, 1.0),
    );
    println!(
        "    kith-server CPU: {cpu:.2} s over {elapsed:.1} s = {:.2} cores ({:.1} µs per request)",
        cpu / elapsed,
        cpu * 1e6 / requests.len().max(1) as f64
    );
}
