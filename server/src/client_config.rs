//! `GET /v1/config`: what a phone needs to talk to this server and score its matches.

use axum::Json;
use axum::extract::State;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::calendar::format_rfc3339;
use crate::codes::CODE_DIGITS;
use crate::export::files::INDEX_FILE;
use crate::export::trace_warnings::TRACE_WARNING_INDEX;
use crate::sealed;
use crate::state::AppState;

/// The client configuration document.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientConfig {
    /// Risk scoring configuration (GAEN v2, ENX's JSON format as kith-core reads it).
    #[schema(value_type = Object)]
    pub risk_configuration: serde_json::Value,
    /// The newest key that verifies this server's export files (absent only when every
    /// key has retired).
    pub export_verification_key: Option<ExportVerificationKey>,
    /// Every active key, oldest first: each export file carries a signature from each, so
    /// a device may trust any of them. A key with `notAfter` is retiring.
    pub export_verification_keys: Vec<ExportVerificationKey>,
    /// The same keys as the line an ENX device configuration takes
    /// (`<key id>-<key version>,<base64 SPKI>|…`), for an app developer to paste. Absent
    /// when an id or version holds a character that line cannot carry unambiguously
    /// (`,` `|` `:`, or `-` in a version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "kith-v1,MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE…")]
    pub device_configuration_keys: Option<String>,
    /// How to seal publish requests.
    pub hpke: HpkeParameters,
    /// Digits in a verification code.
    pub verification_code_digits: usize,
    /// The export index (`v1/exports/index.txt`), relative to the server's root URL as
    /// its lines are.
    pub export_index: String,
    /// The index of venue trace-warning packages (`v1/trace-warnings/index.txt`),
    /// relative to the server's root URL as its lines are.
    pub trace_warning_index: String,
}

/// The public half of an export signing key, with GAEN's identifiers.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExportVerificationKey {
    /// `verification_key_id` in the export files' `SignatureInfo`.
    pub key_id: String,
    /// `verification_key_version` in `SignatureInfo`.
    pub key_version: String,
    /// `signature_algorithm` in `SignatureInfo`: ECDSA P-256 SHA-256.
    pub signature_algorithm: String,
    /// DER SubjectPublicKeyInfo, standard base64: the form GAEN apps are configured with.
    pub public_key: String,
    /// The same key as a PEM `PUBLIC KEY` block.
    pub public_key_pem: String,
    /// When the key stops signing new files (RFC 3339), if it is retiring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
}

/// `keys` as an ENX device configuration's public-key line, if each one can be written
/// so that it reads back as itself.
fn device_configuration_line(keys: &[ExportVerificationKey]) -> Option<String> {
    let clean = |text: &str, also: char| {
        !text.is_empty() && !text.contains([',', '|', ':', also]) && text.trim() == text
    };
    keys.iter()
        .map(|key| {
            (clean(&key.key_id, ',') && clean(&key.key_version, '-'))
                .then(|| format!("{}-{},{}", key.key_id, key.key_version, key.public_key))
        })
        .collect::<Option<Vec<_>>>()
        .map(|entries| entries.join("|"))
}

/// HPKE suite and key for `application/kith-sealed` publish bodies.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HpkeParameters {
    /// RFC 9180 KEM id (0x0020, DHKEM(X25519, HKDF-SHA256)).
    pub kem_id: u16,
    /// RFC 9180 KDF id (0x0001, HKDF-SHA256).
    pub kdf_id: u16,
    /// RFC 9180 AEAD id (0x0001, AES-128-GCM).
    pub aead_id: u16,
    /// The server's X25519 public key, standard base64.
    pub public_key: String,
    /// The `info` string.
    pub info: String,
    /// Content-Type of sealed bodies.
    pub content_type: String,
    /// Plaintext length after padding with spaces.
    pub padded_plaintext_len: usize,
    /// Length of every sealed body.
    pub sealed_body_len: usize,
}

/// The routes of this resource.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(client_config))
}

/// Client configuration: risk scoring, export verification key, HPKE key, where the
/// indexes are.
#[utoipa::path(get, path = "/v1/config", tag = "publish", responses(
    (status = 200, description = "The configuration", body = ClientConfig),
))]
async fn client_config(State(state): State<AppState>) -> Json<ClientConfig> {
    let keyring = &state.keyring;
    let signing_keys = state.signing_keys.get();
    let now = state.clock.now();
    let keys: Vec<ExportVerificationKey> = signing_keys
        .all()
        .iter()
        .filter(|entry| entry.is_active(now))
        .map(|entry| {
            let signer = &entry.signer;
            let verifying_key = signer.verifying_key();
            ExportVerificationKey {
                key_id: signer.info().key_id().to_owned(),
                key_version: signer.info().key_version().to_owned(),
                signature_algorithm: signer.info().algorithm().to_owned(),
                public_key: STANDARD.encode(verifying_key.to_public_key_der()),
                public_key_pem: verifying_key.to_public_key_pem(),
                not_after: entry.not_after.map(format_rfc3339),
            }
        })
        .collect();
    Json(ClientConfig {
        risk_configuration: serde_json::to_value(&state.risk).unwrap_or_default(),
        export_verification_key: keys.last().cloned(),
        device_configuration_keys: device_configuration_line(&keys),
        export_verification_keys: keys,
        hpke: HpkeParameters {
            kem_id: 0x0020,
            kdf_id: 0x0001,
            aead_id: 0x0001,
            public_key: STANDARD.encode(keyring.opening_key.public_key()),
            info: String::from_utf8_lossy(sealed::INFO).into_owned(),
            content_type: sealed::CONTENT_TYPE.into(),
            padded_plaintext_len: sealed::SEALED_PLAINTEXT_LEN,
            sealed_body_len: sealed::SEALED_BODY_LEN,
        },
        verification_code_digits: CODE_DIGITS,
        export_index: INDEX_FILE.into(),
        trace_warning_index: TRACE_WARNING_INDEX.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(key_id: &str, key_version: &str) -> ExportVerificationKey {
        ExportVerificationKey {
            key_id: key_id.into(),
            key_version: key_version.into(),
            signature_algorithm: "1.2.840.10045.4.3.2".into(),
            public_key: format!("SPKI-of-{key_id}-{key_version}"),
            public_key_pem: String::new(),
            not_after: None,
        }
    }

    #[test]
    fn the_device_configuration_line_lists_every_key_or_none() {
        assert_eq!(
            device_configuration_line(&[key("310", "v1"), key("my-ha", "v2")]).as_deref(),
            Some("310-v1,SPKI-of-310-v1|my-ha-v2,SPKI-of-my-ha-v2")
        );
        assert_eq!(device_configuration_line(&[]).as_deref(), Some(""));
        for (id, version) in [
            ("a,b", "v1"),
            ("a", "v-1"),
            ("a|b", "v1"),
            ("pkg:a", "v1"),
            ("", "v1"),
        ] {
            assert_eq!(
                device_configuration_line(&[key("310", "v1"), key(id, version)]),
                None,
                "{id:?} {version:?}"
            );
        }
    }
}
