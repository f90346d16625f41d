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
use crate::codes::{CodeOrder, Diagnosis, Onset, OnsetKind};
use crate::error::{AppError, ErrorBody, Result};
use crate::json::Json;
use crate::state::AppState;

/// Most codes one request may issue (batch workflows of large test centres).
pub const MAX_CODES_PER_REQUEST: u32 = 10_000;

/// Oldest onset or test date accepted, in days before today (GAEN: at most 14 days ago).
pub const MAX_ONSET_AGE_DAYS: u32 = 14;

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
    /// The codes, 12 digits each.
    pub codes: Vec<String>,
    /// When they stop working, RFC 3339 UTC.
    pub expires_at: String,
    /// The same, in Unix seconds.
    pub expires_at_unix: u64,
}

/// The routes of this resource.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(issue_codes))
}

/// Checks an order and turns it into a [`CodeOrder`] (shared with the portal's form).
pub fn code_order(
    state: &AppState,
    diagnosis: Diagnosis,
    symptom_onset_date: Option<&str>,
    test_date: Option<&str>,
    count: u32,
) -> Result<CodeOrder> {
    if !(1..=MAX_CODES_PER_REQUEST).contains(&count) {
        return Err(AppError::invalid(
            "invalid_count",
            format!("count must be 1..={MAX_CODES_PER_REQUEST}, got {count}"),
        ));
    }
    let now = state.clock.now_unix();
    let today = calendar::day_of(now);
    let day = |text: &str, field: &str| -> Result<u32> {
        let day = calendar::parse_date(text).ok_or_else(|| {
            AppError::invalid("invalid_date", format!("{field} must be a date YYYY-MM-DD"))
        })?;
        if day > today || day + MAX_ONSET_AGE_DAYS < today {
            return Err(AppError::invalid(
                "invalid_date",
                format!("{field} must be between {MAX_ONSET_AGE_DAYS} days ago and today (UTC)"),
            ));
        }
        Ok(day)
    };
    let onset = match (symptom_onset_date, test_date) {
        (Some(date), _) => Some(Onset {
            day: day(date, "symptomOnsetDate")?,
            kind: OnsetKind::Symptom,
        }),
        (None, Some(date)) => Some(Onset {
            day: day(date, "testDate")?,
            kind: OnsetKind::Test,
        }),
        (None, None) => None,
    };
    Ok(CodeOrder {
        diagnosis,
        onset,
        count,
        expires_at: now + u64::from(state.config.code_lifetime_minutes) * 60,
    })
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
    let order = code_order(
        &state,
        request.diagnosis,
        request.symptom_onset_date.as_deref(),
        request.test_date.as_deref(),
        request.count,
    )?;
    let codes = state.writer.issue_codes(order).await?;
    Ok(axum::Json(IssuedCodes {
        codes: codes
            .iter()
            .map(|code| code.expose_secret().to_owned())
            .collect(),
        expires_at: calendar::format_rfc3339(order.expires_at),
        expires_at_unix: order.expires_at,
    }))
}
