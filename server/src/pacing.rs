//! When publish answers are released, so that their timing does not tell chaff from
//! real uploads.
//!
//! A real upload writes more rows than chaff, so its batch takes a little longer. Every
//! answer of a batch is released together, no sooner than a floor after the batch
//! began, and the floor is kept above the slowest batch of the last seconds (twice
//! it): on a loaded machine, where a batch stretches from a fraction of a millisecond
//! to tens, the floor stretches with it, and what a batch's own work took stays
//! hidden. Only a batch slower than twice the slowest recent one shows; under a load
//! that changes slowly, that is rare and equally rare for either kind.

use std::time::{Duration, Instant};

/// The floor when batches are fast.
pub const MIN_FLOOR: Duration = Duration::from_millis(10);
/// The floor never exceeds this, however slow batches get.
pub const MAX_FLOOR: Duration = Duration::from_secs(1);
/// The floor is this many times the slowest recent batch.
const HEADROOM: u32 = 2;
/// How fast a slow batch is forgotten: its weight halves every this long.
const HALF_LIFE: Duration = Duration::from_secs(10);

/// The answer floor, adapting to how long recent batches took.
#[derive(Debug)]
pub struct AnswerFloor {
    /// The slowest recent batch, decayed to `at`.
    slowest: Duration,
    at: Instant,
}

impl AnswerFloor {
    /// A floor that has seen no batch yet, at `now`.
    pub fn new(now: Instant) -> Self {
        Self {
            slowest: Duration::ZERO,
            at: now,
        }
    }

    /// When the answers of a batch beginning at `start` may be released.
    pub fn release_at(&mut self, start: Instant) -> Instant {
        start + self.floor(start)
    }

    /// The floor at `now`: [`HEADROOM`] × the slowest recent batch, within
    /// [`MIN_FLOOR`]..=[`MAX_FLOOR`].
    pub fn floor(&mut self, now: Instant) -> Duration {
        self.decay(now);
        (self.slowest * HEADROOM).clamp(MIN_FLOOR, MAX_FLOOR)
    }

    /// Notes that a batch took `took`, ending at `now`.
    pub fn observe(&mut self, took: Duration, now: Instant) {
        self.decay(now);
        self.slowest = self.slowest.max(took);
    }

    fn decay(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at);
        if elapsed.is_zero() {
            return;
        }
        let halvings = elapsed.as_secs_f64() / HALF_LIFE.as_secs_f64();
        self.slowest = self.slowest.mul_f64(0.5_f64.powf(halvings));
        self.at = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_covers_slow_batches_and_then_relaxes() {
        let t0 = Instant::now();
        let mut floor = AnswerFloor::new(t0);
        assert_eq!(floor.floor(t0), MIN_FLOOR);
        floor.observe(Duration::from_millis(2), t0);
        assert_eq!(floor.floor(t0), MIN_FLOOR, "fast batches keep the minimum");
        floor.observe(Duration::from_millis(40), t0);
        assert_eq!(floor.floor(t0), Duration::from_millis(80));
        let released = floor.release_at(t0 + Duration::from_secs(1)) - t0;
        // 80 ms decayed for a tenth of a half-life: 74.6 ms.
        assert!(
            released.abs_diff(Duration::from_millis(1075)) < Duration::from_millis(1),
            "{released:?}"
        );
        let later = t0 + HALF_LIFE;
        let relaxed = floor.floor(later);
        assert!(
            relaxed.abs_diff(Duration::from_millis(40)) < Duration::from_millis(1),
            "{relaxed:?}"
        );
        assert_eq!(floor.floor(t0 + 10 * HALF_LIFE), MIN_FLOOR);
        floor.observe(Duration::from_secs(30), later);
        assert_eq!(floor.floor(later), MAX_FLOOR);
    }
}
