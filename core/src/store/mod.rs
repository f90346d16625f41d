//! The device store: own keys, sightings, processed export files, exposures and settings.
//!
//! [`Store`] is the interface; [`MemoryStore`] keeps everything in memory (tests,
//! simulations), and `SqliteStore` (feature `store`) keeps it in one SQLite file
//! in WAL mode. Both pass one conformance suite, [`testing`], which another
//! implementation runs unchanged with [`store_conformance_tests!`](crate::store_conformance_tests).
//!
//! Every write method is atomic: a batch is stored whole or not at all, even if the
//! process is killed in the middle of it.

mod memory;
#[cfg(feature = "store")]
mod schema;
#[cfg(feature = "store")]
mod sqlite;
#[cfg(feature = "store")]
mod sqlite_checkins;
pub mod testing;

pub use memory::MemoryStore;
#[cfg(feature = "store")]
pub use schema::SCHEMA_VERSION;
#[cfg(feature = "store")]
pub use sqlite::SqliteStore;

use crate::checkin::{CheckIn, Stay, VenueExposure, Visit};
use crate::diagnosis::DiagnosisKey;
use crate::error::Result;
use crate::keys::TemporaryExposureKey;
use crate::matching::Match;
use crate::risk::ExposureWindow;
use crate::sighting::Sighting;
use crate::time::UnixSeconds;

/// How long everything is kept: 14 days.
pub const RETENTION_SECONDS: u64 = 14 * 86_400;

/// A matched diagnosis key with the exposure windows computed from its sightings.
#[derive(Clone, Debug, PartialEq)]
pub struct Exposure {
    /// The key and its sightings.
    pub matched: Match,
    /// Its exposure windows.
    pub windows: Vec<ExposureWindow>,
    /// Whether a revised key changed its report type already: GAEN allows one
    /// transition per key (R19).
    pub revised: bool,
}

impl Exposure {
    /// Takes the diagnosis of `revised` (report type, days since onset, transmission
    /// risk level), in the key and in every window, if it is the same key, not
    /// revised before, and the transition is one GAEN allows (R19,
    /// [`ReportType::may_be_revised_to`]). Returns whether it did.
    pub fn revise(&mut self, revised: &DiagnosisKey) -> bool {
        let key = &mut self.matched.key;
        if key.tek.expose_secret() != revised.tek.expose_secret()
            || self.revised
            || !key.report_type.may_be_revised_to(revised.report_type)
        {
            return false;
        }
        self.revised = true;
        key.report_type = revised.report_type;
        key.days_since_onset = revised.days_since_onset;
        key.transmission_risk_level = revised.transmission_risk_level;
        for window in &mut self.windows {
            window.report_type = revised.report_type;
            window.days_since_onset = revised.days_since_onset;
        }
        true
    }

    /// Time of the last sighting.
    pub fn last_seen(&self) -> UnixSeconds {
        self.matched
            .sightings
            .iter()
            .map(|s| s.sighting.time)
            .max()
            .unwrap_or_default()
    }
}

/// What ingesting one export file (or one stream of keys) changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IngestReport {
    /// Keys heard that had not matched before: the new exposures.
    pub new_exposures: usize,
    /// Stored exposures whose diagnosis a revised key changed.
    pub revised_exposures: usize,
    /// Whether the file had been ingested before, so nothing was done.
    pub already_ingested: bool,
}

impl IngestReport {
    /// The report of a file ingested before.
    pub fn already_ingested() -> Self {
        Self {
            already_ingested: true,
            ..Self::default()
        }
    }
}

/// What a device keeps between runs.
pub trait Store {
    /// Stores one of this device's own daily keys, replacing a key with the same start.
    fn add_own_key(&mut self, key: &TemporaryExposureKey) -> Result<()>;

    /// This device's own keys, oldest first.
    fn own_keys(&self) -> Result<Vec<TemporaryExposureKey>>;

    /// Stores a batch of sightings, all or none.
    fn add_sightings(&mut self, sightings: &[Sighting]) -> Result<()>;

    /// Every stored sighting, in time order.
    fn sightings(&self) -> Result<Vec<Sighting>>;

    /// Whether the export file named `name` was matched already.
    fn is_file_processed(&self, name: &str) -> Result<bool>;

    /// Records the outcome of ingesting one file (or one stream of keys), all or
    /// none: adds the new `exposures`; applies the `revised` keys (whose report type
    /// changed after publication: a self-report confirmed by a test, a diagnosis
    /// revoked) to the stored exposures of the same key bytes (see
    /// [`Exposure::revise`]); and marks `file`, if any, as processed at `now`. An exposure whose key is stored already is skipped, so a key
    /// published twice counts once.
    fn record_ingest(
        &mut self,
        file: Option<&str>,
        exposures: &[Exposure],
        revised: &[DiagnosisKey],
        now: UnixSeconds,
    ) -> Result<IngestReport>;

    /// Every stored exposure, in the order they were found.
    fn exposures(&self) -> Result<Vec<Exposure>>;

    /// Stores a setting (such as the risk configuration), replacing an earlier value.
    fn set_setting(&mut self, name: &str, value: &str) -> Result<()>;

    /// A stored setting.
    fn setting(&self, name: &str) -> Result<Option<String>>;

    /// Deletes what is older than 14 days before `now`: own keys that
    /// expired, sightings, processed-file marks, exposures last seen before then, and
    /// check-ins and venue exposures that ended before then.
    fn purge(&mut self, now: UnixSeconds) -> Result<()>;

    /// Stores a visit to a venue and returns its id; ids are never reused.
    fn add_check_in(&mut self, visit: &Visit) -> Result<u64>;

    /// Every stored check-in, by arrival (then id).
    fn check_ins(&self) -> Result<Vec<CheckIn>>;

    /// Replaces the stay of check-in `id` (a check-out, or a corrected arrival);
    /// returns whether the check-in exists.
    fn set_stay(&mut self, id: u64, stay: Stay) -> Result<bool>;

    /// Marks the check-ins `ids` as shared after a positive test; ids not stored are
    /// ignored.
    fn set_shared(&mut self, ids: &[u64]) -> Result<()>;

    /// Stores what one trace-warning run found, all or none: the new venue `exposures`,
    /// and `file`, if any, marked as processed at `now`. An exposure
    /// stored already (same check-in, overlap and risk level) is skipped, so a report
    /// published twice counts once; so is one whose check-in is gone. Returns how many
    /// were new.
    fn add_venue_exposures(
        &mut self,
        file: Option<&str>,
        exposures: &[VenueExposure],
        now: UnixSeconds,
    ) -> Result<usize>;

    /// Every stored venue exposure, in the order they were found.
    fn venue_exposures(&self) -> Result<Vec<VenueExposure>>;
}

/// The oldest time kept by a purge at `now`.
fn retention_cutoff(now: UnixSeconds) -> UnixSeconds {
    now.minus(RETENTION_SECONDS)
}

/// Whether an own key expired before `cutoff`.
fn own_key_expired(key: &TemporaryExposureKey, cutoff: UnixSeconds) -> bool {
    UnixSeconds::of_interval(key.validity().end()) <= cutoff
}
