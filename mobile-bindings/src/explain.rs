//! "Why is this day risky?": core's explanation as records an app can show.

use kith_core::ReportType;
use kith_core::risk::{self, ModelKind};

use crate::units::seconds;

/// The family of a risk configuration: ENX / GAEN v2 (`Gaen`), Corona-Warn-App
/// (`Cwa`) or GAEN v1 as Canada's COVID Alert used it (`GaenV1`).
#[uniffi::remote(Enum)]
pub enum ModelKind {
    Gaen,
    Cwa,
    GaenV1,
}

/// Why the days of this device's exposure windows are, or are not, risky.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
#[uniffi::export(Debug, Eq)]
pub struct RiskExplanation {
    /// The model that scored them.
    pub model: ModelKind,
    /// The most severe risk level any day reached (1 = most severe), as in the
    /// exposure summary.
    pub risk_level: Option<u8>,
    /// Every day with a window, ascending.
    pub days: Vec<DayExplanation>,
}

/// One UTC day.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
#[uniffi::export(Debug, Eq)]
pub struct DayExplanation {
    /// Days since the Unix epoch.
    pub day: u32,
    /// The risk level the day reached (1 = most severe), if any.
    pub risk_level: Option<u8>,
    /// The day's windows.
    pub windows: Vec<WindowExplanation>,
    /// Every threshold the model checks for a day, most severe level first: the
    /// one reached, and those missed with by how much.
    pub thresholds: Vec<ThresholdCheck>,
}

/// What one exposure window contributed to its day.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
#[uniffi::export(Debug, Eq)]
pub struct WindowExplanation {
    /// Time of its first sighting, Unix seconds.
    pub start_unix_seconds: i64,
    /// The report type it was scored as (a missing one mapped as configured).
    pub report_type: ReportType,
    /// Seconds per attenuation bucket, each with the bucket's weight.
    pub buckets: Vec<BucketTime>,
    /// The other factors the weighted time was multiplied by (report type,
    /// infectiousness, …).
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
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
#[uniffi::export(Debug, Eq)]
pub struct BucketTime {
    /// The bucket and its range, e.g. `near (31..=50 dB)`.
    pub name: String,
    /// Seconds of the window's scans in it.
    pub seconds: u32,
    /// Its weight (a factor: 1.0 = 100 %).
    pub weight: f64,
}

/// A weight applied to a window.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
#[uniffi::export(Debug, Eq)]
pub struct Factor {
    /// What it is, e.g. `report type CONFIRMED_TEST`.
    pub name: String,
    /// The factor.
    pub weight: f64,
}

/// One threshold checked for a day.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
#[uniffi::export(Debug, Eq)]
pub struct ThresholdCheck {
    /// Its name as the configuration calls it (e.g. `perDaySumERVThreshold_1`).
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

impl From<risk::Explanation> for RiskExplanation {
    fn from(explanation: risk::Explanation) -> Self {
        Self {
            model: explanation.model,
            risk_level: explanation.risk_level,
            days: explanation
                .days
                .into_iter()
                .map(|day| DayExplanation {
                    day: day.day.get(),
                    risk_level: day.risk_level,
                    windows: day.windows.into_iter().map(Into::into).collect(),
                    thresholds: day
                        .thresholds
                        .into_iter()
                        .map(|check| ThresholdCheck {
                            name: check.name,
                            risk_level: check.risk_level,
                            value: check.value,
                            threshold: check.threshold,
                            reached: check.reached,
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

impl From<risk::WindowExplanation> for WindowExplanation {
    fn from(window: risk::WindowExplanation) -> Self {
        Self {
            start_unix_seconds: seconds(window.start),
            report_type: window.report_type,
            buckets: window
                .buckets
                .into_iter()
                .map(|bucket| BucketTime {
                    name: bucket.name,
                    seconds: bucket.seconds,
                    weight: bucket.weight,
                })
                .collect(),
            factors: window
                .factors
                .into_iter()
                .map(|factor| Factor {
                    name: factor.name,
                    weight: factor.weight,
                })
                .collect(),
            score: window.score,
            counted: window.counted,
            reason: window.reason,
        }
    }
}
