//! What a beacon carries on air: the Rolling Proximity Identifier and its encrypted metadata.

use std::fmt;

/// Length of a Rolling Proximity Identifier in bytes.
pub const RPI_LEN: usize = 16;

/// Length of the Associated Encrypted Metadata in bytes.
pub const AEM_LEN: usize = 4;

/// A Rolling Proximity Identifier (RPI): 16 bytes that look random to anyone
/// without the key, changing every interval.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rpi([u8; RPI_LEN]);

impl Rpi {
    /// An RPI from its bytes.
    pub const fn from_bytes(bytes: [u8; RPI_LEN]) -> Self {
        Self(bytes)
    }

    /// The bytes of the RPI.
    pub const fn to_bytes(self) -> [u8; RPI_LEN] {
        self.0
    }

    /// The bytes of the RPI, borrowed.
    pub const fn as_bytes(&self) -> &[u8; RPI_LEN] {
        &self.0
    }
}

/// Associated Encrypted Metadata (AEM): the beacon's 4 metadata bytes, encrypted.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Aem([u8; AEM_LEN]);

impl Aem {
    /// An AEM from its bytes.
    pub const fn from_bytes(bytes: [u8; AEM_LEN]) -> Self {
        Self(bytes)
    }

    /// The bytes of the AEM.
    pub const fn to_bytes(self) -> [u8; AEM_LEN] {
        self.0
    }
}

fn write_hex(f: &mut fmt::Formatter<'_>, name: &str, bytes: &[u8]) -> fmt::Result {
    write!(f, "{name}(")?;
    for b in bytes {
        write!(f, "{b:02x}")?;
    }
    write!(f, ")")
}

// Public values broadcast in the clear, so Debug shows them in hex.
impl fmt::Debug for Rpi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, "Rpi", &self.0)
    }
}

impl fmt::Debug for Aem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, "Aem", &self.0)
    }
}
