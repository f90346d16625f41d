//! The BLE advertisement of an exposure-notification beacon.
//!
//! On air a beacon is a non-connectable advertisement with three AD structures:
//! flags, the complete list of 16-bit service UUIDs (`0xFD6F`), and service data
//! for `0xFD6F` holding 20 bytes: RPI ‖ AEM.

use crate::error::{Error, PayloadError, Result};
use crate::identifiers::{AEM_LEN, Aem, RPI_LEN, Rpi};

/// The 16-bit service UUID assigned to exposure notification.
pub const SERVICE_UUID_16: u16 = 0xFD6F;

/// The same UUID in its 128-bit Bluetooth base form, as BlueZ and most BLE stacks spell it.
pub const SERVICE_UUID_128: &str = "0000fd6f-0000-1000-8000-00805f9b34fb";

/// Length of the service data: RPI ‖ AEM.
pub const SERVICE_DATA_LEN: usize = RPI_LEN + AEM_LEN;

const AD_FLAGS: u8 = 0x01;
const AD_COMPLETE_16BIT_UUIDS: u8 = 0x03;
const AD_SERVICE_DATA_16BIT: u8 = 0x16;
/// LE General Discoverable, BR/EDR not supported (as GAEN phones send).
const FLAGS_VALUE: u8 = 0x1A;

/// What one beacon broadcasts: an RPI and its encrypted metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BeaconPayload {
    rpi: Rpi,
    aem: Aem,
}

impl BeaconPayload {
    /// A payload from its parts.
    pub const fn new(rpi: Rpi, aem: Aem) -> Self {
        Self { rpi, aem }
    }

    /// The Rolling Proximity Identifier.
    pub const fn rpi(&self) -> Rpi {
        self.rpi
    }

    /// The Associated Encrypted Metadata.
    pub const fn aem(&self) -> Aem {
        self.aem
    }

    /// The 20 bytes of service data: RPI ‖ AEM.
    pub fn to_service_data(&self) -> [u8; SERVICE_DATA_LEN] {
        let mut out = [0u8; SERVICE_DATA_LEN];
        out[..RPI_LEN].copy_from_slice(self.rpi.as_bytes());
        out[RPI_LEN..].copy_from_slice(&self.aem.to_bytes());
        out
    }

    /// Parses service data read for `service_uuid`; the UUID must be `0xFD6F` and
    /// the data exactly 20 bytes.
    pub fn from_service_data(service_uuid: u16, data: &[u8]) -> Result<Self> {
        if service_uuid != SERVICE_UUID_16 {
            return Err(Error::Payload(PayloadError::WrongServiceUuid(service_uuid)));
        }
        Self::from_service_data_bytes(data)
    }

    /// Parses the 20 service-data bytes of an advertisement already known to be `0xFD6F`.
    pub fn from_service_data_bytes(data: &[u8]) -> Result<Self> {
        let data: &[u8; SERVICE_DATA_LEN] = data
            .try_into()
            .map_err(|_| PayloadError::Length(data.len()))?;
        let (rpi, aem) = data.split_at(RPI_LEN);
        Ok(Self {
            rpi: Rpi::from_bytes(rpi.try_into().expect("split at RPI_LEN")),
            aem: Aem::from_bytes(aem.try_into().expect("20 - 16 = AEM_LEN")),
        })
    }

    /// The complete advertising data (31 bytes) as sent on air.
    pub fn to_advertising_data(&self) -> Vec<u8> {
        let [uuid_lo, uuid_hi] = SERVICE_UUID_16.to_le_bytes();
        let mut out = Vec::with_capacity(31);
        out.extend_from_slice(&[2, AD_FLAGS, FLAGS_VALUE]);
        out.extend_from_slice(&[3, AD_COMPLETE_16BIT_UUIDS, uuid_lo, uuid_hi]);
        out.extend_from_slice(&[
            (SERVICE_DATA_LEN + 3) as u8,
            AD_SERVICE_DATA_16BIT,
            uuid_lo,
            uuid_hi,
        ]);
        out.extend_from_slice(&self.to_service_data());
        out
    }

    /// Finds and parses the exposure-notification service data in raw advertising
    /// data (a sequence of length-type-value AD structures).
    pub fn from_advertising_data(data: &[u8]) -> Result<Self> {
        let mut rest = data;
        while let Some((&len, tail)) = rest.split_first() {
            let len = usize::from(len);
            if len == 0 {
                // Zero length marks the end of the significant part.
                break;
            }
            if tail.len() < len {
                return Err(Error::Payload(PayloadError::MalformedAdvertisingData(
                    "an AD structure is longer than the data left",
                )));
            }
            let (structure, next) = tail.split_at(len);
            if let [AD_SERVICE_DATA_16BIT, lo, hi, service_data @ ..] = structure {
                let uuid = u16::from_le_bytes([*lo, *hi]);
                if uuid == SERVICE_UUID_16 {
                    return Self::from_service_data_bytes(service_data);
                }
            }
            rest = next;
        }
        Err(Error::Payload(PayloadError::NoServiceData))
    }
}
