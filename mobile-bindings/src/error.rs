//! The one error type apps see, and the one place core's errors are mapped onto it.

use kith_core::{Error as CoreError, SignatureError};

/// Everything a call into this crate can fail with.
///
/// A flat enum: Kotlin, Swift and Python get one exception class per variant
/// (`KithError.InvalidTime` …) carrying the message, and each variant is a case
/// an app handles differently. Messages never contain secret bytes.
#[derive(Debug, thiserror::Error, uniffi::Error)]
#[uniffi(flat_error)]
pub enum KithError {
    /// A time before 1970 or beyond the range of GAEN interval numbers; the app's clock is wrong.
    #[error("invalid time: {0}")]
    InvalidTime(CoreError),
    /// A daily key that breaks GAEN's rules: not 16 bytes, rolling period outside
    /// 1..=144, start out of range, days since onset outside −14..=14.
    #[error("invalid exposure key: {0}")]
    InvalidKey(CoreError),
    /// A trusted public key that is not a P-256 public key in PEM.
    #[error("invalid public key: {0}")]
    InvalidPublicKey(CoreError),
    /// An export signing key that is not an unencrypted P-256 PKCS#8 PEM key.
    #[error("invalid signing key: {0}")]
    InvalidSigningKey(CoreError),
    /// Bytes that are not a well-formed GAEN export file (or one that could not be written).
    #[error("invalid export file: {0}")]
    InvalidExportFile(CoreError),
    /// An export file whose signature does not verify with any of the trusted public
    /// keys: altered, or from a health authority the app does not trust. Its keys were not used.
    #[error("untrusted export file: {0}")]
    UntrustedExportFile(CoreError),
    /// Received service data that is not a 20-byte exposure-notification payload.
    #[error("invalid beacon payload: {0}")]
    InvalidPayload(CoreError),
    /// A risk configuration that is not ENX JSON of the expected shape and ranges.
    #[error("invalid risk configuration: {0}")]
    InvalidRiskConfiguration(CoreError),
    /// Scanned text that is not a venue's check-in QR code, or a code that breaks its
    /// rules (description, address, seed); the message says which.
    #[error("invalid venue QR code: {0}")]
    InvalidVenueCode(CoreError),
    /// A check-out or upload that names no stored visit, or times that make no visit
    /// (departure not after arrival, longer than a day).
    #[error("invalid check-in: {0}")]
    InvalidCheckIn(CoreError),
    /// The device store could not be opened, read or written (path, disk, corruption).
    #[error("device store failed: {0}")]
    Storage(CoreError),
    /// A failure of a kind this version of the bindings does not know (a newer core).
    #[error("{0}")]
    Other(CoreError),
}

impl From<CoreError> for KithError {
    fn from(error: CoreError) -> Self {
        match error {
            CoreError::Interval(_) => Self::InvalidTime(error),
            CoreError::Key(_) => Self::InvalidKey(error),
            CoreError::Payload(_) => Self::InvalidPayload(error),
            CoreError::ExportFormat(_) | CoreError::ExportWrite(_) => {
                Self::InvalidExportFile(error)
            }
            CoreError::ExportTrust(_) => Self::UntrustedExportFile(error),
            CoreError::Signature(SignatureError::InvalidSigningKey) => {
                Self::InvalidSigningKey(error)
            }
            CoreError::Signature(_) => Self::InvalidPublicKey(error),
            CoreError::RiskConfig(_) => Self::InvalidRiskConfiguration(error),
            CoreError::Store(_) => Self::Storage(error),
            _ => Self::Other(error),
        }
    }
}

impl KithError {
    /// Maps a core error to [`Storage`](Self::Storage) if the store failed, else with `otherwise`.
    pub(crate) fn store_or(otherwise: fn(CoreError) -> Self) -> impl Fn(CoreError) -> Self {
        move |error| match error {
            CoreError::Store(_) => Self::Storage(error),
            _ => otherwise(error),
        }
    }
}

/// `Result` with [`KithError`].
pub type Result<T, E = KithError> = std::result::Result<T, E>;
