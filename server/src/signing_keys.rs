//! The export signing keys, and their rotation.
//!
//! Every export file carries a signature from each active key (GAEN clients accept a file
//! when any signature verifies with a key they trust), and `/v1/config` lists the active
//! public keys. Rotating adds a key, so devices learn it while the old one still signs;
//! giving the old key an end time retires it once devices have had time to update. The
//! private keys are PEM files in the data directory (mode 0600); the list, with versions
//! and end times, is the `signing_keys` table.

use std::path::Path;
use std::sync::{Arc, RwLock};

use kith_core::{ExportSigner, MAX_EXPORT_SIGNATURES, OsRng, SigningKey};
use rusqlite::{Connection, params};

use crate::clock::UnixSeconds;
use crate::error::{AppError, Result};
use crate::keyring::{FIRST_SIGNING_KEY_FILE, key_error, read_secret, write_secret};

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
        conn: &Connection,
        data_dir: &Path,
        first_id: &str,
        first_version: &str,
        now: UnixSeconds,
    ) -> Result<Self> {
        conn.execute(
            "INSERT INTO signing_keys (key_version, key_id, file, created_at)
             SELECT ?1, ?2, ?3, ?4 WHERE NOT EXISTS (SELECT 1 FROM signing_keys)",
            params![first_version, first_id, FIRST_SIGNING_KEY_FILE, now.get()],
        )?;
        let mut stmt = conn.prepare(
            "SELECT key_id, key_version, file, created_at, not_after
             FROM signing_keys ORDER BY created_at, key_version",
        )?;
        let rows = stmt.query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, u64>(3)?,
                row.get::<_, Option<u64>>(4)?,
            ))
        })?;
        let mut keys = Vec::new();
        for row in rows {
            let (id, version, file, created_at, not_after) = row?;
            let path = data_dir.join(&file);
            let pem = read_secret(&path)?
                .ok_or_else(|| key_error(&path, "listed in signing_keys but missing"))?;
            let key = SigningKey::from_pkcs8_pem(&pem).map_err(|e| key_error(&path, e))?;
            keys.push(SigningKeyEntry {
                signer: ExportSigner::new(id, version, key),
                created_at: UnixSeconds::new(created_at),
                not_after: not_after.map(UnixSeconds::new),
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
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rotation {
    /// The new key's id (that of the newest key before).
    pub key_id: String,
    /// The new key's version.
    pub key_version: String,
    /// How many older keys now end at the given time.
    pub retiring: usize,
}

/// Adds a signing key (version `v<n>`, the first free number) and, with `retire_at`, gives
/// every older key without an end time that end.
pub fn rotate(
    conn: &mut Connection,
    data_dir: &Path,
    now: UnixSeconds,
    retire_at: Option<UnixSeconds>,
) -> Result<Rotation> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let key_id: String = tx
        .query_row(
            "SELECT key_id FROM signing_keys ORDER BY created_at DESC, key_version DESC LIMIT 1",
            [],
            |row| row.get(0),
        )
        .map_err(|_| AppError::Corrupt("no signing key is registered yet".into()))?;
    let taken = |version: &str| -> Result<bool> {
        Ok(tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM signing_keys WHERE key_version = ?1)",
            [version],
            |row| row.get(0),
        )?)
    };
    let mut n = 2;
    while taken(&format!("v{n}"))? {
        n += 1;
    }
    let key_version = format!("v{n}");
    let file = format!("export-signing-key-{key_version}.pem");
    let key = SigningKey::generate(&mut OsRng);
    write_secret(&data_dir.join(&file), key.to_pkcs8_pem().as_bytes())?;
    let retiring = match retire_at {
        Some(end) => tx.execute(
            "UPDATE signing_keys SET not_after = ?1 WHERE not_after IS NULL",
            [end.get()],
        )?,
        None => 0,
    };
    tx.execute(
        "INSERT INTO signing_keys (key_version, key_id, file, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![key_version, key_id, file, now.get()],
    )?;
    tx.commit()?;
    Ok(Rotation {
        key_id,
        key_version,
        retiring,
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyring::Keyring;
    use crate::schema;

    #[test]
    fn rotation_adds_a_key_and_retires_the_old_one_at_its_end_time() {
        let dir = tempfile::tempdir().unwrap();
        Keyring::open_or_create(dir.path()).unwrap();
        let mut conn = Connection::open_in_memory().unwrap();
        schema::migrate(&mut conn).unwrap();
        let t0 = UnixSeconds::new(1_800_000_000);
        let first = SigningKeys::load(&conn, dir.path(), "310", "v1", t0).unwrap();
        assert_eq!(first.all().len(), 1);
        assert_eq!(first.signers(t0)[0].info().key_version(), "v1");

        let end = t0.plus(7 * 86_400);
        let rotation = rotate(&mut conn, dir.path(), t0.plus(60), Some(end)).unwrap();
        assert_eq!(
            rotation,
            Rotation {
                key_id: "310".into(),
                key_version: "v2".into(),
                retiring: 1
            }
        );
        let keys = SigningKeys::load(&conn, dir.path(), "ignored", "ignored", t0).unwrap();
        let versions = |now| -> Vec<String> {
            keys.signers(now)
                .iter()
                .map(|s| s.info().key_version().to_owned())
                .collect()
        };
        assert_eq!(versions(t0.plus(120)), ["v1", "v2"]);
        assert_eq!(versions(end), ["v2"]);
        assert_ne!(
            keys.all()[0].signer.verifying_key(),
            keys.all()[1].signer.verifying_key()
        );
        assert_eq!(
            rotate(&mut conn, dir.path(), t0.plus(180), None)
                .unwrap()
                .key_version,
            "v3"
        );
    }
}
