//! Civil dates in UTC: `YYYY-MM-DD` for forms and JSON (core's [`Day`]), RFC 3339
//! for expiry times.

use kith_core::SECONDS_PER_DAY;

use crate::clock::UnixSeconds;

/// A UTC calendar day: core's, shown and parsed as `YYYY-MM-DD`.
pub use kith_core::Day;

/// RFC 3339 UTC time, to the second.
pub fn format_rfc3339(time: UnixSeconds) -> String {
    let secs = time.get() % SECONDS_PER_DAY;
    format!(
        "{}T{:02}:{:02}:{:02}Z",
        Day::of(time),
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339() {
        assert_eq!(
            format_rfc3339(UnixSeconds::new(1_700_000_000)),
            "2023-11-14T22:13:20Z"
        );
    }
}
