//! Signed key-export files: the trusted public keys a device checks them against,
//! and the signer a health authority's tooling (and the tests) writes them with.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use kith_core::{
    DaysSinceOnset, DiagnosisKey, ExportBatch, OsRng, ReportType, SignatureError, SigningKey,
    TrustedKeys, VerifyingKey,
};

use crate::error::{KithError, PublicKeyError, Result};
use crate::keys::ExposureKey;
use crate::units::time_at;

/// A public key a device accepts export signatures from, as the health authority
/// publishes it: the id and version that its files name, and the key itself.
///
/// [`trusted_public_keys_from_device_config`] reads them from the line GAEN device
/// configurations publish.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
#[uniffi::export(Debug, Eq)]
pub struct TrustedPublicKey {
    /// `verification_key_id` in the export's signature info, e.g. "310".
    pub key_id: String,
    /// `verification_key_version`, e.g. "v1".
    pub key_version: String,
    /// The P-256 public key: PEM (`-----BEGIN PUBLIC KEY-----`), or its
    /// SubjectPublicKeyInfo in standard base64 (`MFkwEwYHKoZIzj0CAQ…`).
    pub public_key: String,
}

/// The trusted keys of a GAEN device configuration line:
/// `[<package>:]<key id>-<key version>,<base64 SubjectPublicKeyInfo>`, entries
/// separated by `|` (as health authorities gave them to Google and Apple). The
/// package, if given, is dropped; the id is what comes before the last `-`.
#[uniffi::export]
pub fn trusted_public_keys_from_device_config(config: String) -> Result<Vec<TrustedPublicKey>> {
    let keys = config
        .split('|')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let invalid = |problem| {
                KithError::InvalidPublicKey(PublicKeyError::DeviceConfiguration {
                    entry: entry.chars().take(40).collect(),
                    problem,
                })
            };
            let (names, key) = entry
                .split_once(',')
                .ok_or_else(|| invalid("no `,` before the key"))?;
            let names = names
                .rsplit_once(':')
                .map_or(names, |(_package, names)| names);
            let (key_id, key_version) = names
                .rsplit_once('-')
                .filter(|(id, version)| !id.is_empty() && !version.is_empty())
                .ok_or_else(|| invalid("no `<key id>-<key version>` before the `,`"))?;
            let key = TrustedPublicKey {
                key_id: key_id.to_owned(),
                key_version: key_version.to_owned(),
                public_key: key.trim().to_owned(),
            };
            verifying_key(&key.public_key)?;
            Ok(key)
        })
        .collect::<Result<Vec<_>>>()?;
    trusted_keys(&keys)?;
    Ok(keys)
}

/// Core's trust list from the records an app passes; two under one id and version
/// are an error (the files naming them could be checked against the wrong one).
pub(crate) fn trusted_keys(keys: &[TrustedPublicKey]) -> Result<TrustedKeys> {
    keys.iter()
        .enumerate()
        .try_fold(TrustedKeys::new(), |trusted, (index, key)| {
            let same_names = |earlier: &TrustedPublicKey| {
                (&earlier.key_id, &earlier.key_version) == (&key.key_id, &key.key_version)
            };
            if keys[..index].iter().any(same_names) {
                return Err(KithError::InvalidPublicKey(PublicKeyError::Duplicate {
                    key_id: key.key_id.clone(),
                    key_version: key.key_version.clone(),
                }));
            }
            let public = verifying_key(&key.public_key)?;
            Ok(trusted.with(&key.key_id, &key.key_version, public))
        })
}

/// A P-256 public key from PEM or base64 SubjectPublicKeyInfo.
fn verifying_key(text: &str) -> Result<VerifyingKey> {
    let text = text.trim();
    if text.starts_with("-----BEGIN") {
        return Ok(VerifyingKey::from_public_key_pem(text)?);
    }
    let der = STANDARD.decode(text).map_err(|_| {
        KithError::InvalidPublicKey(PublicKeyError::Key(
            SignatureError::InvalidVerifyingKey.into(),
        ))
    })?;
    Ok(VerifyingKey::from_public_key_der(&der)?)
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
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
#[uniffi::export(Debug, Eq)]
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
            public_key: self.0.verifying_key().to_public_key_pem(),
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
        start_unix_seconds: i64,
        end_unix_seconds: i64,
    ) -> Result<Vec<u8>> {
        let batch = ExportBatch {
            region: &region,
            start_timestamp: time_at("start_unix_seconds", start_unix_seconds)?.get(),
            end_timestamp: time_at("end_unix_seconds", end_unix_seconds)?.get(),
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn base64_key(signer: &ExportSigner) -> String {
        STANDARD.encode(signer.signer().verifying_key().to_public_key_der())
    }

    proptest! {
        #[test]
        fn any_text_is_read_or_refused_with_invalid_public_key(text in "\\PC{0,200}") {
            match trusted_public_keys_from_device_config(text) {
                Ok(_) | Err(KithError::InvalidPublicKey(_)) => {}
                Err(other) => prop_assert!(false, "unexpected error {other}"),
            }
        }

        #[test]
        fn lines_of_distinct_keys_read_back(
            names in proptest::collection::btree_set(("[A-Za-z0-9._]{1,8}", "[A-Za-z0-9._]{1,8}"), 1..4),
            package in proptest::option::of("[a-z.]{1,12}"),
        ) {
            let signers: Vec<_> = names
                .iter()
                .map(|(id, version)| ExportSigner::generate(id.clone(), version.clone()))
                .collect();
            let entries: Vec<String> = names
                .iter()
                .zip(&signers)
                .map(|((id, version), signer)| format!("{id}-{version},{}", base64_key(signer)))
                .collect();
            let line = match &package {
                Some(package) => format!("{package}:{}", entries.join("|")),
                None => entries.join("|"),
            };
            let keys = trusted_public_keys_from_device_config(line).unwrap();
            let read: Vec<_> = keys.iter().map(|k| (k.key_id.clone(), k.key_version.clone())).collect();
            prop_assert_eq!(read, names.into_iter().collect::<Vec<_>>());
            for (key, signer) in keys.iter().zip(&signers) {
                prop_assert_eq!(&key.public_key, &base64_key(signer));
            }
        }
    }
}
