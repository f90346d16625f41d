//! Publication windows: contiguous, non-overlapping, aligned spans of time, each cut only
//! once no key can still land in it.

use crate::clock::UnixSeconds;

/// Seconds in a day; an export period divides it, so windows align to UTC days.
pub const DAY: u64 = 24 * 3600;

/// The span `[start, end)` of one export batch: the keys whose release time lies in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Window {
    /// First second of the window.
    pub start: UnixSeconds,
    /// First second after it.
    pub end: UnixSeconds,
}

/// How windows are cut: their length, and how old a window's end must be before it is
/// cut, so that every key that will ever fall into it has been committed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Windowing {
    period: u64,
    min_age: u64,
}

/// Why a [`Windowing`] cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the export period must divide a day ({DAY} s) evenly; {0} s does not")]
pub struct PeriodError(pub u64);

impl Windowing {
    /// Windows of `period` seconds (a divisor of a day), cut `min_age` seconds after they end.
    pub fn new(period: u64, min_age: u64) -> Result<Self, PeriodError> {
        if period == 0 || DAY % period != 0 {
            return Err(PeriodError(period));
        }
        Ok(Self { period, min_age })
    }

    /// The window length in seconds.
    pub fn period(&self) -> u64 {
        self.period
    }

    /// The window holding `time`.
    pub fn containing(&self, time: UnixSeconds) -> Window {
        let start = time.get() - time.get() % self.period;
        Window {
            start: UnixSeconds::new(start),
            end: UnixSeconds::new(start + self.period),
        }
    }

    /// The windows from `first` (a window start) on that are old enough at `now`, in order.
    pub fn ready(&self, first: UnixSeconds, now: UnixSeconds) -> impl Iterator<Item = Window> {
        let period = self.period;
        let last_end = now.get().saturating_sub(self.min_age);
        let first = self.containing(first).start.get();
        (first..)
            .step_by(period as usize)
            .map(move |start| Window {
                start: UnixSeconds::new(start),
                end: UnixSeconds::new(start + period),
            })
            .take_while(move |window| window.end.get() <= last_end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u64 = 3600;

    #[test]
    fn periods_must_divide_a_day() {
        assert!(Windowing::new(HOUR, 0).is_ok());
        assert!(Windowing::new(1, 0).is_ok());
        assert_eq!(Windowing::new(7 * HOUR, 0), Err(PeriodError(7 * HOUR)));
        assert_eq!(Windowing::new(0, 0), Err(PeriodError(0)));
    }

    #[test]
    fn windows_are_contiguous_aligned_and_old_enough() {
        let w = Windowing::new(HOUR, 2 * HOUR).unwrap();
        let day = 20_000 * DAY;
        let now = UnixSeconds::new(day + 5 * HOUR + 30 * 60);
        let windows: Vec<Window> = w.ready(UnixSeconds::new(day + 10), now).collect();
        // Ends 1:00, 2:00, 3:00 are at least two hours before 5:30; 4:00 is not.
        assert_eq!(windows.len(), 3);
        assert_eq!(windows[0].start.get(), day);
        for pair in windows.windows(2) {
            assert_eq!(pair[0].end, pair[1].start);
        }
        assert!(windows.iter().all(|w| w.end.get() - w.start.get() == HOUR));
        assert_eq!(w.ready(now, now).count(), 0);
    }
}
