//! The radio: advertise one beacon, listen for others.
//!
//! Two implementations: [`bluez`] (btleplug scans, bluer advertises, over BlueZ's
//! D-Bus API) and [`sim`] (a loopback "ether" between agents on one machine).

pub mod bluez;
pub mod sim;

use kith_core::{BeaconPayload, SERVICE_DATA_LEN};

use crate::error::Result;

/// One advertisement heard in a scan window: 0xFD6F service data and its RSSI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    /// The 20 bytes of service data (RPI ‖ AEM).
    pub service_data: [u8; SERVICE_DATA_LEN],
    /// Received signal strength, dBm.
    pub rssi: i8,
    /// When it was heard, Unix milliseconds.
    pub at: u64,
}

impl Received {
    /// The beacon it carries.
    pub fn beacon(&self) -> BeaconPayload {
        // 20 bytes always split into RPI and AEM.
        BeaconPayload::from_service_data_bytes(&self.service_data)
            .expect("service data has the beacon's length")
    }
}

/// What a scan window heard: at most one entry per advertiser and beacon, with the
/// latest RSSI (GAEN counts a beacon once per scan).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanWindow {
    /// Start of the window, Unix milliseconds.
    pub started_at: u64,
    /// End of the window, Unix milliseconds.
    pub ended_at: u64,
    /// The beacons heard.
    pub received: Vec<Received>,
}

/// A Bluetooth LE radio as the agent uses it.
pub trait Radio {
    /// Starts broadcasting `payload` as non-connectable 0xFD6F service data, replacing
    /// what was advertised before, from a fresh random address.
    fn advertise(&mut self, payload: &BeaconPayload) -> impl Future<Output = Result<()>>;

    /// Stops broadcasting.
    fn stop_advertising(&mut self) -> impl Future<Output = Result<()>>;

    /// Listens for `millis` (a scan window) and returns the 0xFD6F beacons heard;
    /// advertisements without such service data are ignored.
    fn scan(&mut self, millis: u64) -> impl Future<Output = Result<ScanWindow>>;

    /// Beacons this radio has put on the air so far (for BlueZ an estimate:
    /// time advertised ÷ advertising interval).
    fn beacons_sent(&self) -> u64;
}

/// Keeps, per advertiser, the last RSSI of each beacon, in first-heard order.
#[derive(Debug, Default)]
pub(crate) struct WindowCollector {
    received: Vec<(String, Received)>,
}

impl WindowCollector {
    /// Records `received` from `advertiser` (an address or an id).
    pub(crate) fn hear(&mut self, advertiser: &str, received: Received) {
        match self
            .received
            .iter_mut()
            .find(|(who, r)| who == advertiser && r.service_data == received.service_data)
        {
            Some((_, seen)) => {
                seen.rssi = received.rssi;
                seen.at = received.at;
            }
            None => self.received.push((advertiser.to_owned(), received)),
        }
    }

    /// The window, from `started_at` to `ended_at`.
    pub(crate) fn finish(self, started_at: u64, ended_at: u64) -> ScanWindow {
        ScanWindow {
            started_at,
            ended_at,
            received: self.received.into_iter().map(|(_, r)| r).collect(),
        }
    }
}

/// GAEN's advertising interval (BLE spec v1.2: "currently recommended to be 200-270 ms").
pub const ADVERTISING_INTERVAL_MILLIS: std::ops::RangeInclusive<u64> = 200..=270;
