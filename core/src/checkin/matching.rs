//! Visits as the phone keeps them, and matching published reports against them.

use std::collections::HashMap;

use super::report::{ProtectedReport, Stay, TransmissionRiskLevel};
use super::venue::{LocationId, LocationIdHash};

/// A visit as the phone stores it: where (the venue's secret id, and what its QR code
/// said) and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Visit {
    /// The venue's secret id.
    pub location_id: LocationId,
    /// The venue's description, from its QR code.
    pub description: String,
    /// The venue's address, from its QR code.
    pub address: String,
    /// Arrival and (planned or actual) departure.
    pub stay: Stay,
}

/// A stored visit with the id the store gave it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckIn {
    /// The store's id for it, unique on the device.
    pub id: u64,
    /// The visit.
    pub visit: Visit,
    /// Whether the user shared it after a positive test (the server acknowledged the
    /// upload): the warnings it would raise are the user's own, so it is not matched.
    pub shared: bool,
}

/// When a published report counts as an exposure at a venue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VenueMatchConfig {
    /// Least time spent there together with the positive person, in minutes.
    pub min_overlap_minutes: u32,
}

impl Default for VenueMatchConfig {
    /// 15 minutes, the time GAEN's default risk threshold also asks for.
    fn default() -> Self {
        Self {
            min_overlap_minutes: 15,
        }
    }
}

/// A visit that overlapped the reported visit of a positive person.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VenueExposure {
    /// The check-in it concerns.
    pub check_in_id: u64,
    /// The venue's description.
    pub description: String,
    /// The venue's address.
    pub address: String,
    /// The time both were there (the report's side to the 10-minute interval).
    pub overlap: Stay,
    /// That time in minutes, rounded to the nearest.
    pub overlap_minutes: u32,
    /// How contagious the positive person was that day.
    pub transmission_risk_level: TransmissionRiskLevel,
}

/// The exposures that `reports` reveal among `check_ins`: for each report whose hash
/// is that of a visited venue, whose MAC verifies with the venue's id and whose stay
/// overlaps the visit by at least `config.min_overlap_minutes`.
///
/// Reports for venues not visited cost one hash-table probe; reports that do not
/// verify or decrypt are ignored (they are padding, or for another venue).
pub fn match_check_ins<'a>(
    check_ins: &[CheckIn],
    reports: impl IntoIterator<Item = &'a ProtectedReport>,
    config: &VenueMatchConfig,
) -> Vec<VenueExposure> {
    let mut by_hash: HashMap<LocationIdHash, Vec<&CheckIn>> = HashMap::new();
    for check_in in check_ins {
        by_hash
            .entry(check_in.visit.location_id.hash())
            .or_default()
            .push(check_in);
    }
    let mut exposures = Vec::new();
    for report in reports {
        let Some(visits) = by_hash.get(&report.location_id_hash()) else {
            continue;
        };
        for check_in in visits {
            let Ok(warning) = report.open(&check_in.visit.location_id) else {
                continue;
            };
            let Some(overlap) = warning.stay.overlap(check_in.visit.stay) else {
                continue;
            };
            let minutes = u32::try_from(overlap.minutes()).unwrap_or(u32::MAX);
            if minutes >= config.min_overlap_minutes {
                exposures.push(VenueExposure {
                    check_in_id: check_in.id,
                    description: check_in.visit.description.clone(),
                    address: check_in.visit.address.clone(),
                    overlap,
                    overlap_minutes: minutes,
                    transmission_risk_level: warning.transmission_risk_level,
                });
            }
        }
    }
    exposures
}
