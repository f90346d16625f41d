//! The conformance suite every [`Store`] passes: run it on another implementation,
//! unchanged, with [`store_conformance_tests!`](crate::store_conformance_tests).
//!
//! ```
//! mod memory {
//!     kith_core::store_conformance_tests!(kith_core::store::MemoryStore::new());
//! }
//! ```
//!
//! Each check takes a fresh, empty store and panics (as a test does) where the store
//! breaks the [`Store`] contract.

use crate::diagnosis::{DaysSinceOnset, DiagnosisKey, ReportType};
use crate::engine::ExposureEngine;
use crate::error::{Error, RiskConfigError};
use crate::identifiers::{Aem, Rpi};
use crate::interval::{IntervalNumber, KeyValidity, RollingPeriod};
use crate::keys::TemporaryExposureKey;
use crate::matching::{Match, MatchedSighting};
use crate::metadata::{BluetoothMetadata, CalibrationConfidence};
use crate::risk::{ExposureWindow, RiskModel, ScanInstance};
use crate::sighting::Sighting;
use crate::store::{Exposure, IngestReport, MemoryStore, Store};
use crate::time::{Day, UnixSeconds};
use rand_core::OsRng;

/// Writes one `#[test]` per conformance check, each on a fresh store from `$store`
/// (an expression evaluated once per test).
#[macro_export]
macro_rules! store_conformance_tests {
    ($store:expr) => {
        #[test]
        fn keeps_own_keys() {
            $crate::store::testing::own_keys($store);
        }
        #[test]
        fn keeps_sightings() {
            $crate::store::testing::sightings($store);
        }
        #[test]
        fn keeps_exposures_once_per_key() {
            $crate::store::testing::exposures($store);
        }
        #[test]
        fn applies_revised_keys() {
            $crate::store::testing::revisions($store);
        }
        #[test]
        fn keeps_settings() {
            $crate::store::testing::settings($store);
        }
        #[test]
        fn purges_after_14_days() {
            $crate::store::testing::purge($store);
        }
        #[test]
        fn runs_the_engine() {
            $crate::store::testing::engine($store);
        }
    };
}

/// Seconds per day.
pub const DAY: u64 = crate::time::SECONDS_PER_DAY;
/// Midnight starting day 20 000 (2024-10-04), the suite's epoch.
pub const T0: UnixSeconds = Day::new(20_000).start();

fn day_key(byte: u8, day: u32) -> TemporaryExposureKey {
    let start = Day::new(day).start().interval();
    TemporaryExposureKey::from_bytes([byte; 16], KeyValidity::day_of(start))
}

/// A sighting of RPI `[n; 16]` at `time` in scan `scan_id`.
pub fn sighting(n: u8, time: UnixSeconds, scan_id: u64) -> Sighting {
    Sighting {
        rpi: Rpi::from_bytes([n; 16]),
        aem: Aem::from_bytes([n, 1, 2, 3]),
        rssi: -(n as i8 % 100) - 1,
        time,
        scan_id,
    }
}

fn exposure(byte: u8, last_seen: UnixSeconds, report_type: ReportType) -> Exposure {
    let tek = day_key(byte, last_seen.day().get());
    let mut key = DiagnosisKey::new(tek);
    key.report_type = report_type;
    key.days_since_onset = DaysSinceOnset::new(i32::from(byte % 29) - 14).ok();
    key.transmission_risk_level = Some(byte % 9);
    let interval = last_seen.interval();
    let matched = |time: UnixSeconds, scan_id: u64| MatchedSighting {
        sighting: sighting(byte, time, scan_id),
        interval,
        metadata: BluetoothMetadata::v1_1(-12, CalibrationConfidence::Medium),
    };
    Exposure {
        revised: false,
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

/// Own keys: stored by day, replaced per day, listed oldest first.
pub fn own_keys(mut store: impl Store) {
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

/// Sightings: batches kept, listed in time order.
pub fn sightings(mut store: impl Store) {
    let first = vec![sighting(5, T0 + 50, 2), sighting(6, T0 + 10, 1)];
    let second = vec![
        sighting(
            7,
            UnixSeconds::new(u64::from(u32::MAX) * 600),
            u64::MAX >> 1,
        ),
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

/// Exposures: stored once per key, the file marked processed.
pub fn exposures(mut store: impl Store) {
    let found = vec![
        exposure(1, T0 + 3_600, ReportType::ConfirmedTest),
        exposure(2, T0 + 7_200, ReportType::Unknown),
    ];
    assert!(!store.is_file_processed("a.zip").unwrap());
    assert_eq!(
        store
            .record_ingest(Some("a.zip"), &found, &[], T0)
            .unwrap()
            .new_exposures,
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
        store
            .record_ingest(Some("b.zip"), &again, &[], T0)
            .unwrap()
            .new_exposures,
        1
    );
    assert_eq!(
        store.record_ingest(None, &[], &[], T0).unwrap(),
        IngestReport::default()
    );
    let stored = store.exposures().unwrap();
    assert_eq!(
        stored,
        vec![found[0].clone(), found[1].clone(), again[1].clone()]
    );
}

/// Revised keys change the stored exposure of the same key and its windows.
pub fn revisions(mut store: impl Store) {
    let found = vec![
        exposure(1, T0 + 3_600, ReportType::SelfReport),
        exposure(2, T0 + 7_200, ReportType::SelfReport),
    ];
    store.record_ingest(None, &found, &[], T0).unwrap();
    // Key 1 was confirmed by a test; key 9 was never matched here.
    let mut confirmed = found[0].matched.key.clone();
    confirmed.report_type = ReportType::ConfirmedTest;
    confirmed.days_since_onset = DaysSinceOnset::new(-2).ok();
    confirmed.transmission_risk_level = None;
    let stranger = exposure(9, T0, ReportType::Revoked).matched.key;
    let new = [exposure(3, T0, ReportType::ConfirmedTest)];
    assert_eq!(
        store
            .record_ingest(Some("c.zip"), &new, &[confirmed.clone(), stranger], T0)
            .unwrap(),
        IngestReport {
            new_exposures: 1,
            revised_exposures: 1,
            already_ingested: false,
        }
    );
    let mut expected = found[0].clone();
    assert!(expected.revise(&confirmed));
    assert_eq!(expected.windows[0].report_type, ReportType::ConfirmedTest);
    assert_eq!(
        store.exposures().unwrap(),
        vec![expected, found[1].clone(), new[0].clone()]
    );
    assert!(store.is_file_processed("c.zip").unwrap());

    // R19: one transition per key, and only those GAEN allows.
    let revise = |store: &mut dyn Store, byte: u8, to: ReportType| {
        let mut key = exposure(byte, T0, to).matched.key;
        key.report_type = to;
        store
            .record_ingest(None, &[], &[key], T0)
            .unwrap()
            .revised_exposures
    };
    // Key 1 was revised once already: a second transition is refused.
    assert_eq!(revise(&mut store, 1, ReportType::Revoked), 0);
    let stored = |store: &dyn Store, byte: u8| {
        let exposures = store.exposures().unwrap();
        let e = exposures
            .iter()
            .find(|e| e.matched.key.tek.expose_secret()[0] == byte);
        e.map(|e| (e.matched.key.report_type, e.windows[0].report_type))
            .unwrap()
    };
    assert_eq!(stored(&store, 1).0, ReportType::ConfirmedTest);
    // CONFIRMED_TEST → REVOKED and → SELF_REPORT are refused.
    assert_eq!(revise(&mut store, 3, ReportType::Revoked), 0);
    assert_eq!(revise(&mut store, 3, ReportType::SelfReport), 0);
    assert_eq!(
        stored(&store, 3),
        (ReportType::ConfirmedTest, ReportType::ConfirmedTest)
    );
    // SELF_REPORT → CLINICAL is applied, then CLINICAL → CONFIRMED_TEST is a second one.
    assert_eq!(
        revise(&mut store, 2, ReportType::ConfirmedClinicalDiagnosis),
        1
    );
    assert_eq!(revise(&mut store, 2, ReportType::ConfirmedTest), 0);
    let clinical = ReportType::ConfirmedClinicalDiagnosis;
    assert_eq!(stored(&store, 2), (clinical, clinical));
}

/// Settings: replaced by name.
pub fn settings(mut store: impl Store) {
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

/// Purge: what is older than 14 days goes, the rest stays.
pub fn purge(mut store: impl Store) {
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
        .record_ingest(
            Some("old.zip"),
            &[exposure(1, cutoff - 1, ReportType::ConfirmedTest)],
            &[],
            cutoff - 1,
        )
        .unwrap();
    store
        .record_ingest(
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

/// The engine on the store: Alice and Bob meet; Bob's engine matches Alice's uploaded keys.
pub fn engine(store: impl Store) {
    let now = T0 + 12 * 3_600;
    let interval = now.interval();
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
        (now + 3_600).interval().saturating_add(1)
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
        .unwrap()
        .new_exposures,
        1
    );
    assert_eq!(
        bob.ingest(Some("1.zip"), keys.clone(), later).unwrap(),
        IngestReport::already_ingested(),
        "file seen"
    );
    assert_eq!(
        bob.ingest(Some("2.zip"), keys.clone(), later)
            .unwrap()
            .new_exposures,
        0,
        "key seen"
    );

    // 120 + 4 × 300 = 1320 weighted seconds ≥ 900: classification 1 on that day.
    let summary = bob.exposure_summary(later).unwrap();
    assert_eq!(summary.windows.len(), 1);
    assert_eq!(summary.daily_summaries[0].summary.score_sum, 1_320.0);
    assert_eq!(
        (summary.risk_level, summary.days),
        (Some(1), vec![Day::new(20_000)])
    );

    // A stricter configuration (ENX JSON) is applied to the same windows.
    bob.set_risk_configuration(r#"{"perDaySumERVThreshold_1": 2000}"#)
        .unwrap();
    assert_eq!(bob.exposure_summary(later).unwrap().risk_level, None);
    assert!(matches!(
        bob.set_risk_configuration("{"),
        Err(Error::RiskConfig(RiskConfigError::Syntax(_)))
    ));
    let RiskModel::Gaen(config) = bob.risk_model() else {
        panic!("expected an ENX model, got {:?}", bob.risk_model());
    };
    assert_eq!(config.classifications[0].per_day_sum, 2000.0);
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
