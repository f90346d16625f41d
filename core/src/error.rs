//! The crate's error type: one enum of kinds, each kind its own enum.
//!
//! A caller that only needs to know *what kind* of thing failed matches the outer
//! [`Error`] (`Error::ExportTrust(_)`: the file is not from whom it claims);
//! one that needs the detail matches the inner enum. Every enum is
//! `#[non_exhaustive]` and `PartialEq`, so tests `assert_eq!` on errors; a foreign
//! error (SQLite's) is kept whole behind [`OtherError`], which compares unequal.
//!
//! Messages say what was wrong and what was expected; they never contain secret bytes.

use std::fmt;
use std::sync::Arc;

/// Everything that can go wrong in `kith-core`, by kind.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A time or interval outside GAEN's 32-bit interval range.
    #[error(transparent)]
    Interval(#[from] IntervalError),
    /// A daily key, or a diagnosis key's fields, that break GAEN's rules.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Received Bluetooth data that is not an exposure-notification beacon.
    #[error(transparent)]
    Payload(#[from] PayloadError),
    /// Bytes that are not a well-formed GAEN key-export file.
    #[error(transparent)]
    ExportFormat(#[from] ExportFormatError),
    /// A well-formed export file that cannot be trusted: unsigned, or not signed by a
    /// trusted key. Its keys must not be used.
    #[error(transparent)]
    ExportTrust(#[from] ExportTrustError),
    /// An export file that could not be written.
    #[error(transparent)]
    ExportWrite(#[from] ExportWriteError),
    /// A signing or verifying key that is not usable, or a signature that does not verify.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// A risk configuration that cannot be read or is out of range.
    #[error(transparent)]
    RiskConfig(#[from] RiskConfigError),
    /// The device store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A venue QR code, check-in or protected report that was refused.
    #[error("venue check-in: {0}")]
    Checkin(#[from] crate::checkin::CheckinError),
    /// A publish request that could not be sealed, or an answer that does not open.
    #[cfg(feature = "sealed")]
    #[error("sealed publish: {0}")]
    Sealed(#[from] crate::sealed::SealedError),
}

/// Times and intervals outside the range of GAEN interval numbers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IntervalError {
    /// A time before the Unix epoch or too far in the future for a 32-bit interval number.
    #[error(
        "time {unix_seconds} s is outside the range of GAEN interval numbers (0..=2^32-1 intervals of 600 s)"
    )]
    TimeOutOfRange {
        /// The offending time, in seconds since the Unix epoch (negative for before the epoch).
        unix_seconds: i128,
    },
    /// Interval arithmetic left the 32-bit range.
    #[error("interval arithmetic overflowed the 32-bit interval number range")]
    Overflow,
}

/// A key or one of a diagnosis key's fields breaking GAEN's rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Key bytes that are not 16 bytes long.
    #[error("temporary exposure key must be 16 bytes, got {0}")]
    Length(usize),
    /// A rolling period outside 1..=144.
    #[error("rolling period {0} is invalid: expected 1..=144 intervals")]
    RollingPeriod(u32),
    /// A rolling start interval number that GAEN files cannot carry (they use a signed 32-bit field).
    #[error("rolling start interval number {0} is invalid: expected 0..=2147483647")]
    RollingStart(i64),
    /// A report type number GAEN does not define.
    #[error("report type {0} is invalid: expected 0..=5")]
    ReportType(i32),
    /// Days since onset outside −14..=14.
    #[error("days since onset {0} is invalid: expected -14..=14")]
    DaysSinceOnset(i32),
    /// A key record whose protobuf does not decode.
    #[error("key record is not a valid TemporaryExposureKey protobuf message: {0}")]
    Malformed(String),
}

/// Received advertising data that is not an exposure-notification beacon.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PayloadError {
    /// An advertisement's 16-bit service UUID is not the exposure-notification one.
    #[error("service UUID 0x{0:04X} is not the exposure-notification UUID 0xFD6F")]
    WrongServiceUuid(u16),
    /// Service data that is not 20 bytes long.
    #[error("exposure-notification service data must be 20 bytes, got {0}")]
    Length(usize),
    /// Advertising data that is not a sequence of well-formed AD structures.
    #[error("malformed advertising data: {0}")]
    MalformedAdvertisingData(&'static str),
    /// Advertising data without exposure-notification service data.
    #[error("advertising data carries no service data for UUID 0xFD6F")]
    NoServiceData,
    /// Bluetooth metadata with a major version other than 1.
    #[error("Bluetooth metadata version {major}.{minor} is unsupported: expected major version 1")]
    UnsupportedMetadataVersion {
        /// Major version found in the metadata.
        major: u8,
        /// Minor version found in the metadata.
        minor: u8,
    },
    /// A calibration confidence outside 0..=3.
    #[error("calibration confidence {0} is invalid: expected 0..=3")]
    CalibrationConfidence(u8),
}

/// Bytes that are not a well-formed GAEN key-export file, or exceed the limits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExportFormatError {
    /// Bytes that are neither a GAEN export zip nor a bare `export.bin`.
    #[error(
        "not a GAEN key export: expected a zip archive or an export.bin starting with \"EK Export v1    \""
    )]
    NotRecognized,
    /// An export file, or one of its zip entries, larger than the configured limit.
    #[error("{what} is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The file or entry that was too large.
        what: &'static str,
        /// The limit in bytes (see `ExportLimits`).
        limit: u64,
    },
    /// An export with more keys than the configured limit.
    #[error("export holds more than the limit of {limit} keys")]
    TooManyKeys {
        /// The limit (see `ExportLimits`).
        limit: u64,
    },
    /// A zip archive the zip reader rejected.
    #[error("malformed export zip archive: {0}")]
    Zip(String),
    /// A zip entry other than `export.bin` and `export.sig`.
    #[error("zip entry {0:?} is not allowed: expected only \"export.bin\" and \"export.sig\"")]
    UnexpectedEntry(String),
    /// A zip archive naming the same entry twice.
    #[error("zip entry {0:?} appears more than once: expected it once")]
    DuplicateEntry(&'static str),
    /// A zip archive without its `export.bin`.
    #[error("export zip has no {0:?} entry")]
    MissingEntry(&'static str),
    /// An `export.bin` without the 16-byte header.
    #[error("export.bin does not start with the 16-byte header \"EK Export v1    \"")]
    BadHeader,
    /// Protobuf that does not decode.
    #[error("{what} is not a valid protobuf message: {reason}")]
    Malformed {
        /// Which message failed.
        what: &'static str,
        /// The decoder's explanation.
        reason: String,
    },
    /// One key record of an export breaks GAEN's rules; the other keys are still readable.
    #[error("key {index} of the export is invalid: {source}")]
    InvalidKey {
        /// Position of the key among the file's keys (or revised keys), from 0.
        index: usize,
        /// What was wrong with it.
        source: KeyError,
    },
}

/// A well-formed export that is not signed by a trusted key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExportTrustError {
    /// An export without signatures.
    #[error("export is unsigned: expected at least one signature")]
    Unsigned,
    /// An export whose signatures all come from keys we do not trust.
    #[error(
        "export is signed by key id {key_id:?} version {key_version:?}, which is not among the trusted keys"
    )]
    UnknownSigningKey {
        /// `verification_key_id` of the first signature.
        key_id: String,
        /// `verification_key_version` of the first signature.
        key_version: String,
    },
    /// A signature by a trusted key that does not match the file.
    #[error(
        "export signature by key id {key_id:?} version {key_version:?} does not verify: the file was altered or signed by another key"
    )]
    BadSignature {
        /// `verification_key_id` of the signature.
        key_id: String,
        /// `verification_key_version` of the signature.
        key_version: String,
    },
    /// A signature algorithm other than ECDSA P-256 with SHA-256.
    #[error(
        "signature algorithm {0:?} is unsupported: expected ECDSA P-256 SHA-256 (\"1.2.840.10045.4.3.2\")"
    )]
    UnsupportedSignatureAlgorithm(String),
}

/// An export file that could not be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExportWriteError {
    /// A writer asked to sign with no key.
    #[error("an export needs at least one signing key")]
    NoSigningKey,
    /// More signatures than GAEN clients check.
    #[error("export has {count} signatures: expected at most {limit}")]
    TooManySignatures {
        /// Signatures requested.
        count: usize,
        /// GAEN's limit.
        limit: usize,
    },
    /// The zip writer failed.
    #[error("writing the export zip archive: {0}")]
    Zip(String),
}

/// Signing and verifying keys, and raw signatures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// A private key that is not an unencrypted P-256 PKCS#8 key.
    #[error(
        "signing key is invalid: expected an unencrypted PKCS#8 P-256 (prime256v1) private key"
    )]
    InvalidSigningKey,
    /// A public key that is not a P-256 SubjectPublicKeyInfo.
    #[error(
        "public key is invalid: expected a P-256 (prime256v1) SubjectPublicKeyInfo in PEM or DER"
    )]
    InvalidVerifyingKey,
    /// A signature that does not match the message and public key.
    #[error("signature does not verify: expected a DER ECDSA P-256 SHA-256 signature by this key")]
    Mismatch,
}

/// A risk configuration that cannot be read or holds a value out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RiskConfigError {
    /// Text that does not parse as the expected format and shape.
    #[error("invalid risk configuration: {0}")]
    Syntax(String),
    /// A key that reads like a scoring key but is none the format has.
    #[error("invalid risk configuration: unknown key `{key}`; {formats}")]
    UnknownKey {
        /// The key.
        key: String,
        /// Which formats are understood.
        formats: &'static str,
    },
    /// A value outside what its field allows.
    #[error("invalid risk configuration: {field} is {value}: expected {expected}")]
    InvalidValue {
        /// The field (as the configuration file names it).
        field: String,
        /// The value found.
        value: String,
        /// What the field allows.
        expected: String,
    },
}

impl RiskConfigError {
    /// An [`InvalidValue`](Self::InvalidValue) error.
    pub(crate) fn invalid(
        field: impl Into<String>,
        value: impl fmt::Display,
        expected: impl Into<String>,
    ) -> Self {
        Self::InvalidValue {
            field: field.into(),
            value: value.to_string(),
            expected: expected.into(),
        }
    }
}

/// The device store failing.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be opened, read or written (path, disk, lock).
    #[error("device store: {0}")]
    Database(#[source] OtherError),
    /// A stored value (the column or setting named) that this program cannot read back.
    #[error("device store is corrupt: {0} holds an invalid value")]
    Corrupt(&'static str),
    /// A database written by a newer version of this program.
    #[error("device store schema version {found} is newer than this program's {supported}")]
    NewerSchema {
        /// The database's schema version.
        found: u32,
        /// The newest version this program knows.
        supported: u32,
    },
    /// A stored setting that no longer parses.
    #[error("device store setting {name:?} is invalid: {source}")]
    InvalidSetting {
        /// The setting's name.
        name: &'static str,
        /// Why it does not parse.
        source: RiskConfigError,
    },
}

/// An error from another crate (such as SQLite's), kept whole as the source.
///
/// Like rustls' `OtherError`: it never compares equal, so that the enums holding it
/// stay `PartialEq` for tests without pretending two foreign errors are the same.
#[derive(Debug, Clone)]
pub struct OtherError(Arc<dyn std::error::Error + Send + Sync>);

impl OtherError {
    /// Wraps `error`.
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Arc::new(error))
    }

    /// The wrapped error, to downcast.
    pub fn get_ref(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }
}

impl PartialEq for OtherError {
    fn eq(&self, _: &Self) -> bool {
        false
    }
}

impl fmt::Display for OtherError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for OtherError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
