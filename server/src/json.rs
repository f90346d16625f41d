//! Request bodies: a JSON extractor and a raw-body extractor whose rejections are
//! [`AppError`]s, so a malformed body gets the same `{"error", "message"}` answer as
//! any other mistake.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, header};
use serde::de::DeserializeOwned;

use crate::error::{AppError, Result};

/// Largest request body any route accepts (GAEN caps publish bodies at 64 KiB).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// How long a body may take to arrive once its headers have.
pub const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The media type of `headers`' Content-Type without parameters, lowercased.
pub fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = value.split(';').next().unwrap_or_default().trim();
    Some(essence.to_ascii_lowercase())
}

/// Parses a JSON document; syntax errors and type errors are told apart.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| {
        use serde_json::error::Category;
        let code = match e.classify() {
            Category::Data => "invalid_field",
            Category::Syntax | Category::Eof | Category::Io => "invalid_json",
        };
        AppError::invalid(code, format!("request body: {e}"))
    })
}

/// The whole request body, at most [`MAX_BODY_BYTES`].
#[derive(Debug)]
pub struct Body(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self> {
        tokio::time::timeout(BODY_TIMEOUT, Bytes::from_request(req, state))
            .await
            .map_err(|_| AppError::RequestTimeout {
                seconds: BODY_TIMEOUT.as_secs(),
            })?
            .map(Self)
            .map_err(|rejection| {
                if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    AppError::PayloadTooLarge {
                        limit: MAX_BODY_BYTES,
                    }
                } else {
                    AppError::invalid("unreadable_body", rejection.body_text())
                }
            })
    }
}

/// A JSON body (`Content-Type: application/json`) deserialized into `T`.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self> {
        if media_type(req.headers()).as_deref() != Some("application/json") {
            return Err(AppError::UnsupportedMediaType {
                expected: "application/json",
            });
        }
        let Body(bytes) = Body::from_request(req, state).await?;
        parse(&bytes).map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn media_type_ignores_parameters_and_case() {
        let mut headers = HeaderMap::new();
        assert_eq!(media_type(&headers), None);
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("Application/JSON; charset=utf-8"),
        );
        assert_eq!(media_type(&headers).as_deref(), Some("application/json"));
    }

    #[test]
    fn syntax_and_type_errors_have_different_codes() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct T {
            n: u32,
        }
        let code = |bytes: &[u8]| match parse::<T>(bytes) {
            Err(AppError::Invalid { code, .. }) => code,
            other => panic!("{other:?}"),
        };
        assert_eq!(code(b"{"), "invalid_json");
        assert_eq!(code(b"{\"n\":\"x\"}"), "invalid_field");
        assert_eq!(code(b"{\"n\":99999999999}"), "invalid_field");
        assert_eq!(parse::<T>(b"{\"n\":1}   ").unwrap().n, 1);
    }
}
