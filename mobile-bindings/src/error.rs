//! The one error type apps see.

/// Everything an [`ExposureEngine`](crate::ExposureEngine) call can fail with.
///
/// A flat enum: Kotlin, Swift and Python get one exception class per variant
/// (`KithError.InvalidTime` …) carrying the message, and each variant is a case
/// an app handles differently. Messages never contain secret bytes.
#[derive(Debug, thiserror::Error, uniffi::Error)]
#[uniffi(flat_error)]
pub enum KithError {
    /// A time before 1970 or beyond the range of GAEN interval numbers; the app's clock is wrong.
    #[error("invalid time: {0}")]
    InvalidTime(kith_core::Error),
}

/// `Result` with [`KithError`].
pub type Result<T, E = KithError> = std::result::Result<T, E>;
