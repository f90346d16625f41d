//! Matching: which of the downloaded diagnosis keys did this device hear?
//!
//! A device keeps a few thousand sightings a day; a country publishes up to millions
//! of keys. For each key, matching derives the RPIs of only those intervals that
//! have sightings within the clock-drift tolerance, and looks them up in an index of
//! the sightings built once per run:
//!
//! ```text
//!   sightings ──▶ SightingIndex: per UTC day ─┬─ which intervals need deriving (±12)
//!                                            ├─ a 3-bit blocked Bloom filter of the RPIs (fits L1/L2)
//!                                            └─ (RPI, sighting) sorted, for the exact check
//!   keys (stream) ──▶ RPIK ──▶ RPIs of needed runs ──▶ filter ──▶ exact check ──▶ AEMK, metadata ──▶ Match
//! ```
//!
//! Keys are consumed as a stream, so a million keys never sit in memory at once;
//! [`SightingIndex::par_matches`] spreads chunks of them over all cores.

use std::collections::HashSet;
use std::ops::RangeInclusive;

use crate::diagnosis::DiagnosisKey;
use crate::identifiers::Rpi;
use crate::interval::{INTERVALS_PER_DAY, IntervalNumber};
use crate::keys::{KEY_LEN, RpiKey};
use crate::metadata::BluetoothMetadata;
use crate::sighting::Sighting;

/// Clock drift allowed between sender and receiver: an RPI of interval `j` matches a
/// sighting in interval `i` when `|i − j| ≤ 12` (2 hours).
pub const DRIFT_TOLERANCE_INTERVALS: u32 = 12;

/// Plausible transmit powers (dBm); sightings whose decrypted metadata claims another
/// power are dropped, as GAEN does, since they cannot yield a sane attenuation.
pub const TX_POWER_RANGE: RangeInclusive<i8> = -50..=20;

const DAY: u32 = INTERVALS_PER_DAY;
/// `needed` bits per day, in u64 words (144 bits).
const NEEDED_WORDS: usize = (DAY as usize).div_ceil(64);

/// One sighting that belongs to a diagnosis key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatchedSighting {
    /// What the device recorded.
    pub sighting: Sighting,
    /// The key's interval whose RPI was heard (the sender's clock).
    pub interval: IntervalNumber,
    /// The sender's metadata, decrypted with the key's AEMK.
    pub metadata: BluetoothMetadata,
}

/// A diagnosis key this device heard, with every sighting of it, in time order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Match {
    /// The published key.
    pub key: DiagnosisKey,
    /// Its sightings (never empty), sorted by time.
    pub sightings: Vec<MatchedSighting>,
}

/// The sightings of one UTC day (± the drift tolerance), indexed for look-up.
#[derive(Debug)]
struct DayIndex {
    day: u32,
    /// Bit `k`: interval `day·144 + k` has a sighting within the tolerance.
    needed: [u64; NEEDED_WORDS],
    /// Blocked Bloom filter over the RPIs, three bits per RPI in one word.
    filter: Vec<u64>,
    /// `filter.len() - 1` (the length is a power of two).
    filter_mask: usize,
    /// (RPI, index into the sightings), sorted by RPI, for the exact check.
    entries: Vec<(Rpi, u32)>,
}

impl DayIndex {
    fn new(day: u32) -> Self {
        Self {
            day,
            needed: [0; NEEDED_WORDS],
            filter: Vec::new(),
            filter_mask: 0,
            entries: Vec::new(),
        }
    }

    /// RPIs are AES output, so their bytes serve as hash values directly.
    #[inline]
    fn filter_slot(&self, rpi: &Rpi) -> (usize, u64) {
        let b = rpi.as_bytes();
        let h = u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
        let word = h as usize & self.filter_mask;
        let bits = (1u64 << ((h >> 32) & 63)) | (1u64 << ((h >> 40) & 63)) | (1u64 << (h >> 58));
        (word, bits)
    }

    #[inline]
    fn may_contain(&self, rpi: &Rpi) -> bool {
        let (word, bits) = self.filter_slot(rpi);
        self.filter[word] & bits == bits
    }

    fn build_filter(&mut self) {
        self.entries.sort_unstable();
        // Sized by distinct RPIs (a beacon is heard many times), so the filters of
        // all 14 days stay in L2 cache.
        let distinct = 1 + self.entries.windows(2).filter(|w| w[0].0 != w[1].0).count();
        // 64 to 128 filter bits per RPI: ~0.01 % false positives (each costs a binary
        // search that misses the cache), a few KiB per day.
        let words = distinct.next_power_of_two().max(64);
        self.filter = vec![0; words];
        self.filter_mask = words - 1;
        for i in 0..self.entries.len() {
            let (word, bits) = self.filter_slot(&self.entries[i].0);
            self.filter[word] |= bits;
        }
    }

    /// Maximal runs `[a, b)` of needed intervals within `[lo, hi)` (day-relative).
    fn needed_runs(&self, lo: u32, hi: u32) -> impl Iterator<Item = (u32, u32)> + '_ {
        let mut pos = lo;
        std::iter::from_fn(move || {
            let start = self.next_bit(pos, hi, true)?;
            let end = self.next_bit(start, hi, false).unwrap_or(hi);
            pos = end;
            Some((start, end))
        })
    }

    /// First position in `[from, hi)` whose needed bit equals `set`.
    fn next_bit(&self, from: u32, hi: u32, set: bool) -> Option<u32> {
        let mut pos = from;
        while pos < hi {
            let word = self.needed[(pos / 64) as usize];
            let word = if set { word } else { !word };
            let bits = word >> (pos % 64);
            if bits != 0 {
                let found = pos + bits.trailing_zeros();
                return (found < hi).then_some(found);
            }
            pos = (pos / 64 + 1) * 64;
        }
        None
    }
}

/// The device's sightings, indexed once per matching run.
///
/// ```
/// use kith_core::{
///     BluetoothMetadata, DiagnosisKey, IntervalNumber, Sighting, SightingIndex,
///     TemporaryExposureKey, OsRng,
/// };
///
/// let now = IntervalNumber::new(2_650_000);
/// let met = TemporaryExposureKey::generate(&mut OsRng, now);
/// let sightings = [Sighting::new(
///     met.beacon(now, BluetoothMetadata::v1_0(-10)),
///     -60,
///     now.start_unix_seconds() + 30,
///     1,
/// )];
/// let stranger = TemporaryExposureKey::generate(&mut OsRng, now);
///
/// let index = SightingIndex::new(&sightings);
/// let keys = [DiagnosisKey::new(stranger), DiagnosisKey::new(met.clone())];
/// let matches: Vec<_> = index.matches(keys).collect();
/// assert_eq!(matches.len(), 1);
/// assert_eq!(matches[0].key.tek, met);
/// assert_eq!(matches[0].sightings[0].metadata.tx_power(), -10);
/// ```
#[derive(Debug)]
pub struct SightingIndex<'a> {
    sightings: &'a [Sighting],
    /// Sorted by day.
    days: Vec<DayIndex>,
}

impl<'a> SightingIndex<'a> {
    /// Indexes `sightings` (in any order).
    pub fn new(sightings: &'a [Sighting]) -> Self {
        let mut days: Vec<DayIndex> = Vec::new();
        let mut distinct_intervals = Vec::with_capacity(sightings.len());
        for (index, sighting) in sightings.iter().enumerate() {
            let i = sighting.interval().get();
            distinct_intervals.push(i);
            let index = u32::try_from(index).expect("fewer than 2^32 sightings");
            // Every day holding an interval j with |i − j| ≤ tolerance (at most two).
            let first_day = i.saturating_sub(DRIFT_TOLERANCE_INTERVALS) / DAY;
            let last_day = i.saturating_add(DRIFT_TOLERANCE_INTERVALS) / DAY;
            for day in first_day..=last_day {
                let d = day_slot(&mut days, day);
                days[d].entries.push((sighting.rpi, index));
            }
        }
        distinct_intervals.sort_unstable();
        distinct_intervals.dedup();
        for i in distinct_intervals {
            let lo = i.saturating_sub(DRIFT_TOLERANCE_INTERVALS);
            let hi = i.saturating_add(DRIFT_TOLERANCE_INTERVALS);
            for j in lo..=hi {
                let d = day_slot(&mut days, j / DAY);
                let k = j % DAY;
                days[d].needed[(k / 64) as usize] |= 1 << (k % 64);
            }
        }
        for day in &mut days {
            day.build_filter();
        }
        Self { sightings, days }
    }

    /// The indexed sightings.
    pub fn sightings(&self) -> &'a [Sighting] {
        self.sightings
    }

    fn day(&self, day: u32) -> Option<&DayIndex> {
        self.days
            .binary_search_by_key(&day, |d| d.day)
            .ok()
            .map(|i| &self.days[i])
    }

    /// The match for one key, if the device heard it.
    ///
    /// Derives the RPIK only when the key's validity has sightings nearby, and the
    /// AEMK only when an RPI was found.
    pub fn match_key(&self, key: &DiagnosisKey) -> Option<Match> {
        self.match_key_with(key, &mut [Rpi::from_bytes([0; 16]); DAY as usize])
    }

    /// [`match_key`](Self::match_key) with a reusable buffer for the derived RPIs.
    fn match_key_with(&self, key: &DiagnosisKey, rpis: &mut [Rpi; DAY as usize]) -> Option<Match> {
        let validity = key.tek.validity();
        let (start, end) = (validity.start().get(), validity.end().get());
        let mut rpik: Option<RpiKey> = None;
        let mut candidates: Vec<(u32, Rpi, &DayIndex)> = Vec::new();
        for day in start / DAY..=(end - 1) / DAY {
            let Some(index) = self.day(day) else { continue };
            let base = day * DAY;
            let lo = start.max(base) - base;
            let hi = (end - base).min(DAY);
            for (a, b) in index.needed_runs(lo, hi) {
                let rpik = rpik.get_or_insert_with(|| key.tek.rpi_key());
                let out = &mut rpis[..(b - a) as usize];
                rpik.rpis_into(IntervalNumber::new(base + a), out);
                for (offset, rpi) in (base + a..).zip(out.iter()) {
                    if index.may_contain(rpi) {
                        candidates.push((offset, *rpi, index));
                    }
                }
            }
        }
        if candidates.is_empty() {
            return None;
        }
        self.confirm(key, &candidates)
    }

    /// The exact check of the filter's candidates, and decryption of their metadata.
    fn confirm(&self, key: &DiagnosisKey, candidates: &[(u32, Rpi, &DayIndex)]) -> Option<Match> {
        let mut aemk = None;
        let mut found = Vec::new();
        for &(interval, rpi, index) in candidates {
            let first = index.entries.partition_point(|(r, _)| *r < rpi);
            for &(_, sighting) in index.entries[first..].iter().take_while(|(r, _)| *r == rpi) {
                let sighting = self.sightings[sighting as usize];
                if sighting.interval().get().abs_diff(interval) > DRIFT_TOLERANCE_INTERVALS {
                    continue;
                }
                let aemk = aemk.get_or_insert_with(|| key.tek.aem_key());
                let Ok(metadata) = BluetoothMetadata::parse(aemk.decrypt(rpi, sighting.aem)) else {
                    continue;
                };
                if TX_POWER_RANGE.contains(&metadata.tx_power()) {
                    found.push(MatchedSighting {
                        sighting,
                        interval: IntervalNumber::new(interval),
                        metadata,
                    });
                }
            }
        }
        if found.is_empty() {
            return None;
        }
        found.sort_by_key(|m| (m.sighting.time, m.sighting.scan_id));
        Some(Match {
            key: key.clone(),
            sightings: found,
        })
    }

    /// The matches among a stream of keys, lazily, on the calling thread.
    ///
    /// A key that occurs more than once (same key bytes) yields one match.
    pub fn matches<I>(&self, keys: I) -> Matches<'_, 'a, I::IntoIter>
    where
        I: IntoIterator<Item = DiagnosisKey>,
    {
        Matches {
            index: self,
            keys: keys.into_iter(),
            seen: HashSet::new(),
            rpis: [Rpi::from_bytes([0; 16]); DAY as usize],
        }
    }

    /// The matches among a stream of keys, computed on all cores of rayon's current
    /// thread pool (use `ThreadPool::install` to choose how many).
    ///
    /// Keys are pulled in chunks, so memory stays bounded however long the stream.
    /// A key that occurs more than once yields one match; matches come in stream order.
    #[cfg(feature = "parallel")]
    pub fn par_matches<I>(&self, keys: I) -> Vec<Match>
    where
        I: IntoIterator<Item = DiagnosisKey>,
    {
        use rayon::prelude::*;
        /// Large enough to amortise rayon's fork-join, small enough to stay in cache.
        const CHUNK: usize = 8192;

        let mut keys = keys.into_iter();
        let mut chunk = Vec::with_capacity(CHUNK);
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        loop {
            chunk.clear();
            chunk.extend(keys.by_ref().take(CHUNK));
            if chunk.is_empty() {
                break;
            }
            let found: Vec<Match> = chunk
                .par_iter()
                .map_init(
                    || [Rpi::from_bytes([0; 16]); DAY as usize],
                    |rpis, k| self.match_key_with(k, rpis),
                )
                .flatten()
                .collect();
            out.extend(found.into_iter().filter(|m| first_time(&mut seen, m)));
        }
        out
    }
}

/// The position of `day` in `days` (sorted by day), inserting it if new.
fn day_slot(days: &mut Vec<DayIndex>, day: u32) -> usize {
    match days.binary_search_by_key(&day, |d| d.day) {
        Ok(i) => i,
        Err(i) => {
            days.insert(i, DayIndex::new(day));
            i
        }
    }
}

/// Whether `m` is the first match of its key bytes.
fn first_time(seen: &mut HashSet<[u8; KEY_LEN]>, m: &Match) -> bool {
    seen.insert(*m.key.tek.expose_secret())
}

/// Iterator of matches returned by [`SightingIndex::matches`].
#[derive(Debug)]
pub struct Matches<'i, 'a, K> {
    index: &'i SightingIndex<'a>,
    keys: K,
    seen: HashSet<[u8; KEY_LEN]>,
    rpis: [Rpi; DAY as usize],
}

impl<K: Iterator<Item = DiagnosisKey>> Iterator for Matches<'_, '_, K> {
    type Item = Match;

    fn next(&mut self) -> Option<Match> {
        loop {
            let key = self.keys.next()?;
            if let Some(m) = self.index.match_key_with(&key, &mut self.rpis) {
                if first_time(&mut self.seen, &m) {
                    return Some(m);
                }
            }
        }
    }
}
