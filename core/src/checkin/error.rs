//! What can go wrong with venue check-ins.

use crate::time::UnixSeconds;

/// A venue QR code, check-in or protected report that was refused.
///
/// Messages say what was wrong and what was expected; they never contain location
/// ids, seeds or other secret bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckinError {
    /// Text that is not a venue QR code: no URL fragment carrying a payload.
    #[error(
        "not a venue QR code: expected a URL such as https://e.coronawarn.app?v=1#<payload> or <url>#.../CWA1/<payload>"
    )]
    NotAVenueCode,
    /// The fragment of a venue QR code that is not base64 (standard or URL-safe).
    #[error("venue QR code payload is not base64 or base64url")]
    PayloadNotBase64,
    /// Protobuf that does not decode.
    #[error("{what} is not a valid protobuf message: {reason}")]
    Malformed {
        /// Which message failed.
        what: &'static str,
        /// The decoder's explanation.
        reason: String,
    },
    /// A QR payload version other than 1.
    #[error("venue QR code version {0} is unsupported: expected 1")]
    UnsupportedVersion(u32),
    /// A QR payload without its location data or CrowdNotifier data.
    #[error("venue QR code has no {0}")]
    MissingField(&'static str),
    /// A description or address that is empty, longer than 100 characters or not one line.
    #[error("venue {field} is invalid: expected 1..=100 characters on one line, got {chars}")]
    InvalidText {
        /// `description` or `address`.
        field: &'static str,
        /// Its length in characters.
        chars: usize,
    },
    /// An event that ends before it starts.
    #[error("venue event ends at {end} before it starts at {start} (Unix seconds)")]
    InvalidEventTimes {
        /// Start, Unix seconds.
        start: u64,
        /// End, Unix seconds.
        end: u64,
    },
    /// A byte field of the wrong length.
    #[error("{what} must be {expected} bytes, got {actual}")]
    InvalidLength {
        /// What was being read.
        what: &'static str,
        /// The required length.
        expected: usize,
        /// The length that was given.
        actual: usize,
    },
    /// A visit that ends before it begins, or lasts longer than a day.
    #[error(
        "check-in from {} to {} (Unix seconds) is invalid: expected departure after arrival, at most 24 hours later",
        .arrival.get(), .departure.get()
    )]
    InvalidStay {
        /// Arrival.
        arrival: UnixSeconds,
        /// Departure.
        departure: UnixSeconds,
    },
    /// A transmission risk level outside 1..=8.
    #[error("transmission risk level {0} is invalid: expected 1..=8")]
    InvalidTransmissionRiskLevel(u32),
    /// A protected report whose MAC does not verify with this location id: altered,
    /// or for another place whose id hashes alike.
    #[error("protected check-in report does not verify: its MAC does not match this location")]
    BadMac,
    /// A protected report whose MAC verified but whose ciphertext does not decrypt to
    /// a check-in record (bad padding, wrong length).
    #[error("protected check-in report does not decrypt to a check-in record")]
    Undecryptable,
    /// A decrypted record with an empty or out-of-range stay.
    #[error("decrypted check-in record is invalid: start interval {start}, period {period}")]
    InvalidRecord {
        /// Start, 10-minute interval number.
        start: u32,
        /// Length in 10-minute intervals.
        period: u32,
    },
    /// A check-in id the store does not hold.
    #[error("no check-in with id {0}")]
    UnknownCheckIn(u64),
}
