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
    lane.hmac_pads_from_state();
    lane.hmac_key_from_pads();
    lane.key
});

/// The intermediate values of one derivation.
///
/// Every step first writes the blocks of all lanes, then compresses them all. A
/// block written byte-wise and read by the next compression with wide loads cannot
/// be forwarded from the store buffer: the load waits until the stores retire, and
/// retirement is in order, so interleaving write and compress lane by lane ran the
/// lanes one after the other.
#[derive(Zeroize)]
struct Lane {
    /// Message blocks: the two HMAC key pads are compressed side by side.
    blocks: [[u8; BLOCK]; 2],
    state: [u32; 8],
    key: HmacKey,
}

impl Default for Lane {
    fn default() -> Self {
        Self {
            blocks: [[0; BLOCK]; 2],
            state: [0; 8],
            key: HmacKey::default(),
        }
    }
}

impl Lane {
    /// Pads the first `message_len` (≤ 55) bytes of block 0 as the end of a message
    /// that follows one key block.
    fn pad_final(&mut self, message_len: usize) {
        let block = &mut self.blocks[0];
        block[message_len] = 0x80;
        block[message_len + 1..BLOCK - 8].fill(0);
        let bits = ((BLOCK + message_len) as u64) * 8;
        block[BLOCK - 8..].copy_from_slice(&bits.to_be_bytes());
    }

    /// Writes the 32-byte digest in `state` to block 0, padded as the final block.
    fn digest_into_final_block(&mut self) {
        for (chunk, word) in self.blocks[0].chunks_exact_mut(4).zip(&self.state) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        self.pad_final(32);
    }

    /// Writes the 32-byte HMAC key in `state`, XOR ipad and XOR opad and padded to
    /// a block, to blocks 0 and 1.
    fn hmac_pads_from_state(&mut self) {
        for (block, pad) in self.blocks.iter_mut().zip([0x36u8, 0x5c]) {
            let pad_word = u32::from_ne_bytes([pad; 4]);
            for (chunk, word) in block.chunks_exact_mut(4).zip(&self.state) {
                chunk.copy_from_slice(&(word ^ pad_word).to_be_bytes());
            }
            block[32..].fill(pad);
        }
    }

    /// Sets `key` to the states after absorbing blocks 0 and 1 (the key pads).
    fn hmac_key_from_pads(&mut self) {
        for (state, block) in [&mut self.key.inner, &mut self.key.outer]
            .into_iter()
            .zip(&self.blocks)
        {
            *state = SHA256_IV;
            compress256(state, &[*GenericArray::from_slice(block)]);
        }
    }

    /// Absorbs block 0 into `state`, starting from `from`.
    fn compress(&mut self, from: [u32; 8]) {
        self.state = from;
        compress256(
            &mut self.state,
            &[*GenericArray::from_slice(&self.blocks[0])],
        );
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

    fn each(&mut self, step: impl FnMut(&mut Lane)) {
        self.0.iter_mut().for_each(step);
    }

    /// HKDF-Extract with GAEN's empty salt, of each of `ikms`, in place: returning
    /// the lanes by value cost a copy that waited on the hash results.
    pub(crate) fn extract(&mut self, ikms: [&[u8; 16]; N]) {
        let salt = *ZERO_SALT;
        for (lane, ikm) in self.0.iter_mut().zip(ikms) {
            lane.blocks[0][..16].copy_from_slice(ikm);
            lane.pad_final(16);
        }
        self.each(|lane| lane.compress(salt.inner));
        self.each(Lane::digest_into_final_block);
        self.each(|lane| lane.compress(salt.outer));
        // `state` holds the PRK: the HMAC key of the expand step.
        self.each(Lane::hmac_pads_from_state);
        self.each(Lane::hmac_key_from_pads);
    }

    /// HKDF-Expand(PRK, `info`, 16) of each lane into `out`: one output block, truncated.
    pub(crate) fn expand_16(&mut self, info: &[u8], out: &mut [[u8; 16]; N]) {
        self.each(|lane| {
            lane.blocks[0][..info.len()].copy_from_slice(info);
            lane.blocks[0][info.len()] = 1;
            lane.pad_final(info.len() + 1);
        });
        self.each(|lane| lane.compress(lane.key.inner));
        self.each(Lane::digest_into_final_block);
        self.each(|lane| lane.compress(lane.key.outer));
        for (lane, out) in self.0.iter().zip(out) {
            for (chunk, word) in out.chunks_exact_mut(4).zip(&lane.state) {
                chunk.copy_from_slice(&word.to_be_bytes());
            }
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
