//! The kith-server's public API as the agent uses it: `/v1/config`, the export index
//! and files (with conditional requests), and sealed key publishing.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hpke::aead::AesGcm128;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, OpModeS, Serializable};
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
    /// A client for the server at `base` (e.g. `https://keys.example.org`).
    pub fn new(base: &str) -> Result<Self> {
        let mut base =
            Url::parse(base).map_err(|e| Error::Config(format!("server URL {base:?}: {e}")))?;
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("kith-agent/", env!("CARGO_PKG_VERSION")))
            .timeout(std::time::Duration::from_secs(60))
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

    /// `GET /v1/exports/<path>`, conditional on `etag`.
    pub async fn export(&self, path: &str, etag: Option<&str>) -> Result<Fetched> {
        // Index lines are paths relative to the exports directory; a leading `/` is
        // relative to the server.
        let url = self.url("v1/exports/")?.join(path).map_err(|e| {
            Error::Server(format!(
                "the export index names {path:?}, which is not a path: {e}"
            ))
        })?;
        if url.origin() != self.base.origin() {
            return Err(Error::Server(format!(
                "the export index points at another host ({path:?}); refusing"
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

    /// Publishes `keys` with a verification code, sealed to the server's HPKE key.
    pub async fn publish_sealed<R: RngCore + CryptoRng>(
        &self,
        config: &ServerConfig,
        keys: &[TemporaryExposureKey],
        code: &str,
        rng: &mut R,
    ) -> Result<PublishAnswer> {
        let document = PublishRequest {
            temporary_exposure_keys: keys
                .iter()
                .map(|k| PublishedKey {
                    key: STANDARD.encode(k.expose_secret()),
                    rolling_start_number: k.validity().start().get(),
                    rolling_period: k.validity().period().get(),
                })
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
            .is_some_and(|v| v.as_bytes() == SEALED_RESPONSE_TYPE.as_bytes());
        let mut bytes = body(response, 1 << 16).await?;
        if sealed_answer {
            bytes = opener.open(&bytes)?;
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
            // reqwest's message carries the URL (the server's, not a secret) and the cause.
            Error::Server(format!("cannot reach the server: {e}"))
        })
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

type Kem = X25519HkdfSha256;

/// The media type of an answer sealed back to the sender (as Oblivious HTTP, RFC 9458 §4.4).
const SEALED_RESPONSE_TYPE: &str = "application/kith-sealed-response";

/// The exporter context of the answer's secret.
const RESPONSE_EXPORT_CONTEXT: &[u8] = b"kith publish response v1";

/// What opens the answer to one sealed request: its `enc` and the secret exported
/// from its HPKE context.
struct ResponseOpener {
    enc: Vec<u8>,
    secret: zeroize::Zeroizing<[u8; 16]>,
}

impl ResponseOpener {
    /// `response_nonce (16) ‖ AES-128-GCM(answer)`, keyed by HKDF(salt = enc ‖ nonce, secret).
    fn open(&self, body: &[u8]) -> Result<Vec<u8>> {
        use aes_gcm::aead::{Aead, KeyInit};
        let unopenable = || Error::Server("the server's sealed answer does not open".into());
        if body.len() < 16 {
            return Err(unopenable());
        }
        let (nonce, ciphertext) = body.split_at(16);
        let salt = [self.enc.as_slice(), nonce].concat();
        let prk = hkdf::Hkdf::<sha2::Sha256>::new(Some(&salt), self.secret.as_ref());
        let mut key = zeroize::Zeroizing::new([0u8; 16]);
        let mut iv = [0u8; 12];
        prk.expand(b"key", key.as_mut()).map_err(|_| unopenable())?;
        prk.expand(b"nonce", &mut iv).map_err(|_| unopenable())?;
        aes_gcm::Aes128Gcm::new((&*key).into())
            .decrypt(aes_gcm::Nonce::from_slice(&iv), ciphertext)
            .map_err(|_| unopenable())
    }
}

/// HPKE base mode (X25519 / HKDF-SHA256 / AES-128-GCM) of the JSON padded
/// with spaces, as `/v1/config` describes: `enc ‖ ciphertext`.
fn seal<R: RngCore + CryptoRng>(
    hpke: &Hpke,
    json: &[u8],
    rng: &mut R,
) -> Result<(Vec<u8>, ResponseOpener)> {
    if (hpke.kem_id, hpke.kdf_id, hpke.aead_id) != (0x20, 1, 1) {
        return Err(Error::Server(format!(
            "the server wants HPKE suite {:#x}/{:#x}/{:#x}; this agent speaks 0x20/0x1/0x1",
            hpke.kem_id, hpke.kdf_id, hpke.aead_id
        )));
    }
    if json.len() > hpke.padded_plaintext_len {
        return Err(Error::Server(format!(
            "the keys take {} bytes, more than the {} a sealed upload holds",
            json.len(),
            hpke.padded_plaintext_len
        )));
    }
    let key = STANDARD
        .decode(&hpke.public_key)
        .ok()
        .and_then(|b| <Kem as hpke::Kem>::PublicKey::from_bytes(&b).ok())
        .ok_or_else(|| Error::Server("the server's HPKE key is not 32 bytes of X25519".into()))?;
    let mut plaintext = zeroize::Zeroizing::new(vec![b' '; hpke.padded_plaintext_len]);
    plaintext[..json.len()].copy_from_slice(json);
    let failed = |e: hpke::HpkeError| Error::Server(format!("sealing failed: {e}"));
    let (enc, mut context) = hpke::setup_sender::<AesGcm128, HkdfSha256, Kem, R>(
        &OpModeS::Base,
        &key,
        hpke.info.as_bytes(),
        rng,
    )
    .map_err(failed)?;
    let ciphertext = context.seal(&plaintext, b"").map_err(failed)?;
    let mut secret = zeroize::Zeroizing::new([0u8; 16]);
    context
        .export(RESPONSE_EXPORT_CONTEXT, secret.as_mut())
        .map_err(failed)?;
    let enc = enc.to_bytes().to_vec();
    let body = [enc.as_slice(), &ciphertext].concat();
    Ok((body, ResponseOpener { enc, secret }))
}
