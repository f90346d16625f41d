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

/// The system clock, optionally shifted (for demos that replay another day).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock {
    offset_seconds: i64,
}

impl SystemClock {
    /// The system clock shifted by `offset_seconds`.
    pub fn shifted(offset_seconds: i64) -> Self {
        Self { offset_seconds }
    }
}

impl Clock for SystemClock {
    fn now_millis(&self) -> UnixMillis {
        let real = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        real.saturating_add_signed(self.offset_seconds.saturating_mul(1000))
    }

    async fn sleep_until(&self, deadline: UnixMillis) {
        let wait = deadline.saturating_sub(self.now_millis());
        tokio::time::sleep(Duration::from_millis(wait)).await;
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
