//! GAEN's HKDF-SHA256 (RFC 5869) on the bare SHA-256 compression function.
//!
//! GAEN derives 16-byte keys from a 16-byte TEK with no salt, and every input fits
//! one SHA-256 block. Calling the compression function directly costs the minimum
//! of six compressions for the RPIK (two more for the AEMK, which shares the extract
//! step and the HMAC key states) and none of a general HMAC's buffering. All secret
//! intermediate values live in one scratch struct, zeroized once: zeroizing is done
//! byte by byte, and many small buffers made it cost as much as the hashing.
//! Matching derives one RPIK per downloaded key, so this is on its hot path.

use std::sync::LazyLock;

use sha2::compress256;
use sha2::digest::generic_array::GenericArray;
use zeroize::{Zeroize, ZeroizeOnDrop};

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

/// SHA-256 states after absorbing an HMAC key XOR ipad, and XOR opad.
#[derive(Clone, Zeroize)]
struct HmacKey {
    inner: [u32; 8],
    outer: [u32; 8],
}

/// HMAC key states of HKDF's default salt (32 zero bytes), computed once.
static ZERO_SALT: LazyLock<HmacKey> = LazyLock::new(|| {
    let mut scratch = Scratch::default();
    scratch.hmac_key(&[0; 32])
});

/// Every secret intermediate value of one derivation.
#[derive(Zeroize, ZeroizeOnDrop)]
struct Scratch {
    block: [u8; BLOCK],
    state: [u32; 8],
}

impl Default for Scratch {
    fn default() -> Self {
        Self {
            block: [0; BLOCK],
            state: [0; 8],
        }
    }
}

impl Scratch {
    /// HMAC key states for a 32-byte key.
    fn hmac_key(&mut self, key: &[u8; 32]) -> HmacKey {
        let mut pad = |byte: u8| {
            self.block.fill(byte);
            for (p, k) in self.block.iter_mut().zip(key) {
                *p ^= k;
            }
            let mut state = SHA256_IV;
            compress256(&mut state, &[*GenericArray::from_slice(&self.block)]);
            state
        };
        HmacKey {
            inner: pad(0x36),
            outer: pad(0x5c),
        }
    }

    /// Absorbs `message` (≤ 55 bytes) as the last block after one key block.
    fn final_block(&mut self, message_len: usize) {
        self.block[message_len] = 0x80;
        self.block[message_len + 1..BLOCK - 8].fill(0);
        let bits = ((BLOCK + message_len) as u64) * 8;
        self.block[BLOCK - 8..].copy_from_slice(&bits.to_be_bytes());
        compress256(&mut self.state, &[*GenericArray::from_slice(&self.block)]);
    }

    /// HMAC(key, message), left in `state`; `message` is the first bytes of `block`.
    fn mac(&mut self, key: &HmacKey, message_len: usize) {
        self.state = key.inner;
        self.final_block(message_len);
        self.digest_into_block();
        self.state = key.outer;
        self.final_block(32);
    }

    fn digest_into_block(&mut self) {
        for (chunk, word) in self.block.chunks_exact_mut(4).zip(&self.state) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
    }
}

/// The result of HKDF-Extract(no salt, TEK), ready to expand several labels.
#[derive(Default, Zeroize, ZeroizeOnDrop)]
pub(crate) struct Prk {
    scratch: Scratch,
    #[zeroize(skip)]
    key: Option<HmacKey>,
}

impl Drop for HmacKey {
    fn drop(&mut self) {
        self.zeroize();
    }
}

impl Prk {
    /// HKDF-Extract with GAEN's empty salt.
    pub(crate) fn extract(ikm: &[u8; 16]) -> Self {
        let mut prk = Self::default();
        let scratch = &mut prk.scratch;
        scratch.block[..16].copy_from_slice(ikm);
        scratch.mac(&ZERO_SALT, 16);
        scratch.digest_into_block();
        let mut key = [0u8; 32];
        key.copy_from_slice(&scratch.block[..32]);
        prk.key = Some(scratch.hmac_key(&key));
        key.zeroize();
        prk
    }

    /// HKDF-Expand(PRK, `info`, 16) into `out`: one output block, truncated.
    pub(crate) fn expand_16(&mut self, info: &[u8], out: &mut [u8; 16]) {
        let key = self.key.as_ref().expect("set by extract");
        let scratch = &mut self.scratch;
        scratch.block[..info.len()].copy_from_slice(info);
        scratch.block[info.len()] = 1;
        scratch.mac(key, info.len() + 1);
        scratch.digest_into_block();
        out.copy_from_slice(&scratch.block[..16]);
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
            let mut prk = Prk::extract(&ikm);
            for info in [&b"EN-RPIK"[..], b"EN-AEMK", b"", b"a label of 22 bytes..."] {
                let mut out = [0; 16];
                prk.expand_16(info, &mut out);
                prop_assert_eq!(out, reference(&ikm, info));
            }
        }
    }
}
