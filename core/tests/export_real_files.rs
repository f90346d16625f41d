//! Real export files that health authorities and Google published: every one decodes
//! to exactly the keys in its CSV, the signed ones verify with their published keys,
//! and any flipped byte breaks the signature.

mod export_support;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use export_support::{random_keys, real_exports, signed_export, signer, zip_entry, zip_of};
use kith_core::{
    DaysSinceOnset, DiagnosisKey, ECDSA_P256_SHA256_OID, Error, ExportFile, ExportFormatError,
    ExportLimits, ExportTrustError, IntervalNumber, KeyValidity, ReportType, Result, RollingPeriod,
    TemporaryExposureKey, TrustedKeys, VerifyingKey,
};

const SERVER_ZIP: &str = "google_exposure-notifications-server/testExport-2-records-1-of-1.zip";
const SERVER_KEY: &str = "google_exposure-notifications-server/public.pem";
const INTERNALS_ZIP: &str =
    "google_exposure-notifications-internals/app_src_main_res_raw_sample_diagnosis_key_file.zip";
const INTERNALS_KEY: &str = "google_exposure-notifications-internals/public_key_310-v1.pem";
const IMMUNI_BIN: &str = "lombax85_immuniprotobuf/export.bin";
const APP_BIN: &str = "google_exposure-notifications-internals/app_src_main_res_raw_export.bin";

fn parse(path: &Path) -> ExportFile {
    let bytes = fs::read(path).unwrap();
    ExportFile::parse(&bytes, &ExportLimits::default())
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

fn public_key(path: &Path) -> VerifyingKey {
    VerifyingKey::from_public_key_pem(&fs::read_to_string(path).unwrap()).unwrap()
}

fn optional<T: std::str::FromStr>(cell: &str) -> Option<T>
where
    T::Err: std::fmt::Debug,
{
    (!cell.is_empty()).then(|| cell.parse().unwrap())
}

/// The keys of a decoded CSV: empty cells are absent fields (rolling period 144,
/// report type unknown, no days since onset, no transmission risk).
fn csv_keys(csv: &str) -> Vec<DiagnosisKey> {
    let mut lines = csv.lines().filter(|line| !line.starts_with('#'));
    assert_eq!(
        lines.next(),
        Some(
            "key_data_hex,transmission_risk_level,rolling_start_interval_number,rolling_period,report_type,days_since_onset_of_symptoms"
        )
    );
    lines
        .map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            let [key, trl, start, period, report_type, dsos] = cells[..] else {
                panic!("bad CSV line {line:?}");
            };
            let validity = KeyValidity::new(
                IntervalNumber::new(start.parse().unwrap()),
                RollingPeriod::new(optional(period).unwrap_or(144)).unwrap(),
            )
            .unwrap();
            DiagnosisKey {
                tek: TemporaryExposureKey::from_slice(&hex::decode(key).unwrap(), validity)
                    .unwrap(),
                report_type: optional::<i32>(report_type)
                    .map(|number| ReportType::try_from(number).unwrap())
                    .unwrap_or_default(),
                days_since_onset: optional(dsos).map(|days| DaysSinceOnset::new(days).unwrap()),
                transmission_risk_level: optional(trl),
            }
        })
        .collect()
}

#[test]
fn every_real_file_decodes_to_exactly_its_csv() {
    let Some(dir) = real_exports() else { return };
    let mut csvs: Vec<PathBuf> = fs::read_dir(dir.join("decoded"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    csvs.sort();
    let mut decoded = BTreeSet::new();
    for csv_path in csvs {
        let csv = fs::read_to_string(&csv_path).unwrap();
        // "# decoded from ../<dir>/<file>; empty cell = …"
        let source = csv
            .lines()
            .next()
            .and_then(|line| line.strip_prefix("# decoded from ../"))
            .and_then(|rest| rest.split(';').next())
            .unwrap_or_else(|| panic!("{}: no source line", csv_path.display()));
        let export = parse(&dir.join(source)).insecure_skip_verification();
        let keys: Vec<DiagnosisKey> = export.keys().collect::<Result<_>>().unwrap();
        let expected = csv_keys(&csv);
        assert_eq!(keys.len(), expected.len(), "{source}");
        assert_eq!(export.header().key_count(), expected.len(), "{source}");
        for (index, (key, want)) in keys.iter().zip(&expected).enumerate() {
            assert_eq!(key, want, "{source}, key {index}");
        }
        assert_eq!(export.revised_keys().count(), 0, "{source}");
        decoded.insert(source.to_owned());
    }

    // Every real file has a CSV, so none is left untested.
    let mut files = BTreeSet::new();
    for entry in fs::read_dir(&dir).unwrap() {
        let sub = entry.unwrap().path();
        if sub.is_dir() && sub.file_name().unwrap() != "decoded" {
            for file in fs::read_dir(&sub).unwrap() {
                let file = file.unwrap().path();
                if matches!(
                    file.extension().and_then(|e| e.to_str()),
                    Some("zip" | "bin")
                ) {
                    files.insert(
                        file.strip_prefix(&dir)
                            .unwrap()
                            .to_str()
                            .unwrap()
                            .to_owned(),
                    );
                }
            }
        }
    }
    assert_eq!(files.len(), 5);
    assert_eq!(decoded, files);
}

#[test]
fn real_headers_are_read() {
    let Some(dir) = real_exports() else { return };
    let server = parse(&dir.join(SERVER_ZIP));
    let header = server.header();
    assert_eq!(
        (
            header.start_timestamp(),
            header.end_timestamp(),
            header.region()
        ),
        (1_590_159_600, 1_590_246_000, "US")
    );
    assert_eq!((header.batch_num(), header.batch_size()), (1, 1));
    let info = &header.signature_infos()[0];
    assert_eq!(
        (info.key_id(), info.key_version(), info.algorithm()),
        ("some_id", "1", ECDSA_P256_SHA256_OID)
    );
    assert_eq!(server.signatures().len(), 1);
    assert_eq!(server.signatures()[0].info(), info);
    assert_eq!(server.signatures()[0].der().len(), 72);

    // Immuni still carries the retired app_bundle_id (field 1) in its SignatureInfo.
    let immuni = parse(&dir.join(IMMUNI_BIN));
    let header = immuni.header();
    assert_eq!(
        (
            header.start_timestamp(),
            header.end_timestamp(),
            header.region()
        ),
        (1_598_194_804, 1_598_209_206, "222")
    );
    let info = &header.signature_infos()[0];
    assert_eq!((info.key_id(), info.key_version()), ("222", "v2"));

    // An early Google file names only the retired android_package (field 2).
    let app = parse(&dir.join(APP_BIN));
    let info = &app.header().signature_infos()[0];
    assert_eq!(
        (info.key_id(), info.key_version(), info.algorithm()),
        ("", "", "")
    );
    assert_eq!(app.header().key_count(), 110);
}

#[test]
fn published_zips_verify_with_their_public_keys() {
    let Some(dir) = real_exports() else { return };
    let cases = [
        (SERVER_ZIP, SERVER_KEY, "some_id", "1", 2),
        (INTERNALS_ZIP, INTERNALS_KEY, "310", "v1", 140),
    ];
    for (zip, key, id, version, count) in cases {
        let trusted = TrustedKeys::new().with(id, version, public_key(&dir.join(key)));
        let export = parse(&dir.join(zip)).verify(&trusted).unwrap();
        assert_eq!(
            (export.signer().key_id(), export.signer().key_version()),
            (id, version)
        );
        let keys: Vec<DiagnosisKey> = export.keys().collect::<Result<_>>().unwrap();
        assert_eq!(keys.len(), count);
        let unverified: Vec<DiagnosisKey> = parse(&dir.join(zip))
            .insecure_skip_verification()
            .keys()
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(keys, unverified);
    }

    // Each file's key does not verify the other file, under the right names.
    let swapped = [
        (SERVER_ZIP, INTERNALS_KEY, "some_id", "1"),
        (INTERNALS_ZIP, SERVER_KEY, "310", "v1"),
    ];
    for (zip, key, id, version) in swapped {
        let trusted = TrustedKeys::new().with(id, version, public_key(&dir.join(key)));
        assert_eq!(
            parse(&dir.join(zip)).verify(&trusted).unwrap_err(),
            Error::ExportTrust(ExportTrustError::BadSignature {
                key_id: id.into(),
                key_version: version.into()
            })
        );
    }
    // A key we have under other names is not used.
    let trusted =
        TrustedKeys::new().with("ExampleServer", "v1", public_key(&dir.join(INTERNALS_KEY)));
    assert_eq!(
        parse(&dir.join(INTERNALS_ZIP))
            .verify(&trusted)
            .unwrap_err(),
        Error::ExportTrust(ExportTrustError::UnknownSigningKey {
            key_id: "310".into(),
            key_version: "v1".into()
        })
    );
}

#[test]
fn bare_export_bins_are_unsigned() {
    let Some(dir) = real_exports() else { return };
    let trusted = TrustedKeys::new().with("222", "v2", public_key(&dir.join(INTERNALS_KEY)));
    for bin in [IMMUNI_BIN, APP_BIN] {
        let file = parse(&dir.join(bin));
        assert!(file.signatures().is_empty());
        assert_eq!(
            file.verify(&trusted).unwrap_err(),
            Error::ExportTrust(ExportTrustError::Unsigned)
        );
    }
}

/// Flips one bit of every byte of `export.bin` in turn: each altered file must
/// fail, and every one that still parses must fail on its signature.
fn assert_every_flip_fails(zip: &[u8], trusted: &TrustedKeys) -> usize {
    let bin = zip_entry(zip, "export.bin");
    let sig = zip_entry(zip, "export.sig");
    // The unaltered file, rezipped, verifies: the failures below are the flips'.
    let rezipped = zip_of(&bin, &sig);
    ExportFile::parse(&rezipped, &ExportLimits::default())
        .unwrap()
        .verify(trusted)
        .unwrap();
    let mut bad_signatures = 0;
    for index in 0..bin.len() {
        let mut flipped = bin.clone();
        flipped[index] ^= 0x01;
        match ExportFile::parse(&zip_of(&flipped, &sig), &ExportLimits::default()) {
            Ok(file) => {
                let error = file.verify(trusted).unwrap_err();
                assert!(
                    matches!(
                        error,
                        Error::ExportTrust(ExportTrustError::BadSignature { .. })
                    ),
                    "byte {index}: {error}"
                );
                bad_signatures += 1;
            }
            Err(error) => assert!(
                matches!(
                    error,
                    Error::ExportFormat(ExportFormatError::BadHeader)
                        | Error::ExportFormat(ExportFormatError::Malformed { .. })
                ),
                "byte {index}: {error}"
            ),
        }
    }
    bad_signatures
}

#[test]
fn flipping_any_byte_of_a_real_export_bin_breaks_verification() {
    let Some(dir) = real_exports() else { return };
    for (zip, key, id, version) in [
        (SERVER_ZIP, SERVER_KEY, "some_id", "1"),
        (INTERNALS_ZIP, INTERNALS_KEY, "310", "v1"),
    ] {
        let trusted = TrustedKeys::new().with(id, version, public_key(&dir.join(key)));
        let bad_signatures = assert_every_flip_fails(&fs::read(dir.join(zip)).unwrap(), &trusted);
        // Most flips (inside key bytes, timestamps, strings) still parse.
        assert!(
            bad_signatures > 100,
            "{zip}: only {bad_signatures} reached the signature check"
        );
    }
}

#[test]
fn flipping_any_byte_of_our_export_bin_breaks_verification() {
    let signer = signer(11);
    let zip = signed_export(&random_keys(12, 20), &signer);
    let trusted = TrustedKeys::new().with("310", "v1", signer.verifying_key());
    assert!(assert_every_flip_fails(&zip, &trusted) > 300);
}
