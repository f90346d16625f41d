//! Export signing keys: ECDSA P-256 with SHA-256, keys in the PEM formats `openssl` uses.

use std::fmt;

use p256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use p256::ecdsa::{self, Signature};
use p256::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::{Error, Result, SignatureError};

/// OID of ECDSA with SHA-256 (`ecdsa-with-SHA256`), the only algorithm GAEN exports use.
pub const ECDSA_P256_SHA256_OID: &str = "1.2.840.10045.4.3.2";

/// SHA-256 of a whole `export.bin`: hashed once, however many keys sign or verify it.
///
/// Hashing 16 MB takes far longer than one ECDSA operation, so a file listing many
/// signatures must not cost one hash each.
pub(crate) struct ExportDigest([u8; 32]);

impl ExportDigest {
    pub(crate) fn of(export_bin: &[u8]) -> Self {
        Self(Sha256::digest(export_bin).into())
    }
}

/// A P-256 private key that signs export files.
///
/// Zeroized on drop (the inner key clears its scalar), never shown by `Debug`, not
/// `Clone`. Signing is deterministic (RFC 6979): the same key and bytes always give
/// the same signature, so an export rebuilt from the same keys is byte-identical.
pub struct SigningKey(ecdsa::SigningKey);

impl SigningKey {
    /// A fresh random key; pass the OS generator ([`OsRng`](crate::OsRng)) outside tests.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        Self(ecdsa::SigningKey::random(rng))
    }

    /// A key from an unencrypted PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), as written by
    /// `openssl ecparam -genkey -name prime256v1 | openssl pkcs8 -topk8 -nocrypt`.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self> {
        ecdsa::SigningKey::from_pkcs8_pem(pem)
            .map(Self)
            .map_err(|_| Error::Signature(SignatureError::InvalidSigningKey))
    }

    /// The key as unencrypted PKCS#8 PEM, readable by `openssl pkey`; zeroized on drop.
    pub fn to_pkcs8_pem(&self) -> Zeroizing<String> {
        self.0
            .to_pkcs8_pem(LineEnding::LF)
            .expect("a valid P-256 key always encodes as PKCS#8")
    }

    /// The public half, to publish so that devices can verify exports.
    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey(*self.0.verifying_key())
    }

    /// ECDSA P-256 signature of a SHA-256 digest, DER-encoded; the same bytes as
    /// signing the message itself.
    pub(crate) fn sign(&self, digest: &ExportDigest) -> Vec<u8> {
        let signature: Signature = self
            .0
            .sign_prehash(&digest.0)
            .expect("a 32-byte digest is always a valid P-256 prehash");
        signature.to_der().as_bytes().to_vec()
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

/// A P-256 public key that verifies export files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifyingKey(ecdsa::VerifyingKey);

impl VerifyingKey {
    /// A key from SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`), as written
    /// by `openssl pkey -pubout`.
    pub fn from_public_key_pem(pem: &str) -> Result<Self> {
        ecdsa::VerifyingKey::from_public_key_pem(pem)
            .map(Self)
            .map_err(|_| Error::Signature(SignatureError::InvalidVerifyingKey))
    }

    /// A key from SubjectPublicKeyInfo DER, the base64 form Android's GAEN configuration uses.
    pub fn from_public_key_der(der: &[u8]) -> Result<Self> {
        ecdsa::VerifyingKey::from_public_key_der(der)
            .map(Self)
            .map_err(|_| Error::Signature(SignatureError::InvalidVerifyingKey))
    }

    /// The key as SubjectPublicKeyInfo PEM, with `\n` line endings.
    pub fn to_public_key_pem(&self) -> String {
        self.0
            .to_public_key_pem(LineEnding::LF)
            .expect("a valid P-256 point always encodes as SubjectPublicKeyInfo")
    }

    /// The key as SubjectPublicKeyInfo DER.
    pub fn to_public_key_der(&self) -> Vec<u8> {
        self.0
            .to_public_key_der()
            .expect("a valid P-256 point always encodes as SubjectPublicKeyInfo")
            .into_vec()
    }

    /// Checks a DER-encoded ECDSA P-256 signature over SHA-256(`message`), such as one
    /// made by `openssl dgst -sha256 -sign`.
    pub fn verify(&self, message: &[u8], der_signature: &[u8]) -> Result<()> {
        self.verify_digest(&ExportDigest::of(message), der_signature)
    }

    /// [`verify`](Self::verify) for a message hashed beforehand.
    pub(crate) fn verify_digest(&self, digest: &ExportDigest, der_signature: &[u8]) -> Result<()> {
        let signature = Signature::from_der(der_signature)
            .map_err(|_| Error::Signature(SignatureError::Mismatch))?;
        self.0
            .verify_prehash(&digest.0, &signature)
            .map_err(|_| Error::Signature(SignatureError::Mismatch))
    }
}

/// Which key signed an export: GAEN's `SignatureInfo`.
///
/// Devices pick the public key by `key_id` and `key_version`. By Apple's and Google's
/// convention the id is the region's mobile country code (e.g. "310", "222") and the
/// version names the key's generation (e.g. "v1").
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SignatureInfo {
    key_id: String,
    key_version: String,
    algorithm: String,
}

impl SignatureInfo {
    /// Describes a key for ECDSA P-256 SHA-256 signatures.
    pub fn new(key_id: impl Into<String>, key_version: impl Into<String>) -> Self {
        Self {
            key_id: key_id.into(),
            key_version: key_version.into(),
            algorithm: ECDSA_P256_SHA256_OID.to_owned(),
        }
    }

    /// `verification_key_id`.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// `verification_key_version`.
    pub fn key_version(&self) -> &str {
        &self.key_version
    }

    /// `signature_algorithm`, an OID; [`ECDSA_P256_SHA256_OID`] for every file this crate writes.
    pub fn algorithm(&self) -> &str {
        &self.algorithm
    }

    pub(crate) fn from_proto(info: super::proto::SignatureInfo) -> Self {
        Self {
            key_id: info.verification_key_id.unwrap_or_default(),
            key_version: info.verification_key_version.unwrap_or_default(),
            algorithm: info.signature_algorithm.unwrap_or_default(),
        }
    }

    pub(crate) fn to_proto(&self) -> super::proto::SignatureInfo {
        super::proto::SignatureInfo {
            verification_key_version: Some(self.key_version.clone()),
            verification_key_id: Some(self.key_id.clone()),
            signature_algorithm: Some(self.algorithm.clone()),
        }
    }
}

/// A signing key with the id and version under which devices know its public half.
///
/// What the server keeps to sign its exports, and what it publishes (through
/// [`info`](Self::info) and [`verifying_key`](Self::verifying_key)) in its configuration.
#[derive(Debug)]
pub struct ExportSigner {
    info: SignatureInfo,
    key: SigningKey,
}

impl ExportSigner {
    /// Signs as `key_id` / `key_version` with `key`.
    pub fn new(key_id: impl Into<String>, key_version: impl Into<String>, key: SigningKey) -> Self {
        Self {
            info: SignatureInfo::new(key_id, key_version),
            key,
        }
    }

    /// The id, version and algorithm written into each export.
    pub fn info(&self) -> &SignatureInfo {
        &self.info
    }

    /// The public key to publish.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    pub(crate) fn sign(&self, digest: &ExportDigest) -> Vec<u8> {
        self.key.sign(digest)
    }
}

/// The public keys a device accepts export signatures from, by key id and version.
#[derive(Clone, Debug, Default)]
pub struct TrustedKeys {
    keys: Vec<(String, String, VerifyingKey)>,
}

impl TrustedKeys {
    /// No trusted keys yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also trusts `key` for signatures that name `key_id` and `key_version`.
    pub fn with(
        mut self,
        key_id: impl Into<String>,
        key_version: impl Into<String>,
        key: VerifyingKey,
    ) -> Self {
        self.insert(key_id, key_version, key);
        self
    }

    /// Trusts `key` for signatures that name `key_id` and `key_version`, replacing any
    /// key trusted under the same names.
    pub fn insert(
        &mut self,
        key_id: impl Into<String>,
        key_version: impl Into<String>,
        key: VerifyingKey,
    ) {
        let (key_id, key_version) = (key_id.into(), key_version.into());
        self.keys
            .retain(|(id, version, _)| (id, version) != (&key_id, &key_version));
        self.keys.push((key_id, key_version, key));
    }

    /// The key trusted for `info`'s id and version, if any.
    pub(crate) fn get(&self, info: &SignatureInfo) -> Option<&VerifyingKey> {
        self.keys
            .iter()
            .find(|(id, version, _)| *id == info.key_id && *version == info.key_version)
            .map(|(_, _, key)| key)
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    #[test]
    fn pem_round_trip_keeps_the_key() {
        let key = SigningKey::generate(&mut StdRng::seed_from_u64(1));
        let pem = key.to_pkcs8_pem();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let loaded = SigningKey::from_pkcs8_pem(&pem).unwrap();
        assert_eq!(loaded.verifying_key(), key.verifying_key());

        let public = key.verifying_key().to_public_key_pem();
        assert!(public.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert_eq!(
            VerifyingKey::from_public_key_pem(&public).unwrap(),
            key.verifying_key()
        );
        assert_eq!(
            VerifyingKey::from_public_key_der(&key.verifying_key().to_public_key_der()).unwrap(),
            key.verifying_key()
        );
    }

    #[test]
    fn signing_is_deterministic_and_verifies() {
        let key = SigningKey::generate(&mut StdRng::seed_from_u64(2));
        let first = key.sign(&ExportDigest::of(b"export"));
        assert_eq!(first, key.sign(&ExportDigest::of(b"export")));
        assert_ne!(first, key.sign(&ExportDigest::of(b"exporT")));
        // Signing the digest gives what signing the message would.
        let whole: Signature = p256::ecdsa::signature::Signer::sign(&key.0, b"export");
        assert_eq!(first, whole.to_der().as_bytes());
        assert_eq!(first[0], 0x30, "DER SEQUENCE");
        key.verifying_key().verify(b"export", &first).unwrap();
        assert!(key.verifying_key().verify(b"exporT", &first).is_err());
        assert!(key.verifying_key().verify(b"export", &first[1..]).is_err());
    }

    #[test]
    fn bad_pem_is_a_typed_error() {
        let public = SigningKey::generate(&mut StdRng::seed_from_u64(3))
            .verifying_key()
            .to_public_key_pem();
        assert_eq!(
            SigningKey::from_pkcs8_pem(&public).unwrap_err(),
            Error::Signature(SignatureError::InvalidSigningKey)
        );
        assert_eq!(
            VerifyingKey::from_public_key_pem("not a key").unwrap_err(),
            Error::Signature(SignatureError::InvalidVerifyingKey)
        );
        assert_eq!(
            VerifyingKey::from_public_key_der(&[0x30, 0x03, 0x02, 0x01]).unwrap_err(),
            Error::Signature(SignatureError::InvalidVerifyingKey)
        );
    }

    #[test]
    fn debug_hides_the_secret() {
        let key = SigningKey::generate(&mut StdRng::seed_from_u64(4));
        assert_eq!(format!("{key:?}"), "SigningKey(<redacted>)");
        let signer = ExportSigner::new("310", "v1", key);
        assert!(format!("{signer:?}").contains("<redacted>"));
    }

    #[test]
    fn trusted_keys_are_found_by_id_and_version() {
        let a = SigningKey::generate(&mut StdRng::seed_from_u64(5)).verifying_key();
        let b = SigningKey::generate(&mut StdRng::seed_from_u64(6)).verifying_key();
        let trusted = TrustedKeys::new()
            .with("310", "v1", a)
            .with("310", "v2", b)
            .with("310", "v1", b);
        assert_eq!(trusted.get(&SignatureInfo::new("310", "v1")), Some(&b));
        assert_eq!(trusted.get(&SignatureInfo::new("310", "v2")), Some(&b));
        assert_eq!(trusted.get(&SignatureInfo::new("311", "v1")), None);
    }
}
