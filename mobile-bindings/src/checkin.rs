//! Venue check-in: scanning a venue's QR code, checking out, sharing visits after a
//! positive test, and the warnings of other visitors' positive tests.

use kith_core::checkin::{
    self, ProtectedReport, TraceWarningBatch, TraceWarningFile, TransmissionRiskLevel,
    VenueMatchConfig, VenuePayload,
};
use kith_core::store::Store;
use kith_core::{ExportLimits, OsRng};

use crate::engine::{ExposureEngine, file_name, venue_exposures};
use crate::error::{KithError, Result};
use crate::export::{ExportSigner, TrustedPublicKey, trusted_keys};
use crate::units::{id, seconds, time_at};

/// A visit to a venue, as the app lists it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
#[uniffi::export(Debug, Eq)]
pub struct CheckIn {
    /// The engine's id for the visit, for [`ExposureEngine::check_out`].
    pub id: i64,
    /// The venue's name, from its QR code.
    pub description: String,
    /// The venue's address, from its QR code.
    pub address: String,
    /// Arrival, Unix seconds.
    pub arrival_unix_seconds: i64,
    /// Departure, Unix seconds: planned (the venue's default length) until checked out.
    pub departure_unix_seconds: i64,
    /// Whether the user shared it after a positive test
    /// ([`ExposureEngine::mark_check_ins_shared`]): it no longer raises warnings.
    pub shared: bool,
}

impl From<checkin::CheckIn> for CheckIn {
    fn from(check_in: checkin::CheckIn) -> Self {
        Self {
            id: stored_id(check_in.id),
            description: check_in.visit.description,
            address: check_in.visit.address,
            arrival_unix_seconds: seconds(check_in.visit.stay.arrival()),
            departure_unix_seconds: seconds(check_in.visit.stay.departure()),
            shared: check_in.shared,
        }
    }
}

/// One visit sealed for upload: CWA's `CheckInProtectedReport`. Only phones that
/// scanned the same venue's code can read its times; the server sees the hash.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
#[uniffi::export(Debug, Eq)]
pub struct ProtectedCheckIn {
    /// The report as protobuf `CheckInProtectedReport` bytes (location id hash, IV,
    /// encrypted record, MAC): what the app uploads.
    pub report: Vec<u8>,
}

/// What to upload of the user's visits ([`ExposureEngine::check_ins_to_upload`]).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
#[uniffi::export(Debug, Eq)]
pub struct CheckInUpload {
    /// Always 280 reports, the visits among padding: upload them all, in this order.
    pub reports: Vec<ProtectedCheckIn>,
    /// The ids of the user's visits among them, to tell the user and, once the server
    /// has acknowledged the upload, to pass to
    /// [`ExposureEngine::mark_check_ins_shared`]; never upload them.
    pub check_in_ids: Vec<i64>,
}

/// A visit that overlapped a positive person's reported visit.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
#[uniffi::export(Debug, Eq)]
pub struct VenueExposure {
    /// The check-in it concerns.
    pub check_in_id: i64,
    /// The venue's name.
    pub description: String,
    /// The venue's address.
    pub address: String,
    /// When both were there, from (Unix seconds) …
    pub start_unix_seconds: i64,
    /// … to (Unix seconds).
    pub end_unix_seconds: i64,
    /// That time in minutes.
    pub overlap_minutes: u32,
    /// How contagious the positive person was that day, 1..=8.
    pub transmission_risk_level: u8,
}

impl From<checkin::VenueExposure> for VenueExposure {
    fn from(exposure: checkin::VenueExposure) -> Self {
        Self {
            check_in_id: stored_id(exposure.check_in_id),
            description: exposure.description,
            address: exposure.address,
            start_unix_seconds: seconds(exposure.overlap.arrival()),
            end_unix_seconds: seconds(exposure.overlap.departure()),
            overlap_minutes: exposure.overlap_minutes,
            transmission_risk_level: exposure.transmission_risk_level.get(),
        }
    }
}

#[uniffi::export]
impl ExposureEngine {
    /// Checks in at the venue whose QR code reads `qr_text` (a CWA poster's
    /// `https://e.coronawarn.app?v=1#…`, or another app's `…/CWA1/…`), arriving at
    /// `arrival_unix_seconds`.
    ///
    /// The visit ends by itself after the venue's default length (two hours when its
    /// code names none); scanning the same code again during the visit returns the same
    /// check-in. Text that is not a venue code fails with `InvalidVenueCode`.
    pub fn check_in(&self, qr_text: String, arrival_unix_seconds: i64) -> Result<CheckIn> {
        let arrival_unix_seconds = time_at("arrival_unix_seconds", arrival_unix_seconds)?;
        let venue = VenuePayload::from_qr_text(&qr_text)
            .map_err(|error| KithError::InvalidVenueCode(error.into()))?;
        let check_in = self
            .lock()
            .check_in(&venue, arrival_unix_seconds)
            .map_err(KithError::store_or(KithError::InvalidCheckIn))?;
        Ok(check_in.into())
    }

    /// Ends visit `check_in_id` at `departure_unix_seconds` (after its arrival, at most
    /// a day later), or corrects the end of a visit that ended by itself.
    pub fn check_out(&self, check_in_id: i64, departure_unix_seconds: i64) -> Result<CheckIn> {
        let check_in_id = id("check_in_id", check_in_id)?;
        let departure_unix_seconds = time_at("departure_unix_seconds", departure_unix_seconds)?;
        let check_in = self
            .lock()
            .check_out(check_in_id, departure_unix_seconds)
            .map_err(KithError::store_or(KithError::InvalidCheckIn))?;
        Ok(check_in.into())
    }

    /// The stored visits (the last 14 days), by arrival.
    pub fn check_ins(&self) -> Result<Vec<CheckIn>> {
        let check_ins = self.lock().check_ins().map_err(KithError::Storage)?;
        Ok(check_ins.into_iter().map(Into::into).collect())
    }

    /// The visits of the last 14 days to upload with the keys after a positive test,
    /// each sealed with a fresh random IV, hidden among random padding reports: always
    /// 280 reports, so that neither the network, the server nor a reader of the
    /// published packages can count the user's visits (padding opens for no venue and
    /// warns no one). Upload all of `reports`. A visit still going on ends at
    /// `now_unix_seconds`; of each day the first 20 visits. The phone does not know how
    /// contagious its user was on each day, so every visit carries the highest
    /// transmission risk level.
    pub fn check_ins_to_upload(&self, now_unix_seconds: i64) -> Result<CheckInUpload> {
        let now_unix_seconds = time_at("now_unix_seconds", now_unix_seconds)?;
        let upload = self
            .lock()
            .check_ins_to_upload(&mut OsRng, now_unix_seconds, TransmissionRiskLevel::HIGHEST)
            .map_err(KithError::Storage)?;
        Ok(CheckInUpload {
            reports: upload
                .reports
                .iter()
                .map(|report| ProtectedCheckIn {
                    report: report.to_bytes(),
                })
                .collect(),
            check_in_ids: upload.check_ins.into_iter().map(stored_id).collect(),
        })
    }

    /// Remembers that the visits `check_in_ids` (from a [`CheckInUpload`]) were shared:
    /// call it once the server has acknowledged the upload, so the packages that carry
    /// them do not warn the user of their own visits. Visits not uploaded, and later
    /// ones, still raise warnings; ids no longer stored are ignored.
    pub fn mark_check_ins_shared(&self, check_in_ids: Vec<i64>) -> Result<()> {
        let ids = check_in_ids
            .into_iter()
            .map(|check_in_id| id("check_in_ids", check_in_id))
            .collect::<Result<Vec<_>>>()?;
        self.lock()
            .mark_check_ins_shared(&ids)
            .map_err(KithError::Storage)
    }

    /// Reads a downloaded trace-warning package (zip bytes), checks its signature
    /// against the health authority's `trusted_public_keys`, matches its reports
    /// against the stored visits, stores the venue exposures found and says what
    /// changed, as [`ingest_export`](Self::ingest_export) does: the venue exposures new
    /// to this package, and the exposure summary with them. A package is matched once:
    /// the same bytes again report `already_ingested` and change nothing.
    pub fn ingest_trace_warnings(
        &self,
        trace_warning_file: Vec<u8>,
        trusted_public_keys: Vec<TrustedPublicKey>,
        now_unix_seconds: i64,
    ) -> Result<TraceWarningIngest> {
        let now = time_at("now_unix_seconds", now_unix_seconds)?;
        let trusted = trusted_keys(&trusted_public_keys)?;
        let warnings = TraceWarningFile::parse(&trace_warning_file, &ExportLimits::default())?
            .verify(&trusted)?;
        let name = file_name(&trace_warning_file);
        let mut engine = self.lock();
        let already_ingested = engine.store().is_file_processed(&name)?;
        let before = venue_exposures(&engine)?;
        engine
            .ingest_trace_warnings(&name, &warnings, now)
            .map_err(KithError::Storage)?;
        let new_venue_exposures = venue_exposures(&engine)?
            .into_iter()
            .filter(|exposure| !before.contains(exposure))
            .collect();
        drop(engine);
        Ok(TraceWarningIngest {
            already_ingested,
            new_venue_exposures,
        })
    }

    /// Sets the least time, in minutes, spent at a venue together with a positive
    /// person that makes a venue exposure (15 until set), for packages ingested from now on.
    pub fn set_venue_min_overlap_minutes(&self, minutes: i64) -> Result<()> {
        let min_overlap_minutes = KithError::in_range("minutes", minutes, "0..=2^32-1")?;
        self.lock()
            .set_venue_match_config(VenueMatchConfig {
                min_overlap_minutes,
            })
            .map_err(KithError::Storage)
    }
}

/// What ingesting a trace-warning package changed
/// ([`ExposureEngine::ingest_trace_warnings`]).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
#[uniffi::export(Debug, Eq)]
pub struct TraceWarningIngest {
    /// The same bytes were ingested before: nothing changed.
    pub already_ingested: bool,
    /// The visits this package found to overlap a positive person's: warn the user
    /// of each (they are in the exposure summary too, until purged).
    pub new_venue_exposures: Vec<VenueExposure>,
}

/// A check-in id as apps hold it; the store hands out ids from 1 up, far below 2^63.
fn stored_id(id: u64) -> i64 {
    i64::try_from(id).unwrap_or(i64::MAX)
}

#[uniffi::export]
impl ExportSigner {
    /// A signed trace-warning package of the uploaded `reports` for `region`, for the
    /// hour `hour` (hours since the Unix epoch): what the health authority's server
    /// publishes every hour.
    pub fn write_trace_warnings(
        &self,
        reports: Vec<ProtectedCheckIn>,
        region: String,
        hour: i64,
    ) -> Result<Vec<u8>> {
        let hour = KithError::in_range("hour", hour, "0..=2^32-1")?;
        let reports = reports
            .iter()
            .map(|upload| ProtectedReport::from_bytes(&upload.report))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|error| KithError::InvalidCheckIn(error.into()))?;
        let batch = TraceWarningBatch {
            region: &region,
            hour,
            reports: &reports,
        };
        checkin::write_trace_warnings(&batch, &[self.signer()])
            .map_err(KithError::InvalidExportFile)
    }
}
