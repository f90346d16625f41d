//! The risk configuration a health authority sets, read from JSON.
//!
//! The JSON format is that of Exposure Notifications Express (ENX): weights in
//! integer percent (0..=250), `symptomOnsetToInfectiousnessMap` as a 2-bit-per-day
//! `uint64` (a `"0x…"` string or a number), and up to four exposure classifications
//! whose thresholds are keys ending in `_1` … `_4`. The keys may be flat or wrapped in
//! `{"config": {...}}`, the file form ENX documents. Any key not given takes ENX's
//! documented default ([`RiskConfig::enx_documented_defaults`]). Keys of an ENX file
//! that concern other parts of an app (texts, colours, telemetry) are ignored; an
//! unknown key that reads like a scoring key (a typo, or a key of another format) is
//! an error naming it.
//!
//! Kith accepts three keys ENX lacks: `attenuationDurationThresholds` (the three
//! thresholds as one list, as GAEN v2's API takes them), `reportTypeRecursiveWeight`
//! (default 0, since ENX cannot weight RECURSIVE) and `minimumWindowScore` (default 0).

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

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
#[serde(try_from = "Value", into = "EnxConfig")]
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
    /// Weights of confirmed test, clinical diagnosis, self report and recursive
    /// (ENX leaves recursive at 0).
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
        Self {
            classifications: vec![Self::fifteen_minutes()],
            ..Self::enx_documented_defaults()
        }
    }

    /// ENX's documented defaults (AND `doc/enexpress-config.md`), what an empty ENX
    /// configuration means: thresholds 30/50/60 dB, weights 150/100/50/0 %, onset map
    /// `0x0401555AA9400000`, missing report type → self report, 14 days, RECURSIVE
    /// weighted 0, and every classification disabled, so no day ever notifies.
    pub fn enx_documented_defaults() -> Self {
        Self::try_from(Value::Object(Map::new())).expect("ENX defaults are valid")
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
        let value: Value =
            serde_json::from_str(json).map_err(|e| RiskConfigError::Syntax(e.to_string()))?;
        Self::try_from(value)
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

/// ENX's classification threshold keys, without the `_N` suffix, and where they go.
/// Where a threshold key's value goes in a [`Classification`].
pub(crate) type ThresholdField = fn(&mut Classification) -> &mut f64;

pub(crate) const CLASSIFICATION_KEYS: [(&str, ThresholdField); 7] = [
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

/// ENX's `uint64` onset map as written out: a `"0x…"` string, as ENX writes it.
fn onset_map_value(value: &Value) -> Result<u64> {
    let invalid = || {
        Error::from(RiskConfigError::invalid(
            "symptomOnsetToInfectiousnessMap",
            value,
            "a uint64 (\"0x…\" or decimal)",
        ))
    };
    match value {
        Value::Number(n) => n.as_u64().ok_or_else(invalid),
        Value::String(text) => {
            let digits = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X"));
            match digits {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => text.parse(),
            }
            .map_err(|_| invalid())
        }
        _ => Err(invalid()),
    }
}

/// The JSON shape written out: ENX's configuration keys (and Kith's two additions).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct EnxConfig {
    attenuation_immediate_weight: f64,
    attenuation_near_weight: f64,
    attenuation_med_weight: f64,
    attenuation_other_weight: f64,
    attenuation_immediate_near_threshold: u8,
    attenuation_near_med_threshold: u8,
    attenuation_med_far_threshold: u8,
    infectiousness_standard_weight: f64,
    infectiousness_high_weight: f64,
    symptom_onset_to_infectiousness_map: String,
    report_type_confirmed_test_weight: f64,
    report_type_confirmed_clinical_diagnosis_weight: f64,
    report_type_self_report_weight: f64,
    report_type_recursive_weight: f64,
    report_type_none_map: u8,
    days_since_exposure_threshold: u32,
    minimum_window_score: f64,
    /// Classification thresholds (`name_N`).
    #[serde(flatten)]
    classifications: BTreeMap<String, f64>,
}

/// The keys ENX's scoring reads (besides the numbered classification thresholds),
/// plus Kith's `reportTypeRecursiveWeight`, `minimumWindowScore` (GAEN v2 fields
/// ENX does not expose) and `attenuationDurationThresholds` (v2's three thresholds
/// as one list).
const SCORING_KEYS: [&str; 20] = [
    "attenuationImmediateWeight",
    "attenuationNearWeight",
    "attenuationMedWeight",
    "attenuationOtherWeight",
    "attenuationImmediateNearThreshold",
    "attenuationNearMedThreshold",
    "attenuationMedFarThreshold",
    "attenuationDurationThresholds",
    "infectiousnessStandardWeight",
    "infectiousnessHighWeight",
    "symptomOnsetToInfectiousnessMap",
    "reportTypeConfirmedTestWeight",
    "reportTypeConfirmedClinicalDiagnosisWeight",
    "reportTypeSelfReportWeight",
    "reportTypeRecursiveWeight",
    "reportTypeNoneMap",
    "daysSinceExposureThreshold",
    "minimumWindowScore",
    // Read by ENX apps for the window of days to match; accepted, not scored.
    "tekPublishInterval",
    "healthAuthorityID",
];

/// Words that only occur in keys about scoring: an unknown key holding one is a
/// typo or a key of another format, and is refused rather than ignored.
const SCORING_WORDS: [&str; 9] = [
    "weight",
    "threshold",
    "attenuation",
    "infectious",
    "reporttype",
    "erv",
    "onset",
    "exposure",
    "score",
];

/// What an unknown key's error says is understood.
pub(crate) const UNDERSTOOD_FORMATS: &str = "the formats understood are ENX / GAEN v2 JSON \
     (flat, or the file form {\"config\": {...}}), Corona-Warn-App's YAML files and GAEN v1 \
     JSON (ExposureConfiguration)";

/// The object holding the keys: the document itself, or its `config` member (the
/// file form ENX documents).
fn enx_object(value: Value) -> Result<Map<String, Value>> {
    let Value::Object(mut object) = value else {
        return Err(RiskConfigError::Syntax(format!(
            "expected a JSON object, got {value}; {UNDERSTOOD_FORMATS}"
        ))
        .into());
    };
    if let Some(config) = object.remove("config") {
        let Value::Object(config) = config else {
            return Err(RiskConfigError::invalid("config", config, "an object of ENX keys").into());
        };
        return Ok(config);
    }
    Ok(object)
}

/// Refuses keys that look like scoring keys but are none of ENX's.
fn check_keys(object: &Map<String, Value>) -> Result<()> {
    for key in object.keys() {
        let known = SCORING_KEYS.contains(&key.as_str()) || classification_key(key).is_some();
        let lower = key.to_ascii_lowercase();
        if !known && SCORING_WORDS.iter().any(|word| lower.contains(word)) {
            return Err(RiskConfigError::UnknownKey {
                key: key.clone(),
                formats: UNDERSTOOD_FORMATS,
            }
            .into());
        }
    }
    Ok(())
}

/// The classification field and its number of a `name_N` threshold key.
fn classification_key(key: &str) -> Option<(ThresholdField, &str)> {
    let (name, number) = key.rsplit_once('_')?;
    let &(_, field) = CLASSIFICATION_KEYS.iter().find(|(n, _)| *n == name)?;
    Some((field, number))
}

/// Typed access to the keys of an ENX object, each error naming its key.
struct Keys<'a>(&'a Map<String, Value>);

impl Keys<'_> {
    /// An integer in `range`, or `default` when absent.
    fn integer(&self, key: &str, default: u32, range: RangeInclusive<u32>) -> Result<u32> {
        let Some(value) = self.0.get(key) else {
            return Ok(default);
        };
        value
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| range.contains(n))
            .ok_or_else(|| {
                RiskConfigError::invalid(
                    key,
                    value,
                    format!("an integer {}..={}", range.start(), range.end()),
                )
                .into()
            })
    }

    /// An integer percent weight 0..=250 as a factor, or `default_percent` when absent.
    fn weight(&self, key: &str, default_percent: u32) -> Result<f64> {
        let percent = match self.0.get(key) {
            None => f64::from(default_percent),
            Some(value) => value
                .as_f64()
                .filter(|w| (0.0..=250.0).contains(w) && w.fract() == 0.0)
                .ok_or_else(|| {
                    RiskConfigError::invalid(key, value, "an integer weight of 0..=250 percent")
                })?,
        };
        Ok(percent * WEIGHT_FACTOR)
    }

    /// A number ≥ 0, or 0 when absent.
    fn non_negative(&self, key: &str) -> Result<f64> {
        let Some(value) = self.0.get(key) else {
            return Ok(0.0);
        };
        value
            .as_f64()
            .filter(|v| *v >= 0.0)
            .ok_or_else(|| RiskConfigError::invalid(key, value, "a number of 0 or more").into())
    }
}

/// ENX's weights are integer percent; the app multiplies by this (AND
/// `RiskCalculationModule.WEIGHT_FACTOR`).
const WEIGHT_FACTOR: f64 = 0.01;

impl TryFrom<Value> for RiskConfig {
    type Error = Error;

    fn try_from(value: Value) -> Result<Self> {
        let object = enx_object(value)?;
        check_keys(&object)?;
        let keys = Keys(&object);
        let map = object
            .get("symptomOnsetToInfectiousnessMap")
            .map_or(Ok(ENX_DEFAULT_ONSET_MAP), onset_map_value)?;
        let (infectiousness_by_days_since_onset, infectiousness_when_onset_missing) =
            decode_onset_map(map)?;
        let none_map = keys.integer("reportTypeNoneMap", 3, 0..=3)?;
        Ok(Self {
            attenuation_thresholds: attenuation_thresholds(&keys)?,
            attenuation_weights: [
                keys.weight("attenuationImmediateWeight", 150)?,
                keys.weight("attenuationNearWeight", 100)?,
                keys.weight("attenuationMedWeight", 50)?,
                keys.weight("attenuationOtherWeight", 0)?,
            ],
            infectiousness_by_days_since_onset,
            infectiousness_when_onset_missing,
            infectiousness_weights: [
                keys.weight("infectiousnessStandardWeight", 100)?,
                keys.weight("infectiousnessHighWeight", 100)?,
            ],
            report_type_weights: [
                keys.weight("reportTypeConfirmedTestWeight", 100)?,
                keys.weight("reportTypeConfirmedClinicalDiagnosisWeight", 100)?,
                keys.weight("reportTypeSelfReportWeight", 100)?,
                // R10: ENX cannot weight RECURSIVE, so its weight stays at 0.
                keys.weight("reportTypeRecursiveWeight", 0)?,
            ],
            report_type_when_missing: report_type_when_missing(none_map),
            minimum_window_score: keys.non_negative("minimumWindowScore")?,
            days_since_exposure_threshold: keys.integer(
                "daysSinceExposureThreshold",
                14,
                0..=14,
            )?,
            classifications: classifications(&object)?,
        })
    }
}

/// ENX's documented default onset map (AND `doc/enexpress-config.md`).
const ENX_DEFAULT_ONSET_MAP: u64 = 0x0401_555A_A940_0000;

/// The three attenuation thresholds (dB, 0..=255, strictly increasing as GAEN's
/// builder demands), from the named keys or from `attenuationDurationThresholds`.
fn attenuation_thresholds(keys: &Keys<'_>) -> Result<[u8; 3]> {
    let thresholds = match keys.0.get("attenuationDurationThresholds") {
        None => [
            keys.integer("attenuationImmediateNearThreshold", 30, 0..=255)?,
            keys.integer("attenuationNearMedThreshold", 50, 0..=255)?,
            keys.integer("attenuationMedFarThreshold", 60, 0..=255)?,
        ],
        Some(value) => {
            let list: Option<Vec<u32>> = value.as_array().and_then(|values| {
                values
                    .iter()
                    .map(|v| v.as_u64().and_then(|n| u32::try_from(n).ok()))
                    .collect()
            });
            match list.as_deref() {
                Some(&[a, b, c]) if [a, b, c].iter().all(|&t| t <= 255) => [a, b, c],
                _ => {
                    return Err(RiskConfigError::invalid(
                        "attenuationDurationThresholds",
                        value,
                        "3 thresholds of 0..=255 dB",
                    )
                    .into());
                }
            }
        }
    };
    if !thresholds.windows(2).all(|pair| pair[0] < pair[1]) {
        return Err(RiskConfigError::invalid(
            "attenuation thresholds",
            format!("{thresholds:?}"),
            "strictly increasing values",
        )
        .into());
    }
    Ok(thresholds.map(|t| t as u8))
}

/// `reportTypeNoneMap` (0..=3): the report type a key without one is scored as (`None`: dropped).
fn report_type_when_missing(value: u32) -> Option<ReportType> {
    match value {
        1 => Some(ReportType::ConfirmedTest),
        2 => Some(ReportType::ConfirmedClinicalDiagnosis),
        3 => Some(ReportType::SelfReport),
        _ => None,
    }
}

/// The numbered `…_1` to `…_4` classification thresholds; trailing unused ones dropped.
fn classifications(object: &Map<String, Value>) -> Result<Vec<Classification>> {
    let mut classifications = vec![Classification::default(); MAX_CLASSIFICATIONS];
    for (key, value) in object {
        let Some((field, number)) = classification_key(key) else {
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
        *field(&mut classifications[index]) = Keys(object).non_negative(key)?;
    }
    while classifications.last() == Some(&Classification::default()) {
        classifications.pop();
    }
    Ok(classifications)
}

impl From<RiskConfig> for EnxConfig {
    fn from(config: RiskConfig) -> Self {
        // Integer percent, as ENX writes weights.
        let pct = |w: f64| (w / WEIGHT_FACTOR).round();
        let mut classifications = BTreeMap::new();
        for (i, classification) in config.classifications.iter().enumerate() {
            let mut classification = classification.clone();
            for (name, field) in CLASSIFICATION_KEYS {
                classifications.insert(format!("{name}_{}", i + 1), *field(&mut classification));
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
            infectiousness_standard_weight: pct(config.infectiousness_weights[0]),
            infectiousness_high_weight: pct(config.infectiousness_weights[1]),
            symptom_onset_to_infectiousness_map: format!(
                "0x{:016X}",
                encode_onset_map(
                    &config.infectiousness_by_days_since_onset,
                    config.infectiousness_when_onset_missing
                )
            ),
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
            classifications,
        }
    }
}
