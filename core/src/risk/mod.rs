//! GAEN v2 risk scoring: from matches to exposure windows, daily summaries and a risk level.
//!
//! ```text
//!   Match ──▶ ScanInstances (one per scan: rounded mean and min attenuation, seconds since last scan)
//!         ──▶ ExposureWindows (≤ 30 min each)
//!         ──▶ score = Σ seconds × bucket weight × report-type weight × infectiousness weight
//!         ──▶ DailySummaries (sum, max, weighted duration) ──▶ classification (risk level) and days
//! ```
//!
//! ```
//! use kith_core::ReportType;
//! use kith_core::risk::{ExposureWindow, RiskConfig, ScanInstance};
//! use kith_core::{CalibrationConfidence, Day, UnixSeconds};
//!
//! // 15 minutes at 45 dB (the "near" bucket, weight 100 %), confirmed test.
//! let window = ExposureWindow {
//!     start: UnixSeconds::new(1_700_000_000),
//!     report_type: ReportType::ConfirmedTest,
//!     days_since_onset: None,
//!     calibration_confidence: CalibrationConfidence::Lowest,
//!     scan_instances: vec![
//!         ScanInstance { typical_attenuation: 45, min_attenuation: 40, seconds_since_last_scan: 300 };
//!         3
//!     ],
//! };
//! let config = RiskConfig::enx_with_15_minute_alert();
//! assert_eq!(config.window_score(&window), Some(900.0));
//! let summary = config.assess(&[window], UnixSeconds::new(1_700_000_000));
//! assert_eq!(summary.risk_level, Some(1));
//! assert_eq!(summary.days, vec![Day::new(19_675)]); // 2023-11-14
//! ```

mod config;
pub mod cwa;
mod explain;
mod model;
mod scoring;
pub mod v1;
mod window;

pub use config::{Classification, Infectiousness, RiskConfig};
pub use cwa::CwaModel;
pub use explain::{
    BucketTime, DayExplanation, Explanation, Factor, ThresholdCheck, WindowExplanation,
};
pub use model::{ModelKind, RiskModel};
pub use scoring::{DailySummary, ExposureSummary, SummaryData};
pub use v1::GaenV1Model;
pub use window::{
    DEFAULT_SECONDS_SINCE_LAST_SCAN, ExposureWindow, MAX_SECONDS_SINCE_LAST_SCAN,
    MAX_WINDOW_SECONDS, ScanInstance, ScanTimeline, attenuation,
};
