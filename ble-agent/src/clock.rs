//! Time, injected: the agent asks a [`Clock`], so tests drive rotation and the scan
//! duty cycle without sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kith_core::UnixSeconds;

/// Unix time in milliseconds.
pub type UnixMillis = u64;

/// Where the agent reads the time and how it waits.
pub trait Clock: Send + Sync {
    /// Now, in Unix milliseconds.
    fn now_millis(&self) -> UnixMillis;

    /// Waits until `deadline` (Unix milliseconds).
    fn sleep_until(&self, deadline: UnixMillis) -> impl Future<Output = ()> + Send;

    /// Now, in whole seconds.
    fn now(&self) -> UnixSeconds {
        seconds(self.now_millis())
    }
}

/// The whole second holding `millis`.
pub fn seconds(millis: UnixMillis) -> UnixSeconds {
    UnixSeconds::new(millis / 1000)
}

/// The system clock, optionally shifted (for demos that replay another day) and
/// accelerated (for simulations that play hours in minutes).
#[derive(Clone, Copy, Debug)]
pub struct SystemClock {
    offset_seconds: i64,
    scale: u32,
    origin_millis: UnixMillis,
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::shifted(0)
    }
}

impl SystemClock {
    /// The system clock shifted by `offset_seconds`.
    pub fn shifted(offset_seconds: i64) -> Self {
        Self {
            offset_seconds,
            scale: 1,
            origin_millis: 0,
        }
    }

    /// This clock, running `scale` times as fast as the system's from the system time
    /// `origin` on (and as much slower before it): at `origin` it reads what it read
    /// before. Processes that share an `origin`, an offset and a scale agree on the time.
    pub fn accelerated(self, scale: u32, origin: UnixSeconds) -> Self {
        Self {
            scale: scale.max(1),
            origin_millis: origin.get().saturating_mul(1000),
            ..self
        }
    }

    /// How many times as fast as the system's it runs.
    pub fn scale(&self) -> u32 {
        self.scale
    }

    /// The real time `millis` of this clock take.
    pub fn real_duration(&self, millis: u64) -> Duration {
        Duration::from_micros(millis.saturating_mul(1000) / u64::from(self.scale))
    }

    /// What it reads when the system clock reads `real` (Unix milliseconds).
    fn at(&self, real: UnixMillis) -> UnixMillis {
        let elapsed = i128::from(real) - i128::from(self.origin_millis);
        let now = i128::from(self.origin_millis)
            + elapsed * i128::from(self.scale)
            + i128::from(self.offset_seconds) * 1000;
        now.clamp(0, i128::from(u64::MAX)) as UnixMillis
    }
}

impl Clock for SystemClock {
    fn now_millis(&self) -> UnixMillis {
        let real = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.at(real)
    }

    async fn sleep_until(&self, deadline: UnixMillis) {
        let wait = deadline.saturating_sub(self.now_millis());
        tokio::time::sleep(self.real_duration(wait)).await;
    }
}

/// A clock that moves only when told to: `sleep_until` jumps to the deadline.
#[derive(Clone, Debug, Default)]
pub struct ManualClock {
    now: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock standing at `millis`.
    pub fn at(millis: UnixMillis) -> Self {
        Self {
            now: Arc::new(AtomicU64::new(millis)),
        }
    }

    /// Moves the clock forward by `millis`.
    pub fn advance(&self, millis: u64) {
        self.now.fetch_add(millis, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_millis(&self) -> UnixMillis {
        self.now.load(Ordering::SeqCst)
    }

    async fn sleep_until(&self, deadline: UnixMillis) {
        self.now.fetch_max(deadline, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGIN: u64 = 1_764_590_000;

    #[test]
    fn an_accelerated_clock_reads_the_shifted_time_at_its_origin_and_runs_faster_after() {
        let clock = SystemClock::shifted(-86_400).accelerated(60, UnixSeconds::new(ORIGIN));
        let origin = ORIGIN * 1000;
        assert_eq!(clock.at(origin), origin - 86_400_000);
        // A real second later, a minute has passed; a real second before, a minute less.
        assert_eq!(clock.at(origin + 1000), origin - 86_400_000 + 60_000);
        assert_eq!(clock.at(origin - 1000), origin - 86_400_000 - 60_000);
        assert_eq!(clock.real_duration(60_000), Duration::from_secs(1));
        assert_eq!(clock.real_duration(30), Duration::from_micros(500));
    }

    #[test]
    fn an_unaccelerated_clock_is_the_shifted_system_clock() {
        let clock = SystemClock::shifted(3_600);
        assert_eq!(clock.scale(), 1);
        assert_eq!(clock.at(5_000), 3_605_000);
        assert_eq!(clock.real_duration(1_500), Duration::from_millis(1_500));
        let real = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let now = SystemClock::default().now().get();
        assert!(now.abs_diff(real) <= 1, "{now} vs {real}");
    }
}
