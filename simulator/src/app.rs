//! The app in every user's phone, running kith-core: daily keys from a seeded CSPRNG,
//! beacons (RPI and AEM) heard only during the phone's scans, uploads after a positive
//! test, the health authority's signed daily export, and matching and risk scoring on
//! each phone.
//!
//! A phone's sightings are not kept as bytes for 14 days — a million phones would need
//! tens of gigabytes. They are a pure function of the contact diary, the phone's scan
//! schedule and the channel's random stream, so the simulator regenerates exactly the
//! sightings the phone recorded whenever the phone matches. Which phones can match a
//! published key is known from the diary (only phones that met its owner can hold its
//! RPIs), so each day only those phones match the day's export; every other phone
//! would find nothing. The identifiers of each published key are derived once for all
//! phones, and each phone looks the RPIs it recorded up in them, decrypts their
//! metadata with the key's AEMK and builds its exposure windows with core. Those
//! phones regenerate only what matching asks for: the beacons of the uploader's
//! contacts with them, and for each scan that heard one, what core's `ScanTimeline`
//! needs to know of the phone's previous scan that heard anything — its time when it
//! is less than 5 minutes before, otherwise only whether there was one.
//! `tests/sim/per_device.rs` runs sampled phones through the full per-device path —
//! [`kith_core::ExposureEngine`] with every sighting recorded and every export
//! ingested, matched by core's [`kith_core::SightingIndex`] — and gets identical
//! exposures.
//!
//! A phone airs the RPI of the current 10-minute interval and changes it (with its
//! address) at every interval boundary, as Google's implementation does (its
//! advertiser restarts with a new RPI each `ENIntervalNumber`) and as `kith-agent`'s
//! default rotation policy does; the random 10–20 minute rotation GAEN speaks of
//! concerns the address, which the simulator does not model.

use std::collections::HashMap;

use kith_core::risk::{ExposureSummary, ExposureWindow, RiskConfig, RiskModel, ScanTimeline};
use kith_core::{
    BluetoothMetadata, CalibrationConfidence, Day, DaysSinceOnset, DiagnosisKey, ExportBatch,
    ExportFile, ExportLimits, ExportSigner, IntervalNumber, Match, MatchedSighting, ReportType,
    Sighting, SigningKey, TX_POWER_RANGE, TemporaryExposureKey, TrustedKeys, UnixSeconds,
    VerifiedExport, write_export,
};
use rayon::prelude::*;

use crate::ble::{Channel, DeviceModel, Link, ModelTable};
use crate::contacts::{Contact, Shapes};
use crate::diary::Diary;
use crate::error::{Error, Result};
use crate::population::{NONE, Population};
use crate::rng::{Purpose, Streams};
use crate::scenario::Scenario;

/// Sim day 0 is 2021-01-01 (days since the Unix epoch).
pub const EPOCH_DAY: u32 = 18_628;
/// Seconds in a day.
pub const SECONDS_PER_DAY: u32 = 86_400;
/// Second of the day at which uploads happen.
pub const UPLOAD_SECOND: u32 = 12 * 3600;
/// Days of sightings (and keys) a phone keeps.
pub const RETENTION_DAYS: u32 = 14;
/// Region named in the export files.
pub const REGION: &str = "SIM";
/// Signature key id and version of the simulated health authority.
pub const KEY_ID: (&str, &str) = ("kith-sim", "v1");

/// The time at `second` of sim day `day`.
pub fn unix_time(day: u32, second: u32) -> UnixSeconds {
    calendar_day(day).start() + u64::from(second)
}

/// The UTC day that sim day `day` is.
pub fn calendar_day(day: u32) -> Day {
    Day::new(EPOCH_DAY + day)
}

/// The first interval of sim day `day`.
pub fn day_interval(day: u32) -> IntervalNumber {
    IntervalNumber::new((EPOCH_DAY + day) * kith_core::INTERVALS_PER_DAY)
}

/// A risk model by name: `enx`, `apple`, `threshold:<dB>` (ENX's defaults with one
/// bucket, weight 100 %, up to that attenuation and nothing beyond), or a path to a
/// health authority's file of any family core reads: an ENX JSON configuration, a
/// Corona-Warn-App YAML or a GAEN v1 (COVID Alert) JSON.
pub fn risk_config(name: &str) -> Result<RiskModel> {
    if let Some(db) = name.strip_prefix("threshold:") {
        let db: u8 = db
            .parse()
            .map_err(|_| Error::Scenario(format!("`{name}`: threshold must be 0..=255 dB")))?;
        let mut config = RiskConfig::enx_with_15_minute_alert();
        config.attenuation_thresholds = [db; 3];
        config.attenuation_weights = [1.0, 1.0, 1.0, 0.0];
        return Ok(config.into());
    }
    match name {
        "enx" => Ok(RiskConfig::enx_with_15_minute_alert().into()),
        "apple" => Ok(RiskConfig::apple_defaults().into()),
        path => {
            let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
            Ok(RiskModel::parse(&text)?)
        }
    }
}

/// Who runs the app, on which phone model.
#[derive(Debug)]
pub struct Phones {
    /// Phone of each agent, or [`NONE`].
    pub phone_of: Vec<u32>,
    /// Agent of each phone.
    pub agent_of: Vec<u32>,
    /// Model of each phone.
    pub model: Vec<DeviceModel>,
    /// What the calibration leaves uncorrected on each phone (dB).
    pub residual_db: Vec<f32>,
}

impl Phones {
    /// Draws the app users (by age, scaled to the scenario's uptake) and their phones.
    pub fn new(
        population: &Population,
        scenario: &Scenario,
        streams: &Streams,
        table: &ModelTable,
        calibration_error_db: f64,
    ) -> Self {
        let app = &scenario.app;
        let weights = app.uptake_by_age;
        let mut share_by_age = [0.0; 9];
        for &a in &population.age {
            share_by_age[a as usize] += 1.0 / population.len() as f64;
        }
        let uptake_at = |scale: f64| -> f64 {
            (0..9)
                .map(|a| share_by_age[a] * (scale * weights[a]).min(1.0))
                .sum()
        };
        let (mut lo, mut hi) = (0.0, 1e6);
        for _ in 0..100 {
            let mid = (lo + hi) / 2.0;
            if uptake_at(mid) < app.uptake {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let scale = hi;
        let mut phones = Self {
            phone_of: vec![NONE; population.len()],
            agent_of: Vec::new(),
            model: Vec::new(),
            residual_db: Vec::new(),
        };
        for (agent, &age) in population.age.iter().enumerate() {
            let p = (scale * weights[age as usize]).min(1.0);
            if app.uptake > 0.0 && streams.chance(Purpose::Population, [agent as u64, 10, 0], p) {
                phones.phone_of[agent] = phones.agent_of.len() as u32;
                phones.agent_of.push(agent as u32);
                phones
                    .model
                    .push(table.pick(streams.uniform(Purpose::Population, [agent as u64, 11, 0])));
                let z = streams.normal(Purpose::Population, [agent as u64, 12, 0]);
                phones.residual_db.push((z * calibration_error_db) as f32);
            }
        }
        phones
    }

    /// Number of phones.
    pub fn len(&self) -> usize {
        self.agent_of.len()
    }

    /// Whether nobody runs the app.
    pub fn is_empty(&self) -> bool {
        self.agent_of.is_empty()
    }

    /// Whether `agent` runs the app.
    pub fn has_app(&self, agent: u32) -> bool {
        self.phone_of[agent as usize] != NONE
    }
}

/// When a phone scans on one day: every `period` seconds from `offset` on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanSchedule {
    offset: u32,
    period: u32,
}

impl ScanSchedule {
    /// The scans of `phone` on `day`, from the app stream: a period drawn from the
    /// duty cycle's range, and a random phase.
    pub fn of(streams: &Streams, phone: u32, day: u32, [lo, hi]: [u32; 2]) -> Self {
        let counters = [u64::from(phone), u64::from(day), 20];
        let period = lo + (streams.bits(Purpose::App, counters) % u64::from(hi - lo + 1)) as u32;
        let offset = (streams.uniform(Purpose::App, [u64::from(phone), u64::from(day), 21])
            * f64::from(period)) as u32;
        Self { offset, period }
    }

    /// The numbers of the scans within `[from, to)`.
    pub fn numbers(&self, from: u32, to: u32) -> std::ops::Range<u32> {
        let first = from.saturating_sub(self.offset).div_ceil(self.period);
        let end = to
            .min(SECONDS_PER_DAY)
            .saturating_sub(self.offset)
            .div_ceil(self.period);
        first..end.max(first)
    }

    /// The second of the day scan `k` runs.
    pub fn second(&self, k: u32) -> u32 {
        self.offset + k * self.period
    }

    /// The (scan number, second of the day) of the scans within `[from, to)`.
    pub fn within(&self, from: u32, to: u32) -> impl Iterator<Item = (u32, u32)> {
        let schedule = *self;
        self.numbers(from, to).map(move |k| (k, schedule.second(k)))
    }
}

/// The scan id of scan `k` of `day`: unique per phone.
pub fn scan_id(day: u32, k: u32) -> u64 {
    (u64::from(day) << 16) | u64::from(k)
}

/// The daily key of `phone` on `day`, from its seeded CSPRNG.
pub fn daily_key(streams: &Streams, phone: u32, day: u32) -> TemporaryExposureKey {
    TemporaryExposureKey::generate(&mut streams.key_rng(phone, day), day_interval(day))
}

/// The metadata a phone of `model` puts in its AEM.
pub fn metadata(model: DeviceModel) -> BluetoothMetadata {
    BluetoothMetadata::v1_1(model.tx_power, CalibrationConfidence::High)
}

/// The world a phone observes: who met whom, how the radio behaved.
#[derive(Clone, Copy, Debug)]
pub struct Radio<'a> {
    /// The run's random streams.
    pub streams: &'a Streams,
    /// The channel model.
    pub channel: &'a Channel,
    /// App users and phones.
    pub phones: &'a Phones,
    /// Contacts of the last days.
    pub diary: &'a Diary,
    /// How long and how close contacts are.
    pub shapes: &'a Shapes,
}

/// One scan of a phone: its day, number and second.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scan {
    /// Sim day.
    pub day: u32,
    /// Number of the scan in the day.
    pub k: u32,
    /// Second of the day it ran.
    pub second: u32,
}

impl Scan {
    /// The (scan id, time) record core's `ScanTimeline` learns a heard scan from.
    fn timeline_entry(self) -> (u64, UnixSeconds) {
        (scan_id(self.day, self.k), unix_time(self.day, self.second))
    }
}

/// A beacon a phone heard in one of its scans.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Heard {
    /// The phone that sent it.
    pub sender: u32,
    /// The scan.
    pub scan: Scan,
    /// What the receiver measured.
    pub rssi: i8,
}

/// A receiving phone on one day: who holds it, its calibration, its scans, and its
/// holder's contacts with other app users as the radio sees them.
struct PhoneDay {
    day: u32,
    model: DeviceModel,
    residual_db: f64,
    schedule: ScanSchedule,
    exchanges: Vec<Exchange>,
}

impl PhoneDay {
    /// Its scan number `k`.
    fn scan(&self, k: u32) -> Scan {
        Scan {
            day: self.day,
            k,
            second: self.schedule.second(k),
        }
    }
}

/// One contact of a receiving phone's holder with another app user, as the radio
/// sees it.
struct Exchange {
    sender_phone: u32,
    sender: DeviceModel,
    link: Link,
    /// Median path loss and holder effect (dB): what all scans of the contact share.
    link_db: f64,
    /// The scans of the receiver during the contact.
    scans: std::ops::Range<u32>,
}

impl Radio<'_> {
    /// What `phone` met on `day`, or `None` when the diary no longer holds the day.
    fn phone_day(&self, phone: u32, day: u32) -> Option<PhoneDay> {
        let contacts = self.diary.day(day)?;
        let p = phone as usize;
        let agent = self.phones.agent_of[p];
        let schedule = ScanSchedule::of(self.streams, phone, day, self.channel.scan_interval());
        let exchanges = contacts
            .of(agent)
            .filter_map(|c| self.exchange(agent, &schedule, day, &c))
            .collect();
        Some(PhoneDay {
            day,
            model: self.phones.model[p],
            residual_db: f64::from(self.phones.residual_db[p]),
            schedule,
            exchanges,
        })
    }

    /// Contact `c` of `receiver` on `day`, whose scans follow `schedule`, or `None`
    /// when the other runs no app.
    fn exchange(
        &self,
        receiver: u32,
        schedule: &ScanSchedule,
        day: u32,
        c: &Contact,
    ) -> Option<Exchange> {
        let other = c.other(receiver);
        let sender_phone = self.phones.phone_of[other as usize];
        if sender_phone == NONE {
            return None;
        }
        let m = self.shapes.meeting(self.streams, day, c);
        let [start, end] = [m.start, m.start + m.duration].map(|t| u32::from(t) * 60);
        let link = Link {
            day,
            receiver,
            sender: other,
            contact: (u64::from(c.salt) << 8) | c.setting as u64,
            distance_m: m.distance_m(),
            setting: c.setting,
        };
        Some(Exchange {
            sender_phone,
            sender: self.phones.model[sender_phone as usize],
            link_db: self.channel.link_attenuation(self.streams, &link),
            link,
            scans: schedule.numbers(start, end),
        })
    }

    /// What the phone of `rx` measured of `x`'s beacon in scan `k`, if it heard it.
    fn measure(&self, rx: &PhoneDay, x: &Exchange, k: u32) -> Option<i8> {
        let attenuation = x.link_db + self.channel.fading(self.streams, &x.link, u64::from(k));
        self.channel
            .rssi(attenuation, x.sender, rx.model, rx.residual_db)
    }

    /// The beacons of `x` that `rx` heard, in scan order, appended to `out`.
    fn heard_in(&self, rx: &PhoneDay, x: &Exchange, out: &mut Vec<Heard>) {
        out.extend(x.scans.clone().filter_map(|k| {
            self.measure(rx, x, k).map(|rssi| Heard {
                sender: x.sender_phone,
                scan: rx.scan(k),
                rssi,
            })
        }));
    }

    /// Every beacon of another app user that `phone` heard in its scans on `day`,
    /// contact by contact, each contact's in scan order.
    pub fn heard(&self, phone: u32, day: u32) -> Vec<Heard> {
        let mut out = Vec::new();
        if let Some(rx) = self.phone_day(phone, day) {
            for x in &rx.exchanges {
                self.heard_in(&rx, x, &mut out);
            }
        }
        out
    }

    /// The beacons of `sender` (an agent) that the phone of `rx` heard, appended to
    /// `out`: exactly those of [`Radio::heard`] from that sender, in the same order,
    /// without computing the others.
    fn heard_from(&self, rx: &PhoneDay, sender: u32, out: &mut Vec<Heard>) {
        for x in rx.exchanges.iter().filter(|x| x.link.sender == sender) {
            self.heard_in(rx, x, out);
        }
    }

    /// Whether the phone of `rx` heard any beacon in its scan `k`.
    fn heard_in_scan(&self, rx: &PhoneDay, k: u32) -> bool {
        rx.exchanges
            .iter()
            .any(|x| x.scans.contains(&k) && self.measure(rx, x, k).is_some())
    }

    /// A scan of the phone of `rx` numbered below `before` that heard any beacon
    /// (the first found, contact by contact).
    fn any_heard(&self, rx: &PhoneDay, before: u32) -> Option<Scan> {
        rx.exchanges.iter().find_map(|x| {
            (x.scans.start..x.scans.end.min(before))
                .find(|&k| self.measure(rx, x, k).is_some())
                .map(|k| rx.scan(k))
        })
    }

    /// The last scan of the phone of `rx` numbered below `before` that heard any
    /// beacon: the latest heard scan of [`Radio::heard`] there, found by searching
    /// each contact backwards from its end.
    fn last_heard(&self, rx: &PhoneDay, before: u32) -> Option<Scan> {
        let mut last: Option<u32> = None;
        for x in &rx.exchanges {
            let lo = x.scans.start.max(last.map_or(0, |k| k + 1));
            let hi = x.scans.end.min(before);
            if let Some(k) = (lo..hi).rev().find(|&k| self.measure(rx, x, k).is_some()) {
                last = Some(k);
            }
        }
        last.map(|k| rx.scan(k))
    }

    /// The sightings `phone` recorded on `day` from second `from` on (every beacon of
    /// every app user heard in its scans), appended to `out`: what the phone's store
    /// holds. Each sender's identifiers come from its daily key.
    pub fn sightings(&self, phone: u32, day: u32, from: u32, out: &mut Vec<Sighting>) {
        // The sender of the last contact and its keys: contacts come grouped by person.
        let mut keys: Option<(u32, kith_core::RpiKey, kith_core::AemKey, BluetoothMetadata)> = None;
        let first_interval = day_interval(day);
        for h in self.heard(phone, day) {
            if h.scan.second < from {
                continue;
            }
            if keys.as_ref().is_none_or(|k| k.0 != h.sender) {
                let (rpik, aemk) = daily_key(self.streams, h.sender, day).derive_keys();
                let meta = metadata(self.phones.model[h.sender as usize]);
                keys = Some((h.sender, rpik, aemk, meta));
            }
            let (_, rpik, aemk, meta) = keys.as_ref().expect("set above");
            let rpi = rpik.rpi(first_interval.saturating_add(h.scan.second / 600));
            out.push(h.sighting(rpi, aemk.encrypt(rpi, *meta)));
        }
    }
}

impl Heard {
    /// The sighting the phone stores of this beacon, whose identifiers are `rpi`, `aem`.
    fn sighting(&self, rpi: kith_core::Rpi, aem: kith_core::Aem) -> Sighting {
        Sighting {
            rpi,
            aem,
            rssi: self.rssi,
            time: unix_time(self.scan.day, self.scan.second),
            scan_id: scan_id(self.scan.day, self.scan.k),
        }
    }
}

/// The days of one phone that its matching looks at: what the phone met (computed
/// once per day), and the last heard scan of each earlier day once asked for.
struct PhoneScans<'r, 'a> {
    radio: &'r Radio<'a>,
    phone: u32,
    days: Vec<ScannedDay>,
}

/// One day of a phone, as far as [`PhoneScans`] has looked.
struct ScannedDay {
    day: u32,
    met: Option<PhoneDay>,
    last: Option<Option<Scan>>,
}

impl<'r, 'a> PhoneScans<'r, 'a> {
    fn new(radio: &'r Radio<'a>, phone: u32) -> Self {
        Self {
            radio,
            phone,
            days: Vec::new(),
        }
    }

    /// The position of `day` in `days`, computed if new.
    fn slot(&mut self, day: u32) -> usize {
        if let Some(i) = self.days.iter().position(|d| d.day == day) {
            return i;
        }
        self.days.push(ScannedDay {
            day,
            met: self.radio.phone_day(self.phone, day),
            last: None,
        });
        self.days.len() - 1
    }

    /// The beacons of `sender` that the phone heard on `day`, appended to `out`.
    fn heard_from(&mut self, day: u32, sender: u32, out: &mut Vec<Heard>) {
        let i = self.slot(day);
        if let Some(rx) = &self.days[i].met {
            self.radio.heard_from(rx, sender, out);
        }
    }

    /// The last scan of `day` that heard any beacon (computed once).
    fn last_of(&mut self, day: u32) -> Option<Scan> {
        let i = self.slot(day);
        if let Some(last) = self.days[i].last {
            return last;
        }
        let last = self.days[i]
            .met
            .as_ref()
            .and_then(|rx| self.radio.last_heard(rx, u32::MAX));
        self.days[i].last = Some(last);
        last
    }

    /// A scan before `scan` that heard any beacon, on a day from `oldest` on, from
    /// which core's `ScanTimeline` learns the seconds since the phone's last scan: the
    /// latest such scan when it is less than 5 minutes before `scan`, otherwise any
    /// earlier one. GAEN counts whole minutes since the last scan up to 5, so every
    /// heard scan 5 minutes or more before gives the same 300 s, and only "was
    /// anything heard before?" is left to answer. `heard` are scans known to have
    /// heard something (`scan` among them), sorted; they answer most questions
    /// without measuring a beacon.
    fn heard_before(&mut self, scan: Scan, oldest: u32, heard: &[Scan]) -> Option<Scan> {
        let known = |k: u32| {
            heard
                .binary_search_by_key(&(scan.day, k), |s| (s.day, s.k))
                .is_ok()
        };
        let i = self.slot(scan.day);
        let rx = self.days[i].met.as_ref()?;
        // Scans from this second on are less than 5 whole minutes before `scan`.
        let horizon = i64::from(scan.second / 60 * 60) - 240;
        let mut k = scan.k;
        while k > 0 && i64::from(rx.schedule.second(k - 1)) >= horizon {
            k -= 1;
            if known(k) || self.radio.heard_in_scan(rx, k) {
                return Some(rx.scan(k));
            }
        }
        if k == 0 && horizon < 0 {
            // The last 5 minutes began the day before: its last heard scan, exactly.
            return (oldest..scan.day).rev().find_map(|day| self.last_of(day));
        }
        // Nothing heard in the last 5 minutes: any earlier heard scan will do.
        let earlier = heard.partition_point(|s| (s.day, s.k) < (scan.day, k));
        if earlier > 0 {
            return Some(heard[earlier - 1]);
        }
        self.radio
            .any_heard(rx, k)
            .or_else(|| (oldest..scan.day).rev().find_map(|day| self.last_of(day)))
    }
}

/// The keys a positive app user uploads on `today`: the daily keys of the last 14
/// days, today's cut at the upload time, with days since `onset` (symptom onset, or
/// the test day without symptoms).
pub fn keys_to_upload(streams: &Streams, phone: u32, today: u32, onset: u32) -> Vec<DiagnosisKey> {
    let now = day_interval(today).saturating_add(UPLOAD_SECOND / 600);
    (today.saturating_sub(RETENTION_DAYS - 1)..=today)
        .map(|day| {
            let mut tek = daily_key(streams, phone, day);
            if day == today {
                tek = tek.with_validity(tek.validity().truncated_at(now.saturating_add(1)));
            }
            let since = (i64::from(day) - i64::from(onset)).clamp(-14, 14) as i32;
            DiagnosisKey {
                tek,
                report_type: ReportType::ConfirmedTest,
                days_since_onset: DaysSinceOnset::new(since).ok(),
                transmission_risk_level: None,
            }
        })
        .collect()
}

/// The health authority's key server, as far as phones see it: it signs one export
/// file a day with core's writer; phones verify it with the published key.
#[derive(Debug)]
pub struct Authority {
    signer: ExportSigner,
    trusted: TrustedKeys,
}

impl Authority {
    /// An authority with a signing key from the app stream.
    pub fn new(streams: &Streams) -> Self {
        let key = SigningKey::generate(&mut streams.key_rng(u32::MAX, u32::MAX));
        let signer = ExportSigner::new(KEY_ID.0, KEY_ID.1, key);
        let trusted = TrustedKeys::new().with(KEY_ID.0, KEY_ID.1, signer.verifying_key());
        Self { signer, trusted }
    }

    /// The signed export of the keys uploaded on `day`.
    pub fn export(&self, day: u32, keys: &[DiagnosisKey]) -> Result<Vec<u8>> {
        let batch = ExportBatch {
            region: REGION,
            start_timestamp: unix_time(day, 0).get(),
            end_timestamp: unix_time(day + 1, 0).get(),
            keys,
            revised_keys: &[],
        };
        Ok(write_export(&batch, &[&self.signer])?)
    }

    /// What a phone does with a downloaded file: parse within GAEN's limits, verify.
    pub fn verify(&self, file: &[u8]) -> Result<VerifiedExport> {
        Ok(ExportFile::parse(file, &ExportLimits::default())?.verify(&self.trusted)?)
    }

    /// The keys phones trust.
    pub fn trusted(&self) -> &TrustedKeys {
        &self.trusted
    }
}

/// What one phone has learned: its exposure windows (with who was behind each, for
/// the simulator's books) and the days it has notified about.
#[derive(Clone, Debug, Default)]
pub struct PhoneExposures {
    /// Windows of the last 14 days, ordered by day; those of one day in the order
    /// they were found (the order their scores are summed in).
    pub windows: Vec<ExposureWindow>,
    /// The agent whose key produced each window.
    pub senders: Vec<u32>,
    /// Days already notified about, per risk configuration (primary first).
    pub notified_days: Vec<Vec<Day>>,
    /// Per risk configuration, the risk level each day of windows reached when its
    /// windows last changed (GAEN v2 models only; see [`PhoneExposures::risk`]).
    day_levels: Vec<Vec<(Day, Option<u8>)>>,
    /// The day of the first window. Nothing the phone holds is older (notified and
    /// scored days are days of windows), so the daily pass over every phone reads
    /// only this, not the vectors.
    first_day: Option<Day>,
}

impl PhoneExposures {
    /// A phone that has found nothing yet, scored with `configs` configurations.
    fn new(configs: usize) -> Self {
        Self {
            notified_days: vec![Vec::new(); configs],
            day_levels: vec![Vec::new(); configs],
            ..Self::default()
        }
    }

    /// Forgets windows and notified days older than the 14 days a phone keeps, as of
    /// `day`: no later window can fall on those days.
    fn forget_before(&mut self, day: u32) {
        let oldest = calendar_day(day.saturating_sub(RETENTION_DAYS - 1));
        if self.first_day.is_none_or(|first| first >= oldest) {
            return;
        }
        // Windows compared by start time, not by day: no division per window.
        let old = self.windows.partition_point(|w| w.start < oldest.start());
        self.windows.drain(..old);
        self.senders.drain(..old);
        // Windows are added in place, so room freed here would stay held.
        self.windows.shrink_to_fit();
        self.senders.shrink_to_fit();
        for days in &mut self.notified_days {
            days.retain(|d| *d >= oldest);
        }
        for levels in &mut self.day_levels {
            let old = levels.partition_point(|&(d, _)| d < oldest);
            levels.drain(..old);
        }
        self.first_day = self.windows.first().map(ExposureWindow::day);
    }

    /// Adds windows found today (and whose key each came from), each after the
    /// windows of its day; returns the days that got new windows, ascending.
    fn add(&mut self, mut found: Vec<(ExposureWindow, u32)>) -> Vec<Day> {
        // A stable sort keeps the new windows of a day in the order they were found.
        found.sort_by_key(|(w, _)| w.day());
        let mut days: Vec<Day> = Vec::new();
        // Inserted in place, each day's after the windows held of it: a phone holds
        // a few dozen windows, so moving the later ones costs less than rebuilding.
        // Exactly: doubling would leave a million phones' vectors half empty.
        self.windows.reserve_exact(found.len());
        self.senders.reserve_exact(found.len());
        let mut at = 0;
        for (window, sender) in found {
            let day = window.day();
            if days.last() != Some(&day) {
                days.push(day);
                let end = day.plus(1).start();
                at = self.windows.partition_point(|w| w.start < end);
            }
            self.windows.insert(at, window);
            self.senders.insert(at, sender);
            at += 1;
        }
        self.first_day = self.windows.first().map(ExposureWindow::day);
        days
    }

    /// The risk level configuration `c` (`model`) gives the phone's windows at `now`,
    /// and its days: what [`RiskModel::assess`] gives. `changed` are the days whose
    /// windows changed since the last call. A GAEN v2 day's level depends only on
    /// that day's windows (and, through `days_since_exposure_threshold`, on its age),
    /// so only the changed days are scored again; other models score every window.
    fn risk(
        &mut self,
        c: usize,
        model: &RiskModel,
        changed: &[Day],
        now: UnixSeconds,
    ) -> (Option<u8>, Vec<Day>) {
        let RiskModel::Gaen(config) = model else {
            let summary = model.assess(&self.windows, now);
            return (summary.risk_level, summary.days);
        };
        let levels = &mut self.day_levels[c];
        for &day in changed {
            let lo = self.windows.partition_point(|w| w.start < day.start());
            let hi = self
                .windows
                .partition_point(|w| w.start < day.plus(1).start());
            let summaries = config.daily_summaries(&self.windows[lo..hi], now);
            let level = summaries.first().and_then(|d| config.classify(d));
            match levels.binary_search_by_key(&day, |&(d, _)| d) {
                Ok(i) => levels[i].1 = level,
                Err(i) => levels.insert(i, (day, level)),
            }
        }
        // A day scored while recent enough may have grown too old since.
        let today = now.day();
        let threshold = i64::from(config.days_since_exposure_threshold);
        let scored = levels
            .iter()
            .filter(|&&(d, _)| threshold == 0 || today.days_after(d) <= threshold);
        let risk_level = scored.clone().filter_map(|&(_, level)| level).min();
        if risk_level.is_none() {
            // Most phones: no day reaches a level, no second pass.
            return (None, Vec::new());
        }
        let days = scored
            .filter(|&&(_, level)| level == risk_level)
            .map(|&(d, _)| d)
            .collect();
        (risk_level, days)
    }

    /// Whether nothing is left to remember.
    fn is_empty(&self) -> bool {
        self.windows.is_empty() && self.notified_days.iter().all(Vec::is_empty)
    }
}

/// A phone's state and the windows it found today.
type Update = (u32, PhoneExposures, Vec<(ExposureWindow, u32)>);

/// A notification a phone showed.
#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    /// The notified person.
    pub agent: u32,
    /// The most recent day of exposure.
    pub exposure_day: u32,
    /// Attenuation bucket (0 immediate … 3 other) of the closest scan in the
    /// notifying days' windows.
    pub bucket: usize,
    /// The uploaders whose keys led to it.
    pub senders: Vec<u32>,
}

/// What the app did on one day.
#[derive(Debug, Default)]
pub struct AppDay {
    /// Size of the export file.
    pub export_bytes: usize,
    /// Keys in it.
    pub keys: usize,
    /// Phones that matched at least one key.
    pub matched_phones: usize,
    /// Notifications under the primary configuration.
    pub notifications: Vec<Notification>,
    /// Agents newly notified under each evaluated configuration (primary first).
    pub notified_by_config: Vec<Vec<u32>>,
}

/// Every phone's exposures, and the risk configurations they are scored with.
#[derive(Debug)]
pub struct Exposures {
    /// Primary configuration first, then the evaluated ones.
    pub configs: Vec<(String, RiskModel)>,
    /// What each phone holds, by phone number; `None` for phones holding nothing. A
    /// dense vector rather than a map: every phone is visited each day to forget, in
    /// parallel and in memory order.
    phones: Vec<Option<PhoneExposures>>,
}

impl Exposures {
    /// Scoring with the scenario's primary and evaluated configurations.
    pub fn new(scenario: &Scenario) -> Result<Self> {
        let mut configs = vec![(
            scenario.app.risk_config.clone(),
            risk_config(&scenario.app.risk_config)?,
        )];
        for name in &scenario.app.evaluate {
            configs.push((name.clone(), risk_config(name)?));
        }
        Ok(Self {
            configs,
            phones: Vec::new(),
        })
    }

    /// What `phone` holds, if it has matched anything in the last 14 days.
    pub fn phone(&self, phone: u32) -> Option<&PhoneExposures> {
        self.phones.get(phone as usize)?.as_ref()
    }

    /// The phones that hold something, ascending.
    pub fn exposed_phones(&self) -> impl Iterator<Item = u32> + '_ {
        (0u32..)
            .zip(&self.phones)
            .filter_map(|(phone, state)| state.as_ref().map(|_| phone))
    }

    /// Every phone forgets what is older than the 14 days it keeps, as of `day`;
    /// phones left with nothing are dropped (a million phones' old windows would
    /// otherwise fill gigabytes).
    pub fn forget_before(&mut self, day: u32) {
        self.phones.par_iter_mut().for_each(|slot| {
            if let Some(state) = slot {
                state.forget_before(day);
                if state.first_day.is_none() && state.is_empty() {
                    *slot = None;
                }
            }
        });
    }

    /// Every phone ingests the export of `day` (published keys and their uploaders,
    /// `owner`), matches it and scores its exposures with every configuration.
    pub fn ingest(
        &mut self,
        radio: &Radio<'_>,
        day: u32,
        export: &VerifiedExport,
        owner: &HashMap<[u8; 16], u32>,
    ) -> Result<AppDay> {
        let keys: Vec<DiagnosisKey> = export.keys().collect::<kith_core::Result<_>>()?;
        // Phones that may hold a key's RPIs: those whose owner met the key's uploader
        // on the key's day (identifiers are unique, so no other phone can match).
        let senders: Vec<u32> =
            keys.iter()
                .map(|key| {
                    owner.get(key.tek.expose_secret()).copied().ok_or_else(|| {
                        Error::Scenario("an exported key has no known uploader".into())
                    })
                })
                .collect::<Result<_>>()?;
        let mut candidates: Vec<(u32, u32)> = keys
            .par_iter()
            .zip(&senders)
            .enumerate()
            .flat_map_iter(|(k, (key, &sender))| {
                let key_day = key.tek.validity().start().get() / kith_core::INTERVALS_PER_DAY;
                let contacts = key_day
                    .checked_sub(EPOCH_DAY)
                    .and_then(|d| radio.diary.day(d));
                contacts
                    .into_iter()
                    .flat_map(move |contacts| contacts.of(sender))
                    .map(move |c| radio.phones.phone_of[c.other(sender) as usize])
                    .filter(|&phone| phone != NONE)
                    .map(move |phone| (phone, k as u32))
            })
            .collect();
        candidates.par_sort_unstable();
        candidates.dedup();
        let groups: Vec<&[(u32, u32)]> = candidates.chunk_by(|x, y| x.0 == y.0).collect();
        // Every phone would derive the same identifiers of a published key: derive
        // them once (tests/sim/per_device.rs checks this against the per-device path).
        let mut heard_keys: Vec<u32> = candidates.iter().map(|&(_, k)| k).collect();
        heard_keys.sort_unstable();
        heard_keys.dedup();
        let derived: Vec<KeyBeacons> = heard_keys
            .par_iter()
            .map(|&k| KeyBeacons::new(radio, &keys[k as usize], senders[k as usize]))
            .collect();
        let beacons_of = |k: u32| &derived[heard_keys.binary_search(&k).expect("derived above")];
        let matched: Vec<(u32, Vec<(ExposureWindow, u32)>)> = groups
            .par_iter()
            .map_init(Scratch::default, |scratch, group| {
                let phone = group[0].0;
                let mine: Vec<(&DiagnosisKey, &KeyBeacons)> = group
                    .iter()
                    .map(|&(_, k)| (&keys[k as usize], beacons_of(k)))
                    .collect();
                (
                    phone,
                    phone_windows(
                        radio,
                        phone,
                        &mine,
                        day.saturating_sub(RETENTION_DAYS),
                        scratch,
                    ),
                )
            })
            .filter(|(_, windows)| !windows.is_empty())
            .collect();

        let now = unix_time(day + 1, 0) - 1;
        let configs = &self.configs;
        let mut updated: Vec<Update> = matched
            .into_iter()
            .map(|(phone, windows)| {
                let state = self
                    .phones
                    .get_mut(phone as usize)
                    .and_then(Option::take)
                    .unwrap_or_else(|| PhoneExposures::new(configs.len()));
                (phone, state, windows)
            })
            .collect();
        let outcomes: Vec<(Vec<bool>, Option<Notification>)> = updated
            .par_iter_mut()
            .map(|(phone, state, windows)| {
                let agent = radio.phones.agent_of[*phone as usize];
                state.forget_before(day);
                let changed = state.add(std::mem::take(windows));
                let mut first_times = vec![false; configs.len()];
                let mut notification = None;
                for (c, (_, config)) in configs.iter().enumerate() {
                    let (risk_level, days) = state.risk(c, config, &changed, now);
                    if risk_level.is_none() {
                        continue;
                    }
                    let new_days: Vec<Day> = days
                        .iter()
                        .copied()
                        .filter(|d| !state.notified_days[c].contains(d))
                        .collect();
                    if new_days.is_empty() {
                        continue;
                    }
                    first_times[c] = state.notified_days[c].is_empty();
                    state.notified_days[c].extend(&new_days);
                    if c == 0 {
                        notification = Some(notification_of(agent, config, state, &new_days));
                    }
                }
                (first_times, notification)
            })
            .collect();
        let mut result = AppDay {
            export_bytes: 0,
            keys: keys.len(),
            matched_phones: updated.len(),
            notifications: Vec::new(),
            notified_by_config: vec![Vec::new(); configs.len()],
        };
        for ((phone, state, _), (first_times, notification)) in updated.into_iter().zip(outcomes) {
            let agent = radio.phones.agent_of[phone as usize];
            for (c, first) in first_times.into_iter().enumerate() {
                if first {
                    result.notified_by_config[c].push(agent);
                }
            }
            result.notifications.extend(notification);
            if self.phones.len() <= phone as usize {
                self.phones.resize_with(phone as usize + 1, || None);
            }
            self.phones[phone as usize] = Some(state);
        }
        Ok(result)
    }

    /// What `phone`'s engine concludes on `day` under the primary configuration:
    /// the exposure summary of the windows it still keeps.
    pub fn summary(&self, phone: u32, day: u32) -> ExposureSummary {
        let windows: Vec<ExposureWindow> = self
            .windows_of(phone)
            .iter()
            .filter(|w| w.day() >= calendar_day(day.saturating_sub(RETENTION_DAYS - 1)))
            .cloned()
            .collect();
        self.configs[0]
            .1
            .assess(&windows, unix_time(day + 1, 0) - 1)
    }

    /// The exposure windows a phone holds (for tests and the individuals file).
    pub fn windows_of(&self, phone: u32) -> &[ExposureWindow] {
        self.phone(phone).map_or(&[], |p| &p.windows)
    }
}

fn notification_of(
    agent: u32,
    config: &RiskModel,
    state: &PhoneExposures,
    days: &[Day],
) -> Notification {
    // The attenuation buckets the model asks the phone's engine for.
    let buckets = config.exposure_configuration();
    let mut bucket = 3;
    let mut senders = Vec::new();
    // A day's windows found by their start times (held in day order), rather than
    // the day of every window held.
    for day in days {
        let lo = state.windows.partition_point(|w| w.start < day.start());
        let hi = state
            .windows
            .partition_point(|w| w.start < day.plus(1).start());
        senders.extend_from_slice(&state.senders[lo..hi]);
        for window in &state.windows[lo..hi] {
            for scan in &window.scan_instances {
                bucket = bucket.min(buckets.attenuation_bucket(scan.typical_attenuation));
            }
        }
    }
    senders.sort_unstable();
    senders.dedup();
    Notification {
        agent,
        exposure_day: days.iter().max().map_or(0, |d| d.get()) - EPOCH_DAY,
        bucket,
        senders,
    }
}

/// The beacons of one published key, derived once a day for every phone that may have
/// heard it: the RPI and AEM of each interval of its day, and the key's AEMK.
struct KeyBeacons {
    /// The uploader (an agent).
    owner: u32,
    /// The sim day of the key.
    day: u32,
    /// The key's intervals, relative to its day (today's key is cut at the upload).
    intervals: std::ops::Range<u32>,
    /// Identifiers by interval of the day.
    beacons: Vec<(kith_core::Rpi, kith_core::Aem)>,
    /// What decrypts the metadata of the key's beacons.
    aemk: kith_core::AemKey,
}

impl KeyBeacons {
    fn new(radio: &Radio<'_>, key: &DiagnosisKey, owner: u32) -> Self {
        let validity = key.tek.validity();
        let day = validity.start().get() / kith_core::INTERVALS_PER_DAY - EPOCH_DAY;
        let first = day_interval(day).get();
        let phone = radio.phones.phone_of[owner as usize];
        let (rpik, aemk) = key.tek.derive_keys();
        let mut rpis =
            vec![kith_core::Rpi::from_bytes([0; 16]); kith_core::INTERVALS_PER_DAY as usize];
        rpik.rpis_into(day_interval(day), &mut rpis);
        let aems = aemk.encrypt_all(&rpis, metadata(radio.phones.model[phone as usize]));
        let beacons = rpis.into_iter().zip(aems).collect();
        Self {
            owner,
            day,
            intervals: validity.range().start - first..validity.range().end - first,
            beacons,
            aemk,
        }
    }

    /// What matching finds of this key in one recorded sighting: the RPI looked up
    /// among the key's identifiers at the sighting's interval (sender and receiver
    /// clocks agree, so no other interval within the drift tolerance can hold it),
    /// and the metadata decrypted with the key's AEMK and checked as core checks it.
    fn matched(&self, sighting: Sighting) -> Option<MatchedSighting> {
        let interval = sighting.interval();
        let slot = interval.get().checked_sub(day_interval(self.day).get())?;
        if !self.intervals.contains(&slot) || self.beacons[slot as usize].0 != sighting.rpi {
            return None;
        }
        let metadata =
            BluetoothMetadata::parse(self.aemk.decrypt(sighting.rpi, sighting.aem)).ok()?;
        TX_POWER_RANGE
            .contains(&metadata.tx_power())
            .then_some(MatchedSighting {
                sighting,
                interval,
                metadata,
            })
    }
}

/// Buffers one thread reuses from phone to phone.
#[derive(Default)]
struct Scratch {
    heard: Vec<Heard>,
    sightings: Vec<Sighting>,
    scans: Vec<Scan>,
    previous: Vec<Scan>,
    /// Matches and their keys' owners.
    matches: Vec<(Match, u32)>,
}

/// Matching on one phone: the phone's sightings of the keys' owners on the keys'
/// days, each looked up in the identifiers of the published keys derived once for
/// every phone ([`KeyBeacons`]); exposure windows from core's [`ScanTimeline`] over
/// those sightings and the scans before them. `oldest` is the first day of sightings
/// the phone still keeps. `tests/sim/per_device.rs` checks this against core's
/// [`kith_core::SightingIndex`] and [`kith_core::ExposureEngine`] on sampled phones.
fn phone_windows(
    radio: &Radio<'_>,
    phone: u32,
    keys: &[(&DiagnosisKey, &KeyBeacons)],
    oldest: u32,
    scratch: &mut Scratch,
) -> Vec<(ExposureWindow, u32)> {
    let Scratch {
        heard,
        sightings,
        scans,
        previous,
        matches,
    } = scratch;
    sightings.clear();
    matches.clear();
    scans.clear();
    let mut phone_scans = PhoneScans::new(radio, phone);
    for &(key, beacons) in keys {
        heard.clear();
        phone_scans.heard_from(beacons.day, beacons.owner, heard);
        let first = sightings.len();
        scans.extend(heard.iter().map(|h| h.scan));
        sightings.extend(heard.iter().map(|h| {
            let (rpi, aem) = beacons.beacons[(h.scan.second / 600) as usize];
            h.sighting(rpi, aem)
        }));
        let found = sightings[first..]
            .iter()
            .filter_map(|&s| beacons.matched(s))
            .collect();
        matches.extend(Match::new(key.clone(), found).map(|m| (m, beacons.owner)));
    }
    if matches.is_empty() {
        return Vec::new();
    }
    // The timeline of the scans that heard the keys' owners and of their previous
    // heard scans, built from one record per scan in scan order (core then sorts
    // nothing). Scans come in runs (each contact's in order), which a stable sort
    // merges rather than sorts.
    let by_number = |s: &Scan| (s.day, s.k);
    scans.sort_by_key(by_number);
    scans.dedup();
    previous.clear();
    previous.extend(scans.iter().enumerate().filter_map(|(i, &scan)| {
        // A scan right after a known one has it as its previous heard scan.
        if i > 0 && by_number(&scans[i - 1]) == (scan.day, scan.k.wrapping_sub(1)) {
            return None;
        }
        phone_scans.heard_before(scan, oldest, scans).filter(|p| {
            scans
                .binary_search_by_key(&by_number(p), by_number)
                .is_err()
        })
    }));
    scans.append(previous);
    scans.sort_by_key(by_number);
    scans.dedup();
    let timeline = ScanTimeline::from_scans(scans.iter().map(|s| s.timeline_entry()));
    let correction = radio.phones.model[phone as usize].rssi_correction;
    matches
        .iter()
        .flat_map(|(m, owner)| {
            ExposureWindow::from_match(m, &timeline, correction)
                .into_iter()
                .map(move |w| (w, *owner))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_follow_the_duty_cycle() {
        let streams = Streams::new(1);
        for phone in 0..50 {
            let s = ScanSchedule::of(&streams, phone, 3, [210, 300]);
            let scans: Vec<(u32, u32)> = s.within(0, SECONDS_PER_DAY).collect();
            assert!((288..=412).contains(&scans.len()), "{}", scans.len());
            for pair in scans.windows(2) {
                assert!((210..=300).contains(&(pair[1].1 - pair[0].1)));
            }
            let later: Vec<(u32, u32)> = s.within(3600, 7200).collect();
            assert!(later.iter().all(|&(_, t)| (3600..7200).contains(&t)));
            assert_eq!(later[0], *scans.iter().find(|&&(_, t)| t >= 3600).unwrap());
        }
    }

    #[test]
    fn uploads_are_the_last_14_daily_keys_with_today_cut() {
        let streams = Streams::new(2);
        let keys = keys_to_upload(&streams, 7, 20, 18);
        assert_eq!(keys.len(), 14);
        assert_eq!(keys[0].tek, daily_key(&streams, 7, 7));
        assert_eq!(keys[0].days_since_onset.unwrap().get(), -11);
        let today = keys[13].tek.validity();
        assert_eq!(today.start(), day_interval(20));
        assert_eq!(today.period().get(), 73, "cut after the upload's interval");
        assert_ne!(daily_key(&streams, 7, 7), daily_key(&streams, 8, 7));
    }

    /// Scoring only the days with new windows gives what scoring all windows gives,
    /// day after day, as windows arrive out of day order and days age out.
    #[test]
    fn day_by_day_scoring_is_full_scoring() {
        use kith_core::risk::ScanInstance;
        let streams = Streams::new(3);
        let mut recent = RiskConfig::enx_with_15_minute_alert();
        recent.days_since_exposure_threshold = 4;
        recent.minimum_window_score = 200.0;
        let models: Vec<RiskModel> = vec![
            risk_config("enx").unwrap(),
            risk_config("apple").unwrap(),
            risk_config("threshold:55").unwrap(),
            recent.into(),
        ];
        let mut phone = PhoneExposures::new(models.len());
        let mut reached = 0;
        for today in 0..30u32 {
            let now = unix_time(today + 1, 0) - 1;
            phone.forget_before(today);
            let found: Vec<(ExposureWindow, u32)> =
                (0..streams.bits(Purpose::App, [9, today.into(), 0]) % 4)
                    .map(|k| {
                        let bits = |i| streams.bits(Purpose::App, [u64::from(today), k, i]);
                        let day = today.saturating_sub((bits(1) % 14) as u32);
                        let scans = (0..1 + bits(2) % 8)
                            .map(|j| ScanInstance {
                                typical_attenuation: 40 + (bits(10 + j) % 40) as u8,
                                min_attenuation: 40,
                                seconds_since_last_scan: 60 * (1 + (bits(20 + j) % 5)) as u16,
                            })
                            .collect();
                        let window = ExposureWindow {
                            start: unix_time(day, (bits(3) % 80_000) as u32),
                            report_type: ReportType::ConfirmedTest,
                            days_since_onset: DaysSinceOnset::new((bits(4) % 29) as i32 - 14).ok(),
                            calibration_confidence: CalibrationConfidence::High,
                            scan_instances: scans,
                        };
                        (window, k as u32)
                    })
                    .collect();
            let changed = phone.add(found);
            for (c, model) in models.iter().enumerate() {
                let full = model.assess(&phone.windows, now);
                let (level, days) = phone.risk(c, model, &changed, now);
                assert_eq!(
                    (level, &days),
                    (full.risk_level, &full.days),
                    "day {today}, model {c}"
                );
                reached += usize::from(level.is_some());
            }
        }
        assert!(reached > 10, "too few risky days to compare: {reached}");
    }

    #[test]
    fn threshold_configs_name_their_bucket() {
        let config = risk_config("threshold:55")
            .unwrap()
            .exposure_configuration();
        assert_eq!(config.attenuation_bucket(55), 0);
        assert_eq!(config.attenuation_bucket(56), 3);
        assert!(risk_config("threshold:x").is_err());
        assert!(risk_config("/no/such/file.json").is_err());
    }
}
