//! `GET /openapi.json`: the OpenAPI 3.1 description of each listener's API, built from
//! the same route declarations that build its router, so the two cannot drift apart.

use std::sync::LazyLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ErrorBody;
use crate::state::AppState;
use crate::{
    admin, client_config, distribution, health, metrics, portal, portal_dashboard, portal_venues,
    publish,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Kith key server",
        description = "Health-authority verification codes and sealed, padded publishing of diagnosis keys (GAEN-compatible).",
    ),
    modifiers(&AdminKeyScheme),
    components(schemas(ErrorBody)),
    tags(
        (name = "publish", description = "What phones call"),
        (name = "health authority", description = "Codes and the case worker's page"),
        (name = "operations", description = "Health, metrics and this document"),
    ),
)]
struct ApiDoc;

struct AdminKeyScheme;

impl Modify for AdminKeyScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The admin API key printed on the server's first start",
                    ))
                    .build(),
            ),
        );
    }
}

/// The public listener's routes (what phones call) with their OpenAPI description.
pub fn public_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(publish::router())
        .merge(client_config::router())
        .merge(distribution::router())
        .merge(health::router())
        .routes(routes!(public_openapi_json))
}

/// The operator listener's routes (the health authority and monitoring).
pub fn operator_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(admin::router())
        .merge(portal::router())
        .merge(portal_venues::router())
        .merge(portal_dashboard::router())
        .merge(health::router())
        .merge(metrics::router())
        .routes(routes!(operator_openapi_json))
}

fn document(router: OpenApiRouter<AppState>) -> String {
    router.into_openapi().to_pretty_json().unwrap_or_default()
}

static PUBLIC_DOCUMENT: LazyLock<String> = LazyLock::new(|| document(public_router()));
static OPERATOR_DOCUMENT: LazyLock<String> = LazyLock::new(|| document(operator_router()));

/// This OpenAPI document (the public API).
#[utoipa::path(get, path = "/openapi.json", tag = "operations", responses(
    (status = 200, description = "OpenAPI 3.1 document", body = Object),
))]
async fn public_openapi_json() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        PUBLIC_DOCUMENT.as_str(),
    )
}

/// This OpenAPI document (the operator API).
#[utoipa::path(get, path = "/openapi.json", tag = "operations", responses(
    (status = 200, description = "OpenAPI 3.1 document", body = Object),
))]
async fn operator_openapi_json() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        OPERATOR_DOCUMENT.as_str(),
    )
}
