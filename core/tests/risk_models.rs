//! The GAEN / ENX rules R1–R19 of `../shared/gaen/risk_scoring_and_ble.md` §5, one
//! named test each (some rules are covered in depth in `risk.rs` too), and the three
//! model families loaded from the real configurations in `../shared/gaen/configs/`
//! with hand-computed cases from each authority's documented rules.

use kith_core::risk::{
    ExposureWindow, Infectiousness, ModelKind, RiskConfig, RiskModel, ScanInstance,
};
use kith_core::store::MemoryStore;
use kith_core::{
    BluetoothMetadata, CalibrationConfidence, Day, DaysSinceOnset, DiagnosisKey, Error,
    ExposureEngine, OsRng, ReportType, Sighting, UnixSeconds,
};

const DAY: u64 = 86_400;
/// Noon of day 20 000 (2024-10-04).
const NOON: UnixSeconds = UnixSeconds::new(20_000 * DAY + DAY / 2);

fn scan(typical: u8, min: u8, seconds: u16) -> ScanInstance {
    ScanInstance {
        typical_attenuation: typical,
        min_attenuation: min,
        seconds_since_last_scan: seconds,
    }
}

fn window(report_type: ReportType, days: Option<i32>, scans: Vec<ScanInstance>) -> ExposureWindow {
    ExposureWindow {
        start: NOON,
        report_type,
        days_since_onset: days.map(|d| DaysSinceOnset::new(d).unwrap()),
        calibration_confidence: CalibrationConfidence::Lowest,
        scan_instances: scans,
    }
}

/// Alice's beacons heard by Bob at `times` (offsets from NOON, scan per sighting),
/// with Alice's TX power; Alice's keys published as confirmed test. Bob's windows.
fn heard(tx_power: i8, rssi: i8, offsets: &[u64], correction: i8) -> Vec<ExposureWindow> {
    let mut alice = ExposureEngine::new(MemoryStore::new()).unwrap();
    let mut bob = ExposureEngine::new(MemoryStore::new()).unwrap();
    bob.set_rssi_correction(correction).unwrap();
    let interval = NOON.interval();
    let beacon = alice
        .beacon(&mut OsRng, interval, BluetoothMetadata::v1_0(tx_power))
        .unwrap();
    let sightings: Vec<Sighting> = offsets
        .iter()
        .map(|&t| Sighting::new(beacon, rssi, NOON + t, t))
        .collect();
    bob.record_sightings(&sightings).unwrap();
    let keys = alice
        .keys_to_upload(NOON + 3_600)
        .unwrap()
        .into_iter()
        .map(|tek| DiagnosisKey {
            report_type: ReportType::ConfirmedTest,
            ..DiagnosisKey::new(tek)
        });
    bob.ingest(None, keys, NOON + 7_200).unwrap();
    bob.store()
        .exposures()
        .unwrap()
        .into_iter()
        .flat_map(|e| e.windows)
        .collect()
}

use kith_core::store::Store;

#[test]
fn r1_attenuation_uses_the_rssi_correction_applied_at_record_time() {
    // TX −20 dBm, RSSI −70, correction +5: max(−20 − (−70 + 5), 0) = 45 dB.
    let windows = heard(-20, -70, &[0], 5);
    assert_eq!(windows[0].scan_instances[0].typical_attenuation, 45);
    // Never negative: TX −20, RSSI −10 → 0.
    let windows = heard(-20, -10, &[0], 0);
    assert_eq!(windows[0].scan_instances[0].typical_attenuation, 0);
}

#[test]
fn r2_tx_power_outside_minus_50_to_20_is_rejected() {
    assert!(heard(21, -70, &[0], 0).is_empty());
    assert!(heard(-51, -70, &[0], 0).is_empty());
    assert_eq!(heard(20, -70, &[0], 0).len(), 1);
}

#[test]
fn r3_sightings_beyond_the_drift_tolerance_do_not_match() {
    // The RPI of NOON's interval, heard 12 intervals later still matches, 13 not.
    let windows = heard(-20, -70, &[12 * 600, 13 * 600 + 1], 0);
    let seen: u32 = windows.iter().map(|w| w.scan_instances.len() as u32).sum();
    assert_eq!(seen, 1);
}

#[test]
fn r4_a_beacon_replayed_after_20_minutes_is_dropped() {
    // Heard at 0, 10, 20 min (kept) and again at 20 min 1 s and 40 min (replays).
    let windows = heard(-20, -70, &[0, 600, 1_200, 1_201, 2_400], 0);
    assert_eq!(windows.len(), 1);
    assert_eq!(windows[0].scan_instances.len(), 3);
}

#[test]
fn r5_windows_start_a_new_one_after_30_minutes() {
    // One RPI is heard at most 20 min (R4), so a 30-minute split needs a long exposure:
    // covered with interval-spanning sightings in risk.rs (windows_split_at_30_minutes).
    let windows = heard(-20, -70, &[0, 1_199], 0);
    assert_eq!(windows.len(), 1);
}

#[test]
fn r6_r7_r8_scan_instances_typical_min_and_seconds_since_last_scan() {
    let windows = heard(-20, -70, &[0, 130], 0);
    let scans = &windows[0].scan_instances;
    // First scan: previous unknown → 120 s; second: 2 whole minutes later → 120 s.
    assert_eq!(scans.len(), 2);
    assert_eq!(scans[0].seconds_since_last_scan, 120);
    assert_eq!(scans[1].seconds_since_last_scan, 120);
    assert_eq!(
        (scans[0].typical_attenuation, scans[0].min_attenuation),
        (50, 50)
    );
}

#[test]
fn r9_a_windows_report_type_is_the_mapped_one() {
    let config = RiskConfig::from_json(r#"{"reportTypeNoneMap": 1}"#).unwrap();
    let unknown = window(ReportType::Unknown, None, vec![scan(40, 40, 300)]);
    let summary = config.assess(std::slice::from_ref(&unknown), NOON);
    assert_eq!(summary.windows[0].report_type, ReportType::ConfirmedTest);
    let dropping = RiskConfig::from_json(r#"{"reportTypeNoneMap": 0}"#).unwrap();
    assert!(dropping.assess(&[unknown], NOON).windows.is_empty());
    let revoked = window(ReportType::Revoked, None, vec![scan(40, 40, 300)]);
    assert!(config.assess(&[revoked], NOON).windows.is_empty());
}

#[test]
fn r10_recursive_weight_is_configurable_and_zero_in_enx() {
    let recursive = window(ReportType::Recursive, None, vec![scan(40, 40, 300)]);
    assert_eq!(
        RiskConfig::from_json("{}")
            .unwrap()
            .window_score(&recursive),
        Some(0.0)
    );
    let weighted = RiskConfig::from_json(r#"{"reportTypeRecursiveWeight": 50}"#).unwrap();
    assert_eq!(weighted.window_score(&recursive), Some(150.0));
}

#[test]
fn r11_r12_onset_map_gives_infectiousness_and_none_drops() {
    let config = RiskConfig::enx_documented_defaults();
    // 0x0401555AA9400000: −14…−4 DROP; −3,−2 STANDARD; −1…+3 HIGH; None → STANDARD.
    assert_eq!(
        config.infectiousness(DaysSinceOnset::new(-4).ok()),
        Infectiousness::None
    );
    assert_eq!(
        config.infectiousness(DaysSinceOnset::new(-2).ok()),
        Infectiousness::Standard
    );
    assert_eq!(
        config.infectiousness(DaysSinceOnset::new(0).ok()),
        Infectiousness::High
    );
    assert_eq!(config.infectiousness(None), Infectiousness::Standard);
    let dropped = window(
        ReportType::ConfirmedTest,
        Some(-10),
        vec![scan(40, 40, 300)],
    );
    assert_eq!(config.window_score(&dropped), None);
}

#[test]
fn r13_r14_buckets_by_typical_attenuation_and_score_multiplies() {
    // ENX defaults: ≤30 → 150 %, ≤50 → 100 %, ≤60 → 50 %, else 0; self report 100 %.
    let config = RiskConfig::from_json(r#"{"reportTypeSelfReportWeight": 50}"#).unwrap();
    let w = window(
        ReportType::SelfReport,
        None,
        vec![
            scan(30, 10, 300),
            scan(31, 10, 300),
            scan(60, 10, 120),
            scan(61, 10, 300),
        ],
    );
    // (300 × 1.5 + 300 × 1.0 + 120 × 0.5 + 300 × 0) × 0.5 (report) × 1.0 (standard)
    assert_eq!(config.window_score(&w), Some(405.0));
}

#[test]
fn r15_a_day_below_the_minimum_window_score_is_reported_with_zero_sums() {
    let config = RiskConfig::from_json(r#"{"minimumWindowScore": 1000}"#).unwrap();
    let days = config.daily_summaries(
        &[window(
            ReportType::ConfirmedTest,
            None,
            vec![scan(40, 40, 300)],
        )],
        NOON,
    );
    assert_eq!(days.len(), 1);
    assert_eq!(days[0].summary.score_sum, 0.0);
    assert_eq!(days[0].summary.weighted_duration_sum, 0.0);
}

#[test]
fn r16_days_older_than_the_threshold_are_left_out() {
    let config = RiskConfig::from_json(r#"{"daysSinceExposureThreshold": 10}"#).unwrap();
    let w = window(ReportType::ConfirmedTest, None, vec![scan(40, 40, 300)]);
    assert_eq!(
        config
            .daily_summaries(std::slice::from_ref(&w), NOON + 10 * DAY)
            .len(),
        1
    );
    assert!(config.daily_summaries(&[w], NOON + 11 * DAY).is_empty());
}

#[test]
fn r17_lowest_classification_reached_wins() {
    let config = RiskConfig::from_json(
        r#"{"perDaySumERVThreshold_1": 1800, "perDayMaxERVThreshold_2": 300}"#,
    )
    .unwrap();
    let w = window(ReportType::ConfirmedTest, None, vec![scan(40, 40, 300); 2]);
    assert_eq!(
        config.assess(std::slice::from_ref(&w), NOON).risk_level,
        Some(2)
    );
    let long = window(ReportType::ConfirmedTest, None, vec![scan(40, 40, 300); 6]);
    assert_eq!(config.assess(&[w, long], NOON).risk_level, Some(1));
    // All thresholds 0 (ENX's defaults): never classified.
    let none = RiskConfig::enx_documented_defaults();
    assert_eq!(
        none.assess(
            &[window(
                ReportType::ConfirmedTest,
                None,
                vec![scan(40, 40, 300); 6]
            )],
            NOON
        )
        .risk_level,
        None
    );
}

#[test]
fn r18_enx_ranges_are_enforced_with_the_field_named() {
    for (json, field) in [
        (r#"{"attenuationNearWeight": 251}"#, "attenuationNearWeight"),
        (
            r#"{"attenuationImmediateNearThreshold": 256}"#,
            "attenuationImmediateNearThreshold",
        ),
        (
            r#"{"attenuationNearMedThreshold": 30}"#,
            "strictly increasing",
        ),
        (
            r#"{"symptomOnsetToInfectiousnessMap": "0x3"}"#,
            "entry 0 is 3",
        ),
        (r#"{"reportTypeNoneMap": 4}"#, "reportTypeNoneMap"),
        (
            r#"{"daysSinceExposureThreshold": 15}"#,
            "daysSinceExposureThreshold",
        ),
    ] {
        let err = RiskConfig::from_json(json).unwrap_err();
        assert!(err.to_string().contains(field), "{json}: {err}");
    }
    assert!(
        RiskConfig::from_json(r#"{"attenuationNearWeight": 250, "daysSinceExposureThreshold": 0}"#)
            .is_ok()
    );
}

#[test]
fn r19_revisions_follow_gaens_transitions() {
    use ReportType::*;
    let allowed = [
        (SelfReport, ConfirmedTest),
        (SelfReport, ConfirmedClinicalDiagnosis),
        (SelfReport, Revoked),
        (ConfirmedClinicalDiagnosis, ConfirmedTest),
        (ConfirmedClinicalDiagnosis, Revoked),
    ];
    let all = [
        Unknown,
        ConfirmedTest,
        ConfirmedClinicalDiagnosis,
        SelfReport,
        Recursive,
        Revoked,
    ];
    for from in all {
        for to in all {
            assert_eq!(
                from.may_be_revised_to(to),
                allowed.contains(&(from, to)),
                "{from:?} → {to:?}"
            );
        }
    }
    // Once per key: the stores' conformance suite (`applies_revised_keys`).
}

#[test]
fn enx_file_form_and_flat_form_are_the_same() {
    let flat =
        r#"{"attenuationNearWeight": 80, "perDaySumERVThreshold_1": 900, "agencyColor": [0.1]}"#;
    let file = format!(r#"{{"config": {flat}}}"#);
    assert_eq!(
        RiskConfig::from_json(flat).unwrap(),
        RiskConfig::from_json(&file).unwrap()
    );
    assert_eq!(
        RiskConfig::from_json(&file).unwrap().attenuation_weights[1],
        0.8
    );
}

fn text(relative: &str) -> Option<String> {
    let path = kith_test_support::shared_gaen(relative)?;
    Some(std::fs::read_to_string(path).unwrap())
}

/// Corona-Warn-App's three files as published, concatenated as `---` documents.
fn cwa() -> Option<RiskModel> {
    let files = [
        "configs/cwa_exposure-configuration.yaml",
        "configs/cwa_risk-calculation-parameters.yaml",
        "configs/cwa_transmission-risk-encoding.yaml",
    ];
    let texts: Option<Vec<String>> = files.iter().map(|f| text(f)).collect();
    let joined = texts?.join("\n---\n");
    let model = RiskModel::parse(&joined).unwrap();
    assert_eq!(model.kind(), ModelKind::Cwa);
    Some(model)
}

#[test]
fn cwa_loads_its_published_files_and_scores_as_its_app() {
    let Some(model) = cwa() else { return };
    let RiskModel::Cwa(cwa) = &model else {
        unreachable!()
    };
    // `${MAX-ENCOUNTER-AGE-IN-DAYS:10}` takes its default, 10.
    assert_eq!(cwa.max_encounter_age_in_days, 10);
    assert_eq!(
        cwa.exposure_configuration.attenuation_thresholds,
        [30, 50, 70]
    );
    // Hand-computed from CWA's rules (cwa-app-tech-spec exposure-windows.md):
    // confirmed test (offset 6), days since onset 2 → HIGH (offset 2): TRL 8,
    // transmission risk value 8 × 0.2 = 1.6. Two 5-minute scans at minimum
    // attenuation 55 (weight 0.8): 8 weighted minutes → normalized 12.8 < 13: low.
    let low = window(
        ReportType::ConfirmedTest,
        Some(2),
        vec![scan(60, 55, 300); 2],
    );
    let explanation = model.explain(std::slice::from_ref(&low), NOON);
    let w = &explanation.days[0].windows[0];
    assert!((w.score - 12.8).abs() < 1e-9, "{}", w.score);
    assert_eq!(explanation.risk_level, None);
    assert_eq!(
        model.assess(std::slice::from_ref(&low), NOON).risk_level,
        None
    );
    // One more 5-minute scan at 65 (weight 1.0): 13 weighted minutes → 20.8 ≥ 13: high.
    let mut high = low.clone();
    high.scan_instances.push(scan(70, 65, 300));
    let summary = model.assess(std::slice::from_ref(&high), NOON);
    assert_eq!(
        (summary.risk_level, summary.days),
        (Some(1), vec![Day::new(20_000)])
    );
    // Under 5 minutes at attenuation [0, 79): dropped.
    let short = window(ReportType::ConfirmedTest, Some(2), vec![scan(40, 40, 240)]);
    let explanation = model.explain(&[short], NOON);
    assert!(!explanation.days[0].windows[0].counted);
    // TRL 1 (RECURSIVE offset 0 + standard 1) is in the TRL filter [1, 2]: dropped.
    let trl1 = window(ReportType::Recursive, Some(1), vec![scan(40, 40, 300); 6]);
    let reason = model.explain(&[trl1], NOON).days[0].windows[0]
        .reason
        .clone()
        .unwrap();
    assert!(reason.contains("transmission risk level 1"), "{reason}");
    // Older than 10 days: left out.
    assert_eq!(
        model
            .assess(std::slice::from_ref(&high), NOON + 11 * DAY)
            .risk_level,
        None
    );
    // A missing report type is dropped (report-type-none-map 0).
    let unknown = window(ReportType::Unknown, Some(2), vec![scan(40, 40, 300); 6]);
    assert!(model.assess(&[unknown], NOON).windows.is_empty());
}

#[test]
fn cwa_errors_name_what_is_wrong() {
    let Some(params) = text("configs/cwa_risk-calculation-parameters.yaml") else {
        return;
    };
    // Without the exposure configuration: a missing field named.
    let err = RiskModel::parse(&params).unwrap_err().to_string();
    assert!(err.contains("missing field"), "{err}");
    let Some(exposure) = text("configs/cwa_exposure-configuration.yaml") else {
        return;
    };
    let typo = format!("{exposure}\n{params}\nnear-duration-weigth: 1.0\n");
    let err = RiskModel::parse(&typo).unwrap_err().to_string();
    assert!(err.contains("near-duration-weigth"), "{err}");
    let err = RiskModel::parse("risk: high\n").unwrap_err().to_string();
    assert!(err.contains("saw YAML with keys [\"risk\"]"), "{err}");
    let err =
        RiskModel::parse_as(ModelKind::Cwa, "max-encounter-age-in-days: ${AGE}\n").unwrap_err();
    assert!(err.to_string().contains("no default value"), "{err}");
}

fn canada() -> Option<RiskModel> {
    let raw = text("configs/canada_covidalert_v1_config_1.2.6.json.txt")?;
    // The first line is our note on the file's origin; the second is the file.
    let json: String = raw.lines().filter(|l| !l.starts_with("//")).collect();
    let model = RiskModel::parse(&json).unwrap();
    assert_eq!(model.kind(), ModelKind::GaenV1);
    Some(model)
}

#[test]
fn canadian_v1_configuration_scores_as_covid_alert() {
    let Some(model) = canada() else { return };
    // COVID Alert's checkIfExposedV2 (and its tests): immediate (≤ 50 dB) + near
    // (≤ 62 dB) seconds must exceed minimumExposureDurationMinutes × 60 = 900.
    let minutes = |n: u16, db: u8| {
        window(
            ReportType::ConfirmedTest,
            None,
            vec![scan(db, db, 60); n as usize],
        )
    };
    assert_eq!(model.assess(&[minutes(20, 40)], NOON).risk_level, Some(1));
    assert_eq!(model.assess(&[minutes(20, 60)], NOON).risk_level, Some(1));
    assert_eq!(model.assess(&[minutes(20, 70)], NOON).risk_level, None);
    // Exactly 15 minutes does not exceed 15; 16 does, also split over two windows.
    assert_eq!(model.assess(&[minutes(15, 45)], NOON).risk_level, None);
    assert_eq!(
        model
            .assess(&[minutes(8, 45), minutes(8, 60)], NOON)
            .risk_level,
        Some(1)
    );
    // v1 risk score: level 0 for 14 days or more (daysSinceLastExposureLevelValues[0]
    // = 0) is below minimumRiskScore 1: left out.
    let explanation = model.explain(&[minutes(20, 40)], NOON + 14 * DAY);
    assert!(!explanation.days[0].windows[0].counted);
    // 40 dB is attenuation bucket 3 (33 < a ≤ 51) → level value 5; others 1.
    let explanation = model.explain(&[minutes(20, 40)], NOON);
    assert_eq!(explanation.days[0].windows[0].score, 5.0);
}

#[test]
fn a_configuration_of_no_known_kind_says_what_it_saw() {
    for (text, needle) in [
        ("[1, 2]", "saw JSON that is not an object (an array)"),
        ("\u{0}\u{1}", "neither JSON nor YAML"),
        (
            r#"{"attenuationImediateWeight": 1}"#,
            "unknown key `attenuationImediateWeight`",
        ),
    ] {
        let err = RiskModel::parse(text).unwrap_err();
        assert!(matches!(err, Error::RiskConfig(_)));
        assert!(err.to_string().contains(needle), "{text}: {err}");
    }
    assert_eq!(ModelKind::from_name("gaen-v1").unwrap(), ModelKind::GaenV1);
    assert!(RiskModel::parse_as(ModelKind::Cwa, "{}").is_err());
}

#[test]
fn explanation_shows_buckets_weights_score_and_the_threshold() {
    let config = RiskConfig::enx_with_15_minute_alert();
    // 10 min at 25 dB (immediate, 150 %) = 900 weighted seconds: reaches 900.
    let w = window(ReportType::ConfirmedTest, None, vec![scan(25, 20, 300); 2]);
    let explanation = RiskModel::from(config).explain(std::slice::from_ref(&w), NOON);
    let day = &explanation.days[0];
    let explained = &day.windows[0];
    assert_eq!(explained.buckets[0].seconds, 600);
    assert_eq!(explained.buckets[0].weight, 1.5);
    assert_eq!(explained.buckets[0].name, "immediate (0..=30 dB)");
    assert_eq!(explained.score, 900.0);
    assert_eq!(explained.factors[0].name, "report type CONFIRMED_TEST");
    let check = &day.thresholds[0];
    assert_eq!(check.name, "perDaySumERVThreshold_1");
    assert_eq!(
        (check.value, check.threshold, check.reached),
        (900.0, 900.0, true)
    );
    assert_eq!(day.risk_level, Some(1));
    // One scan less: the threshold is missed by 450.
    let short = window(ReportType::ConfirmedTest, None, vec![scan(25, 20, 300)]);
    let explanation =
        RiskModel::from(RiskConfig::enx_with_15_minute_alert()).explain(&[short], NOON);
    let check = &explanation.days[0].thresholds[0];
    assert_eq!((check.value, check.reached), (450.0, false));
    assert_eq!(explanation.risk_level, None);
}
