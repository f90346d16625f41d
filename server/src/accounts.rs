//! Case-worker accounts (passwords hashed with Argon2id, locked after repeated failed
//! logins). Who issued which code goes to the audit log with the code itself (see
//! `writer`). No patient data in either.

use std::sync::Mutex;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand_core::OsRng;

use crate::clock::UnixSeconds;
use crate::error::{AppError, Result};
use crate::storage::{AccountStore, CaseWorkerRow};

/// Failed logins in a row after which an account is locked.
pub const MAX_FAILED_LOGINS: u32 = 5;
/// How long a locked account stays locked.
pub const LOCKOUT_SECONDS: u64 = 15 * 60;
/// Shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 12;

/// The accounts and the audit log, on their own connection to the database.
pub struct Accounts(Mutex<Box<dyn AccountStore>>);

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Accounts { .. }")
    }
}

/// Why a login failed.
#[derive(Debug, PartialEq, Eq)]
pub enum LoginError {
    /// Unknown name or wrong password (the two are not told apart).
    Wrong,
    /// Too many failures: locked for this long.
    Locked {
        /// Seconds until the next try is possible.
        retry_after_seconds: u64,
    },
}

impl Accounts {
    /// Accounts kept in `store`.
    pub fn new(store: Box<dyn AccountStore>) -> Self {
        Self(Mutex::new(store))
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Box<dyn AccountStore>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates an account; its password is stored as an Argon2id hash only.
    pub fn add(&self, name: &str, password: &str) -> Result<()> {
        let name = name.trim();
        if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
            return Err(AppError::invalid(
                "invalid_name",
                "name must be 1 to 64 printable characters",
            ));
        }
        if password.chars().count() < MIN_PASSWORD_LEN {
            return Err(AppError::invalid(
                "weak_password",
                format!("password must have at least {MIN_PASSWORD_LEN} characters"),
            ));
        }
        let hash = hash_password(password)?;
        if !self.store().add_case_worker(name, &hash)? {
            return Err(AppError::invalid(
                "case_worker_exists",
                format!("{name} already has an account"),
            ));
        }
        Ok(())
    }

    /// Checks a login at `now`, counting failures and locking the account after
    /// [`MAX_FAILED_LOGINS`]. Unknown names cost the same Argon2 work as known ones.
    pub fn verify(
        &self,
        name: &str,
        password: &str,
        now: UnixSeconds,
    ) -> Result<Result<(), LoginError>> {
        let name = name.trim();
        let row = self.store().case_worker(name)?;
        let Some(CaseWorkerRow {
            password_hash: hash,
            failed_logins: failed,
            locked_until,
        }) = row
        else {
            let _ = check_password(DUMMY_HASH.as_str(), password);
            return Ok(Err(LoginError::Wrong));
        };
        if locked_until > now.get() {
            return Ok(Err(LoginError::Locked {
                retry_after_seconds: locked_until - now.get(),
            }));
        }
        if check_password(&hash, password) {
            self.store().set_login_state(name, 0, locked_until)?;
            return Ok(Ok(()));
        }
        let failed = failed + 1;
        let (failed, locked_until) = if failed >= MAX_FAILED_LOGINS {
            (0, now.get() + LOCKOUT_SECONDS)
        } else {
            (failed, 0)
        };
        self.store().set_login_state(name, failed, locked_until)?;
        Ok(Err(if locked_until > 0 {
            LoginError::Locked {
                retry_after_seconds: LOCKOUT_SECONDS,
            }
        } else {
            LoginError::Wrong
        }))
    }
}

static DUMMY_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| hash_password("not anyone's password").unwrap_or_default());

fn hash_password(password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| AppError::Corrupt(format!("argon2: {e}")))
}

fn check_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hashed_checked_and_accounts_lock() {
        let fixture = crate::sqlite::fixture().unwrap();
        let accounts = Accounts::new(fixture.storage.accounts().unwrap());
        let t = UnixSeconds::new(1_000_000);
        accounts.add("ana", "correct horse battery").unwrap();
        assert!(accounts.add("ana", "another long password").is_err());
        assert!(accounts.add("bo", "short").is_err());
        let stored = accounts
            .store()
            .case_worker("ana")
            .unwrap()
            .unwrap()
            .password_hash;
        assert!(stored.starts_with("$argon2id$") && !stored.contains("horse"));
        assert_eq!(
            accounts.verify("ana", "correct horse battery", t).unwrap(),
            Ok(())
        );
        assert_eq!(
            accounts
                .verify("nobody", "correct horse battery", t)
                .unwrap(),
            Err(LoginError::Wrong)
        );
        for _ in 1..MAX_FAILED_LOGINS {
            assert_eq!(
                accounts.verify("ana", "wrong", t).unwrap(),
                Err(LoginError::Wrong)
            );
        }
        assert!(matches!(
            accounts.verify("ana", "wrong", t).unwrap(),
            Err(LoginError::Locked { .. })
        ));
        // Locked: even the right password waits.
        assert!(matches!(
            accounts
                .verify("ana", "correct horse battery", t.plus(60))
                .unwrap(),
            Err(LoginError::Locked { .. })
        ));
        assert_eq!(
            accounts
                .verify("ana", "correct horse battery", t.plus(LOCKOUT_SECONDS))
                .unwrap(),
            Ok(())
        );
    }
}
