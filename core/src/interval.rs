//! Time in GAEN's unit: 10-minute interval numbers, and the day-long validity of a key.

use std::ops::Range;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Error, IntervalError, KeyError, Result};

/// Length of one interval in seconds (10 minutes).
pub const INTERVAL_SECONDS: u64 = 600;

/// Intervals in one UTC day, the full rolling period of a key.
pub const INTERVALS_PER_DAY: u32 = 144;

/// `ENIntervalNumber`: the number of 10-minute intervals since the Unix epoch.
///
/// Arithmetic is checked: GAEN carries interval numbers as `u32`, and wrapping
/// around would silently match keys from a different century.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IntervalNumber(u32);

impl IntervalNumber {
    /// The interval with this number.
    pub const fn new(number: u32) -> Self {
        Self(number)
    }

    /// The raw interval number.
    pub const fn get(self) -> u32 {
        self.0
    }

    /// The interval containing `unix_seconds`.
    pub fn from_unix_seconds(unix_seconds: u64) -> Result<Self> {
        u32::try_from(unix_seconds / INTERVAL_SECONDS)
            .map(Self)
            .map_err(|_| {
                Error::Interval(IntervalError::TimeOutOfRange {
                    unix_seconds: i128::from(unix_seconds),
                })
            })
    }

    /// The interval containing `time`.
    pub fn from_system_time(time: SystemTime) -> Result<Self> {
        match time.duration_since(UNIX_EPOCH) {
            Ok(since) => Self::from_unix_seconds(since.as_secs()),
            Err(before) => Err(Error::Interval(IntervalError::TimeOutOfRange {
                unix_seconds: -i128::from(before.duration().as_secs()),
            })),
        }
    }

    /// Unix seconds at which this interval starts.
    pub const fn start_unix_seconds(self) -> u64 {
        self.0 as u64 * INTERVAL_SECONDS
    }

    /// The moment this interval starts.
    pub fn start_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.start_unix_seconds())
    }

    /// The first interval of the UTC day containing this interval, where keys start.
    pub const fn day_start(self) -> Self {
        Self(self.0 - self.0 % INTERVALS_PER_DAY)
    }

    /// `self + n`, or `None` past `u32::MAX`.
    pub fn checked_add(self, n: u32) -> Option<Self> {
        self.0.checked_add(n).map(Self)
    }

    /// `self - n`, or `None` before interval 0.
    pub fn checked_sub(self, n: u32) -> Option<Self> {
        self.0.checked_sub(n).map(Self)
    }

    /// `self + n`, stopping at the last representable interval.
    pub fn saturating_add(self, n: u32) -> Self {
        Self(self.0.saturating_add(n))
    }

    /// `self - n`, stopping at interval 0.
    pub fn saturating_sub(self, n: u32) -> Self {
        Self(self.0.saturating_sub(n))
    }

    /// The interval number as GAEN puts it in padded data: little-endian.
    pub const fn to_le_bytes(self) -> [u8; 4] {
        self.0.to_le_bytes()
    }
}

impl From<IntervalNumber> for u32 {
    fn from(interval: IntervalNumber) -> u32 {
        interval.0
    }
}

/// How many intervals a key is valid for: 1..=144.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RollingPeriod(u8);

impl RollingPeriod {
    /// A whole day, the period of every key but a truncated one.
    pub const FULL_DAY: Self = Self(INTERVALS_PER_DAY as u8);

    /// A period of `intervals`, which must be in 1..=144.
    pub fn new(intervals: u32) -> Result<Self, KeyError> {
        match u8::try_from(intervals) {
            Ok(n @ 1..=144) => Ok(Self(n)),
            _ => Err(KeyError::RollingPeriod(intervals)),
        }
    }

    /// Number of intervals.
    pub const fn get(self) -> u32 {
        self.0 as u32
    }
}

impl Default for RollingPeriod {
    fn default() -> Self {
        Self::FULL_DAY
    }
}

/// The intervals during which a key broadcasts: `start .. start + period`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeyValidity {
    start: IntervalNumber,
    period: RollingPeriod,
}

impl KeyValidity {
    /// Validity from `start` for `period` intervals; fails if it would end past `u32::MAX`.
    pub fn new(start: IntervalNumber, period: RollingPeriod) -> Result<Self> {
        start
            .checked_add(period.get())
            .ok_or(Error::Interval(IntervalError::Overflow))?;
        Ok(Self { start, period })
    }

    /// The full UTC day containing `interval`: what a freshly generated key covers.
    pub fn day_of(interval: IntervalNumber) -> Self {
        let start = interval.day_start();
        // Only the last day before u32::MAX (year 83 000) has less than a full day of
        // room: u32::MAX % 144 = 111 intervals, never zero.
        let room = u32::MAX - start.get();
        let period = RollingPeriod(room.min(INTERVALS_PER_DAY) as u8);
        Self { start, period }
    }

    /// First interval (`rolling_start_interval_number`).
    pub const fn start(self) -> IntervalNumber {
        self.start
    }

    /// Number of intervals (`rolling_period`).
    pub const fn period(self) -> RollingPeriod {
        self.period
    }

    /// First interval after the key has expired.
    pub const fn end(self) -> IntervalNumber {
        // Cannot overflow: checked in the constructors.
        IntervalNumber(self.start.0 + self.period.0 as u32)
    }

    /// Whether `interval` lies within the validity.
    pub fn contains(self, interval: IntervalNumber) -> bool {
        self.start <= interval && interval < self.end()
    }

    /// The raw interval numbers covered, for iteration.
    pub fn range(self) -> Range<u32> {
        self.start.get()..self.end().get()
    }

    /// The same key validity cut to end at `end` (at least one interval is kept),
    /// as when a key is released the day it is still in use.
    pub fn truncated_at(self, end: IntervalNumber) -> Self {
        let len = end
            .get()
            .saturating_sub(self.start.get())
            .clamp(1, self.period.get());
        Self {
            start: self.start,
            period: RollingPeriod(len as u8),
        }
    }
}
