//! The server's notion of "now", kept in one place so tests can move it.

use std::time::{SystemTime, UNIX_EPOCH};

use kith_core::IntervalNumber;

/// Wall-clock time shifted by a fixed offset (zero outside tests).
#[derive(Clone, Copy, Debug, Default)]
pub struct Clock {
    offset_seconds: i64,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self::default()
    }

    /// The system clock shifted by `offset_seconds` (negative goes back in time).
    pub fn with_offset(offset_seconds: i64) -> Self {
        Self { offset_seconds }
    }

    /// Seconds since the Unix epoch.
    pub fn now_unix(&self) -> u64 {
        let system = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        system.saturating_add_signed(self.offset_seconds)
    }

    /// The current GAEN interval.
    pub fn now_interval(&self) -> IntervalNumber {
        // u32 intervals last until the year 83 000; saturate rather than fail before then.
        IntervalNumber::from_unix_seconds(self.now_unix()).unwrap_or(IntervalNumber::new(u32::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_moves_now() {
        let day = 24 * 3600;
        let ahead = Clock::with_offset(day).now_unix();
        let now = Clock::system().now_unix();
        assert!(ahead >= now + day as u64 && ahead <= now + day as u64 + 5);
        assert_eq!(
            Clock::with_offset(day).now_interval().get() - Clock::system().now_interval().get(),
            144
        );
    }
}
