//! Each day's contacts, re-sampled daily (as OpenABM does): household members meet
//! every day, members of an occupation group meet a random half of the group, and
//! random contacts pair people across the population anew.

use rand::Rng;
use rand_distr::{Distribution, Poisson};
use rayon::prelude::*;

use crate::population::Population;
use crate::rng::{Purpose, Streams};
use crate::scenario::{Scenario, Setting, Settings};

/// Minutes in a day.
pub const MINUTES_PER_DAY: u16 = 1440;

/// Two people meeting once on one day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Contact {
    /// One person.
    pub a: u32,
    /// The other.
    pub b: u32,
    /// Minute of the day the contact starts.
    pub start: u16,
    /// Minutes it lasts (the contact ends within the day).
    pub duration: u16,
    /// Distance between them, in centimetres.
    pub distance_cm: u16,
    /// Where they meet.
    pub setting: Setting,
}

impl Contact {
    /// The person `agent` met.
    pub fn other(&self, agent: u32) -> u32 {
        if self.a == agent { self.b } else { self.a }
    }

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
/// Agents handled per parallel task when laying out random-contact stubs.
const STUB_CHUNK: usize = 16_384;

/// The contacts of `day`, in a fixed order (households, occupations, random), the
/// same on any number of threads.
pub fn daily_contacts(
    population: &Population,
    scenario: &Scenario,
    streams: &Streams,
    day: u32,
) -> Vec<Contact> {
    let settings = &scenario.network.settings;
    let attributes = |a: u32, b: u32, setting: Setting, salt: u64| {
        contact(streams, settings, day, a, b, setting, salt)
    };

    let households: Vec<Contact> = (0..population.households())
        .collect::<Vec<_>>()
        .par_chunks(HOUSEHOLD_CHUNK)
        .flat_map_iter(|chunk| {
            let mut out = Vec::new();
            for &h in chunk {
                let (start, end) = (
                    population.household_start[h],
                    population.household_start[h + 1],
                );
                for a in start..end {
                    for b in a + 1..end {
                        out.push(attributes(a, b, Setting::Household, 0));
                    }
                }
            }
            out
        })
        .collect();

    let occupations: Vec<Contact> = population
        .groups
        .par_iter()
        .enumerate()
        .flat_map_iter(|(g, group)| {
            let members = &population.group_members[group.start as usize..group.end as usize];
            let mut out = Vec::new();
            if members.len() < 2 || group.daily_contacts <= 0.0 {
                return out;
            }
            let mut rng = streams.rng(Purpose::Contacts, [u64::from(day), 1, g as u64]);
            // Each member starts half of its contacts; it receives the other half.
            let starts = Poisson::new(group.daily_contacts / 2.0).expect("positive rate");
            for (i, &a) in members.iter().enumerate() {
                let k: f64 = starts.sample(&mut rng);
                for salt in 0..k as u64 {
                    let mut j = rng.gen_range(0..members.len() - 1);
                    if j >= i {
                        j += 1;
                    }
                    out.push(attributes(a, members[j], group.setting, salt));
                }
            }
            out
        })
        .collect();

    // Random contacts: a configuration model re-paired every day. Each agent holds
    // as many stubs as it has random contacts; stubs sorted by a random key are paired
    // in turn.
    let mut stubs: Vec<(u64, u32)> = (0..population.len())
        .collect::<Vec<_>>()
        .par_chunks(STUB_CHUNK)
        .flat_map_iter(|chunk| {
            let mut out = Vec::new();
            for &agent in chunk {
                for stub in 0..population.random_degree[agent] {
                    let key = streams.bits(
                        Purpose::Contacts,
                        [u64::from(day), 2, (agent as u64) << 16 | u64::from(stub)],
                    );
                    out.push((key, agent as u32));
                }
            }
            out
        })
        .collect();
    stubs.par_sort_unstable();
    let transport = scenario.network.transport_fraction;
    let random: Vec<Contact> = stubs
        .par_chunks(2 * STUB_CHUNK)
        .flat_map_iter(|chunk| {
            chunk
                .chunks_exact(2)
                .filter(|pair| pair[0].1 != pair[1].1)
                .map(|pair| {
                    let (key, a) = pair[0];
                    let b = pair[1].1;
                    let in_vehicle = (key >> 11) as f64 * (1.0 / (1u64 << 53) as f64) < transport;
                    let setting = if in_vehicle {
                        Setting::Transport
                    } else {
                        Setting::Community
                    };
                    attributes(a, b, setting, key)
                })
                .collect::<Vec<_>>()
        })
        .collect();

    let mut all = households;
    all.reserve(occupations.len() + random.len());
    all.extend(occupations);
    all.extend(random);
    all
}

/// One contact's duration, distance and start, from the contact stream.
fn contact(
    streams: &Streams,
    settings: &Settings,
    day: u32,
    a: u32,
    b: u32,
    setting: Setting,
    salt: u64,
) -> Contact {
    let params = settings.get(setting);
    let who = (u64::from(a) << 32) | u64::from(b);
    let what = (salt << 8) | setting as u64;
    let counters = |k: u64| [u64::from(day), who, what ^ (k << 56)];
    let z_duration = streams.normal(Purpose::Contacts, counters(1));
    let z_distance = streams.normal(Purpose::Contacts, counters(2));
    let duration = (params.duration_median_minutes.ln() + params.duration_sdlog * z_duration)
        .exp()
        .round()
        .clamp(1.0, f64::from(MINUTES_PER_DAY - 1)) as u16;
    let distance = (params.distance_median_m.ln() + params.distance_sdlog * z_distance)
        .exp()
        .clamp(0.1, 600.0);
    let latest_start = f64::from(MINUTES_PER_DAY - duration);
    let start = (streams.uniform(Purpose::Contacts, counters(3)) * latest_start) as u16;
    Contact {
        a,
        b,
        start,
        duration,
        distance_cm: (distance * 100.0).round() as u16,
        setting,
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
        let day0 = daily_contacts(&population, &scenario, &streams, 0);
        let one_thread = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let again = one_thread.install(|| daily_contacts(&population, &scenario, &streams, 0));
        assert_eq!(day0, again);
        let day1 = daily_contacts(&population, &scenario, &streams, 1);
        assert_ne!(day0, day1);
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
        assert!(
            day0.iter()
                .all(|c| c.a != c.b && c.start + c.duration < MINUTES_PER_DAY)
        );
    }
}
