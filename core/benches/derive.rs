//! Key derivation: the per-key cost that bounds matching speed.
//!
//! `cargo bench -p kith-core --bench derive`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use kith_core::{IntervalNumber, KeyValidity, Rpi, TemporaryExposureKey};

fn derive(c: &mut Criterion) {
    let validity = KeyValidity::day_of(IntervalNumber::new(2_642_976));
    let tek = TemporaryExposureKey::from_bytes(*b"0123456789abcdef", validity);
    let mut rpis = [Rpi::from_bytes([0; 16]); 144];

    c.bench_function("rpik", |b| b.iter(|| black_box(&tek).rpi_key()));
    c.bench_function("rpik+aemk", |b| b.iter(|| black_box(&tek).derive_keys()));
    c.bench_function("144 rpis from tek", |b| {
        b.iter(|| {
            black_box(&tek)
                .rpi_key()
                .rpis_into(validity.start(), &mut rpis);
            black_box(&rpis);
        })
    });
    let rpik = tek.rpi_key();
    c.bench_function("144 rpis from rpik", |b| {
        b.iter(|| {
            black_box(&rpik).rpis_into(validity.start(), &mut rpis);
            black_box(&rpis);
        })
    });
}

criterion_group!(benches, derive);
criterion_main!(benches);
