//! `POST /v1/publish`: a positive person's keys with a verification code, as plain
//! JSON (GAEN key-server shape) or sealed with HPKE; every answer has the same size.

use std::net::{IpAddr, Ipv4Addr};

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::answer;
use crate::calendar::Day;
use crate::error::{AppError, ErrorBody, Result};
use crate::guessing::SourceTag;
use crate::json::{self, Body};
use crate::sealed;
use crate::serving::ClientAddr;
use crate::state::AppState;
use crate::upload::{PublishRequest, PublishResponse, Upload};
use crate::writer::Answer;

/// The routes of this resource.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(publish))
}

/// Publish diagnosis keys.
///
/// The body is either `application/json` (a `PublishRequest`) or
/// `application/kith-sealed`: exactly 49 200 bytes, the 32-byte HPKE encapsulated key
/// followed by the HPKE ciphertext (RFC 9180 base mode, DHKEM(X25519, HKDF-SHA256),
/// HKDF-SHA256, AES-128-GCM, info `kith publish v1`, empty AAD) of the
/// `PublishRequest` JSON right-padded with spaces to 49 152 bytes. The server's HPKE
/// public key is in `/v1/config`. A plain request's answer, success or error, is 512
/// bytes of JSON. A sealed request that opens is answered `200` with
/// `application/kith-sealed-response`: 544 bytes, a 16-byte response nonce and the
/// AES-128-GCM sealing (RFC 9458 §4.4, exporter context `kith publish response v1`)
/// of the 512-byte JSON answer, which carries the real status in `status`. Sending
/// the same sealed body again gets the answer its first sending got.
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
        (status = 200, description = "Keys accepted (or a chaff upload answered); for a sealed request, the sealed answer whatever it says", body = PublishResponse),
        (status = 400, description = "Malformed body or a GAEN rule broken", body = ErrorBody),
        (status = 401, description = "Unknown verification code", body = ErrorBody),
        (status = 403, description = "Verification code already used or expired", body = ErrorBody),
        (status = 413, description = "Body larger than 64 KiB", body = ErrorBody),
        (status = 415, description = "Neither application/json nor application/kith-sealed", body = ErrorBody),
        (status = 408, description = "The body did not arrive in time", body = ErrorBody),
        (status = 429, description = "This source failed too often; see Retry-After", body = ErrorBody),
        (status = 503, description = "Storage full (`storage_full`, see Retry-After) or shutting down", body = ErrorBody),
    ),
)]
async fn publish(
    State(state): State<AppState>,
    client: Option<Extension<ClientAddr>>,
    headers: HeaderMap,
    body: Result<Body>,
) -> Response {
    // Without a connection (in-process tests) every request is one source.
    let address = client.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.0);
    let source = state.sources.tag(address, Day::of(state.clock.now()));
    match json::media_type(&headers).as_deref() {
        Some("application/json") => plain(&state, body, source).await,
        Some(sealed::CONTENT_TYPE) => sealed(&state, body, source).await,
        _ => error_response(&AppError::UnsupportedMediaType {
            expected: "application/json or application/kith-sealed",
        }),
    }
}

async fn plain(state: &AppState, body: Result<Body>, source: SourceTag) -> Response {
    let accepted = async {
        let request: PublishRequest = json::parse(&body?.0)?;
        let upload = Upload::validate(&request, state.clock.now())?;
        match state.writer.publish(upload, source, None).await? {
            Answer::Accepted(inserted) => Ok(inserted),
            Answer::Sealed(_) => Err(AppError::Unavailable),
        }
    };
    match accepted.await {
        Ok(inserted) => json_response(StatusCode::OK, answer::accepted(inserted)),
        Err(error) => error_response(&error),
    }
}

/// A sealed publish: once the body opens, every answer is a 200 whose sealed content
/// holds the real status, so an observer learns nothing but that the body opened.
async fn sealed(state: &AppState, body: Result<Body>, source: SourceTag) -> Response {
    let opened = body.and_then(|body| state.keyring.opening_key.open(&body.0));
    let (plaintext, sealer) = match opened {
        Ok(opened) => opened,
        Err(error) => return error_response(&error),
    };
    let answered = async {
        let request: PublishRequest = json::parse(&plaintext)?;
        let upload = Upload::validate(&request, state.clock.now())?;
        state
            .writer
            .publish(upload, source, Some(sealer.clone()))
            .await
    };
    let sealed_answer = match answered.await {
        Ok(Answer::Sealed(bytes)) => bytes,
        Ok(Answer::Accepted(_)) => return error_response(&AppError::Unavailable),
        Err(error) if error.status().is_server_error() => return error_response(&error),
        Err(error) => {
            let value = answer::with_status(answer::refused(&error), error.status().as_u16());
            sealer.seal(answer::padded(value).as_bytes(), &mut rand::thread_rng())
        }
    };
    let mut response = (StatusCode::OK, sealed_answer).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(sealed::RESPONSE_CONTENT_TYPE),
    );
    response
}

fn json_response(status: StatusCode, value: serde_json::Value) -> Response {
    let mut response = (status, answer::padded(value)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn error_response(error: &AppError) -> Response {
    let mut response = json_response(error.status(), answer::refused(error));
    error.add_headers(&mut response);
    response
}
