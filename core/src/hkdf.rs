//! GAEN's HKDF-SHA256 (RFC 5869) on the bare SHA-256 compression function.
//!
//! GAEN derives two 16-byte keys from a 16-byte TEK with no salt, and every input
//! fits one SHA-256 block. Calling the compression function directly costs the
//! minimum of six compressions for the RPIK (two more for the AEMK, which shares the
//! extract step and the HMAC key states) and none of a general HMAC's buffering.
//! Matching derives one RPIK per downloaded key, so this is on its hot path.

use std::sync::LazyLock;

use sha2::compress256;
use sha2::digest::generic_array::GenericArray;
use zeroize::{Zeroize, Zeroizing};

/// SHA-256 initial hash value (FIPS 180-4, 5.3.3).
const SHA256_IV: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

const BLOCK: usize = 64;

/// SHA-256 states after absorbing the HMAC key XOR ipad, and XOR opad.
#[derive(Zeroize)]
struct HmacKey {
    inner: [u32; 8],
    outer: [u32; 8],
}

impl Drop for HmacKey {
    fn drop(&mut self) {
        self.zeroize();
    }
}

impl HmacKey {
    /// HMAC key states for a key of at most one block.
    fn new(key: &[u8]) -> Self {
        debug_assert!(key.len() <= BLOCK);
        let mut pad = Zeroizing::new([0u8; BLOCK]);
        let state = |pad: &mut [u8; BLOCK], byte: u8| {
            pad.fill(byte);
            for (p, k) in pad.iter_mut().zip(key) {
                *p ^= k;
            }
            let mut state = SHA256_IV;
            compress256(&mut state, &[*GenericArray::from_slice(pad)]);
            state
        };
        Self {
            inner: state(&mut pad, 0x36),
            outer: state(&mut pad, 0x5c),
        }
    }

    /// HMAC(key, message) for a message short enough to share its block with the padding.
    fn mac(&self, message: &[u8]) -> Zeroizing<[u8; 32]> {
        let mut state = Zeroizing::new(self.inner);
        final_block(&mut state, message);
        let mut inner_digest = Zeroizing::new([0u8; 32]);
        write_digest(&state, &mut inner_digest);
        *state = self.outer;
        final_block(&mut state, &inner_digest[..]);
        let mut out = Zeroizing::new([0u8; 32]);
        write_digest(&state, &mut out);
        out
    }
}

/// Absorbs `message` (≤ 55 bytes) as the last block after one key block.
fn final_block(state: &mut [u32; 8], message: &[u8]) {
    debug_assert!(message.len() <= BLOCK - 9);
    let mut block = Zeroizing::new([0u8; BLOCK]);
    block[..message.len()].copy_from_slice(message);
    block[message.len()] = 0x80;
    let bits = ((BLOCK + message.len()) as u64) * 8;
    block[BLOCK - 8..].copy_from_slice(&bits.to_be_bytes());
    compress256(state, &[*GenericArray::from_slice(&block[..])]);
}

fn write_digest(state: &[u32; 8], out: &mut [u8; 32]) {
    for (chunk, word) in out.chunks_exact_mut(4).zip(state) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
}

/// HMAC key states of HKDF's default salt (32 zero bytes), computed once.
static ZERO_SALT: LazyLock<HmacKey> = LazyLock::new(|| HmacKey::new(&[0u8; 32]));

/// The result of HKDF-Extract(no salt, TEK), ready to expand several labels.
pub(crate) struct Prk(HmacKey);

impl Prk {
    /// HKDF-Extract with GAEN's empty salt.
    pub(crate) fn extract(ikm: &[u8; 16]) -> Self {
        let prk = ZERO_SALT.mac(ikm);
        Self(HmacKey::new(&prk[..]))
    }

    /// HKDF-Expand(PRK, `info`, 16): one output block, truncated.
    pub(crate) fn expand_16(&self, info: &[u8]) -> Zeroizing<[u8; 16]> {
        let mut message = Zeroizing::new([0u8; 16]);
        message[..info.len()].copy_from_slice(info);
        message[info.len()] = 1;
        let block = self.0.mac(&message[..=info.len()]);
        let mut out = Zeroizing::new([0u8; 16]);
        out.copy_from_slice(&block[..16]);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reference(ikm: &[u8; 16], info: &[u8]) -> [u8; 16] {
        let mut out = [0u8; 16];
        hkdf::Hkdf::<sha2::Sha256>::new(None, ikm)
            .expand(info, &mut out)
            .unwrap();
        out
    }

    proptest! {
        #[test]
        fn agrees_with_the_hkdf_crate(ikm in any::<[u8; 16]>()) {
            let prk = Prk::extract(&ikm);
            for info in [&b"EN-RPIK"[..], b"EN-AEMK", b"", b"a label of 14b"] {
                prop_assert_eq!(*prk.expand_16(info), reference(&ikm, info));
            }
        }
    }
}
