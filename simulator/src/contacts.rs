//! Each day's contacts, re-sampled daily (as OpenABM does): household members meet
//! every day, members of an occupation group meet a random half of the group, and
//! random contacts pair people across the population anew.

use rand::Rng;
use rand::seq::SliceRandom;
use rand_distr::{Distribution, Poisson};
use rayon::prelude::*;

use crate::parallel::{Grouping, fill_parts, split_parts};
use crate::population::Population;
use crate::rng::{Purpose, Streams, normal_quantile, open_unit};
use crate::scenario::{Scenario, Setting, Settings};

/// Minutes in a day.
pub const MINUTES_PER_DAY: u16 = 1440;

/// Two people meeting once on one day. How long and how close they are (a
/// [`Meeting`]) is a pure function of the contact and its day, drawn only when asked
/// for: transmission needs neither, and most contacts never meet a phone's scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Contact {
    /// One person.
    pub a: u32,
    /// The other.
    pub b: u32,
    /// Tells apart contacts of the same two people in the same setting on one day.
    pub salt: u32,
    /// Where they meet.
    pub setting: Setting,
}

/// A placeholder, for storage about to be overwritten.
impl Default for Contact {
    fn default() -> Self {
        Self {
            a: 0,
            b: 0,
            salt: 0,
            setting: Setting::Household,
        }
    }
}

impl Contact {
    /// The person `agent` met.
    pub fn other(&self, agent: u32) -> u32 {
        if self.a == agent { self.b } else { self.a }
    }
}

/// When, how long and how close two people are in one contact.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meeting {
    /// Minute of the day the contact starts.
    pub start: u16,
    /// Minutes it lasts (the contact ends within the day).
    pub duration: u16,
    /// Distance between them, in centimetres.
    pub distance_cm: u16,
}

impl Meeting {
    /// Distance in metres.
    pub fn distance_m(&self) -> f64 {
        f64::from(self.distance_cm) / 100.0
    }

    /// Whether the contact is "close" as health authorities define it: under 2 m for
    /// at least 15 minutes.
    pub fn is_close(&self) -> bool {
        self.distance_cm < 200 && self.duration >= 15
    }
}

/// Households handled per parallel task.
const HOUSEHOLD_CHUNK: usize = 4096;
/// Occupation groups handled per parallel task.
const GROUP_CHUNK: usize = 256;
/// Random-contact stubs handled per parallel task.
const STUB_CHUNK: usize = 16_384;
/// Mean stubs per bucket of the shuffle: small enough to shuffle in L1 cache.
const STUBS_PER_BUCKET: usize = 2048;

/// Draws each day's contacts into storage kept from day to day (see
/// [`crate::parallel`] for why).
#[derive(Debug, Default)]
pub struct ContactDrawer {
    /// The day's contacts.
    contacts: Vec<Contact>,
    /// Each chunk of occupation groups' contacts, before they are copied in place.
    groups: Vec<Vec<Contact>>,
    /// Each random-contact stub's shuffle bucket.
    buckets: Vec<u32>,
    /// The stubs by bucket: once shuffled, in the day's order.
    stubs: Grouping,
    /// Scratch of the grouping.
    cursor: Vec<u32>,
    /// The lengths of the parts of `contacts`, filled in parallel.
    lens: Vec<usize>,
}

impl ContactDrawer {
    /// The contacts of `day`, in a fixed order (households, occupations, random),
    /// the same on any number of threads.
    pub fn draw(
        &mut self,
        population: &Population,
        scenario: &Scenario,
        streams: &Streams,
        day: u32,
    ) -> &[Contact] {
        let contact = |a: u32, b: u32, setting: Setting, salt: u32| Contact {
            a,
            b,
            salt,
            setting,
        };
        self.lens.clear();

        let households = population.households();
        let household_chunks = households.div_ceil(HOUSEHOLD_CHUNK);
        let household_range =
            |chunk: usize| chunk * HOUSEHOLD_CHUNK..((chunk + 1) * HOUSEHOLD_CHUNK).min(households);
        let members = |h: usize| population.household_start[h]..population.household_start[h + 1];
        self.lens
            .par_extend((0..household_chunks).into_par_iter().map(|chunk| {
                household_range(chunk)
                    .map(|h| {
                        let n = members(h).len();
                        n * n.saturating_sub(1) / 2
                    })
                    .sum::<usize>()
            }));

        let groups = &population.groups;
        self.groups
            .resize_with(groups.len().div_ceil(GROUP_CHUNK), Vec::new);
        self.groups
            .par_iter_mut()
            .enumerate()
            .for_each(|(chunk, out)| {
                out.clear();
                let first = chunk * GROUP_CHUNK;
                let last = (first + GROUP_CHUNK).min(groups.len());
                for (g, group) in groups[first..last].iter().enumerate() {
                    let g = first + g;
                    let members =
                        &population.group_members[group.start as usize..group.end as usize];
                    if members.len() < 2 || group.daily_contacts <= 0.0 {
                        continue;
                    }
                    let mut rng = streams.rng(Purpose::Contacts, [u64::from(day), 1, g as u64]);
                    // Each member starts half of its contacts; it receives the other half.
                    let starts = Poisson::new(group.daily_contacts / 2.0).expect("positive rate");
                    for (i, &a) in members.iter().enumerate() {
                        let k: f64 = starts.sample(&mut rng);
                        for salt in 0..k as u32 {
                            let mut j = rng.gen_range(0..members.len() - 1);
                            if j >= i {
                                j += 1;
                            }
                            out.push(contact(a, members[j], group.setting, salt));
                        }
                    }
                }
            });
        self.lens.extend(self.groups.iter().map(Vec::len));

        // Random contacts: a configuration model re-paired every day. Each agent holds
        // as many stubs as it has random contacts; the stubs, shuffled, pair up in turn.
        self.shuffle_stubs(&population.random_stubs, streams, day);
        self.lens.par_extend(
            self.stubs
                .values
                .par_chunks(2 * STUB_CHUNK)
                .map(|pairs| pairs.chunks_exact(2).filter(|p| p[0] != p[1]).count()),
        );

        let transport = scenario.network.transport_fraction;
        let group_parts = &self.groups;
        let stubs = &self.stubs.values;
        fill_parts(&mut self.contacts, &self.lens, |part, out| {
            if part < household_chunks {
                let mut slots = out.iter_mut();
                for h in household_range(part) {
                    let members = members(h);
                    for a in members.clone() {
                        for b in a + 1..members.end {
                            *slots.next().expect("counted") = contact(a, b, Setting::Household, 0);
                        }
                    }
                }
            } else if part < household_chunks + group_parts.len() {
                out.copy_from_slice(&group_parts[part - household_chunks]);
            } else {
                let chunk = part - household_chunks - group_parts.len();
                let first = (chunk * STUB_CHUNK) as u32;
                let pairs = stubs[chunk * 2 * STUB_CHUNK..]
                    .chunks_exact(2)
                    .take(STUB_CHUNK)
                    .enumerate()
                    .filter(|(_, pair)| pair[0] != pair[1]);
                for (slot, (k, pair)) in out.iter_mut().zip(pairs) {
                    let salt = first + k as u32;
                    let counters = [u64::from(day), 3, u64::from(salt)];
                    let u = streams.uniform(Purpose::Contacts, counters);
                    let setting = if u < transport {
                        Setting::Transport
                    } else {
                        Setting::Community
                    };
                    *slot = contact(pair[0], pair[1], setting, salt);
                }
            }
        });
        &self.contacts
    }

    /// Puts the agents of `stubs` into `self.stubs` in a uniformly random order of
    /// `day`, the same on any number of threads: every stub goes to a random bucket
    /// (a pure function of day and stub), each bucket is shuffled with its own
    /// generator, and the buckets are concatenated. Given the buckets' sizes, every
    /// arrangement is equally likely, so the whole order is a uniform permutation.
    fn shuffle_stubs(&mut self, stubs: &[u32], streams: &Streams, day: u32) {
        let count = stubs.len().div_ceil(STUBS_PER_BUCKET).max(1);
        self.buckets.clear();
        self.buckets
            .par_extend(stubs.par_iter().enumerate().map(|(i, _)| {
                let h = streams.bits(Purpose::Contacts, [u64::from(day), 2, i as u64]);
                ((u128::from(h) * count as u128) >> 64) as u32
            }));
        self.stubs.sort(
            &self.buckets,
            count,
            |&b| [b],
            |i, _| stubs[i],
            &mut self.cursor,
        );
        let Grouping { offsets, values } = &mut self.stubs;
        let parts = split_parts(values, offsets.windows(2).map(|w| (w[1] - w[0]) as usize));
        parts.into_par_iter().enumerate().for_each(|(b, part)| {
            let mut rng = streams.rng(Purpose::Contacts, [u64::from(day), 4, b as u64]);
            part.shuffle(&mut rng);
        });
    }
}

/// How contacts in each setting are drawn: lognormal duration and distance, as the
/// parameters of their logarithms, and a uniform start.
#[derive(Clone, Debug)]
pub struct Shapes {
    /// (mean log duration, SD, mean log distance, SD) by setting.
    log: [[f64; 4]; 5],
}

impl Shapes {
    /// The shapes of `settings`.
    pub fn new(settings: &Settings) -> Self {
        Self {
            log: Setting::ALL.map(|s| {
                let p = settings.get(s);
                [
                    p.duration_median_minutes.ln(),
                    p.duration_sdlog,
                    p.distance_median_m.ln(),
                    p.distance_sdlog,
                ]
            }),
        }
    }

    /// The duration, distance and start of contact `c` of `day`, from one draw of the
    /// contact stream: 21 bits each for the quantiles of duration and distance and for
    /// the start (a resolution far finer than minutes and centimetres).
    pub fn meeting(&self, streams: &Streams, day: u32, c: &Contact) -> Meeting {
        const MASK: u64 = (1 << 21) - 1;
        let [mu_duration, sd_duration, mu_distance, sd_distance] = self.log[c.setting as usize];
        let who = (u64::from(c.a) << 32) | u64::from(c.b);
        let what = (u64::from(c.salt) << 8) | c.setting as u64;
        let h = streams.bits(Purpose::Contacts, [u64::from(day), who, what]);
        let z_duration = normal_quantile(open_unit(h >> 43, 21));
        let z_distance = normal_quantile(open_unit((h >> 22) & MASK, 21));
        let duration = (mu_duration + sd_duration * z_duration)
            .exp()
            .round()
            .clamp(1.0, f64::from(MINUTES_PER_DAY - 1)) as u16;
        let distance = (mu_distance + sd_distance * z_distance)
            .exp()
            .clamp(0.1, 600.0);
        let latest_start = f64::from(MINUTES_PER_DAY - duration);
        let start = ((h & MASK) as f64 / (1u64 << 21) as f64 * latest_start) as u16;
        Meeting {
            start,
            duration,
            distance_cm: (distance * 100.0).round() as u16,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contacts_are_daily_resampled_and_thread_independent() {
        let scenario = Scenario {
            population: 5_000,
            ..Scenario::default()
        };
        let streams = Streams::new(9);
        let population = Population::new(&scenario, &streams);
        let draw = |day| {
            ContactDrawer::default()
                .draw(&population, &scenario, &streams, day)
                .to_vec()
        };
        let day0 = draw(0);
        let one_thread = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        assert_eq!(day0, one_thread.install(|| draw(0)));
        let day1 = draw(1);
        assert_ne!(day0, day1);
        // A drawer reused from day to day draws what a fresh one does, whatever the
        // size of the day before.
        let mut reused = ContactDrawer::default();
        for day in [1, 0, 1, 2] {
            let fresh = draw(day);
            assert_eq!(reused.draw(&population, &scenario, &streams, day), fresh);
        }
        // Households are the same people every day; random partners are not.
        let households = |c: &[Contact]| {
            c.iter()
                .filter(|c| c.setting == Setting::Household)
                .map(|c| (c.a, c.b))
                .collect::<Vec<_>>()
        };
        assert_eq!(households(&day0), households(&day1));
        let per_person = 2.0 * day0.len() as f64 / 5_000.0;
        // Households ~1.9, occupations ~7, random ~3.6 contacts a day.
        assert!((9.0..16.0).contains(&per_person), "{per_person}");
        let shapes = Shapes::new(&scenario.network.settings);
        assert!(day0.iter().all(|c| {
            let m = shapes.meeting(&streams, 0, c);
            c.a != c.b && m.start + m.duration < MINUTES_PER_DAY
        }));
    }
}
