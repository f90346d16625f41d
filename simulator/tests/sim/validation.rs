//! The validation tests of the model (SIMULATOR.md "Targets a run can be checked against").

use crate::common;

use std::collections::HashSet;

use kith_core::Rpi;
use kith_sim::app::daily_key;
use kith_sim::disease::{NEVER, euler_lotka_root};
use kith_sim::{Arm, Simulation};

/// With no app and no testing, on a homogeneous random network, infections grow
/// between 2 % and 5 % of the population at the Euler–Lotka rate of the generation
/// time and R0 (0.145/day at R0 2.0), within 6 % — OpenABM's
/// `test_exponential_growth_homogeneous_random`.
#[test]
fn growth_rate_is_the_euler_lotka_root() {
    let mut scenario = common::homogeneous(100_000, 70, 10);
    scenario.initial_infections = 40;
    let expected = euler_lotka_root(2.0, 2.826, 5.665);
    assert!((expected - 0.145).abs() < 0.002, "{expected}");
    let mut sim = Simulation::new(&scenario, 11, Arm::WithoutApp).unwrap();
    let n = f64::from(scenario.population);
    while sim
        .daily
        .last()
        .is_none_or(|d| (d.cum_infections as f64) < 0.06 * n)
        && !sim.finished()
    {
        sim.step().unwrap();
    }
    let window: Vec<(f64, f64)> = sim
        .daily
        .iter()
        .filter(|d| (0.02 * n..=0.05 * n).contains(&(d.cum_infections as f64)))
        .map(|d| (f64::from(d.day), (d.cum_infections as f64).ln()))
        .collect();
    assert!(
        window.len() >= 4,
        "{} days between 2 % and 5 %",
        window.len()
    );
    let mean_x = window.iter().map(|p| p.0).sum::<f64>() / window.len() as f64;
    let mean_y = window.iter().map(|p| p.1).sum::<f64>() / window.len() as f64;
    let slope = window
        .iter()
        .map(|p| (p.0 - mean_x) * (p.1 - mean_y))
        .sum::<f64>()
        / window.iter().map(|p| (p.0 - mean_x).powi(2)).sum::<f64>();
    let error = (slope - expected).abs() / expected;
    assert!(
        error < 0.06,
        "growth {slope:.4}/day against {expected:.4}: {:.1} % off",
        100.0 * error
    );
}

/// Households of two, no other contacts, index cases alone in their household. Each
/// person has one contact a day, so β is calibrated from Σ_τ P(infection on day τ) = R0;
/// the partner, met every day, escapes every day: P = 1 − exp(−β·w·ρ) with Σ g = 1,
/// ρ = 1 with symptoms and 0.1 without. No one else can be infected.
#[test]
fn couples_give_the_hand_derived_attack_rate() {
    let mut s = common::homogeneous(6_000, 30, 0);
    s.network.kind = kith_sim::scenario::NetworkKind::Structured;
    s.network.household_sizes = [0.0, 1.0, 0.0, 0.0, 0.0, 0.0];
    s.network.occupation_contacts = [0.0; 3];
    s.network.random_contacts_mean = [0.0; 3];
    s.network.random_contacts_sd = [0.0; 3];
    s.disease.r0 = 0.5;
    s.initial_infections = 1_000;
    let mut sim = Simulation::new(&s, 3, Arm::WithoutApp).unwrap();
    sim.run(|_| {}).unwrap();
    let seeded = |a: u32| {
        sim.people.infected[a as usize] == 0 && sim.people.infector[a as usize] == u32::MAX
    };
    let lone_seeds = (0..3_000u32)
        .filter(|&h| seeded(2 * h) != seeded(2 * h + 1))
        .count();
    let secondary = sim
        .transmissions
        .iter()
        .filter(|t| t.source != u32::MAX)
        .count();
    let w = s.network.settings.household.weight;
    let (f, rho) = (
        s.disease.asymptomatic_fraction,
        s.disease.asymptomatic_infectiousness,
    );
    let p = (1.0 - f) * (1.0 - (-sim.beta * w).exp()) + f * (1.0 - (-sim.beta * w * rho).exp());
    // The calibration: with β·w·g small each day, Σ_τ P ≈ β·w·E[ρ] = R0.
    let linear = sim.beta * w * ((1.0 - f) + f * rho);
    assert!((linear - 0.5).abs() < 0.05, "β·w·E[ρ] = {linear}");
    // Binomial(lone_seeds, p): 4 standard deviations.
    let expected = p * lone_seeds as f64;
    let sd = (lone_seeds as f64 * p * (1.0 - p)).sqrt();
    assert!(
        (secondary as f64 - expected).abs() < 4.0 * sd,
        "{secondary} vs {expected} ± {sd}"
    );
    // Everyone infected by a partner, on day τ with probability
    // exp(−β·w·ρ·Σ_{s<τ} g_s) · (1 − exp(−β·w·ρ·g_τ)): the partner who escaped the
    // early days. The mean generation time is that distribution's mean.
    let (mut mass, mut moment) = (0.0, 0.0);
    for (share, r) in [(1.0 - f, 1.0), (f, rho)] {
        let mut escaped = 0.0;
        for (tau, &g) in sim.profile.daily().iter().enumerate() {
            let p_tau =
                share * (-sim.beta * w * r * escaped).exp() * (1.0 - (-sim.beta * w * r * g).exp());
            mass += p_tau;
            moment += tau as f64 * p_tau;
            escaped += g;
        }
    }
    let expected_generation = moment / mass;
    let mut generation = 0.0;
    for t in sim.transmissions.iter().filter(|t| t.source != u32::MAX) {
        assert_eq!(
            t.source / 2,
            t.recipient / 2,
            "infected within the household"
        );
        generation += f64::from(t.day - sim.people.infected[t.source as usize]);
    }
    let mean = generation / secondary as f64;
    assert!(
        (mean - expected_generation).abs() < 0.25,
        "mean generation time {mean}, hand-derived {expected_generation}"
    );
}

/// Every notified person's phone recorded, during one of its scans, an RPI of a key
/// of one of the uploaders behind the notification; with no app, nobody is notified.
#[test]
fn nobody_is_notified_without_a_recorded_sighting() {
    let scenario = common::town(4_000, 30);
    let mut sim = Simulation::new(&scenario, 5, Arm::WithApp).unwrap();
    let mut checked = 0;
    while !sim.finished() {
        sim.step().unwrap();
        let today = (sim.day - 1) as u16;
        let radio = sim.radio();
        for agent in 0..sim.population.len() {
            if sim.people.notified[agent] != today {
                continue;
            }
            let phone = sim.phones.phone_of[agent];
            let senders = &sim.exposures.phone(phone).unwrap().senders;
            let heard = (today.saturating_sub(13)..=today).any(|day| {
                let day = u32::from(day);
                // The RPIs the uploaders behind the notification sent that day.
                let sent: HashSet<Rpi> = senders
                    .iter()
                    .flat_map(|&sender| {
                        let key =
                            daily_key(&sim.streams, sim.phones.phone_of[sender as usize], day);
                        key.rpi_key().rpis(key.validity())
                    })
                    .collect();
                let mut sightings = Vec::new();
                radio.sightings(phone, day, 0, &mut sightings);
                sightings.iter().any(|s| sent.contains(&s.rpi))
            });
            assert!(
                heard,
                "agent {agent} notified on day {today} without a sighting"
            );
            checked += 1;
        }
    }
    assert!(checked >= 100, "only {checked} notified people checked");

    let mut no_app = scenario.clone();
    no_app.app.uptake = 0.0;
    let mut sim = Simulation::new(&no_app, 5, Arm::WithApp).unwrap();
    sim.run(|_| {}).unwrap();
    assert_eq!(sim.daily.last().unwrap().cum_notifications, 0);
    assert!(sim.people.notified.iter().all(|&d| d == NEVER));
}

/// Scoring the same exposure windows with a higher attenuation threshold notifies
/// more people: recall rises, precision falls.
#[test]
fn precision_falls_and_recall_rises_with_the_threshold() {
    let mut scenario = common::town(4_000, 35);
    let thresholds = [45, 55, 65, 75];
    scenario.app.evaluate = thresholds
        .iter()
        .map(|t| format!("threshold:{t}"))
        .collect();
    let mut sim = Simulation::new(&scenario, 8, Arm::WithApp).unwrap();
    sim.run(|_| {}).unwrap();
    let summary = kith_sim::experiment::summarize(&sim, 1.0);
    let scores = &summary.configs[1..];
    for s in scores {
        eprintln!(
            "{}: notified {}, precision {:.3}, recall {:.3}",
            s.config, s.notified, s.precision, s.recall
        );
    }
    assert!(scores[0].notified >= 20, "too few notifications to compare");
    for pair in scores.windows(2) {
        assert!(
            pair[1].recall >= pair[0].recall,
            "{} → {}",
            pair[0].config,
            pair[1].config
        );
    }
    let (low, high) = (&scores[0], &scores[scores.len() - 1]);
    assert!(
        high.recall > low.recall + 0.05,
        "recall {} → {}",
        low.recall,
        high.recall
    );
    assert!(
        high.precision < low.precision,
        "precision {} → {}",
        low.precision,
        high.precision
    );
}

/// Runs with and without the app share every random draw of population, contacts and
/// disease: they agree day by day until the app first makes someone quarantine or
/// test, and differ after.
#[test]
fn with_and_without_app_agree_until_the_app_acts() {
    let scenario = common::town(4_000, 40);
    let mut with = Simulation::new(&scenario, 21, Arm::WithApp).unwrap();
    with.run(|_| {}).unwrap();
    let mut without = Simulation::new(&scenario, 21, Arm::WithoutApp).unwrap();
    without.run(|_| {}).unwrap();
    let acted = with.app_first_acted.expect("the app notified someone") as usize;
    assert!(acted >= 3, "first notification on day {acted}");
    assert_eq!(without.app_first_acted, None);
    let epidemic = |d: &kith_sim::stats::Daily| {
        (
            d.new_infections,
            d.n_susceptible,
            d.n_infectious,
            d.n_symptomatic,
            d.new_diagnoses,
            d.n_isolated,
        )
    };
    for day in 0..=acted {
        assert_eq!(
            epidemic(&with.daily[day]),
            epidemic(&without.daily[day]),
            "day {day}"
        );
    }
    let first = |s: &Simulation| {
        s.transmissions
            .iter()
            .filter(|t| usize::from(t.day) <= acted)
            .copied()
            .collect::<Vec<_>>()
    };
    assert_eq!(first(&with), first(&without));
    assert_ne!(
        with.transmissions, without.transmissions,
        "the app changed nothing"
    );
}
