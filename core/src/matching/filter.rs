//! The first check of a derived RPI: is it among the RPIs this device heard that day?

use crate::identifiers::Rpi;

/// A blocked Bloom filter over RPIs: up to four bits per RPI, all in one word.
///
/// Matching probes it once per derived RPI (144 times per key), so a probe is a
/// few instructions on a table that stays in L1 cache; a hit is confirmed against
/// the exact list of RPIs.
pub(super) struct BloomFilter {
    /// A power-of-two number of words.
    words: Vec<u64>,
}

impl BloomFilter {
    /// A filter holding `rpis`.
    pub(super) fn new(rpis: &[Rpi]) -> Self {
        // 128 to 256 bits per RPI give ~0.01 % false positives, in a few KiB that
        // stay in L1 cache while the keys of a day are probed.
        let mut words = vec![0; (2 * rpis.len()).next_power_of_two().max(64)];
        let mask = words.len() - 1;
        for rpi in rpis {
            let (word, bits) = slot(rpi.as_bytes(), mask);
            words[word] |= bits;
        }
        Self { words }
    }

    /// A view for probing, whose fields the compiler keeps in registers in the
    /// probe loop (through `&self` it reloaded them on every probe).
    pub(super) fn probe(&self) -> Probe<'_> {
        Probe {
            words: &self.words,
            mask: self.words.len() - 1,
        }
    }
}

/// See [`BloomFilter::probe`].
#[derive(Clone, Copy)]
pub(super) struct Probe<'f> {
    words: &'f [u64],
    mask: usize,
}

impl Probe<'_> {
    /// Whether the RPI with these bytes may be in the filter (it surely is not
    /// when false).
    #[inline]
    pub(super) fn may_contain(self, rpi: &[u8]) -> bool {
        let (word, bits) = slot(rpi, self.mask);
        self.words.get(word).is_some_and(|w| w & bits == bits)
    }
}

/// The word and bits of an RPI. RPIs are AES output, so their bytes serve as hash
/// values directly: the low bits pick the word, the top two bytes the bits.
#[inline]
fn slot(rpi: &[u8], mask: usize) -> (usize, u64) {
    let h = u64::from_le_bytes(rpi[..8].try_into().expect("an RPI has 16 bytes"));
    let bits = PATTERNS[(h >> 56) as usize] | PATTERNS[usize::from((h >> 48) as u8)];
    (h as usize & mask, bits)
}

/// Two pseudo-random bits per byte value. A probe ORs the patterns of two bytes of
/// the RPI (up to four bits of 64, 16 bits of entropy): two table look-ups cost a
/// third of the µops of shifting 1 by three variable amounts.
static PATTERNS: [u64; 256] = patterns();

const fn patterns() -> [u64; 256] {
    let mut table = [0; 256];
    let mut state: u64 = 0;
    let mut i = 0;
    while i < table.len() {
        // SplitMix64: fixed, well-mixed bits.
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        table[i] = (1 << (z & 63)) | (1 << ((z >> 6) & 63));
        i += 1;
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng, rngs::StdRng};

    /// Each false positive costs a binary search, so the filter must stay sharp
    /// whatever the number of RPIs a day holds.
    #[test]
    fn no_false_negatives_and_few_false_positives() {
        let mut rng = StdRng::seed_from_u64(7);
        for members in [1, 100, 360, 500, 1000, 5000] {
            let rpis: Vec<Rpi> = (0..members).map(|_| Rpi::from_bytes(rng.r#gen())).collect();
            let filter = BloomFilter::new(&rpis);
            let probe = filter.probe();
            assert!(rpis.iter().all(|rpi| probe.may_contain(rpi.as_bytes())));
            let probes = 200_000;
            let false_positives = (0..probes)
                .filter(|_| probe.may_contain(&rng.r#gen::<[u8; 16]>()))
                .count();
            let rate = false_positives as f64 / probes as f64;
            assert!(rate < 5e-4, "{members} RPIs: false positive rate {rate}");
        }
    }
}
