//! `GET /healthz`: whether the server can take writes.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// Health report.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct Health {
    /// `ok`; `storage_full` when the last write failed for want of space; `unavailable`
    /// when the database writer has stopped.
    pub status: String,
}

/// The routes of this resource.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(healthz))
}

/// Liveness and readiness.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses(
    (status = 200, description = "Serving", body = Health),
    (status = 503, description = "The disk is full or the database writer has stopped", body = Health),
))]
async fn healthz(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let (status, text) = if !state.writer.is_alive() {
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    } else if state.writer.is_storage_full() {
        (StatusCode::SERVICE_UNAVAILABLE, "storage_full")
    } else {
        (StatusCode::OK, "ok")
    };
    (
        status,
        Json(Health {
            status: text.into(),
        }),
    )
}
