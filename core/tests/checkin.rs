//! Venue check-in: CWA's published vectors, round trips, refusals, and property tests
//! for every parser.

mod export_support;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use export_support::{zip_entry, zip_of};
use kith_core::checkin::{
    CWA_QR_PREFIX, CheckIn, CheckinError, LocationId, ProtectedReport, Stay, TraceWarningBatch,
    TraceWarningFile, TransmissionRiskLevel, VenueDetails, VenueMatchConfig, VenuePayload,
    VenueType, Visit, match_check_ins, write_trace_warnings,
};
use kith_core::{
    Error, ExportLimits, ExportSigner, ExportTrustError, SigningKey, TrustedKeys, UnixSeconds,
};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_core::{CryptoRng, RngCore};

fn b64(text: &str) -> Vec<u8> {
    STANDARD.decode(text).unwrap()
}

fn location_id(base64: &str) -> LocationId {
    LocationId::from_bytes(b64(base64).try_into().unwrap())
}

/// Check-in QR payloads from CWA's Android tests (`TraceLocationIdTest`, "mock server test
/// data" 1 to 3), with the location ids CWA computes for them, and what the payloads say.
/// The payloads are base64url, as on CWA's posters.
/// Payload, location id (hex), description, address, type, default minutes, event times.
type PayloadVector = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    VenueType,
    u32,
    Option<(u64, u64)>,
);

const CWA_ANDROID_PAYLOADS: [PayloadVector; 3] = [
    (
        "CAESKAgBEhRBcHBsZSBDb21wdXRlciwgSW5jLhoOMTk1OCBGb2hlIFJvYWQadggBEmA4xNrp5hKJoO_yVbXfF1gS8Yc5nURhOIVLG3nUcSg8IPsI2e8JSIhg-FrHUymQ3RR80KUKb1lZjLQkfTUINUP16r6-jFDURwUlCQQi6NXCgI0rQw0a4MrVrKMbF4NzhQMaENXiVYke5XY0HddkDmj-3HYiBwgBEAQYqQE",
        "fc925439f45417a14403b25c95fdc6d8711653f8aa08c0d0967bd30a6348c7fc",
        "Apple Computer, Inc.",
        "1958 Fohe Road",
        VenueType::PermanentFoodService,
        169,
        None,
    ),
    (
        "CAESKQgBEhRXYXN0ZSBNYW5hZ2VtZW50IEluYxoPMzc5IE96Zm9jIE1hbm9yGnYIARJgOMTa6eYSiaDv8lW13xdYEvGHOZ1EYTiFSxt51HEoPCD7CNnvCUiIYPhax1MpkN0UfNClCm9ZWYy0JH01CDVD9eq-voxQ1EcFJQkEIujVwoCNK0MNGuDK1ayjGxeDc4UDGhCUpoAjtgZJPU4suuQZ6dVUIgcIARAIGJ4E",
        "2c4e7a3be61004ed952cc189e85039e01be65f3d82439c8c7fe0f23b12ffa523",
        "Waste Management Inc",
        "379 Ozfoc Manor",
        VenueType::PermanentPublicBuilding,
        542,
        None,
    ),
    (
        "CAESMggBEg9NZXRhbHMgVVNBIEluYy4aETk2NiBEaXZ1ZCBIZWlnaHRzKLD6qYMGMNDZtoMGGnYIARJgOMTa6eYSiaDv8lW13xdYEvGHOZ1EYTiFSxt51HEoPCD7CNnvCUiIYPhax1MpkN0UfNClCm9ZWYy0JH01CDVD9eq-voxQ1EcFJQkEIujVwoCNK0MNGuDK1ayjGxeDc4UDGhD_mjsnT4b74d8M1P4cUflpIgcIARAKGOkJ",
        "7051e04206ef9caf3a3165e82d0fec4cfe7ade770a2e01d9c0e456add760934d",
        "Metals USA Inc.",
        "966 Divud Heights",
        VenueType::TemporaryClubActivity,
        1257,
        Some((1_617_591_600, 1_617_800_400)),
    ),
];

#[test]
fn cwa_poster_payloads_parse_with_cwas_location_ids() {
    for (payload, id, description, address, venue_type, minutes, event) in CWA_ANDROID_PAYLOADS {
        let venue = VenuePayload::from_qr_text(&format!("{CWA_QR_PREFIX}{payload}")).unwrap();
        assert_eq!(hex::encode(venue.location_id().expose_secret()), id);
        let details = venue.details();
        assert_eq!(details.description, description);
        assert_eq!(details.address, address);
        assert_eq!(details.venue_type, venue_type);
        assert_eq!(details.default_check_in_minutes, Some(minutes));
        assert_eq!(
            details.event,
            event.map(|(start, end)| (UnixSeconds::new(start), UnixSeconds::new(end)))
        );
        // Printing the venue again gives the same code, so the same id.
        let again = VenuePayload::from_qr_text(&venue.qr_text(CWA_QR_PREFIX)).unwrap();
        assert_eq!(again.location_id(), venue.location_id());
        assert_eq!(
            venue.qr_text(CWA_QR_PREFIX),
            format!("{CWA_QR_PREFIX}{payload}")
        );
    }
}

/// CWA's iOS test payload (`CheckinQRCodeParserTests.testValidURL`): standard base64, and
/// start and end encoded explicitly as 0 (`28 00 30 00`), which a re-encoding would drop.
/// The id is SHA-256("CWA-GUID" ‖ payload), computed here with Python's hashlib.
#[test]
fn the_id_hashes_the_scanned_bytes_not_a_re_encoding() {
    let text = "https://e.coronawarn.app?v=1#CAESRggBEi1CdXJsaW5ndG9uIENvYXQgRmFjdG9yeSBXYXJlaG91c2UgQ29ycG9yYXRpb24aDzE5OTAgVGlrb2QgUGlrZSgAMAAacQgBElswWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAARzsMSy1xQhFzKTfk5gMn3n+FODdRWGxoNcpPTMrs2Ec9ejLOKkSc6ncbI1cNWlo+LdwB9CbF64UxkAhfb7oDleGhAgd3QGMXeySb/sMUUkwZMgIgcIARAHGNsK";
    let venue = VenuePayload::from_qr_text(text).unwrap();
    assert_eq!(
        hex::encode(venue.location_id().expose_secret()),
        "51fd41d168ae22bec4596753e54c86b4d00aa0bc0071466687cfb31651db854f"
    );
    assert_eq!(
        venue.details().description,
        "Burlington Coat Factory Warehouse Corporation"
    );
    assert_eq!(venue.details().event, None);
    assert_eq!(
        venue.details().venue_type,
        VenueType::PermanentEducationalInstitution
    );
    assert_eq!(venue.details().default_check_in_minutes, Some(1371));
}

/// The example of cwa-documentation's `event_registration.md`, and the same payload in
/// CWA's interoperability pattern `<url>/<vendor>#[extra]/CWA1/<payload>`.
#[test]
fn the_documented_example_and_the_vendor_pattern_parse() {
    let payload = "CAESEwgBEgdGcmlzZXVyGgZCZXJsaW4adggBEmCDAszMTXne1DAA5_YxmhRdd_NZN2VKl9L32Jl9-ZybE4b2eNIrhFOKYU4XAOHq3RPLDxdHTW6ANiO24rCOO4rj06HzcVZy3pel58-L1KSPG-_PneL2BoyZQRz3qlu2hoAaEATXwzyyIshzBHREtsdmc6kiBggBEAUYeA";
    let direct = VenuePayload::from_qr_text(&format!("{CWA_QR_PREFIX}{payload}")).unwrap();
    assert_eq!(direct.details().description, "Friseur");
    assert_eq!(direct.details().address, "Berlin");
    assert_eq!(direct.details().venue_type, VenueType::PermanentCraft);
    assert_eq!(direct.details().default_check_in_minutes, Some(120));
    for text in [
        format!(
            "https://presence-tracing.app/386d0384-8aaa-41b6-93c2-d3399894d0ee#/CWA1/{payload}"
        ),
        format!("https://check-in.pt.app/386d0384#42/CWA1/{payload}"),
        format!("  {CWA_QR_PREFIX}{payload}==\n"),
    ] {
        let venue = VenuePayload::from_qr_text(&text).unwrap();
        assert_eq!(venue.location_id(), direct.location_id(), "{text}");
    }
}

/// CWA's Android `TraceLocationIdTest` ("locationId from qrCodePayloadBase64" 1 and 2):
/// the ids of payloads whose seed is the 4 bytes "1234". The id is over any bytes, but
/// such a QR code is refused, as CWA's `TraceLocationVerifier` refuses it.
#[test]
fn short_seeds_have_ids_but_are_refused() {
    for (payload, id) in [
        (
            "CAESLAgBEhFNeSBCaXJ0aGRheSBQYXJ0eRoLYXQgbXkgcGxhY2Uo04ekATD3h6QBGmUIARJbMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEc7DEstcUIRcyk35OYDJ95/hTg3UVhsaDXKT0zK7NhHPXoyzipEnOp3GyNXDVpaPi3cAfQmxeuFMZAIX2+6A5XhoEMTIzNCIECAEQAg==",
            "jNcJTCajd9Sen6Tbexl2Yb7O3J7ps47b6k4+QMT4xS0=",
        ),
        (
            "CAESIAgBEg1JY2VjcmVhbSBTaG9wGg1NYWluIFN0cmVldCAxGmUIARJbMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEc7DEstcUIRcyk35OYDJ95/hTg3UVhsaDXKT0zK7NhHPXoyzipEnOp3GyNXDVpaPi3cAfQmxeuFMZAIX2+6A5XhoEMTIzNCIGCAEQARgK",
            "GMuCjqNmOdYyrFhyvFNTVEeLaZh+uShgUoY0LYJo4YQ=",
        ),
    ] {
        assert_eq!(LocationId::of_payload(&b64(payload)), location_id(id));
        assert_eq!(
            VenuePayload::from_qr_text(&format!("{CWA_QR_PREFIX}{payload}")).unwrap_err(),
            CheckinError::InvalidLength {
                what: "venue seed",
                expected: 16,
                actual: 4
            }
        );
    }
}

/// CWA's Android `TraceLocationIdTest` ("test trace location hash generation" 1 to 3).
#[test]
fn location_id_hashes_match_cwa() {
    for (id, hash) in [
        (
            "afa27b44d43b02a9fea41d13cedc2e4016cfcf87c5dbf990e593669aa8ce286d",
            "0f37dac11d1b8118ea0b44303400faa5e3b876da9d758058b5ff7dc2e5da8230",
        ),
        (
            "1b02111da7c0799df6ad67deb7b397bdfb07e63da0fdea30fae335762826e34f",
            "394db434a2e9c2ca9f32eed266d30bc037b4314cb3d53249fada68de45450cbb",
        ),
        (
            "14c7a20ed81ebabdc32c8521382c56b851af15ccd8d13c86cd91a0620e78d664",
            "852475fa271a29c67ad85578bb86ff4922dabf9f2b081353e1b5cdf99442889d",
        ),
    ] {
        let id = LocationId::from_bytes(hex::decode(id).unwrap().try_into().unwrap());
        assert_eq!(hex::encode(id.hash().to_bytes()), hash);
    }
}

/// A "random" generator that hands out fixed bytes: the IV of a published vector.
struct FixedBytes(Vec<u8>);

impl RngCore for FixedBytes {
    fn next_u32(&mut self) -> u32 {
        unimplemented!("only fill_bytes is used")
    }
    fn next_u64(&mut self) -> u64 {
        unimplemented!("only fill_bytes is used")
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        dest.copy_from_slice(&self.0[..dest.len()]);
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for FixedBytes {}

/// Protected reports from CWA's iOS `CheckinEncryptionTests` (encrypt/decrypt 1 and 2) and
/// Android `CheckInCryptographyTest` (sample 1 with risk level 8; its MAC is the one that
/// test's `HMAC-SHA256 should work` computes). Intervals are CWA's raw record numbers:
/// the stays run from start × 600 s to end × 600 s.
const CWA_REPORTS: [(&str, &str, u32, u32, u32, &str, &str); 3] = [
    (
        "m686QDEvOYSfRtrRBA8vA58c/6EjjEHp22dTFc+tObY=",
        "+VNLZEr+j6qotkv8v1ASlQ==",
        2_710_445,
        2_710_473,
        7,
        "t5TWYYc/kn4vbWRd677L3g==",
        "BJX/KwAXo3vQBMlycMxNxiwlrNyzWdD2LeF9KCrzt/I=",
    ),
    (
        "A61rMz1EUJnH3+D/dF7FzBMw0UnvdS82w67U7+oT9yU=",
        "SM6n2ApMmwWCEVwex9yrmA==",
        2_710_117,
        2_710_127,
        8,
        "axfEwnDGz7r4c/n65DVDaw==",
        "vfjGr8pJ2F+IhGfHl4Audcrjhhcgr9qJ9hl176S/Il8=",
    ),
    (
        "m686QDEvOYSfRtrRBA8vA58c/6EjjEHp22dTFc+tObY=",
        "+VNLZEr+j6qotkv8v1ASlQ==",
        2_710_445,
        2_710_473,
        8,
        "BhAbnb+eIOYLEodojekFMA==",
        "wMeSFfdY5R0wA8vV7UES1WiUqEDD+jiPZZZJ7xFT8zM=",
    ),
];

/// The protobuf `CheckInProtectedReport` with these fields, written out by hand.
fn report_bytes(hash: &[u8], iv: &[u8], encrypted: &[u8], mac: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for (field, value) in [(1u8, hash), (2, iv), (3, encrypted), (4, mac)] {
        bytes.extend([field << 3 | 2, value.len() as u8]);
        bytes.extend_from_slice(value);
    }
    bytes
}

#[test]
fn protected_reports_match_cwas_vectors() {
    for (id, iv, start, end, level, encrypted, mac) in CWA_REPORTS {
        let id = location_id(id);
        let stay = Stay::new(
            UnixSeconds::new(u64::from(start) * 600),
            UnixSeconds::new(u64::from(end) * 600),
        )
        .unwrap();
        let level = TransmissionRiskLevel::new(level).unwrap();
        let report = ProtectedReport::seal(&mut FixedBytes(b64(iv)), &id, stay, level);
        let expected = report_bytes(&id.hash().to_bytes(), &b64(iv), &b64(encrypted), &b64(mac));
        assert_eq!(report.to_bytes(), expected);

        let read = ProtectedReport::from_bytes(&expected).unwrap();
        let warning = read.open(&id).unwrap();
        assert_eq!(warning.stay, stay);
        assert_eq!(warning.transmission_risk_level, level);
    }
}

#[test]
fn altered_or_foreign_reports_are_refused() {
    let (id, iv, .., encrypted, mac) = CWA_REPORTS[0];
    let id = location_id(id);
    let bytes = report_bytes(&id.hash().to_bytes(), &b64(iv), &b64(encrypted), &b64(mac));
    // Every byte of the IV, the ciphertext and the MAC is covered.
    let covered = 34..bytes.len();
    for at in covered.filter(|at| ![34, 35, 52, 53, 70, 71].contains(at)) {
        let mut tampered = bytes.clone();
        tampered[at] ^= 0x01;
        let report = ProtectedReport::from_bytes(&tampered).unwrap();
        assert_eq!(report.open(&id), Err(CheckinError::BadMac), "byte {at}");
    }
    let other = location_id(CWA_REPORTS[1].0);
    let report = ProtectedReport::from_bytes(&bytes).unwrap();
    assert_eq!(report.open(&other), Err(CheckinError::BadMac));
    // Padding reports open for no venue.
    let padding = ProtectedReport::padding(&mut StdRng::seed_from_u64(1));
    assert_eq!(padding.to_bytes().len(), bytes.len());
    assert_eq!(padding.open(&id), Err(CheckinError::BadMac));
    // Field lengths are checked.
    let short = report_bytes(&[0; 31], &b64(iv), &b64(encrypted), &b64(mac));
    assert_eq!(
        ProtectedReport::from_bytes(&short),
        Err(CheckinError::InvalidLength {
            what: "location id hash",
            expected: 32,
            actual: 31
        })
    );
}

fn cafe(seed: u8) -> VenuePayload {
    VenuePayload::with_seed(
        VenueDetails {
            description: "Café Kith".into(),
            address: "Main Street 1".into(),
            event: None,
            venue_type: VenueType::PermanentFoodService,
            default_check_in_minutes: Some(90),
        },
        &[seed; 16],
    )
    .unwrap()
}

fn check_in(
    id: u64,
    venue: &VenuePayload,
    arrival: UnixSeconds,
    departure: UnixSeconds,
) -> CheckIn {
    CheckIn {
        id,
        visit: Visit {
            location_id: venue.location_id().clone(),
            description: venue.details().description.clone(),
            address: venue.details().address.clone(),
            stay: Stay::new(arrival, departure).unwrap(),
        },
        shared: false,
    }
}

const T0: UnixSeconds = UnixSeconds::new(1_700_000_400); // a multiple of 600

fn signer(seed: u64, version: &str) -> ExportSigner {
    ExportSigner::new(
        "262",
        version,
        SigningKey::generate(&mut StdRng::seed_from_u64(seed)),
    )
}

fn package(reports: &[ProtectedReport], signer: &ExportSigner) -> Vec<u8> {
    let batch = TraceWarningBatch {
        region: "DE",
        hour: 472_223,
        reports,
    };
    write_trace_warnings(&batch, &[signer]).unwrap()
}

#[test]
fn overlapping_visitors_are_warned_with_the_time_together() {
    let mut rng = StdRng::seed_from_u64(7);
    let venue = cafe(1);
    let other_venue = cafe(2);
    assert_ne!(venue.location_id(), other_venue.location_id());
    // The positive visitor was there from T0 for an hour.
    let positive = Stay::new(T0, T0 + 3_600).unwrap();
    let level = TransmissionRiskLevel::new(6).unwrap();
    let mut reports = vec![ProtectedReport::seal(
        &mut rng,
        venue.location_id(),
        positive,
        level,
    )];
    reports.extend((0..5).map(|_| ProtectedReport::padding(&mut rng)));

    let signer = signer(1, "v1");
    let file = package(&reports, &signer);
    assert_eq!(file, package(&reports, &signer), "deterministic");
    let trusted = TrustedKeys::new().with("262", "v1", signer.verifying_key());
    let warnings = TraceWarningFile::parse(&file, &ExportLimits::default())
        .unwrap()
        .verify(&trusted)
        .unwrap();
    assert_eq!((warnings.hour(), warnings.region()), (472_223, "DE"));
    assert_eq!(warnings.reports().len(), 6);

    let check_ins = [
        check_in(1, &venue, T0 + 1_800, T0 + 7_200), // 30 min together
        check_in(2, &venue, T0 + 3_000, T0 + 7_200), // 10 min: below 15
        check_in(3, &venue, T0 + 3_600, T0 + 7_200), // arrived as she left
        check_in(4, &other_venue, T0, T0 + 3_600),   // same time, another place
        check_in(5, &venue, T0 - 3_600, T0 + 4_000), // the whole hour
    ];
    let config = VenueMatchConfig::default();
    let exposures = match_check_ins(&check_ins, warnings.reports(), &config);
    let found: Vec<_> = exposures
        .iter()
        .map(|e| {
            (
                e.check_in_id,
                e.overlap_minutes,
                e.overlap.arrival(),
                e.overlap.departure(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [(1, 30, T0 + 1_800, T0 + 3_600), (5, 60, T0, T0 + 3_600)]
    );
    assert_eq!(exposures[0].transmission_risk_level, level);
    assert_eq!(exposures[0].description, "Café Kith");
    // The threshold is configurable.
    let strict = match_check_ins(
        &check_ins,
        warnings.reports(),
        &VenueMatchConfig {
            min_overlap_minutes: 45,
        },
    );
    assert_eq!(strict.len(), 1);
    let lenient = match_check_ins(
        &check_ins,
        warnings.reports(),
        &VenueMatchConfig {
            min_overlap_minutes: 10,
        },
    );
    assert_eq!(lenient.len(), 3);
}

#[test]
fn packages_from_other_signers_or_altered_are_refused() {
    let mut rng = StdRng::seed_from_u64(8);
    let venue = cafe(3);
    let stay = Stay::new(T0, T0 + 600).unwrap();
    let report = ProtectedReport::seal(
        &mut rng,
        venue.location_id(),
        stay,
        TransmissionRiskLevel::HIGHEST,
    );
    let signer = signer(2, "v1");
    let file = package(&[report], &signer);
    let parse = |bytes: &[u8]| TraceWarningFile::parse(bytes, &ExportLimits::default()).unwrap();

    // A trusted id and version, but another key: the signature does not verify.
    let impostor = TrustedKeys::new().with("262", "v1", self::signer(3, "v1").verifying_key());
    assert_eq!(
        parse(&file).verify(&impostor).unwrap_err(),
        Error::ExportTrust(ExportTrustError::BadSignature {
            key_id: "262".into(),
            key_version: "v1".into()
        })
    );
    // Only keys of other names are trusted.
    let others = TrustedKeys::new().with("262", "v2", signer.verifying_key());
    assert_eq!(
        parse(&file).verify(&others).unwrap_err(),
        Error::ExportTrust(ExportTrustError::UnknownSigningKey {
            key_id: "262".into(),
            key_version: "v1".into()
        })
    );
    // One byte of the package changed, the signature kept.
    let trusted = TrustedKeys::new().with("262", "v1", signer.verifying_key());
    let mut bin = zip_entry(&file, "export.bin");
    let last = bin.len() - 1;
    bin[last] ^= 1;
    let altered = zip_of(&bin, &zip_entry(&file, "export.sig"));
    assert_eq!(
        parse(&altered).verify(&trusted).unwrap_err(),
        Error::ExportTrust(ExportTrustError::BadSignature {
            key_id: "262".into(),
            key_version: "v1".into()
        })
    );
    // No signature at all.
    let unsigned = zip_of(&zip_entry(&file, "export.bin"), &[]);
    assert_eq!(
        parse(&unsigned).verify(&trusted).unwrap_err(),
        Error::ExportTrust(ExportTrustError::Unsigned)
    );
    // The untouched file verifies.
    assert_eq!(parse(&file).verify(&trusted).unwrap().reports().len(), 1);
}

#[test]
fn bad_qr_texts_get_clear_errors() {
    let venue = cafe(4);
    let good = venue.qr_text(CWA_QR_PREFIX);
    let cases = [
        ("", CheckinError::NotAVenueCode),
        ("hello", CheckinError::NotAVenueCode),
        ("https://example.org/menu", CheckinError::NotAVenueCode),
        (
            "ftp://e.coronawarn.app?v=1#CAES",
            CheckinError::NotAVenueCode,
        ),
        ("https://e.coronawarn.app?v=1#", CheckinError::NotAVenueCode),
        (
            "https://e.coronawarn.app?v=1#*not base64*",
            CheckinError::PayloadNotBase64,
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(
            VenuePayload::from_qr_text(text).unwrap_err(),
            expected,
            "{text:?}"
        );
    }
    assert!(matches!(
        VenuePayload::from_qr_text(&format!("{good}AAAA")),
        Err(CheckinError::Malformed { .. })
    ));
    let long = VenueDetails {
        description: "x".repeat(101),
        address: "Main Street 1".into(),
        ..VenueDetails::default()
    };
    assert_eq!(
        VenuePayload::with_seed(long, &[0; 16]).unwrap_err(),
        CheckinError::InvalidText {
            field: "description",
            chars: 101
        }
    );
    let two_lines = VenueDetails {
        description: "Café".into(),
        address: "Main Street 1\nBerlin".into(),
        ..VenueDetails::default()
    };
    assert!(matches!(
        VenuePayload::with_seed(two_lines, &[0; 16]),
        Err(CheckinError::InvalidText {
            field: "address",
            ..
        })
    ));
    let backwards = VenueDetails {
        description: "Concert".into(),
        address: "Hall".into(),
        event: Some((T0, T0 - 1)),
        ..VenueDetails::default()
    };
    assert_eq!(
        VenuePayload::with_seed(backwards, &[0; 16]).unwrap_err(),
        CheckinError::InvalidEventTimes {
            start: T0.get(),
            end: T0.get() - 1
        }
    );
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let venue = cafe(5);
    let id_hex = hex::encode(venue.location_id().expose_secret());
    for printed in [
        format!("{venue:?}"),
        format!("{:?}", venue.location_id()),
        format!("{:?}", check_in(1, &venue, T0, T0 + 60)),
    ] {
        assert!(!printed.contains(&id_hex), "{printed}");
        assert!(!printed.contains("[5, 5, 5"), "{printed}");
    }
    assert!(format!("{venue:?}").contains("Café Kith"));
}

#[test]
fn stays_and_levels_are_checked() {
    assert!(Stay::new(T0, T0).is_err());
    assert!(Stay::new(T0, T0 - 1).is_err());
    assert!(Stay::new(T0, T0 + 86_401).is_err());
    assert!(Stay::new(T0, T0 + 86_400).is_ok());
    assert_eq!(
        TransmissionRiskLevel::new(0),
        Err(CheckinError::InvalidTransmissionRiskLevel(0))
    );
    assert!(TransmissionRiskLevel::new(9).is_err());
    // A day-long stay that starts inside an interval still opens: it is cut to 144 intervals.
    let venue = cafe(6);
    let stay = Stay::new(T0 + 300, T0 + 300 + 86_400).unwrap();
    let report = ProtectedReport::seal(
        &mut StdRng::seed_from_u64(2),
        venue.location_id(),
        stay,
        TransmissionRiskLevel::HIGHEST,
    );
    let warning = report.open(venue.location_id()).unwrap();
    assert_eq!(
        (warning.stay.arrival(), warning.stay.departure()),
        (T0, T0 + 86_400)
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn qr_text_never_panics(text in ".{0,300}") {
        let _ = VenuePayload::from_qr_text(&text);
        let _ = VenuePayload::from_qr_text(&format!("{CWA_QR_PREFIX}{text}"));
    }

    #[test]
    fn payload_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = VenuePayload::from_payload_bytes(&bytes);
    }

    #[test]
    fn mutated_payloads_never_panic(at in 0usize..200, byte in any::<u8>()) {
        let mut bytes = cafe(7).payload_bytes().to_vec();
        let at = at % bytes.len();
        bytes[at] = byte;
        if let Ok(venue) = VenuePayload::from_payload_bytes(&bytes) {
            // Whatever parses prints back to the same bytes, so to the same id.
            let again = VenuePayload::from_qr_text(&venue.qr_text(CWA_QR_PREFIX)).unwrap();
            prop_assert_eq!(again.payload_bytes(), bytes.as_slice());
        }
    }

    #[test]
    fn venues_round_trip(
        description in "[^\r\n]{1,100}",
        address in "[^\r\n]{1,100}",
        minutes in proptest::option::of(1u32..10_000),
        seed in any::<[u8; 16]>(),
    ) {
        let details = VenueDetails {
            description,
            address,
            event: None,
            venue_type: VenueType::TemporaryPrivateEvent,
            default_check_in_minutes: minutes,
        };
        let venue = VenuePayload::with_seed(details.clone(), &seed).unwrap();
        let read = VenuePayload::from_qr_text(&venue.qr_text("https://kith.example/v#")).unwrap();
        prop_assert_eq!(read.details(), &details);
        prop_assert_eq!(read.location_id(), venue.location_id());
    }

    #[test]
    fn report_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(report) = ProtectedReport::from_bytes(&bytes) {
            let _ = report.open(cafe(8).location_id());
        }
    }

    #[test]
    fn reports_open_to_what_was_sealed(
        arrival in 0u64..4_000_000_000,
        length in 1u64..=86_400,
        level in 1u32..=8,
        seed in any::<u64>(),
    ) {
        let venue = cafe(9);
        let arrival = UnixSeconds::new(arrival);
        let stay = Stay::new(arrival, arrival + length).unwrap();
        let level = TransmissionRiskLevel::new(level).unwrap();
        let report = ProtectedReport::seal(&mut StdRng::seed_from_u64(seed), venue.location_id(), stay, level);
        let read = ProtectedReport::from_bytes(&report.to_bytes()).unwrap();
        let warning = read.open(venue.location_id()).unwrap();
        // Widened to whole intervals, never narrower than the visit except a day's cut.
        prop_assert_eq!(warning.stay.arrival(), UnixSeconds::new(arrival.get() / 600 * 600));
        prop_assert!(warning.stay.departure() >= (arrival + length).min(warning.stay.arrival() + 86_400));
        prop_assert_eq!(warning.transmission_risk_level, level);
    }

    #[test]
    fn package_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
        let trusted = TrustedKeys::new().with("262", "v1", signer(1, "v1").verifying_key());
        if let Ok(file) = TraceWarningFile::parse(&bytes, &ExportLimits::default()) {
            let _ = file.verify(&trusted);
        }
        let zipped = zip_of(&bytes, &[]);
        if let Ok(file) = TraceWarningFile::parse(&zipped, &ExportLimits::default()) {
            prop_assert!(file.verify(&trusted).is_err());
        }
    }
}
