//! Matching: which of the downloaded diagnosis keys did this device hear?
//!
//! A device keeps a few thousand sightings a day; a country publishes up to millions
//! of keys. For each key, matching derives the RPIs of only those intervals that
//! have sightings within the clock-drift tolerance, and looks them up in an index of
//! the sightings built once per run:
//!
//! ```text
//!   sightings ──▶ SightingIndex, per UTC day ─┬─ which intervals need deriving (±12)
//!                                            ├─ a Bloom filter of the distinct RPIs (a few KiB)
//!                                            └─ the distinct RPIs, sorted, with their sightings
//!   keys (stream) ──▶ batches sorted by day ──▶ RPIKs, 4 at a time ──▶ RPIs of the needed runs
//!                 ──▶ filter ──▶ exact check ──▶ AEMK, metadata, TX power ──▶ Match
//! ```
//!
//! Per key that overlaps the device's sightings, the work is fixed by the protocol:
//! six SHA-256 compressions (HKDF) and one AES block per needed interval, up to 144.
//! Everything else is arranged around them: keys of the same day are matched one
//! after the other so that the day's filter and cipher inputs stay in L1 cache,
//! the RPIKs of four keys are hashed side by side so their dependency chains
//! overlap, and a filter probe is a handful of instructions.
//!
//! Keys are consumed as a stream, so a million keys never sit in memory at once;
//! [`SightingIndex::par_matches`] spreads batches of them over all cores.

mod filter;

use std::collections::HashSet;
use std::fmt;
use std::ops::RangeInclusive;

use crate::diagnosis::DiagnosisKey;
use crate::identifiers::Rpi;
use crate::interval::{INTERVALS_PER_DAY, IntervalNumber, KeyValidity};
use crate::keys::{KEY_LEN, RpiKey, TemporaryExposureKey, padded_blocks};
use crate::metadata::BluetoothMetadata;
use crate::sighting::Sighting;
use crate::time::UnixSeconds;
use filter::BloomFilter;

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

impl Match {
    /// The match of `key` from its sightings (in any order), found by a caller that
    /// looked its identifiers up itself (e.g. in identifiers derived once for many
    /// devices): sorted by time, with replays dropped as [`SightingIndex`] drops
    /// them; `None` when no sighting is left.
    pub fn new(key: DiagnosisKey, mut sightings: Vec<MatchedSighting>) -> Option<Self> {
        if sightings.is_empty() {
            return None;
        }
        let order = |m: &MatchedSighting| (m.sighting.time, m.sighting.scan_id);
        // Callers often collect sightings in order already; checking is cheaper than
        // a sort, which sets up a buffer even for sorted input.
        if !sightings.is_sorted_by_key(order) {
            sightings.sort_by_key(order);
        }
        drop_replays(&mut sightings);
        Some(Self { key, sightings })
    }
}

/// The sightings of one UTC day (± the drift tolerance), indexed for look-up.
struct DayIndex {
    day: u32,
    /// Bit `k`: interval `day·144 + k` has a sighting within the tolerance.
    needed: [u64; NEEDED_WORDS],
    /// A Bloom filter of the distinct RPIs: the first, cheap check.
    filter: BloomFilter,
    /// The distinct RPIs, sorted, for the exact check of the filter's candidates.
    rpis: Vec<Rpi>,
    /// `sightings[starts[k]..starts[k + 1]]` are the sightings of `rpis[k]`.
    starts: Vec<u32>,
    /// Indexes into the indexed sightings.
    sightings: Vec<u32>,
}

impl DayIndex {
    /// The index of one day, from its (day, RPI, sighting index) entries sorted by RPI.
    fn new(day: u32, entries: &[(u32, Rpi, u32)]) -> Self {
        let mut rpis = Vec::new();
        let mut starts = Vec::new();
        for (k, (_, rpi, _)) in entries.iter().enumerate() {
            if rpis.last() != Some(rpi) {
                rpis.push(*rpi);
                starts.push(k as u32);
            }
        }
        starts.push(entries.len() as u32);
        Self {
            day,
            needed: [0; NEEDED_WORDS],
            filter: BloomFilter::new(&rpis),
            rpis,
            starts,
            sightings: entries.iter().map(|&(_, _, sighting)| sighting).collect(),
        }
    }

    /// Indexes of the sightings of `rpi` (none if it was not heard).
    fn sightings_of(&self, rpi: &Rpi) -> &[u32] {
        match self.rpis.binary_search(rpi) {
            Ok(k) => &self.sightings[self.starts[k] as usize..self.starts[k + 1] as usize],
            Err(_) => &[],
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
///     TemporaryExposureKey, OsRng, UnixSeconds,
/// };
///
/// let now = IntervalNumber::new(2_650_000);
/// let met = TemporaryExposureKey::generate(&mut OsRng, now);
/// let sightings = [Sighting::new(
///     met.beacon(now, BluetoothMetadata::v1_0(-10)),
///     -60,
///     UnixSeconds::of_interval(now) + 30,
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
pub struct SightingIndex<'a> {
    sightings: &'a [Sighting],
    /// Sorted by day.
    days: Vec<DayIndex>,
}

/// Longest an RPI is heard after its first sighting: later sightings of it are
/// replays (R4, GAEN's `getValidSightingsForRpi`), dropped so that a beacon recorded
/// and aired again later cannot lengthen an exposure.
pub const MAX_RPI_SECONDS: u64 = 20 * 60;

/// Drops, from time-sorted sightings, those of an RPI more than
/// [`MAX_RPI_SECONDS`] after its first sighting.
fn drop_replays(sightings: &mut Vec<MatchedSighting>) {
    // Sorted by time, a key's sightings usually come interval after interval. Then
    // each interval's sightings form one run, and its first sighting is that of the
    // run: nothing to remember but the current run.
    if sightings.is_sorted_by_key(|m| m.interval) {
        let mut run: Option<(IntervalNumber, UnixSeconds)> = None;
        sightings.retain(|m| match run {
            Some((interval, start)) if interval == m.interval => {
                m.sighting.time.since(start) <= MAX_RPI_SECONDS
            }
            _ => {
                run = Some((m.interval, m.sighting.time));
                true
            }
        });
        return;
    }
    let mut first: Vec<(IntervalNumber, UnixSeconds)> = Vec::new();
    sightings.retain(|m| {
        let time = m.sighting.time;
        // Sorted by time, a key's sightings come interval after interval: the last
        // interval seen is nearly always the one to find.
        match first
            .iter()
            .rev()
            .find(|(interval, _)| *interval == m.interval)
        {
            Some(&(_, start)) => time.since(start) <= MAX_RPI_SECONDS,
            None => {
                first.push((m.interval, time));
                true
            }
        }
    });
}

impl<'a> SightingIndex<'a> {
    /// Indexes `sightings` (in any order).
    pub fn new(sightings: &'a [Sighting]) -> Self {
        // (day, RPI, sighting) for every day holding an interval j with
        // |interval − j| ≤ tolerance: at most two days per sighting.
        let mut entries = Vec::with_capacity(sightings.len());
        let mut intervals = Vec::with_capacity(sightings.len());
        for (index, sighting) in sightings.iter().enumerate() {
            let index = u32::try_from(index).expect("fewer than 2^32 sightings");
            let (lo, hi) = tolerance(sighting.interval().get());
            intervals.push(lo..=hi);
            for day in lo / DAY..=hi / DAY {
                entries.push((day, sighting.rpi, index));
            }
        }
        entries.sort_unstable();
        let mut days: Vec<DayIndex> = entries
            .chunk_by(|a, b| a.0 == b.0)
            .map(|day| DayIndex::new(day[0].0, day))
            .collect();
        intervals.sort_unstable_by_key(|r| *r.start());
        intervals.dedup();
        for j in intervals.into_iter().flatten() {
            let d = days
                .binary_search_by_key(&(j / DAY), |d| d.day)
                .expect("every day within the tolerance of a sighting has an index");
            let k = j % DAY;
            days[d].needed[(k / 64) as usize] |= 1 << (k % 64);
        }
        Self { sightings, days }
    }

    /// The indexed sightings.
    pub fn sightings(&self) -> &'a [Sighting] {
        self.sightings
    }

    /// The indexed days that overlap `validity`, each with the key's intervals in it
    /// as a day-relative range `[lo, hi)`, from position `slot` of `days` on.
    fn days_of(
        &self,
        validity: KeyValidity,
        slot: usize,
    ) -> impl Iterator<Item = (&DayIndex, u32, u32)> + '_ {
        let (start, end) = (validity.start().get(), validity.end().get());
        let last_day = (end - 1) / DAY;
        self.days[slot..]
            .iter()
            .take_while(move |d| d.day <= last_day)
            .map(move |d| {
                let base = d.day * DAY;
                (d, start.max(base) - base, (end - base).min(DAY))
            })
    }

    /// The position in `days` of the first day in which the key of `validity` has
    /// an interval to derive, if any.
    fn first_needed_day(&self, validity: KeyValidity) -> Option<usize> {
        let first = validity.start().get() / DAY;
        let slot = self.days.partition_point(|d| d.day < first);
        let skipped = self
            .days_of(validity, slot)
            .position(|(index, lo, hi)| index.needed_runs(lo, hi).next().is_some())?;
        Some(slot + skipped)
    }

    /// The match for one key, if the device heard it.
    ///
    /// Derives the RPIK only when the key's validity has sightings nearby, and the
    /// AEMK only when an RPI was found. To match many keys, use
    /// [`matches`](Self::matches) or [`par_matches`](Self::par_matches), which are
    /// faster per key.
    pub fn match_key(&self, key: &DiagnosisKey) -> Option<Match> {
        let mut found = Vec::new();
        self.match_batch(std::slice::from_ref(key), &mut Scratch::new(), &mut found);
        found.pop()
    }

    /// Appends the matches among `keys` to `found`, in the order of `keys`.
    ///
    /// Keys without sightings nearby are dropped before any derivation. The others
    /// are visited grouped by day, so that the Bloom filter of the day stays in L1
    /// cache while they are probed (in stream order, every key hit another day's
    /// filter and each probe waited for L2), and their RPIKs are derived [`LANES`]
    /// at a time.
    fn match_batch(&self, keys: &[DiagnosisKey], scratch: &mut Scratch, found: &mut Vec<Match>) {
        let Scratch {
            rpis,
            order,
            found: matched,
        } = scratch;
        order.clear();
        order.extend(keys.iter().enumerate().filter_map(|(position, key)| {
            let slot = self.first_needed_day(key.tek.validity())?;
            Some((slot as u32, position as u32))
        }));
        order.sort_unstable();
        let mut match_one = |(slot, position): (u32, u32), rpik: &[u8; KEY_LEN]| {
            let key = &keys[position as usize];
            let rpik = RpiKey::from_bytes(rpik);
            if let Some(m) = self.match_key_from(key, slot as usize, &rpik, rpis) {
                matched.push((position, m));
            }
        };
        let mut groups = order.chunks_exact(LANES);
        for group in groups.by_ref() {
            let group: &[(u32, u32); LANES] = group.try_into().expect("chunks of LANES");
            let teks = group.map(|(_, position)| &keys[position as usize].tek);
            let rpiks = TemporaryExposureKey::published_rpi_keys(teks);
            for (&entry, rpik) in group.iter().zip(&rpiks) {
                match_one(entry, rpik);
            }
        }
        for &entry in groups.remainder() {
            let [rpik] = TemporaryExposureKey::published_rpi_keys([&keys[entry.1 as usize].tek]);
            match_one(entry, &rpik);
        }
        matched.sort_unstable_by_key(|(position, _)| *position);
        found.extend(matched.drain(..).map(|(_, m)| m));
    }

    /// The match for `key`, whose RPIK is `rpik` and whose first day with intervals
    /// to derive is `days[slot]`.
    fn match_key_from(
        &self,
        key: &DiagnosisKey,
        slot: usize,
        rpik: &RpiKey,
        rpis: &mut RpiBuffers,
    ) -> Option<Match> {
        let mut candidates: Vec<(u32, Rpi, &DayIndex)> = Vec::new();
        for (index, lo, hi) in self.days_of(key.tek.validity(), slot) {
            let base = index.day * DAY;
            let filter = index.filter.probe();
            for (a, b) in index.needed_runs(lo, hi) {
                for (interval, block) in
                    (base + a..base + b).zip(rpis.derive(rpik, index.day, a, b))
                {
                    if filter.may_contain(block) {
                        candidates.push((interval, Rpi::from_bytes((*block).into()), index));
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
            for &sighting in index.sightings_of(&rpi) {
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
        Match::new(key.clone(), found)
    }

    /// The matches among a stream of keys, lazily, on the calling thread.
    ///
    /// Keys are pulled and matched [`BATCH`] at a time, so memory stays bounded however
    /// long the stream. A key that occurs more than once (same key bytes) yields one
    /// match; matches come in stream order.
    pub fn matches<I>(&self, keys: I) -> Matches<'_, 'a, I::IntoIter>
    where
        I: IntoIterator<Item = DiagnosisKey>,
    {
        Matches {
            index: self,
            keys: keys.into_iter(),
            seen: HashSet::new(),
            scratch: Scratch::new(),
            batch: Vec::with_capacity(BATCH),
            ready: Vec::new().into_iter(),
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
        /// Batches per fork-join: enough to keep every core busy, few enough that
        /// the keys pulled at once stay small.
        const CHUNK: usize = 16 * BATCH;

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
            let found: Vec<Vec<Match>> = chunk
                .par_chunks(BATCH)
                .map_init(Scratch::new, |scratch, batch| {
                    let mut found = Vec::new();
                    self.match_batch(batch, scratch, &mut found);
                    found
                })
                .collect();
            out.extend(
                found
                    .into_iter()
                    .flatten()
                    .filter(|m| first_time(&mut seen, m)),
            );
        }
        out
    }
}

/// Keys matched together. Large enough that each day of the index gets a run of
/// keys (a country's export mixes all 14 days), small enough to keep the
/// stream's latency and memory low.
const BATCH: usize = 1024;

/// Published keys whose RPIKs are derived side by side (see
/// [`TemporaryExposureKey::published_rpi_keys`]).
const LANES: usize = 4;

/// The RPIs of one run of intervals, and the cipher inputs of a whole day: keys
/// come sorted by day, so consecutive keys share the inputs, written once.
struct RpiBuffers {
    /// The day whose inputs `padded` holds.
    day: Option<u32>,
    padded: [aes::Block; DAY as usize],
    rpis: [aes::Block; DAY as usize],
}

impl RpiBuffers {
    fn new() -> Self {
        Self {
            day: None,
            padded: [aes::Block::default(); DAY as usize],
            rpis: [aes::Block::default(); DAY as usize],
        }
    }

    /// The RPIs of the intervals `[a, b)` of `day` (day-relative).
    fn derive(&mut self, rpik: &RpiKey, day: u32, a: u32, b: u32) -> &[aes::Block] {
        if self.day != Some(day) {
            padded_blocks(day * DAY, &mut self.padded);
            self.day = Some(day);
        }
        let rpis = &mut self.rpis[..(b - a) as usize];
        rpik.encrypt_padded(&self.padded[a as usize..b as usize], rpis);
        rpis
    }
}

/// Reusable buffers of one matching thread.
struct Scratch {
    rpis: RpiBuffers,
    /// (first indexed day, position in the batch) of the batch's keys.
    order: Vec<(u32, u32)>,
    /// Matches with their position in the batch.
    found: Vec<(u32, Match)>,
}

impl Scratch {
    fn new() -> Self {
        Self {
            rpis: RpiBuffers::new(),
            order: Vec::with_capacity(BATCH),
            found: Vec::new(),
        }
    }
}

/// The intervals `[lo, hi]` whose RPIs match a sighting in `interval`.
fn tolerance(interval: u32) -> (u32, u32) {
    (
        interval.saturating_sub(DRIFT_TOLERANCE_INTERVALS),
        interval.saturating_add(DRIFT_TOLERANCE_INTERVALS),
    )
}

/// Whether `m` is the first match of its key bytes.
fn first_time(seen: &mut HashSet<[u8; KEY_LEN]>, m: &Match) -> bool {
    seen.insert(*m.key.tek.expose_secret())
}

/// A summary: the full index runs to megabytes.
impl fmt::Debug for SightingIndex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SightingIndex")
            .field("sightings", &self.sightings.len())
            .field(
                "distinct_rpis_by_day",
                &self
                    .days
                    .iter()
                    .map(|d| (d.day, d.rpis.len()))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Iterator of matches returned by [`SightingIndex::matches`].
pub struct Matches<'i, 'a, K> {
    index: &'i SightingIndex<'a>,
    keys: K,
    seen: HashSet<[u8; KEY_LEN]>,
    scratch: Scratch,
    /// The keys being matched.
    batch: Vec<DiagnosisKey>,
    /// Matches of the last batch not yet returned.
    ready: std::vec::IntoIter<Match>,
}

impl<K> fmt::Debug for Matches<'_, '_, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Matches")
            .field("index", &self.index)
            .field("distinct_matches", &self.seen.len())
            .finish_non_exhaustive()
    }
}

impl<K: Iterator<Item = DiagnosisKey>> Iterator for Matches<'_, '_, K> {
    type Item = Match;

    fn next(&mut self) -> Option<Match> {
        loop {
            for m in self.ready.by_ref() {
                if first_time(&mut self.seen, &m) {
                    return Some(m);
                }
            }
            self.batch.clear();
            self.batch.extend(self.keys.by_ref().take(BATCH));
            if self.batch.is_empty() {
                return None;
            }
            let mut found = Vec::new();
            self.index
                .match_batch(&self.batch, &mut self.scratch, &mut found);
            self.ready = found.into_iter();
        }
    }
}
