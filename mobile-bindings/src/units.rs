//! Plain numbers over the FFI, checked: the one place the bindings convert them.
//!
//! Apps pass times, ids and dBm as the widest integers their language has (`i64`,
//! `i32`), so that a value out of range reaches Rust and gets a [`KithError`] that names
//! the parameter, instead of a bare `ValueError` / overflow from the generated code.

use kith_core::{Error as CoreError, IntervalError, IntervalNumber, UnixSeconds};

use crate::error::{InputError, KithError, Result};

/// The time `parameter` (Unix seconds) if it lies within GAEN's interval numbers.
pub(crate) fn time_at(parameter: &'static str, unix_seconds: i64) -> Result<UnixSeconds> {
    let invalid = |source: CoreError| {
        KithError::InvalidTime(InputError {
            parameter: Some(parameter.to_owned()),
            source: Box::new(source),
        })
    };
    let out_of_range = || {
        invalid(
            IntervalError::TimeOutOfRange {
                unix_seconds: unix_seconds.into(),
            }
            .into(),
        )
    };
    let seconds = u64::try_from(unix_seconds).map_err(|_| out_of_range())?;
    IntervalNumber::from_unix_seconds(seconds).map_err(invalid)?;
    Ok(UnixSeconds::new(seconds))
}

/// A time as apps hold it. Every time the engine hands out lies within GAEN's
/// interval numbers (below 2^42 s), so it fits.
pub(crate) fn seconds(time: UnixSeconds) -> i64 {
    i64::try_from(time.get()).unwrap_or(i64::MAX)
}

/// A signal strength or power `parameter` in dBm, −128..=127.
pub(crate) fn dbm(parameter: &'static str, value: i32) -> Result<i8> {
    KithError::in_range(parameter, value.into(), "-128..=127 dBm")
}

/// An id (a scan's, a check-in's) `parameter`, 0 or more.
pub(crate) fn id(parameter: &'static str, value: i64) -> Result<u64> {
    KithError::in_range(parameter, value, "0..=2^63-1")
}
