//! Venues the health authority registered, their QR codes, and how many positive
//! check-ins each (and each unknown location hash) had per day: what the dashboard
//! shows to spot a cluster. Counts only, nothing per person.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::calendar::Day;
use crate::clock::UnixSeconds;
use crate::error::{AppError, Result};
pub use crate::storage::Venue;
use crate::storage::VenueStore;
use kith_core::checkin::{CWA_QR_PREFIX, LocationIdHash, VenueDetails, VenuePayload};
use qrcode::QrCode;
use rand_core::OsRng;

/// Positive check-ins at one location hash, per day they arrived.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckInCounts {
    /// Reports per day, oldest first.
    pub per_day: BTreeMap<Day, u64>,
}

impl CheckInCounts {
    /// Reports in the days from `since` on.
    pub fn since(&self, since: Day) -> u64 {
        self.per_day.range(since..).map(|(_, n)| n).sum()
    }
}

/// When the dashboard flags a cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClusterRule {
    /// Positive check-ins at one place …
    pub min_check_ins: u64,
    /// … within this many days (today included).
    pub window_days: u32,
}

impl ClusterRule {
    /// Whether `counts` make a cluster on `today`.
    pub fn is_cluster(&self, counts: &CheckInCounts, today: Day) -> bool {
        counts.since(today.minus(self.window_days.saturating_sub(1))) >= self.min_check_ins
    }
}

/// The venues, through the storage seam (one connection, shared by the portal's handlers).
pub struct Venues(Mutex<Box<dyn VenueStore>>);

impl std::fmt::Debug for Venues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Venues")
    }
}

impl Venues {
    /// Venues in `store`.
    pub fn new(store: Box<dyn VenueStore>) -> Self {
        Self(Mutex::new(store))
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Box<dyn VenueStore>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a venue with a fresh random seed (a CWA-format QR code); `who` registered it.
    pub fn register(&self, details: VenueDetails, who: &str, now: UnixSeconds) -> Result<Venue> {
        for (what, text) in [
            ("description", &details.description),
            ("address", &details.address),
        ] {
            if text.trim().is_empty() {
                return Err(AppError::invalid(
                    "invalid_venue",
                    format!("the venue needs a {what}"),
                ));
            }
        }
        let payload = VenuePayload::generate(&mut OsRng, details)
            .map_err(|e| AppError::invalid("invalid_venue", e.to_string()))?;
        let venue = Venue {
            hash: payload.location_id().hash(),
            qr_text: payload.qr_text(CWA_QR_PREFIX),
            description: payload.details().description.clone(),
            address: payload.details().address.clone(),
        };
        self.store().add_venue(&venue, who, now)?;
        Ok(venue)
    }

    /// Every registered venue, by description.
    pub fn list(&self) -> Result<Vec<Venue>> {
        self.store().venues()
    }

    /// The venue registered under `hash`.
    pub fn get(&self, hash: LocationIdHash) -> Result<Option<Venue>> {
        self.store().venue(&hash)
    }

    /// Positive check-ins per location hash and day, from `since` on.
    pub fn check_in_counts(&self, since: Day) -> Result<BTreeMap<LocationIdHash, CheckInCounts>> {
        let rows = self
            .store()
            .check_in_counts(UnixSeconds::new(u64::from(since.get()) * 86_400))?;
        let mut counts: BTreeMap<LocationIdHash, CheckInCounts> = BTreeMap::new();
        for (hash, day, n) in rows {
            counts.entry(hash).or_default().per_day.insert(day, n);
        }
        Ok(counts)
    }
}

/// The QR code of `text`.
fn qr(text: &str) -> Result<QrCode> {
    QrCode::new(text.as_bytes()).map_err(|e| AppError::Corrupt(format!("QR code: {e}")))
}

/// `text` as an SVG QR code.
pub fn qr_svg(text: &str) -> Result<String> {
    Ok(qr(text)?
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(320, 320)
        .build())
}

/// `text` as a PNG QR code, `scale` pixels a module, with the 4-module quiet zone.
pub fn qr_png(text: &str, scale: u32) -> Result<Vec<u8>> {
    const QUIET: u32 = 4;
    let code = qr(text)?;
    let modules = code.width() as u32;
    let colors = code.to_colors();
    let side = (modules + 2 * QUIET) * scale;
    let mut pixels = vec![255u8; (side * side) as usize];
    for (i, color) in colors.iter().enumerate() {
        if *color != qrcode::Color::Dark {
            continue;
        }
        let (x, y) = (i as u32 % modules + QUIET, i as u32 / modules + QUIET);
        for dy in 0..scale {
            let start = ((y * scale + dy) * side + x * scale) as usize;
            pixels[start..start + scale as usize].fill(0);
        }
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, side, side);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let png_error = |e: png::EncodingError| AppError::Corrupt(format!("PNG: {e}"));
    let mut writer = encoder.write_header().map_err(png_error)?;
    writer.write_image_data(&pixels).map_err(png_error)?;
    writer.finish().map_err(png_error)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_venues_get_a_cwa_code_and_count_their_check_ins() {
        let fixture = crate::sqlite::fixture().unwrap();
        let venues = Venues::new(fixture.storage.venues().unwrap());
        let conn =
            crate::db::open(fixture.dir.path(), crate::config::Durability::Normal, None).unwrap();
        let details = VenueDetails {
            description: "Café Kith".into(),
            address: "Main Street 1".into(),
            ..VenueDetails::default()
        };
        let now = UnixSeconds::new(1_800_000_000);
        let venue = venues.register(details.clone(), "ana", now).unwrap();
        let scanned = VenuePayload::from_qr_text(&venue.qr_text).unwrap();
        assert_eq!(scanned.location_id().hash(), venue.hash);
        assert_eq!(venues.list().unwrap(), std::slice::from_ref(&venue));
        assert_eq!(venues.get(venue.hash).unwrap(), Some(venue.clone()));
        let blank = VenueDetails {
            description: " ".into(),
            ..details
        };
        assert!(venues.register(blank, "ana", now).is_err());

        let today = Day::of(now);
        for (day, n) in [(0, 2), (3, 1), (9, 5)] {
            for _ in 0..n {
                conn.execute(
                    "INSERT INTO check_in_reports (location_id_hash, report, released_at)
                         VALUES (?1, x'00', ?2)",
                    rusqlite::params![venue.hash.to_bytes().as_slice(), (now.get() - day * 86_400)],
                )
                .unwrap();
            }
        }
        let counts = venues.check_in_counts(today.minus(13)).unwrap();
        let ours = &counts[&venue.hash];
        assert_eq!(ours.since(today.minus(6)), 3);
        let rule = ClusterRule {
            min_check_ins: 3,
            window_days: 7,
        };
        assert!(rule.is_cluster(ours, today));
        // Four days on, the window holds only the day with 2.
        assert!(!rule.is_cluster(ours, today.plus(4)));
    }

    #[test]
    fn qr_codes_render_as_svg_and_png() {
        let svg = qr_svg("https://e.coronawarn.app?v=1#CAESJQgBEgpBZ").unwrap();
        assert!(svg.starts_with("<?xml") && svg.contains("<svg"));
        let png = qr_png("https://e.coronawarn.app?v=1#CAESJQgBEgpBZ", 4).unwrap();
        assert_eq!(&png[1..4], b"PNG");
    }
}
