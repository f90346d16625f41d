//! Venue check-in ("presence tracing") the way Corona-Warn-App does it, byte for byte:
//! QR codes at places, visits kept on the phone, and warnings that only the other
//! visitors can read.
//!
//! ```text
//!  venue QR text ──VenuePayload::from_qr_text──▶ VenuePayload ──location_id()──▶ LocationId (secret)
//!  visit (LocationId, Stay) ──ProtectedReport::seal──▶ ProtectedReport {SHA-256(id), iv, AES-CBC(record), HMAC}
//!  reports ──write_trace_warnings──▶ signed zip ──TraceWarningFile::parse──verify──▶ VerifiedTraceWarnings
//!  check-ins + reports ──match_check_ins──▶ VenueExposure (minutes together ≥ threshold)
//! ```
//!
//! Compatible with CWA's published formats (`trace_location.proto`, `check_in.proto`,
//! `trace_warning.proto` in cwa-server; the construction in cwa-documentation's
//! `event_registration.md`): a CWA poster's QR text can be checked into, and the
//! location id, report keys and MAC are CWA's. Like the rest of the crate this does
//! no I/O and draws no randomness of its own. The signed package needs the `export`
//! feature (its signatures are the key exports').
//!
//! What each party learns: the server and a CDN see, per report, only SHA-256 of the
//! location id, a random IV, one encrypted block and a MAC, so they can count reports per
//! hashed venue (how a health authority spots a cluster at a venue it registered, whose
//! code it knows) but not read the times, nor name a venue whose code they never saw.
//! Padding reports ([`ProtectedReport::padding`]) are random bytes of the same shape; every
//! upload holds the same number of reports ([`CHECK_INS_PER_UPLOAD`], mostly padding), so
//! nobody can count a positive person's visits (see [`pad_upload`]). A
//! phone that scanned the code opens the reports of that venue only. Anyone holding the
//! code (a photo of the poster) learns the same as a visitor: that is why venues should
//! change codes from time to time, and why uploads need a verified positive test.
//!
//! ```
//! use kith_core::checkin::{
//!     CheckIn, ProtectedReport, Stay, TraceWarningBatch, TraceWarningFile, TransmissionRiskLevel,
//!     VenueDetails, VenueMatchConfig, VenuePayload, Visit, CWA_QR_PREFIX, match_check_ins,
//!     write_trace_warnings,
//! };
//! use kith_core::{ExportLimits, ExportSigner, OsRng, SigningKey, TrustedKeys, UnixSeconds};
//!
//! // A café prints its QR code …
//! let details = VenueDetails {
//!     description: "Café Kith".into(),
//!     address: "Main Street 1".into(),
//!     default_check_in_minutes: Some(60),
//!     ..VenueDetails::default()
//! };
//! let qr_text = VenuePayload::generate(&mut OsRng, details)?.qr_text(CWA_QR_PREFIX);
//!
//! // … two visitors scan it; the first tests positive and shares her visit.
//! let venue = VenuePayload::from_qr_text(&qr_text)?;
//! let hers = Stay::new(UnixSeconds::new(1_700_000_400), UnixSeconds::new(1_700_004_000))?; // 10-minute aligned
//! let report = ProtectedReport::seal(&mut OsRng, venue.location_id(), hers, TransmissionRiskLevel::HIGHEST);
//!
//! // The health authority publishes it, signed …
//! let signer = ExportSigner::new("262", "v1", SigningKey::generate(&mut OsRng));
//! let batch = TraceWarningBatch { region: "DE", hour: 472_223, reports: &[report] };
//! let file = write_trace_warnings(&batch, &[&signer])?;
//!
//! // … and the second visitor's phone finds they were there together for 30 minutes.
//! let trusted = TrustedKeys::new().with("262", "v1", signer.verifying_key());
//! let warnings = TraceWarningFile::parse(&file, &ExportLimits::default())?.verify(&trusted)?;
//! let mine = CheckIn {
//!     id: 1,
//!     visit: Visit {
//!         location_id: venue.location_id().clone(),
//!         description: venue.details().description.clone(),
//!         address: venue.details().address.clone(),
//!         stay: Stay::new(UnixSeconds::new(1_700_002_200), UnixSeconds::new(1_700_005_800))?,
//!     },
//!     shared: false,
//! };
//! let exposures = match_check_ins(&[mine], warnings.reports(), &VenueMatchConfig::default());
//! assert_eq!(exposures[0].overlap_minutes, 30);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod engine;
mod error;
mod matching;
#[cfg(feature = "export")]
mod package;
mod proto;
mod report;
mod upload;
mod venue;

pub use engine::DEFAULT_VISIT_SECONDS;
pub use error::CheckinError;
pub use matching::{CheckIn, VenueExposure, VenueMatchConfig, Visit, match_check_ins};
#[cfg(feature = "export")]
pub use package::{
    HOUR_SECONDS, TraceWarningBatch, TraceWarningFile, VerifiedTraceWarnings, write_trace_warnings,
};
pub use report::{
    ENCRYPTED_RECORD_LEN, IV_LEN, MAC_LEN, MAX_STAY_SECONDS, ProtectedReport, Stay,
    TransmissionRiskLevel, Warning,
};
pub use upload::{CHECK_INS_PER_UPLOAD, CheckInUpload, MAX_CHECK_INS_PER_DAY, pad_upload};
pub use venue::{
    CWA_QR_PREFIX, LOCATION_ID_LEN, LocationId, LocationIdHash, SEED_LEN, VenueDetails,
    VenuePayload, VenueType,
};
