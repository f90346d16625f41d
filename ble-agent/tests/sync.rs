//! Sync against export files this test signs with core's writer and serves over HTTP
//! in the shape kith-server serves them (`/v1/config`, `/v1/exports/index.txt` with
//! ETags and lines relative to the server's root, `/v1/exports/<name>.zip`): only new
//! files are downloaded, files that fail to verify are skipped, the exposure is found on
//! the right day and the hook runs.

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
    let mut files = files.lock().unwrap();
    let body = files.index.join("\n") + "\n";
    let etag = format!("\"{:x}\"", body.len() * 31 + files.index.len());
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        == Some(&etag);
    files.requests.push(if fresh {
        "index 304".into()
    } else {
        "index".into()
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

#[tokio::test]
async fn sync_downloads_only_new_verified_files_and_notifies_on_the_right_day() {
    // Yesterday, Bob stood next to Alice for 30 minutes (scans every 5 minutes).
    let met_at: u64 = 1_764_500_000;
    let now = met_at + 86_400;
    let alice = TemporaryExposureKey::generate(
        &mut OsRng,
        IntervalNumber::from_unix_seconds(met_at).unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let hook_out = dir.path().join("hook.txt");
    let files: Shared = Arc::default();
    let url = serve(files.clone()).await;
    let config = Config {
        data_dir: dir.path().join("bob"),
        server: Some(url),
        exposure_command: Some(format!(
            "echo \"$KITH_NEW_EXPOSURES $KITH_RISK_LEVEL $KITH_EXPOSURE_DAYS\" >> {}",
            hook_out.display()
        )),
        ..Config::default()
    };
    let mut bob = Agent::open(config, ManualClock::at(now * 1000)).unwrap();
    for scan in 0..7u64 {
        let t = met_at + 300 * scan;
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

    let signer = ExportSigner::new("kith", "v1", SigningKey::generate(&mut OsRng));
    let stranger = TemporaryExposureKey::generate(
        &mut OsRng,
        IntervalNumber::from_unix_seconds(met_at).unwrap(),
    );
    let mut alice_key = DiagnosisKey::new(alice);
    alice_key.report_type = ReportType::ConfirmedTest;
    alice_key.days_since_onset = Some(DaysSinceOnset::new(0).unwrap());
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
            export(&rogue, &[alice_key.clone()], met_at),
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
