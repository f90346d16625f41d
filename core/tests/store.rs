//! The store conformance suite on both stores, the engine on top of them, and the
//! SQLite store's durability: a writer killed with SIGKILL mid-batch.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

use kith_core::risk::RiskModel;
use kith_core::store::testing::{T0, sighting};
use kith_core::store::{MemoryStore, SCHEMA_VERSION, SqliteStore, Store};
use kith_core::{
    BluetoothMetadata, DiagnosisKey, Error, ExportBatch, ExportSigner, ExposureEngine,
    IngestReport, OsRng, ReportType, Sighting, SigningKey, StoreError, TrustedKeys, UnixSeconds,
    write_export,
};

mod memory {
    kith_core::store_conformance_tests!(kith_core::store::MemoryStore::new());
}

mod sqlite {
    kith_core::store_conformance_tests!(kith_core::store::SqliteStore::open_in_memory().unwrap());
}

#[test]
fn sqlite_file_survives_reopening_with_its_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("device.db");
    let mut store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    store.add_sightings(&[sighting(1, T0, 1)]).unwrap();
    let mut engine = ExposureEngine::new(store).unwrap();
    engine
        .set_risk_configuration(r#"{"attenuationNearWeight": 80}"#)
        .unwrap();
    engine.set_rssi_correction(-5).unwrap();
    drop(engine);

    let mut engine = ExposureEngine::new(SqliteStore::open(&path).unwrap()).unwrap();
    let RiskModel::Gaen(config) = engine.risk_model() else {
        panic!("expected an ENX model");
    };
    assert_eq!(config.attenuation_weights[1], 0.8);
    // R1: the RSSI correction is kept, and applied as a sighting is recorded.
    assert_eq!(engine.rssi_correction(), -5);
    let heard = sighting(2, T0 + 60, 2);
    engine.record_sighting(heard).unwrap();
    let corrected = Sighting {
        rssi: heard.rssi - 5,
        ..heard
    };
    assert_eq!(
        engine.store().sightings().unwrap(),
        vec![sighting(1, T0, 1), corrected]
    );
}

#[test]
fn sqlite_refuses_a_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("device.db");
    drop(SqliteStore::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    drop(conn);
    assert_eq!(
        SqliteStore::open(&path).unwrap_err(),
        Error::Store(StoreError::NewerSchema {
            found: SCHEMA_VERSION + 1,
            supported: SCHEMA_VERSION
        })
    );
}

/// Rows per batch written by the child, each batch tagged by its scan id.
const BATCH: usize = 2_000;
const WRITER_ENV: &str = "KITH_TEST_STORE_WRITER";

/// In the child process: write batches until killed.
fn write_forever(path: &Path) -> ! {
    let mut store = SqliteStore::open(path).unwrap();
    for batch in 0u64.. {
        let rows: Vec<Sighting> = (0..BATCH)
            .map(|i| sighting((i % 250) as u8, T0 + i as u64, batch))
            .collect();
        store.add_sightings(&rows).unwrap();
    }
    unreachable!()
}

#[test]
fn a_writer_killed_mid_batch_leaves_only_whole_batches() {
    if let Some(path) = std::env::var_os(WRITER_ENV) {
        write_forever(Path::new(&path));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("device.db");
    drop(SqliteStore::open(&path).unwrap());
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_writer_killed_mid_batch_leaves_only_whole_batches",
            "--test-threads=1",
        ])
        .env(WRITER_ENV, &path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        std::thread::sleep(Duration::from_millis(30));
        let written = SqliteStore::open(&path).unwrap().sightings().unwrap().len();
        if written >= 3 * BATCH {
            break;
        }
        assert!(Instant::now() < deadline, "the writer made no progress");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the writer died on its own"
        );
    }
    // Let it get into the middle of a batch, then SIGKILL.
    std::thread::sleep(Duration::from_millis(7));
    child.kill().unwrap();
    child.wait().unwrap();

    let store = SqliteStore::open(&path).unwrap();
    let rows = store.sightings().unwrap();
    assert_eq!(
        rows.len() % BATCH,
        0,
        "{} rows: a partial batch survived",
        rows.len()
    );
    let batches = rows.len() / BATCH;
    for batch in 0..batches as u64 {
        assert_eq!(rows.iter().filter(|s| s.scan_id == batch).count(), BATCH);
    }
    // And the store is still writable.
    let mut store = store;
    store.add_sightings(&[sighting(1, T0, 999)]).unwrap();
    assert_eq!(store.sightings().unwrap().len(), batches * BATCH + 1);
}

/// Bob met Alice 20 minutes at `now` and stores his sightings in SQLite; Alice's
/// keys to upload, each with `report_type`.
fn bob_met_alice(
    now: UnixSeconds,
    report_type: ReportType,
) -> (ExposureEngine<SqliteStore>, Vec<DiagnosisKey>) {
    let interval = now.interval();
    let mut alice = ExposureEngine::new(MemoryStore::new()).unwrap();
    let mut bob = ExposureEngine::new(SqliteStore::open_in_memory().unwrap()).unwrap();
    let beacon = alice
        .beacon(&mut OsRng, interval, BluetoothMetadata::v1_0(0))
        .unwrap();
    for scan in 0..5 {
        bob.record_sighting(Sighting::new(beacon, -50, now + scan * 240, scan))
            .unwrap();
    }
    let keys = alice
        .keys_to_upload(now + 1_200)
        .unwrap()
        .into_iter()
        .map(|tek| DiagnosisKey {
            report_type,
            ..DiagnosisKey::new(tek)
        })
        .collect();
    (bob, keys)
}

/// An export of `keys` and `revised_keys`, signed, and the keys a device trusts to read it.
fn signed_export(keys: &[DiagnosisKey], revised_keys: &[DiagnosisKey]) -> (Vec<u8>, TrustedKeys) {
    let batch = ExportBatch {
        region: "US",
        keys,
        revised_keys,
        ..ExportBatch::default()
    };
    let signer = ExportSigner::new("310", "v1", SigningKey::generate(&mut OsRng));
    let zip = write_export(&batch, &[&signer]).unwrap();
    (
        zip,
        TrustedKeys::new().with("310", "v1", signer.verifying_key()),
    )
}

/// A report of `new` new exposures and `revised` revised ones.
fn changed(new: usize, revised: usize) -> IngestReport {
    IngestReport {
        new_exposures: new,
        revised_exposures: revised,
        already_ingested: false,
    }
}

#[test]
fn ingests_a_signed_export_file_once() {
    let now = T0 + 9 * 3_600;
    let (mut bob, keys) = bob_met_alice(now, ReportType::ConfirmedTest);
    let (zip, trusted) = signed_export(&keys, &[]);

    assert_eq!(
        bob.ingest_export(&zip, &trusted, now + 3_600).unwrap(),
        changed(1, 0)
    );
    // The same bytes again, under whatever name they were downloaded.
    assert_eq!(
        bob.ingest_export(&zip, &trusted, now + 3_600).unwrap(),
        IngestReport::already_ingested()
    );
    let name = kith_core::DownloadedExport::verify(&zip, &trusted, &Default::default())
        .unwrap()
        .name()
        .to_owned();
    assert!(
        name.starts_with("sha256:") && name.len() == 7 + 64,
        "{name}"
    );
    assert!(bob.store().is_file_processed(&name).unwrap());
    assert_eq!(bob.exposure_summary(now + 3_600).unwrap().windows.len(), 1);
}

#[test]
fn untrusted_and_malformed_files_are_told_apart() {
    let now = T0 + 9 * 3_600;
    let (mut bob, keys) = bob_met_alice(now, ReportType::ConfirmedTest);
    let (zip, _) = signed_export(&keys, &[]);
    let (_, someone_else) = signed_export(&[], &[]);
    assert!(matches!(
        bob.ingest_export(&zip, &someone_else, now),
        Err(Error::ExportTrust(_))
    ));
    assert!(matches!(
        bob.ingest_export(&zip[..zip.len() / 2], &someone_else, now),
        Err(Error::ExportFormat(_))
    ));
    assert!(bob.store().exposures().unwrap().is_empty());
}

#[test]
fn a_revised_key_in_a_later_file_changes_the_risk() {
    let now = T0 + 9 * 3_600;
    let (mut bob, keys) = bob_met_alice(now, ReportType::SelfReport);
    let (first, trusted) = signed_export(&keys, &[]);
    assert_eq!(
        bob.ingest_export(&first, &trusted, now + 3_600).unwrap(),
        changed(1, 0)
    );
    let summary = bob.exposure_summary(now + 3_600).unwrap();
    assert_eq!(summary.windows[0].report_type, ReportType::SelfReport);
    assert_eq!(
        summary.risk_level,
        Some(1),
        "18 minutes near, past the 15 of ENX"
    );

    // The health authority revokes the diagnosis.
    let revoked: Vec<DiagnosisKey> = keys
        .iter()
        .map(|key| DiagnosisKey {
            report_type: ReportType::Revoked,
            ..key.clone()
        })
        .collect();
    let (second, trusted) = signed_export(&[], &revoked);
    assert_eq!(
        bob.ingest_export(&second, &trusted, now + 7_200).unwrap(),
        changed(0, 1)
    );
    let stored = bob.store().exposures().unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].matched.key.report_type, ReportType::Revoked);
    let summary = bob.exposure_summary(now + 7_200).unwrap();
    assert!(summary.windows.is_empty(), "a revoked key is never scored");
    assert_eq!(summary.risk_level, None);
}

#[test]
fn a_revised_key_matches_when_its_first_file_was_missed() {
    let now = T0 + 9 * 3_600;
    let (mut bob, keys) = bob_met_alice(now, ReportType::ConfirmedTest);
    let (zip, trusted) = signed_export(&[], &keys);
    assert_eq!(
        bob.ingest_export(&zip, &trusted, now + 3_600)
            .unwrap()
            .new_exposures,
        1
    );
    assert_eq!(
        bob.exposure_summary(now + 3_600).unwrap().risk_level,
        Some(1)
    );
}

/// The ingest's lock tells the test when it took its snapshot, and waits for the test
/// to be served before it takes the engine again to commit.
#[test]
fn a_shared_engine_serves_beacons_and_sightings_while_a_file_is_matched() {
    let now = T0 + 9 * 3_600;
    let (bob, keys) = bob_met_alice(now, ReportType::ConfirmedTest);
    let (zip, trusted) = signed_export(&keys, &[]);
    let bob = Mutex::new(bob);
    let (released, snapshot_taken) = mpsc::channel();
    let (served, may_commit) = mpsc::channel::<()>();
    let report = std::thread::scope(|scope| {
        let (bob, zip, trusted) = (&bob, &zip, &trusted);
        let ingest = scope.spawn(move || {
            let mut locks = 0;
            ExposureEngine::ingest_export_shared(
                || {
                    locks += 1;
                    if locks == 2 {
                        // Commit only once the other thread was served.
                        may_commit.recv().unwrap();
                    }
                    let guard = bob.lock().unwrap();
                    if locks == 1 {
                        released.send(()).unwrap();
                    }
                    guard
                },
                zip,
                trusted,
                now + 3_600,
            )
        });
        snapshot_taken.recv().unwrap();
        // The ingest holds the snapshot and is matching (or about to): the engine is free.
        {
            let mut engine = bob.lock().unwrap();
            let interval = (now + 3_600).interval();
            engine
                .beacon(&mut OsRng, interval, BluetoothMetadata::v1_0(0))
                .unwrap();
            engine
                .record_sighting(sighting(1, now + 3_600, 99))
                .unwrap();
        }
        served.send(()).unwrap();
        ingest.join().unwrap()
    });
    assert_eq!(report.unwrap(), changed(1, 0));
    let bob = bob.into_inner().unwrap();
    assert_eq!(bob.store().sightings().unwrap().len(), 6);
}
