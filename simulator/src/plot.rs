//! Plots (SVG, with plotters): epidemic curves with and without the app (median and
//! 10–90 % band over seeds), notifications per index case, precision and recall per
//! risk configuration, and sweeps.

use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::experiment::{ConfigScore, Experiment, RunResult};
use crate::output::{mean_scores, quantile};
use crate::stats::Daily;

const WITH: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
const WITHOUT: RGBColor = RGBColor(0xd6, 0x27, 0x28);
const OTHER: RGBColor = RGBColor(0x2c, 0xa0, 0x2c);
const FONT: (&str, u32) = ("sans-serif", 18);

fn plot_error(path: &Path) -> impl Fn(String) -> Error + '_ {
    move |e| Error::Plot {
        path: path.into(),
        message: e,
    }
}

/// (day, p10, median, p90) of `value` over the runs.
fn band(runs: &[RunResult], value: fn(&Daily) -> f64) -> Vec<(f64, f64, f64, f64)> {
    let days = runs.iter().map(|r| r.daily.len()).min().unwrap_or(0);
    (0..days)
        .map(|d| {
            let v: Vec<f64> = runs.iter().map(|r| value(&r.daily[d])).collect();
            (
                d as f64,
                quantile(&v, 0.1),
                quantile(&v, 0.5),
                quantile(&v, 0.9),
            )
        })
        .collect()
}

/// A named curve: (day, p10, median, p90) points.
type Curve<'a> = (&'a str, RGBColor, Vec<(f64, f64, f64, f64)>);

/// One panel of curves with bands.
fn curves<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    series: &[Curve<'_>],
) -> std::result::Result<(), String> {
    let days = series.iter().map(|s| s.2.len()).max().unwrap_or(1).max(2) as f64;
    let top = series
        .iter()
        .flat_map(|s| s.2.iter().map(|p| p.3))
        .fold(1.0, f64::max)
        * 1.05;
    let mut chart = ChartBuilder::on(area)
        .caption(title, FONT)
        .margin(12)
        .x_label_area_size(35)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..days - 1.0, 0.0..top)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("day")
        .draw()
        .map_err(|e| e.to_string())?;
    for (name, color, points) in series {
        let mut outline: Vec<(f64, f64)> = points.iter().map(|p| (p.0, p.3)).collect();
        outline.extend(points.iter().rev().map(|p| (p.0, p.1)));
        chart
            .draw_series(std::iter::once(Polygon::new(
                outline,
                color.mix(0.2).filled(),
            )))
            .map_err(|e| e.to_string())?;
        let color = *color;
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|p| (p.0, p.2)),
                color.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label(*name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| e.to_string())
}

/// Every plot of an experiment, into its folder.
pub fn experiment(e: &Experiment) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let path = e.out.join("epidemic.svg");
    {
        let root = SVGBackend::new(&path, (1500, 480)).into_drawing_area();
        root.fill(&WHITE)
            .map_err(|x| plot_error(&path)(x.to_string()))?;
        let panels = root.split_evenly((1, 3));
        let arms = |value: fn(&Daily) -> f64| {
            let mut s = vec![("with app", WITH, band(&e.with_app, value))];
            if !e.without_app.is_empty() {
                s.push(("without app", WITHOUT, band(&e.without_app, value)));
            }
            s
        };
        curves(
            &panels[0],
            "Cumulative infections",
            &arms(|d| d.cum_infections as f64),
        )
        .map_err(plot_error(&path))?;
        curves(
            &panels[1],
            "New infections per day",
            &arms(|d| f64::from(d.new_infections)),
        )
        .map_err(plot_error(&path))?;
        let app = vec![
            (
                "diagnoses",
                WITHOUT,
                band(&e.with_app, |d| f64::from(d.new_diagnoses)),
            ),
            (
                "notifications",
                WITH,
                band(&e.with_app, |d| f64::from(d.new_notifications)),
            ),
            (
                "quarantined",
                OTHER,
                band(&e.with_app, |d| f64::from(d.n_quarantined)),
            ),
        ];
        curves(&panels[2], "Diagnoses, notifications, quarantine", &app)
            .map_err(plot_error(&path))?;
        root.present()
            .map_err(|x| plot_error(&path)(x.to_string()))?;
    }
    written.push(path);

    if let Some(first) = e.with_app.first() {
        let path = e.out.join("notifications_per_index.svg");
        notifications_histogram(&path, &first.notifications_per_uploader)?;
        written.push(path);
        let path = e.out.join("precision_recall.svg");
        let runs: Vec<_> = e.with_app.iter().map(|r| &r.summary).collect();
        precision_recall(&path, &mean_scores(&runs))?;
        written.push(path);
    }
    Ok(written)
}

fn notifications_histogram(path: &Path, counts: &[u32]) -> Result<()> {
    let root = SVGBackend::new(path, (700, 450)).into_drawing_area();
    let fail = plot_error(path);
    root.fill(&WHITE).map_err(|x| fail(x.to_string()))?;
    let max = counts.iter().copied().max().unwrap_or(0).min(50);
    let mut bins = vec![0u32; max as usize + 1];
    for &c in counts {
        bins[c.min(max) as usize] += 1;
    }
    let top = bins.iter().copied().max().unwrap_or(1).max(1);
    let mut chart = ChartBuilder::on(&root)
        .caption("Notifications per uploading index case", FONT)
        .margin(12)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d((0u32..max + 1).into_segmented(), 0u32..top + top / 10 + 1)
        .map_err(|x| fail(x.to_string()))?;
    chart
        .configure_mesh()
        .x_desc("notifications (the last bin holds 50 and more)")
        .y_desc("index cases")
        .draw()
        .map_err(|x| fail(x.to_string()))?;
    chart
        .draw_series(
            Histogram::vertical(&chart)
                .style(WITH.filled())
                .data(bins.iter().enumerate().map(|(k, &n)| (k as u32, n))),
        )
        .map_err(|x| fail(x.to_string()))?;
    root.present().map_err(|x| fail(x.to_string()))
}

fn precision_recall(path: &Path, scores: &[ConfigScore]) -> Result<()> {
    let root = SVGBackend::new(path, (700, 550)).into_drawing_area();
    let fail = plot_error(path);
    root.fill(&WHITE).map_err(|x| fail(x.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Notifications against close contacts (< 2 m, ≥ 15 min)",
            FONT,
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..1.0f64, 0.0..1.0f64)
        .map_err(|x| fail(x.to_string()))?;
    chart
        .configure_mesh()
        .x_desc("recall")
        .y_desc("precision")
        .draw()
        .map_err(|x| fail(x.to_string()))?;
    for (k, s) in scores.iter().enumerate() {
        let color = if k == 0 { WITHOUT } else { WITH };
        let point = (s.recall, s.precision);
        chart
            .draw_series(std::iter::once(Circle::new(point, 5, color.filled())))
            .map_err(|x| fail(x.to_string()))?;
        chart
            .draw_series(std::iter::once(Text::new(
                s.config.clone(),
                (s.recall + 0.01, s.precision + 0.01),
                ("sans-serif", 14),
            )))
            .map_err(|x| fail(x.to_string()))?;
    }
    root.present().map_err(|x| fail(x.to_string()))
}

/// One point of a sweep: the parameter's value and the experiment there.
#[derive(Debug)]
pub struct SweepPoint<'a> {
    /// The value, as given.
    pub label: String,
    /// The value as a number on the x axis (its position when not numeric).
    pub x: f64,
    /// The experiment.
    pub experiment: &'a Experiment,
}

/// The combined plot of a sweep: attack rate with and without the app (median and
/// 10–90 % band over seeds), and precision and recall of the primary configuration.
pub fn sweep(path: &Path, parameter: &str, points: &[SweepPoint<'_>]) -> Result<()> {
    let root = SVGBackend::new(path, (1200, 480)).into_drawing_area();
    let fail = plot_error(path);
    root.fill(&WHITE).map_err(|x| fail(x.to_string()))?;
    let panels = root.split_evenly((1, 2));
    let (lo, hi) = points.iter().fold((f64::MAX, f64::MIN), |(lo, hi), p| {
        (lo.min(p.x), hi.max(p.x))
    });
    let span = if hi > lo { hi - lo } else { 1.0 };
    let x_range = lo - 0.05 * span..hi + 0.05 * span;
    let spread = |runs: &[RunResult], f: fn(&RunResult) -> f64| {
        let v: Vec<f64> = runs.iter().map(f).collect();
        (quantile(&v, 0.1), quantile(&v, 0.5), quantile(&v, 0.9))
    };
    let attack = |r: &RunResult| r.summary.attack_rate;
    let mut series = vec![(
        "attack rate with app",
        WITH,
        points
            .iter()
            .map(|p| (p.x, spread(&p.experiment.with_app, attack)))
            .collect::<Vec<_>>(),
    )];
    if points.iter().all(|p| !p.experiment.without_app.is_empty()) {
        series.push((
            "attack rate without app",
            WITHOUT,
            points
                .iter()
                .map(|p| (p.x, spread(&p.experiment.without_app, attack)))
                .collect(),
        ));
    }
    let left = &series;
    let right = vec![
        (
            "precision",
            WITH,
            points
                .iter()
                .map(|p| {
                    (
                        p.x,
                        spread(&p.experiment.with_app, |r| r.summary.configs[0].precision),
                    )
                })
                .collect::<Vec<_>>(),
        ),
        (
            "recall",
            OTHER,
            points
                .iter()
                .map(|p| {
                    (
                        p.x,
                        spread(&p.experiment.with_app, |r| r.summary.configs[0].recall),
                    )
                })
                .collect(),
        ),
    ];
    for (area, title, series) in [
        (&panels[0], "Attack rate", left),
        (&panels[1], "Notifications: precision and recall", &right),
    ] {
        let mut chart = ChartBuilder::on(area)
            .caption(format!("{title} by {parameter}"), FONT)
            .margin(12)
            .x_label_area_size(35)
            .y_label_area_size(60)
            .build_cartesian_2d(x_range.clone(), 0.0..1.0f64)
            .map_err(|x| fail(x.to_string()))?;
        chart
            .configure_mesh()
            .x_desc(parameter)
            .x_label_formatter(&|x| {
                points
                    .iter()
                    .find(|p| (p.x - x).abs() < span * 1e-6)
                    .map_or_else(|| format!("{x:.2}"), |p| p.label.clone())
            })
            .draw()
            .map_err(|x| fail(x.to_string()))?;
        for (name, color, values) in series {
            let mut outline: Vec<(f64, f64)> = values.iter().map(|(x, s)| (*x, s.2)).collect();
            outline.extend(values.iter().rev().map(|(x, s)| (*x, s.0)));
            chart
                .draw_series(std::iter::once(Polygon::new(
                    outline,
                    color.mix(0.2).filled(),
                )))
                .map_err(|x| fail(x.to_string()))?;
            let color = *color;
            chart
                .draw_series(LineSeries::new(
                    values.iter().map(|(x, s)| (*x, s.1)),
                    color.stroke_width(2),
                ))
                .map_err(|x| fail(x.to_string()))?
                .label(*name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            chart
                .draw_series(
                    values
                        .iter()
                        .map(|(x, s)| Circle::new((*x, s.1), 4, color.filled())),
                )
                .map_err(|x| fail(x.to_string()))?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|x| fail(x.to_string()))?;
    }
    root.present().map_err(|x| fail(x.to_string()))
}
