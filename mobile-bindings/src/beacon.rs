//! What the phone advertises.

/// The payload to advertise now, and until when.
///
/// Advertise `service_data` as service data of the 16-bit UUID `0xFD6F` (non-connectable),
/// and ask the engine again at `next_change_unix_seconds` at the latest; change the
/// Bluetooth random address together with it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Beacon {
    /// The 20 bytes of service data: Rolling Proximity Identifier ‖ encrypted metadata.
    pub service_data: Vec<u8>,
    /// The GAEN interval number (10-minute interval since the Unix epoch) it belongs to.
    pub interval_number: u32,
    /// Unix seconds at which this payload expires: the next interval boundary.
    pub next_change_unix_seconds: u64,
}
