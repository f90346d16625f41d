//! Fake keys that pad a small batch, so a file's size does not tell how few people published.
//!
//! As Google's export worker does: a batch with fewer than the minimum of real keys is filled
//! up to `minimum + random(0..=range)` with random key bytes whose metadata (validity, report
//! type, days since onset, transmission risk) is copied in turn from the batch's real keys, so
//! padding follows the real keys' distribution. Keys are sorted by their bytes in the file, so
//! position says nothing either. The padding is stored before any file is written, so a batch
//! exported again yields the same bytes.

use kith_core::{DiagnosisKey, TemporaryExposureKey};
use rand_core::{CryptoRng, RngCore};

/// How many real keys a batch should at least hold, and the random extra above that.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PaddingRule {
    /// Batches with fewer real keys are padded (but never an empty batch).
    pub minimum: usize,
    /// Padded batches get `minimum + random(0..=range)` keys in all.
    pub range: usize,
}

impl PaddingRule {
    /// The fake keys for a batch of `real` keys; none when it is empty or big enough.
    pub fn padding<R: RngCore + CryptoRng>(
        &self,
        real: &[DiagnosisKey],
        rng: &mut R,
    ) -> Vec<DiagnosisKey> {
        if real.is_empty() {
            return Vec::new();
        }
        let count = self.fill(real.len(), rng);
        real.iter()
            .cycle()
            .take(count)
            .map(|model| {
                let mut bytes = [0u8; 16];
                rng.fill_bytes(&mut bytes);
                DiagnosisKey {
                    tek: TemporaryExposureKey::from_bytes(bytes, model.tek.validity()),
                    ..*model
                }
            })
            .collect()
    }

    /// How many fake entries a batch of `real` ones gets: enough for `minimum +
    /// random(0..=range)` in all, none when it holds `minimum` already.
    pub fn fill<R: RngCore + CryptoRng>(&self, real: usize, rng: &mut R) -> usize {
        if real >= self.minimum {
            return 0;
        }
        let extra = (rng.next_u64() % (self.range as u64 + 1)) as usize;
        self.minimum + extra - real
    }
}

#[cfg(test)]
mod tests {
    use kith_core::{DaysSinceOnset, IntervalNumber, KeyValidity, ReportType};
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    fn real(n: usize) -> Vec<DiagnosisKey> {
        (0..n)
            .map(|i| DiagnosisKey {
                tek: TemporaryExposureKey::from_bytes(
                    [i as u8; 16],
                    KeyValidity::day_of(IntervalNumber::new(2_900_000 + 144 * i as u32)),
                ),
                report_type: if i % 2 == 0 {
                    ReportType::ConfirmedTest
                } else {
                    ReportType::SelfReport
                },
                days_since_onset: Some(DaysSinceOnset::new(i as i32 % 5).unwrap()),
                transmission_risk_level: Some(i as u8 % 8),
            })
            .collect()
    }

    #[test]
    fn small_batches_are_padded_with_the_real_keys_metadata() {
        let rule = PaddingRule {
            minimum: 1000,
            range: 100,
        };
        let mut rng = StdRng::seed_from_u64(1);
        let keys = real(3);
        for _ in 0..50 {
            let padding = rule.padding(&keys, &mut rng);
            let total = keys.len() + padding.len();
            assert!((1000..=1100).contains(&total), "{total}");
            for (i, fake) in padding.iter().enumerate() {
                let model = &keys[i % keys.len()];
                assert_ne!(fake.tek.expose_secret(), model.tek.expose_secret());
                assert_eq!(fake.tek.validity(), model.tek.validity());
                assert_eq!(fake.report_type, model.report_type);
                assert_eq!(fake.days_since_onset, model.days_since_onset);
                assert_eq!(fake.transmission_risk_level, model.transmission_risk_level);
            }
        }
    }

    #[test]
    fn empty_and_full_batches_are_not_padded() {
        let rule = PaddingRule {
            minimum: 10,
            range: 5,
        };
        let mut rng = StdRng::seed_from_u64(2);
        assert!(rule.padding(&[], &mut rng).is_empty());
        assert!(rule.padding(&real(10), &mut rng).is_empty());
        assert!(!rule.padding(&real(9), &mut rng).is_empty());
    }
}
