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
    /// The hash state after the seed and each purpose (indexed by `Purpose as usize`):
    /// every draw of a purpose starts from it.
    prefix: [u64; 9],
}

/// The golden-ratio increment of SplitMix64, added before each mix.
const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// SplitMix64's finaliser: a bijection that mixes all bits.
const fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Streams {
    /// The streams of the run with this seed.
    pub fn new(seed: u64) -> Self {
        let h = mix(seed ^ GOLDEN);
        Self {
            prefix: std::array::from_fn(|purpose| mix(h ^ purpose as u64)),
        }
    }

    /// A 64-bit random number for `purpose` at `counters`.
    pub fn bits(&self, purpose: Purpose, counters: [u64; 3]) -> u64 {
        let mut h = self.prefix[purpose as usize];
        for c in counters {
            h = mix(h.wrapping_add(c).wrapping_add(GOLDEN));
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

    /// A standard normal number: the normal quantile of one draw.
    pub fn normal(&self, purpose: Purpose, counters: [u64; 3]) -> f64 {
        normal_quantile(open_unit(self.bits(purpose, counters) >> 11, 53))
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

/// The midpoint of cell `k` of `2^bits` equal cells of (0, 1): a uniform number that is
/// never 0 or 1, for quantile functions.
pub fn open_unit(k: u64, bits: u32) -> f64 {
    (k as f64 + 0.5) * (0.5f64).powi(bits as i32)
}

/// The standard normal quantile Φ⁻¹(p) for p in (0, 1): Wichura's algorithm AS 241
/// (PPND16, Applied Statistics 37:477, 1988), accurate to about 1e-16. Central values
/// need one rational function and no logarithm, which makes normal draws by inversion
/// cheaper than Box–Muller.
pub fn normal_quantile(p: f64) -> f64 {
    let q = p - 0.5;
    if q.abs() <= 0.425 {
        let r = 0.180_625 - q * q;
        return q * rational(r, &AS241_CENTRAL_A, &AS241_CENTRAL_B);
    }
    let tail = if q < 0.0 { p } else { 1.0 - p };
    let r = (-tail.ln()).sqrt();
    let z = if r <= 5.0 {
        rational(r - 1.6, &AS241_NEAR_C, &AS241_NEAR_D)
    } else {
        rational(r - 5.0, &AS241_FAR_E, &AS241_FAR_F)
    };
    if q < 0.0 { -z } else { z }
}

/// (a₀ + a₁x + … + a₇x⁷) / (1 + b₁x + … + b₇x⁷), by Horner's rule.
fn rational(x: f64, a: &[f64; 8], b: &[f64; 7]) -> f64 {
    let num = a.iter().rev().fold(0.0, |acc, &c| acc * x + c);
    let den = b.iter().rev().fold(0.0, |acc, &c| acc * x + c) * x + 1.0;
    num / den
}

const AS241_CENTRAL_A: [f64; 8] = [
    3.387_132_872_796_366_5,
    1.331_416_678_917_843_8e2,
    1.971_590_950_306_551_3e3,
    1.373_169_376_550_946e4,
    4.592_195_393_154_987e4,
    6.726_577_092_700_87e4,
    3.343_057_558_358_813e4,
    2.509_080_928_730_122_7e3,
];
const AS241_CENTRAL_B: [f64; 7] = [
    4.231_333_070_160_091e1,
    6.871_870_074_920_579e2,
    5.394_196_021_424_751e3,
    2.121_379_430_158_659_7e4,
    3.930_789_580_009_271e4,
    2.872_908_573_572_194_3e4,
    5.226_495_278_852_545e3,
];
const AS241_NEAR_C: [f64; 8] = [
    1.423_437_110_749_683_5,
    4.630_337_846_156_546,
    5.769_497_221_460_691,
    3.647_848_324_763_204_5,
    1.270_458_252_452_368_4,
    2.417_807_251_774_506e-1,
    2.272_384_498_926_918_4e-2,
    7.745_450_142_783_414e-4,
];
const AS241_NEAR_D: [f64; 7] = [
    2.053_191_626_637_759,
    1.676_384_830_183_803_8,
    6.897_673_349_851e-1,
    1.481_039_764_274_800_8e-1,
    1.519_866_656_361_645_7e-2,
    5.475_938_084_995_345e-4,
    1.050_750_071_644_416_9e-9,
];
const AS241_FAR_E: [f64; 8] = [
    6.657_904_643_501_103,
    5.463_784_911_164_114,
    1.784_826_539_917_291_3,
    2.965_605_718_285_048_7e-1,
    2.653_218_952_657_612_4e-2,
    1.242_660_947_388_078_4e-3,
    2.711_555_568_743_487_6e-5,
    2.010_334_399_292_288_1e-7,
];
const AS241_FAR_F: [f64; 7] = [
    5.998_322_065_558_88e-1,
    1.369_298_809_227_358e-1,
    1.487_536_129_085_061_5e-2,
    7.868_691_311_456_133e-4,
    1.846_318_317_510_054_8e-5,
    1.421_511_758_316_446e-7,
    2.044_263_103_389_939_7e-15,
];

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

    #[test]
    fn the_normal_quantile_inverts_the_normal_cdf() {
        // Φ⁻¹ at tabulated points (Abramowitz & Stegun 26.2), in both tails and the centre.
        for (p, z) in [
            (0.5, 0.0),
            (0.975, 1.959_963_984_540_054),
            (0.841_344_746_068_542_9, 1.0),
            (1e-10, -6.361_340_902_404_056),
            (0.001, -3.090_232_306_167_813_5),
            (0.3, -0.524_400_512_708_041),
        ] {
            let got = normal_quantile(p);
            assert!(
                (got - z).abs() < 1e-9 * z.abs().max(1.0),
                "Φ⁻¹({p}) = {got}, not {z}"
            );
            if p >= 1e-3 {
                // 1 − p is exact enough here to check the symmetry.
                assert!((normal_quantile(1.0 - p) + z).abs() < 1e-9 * z.abs().max(1.0));
            }
        }
    }
}
