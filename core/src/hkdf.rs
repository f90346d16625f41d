//! GAEN's HKDF-SHA256 (RFC 5869) on the bare SHA-256 compression function.
//!
//! GAEN derives 16-byte keys from a 16-byte TEK with no salt, and every input fits
//! one SHA-256 block. Calling the compression function directly costs the minimum
//! of six compressions for the RPIK (two more for the AEMK, which shares the extract
//! step and the HMAC key states) and none of a general HMAC's buffering. All secret
//! intermediate values of a derivation live in one struct, zeroized once for a secret
//! key: zeroizing is done byte by byte, and many small buffers made it cost as much
//! as the hashing. Matching derives one RPIK per downloaded key, so this is on its
//! hot path; it derives published keys, which are not secret, several at a time.

use std::sync::LazyLock;

use sha2::compress256;
use sha2::digest::generic_array::GenericArray;
use zeroize::Zeroize;

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
#[derive(Clone, Copy, Default, Zeroize)]
struct HmacKey {
    inner: [u32; 8],
    outer: [u32; 8],
}

/// HMAC key states of HKDF's default salt (32 zero bytes), computed once.
static ZERO_SALT: LazyLock<HmacKey> = LazyLock::new(|| {
    let mut lane = Lane::default();
    lane.set_hmac_key_from_state();
    lane.key
});

/// The intermediate values of one derivation.
#[derive(Zeroize)]
struct Lane {
    block: [u8; BLOCK],
    state: [u32; 8],
    key: HmacKey,
}

impl Default for Lane {
    fn default() -> Self {
        Self {
            block: [0; BLOCK],
            state: [0; 8],
            key: HmacKey::default(),
        }
    }
}

impl Lane {
    /// Sets `key` to the HMAC key states of the 32-byte key held in `state`.
    fn set_hmac_key_from_state(&mut self) {
        self.key.inner = self.hmac_pad(0x36);
        self.key.outer = self.hmac_pad(0x5c);
    }

    /// The state after absorbing (the key in `state`) XOR `pad`, zero-extended to a block.
    fn hmac_pad(&mut self, pad: u8) -> [u32; 8] {
        let pad_word = u32::from_ne_bytes([pad; 4]);
        for (chunk, word) in self.block.chunks_exact_mut(4).zip(&self.state) {
            chunk.copy_from_slice(&(word ^ pad_word).to_be_bytes());
        }
        self.block[32..].fill(pad);
        let mut state = SHA256_IV;
        compress256(&mut state, &[*GenericArray::from_slice(&self.block)]);
        state
    }

    /// Absorbs the first `message_len` (≤ 55) bytes of `block`, starting from
    /// `state`, as the last block of a message that follows one key block.
    fn compress_final(&mut self, state: [u32; 8], message_len: usize) {
        self.state = state;
        self.block[message_len] = 0x80;
        self.block[message_len + 1..BLOCK - 8].fill(0);
        let bits = ((BLOCK + message_len) as u64) * 8;
        self.block[BLOCK - 8..].copy_from_slice(&bits.to_be_bytes());
        compress256(&mut self.state, &[*GenericArray::from_slice(&self.block)]);
    }

    /// Writes the 32-byte value in `state` to the start of `block`.
    fn digest_into_block(&mut self) {
        for (chunk, word) in self.block.chunks_exact_mut(4).zip(&self.state) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
    }
}

/// HKDF-Extract(no salt, IKM) of `N` inputs, ready to expand several labels.
///
/// A compression is one chain of 64 dependent rounds; the lanes' chains are
/// independent, and each step runs for every lane before the next step, so the CPU
/// overlaps them. Not zeroized: for a secret, use [`Prk`].
#[derive(Zeroize)]
pub(crate) struct Lanes<const N: usize>([Lane; N]);

impl<const N: usize> Lanes<N> {
    /// Lanes ready for [`extract`](Self::extract).
    pub(crate) fn new() -> Self {
        Self(std::array::from_fn(|_| Lane::default()))
    }

    /// HKDF-Extract with GAEN's empty salt, of each of `ikms`, in place: returning
    /// the lanes by value cost a copy that waited on the hash results.
    pub(crate) fn extract(&mut self, ikms: [&[u8; 16]; N]) {
        let salt = *ZERO_SALT;
        for (lane, ikm) in self.0.iter_mut().zip(ikms) {
            lane.block[..16].copy_from_slice(ikm);
            lane.compress_final(salt.inner, 16);
        }
        for lane in &mut self.0 {
            lane.digest_into_block();
            lane.compress_final(salt.outer, 32);
        }
        // `state` holds the PRK: the HMAC key of the expand step.
        for lane in &mut self.0 {
            lane.set_hmac_key_from_state();
        }
    }

    /// HKDF-Expand(PRK, `info`, 16) of each lane into `out`: one output block, truncated.
    pub(crate) fn expand_16(&mut self, info: &[u8], out: &mut [[u8; 16]; N]) {
        for lane in &mut self.0 {
            lane.block[..info.len()].copy_from_slice(info);
            lane.block[info.len()] = 1;
            lane.compress_final(lane.key.inner, info.len() + 1);
        }
        for lane in &mut self.0 {
            lane.digest_into_block();
            lane.compress_final(lane.key.outer, 32);
        }
        for (lane, out) in self.0.iter_mut().zip(out) {
            lane.digest_into_block();
            out.copy_from_slice(&lane.block[..16]);
        }
    }
}

/// HKDF-Extract(no salt, key) of one secret key, zeroized on drop.
pub(crate) struct Prk(Lanes<1>);

impl Prk {
    /// HKDF-Extract with GAEN's empty salt.
    pub(crate) fn extract(ikm: &[u8; 16]) -> Self {
        let mut prk = Self(Lanes::new());
        prk.0.extract([ikm]);
        prk
    }

    /// HKDF-Expand(PRK, `info`, 16) into `out`: one output block, truncated.
    pub(crate) fn expand_16(&mut self, info: &[u8], out: &mut [u8; 16]) {
        self.0.expand_16(info, std::array::from_mut(out));
    }
}

impl Drop for Prk {
    fn drop(&mut self) {
        self.0.zeroize();
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

        #[test]
        fn lanes_agree_with_the_hkdf_crate(ikms in any::<[[u8; 16]; 3]>()) {
            let mut lanes = Lanes::new();
            lanes.extract([&ikms[0], &ikms[1], &ikms[2]]);
            let mut out = [[0; 16]; 3];
            lanes.expand_16(b"EN-RPIK", &mut out);
            for (out, ikm) in out.iter().zip(&ikms) {
                prop_assert_eq!(*out, reference(ikm, b"EN-RPIK"));
            }
        }
    }
}
