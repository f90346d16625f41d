//! The two HTTP APIs: the public one (publish, `/v1/config`, `/healthz`) and the
//! operator's (admin API, portal, `/metrics`), each with the same fallbacks and layers.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Uri;

use crate::error::AppError;
use crate::state::AppState;
use crate::{json, metrics, openapi};

/// The public API on `state`: what phones call.
pub fn public(state: AppState) -> Router {
    finish(openapi::public_router(), state)
}

/// The operator API on `state`: codes, the case worker's page, metrics.
pub fn operator(state: AppState) -> Router {
    finish(openapi::operator_router(), state)
}

fn finish(router: utoipa_axum::router::OpenApiRouter<AppState>, state: AppState) -> Router {
    let (router, _) = router.split_for_parts();
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(metrics::track))
        .layer(DefaultBodyLimit::max(json::MAX_BODY_BYTES))
        .with_state(state)
}

async fn not_found(uri: Uri) -> AppError {
    AppError::NotFound(uri.path().chars().take(200).collect())
}

async fn method_not_allowed() -> AppError {
    AppError::MethodNotAllowed
}
