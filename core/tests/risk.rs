//! GAEN v2 risk scoring through the public API, with hand-computed numbers and the
//! figures of `../shared/gaen/risk_scoring_and_ble.md`.

use kith_core::risk::{
    ExposureWindow, Infectiousness, RiskConfig, ScanInstance, ScanTimeline, attenuation,
};
use kith_core::{
    BluetoothMetadata, CalibrationConfidence, Day, DaysSinceOnset, DiagnosisKey, Error,
    IntervalNumber, KeyValidity, Match, MatchedSighting, ReportType, Rpi, Sighting,
    TemporaryExposureKey, UnixSeconds,
};
use proptest::prelude::*;

const DAY: u64 = 86_400;
/// Noon of day 20 000 (2024-10-04).
const NOON: UnixSeconds = UnixSeconds::new(20_000 * DAY + DAY / 2);

fn scan(typical: u8, seconds: u16) -> ScanInstance {
    ScanInstance {
        typical_attenuation: typical,
        min_attenuation: typical,
        seconds_since_last_scan: seconds,
    }
}

fn window(start: UnixSeconds, report_type: ReportType, scans: Vec<ScanInstance>) -> ExposureWindow {
    ExposureWindow {
        start,
        report_type,
        days_since_onset: None,
        calibration_confidence: CalibrationConfidence::Lowest,
        scan_instances: scans,
    }
}

fn confirmed(minutes: u16, typical: u8) -> ExposureWindow {
    let scans = (0..minutes / 5).map(|_| scan(typical, 300)).collect();
    window(NOON, ReportType::ConfirmedTest, scans)
}

#[test]
fn fifteen_minutes_at_weight_one_is_900_weighted_seconds() {
    // "15 minutes of exposure with all weights equal to 1.0 would be 60 * 15 = 900".
    let config = RiskConfig::apple_defaults();
    let w = confirmed(15, 60);
    assert_eq!(config.weighted_duration(&w), 900.0);
    assert_eq!(config.window_score(&w), Some(900.0));
    let days = config.daily_summaries(&[w], NOON);
    assert_eq!(days.len(), 1);
    assert_eq!(days[0].day, Day::new(20_000));
    assert_eq!(days[0].summary.score_sum, 900.0);
    assert_eq!(days[0].summary.max_score, 900.0);
    assert_eq!(days[0].summary.weighted_duration_sum, 900.0);
    assert_eq!(
        days[0].for_report_type(ReportType::ConfirmedTest).score_sum,
        900.0
    );
}

#[test]
fn attenuation_buckets_include_their_upper_threshold() {
    let config = RiskConfig::enx_with_15_minute_alert(); // 30/50/60 dB, 150/100/50/0 %
    for (typical, bucket, weighted) in [
        (0, 0, 450.0),
        (30, 0, 450.0),
        (31, 1, 300.0),
        (50, 1, 300.0),
        (51, 2, 150.0),
        (60, 2, 150.0),
        (61, 3, 0.0),
        (255, 3, 0.0),
    ] {
        assert_eq!(config.attenuation_bucket(typical), bucket, "{typical} dB");
        let w = confirmed(5, typical);
        assert_eq!(config.weighted_duration(&w), weighted, "{typical} dB");
    }
    let apple = RiskConfig::apple_defaults();
    assert_eq!(apple.attenuation_thresholds, [50, 70, 90]);
    assert_eq!(
        [50, 51, 70, 71, 90, 91].map(|a| apple.attenuation_bucket(a)),
        [0, 1, 1, 2, 2, 3]
    );
}

#[test]
fn mixed_buckets_and_weights_multiply() {
    let mut config = RiskConfig::enx_with_15_minute_alert();
    config.report_type_weights = [2.0, 1.0, 0.5, 1.0];
    config.infectiousness_weights = [0.5, 2.0];
    // 300 s immediate (×1.5) + 120 s near (×1) + 240 s medium (×0.5) + 300 s other (×0)
    let mut w = window(
        NOON,
        ReportType::ConfirmedTest,
        vec![scan(25, 300), scan(45, 120), scan(55, 240), scan(70, 300)],
    );
    assert_eq!(config.weighted_duration(&w), 450.0 + 120.0 + 120.0);
    // Onset day 0 is high infectiousness in the ENX default map.
    w.days_since_onset = DaysSinceOnset::new(0).ok();
    assert_eq!(config.window_score(&w), Some(690.0 * 2.0 * 2.0));
    w.days_since_onset = DaysSinceOnset::new(5).ok(); // standard
    w.report_type = ReportType::SelfReport;
    assert_eq!(config.window_score(&w), Some(690.0 * 0.5 * 0.5));
}

#[test]
fn enx_default_onset_map_decodes_as_documented() {
    // −14…−4 drop; −3,−2 standard; −1…+3 high; +4…+10 standard; +11…+14 drop; none → standard.
    let config = RiskConfig::enx_with_15_minute_alert();
    for days in -14..=14 {
        let expected = match days {
            -3 | -2 | 4..=10 => Infectiousness::Standard,
            -1..=3 => Infectiousness::High,
            _ => Infectiousness::None,
        };
        assert_eq!(
            config.infectiousness(DaysSinceOnset::new(days).ok()),
            expected,
            "{days}"
        );
    }
    assert_eq!(config.infectiousness(None), Infectiousness::Standard);
    // Infectiousness none drops the window.
    let mut w = confirmed(30, 40);
    w.days_since_onset = DaysSinceOnset::new(-4).ok();
    assert_eq!(config.window_score(&w), None);
    assert!(config.daily_summaries(&[w], NOON).is_empty());
}

#[test]
fn report_type_when_missing_and_revoked() {
    let mut config = RiskConfig::enx_with_15_minute_alert();
    config.report_type_weights = [1.0, 0.8, 0.6, 0.4];
    let unknown = window(NOON, ReportType::Unknown, vec![scan(40, 300)]);
    // ENX default: missing → self report.
    assert_eq!(
        config.scored_report_type(&unknown),
        Some(ReportType::SelfReport)
    );
    assert_eq!(config.window_score(&unknown), Some(300.0 * 0.6));
    config.report_type_when_missing = Some(ReportType::ConfirmedClinicalDiagnosis);
    assert_eq!(config.window_score(&unknown), Some(300.0 * 0.8));
    config.report_type_when_missing = None; // ENX reportTypeNoneMap 0 = drop
    assert_eq!(config.window_score(&unknown), None);
    let revoked = window(NOON, ReportType::Revoked, vec![scan(40, 300)]);
    assert_eq!(config.window_score(&revoked), None);
    let recursive = window(NOON, ReportType::Recursive, vec![scan(40, 300)]);
    assert_eq!(config.window_score(&recursive), Some(300.0 * 0.4));
}

#[test]
fn daily_summaries_sum_max_weighted_duration_and_minimum_score() {
    let mut config = RiskConfig::enx_with_15_minute_alert();
    config.minimum_window_score = 100.0;
    config.report_type_weights = [1.0, 1.0, 0.5, 1.0];
    let windows = [
        window(NOON, ReportType::ConfirmedTest, vec![scan(40, 300)]), // 300
        window(
            NOON + 3_600,
            ReportType::SelfReport,
            vec![scan(40, 300), scan(40, 300)],
        ), // 300, wd 600
        window(NOON + 7_200, ReportType::ConfirmedTest, vec![scan(40, 60)]), // 60 < minimum
        window(NOON + DAY, ReportType::ConfirmedTest, vec![scan(25, 120)]), // next day: 180
    ];
    let days = config.daily_summaries(&windows, NOON + DAY);
    assert_eq!(days.len(), 2);
    assert_eq!(days[0].day, Day::new(20_000));
    assert_eq!(days[0].summary.score_sum, 600.0);
    assert_eq!(days[0].summary.max_score, 300.0);
    assert_eq!(days[0].summary.weighted_duration_sum, 900.0);
    assert_eq!(
        days[0]
            .for_report_type(ReportType::SelfReport)
            .weighted_duration_sum,
        600.0
    );
    assert_eq!(days[1].day, Day::new(20_001));
    assert_eq!(days[1].summary.score_sum, 180.0);
    let summary = config.assess(&windows, NOON + DAY);
    assert_eq!(
        summary.windows.len(),
        3,
        "the window below the minimum is left out"
    );
}

#[test]
fn days_older_than_the_threshold_are_ignored() {
    let mut config = RiskConfig::enx_with_15_minute_alert();
    let old = confirmed(30, 40);
    assert_eq!(
        config
            .daily_summaries(std::slice::from_ref(&old), NOON + 14 * DAY)
            .len(),
        1
    );
    assert!(
        config
            .daily_summaries(std::slice::from_ref(&old), NOON + 15 * DAY)
            .is_empty()
    );
    config.days_since_exposure_threshold = 0; // keep all
    assert_eq!(config.daily_summaries(&[old], NOON + 15 * DAY).len(), 1);
}

fn enx_sample() -> Option<RiskConfig> {
    let path = kith_test_support::shared_gaen("configs/enx_sample_config_risk_subset.json")?;
    let text = std::fs::read_to_string(path).unwrap();
    let file: serde_json::Value = serde_json::from_str(&text).unwrap();
    Some(RiskConfig::from_json(&file["config_subset"].to_string()).unwrap())
}

#[test]
fn reads_the_enx_sample_configuration() {
    let Some(config) = enx_sample() else { return };
    assert_eq!(config.attenuation_thresholds, [30, 50, 60]);
    assert_eq!(config.attenuation_weights, [1.5, 1.0, 0.5, 0.0]);
    assert_eq!(
        config.infectiousness_by_days_since_onset,
        [Infectiousness::Standard; 29]
    );
    assert_eq!(
        config.infectiousness_when_onset_missing,
        Infectiousness::Standard
    );
    assert_eq!(config.infectiousness_weights, [1.0, 1.0]);
    assert_eq!(config.report_type_weights[..3], [1.0, 1.0, 1.0]);
    assert_eq!(
        config.report_type_when_missing,
        Some(ReportType::ConfirmedClinicalDiagnosis)
    );
    assert_eq!(config.days_since_exposure_threshold, 14);
    assert_eq!(config.classifications.len(), 4);
    assert_eq!(config.classifications[0].confirmed_test_per_day_sum, 2700.0);
    assert_eq!(config.classifications[1].confirmed_test_per_day_sum, 1.0);
    assert_eq!(
        config.classifications[2].clinical_diagnosis_per_day_sum,
        1.0
    );
    assert_eq!(config.classifications[3].self_report_per_day_sum, 1.0);
}

#[test]
fn enx_sample_classifies_45_minutes_of_confirmed_test_as_level_1() {
    let Some(config) = enx_sample() else { return };
    // 2700 = 45 minutes at weight 1.0 (near bucket).
    let summary = config.assess(&[confirmed(45, 40)], NOON);
    assert_eq!(summary.risk_level, Some(1));
    assert_eq!(summary.days, vec![Day::new(20_000)]);
    let summary = config.assess(&[confirmed(40, 40)], NOON);
    assert_eq!(summary.risk_level, Some(2));
    // A self report on another day reaches only classification 4; the most severe wins.
    let self_report = window(NOON - DAY, ReportType::SelfReport, vec![scan(40, 300)]);
    let summary = config.assess(&[self_report.clone(), confirmed(45, 40)], NOON);
    assert_eq!(
        (summary.risk_level, summary.days),
        (Some(1), vec![Day::new(20_000)])
    );
    let summary = config.assess(&[self_report], NOON);
    assert_eq!(
        (summary.risk_level, summary.days),
        (Some(4), vec![Day::new(19_999)])
    );
    // Other attenuation: weight 0, nothing reached.
    assert_eq!(config.assess(&[confirmed(60, 70)], NOON).risk_level, None);
}

#[test]
fn presets_round_trip_through_json() {
    for config in [
        RiskConfig::enx_with_15_minute_alert(),
        RiskConfig::apple_defaults(),
    ] {
        assert_eq!(RiskConfig::from_json(&config.to_json()).unwrap(), config);
    }
    let enx = RiskConfig::enx_with_15_minute_alert();
    assert_eq!(enx.attenuation_thresholds, [30, 50, 60]);
    assert_eq!(enx.attenuation_weights, [1.5, 1.0, 0.5, 0.0]);
    assert!(
        enx.to_json()
            .contains("\"symptomOnsetToInfectiousnessMap\": \"0x0401555AA9400000\"")
    );
    // An empty object is ENX's documented defaults, with no classification.
    let bare = RiskConfig::from_json("{}").unwrap();
    assert_eq!(bare.attenuation_weights, enx.attenuation_weights);
    assert!(bare.classifications.is_empty());
    // The map may be a plain number too.
    let numeric =
        RiskConfig::from_json(r#"{"symptomOnsetToInfectiousnessMap": 384307168202282325}"#)
            .unwrap();
    assert_eq!(
        numeric.infectiousness_by_days_since_onset,
        [Infectiousness::Standard; 29]
    );
}

#[test]
fn invalid_configurations_say_what_is_wrong() {
    for (json, needle) in [
        (
            r#"{"attenuationNearWeight": 300}"#,
            "attenuationNearWeight is 300",
        ),
        (
            r#"{"attenuationNearWeight": -1}"#,
            "attenuationNearWeight is -1",
        ),
        (
            r#"{"symptomOnsetToInfectiousnessMap": "0x3"}"#,
            "entry 0 is 3",
        ),
        (
            r#"{"symptomOnsetToInfectiousnessMap": "zz"}"#,
            "expected a uint64",
        ),
        (
            r#"{"attenuationDurationThresholds": [60, 50, 70]}"#,
            "strictly increasing",
        ),
        (
            r#"{"attenuationNearMedThreshold": 30}"#,
            "strictly increasing",
        ),
        (
            r#"{"attenuationDurationThresholds": [50]}"#,
            "expected 3 thresholds of 0..=255",
        ),
        (
            r#"{"attenuationMedFarThreshold": 256}"#,
            "attenuationMedFarThreshold is 256: expected an integer 0..=255",
        ),
        (
            r#"{"attenuationNearWeight": 50.5}"#,
            "integer weight of 0..=250",
        ),
        (
            r#"{"daysSinceExposureThreshold": 15}"#,
            "daysSinceExposureThreshold is 15: expected an integer 0..=14",
        ),
        (
            r#"{"attenuationImediateWeight": 150}"#,
            "unknown key `attenuationImediateWeight`",
        ),
        (
            r#"{"config": {"minimumExposureDuration": 15}}"#,
            "formats understood are ENX / GAEN v2 JSON",
        ),
        (r#"{"config": 3}"#, "config is 3"),
        ("[1, 2]", "expected a JSON object"),
        (r#"{"reportTypeNoneMap": 4}"#, "reportTypeNoneMap is 4"),
        (
            r#"{"perDaySumERVThreshold_5": 10}"#,
            "classification number 1..=4",
        ),
        (r#"{"perDaySumERVThreshold_1": "ten"}"#, "expected a number"),
        (r#"{"minimumWindowScore": -3}"#, "minimumWindowScore"),
        ("not json", "invalid risk configuration"),
    ] {
        let err = RiskConfig::from_json(json).unwrap_err();
        assert!(matches!(err, Error::RiskConfig(_)), "{json}");
        assert!(err.to_string().contains(needle), "{json}: {err}");
    }
}

fn matched(tek: &TemporaryExposureKey, times: &[(UnixSeconds, u64, i8)], tx_power: i8) -> Match {
    let (rpik, aemk) = tek.derive_keys();
    let metadata = BluetoothMetadata::v1_0(tx_power);
    let sightings = times
        .iter()
        .map(|&(time, scan_id, rssi)| {
            let interval = time.interval();
            let rpi: Rpi = rpik.rpi(interval);
            MatchedSighting {
                sighting: Sighting {
                    rpi,
                    aem: aemk.encrypt(rpi, metadata),
                    rssi,
                    time,
                    scan_id,
                },
                interval,
                metadata,
            }
        })
        .collect();
    Match {
        key: DiagnosisKey::new(tek.clone()),
        sightings,
    }
}

fn tek() -> TemporaryExposureKey {
    TemporaryExposureKey::from_bytes(
        [7; 16],
        KeyValidity::day_of(IntervalNumber::new(20_000 * 144)),
    )
}

#[test]
fn windows_split_at_30_minutes() {
    let t = NOON;
    // Scans every 5 minutes for 65 minutes: windows start at 0, 30 and 60 minutes.
    let times: Vec<(UnixSeconds, u64, i8)> = (0..14).map(|i| (t + 300 * i, i, -60)).collect();
    let m = matched(&tek(), &times, -10);
    let sightings: Vec<Sighting> = m.sightings.iter().map(|s| s.sighting).collect();
    let windows = ExposureWindow::from_match(&m, &ScanTimeline::new(&sightings), 0);
    assert_eq!(
        windows.iter().map(|w| w.start).collect::<Vec<_>>(),
        vec![t, t + 1_800, t + 3_600]
    );
    assert_eq!(
        windows
            .iter()
            .map(|w| w.scan_instances.len())
            .collect::<Vec<_>>(),
        vec![6, 6, 2]
    );
    // First scan: previous unknown, 120 s; then 5 minutes each.
    assert_eq!(windows[0].duration_seconds(), 120 + 5 * 300);
    assert_eq!(windows[1].duration_seconds(), 6 * 300);
    // 1799 s after the start is still the same window.
    let m = matched(&tek(), &[(t, 1, -60), (t + 1_799, 2, -60)], -10);
    let sightings: Vec<Sighting> = m.sightings.iter().map(|s| s.sighting).collect();
    assert_eq!(
        ExposureWindow::from_match(&m, &ScanTimeline::new(&sightings), 0).len(),
        1
    );
}

#[test]
fn scan_instances_aggregate_one_scan() {
    let t = NOON;
    // Scan 1: one beacon. Scan 2 (4 minutes later): beacons at 40, 41 dB → typical 41
    // (40.5 rounded half up), min 40. Scan 3, 9 minutes later: capped at 300 s.
    let m = matched(
        &tek(),
        &[
            (t, 1, -50),
            (t + 240, 2, -50),
            (t + 241, 2, -51),
            (t + 780, 3, -70),
        ],
        -10,
    );
    let sightings: Vec<Sighting> = m.sightings.iter().map(|s| s.sighting).collect();
    let scans = ScanTimeline::new(&sightings);
    let windows = ExposureWindow::from_match(&m, &scans, 0);
    assert_eq!(windows.len(), 1);
    assert_eq!(
        windows[0].scan_instances,
        vec![
            ScanInstance {
                typical_attenuation: 40,
                min_attenuation: 40,
                seconds_since_last_scan: 120
            },
            ScanInstance {
                typical_attenuation: 41,
                min_attenuation: 40,
                seconds_since_last_scan: 240
            },
            ScanInstance {
                typical_attenuation: 60,
                min_attenuation: 60,
                seconds_since_last_scan: 300
            },
        ]
    );
    // Whole minutes, as GAEN: previous scan at 59 s, this one at 61 s → 60 s.
    let m = matched(&tek(), &[(t + 59, 1, -60), (t + 61, 2, -60)], 0);
    let sightings: Vec<Sighting> = m.sightings.iter().map(|s| s.sighting).collect();
    assert_eq!(
        ScanTimeline::new(&sightings).seconds_since_last_scan(2, t + 61),
        60
    );
    // The receiver's RSSI correction enters the attenuation.
    let windows = ExposureWindow::from_match(&m, &ScanTimeline::new(&sightings), 5);
    assert_eq!(windows[0].scan_instances[0].typical_attenuation, 55);
}

#[test]
fn attenuation_is_tx_power_minus_corrected_rssi_and_never_negative() {
    assert_eq!(attenuation(-20, -70, 5), 45);
    assert_eq!(attenuation(-20, -70, 0), 50);
    assert_eq!(attenuation(-30, -10, 0), 0);
    assert_eq!(attenuation(20, -128, -128), 255);
}

/// `ExposureWindow::from_match` done plainly, one sighting at a time, looking each
/// scan up with `seconds_since_last_scan`: the reference that the implementation's
/// shortcuts (scans searched near the last one, instances counted before they are
/// summed) are checked against.
fn windows_one_by_one(m: &Match, scans: &ScanTimeline, correction: i8) -> Vec<ExposureWindow> {
    let mut windows: Vec<ExposureWindow> = Vec::new();
    // (scan id, time of its first sighting, attenuations) of the current window.
    let mut current: Vec<(u64, UnixSeconds, Vec<u8>)> = Vec::new();
    let finish = |windows: &mut Vec<ExposureWindow>,
                  current: &mut Vec<(u64, UnixSeconds, Vec<u8>)>| {
        if let Some(window) = windows.last_mut() {
            window.scan_instances = current
                .drain(..)
                .map(|(id, time, dbs)| {
                    let (sum, count) = (
                        dbs.iter().map(|&d| u32::from(d)).sum::<u32>(),
                        dbs.len() as u32,
                    );
                    ScanInstance {
                        typical_attenuation: ((2 * sum + count) / (2 * count)) as u8,
                        min_attenuation: *dbs.iter().min().unwrap(),
                        seconds_since_last_scan: scans.seconds_since_last_scan(id, time),
                    }
                })
                .collect();
        }
    };
    for matched in &m.sightings {
        let s = &matched.sighting;
        if windows
            .last()
            .is_none_or(|w| s.time.since(w.start) >= 1_800)
        {
            finish(&mut windows, &mut current);
            windows.push(ExposureWindow {
                start: s.time,
                report_type: m.key.report_type,
                days_since_onset: m.key.days_since_onset,
                calibration_confidence: matched.metadata.calibration_confidence(),
                scan_instances: Vec::new(),
            });
        }
        let db = attenuation(matched.metadata.tx_power(), s.rssi, correction);
        match current.last_mut() {
            Some((id, _, dbs)) if *id == s.scan_id => dbs.push(db),
            _ => current.push((s.scan_id, s.time, vec![db])),
        }
    }
    finish(&mut windows, &mut current);
    windows
}

proptest! {
    /// The windows of random matches, over timelines that hold the key's scans, other
    /// scans, or miss some, in scan order or not, are those built one sighting at a
    /// time.
    #[test]
    fn windows_are_those_built_one_sighting_at_a_time(
        heard in prop::collection::vec((0u64..7_200, -90i8..-30, -50i8..=20), 1..80),
        ids_count_up in any::<bool>(),
        time_order in any::<bool>(),
        other_scans in prop::collection::vec((0u64..7_200, 0u64..100), 0..60),
        missing in prop::collection::vec(any::<prop::sample::Index>(), 0..5),
        correction in -20i8..20,
    ) {
        // Scans every 4 minutes: ids count up with time, or are scrambled.
        let id = |offset: u64| if ids_count_up { offset / 240 } else { (offset / 240 * 37) % 101 };
        let mut sightings: Vec<MatchedSighting> = heard
            .iter()
            .map(|&(offset, rssi, tx_power)| {
                let time = NOON + offset;
                MatchedSighting {
                    sighting: Sighting {
                        rpi: Rpi::from_bytes([0; 16]),
                        aem: kith_core::Aem::from_bytes([0; 4]),
                        rssi,
                        time,
                        scan_id: id(offset),
                    },
                    interval: time.interval(),
                    metadata: BluetoothMetadata::v1_0(tx_power),
                }
            })
            .collect();
        if time_order {
            sightings.sort_by_key(|m| (m.sighting.time, m.sighting.scan_id));
        }
        let m = Match { key: DiagnosisKey::new(tek()), sightings };
        let mut scans: Vec<Sighting> = m.sightings.iter().map(|s| s.sighting).collect();
        let heard_first = scans[0];
        scans.extend(other_scans.iter().map(|&(offset, k)| Sighting {
            time: NOON + offset,
            scan_id: if ids_count_up { id(offset) } else { k },
            ..heard_first
        }));
        for index in &missing {
            if scans.is_empty() {
                break;
            }
            let gone = scans[index.index(scans.len())].scan_id;
            scans.retain(|s| s.scan_id != gone);
        }
        // In scan order, as a caller with one record per scan passes them, or not.
        if time_order {
            scans.sort_by_key(|s| (s.scan_id, s.time));
        }
        let timeline = ScanTimeline::new(&scans);
        prop_assert_eq!(
            ExposureWindow::from_match(&m, &timeline, correction),
            windows_one_by_one(&m, &timeline, correction)
        );
    }

    /// The previous scan of each scan is the one just before it in time (ties broken by
    /// scan id), whether scan ids count up with time or not.
    #[test]
    fn seconds_since_last_scan_follow_time_order(
        gaps in prop::collection::vec(0u64..400, 1..40),
        shuffle in any::<bool>(),
        seed in any::<u64>(),
        repeats in prop::collection::vec(0usize..40, 0..10),
        scan_order in 0..3,
    ) {
        let mut times: Vec<UnixSeconds> = Vec::new();
        let mut t = NOON;
        for gap in gaps {
            t = t + gap;
            times.push(t);
        }
        let mut ids: Vec<u64> = (0..times.len() as u64).collect();
        if shuffle {
            // A permutation from the seed: ids no longer count up with time.
            ids.sort_by_key(|&i| (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ seed).rotate_left(17));
        }
        let sighting = |k: usize| Sighting {
            rpi: Rpi::from_bytes([k as u8; 16]),
            aem: kith_core::Aem::from_bytes([0; 4]),
            rssi: -60,
            time: times[k],
            scan_id: ids[k],
        };
        let mut sightings: Vec<Sighting> = (0..times.len()).map(sighting).collect();
        // Several beacons in one scan: the scan's time is its first sighting's.
        sightings.extend(repeats.iter().filter(|&&k| k < times.len()).map(|&k| Sighting {
            time: times[k] + 1,
            ..sighting(k)
        }));
        // In scan order, as one record per scan comes (building the timeline takes
        // one pass then), or in scan order but each scan's sightings late first.
        match scan_order {
            1 => sightings.sort_by_key(|s| (s.scan_id, s.time)),
            2 => sightings.sort_by_key(|s| (s.scan_id, std::cmp::Reverse(s.time))),
            _ => {}
        }
        let timeline = ScanTimeline::new(&sightings);
        let mut order: Vec<(UnixSeconds, u64)> = times.iter().copied().zip(ids.iter().copied()).collect();
        order.sort_unstable();
        for (k, &(time, id)) in order.iter().enumerate() {
            let expected = match k.checked_sub(1).map(|j| order[j].0) {
                Some(previous) => (60 * (time.get() / 60 - previous.get() / 60)).min(300) as u16,
                None => 120,
            };
            prop_assert_eq!(timeline.seconds_since_last_scan(id, time), expected, "scan {}", id);
        }
    }

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,200}") {
        let _ = RiskConfig::from_json(&text);
    }

    #[test]
    fn arbitrary_values_of_known_keys_never_panic(
        key in prop::sample::select(vec![
            "attenuationNearWeight", "attenuationDurationThresholds",
            "symptomOnsetToInfectiousnessMap", "reportTypeNoneMap", "perDayMaxERVThreshold_2",
            "attenuationMedFarThreshold", "minimumWindowScore", "daysSinceExposureThreshold",
        ]),
        value in prop_oneof![
            any::<i64>().prop_map(|n| n.to_string()),
            any::<f64>().prop_map(|f| if f.is_finite() { f.to_string() } else { "1e400".into() }),
            "\"[0-9a-fA-Fx]{0,20}\"",
            prop::collection::vec(any::<i16>(), 0..5).prop_map(|v| format!("{v:?}")),
        ],
    ) {
        let json = format!("{{\"{key}\": {value}}}");
        if let Ok(config) = RiskConfig::from_json(&json) {
            prop_assert!(config.attenuation_thresholds.windows(2).all(|t| t[0] < t[1]));
            prop_assert!(RiskConfig::from_json(&config.to_json()).is_ok());
        }
    }
}
