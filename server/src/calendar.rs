//! Civil dates in UTC: `YYYY-MM-DD` for forms and JSON, RFC 3339 for expiry times.
//! (Howard Hinnant's days-from-civil algorithms; no time-zone database needed.)

use kith_core::{INTERVALS_PER_DAY, IntervalNumber};

use crate::clock::UnixSeconds;

const SECONDS_PER_DAY: u64 = 86_400;

/// A UTC calendar day: days since 1970-01-01.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
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

    /// The day holding `time`.
    pub fn of(time: UnixSeconds) -> Self {
        Self((time.get() / SECONDS_PER_DAY) as u32)
    }

    /// The day holding `interval`.
    pub fn of_interval(interval: IntervalNumber) -> Self {
        Self(interval.get() / INTERVALS_PER_DAY)
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

impl std::fmt::Display for Day {
    /// `YYYY-MM-DD`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
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
    use proptest::prelude::*;

    #[test]
    fn known_dates() {
        assert_eq!(Day::parse("1970-01-01"), Some(Day(0)));
        assert_eq!(Day::parse("2020-04-01"), Some(Day(18_353)));
        assert_eq!(Day::parse("2024-02-29"), Some(Day(19_782)));
        assert_eq!(
            format_rfc3339(UnixSeconds::new(1_700_000_000)),
            "2023-11-14T22:13:20Z"
        );
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
