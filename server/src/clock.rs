//! The server's notion of "now": a [`Clock`] in the state, the system clock in
//! production and a [`ManualClock`] in tests, so time is a value handlers are given.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use kith_core::IntervalNumber;

/// A point in time: core's, so the server and the devices count time alike.
pub use kith_core::UnixSeconds;

/// Where "now" comes from; cheap to clone, shared by handlers and the writer thread.
#[derive(Clone, Default)]
pub struct Clock(Option<Arc<AtomicU64>>);

impl Clock {
    /// The operating system's wall clock.
    pub fn system() -> Self {
        Self(None)
    }

    /// Now.
    pub fn now(&self) -> UnixSeconds {
        match &self.0 {
            None => UnixSeconds::from_system_time(SystemTime::now()),
            Some(manual) => UnixSeconds::new(manual.load(Ordering::Relaxed)),
        }
    }

    /// The current GAEN interval.
    pub fn now_interval(&self) -> IntervalNumber {
        self.now().interval()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            None => f.write_str("Clock::system"),
            Some(_) => write!(f, "Clock::manual({})", self.now().get()),
        }
    }
}

/// A clock that stands still until a test moves it.
#[derive(Clone, Debug)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock showing `now`.
    pub fn new(now: UnixSeconds) -> Self {
        Self(Arc::new(AtomicU64::new(now.get())))
    }

    /// A clock showing the system time now.
    pub fn starting_now() -> Self {
        Self::new(Clock::system().now())
    }

    /// The [`Clock`] to hand to the server; it follows this one.
    pub fn clock(&self) -> Clock {
        Clock(Some(self.0.clone()))
    }

    /// Moves the clock forward by `seconds`.
    pub fn advance(&self, seconds: u64) {
        self.0.fetch_add(seconds, Ordering::Relaxed);
    }

    /// Sets the time.
    pub fn set(&self, now: UnixSeconds) {
        self.0.store(now.get(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let manual = ManualClock::new(UnixSeconds::new(1_700_000_000));
        let clock = manual.clock();
        assert_eq!(clock.now().get(), 1_700_000_000);
        manual.advance(24 * 3600);
        assert_eq!(clock.now().get(), 1_700_086_400);
        assert_eq!(clock.now_interval().get(), 2_833_333 + 144);
        manual.set(UnixSeconds::new(5));
        assert_eq!(clock.now(), UnixSeconds::new(5));
    }

    #[test]
    fn system_clock_is_close_to_the_system_time() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(Clock::system().now().since(UnixSeconds::new(now)) <= 5);
        assert_eq!(UnixSeconds::new(5).since(UnixSeconds::new(9)), 0);
    }
}
