//! GAEN v2 scoring: window scores, daily summaries and the resulting risk level.

use std::collections::BTreeMap;

use crate::diagnosis::ReportType;
use crate::risk::config::{Infectiousness, RiskConfig};
use crate::risk::explain::threshold_checks;
use crate::risk::window::ExposureWindow;
use crate::time::{Day, UnixSeconds};

/// Report types GAEN numbers 0..=5.
const REPORT_TYPES: usize = 6;

/// Scores summed over windows (GAEN `ExposureSummaryData`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SummaryData {
    /// Sum of the window scores.
    pub score_sum: f64,
    /// Highest window score.
    pub max_score: f64,
    /// Sum of the windows' weighted durations (seconds × attenuation weight).
    pub weighted_duration_sum: f64,
}

impl SummaryData {
    fn add(&mut self, score: f64, weighted_duration: f64) {
        self.score_sum += score;
        self.max_score = self.max_score.max(score);
        self.weighted_duration_sum += weighted_duration;
    }
}

/// One UTC day of exposure (GAEN `DailySummary`).
#[derive(Clone, Debug, PartialEq)]
pub struct DailySummary {
    /// The UTC day.
    pub day: Day,
    /// Over all windows of the day.
    pub summary: SummaryData,
    /// Per report type (indexed by GAEN's report type number).
    pub per_report_type: [SummaryData; REPORT_TYPES],
}

impl DailySummary {
    /// The day's summary of windows of keys with this (mapped) report type.
    pub fn for_report_type(&self, report_type: ReportType) -> SummaryData {
        self.per_report_type[report_type as usize]
    }
}

/// What a device concludes from its exposure windows.
#[derive(Clone, Debug, PartialEq)]
pub struct ExposureSummary {
    /// The most severe classification reached (1 = most severe), or `None`.
    pub risk_level: Option<u8>,
    /// The days (ascending) on which that classification was reached.
    pub days: Vec<Day>,
    /// Every day with a scored window, ascending.
    pub daily_summaries: Vec<DailySummary>,
    /// The windows that were scored (not dropped, not too old, not below the
    /// minimum), each with the report type it was scored as.
    pub windows: Vec<ExposureWindow>,
}

impl RiskConfig {
    /// The attenuation bucket (0 immediate … 3 other) of a typical attenuation:
    /// each bucket includes its upper threshold.
    pub fn attenuation_bucket(&self, typical_attenuation: u8) -> usize {
        self.attenuation_thresholds
            .iter()
            .position(|&t| typical_attenuation <= t)
            .unwrap_or(3)
    }

    /// Σ seconds since last scan × the weight of the scan's attenuation bucket.
    pub fn weighted_duration(&self, window: &ExposureWindow) -> f64 {
        let mut seconds = [0u32; 4];
        for scan in &window.scan_instances {
            seconds[self.attenuation_bucket(scan.typical_attenuation)] +=
                u32::from(scan.seconds_since_last_scan);
        }
        seconds
            .iter()
            .zip(self.attenuation_weights)
            .map(|(&s, w)| f64::from(s) * w)
            .sum()
    }

    /// The report type a window is scored as, or `None` when it is not scored
    /// (missing and mapped to drop, or revoked).
    pub fn scored_report_type(&self, window: &ExposureWindow) -> Option<ReportType> {
        let report_type = match window.report_type {
            ReportType::Unknown => self.report_type_when_missing?,
            given => given,
        };
        matches!(
            report_type,
            ReportType::ConfirmedTest
                | ReportType::ConfirmedClinicalDiagnosis
                | ReportType::SelfReport
                | ReportType::Recursive
        )
        .then_some(report_type)
    }

    /// The weight of a (scored) report type.
    pub fn report_type_weight(&self, report_type: ReportType) -> f64 {
        match report_type {
            ReportType::ConfirmedTest => self.report_type_weights[0],
            ReportType::ConfirmedClinicalDiagnosis => self.report_type_weights[1],
            ReportType::SelfReport => self.report_type_weights[2],
            _ => self.report_type_weights[3],
        }
    }

    /// The weight of an infectiousness (NONE: 0, though such windows are dropped).
    pub fn infectiousness_weight(&self, infectiousness: Infectiousness) -> f64 {
        match infectiousness {
            Infectiousness::None => 0.0,
            Infectiousness::Standard => self.infectiousness_weights[0],
            Infectiousness::High => self.infectiousness_weights[1],
        }
    }

    /// The window's score: weighted duration × report-type weight × infectiousness
    /// weight; `None` if the window is dropped (report type or infectiousness none).
    pub fn window_score(&self, window: &ExposureWindow) -> Option<f64> {
        let report_weight = self.report_type_weight(self.scored_report_type(window)?);
        let infectiousness = self.infectiousness(window.days_since_onset);
        if infectiousness == Infectiousness::None {
            return None;
        }
        Some(
            self.weighted_duration(window)
                * report_weight
                * self.infectiousness_weight(infectiousness),
        )
    }

    /// The window's (report type, score, weighted duration) if it is scored on
    /// `today`, as in GAEN's `getDailySummaries`: not dropped
    /// and not older than `days_since_exposure_threshold`. Whether it reaches the
    /// minimum window score is for the caller to decide.
    pub(crate) fn scored(
        &self,
        window: &ExposureWindow,
        today: Day,
    ) -> Option<(ReportType, f64, f64)> {
        let age = today.days_after(window.day());
        if self.days_since_exposure_threshold > 0
            && age > i64::from(self.days_since_exposure_threshold)
        {
            return None;
        }
        let report_type = self.scored_report_type(window)?;
        let score = self.window_score(window)?;
        Some((report_type, score, self.weighted_duration(window)))
    }

    /// Whether a scored window counts towards the sums (R15: not below
    /// `minimum_window_score`).
    fn reaches_minimum(&self, score: f64) -> bool {
        score >= self.minimum_window_score
    }

    /// Daily summaries of the windows scored at `now`, ascending by
    /// day. A day whose windows all score below the minimum window score is still
    /// reported, with zero sums, as GAEN does.
    pub fn daily_summaries(
        &self,
        windows: &[ExposureWindow],
        now: UnixSeconds,
    ) -> Vec<DailySummary> {
        let today = now.day();
        let mut days: BTreeMap<Day, DailySummary> = BTreeMap::new();
        for window in windows {
            let Some((report_type, score, weighted_duration)) = self.scored(window, today) else {
                continue;
            };
            let day = window.day();
            let summary = days.entry(day).or_insert_with(|| DailySummary {
                day,
                summary: SummaryData::default(),
                per_report_type: [SummaryData::default(); REPORT_TYPES],
            });
            if self.reaches_minimum(score) {
                summary.summary.add(score, weighted_duration);
                summary.per_report_type[report_type as usize].add(score, weighted_duration);
            }
        }
        days.into_values().collect()
    }

    /// The windows that count at `now`, each with its report type as scored (R9:
    /// a missing one mapped by `report_type_when_missing`).
    pub fn counted_windows(
        &self,
        windows: &[ExposureWindow],
        now: UnixSeconds,
    ) -> Vec<ExposureWindow> {
        let today = now.day();
        windows
            .iter()
            .filter_map(|window| {
                let (report_type, score, _) = self.scored(window, today)?;
                self.reaches_minimum(score).then(|| ExposureWindow {
                    report_type,
                    ..window.clone()
                })
            })
            .collect()
    }

    /// The exposure classification a day reaches, 1-based, if any (R17: the first
    /// whose enabled thresholds one is reached).
    pub fn classify(&self, day: &DailySummary) -> Option<u8> {
        let index = self.classifications.iter().enumerate().position(|(i, c)| {
            threshold_checks(i as u8 + 1, c, day)
                .iter()
                .any(|check| check.reached)
        })?;
        Some(index as u8 + 1)
    }

    /// Daily summaries, the most severe classification any day reaches, and its days.
    pub fn assess(&self, windows: &[ExposureWindow], now: UnixSeconds) -> ExposureSummary {
        let daily_summaries = self.daily_summaries(windows, now);
        let levels: Vec<Option<u8>> = daily_summaries.iter().map(|d| self.classify(d)).collect();
        let risk_level = levels.iter().flatten().copied().min();
        let days = daily_summaries
            .iter()
            .zip(&levels)
            .filter(|(_, level)| risk_level.is_some() && **level == risk_level)
            .map(|(d, _)| d.day)
            .collect();
        ExposureSummary {
            risk_level,
            days,
            daily_summaries,
            windows: self.counted_windows(windows, now),
        }
    }
}
