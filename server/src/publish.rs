//! `POST /v1/publish`: a positive person's keys with a verification code, as plain
//! JSON (GAEN key-server shape) or sealed with HPKE; every answer has the same size.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rand::Rng;
use rand::distributions::Alphanumeric;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{AppError, ErrorBody, Result};
use crate::json::{self, Body};
use crate::sealed;
use crate::state::AppState;
use crate::upload::{PublishRequest, PublishResponse, Upload};

/// Size of every publish response body, success or error, in bytes.
pub const RESPONSE_LEN: usize = 512;

/// The routes of this resource.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(publish))
}

/// Publish diagnosis keys.
///
/// The body is either `application/json` (a `PublishRequest`) or
/// `application/kith-sealed`: exactly 4144 bytes, the 32-byte HPKE encapsulated key
/// followed by the HPKE ciphertext (RFC 9180 base mode, DHKEM(X25519, HKDF-SHA256),
/// HKDF-SHA256, AES-128-GCM, info `kith publish v1`, empty AAD) of the
/// `PublishRequest` JSON right-padded with spaces to 4096 bytes. The server's HPKE
/// public key is in `/v1/config`. Every response body, success or error, is 512 bytes.
#[utoipa::path(
    post,
    path = "/v1/publish",
    tag = "publish",
    request_body(
        description = "`application/json`: a PublishRequest; `application/kith-sealed`: enc (32 bytes) ‖ HPKE ciphertext of the space-padded JSON",
        content(
            (PublishRequest = "application/json"),
            (Vec<u8> = "application/kith-sealed"),
        ),
    ),
    responses(
        (status = 200, description = "Keys accepted (or a chaff upload answered)", body = PublishResponse),
        (status = 400, description = "Malformed body or a GAEN rule broken", body = ErrorBody),
        (status = 401, description = "Unknown verification code", body = ErrorBody),
        (status = 403, description = "Verification code already used or expired", body = ErrorBody),
        (status = 413, description = "Body larger than 64 KiB", body = ErrorBody),
        (status = 415, description = "Neither application/json nor application/kith-sealed", body = ErrorBody),
        (status = 429, description = "Guessing budget spent; see Retry-After", body = ErrorBody),
    ),
)]
async fn publish(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Body>,
) -> Response {
    match accept(&state, &headers, body).await {
        Ok(inserted) => padded(
            StatusCode::OK,
            &PublishResponse {
                inserted_exposures: inserted,
                padding: String::new(),
            },
        ),
        Err(error) => {
            let mut response = padded(error.status(), &error.body());
            error.add_headers(&mut response);
            response
        }
    }
}

async fn accept(state: &AppState, headers: &HeaderMap, body: Result<Body>) -> Result<usize> {
    let request: PublishRequest = match json::media_type(headers).as_deref() {
        Some("application/json") => json::parse(&body?.0)?,
        Some(sealed::CONTENT_TYPE) => json::parse(&state.keyring.opening_key.open(&body?.0)?)?,
        _ => {
            return Err(AppError::UnsupportedMediaType {
                expected: "application/json or application/kith-sealed",
            });
        }
    };
    let upload = Upload::validate(&request, state.clock.now())?;
    state.writer.publish(upload).await
}

/// `value` as JSON with a `padding` member that makes it exactly [`RESPONSE_LEN`] bytes.
fn padded(status: StatusCode, value: &impl Serialize) -> Response {
    let mut object = match serde_json::to_value(value) {
        Ok(serde_json::Value::Object(object)) => object,
        _ => serde_json::Map::new(),
    };
    object.insert("padding".into(), serde_json::Value::String(String::new()));
    let mut unpadded = serde_json::Value::Object(object.clone()).to_string().len();
    // A message quoting a long client input must not make this answer longer.
    while unpadded > RESPONSE_LEN {
        let Some(serde_json::Value::String(message)) = object.get_mut("message") else {
            break;
        };
        let mut cut = message.len() / 2;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        unpadded = serde_json::Value::Object(object.clone()).to_string().len();
    }
    let filler: String = rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(RESPONSE_LEN.saturating_sub(unpadded))
        .map(char::from)
        .collect();
    object.insert("padding".into(), serde_json::Value::String(filler));
    let body = serde_json::Value::Object(object).to_string();
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn padded_bodies_have_one_size() {
        for (status, value) in [
            (StatusCode::OK, serde_json::json!({"insertedExposures": 1})),
            (StatusCode::OK, serde_json::json!({"insertedExposures": 30})),
            (
                StatusCode::BAD_REQUEST,
                serde_json::json!({"error": "invalid_key", "message": "x".repeat(300)}),
            ),
            (
                StatusCode::BAD_REQUEST,
                serde_json::json!({"error": "invalid_json", "message": "\u{1}é".repeat(900)}),
            ),
        ] {
            let response = padded(status, &value);
            let bytes = axum::body::to_bytes(response.into_body(), 4096)
                .await
                .unwrap();
            assert_eq!(bytes.len(), RESPONSE_LEN);
            let parsed: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            assert!(parsed["padding"].is_string());
        }
    }
}
