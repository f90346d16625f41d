//! What a scanning device remembers of each beacon it hears.

use crate::identifiers::{Aem, Rpi};
use crate::interval::IntervalNumber;
use crate::payload::BeaconPayload;
use crate::time::UnixSeconds;

/// One received beacon: its RPI and AEM, how strong it was and when it was heard.
///
/// `scan_id` names the scan (a few seconds of listening) that heard it; sightings of
/// one key within one scan form one GAEN `ScanInstance`. Any number that is unique
/// per scan works, e.g. a counter or the scan's start time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Sighting {
    /// The Rolling Proximity Identifier heard.
    pub rpi: Rpi,
    /// The encrypted metadata that came with it.
    pub aem: Aem,
    /// Received signal strength in dBm, as measured (uncalibrated).
    pub rssi: i8,
    /// When it was heard.
    pub time: UnixSeconds,
    /// The scan that heard it.
    pub scan_id: u64,
}

impl Sighting {
    /// A sighting of `beacon` at `time` during scan `scan_id`.
    pub fn new(beacon: BeaconPayload, rssi: i8, time: UnixSeconds, scan_id: u64) -> Self {
        Self {
            rpi: beacon.rpi(),
            aem: beacon.aem(),
            rssi,
            time,
            scan_id,
        }
    }

    /// The interval the sighting falls in (the last interval for times past year 83 000).
    pub fn interval(&self) -> IntervalNumber {
        self.time.interval()
    }

    /// The beacon that was heard.
    pub fn beacon(&self) -> BeaconPayload {
        BeaconPayload::new(self.rpi, self.aem)
    }
}
