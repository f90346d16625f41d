//! One run: the daily loop of contacts, transmission, testing, tracing and the app.

use std::collections::{HashMap, HashSet};

use kith_core::DiagnosisKey;
use rayon::prelude::*;

use crate::app::{self, Authority, Exposures, Phones, RETENTION_DAYS, Radio};
use crate::ble::{Channel, ModelTable};
use crate::contacts::{Contact, ContactDrawer, Shapes};
use crate::diary::Diary;
use crate::disease::{Course, NEVER, Profile, calibrate_beta};
use crate::error::Result;
use crate::population::{NONE, Population};
use crate::rng::{Purpose, Streams};
use crate::scenario::{Scenario, Setting};
use crate::stats::{Daily, Transmission};

/// Contacts per parallel transmission task.
const CONTACT_CHUNK: usize = 32_768;
/// A person's status for transmission today: can infect.
const INFECTIOUS: u8 = 1;
/// ... or can be infected.
const SUSCEPTIBLE: u8 = 2;

/// Whether the app runs in this arm of the experiment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arm {
    /// Phones exchange beacons, upload and notify.
    WithApp,
    /// The same people and epidemic, nobody running the app.
    WithoutApp,
}

/// What happens to someone on a given day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Event {
    /// Symptoms start.
    Onset(u32),
    /// A test is taken.
    Test(u32),
    /// A test result arrives.
    Result(u32, bool),
    /// Keys are uploaded.
    Upload(u32),
    /// Case workers trace the contacts of a positive person.
    Trace(u32),
}

/// Per-person state, one column per field.
#[derive(Debug)]
pub struct People {
    /// Day of infection, or [`NEVER`].
    pub infected: Vec<u16>,
    /// Symptom onset, or [`NEVER`].
    pub onset: Vec<u16>,
    /// End of infectiousness, or [`NEVER`].
    pub recovery: Vec<u16>,
    /// Whether the infection is asymptomatic.
    pub asymptomatic: Vec<bool>,
    /// Who infected them, or [`NONE`].
    pub infector: Vec<u32>,
    /// How many they infected.
    pub infections_caused: Vec<u16>,
    /// Day of the positive result, or [`NEVER`].
    pub diagnosed: Vec<u16>,
    /// Day of the upload, or [`NEVER`].
    pub uploaded: Vec<u16>,
    /// Day of the first notification, or [`NEVER`].
    pub notified: Vec<u16>,
    /// Tests taken.
    pub tests: Vec<u8>,
    /// Isolated up to (excluding) this day.
    pub isolated_until: Vec<u16>,
    /// Quarantined up to (excluding) this day.
    pub quarantined_until: Vec<u16>,
    /// Days spent in quarantine.
    pub quarantine_days: Vec<u16>,
}

impl People {
    fn new(n: usize) -> Self {
        Self {
            infected: vec![NEVER; n],
            onset: vec![NEVER; n],
            recovery: vec![NEVER; n],
            asymptomatic: vec![false; n],
            infector: vec![NONE; n],
            infections_caused: vec![0; n],
            diagnosed: vec![NEVER; n],
            uploaded: vec![NEVER; n],
            notified: vec![NEVER; n],
            tests: vec![0; n],
            isolated_until: vec![0; n],
            quarantined_until: vec![0; n],
            quarantine_days: vec![0; n],
        }
    }

    /// Whether `agent` can infect on `day`.
    fn infectious(&self, agent: usize, day: u16) -> bool {
        self.infected[agent] < day && day < self.recovery[agent]
    }

    /// The transmission factor of `agent`'s isolation or quarantine in `setting`.
    fn restriction(&self, agent: usize, day: u16, setting: Setting, scenario: &Scenario) -> f64 {
        let at_home = usize::from(setting != Setting::Household);
        if self.isolated_until[agent] > day {
            scenario.disease.isolation_factor[at_home]
        } else if self.quarantined_until[agent] > day {
            scenario.disease.quarantine_factor[at_home]
        } else {
            1.0
        }
    }
}

/// A run of one scenario with one seed in one arm.
#[derive(Debug)]
pub struct Simulation {
    /// The scenario.
    pub scenario: Scenario,
    /// The arm.
    pub arm: Arm,
    /// The seed.
    pub seed: u64,
    /// Its random streams.
    pub streams: Streams,
    /// The population.
    pub population: Population,
    /// Everyone's state.
    pub people: People,
    /// App users and their phones (none without the app).
    pub phones: Phones,
    /// The health authority's export signer.
    pub authority: Authority,
    /// What phones have matched.
    pub exposures: Exposures,
    /// Contacts of the last days.
    pub diary: Diary,
    /// How long and how close contacts are.
    pub shapes: Shapes,
    /// The Bluetooth channel.
    pub channel: Channel,
    /// The infectiousness profile.
    pub profile: Profile,
    /// The calibrated transmission rate.
    pub beta: f64,
    /// The next day to simulate.
    pub day: u32,
    /// One row per simulated day.
    pub daily: Vec<Daily>,
    /// Every infection.
    pub transmissions: Vec<Transmission>,
    /// The export file of the last day (empty when no one uploaded).
    pub last_export: Vec<u8>,
    /// App users who had a close contact (< 2 m, ≥ 15 min) with an uploader on a day
    /// of the uploaded keys: the truth notifications are measured against.
    pub close_contacts: HashSet<u32>,
    /// People notified at least once, per risk configuration (primary first).
    pub notified_by_config: Vec<HashSet<u32>>,
    /// Notifications per uploader (primary configuration).
    pub notifications_per_uploader: HashMap<u32, u32>,
    /// Day of the first action the app caused (a notification), if any.
    pub app_first_acted: Option<u32>,
    agenda: Vec<Vec<Event>>,
    uploads_today: Vec<u32>,
    drawer: ContactDrawer,
    /// Everyone's [`INFECTIOUS`] or [`SUSCEPTIBLE`] status of the day.
    status: Vec<u8>,
}

impl Simulation {
    /// Builds the population, phones and calibration of `scenario` with `seed`.
    pub fn new(scenario: &Scenario, seed: u64, arm: Arm) -> Result<Self> {
        let streams = Streams::new(seed);
        let population = Population::new(scenario, &streams);
        let table = if scenario.ble.calibration_csv.is_empty() {
            ModelTable::builtin()
        } else {
            ModelTable::from_csv(scenario.ble.calibration_csv.as_ref())?
        };
        let mut app_scenario = scenario.clone();
        if arm == Arm::WithoutApp {
            app_scenario.app.uptake = 0.0;
        }
        let phones = Phones::new(
            &population,
            &app_scenario,
            &streams,
            &table,
            scenario.ble.calibration_error_db,
        );
        let profile = Profile::new(&scenario.disease);
        let mut drawer = ContactDrawer::default();
        let day0 = drawer.draw(&population, scenario, &streams, 0);
        let settings = &scenario.network.settings;
        let beta = calibrate_beta(
            &scenario.disease,
            &profile,
            day0,
            |c| settings.get(c.setting).weight,
            population.len(),
        );
        // Case workers ask about the days up to the result, `delay_days` after it;
        // phones and the books of close contacts need only contacts between app users.
        let keep_all = if scenario.tracing.enabled {
            scenario.tracing.delay_days + scenario.tracing.lookback_days + 1
        } else {
            0
        };
        let keep_app = if phones.is_empty() { 0 } else { RETENTION_DAYS };
        let n = population.len();
        let configs = Exposures::new(scenario)?;
        let configs_count = configs.configs.len();
        let mut sim = Self {
            scenario: scenario.clone(),
            arm,
            seed,
            streams,
            population,
            people: People::new(n),
            phones,
            authority: Authority::new(&streams),
            exposures: configs,
            diary: Diary::new(n, keep_all, keep_app),
            shapes: Shapes::new(settings),
            channel: Channel::new(&scenario.ble, settings),
            profile,
            beta,
            day: 0,
            daily: Vec::new(),
            transmissions: Vec::new(),
            last_export: Vec::new(),
            close_contacts: HashSet::new(),
            notified_by_config: vec![HashSet::new(); configs_count],
            notifications_per_uploader: HashMap::new(),
            app_first_acted: None,
            agenda: vec![Vec::new(); scenario.days as usize + 64],
            uploads_today: Vec::new(),
            drawer,
            status: Vec::new(),
        };
        sim.seed_infections();
        Ok(sim)
    }

    fn seed_infections(&mut self) {
        let n = self.population.len() as u64;
        let mut chosen = HashSet::new();
        let mut k = 0;
        while chosen.len() < self.scenario.initial_infections as usize {
            let agent = (self.streams.bits(Purpose::Disease, [0, 2 << 40, k]) % n) as u32;
            k += 1;
            if chosen.insert(agent) {
                self.infect(agent, NONE, Setting::Community, 0);
            }
        }
    }

    fn infect(&mut self, agent: u32, source: u32, setting: Setting, day: u16) {
        let course = Course::draw(&self.scenario.disease, &self.streams, agent, day);
        let a = agent as usize;
        self.people.infected[a] = day;
        self.people.onset[a] = course.onset;
        self.people.recovery[a] = course.recovery;
        self.people.asymptomatic[a] = course.asymptomatic;
        self.people.infector[a] = source;
        if source != NONE {
            self.people.infections_caused[source as usize] += 1;
        }
        if course.onset != NEVER {
            self.schedule(u32::from(course.onset), Event::Onset(agent));
        }
        self.transmissions.push(Transmission {
            source,
            recipient: agent,
            setting,
            day,
        });
    }

    fn schedule(&mut self, day: u32, event: Event) {
        if let Some(slot) = self.agenda.get_mut(day as usize) {
            slot.push(event);
        }
    }

    /// Whether every day has been simulated.
    pub fn finished(&self) -> bool {
        self.day >= self.scenario.days
    }

    /// Simulates the next day.
    pub fn step(&mut self) -> Result<()> {
        let day = self.day;
        let t = day as u16;
        // The drawer lends today's contacts while `self` changes around them.
        let mut drawer = std::mem::take(&mut self.drawer);
        let contacts = drawer.draw(&self.population, &self.scenario, &self.streams, day);
        let mut row = Daily {
            day,
            ..Daily::default()
        };
        row.new_infections = self.transmit(contacts, t);

        let mut events = std::mem::take(&mut self.agenda[day as usize]);
        let mut next = 0;
        while next < events.len() {
            let event = events[next];
            next += 1;
            self.handle(event, t, &mut row, &mut events);
        }

        // The diary holds today before phones match and case workers trace.
        let phones = &self.phones;
        self.diary.push(day, contacts, |a| phones.has_app(a));
        self.drawer = drawer;
        self.exposures.forget_before(day);
        if !self.uploads_today.is_empty() {
            self.publish_and_match(day, &mut row)?;
        } else {
            self.last_export.clear();
        }
        let traces: Vec<u32> = std::mem::take(&mut self.agenda[day as usize])
            .into_iter()
            .filter_map(|e| match e {
                Event::Trace(a) => Some(a),
                _ => None,
            })
            .collect();
        for index in traces {
            self.trace(index, t, &mut row);
        }
        self.count(t, &mut row);
        self.daily.push(row);
        self.day += 1;
        Ok(())
    }

    /// Infections passed along today's contacts; returns how many.
    fn transmit(&mut self, contacts: &[Contact], t: u16) -> u32 {
        let people = &self.people;
        let scenario = &self.scenario;
        let streams = &self.streams;
        let profile = &self.profile;
        let beta = self.beta;
        let asym = scenario.disease.asymptomatic_infectiousness;
        // One byte per person, so the pass over millions of contacts reads a small
        // array rather than the infection and recovery days of both ends.
        self.status.clear();
        self.status
            .par_extend((0..people.infected.len()).into_par_iter().map(|i| {
                if people.infectious(i, t) {
                    INFECTIOUS
                } else if people.infected[i] == NEVER {
                    SUSCEPTIBLE
                } else {
                    0
                }
            }));
        let status = &self.status;
        let mut infections: Vec<(u32, u32, u32)> = contacts
            .par_chunks(CONTACT_CHUNK)
            .enumerate()
            .flat_map_iter(|(chunk, cs)| {
                let mut out = Vec::new();
                for (i, c) in cs.iter().enumerate() {
                    if (status[c.a as usize] | status[c.b as usize]) & INFECTIOUS == 0 {
                        continue;
                    }
                    let index = (chunk * CONTACT_CHUNK + i) as u32;
                    for (src, dst) in [(c.a, c.b), (c.b, c.a)] {
                        let (s, d) = (src as usize, dst as usize);
                        if status[s] != INFECTIOUS || status[d] != SUSCEPTIBLE {
                            continue;
                        }
                        let rho = if people.asymptomatic[s] { asym } else { 1.0 };
                        let tau = u32::from(t - people.infected[s]);
                        let hazard = beta
                            * scenario.network.settings.get(c.setting).weight
                            * profile.at(tau)
                            * rho
                            * people.restriction(s, t, c.setting, scenario)
                            * people.restriction(d, t, c.setting, scenario);
                        let u = streams.uniform(
                            Purpose::Disease,
                            [u64::from(t), u64::from(index), u64::from(src == c.a)],
                        );
                        if u < 1.0 - (-hazard).exp() {
                            out.push((dst, index, src));
                        }
                    }
                }
                out
            })
            .collect();
        infections.sort_unstable();
        infections.dedup_by_key(|(dst, _, _)| *dst);
        for &(dst, index, src) in &infections {
            self.infect(dst, src, contacts[index as usize].setting, t);
        }
        infections.len() as u32
    }

    fn handle(&mut self, event: Event, t: u16, row: &mut Daily, today: &mut Vec<Event>) {
        let day = u32::from(t);
        let testing = self.scenario.testing.clone();
        let mut later = |sim: &mut Self, delay: u32, e: Event| {
            if delay == 0 {
                today.push(e);
            } else {
                sim.schedule(day + delay, e);
            }
        };
        match event {
            Event::Onset(a) => {
                row.new_symptomatic += 1;
                let counters = [u64::from(a), u64::from(t), 1];
                if self.streams.chance(
                    Purpose::Testing,
                    counters,
                    testing.symptomatic_test_probability,
                ) {
                    later(self, testing.test_delay_days, Event::Test(a));
                }
            }
            Event::Test(a) => {
                let i = a as usize;
                if self.people.diagnosed[i] != NEVER {
                    return;
                }
                row.new_tests += 1;
                self.people.tests[i] = self.people.tests[i].saturating_add(1);
                let infected = self.people.infected[i] <= t && t < self.people.recovery[i];
                let counters = [u64::from(a), u64::from(t), 2];
                let positive = infected
                    && self
                        .streams
                        .chance(Purpose::Testing, counters, testing.sensitivity);
                later(self, testing.result_delay_days, Event::Result(a, positive));
            }
            Event::Result(a, positive) => {
                let i = a as usize;
                if !positive || self.people.diagnosed[i] != NEVER {
                    return;
                }
                self.people.diagnosed[i] = t;
                row.new_diagnoses += 1;
                let counters = [u64::from(a), u64::from(t), 3];
                if self
                    .streams
                    .chance(Purpose::Testing, counters, testing.isolation_compliance)
                {
                    let until = t.saturating_add(testing.isolation_days as u16);
                    self.people.isolated_until[i] = self.people.isolated_until[i].max(until);
                }
                let app = &self.scenario.app;
                if self.phones.has_app(a)
                    && self.streams.chance(
                        Purpose::App,
                        [u64::from(a), u64::from(t), 4],
                        app.upload_compliance,
                    )
                {
                    let delay = app.upload_delay_days;
                    later(self, delay, Event::Upload(a));
                }
                if self.scenario.tracing.enabled {
                    let delay = self.scenario.tracing.delay_days;
                    self.schedule(day + delay, Event::Trace(a));
                }
            }
            Event::Upload(a) => {
                if self.people.uploaded[a as usize] == NEVER {
                    self.people.uploaded[a as usize] = t;
                    self.uploads_today.push(a);
                    row.new_uploads += 1;
                }
            }
            Event::Trace(a) => self.agenda[day as usize].push(Event::Trace(a)),
        }
    }

    /// Today's uploads become a signed export; every phone ingests it.
    fn publish_and_match(&mut self, day: u32, row: &mut Daily) -> Result<()> {
        let mut keys: Vec<DiagnosisKey> = Vec::new();
        let mut owner: HashMap<[u8; 16], u32> = HashMap::new();
        for agent in std::mem::take(&mut self.uploads_today) {
            let a = agent as usize;
            let phone = self.phones.phone_of[a];
            let onset = if self.people.onset[a] != NEVER {
                self.people.onset[a]
            } else {
                self.people.diagnosed[a]
            };
            for key in app::keys_to_upload(&self.streams, phone, day, u32::from(onset)) {
                owner.insert(*key.tek.expose_secret(), agent);
                keys.push(key);
            }
            self.mark_close_contacts(agent, day);
        }
        self.last_export = self.authority.export(day, &keys)?;
        let export = self.authority.verify(&self.last_export)?;
        let radio = Radio {
            streams: &self.streams,
            channel: &self.channel,
            phones: &self.phones,
            diary: &self.diary,
            shapes: &self.shapes,
        };
        let result = self.exposures.ingest(&radio, day, &export, &owner)?;
        row.new_keys_published = result.keys as u32;
        row.export_bytes = self.last_export.len() as u64;
        row.new_matched_phones = result.matched_phones as u32;
        for (c, agents) in result.notified_by_config.iter().enumerate() {
            self.notified_by_config[c].extend(agents);
        }
        let app = self.scenario.app.clone();
        let t = day as u16;
        for n in result.notifications {
            row.new_notifications += 1;
            let truth = self.close_contacts.contains(&n.agent);
            if truth {
                row.new_notified_true += 1;
                row.new_notified_true_by_bucket[n.bucket] += 1;
            } else {
                row.new_notified_false += 1;
                row.new_notified_false_by_bucket[n.bucket] += 1;
            }
            for s in &n.senders {
                *self.notifications_per_uploader.entry(*s).or_default() += 1;
            }
            let i = n.agent as usize;
            if self.people.notified[i] == NEVER {
                self.people.notified[i] = t;
            }
            self.app_first_acted.get_or_insert(day);
            let counters = |k| [u64::from(n.agent), u64::from(day), k];
            if self
                .streams
                .chance(Purpose::App, counters(5), app.quarantine_compliance)
            {
                let until = (n.exposure_day + app.quarantine_days).max(day + 1) as u16;
                if until > self.people.quarantined_until[i] {
                    row.new_quarantined += 1;
                }
                self.people.quarantined_until[i] = self.people.quarantined_until[i].max(until);
            }
            if self
                .streams
                .chance(Purpose::App, counters(6), app.test_probability)
            {
                self.schedule(day + 1, Event::Test(n.agent));
            }
        }
        Ok(())
    }

    /// Records which app users had a close contact with `uploader` on its keys' days.
    fn mark_close_contacts(&mut self, uploader: u32, today: u32) {
        for day in today.saturating_sub(RETENTION_DAYS - 1)..=today {
            let Some(contacts) = self.diary.day(day) else {
                continue;
            };
            for c in contacts.of(uploader) {
                let other = c.other(uploader);
                if self.phones.has_app(other)
                    && self.shapes.meeting(&self.streams, day, &c).is_close()
                {
                    self.close_contacts.insert(other);
                }
            }
        }
    }

    /// Manual tracing: the household and a share of the remembered contacts of the
    /// days before the result are asked to quarantine.
    fn trace(&mut self, index: u32, t: u16, row: &mut Daily) {
        let tracing = self.scenario.tracing.clone();
        let diagnosed = u32::from(self.people.diagnosed[index as usize]);
        let mut traced = Vec::new();
        for day in diagnosed.saturating_sub(tracing.lookback_days)..=diagnosed {
            let Some(contacts) = self.diary.day(day) else {
                continue;
            };
            for c in contacts.of(index) {
                let other = c.other(index);
                let remembered = c.setting == Setting::Household
                    || self.streams.chance(
                        Purpose::Tracing,
                        [u64::from(index), u64::from(other), u64::from(day)],
                        tracing.traced_fraction,
                    );
                if remembered {
                    traced.push(other);
                }
            }
        }
        traced.sort_unstable();
        traced.dedup();
        for other in traced {
            let counters = [u64::from(other), u64::from(t), 1 << 20];
            if self
                .streams
                .chance(Purpose::Tracing, counters, tracing.compliance)
            {
                let until = t.saturating_add(tracing.quarantine_days as u16);
                let q = &mut self.people.quarantined_until[other as usize];
                if until > *q {
                    row.new_quarantined += 1;
                    *q = until;
                }
            }
        }
    }

    /// The day's stocks.
    fn count(&mut self, t: u16, row: &mut Daily) {
        let p = &self.people;
        let stocks = (0..self.population.len())
            .into_par_iter()
            .fold(Stocks::default, |mut s, i| {
                let infected = p.infected[i];
                if infected == NEVER {
                    s.susceptible += 1;
                } else if t >= p.recovery[i] {
                    s.recovered += 1;
                } else if infected == t {
                    s.exposed += 1;
                } else {
                    s.infectious += 1;
                    if p.onset[i] <= t {
                        s.symptomatic += 1;
                    }
                }
                s.diagnosed += u32::from(p.diagnosed[i] <= t);
                s.isolated += u32::from(p.isolated_until[i] > t);
                s.quarantined += u32::from(p.quarantined_until[i] > t);
                s
            })
            .reduce(Stocks::default, Stocks::add);
        let people = &mut self.people;
        people
            .quarantine_days
            .par_iter_mut()
            .zip(&people.quarantined_until)
            .for_each(|(days, &until)| *days += u16::from(until > t));
        row.n_susceptible = stocks.susceptible;
        row.n_exposed = stocks.exposed;
        row.n_infectious = stocks.infectious;
        row.n_symptomatic = stocks.symptomatic;
        row.n_recovered = stocks.recovered;
        row.n_diagnosed = stocks.diagnosed;
        row.n_isolated = stocks.isolated;
        row.n_quarantined = stocks.quarantined;
        let previous = self.daily.last().cloned().unwrap_or_default();
        row.accumulate(&previous);
    }

    /// The effective reproduction number by infection date of the days simulated
    /// (see [`Daily::r_eff`]).
    pub fn r_eff(&self) -> Vec<f64> {
        crate::stats::r_eff_by_day(
            &self.people.infected,
            &self.people.infections_caused,
            self.day,
        )
    }

    /// Runs every remaining day; `progress` is told after each.
    pub fn run(&mut self, mut progress: impl FnMut(&Self)) -> Result<()> {
        while !self.finished() {
            self.step()?;
            progress(self);
        }
        Ok(())
    }

    /// The radio view phones match with (for tests of the per-device path).
    pub fn radio(&self) -> Radio<'_> {
        Radio {
            streams: &self.streams,
            channel: &self.channel,
            phones: &self.phones,
            diary: &self.diary,
            shapes: &self.shapes,
        }
    }
}

#[derive(Clone, Copy, Default)]
struct Stocks {
    susceptible: u32,
    exposed: u32,
    infectious: u32,
    symptomatic: u32,
    recovered: u32,
    diagnosed: u32,
    isolated: u32,
    quarantined: u32,
}

impl Stocks {
    fn add(a: Self, b: Self) -> Self {
        Self {
            susceptible: a.susceptible + b.susceptible,
            exposed: a.exposed + b.exposed,
            infectious: a.infectious + b.infectious,
            symptomatic: a.symptomatic + b.symptomatic,
            recovered: a.recovered + b.recovered,
            diagnosed: a.diagnosed + b.diagnosed,
            isolated: a.isolated + b.isolated,
            quarantined: a.quarantined + b.quarantined,
        }
    }
}
