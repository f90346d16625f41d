//! The 4-byte Bluetooth metadata hidden in every beacon: version, TX power and calibration.
//!
//! Layout (Exposure Notification Bluetooth Specification v1.2):
//! byte 0 = version major (bits 7–6), minor (bits 5–4), calibration confidence
//! (bits 3–2, v1.1 and later), reserved (bits 1–0); byte 1 = TX power in dBm (`i8`);
//! bytes 2–3 reserved, zero.

use crate::error::{Error, PayloadError, Result};

/// Metadata bytes as decrypted, before validation.
pub type RawMetadata = [u8; 4];

/// Which metadata format version a beacon uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MetadataVersion {
    /// Version 1.0 (`0x40`): no calibration confidence.
    V1_0,
    /// Version 1.1 (`0x50`): carries a calibration confidence.
    V1_1,
    /// A later 1.x minor version (2 or 3); readers must accept it.
    V1Later(u8),
}

impl MetadataVersion {
    fn minor(self) -> u8 {
        match self {
            Self::V1_0 => 0,
            Self::V1_1 => 1,
            Self::V1Later(minor) => minor,
        }
    }
}

/// How much the sending phone's TX power is to be trusted (GAEN `CalibrationConfidence`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum CalibrationConfidence {
    /// No calibration data; fleet-wide defaults.
    #[default]
    Lowest = 0,
    /// Averaged over the manufacturer's models.
    Low = 1,
    /// Single antenna orientation for a similar model.
    Medium = 2,
    /// Significant calibration data for this model.
    High = 3,
}

impl TryFrom<u8> for CalibrationConfidence {
    type Error = Error;

    fn try_from(value: u8) -> Result<Self> {
        Ok(match value {
            0 => Self::Lowest,
            1 => Self::Low,
            2 => Self::Medium,
            3 => Self::High,
            other => return Err(Error::Payload(PayloadError::CalibrationConfidence(other))),
        })
    }
}

/// Validated Bluetooth metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BluetoothMetadata {
    version: MetadataVersion,
    tx_power: i8,
    calibration: CalibrationConfidence,
}

impl BluetoothMetadata {
    /// Version 1.0 metadata with this TX power (dBm), as in the official test vectors.
    pub const fn v1_0(tx_power: i8) -> Self {
        Self {
            version: MetadataVersion::V1_0,
            tx_power,
            calibration: CalibrationConfidence::Lowest,
        }
    }

    /// Version 1.1 metadata with TX power (dBm) and calibration confidence.
    pub const fn v1_1(tx_power: i8, calibration: CalibrationConfidence) -> Self {
        Self {
            version: MetadataVersion::V1_1,
            tx_power,
            calibration,
        }
    }

    /// Validates decrypted metadata bytes: the major version must be 1.
    ///
    /// Reserved bits and bytes are ignored, as the specification reserves them for
    /// later versions that older readers must still accept.
    pub fn parse(bytes: RawMetadata) -> Result<Self> {
        let major = bytes[0] >> 6;
        let minor = (bytes[0] >> 4) & 0b11;
        if major != 1 {
            return Err(Error::Payload(PayloadError::UnsupportedMetadataVersion {
                major,
                minor,
            }));
        }
        let version = match minor {
            0 => MetadataVersion::V1_0,
            1 => MetadataVersion::V1_1,
            later => MetadataVersion::V1Later(later),
        };
        // v1.0 has no calibration field; its bits are reserved and ignored.
        let calibration = match version {
            MetadataVersion::V1_0 => CalibrationConfidence::Lowest,
            _ => CalibrationConfidence::try_from((bytes[0] >> 2) & 0b11)?,
        };
        Ok(Self {
            version,
            tx_power: bytes[1] as i8,
            calibration,
        })
    }

    /// The 4 bytes that get encrypted into the AEM.
    pub fn to_bytes(self) -> RawMetadata {
        let calibration = match self.version {
            MetadataVersion::V1_0 => 0,
            _ => self.calibration as u8,
        };
        [
            0b0100_0000 | (self.version.minor() << 4) | (calibration << 2),
            self.tx_power as u8,
            0,
            0,
        ]
    }

    /// Format version.
    pub const fn version(self) -> MetadataVersion {
        self.version
    }

    /// Transmit power of the sender in dBm, used to compute attenuation.
    pub const fn tx_power(self) -> i8 {
        self.tx_power
    }

    /// Calibration confidence (always [`CalibrationConfidence::Lowest`] for v1.0).
    pub const fn calibration_confidence(self) -> CalibrationConfidence {
        self.calibration
    }
}
