//! Logged-in case workers of the portal, kept in memory only: who they are, the
//! one-time token of the form they were last shown (CSRF protection and a guard
//! against a second code from a resubmitted form), and the code waiting to be shown.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::clock::UnixSeconds;
use crate::codes::VerificationCode;

/// A case worker's session lasts a working day.
pub const SESSION_SECONDS: u64 = 8 * 3600;

#[derive(Debug)]
struct Session {
    expires: UnixSeconds,
    case_worker: String,
    form_token: Option<String>,
    issued: Option<(VerificationCode, UnixSeconds)>,
}

/// Sessions by SHA-256 of the cookie token. Only hashes are kept, so a memory dump
/// does not hand out live sessions.
#[derive(Debug, Default)]
pub struct Sessions(Mutex<HashMap<[u8; 32], Session>>);

fn random_token() -> String {
    let mut token = [0u8; 32];
    OsRng.fill_bytes(&mut token);
    URL_SAFE_NO_PAD.encode(token)
}

fn key(token: &str) -> [u8; 32] {
    Sha256::digest(token).into()
}

impl Sessions {
    fn with<T>(
        &self,
        token: &str,
        now: UnixSeconds,
        f: impl FnOnce(&mut Session) -> T,
    ) -> Option<T> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get_mut(&key(token)).filter(|s| s.expires > now).map(f)
    }

    /// Starts a session for `case_worker` at `now`; returns the token for the cookie.
    pub fn create(&self, case_worker: &str, now: UnixSeconds) -> String {
        let token = random_token();
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, s| s.expires > now);
        map.insert(
            key(&token),
            Session {
                expires: now.plus(SESSION_SECONDS),
                case_worker: case_worker.to_owned(),
                form_token: None,
                issued: None,
            },
        );
        token
    }

    /// The case worker of a session that has not ended by `now`.
    pub fn case_worker(&self, token: &str, now: UnixSeconds) -> Option<String> {
        self.with(token, now, |s| s.case_worker.clone())
    }

    /// A fresh one-time token for the next form (replacing the previous one).
    pub fn new_form_token(&self, token: &str, now: UnixSeconds) -> Option<String> {
        self.with(token, now, |s| {
            let form = random_token();
            s.form_token = Some(form.clone());
            form
        })
    }

    /// Whether `form` is the session's current form token; it is used up either way.
    pub fn take_form_token(&self, token: &str, form: &str, now: UnixSeconds) -> bool {
        self.with(token, now, |s| {
            s.form_token
                .take()
                .is_some_and(|expected| bool::from(expected.as_bytes().ct_eq(form.as_bytes())))
        })
        .unwrap_or(false)
    }

    /// Keeps an issued code until it is shown once.
    pub fn hold_issued(
        &self,
        token: &str,
        code: VerificationCode,
        expires: UnixSeconds,
        now: UnixSeconds,
    ) {
        self.with(token, now, |s| s.issued = Some((code, expires)));
    }

    /// The issued code waiting to be shown, once.
    pub fn take_issued(
        &self,
        token: &str,
        now: UnixSeconds,
    ) -> Option<(VerificationCode, UnixSeconds)> {
        self.with(token, now, |s| s.issued.take()).flatten()
    }

    /// Ends the session of `token`, if there is one.
    pub fn end(&self, token: &str) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&key(token));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_end_and_form_tokens_work_once() {
        let t = UnixSeconds::new;
        let sessions = Sessions::default();
        let token = sessions.create("ana", t(1000));
        assert_eq!(
            sessions
                .case_worker(&token, t(1000 + SESSION_SECONDS - 1))
                .as_deref(),
            Some("ana")
        );
        assert!(
            sessions
                .case_worker(&token, t(1000 + SESSION_SECONDS))
                .is_none()
        );
        assert!(sessions.case_worker("forged", t(1000)).is_none());
        let form = sessions.new_form_token(&token, t(1001)).unwrap();
        assert!(!sessions.take_form_token(&token, "other", t(1001)));
        let form = {
            let _ = form;
            sessions.new_form_token(&token, t(1001)).unwrap()
        };
        assert!(sessions.take_form_token(&token, &form, t(1001)));
        assert!(!sessions.take_form_token(&token, &form, t(1001)), "used up");
        sessions.end(&token);
        assert!(sessions.case_worker(&token, t(1001)).is_none());
    }
}
