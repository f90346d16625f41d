//! The export signing keys, and their rotation.
//!
//! Every export file carries a signature from each active key (GAEN clients accept a file
//! when any signature verifies with a key they trust), and `/v1/config` lists the active
//! public keys. Rotating adds a key, so devices learn it while the old one still signs;
//! giving the old key an end time retires it once devices have had time to update. The
//! list, with versions and end times, is the `signing_keys` table; the key made on first
//! start is a PEM file in the data directory (mode 0600), rotated ones are stored in the
//! table with their private key, so that every server on one database signs with them.

use std::path::Path;
use std::sync::{Arc, RwLock};

use kith_core::{ExportSigner, MAX_EXPORT_SIGNATURES, OsRng, SigningKey};

use crate::clock::UnixSeconds;
use crate::error::{AppError, Result};
use crate::keyring::{FIRST_SIGNING_KEY_FILE, key_error, read_secret};
use crate::storage::{AddedKey, BatchStore, PrivateKey, PrivateKeyPem, SigningKeyRow};

/// One signing key with its life span.
#[derive(Debug)]
pub struct SigningKeyEntry {
    /// The key, with the id and version its signatures carry.
    pub signer: ExportSigner,
    /// When it was added.
    pub created_at: UnixSeconds,
    /// When it stops signing, if it is retiring.
    pub not_after: Option<UnixSeconds>,
}

impl SigningKeyEntry {
    /// Whether it signs files made at `now`.
    pub fn is_active(&self, now: UnixSeconds) -> bool {
        self.not_after.is_none_or(|end| now < end)
    }
}

/// All signing keys, oldest first.
#[derive(Debug, Default)]
pub struct SigningKeys(Vec<SigningKeyEntry>);

impl SigningKeys {
    /// Loads the keys listed in the database from `data_dir`. On the first load, the key
    /// made on first start is registered as `first_id` / `first_version`.
    pub fn load(
        store: &mut dyn BatchStore,
        data_dir: &Path,
        first_id: &str,
        first_version: &str,
        now: UnixSeconds,
    ) -> Result<Self> {
        let first = SigningKeyRow {
            key_id: first_id.into(),
            key_version: first_version.into(),
            private_key: PrivateKey::File(FIRST_SIGNING_KEY_FILE.into()),
            created_at: now,
            not_after: None,
        };
        let mut keys = Vec::new();
        for row in store.signing_keys(&first)? {
            let key = match &row.private_key {
                PrivateKey::File(file) => {
                    let path = data_dir.join(file);
                    let pem = read_secret(&path)?
                        .ok_or_else(|| key_error(&path, "listed in signing_keys but missing"))?;
                    SigningKey::from_pkcs8_pem(&pem).map_err(|e| key_error(&path, e))?
                }
                PrivateKey::Pem(pem) => {
                    SigningKey::from_pkcs8_pem(pem.expose_secret()).map_err(|e| {
                        AppError::Corrupt(format!("signing key {}: {e}", row.key_version))
                    })?
                }
            };
            keys.push(SigningKeyEntry {
                signer: ExportSigner::new(row.key_id, row.key_version, key),
                created_at: row.created_at,
                not_after: row.not_after,
            });
        }
        Ok(Self(keys))
    }

    /// Every key, oldest first.
    pub fn all(&self) -> &[SigningKeyEntry] {
        &self.0
    }

    /// The keys that sign a file made at `now`: the active ones, at most the newest
    /// [`MAX_EXPORT_SIGNATURES`] (clients may not look further).
    pub fn signers(&self, now: UnixSeconds) -> Vec<&ExportSigner> {
        let active: Vec<&ExportSigner> = self
            .0
            .iter()
            .filter(|entry| entry.is_active(now))
            .map(|entry| &entry.signer)
            .collect();
        active[active.len().saturating_sub(MAX_EXPORT_SIGNATURES)..].to_vec()
    }
}

/// What [`rotate`] did.
pub type Rotation = AddedKey;

/// Adds a signing key (version `v<n>`, the first free number) and, with `retire_at`, gives
/// every older key without an end time that end.
pub fn rotate(
    store: &mut dyn BatchStore,
    now: UnixSeconds,
    retire_at: Option<UnixSeconds>,
) -> Result<Rotation> {
    let key = SigningKey::generate(&mut OsRng);
    let pem = PrivateKeyPem::new(key.to_pkcs8_pem().to_string());
    store.add_signing_key(now, retire_at, &pem)
}

/// The keys as the running server sees them; reloaded by the export task, so a rotation by
/// `kith-server keys rotate` shows in `/v1/config` and signs files without a restart.
#[derive(Debug, Default)]
pub struct SigningKeysCell(RwLock<Arc<SigningKeys>>);

impl SigningKeysCell {
    /// A cell holding `keys`.
    pub fn new(keys: SigningKeys) -> Self {
        Self(RwLock::new(Arc::new(keys)))
    }

    /// The current keys.
    pub fn get(&self) -> Arc<SigningKeys> {
        self.0
            .read()
            .map_or_else(|e| e.into_inner().clone(), |k| k.clone())
    }

    /// Replaces the keys.
    pub fn set(&self, keys: Arc<SigningKeys>) {
        match self.0.write() {
            Ok(mut slot) => *slot = keys,
            Err(poisoned) => *poisoned.into_inner() = keys,
        }
    }
}
