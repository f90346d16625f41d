//! Load benchmark for `kith-server`: sealed publishes from many concurrent clients.
//!
//! ```sh
//! cargo build --release -p kith-server --bin kith-server --example loadgen
//! target/release/examples/loadgen --clients 64 --seconds 20
//! target/release/examples/loadgen --clients 64 --seconds 20 --kill-test
//! ```
//!
//! It starts the release `kith-server` binary on 127.0.0.1 (loopback only) with a
//! temporary data directory, issues one code per request through the admin API, seals
//! every request beforehand (as phones on other machines would), then sends them for
//! the given time and prints throughput and latency percentiles. `--kill-test`
//! SIGKILLs the server halfway, restarts it on the same data and checks that every
//! acknowledged publish was stored.

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
    /// Requests prepared (each with its own code); the run stops early if they run out.
    #[arg(long, default_value_t = 150_000)]
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
}

fn start_server(binary: &Path, data_dir: &Path) -> ServerProcess {
    ServerProcess::start(binary, data_dir, &[], &[("KITH_LOG", "warn")])
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()))
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

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = Args::parse();
    let binary = kith_launch::server_binary(args.server.clone()).unwrap_or_else(|e| panic!("{e}"));
    let data = tempfile::tempdir().unwrap();
    let started_server = start_server(&binary, data.path());
    let admin = started_server.admin_key.clone().unwrap();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    // Codes, 10 000 per admin call.
    let started = Instant::now();
    let mut codes = Vec::with_capacity(args.requests);
    while codes.len() < args.requests {
        let count = (args.requests - codes.len()).min(10_000);
        let body = json_answer(
            http.post(format!("{}/v1/admin/codes", started_server.operator_url()))
                .bearer_auth(&admin)
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

    // Bodies, sealed in advance on all cores.
    let config = json_answer(http.get(format!("{}/v1/config", started_server.url()))).await;
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
    let prepared: Arc<Vec<Prepared>> = Arc::new(first.into_iter().chain(second).collect());
    println!(
        "prepared {} {} bodies of {} bytes in {:.1} s",
        prepared.len(),
        if plain { "plain" } else { "sealed" },
        prepared[0].body.len(),
        started.elapsed().as_secs_f64()
    );

    // The run.
    let next = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let content_type = if plain {
        "application/json"
    } else {
        kith_server::sealed::CONTENT_TYPE
    };
    let url = format!("{}/v1/publish", started_server.url());
    let mut server = Some(started_server);
    let started = Instant::now();
    let stop_on_failure = args.kill_test;
    let clients: Vec<_> = (0..args.clients)
        .map(|_| {
            let (http, url, next, prepared) =
                (http.clone(), url.clone(), next.clone(), prepared.clone());
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
    if args.kill_test {
        tokio::time::sleep(Duration::from_secs(args.seconds) / 2).await;
        server.take().expect("started").kill().unwrap();
        println!(
            "SIGKILLed the server after {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    let mut latencies = Vec::new();
    let mut acknowledged = Vec::new();
    let mut failures = 0;
    for client in clients {
        let (l, a, f) = client.await.unwrap();
        latencies.extend(l);
        acknowledged.extend(a);
        failures += f;
    }
    let elapsed = if args.kill_test {
        Duration::from_secs(args.seconds) / 2
    } else {
        started.elapsed()
    };
    latencies.sort_unstable();
    println!(
        "{} clients, {} keys/publish, {}{}: {} acknowledged in {:.1} s = {:.0} publishes/s; latency ms p50 {:.2} p90 {:.2} p99 {:.2} max {:.2}; {} failed{}",
        args.clients,
        args.keys,
        if plain { "plain JSON" } else { "sealed" },
        if fake { " chaff" } else { "" },
        acknowledged.len(),
        elapsed.as_secs_f64(),
        acknowledged.len() as f64 / elapsed.as_secs_f64(),
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.90),
        percentile(&latencies, 0.99),
        percentile(&latencies, 1.0),
        failures,
        if args.kill_test {
            " (in flight at the kill)"
        } else {
            ""
        },
    );
    if !args.kill_test && next.load(Ordering::Relaxed) >= prepared.len() {
        println!("note: ran out of prepared requests; raise --requests");
    }

    if args.kill_test {
        // Restart on the same data: recovery must keep every acknowledged publish.
        let restarted = start_server(&binary, data.path());
        let health = http
            .get(format!("{}/healthz", restarted.url()))
            .send()
            .await
            .map(|r| r.status().as_u16());
        let stored = kith_server::inspect::StoredData::open(data.path()).unwrap();
        let stored_keys = stored.all_key_bytes().unwrap();
        let stored = stored_keys.len();
        let missing = acknowledged
            .iter()
            .filter(|&&i| !stored_keys.contains(&prepared[i].key))
            .count();
        println!(
            "after restart (healthz {:?}): {} acknowledged publishes, {} keys stored ({} per publish), {} acknowledged publishes missing",
            health.ok(),
            acknowledged.len(),
            stored,
            args.keys,
            missing
        );
        let _ = restarted.stop();
        assert_eq!(missing, 0, "acknowledged publishes were lost");
    } else if let Some(server) = server {
        let _ = server.stop();
    }
}
