//! The whole HTTP API: every resource's routes, the fallbacks, and the layers around them.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Uri;

use crate::error::AppError;
use crate::state::AppState;
use crate::{json, metrics, openapi};

/// The whole HTTP API on `state`.
pub fn app(state: AppState) -> Router {
    let (router, _) = openapi::api_router().split_for_parts();
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
