//! The server's disk fills up: publish answers 503 `storage_full`, what it acknowledged
//! stays, nothing of a refused request is stored, and the server keeps serving.
//!
//! The data directory is a small tmpfs, which needs root (as CI and scripts/test run);
//! elsewhere the test skips.

use std::path::{Path, PathBuf};
use std::process::Command;

use kith_tests::System;
use kith_tests::keys::{self, KeyBytes};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Result<Self, String> {
        std::fs::create_dir_all(at).map_err(|e| e.to_string())?;
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .map_err(|e| format!("running mount: {e}"))?;
        if output.status.success() {
            Ok(Self(at.to_owned()))
        } else {
            Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazily: the killed server's files may still be closing.
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

pub(crate) async fn a_full_disk_answers_503_and_keeps_nothing_partial() {
    let place = tempfile::tempdir().unwrap();
    let data_dir = place.path().join("server");
    let _tmpfs = match Tmpfs::mount(&data_dir, "3m") {
        Ok(tmpfs) => tmpfs,
        Err(why) => {
            return kith_test_support::skip(format!(
                "cannot mount a tmpfs for a small disk (needs root): {why}"
            ));
        }
    };
    let mut system = System::start_on(&data_dir, &[]);
    system.step("publishing until the disk is full");
    let http = system.http().clone();
    let mut rng = ChaCha8Rng::seed_from_u64(503);
    let (mut acknowledged, mut refused): (Vec<KeyBytes>, Vec<KeyBytes>) = (Vec::new(), Vec::new());
    let mut full_answers = 0;
    'filling: for _ in 0..40 {
        let codes =
            keys::issue_codes_or_none(&http, &system.operator_url(), system.admin_key(), 250).await;
        let Some(codes) = codes else {
            // Even codes no longer fit: the disk is full.
            break;
        };
        for code in codes {
            let sent: Vec<KeyBytes> = (0..14).map(|_| rng.r#gen()).collect();
            match keys::publish(&http, &system.url(), &code, &sent)
                .await
                .unwrap()
            {
                200 => acknowledged.extend(sent),
                503 => {
                    refused.extend(sent);
                    full_answers += 1;
                    if full_answers == 20 {
                        break 'filling;
                    }
                }
                status => panic!("publish answered {status}"),
            }
        }
    }
    assert!(
        full_answers > 0,
        "the disk never filled ({} keys stored)",
        acknowledged.len()
    );
    assert!(!acknowledged.is_empty());
    system.assert_running();

    system.step("checking what is stored");
    let stored = system.stored().all_key_bytes().unwrap();
    let lost = acknowledged
        .iter()
        .filter(|key| !stored.contains(*key))
        .count();
    assert_eq!(lost, 0, "acknowledged keys lost");
    let partial = refused.iter().filter(|key| stored.contains(*key)).count();
    assert_eq!(partial, 0, "keys of refused requests stored");
    system.step("the server still serves");
    let config = http
        .get(format!("{}/v1/config", system.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(config.status(), 200);
}
