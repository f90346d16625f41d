//! The course of an infection: Ferretti's infectiousness profile (the generation-time
//! distribution), incubation, asymptomatic infections, and the transmission rate
//! calibrated to R0.

use rand::Rng;
use rand_distr::{Distribution, LogNormal};

use crate::contacts::Contact;
use crate::rng::{Purpose, Streams};
use crate::scenario::Disease as Params;

/// Marks a day that never comes.
pub const NEVER: u16 = u16::MAX;

/// Weibull cumulative distribution function.
pub fn weibull_cdf(t: f64, shape: f64, scale: f64) -> f64 {
    if t <= 0.0 {
        0.0
    } else {
        1.0 - (-(t / scale).powf(shape)).exp()
    }
}

/// Infectiousness by whole days since infection: `daily[τ]` is the generation-time
/// mass in (τ − ½, τ + ½], so an infector infected on day 0 infects on day τ in
/// proportion to it. Day 0 is folded into day 1 (a person does not infect on the
/// day they are infected), and the tail after `infectious_days` is dropped.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    daily: Vec<f64>,
}

impl Profile {
    /// The profile of `params`.
    pub fn new(params: &Params) -> Self {
        let cdf = |t: f64| weibull_cdf(t, params.generation_shape, params.generation_scale);
        let days = params.infectious_days as usize;
        let mut daily = vec![0.0; days];
        for (tau, mass) in daily.iter_mut().enumerate().skip(1) {
            *mass = cdf(tau as f64 + 0.5) - cdf(tau as f64 - 0.5);
        }
        if days > 1 {
            daily[1] += cdf(0.5);
        }
        let total: f64 = daily.iter().sum();
        daily.iter_mut().for_each(|m| *m /= total);
        Self { daily }
    }

    /// Relative infectiousness `tau` days after infection (0 outside the profile).
    pub fn at(&self, tau: u32) -> f64 {
        self.daily.get(tau as usize).copied().unwrap_or(0.0)
    }

    /// The daily masses.
    pub fn daily(&self) -> &[f64] {
        &self.daily
    }
}

/// The real root `r` of the Euler–Lotka equation 1 = R0 ∫ g(τ) e^{−rτ} dτ for a
/// Weibull generation time, by bisection (the integral numerically, 0.01-day steps).
pub fn euler_lotka_root(r0: f64, shape: f64, scale: f64) -> f64 {
    let laplace = |r: f64| {
        let dt = 0.01;
        (0..6000)
            .map(|k| {
                let t = (k as f64 + 0.5) * dt;
                let density = (weibull_cdf(t + dt / 2.0, shape, scale)
                    - weibull_cdf(t - dt / 2.0, shape, scale))
                    / dt;
                density * (-r * t).exp() * dt
            })
            .sum::<f64>()
    };
    let (mut lo, mut hi) = (-1.0, 2.0);
    for _ in 0..60 {
        let mid = (lo + hi) / 2.0;
        if r0 * laplace(mid) > 1.0 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    (lo + hi) / 2.0
}

/// One person's infection, drawn when it happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Course {
    /// Whether the person never shows symptoms.
    pub asymptomatic: bool,
    /// Day symptoms start, or [`NEVER`].
    pub onset: u16,
    /// Day the person stops being infectious.
    pub recovery: u16,
}

impl Course {
    /// The course of `agent`'s infection on `day`, from the disease stream.
    pub fn draw(params: &Params, streams: &Streams, agent: u32, day: u16) -> Self {
        let mut rng = streams.rng(Purpose::Disease, [u64::from(agent), 1 << 40, 0]);
        let asymptomatic = rng.gen_bool(params.asymptomatic_fraction);
        let incubation: f64 = LogNormal::new(params.incubation_meanlog, params.incubation_sdlog)
            .expect("valid lognormal")
            .sample(&mut rng);
        let onset_offset = (incubation.round() as u16).max(1);
        let onset = if asymptomatic {
            NEVER
        } else {
            day.saturating_add(onset_offset)
        };
        let end = day.saturating_add(params.infectious_days as u16);
        let recovery = if asymptomatic {
            end
        } else {
            end.max(onset.saturating_add(1))
        };
        Self {
            asymptomatic,
            onset,
            recovery,
        }
    }
}

/// The transmission rate β for which a newly infected person, in a fully susceptible
/// population, infects `params.r0` others on average: for a contact of weight `w` on
/// day τ of the infection, P(infection) = 1 − exp(−β · w · g(τ) · ρ), with ρ = 1, or
/// the asymptomatic infectiousness. `contacts` is one day's sample of contacts,
/// `weight` gives their transmission weights, `population` the number of people.
pub fn calibrate_beta(
    params: &Params,
    profile: &Profile,
    contacts: &[Contact],
    weight: impl Fn(&Contact) -> f64,
    population: usize,
) -> f64 {
    if contacts.is_empty() {
        return 0.0;
    }
    // Contacts share a handful of weights (one per setting): the mean over all of
    // them is a sum over the distinct weights, each with its share of the contacts.
    let mut weights: Vec<(f64, f64)> = Vec::new();
    for c in contacts {
        let w = weight(c);
        match weights.iter_mut().find(|(v, _)| v.to_bits() == w.to_bits()) {
            Some((_, count)) => *count += 1.0,
            None => weights.push((w, 1.0)),
        }
    }
    let per_person = 2.0 * contacts.len() as f64 / population as f64;
    let asym = params.asymptomatic_fraction;
    let rho = params.asymptomatic_infectiousness;
    let r = |beta: f64| {
        let mean: f64 = weights
            .iter()
            .map(|&(w, count)| {
                count
                    * profile
                        .daily()
                        .iter()
                        .map(|&g| {
                            (1.0 - asym) * (1.0 - (-beta * w * g).exp())
                                + asym * (1.0 - (-beta * w * g * rho).exp())
                        })
                        .sum::<f64>()
            })
            .sum::<f64>()
            / contacts.len() as f64;
        per_person * mean
    };
    let (mut lo, mut hi) = (0.0, 1.0);
    while r(hi) < params.r0 && hi < 1e6 {
        hi *= 2.0;
    }
    for _ in 0..80 {
        let mid = (lo + hi) / 2.0;
        if r(mid) < params.r0 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    (lo + hi) / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn euler_lotka_gives_the_published_growth_rates() {
        // SIMULATOR.md: 0.110 / 0.145 / 0.195 per day at R0 1.7 / 2.0 / 2.5.
        for (r0, expected) in [(1.7, 0.110), (2.0, 0.145), (2.5, 0.195)] {
            let r = euler_lotka_root(r0, 2.826, 5.665);
            assert!((r - expected).abs() < 0.003, "R0 {r0}: {r}");
        }
    }

    #[test]
    fn the_profile_holds_the_generation_time() {
        let profile = Profile::new(&Params::default());
        let total: f64 = profile.daily().iter().sum();
        assert!((total - 1.0).abs() < 1e-12);
        let mean: f64 = profile
            .daily()
            .iter()
            .enumerate()
            .map(|(t, g)| t as f64 * g)
            .sum();
        assert!((mean - 5.05).abs() < 0.05, "{mean}");
        assert_eq!(profile.at(0), 0.0);
        assert_eq!(profile.at(99), 0.0);
    }

    #[test]
    fn asymptomatic_fraction_and_incubation_follow_the_parameters() {
        let params = Params::default();
        let streams = Streams::new(5);
        let courses: Vec<Course> = (0..20_000)
            .map(|a| Course::draw(&params, &streams, a, 10))
            .collect();
        let asym = courses.iter().filter(|c| c.asymptomatic).count() as f64 / 20_000.0;
        assert!((asym - 0.4).abs() < 0.015, "{asym}");
        let onsets: Vec<f64> = courses
            .iter()
            .filter(|c| !c.asymptomatic)
            .map(|c| f64::from(c.onset - 10))
            .collect();
        let mean = onsets.iter().sum::<f64>() / onsets.len() as f64;
        assert!((mean - 5.5).abs() < 0.15, "{mean}");
    }
}
