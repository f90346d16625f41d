//! Seeded hostile bytes: random ones, and mutations of something well-formed.

use rand::{Rng, RngCore};
use rand_chacha::ChaCha8Rng;

/// `bytes` with one to four random edits: flipped bits, inserted or deleted bytes, a
/// truncation, a duplicated stretch.
pub fn mutate(rng: &mut ChaCha8Rng, bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for _ in 0..rng.gen_range(1..=4) {
        let at = rng.gen_range(0..=out.len());
        match rng.gen_range(0..5) {
            0 if at < out.len() => out[at] ^= 1 << rng.gen_range(0..8),
            1 => out.insert(at, rng.r#gen()),
            2 if at < out.len() => {
                let end = rng.gen_range(at..=out.len().min(at + 16));
                out.drain(at..end);
            }
            3 => out.truncate(at),
            _ => {
                let end = rng.gen_range(at..=out.len().min(at + 32));
                let stretch = out[at..end].to_vec();
                out.splice(at..at, stretch);
            }
        }
    }
    out
}

/// Up to `max` random bytes.
pub fn random_bytes(rng: &mut ChaCha8Rng, max: usize) -> Vec<u8> {
    let mut bytes = vec![0; rng.gen_range(0..=max)];
    rng.fill_bytes(&mut bytes);
    bytes
}
