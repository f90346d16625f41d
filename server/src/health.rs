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
    /// `ok`, or `unavailable` when the database writer has stopped.
    pub status: String,
}

/// The routes of this resource.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(healthz))
}

/// Liveness and readiness.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses(
    (status = 200, description = "Serving", body = Health),
    (status = 503, description = "The database writer has stopped", body = Health),
))]
async fn healthz(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    if state.writer.is_alive() {
        (
            StatusCode::OK,
            Json(Health {
                status: "ok".into(),
            }),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: "unavailable".into(),
            }),
        )
    }
}
