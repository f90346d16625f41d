//! Criterion benchmarks of matching on the scenario of `examples/match_bench.rs` (which
//! measures the whole 1 000 000-key run); key derivation alone is in `derive.rs`.
//!
//! `cargo bench -p kith-core --bench matching`

mod support {
    pub mod scenario;
}

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use kith_core::{DiagnosisKey, SightingIndex};
use support::scenario;

fn bench(c: &mut Criterion) {
    let (met, sightings) = scenario::device(1, 200, 100_000);
    let keys: Vec<DiagnosisKey> = scenario::diagnosis_keys(2, 10_000, &met, 0).collect();

    let mut matching = c.benchmark_group("matching");
    matching.sample_size(20);
    matching.throughput(Throughput::Elements(sightings.len() as u64));
    matching.bench_function("index 100k sightings", |b| {
        b.iter(|| SightingIndex::new(&sightings))
    });
    let index = SightingIndex::new(&sightings);
    matching.throughput(Throughput::Elements(keys.len() as u64));
    matching.bench_function("10k keys, 1 core", |b| {
        b.iter_batched(
            || keys.clone(),
            |keys| index.matches(keys).count(),
            BatchSize::LargeInput,
        )
    });
    matching.bench_function("10k keys, all cores", |b| {
        b.iter_batched(
            || keys.clone(),
            |keys| index.par_matches(keys).len(),
            BatchSize::LargeInput,
        )
    });
    matching.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
