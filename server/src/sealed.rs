//! Sealed publish bodies and their sealed answers.
//!
//! Requests: HPKE (RFC 9180) base mode, single shot, with DHKEM(X25519, HKDF-SHA256),
//! HKDF-SHA256 and AES-128-GCM. Wire format (`Content-Type: application/kith-sealed`),
//! always [`SEALED_BODY_LEN`] bytes:
//!
//! ```text
//! enc (32 bytes, the sender's ephemeral X25519 key) ‖ ciphertext (49 152 + 16 bytes)
//! ```
//!
//! The plaintext is the publish JSON followed by ASCII spaces up to [`SEALED_PLAINTEXT_LEN`]
//! bytes (spaces are JSON whitespace, so the padded text is still the same document).
//! Every sealed request therefore has the same size, however many keys and check-ins it carries,
//! and a TLS-terminating proxy sees neither the keys nor their number.
//!
//! Answers are sealed back to the sender as Oblivious HTTP does (RFC 9458 §4.4): a
//! secret exported from the request's HPKE context, a fresh 16-byte response nonce,
//! HKDF to an AES-128-GCM key and nonce. Body (`application/kith-sealed-response`),
//! always [`SEALED_RESPONSE_LEN`] bytes: `response_nonce (16) ‖ AES-GCM(answer JSON)`.
//!
//! The receiver is written out here (on x25519-dalek, hkdf and aes-gcm) rather than
//! through the `hpke` crate because that crate derives the server's public key from its
//! private key again in every decapsulation, a third of the cost of an open; the tests
//! check it against the `hpke` crate both ways. The client's side (sealing, opening the
//! answer), the answer's sealer and the wire constants are `kith_core::sealed`, which
//! phones and kith-agent use; they are re-exported here.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes128Gcm, Nonce};
use hkdf::Hkdf;
use rand_core::{CryptoRng, RngCore};
use sha2::Sha256;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::{Zeroize, Zeroizing};

use crate::error::{AppError, Result};

pub use kith_core::sealed::{
    CONTENT_TYPE, ENC_LEN, INFO, RESPONSE_CONTENT_TYPE, RESPONSE_EXPORT_CONTEXT,
    RESPONSE_PLAINTEXT_LEN, ResponseOpener, ResponseSealer, SEALED_BODY_LEN, SEALED_PLAINTEXT_LEN,
    SEALED_RESPONSE_LEN, seal,
};

const KEM_SUITE: &[u8] = b"KEM\x00\x20";
const HPKE_SUITE: &[u8] = b"HPKE\x00\x20\x00\x01\x00\x01";

/// RFC 9180 `LabeledExtract`: the pseudorandom key, and HKDF on it for expanding.
fn labeled_extract(
    suite: &[u8],
    salt: &[u8],
    label: &[u8],
    ikm: &[u8],
) -> (Zeroizing<[u8; 32]>, Hkdf<Sha256>) {
    let mut labeled = Zeroizing::new(Vec::with_capacity(
        7 + suite.len() + label.len() + ikm.len(),
    ));
    labeled.extend_from_slice(b"HPKE-v1");
    labeled.extend_from_slice(suite);
    labeled.extend_from_slice(label);
    labeled.extend_from_slice(ikm);
    let (prk, hkdf) = Hkdf::<Sha256>::extract(Some(salt), &labeled);
    (Zeroizing::new(prk.into()), hkdf)
}

/// RFC 9180 `LabeledExpand`.
fn labeled_expand(suite: &[u8], prk: &Hkdf<Sha256>, label: &[u8], info: &[u8], out: &mut [u8]) {
    let length = (out.len() as u16).to_be_bytes();
    let parts: [&[u8]; 5] = [&length, b"HPKE-v1", suite, label, info];
    // Only called with lengths far below HKDF-SHA256's 8160-byte limit.
    prk.expand_multi_info(&parts, out)
        .expect("HKDF output length within limits");
}

/// The server's HPKE key pair. The private part is zeroized on drop (x25519-dalek);
/// the public part is computed once.
#[derive(Clone)]
pub struct OpeningKey {
    private: StaticSecret,
    public: [u8; 32],
}

impl OpeningKey {
    /// A fresh key pair.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        Self::from_private(StaticSecret::random_from_rng(rng))
    }

    /// A key from its 32 stored bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let mut array: [u8; 32] = bytes.try_into().ok()?;
        let private = StaticSecret::from(array);
        array.zeroize();
        Some(Self::from_private(private))
    }

    fn from_private(private: StaticSecret) -> Self {
        let public = PublicKey::from(&private).to_bytes();
        Self { private, public }
    }

    /// The private key bytes, for storing them.
    pub fn expose_secret(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(self.private.to_bytes().to_vec())
    }

    /// The public key clients seal to.
    pub fn public_key(&self) -> [u8; 32] {
        self.public
    }

    /// Opens a sealed body: the padded plaintext (JSON and trailing spaces) and the
    /// key that seals the answer.
    pub fn open(&self, body: &[u8]) -> Result<(Zeroizing<Vec<u8>>, ResponseSealer)> {
        if body.len() != SEALED_BODY_LEN {
            return Err(AppError::invalid(
                "invalid_sealed_body",
                format!(
                    "a sealed body must be exactly {SEALED_BODY_LEN} bytes, got {}",
                    body.len()
                ),
            ));
        }
        let undecryptable = || {
            AppError::invalid(
                "invalid_sealed_body",
                "the sealed body does not decrypt with the server's current HPKE key",
            )
        };
        let (enc, ciphertext) = body.split_at(ENC_LEN);
        let enc: [u8; ENC_LEN] = enc.try_into().map_err(|_| undecryptable())?;
        // DHKEM(X25519, HKDF-SHA256) Decap, RFC 9180 §4.1.
        let dh = self.private.diffie_hellman(&PublicKey::from(enc));
        if !dh.was_contributory() {
            return Err(undecryptable());
        }
        let mut kem_context = [0u8; 64];
        kem_context[..32].copy_from_slice(&enc);
        kem_context[32..].copy_from_slice(&self.public);
        let (_, eae_prk) = labeled_extract(KEM_SUITE, b"", b"eae_prk", dh.as_bytes());
        let mut shared_secret = Zeroizing::new([0u8; 32]);
        labeled_expand(
            KEM_SUITE,
            &eae_prk,
            b"shared_secret",
            &kem_context,
            shared_secret.as_mut(),
        );
        // KeySchedule in base mode, RFC 9180 §5.1.
        let context = Context::base(shared_secret.as_ref());
        let plaintext = Aes128Gcm::new((&*context.key).into())
            .decrypt(
                Nonce::from_slice(&*context.base_nonce),
                Payload {
                    msg: ciphertext,
                    aad: b"",
                },
            )
            .map_err(|_| undecryptable())?;
        let plaintext = Zeroizing::new(plaintext);
        let mut secret = Zeroizing::new([0u8; 16]);
        context.export(RESPONSE_EXPORT_CONTEXT, secret.as_mut());
        Ok((plaintext, ResponseSealer::new(enc, secret)))
    }
}

impl fmt::Debug for OpeningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OpeningKey(<redacted>)")
    }
}

/// An HPKE base-mode receiver context after the key schedule.
struct Context {
    key: Zeroizing<[u8; 16]>,
    base_nonce: Zeroizing<[u8; 12]>,
    exporter: Hkdf<Sha256>,
}

impl Context {
    fn base(shared_secret: &[u8]) -> Self {
        // key_schedule_context = mode (0, base) ‖ psk_id_hash ‖ info_hash
        let mut schedule_context = [0u8; 65];
        let (psk_id_hash, _) = labeled_extract(HPKE_SUITE, b"", b"psk_id_hash", b"");
        let (info_hash, _) = labeled_extract(HPKE_SUITE, b"", b"info_hash", INFO);
        schedule_context[1..33].copy_from_slice(psk_id_hash.as_ref());
        schedule_context[33..].copy_from_slice(info_hash.as_ref());
        // The PSK is empty in base mode.
        let (_, secret) = labeled_extract(HPKE_SUITE, shared_secret, b"secret", b"");
        let mut key = Zeroizing::new([0u8; 16]);
        let mut base_nonce = Zeroizing::new([0u8; 12]);
        let mut exporter_secret = Zeroizing::new([0u8; 32]);
        labeled_expand(HPKE_SUITE, &secret, b"key", &schedule_context, key.as_mut());
        labeled_expand(
            HPKE_SUITE,
            &secret,
            b"base_nonce",
            &schedule_context,
            base_nonce.as_mut(),
        );
        labeled_expand(
            HPKE_SUITE,
            &secret,
            b"exp",
            &schedule_context,
            exporter_secret.as_mut(),
        );
        let exporter = Hkdf::from_prk(exporter_secret.as_ref()).expect("32-byte PRK");
        Self {
            key,
            base_nonce,
            exporter,
        }
    }

    /// RFC 9180 §5.3 `Context.Export`.
    fn export(&self, exporter_context: &[u8], out: &mut [u8]) {
        labeled_expand(HPKE_SUITE, &self.exporter, b"sec", exporter_context, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hpke::aead::AesGcm128;
    use hpke::kdf::HkdfSha256;
    use hpke::kem::X25519HkdfSha256;
    use hpke::{Deserializable, OpModeS, Serializable};
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    type Kem = X25519HkdfSha256;

    #[test]
    fn seal_then_open_gives_the_padded_document_and_answers_open_for_the_sender() {
        let mut rng = StdRng::seed_from_u64(1);
        let key = OpeningKey::generate(&mut rng);
        let (short, opener) = seal(&key.public_key(), b"{\"a\":1}", &mut rng).unwrap();
        let (long, _) = seal(&key.public_key(), &[b'x'; 4000], &mut rng).unwrap();
        assert_eq!(short.len(), SEALED_BODY_LEN);
        assert_eq!(
            long.len(),
            SEALED_BODY_LEN,
            "size does not depend on content"
        );
        let (opened, sealer) = key.open(&short).unwrap();
        assert_eq!(opened.len(), SEALED_PLAINTEXT_LEN);
        assert_eq!(&opened[..7], b"{\"a\":1}");
        assert!(opened[7..].iter().all(|&b| b == b' '));

        let answer = [b'z'; RESPONSE_PLAINTEXT_LEN];
        let sealed = sealer.seal(&answer, &mut rng);
        assert_eq!(sealed.len(), SEALED_RESPONSE_LEN);
        assert_eq!(&opener.open(&sealed).unwrap()[..], &answer[..]);
        assert_ne!(
            sealed,
            sealer.seal(&answer, &mut rng),
            "a fresh nonce each time"
        );
        // Another request's opener cannot read it.
        let (_, other) = seal(&key.public_key(), b"{}", &mut rng).unwrap();
        assert!(other.open(&sealed).is_err());
    }

    #[test]
    fn the_receiver_agrees_with_the_hpke_crate() {
        let mut rng = StdRng::seed_from_u64(5);
        let key = OpeningKey::generate(&mut rng);
        let public = <Kem as hpke::Kem>::PublicKey::from_bytes(&key.public_key()).unwrap();
        let private = <Kem as hpke::Kem>::PrivateKey::from_bytes(&key.expose_secret()).unwrap();
        assert_eq!(
            <Kem as hpke::Kem>::sk_to_pk(&private).to_bytes().as_slice(),
            key.public_key()
        );
        for length in [0, 1, 100, SEALED_PLAINTEXT_LEN] {
            let plaintext: Vec<u8> = (0..length).map(|i| i as u8).collect();
            let (enc, ciphertext) = hpke::single_shot_seal::<AesGcm128, HkdfSha256, Kem, _>(
                &OpModeS::Base,
                &public,
                INFO,
                &plaintext,
                b"",
                &mut rng,
            )
            .unwrap();
            let body = [enc.to_bytes().as_slice(), &ciphertext].concat();
            if body.len() == SEALED_BODY_LEN {
                assert_eq!(&key.open(&body).unwrap().0[..], &plaintext[..]);
            }
            // The exported secret matches the crate's receiver context.
            let mut receiver = hpke::setup_receiver::<AesGcm128, HkdfSha256, Kem>(
                &hpke::OpModeR::Base,
                &private,
                &enc,
                INFO,
            )
            .unwrap();
            assert_eq!(receiver.open(&ciphertext, b"").unwrap(), plaintext);
            let mut theirs = [0u8; 16];
            receiver
                .export(RESPONSE_EXPORT_CONTEXT, &mut theirs)
                .unwrap();
            let mut kem_context = [0u8; 64];
            kem_context[..32].copy_from_slice(&enc.to_bytes());
            kem_context[32..].copy_from_slice(&key.public_key());
            let enc_bytes: [u8; 32] = enc.to_bytes().into();
            let dh = key.private.diffie_hellman(&PublicKey::from(enc_bytes));
            let eae_prk = labeled_extract(KEM_SUITE, b"", b"eae_prk", dh.as_bytes()).1;
            let mut shared = [0u8; 32];
            labeled_expand(
                KEM_SUITE,
                &eae_prk,
                b"shared_secret",
                &kem_context,
                &mut shared,
            );
            let mut ours = [0u8; 16];
            Context::base(&shared).export(RESPONSE_EXPORT_CONTEXT, &mut ours);
            assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn stored_key_bytes_round_trip() {
        let key = OpeningKey::generate(&mut StdRng::seed_from_u64(2));
        let again = OpeningKey::from_bytes(&key.expose_secret()).unwrap();
        assert_eq!(again.public_key(), key.public_key());
        assert_eq!(format!("{key:?}"), "OpeningKey(<redacted>)");
        assert!(OpeningKey::from_bytes(&[1; 31]).is_none());
    }

    #[test]
    fn tampering_and_wrong_keys_are_rejected() {
        let mut rng = StdRng::seed_from_u64(3);
        let key = OpeningKey::generate(&mut rng);
        let other = OpeningKey::generate(&mut rng);
        let (mut body, _) = seal(&key.public_key(), b"{}", &mut rng).unwrap();
        assert!(other.open(&body).is_err());
        body[100] ^= 1;
        assert!(key.open(&body).is_err());
        assert!(key.open(&body[..body.len() - 1]).is_err());
        // The all-zero point gives an all-zero shared secret: refused.
        let mut zero = body.clone();
        zero[..ENC_LEN].fill(0);
        assert!(key.open(&zero).is_err());
        assert!(
            seal(
                &key.public_key(),
                &[b' '; SEALED_PLAINTEXT_LEN + 1],
                &mut rng
            )
            .is_err()
        );
    }

    proptest! {
        #[test]
        fn open_never_panics(bytes in proptest::collection::vec(any::<u8>(), SEALED_BODY_LEN..=SEALED_BODY_LEN)) {
            let key = OpeningKey::generate(&mut StdRng::seed_from_u64(4));
            prop_assert!(key.open(&bytes).is_err());
        }

        #[test]
        fn opening_answers_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let mut rng = StdRng::seed_from_u64(6);
            let key = OpeningKey::generate(&mut rng);
            let (_, opener) = seal(&key.public_key(), b"{}", &mut rng).unwrap();
            prop_assert!(opener.open(&bytes).is_err());
        }
    }
}
