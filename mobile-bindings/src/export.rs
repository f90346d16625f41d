//! Signed key-export files: the trusted public keys a device checks them against,
//! and the signer a health authority's tooling (and the tests) writes them with.

use std::fmt;
use std::sync::Arc;

use kith_core::{
    DaysSinceOnset, DiagnosisKey, ExportBatch, OsRng, ReportType, SigningKey, TrustedKeys,
    VerifyingKey,
};

use crate::error::Result;
use crate::keys::ExposureKey;

/// A public key a device accepts export signatures from, as the health authority
/// publishes it: the id and version that its files name, and the key itself.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct TrustedPublicKey {
    /// `verification_key_id` in the export's signature info, e.g. "310".
    pub key_id: String,
    /// `verification_key_version`, e.g. "v1".
    pub key_version: String,
    /// The P-256 public key as PEM (`-----BEGIN PUBLIC KEY-----`).
    pub public_key_pem: String,
}

/// Core's trust list from the records an app passes.
pub(crate) fn trusted_keys(keys: &[TrustedPublicKey]) -> Result<TrustedKeys> {
    keys.iter().try_fold(TrustedKeys::new(), |trusted, key| {
        let public = VerifyingKey::from_public_key_pem(&key.public_key_pem)?;
        Ok(trusted.with(&key.key_id, &key.key_version, public))
    })
}

/// How a diagnosis was established (GAEN `ReportType`).
#[uniffi::remote(Enum)]
pub enum ReportType {
    Unknown = 0,
    ConfirmedTest = 1,
    ConfirmedClinicalDiagnosis = 2,
    SelfReport = 3,
    Recursive = 4,
    Revoked = 5,
}

/// A key to publish, with what the health authority says of it.
#[derive(Debug, Clone, uniffi::Record)]
pub struct PublishedKey {
    /// The uploaded key.
    pub key: Arc<ExposureKey>,
    /// How the diagnosis was established.
    pub report_type: ReportType,
    /// Days from symptom onset (or test) to the key's day, −14..=14, when known.
    pub days_since_onset: Option<i32>,
}

/// A health authority's export signing key, with the id and version devices know it by.
///
/// For health-authority tooling and tests; an app only needs [`TrustedPublicKey`].
#[derive(uniffi::Object)]
#[uniffi::export(Debug)]
pub struct ExportSigner(kith_core::ExportSigner);

#[uniffi::export]
impl ExportSigner {
    /// A fresh random P-256 signing key.
    #[uniffi::constructor]
    pub fn generate(key_id: String, key_version: String) -> Arc<Self> {
        let key = SigningKey::generate(&mut OsRng);
        Arc::new(Self(kith_core::ExportSigner::new(key_id, key_version, key)))
    }

    /// A signing key from unencrypted PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    #[uniffi::constructor]
    pub fn from_pkcs8_pem(
        key_id: String,
        key_version: String,
        private_key_pem: String,
    ) -> Result<Arc<Self>> {
        let key = SigningKey::from_pkcs8_pem(&private_key_pem)?;
        Ok(Arc::new(Self(kith_core::ExportSigner::new(
            key_id,
            key_version,
            key,
        ))))
    }

    /// What devices must trust to accept this signer's files.
    pub fn trusted_public_key(&self) -> TrustedPublicKey {
        let info = self.0.info();
        TrustedPublicKey {
            key_id: info.key_id().to_owned(),
            key_version: info.key_version().to_owned(),
            public_key_pem: self.0.verifying_key().to_public_key_pem(),
        }
    }

    /// A signed GAEN export zip of `keys` for `region`, covering the publication
    /// window from `start_unix_seconds` to `end_unix_seconds`, with `revised_keys`:
    /// keys published before whose report type changed (confirmed, or revoked).
    pub fn write_export(
        &self,
        keys: Vec<PublishedKey>,
        revised_keys: Vec<PublishedKey>,
        region: String,
        start_unix_seconds: u64,
        end_unix_seconds: u64,
    ) -> Result<Vec<u8>> {
        let batch = ExportBatch {
            region: &region,
            start_timestamp: start_unix_seconds,
            end_timestamp: end_unix_seconds,
            keys: &diagnosis_keys(keys)?,
            revised_keys: &diagnosis_keys(revised_keys)?,
        };
        Ok(kith_core::write_export(&batch, &[&self.0])?)
    }
}

/// The core's diagnosis keys for keys as an app publishes them.
fn diagnosis_keys(keys: Vec<PublishedKey>) -> Result<Vec<DiagnosisKey>> {
    keys.into_iter()
        .map(|published| {
            let days_since_onset = published
                .days_since_onset
                .map(DaysSinceOnset::new)
                .transpose()?;
            Ok(DiagnosisKey {
                report_type: published.report_type,
                days_since_onset,
                ..DiagnosisKey::new(published.key.key().clone())
            })
        })
        .collect()
}

impl ExportSigner {
    /// Core's signer.
    pub(crate) fn signer(&self) -> &kith_core::ExportSigner {
        &self.0
    }
}

impl fmt::Debug for ExportSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Core's Debug redacts the private key.
        fmt::Debug::fmt(&self.0, f)
    }
}
