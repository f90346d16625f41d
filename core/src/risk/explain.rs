//! "Why is this day risky?": what each window contributed and which threshold decided.
//!
//! An app shows this when a user disputes an alert, and a health authority reads it
//! to tune its configuration: per day, the windows with their seconds per attenuation
//! bucket, the weights applied and the score; then every threshold of the model with
//! the day's value, and whether it was reached.

use std::collections::BTreeMap;

use crate::diagnosis::ReportType;
use crate::risk::config::{Classification, RiskConfig};
use crate::risk::model::ModelKind;
use crate::risk::window::ExposureWindow;
use crate::time::{Day, UnixSeconds};

/// Why the days of some exposure windows are, or are not, risky.
#[derive(Clone, Debug, PartialEq)]
pub struct Explanation {
    /// The model that scored them.
    pub model: ModelKind,
    /// The most severe risk level any day reached (1 = most severe), as in
    /// [`ExposureSummary::risk_level`](crate::risk::ExposureSummary::risk_level).
    pub risk_level: Option<u8>,
    /// Every day with a window, ascending.
    pub days: Vec<DayExplanation>,
}

/// One UTC day.
#[derive(Clone, Debug, PartialEq)]
pub struct DayExplanation {
    /// The day.
    pub day: Day,
    /// The risk level the day reached (1 = most severe), if any.
    pub risk_level: Option<u8>,
    /// The day's windows, in the order given.
    pub windows: Vec<WindowExplanation>,
    /// Every threshold the model checks for a day, most severe level first.
    pub thresholds: Vec<ThresholdCheck>,
}

/// What one exposure window contributed.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowExplanation {
    /// Position of the window among those explained.
    pub index: usize,
    /// Time of its first sighting.
    pub start: UnixSeconds,
    /// The report type it was scored as (a missing one mapped).
    pub report_type: ReportType,
    /// Seconds per attenuation bucket, each with the bucket's weight.
    pub buckets: Vec<BucketTime>,
    /// The other factors the weighted time was multiplied by.
    pub factors: Vec<Factor>,
    /// The window's score in the model's unit (ENX: weighted seconds; CWA:
    /// normalized minutes; GAEN v1: the v1 risk score).
    pub score: f64,
    /// Whether it counts towards the day.
    pub counted: bool,
    /// Why it does not count, when it does not.
    pub reason: Option<String>,
}

/// Time in one attenuation bucket.
#[derive(Clone, Debug, PartialEq)]
pub struct BucketTime {
    /// The bucket and its range, e.g. `near (31..=50 dB)`.
    pub name: String,
    /// Seconds of the window's scans in it.
    pub seconds: u32,
    /// Its weight (a factor: 1.0 = 100 %).
    pub weight: f64,
}

/// A weight applied to a window.
#[derive(Clone, Debug, PartialEq)]
pub struct Factor {
    /// What it is, e.g. `report type CONFIRMED_TEST`.
    pub name: String,
    /// The factor.
    pub weight: f64,
}

/// One threshold checked for a day.
#[derive(Clone, Debug, PartialEq)]
pub struct ThresholdCheck {
    /// Its name as the configuration calls it.
    pub name: String,
    /// The risk level it gives when reached (1 = most severe).
    pub risk_level: u8,
    /// The day's value it is compared with.
    pub value: f64,
    /// The threshold.
    pub threshold: f64,
    /// Whether the value reached it.
    pub reached: bool,
}

impl WindowExplanation {
    /// A window that does not count, and why.
    pub(crate) fn dropped(index: usize, window: &ExposureWindow, reason: String) -> Self {
        Self {
            index,
            start: window.start,
            report_type: window.report_type,
            buckets: Vec::new(),
            factors: Vec::new(),
            score: 0.0,
            counted: false,
            reason: Some(reason),
        }
    }
}

/// Groups explained windows by day; `day_of` gives each day its thresholds and level.
pub(crate) fn by_day(
    model: ModelKind,
    windows: &[ExposureWindow],
    explained: Vec<WindowExplanation>,
    mut day_of: impl FnMut(Day, &[WindowExplanation]) -> (Vec<ThresholdCheck>, Option<u8>),
) -> Explanation {
    let mut days: BTreeMap<Day, Vec<WindowExplanation>> = BTreeMap::new();
    for window in explained {
        days.entry(windows[window.index].day())
            .or_default()
            .push(window);
    }
    let days: Vec<DayExplanation> = days
        .into_iter()
        .map(|(day, windows)| {
            let (thresholds, risk_level) = day_of(day, &windows);
            DayExplanation {
                day,
                risk_level,
                windows,
                thresholds,
            }
        })
        .collect();
    Explanation {
        model,
        risk_level: days.iter().filter_map(|d| d.risk_level).min(),
        days,
    }
}

/// A report type's name as GAEN spells it.
pub(crate) fn report_type_name(report_type: ReportType) -> &'static str {
    match report_type {
        ReportType::Unknown => "UNKNOWN",
        ReportType::ConfirmedTest => "CONFIRMED_TEST",
        ReportType::ConfirmedClinicalDiagnosis => "CONFIRMED_CLINICAL_DIAGNOSIS",
        ReportType::SelfReport => "SELF_REPORT",
        ReportType::Recursive => "RECURSIVE",
        ReportType::Revoked => "REVOKED",
    }
}

impl RiskConfig {
    /// The names of the four attenuation buckets with their ranges.
    fn bucket_names(&self) -> [String; 4] {
        let [t1, t2, t3] = self.attenuation_thresholds;
        let after = |t: u8| u16::from(t) + 1;
        [
            format!("immediate (0..={t1} dB)"),
            format!("near ({}..={t2} dB)", after(t1)),
            format!("medium ({}..={t3} dB)", after(t2)),
            format!("other (> {t3} dB)"),
        ]
    }

    /// Seconds per attenuation bucket (by typical attenuation, R13) with the weights.
    pub(crate) fn bucket_times(&self, window: &ExposureWindow) -> Vec<BucketTime> {
        let mut seconds = [0u32; 4];
        for scan in &window.scan_instances {
            seconds[self.attenuation_bucket(scan.typical_attenuation)] +=
                u32::from(scan.seconds_since_last_scan);
        }
        self.bucket_names()
            .into_iter()
            .zip(seconds)
            .zip(self.attenuation_weights)
            .map(|((name, seconds), weight)| BucketTime {
                name,
                seconds,
                weight,
            })
            .collect()
    }

    /// Per day and window: seconds per bucket, weights, score, and each enabled
    /// classification threshold with the day's value (R13–R17).
    pub fn explain(&self, windows: &[ExposureWindow], now: UnixSeconds) -> Explanation {
        let today = now.day();
        let explained = windows
            .iter()
            .enumerate()
            .map(|(index, window)| self.explain_window(index, window, today))
            .collect();
        let summaries = self.daily_summaries(windows, now);
        by_day(ModelKind::Gaen, windows, explained, |day, _| {
            let Some(summary) = summaries.iter().find(|s| s.day == day) else {
                return (Vec::new(), None);
            };
            let checks = self
                .classifications
                .iter()
                .enumerate()
                .flat_map(|(i, c)| threshold_checks(i as u8 + 1, c, summary))
                .collect();
            (checks, self.classify(summary))
        })
    }

    fn explain_window(
        &self,
        index: usize,
        window: &ExposureWindow,
        today: Day,
    ) -> WindowExplanation {
        let Some((report_type, score, _)) = self.scored(window, today) else {
            let reason = if self.scored_report_type(window).is_none() {
                format!(
                    "report type {} is not scored",
                    report_type_name(window.report_type)
                )
            } else if self.window_score(window).is_none() {
                "infectiousness NONE for its days since onset".to_owned()
            } else {
                format!(
                    "older than daysSinceExposureThreshold ({} days)",
                    self.days_since_exposure_threshold
                )
            };
            return WindowExplanation::dropped(index, window, reason);
        };
        let infectiousness = self.infectiousness(window.days_since_onset);
        let counted = score >= self.minimum_window_score;
        WindowExplanation {
            index,
            start: window.start,
            report_type,
            buckets: self.bucket_times(window),
            factors: vec![
                Factor {
                    name: format!("report type {}", report_type_name(report_type)),
                    weight: self.report_type_weight(report_type),
                },
                Factor {
                    name: format!("infectiousness {infectiousness:?}").to_uppercase(),
                    weight: self.infectiousness_weight(infectiousness),
                },
            ],
            score,
            counted,
            reason: (!counted).then(|| {
                format!(
                    "score below minimumWindowScore ({})",
                    self.minimum_window_score
                )
            }),
        }
    }
}

/// The enabled thresholds of classification `level` with the day's values (R17).
pub(crate) fn threshold_checks(
    level: u8,
    classification: &Classification,
    day: &crate::risk::DailySummary,
) -> Vec<ThresholdCheck> {
    let values = day.threshold_values();
    crate::risk::config::CLASSIFICATION_KEYS
        .iter()
        .zip(classification.thresholds())
        .zip(values)
        .filter(|&((_, threshold), _)| threshold > 0.0)
        .map(|((&(name, _), threshold), value)| ThresholdCheck {
            name: format!("{name}_{level}"),
            risk_level: level,
            value,
            threshold,
            reached: value >= threshold,
        })
        .collect()
}
