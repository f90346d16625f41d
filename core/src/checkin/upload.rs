//! What a positive person uploads of their visits: always the same number of reports,
//! so that nobody can count their real visits.
//!
//! ```text
//!  real visits (≤ 20 a day, ≤ 280) ──seal──▶ reports ─┐
//!  random padding reports ───────────────────────────┴─sort by bytes─▶ exactly 280 reports
//! ```
//!
//! Who could otherwise count them: an observer of a plain (unsealed) upload, by its
//! length; the server's operator (or a copy of its database), who opens every upload; a
//! reader of an hourly trace-warning package with a single upload in it. Padding is
//! added on the phone, where the real count is known, so none of them sees it; the server
//! pads again what a client sent short ([`pad_upload`] is the same call), so the
//! packages stay alike even with a client that does not pad. Reports are sorted by their
//! bytes (real and padding ones are uniformly random there), so their order says nothing
//! either.
//!
//! A padding report ([`ProtectedReport::padding`]) has a random location hash and a
//! random MAC: no phone holds a venue with that hash (2⁻²⁵⁶), and a MAC would have to
//! verify under that venue's key besides, so padding never warns anyone.
//!
//! The price: every upload puts [`CHECK_INS_PER_UPLOAD`] reports (about 30 KB) into the
//! hourly package every phone downloads, whether its sender visited 0 places or 280.

use rand_core::{CryptoRng, RngCore};

use super::report::ProtectedReport;

/// Most visits of one day a phone uploads: Corona-Warn-App's 20. Someone who scanned more
/// codes than anyone visits places (a tester, an attacker flooding warnings) shares the
/// day's first 20.
pub const MAX_CHECK_INS_PER_DAY: usize = 20;

/// Reports in every upload, real and padding: 20 a day for the 14 days a phone keeps its
/// visits. The server takes no more in one publish, so padding never pushes a real
/// upload over the server's limit, and the limit cannot be passed by calling reports
/// padding.
pub const CHECK_INS_PER_UPLOAD: usize = MAX_CHECK_INS_PER_DAY * 14;

/// `reports` padded with random reports to [`CHECK_INS_PER_UPLOAD`] and sorted by their
/// bytes. Reports beyond that many are returned as they are (the caller refuses or
/// trims them).
pub fn pad_upload<R: RngCore + CryptoRng>(
    rng: &mut R,
    mut reports: Vec<ProtectedReport>,
) -> Vec<ProtectedReport> {
    let missing = CHECK_INS_PER_UPLOAD.saturating_sub(reports.len());
    reports.extend((0..missing).map(|_| ProtectedReport::padding(rng)));
    reports.sort();
    reports
}

/// A phone's visits sealed for upload (from
/// [`ExposureEngine::check_ins_to_upload`](crate::ExposureEngine::check_ins_to_upload)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckInUpload {
    /// Exactly [`CHECK_INS_PER_UPLOAD`] reports, the real visits hidden among random
    /// padding: send them all.
    pub reports: Vec<ProtectedReport>,
    /// The ids of the check-ins among them, for the phone only: never send them. Once
    /// the server has acknowledged the upload, pass them to
    /// [`ExposureEngine::mark_check_ins_shared`](crate::ExposureEngine::mark_check_ins_shared),
    /// so the phone is not warned of its user's own visits.
    pub check_ins: Vec<u64>,
}

impl CheckInUpload {
    /// How many of the reports are real visits (to tell the user).
    pub fn visits(&self) -> usize {
        self.check_ins.len()
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;
    use crate::checkin::{Stay, TransmissionRiskLevel, VenueDetails, VenuePayload};
    use crate::time::UnixSeconds;

    #[test]
    fn uploads_of_any_size_are_padded_alike() {
        let mut rng = StdRng::seed_from_u64(1);
        let details = VenueDetails {
            description: "Café".into(),
            address: "Main Street 1".into(),
            ..VenueDetails::default()
        };
        let venue = VenuePayload::generate(&mut rng, details).unwrap();
        let stay = Stay::new(
            UnixSeconds::new(1_700_000_400),
            UnixSeconds::new(1_700_004_000),
        )
        .unwrap();
        let real = |n| {
            (0..n)
                .map(|_| {
                    ProtectedReport::seal(
                        &mut StdRng::seed_from_u64(n as u64),
                        venue.location_id(),
                        stay,
                        TransmissionRiskLevel::HIGHEST,
                    )
                })
                .collect::<Vec<_>>()
        };
        for n in [0, 1, 7, CHECK_INS_PER_UPLOAD] {
            let padded = pad_upload(&mut rng, real(n));
            assert_eq!(padded.len(), CHECK_INS_PER_UPLOAD);
            assert!(padded.is_sorted());
            assert!(padded.iter().all(|r| r.to_bytes().len() == 104));
            let opened = padded
                .iter()
                .filter(|r| r.open(venue.location_id()).is_ok())
                .count();
            assert_eq!(opened, n, "the padding opens for no venue");
        }
        assert_eq!(
            pad_upload(&mut rng, real(CHECK_INS_PER_UPLOAD + 1)).len(),
            CHECK_INS_PER_UPLOAD + 1
        );
    }
}
