//! Who may still guess: a budget of failed code redemptions that blocks the sources
//! that fail, never the ones that do not.
//!
//! Each source (an IPv4 address, an IPv6 /64) is known only by a keyed hash whose key
//! lives in memory and changes every day, so the server cannot list or recognise
//! addresses, and nothing about them is logged or stored. A source that has never
//! failed today is always let through: someone typing their code right the first time
//! is never refused, whatever an attacker does. A source that has failed may keep
//! trying while the server-wide budget of failures lasts, and at most
//! [`Limits::per_source_per_day`] times; once the budget is spent, only sources with
//! a clean record get an answer. The budget (not the per-source record) persists
//! across restarts and is shared by every server on one database; the per-source
//! record is each server's own. `server/README.md` works out the odds.

use std::collections::HashMap;
use std::net::IpAddr;

use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::calendar::Day;
use crate::clock::UnixSeconds;
use crate::error::{AppError, Result};

/// Most sources remembered per day; beyond it, unseen sources count as having failed
/// (so an attacker with millions of addresses meets the server-wide budget).
pub const MAX_SOURCES: usize = 1_000_000;

/// A source for one day: a keyed hash of its address prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SourceTag([u8; 16]);

/// The in-memory key of source tags.
pub struct SourceKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for SourceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SourceKey(<redacted>)")
    }
}

impl Default for SourceKey {
    fn default() -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(key.as_mut());
        Self(key)
    }
}

impl SourceKey {
    /// The tag of `address` on `day`: IPv4 addresses whole, IPv6 by their /64 (one
    /// customer's network), IPv4-mapped IPv6 as IPv4.
    pub fn tag(&self, address: IpAddr, day: Day) -> SourceTag {
        let mut hasher = Sha256::new();
        hasher.update(self.0.as_slice());
        hasher.update(day.get().to_be_bytes());
        match address.to_canonical() {
            IpAddr::V4(v4) => hasher.update(v4.octets()),
            IpAddr::V6(v6) => hasher.update(&v6.octets()[..8]),
        }
        let digest = hasher.finalize();
        let mut tag = [0u8; 16];
        tag.copy_from_slice(&digest[..16]);
        SourceTag(tag)
    }
}

/// The guessing limits.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Server-wide failures allowed at once.
    pub burst: u32,
    /// Server-wide failures refilled per hour.
    pub per_hour: u32,
    /// Failures one source may have in a day.
    pub per_source_per_day: u32,
}

/// The server-wide budget as stored: tokens left at a time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BudgetState {
    /// Failures that could be afforded at `at`.
    pub tokens: f64,
    /// When.
    pub at: UnixSeconds,
}

/// The guard the writer thread consults before every redemption.
#[derive(Debug)]
pub struct Guard {
    limits: Limits,
    budget: BudgetState,
    day: Day,
    failures: HashMap<SourceTag, u32>,
}

impl Guard {
    /// A guard with `limits`, resuming a stored budget (a full one if none).
    pub fn new(limits: Limits, stored: Option<BudgetState>, now: UnixSeconds) -> Self {
        let budget = stored.unwrap_or(BudgetState {
            tokens: f64::from(limits.burst),
            at: now,
        });
        Self {
            limits,
            budget,
            day: Day::of(now),
            failures: HashMap::new(),
        }
    }

    fn refill(&mut self, now: UnixSeconds) {
        let day = Day::of(now);
        if day != self.day {
            self.day = day;
            self.failures.clear();
        }
        let per_second = f64::from(self.limits.per_hour) / 3600.0;
        let elapsed = now.since(self.budget.at) as f64;
        self.budget.tokens =
            (self.budget.tokens + elapsed * per_second).min(f64::from(self.limits.burst));
        self.budget.at = self.budget.at.max(now);
    }

    fn failures_of(&self, source: SourceTag) -> u32 {
        match self.failures.get(&source) {
            Some(&count) => count,
            None if self.failures.len() >= MAX_SOURCES => 1,
            None => 0,
        }
    }

    /// Ok if `source` may redeem a code now; otherwise how long it should wait.
    pub fn check(&mut self, source: SourceTag, now: UnixSeconds) -> Result<()> {
        self.refill(now);
        let failures = self.failures_of(source);
        if failures == 0 {
            return Ok(());
        }
        let until_tomorrow =
            UnixSeconds::new(u64::from(self.day.plus(1).get()) * 86_400).since(now);
        if failures >= self.limits.per_source_per_day {
            return Err(AppError::TooManyGuesses {
                retry_after_seconds: until_tomorrow.max(1),
            });
        }
        if self.budget.tokens < 1.0 {
            let per_second = f64::from(self.limits.per_hour) / 3600.0;
            let wait = ((1.0 - self.budget.tokens) / per_second).ceil().max(1.0) as u64;
            return Err(AppError::TooManyGuesses {
                retry_after_seconds: wait.min(until_tomorrow.max(1)),
            });
        }
        Ok(())
    }

    /// Takes over the budget as another server left it (several servers share one).
    pub fn resume(&mut self, budget: BudgetState) {
        self.budget = budget;
    }

    /// Records a failed redemption by `source`.
    pub fn failed(&mut self, source: SourceTag, now: UnixSeconds) {
        self.refill(now);
        self.budget.tokens = (self.budget.tokens - 1.0).max(0.0);
        if self.failures.len() < MAX_SOURCES || self.failures.contains_key(&source) {
            *self.failures.entry(source).or_default() += 1;
        }
    }

    /// The budget, to store it.
    pub fn budget(&self) -> BudgetState {
        self.budget
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const LIMITS: Limits = Limits {
        burst: 3,
        per_hour: 3600, // one a second
        per_source_per_day: 5,
    };

    fn tags(n: u8) -> Vec<SourceTag> {
        let key = SourceKey::default();
        (0..n)
            .map(|i| key.tag(IpAddr::V4(Ipv4Addr::new(127, 0, 0, i)), Day::new(1)))
            .collect()
    }

    #[test]
    fn clean_sources_pass_when_the_budget_is_spent() {
        let t = UnixSeconds::new(86_400 + 100);
        let sources = tags(10);
        let mut guard = Guard::new(LIMITS, None, t);
        for &s in &sources[..3] {
            guard.check(s, t).unwrap();
            guard.failed(s, t);
        }
        // The budget is spent: the sources that failed wait, the others do not.
        assert!(matches!(
            guard.check(sources[0], t),
            Err(AppError::TooManyGuesses {
                retry_after_seconds: 1
            })
        ));
        for &s in &sources[3..] {
            guard.check(s, t).unwrap();
        }
        // A second later one failure is affordable again.
        guard.check(sources[0], t.plus(1)).unwrap();
    }

    #[test]
    fn a_source_has_a_daily_limit_and_a_new_day_forgets_it() {
        let t = UnixSeconds::new(86_400 + 100);
        let s = tags(1)[0];
        let mut guard = Guard::new(LIMITS, None, t);
        for i in 0..5 {
            guard.check(s, t.plus(10 * i)).unwrap();
            guard.failed(s, t.plus(10 * i));
        }
        let Err(AppError::TooManyGuesses {
            retry_after_seconds,
        }) = guard.check(s, t.plus(60))
        else {
            panic!("the source's day is over");
        };
        assert_eq!(retry_after_seconds, 86_400 - 160);
        guard.check(s, UnixSeconds::new(2 * 86_400)).unwrap();
    }

    #[test]
    fn the_budget_resumes_from_its_stored_state() {
        let t = UnixSeconds::new(86_400);
        let mut guard = Guard::new(LIMITS, None, t);
        let s = tags(1)[0];
        for _ in 0..3 {
            guard.failed(s, t);
        }
        let stored = guard.budget();
        assert_eq!(stored.tokens, 0.0);
        let mut resumed = Guard::new(LIMITS, Some(stored), t);
        // The per-source record is gone with the old process, but the budget is not:
        // a source's first failure is free, its second waits.
        resumed.check(s, t).unwrap();
        resumed.failed(s, t);
        assert!(resumed.check(s, t).is_err());
    }

    #[test]
    fn tags_depend_on_key_day_and_prefix() {
        let key = SourceKey::default();
        let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let b = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        let d = Day::new(7);
        assert_eq!(key.tag(a, d), key.tag(a, d));
        assert_ne!(key.tag(a, d), key.tag(b, d));
        assert_ne!(key.tag(a, d), key.tag(a, d.plus(1)));
        assert_ne!(key.tag(a, d), SourceKey::default().tag(a, d));
        let v6 = |last: u16| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 0, 0, 0, last));
        assert_eq!(
            key.tag(v6(1), d),
            key.tag(v6(2), d),
            "one /64 is one source"
        );
        let mapped = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped());
        assert_eq!(key.tag(mapped, d), key.tag(a, d));
    }
}
