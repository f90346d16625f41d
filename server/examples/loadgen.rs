//! Load benchmark for `kith-server`: sealed publishes from many concurrent clients.
//!
//! ```sh
//! cargo build --release -p kith-server --bin kith-server --example loadgen
//! target/release/examples/loadgen --clients 64 --seconds 20
//! target/release/examples/loadgen --clients 64 --seconds 20 --kill-test
//! target/release/examples/loadgen --compare --seconds 20   # SQLite, PostgreSQL, PostgreSQL ×2
//! ```
//!
//! It starts the release `kith-server` binary on 127.0.0.1 (loopback only) with a
//! temporary data directory, issues one code per request through the admin API, seals
//! every request beforehand (as phones on other machines would), then sends them for
//! the given time and prints throughput and latency percentiles. `--kill-test`
//! SIGKILLs the server halfway, restarts it on the same data and checks that every
//! acknowledged publish was stored.
//!
//! `--compare` runs the same load three times in one run: (a) one instance on SQLite, (b)
//! one instance on PostgreSQL, (c) two instances on one PostgreSQL database (the second
//! with the first one's key files, the clients taking turns between them), each on a fresh
//! database of the PostgreSQL server `--postgres` names, or else of a throw-away cluster it
//! starts itself (`initdb` + `pg_ctl` on a Unix socket in a temporary directory, without
//! fsync — like SQLite's default `synchronous=NORMAL`, a commit reaches the operating
//! system, not the disk — stopped when the run ends). Besides publishes/s and latency it
//! prints the CPU time the servers, PostgreSQL's processes and this load generator used.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use clap::Parser;
use kith_launch::ServerProcess;
use rand::RngCore;
use serde_json::{Value, json};

#[derive(Debug, Parser)]
#[command(about = "Publish load against a local kith-server")]
struct Args {
    /// Concurrent clients.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Length of the run in seconds (at most 120).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=120))]
    seconds: u64,
    /// Keys per publish.
    #[arg(long, default_value_t = 14, value_parser = clap::value_parser!(u32).range(1..=30))]
    keys: u32,
    /// Requests prepared (each with its own code; a sealed one holds 49 200 bytes in
    /// memory); the run stops early if they run out.
    #[arg(long, default_value_t = 40_000)]
    requests: usize,
    /// Send plain JSON instead of sealed bodies.
    #[arg(long)]
    plain: bool,
    /// Send chaff (`"fake": true`) only, to compare its latency with real uploads.
    #[arg(long)]
    fake: bool,
    /// SIGKILL the server halfway through and check that nothing acknowledged was lost.
    #[arg(long)]
    kill_test: bool,
    /// The server binary (default: kith-server next to this example's directory).
    #[arg(long)]
    server: Option<PathBuf>,
    /// Run (a) SQLite, one instance, (b) PostgreSQL, one instance, (c) PostgreSQL, two
    /// instances, one after the other, and print them side by side.
    #[arg(long, conflicts_with = "kill_test")]
    compare: bool,
    /// The PostgreSQL server of `--compare` (`postgres://user@host/db`; each run gets a
    /// database of its own on it). Default: a throw-away cluster started for the run.
    #[arg(long, requires = "compare")]
    postgres: Option<String>,
}

/// The files every instance on one database shares (server/README.md, "Several instances").
const SHARED_KEY_FILES: [&str; 4] = [
    "code-pepper.hex",
    "admin-key.sha256",
    "hpke-private-key.hex",
    "export-signing-key.pem",
];

fn start_server(binary: &Path, data_dir: &Path, database: Option<&str>) -> ServerProcess {
    let args = database.map_or_else(Vec::new, |url| vec!["--database", url]);
    ServerProcess::start(binary, data_dir, &args, &[("KITH_LOG", "warn")])
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()))
}

/// User plus system CPU seconds of process `pid` so far, from `/proc/<pid>/stat`.
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // After the command name in parentheses: state is field 3, utime 14, stime 15.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    // USER_HZ is 100 on Linux.
    ticks as f64 / 100.0
}

/// CPU seconds of `pid` and every process whose parent it is (PostgreSQL's backends).
fn cpu_seconds_with_children(pid: u32) -> f64 {
    let children: f64 = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&child| {
            std::fs::read_to_string(format!("/proc/{child}/status")).is_ok_and(|status| {
                status
                    .lines()
                    .any(|line| line.strip_prefix("PPid:").map(str::trim) == Some(&pid.to_string()))
            })
        })
        .map(cpu_seconds)
        .sum();
    cpu_seconds(pid) + children
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    f64::from(sorted[index]) / 1000.0
}

async fn json_answer(request: reqwest::RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}

/// One prepared request: its body, what opens a sealed answer, and its first key (to
/// look up after a kill).
struct Prepared {
    body: Vec<u8>,
    opener: Option<kith_server::sealed::ResponseOpener>,
    key: [u8; 16],
}

/// Whether an answer says the keys were taken: a 200, and for a sealed request a 200
/// sealed inside.
fn accepted(prepared: &Prepared, status: u16, body: &[u8]) -> bool {
    if status != 200 {
        return false;
    }
    let Some(opener) = &prepared.opener else {
        return true;
    };
    opener
        .open(body)
        .ok()
        .and_then(|plain| serde_json::from_slice::<Value>(&plain).ok())
        .is_some_and(|inside| inside["status"] == 200)
}

/// Where a run's servers keep their data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Leg {
    /// (a) one instance on SQLite.
    Sqlite,
    /// (b), (c): this many instances on one PostgreSQL database.
    Postgres(usize),
}

impl std::fmt::Display for Leg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite => f.write_str("SQLite, 1 instance"),
            Self::Postgres(1) => f.write_str("PostgreSQL, 1 instance"),
            Self::Postgres(n) => write!(f, "PostgreSQL, {n} instances"),
        }
    }
}

/// The running servers of one run, on temporary data directories.
struct Instances {
    servers: Vec<ServerProcess>,
    admin: String,
    database: Option<String>,
    dirs: Vec<tempfile::TempDir>,
}

impl Instances {
    /// `count` instances on `database` (SQLite without one), the others with the first
    /// one's key files.
    fn start(binary: &Path, database: Option<String>, count: usize) -> Self {
        let first = tempfile::tempdir().unwrap();
        let a = start_server(binary, first.path(), database.as_deref());
        let admin = a
            .admin_key
            .clone()
            .expect("a first start prints the admin key");
        let mut servers = vec![a];
        let mut dirs = vec![first];
        for _ in 1..count {
            let dir = tempfile::tempdir().unwrap();
            for file in SHARED_KEY_FILES {
                std::fs::copy(dirs[0].path().join(file), dir.path().join(file)).unwrap();
            }
            servers.push(start_server(binary, dir.path(), database.as_deref()));
            dirs.push(dir);
        }
        Self {
            servers,
            admin,
            database,
            dirs,
        }
    }

    fn cpu_seconds(&self) -> f64 {
        self.servers.iter().map(|s| cpu_seconds(s.pid())).sum()
    }
}

/// Where `--compare` makes its PostgreSQL databases.
enum PostgresServer {
    /// A server given on the command line.
    Given(String),
    /// A throw-away cluster, and the directory it lives in (removed after it stopped).
    Started {
        cluster: kith_launch::postgres::Cluster,
        _dir: tempfile::TempDir,
    },
}

impl PostgresServer {
    fn start(given: Option<String>) -> Self {
        if let Some(url) = given {
            return Self::Given(url);
        }
        let dir = tempfile::tempdir().unwrap();
        let cluster = kith_launch::postgres::Cluster::start(dir.path(), "-c max_connections=200")
            .unwrap_or_else(|e| panic!("{e}"));
        println!(
            "started a throw-away PostgreSQL cluster in {} (no fsync)",
            dir.path().display()
        );
        Self::Started { cluster, _dir: dir }
    }

    /// The postmaster's pid, when this program started it (so its CPU time can be read).
    fn pid(&self) -> Option<u32> {
        match self {
            Self::Given(_) => None,
            Self::Started { cluster, .. } => cluster.pid().ok(),
        }
    }

    /// A fresh database on the server: its URL.
    fn fresh_database(&self) -> String {
        let server = match self {
            Self::Given(url) => url.clone(),
            Self::Started { cluster, .. } => cluster.url("postgres"),
        };
        let name = format!("kith_loadgen_{:016x}", rand::random::<u64>());
        kith_server::create_database(&server, &name).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// What one run measured.
struct Outcome {
    acknowledged: Vec<usize>,
    failures: usize,
    latencies: Vec<u32>,
    elapsed: Duration,
    ran_out: bool,
}

impl Outcome {
    fn rate(&self) -> f64 {
        self.acknowledged.len() as f64 / self.elapsed.as_secs_f64()
    }
}

/// Issues one code per request through the first instance's admin API.
async fn issue_codes(
    http: &reqwest::Client,
    instances: &Instances,
    requests: usize,
) -> Vec<String> {
    let started = Instant::now();
    let mut codes = Vec::with_capacity(requests);
    while codes.len() < requests {
        // As many as one call may ask for (one statement on PostgreSQL).
        let count = (requests - codes.len()).min(10_000);
        let body = json_answer(
            http.post(format!(
                "{}/v1/admin/codes",
                instances.servers[0].operator_url()
            ))
            .bearer_auth(&instances.admin)
            .json(&json!({"diagnosis": "confirmed_test", "count": count})),
        )
        .await;
        codes.extend(
            body["codes"]
                .as_array()
                .expect("codes")
                .iter()
                .map(|c| c.as_str().unwrap().to_owned()),
        );
    }
    println!(
        "issued {} codes in {:.1} s",
        codes.len(),
        started.elapsed().as_secs_f64()
    );
    codes
}

/// One request per code, sealed (unless `--plain`) in advance on all cores.
async fn prepare(
    http: &reqwest::Client,
    server: &ServerProcess,
    codes: &[String],
    args: &Args,
) -> Vec<Prepared> {
    let config = json_answer(http.get(format!("{}/v1/config", server.url()))).await;
    let public_key = STANDARD
        .decode(config["hpke"]["publicKey"].as_str().unwrap())
        .unwrap();
    let started = Instant::now();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let today = (now / 600) as u32 / 144 * 144;
    let (keys_per, plain, fake) = (args.keys, args.plain, args.fake);
    let prepare = |code: &String| {
        let mut rng = rand::thread_rng();
        let keys: Vec<[u8; 16]> = (0..keys_per)
            .map(|_| {
                let mut k = [0u8; 16];
                rng.fill_bytes(&mut k);
                k
            })
            .collect();
        let doc = json!({
            "temporaryExposureKeys": keys.iter().enumerate().map(|(d, k)| json!({
                "key": STANDARD.encode(k),
                "rollingStartNumber": today - 144 * (d as u32 / 2),
                "rollingPeriod": 144,
            })).collect::<Vec<_>>(),
            "verificationCode": code,
            "fake": fake,
        });
        let (body, opener) = if plain {
            (doc.to_string().into_bytes(), None)
        } else {
            let (body, opener) =
                kith_server::sealed::seal(&public_key, doc.to_string().as_bytes(), &mut rng)
                    .unwrap();
            (body, Some(opener))
        };
        Prepared {
            body,
            opener,
            key: keys[0],
        }
    };
    let half = codes.len() / 2;
    let (first, second) = std::thread::scope(|s| {
        let a = s.spawn(|| codes[..half].iter().map(prepare).collect::<Vec<_>>());
        let b = s.spawn(|| codes[half..].iter().map(prepare).collect::<Vec<_>>());
        (a.join().unwrap(), b.join().unwrap())
    });
    let prepared: Vec<Prepared> = first.into_iter().chain(second).collect();
    println!(
        "prepared {} {} bodies of {} bytes in {:.1} s",
        prepared.len(),
        if plain { "plain" } else { "sealed" },
        prepared[0].body.len(),
        started.elapsed().as_secs_f64()
    );
    prepared
}

/// Sends the prepared requests from `args.clients` closed-loop clients, client `i` to
/// `urls[i % urls.len()]`, until the time is up; with `--kill-test`, kills `victim` halfway.
async fn run(
    http: &reqwest::Client,
    urls: &[String],
    prepared: Arc<Vec<Prepared>>,
    args: &Args,
    victim: Option<ServerProcess>,
) -> Outcome {
    let next = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let content_type = if args.plain {
        "application/json"
    } else {
        kith_server::sealed::CONTENT_TYPE
    };
    let started = Instant::now();
    let stop_on_failure = args.kill_test;
    let clients: Vec<_> = (0..args.clients)
        .map(|i| {
            let url = format!("{}/v1/publish", urls[i % urls.len()]);
            let (http, next, prepared) = (http.clone(), next.clone(), prepared.clone());
            tokio::spawn(async move {
                let mut latencies_us = Vec::new();
                let mut acknowledged = Vec::new();
                let mut failures = 0usize;
                while Instant::now() < deadline {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(request) = prepared.get(i) else {
                        break;
                    };
                    let sent = Instant::now();
                    let response = http
                        .post(&url)
                        .header("content-type", content_type)
                        .body(request.body.clone())
                        .send()
                        .await;
                    let ok = match response {
                        Ok(r) => {
                            let status = r.status().as_u16();
                            r.bytes()
                                .await
                                .is_ok_and(|body| accepted(request, status, &body))
                        }
                        Err(_) => false,
                    };
                    if ok {
                        latencies_us.push(sent.elapsed().as_micros() as u32);
                        acknowledged.push(i);
                    } else {
                        failures += 1;
                        if stop_on_failure {
                            break; // the server was killed
                        }
                    }
                }
                (latencies_us, acknowledged, failures)
            })
        })
        .collect();
    if let Some(victim) = victim {
        tokio::time::sleep(Duration::from_secs(args.seconds) / 2).await;
        victim.kill().unwrap();
        println!(
            "SIGKILLed the server after {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    let mut outcome = Outcome {
        acknowledged: Vec::new(),
        failures: 0,
        latencies: Vec::new(),
        elapsed: Duration::ZERO,
        ran_out: false,
    };
    for client in clients {
        let (l, a, f) = client.await.unwrap();
        outcome.latencies.extend(l);
        outcome.acknowledged.extend(a);
        outcome.failures += f;
    }
    outcome.elapsed = if args.kill_test {
        Duration::from_secs(args.seconds) / 2
    } else {
        started.elapsed()
    };
    outcome.latencies.sort_unstable();
    outcome.ran_out = next.load(Ordering::Relaxed) >= prepared.len();
    outcome
}

fn print_outcome(outcome: &Outcome, args: &Args) {
    println!(
        "{} clients, {} keys/publish, {}{}: {} acknowledged in {:.1} s = {:.0} publishes/s; latency ms p50 {:.2} p90 {:.2} p99 {:.2} max {:.2}; {} failed{}",
        args.clients,
        args.keys,
        if args.plain { "plain JSON" } else { "sealed" },
        if args.fake { " chaff" } else { "" },
        outcome.acknowledged.len(),
        outcome.elapsed.as_secs_f64(),
        outcome.rate(),
        percentile(&outcome.latencies, 0.50),
        percentile(&outcome.latencies, 0.90),
        percentile(&outcome.latencies, 0.99),
        percentile(&outcome.latencies, 1.0),
        outcome.failures,
        if args.kill_test {
            " (in flight at the kill)"
        } else {
            ""
        },
    );
    if !args.kill_test && outcome.ran_out {
        println!("note: ran out of prepared requests; raise --requests");
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = Args::parse();
    let binary = kith_launch::server_binary(args.server.clone()).unwrap_or_else(|e| panic!("{e}"));
    if args.compare {
        return compare(&binary, &args).await;
    }
    let http = client();
    let instances = Instances::start(&binary, None, 1);
    let codes = issue_codes(&http, &instances, args.requests).await;
    let prepared = Arc::new(prepare(&http, &instances.servers[0], &codes, &args).await);
    let urls = vec![instances.servers[0].url()];
    let Instances {
        mut servers, dirs, ..
    } = instances;
    let victim = args.kill_test.then(|| servers.remove(0));
    let outcome = run(&http, &urls, prepared.clone(), &args, victim).await;
    print_outcome(&outcome, &args);

    if args.kill_test {
        // Restart on the same data: recovery must keep every acknowledged publish.
        let data = dirs[0].path();
        let restarted = start_server(&binary, data, None);
        let health = http
            .get(format!("{}/healthz", restarted.url()))
            .send()
            .await
            .map(|r| r.status().as_u16());
        let stored = kith_server::inspect::StoredData::open(data).unwrap();
        let stored_keys = stored.all_key_bytes().unwrap();
        let missing = outcome
            .acknowledged
            .iter()
            .filter(|&&i| !stored_keys.contains(&prepared[i].key))
            .count();
        println!(
            "after restart (healthz {:?}): {} acknowledged publishes, {} keys stored ({} per publish), {} acknowledged publishes missing",
            health.ok(),
            outcome.acknowledged.len(),
            stored_keys.len(),
            args.keys,
            missing
        );
        let _ = restarted.stop();
        assert_eq!(missing, 0, "acknowledged publishes were lost");
    } else {
        for server in servers {
            let _ = server.stop();
        }
    }
}

/// `--compare`: the three runs, then a table.
async fn compare(binary: &Path, args: &Args) {
    let postgres = PostgresServer::start(args.postgres.clone());
    let mut rows = Vec::new();
    for leg in [Leg::Sqlite, Leg::Postgres(1), Leg::Postgres(2)] {
        println!("== ({}) {leg}", ["a", "b", "c"][rows.len()]);
        let (database, count) = match leg {
            Leg::Sqlite => (None, 1),
            Leg::Postgres(n) => (Some(postgres.fresh_database()), n),
        };
        let http = client();
        let instances = Instances::start(binary, database, count);
        let codes = issue_codes(&http, &instances, args.requests).await;
        let prepared = Arc::new(prepare(&http, &instances.servers[0], &codes, args).await);
        let urls: Vec<String> = instances.servers.iter().map(ServerProcess::url).collect();
        let (servers_before, postgres_before, own_before) = (
            instances.cpu_seconds(),
            postgres.pid().map(cpu_seconds_with_children),
            cpu_seconds(std::process::id()),
        );
        let outcome = run(&http, &urls, prepared, args, None).await;
        let cpu = |after: f64, before: f64| (after - before) / outcome.elapsed.as_secs_f64();
        let servers_cpu = cpu(instances.cpu_seconds(), servers_before);
        let postgres_cpu = postgres
            .pid()
            .map(cpu_seconds_with_children)
            .zip(postgres_before)
            .map(|(after, before)| cpu(after, before));
        let own_cpu = cpu(cpu_seconds(std::process::id()), own_before);
        print_outcome(&outcome, args);
        if let Some(url) = &instances.database {
            let stored = kith_server::inspect::StoredData::connect(&url.parse().unwrap())
                .unwrap()
                .count_keys()
                .unwrap();
            println!("{stored} keys stored");
        }
        rows.push((leg, outcome, servers_cpu, postgres_cpu, own_cpu));
        for server in instances.servers {
            let _ = server.stop();
        }
        drop(instances.dirs);
    }
    println!(
        "\n{} clients, {} keys a publish, {}, {} s each; CPU in cores (of {}) over the run",
        args.clients,
        args.keys,
        if args.plain { "plain JSON" } else { "sealed" },
        args.seconds,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    println!(
        "| run | publishes/s | p50 ms | p99 ms | failed | kith-server CPU | PostgreSQL CPU | loadgen CPU |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let sqlite_rate = rows[0].1.rate();
    for (leg, outcome, servers_cpu, postgres_cpu, own_cpu) in &rows {
        println!(
            "| {leg} | {:.0} ({:.2}× SQLite) | {:.2} | {:.2} | {} | {servers_cpu:.2} | {} | {own_cpu:.2} |",
            outcome.rate(),
            outcome.rate() / sqlite_rate,
            percentile(&outcome.latencies, 0.50),
            percentile(&outcome.latencies, 0.99),
            outcome.failures,
            postgres_cpu.map_or_else(|| "n/a".to_owned(), |cpu| format!("{cpu:.2}")),
        );
    }
    drop(postgres);
}
