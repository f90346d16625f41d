//! The health authority's daily figures: codes issued and redeemed, keys published, export
//! files and their bytes, each counted when it happens (in the transaction that does it)
//! under the UTC day it happened on. Counts only, never anything per person; they outlive
//! the keys and codes they count, which retention deletes.
//!
//! The portal's dashboard shows them, and `/metrics` exposes the same figures.

use std::fmt::Write as _;

use crate::calendar::Day;
use crate::error::Result;
use crate::storage::{DayCounts, Storage};

/// Days the dashboard and `/metrics` show, today included.
pub const SHOWN_DAYS: u32 = 28;

/// One figure of [`DayCounts`]: how the dashboard heads it and `/metrics` names it.
#[derive(Debug)]
pub struct Figure {
    /// Prometheus metric name (a gauge with a `day` label).
    pub metric: &'static str,
    /// Column heading.
    pub heading: &'static str,
    /// What it counts, for `# HELP`.
    pub help: &'static str,
    /// Its value in a day's counts.
    pub of: fn(&DayCounts) -> u64,
}

/// Every figure, in the dashboard's column order.
pub const FIGURES: [Figure; 5] = [
    Figure {
        metric: "kith_daily_codes_issued",
        heading: "Codes issued",
        help: "Verification codes issued on the day (UTC)",
        of: |c| c.codes_issued,
    },
    Figure {
        metric: "kith_daily_codes_redeemed",
        heading: "Codes redeemed",
        help: "Verification codes used to publish keys on the day (UTC)",
        of: |c| c.codes_redeemed,
    },
    Figure {
        metric: "kith_daily_keys_published",
        heading: "Keys published",
        help: "Diagnosis keys published on the day (UTC), without chaff or padding",
        of: |c| c.keys_published,
    },
    Figure {
        metric: "kith_daily_export_files",
        heading: "Export files",
        help: "Signed key export files written on the day (UTC)",
        of: |c| c.export_files,
    },
    Figure {
        metric: "kith_daily_export_bytes",
        heading: "Export bytes",
        help: "Bytes of the key export files written on the day (UTC)",
        of: |c| c.export_bytes,
    },
];

/// The [`SHOWN_DAYS`] days up to `today`, oldest first, from the `stored` counts (which
/// may hold other days, and lack days on which nothing happened).
pub fn shown_days(stored: &[(Day, DayCounts)], today: Day) -> Vec<(Day, DayCounts)> {
    let first = today.minus(SHOWN_DAYS - 1);
    (0..SHOWN_DAYS)
        .map(|d| first.plus(d))
        .filter(|day| *day <= today)
        .map(|day| {
            let counts = stored
                .iter()
                .find(|(d, _)| *d == day)
                .map_or_else(DayCounts::default, |(_, c)| *c);
            (day, counts)
        })
        .collect()
}

/// The shown days up to `today`, read from `storage`.
pub fn load(storage: &dyn Storage, today: Day) -> Result<Vec<(Day, DayCounts)>> {
    let stored = storage.batcher()?.day_counts(today.minus(SHOWN_DAYS - 1))?;
    Ok(shown_days(&stored, today))
}

/// The shown days in Prometheus text format: one gauge per figure, one sample per day.
pub fn prometheus(days: &[(Day, DayCounts)]) -> String {
    let mut text = String::new();
    for figure in &FIGURES {
        let _ = writeln!(
            text,
            "# HELP {} {}, for each of the last {SHOWN_DAYS} days.",
            figure.metric, figure.help
        );
        let _ = writeln!(text, "# TYPE {} gauge", figure.metric);
        for (day, counts) in days {
            let _ = writeln!(
                text,
                "{}{{day=\"{day}\"}} {}",
                figure.metric,
                (figure.of)(counts)
            );
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_days_are_zero_and_other_days_are_left_out() {
        let today = Day::new(20_000);
        let counted = DayCounts {
            codes_issued: 3,
            export_bytes: 1234,
            ..DayCounts::default()
        };
        let stored = [
            (today.minus(40), counted),
            (today.minus(2), counted),
            (today.plus(1), counted),
        ];
        let days = shown_days(&stored, today);
        assert_eq!(days.len(), SHOWN_DAYS as usize);
        assert_eq!(days[0].0, today.minus(SHOWN_DAYS - 1));
        assert_eq!(days.last().unwrap().0, today);
        let nonzero: Vec<Day> = days
            .iter()
            .filter(|(_, c)| !c.is_empty())
            .map(|(d, _)| *d)
            .collect();
        assert_eq!(nonzero, [today.minus(2)]);
    }

    #[test]
    fn prometheus_has_one_sample_per_day_and_figure() {
        let day = Day::parse("2026-12-01").unwrap();
        let mut counts = DayCounts {
            codes_issued: 2,
            codes_redeemed: 1,
            keys_published: 14,
            export_files: 1,
            export_bytes: 999,
        };
        counts.add(&DayCounts {
            keys_published: 1,
            ..DayCounts::default()
        });
        let text = prometheus(&[(day.minus(1), DayCounts::default()), (day, counts)]);
        for line in [
            "# TYPE kith_daily_keys_published gauge",
            "kith_daily_codes_issued{day=\"2026-12-01\"} 2",
            "kith_daily_codes_redeemed{day=\"2026-12-01\"} 1",
            "kith_daily_keys_published{day=\"2026-12-01\"} 15",
            "kith_daily_export_files{day=\"2026-12-01\"} 1",
            "kith_daily_export_bytes{day=\"2026-12-01\"} 999",
            "kith_daily_export_bytes{day=\"2026-11-30\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        assert_eq!(text.lines().filter(|l| !l.starts_with('#')).count(), 10);
    }
}
