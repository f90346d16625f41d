//! Sealed publish bodies: HPKE (RFC 9180) base mode, single shot, with
//! DHKEM(X25519, HKDF-SHA256), HKDF-SHA256 and AES-128-GCM.
//!
//! Wire format (`Content-Type: application/kith-sealed`), always [`SEALED_BODY_LEN`] bytes:
//!
//! ```text
//! enc (32 bytes, the sender's ephemeral X25519 key) ‖ ciphertext (4096 + 16 bytes)
//! ```
//!
//! The plaintext is the publish JSON followed by ASCII spaces up to [`SEALED_PLAINTEXT_LEN`]
//! bytes (spaces are JSON whitespace, so the padded text is still the same document).
//! Every sealed request therefore has the same size, however many keys it carries,
//! and a TLS-terminating proxy sees neither the keys nor their number.

use std::fmt;

use hpke::aead::AesGcm128;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use rand_core::{CryptoRng, RngCore};

use crate::error::{AppError, Result};

type Kem = X25519HkdfSha256;

/// HPKE `info`: binds every sealed body to this purpose and version.
pub const INFO: &[u8] = b"kith publish v1";

/// The media type of a sealed publish body.
pub const CONTENT_TYPE: &str = "application/kith-sealed";

/// Length of the padded plaintext: the publish JSON plus spaces.
pub const SEALED_PLAINTEXT_LEN: usize = 4096;

/// Length of the encapsulated key.
pub const ENC_LEN: usize = 32;

/// Length of every sealed body: enc, padded plaintext, AES-GCM tag.
pub const SEALED_BODY_LEN: usize = ENC_LEN + SEALED_PLAINTEXT_LEN + 16;

/// The server's HPKE private key. Zeroized on drop by x25519-dalek; never printed.
#[derive(Clone)]
pub struct OpeningKey {
    private: <Kem as hpke::Kem>::PrivateKey,
    public: [u8; 32],
}

impl OpeningKey {
    /// A fresh key pair.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let (private, _) = Kem::gen_keypair(rng);
        Self::from_private(private)
    }

    /// A key from its 32 stored bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        <Kem as hpke::Kem>::PrivateKey::from_bytes(bytes)
            .ok()
            .map(Self::from_private)
    }

    fn from_private(private: <Kem as hpke::Kem>::PrivateKey) -> Self {
        let public = Kem::sk_to_pk(&private).to_bytes().into();
        Self { private, public }
    }

    /// The private key bytes, for storing them.
    pub fn expose_secret(&self) -> zeroize::Zeroizing<Vec<u8>> {
        zeroize::Zeroizing::new(self.private.to_bytes().to_vec())
    }

    /// The public key clients seal to.
    pub fn public_key(&self) -> [u8; 32] {
        self.public
    }

    /// Opens a sealed body and returns the padded plaintext (JSON and trailing spaces).
    pub fn open(&self, body: &[u8]) -> Result<zeroize::Zeroizing<Vec<u8>>> {
        if body.len() != SEALED_BODY_LEN {
            return Err(AppError::invalid(
                "invalid_sealed_body",
                format!(
                    "a sealed body must be exactly {SEALED_BODY_LEN} bytes, got {}",
                    body.len()
                ),
            ));
        }
        let (enc, ciphertext) = body.split_at(ENC_LEN);
        let undecryptable = || {
            AppError::invalid(
                "invalid_sealed_body",
                "the sealed body does not decrypt with the server's current HPKE key",
            )
        };
        let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(enc).map_err(|_| undecryptable())?;
        let plaintext = hpke::single_shot_open::<AesGcm128, HkdfSha256, Kem>(
            &OpModeR::Base,
            &self.private,
            &enc,
            INFO,
            ciphertext,
            &[],
        )
        .map_err(|_| undecryptable())?;
        Ok(zeroize::Zeroizing::new(plaintext))
    }
}

impl fmt::Debug for OpeningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OpeningKey(<redacted>)")
    }
}

/// Seals a publish JSON document to the server's public key, as a phone does.
///
/// Fails when the key is not a valid X25519 key or the document does not fit
/// into [`SEALED_PLAINTEXT_LEN`] bytes.
pub fn seal<R: RngCore + CryptoRng>(
    server_public_key: &[u8],
    json: &[u8],
    rng: &mut R,
) -> Result<Vec<u8>> {
    if json.len() > SEALED_PLAINTEXT_LEN {
        return Err(AppError::PayloadTooLarge {
            limit: SEALED_PLAINTEXT_LEN,
        });
    }
    let public = <Kem as hpke::Kem>::PublicKey::from_bytes(server_public_key).map_err(|_| {
        AppError::invalid(
            "invalid_hpke_key",
            "an HPKE public key is 32 bytes of X25519",
        )
    })?;
    let mut plaintext = zeroize::Zeroizing::new(vec![b' '; SEALED_PLAINTEXT_LEN]);
    plaintext[..json.len()].copy_from_slice(json);
    let (enc, ciphertext) = hpke::single_shot_seal::<AesGcm128, HkdfSha256, Kem, R>(
        &OpModeS::Base,
        &public,
        INFO,
        &plaintext,
        &[],
        rng,
    )
    .map_err(|_| AppError::invalid("invalid_hpke_key", "sealing to this key failed"))?;
    let mut body = Vec::with_capacity(SEALED_BODY_LEN);
    body.extend_from_slice(&enc.to_bytes());
    body.extend_from_slice(&ciphertext);
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn seal_then_open_gives_the_padded_document() {
        let mut rng = StdRng::seed_from_u64(1);
        let key = OpeningKey::generate(&mut rng);
        let short = seal(&key.public_key(), b"{\"a\":1}", &mut rng).unwrap();
        let long = seal(&key.public_key(), &[b'x'; 4000], &mut rng).unwrap();
        assert_eq!(short.len(), SEALED_BODY_LEN);
        assert_eq!(
            long.len(),
            SEALED_BODY_LEN,
            "size does not depend on content"
        );
        let opened = key.open(&short).unwrap();
        assert_eq!(opened.len(), SEALED_PLAINTEXT_LEN);
        assert_eq!(&opened[..7], b"{\"a\":1}");
        assert!(opened[7..].iter().all(|&b| b == b' '));
    }

    #[test]
    fn stored_key_bytes_round_trip() {
        let key = OpeningKey::generate(&mut StdRng::seed_from_u64(2));
        let again = OpeningKey::from_bytes(&key.expose_secret()).unwrap();
        assert_eq!(again.public_key(), key.public_key());
        assert_eq!(format!("{key:?}"), "OpeningKey(<redacted>)");
    }

    #[test]
    fn tampering_and_wrong_keys_are_rejected() {
        let mut rng = StdRng::seed_from_u64(3);
        let key = OpeningKey::generate(&mut rng);
        let other = OpeningKey::generate(&mut rng);
        let mut body = seal(&key.public_key(), b"{}", &mut rng).unwrap();
        assert!(other.open(&body).is_err());
        body[100] ^= 1;
        assert!(key.open(&body).is_err());
        assert!(key.open(&body[..body.len() - 1]).is_err());
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
    }
}
