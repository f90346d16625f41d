//! GAEN v2 ExposureWindows: a matched key's sightings, grouped by scan and by 30 minutes.

use crate::diagnosis::{DaysSinceOnset, ReportType};
use crate::matching::{Match, MatchedSighting};
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
        let mut windows = Vec::new();
        // Where the last scan looked up sits in the timeline: the next one is
        // usually just after it.
        let mut hint = 0;
        let mut rest = m.sightings.as_slice();
        while let Some(first) = rest.first() {
            let start = first.sighting.time;
            let len = rest
                .iter()
                .position(|s| s.sighting.time.since(start) >= MAX_WINDOW_SECONDS)
                .unwrap_or(rest.len());
            let (window, later) = rest.split_at(len);
            // A scan instance per run of sightings in one scan, counted first so
            // that the window's instances are allocated once, at their size.
            let same_scan =
                |a: &MatchedSighting, b: &MatchedSighting| a.sighting.scan_id == b.sighting.scan_id;
            let mut scan_instances = Vec::with_capacity(window.chunk_by(same_scan).count());
            scan_instances.extend(window.chunk_by(same_scan).map(|scan| {
                let s = &scan[0].sighting;
                let found = scans.position_from(hint, s.scan_id);
                hint = found.unwrap_or(hint);
                let seconds = scans.seconds_at(found, s.time);
                scan_instance(scan, rssi_correction, seconds)
            }));
            windows.push(Self {
                start,
                report_type: m.key.report_type,
                days_since_onset: m.key.days_since_onset,
                calibration_confidence: first.metadata.calibration_confidence(),
                scan_instances,
            });
            rest = later;
        }
        windows
    }
}

/// The instance of one key's sightings in one scan, crediting the scan `seconds`.
fn scan_instance(scan: &[MatchedSighting], rssi_correction: i8, seconds: u16) -> ScanInstance {
    let (sum, min) = scan.iter().fold((0u32, u8::MAX), |(sum, min), m| {
        let db = attenuation(m.metadata.tx_power(), m.sighting.rssi, rssi_correction);
        (sum + u32::from(db), min.min(db))
    });
    let count = scan.len() as u32;
    // Rounded half up, like Java's Math.round in GAEN's reference code.
    let typical = (2 * sum + count) / (2 * count);
    ScanInstance {
        typical_attenuation: typical as u8,
        min_attenuation: min,
        seconds_since_last_scan: seconds,
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
    /// (scan id, the previous scan's time), sorted by scan id.
    scans: Vec<(u64, Option<UnixSeconds>)>,
}

impl ScanTimeline {
    /// The timeline of the scans that produced `sightings`.
    pub fn new(sightings: &[Sighting]) -> Self {
        Self::from_scans(sightings.iter().map(|s| (s.scan_id, s.time)))
    }

    /// The timeline of scans given as (scan id, time) pairs, in any order and as
    /// many per scan as it had sightings: a scan's time is its earliest.
    ///
    /// A caller that knows its scans needs no [`Sighting`] for each. Pairs in scan
    /// order whose times count up too are taken in one pass; others are iterated
    /// again (hence `Clone`) and sorted.
    pub fn from_scans<I>(scans: I) -> Self
    where
        I: IntoIterator<Item = (u64, UnixSeconds)>,
        I::IntoIter: Clone,
    {
        let scans = scans.into_iter();
        if let Some(scans) = Self::in_id_order(scans.clone()) {
            return Self { scans };
        }
        // Sorted vectors rather than hash maps: a device's day of sightings sorts in
        // microseconds, and look-ups need no hashing.
        let mut first: Vec<(u64, UnixSeconds)> = scans.collect();
        first.sort_unstable();
        // Scan ids usually count up with time (they do on every device we know of);
        // then id order is time order and no second sort is needed.
        if let Some(scans) = Self::in_id_order(first.iter().copied()) {
            return Self { scans };
        }
        first.dedup_by_key(|&mut (id, _)| id);
        let mut ordered: Vec<(UnixSeconds, u64)> = first.iter().map(|&(id, t)| (t, id)).collect();
        ordered.sort_unstable();
        let mut previous = None;
        let mut scans: Vec<(u64, Option<UnixSeconds>)> = ordered
            .into_iter()
            .map(|(time, id)| (id, previous.replace(time)))
            .collect();
        scans.sort_unstable_by_key(|&(id, _)| id);
        Self { scans }
    }

    /// The timeline of (scan id, sighting time) pairs in id order, if each scan's
    /// first pair is its earliest and those come in time order, so that id order
    /// is time order; `None` otherwise.
    fn in_id_order(
        sightings: impl Iterator<Item = (u64, UnixSeconds)>,
    ) -> Option<Vec<(u64, Option<UnixSeconds>)>> {
        let mut scans = Vec::with_capacity(sightings.size_hint().0);
        // The last scan's id and time.
        let mut last: Option<(u64, UnixSeconds)> = None;
        for (id, time) in sightings {
            match last {
                Some((last_id, last_time)) if id < last_id || time < last_time => return None,
                Some((last_id, _)) if id == last_id => {}
                _ => {
                    scans.push((id, last.map(|(_, time)| time)));
                    last = Some((id, time));
                }
            }
        }
        Some(scans)
    }

    /// GAEN's `secondsSinceLastScan` for a sighting at `time` in scan `scan_id`:
    /// whole minutes since the previous scan, at most 5, or 2 when unknown.
    pub fn seconds_since_last_scan(&self, scan_id: u64, time: UnixSeconds) -> u16 {
        self.seconds_at(self.position(scan_id), time)
    }

    /// Where scan `scan_id` sits in the timeline, if it is there.
    fn position(&self, scan_id: u64) -> Option<usize> {
        self.scans
            .binary_search_by_key(&scan_id, |&(id, _)| id)
            .ok()
    }

    /// [`position`](Self::position), found faster when the scan sits at or a few
    /// places after `hint`: a key's sightings come in time order, so each scan
    /// looked up usually follows the last one.
    fn position_from(&self, hint: usize, scan_id: u64) -> Option<usize> {
        let scans = &self.scans;
        if scans.get(hint).is_none_or(|&(id, _)| id > scan_id) {
            return self.position(scan_id);
        }
        // Gallop: steps of 1, 2, 4, … from `hint` until one passes the scan, then
        // a binary search within the last step.
        let (mut lo, mut step) = (hint, 1);
        loop {
            let hi = (lo + step).min(scans.len());
            if hi == scans.len() || scans[hi].0 > scan_id {
                let k = lo + scans[lo..hi].partition_point(|&(id, _)| id < scan_id);
                return (k < hi && scans[k].0 == scan_id).then_some(k);
            }
            lo = hi;
            step *= 2;
        }
    }

    /// The seconds since the scan before the one at `position` (see
    /// [`seconds_since_last_scan`](Self::seconds_since_last_scan)).
    fn seconds_at(&self, position: Option<usize>, time: UnixSeconds) -> u16 {
        match position.and_then(|k| self.scans[k].1) {
            Some(previous) => {
                let minutes = (time.get() / 60).saturating_sub(previous.get() / 60);
                (60 * minutes).min(u64::from(MAX_SECONDS_SINCE_LAST_SCAN)) as u16
            }
            None => DEFAULT_SECONDS_SINCE_LAST_SCAN,
        }
    }
}
