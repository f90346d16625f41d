//! The kith-server's public API as the agent uses it: `/v1/config`, the export and
//! trace-warning indexes and files (with conditional requests), and sealed publishing of
//! keys and venue check-ins.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use kith_core::checkin::ProtectedReport;
use kith_core::sealed::{self, RESPONSE_CONTENT_TYPE};
use kith_core::{TemporaryExposureKey, TrustedKeys, VerifyingKey};
use rand_core::{CryptoRng, RngCore};
use reqwest::{StatusCode, Url, header};
use serde::{Deserialize, Serialize};

use crate::config::TrustedKey;
use crate::error::{Error, Result};

/// The parts of `GET /v1/config` the agent reads.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerConfig {
    /// The risk configuration (ENX JSON).
    pub risk_configuration: serde_json::Value,
    /// The export signing key (server part 1).
    #[serde(default)]
    pub export_verification_key: Option<TrustedKeyJson>,
    /// The export signing keys (several when keys rotate).
    #[serde(default)]
    pub export_verification_keys: Vec<TrustedKeyJson>,
    /// Where to seal publish requests to.
    pub hpke: Hpke,
    /// The export index, relative to the server's URL (a server that does not say:
    /// [`EXPORT_INDEX`]).
    #[serde(default = "export_index")]
    pub export_index: String,
    /// The index of venue trace-warning packages, relative to the server's URL; a key
    /// server that does not list one publishes none.
    #[serde(default)]
    pub trace_warning_index: Option<String>,
}

fn export_index() -> String {
    EXPORT_INDEX.into()
}

/// One export key as `/v1/config` lists it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrustedKeyJson {
    key_id: String,
    key_version: String,
    public_key: String,
}

/// The HPKE parameters of `/v1/config`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hpke {
    kem_id: u16,
    kdf_id: u16,
    aead_id: u16,
    public_key: String,
    info: String,
    content_type: String,
    padded_plaintext_len: usize,
}

impl ServerConfig {
    /// The export keys the server lists.
    pub fn export_keys(&self) -> Vec<TrustedKey> {
        self.export_verification_key
            .iter()
            .chain(&self.export_verification_keys)
            .map(|k| TrustedKey {
                key_id: k.key_id.clone(),
                key_version: k.key_version.clone(),
                public_key: k.public_key.clone(),
            })
            .collect()
    }
}

/// Parses configured keys (base64 DER or PEM) into core's trust list.
pub fn trusted_keys(keys: &[TrustedKey]) -> Result<TrustedKeys> {
    let mut trusted = TrustedKeys::new();
    for key in keys {
        let text = key.public_key.trim();
        let parsed = if text.starts_with("-----BEGIN") {
            VerifyingKey::from_public_key_pem(text)
        } else {
            let der = STANDARD.decode(text).map_err(|e| {
                Error::Config(format!(
                    "trusted key {}/{}: not base64 DER ({e})",
                    key.key_id, key.key_version
                ))
            })?;
            VerifyingKey::from_public_key_der(&der)
        }
        .map_err(|e| {
            Error::Config(format!(
                "trusted key {}/{}: {e}",
                key.key_id, key.key_version
            ))
        })?;
        trusted.insert(key.key_id.clone(), key.key_version.clone(), parsed);
    }
    Ok(trusted)
}

/// The export index kith-server serves, relative to its URL.
pub const EXPORT_INDEX: &str = "v1/exports/index.txt";

/// A downloaded resource, or "unchanged".
#[derive(Debug)]
pub enum Fetched {
    /// 304: what we had is current.
    NotModified,
    /// The body and its ETag.
    Body {
        /// The bytes.
        bytes: Vec<u8>,
        /// The strong ETag, if sent.
        etag: Option<String>,
    },
}

/// A kith-server, by its public base URL.
#[derive(Clone, Debug)]
pub struct ServerClient {
    base: Url,
    http: reqwest::Client,
}

/// The largest export file the agent downloads.
const MAX_DOWNLOAD: usize = 64 * 1024 * 1024;

impl ServerClient {
    /// A client for the server at `base` (e.g. `https://keys.example.org`), over TLS
    /// (rustls) trusting the system's root certificates and those in `ca_file` (PEM).
    pub fn new(base: &str, ca_file: Option<&Path>) -> Result<Self> {
        let mut base =
            Url::parse(base).map_err(|e| Error::Config(format!("server URL {base:?}: {e}")))?;
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .user_agent(concat!("kith-agent/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(std::time::Duration::from_secs(20))
            .timeout(std::time::Duration::from_secs(60));
        if let Some(path) = ca_file {
            let pem = std::fs::read(path)
                .map_err(Error::io(format!("reading ca_file {}", path.display())))?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem)
                .ok()
                .filter(|certificates| !certificates.is_empty())
                .ok_or_else(|| {
                    Error::Config(format!(
                        "ca_file {}: no PEM certificate in it",
                        path.display()
                    ))
                })?;
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let http = builder
            .build()
            .map_err(|e| Error::Server(format!("HTTP client: {e}")))?;
        Ok(Self { base, http })
    }

    fn url(&self, path: &str) -> Result<Url> {
        self.base
            .join(path)
            .map_err(|e| Error::Server(format!("bad path {path:?}: {e}")))
    }

    /// `GET /v1/config`.
    pub async fn config(&self) -> Result<ServerConfig> {
        let response = self.send(self.http.get(self.url("v1/config")?)).await?;
        let bytes = body(response, 1 << 20).await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::Server(format!("/v1/config is not the expected JSON: {e}")))
    }

    /// `GET <path>`, relative to the server's URL as index lines are (GAEN's form:
    /// `v1/exports/<start>-<end>-<n>.zip`), conditional on `etag`.
    pub async fn fetch(&self, path: &str, etag: Option<&str>) -> Result<Fetched> {
        let url = self.base.join(path).map_err(|e| {
            Error::Server(format!(
                "the index names {path:?}, which is not a path: {e}"
            ))
        })?;
        if url.origin() != self.base.origin() {
            return Err(Error::Server(format!(
                "the index points at another host ({path:?}); refusing"
            )));
        }
        let mut request = self.http.get(url);
        if let Some(etag) = etag {
            request = request.header(header::IF_NONE_MATCH, etag);
        }
        let response = self.send(request).await?;
        if response.status() == StatusCode::NOT_MODIFIED {
            return Ok(Fetched::NotModified);
        }
        let etag = response
            .headers()
            .get(header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(Fetched::Body {
            bytes: body(response, MAX_DOWNLOAD).await?,
            etag,
        })
    }

    /// Publishes `keys` and the venue visits `check_ins` with a verification code, sealed
    /// to the server's HPKE key.
    pub async fn publish_sealed<R: RngCore + CryptoRng>(
        &self,
        config: &ServerConfig,
        upload: &Upload<'_>,
        rng: &mut R,
    ) -> Result<PublishAnswer> {
        let Upload {
            keys,
            check_ins,
            code,
        } = *upload;
        let document = PublishRequest {
            temporary_exposure_keys: keys
                .iter()
                .map(|k| PublishedKey {
                    key: STANDARD.encode(k.expose_secret()),
                    rolling_start_number: k.validity().start().get(),
                    rolling_period: k.validity().period().get(),
                })
                .collect(),
            check_in_protected_reports: check_ins
                .iter()
                .map(|report| STANDARD.encode(report.to_bytes()))
                .collect(),
            verification_code: code,
        };
        let json = zeroize::Zeroizing::new(
            serde_json::to_vec(&document).map_err(|e| Error::Server(e.to_string()))?,
        );
        let (sealed, opener) = seal(&config.hpke, &json, rng)?;
        let response = self
            .send_any(
                self.http
                    .post(self.url("v1/publish")?)
                    .header(header::CONTENT_TYPE, &config.hpke.content_type)
                    .body(sealed),
            )
            .await?;
        let status = response.status();
        let sealed_answer = response
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes() == RESPONSE_CONTENT_TYPE.as_bytes());
        let mut bytes = body(response, 1 << 16).await?;
        if sealed_answer {
            bytes = opener
                .open(&bytes)
                .map_err(|e| Error::Server(format!("the server's answer: {e}")))?
                .to_vec();
        }
        let answer: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        // A sealed answer arrives with 200 whatever it says: the error is inside.
        if status.is_success() && answer.get("error").is_none() {
            Ok(PublishAnswer {
                inserted: answer["insertedExposures"].as_u64().unwrap_or(0),
            })
        } else {
            Err(Error::Server(format!(
                "the server refused the keys ({status}): {} — {}",
                answer["error"].as_str().unwrap_or("no error code"),
                answer["message"].as_str().unwrap_or("no message")
            )))
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let response = self.send_any(request).await?;
        let status = response.status();
        if status.is_success() || status == StatusCode::NOT_MODIFIED {
            Ok(response)
        } else {
            let url = response.url().path().to_owned();
            Err(Error::Server(format!("{url}: HTTP {status}")))
        }
    }

    async fn send_any(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        request.send().await.map_err(|e| {
            // reqwest's message carries the URL (the server's, not a secret); the cause
            // (refused, timed out, an untrusted certificate) is further down the chain.
            let mut message = format!("cannot reach the server: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            Error::Server(message)
        })
    }
}

/// What a positive person uploads.
#[derive(Clone, Copy)]
pub struct Upload<'a> {
    /// The device's daily keys.
    pub keys: &'a [TemporaryExposureKey],
    /// Its venue visits, each encrypted under its venue's id.
    pub check_ins: &'a [ProtectedReport],
    /// The health authority's verification code.
    pub code: &'a str,
}

impl std::fmt::Debug for Upload<'_> {
    /// Counts only: the keys and the code are secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload")
            .field("keys", &self.keys.len())
            .field("check_ins", &self.check_ins.len())
            .finish_non_exhaustive()
    }
}

/// What the server answered to a publish.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct PublishAnswer {
    /// Keys the server stored.
    pub inserted: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PublishRequest<'a> {
    temporary_exposure_keys: Vec<PublishedKey>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    check_in_protected_reports: Vec<String>,
    verification_code: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PublishedKey {
    key: String,
    rolling_start_number: u32,
    rolling_period: u32,
}

impl Drop for PublishedKey {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.key);
    }
}

/// The response body, refusing more than `limit` bytes.
async fn body(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| Error::Server(format!("download interrupted: {e}")))?
    {
        if bytes.len() + chunk.len() > limit {
            return Err(Error::Server(format!("a response exceeded {limit} bytes")));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// The publish JSON padded and sealed as `/v1/config` describes (HPKE base mode,
/// X25519 / HKDF-SHA256 / AES-128-GCM, core's [`sealed`]): `enc ‖ ciphertext`, and what
/// opens the answer.
fn seal<R: RngCore + CryptoRng>(
    hpke: &Hpke,
    json: &[u8],
    rng: &mut R,
) -> Result<(Vec<u8>, sealed::ResponseOpener)> {
    if (hpke.kem_id, hpke.kdf_id, hpke.aead_id) != (0x20, 1, 1) {
        return Err(Error::Server(format!(
            "the server wants HPKE suite {:#x}/{:#x}/{:#x}; this agent speaks 0x20/0x1/0x1",
            hpke.kem_id, hpke.kdf_id, hpke.aead_id
        )));
    }
    if (
        hpke.info.as_bytes(),
        hpke.padded_plaintext_len,
        hpke.content_type.as_str(),
    ) != (
        sealed::INFO,
        sealed::SEALED_PLAINTEXT_LEN,
        sealed::CONTENT_TYPE,
    ) {
        return Err(Error::Server(format!(
            "the server seals publish requests as {:?} ({} bytes, {}); this agent speaks {:?}",
            hpke.info,
            hpke.padded_plaintext_len,
            hpke.content_type,
            String::from_utf8_lossy(sealed::INFO)
        )));
    }
    let key = STANDARD
        .decode(&hpke.public_key)
        .map_err(|_| Error::Server("the server's HPKE key is not base64".into()))?;
    sealed::seal(&key, json, rng).map_err(|e| Error::Server(format!("sealing the keys: {e}")))
}
