//! `/portal/dashboard`: the health authority's daily figures (see [`crate::statistics`])
//! for the last weeks, as a table and as bar charts drawn on the server (inline SVG by
//! plotters: no scripts, nothing loaded from elsewhere). Same login and headers as the
//! rest of the portal.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use plotters::prelude::*;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::calendar::Day;
use crate::error::AppError;
use crate::html::{self, error_note, layout};
use crate::portal::{not_logged_in, session};
use crate::state::AppState;
use crate::statistics::{self, FIGURES, SHOWN_DAYS};
use crate::storage::DayCounts;

const BLUE: RGBColor = RGBColor(0x1f, 0x6f, 0xeb);
const GREEN: RGBColor = RGBColor(0x1a, 0x7f, 0x37);
const CHART_SIZE: (u32, u32) = (560, 240);

/// The routes of this resource.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(dashboard))
}

/// The daily figures of the last weeks: table and charts.
#[utoipa::path(get, path = "/portal/dashboard", tag = "health authority", responses(
    (status = 200, description = "HTML page", body = String, content_type = "text/html"),
    (status = 401, description = "Not logged in", body = String, content_type = "text/html"),
))]
async fn dashboard(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if session(&state, &headers).is_none() {
        return not_logged_in();
    }
    let page = load(&state).await.and_then(|days| dashboard_html(&days));
    match page {
        Ok(page) => html::page(StatusCode::OK, &page),
        Err(error) => html::page(
            error.status(),
            &layout("Dashboard", &error_note(Some(&error.body().message))),
        ),
    }
}

/// The shown days' figures, read off the async threads.
pub async fn load(state: &AppState) -> Result<Vec<(Day, DayCounts)>, AppError> {
    let storage = state.storage.clone();
    let today = Day::of(state.clock.now());
    tokio::task::spawn_blocking(move || statistics::load(&*storage, today))
        .await
        .map_err(|_| AppError::Unavailable)?
}

/// One bar series of a chart: its name, colour and figure.
type Bars = (&'static str, RGBColor, fn(&DayCounts) -> u64);

fn dashboard_html(days: &[(Day, DayCounts)]) -> Result<String, AppError> {
    let mut head = String::from("<tr><th>Day (UTC)</th>");
    for figure in &FIGURES {
        let _ = write!(head, "<th>{}</th>", figure.heading);
    }
    head.push_str("</tr>");
    let mut rows = String::new();
    let mut total = DayCounts::default();
    for (day, counts) in days.iter().rev() {
        total.add(counts);
        let _ = write!(rows, r#"<tr id="day-{day}"><td>{day}</td>"#);
        for figure in &FIGURES {
            let _ = write!(rows, "<td>{}</td>", (figure.of)(counts));
        }
        rows.push_str("</tr>");
    }
    let _ = write!(rows, r#"<tr id="total"><th>All {SHOWN_DAYS} days</th>"#);
    for figure in &FIGURES {
        let _ = write!(rows, "<th>{}</th>", (figure.of)(&total));
    }
    rows.push_str("</tr>");

    let charts = [
        chart(
            "codes",
            "Verification codes",
            days,
            &[
                ("issued", BLUE, |c| c.codes_issued),
                ("redeemed", GREEN, |c| c.codes_redeemed),
            ],
        )?,
        chart(
            "keys",
            "Keys published",
            days,
            &[("keys", BLUE, |c| c.keys_published)],
        )?,
        chart(
            "files",
            "Export files",
            days,
            &[("files", BLUE, |c| c.export_files)],
        )?,
        chart(
            "bytes",
            "Export bytes",
            days,
            &[("bytes", GREEN, |c| c.export_bytes)],
        )?,
    ]
    .concat();
    Ok(layout(
        "Dashboard",
        &format!(
            r#"<style>main {{ max-width: 72rem; }} table {{ border-collapse: collapse; width: 100%; }}
td, th {{ border: 1px solid #d0d7de; padding: .3rem; text-align: right; }}
.charts {{ display: flex; flex-wrap: wrap; gap: 1rem; }} figure {{ margin: 0; }}
figcaption {{ font-weight: 600; }} svg {{ max-width: 100%; height: auto; }}</style>
<p>What happened each day (UTC), counted when it happened: codes issued and used,
keys published, export files written. Counts only; nothing here is about a person.
<code>/metrics</code> has the same figures.</p>
<div class="charts">{charts}</div>
<table id="counts">{head}{rows}</table>
<p><a href="/portal">Issue a verification code</a> · <a href="/portal/venues">Venues</a></p>"#
        ),
    ))
}

/// A bar chart of `bars` per day, as an inline SVG in a captioned figure.
fn chart(
    id: &'static str,
    title: &str,
    days: &[(Day, DayCounts)],
    bars: &[Bars],
) -> Result<String, AppError> {
    let mut svg = String::new();
    draw(&mut svg, days, bars).map_err(|reason| AppError::Chart { chart: id, reason })?;
    Ok(format!(
        r#"<figure id="chart-{id}"><figcaption>{title} per day</figcaption>{svg}</figure>"#
    ))
}

fn draw(svg: &mut String, days: &[(Day, DayCounts)], bars: &[Bars]) -> Result<(), String> {
    let root = SVGBackend::with_string(svg, CHART_SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let top = days
        .iter()
        .flat_map(|(_, c)| bars.iter().map(move |b| (b.2)(c)))
        .max()
        .unwrap_or(0)
        .max(1);
    let labels: Vec<String> = days
        .iter()
        .map(|(d, _)| d.to_string()[5..].to_owned())
        .collect();
    let mut chart = ChartBuilder::on(&root)
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..days.len() as f64, 0.0..top as f64 * 1.1)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(days.len().min(7))
        .x_label_formatter(&|x| labels.get(x.round() as usize).cloned().unwrap_or_default())
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()
        .map_err(|e| e.to_string())?;
    let width = 0.8 / bars.len() as f64;
    for (i, &(name, color, of)) in bars.iter().enumerate() {
        let left = 0.1 + width * i as f64;
        chart
            .draw_series(days.iter().enumerate().map(|(d, (_, counts))| {
                let x = d as f64 + left;
                Rectangle::new([(x, 0.0), (x + width, of(counts) as f64)], color.filled())
            }))
            .map_err(|e| e.to_string())?
            .label(name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    if bars.len() > 1 {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_has_a_row_per_day_a_total_and_a_chart_per_figure_group() {
        let today = Day::parse("2026-12-01").unwrap();
        let busy = DayCounts {
            codes_issued: 5,
            codes_redeemed: 3,
            keys_published: 40,
            export_files: 2,
            export_bytes: 123_456,
        };
        let days = statistics::shown_days(&[(today.minus(1), busy), (today, busy)], today);
        let page = dashboard_html(&days).unwrap();
        assert_eq!(page.matches("<tr id=\"day-").count(), SHOWN_DAYS as usize);
        assert!(page.contains(
            r#"<tr id="day-2026-11-30"><td>2026-11-30</td><td>5</td><td>3</td><td>40</td><td>2</td><td>123456</td></tr>"#
        ));
        assert!(page.contains("<th>10</th><th>6</th><th>80</th><th>4</th><th>246912</th>"));
        for id in ["codes", "keys", "files", "bytes"] {
            assert!(
                page.contains(&format!(r#"<figure id="chart-{id}">"#)),
                "{id}"
            );
        }
        assert_eq!(page.matches("<svg").count(), 4);
        assert!(!page.contains("<script"), "no scripts");
        assert!(
            !page.contains(" src=") && !page.contains("<link"),
            "nothing loaded from elsewhere"
        );
    }
}
