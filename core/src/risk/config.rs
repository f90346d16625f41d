//! The risk configuration a health authority sets, read from JSON.
//!
//! The JSON format is that of Exposure Notifications Express (ENX): weights in
//! integer percent, `symptomOnsetToInfectiousnessMap` as a 2-bit-per-day `uint64`
//! (a `"0x…"` string or a number), and up to four exposure classifications whose
//! thresholds are keys ending in `_1` … `_4`. Any key not given takes ENX's
//! documented default; keys that concern other parts of an app are ignored.
//!
//! Two keys of the Apple/Google API are accepted too, so that GAEN v1 settings map
//! onto v2 scoring: `attenuationDurationThresholds` (3 values, or 2 for a v1 config,
//! whose medium bucket is then empty) and `minimumExposureDurationMinutes` (a
//! classification 1 on the daily weighted duration), plus v2's `minimumWindowScore`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::diagnosis::{DaysSinceOnset, ReportType};
use crate::error::{Error, Result, RiskConfigError};

/// How infectious the sender was on the key's day (GAEN `Infectiousness`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Infectiousness {
    /// Not infectious: exposures are dropped.
    None = 0,
    /// Standard infectiousness.
    Standard = 1,
    /// High infectiousness.
    High = 2,
}

/// Thresholds that put a day into an exposure classification; 0 disables one.
///
/// A day is in the classification when any enabled threshold is reached (≥).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Classification {
    /// Score sum of windows of keys with report type confirmed test.
    pub confirmed_test_per_day_sum: f64,
    /// Score sum of windows of keys with report type clinical diagnosis.
    pub clinical_diagnosis_per_day_sum: f64,
    /// Score sum of windows of keys with report type self report.
    pub self_report_per_day_sum: f64,
    /// Score sum of windows of keys with report type recursive.
    pub recursive_per_day_sum: f64,
    /// Score sum of all windows.
    pub per_day_sum: f64,
    /// Highest score of one window.
    pub per_day_max: f64,
    /// Sum of the windows' weighted durations.
    pub weighted_duration: f64,
}

/// GAEN v2 risk scoring parameters (`DailySummariesConfig` and `DiagnosisKeysDataMapping`).
///
/// Weights are factors (1.0 = 100 %), between 0 and 2.5.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "EnxConfig", into = "EnxConfig")]
pub struct RiskConfig {
    /// Upper bounds (inclusive, dB) of the immediate, near and medium attenuation buckets.
    pub attenuation_thresholds: [u8; 3],
    /// Weights of the immediate, near, medium and other buckets.
    pub attenuation_weights: [f64; 4],
    /// Infectiousness for days since onset −14..=14 (index = days + 14).
    pub infectiousness_by_days_since_onset: [Infectiousness; 29],
    /// Infectiousness of keys published without days since onset.
    pub infectiousness_when_onset_missing: Infectiousness,
    /// Weights of standard and high infectiousness.
    pub infectiousness_weights: [f64; 2],
    /// Weights of confirmed test, clinical diagnosis, self report and recursive.
    pub report_type_weights: [f64; 4],
    /// Report type given to keys published without one; `None` drops them.
    pub report_type_when_missing: Option<ReportType>,
    /// Windows scoring below this are ignored.
    pub minimum_window_score: f64,
    /// Days older than this (counted from today) are ignored; 0 keeps all.
    pub days_since_exposure_threshold: u32,
    /// Exposure classifications, most severe first: the risk level is the 1-based
    /// position of the first classification a day reaches.
    pub classifications: Vec<Classification>,
}

impl RiskConfig {
    /// Kith's default preset: ENX's documented scoring defaults (thresholds 30/50/60 dB,
    /// weights 150/100/50/0 %, onset map `0x0401555AA9400000`, missing report type →
    /// self report, 14 days) plus one classification that ENX's defaults lack.
    ///
    /// ENX ships with every classification disabled (no notification ever); this
    /// preset adds one, reached by 15 minutes of weighted exposure (900) in a day, the
    /// alert tier of the Risk Score Symposium's recommendations. Hence the name: it is
    /// not ENX's default, which notifies no one.
    pub fn enx_with_15_minute_alert() -> Self {
        let mut config = Self::try_from(EnxConfig::default()).expect("ENX defaults are valid");
        config.classifications = vec![Self::fifteen_minutes()];
        config
    }

    /// Apple's `ENExposureConfiguration` default attenuation thresholds, 50/70/90 dB
    /// (the only default Apple documents: developer.apple.com, ENExposureConfiguration
    /// `attenuationDurationThresholds`), with everything else neutral: every weight
    /// 100 %, every day of standard infectiousness, missing report type → confirmed
    /// test, and the same 15-minute classification as [`enx_with_15_minute_alert`](Self::enx_with_15_minute_alert).
    pub fn apple_defaults() -> Self {
        Self {
            attenuation_thresholds: [50, 70, 90],
            attenuation_weights: [1.0; 4],
            infectiousness_by_days_since_onset: [Infectiousness::Standard; 29],
            infectiousness_when_onset_missing: Infectiousness::Standard,
            infectiousness_weights: [1.0; 2],
            report_type_weights: [1.0; 4],
            report_type_when_missing: Some(ReportType::ConfirmedTest),
            minimum_window_score: 0.0,
            days_since_exposure_threshold: 14,
            classifications: vec![Self::fifteen_minutes()],
        }
    }

    fn fifteen_minutes() -> Classification {
        Classification {
            per_day_sum: 900.0,
            ..Classification::default()
        }
    }

    /// Reads a configuration in ENX's JSON format (see the [module docs](self)).
    pub fn from_json(json: &str) -> Result<Self> {
        let enx: EnxConfig =
            serde_json::from_str(json).map_err(|e| RiskConfigError::Syntax(e.to_string()))?;
        Self::try_from(enx)
    }

    /// The configuration in ENX's JSON format.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a risk configuration always serializes")
    }

    /// The infectiousness of a key with these days since onset.
    pub fn infectiousness(&self, days_since_onset: Option<DaysSinceOnset>) -> Infectiousness {
        match days_since_onset {
            Some(days) => self.infectiousness_by_days_since_onset[(days.get() + 14) as usize],
            None => self.infectiousness_when_onset_missing,
        }
    }
}

impl Default for RiskConfig {
    fn default() -> Self {
        Self::enx_with_15_minute_alert()
    }
}

/// Bits per day in ENX's onset map, and the entries it holds (29 days, then "missing").
const MAP_BITS: u32 = 2;
const MAP_ENTRIES: usize = 30;

fn decode_onset_map(map: u64) -> Result<([Infectiousness; 29], Infectiousness)> {
    let mut entries = [Infectiousness::None; MAP_ENTRIES];
    for (i, entry) in entries.iter_mut().enumerate() {
        *entry = match (map >> (MAP_BITS * i as u32)) & 0b11 {
            0 => Infectiousness::None,
            1 => Infectiousness::Standard,
            2 => Infectiousness::High,
            _ => {
                return Err(RiskConfigError::invalid(
                    format!("symptomOnsetToInfectiousnessMap entry {i}"),
                    3,
                    "0 (drop), 1 (standard) or 2 (high)",
                )
                .into());
            }
        };
    }
    let mut days = [Infectiousness::None; 29];
    days.copy_from_slice(&entries[..29]);
    Ok((days, entries[29]))
}

fn encode_onset_map(days: &[Infectiousness; 29], missing: Infectiousness) -> u64 {
    days.iter()
        .chain(std::iter::once(&missing))
        .enumerate()
        .map(|(i, &v)| (v as u64) << (MAP_BITS * i as u32))
        .sum()
}

/// ENX's `uint64` onset map: a `"0x…"` string (as ENX writes it) or a JSON number.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum OnsetMap {
    Number(u64),
    Text(String),
}

impl OnsetMap {
    fn value(&self) -> Result<u64> {
        match self {
            Self::Number(n) => Ok(*n),
            Self::Text(text) => {
                let digits = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X"));
                match digits {
                    Some(hex) => u64::from_str_radix(hex, 16),
                    None => text.parse(),
                }
                .map_err(|_| {
                    RiskConfigError::invalid(
                        "symptomOnsetToInfectiousnessMap",
                        format!("{text:?}"),
                        "a uint64 (\"0x…\" or decimal)",
                    )
                    .into()
                })
            }
        }
    }
}

/// The JSON shape: ENX's configuration keys.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct EnxConfig {
    attenuation_immediate_weight: f64,
    attenuation_near_weight: f64,
    attenuation_med_weight: f64,
    attenuation_other_weight: f64,
    attenuation_immediate_near_threshold: u8,
    attenuation_near_med_threshold: u8,
    attenuation_med_far_threshold: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    attenuation_duration_thresholds: Option<Vec<u8>>,
    infectiousness_standard_weight: f64,
    infectiousness_high_weight: f64,
    symptom_onset_to_infectiousness_map: OnsetMap,
    report_type_confirmed_test_weight: f64,
    report_type_confirmed_clinical_diagnosis_weight: f64,
    report_type_self_report_weight: f64,
    report_type_recursive_weight: f64,
    report_type_none_map: u8,
    days_since_exposure_threshold: u32,
    minimum_window_score: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    minimum_exposure_duration_minutes: Option<u32>,
    /// Classification thresholds (`name_N`) and keys of no concern to scoring.
    #[serde(flatten)]
    other: BTreeMap<String, serde_json::Value>,
}

impl Default for EnxConfig {
    fn default() -> Self {
        Self {
            attenuation_immediate_weight: 150.0,
            attenuation_near_weight: 100.0,
            attenuation_med_weight: 50.0,
            attenuation_other_weight: 0.0,
            attenuation_immediate_near_threshold: 30,
            attenuation_near_med_threshold: 50,
            attenuation_med_far_threshold: 60,
            attenuation_duration_thresholds: None,
            infectiousness_standard_weight: 100.0,
            infectiousness_high_weight: 100.0,
            symptom_onset_to_infectiousness_map: OnsetMap::Text("0x0401555AA9400000".into()),
            report_type_confirmed_test_weight: 100.0,
            report_type_confirmed_clinical_diagnosis_weight: 100.0,
            report_type_self_report_weight: 100.0,
            report_type_recursive_weight: 100.0,
            report_type_none_map: 3,
            days_since_exposure_threshold: 14,
            minimum_window_score: 0.0,
            minimum_exposure_duration_minutes: None,
            other: BTreeMap::new(),
        }
    }
}

/// ENX's classification threshold keys, without the `_N` suffix, and where they go.
/// Where a threshold key's value goes in a [`Classification`].
type ThresholdField = fn(&mut Classification) -> &mut f64;

const CLASSIFICATION_KEYS: [(&str, ThresholdField); 7] = [
    ("confirmedTestPerDaySumERVThreshold", |c| {
        &mut c.confirmed_test_per_day_sum
    }),
    ("clinicalDiagnosisPerDaySumERVThreshold", |c| {
        &mut c.clinical_diagnosis_per_day_sum
    }),
    ("selfReportPerDaySumERVThreshold", |c| {
        &mut c.self_report_per_day_sum
    }),
    ("recursivePerDaySumERVThreshold", |c| {
        &mut c.recursive_per_day_sum
    }),
    ("perDaySumERVThreshold", |c| &mut c.per_day_sum),
    ("perDayMaxERVThreshold", |c| &mut c.per_day_max),
    ("weightedDurationAtAttenuationThreshold", |c| {
        &mut c.weighted_duration
    }),
];

/// ENX allows classifications 1 to 4.
const MAX_CLASSIFICATIONS: usize = 4;

fn percent(value: f64, name: &str) -> Result<f64> {
    if (0.0..=250.0).contains(&value) {
        Ok(value / 100.0)
    } else {
        Err(RiskConfigError::invalid(name, value, "a weight of 0..=250 percent").into())
    }
}

impl TryFrom<EnxConfig> for RiskConfig {
    type Error = Error;

    fn try_from(enx: EnxConfig) -> Result<Self> {
        let attenuation_thresholds = attenuation_thresholds(&enx)?;
        let (infectiousness_by_days_since_onset, infectiousness_when_onset_missing) =
            decode_onset_map(enx.symptom_onset_to_infectiousness_map.value()?)?;
        let report_type_when_missing = report_type_when_missing(enx.report_type_none_map)?;
        let minimum_window_score = minimum_window_score(enx.minimum_window_score)?;
        let classifications = classifications(&enx)?;

        Ok(Self {
            attenuation_thresholds,
            attenuation_weights: [
                percent(
                    enx.attenuation_immediate_weight,
                    "attenuationImmediateWeight",
                )?,
                percent(enx.attenuation_near_weight, "attenuationNearWeight")?,
                percent(enx.attenuation_med_weight, "attenuationMedWeight")?,
                percent(enx.attenuation_other_weight, "attenuationOtherWeight")?,
            ],
            infectiousness_by_days_since_onset,
            infectiousness_when_onset_missing,
            infectiousness_weights: [
                percent(
                    enx.infectiousness_standard_weight,
                    "infectiousnessStandardWeight",
                )?,
                percent(enx.infectiousness_high_weight, "infectiousnessHighWeight")?,
            ],
            report_type_weights: [
                percent(
                    enx.report_type_confirmed_test_weight,
                    "reportTypeConfirmedTestWeight",
                )?,
                percent(
                    enx.report_type_confirmed_clinical_diagnosis_weight,
                    "reportTypeConfirmedClinicalDiagnosisWeight",
                )?,
                percent(
                    enx.report_type_self_report_weight,
                    "reportTypeSelfReportWeight",
                )?,
                percent(
                    enx.report_type_recursive_weight,
                    "reportTypeRecursiveWeight",
                )?,
            ],
            report_type_when_missing,
            minimum_window_score,
            days_since_exposure_threshold: enx.days_since_exposure_threshold,
            classifications,
        })
    }
}

/// The three attenuation thresholds (dB), from the named fields or from
/// `attenuationDurationThresholds` (2 or 3 values, as ENX and GAEN v1 publish them).
fn attenuation_thresholds(enx: &EnxConfig) -> Result<[u8; 3]> {
    let thresholds = match enx.attenuation_duration_thresholds.as_deref() {
        None => [
            enx.attenuation_immediate_near_threshold,
            enx.attenuation_near_med_threshold,
            enx.attenuation_med_far_threshold,
        ],
        Some(&[a, b, c]) => [a, b, c],
        Some(&[a, b]) => [a, b, b],
        Some(other) => {
            return Err(RiskConfigError::invalid(
                "attenuationDurationThresholds",
                format!("{other:?}"),
                "2 or 3 values",
            )
            .into());
        }
    };
    if !thresholds.is_sorted() {
        return Err(RiskConfigError::invalid(
            "attenuation thresholds",
            format!("{thresholds:?}"),
            "values that do not decrease",
        )
        .into());
    }
    Ok(thresholds)
}

/// `reportTypeNoneMap`: the report type a key without one is scored as (`None`: dropped).
fn report_type_when_missing(value: u8) -> Result<Option<ReportType>> {
    let mapped = match value {
        0 => None,
        1 => Some(ReportType::ConfirmedTest),
        2 => Some(ReportType::ConfirmedClinicalDiagnosis),
        3 => Some(ReportType::SelfReport),
        other => {
            return Err(RiskConfigError::invalid(
                "reportTypeNoneMap",
                other,
                "0 (drop) to 3 (self report)",
            )
            .into());
        }
    };
    Ok(mapped)
}

fn minimum_window_score(score: f64) -> Result<f64> {
    if score.is_nan() || score < 0.0 {
        return Err(
            RiskConfigError::invalid("minimumWindowScore", score, "a score of 0 or more").into(),
        );
    }
    Ok(score)
}

/// The numbered `…_1` to `…_4` classification thresholds among the keys not named
/// elsewhere, plus v1's `minimumExposureDurationMinutes`; trailing unused ones dropped.
fn classifications(enx: &EnxConfig) -> Result<Vec<Classification>> {
    let mut classifications = vec![Classification::default(); MAX_CLASSIFICATIONS];
    for (key, value) in &enx.other {
        let Some((name, number)) = key.rsplit_once('_') else {
            continue;
        };
        let Some(&(_, field)) = CLASSIFICATION_KEYS.iter().find(|(n, _)| *n == name) else {
            continue;
        };
        let index = match number.parse::<usize>() {
            Ok(n @ 1..=MAX_CLASSIFICATIONS) => n - 1,
            _ => {
                return Err(RiskConfigError::invalid(
                    key.as_str(),
                    value,
                    "a key ending in classification number 1..=4",
                )
                .into());
            }
        };
        let threshold = value.as_f64().filter(|t| *t >= 0.0).ok_or_else(|| {
            Error::from(RiskConfigError::invalid(
                key.as_str(),
                value,
                "a number ≥ 0",
            ))
        })?;
        *field(&mut classifications[index]) = threshold;
    }
    if let Some(minutes) = enx.minimum_exposure_duration_minutes {
        classifications[0].weighted_duration = f64::from(minutes) * 60.0;
    }
    while classifications.last() == Some(&Classification::default()) {
        classifications.pop();
    }
    Ok(classifications)
}

impl From<RiskConfig> for EnxConfig {
    fn from(config: RiskConfig) -> Self {
        let pct = |w: f64| w * 100.0;
        let mut other = BTreeMap::new();
        for (i, classification) in config.classifications.iter().enumerate() {
            let mut classification = classification.clone();
            for (name, field) in CLASSIFICATION_KEYS {
                other.insert(
                    format!("{name}_{}", i + 1),
                    serde_json::json!(*field(&mut classification)),
                );
            }
        }
        Self {
            attenuation_immediate_weight: pct(config.attenuation_weights[0]),
            attenuation_near_weight: pct(config.attenuation_weights[1]),
            attenuation_med_weight: pct(config.attenuation_weights[2]),
            attenuation_other_weight: pct(config.attenuation_weights[3]),
            attenuation_immediate_near_threshold: config.attenuation_thresholds[0],
            attenuation_near_med_threshold: config.attenuation_thresholds[1],
            attenuation_med_far_threshold: config.attenuation_thresholds[2],
            attenuation_duration_thresholds: None,
            infectiousness_standard_weight: pct(config.infectiousness_weights[0]),
            infectiousness_high_weight: pct(config.infectiousness_weights[1]),
            symptom_onset_to_infectiousness_map: OnsetMap::Text(format!(
                "0x{:016X}",
                encode_onset_map(
                    &config.infectiousness_by_days_since_onset,
                    config.infectiousness_when_onset_missing
                )
            )),
            report_type_confirmed_test_weight: pct(config.report_type_weights[0]),
            report_type_confirmed_clinical_diagnosis_weight: pct(config.report_type_weights[1]),
            report_type_self_report_weight: pct(config.report_type_weights[2]),
            report_type_recursive_weight: pct(config.report_type_weights[3]),
            report_type_none_map: match config.report_type_when_missing {
                Some(ReportType::ConfirmedTest) => 1,
                Some(ReportType::ConfirmedClinicalDiagnosis) => 2,
                Some(ReportType::SelfReport) => 3,
                _ => 0,
            },
            days_since_exposure_threshold: config.days_since_exposure_threshold,
            minimum_window_score: config.minimum_window_score,
            minimum_exposure_duration_minutes: None,
            other,
        }
    }
}
