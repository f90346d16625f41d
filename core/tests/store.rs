//! One conformance suite for every [`Store`], the engine on top of it, and the
//! SQLite store's durability: a writer killed with SIGKILL mid-batch.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kith_core::risk::{ExposureWindow, ScanInstance};
use kith_core::store::{Exposure, MemoryStore, SCHEMA_VERSION, SqliteStore, Store};
use kith_core::{Aem, RollingPeriod};
use kith_core::{
    BluetoothMetadata, CalibrationConfidence, DaysSinceOnset, DiagnosisKey, Error, ExposureEngine,
    IntervalNumber, KeyValidity, Match, MatchedSighting, OsRng, ReportType, Rpi, Sighting,
    TemporaryExposureKey,
};

const DAY: u64 = 86_400;
/// Midnight starting day 20 000 (2024-10-04).
const T0: u64 = 20_000 * DAY;

fn day_key(byte: u8, day: u64) -> TemporaryExposureKey {
    let start = IntervalNumber::from_unix_seconds(day * DAY).unwrap();
    TemporaryExposureKey::from_bytes([byte; 16], KeyValidity::day_of(start))
}

fn sighting(n: u8, time: u64, scan_id: u64) -> Sighting {
    Sighting {
        rpi: Rpi::from_bytes([n; 16]),
        aem: Aem::from_bytes([n, 1, 2, 3]),
        rssi: -(n as i8 % 100) - 1,
        time,
        scan_id,
    }
}

fn exposure(byte: u8, last_seen: u64, report_type: ReportType) -> Exposure {
    let tek = day_key(byte, last_seen / DAY);
    let mut key = DiagnosisKey::new(tek);
    key.report_type = report_type;
    key.days_since_onset = DaysSinceOnset::new(i32::from(byte % 29) - 14).ok();
    key.transmission_risk_level = Some(byte % 9);
    let interval = IntervalNumber::from_unix_seconds(last_seen).unwrap();
    let matched = |time: u64, scan_id: u64| MatchedSighting {
        sighting: sighting(byte, time, scan_id),
        interval,
        metadata: BluetoothMetadata::v1_1(-12, CalibrationConfidence::Medium),
    };
    Exposure {
        matched: Match {
            key,
            sightings: vec![matched(last_seen - 300, 1), matched(last_seen, 2)],
        },
        windows: vec![ExposureWindow {
            start: last_seen - 300,
            report_type,
            days_since_onset: None,
            calibration_confidence: CalibrationConfidence::Medium,
            scan_instances: vec![
                ScanInstance {
                    typical_attenuation: 44,
                    min_attenuation: 40,
                    seconds_since_last_scan: 120,
                },
                ScanInstance {
                    typical_attenuation: 255,
                    min_attenuation: 0,
                    seconds_since_last_scan: 300,
                },
            ],
        }],
    }
}

fn own_keys(mut store: impl Store) {
    assert!(store.own_keys().unwrap().is_empty());
    for (byte, day) in [(3, 20_002), (1, 20_000), (2, 20_001)] {
        store.add_own_key(&day_key(byte, day)).unwrap();
    }
    // A key for a day already stored replaces it.
    store.add_own_key(&day_key(9, 20_001)).unwrap();
    let short = day_key(4, 20_003).with_validity(
        KeyValidity::new(
            IntervalNumber::new(20_003 * 144),
            RollingPeriod::new(36).unwrap(),
        )
        .unwrap(),
    );
    store.add_own_key(&short).unwrap();
    assert_eq!(
        store.own_keys().unwrap(),
        vec![
            day_key(1, 20_000),
            day_key(9, 20_001),
            day_key(3, 20_002),
            short
        ]
    );
}

fn sightings(mut store: impl Store) {
    let first = vec![sighting(5, T0 + 50, 2), sighting(6, T0 + 10, 1)];
    let second = vec![
        sighting(7, u64::from(u32::MAX) * 600, u64::MAX >> 1),
        sighting(8, T0 + 10, 0),
    ];
    store.add_sightings(&first).unwrap();
    store.add_sightings(&second).unwrap();
    store.add_sightings(&[]).unwrap();
    assert_eq!(
        store.sightings().unwrap(),
        vec![second[1], first[1], first[0], second[0]]
    );
}

fn exposures(mut store: impl Store) {
    let found = vec![
        exposure(1, T0 + 3_600, ReportType::ConfirmedTest),
        exposure(2, T0 + 7_200, ReportType::Unknown),
    ];
    assert!(!store.is_file_processed("a.zip").unwrap());
    assert_eq!(
        store.add_exposures(Some("a.zip"), &found, &[], T0).unwrap(),
        2
    );
    assert!(store.is_file_processed("a.zip").unwrap());
    assert!(!store.is_file_processed("b.zip").unwrap());
    // The same key in a later file (even with other metadata) does not count again.
    let again = vec![
        exposure(2, T0 + 7_200, ReportType::SelfReport),
        exposure(3, T0, ReportType::SelfReport),
    ];
    assert_eq!(
        store.add_exposures(Some("b.zip"), &again, &[], T0).unwrap(),
        1
    );
    assert_eq!(store.add_exposures(None, &[], &[], T0).unwrap(), 0);
    let stored = store.exposures().unwrap();
    assert_eq!(
        stored,
        vec![found[0].clone(), found[1].clone(), again[1].clone()]
    );
}

fn revisions(mut store: impl Store) {
    let found = vec![
        exposure(1, T0 + 3_600, ReportType::SelfReport),
        exposure(2, T0 + 7_200, ReportType::SelfReport),
    ];
    store.add_exposures(None, &found, &[], T0).unwrap();
    // Key 1 was confirmed by a test; key 9 was never matched here.
    let mut confirmed = found[0].matched.key.clone();
    confirmed.report_type = ReportType::ConfirmedTest;
    confirmed.days_since_onset = DaysSinceOnset::new(-2).ok();
    confirmed.transmission_risk_level = None;
    let stranger = exposure(9, T0, ReportType::Revoked).matched.key;
    let new = [exposure(3, T0, ReportType::ConfirmedTest)];
    assert_eq!(
        store
            .add_exposures(Some("c.zip"), &new, &[confirmed.clone(), stranger], T0)
            .unwrap(),
        1
    );
    let mut expected = found[0].clone();
    assert!(expected.revise(&confirmed));
    assert_eq!(expected.windows[0].report_type, ReportType::ConfirmedTest);
    assert_eq!(
        store.exposures().unwrap(),
        vec![expected, found[1].clone(), new[0].clone()]
    );
    assert!(store.is_file_processed("c.zip").unwrap());
}

fn settings(mut store: impl Store) {
    assert_eq!(store.setting("risk_config").unwrap(), None);
    store.set_setting("risk_config", "{}").unwrap();
    store
        .set_setting("risk_config", "{\"reportTypeNoneMap\": 1}")
        .unwrap();
    assert_eq!(
        store.setting("risk_config").unwrap().as_deref(),
        Some("{\"reportTypeNoneMap\": 1}")
    );
}

fn purge(mut store: impl Store) {
    let now = T0 + 20 * DAY;
    let cutoff = now - 14 * DAY;
    // Keys of day 20 005 end exactly at the cutoff (expired); day 20 006 is kept.
    store.add_own_key(&day_key(1, 20_005)).unwrap();
    store.add_own_key(&day_key(2, 20_006)).unwrap();
    store
        .add_sightings(&[
            sighting(1, cutoff - 1, 1),
            sighting(2, cutoff, 2),
            sighting(3, now, 3),
        ])
        .unwrap();
    store
        .add_exposures(
            Some("old.zip"),
            &[exposure(1, cutoff - 1, ReportType::ConfirmedTest)],
            &[],
            cutoff - 1,
        )
        .unwrap();
    store
        .add_exposures(
            Some("new.zip"),
            &[exposure(2, cutoff, ReportType::ConfirmedTest)],
            &[],
            cutoff,
        )
        .unwrap();
    store.set_setting("risk_config", "{}").unwrap();

    store.purge(now).unwrap();
    assert_eq!(store.own_keys().unwrap(), vec![day_key(2, 20_006)]);
    assert_eq!(
        store.sightings().unwrap(),
        vec![sighting(2, cutoff, 2), sighting(3, now, 3)]
    );
    assert!(!store.is_file_processed("old.zip").unwrap());
    assert!(store.is_file_processed("new.zip").unwrap());
    let left = store.exposures().unwrap();
    assert_eq!(left, vec![exposure(2, cutoff, ReportType::ConfirmedTest)]);
    assert_eq!(store.setting("risk_config").unwrap().as_deref(), Some("{}"));
}

/// Alice and Bob meet; Bob's engine on `store` matches Alice's uploaded keys.
fn engine(store: impl Store) {
    let now = T0 + 12 * 3_600;
    let interval = IntervalNumber::from_unix_seconds(now).unwrap();
    let mut alice = ExposureEngine::new(MemoryStore::new()).unwrap();
    let mut bob = ExposureEngine::new(store).unwrap();
    let beacon = alice
        .beacon(&mut OsRng, interval, BluetoothMetadata::v1_0(-20))
        .unwrap();
    // The same key all day.
    assert_eq!(
        alice.current_key(&mut OsRng, interval).unwrap(),
        alice
            .current_key(&mut OsRng, interval.saturating_add(30))
            .unwrap()
    );
    // 20 minutes, a scan every 5 minutes, attenuation 40 dB (near, 100 %).
    let scans: Vec<Sighting> = (0..5)
        .map(|i| Sighting::new(beacon, -60, now + 300 * i, i))
        .collect();
    bob.record_sightings(&scans[..4]).unwrap();
    bob.record_sighting(scans[4]).unwrap();

    let uploaded = alice.keys_to_upload(now + 3_600).unwrap();
    assert_eq!(uploaded.len(), 1);
    assert_eq!(
        uploaded[0].validity().end(),
        IntervalNumber::from_unix_seconds(now + 3_600)
            .unwrap()
            .saturating_add(1)
    );
    let mut keys: Vec<DiagnosisKey> = uploaded.into_iter().map(DiagnosisKey::new).collect();
    for k in &mut keys {
        k.report_type = ReportType::ConfirmedTest;
    }
    let strangers = (0..1_000u32).map(|i| {
        let mut bytes = [0u8; 16];
        bytes[..4].copy_from_slice(&i.to_le_bytes());
        DiagnosisKey::new(TemporaryExposureKey::from_bytes(
            bytes,
            KeyValidity::day_of(interval),
        ))
    });
    let later = now + 7_200;
    assert_eq!(
        bob.ingest(
            Some("1.zip"),
            keys.clone().into_iter().chain(strangers),
            later
        )
        .unwrap(),
        1
    );
    assert_eq!(
        bob.ingest(Some("1.zip"), keys.clone(), later).unwrap(),
        0,
        "file seen"
    );
    assert_eq!(
        bob.ingest(Some("2.zip"), keys.clone(), later).unwrap(),
        0,
        "key seen"
    );

    // 120 + 4 × 300 = 1320 weighted seconds ≥ 900: classification 1 on that day.
    let summary = bob.exposure_summary(later).unwrap();
    assert_eq!(summary.windows.len(), 1);
    assert_eq!(summary.daily_summaries[0].summary.score_sum, 1_320.0);
    assert_eq!((summary.risk_level, summary.days), (Some(1), vec![20_000]));

    // A stricter configuration (ENX JSON) is applied to the same windows.
    bob.set_risk_config_json(r#"{"perDaySumERVThreshold_1": 2000}"#)
        .unwrap();
    assert_eq!(bob.exposure_summary(later).unwrap().risk_level, None);
    assert!(matches!(
        bob.set_risk_config_json("{"),
        Err(Error::InvalidRiskConfig(_))
    ));
    assert_eq!(bob.risk_config().classifications[0].per_day_sum, 2000.0);
    assert_eq!(
        bob.store().setting("risk_config").unwrap().as_deref(),
        Some(r#"{"perDaySumERVThreshold_1": 2000}"#)
    );

    bob.purge(later + 15 * DAY).unwrap();
    assert!(bob.store().sightings().unwrap().is_empty());
    assert!(
        bob.exposure_summary(later + 15 * DAY)
            .unwrap()
            .windows
            .is_empty()
    );
}

macro_rules! conformance {
    ($name:ident, $store:expr) => {
        mod $name {
            use super::*;

            #[test]
            fn keeps_own_keys() {
                own_keys($store);
            }
            #[test]
            fn keeps_sightings() {
                sightings($store);
            }
            #[test]
            fn keeps_exposures_once_per_key() {
                exposures($store);
            }
            #[test]
            fn applies_revised_keys() {
                revisions($store);
            }
            #[test]
            fn keeps_settings() {
                settings($store);
            }
            #[test]
            fn purges_after_14_days() {
                purge($store);
            }
            #[test]
            fn runs_the_engine() {
                engine($store);
            }
        }
    };
}

conformance!(memory, MemoryStore::new());
conformance!(sqlite, SqliteStore::open_in_memory().unwrap());

#[test]
fn sqlite_file_survives_reopening_with_its_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("device.db");
    let mut store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    store.add_sightings(&[sighting(1, T0, 1)]).unwrap();
    let mut engine = ExposureEngine::new(store).unwrap();
    engine
        .set_risk_config_json(r#"{"attenuationNearWeight": 80}"#)
        .unwrap();
    drop(engine);

    let engine = ExposureEngine::new(SqliteStore::open(&path).unwrap()).unwrap();
    assert_eq!(engine.risk_config().attenuation_weights[1], 0.8);
    assert_eq!(
        engine.store().sightings().unwrap(),
        vec![sighting(1, T0, 1)]
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
    let err = SqliteStore::open(&path).unwrap_err();
    assert!(
        matches!(&err, Error::Storage(m) if m.contains("newer")),
        "{err}"
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
    now: u64,
    report_type: ReportType,
) -> (ExposureEngine<SqliteStore>, Vec<DiagnosisKey>) {
    let interval = IntervalNumber::from_unix_seconds(now).unwrap();
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

/// An export of `keys` and `revised_keys`, signed, parsed and verified as a device does.
fn signed_export(
    keys: &[DiagnosisKey],
    revised_keys: &[DiagnosisKey],
) -> kith_core::VerifiedExport {
    use kith_core::{
        ExportBatch, ExportFile, ExportLimits, ExportSigner, SigningKey, TrustedKeys, write_export,
    };

    let batch = ExportBatch {
        region: "US",
        keys,
        revised_keys,
        ..ExportBatch::default()
    };
    let signer = ExportSigner::new("310", "v1", SigningKey::generate(&mut OsRng));
    let zip = write_export(&batch, &[&signer]).unwrap();
    let trusted = TrustedKeys::new().with("310", "v1", signer.verifying_key());
    ExportFile::parse(&zip, &ExportLimits::default())
        .unwrap()
        .verify(&trusted)
        .unwrap()
}

#[test]
fn ingests_a_signed_export_file_once() {
    let now = T0 + 9 * 3_600;
    let (mut bob, keys) = bob_met_alice(now, ReportType::ConfirmedTest);
    let export = signed_export(&keys, &[]);

    assert_eq!(
        bob.ingest_export("2024-10-04.zip", &export, now + 3_600)
            .unwrap(),
        1
    );
    assert_eq!(
        bob.ingest_export("2024-10-04.zip", &export, now + 3_600)
            .unwrap(),
        0
    );
    assert!(bob.store().is_file_processed("2024-10-04.zip").unwrap());
    assert_eq!(bob.exposure_summary(now + 3_600).unwrap().windows.len(), 1);
}

#[test]
fn a_revised_key_in_a_later_file_changes_the_risk() {
    let now = T0 + 9 * 3_600;
    let (mut bob, keys) = bob_met_alice(now, ReportType::SelfReport);
    let first = signed_export(&keys, &[]);
    assert_eq!(bob.ingest_export("1.zip", &first, now + 3_600).unwrap(), 1);
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
    let second = signed_export(&[], &revoked);
    assert_eq!(bob.ingest_export("2.zip", &second, now + 7_200).unwrap(), 0);
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
    let export = signed_export(&[], &keys);
    assert_eq!(bob.ingest_export("2.zip", &export, now + 3_600).unwrap(), 1);
    assert_eq!(
        bob.exposure_summary(now + 3_600).unwrap().risk_level,
        Some(1)
    );
}
