//! `GET /metrics` in Prometheus text format, and the middleware that counts requests.
//!
//! Requests are labelled by the route pattern (`/v1/publish`), never the raw URI, by
//! method from a fixed list, and by status; labels carry nothing about the client.
//! `/metrics` is served on the operator listener only.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;
use crate::{portal_dashboard, statistics};

/// Latency buckets in seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
];

/// The process-wide recorder (metrics are global in the `metrics` crate); installed once.
pub fn recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("duration_seconds".into()), LATENCY_BUCKETS)
                .expect("bucket list is not empty");
            match builder.install_recorder() {
                Ok(handle) => handle,
                // Another recorder is installed (only in tests that embed the server):
                // keep a private one so /metrics still renders.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            }
        })
        .clone()
}

/// The routes of this resource.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(metrics))
}

/// Prometheus metrics: the process's own, and the daily figures of the dashboard
/// (`kith_daily_*{day="YYYY-MM-DD"}`, the last four weeks).
#[utoipa::path(get, path = "/metrics", tag = "operations", responses(
    (status = 200, description = "Prometheus text exposition format", body = String, content_type = "text/plain; version=0.0.4"),
))]
async fn metrics(State(state): State<AppState>) -> Response {
    let mut text = state.metrics.render();
    // The dashboard's daily figures, from the database (so every server of a shared
    // database reports the same).
    match portal_dashboard::load(&state).await {
        Ok(days) => text.push_str(&statistics::prometheus(&days)),
        Err(error) => tracing::warn!(%error, "daily figures left out of /metrics"),
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// The method as a label: one of a fixed set, so invented methods cannot grow `/metrics`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Middleware: counts every request and records its latency by route, method and status.
pub async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = method_label(request.method()).to_owned();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    let elapsed = started.elapsed();
    let labels = [("route", route), ("method", method), ("status", status)];
    metrics::counter!("kith_http_requests_total", &labels).increment(1);
    metrics::histogram!("kith_http_request_duration_seconds", &labels)
        .record(elapsed.as_secs_f64());
    tracing::debug!(
        route = %labels[0].1,
        method = %labels[1].1,
        status = %labels[2].1,
        micros = elapsed.as_micros() as u64,
        "request"
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invented_methods_share_one_label() {
        for (method, label) in [
            ("GET", "GET"),
            ("POST", "POST"),
            ("BREW", "other"),
            ("X-1", "other"),
        ] {
            assert_eq!(
                method_label(&Method::from_bytes(method.as_bytes()).unwrap()),
                label
            );
        }
    }
}
