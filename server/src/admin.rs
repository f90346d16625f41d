//! The health authority's API: issuing one-time verification codes. Every call needs
//! `Authorization: Bearer <admin API key>`.

use axum::extract::{FromRequestParts, State};
use axum::http::header;
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::calendar;
use crate::codes::{CodeOrder, Diagnosis, OnsetDates};
use crate::error::{AppError, ErrorBody, Result};
use crate::json::Json;
use crate::state::AppState;

/// Who the audit log names for codes issued through this API.
pub const ADMIN_API: &str = "admin API";

/// Proof that the request carries the admin API key.
#[derive(Debug)]
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        match presented {
            Some(key) if state.keyring.is_admin_key(key.trim()) => Ok(Admin),
            _ => Err(AppError::Unauthorized {
                code: "invalid_admin_key",
                message: "expected Authorization: Bearer <admin API key>".into(),
            }),
        }
    }
}

/// An order for verification codes.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IssueCodesRequest {
    /// Diagnosis put on the published keys.
    pub diagnosis: Diagnosis,
    /// Day symptoms began, `YYYY-MM-DD` (UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symptom_onset_date: Option<String>,
    /// Day of the test, `YYYY-MM-DD`, used when there is no symptom onset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_date: Option<String>,
    /// Number of codes, 1..=10000 (default 1).
    #[serde(default = "one")]
    pub count: u32,
}

fn one() -> u32 {
    1
}

/// Issued codes: shown once, never retrievable again.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssuedCodes {
    /// The codes, 16 digits each.
    pub codes: Vec<String>,
    /// When they stop working, RFC 3339 UTC.
    pub expires_at: String,
    /// The same, in Unix seconds.
    pub expires_at_unix: u64,
}

/// A new case-worker account for the portal.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCaseWorker {
    /// The name they log in with.
    pub name: String,
    /// Their password, at least 12 characters; stored as an Argon2id hash only.
    pub password: String,
}

/// The routes of this resource.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(issue_codes))
        .routes(routes!(add_case_worker))
}

/// Create a case-worker account for the portal.
#[utoipa::path(post, path = "/v1/admin/case-workers", tag = "health authority",
    request_body = NewCaseWorker,
    security(("admin_key" = [])),
    responses(
        (status = 201, description = "Account created"),
        (status = 400, description = "Name taken, password too short, malformed", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin API key", body = ErrorBody),
    ),
)]
async fn add_case_worker(
    _admin: Admin,
    State(state): State<AppState>,
    Json(request): Json<NewCaseWorker>,
) -> Result<axum::http::StatusCode> {
    let accounts = state.accounts.clone();
    tokio::task::spawn_blocking(move || accounts.add(&request.name, &request.password))
        .await
        .map_err(|_| AppError::Unavailable)??;
    Ok(axum::http::StatusCode::CREATED)
}

/// Issue one-time verification codes.
#[utoipa::path(post, path = "/v1/admin/codes", tag = "health authority",
    request_body = IssueCodesRequest,
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "Codes issued", body = IssuedCodes),
        (status = 400, description = "Malformed order", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin API key", body = ErrorBody),
        (status = 413, description = "Body larger than 64 KiB", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
    ),
)]
async fn issue_codes(
    _admin: Admin,
    State(state): State<AppState>,
    Json(request): Json<IssueCodesRequest>,
) -> Result<axum::Json<IssuedCodes>> {
    let dates = OnsetDates {
        symptom_onset: request.symptom_onset_date.as_deref(),
        test: request.test_date.as_deref(),
    };
    let order = CodeOrder::new(
        request.diagnosis,
        dates,
        request.count,
        state.clock.now(),
        state.config.code_lifetime_seconds(),
    )?;
    let codes = state.writer.issue_codes(order, ADMIN_API).await?;
    Ok(axum::Json(IssuedCodes {
        codes: codes
            .iter()
            .map(|code| code.expose_secret().to_owned())
            .collect(),
        expires_at: calendar::format_rfc3339(order.expires_at),
        expires_at_unix: order.expires_at.get(),
    }))
}
