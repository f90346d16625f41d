//! Secret keys: the daily Temporary Exposure Key and the two keys derived from it.

use std::fmt;

use aes::Aes128Enc;
use aes::cipher::{BlockEncrypt, KeyInit};
use rand_core::{CryptoRng, RngCore};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::KeyError;
use crate::hkdf::{Lanes, Prk};
use crate::identifiers::{Aem, Rpi};
use crate::interval::{IntervalNumber, KeyValidity};
use crate::metadata::{BluetoothMetadata, RawMetadata};
use crate::payload::BeaconPayload;

/// Length of every key in the protocol, in bytes.
pub const KEY_LEN: usize = 16;

/// A Temporary Exposure Key (TEK): 16 secret bytes and the intervals it is valid for.
///
/// Zeroized on drop, compared in constant time, and never shown by `Debug`.
/// Read the bytes only through [`expose_secret`](Self::expose_secret), e.g. to upload
/// them after a positive test.
#[derive(Clone, ZeroizeOnDrop)]
pub struct TemporaryExposureKey {
    key: [u8; KEY_LEN],
    #[zeroize(skip)]
    validity: KeyValidity,
}

impl TemporaryExposureKey {
    /// A fresh random key for the UTC day containing `now`.
    ///
    /// Pass the OS generator ([`OsRng`](crate::OsRng)) outside tests.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R, now: IntervalNumber) -> Self {
        let mut key = [0u8; KEY_LEN];
        rng.fill_bytes(&mut key);
        let tek = Self::from_bytes(key, KeyValidity::day_of(now));
        key.zeroize();
        tek
    }

    /// A key with known bytes, such as a downloaded diagnosis key.
    pub fn from_bytes(key: [u8; KEY_LEN], validity: KeyValidity) -> Self {
        Self { key, validity }
    }

    /// A key read from a slice; fails unless it has exactly 16 bytes.
    pub fn from_slice(key: &[u8], validity: KeyValidity) -> Result<Self, KeyError> {
        let key: [u8; KEY_LEN] = key.try_into().map_err(|_| KeyError::Length(key.len()))?;
        Ok(Self::from_bytes(key, validity))
    }

    /// The secret key bytes.
    pub fn expose_secret(&self) -> &[u8; KEY_LEN] {
        &self.key
    }

    /// The intervals this key is valid for.
    pub fn validity(&self) -> KeyValidity {
        self.validity
    }

    /// The same key with a shorter validity, as when today's key is released early.
    pub fn with_validity(&self, validity: KeyValidity) -> Self {
        Self::from_bytes(self.key, validity)
    }

    /// Both derived keys; cheaper than calling [`rpi_key`](Self::rpi_key) and
    /// [`aem_key`](Self::aem_key) because the HKDF extract step is shared.
    pub fn derive_keys(&self) -> (RpiKey, AemKey) {
        let mut prk = Prk::extract(&self.key);
        (
            RpiKey::from_prk(&mut prk, b"EN-RPIK"),
            AemKey::from_prk(&mut prk, b"EN-AEMK"),
        )
    }

    /// RPIK = HKDF(TEK, no salt, "EN-RPIK", 16): the key of the beacon identifiers.
    pub fn rpi_key(&self) -> RpiKey {
        RpiKey::from_prk(&mut Prk::extract(&self.key), b"EN-RPIK")
    }

    /// The RPIK bytes of `N` published keys, derived side by side: faster per key
    /// than one at a time, because the CPU overlaps their hash computations.
    ///
    /// Nothing is zeroized: a diagnosis key is public once published, and zeroizing
    /// the intermediate values costs a fifth of a derivation.
    pub(crate) fn published_rpi_keys<const N: usize>(teks: [&Self; N]) -> [[u8; KEY_LEN]; N] {
        let mut lanes = Lanes::new();
        lanes.extract(teks.map(|tek| &tek.key));
        let mut keys = [[0; KEY_LEN]; N];
        lanes.expand_16(b"EN-RPIK", &mut keys);
        keys
    }

    /// AEMK = HKDF(TEK, no salt, "EN-AEMK", 16): the key of the beacon metadata.
    pub fn aem_key(&self) -> AemKey {
        AemKey::from_prk(&mut Prk::extract(&self.key), b"EN-AEMK")
    }

    /// The beacon this key broadcasts during `interval`.
    pub fn beacon(&self, interval: IntervalNumber, metadata: BluetoothMetadata) -> BeaconPayload {
        let (rpik, aemk) = self.derive_keys();
        let rpi = rpik.rpi(interval);
        BeaconPayload::new(rpi, aemk.encrypt(rpi, metadata))
    }
}

impl ConstantTimeEq for TemporaryExposureKey {
    fn ct_eq(&self, other: &Self) -> subtle::Choice {
        self.key.ct_eq(&other.key)
    }
}

impl PartialEq for TemporaryExposureKey {
    fn eq(&self, other: &Self) -> bool {
        bool::from(self.ct_eq(other)) && self.validity == other.validity
    }
}

impl Eq for TemporaryExposureKey {}

impl fmt::Debug for TemporaryExposureKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TemporaryExposureKey")
            .field("key", &"<redacted>")
            .field("validity", &self.validity)
            .finish()
    }
}

/// The Rolling Proximity Identifier Key (RPIK), ready to encrypt identifiers.
///
/// Holds the expanded AES key schedule, so deriving many identifiers pays for the
/// key expansion once. Zeroized on drop.
#[derive(Clone)]
pub struct RpiKey {
    key: Zeroizing<[u8; KEY_LEN]>,
    cipher: Aes128Enc,
}

/// Identifiers encrypted per call to the block cipher: enough for its widest
/// parallel path, small enough to live on the stack.
const RPI_BATCH: usize = 48;

impl RpiKey {
    /// An RPIK from its bytes.
    pub fn from_bytes(key: &[u8; KEY_LEN]) -> Self {
        Self {
            key: Zeroizing::new(*key),
            cipher: Aes128Enc::new(key.into()),
        }
    }

    fn from_prk(prk: &mut Prk, info: &[u8]) -> Self {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        prk.expand_16(info, &mut key);
        Self::from_bytes(&key)
    }

    /// The secret key bytes.
    pub fn expose_secret(&self) -> &[u8; KEY_LEN] {
        &self.key
    }

    /// RPI = AES-128(RPIK, "EN-RPI" ‖ 0×6 ‖ interval little-endian).
    pub fn rpi(&self, interval: IntervalNumber) -> Rpi {
        let mut block = aes::Block::from(padded_data(interval));
        self.cipher.encrypt_block(&mut block);
        Rpi::from_bytes(block.into())
    }

    /// The identifiers of consecutive intervals starting at `first`, one per slot of `out`.
    ///
    /// This is the hot path of matching: it fills the cipher's parallel pipeline
    /// instead of encrypting one block at a time.
    ///
    /// # Panics
    /// If `first + out.len()` does not fit in a `u32` interval number.
    pub fn rpis_into(&self, first: IntervalNumber, out: &mut [Rpi]) {
        let first = first.get();
        u32::try_from(out.len())
            .ok()
            .and_then(|len| first.checked_add(len))
            .expect("interval range within u32");
        // The constant prefix is written once; per block only the interval changes, so
        // filling the input costs one small store per identifier.
        let mut padded = [aes::Block::from(padded_data(IntervalNumber::new(0))); RPI_BATCH];
        let mut blocks = [aes::Block::default(); RPI_BATCH];
        for (chunk_index, chunk) in out.chunks_mut(RPI_BATCH).enumerate() {
            let (padded, blocks) = (&mut padded[..chunk.len()], &mut blocks[..chunk.len()]);
            let chunk_first = first + (chunk_index * RPI_BATCH) as u32;
            for (interval, block) in (chunk_first..).zip(padded.iter_mut()) {
                block[12..].copy_from_slice(&interval.to_le_bytes());
            }
            self.encrypt_padded(padded, blocks);
            for (rpi, block) in chunk.iter_mut().zip(blocks.iter()) {
                *rpi = Rpi::from_bytes((*block).into());
            }
        }
    }

    /// Encrypts the cipher inputs written by [`padded_blocks`] into the RPIs `out`.
    pub(crate) fn encrypt_padded(&self, padded: &[aes::Block], out: &mut [aes::Block]) {
        self.cipher
            .encrypt_blocks_b2b(padded, out)
            .expect("as many inputs as outputs");
    }

    /// All identifiers of `validity`, in interval order.
    pub fn rpis(&self, validity: KeyValidity) -> Vec<Rpi> {
        let mut out = vec![Rpi::from_bytes([0; 16]); validity.period().get() as usize];
        self.rpis_into(validity.start(), &mut out);
        out
    }
}

/// The cipher inputs (PaddedData) of the intervals `first, first + 1, …`, one per block.
///
/// Interval numbers past `u32::MAX` wrap: matching fills whole days, and the last day
/// interval numbers reach is cut short; no key is valid in its wrapped part.
pub(crate) fn padded_blocks(first: u32, blocks: &mut [aes::Block]) {
    for (offset, block) in (0..).zip(blocks) {
        *block = padded_data(IntervalNumber::new(first.wrapping_add(offset))).into();
    }
}

/// PaddedData = "EN-RPI" ‖ 6 zero bytes ‖ interval number (little-endian u32).
fn padded_data(interval: IntervalNumber) -> [u8; 16] {
    // Built in a register: assembling it byte-wise on the stack stalls store forwarding,
    // which cost more than the AES rounds in the batch loop.
    const PREFIX: u128 = u128::from_le_bytes(*b"EN-RPI\0\0\0\0\0\0\0\0\0\0");
    (PREFIX | (u128::from(interval.get()) << 96)).to_le_bytes()
}

impl fmt::Debug for RpiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RpiKey(<redacted>)")
    }
}

/// The Associated Encrypted Metadata Key (AEMK), ready to encrypt metadata.
///
/// Holds the expanded AES key schedule, so the metadata of many identifiers (every
/// sighting of a matched key) pays for the key expansion once. Zeroized on drop.
#[derive(Clone)]
pub struct AemKey {
    key: Zeroizing<[u8; KEY_LEN]>,
    cipher: Aes128Enc,
}

impl AemKey {
    /// An AEMK from its bytes.
    pub fn from_bytes(key: &[u8; KEY_LEN]) -> Self {
        Self {
            key: Zeroizing::new(*key),
            cipher: Aes128Enc::new(key.into()),
        }
    }

    fn from_prk(prk: &mut Prk, info: &[u8]) -> Self {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        prk.expand_16(info, &mut key);
        Self::from_bytes(&key)
    }

    /// The secret key bytes.
    pub fn expose_secret(&self) -> &[u8; KEY_LEN] {
        &self.key
    }

    /// AEM = AES-128-CTR(AEMK, IV = RPI, metadata).
    pub fn encrypt(&self, rpi: Rpi, metadata: BluetoothMetadata) -> Aem {
        Aem::from_bytes(self.apply_keystream(rpi, metadata.to_bytes()))
    }

    /// The AEMs of `rpis`, each hiding `metadata`: what [`encrypt`](Self::encrypt)
    /// gives for each identifier, with the cipher working on several blocks at once
    /// (a sender's whole day of beacons costs a fraction of one block at a time).
    pub fn encrypt_all(&self, rpis: &[Rpi], metadata: BluetoothMetadata) -> Vec<Aem> {
        let mut keystream: Vec<aes::Block> = rpis
            .iter()
            .map(|rpi| aes::Block::from(rpi.to_bytes()))
            .collect();
        self.cipher.encrypt_blocks(&mut keystream);
        let plain = metadata.to_bytes();
        keystream
            .iter()
            .map(|key| Aem::from_bytes(std::array::from_fn(|i| plain[i] ^ key[i])))
            .collect()
    }

    /// The metadata bytes hidden in `aem`, unvalidated; see [`BluetoothMetadata::parse`].
    pub fn decrypt(&self, rpi: Rpi, aem: Aem) -> RawMetadata {
        self.apply_keystream(rpi, aem.to_bytes())
    }

    fn apply_keystream(&self, rpi: Rpi, mut data: [u8; 4]) -> [u8; 4] {
        // CTR mode with the RPI as the initial counter block: 4 bytes take only the
        // first block of keystream.
        let mut keystream = aes::Block::from(rpi.to_bytes());
        self.cipher.encrypt_block(&mut keystream);
        for (byte, key) in data.iter_mut().zip(keystream.iter()) {
            *byte ^= key;
        }
        data
    }
}

impl fmt::Debug for AemKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AemKey(<redacted>)")
    }
}
