//! The people: ages, households, occupation groups, and how many random contacts each seeks.
//!
//! Agents are numbered household by household, so a household is a range of agent ids.
//! Ages are drawn independently of household composition (a simplification of
//! OpenABM's reference households).

use rand::Rng;
use rand::seq::SliceRandom;
use rand_distr::{Distribution, Gamma, Poisson, WeightedIndex};

use crate::rng::{Purpose, Streams};
use crate::scenario::{NetworkKind, Scenario, Setting};

/// Marks "none" in id columns.
pub const NONE: u32 = u32::MAX;

/// Age decades 0–9 … 80+.
pub const AGE_GROUPS: usize = 9;

/// Which contact-rate class an age decade belongs to: children 0–19, adults 20–69, elderly 70+.
pub fn age_class(decade: u8) -> usize {
    match decade {
        0 | 1 => 0,
        2..=6 => 1,
        _ => 2,
    }
}

/// An occupation group: a school class, a workplace, an elderly day network.
#[derive(Clone, Debug)]
pub struct Group {
    /// School or work.
    pub setting: Setting,
    /// Members: `members[start..end]` of the population.
    pub start: u32,
    /// End of the members range.
    pub end: u32,
    /// Mean daily contacts of a member within the group.
    pub daily_contacts: f64,
}

/// Everyone in a run.
#[derive(Clone, Debug)]
pub struct Population {
    /// Age decade of each agent.
    pub age: Vec<u8>,
    /// Household of each agent.
    pub household: Vec<u32>,
    /// `household_start[h]..household_start[h + 1]` are the members of household `h`.
    pub household_start: Vec<u32>,
    /// Occupation group of each agent, or [`NONE`].
    pub group: Vec<u32>,
    /// The occupation groups.
    pub groups: Vec<Group>,
    /// Members of the groups, group by group.
    pub group_members: Vec<u32>,
    /// Random contacts each agent has per day.
    pub random_degree: Vec<u16>,
    /// Each agent as many times as its random contacts, in agent order: the stubs the
    /// random contacts of a day pair up.
    pub random_stubs: Vec<u32>,
}

impl Population {
    /// Builds the population of `scenario` from the population stream.
    pub fn new(scenario: &Scenario, streams: &Streams) -> Self {
        let n = scenario.population as usize;
        let net = &scenario.network;
        let mut rng = streams.rng(Purpose::Population, [0, 0, 0]);
        let ages = WeightedIndex::new(net.age_distribution).expect("validated weights");
        let age: Vec<u8> = (0..n).map(|_| ages.sample(&mut rng) as u8).collect();

        let mut household_start = vec![0u32];
        let mut household = Vec::with_capacity(n);
        if net.kind == NetworkKind::Homogeneous {
            for i in 0..n as u32 {
                household.push(i);
                household_start.push(i + 1);
            }
        } else {
            let sizes = WeightedIndex::new(net.household_sizes).expect("validated weights");
            while household.len() < n {
                let size = (sizes.sample(&mut rng) + 1).min(n - household.len());
                let h = household_start.len() as u32 - 1;
                household.extend(std::iter::repeat_n(h, size));
                household_start.push(household.len() as u32);
            }
        }

        let mut group = vec![NONE; n];
        let mut groups = Vec::new();
        let mut group_members = Vec::with_capacity(n);
        if net.kind == NetworkKind::Structured {
            for class in 0..3 {
                let daily = net.occupation_contacts[class];
                if daily <= 0.0 {
                    continue;
                }
                let mut members: Vec<u32> = (0..n as u32)
                    .filter(|&i| age_class(age[i as usize]) == class)
                    .collect();
                members.shuffle(&mut rng);
                let size =
                    ((daily / net.daily_fraction_occupation.max(1e-9)).round() as usize + 1).max(2);
                let setting = if class == 0 {
                    Setting::School
                } else {
                    Setting::Work
                };
                for chunk in members.chunks(size) {
                    let id = groups.len() as u32;
                    let start = group_members.len() as u32;
                    for &m in chunk {
                        group[m as usize] = id;
                    }
                    group_members.extend_from_slice(chunk);
                    groups.push(Group {
                        setting,
                        start,
                        end: group_members.len() as u32,
                        daily_contacts: daily.min(chunk.len() as f64 - 1.0),
                    });
                }
            }
        }

        let random_degree = match net.kind {
            NetworkKind::Homogeneous => {
                vec![net.homogeneous_contacts.min(u16::MAX.into()) as u16; n]
            }
            NetworkKind::Structured => age
                .iter()
                .map(|&a| {
                    let class = age_class(a);
                    negative_binomial(
                        &mut rng,
                        net.random_contacts_mean[class],
                        net.random_contacts_sd[class],
                    )
                })
                .collect(),
        };
        let random_stubs = random_degree
            .iter()
            .enumerate()
            .flat_map(|(agent, &k)| std::iter::repeat_n(agent as u32, usize::from(k)))
            .collect();
        Self {
            age,
            household,
            household_start,
            group,
            groups,
            group_members,
            random_degree,
            random_stubs,
        }
    }

    /// Number of agents.
    pub fn len(&self) -> usize {
        self.age.len()
    }

    /// Whether there is nobody.
    pub fn is_empty(&self) -> bool {
        self.age.is_empty()
    }

    /// The members of `agent`'s household (including the agent).
    pub fn household_members(&self, agent: u32) -> std::ops::Range<u32> {
        let h = self.household[agent as usize] as usize;
        self.household_start[h]..self.household_start[h + 1]
    }

    /// Number of households.
    pub fn households(&self) -> usize {
        self.household_start.len() - 1
    }
}

/// A count with this mean and standard deviation: Poisson when the SD is at most
/// √mean, otherwise a gamma–Poisson mixture (negative binomial), as OpenABM draws
/// random-contact numbers.
fn negative_binomial<R: Rng>(rng: &mut R, mean: f64, sd: f64) -> u16 {
    if mean <= 0.0 {
        return 0;
    }
    let var = sd * sd;
    let rate = if var > mean {
        let shape = mean * mean / (var - mean);
        Gamma::new(shape, mean / shape)
            .expect("positive shape and scale")
            .sample(rng)
    } else {
        mean
    };
    if rate <= 0.0 {
        return 0;
    }
    let k: f64 = Poisson::new(rate).expect("positive rate").sample(rng);
    k.min(1000.0) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn households_cover_everyone_with_the_published_mean_size() {
        let scenario = Scenario {
            population: 20_000,
            ..Scenario::default()
        };
        let p = Population::new(&scenario, &Streams::new(3));
        assert_eq!(p.len(), 20_000);
        assert_eq!(*p.household_start.last().unwrap(), 20_000);
        let mean = p.len() as f64 / p.households() as f64;
        // ONS sizes 1..6 with the weights above: mean 2.39 people per household.
        assert!((mean - 2.39).abs() < 0.05, "{mean}");
        for agent in [0, 777, 19_999] {
            assert!(p.household_members(agent).contains(&agent));
        }
        let in_groups = p.group.iter().filter(|&&g| g != NONE).count();
        assert_eq!(in_groups, p.len());
        let mean_random =
            p.random_degree.iter().map(|&d| f64::from(d)).sum::<f64>() / p.len() as f64;
        assert!((3.0..4.0).contains(&mean_random), "{mean_random}");
    }
}
