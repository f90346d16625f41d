//! What the phone advertises, and what it hears.

/// The payload to advertise now, and until when.
///
/// Advertise `service_data` as service data of the 16-bit UUID `0xFD6F` (non-connectable),
/// and ask the engine again at `next_change_unix_seconds` at the latest; change the
/// Bluetooth random address together with it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
#[uniffi::export(Debug, Eq)]
pub struct Beacon {
    /// The 20 bytes of service data: Rolling Proximity Identifier ‖ encrypted metadata.
    pub service_data: Vec<u8>,
    /// The GAEN interval number (10-minute interval since the Unix epoch) it belongs to.
    pub interval_number: i64,
    /// Unix seconds at which this payload expires: the next interval boundary.
    pub next_change_unix_seconds: i64,
}

/// A beacon heard, for [`ExposureEngine::record_sightings`](crate::ExposureEngine::record_sightings).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
#[uniffi::export(Debug, Eq)]
pub struct BeaconSighting {
    /// Its 20 bytes of `0xFD6F` service data.
    pub service_data: Vec<u8>,
    /// The RSSI measured (dBm), −128..=127.
    pub rssi: i32,
    /// When it was heard, Unix seconds.
    pub seen_at_unix_seconds: i64,
    /// The scan that heard it: any number (0 or more) unique per scan, such as the
    /// scan's start time; beacons of one scan count as one scan instance.
    pub scan_id: i64,
}
