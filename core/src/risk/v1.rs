//! GAEN v1 (`ExposureConfiguration`) risk model, as Canada's COVID Alert used it.
//!
//! COVID Alert publishes a v1 configuration (`attenuationDurationThresholds`,
//! `minimumExposureDurationMinutes`, the level values and `minimumRiskScore`) and,
//! over exposure windows, decides as its `checkIfExposedV2`
//! (cds-snc/covid-alert-app `src/services/ExposureNotificationService/ExposureNotificationService.ts`):
//! per UTC day, the seconds of scans whose typical attenuation is ≤ the first
//! threshold ("immediate") plus those ≤ the second ("near") must exceed
//! `minimumExposureDurationMinutes` × 60 (strictly). Windows of infectiousness
//! NONE are left out (v1 keys carry no days since onset: every key is standard).
//!
//! The v1 risk score is kept too: a window's score is the product of its attenuation,
//! days-since-exposure, duration and transmission level values (buckets as
//! Google's reference: attenuation {73, 63, 51, 33, 27, 15, 10} dB, days {14, 12,
//! 10, 8, 6, 4, 2}, duration {0, 5, 10, 15, 20, 25, 30} minutes; internals
//! `ContactTracingFeature`), and a window scoring below `minimumRiskScore` is left
//! out, as v1 left such exposures out of its summary. Windows carry no
//! transmission risk level (GAEN v2 dropped it), so its level value is that of TRL 0.

use serde::Deserialize;

use crate::diagnosis::ReportType;
use crate::error::{Result, RiskConfigError};
use crate::risk::config::{Infectiousness, RiskConfig};
use crate::risk::explain::{
    BucketTime, Explanation, Factor, ThresholdCheck, WindowExplanation, by_day,
};
use crate::risk::model::ModelKind;
use crate::risk::window::ExposureWindow;
use crate::time::{Day, UnixSeconds};

/// Attenuation bucket thresholds (dB) of v1's level values, index 0 = > 73 dB.
const ATTENUATION_BUCKETS: [u8; 7] = [73, 63, 51, 33, 27, 15, 10];
/// Days-since-exposure bucket thresholds, index 0 = 14 days or more.
const DAYS_BUCKETS: [i64; 7] = [14, 12, 10, 8, 6, 4, 2];
/// Duration bucket thresholds (minutes), index 0 = 0 minutes.
const DURATION_BUCKETS: [u32; 7] = [0, 5, 10, 15, 20, 25, 30];

/// The keys of a v1 configuration: a JSON object with one of these is v1.
pub(crate) const V1_KEYS: [&str; 5] = [
    "attenuationLevelValues",
    "minimumExposureDurationMinutes",
    "durationLevelValues",
    "daysSinceLastExposureLevelValues",
    "transmissionRiskLevelValues",
];

/// A GAEN v1 `ExposureConfiguration` (see the [module docs](self)).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GaenV1Model {
    /// The two attenuation thresholds, dB.
    pub attenuation_duration_thresholds: [u8; 2],
    /// Minutes at or under the second threshold a day needs to notify.
    pub minimum_exposure_duration_minutes: u32,
    /// Windows scoring below this are left out.
    #[serde(default)]
    pub minimum_risk_score: u32,
    /// Level values by attenuation bucket.
    pub attenuation_level_values: [u32; 8],
    /// Level values by days since the exposure.
    pub days_since_last_exposure_level_values: [u32; 8],
    /// Level values by duration.
    pub duration_level_values: [u32; 8],
    /// Level values by transmission risk level.
    pub transmission_risk_level_values: [u32; 8],
    /// v1's weights (the v1 API ignores them on iOS 13.7+; read, not applied).
    #[serde(default)]
    pub attenuation_weight: f64,
    /// See `attenuation_weight`.
    #[serde(default)]
    pub days_since_last_exposure_weight: f64,
    /// See `attenuation_weight`.
    #[serde(default)]
    pub duration_weight: f64,
    /// See `attenuation_weight`.
    #[serde(default)]
    pub transmission_risk_weight: f64,
    /// COVID Alert's own key (not GAEN's); read, not applied.
    #[serde(default)]
    pub steps: u32,
}

/// Index into v1 level values: how many bucket thresholds `value` passes.
fn level_index<T: PartialOrd + Copy>(buckets: &[T; 7], passes: impl Fn(T) -> bool) -> usize {
    buckets.iter().filter(|&&t| passes(t)).count()
}

impl GaenV1Model {
    /// Reads a v1 configuration (JSON).
    pub fn from_json(json: &str) -> Result<Self> {
        let model: Self = serde_json::from_str(json)
            .map_err(|e| RiskConfigError::Syntax(format!("GAEN v1 configuration: {e}")))?;
        let [low, high] = model.attenuation_duration_thresholds;
        if low >= high {
            return Err(RiskConfigError::invalid(
                "attenuationDurationThresholds",
                format!("{:?}", model.attenuation_duration_thresholds),
                "2 strictly increasing thresholds (dB)",
            )
            .into());
        }
        Ok(model)
    }

    /// The v2 configuration GAEN is asked for windows with: v1's two buckets
    /// (weight 1) and everything else neutral; it gives the daily summaries.
    pub fn exposure_configuration(&self) -> RiskConfig {
        let [low, high] = self.attenuation_duration_thresholds;
        RiskConfig {
            attenuation_thresholds: [low, high, high],
            attenuation_weights: [1.0, 1.0, 0.0, 0.0],
            infectiousness_by_days_since_onset: [Infectiousness::Standard; 29],
            infectiousness_when_onset_missing: Infectiousness::Standard,
            infectiousness_weights: [1.0, 1.0],
            report_type_weights: [1.0, 1.0, 1.0, 0.0],
            report_type_when_missing: Some(ReportType::ConfirmedTest),
            minimum_window_score: 0.0,
            days_since_exposure_threshold: 0,
            classifications: Vec::new(),
        }
    }

    fn score(
        &self,
        gaen: &RiskConfig,
        index: usize,
        window: &ExposureWindow,
        today: Day,
    ) -> WindowExplanation {
        let Some(report_type) = gaen.scored_report_type(window) else {
            return WindowExplanation::dropped(index, window, "revoked".to_owned());
        };
        let buckets = gaen.bucket_times(window);
        let [low, high] = self.attenuation_duration_thresholds;
        let mut buckets: Vec<BucketTime> = buckets.into_iter().take(2).collect();
        buckets[0].name = format!("immediate (0..={low} dB)");
        buckets[1].name = format!("near ({}..={high} dB)", u16::from(low) + 1);
        let seconds = window.duration_seconds();
        buckets.push(BucketTime {
            name: format!("far (> {high} dB)"),
            seconds: seconds - buckets[0].seconds - buckets[1].seconds,
            weight: 0.0,
        });
        // v1's attenuation of an exposure: the duration-weighted mean, rounded.
        let weighted: u64 = window
            .scan_instances
            .iter()
            .map(|s| u64::from(s.typical_attenuation) * u64::from(s.seconds_since_last_scan))
            .sum();
        let attenuation = if seconds == 0 {
            u8::MAX
        } else {
            ((2 * weighted + u64::from(seconds)) / (2 * u64::from(seconds))) as u8
        };
        let age = today.days_after(window.day());
        let minutes = seconds / 60;
        let levels = [
            (
                format!("attenuation level value ({attenuation} dB)"),
                self.attenuation_level_values
                    [level_index(&ATTENUATION_BUCKETS, |t| attenuation <= t)],
            ),
            (
                format!("days since last exposure level value ({age} days)"),
                self.days_since_last_exposure_level_values[level_index(&DAYS_BUCKETS, |t| age < t)],
            ),
            (
                format!("duration level value ({minutes} min)"),
                self.duration_level_values[level_index(&DURATION_BUCKETS, |t| minutes > t)],
            ),
            (
                "transmission risk level value (TRL 0)".to_owned(),
                self.transmission_risk_level_values[0],
            ),
        ];
        let score: u32 = levels.iter().map(|(_, v)| v).product();
        let counted = score >= self.minimum_risk_score;
        WindowExplanation {
            index,
            start: window.start,
            report_type,
            buckets,
            factors: levels
                .into_iter()
                .map(|(name, value)| Factor {
                    name,
                    weight: f64::from(value),
                })
                .collect(),
            score: f64::from(score),
            counted,
            reason: (!counted).then(|| {
                format!(
                    "risk score {score} below minimumRiskScore {}",
                    self.minimum_risk_score
                )
            }),
        }
    }

    /// Per day and window: seconds immediate / near / far, the level values and
    /// score, and the minimum-duration check; risk level 1 when it is exceeded.
    pub fn explain(&self, windows: &[ExposureWindow], now: UnixSeconds) -> Explanation {
        let today = now.day();
        let gaen = self.exposure_configuration();
        let explained = windows
            .iter()
            .enumerate()
            .map(|(index, window)| self.score(&gaen, index, window, today))
            .collect();
        by_day(ModelKind::GaenV1, windows, explained, |_, windows| {
            let seconds: u32 = windows
                .iter()
                .filter(|w| w.counted)
                .flat_map(|w| w.buckets.iter().take(2))
                .map(|b| b.seconds)
                .sum();
            let minutes = f64::from(seconds) / 60.0;
            let threshold = f64::from(self.minimum_exposure_duration_minutes);
            let reached = minutes > threshold;
            let check = ThresholdCheck {
                name: "minimumExposureDurationMinutes (immediate + near minutes, exceeded)"
                    .to_owned(),
                risk_level: 1,
                value: minutes,
                threshold,
                reached,
            };
            (vec![check], reached.then_some(1))
        })
    }
}
