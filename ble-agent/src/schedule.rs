//! When the agent rotates its identifier, scans, syncs and purges.
//!
//! Pure arithmetic over Unix milliseconds and an injected random generator, so the
//! tests check a day of the schedule in microseconds with a [`ManualClock`](crate::clock::ManualClock).

use std::ops::RangeInclusive;

use kith_core::INTERVAL_SECONDS;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::clock::UnixMillis;

const INTERVAL_MILLIS: u64 = INTERVAL_SECONDS * 1000;

/// How often the RPI and the advertising address change (together).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotationPolicy {
    /// Shortest and longest time between rotations, in seconds (GAEN: 10–20 minutes).
    pub every_seconds: RangeInclusive<u64>,
    /// Also rotate at every 10-minute interval boundary, so that no RPI is on the air
    /// outside its interval.
    pub at_interval_boundaries: bool,
}

impl Default for RotationPolicy {
    fn default() -> Self {
        Self {
            every_seconds: 600..=1200,
            at_interval_boundaries: true,
        }
    }
}

impl RotationPolicy {
    /// When to rotate next after rotating at `rotated_at`: a random time in
    /// `every_seconds`, or the next interval boundary if that comes first.
    pub fn next_rotation(&self, rotated_at: UnixMillis, rng: &mut impl Rng) -> UnixMillis {
        let random = rotated_at + 1000 * rng.gen_range(self.every_seconds.clone());
        if self.at_interval_boundaries {
            random.min(next_interval_boundary(rotated_at))
        } else {
            random
        }
    }
}

/// The first 10-minute interval boundary after `t`.
pub fn next_interval_boundary(t: UnixMillis) -> UnixMillis {
    (t / INTERVAL_MILLIS + 1) * INTERVAL_MILLIS
}

/// The scan duty cycle: scan for `scan_millis` every `period_seconds` (random in range).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DutyCycle {
    /// How long one scan window lasts, in milliseconds (GAEN: 4 s).
    pub scan_millis: u64,
    /// Time from the start of one scan to the start of the next, in seconds
    /// (GAEN: 300 minus a random 0–90, so 210–300).
    pub period_seconds: RangeInclusive<u64>,
}

impl Default for DutyCycle {
    fn default() -> Self {
        Self {
            scan_millis: 4_000,
            period_seconds: 210..=300,
        }
    }
}

impl DutyCycle {
    /// A cycle for demos and tests: 2-second scans every 4–6 seconds.
    pub fn fast() -> Self {
        Self {
            scan_millis: 2_000,
            period_seconds: 4..=6,
        }
    }

    /// When the scan after one that started at `started_at` starts.
    pub fn next_scan(&self, started_at: UnixMillis, rng: &mut impl Rng) -> UnixMillis {
        let period = 1000 * rng.gen_range(self.period_seconds.clone());
        started_at + period.max(self.scan_millis)
    }

    /// Checks the ranges make sense.
    pub fn validate(&self) -> Result<(), String> {
        if self.scan_millis == 0 || self.period_seconds.is_empty() {
            return Err(
                "scan duty cycle: scan_millis must be > 0 and period_seconds a non-empty range"
                    .into(),
            );
        }
        if 1000 * self.period_seconds.start() < self.scan_millis {
            return Err("scan duty cycle: the period must be at least as long as the scan".into());
        }
        Ok(())
    }
}

impl RotationPolicy {
    /// Checks the range makes sense.
    pub fn validate(&self) -> Result<(), String> {
        if *self.every_seconds.start() == 0 || self.every_seconds.is_empty() {
            return Err("rotation: every_seconds must be a non-empty range above 0".into());
        }
        Ok(())
    }
}

/// What is due next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    /// Change RPI and address.
    Rotate,
    /// Open a scan window.
    Scan,
    /// Download new export files and match.
    Sync,
    /// Delete what is older than 14 days.
    Purge,
}

/// The next time each task is due.
#[derive(Clone, Debug)]
pub struct Schedule {
    rotation: RotationPolicy,
    duty: DutyCycle,
    sync_every_millis: Option<u64>,
    due: [(Task, UnixMillis); 4],
}

const PURGE_EVERY_MILLIS: u64 = 86_400_000;

impl Schedule {
    /// Everything due at `start` (rotate and scan at once, sync and purge too).
    pub fn new(
        rotation: RotationPolicy,
        duty: DutyCycle,
        sync_every_seconds: Option<u64>,
        start: UnixMillis,
    ) -> Self {
        let sync_start = if sync_every_seconds.is_some() {
            start
        } else {
            UnixMillis::MAX
        };
        Self {
            rotation,
            duty,
            sync_every_millis: sync_every_seconds.map(|s| s * 1000),
            due: [
                (Task::Rotate, start),
                (Task::Scan, start),
                (Task::Sync, sync_start),
                (Task::Purge, start),
            ],
        }
    }

    /// The earliest due task and its time (ties: rotate, scan, sync, purge).
    ///
    /// A scan that would still be running when the next rotation is due waits for the
    /// rotation, so the radio is never late to change its identifier at a boundary.
    pub fn next(&self) -> (Task, UnixMillis) {
        let (task, at) = self
            .due
            .iter()
            .min_by_key(|(_, at)| *at)
            .copied()
            .unwrap_or((Task::Purge, UnixMillis::MAX));
        let rotation = self.due[0].1;
        if task == Task::Scan && rotation < at.saturating_add(self.duty.scan_millis) {
            return (Task::Rotate, rotation);
        }
        (task, at)
    }

    /// Records that `task` ran, starting at `started_at`, and plans its next run.
    pub fn done(&mut self, task: Task, started_at: UnixMillis, rng: &mut impl Rng) {
        let next = match task {
            Task::Rotate => self.rotation.next_rotation(started_at, rng),
            Task::Scan => self.duty.next_scan(started_at, rng),
            // A little jitter, so a fleet started together does not sync together.
            Task::Sync => self.sync_every_millis.map_or(UnixMillis::MAX, |every| {
                started_at + every + rng.gen_range(0..=every / 10)
            }),
            Task::Purge => started_at + PURGE_EVERY_MILLIS,
        };
        for (t, at) in &mut self.due {
            if *t == task {
                *at = next;
            }
        }
    }

    /// The scan window length, in milliseconds.
    pub fn scan_millis(&self) -> u64 {
        self.duty.scan_millis
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;
    use crate::clock::{Clock, ManualClock};

    const DAY: u64 = 86_400_000;
    const START: UnixMillis = 1_764_590_000_123; // not on an interval boundary

    /// Drives the schedule for `millis` on a manual clock; scans take their window.
    async fn run(schedule: &mut Schedule, millis: u64) -> Vec<(Task, UnixMillis)> {
        let clock = ManualClock::at(START);
        let mut rng = StdRng::seed_from_u64(7);
        let mut log = Vec::new();
        loop {
            let (task, at) = schedule.next();
            if at > START + millis {
                return log;
            }
            clock.sleep_until(at).await;
            let started = clock.now_millis();
            log.push((task, started));
            if task == Task::Scan {
                clock.advance(schedule.scan_millis());
            }
            schedule.done(task, started, &mut rng);
        }
    }

    fn times(log: &[(Task, UnixMillis)], task: Task) -> Vec<UnixMillis> {
        log.iter()
            .filter(|(t, _)| *t == task)
            .map(|(_, at)| *at)
            .collect()
    }

    #[tokio::test]
    async fn rotation_happens_at_every_interval_boundary_and_never_later_than_20_minutes() {
        let mut schedule =
            Schedule::new(RotationPolicy::default(), DutyCycle::default(), None, START);
        let log = run(&mut schedule, DAY).await;
        let rotations = times(&log, Task::Rotate);
        assert_eq!(
            rotations[0], START,
            "the first RPI goes on the air at start"
        );
        // Every boundary of the day is a rotation, and nothing else is.
        let first_boundary = next_interval_boundary(START);
        let boundaries: Vec<_> = (0..)
            .map(|i| first_boundary + i * INTERVAL_MILLIS)
            .take_while(|b| *b <= START + DAY)
            .collect();
        assert_eq!(&rotations[1..], &boundaries[..]);
    }

    #[tokio::test]
    async fn without_boundaries_rotation_is_random_between_10_and_20_minutes() {
        let policy = RotationPolicy {
            at_interval_boundaries: false,
            ..RotationPolicy::default()
        };
        let mut schedule = Schedule::new(policy, DutyCycle::default(), None, START);
        let log = run(&mut schedule, DAY).await;
        let gaps: Vec<u64> = times(&log, Task::Rotate)
            .windows(2)
            .map(|w| w[1] - w[0])
            .collect();
        assert!(
            gaps.len() > 70,
            "a day has 72 to 144 rotations, got {}",
            gaps.len()
        );
        assert!(
            gaps.iter().all(|g| (600_000..=1_200_000).contains(g)),
            "{gaps:?}"
        );
        // Random, not fixed: the gaps spread over the range.
        let (min, max) = (gaps.iter().min().unwrap(), gaps.iter().max().unwrap());
        assert!(max - min > 300_000, "gaps {min}..{max} barely vary");
        // Nothing aligns them to the interval grid.
        assert!(
            times(&log, Task::Rotate)
                .iter()
                .any(|t| t % INTERVAL_MILLIS != 0)
        );
    }

    #[tokio::test]
    async fn scans_follow_the_gaen_duty_cycle() {
        let mut schedule =
            Schedule::new(RotationPolicy::default(), DutyCycle::default(), None, START);
        let log = run(&mut schedule, DAY).await;
        let scans = times(&log, Task::Scan);
        let gaps: Vec<u64> = scans.windows(2).map(|w| w[1] - w[0]).collect();
        // A scan that would overlap a rotation starts after it: up to 4 s late.
        assert!(
            gaps.iter().all(|g| (210_000..=304_000).contains(g)),
            "{gaps:?}"
        );
        let rotations = times(&log, Task::Rotate);
        for scan in &scans {
            assert!(
                !rotations
                    .iter()
                    .any(|r| (scan + 1..scan + 4_000).contains(r)),
                "a rotation fell inside the scan at {scan}"
            );
        }
        // 4 s of every 210–300 s: about 1.6 % of the day scanning.
        let scanning = scans.len() as f64 * 4_000.0 / DAY as f64;
        assert!((0.013..0.02).contains(&scanning), "duty {scanning}");
    }

    #[tokio::test]
    async fn fast_mode_scans_every_few_seconds_and_syncs_and_purges_on_their_periods() {
        let mut schedule = Schedule::new(
            RotationPolicy::default(),
            DutyCycle::fast(),
            Some(3_600),
            START,
        );
        let log = run(&mut schedule, DAY + 60_000).await;
        let scans = times(&log, Task::Scan);
        assert!(
            scans
                .windows(2)
                .all(|w| (4_000..=8_000).contains(&(w[1] - w[0])))
        );
        let syncs = times(&log, Task::Sync);
        assert_eq!(syncs[0], START + 2_000, "right after the first scan");
        assert!(
            syncs
                .windows(2)
                .all(|w| (3_600_000..=3_960_000).contains(&(w[1] - w[0])))
        );
        let purges = times(&log, Task::Purge);
        assert_eq!(purges.len(), 2);
        assert_eq!(purges[1] - purges[0], DAY);
    }

    #[test]
    fn nonsense_cycles_are_rejected() {
        let short = DutyCycle {
            scan_millis: 10_000,
            period_seconds: 5..=6,
        };
        assert!(short.validate().is_err());
        assert!(
            DutyCycle {
                scan_millis: 0,
                ..DutyCycle::default()
            }
            .validate()
            .is_err()
        );
        assert!(
            RotationPolicy {
                every_seconds: 0..=0,
                at_interval_boundaries: true
            }
            .validate()
            .is_err()
        );
        assert!(DutyCycle::fast().validate().is_ok());
    }
}
