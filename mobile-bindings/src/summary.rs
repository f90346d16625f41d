//! What the engine concludes from the matched keys: GAEN v2 exposure windows and risk.

use kith_core::ReportType;
use kith_core::risk;
use kith_core::store::Exposure;

use crate::checkin::VenueExposure;
use crate::units::seconds;

/// The exposure of this device over the last 14 days, scored with the risk configuration.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
#[uniffi::export(Debug, Eq)]
pub struct ExposureSummary {
    /// The most severe risk classification reached (1 = most severe), or none:
    /// the app notifies the user when this is set.
    pub risk_level: Option<u8>,
    /// The days (since the Unix epoch, ascending) on which that classification was reached.
    pub days: Vec<u32>,
    /// Every day with a scored exposure window, ascending.
    pub daily_summaries: Vec<DailySummary>,
    /// The exposure windows that were scored.
    pub windows: Vec<ExposureWindow>,
    /// Visits to venues that overlapped a positive person's visit long enough: the app
    /// warns the user of each.
    pub venue_exposures: Vec<VenueExposure>,
}

/// One UTC day of exposure (GAEN `DailySummary`), over all report types.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
#[uniffi::export(Debug, Eq)]
pub struct DailySummary {
    /// Days since the Unix epoch.
    pub day: u32,
    /// Sum of the day's window scores.
    pub score_sum: f64,
    /// Highest window score of the day.
    pub max_score: f64,
    /// Sum of the windows' weighted durations (seconds × attenuation weight).
    pub weighted_duration_sum: f64,
}

/// Up to 30 minutes of sightings of one diagnosis key (GAEN `ExposureWindow`).
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
#[uniffi::export(Debug, Eq)]
pub struct ExposureWindow {
    /// Time of the window's first sighting, in Unix seconds.
    pub start_unix_seconds: i64,
    /// The key's report type as published.
    pub report_type: ReportType,
    /// The key's days since symptom onset as published, −14..=14.
    pub days_since_onset: Option<i32>,
    /// Total seconds the window stands for.
    pub duration_seconds: u32,
    /// The scans that heard the key, in time order.
    pub scan_instances: Vec<ScanInstance>,
}

/// The sightings of one key within one scan (GAEN `ScanInstance`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
#[uniffi::export(Debug, Eq)]
pub struct ScanInstance {
    /// Mean attenuation of the key's beacons in the scan, rounded (dB).
    pub typical_attenuation: u8,
    /// Smallest attenuation of the key's beacons in the scan (dB).
    pub min_attenuation: u8,
    /// Seconds since the device's previous scan: the duration this scan stands for.
    pub seconds_since_last_scan: u16,
}

/// What ingesting a downloaded export file changed
/// ([`ExposureEngine::ingest_export`](crate::ExposureEngine::ingest_export)).
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
#[uniffi::export(Debug, Eq)]
pub struct ExportIngest {
    /// The same bytes were ingested before: nothing changed.
    pub already_ingested: bool,
    /// Keys heard that had not matched before, with their windows.
    pub new_exposures: Vec<KeyExposure>,
    /// Earlier exposures whose diagnosis the file's revised keys changed (confirmed,
    /// or revoked), as they are now.
    pub revised_exposures: Vec<KeyExposure>,
    /// The risk level before the file (1 = most severe), for comparison with the summary's.
    pub previous_risk_level: Option<u8>,
    /// The exposure summary with the file's changes. Matched keys may not count (the
    /// risk configuration decides): notify the user by its `risk_level`.
    pub summary: ExposureSummary,
}

/// A published key this device heard, and its exposure windows.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
#[uniffi::export(Debug, Eq)]
pub struct KeyExposure {
    /// The key's report type (after any revision).
    pub report_type: ReportType,
    /// The key's days since symptom onset, −14..=14, when published.
    pub days_since_onset: Option<i32>,
    /// The windows of its sightings, in time order.
    pub windows: Vec<ExposureWindow>,
}

impl From<Exposure> for KeyExposure {
    fn from(exposure: Exposure) -> Self {
        let key = &exposure.matched.key;
        Self {
            report_type: key.report_type,
            days_since_onset: key.days_since_onset.map(|days| days.get()),
            windows: exposure.windows.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<risk::ExposureSummary> for ExposureSummary {
    fn from(summary: risk::ExposureSummary) -> Self {
        Self {
            risk_level: summary.risk_level,
            days: summary.days.iter().map(|day| day.get()).collect(),
            daily_summaries: summary
                .daily_summaries
                .into_iter()
                .map(|day| DailySummary {
                    day: day.day.get(),
                    score_sum: day.summary.score_sum,
                    max_score: day.summary.max_score,
                    weighted_duration_sum: day.summary.weighted_duration_sum,
                })
                .collect(),
            windows: summary.windows.into_iter().map(Into::into).collect(),
            // The engine adds them: they come from the check-ins, not from the risk score.
            venue_exposures: Vec::new(),
        }
    }
}

impl From<risk::ExposureWindow> for ExposureWindow {
    fn from(window: risk::ExposureWindow) -> Self {
        Self {
            start_unix_seconds: seconds(window.start),
            report_type: window.report_type,
            days_since_onset: window.days_since_onset.map(|days| days.get()),
            duration_seconds: window.duration_seconds(),
            scan_instances: window
                .scan_instances
                .iter()
                .map(|scan| ScanInstance {
                    typical_attenuation: scan.typical_attenuation,
                    min_attenuation: scan.min_attenuation,
                    seconds_since_last_scan: scan.seconds_since_last_scan,
                })
                .collect(),
        }
    }
}
