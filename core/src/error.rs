//! The crate's error type.

/// Everything that can go wrong in `kith-core`.
///
/// Messages say what was wrong and what was expected; they never contain
/// secret bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
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
    IntervalOverflow,
    /// A rolling period outside 1..=144.
    #[error("rolling period {0} is invalid: expected 1..=144 intervals")]
    InvalidRollingPeriod(u32),
    /// A buffer had the wrong length.
    #[error("{what} must be {expected} bytes, got {actual}")]
    InvalidLength {
        /// What was being parsed.
        what: &'static str,
        /// The required length.
        expected: usize,
        /// The length that was given.
        actual: usize,
    },
    /// An advertisement's 16-bit service UUID is not the exposure-notification one.
    #[error("service UUID 0x{0:04X} is not the exposure-notification UUID 0xFD6F")]
    WrongServiceUuid(u16),
    /// Bluetooth metadata with a major version other than 1.
    #[error("Bluetooth metadata version {major}.{minor} is unsupported: expected major version 1")]
    UnsupportedMetadataVersion {
        /// Major version found in the metadata.
        major: u8,
        /// Minor version found in the metadata.
        minor: u8,
    },
    /// Advertising data that is not a sequence of well-formed AD structures.
    #[error("malformed advertising data: {0}")]
    MalformedAdvertisingData(&'static str),
    /// Advertising data without exposure-notification service data.
    #[error("advertising data carries no service data for UUID 0xFD6F")]
    NoExposureNotificationServiceData,
    /// A calibration confidence outside 0..=3.
    #[error("calibration confidence {0} is invalid: expected 0..=3")]
    InvalidCalibrationConfidence(u8),
    /// A report type number GAEN does not define.
    #[error("report type {0} is invalid: expected 0..=5")]
    InvalidReportType(i32),
    /// Days since onset outside −14..=14.
    #[error("days since onset {0} is invalid: expected -14..=14")]
    InvalidDaysSinceOnset(i32),
    /// A risk configuration that is not valid JSON of the expected shape, or out of range.
    #[error("invalid risk configuration: {0}")]
    InvalidRiskConfig(String),
    /// The device store failed (the database could not be opened, read or written).
    #[error("device store: {0}")]
    Storage(String),
    /// A rolling start interval number that GAEN files cannot carry (they use a signed 32-bit field).
    #[error("rolling start interval number {0} is invalid: expected 0..=2147483647")]
    InvalidRollingStart(i64),
    /// Bytes that are neither a GAEN export zip nor a bare `export.bin`.
    #[error(
        "not a GAEN key export: expected a zip archive or an export.bin starting with \"EK Export v1    \""
    )]
    ExportNotRecognized,
    /// An export file, or one of its zip entries, larger than the configured limit.
    #[error("{what} is larger than the limit of {limit} bytes")]
    ExportTooLarge {
        /// The file or entry that was too large.
        what: &'static str,
        /// The limit in bytes (see `ExportLimits`).
        limit: u64,
    },
    /// An export with more keys than the configured limit.
    #[error("export holds more than the limit of {limit} keys")]
    ExportTooManyKeys {
        /// The limit (see `ExportLimits`).
        limit: u64,
    },
    /// A zip archive the zip reader or writer rejected.
    #[error("malformed export zip archive: {0}")]
    ExportZip(String),
    /// A zip entry other than `export.bin` and `export.sig`.
    #[error("zip entry {0:?} is not allowed: expected only \"export.bin\" and \"export.sig\"")]
    ExportUnexpectedEntry(String),
    /// A zip archive naming the same entry twice.
    #[error("zip entry {0:?} appears more than once: expected it once")]
    ExportDuplicateEntry(&'static str),
    /// A zip archive without its `export.bin`.
    #[error("export zip has no {0:?} entry")]
    ExportMissingEntry(&'static str),
    /// An `export.bin` without the 16-byte header.
    #[error("export.bin does not start with the 16-byte header \"EK Export v1    \"")]
    ExportBadHeader,
    /// Protobuf that does not decode.
    #[error("{what} is not a valid protobuf message: {reason}")]
    ExportMalformed {
        /// Which message failed.
        what: &'static str,
        /// The decoder's explanation.
        reason: String,
    },
    /// An export without signatures, or a writer asked to sign with no key.
    #[error("export is unsigned: expected at least one signature")]
    ExportUnsigned,
    /// An export whose signatures all come from keys we do not trust.
    #[error(
        "export is signed by key id {key_id:?} version {key_version:?}, which is not among the trusted keys"
    )]
    ExportUnknownSigningKey {
        /// `verification_key_id` of the first signature.
        key_id: String,
        /// `verification_key_version` of the first signature.
        key_version: String,
    },
    /// A signature by a trusted key that does not match the file.
    #[error(
        "export signature by key id {key_id:?} version {key_version:?} does not verify: the file was altered or signed by another key"
    )]
    ExportBadSignature {
        /// `verification_key_id` of the signature.
        key_id: String,
        /// `verification_key_version` of the signature.
        key_version: String,
    },
    /// A signature algorithm other than ECDSA P-256 with SHA-256.
    #[error(
        "signature algorithm {0:?} is unsupported: expected ECDSA P-256 SHA-256 (\"1.2.840.10045.4.3.2\")"
    )]
    ExportUnsupportedSignatureAlgorithm(String),
    /// More signatures than GAEN clients check.
    #[error("export has {count} signatures: expected at most {limit}")]
    ExportTooManySignatures {
        /// Signatures requested.
        count: usize,
        /// GAEN's limit.
        limit: usize,
    },
    /// One key record of an export breaks GAEN's rules; the other keys are still readable.
    #[error("key {index} of the export is invalid: {source}")]
    InvalidExportKey {
        /// Position of the key among the file's keys (or revised keys), from 0.
        index: usize,
        /// What was wrong with it.
        source: Box<Error>,
    },
    /// A signature that does not match the message and public key.
    #[error("signature does not verify: expected a DER ECDSA P-256 SHA-256 signature by this key")]
    BadSignature,
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
    /// A venue QR code, check-in or protected report that was refused.
    #[error("venue check-in: {0}")]
    Checkin(#[from] crate::checkin::CheckinError),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
