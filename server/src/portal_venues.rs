//! `/portal/venues`: the health authority registers venues, prints their QR posters, and
//! sees per venue (and per location hash it does not know) how many positive check-ins
//! were published in the last days, with a cluster flag past a configurable count.
//! Counts only: nothing per person. Same login, same-origin rule and headers as the
//! rest of the portal.

use std::fmt::Write as _;

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kith_core::checkin::{LocationIdHash, VenueDetails};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::calendar::Day;
use crate::error::AppError;
use crate::html::{self, error_note, escape, layout};
use crate::portal::{form_sender, not_logged_in, session};
use crate::state::AppState;
use crate::venues::{self, ClusterRule, Venue};

/// Days of counts the dashboard shows.
const SHOWN_DAYS: u32 = 14;

/// The venue form.
#[derive(Debug, Deserialize, ToSchema)]
pub struct VenueForm {
    /// What the place is ("Café Kith").
    pub description: String,
    /// Where it is.
    pub address: String,
    /// Minutes a visit lasts unless the visitor checks out earlier (empty: two hours).
    #[serde(default)]
    pub minutes: String,
}

/// The routes of this resource.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(dashboard, register))
        .routes(routes!(poster))
        .routes(routes!(qr_image))
}

fn unavailable(error: &AppError) -> Response {
    html::page(
        error.status(),
        &layout("Venues", &error_note(Some(&error.body().message))),
    )
}

/// The venues, their positive check-ins per day, clusters, and the form to register one.
#[utoipa::path(get, path = "/portal/venues", tag = "health authority", responses(
    (status = 200, description = "HTML page", body = String, content_type = "text/html"),
    (status = 401, description = "Not logged in", body = String, content_type = "text/html"),
))]
async fn dashboard(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if session(&state, &headers).is_none() {
        return not_logged_in();
    }
    match dashboard_html(&state, None) {
        Ok(page) => html::page(StatusCode::OK, &page),
        Err(error) => unavailable(&error),
    }
}

/// Registers a venue and shows its poster.
#[utoipa::path(post, path = "/portal/venues", tag = "health authority",
    request_body(content = VenueForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Registered; see its poster"),
        (status = 400, description = "Invalid form", body = String, content_type = "text/html"),
        (status = 401, description = "Not logged in", body = String, content_type = "text/html"),
        (status = 403, description = "Sent from another site", body = String, content_type = "text/html"),
    ),
)]
async fn register(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<VenueForm>, FormRejection>,
) -> Response {
    let (_, who) = match form_sender(&state, &headers) {
        Ok(sender) => sender,
        Err(refusal) => return refusal.into_response(),
    };
    let registered = form
        .map_err(|_| AppError::invalid("invalid_venue", "The form was incomplete."))
        .and_then(|Form(form)| {
            let minutes = match form.minutes.trim() {
                "" => None,
                text => Some(
                    text.parse::<u32>()
                        .ok()
                        .filter(|m| (1..=1440).contains(m))
                        .ok_or_else(|| {
                            AppError::invalid("invalid_venue", "Minutes must be 1 to 1440.")
                        })?,
                ),
            };
            let details = VenueDetails {
                description: form.description.trim().to_owned(),
                address: form.address.trim().to_owned(),
                default_check_in_minutes: minutes,
                ..VenueDetails::default()
            };
            state.venues.register(details, &who, state.clock.now())
        });
    match registered {
        Ok(venue) => {
            let mut response = StatusCode::SEE_OTHER.into_response();
            if let Ok(location) = HeaderValue::from_str(&format!(
                "/portal/venues/{}",
                hex::encode(venue.hash.to_bytes())
            )) {
                response.headers_mut().insert(header::LOCATION, location);
            }
            response
        }
        Err(error) if error.status().is_client_error() => {
            match dashboard_html(&state, Some(&error.to_string())) {
                Ok(page) => html::page(StatusCode::BAD_REQUEST, &page),
                Err(error) => unavailable(&error),
            }
        }
        Err(error) => unavailable(&error),
    }
}

fn venue_of(state: &AppState, hash: &str) -> Result<Venue, AppError> {
    let not_found = || AppError::NotFound(format!("/portal/venues/{hash}"));
    let bytes: [u8; 32] = hex::decode(hash)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(not_found)?;
    state
        .venues
        .get(LocationIdHash::from_bytes(bytes))?
        .ok_or_else(not_found)
}

/// A venue's printable poster: its QR code (SVG), description and address, and what
/// visitors do.
#[utoipa::path(get, path = "/portal/venues/{hash}", tag = "health authority",
    params(("hash" = String, Path, description = "The venue's location id hash, hex")),
    responses(
        (status = 200, description = "Printable HTML page", body = String, content_type = "text/html"),
        (status = 401, description = "Not logged in", body = String, content_type = "text/html"),
        (status = 404, description = "No such venue"),
    ))]
async fn poster(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(hash): Path<String>,
) -> Response {
    if session(&state, &headers).is_none() {
        return not_logged_in();
    }
    let page = venue_of(&state, &hash).and_then(|venue| {
        let svg = venues::qr_svg(&venue.qr_text)?;
        // The XML declaration is not allowed inside HTML.
        let svg = svg.split_once("?>").map_or(svg.as_str(), |(_, rest)| rest);
        Ok(poster_html(&venue, &hash, svg))
    });
    match page {
        Ok(page) => html::page(StatusCode::OK, &page),
        Err(error) => error.into_response(),
    }
}

/// A venue's QR code as an image to print elsewhere.
#[utoipa::path(get, path = "/portal/venues/{hash}/{file}", tag = "health authority",
    params(
        ("hash" = String, Path, description = "The venue's location id hash, hex"),
        ("file" = String, Path, description = "`qr.svg` or `qr.png`"),
    ),
    responses(
        (status = 200, description = "The QR code"),
        (status = 401, description = "Not logged in", body = String, content_type = "text/html"),
        (status = 404, description = "No such venue or file"),
    ))]
async fn qr_image(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((hash, file)): Path<(String, String)>,
) -> Response {
    if session(&state, &headers).is_none() {
        return not_logged_in();
    }
    let image = venue_of(&state, &hash).and_then(|venue| match file.as_str() {
        "qr.svg" => Ok((
            "image/svg+xml",
            venues::qr_svg(&venue.qr_text)?.into_bytes(),
        )),
        "qr.png" => Ok(("image/png", venues::qr_png(&venue.qr_text, 10)?)),
        _ => Err(AppError::NotFound(format!("/portal/venues/{hash}/{file}"))),
    });
    match image {
        Ok((content_type, bytes)) => (
            [
                (header::CONTENT_TYPE, content_type),
                (header::CACHE_CONTROL, "no-store"),
            ],
            bytes,
        )
            .into_response(),
        Err(error) => error.into_response(),
    }
}

fn dashboard_html(state: &AppState, error: Option<&str>) -> Result<String, AppError> {
    let today = Day::of(state.clock.now());
    let first = today.minus(SHOWN_DAYS - 1);
    let mut counts = state.venues.check_in_counts(first)?;
    let rule = ClusterRule {
        min_check_ins: state.config.cluster_min_check_ins,
        window_days: state.config.cluster_window_days,
    };
    let mut head = String::from("<tr><th>Place</th>");
    for d in 0..SHOWN_DAYS {
        let day = first.plus(d).to_string();
        let _ = write!(head, r#"<th title="{day}">{}</th>"#, &day[5..]);
    }
    head.push_str("<th>Cluster</th><th></th></tr>");
    let row = |name: &str, id: &str, counts: &venues::CheckInCounts, link: &str| {
        let cluster = rule.is_cluster(counts, today);
        let mut cells = String::new();
        for d in 0..SHOWN_DAYS {
            let n = counts.per_day.get(&first.plus(d)).copied().unwrap_or(0);
            let _ = write!(
                cells,
                "<td>{}</td>",
                if n == 0 { String::new() } else { n.to_string() }
            );
        }
        format!(
            r#"<tr id="{id}"{class}><td>{name}</td>{cells}<td class="flag">{flag}</td><td>{link}</td></tr>"#,
            class = if cluster { r#" class="cluster""# } else { "" },
            flag = if cluster { "CLUSTER" } else { "" },
        )
    };
    let mut rows = String::new();
    for venue in state.venues.list()? {
        let hex = hex::encode(venue.hash.to_bytes());
        let venue_counts = counts.remove(&venue.hash).unwrap_or_default();
        rows.push_str(&row(
            &format!(
                "{}<br><small>{}</small>",
                escape(&venue.description),
                escape(&venue.address)
            ),
            &format!("venue-{hex}"),
            &venue_counts,
            &format!(r#"<a href="/portal/venues/{hex}">poster</a>"#),
        ));
    }
    // Every upload is padded with random reports, each at a hash of its own: a hash seen
    // once may be padding or one visit to an unregistered place, and no one can tell
    // which. Only hashes seen again are listed.
    let (unknown, once): (Vec<_>, Vec<_>) = counts
        .iter()
        .partition(|(_, unknown)| unknown.since(first) > 1);
    for (hash, unknown) in unknown {
        let hex = hex::encode(hash.to_bytes());
        rows.push_str(&row(
            &format!("unknown place <small>{}…</small>", &hex[..12]),
            &format!("hash-{hex}"),
            unknown,
            "",
        ));
    }
    Ok(layout(
        "Venues",
        &format!(
            r#"<style>main {{ max-width: 72rem; }} table {{ border-collapse: collapse; width: 100%; }}
td, th {{ border: 1px solid #d0d7de; padding: .3rem; text-align: center; }} td:first-child {{ text-align: left; }}
tr.cluster {{ background: #ffebe9; }} .flag {{ font-weight: 700; color: #cf222e; }}</style>
<p>Positive check-ins published per day (the visits' times are encrypted for the
visitors). A place is flagged as a <b>cluster</b> with {min} or more in {window} days.</p>
<table id="counts">{head}{rows}</table>
<p id="once">Not listed: {once} unregistered location hashes seen once in these days
(uploads are padded with random reports, which look like single visits to unknown places).</p>
<h2>Register a venue</h2>
{error}
<form method="post" action="/portal/venues">
<label for="description">Description</label>
<input id="description" name="description" maxlength="100" required>
<label for="address">Address</label>
<input id="address" name="address" maxlength="100" required>
<label for="minutes">Visits last (minutes; empty: two hours)</label>
<input id="minutes" name="minutes" type="number" min="1" max="1440">
<button id="register" type="submit">Register and show the poster</button>
</form>
<p><a href="/portal">Issue a verification code</a> · <a href="/portal/dashboard">Dashboard</a></p>"#,
            min = rule.min_check_ins,
            window = rule.window_days,
            once = once.len(),
            error = error_note(error),
        ),
    ))
}

fn poster_html(venue: &Venue, hash: &str, svg: &str) -> String {
    layout(
        &venue.description,
        &format!(
            r#"<style>@media print {{ body {{ background: #fff; }} main {{ box-shadow: none; margin: 0; }} .noprint {{ display: none; }} }}
#qr svg {{ width: 100%; height: auto; }}</style>
<p id="address">{address}</p>
<div id="qr">{svg}</div>
<p>Check in: scan this code with the app when you arrive, and check out when you leave.
If someone who was here at the same time tests positive, the app warns you. Your visits
stay on your phone.</p>
<p class="noprint"><a id="png" href="/portal/venues/{hash}/qr.png">PNG</a> ·
<a id="svg" href="/portal/venues/{hash}/qr.svg">SVG</a> ·
<a href="/portal/venues">all venues</a> · print this page for the poster.</p>"#,
            address = escape(&venue.address),
        ),
    )
}
