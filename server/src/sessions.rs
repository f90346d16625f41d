//! Logged-in case workers of the portal, kept in memory only.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};

use crate::clock::UnixSeconds;

/// A case worker's session lasts a working day.
pub const SESSION_SECONDS: u64 = 8 * 3600;

/// Sessions: SHA-256 of the cookie token → expiry.
/// Only hashes are kept, so a memory dump does not hand out live sessions.
#[derive(Debug, Default)]
pub struct Sessions(Mutex<HashMap<[u8; 32], UnixSeconds>>);

impl Sessions {
    /// Starts a session at `now`; returns the token for the cookie.
    pub fn create(&self, now: UnixSeconds) -> String {
        let mut token = [0u8; 32];
        OsRng.fill_bytes(&mut token);
        let token = URL_SAFE_NO_PAD.encode(token);
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, expiry| *expiry > now);
        map.insert(Sha256::digest(&token).into(), now.plus(SESSION_SECONDS));
        token
    }

    /// Whether `token` belongs to a session that has not ended by `now`.
    pub fn is_valid(&self, token: &str, now: UnixSeconds) -> bool {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&<[u8; 32]>::from(Sha256::digest(token)))
            .is_some_and(|expiry| *expiry > now)
    }

    /// Ends the session of `token`, if there is one.
    pub fn end(&self, token: &str) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&<[u8; 32]>::from(Sha256::digest(token)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_and_end() {
        let t = UnixSeconds::new;
        let sessions = Sessions::default();
        let token = sessions.create(t(1000));
        assert!(sessions.is_valid(&token, t(1000 + SESSION_SECONDS - 1)));
        assert!(!sessions.is_valid(&token, t(1000 + SESSION_SECONDS)));
        assert!(!sessions.is_valid("forged", t(1000)));
        sessions.end(&token);
        assert!(!sessions.is_valid(&token, t(1001)));
    }
}
