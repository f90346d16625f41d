//! Matching through the public API: drift tolerance, rolling periods, TX power
//! bounds, duplicates, unrelated keys, and a synthetic device (property test).

use std::collections::BTreeMap;

use kith_core::{
    BluetoothMetadata, DiagnosisKey, IntervalNumber, KeyValidity, Match, MatchedSighting,
    RollingPeriod, Sighting, SightingIndex, TemporaryExposureKey, UnixSeconds,
};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// First interval of 2024-10-04 (day 20 000).
const DAY_START: u32 = 20_000 * 144;

fn key(rng: &mut StdRng, start: u32, period: u32) -> TemporaryExposureKey {
    let validity = KeyValidity::new(
        IntervalNumber::new(start),
        RollingPeriod::new(period).unwrap(),
    )
    .unwrap();
    TemporaryExposureKey::from_bytes(rng.r#gen(), validity)
}

/// The beacon `tek` sent in `sent`, heard by the device in interval `heard`.
fn heard(tek: &TemporaryExposureKey, sent: u32, heard: u32, tx_power: i8) -> Sighting {
    let beacon = tek.beacon(IntervalNumber::new(sent), BluetoothMetadata::v1_0(tx_power));
    let time = UnixSeconds::of_interval(IntervalNumber::new(heard)) + 7;
    Sighting::new(beacon, -70, time, time.get() / 240)
}

fn matches(sightings: &[Sighting], keys: &[TemporaryExposureKey]) -> Vec<Match> {
    let keys = keys.iter().cloned().map(DiagnosisKey::new);
    SightingIndex::new(sightings).matches(keys).collect()
}

/// The matches on all cores (feature `parallel`), or on one without it.
fn par_matches(
    index: &SightingIndex<'_>,
    keys: impl IntoIterator<Item = DiagnosisKey>,
) -> Vec<Match> {
    #[cfg(feature = "parallel")]
    let found = index.par_matches(keys);
    #[cfg(not(feature = "parallel"))]
    let found = index.matches(keys).collect();
    found
}

fn matched_intervals(sightings: &[Sighting], tek: &TemporaryExposureKey) -> Vec<u32> {
    matches(sightings, std::slice::from_ref(tek))
        .iter()
        .flat_map(|m| m.sightings.iter().map(|s| s.interval.get()))
        .collect()
}

#[test]
fn drift_of_twelve_intervals_matches_and_thirteen_does_not() {
    let mut rng = StdRng::seed_from_u64(1);
    let tek = key(&mut rng, DAY_START, 144);
    let first = DAY_START;
    let last = DAY_START + 143;
    for (sent, offset, expected) in [
        (first, -12, true),
        (first, -13, false),
        (last, 12, true),
        (last, 13, false),
        (first + 70, 12, true),
        (first + 70, -12, true),
        (first + 70, 13, false),
        (first + 70, -13, false),
    ] {
        let seen = heard(&tek, sent, sent.checked_add_signed(offset).unwrap(), 0);
        let found = matched_intervals(&[seen], &tek);
        let want = if expected { vec![sent] } else { vec![] };
        assert_eq!(found, want, "RPI of {sent} heard {offset:+} intervals away");
    }
}

#[test]
fn only_the_rolling_period_of_a_short_key_is_matched() {
    let mut rng = StdRng::seed_from_u64(2);
    // A key released early: valid for the first 36 intervals only.
    let tek = key(&mut rng, DAY_START, 36);
    let full_day = tek.with_validity(KeyValidity::day_of(IntervalNumber::new(DAY_START)));
    let inside = heard(&full_day, DAY_START + 35, DAY_START + 35, 0);
    let after = heard(&full_day, DAY_START + 36, DAY_START + 36, 0);
    assert_eq!(
        matched_intervals(&[inside, after], &tek),
        vec![DAY_START + 35]
    );

    // A key starting mid-day (not aligned) spanning midnight.
    let late = key(&mut rng, DAY_START + 130, 30);
    let sightings = [
        heard(&late, DAY_START + 129, DAY_START + 129, 0),
        heard(&late, DAY_START + 130, DAY_START + 131, 0),
        heard(&late, DAY_START + 150, DAY_START + 149, 0),
        heard(&late, DAY_START + 159, DAY_START + 159, 0),
        heard(&late, DAY_START + 160, DAY_START + 160, 0),
    ];
    assert_eq!(
        matched_intervals(&sightings, &late),
        vec![DAY_START + 130, DAY_START + 150, DAY_START + 159]
    );
}

#[test]
fn tx_power_outside_minus_50_to_20_dbm_is_dropped() {
    let mut rng = StdRng::seed_from_u64(3);
    let tek = key(&mut rng, DAY_START, 144);
    for (tx_power, expected) in [
        (-50, true),
        (20, true),
        (-51, false),
        (21, false),
        (0, true),
    ] {
        let seen = heard(&tek, DAY_START + 10, DAY_START + 10, tx_power);
        let found = matches(&[seen], std::slice::from_ref(&tek));
        assert_eq!(found.len(), usize::from(expected), "tx power {tx_power}");
        if expected {
            assert_eq!(found[0].sightings[0].metadata.tx_power(), tx_power);
        }
    }
    // A match keeps only the sightings with plausible power.
    let mixed = [
        heard(&tek, DAY_START + 10, DAY_START + 10, -60),
        heard(&tek, DAY_START + 11, DAY_START + 11, 5),
    ];
    let found = matches(&mixed, std::slice::from_ref(&tek));
    assert_eq!(found[0].sightings.len(), 1);
    assert_eq!(found[0].sightings[0].interval.get(), DAY_START + 11);
}

#[test]
fn a_key_listed_twice_counts_once() {
    let mut rng = StdRng::seed_from_u64(4);
    let tek = key(&mut rng, DAY_START, 144);
    let other = key(&mut rng, DAY_START, 144);
    let sightings = [heard(&tek, DAY_START + 3, DAY_START + 3, 0)];
    let keys = [tek.clone(), other, tek.clone(), tek];
    assert_eq!(matches(&sightings, &keys).len(), 1);
    let index = SightingIndex::new(&sightings);
    let parallel = par_matches(&index, keys.iter().cloned().map(DiagnosisKey::new));
    assert_eq!(parallel.len(), 1);
}

#[test]
fn unrelated_keys_never_match() {
    let mut rng = StdRng::seed_from_u64(5);
    let met: Vec<_> = (0..20)
        .map(|d| key(&mut rng, DAY_START + 144 * (d % 3), 144))
        .collect();
    let sightings: Vec<_> = met
        .iter()
        .flat_map(|k| {
            let s = k.validity().start().get();
            (0..144).map(move |i| heard(k, s + i, s + i, 0))
        })
        .collect();
    let strangers: Vec<_> = (0..20_000)
        .map(|i| key(&mut rng, DAY_START + 144 * (i % 3), 144))
        .collect();
    assert!(matches(&sightings, &strangers).is_empty());
    let index = SightingIndex::new(&sightings);
    assert!(par_matches(&index, strangers.into_iter().map(DiagnosisKey::new)).is_empty());
}

#[test]
fn no_sightings_no_matches() {
    let mut rng = StdRng::seed_from_u64(6);
    assert!(matches(&[], &[key(&mut rng, DAY_START, 144)]).is_empty());
}

/// `Match::new` done plainly: sightings sorted by (time, scan), then each RPI's
/// sightings more than 20 minutes after its first dropped, remembering every
/// interval's first sighting. The reference its shortcuts (no sort of sorted
/// sightings, runs of one interval) are checked against.
fn match_plainly(key: DiagnosisKey, mut sightings: Vec<MatchedSighting>) -> Option<Match> {
    sightings.sort_by_key(|m| (m.sighting.time, m.sighting.scan_id));
    let mut first: Vec<(IntervalNumber, UnixSeconds)> = Vec::new();
    sightings.retain(|m| match first.iter().find(|(i, _)| *i == m.interval) {
        Some(&(_, start)) => m.sighting.time.since(start) <= 1_200,
        None => {
            first.push((m.interval, m.sighting.time));
            true
        }
    });
    (!sightings.is_empty()).then_some(Match { key, sightings })
}

proptest! {
    /// Sightings in time order or not, their intervals in time order (as heard
    /// live, or replayed within each interval) or not (replayed at random), give
    /// the match of the plain reference.
    #[test]
    fn matches_of_sightings_are_sorted_and_replays_dropped(
        heard in prop::collection::vec((0u64..5_000, 0u32..4, 0u64..30), 0..60),
        time_order in any::<bool>(),
        intervals in 0..3,
    ) {
        let mut rng = StdRng::seed_from_u64(1);
        let tek = key(&mut rng, DAY_START, 144);
        let mut sightings: Vec<MatchedSighting> = heard
            .iter()
            .map(|&(offset, drift, scan_id)| {
                let time = UnixSeconds::of_interval(IntervalNumber::new(DAY_START)) + offset;
                let interval = match intervals {
                    0 => time.interval(),
                    // In time order, but one interval heard for 25 minutes: the
                    // last 5 are replays.
                    1 => IntervalNumber::new(DAY_START + (offset / 1_500) as u32),
                    _ => IntervalNumber::new(DAY_START + drift),
                };
                MatchedSighting {
                    sighting: Sighting::new(
                        tek.beacon(interval, BluetoothMetadata::v1_0(-10)),
                        -60,
                        time,
                        scan_id,
                    ),
                    interval,
                    metadata: BluetoothMetadata::v1_0(-10),
                }
            })
            .collect();
        if time_order {
            sightings.sort_by_key(|m| (m.sighting.time, m.sighting.scan_id));
        }
        let key = DiagnosisKey::new(tek);
        prop_assert_eq!(
            Match::new(key.clone(), sightings.clone()),
            match_plainly(key, sightings)
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// A device records the RPIs of random keys at random times (with clock drift
    /// within tolerance); matching finds exactly those keys and those sightings.
    #[test]
    fn finds_exactly_the_recorded_encounters(
        seed in any::<u64>(),
        met in 1usize..12,
        strangers in 0usize..1_500,
    ) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut recorded: BTreeMap<[u8; 16], Vec<u32>> = BTreeMap::new();
        let mut sightings = Vec::new();
        let mut keys = Vec::new();
        for _ in 0..met {
            let start = DAY_START + 144 * rng.gen_range(0..3) + rng.gen_range(0..4) * 36;
            let period = rng.gen_range(1..=144);
            let tek = key(&mut rng, start, period);
            let validity = tek.validity();
            // One clock drift per sender: the same RPI heard again hours later is a
            // replay, which matching drops (R4).
            let drift: i32 = rng.gen_range(-12..=12);
            for _ in 0..rng.gen_range(1..6) {
                let sent = rng.gen_range(validity.range());
                sightings.push(heard(&tek, sent, sent.checked_add_signed(drift).unwrap(), rng.gen_range(-50..=20)));
                recorded.entry(*tek.expose_secret()).or_default().push(sent);
            }
            keys.push(tek);
        }
        for _ in 0..strangers {
            let start = DAY_START + 144 * rng.gen_range(0..3);
            keys.push(key(&mut rng, start, 144));
        }
        // Met keys anywhere in the stream, across matching's batches.
        keys.shuffle(&mut rng);
        let found = matches(&sightings, &keys);
        let position = |tek: &TemporaryExposureKey| keys.iter().position(|k| k == tek);
        let positions: Vec<_> = found.iter().map(|m| position(&m.key.tek)).collect();
        prop_assert!(positions.is_sorted(), "matches in stream order: {:?}", positions);
        let mut got: BTreeMap<[u8; 16], Vec<u32>> = BTreeMap::new();
        for m in &found {
            let mut intervals: Vec<u32> = m.sightings.iter().map(|s| s.interval.get()).collect();
            intervals.sort_unstable();
            got.insert(*m.key.tek.expose_secret(), intervals);
        }
        for intervals in recorded.values_mut() {
            intervals.sort_unstable();
        }
        prop_assert_eq!(&got, &recorded);

        let index = SightingIndex::new(&sightings);
        let parallel = par_matches(&index, keys.into_iter().map(DiagnosisKey::new));
        prop_assert_eq!(parallel, found);
    }
}

#[test]
fn the_index_prints_a_summary_not_its_tables() {
    let mut rng = StdRng::seed_from_u64(8);
    let tek = key(&mut rng, DAY_START, 144);
    let sightings: Vec<_> = (0..144)
        .map(|i| heard(&tek, DAY_START + i, DAY_START + i, 0))
        .collect();
    let printed = format!("{:?}", SightingIndex::new(&sightings));
    assert!(
        printed.starts_with("SightingIndex { sightings: 144,"),
        "{printed}"
    );
    // Each day with the RPIs heard within 2 hours of it.
    let days = format!(
        "[({}, 12), ({}, 144), ({}, 12)]",
        DAY_START / 144 - 1,
        DAY_START / 144,
        DAY_START / 144 + 1
    );
    assert!(
        printed.ends_with(&format!("distinct_rpis_by_day: {days} }}")),
        "{printed}"
    );
}

/// The last UTC day that interval numbers reach (year 83 000) has 111 intervals;
/// matching there must neither overflow nor miss.
#[test]
fn matches_in_the_last_intervals_there_are() {
    let mut rng = StdRng::seed_from_u64(9);
    let tek = key(&mut rng, u32::MAX - 100, 100);
    let last = u32::MAX - 1;
    let sightings = [
        heard(&tek, last, last, 0),
        heard(&tek, last - 99, last - 99, 0),
    ];
    assert_eq!(matched_intervals(&sightings, &tek), vec![last - 99, last]);
    let index = SightingIndex::new(&sightings);
    assert_eq!(par_matches(&index, [DiagnosisKey::new(tek)]).len(), 1);
}
