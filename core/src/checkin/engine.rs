//! Venue check-ins on the device: the [`ExposureEngine`]'s visits, uploads and warnings.

use rand_core::{CryptoRng, RngCore};

use super::error::CheckinError;
use super::matching::{CheckIn, VenueExposure, VenueMatchConfig, Visit};
use super::report::{MAX_STAY_SECONDS, ProtectedReport, Stay, TransmissionRiskLevel};
use super::upload::{CHECK_INS_PER_UPLOAD, CheckInUpload, MAX_CHECK_INS_PER_DAY, pad_upload};
use super::venue::VenuePayload;
use crate::engine::ExposureEngine;
use crate::error::Result;
use crate::store::{RETENTION_SECONDS, Store};
use crate::time::UnixSeconds;

/// How long a visit lasts when the venue's code names no default length: two hours.
pub const DEFAULT_VISIT_SECONDS: u64 = 2 * 3_600;

/// Name of the setting that holds the least overlap, in minutes, that makes a venue exposure.
const MIN_OVERLAP_SETTING: &str = "venue_min_overlap_minutes";

impl<S: Store> ExposureEngine<S> {
    /// Checks in at `venue`, arriving at `arrival`.
    ///
    /// The visit ends by itself after the venue's default length (from its code, else
    /// [`DEFAULT_VISIT_SECONDS`]; at most a day), so a forgotten check-out does not
    /// last forever; [`check_out`](Self::check_out) ends it earlier. Scanning the same
    /// code again during a visit returns that visit rather than a second one.
    pub fn check_in(&mut self, venue: &VenuePayload, arrival: UnixSeconds) -> Result<CheckIn> {
        if let Some(open) = self.store().check_ins()?.into_iter().find(|c| {
            c.visit.location_id == *venue.location_id()
                && (c.visit.stay.arrival()..c.visit.stay.departure()).contains(&arrival)
        }) {
            return Ok(open);
        }
        let length = venue
            .details()
            .default_check_in_minutes
            .map_or(DEFAULT_VISIT_SECONDS, |minutes| u64::from(minutes) * 60)
            .min(MAX_STAY_SECONDS);
        let visit = Visit {
            location_id: venue.location_id().clone(),
            description: venue.details().description.clone(),
            address: venue.details().address.clone(),
            stay: Stay::new(arrival, arrival.plus(length))?,
        };
        let id = self.store_mut().add_check_in(&visit)?;
        Ok(CheckIn {
            id,
            visit,
            shared: false,
        })
    }

    /// Ends check-in `id` at `departure`: after its arrival, at most a
    /// day later. Also corrects a visit that ended by itself.
    pub fn check_out(&mut self, id: u64, departure: UnixSeconds) -> Result<CheckIn> {
        let mut check_in = self.check_in_by_id(id)?;
        check_in.visit.stay = Stay::new(check_in.visit.stay.arrival(), departure)?;
        self.store_mut().set_stay(id, check_in.visit.stay)?;
        Ok(check_in)
    }

    /// The stored check-ins, by arrival.
    pub fn check_ins(&self) -> Result<Vec<CheckIn>> {
        self.store().check_ins()
    }

    /// The visits of the last 14 days to share after a positive test, each sealed
    /// into a [`ProtectedReport`] with `transmission_risk_level`, hidden among random
    /// padding: always [`CHECK_INS_PER_UPLOAD`] reports (see [`pad_upload`]). A visit
    /// still going on is cut at `now`; visits that begin after `now` are left out; of
    /// each UTC day (of arrival) the first [`MAX_CHECK_INS_PER_DAY`] are sent, and of
    /// them the latest [`CHECK_INS_PER_UPLOAD`] (a visit that began 15 days ago and
    /// ended within 14 makes a 15th day).
    pub fn check_ins_to_upload<R: RngCore + CryptoRng>(
        &self,
        rng: &mut R,
        now: UnixSeconds,
        transmission_risk_level: TransmissionRiskLevel,
    ) -> Result<CheckInUpload> {
        let oldest = now.minus(RETENTION_SECONDS);
        let mut per_day = std::collections::HashMap::new();
        let mut stays: Vec<_> = self
            .store()
            .check_ins()?
            .into_iter()
            .filter(|c| c.visit.stay.departure() > oldest && c.visit.stay.arrival() < now)
            .filter(|c| {
                let count = per_day.entry(c.visit.stay.arrival().day()).or_insert(0);
                *count += 1;
                *count <= MAX_CHECK_INS_PER_DAY
            })
            .filter_map(|c| {
                let stay = c.visit.stay;
                let cut = Stay::new(stay.arrival(), stay.departure().min(now)).ok()?;
                Some((c.id, c.visit.location_id, cut))
            })
            .collect();
        // Check-ins come by arrival: the oldest give way.
        stays.drain(..stays.len().saturating_sub(CHECK_INS_PER_UPLOAD));
        let real = stays
            .iter()
            .map(|(_, location_id, stay)| {
                ProtectedReport::seal(rng, location_id, *stay, transmission_risk_level)
            })
            .collect();
        Ok(CheckInUpload {
            reports: pad_upload(rng, real),
            check_ins: stays.into_iter().map(|(id, _, _)| id).collect(),
        })
    }

    /// Remembers that the user shared check-ins `ids` (from a [`CheckInUpload`] the
    /// server acknowledged): the packages that carry them would otherwise warn the
    /// user of their own visits. Later visits, and visits not uploaded, are still
    /// matched. Unknown ids (purged since) are ignored.
    pub fn mark_check_ins_shared(&mut self, ids: &[u64]) -> Result<()> {
        self.store_mut().set_shared(ids)
    }

    /// When a report counts as a venue exposure: the stored setting, else the default.
    pub fn venue_match_config(&self) -> Result<VenueMatchConfig> {
        Ok(match self.store().setting(MIN_OVERLAP_SETTING)? {
            Some(minutes) => VenueMatchConfig {
                min_overlap_minutes: minutes.parse().map_err(|_| {
                    crate::Error::from(crate::StoreError::Corrupt(MIN_OVERLAP_SETTING))
                })?,
            },
            None => VenueMatchConfig::default(),
        })
    }

    /// Keeps `config` in the store for the trace warnings ingested from now on.
    pub fn set_venue_match_config(&mut self, config: VenueMatchConfig) -> Result<()> {
        self.store_mut()
            .set_setting(MIN_OVERLAP_SETTING, &config.min_overlap_minutes.to_string())
    }

    /// Matches a verified trace-warning package named `name` against the stored
    /// check-ins and stores the venue exposures found; returns how many were new.
    /// A package processed already is skipped (returns 0).
    #[cfg(feature = "export")]
    pub fn ingest_trace_warnings(
        &mut self,
        name: &str,
        warnings: &super::package::VerifiedTraceWarnings,
        now: UnixSeconds,
    ) -> Result<usize> {
        if self.store().is_file_processed(name)? {
            return Ok(0);
        }
        let config = self.venue_match_config()?;
        let mut check_ins = self.store().check_ins()?;
        check_ins.retain(|c| !c.shared);
        let exposures = super::matching::match_check_ins(&check_ins, warnings.reports(), &config);
        self.store_mut()
            .add_venue_exposures(Some(name), &exposures, now)
    }

    /// The venue exposures found so far (purged with their check-ins after 14 days).
    pub fn venue_exposures(&self) -> Result<Vec<VenueExposure>> {
        self.store().venue_exposures()
    }

    fn check_in_by_id(&self, id: u64) -> Result<CheckIn> {
        self.store()
            .check_ins()?
            .into_iter()
            .find(|c| c.id == id)
            .ok_or(CheckinError::UnknownCheckIn(id).into())
    }
}
