//! Independent random streams, one per purpose, addressed by counters.
//!
//! Every draw is a pure function of (seed, purpose, counters such as day and agent):
//! nothing depends on the order in which threads ask, so a run is identical on any
//! number of threads, and switching the app on changes none of the population,
//! contact or disease draws — runs with and without the app stay paired until the
//! app first changes what someone does.

use rand::SeedableRng;
use rand_chacha::{ChaCha8Rng, ChaCha20Rng};

/// What a random number is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Purpose {
    /// Ages, households, occupations, app users, phone models.
    Population = 1,
    /// Who meets whom each day, for how long, how close.
    Contacts = 2,
    /// Whether a contact infects, and the infection's course.
    Disease = 3,
    /// Who gets tested, test results, isolation.
    Testing = 4,
    /// Bluetooth: holder effects, fading.
    Ble = 5,
    /// The app's behaviour: scan schedules, uploads, reactions to notifications.
    App = 6,
    /// Daily keys (the phones' CSPRNG seeds).
    Keys = 7,
    /// Manual tracing.
    Tracing = 8,
}

/// The random streams of one run.
#[derive(Clone, Copy, Debug)]
pub struct Streams {
    seed: u64,
}

/// SplitMix64's finaliser: a bijection that mixes all bits.
const fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Streams {
    /// The streams of the run with this seed.
    pub fn new(seed: u64) -> Self {
        Self { seed }
    }

    /// A 64-bit random number for `purpose` at `counters`.
    pub fn bits(&self, purpose: Purpose, counters: [u64; 3]) -> u64 {
        let mut h = mix(self.seed ^ 0x9e37_79b9_7f4a_7c15);
        h = mix(h ^ purpose as u64);
        for c in counters {
            h = mix(h.wrapping_add(c).wrapping_add(0x9e37_79b9_7f4a_7c15));
        }
        h
    }

    /// A uniform number in [0, 1).
    pub fn uniform(&self, purpose: Purpose, counters: [u64; 3]) -> f64 {
        (self.bits(purpose, counters) >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Whether an event of probability `p` happens.
    pub fn chance(&self, purpose: Purpose, counters: [u64; 3], p: f64) -> bool {
        self.uniform(purpose, counters) < p
    }

    /// A standard normal number (Box–Muller on two counter draws).
    pub fn normal(&self, purpose: Purpose, counters: [u64; 3]) -> f64 {
        let u1 = 1.0 - self.uniform(purpose, counters);
        let [a, b, c] = counters;
        let u2 = self.uniform(purpose, [a, b, c ^ (1 << 63)]);
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// A generator for many draws at `counters` (e.g. one person's course of infection).
    pub fn rng(&self, purpose: Purpose, counters: [u64; 3]) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(self.bits(purpose, counters))
    }

    /// The CSPRNG a phone draws its key of one day from.
    pub fn key_rng(&self, phone: u32, day: u32) -> ChaCha20Rng {
        let lo = self.bits(Purpose::Keys, [u64::from(phone), u64::from(day), 0]);
        let hi = self.bits(Purpose::Keys, [u64::from(phone), u64::from(day), 1]);
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&lo.to_le_bytes());
        seed[8..16].copy_from_slice(&hi.to_le_bytes());
        seed[16..24].copy_from_slice(&mix(lo ^ hi).to_le_bytes());
        seed[24..].copy_from_slice(&mix(hi.wrapping_add(lo)).to_le_bytes());
        ChaCha20Rng::from_seed(seed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purposes_and_counters_give_different_numbers() {
        let s = Streams::new(7);
        let a = s.bits(Purpose::Disease, [1, 2, 3]);
        assert_ne!(a, s.bits(Purpose::Contacts, [1, 2, 3]));
        assert_ne!(a, s.bits(Purpose::Disease, [1, 2, 4]));
        assert_ne!(a, Streams::new(8).bits(Purpose::Disease, [1, 2, 3]));
        assert_eq!(a, s.bits(Purpose::Disease, [1, 2, 3]));
    }

    #[test]
    fn uniform_and_normal_have_their_moments() {
        let s = Streams::new(1);
        let n = 100_000;
        let u: f64 = (0..n)
            .map(|i| s.uniform(Purpose::Ble, [i, 0, 0]))
            .sum::<f64>()
            / n as f64;
        assert!((u - 0.5).abs() < 0.01, "mean {u}");
        let z: Vec<f64> = (0..n).map(|i| s.normal(Purpose::Ble, [i, 0, 0])).collect();
        let mean = z.iter().sum::<f64>() / n as f64;
        let var = z.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(
            mean.abs() < 0.02 && (var - 1.0).abs() < 0.03,
            "{mean} {var}"
        );
    }
}
