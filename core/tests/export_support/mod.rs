//! Helpers shared by the export integration tests.
#![allow(dead_code)] // each test file uses a different subset

use std::io::{Cursor, Read, Write};
use std::path::PathBuf;

use kith_core::{
    DaysSinceOnset, DiagnosisKey, ExportBatch, ExportSigner, IntervalNumber, KeyValidity,
    ReportType, RollingPeriod, SigningKey, TemporaryExposureKey, write_export,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use zip::write::SimpleFileOptions;

/// The real export files of the GAEN reference material (`../shared/gaen/real_exports`), or
/// `None` after skipping where it is absent.
pub fn real_exports() -> Option<PathBuf> {
    kith_test_support::shared_gaen("real_exports")
}

/// A signer made from a fixed seed.
pub fn signer(seed: u64) -> ExportSigner {
    ExportSigner::new(
        "310",
        "v1",
        SigningKey::generate(&mut StdRng::seed_from_u64(seed)),
    )
}

/// `count` random diagnosis keys with every field exercised, absent values included.
pub fn random_keys(seed: u64, count: usize) -> Vec<DiagnosisKey> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..count)
        .map(|i| {
            let start = IntervalNumber::new(2_650_032 + 144 * (i as u32 % 14));
            let period = if rng.gen_bool(0.8) {
                144
            } else {
                rng.gen_range(1..144)
            };
            let validity = KeyValidity::new(start, RollingPeriod::new(period).unwrap()).unwrap();
            DiagnosisKey {
                tek: TemporaryExposureKey::from_bytes(rng.r#gen(), validity),
                report_type: ReportType::try_from(rng.gen_range(0..=5)).unwrap(),
                days_since_onset: rng
                    .gen_bool(0.8)
                    .then(|| DaysSinceOnset::new(rng.gen_range(-14..=14)).unwrap()),
                transmission_risk_level: rng.gen_bool(0.7).then(|| rng.gen_range(0..=8)),
            }
        })
        .collect()
}

/// A signed export of `keys`.
pub fn signed_export(keys: &[DiagnosisKey], signer: &ExportSigner) -> Vec<u8> {
    let batch = ExportBatch {
        region: "US",
        start_timestamp: 1_600_000_000,
        end_timestamp: 1_600_003_600,
        keys,
        revised_keys: &[],
    };
    write_export(&batch, &[signer]).unwrap()
}

/// The raw content of one zip entry.
pub fn zip_entry(zip: &[u8], name: &str) -> Vec<u8> {
    let mut archive = zip::ZipArchive::new(Cursor::new(zip)).unwrap();
    let mut content = Vec::new();
    archive
        .by_name(name)
        .unwrap()
        .read_to_end(&mut content)
        .unwrap();
    content
}

/// A stored (uncompressed) zip of `export.bin` and `export.sig`.
pub fn zip_of(bin: &[u8], sig: &[u8]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, content) in [("export.bin", bin), ("export.sig", sig)] {
        zip.start_file(name, options).unwrap();
        zip.write_all(content).unwrap();
    }
    zip.finish().unwrap().into_inner()
}
