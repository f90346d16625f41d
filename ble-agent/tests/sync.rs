//! Sync against export files this test signs with core's writer and serves over HTTP
//! in the shape kith-server serves them (`/v1/config`, `/v1/exports/index.txt` with
//! ETags and lines relative to the server's root, `/v1/exports/<name>.zip`): only new
//! files are downloaded, files that fail to verify are skipped, the exposure is found on
//! the right day and the hook runs. Trace-warning packages the same way
//! (`/v1/trace-warnings/index.txt`): a tampered one and one from an untrusted signer are
//! refused, a report with a wrong MAC warns no one, the genuine one warns the visitor
//! who overlapped once, with the time, even when listed twice.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use kith_agent::Agent;
use kith_agent::clock::ManualClock;
use kith_agent::config::Config;
use kith_agent::radio::{Received, ScanWindow};
use kith_core::risk::RiskConfig;
use kith_core::{
    BluetoothMetadata, DaysSinceOnset, DiagnosisKey, ExportBatch, ExportSigner, IntervalNumber,
    OsRng, ReportType, SigningKey, TemporaryExposureKey, write_export,
};

/// What the test server serves, and what it was asked for.
#[derive(Default)]
struct Files {
    config: serde_json::Value,
    index: Vec<String>,
    trace_index: Vec<String>,
    zips: HashMap<String, Vec<u8>>,
    requests: Vec<String>,
}

type Shared = Arc<Mutex<Files>>;

async fn config(State(files): State<Shared>) -> Response {
    let mut files = files.lock().unwrap();
    files.requests.push("config".into());
    axum::Json(files.config.clone()).into_response()
}

async fn index(State(files): State<Shared>, headers: HeaderMap) -> Response {
    listing(&files, &headers, "index", |f| &f.index)
}

async fn trace_index(State(files): State<Shared>, headers: HeaderMap) -> Response {
    listing(&files, &headers, "trace index", |f| &f.trace_index)
}

/// An index with an ETag, answering 304 to a request that has it.
fn listing(
    files: &Shared,
    headers: &HeaderMap,
    what: &str,
    lines: fn(&Files) -> &Vec<String>,
) -> Response {
    let mut files = files.lock().unwrap();
    let lines = lines(&files);
    let body = lines.join("\n") + "\n";
    let etag = format!("\"{:x}\"", body.len() * 31 + lines.len());
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        == Some(&etag);
    files.requests.push(if fresh {
        format!("{what} 304")
    } else {
        what.into()
    });
    if fresh {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    ([(header::ETAG, etag)], body).into_response()
}

async fn zip(State(files): State<Shared>, Path(name): Path<String>) -> Response {
    let mut files = files.lock().unwrap();
    files.requests.push(name.clone());
    match files.zips.get(&name) {
        Some(bytes) => bytes.clone().into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn serve(files: Shared) -> String {
    let app = Router::new()
        .route("/v1/config", get(config))
        .route("/v1/exports/index.txt", get(index))
        .route("/v1/exports/{name}", get(zip))
        .route("/v1/trace-warnings/index.txt", get(trace_index))
        .route("/v1/trace-warnings/{name}", get(zip))
        .with_state(files);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

fn client_config(signer: &ExportSigner) -> serde_json::Value {
    serde_json::json!({
        "riskConfiguration": serde_json::to_value(RiskConfig::enx_with_15_minute_alert()).unwrap(),
        "exportVerificationKey": {
            "keyId": signer.info().key_id(),
            "keyVersion": signer.info().key_version(),
            "signatureAlgorithm": "1.2.840.10045.4.3.2",
            "publicKey": STANDARD.encode(signer.verifying_key().to_public_key_der()),
        },
        "hpke": {"kemId": 32, "kdfId": 1, "aeadId": 1, "publicKey": STANDARD.encode([9u8; 32]),
                 "info": "kith publish v1", "contentType": "application/kith-sealed",
                 "paddedPlaintextLen": 4096, "sealedBodyLen": 4144},
        "verificationCodeDigits": 12
    })
}

fn export(signer: &ExportSigner, keys: &[DiagnosisKey], start: u64) -> Vec<u8> {
    let batch = ExportBatch {
        region: "XX",
        start_timestamp: start,
        end_timestamp: start + 3600,
        keys,
        revised_keys: &[],
    };
    write_export(&batch, &[signer]).unwrap()
}

/// When Bob stood next to Alice (30 minutes, scans every 5 minutes); the agents sync a
/// day later.
const MET_AT: u64 = 1_764_500_000;

/// Bob's agent (data in `dir`, exposure command `hook`) a day after he stood next to
/// Alice, syncing with a test server serving `files`; and Alice's key, as her report
/// would publish it.
async fn bob_met_alice(
    dir: &std::path::Path,
    hook: String,
    timeout_seconds: u64,
) -> (Agent<ManualClock>, Shared, DiagnosisKey) {
    let alice = TemporaryExposureKey::generate(
        &mut OsRng,
        IntervalNumber::from_unix_seconds(MET_AT).unwrap(),
    );
    let files: Shared = Arc::default();
    let url = serve(files.clone()).await;
    let config = Config {
        data_dir: dir.join("bob"),
        server: Some(url),
        exposure_command: Some(hook),
        exposure_command_timeout_seconds: timeout_seconds,
        ..Config::default()
    };
    let mut bob = Agent::open(config, ManualClock::at((MET_AT + 86_400) * 1000)).unwrap();
    for scan in 0..7u64 {
        let t = MET_AT + 300 * scan;
        let beacon = alice.beacon(
            IntervalNumber::from_unix_seconds(t).unwrap(),
            BluetoothMetadata::v1_0(-26),
        );
        let received = Received {
            service_data: beacon.to_service_data(),
            rssi: -70,
            at: t * 1000,
        };
        bob.record(&ScanWindow {
            started_at: t * 1000,
            ended_at: t * 1000 + 4000,
            received: vec![received],
        })
        .unwrap();
    }
    let mut alice_key = DiagnosisKey::new(alice);
    alice_key.report_type = ReportType::ConfirmedTest;
    alice_key.days_since_onset = Some(DaysSinceOnset::new(0).unwrap());
    (bob, files, alice_key)
}

#[tokio::test]
async fn sync_downloads_only_new_verified_files_and_notifies_on_the_right_day() {
    let met_at = MET_AT;
    let dir = tempfile::tempdir().unwrap();
    let hook_out = dir.path().join("hook.txt");
    let hook = format!(
        "echo \"$KITH_NEW_EXPOSURES $KITH_RISK_LEVEL $KITH_EXPOSURE_DAYS\" >> {}",
        hook_out.display()
    );
    let (mut bob, files, alice_key) = bob_met_alice(dir.path(), hook, 60).await;

    let signer = ExportSigner::new("kith", "v1", SigningKey::generate(&mut OsRng));
    let stranger = TemporaryExposureKey::generate(
        &mut OsRng,
        IntervalNumber::from_unix_seconds(met_at).unwrap(),
    );
    {
        let mut f = files.lock().unwrap();
        f.config = client_config(&signer);
        f.index = vec!["v1/exports/a.zip".into()];
        f.zips.insert(
            "a.zip".into(),
            export(&signer, &[DiagnosisKey::new(stranger)], met_at),
        );
    }

    // First sync: nothing of Alice's yet.
    let first = bob.sync().await.unwrap();
    assert_eq!(
        (first.files_listed, first.files_new, first.new_exposures),
        (1, 1, 0)
    );
    assert!(!hook_out.exists());

    // Nothing new: the index answers 304 and no file is downloaded again.
    files.lock().unwrap().requests.clear();
    let again = bob.sync().await.unwrap();
    assert_eq!((again.files_new, again.new_exposures), (0, 0));
    assert_eq!(files.lock().unwrap().requests, vec!["config", "index 304"]);

    // Alice's file, and one signed by a key nobody trusts.
    let rogue = ExportSigner::new("kith", "v1", SigningKey::generate(&mut OsRng));
    {
        let mut f = files.lock().unwrap();
        f.index
            .extend(["v1/exports/rogue.zip".into(), "v1/exports/b.zip".into()]);
        f.zips.insert(
            "rogue.zip".into(),
            export(&rogue, std::slice::from_ref(&alice_key), met_at),
        );
        f.zips
            .insert("b.zip".into(), export(&signer, &[alice_key], met_at));
        f.requests.clear();
    }
    let found = bob.sync().await.unwrap();
    assert_eq!(
        files.lock().unwrap().requests,
        vec!["config", "index", "rogue.zip", "b.zip"]
    );
    assert_eq!(found.files_new, 1);
    assert_eq!(found.files_failed.len(), 1);
    assert!(
        found.files_failed[0].starts_with("v1/exports/rogue.zip:"),
        "{:?}",
        found.files_failed
    );
    assert_eq!(found.new_exposures, 1);
    let day = kith_core::UnixSeconds::new(met_at).day().to_string();
    assert_eq!(
        found.risk_level,
        Some(1),
        "30 min at 44 dB is above the ENX 15-minute threshold"
    );
    assert_eq!(found.risk_days, vec![day.clone()]);
    let hook = std::fs::read_to_string(&hook_out).unwrap();
    assert_eq!(hook, format!("1 1 {day}\n"));

    // The status shows it; the rogue file is retried next time, the good one is not.
    let status = bob.status(48).unwrap();
    assert_eq!(status.risk.days, vec![day]);
    assert_eq!(status.last_sync.unwrap().new_exposures, 1);
    files.lock().unwrap().requests.clear();
    bob.sync().await.unwrap();
    assert_eq!(
        files.lock().unwrap().requests,
        vec!["config", "index 304", "rogue.zip"]
    );
}

#[tokio::test]
async fn a_server_that_is_down_or_lies_gives_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        data_dir: dir.path().into(),
        server: Some("http://127.0.0.1:9".into()),
        ..Config::default()
    };
    let mut agent = Agent::open(config, ManualClock::at(1_764_590_000_000)).unwrap();
    let e = agent.sync().await.unwrap_err().to_string();
    assert!(e.contains("cannot reach the server"), "{e}");

    let files: Shared = Arc::default();
    files.lock().unwrap().config = serde_json::json!({"hello": "world"});
    let config = Config {
        data_dir: dir.path().into(),
        server: Some(serve(files).await),
        ..Config::default()
    };
    let mut agent = Agent::open(config, ManualClock::at(1_764_590_000_000)).unwrap();
    let e = agent.sync().await.unwrap_err().to_string();
    assert!(e.contains("/v1/config is not the expected JSON"), "{e}");
}

/// Log lines, captured for the test that reads what the agent said.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Log {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn an_exposure_command_that_overruns_its_timeout_is_killed_and_the_agent_goes_on() {
    let log = Log::default();
    let writer = log.clone();
    let _logging = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish(),
    );
    let dir = tempfile::tempdir().unwrap();
    let (group, late) = (dir.path().join("group"), dir.path().join("late"));
    // The shell leads its own process group; what it starts (`sleep`) is in it too.
    let hook = format!(
        "echo $$ > {}; sleep 30; touch {}",
        group.display(),
        late.display()
    );
    let (mut bob, files, alice_key) = bob_met_alice(dir.path(), hook, 1).await;
    let signer = ExportSigner::new("kith", "v1", SigningKey::generate(&mut OsRng));
    {
        let mut f = files.lock().unwrap();
        f.config = client_config(&signer);
        f.index = vec!["v1/exports/a.zip".into()];
        f.zips
            .insert("a.zip".into(), export(&signer, &[alice_key], MET_AT));
    }

    let found = bob.sync().await.unwrap();
    assert_eq!(found.new_exposures, 1, "the exposure is found and kept");
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("the exposure command ran longer than 1 s; killing it"),
        "{text}"
    );
    // The whole group is gone (a zombie may linger a moment), and the command never
    // got to its last step.
    let pgid = std::fs::read_to_string(&group).unwrap().trim().to_owned();
    let alive = || {
        std::process::Command::new("kill")
            .args(["-0", "--", &format!("-{pgid}")])
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
            .success()
    };
    for _ in 0..50 {
        if !alive() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(!alive(), "process group {pgid} still running");
    assert!(!late.exists());

    // The agent goes on: the next sync works, and the exposure is still there.
    let next = bob.sync().await.unwrap();
    assert_eq!(next.new_exposures, 0);
    assert_eq!(bob.status(48).unwrap().risk.risk_level, Some(1));
}

#[tokio::test]
async fn trace_warnings_are_verified_matched_once_and_forgeries_warn_no_one() {
    use kith_core::UnixSeconds;
    use kith_core::checkin::{
        ProtectedReport, Stay, TraceWarningBatch, TransmissionRiskLevel, VenueDetails,
        VenuePayload, write_trace_warnings,
    };

    let dir = tempfile::tempdir().unwrap();
    let hook_out = dir.path().join("hook.txt");
    let hook = format!(
        "echo \"$KITH_NEW_EXPOSURES $KITH_NEW_VENUE_EXPOSURES $KITH_MESSAGE\" >> {}",
        hook_out.display()
    );
    let (mut bob, files, _) = bob_met_alice(dir.path(), hook, 60).await;
    let cafe = VenuePayload::generate(
        &mut OsRng,
        VenueDetails {
            description: "Café Kith".into(),
            address: "1 Main Street".into(),
            default_check_in_minutes: Some(60),
            ..VenueDetails::default()
        },
    )
    .unwrap();
    // Bob checks in now for the venue's hour; Alice was there from half an hour before.
    let visit = bob.check_in_venue(&cafe).unwrap();
    let arrival = visit.visit.stay.arrival().get();
    let alice = ProtectedReport::seal(
        &mut OsRng,
        cafe.location_id(),
        Stay::new(
            UnixSeconds::new(arrival - 1_800),
            UnixSeconds::new(arrival + 1_800),
        )
        .unwrap(),
        TransmissionRiskLevel::HIGHEST,
    );
    let mut forged = alice.to_bytes();
    *forged.last_mut().unwrap() ^= 1;
    let forged = ProtectedReport::from_bytes(&forged).unwrap();

    let signer = ExportSigner::new("kith", "v1", SigningKey::generate(&mut OsRng));
    let rogue = ExportSigner::new("kith", "v1", SigningKey::generate(&mut OsRng));
    let package = |signer: &ExportSigner, reports: &[ProtectedReport]| {
        let batch = TraceWarningBatch {
            region: "XX",
            hour: (arrival / 3600) as u32,
            reports,
        };
        write_trace_warnings(&batch, &[signer]).unwrap()
    };
    let genuine = package(
        &signer,
        &[alice.clone(), ProtectedReport::padding(&mut OsRng)],
    );
    let mut tampered = genuine.clone();
    let middle = tampered.len() / 3;
    tampered[middle] ^= 0x40;
    {
        let mut f = files.lock().unwrap();
        f.config = client_config(&signer);
        f.config["traceWarningIndex"] = "v1/trace-warnings/index.txt".into();
        f.trace_index = ["forged", "tampered", "rogue", "genuine", "copy"]
            .map(|name| format!("v1/trace-warnings/{name}.zip"))
            .into();
        f.zips
            .insert("forged.zip".into(), package(&signer, &[forged]));
        f.zips.insert("tampered.zip".into(), tampered);
        f.zips.insert("rogue.zip".into(), package(&rogue, &[alice]));
        f.zips.insert("genuine.zip".into(), genuine.clone());
        f.zips.insert("copy.zip".into(), genuine);
    }

    let sync = bob.sync().await.unwrap();
    assert_eq!(sync.trace_warning_packages_listed, 5);
    assert_eq!(
        sync.trace_warning_packages_new, 2,
        "forged and genuine; copy is genuine's bytes"
    );
    let failed: Vec<&str> = sync
        .files_failed
        .iter()
        .map(|f| f.split(':').next().unwrap())
        .collect();
    assert_eq!(
        failed,
        [
            "v1/trace-warnings/tampered.zip",
            "v1/trace-warnings/rogue.zip"
        ],
        "{:?}",
        sync.files_failed
    );
    let [warning] = sync.new_venue_exposures.try_into().unwrap();
    assert_eq!(warning.venue, "Café Kith");
    // Reports cover whole 10-minute intervals: to the end of the one Alice left in.
    let until = (arrival + 1_800).div_ceil(600) * 600;
    assert_eq!((warning.from_unix, warning.until_unix), (arrival, until));
    assert_eq!(
        u64::from(warning.minutes),
        ((until - arrival) as f64 / 60.0).round() as u64
    );
    let hook = std::fs::read_to_string(&hook_out).unwrap();
    assert_eq!(hook, format!("0 1 {}\n", warning.message()));
    assert_eq!(bob.status(1).unwrap().venue_exposures, [warning]);

    // The next sync fetches only the refused packages again and warns of nothing new.
    files.lock().unwrap().requests.clear();
    let again = bob.sync().await.unwrap();
    assert!(again.new_venue_exposures.is_empty());
    assert_eq!(
        files.lock().unwrap().requests,
        [
            "config",
            "index 304",
            "trace index 304",
            "tampered.zip",
            "rogue.zip"
        ]
    );
}
