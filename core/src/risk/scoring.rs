//! GAEN v2 scoring: window scores, daily summaries and the resulting risk level.

use crate::diagnosis::ReportType;
use crate::risk::config::{Classification, Infectiousness, RiskConfig};
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

    /// The values classification thresholds are compared with, in the order of
    /// [`Classification::thresholds`].
    pub(crate) fn threshold_values(&self) -> [f64; 7] {
        [
            self.for_report_type(ReportType::ConfirmedTest).score_sum,
            self.for_report_type(ReportType::ConfirmedClinicalDiagnosis)
                .score_sum,
            self.for_report_type(ReportType::SelfReport).score_sum,
            self.for_report_type(ReportType::Recursive).score_sum,
            self.summary.score_sum,
            self.summary.max_score,
            self.summary.weighted_duration_sum,
        ]
    }
}

impl Classification {
    /// The thresholds, in the order of [`DailySummary::threshold_values`] and of
    /// the ENX keys that set them; 0 disables one.
    pub(crate) fn thresholds(&self) -> [f64; 7] {
        [
            self.confirmed_test_per_day_sum,
            self.clinical_diagnosis_per_day_sum,
            self.self_report_per_day_sum,
            self.recursive_per_day_sum,
            self.per_day_sum,
            self.per_day_max,
            self.weighted_duration,
        ]
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
        self.score_parts(window).map(|(_, score, _)| score)
    }

    /// The window's (scored report type, score, weighted duration), or `None` if it
    /// is dropped: one pass over the scans gives both the score and the duration.
    fn score_parts(&self, window: &ExposureWindow) -> Option<(ReportType, f64, f64)> {
        let report_type = self.scored_report_type(window)?;
        let infectiousness = self.infectiousness(window.days_since_onset);
        if infectiousness == Infectiousness::None {
            return None;
        }
        let weighted_duration = self.weighted_duration(window);
        let score = weighted_duration
            * self.report_type_weight(report_type)
            * self.infectiousness_weight(infectiousness);
        Some((report_type, score, weighted_duration))
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
        // The age (a division) matters only when a threshold is set.
        if self.days_since_exposure_threshold > 0
            && today.days_after(window.day()) > i64::from(self.days_since_exposure_threshold)
        {
            return None;
        }
        self.score_parts(window)
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
        // Ascending by day. Windows mostly come grouped by day, so the day of the
        // previous window is tried before searching; a vector, not a map, so that
        // scoring one day's windows allocates once.
        let mut days: Vec<DailySummary> = Vec::new();
        for window in windows {
            let Some((report_type, score, weighted_duration)) = self.scored(window, today) else {
                continue;
            };
            let day = window.day();
            let at = match days.last() {
                Some(last) if last.day == day => days.len() - 1,
                _ => match days.binary_search_by_key(&day, |d| d.day) {
                    Ok(at) => at,
                    Err(at) => {
                        let summary = DailySummary {
                            day,
                            summary: SummaryData::default(),
                            per_report_type: [SummaryData::default(); REPORT_TYPES],
                        };
                        days.insert(at, summary);
                        at
                    }
                },
            };
            if self.reaches_minimum(score) {
                let summary = &mut days[at];
                summary.summary.add(score, weighted_duration);
                summary.per_report_type[report_type as usize].add(score, weighted_duration);
            }
        }
        days
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
        // What `threshold_checks` reports, without building the explanation.
        let values = day.threshold_values();
        let index = self.classifications.iter().position(|c| {
            c.thresholds()
                .into_iter()
                .zip(values)
                .any(|(threshold, value)| threshold > 0.0 && value >= threshold)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::risk::config::CLASSIFICATION_KEYS;

    /// `classify` and the explanation pair thresholds with values by position.
    #[test]
    fn thresholds_are_in_the_order_of_the_enx_keys() {
        for (i, (name, field)) in CLASSIFICATION_KEYS.iter().enumerate() {
            let mut classification = Classification::default();
            *field(&mut classification) = 1.0;
            let set: Vec<usize> = (0..7)
                .filter(|&j| classification.thresholds()[j] == 1.0)
                .collect();
            assert_eq!(set, [i], "{name}");
        }
    }
}
