//! GAEN v2 ExposureWindows: a matched key's sightings, grouped by scan and by 30 minutes.

use crate::diagnosis::{DaysSinceOnset, ReportType};
use crate::matching::Match;
use crate::metadata::CalibrationConfidence;
use crate::sighting::Sighting;
use crate::time::{Day, UnixSeconds};

/// Longest span of one exposure window: a key heard for longer gives several windows.
pub const MAX_WINDOW_SECONDS: u64 = 30 * 60;

/// Duration credited to a scan when the previous scan is unknown.
pub const DEFAULT_SECONDS_SINCE_LAST_SCAN: u16 = 120;

/// Most a single scan is credited, however long since the previous one.
pub const MAX_SECONDS_SINCE_LAST_SCAN: u16 = 300;

/// The sightings of one key within one scan (GAEN `ScanInstance`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanInstance {
    /// Mean attenuation of the key's beacons in the scan, rounded (dB).
    pub typical_attenuation: u8,
    /// Smallest attenuation of the key's beacons in the scan (dB).
    pub min_attenuation: u8,
    /// Seconds since the device's previous scan: the duration this scan stands for.
    pub seconds_since_last_scan: u16,
}

/// Up to 30 minutes of sightings of one diagnosis key (GAEN `ExposureWindow`).
///
/// It keeps the key's report type and days since onset as published, so a new risk
/// configuration re-scores old windows correctly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExposureWindow {
    /// Time of the window's first sighting.
    pub start: UnixSeconds,
    /// The key's report type as published.
    pub report_type: ReportType,
    /// The key's days since onset as published.
    pub days_since_onset: Option<DaysSinceOnset>,
    /// The sender's calibration confidence (from its first beacon in the window).
    pub calibration_confidence: CalibrationConfidence,
    /// The scans that heard the key, in time order.
    pub scan_instances: Vec<ScanInstance>,
}

impl ExposureWindow {
    /// The UTC day of the window.
    pub fn day(&self) -> Day {
        self.start.day()
    }

    /// Total seconds the window stands for.
    pub fn duration_seconds(&self) -> u32 {
        self.scan_instances
            .iter()
            .map(|s| u32::from(s.seconds_since_last_scan))
            .sum()
    }

    /// The windows of one matched key.
    ///
    /// Attenuation = TX power − (RSSI + `rssi_correction`), at least 0: the
    /// correction is this receiver's calibration (GAEN's `rssiOffset`).
    pub fn from_match(m: &Match, scans: &ScanTimeline, rssi_correction: i8) -> Vec<Self> {
        let mut windows: Vec<Self> = Vec::new();
        // The scan instances of the current window, as they are summed up.
        let mut current: Vec<ScanSum> = Vec::new();
        let flush = |windows: &mut Vec<Self>, current: &mut Vec<ScanSum>| {
            if let Some(window) = windows.last_mut() {
                window.scan_instances = current.drain(..).map(ScanSum::instance).collect();
            }
        };
        for matched in &m.sightings {
            let s = &matched.sighting;
            let starts_window = windows
                .last()
                .is_none_or(|w| s.time.since(w.start) >= MAX_WINDOW_SECONDS);
            if starts_window {
                flush(&mut windows, &mut current);
                windows.push(Self {
                    start: s.time,
                    report_type: m.key.report_type,
                    days_since_onset: m.key.days_since_onset,
                    calibration_confidence: matched.metadata.calibration_confidence(),
                    scan_instances: Vec::new(),
                });
            }
            let attenuation = attenuation(matched.metadata.tx_power(), s.rssi, rssi_correction);
            match current.last_mut() {
                Some(scan) if scan.scan_id == s.scan_id => scan.add(attenuation),
                _ => current.push(ScanSum {
                    scan_id: s.scan_id,
                    sum: u32::from(attenuation),
                    count: 1,
                    min: attenuation,
                    seconds: scans.seconds_since_last_scan(s.scan_id, s.time),
                }),
            }
        }
        flush(&mut windows, &mut current);
        windows
    }
}

/// The attenuations of one key's beacons in one scan, summed up as they come.
struct ScanSum {
    scan_id: u64,
    sum: u32,
    count: u32,
    min: u8,
    seconds: u16,
}

impl ScanSum {
    fn add(&mut self, attenuation: u8) {
        self.sum += u32::from(attenuation);
        self.count += 1;
        self.min = self.min.min(attenuation);
    }

    fn instance(self) -> ScanInstance {
        // Rounded half up, like Java's Math.round in GAEN's reference code.
        let typical = (2 * self.sum + self.count) / (2 * self.count);
        ScanInstance {
            typical_attenuation: typical as u8,
            min_attenuation: self.min,
            seconds_since_last_scan: self.seconds,
        }
    }
}

/// Attenuation in dB = TX power − (RSSI + correction), clamped to 0..=255.
pub fn attenuation(tx_power: i8, rssi: i8, rssi_correction: i8) -> u8 {
    let db = i32::from(tx_power) - (i32::from(rssi) + i32::from(rssi_correction));
    db.clamp(0, 255) as u8
}

/// When the device's scans ran, learned from its sightings: a scan's time is that of
/// its first sighting.
///
/// A scan that heard nothing at all leaves no trace, so the time since the previous
/// scan can come out longer than it was; it is capped at 5 minutes anyway.
#[derive(Clone, Debug, Default)]
pub struct ScanTimeline {
    /// (scan id, its time, the previous scan's time), sorted by scan id.
    scans: Vec<(u64, UnixSeconds, Option<UnixSeconds>)>,
}

impl ScanTimeline {
    /// The timeline of the scans that produced `sightings`.
    pub fn new(sightings: &[Sighting]) -> Self {
        // Sorted vectors rather than hash maps: a device's day of sightings sorts in
        // microseconds, and look-ups need no hashing.
        let mut first: Vec<(u64, UnixSeconds)> =
            sightings.iter().map(|s| (s.scan_id, s.time)).collect();
        first.sort_unstable();
        first.dedup_by_key(|&mut (id, _)| id);
        let mut previous = None;
        // Scan ids usually count up with time (they do on every device we know of);
        // then id order is time order and no second sort is needed.
        if first.is_sorted_by_key(|&(_, time)| time) {
            let scans = first
                .into_iter()
                .map(|(id, time)| (id, time, previous.replace(time)))
                .collect();
            return Self { scans };
        }
        let mut ordered: Vec<(UnixSeconds, u64)> = first.iter().map(|&(id, t)| (t, id)).collect();
        ordered.sort_unstable();
        let mut scans: Vec<(u64, UnixSeconds, Option<UnixSeconds>)> = ordered
            .into_iter()
            .map(|(time, id)| (id, time, previous.replace(time)))
            .collect();
        scans.sort_unstable_by_key(|&(id, _, _)| id);
        Self { scans }
    }

    /// GAEN's `secondsSinceLastScan` for a sighting at `time` in scan `scan_id`:
    /// whole minutes since the previous scan, at most 5, or 2 when unknown.
    pub fn seconds_since_last_scan(&self, scan_id: u64, time: UnixSeconds) -> u16 {
        let scan = self
            .scans
            .binary_search_by_key(&scan_id, |&(id, _, _)| id)
            .map(|k| self.scans[k].2);
        match scan {
            Ok(Some(previous)) => {
                let minutes = (time.get() / 60).saturating_sub(previous.get() / 60);
                (60 * minutes).min(u64::from(MAX_SECONDS_SINCE_LAST_SCAN)) as u16
            }
            _ => DEFAULT_SECONDS_SINCE_LAST_SCAN,
        }
    }
}
