//! Writing + signing and reading + verifying an export of 500 000 keys, the largest
//! file Google's key server writes. Goal: each under 0.5 s on one core.
//!
//! `cargo bench -p kith-core --bench export`

use criterion::{Criterion, criterion_group, criterion_main};
use kith_core::{
    DaysSinceOnset, DiagnosisKey, ExportBatch, ExportFile, ExportLimits, ExportSigner,
    IntervalNumber, KeyValidity, ReportType, RollingPeriod, SigningKey, TemporaryExposureKey,
    TrustedKeys, write_export,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const KEYS: usize = 500_000;

/// Keys as a day's batch looks: 14 days of keys, full days, all metadata given.
fn keys(rng: &mut StdRng) -> Vec<DiagnosisKey> {
    (0..KEYS)
        .map(|i| {
            let start = IntervalNumber::new(2_650_032 + 144 * (i as u32 % 14));
            DiagnosisKey {
                tek: TemporaryExposureKey::from_bytes(
                    rng.r#gen(),
                    KeyValidity::new(start, RollingPeriod::FULL_DAY).unwrap(),
                ),
                report_type: ReportType::ConfirmedTest,
                days_since_onset: Some(DaysSinceOnset::new(rng.gen_range(-14..=14)).unwrap()),
                transmission_risk_level: Some(rng.gen_range(0..=8)),
            }
        })
        .collect()
}

fn export(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(1);
    let keys = keys(&mut rng);
    let signer = ExportSigner::new("310", "v1", SigningKey::generate(&mut rng));
    let batch = ExportBatch {
        region: "US",
        start_timestamp: 1_600_000_000,
        end_timestamp: 1_600_003_600,
        keys: &keys,
        revised_keys: &[],
    };
    let zip = write_export(&batch, &[&signer]).unwrap();
    let trusted = TrustedKeys::new().with("310", "v1", signer.verifying_key());
    println!(
        "export of {KEYS} keys: {} bytes zipped, {} bytes of export.bin",
        zip.len(),
        ExportFile::parse(&zip, &ExportLimits::default())
            .unwrap()
            .export_bin()
            .len()
    );

    let mut group = c.benchmark_group("export_500k");
    group.sample_size(10);
    group.bench_function("write_and_sign", |b| {
        b.iter(|| write_export(&batch, &[&signer]).unwrap())
    });
    group.bench_function("read_and_verify", |b| {
        b.iter(|| {
            let export = ExportFile::parse(&zip, &ExportLimits::default())
                .unwrap()
                .verify(&trusted)
                .unwrap();
            export.keys().filter(Result::is_ok).count()
        })
    });
    group.finish();
}

criterion_group!(benches, export);
criterion_main!(benches);
