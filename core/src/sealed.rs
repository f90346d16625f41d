//! Sealed publish requests, the client's side: what a phone or a Linux device sends to
//! `POST /v1/publish` so that a proxy or CDN terminating TLS sees neither the keys nor
//! their number, and how it opens the server's sealed answer.
//!
//! Requests: HPKE (RFC 9180) base mode, single shot, DHKEM(X25519, HKDF-SHA256),
//! HKDF-SHA256, AES-128-GCM, `info` = [`INFO`]. Wire format (`Content-Type:`
//! [`CONTENT_TYPE`]), always [`SEALED_BODY_LEN`] bytes:
//!
//! ```text
//! enc (32 bytes, the sender's ephemeral X25519 key) ‖ ciphertext (48 KiB + 16 bytes)
//! ```
//!
//! The plaintext is the publish JSON followed by ASCII spaces up to
//! [`SEALED_PLAINTEXT_LEN`] bytes (spaces are JSON whitespace, so the padded text is still
//! the same document).
//!
//! Answers are sealed back to the sender as Oblivious HTTP does (RFC 9458 §4.4): a secret
//! exported from the request's HPKE context ([`RESPONSE_EXPORT_CONTEXT`]), a fresh
//! 16-byte response nonce, HKDF to an AES-128-GCM key and nonce. Body
//! ([`RESPONSE_CONTENT_TYPE`]), always [`SEALED_RESPONSE_LEN`] bytes:
//! `response_nonce (16) ‖ AES-GCM(answer JSON padded to 512 bytes)`.
//!
//! The server opens requests with its own receiver (kith-server's `sealed` module) and
//! seals answers with [`ResponseSealer`]; both sides derive the answer's key here.
//! Randomness comes from the caller, as everywhere in this crate.
//!
//! ```
//! use kith_core::sealed::{self, SEALED_BODY_LEN};
//! # let server_key = [9u8; 32]; // X25519 public key from /v1/config's `hpke.publicKey`
//! let (body, opener) = sealed::seal(&server_key, br#"{"temporaryExposureKeys":[]}"#, &mut kith_core::OsRng)?;
//! assert_eq!(body.len(), SEALED_BODY_LEN);
//! // POST body; on an `application/kith-sealed-response` answer: opener.open(&answer_bytes)
//! # let _ = opener;
//! # Ok::<(), kith_core::Error>(())
//! ```

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes128Gcm, Nonce};
use hkdf::Hkdf;
use hpke::aead::AesGcm128;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, OpModeS, Serializable};
use rand_core::{CryptoRng, RngCore};
use sha2::Sha256;
use zeroize::Zeroizing;

/// HPKE `info`: binds every sealed body to this purpose and version.
pub const INFO: &[u8] = b"kith publish v1";

/// The exporter context of the answer's secret (RFC 9458 uses "message/bhttp response").
pub const RESPONSE_EXPORT_CONTEXT: &[u8] = b"kith publish response v1";

/// The media type of a sealed publish body.
pub const CONTENT_TYPE: &str = "application/kith-sealed";

/// The media type of a sealed answer.
pub const RESPONSE_CONTENT_TYPE: &str = "application/kith-sealed-response";

/// Length of the padded plaintext: the publish JSON plus spaces. Room for 30 keys and
/// 280 venue check-ins (20 a day for 14 days), so that every upload, with or without
/// check-ins, real or chaff, has the same size.
pub const SEALED_PLAINTEXT_LEN: usize = 48 * 1024;

/// Length of the encapsulated key.
pub const ENC_LEN: usize = 32;

/// Length of the AES-GCM tag.
const TAG_LEN: usize = 16;

/// Length of every sealed body: enc, padded plaintext, AES-GCM tag.
pub const SEALED_BODY_LEN: usize = ENC_LEN + SEALED_PLAINTEXT_LEN + TAG_LEN;

/// Length of an answer's plaintext (the padded JSON).
pub const RESPONSE_PLAINTEXT_LEN: usize = 512;

/// Length of the response nonce: max(Nn, Nk) for AES-128-GCM.
const RESPONSE_NONCE_LEN: usize = 16;

/// Length of every sealed answer.
pub const SEALED_RESPONSE_LEN: usize = RESPONSE_NONCE_LEN + RESPONSE_PLAINTEXT_LEN + TAG_LEN;

/// Why a request could not be sealed or an answer opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealedError {
    /// The server's HPKE public key is not 32 bytes of X25519.
    #[error("the server's HPKE public key is not 32 bytes of X25519")]
    InvalidKey,
    /// The document does not fit into the padded plaintext.
    #[error(
        "the document takes {len} bytes, more than the {SEALED_PLAINTEXT_LEN} a sealed body holds"
    )]
    TooLarge {
        /// The document's length.
        len: usize,
    },
    /// The answer is not sealed to this request (wrong length, tampered, another request's).
    #[error("the answer is not sealed to this request")]
    Unopenable,
}

/// Seals a publish JSON document to the server's HPKE public key; returns the body and
/// what opens the answer.
pub fn seal<R: RngCore + CryptoRng>(
    server_public_key: &[u8],
    json: &[u8],
    rng: &mut R,
) -> Result<(Vec<u8>, ResponseOpener), SealedError> {
    type Kem = X25519HkdfSha256;
    if json.len() > SEALED_PLAINTEXT_LEN {
        return Err(SealedError::TooLarge { len: json.len() });
    }
    let public = <Kem as hpke::Kem>::PublicKey::from_bytes(server_public_key)
        .map_err(|_| SealedError::InvalidKey)?;
    let mut plaintext = Zeroizing::new(vec![b' '; SEALED_PLAINTEXT_LEN]);
    plaintext[..json.len()].copy_from_slice(json);
    let failed = |_| SealedError::InvalidKey;
    let (enc, mut context) =
        hpke::setup_sender::<AesGcm128, HkdfSha256, Kem, R>(&OpModeS::Base, &public, INFO, rng)
            .map_err(failed)?;
    let ciphertext = context.seal(&plaintext, b"").map_err(failed)?;
    let mut secret = Zeroizing::new([0u8; 16]);
    context
        .export(RESPONSE_EXPORT_CONTEXT, secret.as_mut())
        .map_err(failed)?;
    let enc: [u8; ENC_LEN] = enc.to_bytes().into();
    let mut body = Vec::with_capacity(SEALED_BODY_LEN);
    body.extend_from_slice(&enc);
    body.extend_from_slice(&ciphertext);
    Ok((body, ResponseOpener(ResponseSealer { enc, secret })))
}

/// What a client keeps after sealing a request, to open the answer.
pub struct ResponseOpener(ResponseSealer);

impl fmt::Debug for ResponseOpener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResponseOpener(<redacted>)")
    }
}

impl ResponseOpener {
    /// The answer's plaintext (the padded JSON), if `body` is the answer to this request.
    pub fn open(&self, body: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealedError> {
        if body.len() != SEALED_RESPONSE_LEN {
            return Err(SealedError::Unopenable);
        }
        let (response_nonce, ciphertext) = body.split_at(RESPONSE_NONCE_LEN);
        let response_nonce = response_nonce
            .try_into()
            .map_err(|_| SealedError::Unopenable)?;
        let (cipher, nonce) = response_cipher(&self.0.secret, &self.0.enc, response_nonce);
        cipher
            .decrypt(Nonce::from_slice(&nonce), ciphertext)
            .map(Zeroizing::new)
            .map_err(|_| SealedError::Unopenable)
    }
}

/// Seals the answer to one sealed request (RFC 9458 §4.4, with this protocol's exporter
/// context). Holds the request's `enc` and the secret exported from its HPKE context.
#[derive(Clone)]
pub struct ResponseSealer {
    enc: [u8; ENC_LEN],
    secret: Zeroizing<[u8; 16]>,
}

impl fmt::Debug for ResponseSealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResponseSealer(<redacted>)")
    }
}

impl ResponseSealer {
    /// The sealer of the request whose encapsulated key is `enc` and whose HPKE context
    /// exported `secret` under [`RESPONSE_EXPORT_CONTEXT`] (the receiver computes both).
    pub fn new(enc: [u8; ENC_LEN], secret: Zeroizing<[u8; 16]>) -> Self {
        Self { enc, secret }
    }

    /// The request's encapsulated key: it identifies a sealed body, e.g. a replay.
    pub fn enc(&self) -> &[u8; ENC_LEN] {
        &self.enc
    }

    /// Seals `answer` (exactly [`RESPONSE_PLAINTEXT_LEN`] bytes) with a fresh nonce.
    pub fn seal<R: RngCore + CryptoRng>(&self, answer: &[u8], rng: &mut R) -> Vec<u8> {
        let mut response_nonce = [0u8; RESPONSE_NONCE_LEN];
        rng.fill_bytes(&mut response_nonce);
        let (cipher, nonce) = response_cipher(&self.secret, &self.enc, &response_nonce);
        let sealed = cipher
            .encrypt(Nonce::from_slice(&nonce), answer)
            .expect("AES-GCM seals any short message");
        [response_nonce.as_slice(), &sealed].concat()
    }
}

/// The AES-GCM key and nonce of an answer, from the exported secret, the request's
/// `enc` and the response nonce.
fn response_cipher(
    secret: &[u8; 16],
    enc: &[u8; ENC_LEN],
    response_nonce: &[u8; RESPONSE_NONCE_LEN],
) -> (Aes128Gcm, [u8; 12]) {
    let mut salt = [0u8; ENC_LEN + RESPONSE_NONCE_LEN];
    salt[..ENC_LEN].copy_from_slice(enc);
    salt[ENC_LEN..].copy_from_slice(response_nonce);
    let prk = Hkdf::<Sha256>::new(Some(&salt), secret);
    let mut key = Zeroizing::new([0u8; 16]);
    let mut nonce = [0u8; 12];
    prk.expand(b"key", key.as_mut()).expect("16 bytes");
    prk.expand(b"nonce", &mut nonce).expect("12 bytes");
    (Aes128Gcm::new((&*key).into()), nonce)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hpke::OpModeR;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    type Kem = X25519HkdfSha256;

    #[test]
    fn the_hpke_crate_opens_a_sealed_body_and_answers_open_only_for_their_request() {
        let mut rng = StdRng::seed_from_u64(3);
        let (private, public) = <Kem as hpke::Kem>::gen_keypair(&mut rng);
        let (body, opener) = seal(&public.to_bytes(), b"{\"a\":1}", &mut rng).unwrap();
        assert_eq!(body.len(), SEALED_BODY_LEN);
        let (enc, ciphertext) = body.split_at(ENC_LEN);
        let encapped = <Kem as hpke::Kem>::EncappedKey::from_bytes(enc).unwrap();
        let mut receiver = hpke::setup_receiver::<AesGcm128, HkdfSha256, Kem>(
            &OpModeR::Base,
            &private,
            &encapped,
            INFO,
        )
        .unwrap();
        let plaintext = receiver.open(ciphertext, b"").unwrap();
        assert_eq!(plaintext.len(), SEALED_PLAINTEXT_LEN);
        assert_eq!(&plaintext[..7], b"{\"a\":1}");
        assert!(plaintext[7..].iter().all(|&b| b == b' '));

        let mut secret = Zeroizing::new([0u8; 16]);
        receiver
            .export(RESPONSE_EXPORT_CONTEXT, secret.as_mut())
            .unwrap();
        let sealer = ResponseSealer::new(enc.try_into().unwrap(), secret);
        let answer = [b'z'; RESPONSE_PLAINTEXT_LEN];
        let sealed = sealer.seal(&answer, &mut rng);
        assert_eq!(sealed.len(), SEALED_RESPONSE_LEN);
        assert_eq!(&opener.open(&sealed).unwrap()[..], &answer[..]);

        let (_, other) = seal(&public.to_bytes(), b"{}", &mut rng).unwrap();
        assert_eq!(other.open(&sealed), Err(SealedError::Unopenable));
        let mut tampered = sealed.clone();
        tampered[20] ^= 1;
        assert_eq!(opener.open(&tampered), Err(SealedError::Unopenable));
        assert_eq!(opener.open(&sealed[1..]), Err(SealedError::Unopenable));
    }

    #[test]
    fn bad_keys_and_oversized_documents_are_refused() {
        let mut rng = StdRng::seed_from_u64(4);
        assert_eq!(
            seal(&[1; 31], b"{}", &mut rng).unwrap_err(),
            SealedError::InvalidKey
        );
        let (_, public) = <Kem as hpke::Kem>::gen_keypair(&mut rng);
        assert_eq!(
            seal(
                &public.to_bytes(),
                &[b' '; SEALED_PLAINTEXT_LEN + 1],
                &mut rng
            )
            .unwrap_err(),
            SealedError::TooLarge {
                len: SEALED_PLAINTEXT_LEN + 1
            }
        );
    }
}
