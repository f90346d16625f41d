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
    /// A time before 1970 or beyond the range of GAEN interval numbers; the app's clock
    /// is wrong. The message names the parameter when the time was passed in.
    #[error("invalid time: {0}")]
    InvalidTime(InputError),
    /// A number outside the range its parameter allows (an RSSI of −200 dBm, a negative
    /// id); the message names the parameter and the range.
    #[error("{parameter} is {value}, outside {range}")]
    OutOfRange {
        /// The parameter, as the method names it.
        parameter: String,
        /// The value passed.
        value: i64,
        /// The values it allows.
        range: &'static str,
    },
    /// A daily key that breaks GAEN's rules: not 16 bytes, rolling period outside
    /// 1..=144, start out of range, days since onset outside −14..=14.
    #[error("invalid exposure key: {0}")]
    InvalidKey(CoreError),
    /// A trusted public key that is not a P-256 public key (PEM, or base64
    /// SubjectPublicKeyInfo as GAEN device configurations publish it), a device
    /// configuration line that does not read, or two keys under one id and version.
    #[error("invalid public key: {0}")]
    InvalidPublicKey(PublicKeyError),
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
    InvalidPayload(InputError),
    /// A risk configuration that is none of the understood models (ENX / GAEN v2 JSON,
    /// flat or `{"config": …}`; Corona-Warn-App YAML; GAEN v1 JSON), or breaks its
    /// model's shape and ranges; the message says what was wrong.
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
            CoreError::Interval(_) => Self::InvalidTime(InputError {
                parameter: None,
                source: Box::new(error),
            }),
            CoreError::Key(_) => Self::InvalidKey(error),
            CoreError::Payload(_) => Self::InvalidPayload(InputError {
                parameter: None,
                source: Box::new(error),
            }),
            CoreError::ExportFormat(_) | CoreError::ExportWrite(_) => {
                Self::InvalidExportFile(error)
            }
            CoreError::ExportTrust(_) => Self::UntrustedExportFile(error),
            CoreError::Signature(SignatureError::InvalidSigningKey) => {
                Self::InvalidSigningKey(error)
            }
            CoreError::Signature(_) => Self::InvalidPublicKey(PublicKeyError::Key(error)),
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

/// Core's refusal of a value passed in (a time, a payload), with the parameter it was
/// passed as.
#[derive(Debug, thiserror::Error)]
#[error("{}{source}", parameter.as_ref().map(|name| format!("{name}: ")).unwrap_or_default())]
pub struct InputError {
    /// The parameter, when the value was passed in.
    pub parameter: Option<String>,
    /// Core's error (boxed: it is large, and errors travel by value).
    #[source]
    pub source: Box<CoreError>,
}

/// Why a trusted public key was refused.
#[derive(Debug, thiserror::Error)]
pub enum PublicKeyError {
    /// The key itself does not read.
    #[error(transparent)]
    Key(CoreError),
    /// A device configuration entry that is not `<id>-<version>,<base64 SubjectPublicKeyInfo>`.
    #[error(
        "device configuration entry {entry:?}: {problem}; expected \
         `[<package>:]<key id>-<key version>,<base64 SubjectPublicKeyInfo>`, entries separated by `|`"
    )]
    DeviceConfiguration {
        /// The entry, cut to its first 40 characters.
        entry: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// Two keys trusted under one id and version: the files that name them could be
    /// checked against the wrong one.
    #[error("two trusted keys have key id {key_id:?} and version {key_version:?}")]
    Duplicate {
        /// The id.
        key_id: String,
        /// The version.
        key_version: String,
    },
}

impl KithError {
    /// `parameter` is `value`, outside `range`, unless it converts to `T`.
    pub(crate) fn in_range<T: TryFrom<i64>>(
        parameter: &str,
        value: i64,
        range: &'static str,
    ) -> Result<T> {
        T::try_from(value).map_err(|_| Self::OutOfRange {
            parameter: parameter.to_owned(),
            value,
            range,
        })
    }

    /// The error of item `index` of a list passed in: the parameter it names is the item's.
    pub(crate) fn at(self, list: &str, index: usize) -> Self {
        let item = |parameter: String| format!("{list}[{index}].{parameter}");
        match self {
            Self::OutOfRange {
                parameter,
                value,
                range,
            } => Self::OutOfRange {
                parameter: item(parameter),
                value,
                range,
            },
            Self::InvalidTime(error) => Self::InvalidTime(error.renamed(item)),
            Self::InvalidPayload(error) => Self::InvalidPayload(error.renamed(item)),
            other => other,
        }
    }
}

impl InputError {
    /// The same error, its parameter's name passed through `rename`.
    fn renamed(self, rename: impl FnOnce(String) -> String) -> Self {
        Self {
            parameter: self.parameter.map(rename),
            ..self
        }
    }
}

/// `Result` with [`KithError`].
pub type Result<T, E = KithError> = std::result::Result<T, E>;
