//! `GET /v1/exports/index.txt` and `GET /v1/exports/<name>.zip`: what devices download;
//! `GET /v1/trace-warnings/index.txt` and `…/<name>.zip` likewise for venue warnings.
//!
//! The files are those of the export store (the data directory's `v1/exports/`, or the
//! bucket's), at the same paths, so nginx, a CDN or the bucket can serve them instead. The
//! index lists file paths relative to the server's root URL, oldest first (an ENX key
//! server's download index, with the root URL as base path). Zips never change: strong
//! ETag, `immutable`, a year of caching; the index has a short max-age and an ETag for
//! conditional requests. HEAD and single byte ranges are answered. With a bucket and
//! `--export-serve redirect`, every instance answers `307` to the file's URL in the bucket
//! instead, with the same `Cache-Control`.

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::config::ExportServe;
use crate::error::AppError;
use crate::export::files::{EXPORT_DIR, INDEX_FILE, is_export_name};
use crate::export::serving::{RangeRequest, none_match, parse_range};
use crate::export::trace_warnings::{TRACE_WARNING_DIR, TRACE_WARNING_INDEX, is_package_name};
use crate::state::AppState;

/// `Cache-Control` of export zips: they never change.
pub const ZIP_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

/// `Cache-Control` of the index: devices see new files within a minute.
pub const INDEX_CACHE_CONTROL: &str = "public, max-age=60";

/// The routes of this resource.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(export_file))
        .routes(routes!(trace_warning_file))
}

/// A directory of immutable signed files and its index.
struct Listing {
    url: &'static str,
    dir: &'static str,
    index: &'static str,
    is_file_name: fn(&str) -> bool,
}

const EXPORTS: Listing = Listing {
    url: "/v1/exports",
    dir: EXPORT_DIR,
    index: INDEX_FILE,
    is_file_name: is_export_name,
};

const TRACE_WARNINGS: Listing = Listing {
    url: "/v1/trace-warnings",
    dir: TRACE_WARNING_DIR,
    index: TRACE_WARNING_INDEX,
    is_file_name: is_package_name,
};

/// The export index, or one export file.
#[utoipa::path(get, path = "/v1/exports/{name}", tag = "publish",
    params(("name" = String, Path, example = "index.txt",
        description = "`index.txt`, or a file name the index lists")),
    responses(
        (status = 200, description = "The file (the index: `text/plain`, one path a line, oldest first)"),
        (status = 206, description = "The requested byte range"),
        (status = 307, description = "With `--export-serve redirect`: the file's URL in the bucket"),
        (status = 304, description = "Unchanged since the ETag given in If-None-Match"),
        (status = 404, description = "No such file"),
        (status = 416, description = "The range lies past the end of the file"),
    ))]
async fn export_file(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    serve(&state, &EXPORTS, &name, &headers).await
}

/// The trace-warning index, or one trace-warning package: the venue check-ins of positive
/// people published in one export window, signed like the key exports.
#[utoipa::path(get, path = "/v1/trace-warnings/{name}", tag = "publish",
    params(("name" = String, Path, example = "index.txt",
        description = "`index.txt`, or a file name the index lists")),
    responses(
        (status = 200, description = "The file (the index: `text/plain`, one path a line, oldest first)"),
        (status = 206, description = "The requested byte range"),
        (status = 307, description = "With `--export-serve redirect`: the file's URL in the bucket"),
        (status = 304, description = "Unchanged since the ETag given in If-None-Match"),
        (status = 404, description = "No such file"),
        (status = 416, description = "The range lies past the end of the file"),
    ))]
async fn trace_warning_file(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    serve(&state, &TRACE_WARNINGS, &name, &headers).await
}

async fn serve(
    state: &AppState,
    listing: &Listing,
    name: &str,
    headers: &HeaderMap,
) -> Result<Response, AppError> {
    let not_found = || AppError::NotFound(format!("{}/{name}", listing.url));
    let (relative, content_type, cache_control) = if name == "index.txt" {
        (
            listing.index.to_owned(),
            "text/plain; charset=utf-8",
            INDEX_CACHE_CONTROL,
        )
    } else if (listing.is_file_name)(name) {
        (
            format!("{}/{name}", listing.dir),
            "application/zip",
            ZIP_CACHE_CONTROL,
        )
    } else {
        return Err(not_found());
    };
    let store = state.exports.store();
    if state.config.export_serve == ExportServe::Redirect
        && let Some(url) = store.public_url(&relative)
    {
        return Ok(Response::builder()
            .status(StatusCode::TEMPORARY_REDIRECT)
            .header(header::LOCATION, url)
            .header(header::CACHE_CONTROL, cache_control)
            .body(Body::empty())
            .unwrap_or_default());
    }
    let Some(file) = state.exports.get(&relative).await? else {
        if name == "index.txt" {
            // Nothing exported yet: an empty index, not an error.
            return Ok(([(header::CONTENT_TYPE, content_type)], "").into_response());
        }
        return Err(not_found());
    };

    let mut response = Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CACHE_CONTROL, cache_control)
        .header(header::ETAG, &file.etag)
        .header(header::ACCEPT_RANGES, "bytes");
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if text(header::IF_NONE_MATCH).is_some_and(|tags| none_match(tags, &file.etag)) {
        return Ok(response
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .unwrap_or_default());
    }
    let len = file.bytes.len() as u64;
    let range = match text(header::RANGE) {
        // If-Range with another validator: the client's part is stale, send it all.
        Some(_) if text(header::IF_RANGE).is_some_and(|tag| tag != file.etag) => RangeRequest::Full,
        Some(range) => parse_range(range, len),
        None => RangeRequest::Full,
    };
    let body: Bytes = file.bytes.clone();
    response = match range {
        RangeRequest::Full => response.status(StatusCode::OK),
        RangeRequest::Part { first, last } => {
            return Ok(response
                .status(StatusCode::PARTIAL_CONTENT)
                .header(header::CONTENT_RANGE, format!("bytes {first}-{last}/{len}"))
                .body(Body::from(body.slice(first as usize..=last as usize)))
                .unwrap_or_default());
        }
        RangeRequest::Unsatisfiable => {
            return Ok(response
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{len}"))
                .body(Body::empty())
                .unwrap_or_default());
        }
    };
    Ok(response.body(Body::from(body)).unwrap_or_default())
}
