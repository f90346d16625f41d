//! Codes issued and keys published through the HTTP APIs, and keys read back from the
//! signed export files, as a device verifies them.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kith_core::{ExportFile, ExportLimits, TrustedKeys, VerifyingKey};
use serde_json::{Value, json};

/// A published key's 16 bytes.
pub type KeyBytes = [u8; 16];

/// `count` one-time codes for confirmed tests, from the admin API.
pub async fn issue_codes(
    http: &reqwest::Client,
    operator_url: &str,
    admin_key: &str,
    count: u32,
) -> Vec<String> {
    issue_codes_or_none(http, operator_url, admin_key, count)
        .await
        .expect("the admin API issues codes")
}

/// [`issue_codes`], or `None` when the server answers 503 (its storage is full).
pub async fn issue_codes_or_none(
    http: &reqwest::Client,
    operator_url: &str,
    admin_key: &str,
    count: u32,
) -> Option<Vec<String>> {
    let answer = http
        .post(format!("{operator_url}/v1/admin/codes"))
        .bearer_auth(admin_key)
        .json(&json!({"diagnosis": "confirmed_test", "count": count}))
        .send()
        .await
        .expect("the admin API answers");
    if answer.status() == 503 {
        return None;
    }
    let answer: Value = answer
        .error_for_status()
        .expect("the admin API issues codes")
        .json()
        .await
        .expect("a JSON answer");
    let codes = answer["codes"]
        .as_array()
        .unwrap_or_else(|| panic!("no codes in {answer}"))
        .iter()
        .map(|code| code.as_str().expect("a code is a string").to_owned())
        .collect();
    Some(codes)
}

/// The publish document for `keys`, one per day, the first valid yesterday (expired, so
/// the server may export it at once).
pub fn publish_document(code: &str, keys: &[KeyBytes]) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let yesterday = u32::try_from(now / 86_400 - 1).expect("a day number fits") * 144;
    let keys: Vec<Value> = (0u32..)
        .zip(keys)
        .map(|(day, key)| {
            json!({"key": STANDARD.encode(key), "rollingStartNumber": yesterday - 144 * day,
                   "rollingPeriod": 144, "transmissionRisk": 0})
        })
        .collect();
    json!({"temporaryExposureKeys": keys, "verificationCode": code})
}

/// Publishes `keys` with `code` (plain JSON); the answer's status, or the transport error.
pub async fn publish(
    http: &reqwest::Client,
    url: &str,
    code: &str,
    keys: &[KeyBytes],
) -> Result<u16, reqwest::Error> {
    let answer = http
        .post(format!("{url}/v1/publish"))
        .json(&publish_document(code, keys))
        .send()
        .await?;
    let status = answer.status().as_u16();
    // Read the whole answer: an acknowledgement is only one once it has arrived.
    answer.bytes().await?;
    Ok(status)
}

/// The export keys `/v1/config` lists, as a device trusts them.
pub async fn trusted_keys(http: &reqwest::Client, url: &str) -> TrustedKeys {
    let config: Value = http
        .get(format!("{url}/v1/config"))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .expect("GET /v1/config")
        .json()
        .await
        .expect("a JSON configuration");
    let mut trusted = TrustedKeys::new();
    for key in config["exportVerificationKeys"]
        .as_array()
        .expect("export keys")
    {
        let pem = key["publicKeyPem"].as_str().expect("a PEM key");
        trusted.insert(
            key["keyId"].as_str().expect("a key id"),
            key["keyVersion"].as_str().expect("a key version"),
            VerifyingKey::from_public_key_pem(pem).expect("a P-256 public key"),
        );
    }
    trusted
}

/// How often each key occurs in the export files at `paths` (from the server's root),
/// each downloaded and verified against `/v1/config`'s keys.
pub async fn exported_key_counts(
    http: &reqwest::Client,
    url: &str,
    paths: &[String],
) -> BTreeMap<KeyBytes, usize> {
    let trusted = trusted_keys(http, url).await;
    let mut counts = BTreeMap::new();
    for path in paths {
        let bytes = http
            .get(format!("{url}/{path}"))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
            .bytes()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let export = ExportFile::parse(&bytes, &ExportLimits::default())
            .and_then(|file| file.verify(&trusted))
            .unwrap_or_else(|e| panic!("{path} does not verify: {e}"));
        for key in export.keys() {
            let key = key.unwrap_or_else(|e| panic!("a key in {path}: {e}"));
            *counts.entry(*key.tek.expose_secret()).or_default() += 1;
        }
    }
    counts
}

/// Panics if any key of `counts` (from [`exported_key_counts`]) was exported more than once.
#[track_caller]
pub fn assert_each_once(counts: &BTreeMap<KeyBytes, usize>) {
    let twice = counts.values().filter(|n| **n > 1).count();
    assert_eq!(twice, 0, "{twice} keys exported more than once");
}
