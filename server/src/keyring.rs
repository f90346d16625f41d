//! The server's secrets, kept as files in the data directory (mode 0600) and created
//! on first start: the export signing key, the HPKE key, the code pepper and the hash
//! of the admin API key.

use std::fmt;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use kith_core::SigningKey;
use rand_core::{CryptoRng, OsRng, RngCore};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::codes::Pepper;
use crate::error::{AppError, Result};
use crate::sealed::OpeningKey;

/// The export signing key made on first start; rotated ones sit beside it.
pub(crate) const FIRST_SIGNING_KEY_FILE: &str = "export-signing-key.pem";
const HPKE_KEY_FILE: &str = "hpke-private-key.hex";
const PEPPER_FILE: &str = "code-pepper.hex";
const ADMIN_KEY_HASH_FILE: &str = "admin-key.sha256";

/// The admin API key, shown once when it is created.
pub struct AdminKey(Zeroizing<String>);

impl AdminKey {
    fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(bytes.as_mut());
        Self(Zeroizing::new(format!(
            "kith_{}",
            URL_SAFE_NO_PAD.encode(*bytes)
        )))
    }

    /// The key, to print it once.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// Writes the key to a new file only its owner can read (it must not exist).
    pub fn write_to(&self, path: &Path) -> Result<()> {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(io_error(path))?;
        writeln!(file, "{}", self.expose_secret()).map_err(io_error(path))?;
        file.sync_all().map_err(io_error(path))
    }
}

impl fmt::Debug for AdminKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminKey(<redacted>)")
    }
}

fn admin_key_hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Everything secret the server holds.
pub struct Keyring {
    /// Opens sealed publish bodies.
    pub opening_key: OpeningKey,
    /// Mixed into the hashes of verification codes.
    pub pepper: Pepper,
    admin_key_hash: [u8; 32],
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Keyring(<redacted>)")
    }
}

impl Keyring {
    /// Loads the keys from `dir`, creating the directory and any missing key (the first
    /// export signing key too, which [`SigningKeys`](crate::signing_keys::SigningKeys)
    /// loads). Returns the admin API key too when it was created now: it is never
    /// readable again.
    pub fn open_or_create(dir: &Path) -> Result<(Self, Option<AdminKey>)> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_error(dir))?;

        let signing_path = dir.join(FIRST_SIGNING_KEY_FILE);
        if read_secret(&signing_path)?.is_none() {
            let key = SigningKey::generate(&mut OsRng);
            write_secret(&signing_path, key.to_pkcs8_pem().as_bytes())?;
        }

        let hpke_path = dir.join(HPKE_KEY_FILE);
        let opening_key = match read_hex(&hpke_path)? {
            Some(bytes) => OpeningKey::from_bytes(&bytes)
                .ok_or_else(|| key_error(&hpke_path, "not an X25519 private key"))?,
            None => {
                let key = OpeningKey::generate(&mut OsRng);
                write_secret(&hpke_path, hex::encode(key.expose_secret()).as_bytes())?;
                key
            }
        };

        let pepper_path = dir.join(PEPPER_FILE);
        let pepper = match read_hex(&pepper_path)? {
            Some(bytes) => Pepper::from_bytes(
                bytes[..]
                    .try_into()
                    .map_err(|_| key_error(&pepper_path, "expected 32 hex-encoded bytes"))?,
            ),
            None => {
                let mut bytes = Zeroizing::new([0u8; 32]);
                OsRng.fill_bytes(bytes.as_mut());
                write_secret(&pepper_path, hex::encode(*bytes).as_bytes())?;
                Pepper::from_bytes(*bytes)
            }
        };

        let admin_path = dir.join(ADMIN_KEY_HASH_FILE);
        let (admin_key_hash, new_admin_key) = match read_hex(&admin_path)? {
            Some(bytes) => (
                bytes[..]
                    .try_into()
                    .map_err(|_| key_error(&admin_path, "expected a hex SHA-256 hash"))?,
                None,
            ),
            None => {
                let key = AdminKey::generate(&mut OsRng);
                let hash = admin_key_hash(key.expose_secret());
                write_secret(&admin_path, hex::encode(hash).as_bytes())?;
                (hash, Some(key))
            }
        };

        Ok((
            Self {
                opening_key,
                pepper,
                admin_key_hash,
            },
            new_admin_key,
        ))
    }

    /// Whether `presented` is the admin API key, compared in constant time.
    pub fn is_admin_key(&self, presented: &str) -> bool {
        bool::from(admin_key_hash(presented).ct_eq(&self.admin_key_hash))
    }
}

pub(crate) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> AppError + '_ {
    move |source| AppError::Io {
        path: path.display().to_string(),
        source,
    }
}

pub(crate) fn key_error(path: &Path, reason: impl fmt::Display) -> AppError {
    AppError::BadFile {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

pub(crate) fn read_secret(path: &Path) -> Result<Option<Zeroizing<String>>> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(Zeroizing::new(text))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(path)(e)),
    }
}

fn read_hex(path: &Path) -> Result<Option<Zeroizing<Vec<u8>>>> {
    read_secret(path)?
        .map(|text| {
            hex::decode(text.trim())
                .map(Zeroizing::new)
                .map_err(|_| key_error(path, "expected hex"))
        })
        .transpose()
}

/// Writes a new secret file readable only by its owner; never overwrites one.
pub(crate) fn write_secret(path: &Path, contents: &[u8]) -> Result<()> {
    let tmp: PathBuf = path.with_extension("tmp");
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_error(&tmp))?;
    file.write_all(contents).map_err(io_error(&tmp))?;
    file.sync_all().map_err(io_error(&tmp))?;
    // Linking (unlike renaming) fails if the key exists, so a key is never replaced,
    // and a crash never leaves a half-written key under the real name.
    fs::hard_link(&tmp, path).map_err(io_error(path))?;
    fs::remove_file(&tmp).map_err(io_error(&tmp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn first_start_creates_private_files_and_later_starts_reuse_them() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let (first, admin) = Keyring::open_or_create(&data).unwrap();
        let admin = admin.expect("the admin key is created on first start");
        assert!(first.is_admin_key(admin.expose_secret()));
        assert!(!first.is_admin_key("kith_wrong"));

        for name in [
            FIRST_SIGNING_KEY_FILE,
            HPKE_KEY_FILE,
            PEPPER_FILE,
            ADMIN_KEY_HASH_FILE,
        ] {
            let mode = fs::metadata(data.join(name)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
        assert_eq!(
            fs::metadata(&data).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let stored = fs::read_to_string(data.join(ADMIN_KEY_HASH_FILE)).unwrap();
        assert!(
            !stored.contains(admin.expose_secret()),
            "only the hash is stored"
        );

        let pem = fs::read_to_string(data.join(FIRST_SIGNING_KEY_FILE)).unwrap();
        let (second, again) = Keyring::open_or_create(&data).unwrap();
        assert!(again.is_none(), "the admin key is shown only once");
        assert!(second.is_admin_key(admin.expose_secret()));
        assert_eq!(
            second.opening_key.public_key(),
            first.opening_key.public_key()
        );
        assert_eq!(
            fs::read_to_string(data.join(FIRST_SIGNING_KEY_FILE)).unwrap(),
            pem,
            "the signing key is kept"
        );
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    }

    #[test]
    fn a_damaged_key_file_is_an_error_not_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        Keyring::open_or_create(dir.path()).unwrap();
        fs::write(dir.path().join(HPKE_KEY_FILE), "zz").unwrap();
        assert!(matches!(
            Keyring::open_or_create(dir.path()),
            Err(AppError::BadFile { .. })
        ));
    }
}
