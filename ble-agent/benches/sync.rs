//! The agent's costs: one sync with 14 days of sightings (100 000) and a day's
//! download of 100 000 keys, and idle CPU between scans.
//!
//! `cargo bench -p kith-agent --bench sync` prints peak RSS and CPU seconds of the
//! process that syncs (a fresh one, so setting up the data does not count) and the CPU
//! a running agent (simulated radio, GAEN duty cycle) uses in 20 s. Linux only: the
//! figures come from /proc.

#[path = "../tests/common/process.rs"]
mod process;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use kith_agent::Agent;
use kith_agent::clock::{Clock, SystemClock};
use kith_agent::config::Config;
use kith_agent::radio::{Received, ScanWindow};
use kith_core::risk::RiskConfig;
use kith_core::{
    BluetoothMetadata, DiagnosisKey, ExportBatch, ExportSigner, IntervalNumber, OsRng, SigningKey,
    TemporaryExposureKey, write_export,
};
use rand::{Rng, SeedableRng};

const SIGHTINGS: usize = 100_000;
const KEYS: usize = 100_000;
const MEASURE: &str = "KITH_BENCH_MEASURE_SYNC";

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for a list of tests; there are none.
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    if let Ok(args) = std::env::var(MEASURE) {
        let (dir, url) = args.split_once(' ').unwrap();
        runtime.block_on(measure_sync(dir, url));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let now = SystemClock::default().now().get();
    println!("setting up {SIGHTINGS} sightings over 14 days and an export of {KEYS} keys …");
    let (zip, met) = setup(dir.path(), now);
    let url = runtime.block_on(serve(zip));
    let out = process::run_ok(
        Command::new(std::env::current_exe().unwrap())
            .env(MEASURE, format!("{} {url}", dir.path().display())),
    );
    print!("{}", String::from_utf8_lossy(&out.stdout));
    println!("(of the {KEYS} keys, {met} were met)");
    idle_cpu();
}

/// 200 devices heard over 14 days: 100 000 sightings; an export with 100 000 keys,
/// 20 of them of devices that were heard.
fn setup(dir: &std::path::Path, now: u64) -> (Vec<u8>, usize) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let config = Config {
        data_dir: dir.join("agent"),
        ..Config::default()
    };
    let mut agent = Agent::open(config, SystemClock::default()).unwrap();
    let mut met_keys = Vec::new();
    let per_device = SIGHTINGS / 200;
    for device in 0..200 {
        let day_ago = 1 + device % 13;
        let start = now - day_ago as u64 * 86_400;
        let key = TemporaryExposureKey::generate(
            &mut OsRng,
            IntervalNumber::from_unix_seconds(start).unwrap(),
        );
        let first = key.validity().start().start_unix_seconds();
        let mut windows = Vec::new();
        for i in 0..per_device as u64 {
            let t = first + (i * 86_000 / per_device as u64);
            let beacon = key.beacon(
                IntervalNumber::from_unix_seconds(t).unwrap(),
                BluetoothMetadata::v1_0(-26),
            );
            windows.push(Received {
                service_data: beacon.to_service_data(),
                rssi: rng.gen_range(-90..-50),
                at: t * 1000,
            });
        }
        for chunk in windows.chunks(100) {
            let at = chunk[0].at;
            agent
                .record(&ScanWindow {
                    started_at: at,
                    ended_at: at + 4000,
                    received: chunk.to_vec(),
                })
                .unwrap();
        }
        if device % 10 == 0 {
            met_keys.push(key);
        }
    }
    let met = met_keys.len();
    let mut keys: Vec<DiagnosisKey> = met_keys.into_iter().map(DiagnosisKey::new).collect();
    while keys.len() < KEYS {
        let day = now - rng.gen_range(1..14u64) * 86_400;
        keys.push(DiagnosisKey::new(TemporaryExposureKey::generate(
            &mut OsRng,
            IntervalNumber::from_unix_seconds(day).unwrap(),
        )));
    }
    let signer = ExportSigner::new("kith", "v1", SigningKey::generate(&mut OsRng));
    let batch = ExportBatch {
        region: "XX",
        start_timestamp: now - 86_400,
        end_timestamp: now,
        keys: &keys,
        revised_keys: &[],
    };
    let zip = write_export(&batch, &[&signer]).unwrap();
    let config = serde_json::json!({
        "riskConfiguration": serde_json::to_value(RiskConfig::enx_with_15_minute_alert()).unwrap(),
        "exportVerificationKey": {"keyId": "kith", "keyVersion": "v1",
            "publicKey": STANDARD.encode(signer.verifying_key().to_public_key_der())},
        "hpke": {"kemId": 32, "kdfId": 1, "aeadId": 1, "publicKey": STANDARD.encode([9u8; 32]),
                 "info": "kith publish v1", "contentType": "application/kith-sealed",
                 "paddedPlaintextLen": 4096},
    });
    CONFIG.set(config.to_string()).unwrap();
    (zip, met)
}

static CONFIG: std::sync::OnceLock<String> = std::sync::OnceLock::new();

async fn serve(zip: Vec<u8>) -> String {
    let zip = Arc::new(zip);
    let app = Router::new()
        .route(
            "/v1/config",
            get(|| async { CONFIG.get().unwrap().clone() }),
        )
        .route(
            "/v1/exports/index.txt",
            get(|| async { "v1/exports/day.zip\n" }),
        )
        .route(
            "/v1/exports/day.zip",
            get(move || {
                let zip = zip.clone();
                async move { zip.to_vec() }
            }),
        );
    // Served by its own runtime on its own thread: the caller's runtime is not driven
    // while the measured child runs.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app).await.unwrap()
            });
    });
    url
}

/// In a fresh process: one sync, then this process's peak RSS and CPU time.
async fn measure_sync(dir: &str, url: &str) {
    let config = Config {
        data_dir: std::path::Path::new(dir).join("agent"),
        server: Some(url.to_owned()),
        ..Config::default()
    };
    let (cpu_before, _) = cpu_and_peak_rss(std::process::id());
    let wall = Instant::now();
    let mut agent = Agent::open(config, SystemClock::default()).unwrap();
    let outcome = agent.sync().await.unwrap();
    let wall = wall.elapsed();
    let (cpu_after, peak) = cpu_and_peak_rss(std::process::id());
    assert_eq!(outcome.files_new, 1);
    println!(
        "sync: {:.3} s CPU ({:.3} s wall), peak RSS {:.1} MiB, {} new exposures",
        cpu_after - cpu_before,
        wall.as_secs_f64(),
        peak as f64 / 1024.0,
        outcome.new_exposures
    );
}

/// A running agent on the GAEN duty cycle, simulated radio: CPU seconds over 20 s.
fn idle_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let agent_bin = exe.parent().unwrap().parent().unwrap().join("kith-agent");
    if !agent_bin.exists() {
        println!("idle: skipped, build the binary first (cargo build --release -p kith-agent)");
        return;
    }
    let mut child = Command::new(&agent_bin)
        .args(["run", "--radio", "sim", "--data-dir"])
        .arg(dir.path().join("agent"))
        .arg("--ether")
        .arg(dir.path().join("ether"))
        .env("KITH_LOG", "warn")
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2)); // start-up: first key, first scan
    let (start, _) = cpu_and_peak_rss(child.id());
    std::thread::sleep(Duration::from_secs(20));
    let (end, peak) = cpu_and_peak_rss(child.id());
    let _ = child.kill();
    let _ = child.wait();
    println!(
        "idle (advertising, between scans): {:.4} s CPU in 20 s ({:.3} %), RSS {:.1} MiB",
        end - start,
        (end - start) / 20.0 * 100.0,
        peak as f64 / 1024.0
    );
}

/// CPU seconds (user + system) and peak RSS (KiB) of `pid`, from /proc.
fn cpu_and_peak_rss(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    // Fields 14 and 15 (utime, stime), counted from 1 with pid and comm before ')'.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let peak = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0);
    (ticks as f64 / 100.0, peak)
}
