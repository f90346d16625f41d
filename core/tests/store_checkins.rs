//! The venue check-in part of the store conformance suite, run on every [`Store`], and
//! the engine's check-in flow on top of it.

use kith_core::checkin::{
    CHECK_INS_PER_UPLOAD, CheckinError, DEFAULT_VISIT_SECONDS, MAX_CHECK_INS_PER_DAY,
    ProtectedReport, Stay, TraceWarningBatch, TraceWarningFile, TransmissionRiskLevel,
    VenueDetails, VenueExposure, VenueMatchConfig, VenuePayload, Visit, write_trace_warnings,
};
use kith_core::store::{MemoryStore, SqliteStore, Store};
use kith_core::{
    Error, ExportLimits, ExportSigner, ExposureEngine, SigningKey, TrustedKeys, UnixSeconds,
};
use rand::SeedableRng;
use rand::rngs::StdRng;

const DAY: u64 = 86_400;
/// Midnight starting day 20 000 (2024-10-04).
const T0: UnixSeconds = UnixSeconds::new(20_000 * DAY);

fn venue(seed: u8, minutes: Option<u32>) -> VenuePayload {
    VenuePayload::with_seed(
        VenueDetails {
            description: format!("Venue {seed}"),
            address: "Main Street 1".into(),
            default_check_in_minutes: minutes,
            ..VenueDetails::default()
        },
        &[seed; 16],
    )
    .unwrap()
}

fn visit(seed: u8, arrival: UnixSeconds, departure: UnixSeconds) -> Visit {
    let venue = venue(seed, None);
    Visit {
        location_id: venue.location_id().clone(),
        description: venue.details().description.clone(),
        address: venue.details().address.clone(),
        stay: Stay::new(arrival, departure).unwrap(),
    }
}

fn exposure(check_in_id: u64, arrival: UnixSeconds, departure: UnixSeconds) -> VenueExposure {
    let overlap = Stay::new(arrival, departure).unwrap();
    VenueExposure {
        check_in_id,
        description: "Venue 1".into(),
        address: "Main Street 1".into(),
        overlap,
        overlap_minutes: overlap.minutes() as u32,
        transmission_risk_level: TransmissionRiskLevel::new(5).unwrap(),
    }
}

fn check_ins(mut store: impl Store) {
    assert!(store.check_ins().unwrap().is_empty());
    let late = store
        .add_check_in(&visit(1, T0 + 3_600, T0 + 7_200))
        .unwrap();
    let early = store.add_check_in(&visit(2, T0, T0 + 600)).unwrap();
    assert_ne!(late, early);
    let stored = store.check_ins().unwrap();
    assert_eq!(
        stored.iter().map(|c| c.id).collect::<Vec<_>>(),
        [early, late]
    );
    assert_eq!(stored[1].visit, visit(1, T0 + 3_600, T0 + 7_200));

    let out = Stay::new(T0 + 3_600, T0 + 4_000).unwrap();
    assert!(store.set_stay(late, out).unwrap());
    assert!(!store.set_stay(late + early + 1, out).unwrap());
    assert_eq!(store.check_ins().unwrap()[1].visit.stay, out);

    assert!(store.check_ins().unwrap().iter().all(|c| !c.shared));
    store.set_shared(&[late, late + early + 1]).unwrap();
    let shared: Vec<_> = store
        .check_ins()
        .unwrap()
        .iter()
        .map(|c| c.shared)
        .collect();
    assert_eq!(shared, [false, true], "only the stored id named");
}

fn venue_exposures(mut store: impl Store) {
    let id = store.add_check_in(&visit(1, T0, T0 + 7_200)).unwrap();
    let first = exposure(id, T0, T0 + 1_800);
    let second = exposure(id, T0 + 3_600, T0 + 5_400);
    assert_eq!(
        store
            .add_venue_exposures(Some("a.zip"), std::slice::from_ref(&first), T0)
            .unwrap(),
        1
    );
    assert!(store.is_file_processed("a.zip").unwrap());
    // The same report again, a new one, and one for a check-in the store does not hold.
    let stranger = exposure(id + 100, T0, T0 + 1_800);
    assert_eq!(
        store
            .add_venue_exposures(None, &[first.clone(), second.clone(), stranger], T0)
            .unwrap(),
        1
    );
    assert_eq!(store.venue_exposures().unwrap(), [first, second]);
}

fn purge(mut store: impl Store) {
    let now = T0 + 20 * DAY;
    let cutoff = now - 14 * DAY;
    let old = store
        .add_check_in(&visit(1, cutoff - 600, cutoff - 1))
        .unwrap();
    let kept = store.add_check_in(&visit(2, cutoff - 600, cutoff)).unwrap();
    store
        .add_venue_exposures(
            None,
            &[
                exposure(old, cutoff - 600, cutoff - 1),
                exposure(kept, cutoff - 600, cutoff),
            ],
            cutoff,
        )
        .unwrap();
    store.purge(now).unwrap();
    let left: Vec<_> = store.check_ins().unwrap().iter().map(|c| c.id).collect();
    assert_eq!(left, [kept]);
    assert_eq!(
        store.venue_exposures().unwrap(),
        [exposure(kept, cutoff - 600, cutoff)]
    );
    // Ids are not reused after a purge.
    let next = store.add_check_in(&visit(3, now, now + 60)).unwrap();
    assert!(next > kept && next != old);
}

/// A signed trace-warning package of `reports`.
fn package(reports: &[ProtectedReport], signer: &ExportSigner) -> Vec<u8> {
    let batch = TraceWarningBatch {
        region: "DE",
        hour: (T0.get() / 3_600) as u32,
        reports,
    };
    write_trace_warnings(&batch, &[signer]).unwrap()
}

/// Alice and Bob visit one café, Carol another; Alice tests positive.
fn engine(store: impl Store) {
    let mut rng = StdRng::seed_from_u64(1);
    let cafe = venue(1, Some(60));
    let bar = venue(2, None);
    let mut alice = ExposureEngine::new(MemoryStore::new()).unwrap();
    let mut bob = ExposureEngine::new(store).unwrap();

    let hers = alice.check_in(&cafe, T0).unwrap();
    assert_eq!(hers.visit.stay.departure(), T0 + 3_600, "the venue's hour");
    // Scanning the same code again during the visit is the same visit.
    assert_eq!(alice.check_in(&cafe, T0 + 600).unwrap(), hers);
    assert_eq!(alice.check_ins().unwrap().len(), 1);
    alice.check_out(hers.id, T0 + 2_400).unwrap();

    let his = bob.check_in(&cafe, T0 + 1_200).unwrap();
    let other = bob.check_in(&bar, T0).unwrap();
    assert_eq!(other.visit.stay.departure(), T0 + DEFAULT_VISIT_SECONDS);
    assert_eq!(
        bob.check_out(his.id, his.visit.stay.arrival()).unwrap_err(),
        Error::Checkin(CheckinError::InvalidStay {
            arrival: T0 + 1_200,
            departure: T0 + 1_200
        })
    );
    assert_eq!(
        bob.check_out(999, T0).unwrap_err(),
        Error::Checkin(CheckinError::UnknownCheckIn(999))
    );

    // Alice uploads her visit with padding; the server publishes it.
    let level = TransmissionRiskLevel::new(7).unwrap();
    let upload = alice
        .check_ins_to_upload(&mut rng, T0 + 7_200, level)
        .unwrap();
    assert_eq!(upload.visits(), 1);
    assert_eq!(upload.reports.len(), CHECK_INS_PER_UPLOAD);
    let mut reports = upload.reports;
    reports.push(ProtectedReport::padding(&mut rng));
    let signer = ExportSigner::new("262", "v1", SigningKey::generate(&mut rng));
    let trusted = TrustedKeys::new().with("262", "v1", signer.verifying_key());
    let file = package(&reports, &signer);
    let warnings = TraceWarningFile::parse(&file, &ExportLimits::default())
        .unwrap()
        .verify(&trusted)
        .unwrap();

    // Together 20 minutes (T0 + 1200 … T0 + 2400): above the 15-minute default.
    assert_eq!(
        bob.ingest_trace_warnings("twp-1", &warnings, T0 + 7_200)
            .unwrap(),
        1
    );
    assert_eq!(
        bob.ingest_trace_warnings("twp-1", &warnings, T0 + 7_200)
            .unwrap(),
        0
    );
    let [found] = bob.venue_exposures().unwrap().try_into().unwrap();
    assert_eq!(found.check_in_id, his.id);
    assert_eq!(found.overlap_minutes, 20);
    assert_eq!(
        (found.overlap.arrival(), found.overlap.departure()),
        (T0 + 1_200, T0 + 2_400)
    );
    assert_eq!(found.transmission_risk_level, level);

    // A stricter threshold applies to packages ingested later.
    bob.set_venue_match_config(VenueMatchConfig {
        min_overlap_minutes: 30,
    })
    .unwrap();
    assert_eq!(bob.venue_match_config().unwrap().min_overlap_minutes, 30);
    assert_eq!(
        bob.ingest_trace_warnings("twp-2", &warnings, T0 + 7_200)
            .unwrap(),
        0
    );

    // Uploads cover the last 14 days only, and an ongoing visit ends at the upload.
    let late = T0 + 15 * DAY;
    let none = bob.check_ins_to_upload(&mut rng, late, level).unwrap();
    assert_eq!(
        (none.visits(), none.reports.len()),
        (0, CHECK_INS_PER_UPLOAD),
        "padding only"
    );
    let ongoing = bob.check_in(&bar, late).unwrap();
    let upload = bob
        .check_ins_to_upload(&mut rng, late + 900, level)
        .unwrap();
    assert_eq!(upload.visits(), 1);
    let [opened] = upload
        .reports
        .iter()
        .filter_map(|r| r.open(&ongoing.visit.location_id).ok())
        .collect::<Vec<_>>()
        .try_into()
        .unwrap();
    assert_eq!(
        (opened.stay.arrival(), opened.stay.departure()),
        (late, late + 1_200)
    );

    bob.purge(late).unwrap();
    assert_eq!(bob.check_ins().unwrap(), [ongoing]);
    assert!(bob.venue_exposures().unwrap().is_empty());
}

/// Alice shares her café visit after a positive test; her twin, who sat beside her and
/// shared nothing, shows what the package would tell her. A later visit of hers is
/// still matched.
fn own_visits(store: impl Store) {
    let mut rng = StdRng::seed_from_u64(2);
    let cafe = venue(1, Some(60));
    let mut alice = ExposureEngine::new(store).unwrap();
    let mut twin = ExposureEngine::new(MemoryStore::new()).unwrap();
    let mut bob = ExposureEngine::new(MemoryStore::new()).unwrap();
    let hers = alice.check_in(&cafe, T0).unwrap();
    twin.check_in(&cafe, T0).unwrap();

    let level = TransmissionRiskLevel::new(7).unwrap();
    let upload = alice
        .check_ins_to_upload(&mut rng, T0 + 7_200, level)
        .unwrap();
    assert_eq!(upload.check_ins, [hers.id]);
    alice.mark_check_ins_shared(&upload.check_ins).unwrap();
    assert!(alice.check_ins().unwrap()[0].shared);

    // Later that day both are at the café again, and Bob, who tests positive next.
    let again = alice.check_in(&cafe, T0 + 5 * 3_600).unwrap();
    bob.check_in(&cafe, T0 + 5 * 3_600).unwrap();
    let his = bob
        .check_ins_to_upload(&mut rng, T0 + 8 * 3_600, level)
        .unwrap();
    let signer = ExportSigner::new("262", "v1", SigningKey::generate(&mut rng));
    let trusted = TrustedKeys::new().with("262", "v1", signer.verifying_key());
    let mut reports = upload.reports;
    reports.extend(his.reports);
    let file = package(&reports, &signer);
    let warnings = TraceWarningFile::parse(&file, &ExportLimits::default())
        .unwrap()
        .verify(&trusted)
        .unwrap();

    let now = T0 + 9 * 3_600;
    assert_eq!(
        twin.ingest_trace_warnings("twp", &warnings, now).unwrap(),
        1
    );
    assert_eq!(
        alice.ingest_trace_warnings("twp", &warnings, now).unwrap(),
        1
    );
    let [found] = alice.venue_exposures().unwrap().try_into().unwrap();
    assert_eq!(found.check_in_id, again.id, "Bob's report, not her own");
}

macro_rules! conformance {
    ($name:ident, $store:expr) => {
        mod $name {
            use super::*;

            #[test]
            fn keeps_check_ins() {
                check_ins($store);
            }
            #[test]
            fn keeps_venue_exposures_once() {
                venue_exposures($store);
            }
            #[test]
            fn does_not_warn_of_the_users_own_shared_visits() {
                own_visits($store);
            }
            #[test]
            fn purges_check_ins_after_14_days() {
                purge($store);
            }
            #[test]
            fn runs_the_check_in_engine() {
                engine($store);
            }
        }
    };
}

conformance!(memory, MemoryStore::new());
conformance!(sqlite, SqliteStore::open_in_memory().unwrap());

#[test]
fn sqlite_check_ins_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("device.db");
    let id = {
        let mut store = SqliteStore::open(&path).unwrap();
        let id = store.add_check_in(&visit(4, T0, T0 + 600)).unwrap();
        store.set_shared(&[id]).unwrap();
        id
    };
    let store = SqliteStore::open(&path).unwrap();
    let [stored] = store.check_ins().unwrap().try_into().unwrap();
    assert_eq!(
        (stored.id, stored.visit, stored.shared),
        (id, visit(4, T0, T0 + 600), true)
    );
}

#[test]
fn a_day_uploads_its_first_20_visits_and_the_next_day_its_own() {
    let mut phone = ExposureEngine::new(MemoryStore::new()).unwrap();
    let mut rng = StdRng::seed_from_u64(9);
    let visited: Vec<_> = (0..25u8)
        .map(|seed| {
            let arrival = T0 + u64::from(seed) * 1_200;
            phone.check_in(&venue(seed, Some(10)), arrival).unwrap()
        })
        .collect();
    let next_day = phone.check_in(&venue(99, Some(10)), T0 + DAY).unwrap();
    let level = TransmissionRiskLevel::HIGHEST;
    let upload = phone
        .check_ins_to_upload(&mut rng, T0 + DAY + 3_600, level)
        .unwrap();
    assert_eq!(upload.visits(), MAX_CHECK_INS_PER_DAY + 1);
    let reports = upload.reports;
    let sent = |c: &kith_core::checkin::CheckIn| {
        reports.iter().any(|r| r.open(&c.visit.location_id).is_ok())
    };
    assert!(visited[..MAX_CHECK_INS_PER_DAY].iter().all(sent));
    assert!(!visited[MAX_CHECK_INS_PER_DAY..].iter().any(sent));
    assert!(sent(&next_day));
}

#[test]
fn more_visits_than_an_upload_holds_send_the_latest() {
    let mut phone = ExposureEngine::new(MemoryStore::new()).unwrap();
    let mut rng = StdRng::seed_from_u64(10);
    let venues: Vec<_> = (0..=MAX_CHECK_INS_PER_DAY as u8)
        .map(|seed| venue(seed, Some(10)))
        .collect();
    // 21 ten-minute visits, 20 minutes apart, on each of 15 days.
    let visited: Vec<Vec<_>> = (0..15)
        .map(|day| {
            (venues.iter().enumerate())
                .map(|(i, venue)| {
                    let arrival = T0 + day * DAY + i as u64 * 1_200;
                    phone.check_in(venue, arrival).unwrap()
                })
                .collect()
        })
        .collect();
    // Within 14 days: day 0 from its 4th visit (18 count), days 1-13 (20 each), day 14's
    // first 3: 281, one more than an upload holds.
    let now = T0 + 14 * DAY + 3_600;
    let upload = phone
        .check_ins_to_upload(&mut rng, now, TransmissionRiskLevel::HIGHEST)
        .unwrap();
    assert_eq!(
        (upload.visits(), upload.reports.len()),
        (CHECK_INS_PER_UPLOAD, CHECK_INS_PER_UPLOAD),
        "no room left for padding"
    );
    let sent = |c: &kith_core::checkin::CheckIn| {
        upload.reports.iter().any(|r| {
            r.open(&c.visit.location_id)
                .is_ok_and(|w| w.stay.arrival() == c.visit.stay.arrival())
        })
    };
    assert!(!sent(&visited[0][3]), "the oldest gives way");
    assert!(visited[0][4..=MAX_CHECK_INS_PER_DAY - 1].iter().all(sent));
    assert!(visited[13][..MAX_CHECK_INS_PER_DAY].iter().all(sent));
    assert!(visited[14][..3].iter().all(sent));
}
