//! The matching benchmark's scenario, shared by `benches/matching.rs` and
//! `examples/match_bench.rs`: a 14-day store of 100 000 sightings from 200 keys,
//! and a seeded stream of diagnosis keys of which 50 were met.

use kith_core::{
    BluetoothMetadata, DaysSinceOnset, DiagnosisKey, IntervalNumber, KeyValidity, ReportType,
    Sighting, TemporaryExposureKey, UnixSeconds,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The last day of the store, in days since the Unix epoch (2024-10-04).
pub const LAST_DAY: u32 = 20_000;
/// Days of history kept on the device.
pub const DAYS: u32 = 14;
/// Scans run on a fixed 4-minute grid, so scan id = time / 240.
const SCAN_SECONDS: u64 = 240;

/// A day's key, for one of the 14 days.
fn key_of_day(rng: &mut StdRng, day_offset: u32) -> TemporaryExposureKey {
    let day = LAST_DAY - DAYS + 1 + day_offset;
    let mut bytes = [0u8; 16];
    rng.fill(&mut bytes);
    let validity = KeyValidity::day_of(IntervalNumber::new(day * 144));
    TemporaryExposureKey::from_bytes(bytes, validity)
}

/// The device: `sightings` of `keys` encountered keys, spread over 14 days in
/// encounters of 10 scans × 10 beacons at random times of each key's day.
pub fn device(
    seed: u64,
    keys: usize,
    sightings: usize,
) -> (Vec<TemporaryExposureKey>, Vec<Sighting>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let met: Vec<_> = (0..keys)
        .map(|i| key_of_day(&mut rng, i as u32 % DAYS))
        .collect();
    let per_encounter = 100;
    let mut out = Vec::with_capacity(sightings);
    let mut k = 0;
    while out.len() < sightings {
        let tek = &met[k % keys];
        k += 1;
        let (rpik, aemk) = tek.derive_keys();
        let metadata = BluetoothMetadata::v1_0(rng.gen_range(-20..=10));
        let day_start = tek.validity().start().start_unix_seconds();
        let first_scan = (day_start + rng.gen_range(0..86_400 - 10 * SCAN_SECONDS)) / SCAN_SECONDS;
        for n in 0..per_encounter.min(sightings - out.len()) {
            let scan = first_scan + (n / 10) as u64;
            let time = scan * SCAN_SECONDS + rng.gen_range(0..4);
            let interval = IntervalNumber::from_unix_seconds(time).unwrap();
            let rpi = rpik.rpi(interval);
            out.push(Sighting {
                rpi,
                aem: aemk.encrypt(rpi, metadata),
                rssi: rng.gen_range(-95..=-40),
                time: UnixSeconds::new(time),
                scan_id: scan,
            });
        }
    }
    (met, out)
}

/// `count` diagnosis keys from a seeded generator, the first `met_count` of `met`
/// hidden at random positions among them. Nothing is held in memory.
pub fn diagnosis_keys(
    seed: u64,
    count: usize,
    met: &[TemporaryExposureKey],
    met_count: usize,
) -> impl Iterator<Item = DiagnosisKey> + '_ {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut positions = std::collections::BTreeSet::new();
    while positions.len() < met_count.min(count) {
        positions.insert(rng.gen_range(0..count));
    }
    let positions: Vec<usize> = positions.into_iter().collect();
    let mut next = 0;
    (0..count).map(move |i| {
        let tek = if next < positions.len() && positions[next] == i {
            next += 1;
            met[next - 1].clone()
        } else {
            let day = rng.gen_range(0..DAYS);
            key_of_day(&mut rng, day)
        };
        DiagnosisKey {
            tek,
            report_type: ReportType::ConfirmedTest,
            days_since_onset: DaysSinceOnset::new(0).ok(),
            transmission_risk_level: None,
        }
    })
}
