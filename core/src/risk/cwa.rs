//! Germany's Corona-Warn-App risk model, read from its published YAML files.
//!
//! CWA asks GAEN for exposure windows under its exposure configuration
//! (`exposure-configuration.yaml`: attenuation thresholds, the days-since-onset →
//! infectiousness map, the report-type map) and re-scores each window itself
//! (`risk-calculation-parameters.yaml`), as its app specification describes
//! (corona-warn-app/cwa-app-tech-spec `docs/spec/exposure-windows.md`; the iOS app's
//! `RiskCalculationExposureWindow.swift`):
//!
//! 1. drop the window if the whole minutes of its scans whose *minimum* attenuation is
//!    in a filter's attenuation range fall in that filter's drop range;
//! 2. transmission risk level (TRL) = infectiousness offset + report-type offset
//!    (`trlEncoding`); drop the window if the TRL is in a `trl-filters` range;
//! 3. weighted minutes = Σ seconds × the weight of the range holding the scan's
//!    minimum attenuation, ÷ 60;
//! 4. normalized time = TRL × `transmission-risk-level-multiplier` × weighted minutes;
//!    the window's level comes from `normalized-time-per-e-w-to-risk-level-mapping`;
//! 5. per UTC day, the windows' normalized times are summed and mapped by
//!    `normalized-time-per-day-to-risk-level-mapping`: level 2 is CWA's "increased
//!    risk", the only one that notifies; windows older than
//!    `max-encounter-age-in-days` are left out.
//!
//! The third file, `transmission-risk-encoding.yaml`, says how the server writes a
//! TRL into the keys' days since onset and report type; it may be given and is
//! checked against `trlEncoding` (the two must agree, or the app would score keys
//! at another TRL than the server meant).
//!
//! The files may be given as one text: concatenated, or as YAML documents separated
//! by `---`. A Spring placeholder such as `${MAX-ENCOUNTER-AGE-IN-DAYS:10}` takes its
//! default value, as CWA's deployment did (no such variable was set).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::diagnosis::{DaysSinceOnset, ReportType};
use crate::error::{Result, RiskConfigError};
use crate::risk::config::{Infectiousness, RiskConfig};
use crate::risk::explain::{
    BucketTime, Explanation, Factor, ThresholdCheck, WindowExplanation, by_day, report_type_name,
};
use crate::risk::model::ModelKind;
use crate::risk::window::ExposureWindow;
use crate::time::{Day, UnixSeconds};

/// CWA's risk level that notifies ("increased risk").
pub const CWA_HIGH_RISK: u8 = 2;

/// A range of CWA's configuration: `[min, max]`, either end exclusive if so marked.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Range {
    /// Lower end.
    pub min: f64,
    /// Upper end.
    pub max: f64,
    /// Whether `min` itself is outside.
    #[serde(default)]
    pub min_exclusive: bool,
    /// Whether `max` itself is outside.
    #[serde(default)]
    pub max_exclusive: bool,
}

impl Range {
    /// Whether `value` lies in the range.
    pub fn contains(&self, value: f64) -> bool {
        let above = if self.min_exclusive {
            value > self.min
        } else {
            value >= self.min
        };
        let below = if self.max_exclusive {
            value < self.max
        } else {
            value <= self.max
        };
        above && below
    }

    fn describe(&self) -> String {
        format!(
            "{}{}, {}{}",
            if self.min_exclusive { "(" } else { "[" },
            self.min,
            self.max,
            if self.max_exclusive { ")" } else { "]" }
        )
    }
}

/// Drop a window whose minutes at some attenuations are in a range.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct MinutesAtAttenuationFilter {
    /// The (minimum) attenuations counted, dB.
    pub attenuation_range: Range,
    /// The whole minutes at those attenuations that drop the window.
    pub drop_if_minutes_in_range: Range,
}

/// Drop windows whose TRL is in a range.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TrlFilter {
    /// The TRLs dropped.
    pub drop_if_trl_in_range: Range,
}

/// The weight of the minutes at some (minimum) attenuations.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct MinutesAtAttenuationWeight {
    /// The attenuations, dB.
    pub attenuation_range: Range,
    /// Their weight.
    pub weight: f64,
}

/// Normalized times mapped to a risk level (1 low, 2 high).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RiskLevelMapping {
    /// The normalized times.
    pub normalized_time_range: Range,
    /// Their risk level.
    pub risk_level: u8,
}

/// `trlEncoding`: the TRL a window's infectiousness and report type give.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrlEncoding {
    /// Offset for standard infectiousness.
    pub infectiousness_offset_standard: u8,
    /// Offset for high infectiousness.
    pub infectiousness_offset_high: u8,
    /// Offset for RECURSIVE.
    pub report_type_offset_recursive: u8,
    /// Offset for SELF_REPORT.
    pub report_type_offset_self_report: u8,
    /// Offset for CONFIRMED_CLINICAL_DIAGNOSIS.
    pub report_type_offset_confirmed_clinical_diagnosis: u8,
    /// Offset for CONFIRMED_TEST.
    pub report_type_offset_confirmed_test: u8,
}

impl TrlEncoding {
    /// The TRL of a window with this infectiousness and report type.
    pub fn level(&self, infectiousness: Infectiousness, report_type: ReportType) -> u8 {
        let infectiousness = match infectiousness {
            Infectiousness::High => self.infectiousness_offset_high,
            _ => self.infectiousness_offset_standard,
        };
        let report_type = match report_type {
            ReportType::ConfirmedTest => self.report_type_offset_confirmed_test,
            ReportType::ConfirmedClinicalDiagnosis => {
                self.report_type_offset_confirmed_clinical_diagnosis
            }
            ReportType::SelfReport => self.report_type_offset_self_report,
            ReportType::Recursive => self.report_type_offset_recursive,
            _ => 0,
        };
        infectiousness + report_type
    }
}

/// The three files, as one mapping of their top-level keys.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct CwaFiles {
    // exposure-configuration.yaml
    infectiousness_for_days_since_onset_of_symptoms: BTreeMap<i32, u8>,
    report_type_none_map: u8,
    attenuation_duration_thresholds: Vec<u8>,
    immediate_duration_weight: f64,
    near_duration_weight: f64,
    medium_duration_weight: f64,
    other_duration_weight: f64,
    days_since_last_exposure_threshold: u32,
    infectiousness_standard_weight: f64,
    infectiousness_high_weight: f64,
    report_type_confirmed_test_weight: f64,
    report_type_confirmed_clinical_diagnosis_weight: f64,
    report_type_self_reported_weight: f64,
    report_type_recursive_weight: f64,
    // risk-calculation-parameters.yaml
    minutes_at_attenuation_filters: Vec<MinutesAtAttenuationFilter>,
    trl_filters: Vec<TrlFilter>,
    minutes_at_attenuation_weights: Vec<MinutesAtAttenuationWeight>,
    #[serde(rename = "normalized-time-per-e-w-to-risk-level-mapping")]
    normalized_time_per_window: Vec<RiskLevelMapping>,
    #[serde(rename = "normalized-time-per-day-to-risk-level-mapping")]
    normalized_time_per_day: Vec<RiskLevelMapping>,
    transmission_risk_level_multiplier: f64,
    max_encounter_age_in_days: u32,
    #[serde(rename = "trlEncoding")]
    trl_encoding: TrlEncoding,
    // transmission-risk-encoding.yaml (optional)
    transmission_risk_encoding: Option<TransmissionRiskEncoding>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TransmissionRiskEncoding {
    #[serde(rename = "transmissionRisk-to-daysSinceSymptoms")]
    days_since_symptoms: BTreeMap<u8, i32>,
    #[serde(rename = "transmissionRisk-to-reportType")]
    report_type: BTreeMap<u8, i32>,
}

/// Top-level keys only CWA's files have: a YAML document with one is CWA's.
pub(crate) const CWA_KEYS: [&str; 3] = [
    "minutes-at-attenuation-weights",
    "attenuation-duration-thresholds",
    "transmission-risk-encoding",
];

/// Corona-Warn-App's risk model (see the [module docs](self)).
#[derive(Clone, Debug, PartialEq)]
pub struct CwaModel {
    /// The exposure configuration given to GAEN, as a v2 configuration: what
    /// decides a window's infectiousness and report type, and the daily summaries.
    pub exposure_configuration: RiskConfig,
    /// Filters dropping windows by minutes at attenuation.
    pub minutes_at_attenuation_filters: Vec<MinutesAtAttenuationFilter>,
    /// Filters dropping windows by TRL.
    pub trl_filters: Vec<TrlFilter>,
    /// Weights of minutes by (minimum) attenuation.
    pub minutes_at_attenuation_weights: Vec<MinutesAtAttenuationWeight>,
    /// A window's normalized time → its risk level.
    pub normalized_time_per_window: Vec<RiskLevelMapping>,
    /// A day's normalized time → its risk level.
    pub normalized_time_per_day: Vec<RiskLevelMapping>,
    /// TRL → transmission risk value factor.
    pub transmission_risk_level_multiplier: f64,
    /// Windows older than this many days are left out.
    pub max_encounter_age_in_days: u32,
    /// The TRL of a window.
    pub trl_encoding: TrlEncoding,
}

/// Replaces Spring placeholders `${NAME:default}` by their default.
fn resolve_placeholders(text: &str) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| {
            RiskConfigError::Syntax(format!("unterminated placeholder `${{{after}`"))
        })?;
        let inner = &after[..end];
        let (_, default) = inner.split_once(':').ok_or_else(|| {
            RiskConfigError::Syntax(format!(
                "placeholder `${{{inner}}}` has no default value (`${{NAME:default}}`)"
            ))
        })?;
        out.push_str(default);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The top-level mapping of one or more YAML documents, merged; a key twice is an error.
pub(crate) fn yaml_mapping(text: &str) -> Result<serde_norway::Mapping> {
    let text = resolve_placeholders(text)?;
    let mut merged = serde_norway::Mapping::new();
    for document in serde_norway::Deserializer::from_str(&text) {
        let value = serde_norway::Value::deserialize(document)
            .map_err(|e| RiskConfigError::Syntax(format!("YAML: {e}")))?;
        let mapping = match value {
            serde_norway::Value::Mapping(mapping) => mapping,
            serde_norway::Value::Null => continue,
            other => {
                return Err(RiskConfigError::Syntax(format!(
                    "expected a YAML mapping, got {other:?}"
                ))
                .into());
            }
        };
        for (key, value) in mapping {
            if merged.contains_key(&key) {
                return Err(
                    RiskConfigError::Syntax(format!("YAML key {key:?} given twice")).into(),
                );
            }
            merged.insert(key, value);
        }
    }
    Ok(merged)
}

impl CwaModel {
    /// Reads CWA's YAML files (one text, see the [module docs](self)).
    pub fn from_yaml(text: &str) -> Result<Self> {
        Self::from_mapping(yaml_mapping(text)?)
    }

    pub(crate) fn from_mapping(mapping: serde_norway::Mapping) -> Result<Self> {
        let files: CwaFiles = serde_norway::from_value(serde_norway::Value::Mapping(mapping))
            .map_err(|e| RiskConfigError::Syntax(format!("Corona-Warn-App configuration: {e}")))?;
        Self::try_from(files)
    }

    /// The normalized time of a counted window, or why it does not count.
    fn score(&self, index: usize, window: &ExposureWindow, today: Day) -> WindowExplanation {
        let gaen = &self.exposure_configuration;
        let age = today.days_after(window.day());
        if age > i64::from(self.max_encounter_age_in_days) {
            let reason = format!(
                "older than max-encounter-age-in-days ({})",
                self.max_encounter_age_in_days
            );
            return WindowExplanation::dropped(index, window, reason);
        }
        let Some(report_type) = gaen.scored_report_type(window) else {
            let reason = format!(
                "report type {} is not scored (report-type-none-map)",
                report_type_name(window.report_type)
            );
            return WindowExplanation::dropped(index, window, reason);
        };
        let infectiousness = gaen.infectiousness(window.days_since_onset);
        if infectiousness == Infectiousness::None {
            let reason = "infectiousness NONE for its days since onset".to_owned();
            return WindowExplanation::dropped(index, window, reason);
        }
        for filter in &self.minutes_at_attenuation_filters {
            let seconds: u32 = window
                .scan_instances
                .iter()
                .filter(|s| {
                    filter
                        .attenuation_range
                        .contains(f64::from(s.min_attenuation))
                })
                .map(|s| u32::from(s.seconds_since_last_scan))
                .sum();
            // Whole minutes: both apps divide integers.
            let minutes = seconds / 60;
            if filter.drop_if_minutes_in_range.contains(f64::from(minutes)) {
                let reason = format!(
                    "{minutes} min at attenuation {} dB is in drop range {} min",
                    filter.attenuation_range.describe(),
                    filter.drop_if_minutes_in_range.describe()
                );
                return WindowExplanation::dropped(index, window, reason);
            }
        }
        let trl = self.trl_encoding.level(infectiousness, report_type);
        if let Some(filter) = self
            .trl_filters
            .iter()
            .find(|f| f.drop_if_trl_in_range.contains(f64::from(trl)))
        {
            let reason = format!(
                "transmission risk level {trl} is in drop range {}",
                filter.drop_if_trl_in_range.describe()
            );
            return WindowExplanation::dropped(index, window, reason);
        }
        let mut buckets: Vec<BucketTime> = self
            .minutes_at_attenuation_weights
            .iter()
            .map(|w| BucketTime {
                name: format!("{} dB", w.attenuation_range.describe()),
                seconds: 0,
                weight: w.weight,
            })
            .collect();
        let mut unweighted = 0;
        for scan in &window.scan_instances {
            let seconds = u32::from(scan.seconds_since_last_scan);
            match self.minutes_at_attenuation_weights.iter().position(|w| {
                w.attenuation_range
                    .contains(f64::from(scan.min_attenuation))
            }) {
                Some(bucket) => buckets[bucket].seconds += seconds,
                None => unweighted += seconds,
            }
        }
        buckets.push(BucketTime {
            name: "any other attenuation".to_owned(),
            seconds: unweighted,
            weight: 0.0,
        });
        let weighted_minutes: f64 = buckets
            .iter()
            .map(|b| f64::from(b.seconds) * b.weight)
            .sum::<f64>()
            / 60.0;
        let transmission_risk_value = f64::from(trl) * self.transmission_risk_level_multiplier;
        let normalized_time = transmission_risk_value * weighted_minutes;
        let level = level_of(&self.normalized_time_per_window, normalized_time);
        WindowExplanation {
            index,
            start: window.start,
            report_type,
            buckets,
            factors: vec![Factor {
                name: format!(
                    "transmission risk level {trl} × transmission-risk-level-multiplier {} (÷ 60 s)",
                    self.transmission_risk_level_multiplier
                ),
                weight: transmission_risk_value / 60.0,
            }],
            score: normalized_time,
            counted: level.is_some(),
            reason: level
                .is_none()
                .then(|| format!("normalized time {normalized_time} is in no per-window range")),
        }
    }

    /// Per day and window: minutes per attenuation range, TRL, normalized time and
    /// the per-day mapping; risk level 1 (most severe) is CWA's increased risk.
    pub fn explain(&self, windows: &[ExposureWindow], now: UnixSeconds) -> Explanation {
        let today = now.day();
        let explained = windows
            .iter()
            .enumerate()
            .map(|(index, window)| self.score(index, window, today))
            .collect();
        by_day(ModelKind::Cwa, windows, explained, |_, windows| {
            let total: f64 = windows.iter().filter(|w| w.counted).map(|w| w.score).sum();
            let checks: Vec<ThresholdCheck> = self
                .normalized_time_per_day
                .iter()
                .filter(|m| m.risk_level == CWA_HIGH_RISK)
                .map(|m| ThresholdCheck {
                    name: format!(
                        "normalized-time-per-day-to-risk-level-mapping: risk level {} for {} min",
                        m.risk_level,
                        m.normalized_time_range.describe()
                    ),
                    risk_level: 1,
                    value: total,
                    threshold: m.normalized_time_range.min,
                    reached: m.normalized_time_range.contains(total),
                })
                .collect();
            let high = checks.iter().any(|c| c.reached);
            (checks, high.then_some(1))
        })
    }
}

/// The risk level of the first mapping holding `value`.
fn level_of(mappings: &[RiskLevelMapping], value: f64) -> Option<u8> {
    mappings
        .iter()
        .find(|m| m.normalized_time_range.contains(value))
        .map(|m| m.risk_level)
}

impl TryFrom<CwaFiles> for CwaModel {
    type Error = crate::Error;

    fn try_from(files: CwaFiles) -> Result<Self> {
        let thresholds: [u8; 3] = files
            .attenuation_duration_thresholds
            .as_slice()
            .try_into()
            .ok()
            .filter(|t: &[u8; 3]| t[0] < t[1] && t[1] < t[2])
            .ok_or_else(|| {
                RiskConfigError::invalid(
                    "attenuation-duration-thresholds",
                    format!("{:?}", files.attenuation_duration_thresholds),
                    "3 strictly increasing thresholds (dB)",
                )
            })?;
        let mut by_onset = [Infectiousness::None; 29];
        for (&days, &value) in &files.infectiousness_for_days_since_onset_of_symptoms {
            let field = "infectiousness-for-days-since-onset-of-symptoms";
            let days = DaysSinceOnset::new(days)
                .map_err(|_| RiskConfigError::invalid(field, days, "days -14..=14"))?;
            by_onset[(days.get() + 14) as usize] = match value {
                0 => Infectiousness::None,
                1 => Infectiousness::Standard,
                2 => Infectiousness::High,
                other => {
                    return Err(RiskConfigError::invalid(field, other, "0, 1 or 2").into());
                }
            };
        }
        let report_type_when_missing = match files.report_type_none_map {
            0 => None,
            1 => Some(ReportType::ConfirmedTest),
            2 => Some(ReportType::ConfirmedClinicalDiagnosis),
            3 => Some(ReportType::SelfReport),
            4 => Some(ReportType::Recursive),
            other => {
                return Err(
                    RiskConfigError::invalid("report-type-none-map", other, "0..=4").into(),
                );
            }
        };
        let weights = [
            ("immediate-duration-weight", files.immediate_duration_weight),
            ("near-duration-weight", files.near_duration_weight),
            ("medium-duration-weight", files.medium_duration_weight),
            ("other-duration-weight", files.other_duration_weight),
            (
                "infectiousness-standard-weight",
                files.infectiousness_standard_weight,
            ),
            (
                "infectiousness-high-weight",
                files.infectiousness_high_weight,
            ),
            (
                "report-type-confirmed-test-weight",
                files.report_type_confirmed_test_weight,
            ),
            (
                "report-type-confirmed-clinical-diagnosis-weight",
                files.report_type_confirmed_clinical_diagnosis_weight,
            ),
            (
                "report-type-self-reported-weight",
                files.report_type_self_reported_weight,
            ),
            (
                "report-type-recursive-weight",
                files.report_type_recursive_weight,
            ),
        ];
        for (name, weight) in weights {
            if !(0.0..=2.5).contains(&weight) {
                return Err(RiskConfigError::invalid(name, weight, "a weight of 0..=2.5").into());
            }
        }
        let w = weights.map(|(_, weight)| weight);
        let exposure_configuration = RiskConfig {
            attenuation_thresholds: thresholds,
            attenuation_weights: [w[0], w[1], w[2], w[3]],
            infectiousness_by_days_since_onset: by_onset,
            infectiousness_when_onset_missing: Infectiousness::None,
            infectiousness_weights: [w[4], w[5]],
            report_type_weights: [w[6], w[7], w[8], w[9]],
            report_type_when_missing,
            minimum_window_score: 0.0,
            days_since_exposure_threshold: files.days_since_last_exposure_threshold,
            classifications: Vec::new(),
        };
        if let Some(encoding) = &files.transmission_risk_encoding {
            check_encoding(encoding, &files.trl_encoding, &exposure_configuration)?;
        }
        Ok(Self {
            exposure_configuration,
            minutes_at_attenuation_filters: files.minutes_at_attenuation_filters,
            trl_filters: files.trl_filters,
            minutes_at_attenuation_weights: files.minutes_at_attenuation_weights,
            normalized_time_per_window: files.normalized_time_per_window,
            normalized_time_per_day: files.normalized_time_per_day,
            transmission_risk_level_multiplier: files.transmission_risk_level_multiplier,
            max_encounter_age_in_days: files.max_encounter_age_in_days,
            trl_encoding: files.trl_encoding,
        })
    }
}

/// Every TRL the server encodes must decode, on the app, to the same TRL.
fn check_encoding(
    encoding: &TransmissionRiskEncoding,
    trl_encoding: &TrlEncoding,
    gaen: &RiskConfig,
) -> Result<()> {
    for (&trl, &days) in &encoding.days_since_symptoms {
        let report_type = encoding
            .report_type
            .get(&trl)
            .and_then(|&rt| ReportType::try_from(rt).ok());
        let decoded = DaysSinceOnset::new(days)
            .ok()
            .zip(report_type)
            .map(|(days, rt)| trl_encoding.level(gaen.infectiousness(Some(days)), rt));
        if decoded != Some(trl) {
            return Err(RiskConfigError::invalid(
                format!("transmission-risk-encoding for TRL {trl}"),
                format!("days since symptoms {days}, report type {report_type:?}"),
                "an encoding that trlEncoding decodes to the same TRL",
            )
            .into());
        }
    }
    Ok(())
}
