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
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
