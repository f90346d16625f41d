//! Points in time as the protocol counts them outside interval numbers: Unix seconds
//! (when a beacon was heard, when a window starts, "now") and UTC days (what daily
//! summaries and key-server batches are about). Newtypes, so a day is never passed
//! where seconds are expected.
//!
//! Civil dates use Howard Hinnant's days-from-civil algorithms: no time-zone database.

use std::fmt;
use std::ops::{Add, Sub};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::interval::{INTERVALS_PER_DAY, IntervalNumber};

/// Seconds in one UTC day (no leap seconds, as Unix time counts).
pub const SECONDS_PER_DAY: u64 = 86_400;

/// A point in time: whole seconds since 1970-01-01 00:00 UTC.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct UnixSeconds(u64);

impl UnixSeconds {
    /// The time `seconds` after the epoch.
    pub const fn new(seconds: u64) -> Self {
        Self(seconds)
    }

    /// `time` in whole seconds; times before the epoch count as the epoch.
    /// (Core itself never reads the clock: this is for callers that do.)
    pub fn from_system_time(time: SystemTime) -> Self {
        Self(time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()))
    }

    /// Seconds since the epoch.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// `seconds` later (saturating: time never wraps).
    pub const fn plus(self, seconds: u64) -> Self {
        Self(self.0.saturating_add(seconds))
    }

    /// `seconds` earlier, stopping at the epoch.
    pub const fn minus(self, seconds: u64) -> Self {
        Self(self.0.saturating_sub(seconds))
    }

    /// Seconds from `earlier` to `self`, zero if `earlier` is later.
    pub const fn since(self, earlier: Self) -> u64 {
        self.0.saturating_sub(earlier.0)
    }

    /// The GAEN interval holding this time (the last interval past year 83 000).
    pub fn interval(self) -> IntervalNumber {
        IntervalNumber::from_unix_seconds(self.0).unwrap_or(IntervalNumber::new(u32::MAX))
    }

    /// The start of `interval`.
    pub const fn of_interval(interval: IntervalNumber) -> Self {
        Self(interval.start_unix_seconds())
    }

    /// The UTC day holding this time.
    pub const fn day(self) -> Day {
        Day::of(self)
    }

    /// The same moment as a [`SystemTime`].
    pub fn to_system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.0)
    }
}

/// `time + seconds`, saturating like [`UnixSeconds::plus`].
impl Add<u64> for UnixSeconds {
    type Output = Self;

    fn add(self, seconds: u64) -> Self {
        self.plus(seconds)
    }
}

/// `time - seconds`, stopping at the epoch like [`UnixSeconds::minus`].
impl Sub<u64> for UnixSeconds {
    type Output = Self;

    fn sub(self, seconds: u64) -> Self {
        self.minus(seconds)
    }
}

/// A UTC calendar day: days since 1970-01-01. Displays as `YYYY-MM-DD`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Day(u32);

impl Day {
    /// Day number `days` since the epoch.
    pub const fn new(days: u32) -> Self {
        Self(days)
    }

    /// Days since the epoch.
    pub const fn get(self) -> u32 {
        self.0
    }

    /// The day holding `time` (the last representable day past year 11 million).
    pub const fn of(time: UnixSeconds) -> Self {
        let days = time.0 / SECONDS_PER_DAY;
        Self(if days > u32::MAX as u64 {
            u32::MAX
        } else {
            days as u32
        })
    }

    /// The day holding `interval`.
    pub const fn of_interval(interval: IntervalNumber) -> Self {
        Self(interval.get() / INTERVALS_PER_DAY)
    }

    /// Midnight UTC at the start of the day.
    pub const fn start(self) -> UnixSeconds {
        UnixSeconds(self.0 as u64 * SECONDS_PER_DAY)
    }

    /// `days` earlier, stopping at the epoch.
    pub const fn minus(self, days: u32) -> Self {
        Self(self.0.saturating_sub(days))
    }

    /// `days` later.
    pub const fn plus(self, days: u32) -> Self {
        Self(self.0.saturating_add(days))
    }

    /// Signed days from `other` to `self`.
    pub fn days_after(self, other: Self) -> i64 {
        i64::from(self.0) - i64::from(other.0)
    }

    /// A `YYYY-MM-DD` date from 1970 on; `None` if malformed or impossible.
    pub fn parse(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
            return None;
        }
        let number = |range: std::ops::Range<usize>| -> Option<u32> {
            let part = text.get(range)?;
            part.bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| part.parse().ok())?
        };
        let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
        if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
            return None;
        }
        u32::try_from(days_from_civil(year, month, day))
            .ok()
            .map(Self)
    }
}

impl fmt::Display for Day {
    /// `YYYY-MM-DD`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = civil_from_days(i64::from(self.0));
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn days_from_civil(year: u32, month: u32, day: u32) -> i64 {
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_dates() {
        assert_eq!(Day::parse("1970-01-01"), Some(Day(0)));
        assert_eq!(Day::parse("2020-04-01"), Some(Day(18_353)));
        assert_eq!(Day::parse("2024-02-29"), Some(Day(19_782)));
        for bad in [
            "2023-02-29",
            "2023-13-01",
            "2023-00-10",
            "2023-1-01",
            "+023-01-01",
            "1969-12-31",
            "",
        ] {
            assert_eq!(Day::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn seconds_days_and_intervals_agree() {
        let t = UnixSeconds::new(1_700_000_000);
        assert_eq!(t.day(), Day::new(19_675));
        assert_eq!(t.day().start(), UnixSeconds::new(19_675 * 86_400));
        assert_eq!(Day::of_interval(t.interval()), t.day());
        assert_eq!(UnixSeconds::of_interval(t.interval()).get(), 1_699_999_800);
        assert_eq!(Day::of(UnixSeconds::new(u64::MAX)), Day::new(u32::MAX));
        assert_eq!(t - 2_000_000_000, UnixSeconds::new(0));
        assert_eq!((t + 5).since(t), 5);
        assert_eq!(serde_json::to_string(&t).unwrap(), "1700000000");
    }

    proptest! {
        #[test]
        fn format_and_parse_round_trip(day in 0u32..2_932_896) {
            prop_assert_eq!(Day::parse(&Day(day).to_string()), Some(Day(day)));
        }

        #[test]
        fn parse_never_panics(text in ".{0,12}") {
            let _ = Day::parse(&text);
        }
    }
}
