//! (b) Fifty agents in a small town, on a clock 300 times as fast as the system's: twenty
//! homes, an office and a factory, a bus in the morning and in the evening. Four of them
//! test positive and report; every agent's notification is checked against who was
//! really near whom, for how long — computed here from the layout and the schedule (the
//! radio's path-loss and noise model, the risk configuration's buckets), not from what
//! the agents heard.
//!
//! Each agent moves by its schedule (`--stay HH:MM-HH:MM=x,y`, the agent's clock):
//! ```text
//! before 07:00  home (houses 200 m apart; housemates 1.5 m apart)
//! 07:00–07:15   the bus (two seats a row 1 m apart, rows 2 m apart) or walking alone
//! 07:15–07:45   a desk in a team of four (1.5 m apart; teams 30 m apart), or home
//! 07:45–08:00   the bus or walking, home again after
//! ```
//! Who was near a positive person long enough to be told is certain only with some
//! margin (the radio's noise makes a bucket's weight a probability): an agent must be
//! notified when its expected weighted minutes with the positive ones, counted only
//! from when all had joined until the reports, reach 1.5 times the alert's 10; it must
//! not be when they stay below half of it, counted from the first start until the end.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kith_core::risk::{Classification, RiskConfig};
use kith_tests::system::{AgentClock, System};

/// How many times as fast as the system's the agents' clocks run.
const SCALE: u32 = 300;
/// Real seconds between starting the agents and the agents' 07:00.
const LEAD_SECONDS: u64 = 8;
/// The alert: weighted minutes with positive people in a day.
const ALERT_MINUTES: f64 = 10.0;
/// When the positive ones report (the agents' time of day, minutes).
const REPORT_AT: u16 = 8 * 60 + 10;
/// The radio's noise (dB) and the agents' transmit power (dBm), as `kith-agent` has them.
const NOISE_DB: f64 = 3.0;
/// ENX's attenuation thresholds (dB) and their buckets' weights, as the town's risk
/// configuration has them.
const THRESHOLDS: [f64; 3] = [30.0, 50.0, 60.0];
const WEIGHTS: [f64; 4] = [1.5, 1.0, 0.5, 0.0];

const PEOPLE: usize = 50;
const POSITIVE: [usize; 4] = [0, 17, 20, 40];

/// The agents' pace: 75 s scans every 150 s of their time (250 ms every 500 ms real,
/// longer than the radio's 100 ms between packets), a sync every 20 minutes (4 s).
const AGENT_CONFIG: &str = r#"
sync_every_seconds = 1200
[scan]
scan_millis = 75000
period_seconds = { start = 150, end = 150 }
[sim]
interval_millis = 100
"#;

/// A stay somewhere: from and until minutes of the day, where.
type Stay = (u16, u16, [f32; 2]);

/// One townsperson: home, and the day's stays elsewhere.
#[derive(Debug)]
struct Person {
    name: String,
    home: [f32; 2],
    stays: Vec<Stay>,
}

impl Person {
    /// Where they are at `minute` of the day.
    fn at(&self, minute: u16) -> [f32; 2] {
        self.stays
            .iter()
            .find(|(from, until, _)| (*from..*until).contains(&minute))
            .map_or(self.home, |(_, _, position)| *position)
    }

    /// `kith-agent run` flags for the schedule.
    fn stay_args(&self) -> Vec<String> {
        let hh_mm = |m: u16| format!("{:02}:{:02}", m / 60, m % 60);
        self.stays
            .iter()
            .flat_map(|(from, until, [x, y])| {
                [
                    "--stay".to_owned(),
                    format!("{}-{}={x},{y}", hh_mm(*from), hh_mm(*until)),
                ]
            })
            .collect()
    }
}

/// The town: person `i` works at the office (`i < 16`, teams of four), at the factory
/// (`16 ≤ i < 28`) or stays home; even workers take the bus, odd ones walk alone; the
/// houses are filled in a shuffled order, ten of three and ten of two.
fn town() -> Vec<Person> {
    const BUS_OUT: (u16, u16) = (7 * 60, 7 * 60 + 15);
    const WORK: (u16, u16) = (7 * 60 + 15, 7 * 60 + 45);
    const BUS_BACK: (u16, u16) = (7 * 60 + 45, 8 * 60);
    let mut homes = Vec::new();
    for house in 0..20 {
        let x = 200.0 * house as f32;
        let members: &[[f32; 2]] = if house < 10 {
            &[[0.0, 0.0], [1.5, 0.0], [0.75, 1.3]]
        } else {
            &[[0.0, 0.0], [1.5, 0.0]]
        };
        homes.extend(members.iter().map(|[dx, dy]| [x + dx, *dy]));
    }
    let mut people: Vec<Person> = (0..PEOPLE)
        .map(|i| Person {
            name: format!("p{i:02}"),
            home: homes[(0..PEOPLE)
                .position(|k| k * 17 % PEOPLE == i)
                .expect("a permutation")],
            stays: Vec::new(),
        })
        .collect();
    let desk = |site: [f32; 2], seat: usize| {
        let (team, member) = (seat / 4, seat % 4);
        [
            site[0] + 30.0 * team as f32 + 1.5 * (member % 2) as f32,
            site[1] + 1.5 * (member / 2) as f32,
        ]
    };
    for (i, person) in people.iter_mut().enumerate().take(28) {
        let work = if i < 16 {
            desk([8000.0, 8000.0], i)
        } else {
            desk([12_000.0, 12_000.0], i - 16)
        };
        let commute = if i % 2 == 0 {
            let seat = i / 2;
            [5000.0 + (seat % 2) as f32, 5000.0 + 2.0 * (seat / 2) as f32]
        } else {
            [20_000.0 + 300.0 * i as f32, 20_000.0]
        };
        person.stays = vec![
            (BUS_OUT.0, BUS_OUT.1, commute),
            (WORK.0, WORK.1, work),
            (BUS_BACK.0, BUS_BACK.1, commute),
        ];
    }
    people
}

/// Φ, the standard normal distribution function (Abramowitz and Stegun 7.1.26: |error| <
/// 1.5·10⁻⁷).
fn normal_cdf(z: f64) -> f64 {
    let x = z.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-x * x).exp();
    0.5 * (1.0 + erf.copysign(z))
}

/// The expected weight of a scan hearing someone `d` metres away: the simulated radio's
/// attenuation is 40 dB at 1 m plus 20·log10(d), less N(0, 3 dB) noise, rounded; the
/// configuration weighs it by bucket.
fn expected_weight(d: f64) -> f64 {
    let mean = 40.0 + 20.0 * d.max(0.1).log10();
    let at_most = |threshold: f64| 1.0 - normal_cdf((mean - threshold - 0.5) / NOISE_DB);
    let below = THRESHOLDS.map(at_most);
    WEIGHTS[0] * below[0]
        + WEIGHTS[1] * (below[1] - below[0])
        + WEIGHTS[2] * (below[2] - below[1])
        + WEIGHTS[3] * (1.0 - below[2])
}

/// Expected weighted minutes `person` spent with the positive people other than them,
/// from `from` until `until` (Unix seconds of the agents' clock).
fn weighted_minutes(people: &[Person], person: usize, from: f64, until: f64) -> f64 {
    let minutes = (from / 60.0).ceil() as u64..(until / 60.0).floor() as u64;
    minutes
        .map(|minute| {
            let of_day = (minute % 1440) as u16;
            let here = people[person].at(of_day);
            POSITIVE
                .iter()
                .filter(|q| **q != person)
                .map(|q| {
                    let there = people[*q].at(of_day);
                    let d = f64::from((here[0] - there[0]).hypot(here[1] - there[1]));
                    expected_weight(d)
                })
                .sum::<f64>()
        })
        .sum()
}

/// ENX's buckets and weights, every key equally infectious and of equal report type,
/// alerting at [`ALERT_MINUTES`] weighted minutes a day.
fn town_risk_config() -> RiskConfig {
    let mut config = RiskConfig::apple_defaults();
    config.attenuation_thresholds = THRESHOLDS.map(|t| t as u8);
    config.attenuation_weights = WEIGHTS;
    config.classifications = vec![Classification {
        per_day_sum: ALERT_MINUTES * 60.0,
        ..Classification::default()
    }];
    config
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64()
}

pub(crate) async fn fifty_agents_are_notified_as_their_time_near_the_positive_ones_says() {
    let mut system = System::start_scoring(&town_risk_config());
    let config = system.dir().join("agent.toml");
    std::fs::write(&config, AGENT_CONFIG).expect("writing the agents' configuration");

    system.step("fifty agents start at home, their clocks at yesterday 06:20");
    // Yesterday, so that every key has expired by the time it is reported; 07:00 a few
    // real seconds from now.
    let origin = unix_now() as u64 + LEAD_SECONDS;
    let yesterday = (origin - 86_400) / 86_400 * 86_400;
    let clock = AgentClock::accelerated(SCALE, origin, yesterday + 7 * 3600);
    system.set_agent_clock(clock);
    let people = town();
    let first_start = clock.now();
    for person in &people {
        let mut args = vec!["--config".to_owned(), config.display().to_string()];
        args.extend(person.stay_args());
        system.add_agent_with(&person.name, person.home, &args);
    }
    system.wait_for_radio().await;
    let all_up = clock.now();

    system.step("the town goes to work by bus and on foot, and home again");
    let report_at = (yesterday + u64::from(REPORT_AT) * 60) as f64;
    let wait = (report_at - clock.now()) / f64::from(SCALE);
    assert!(
        wait > 0.0,
        "the agents took until past {REPORT_AT} minutes to start"
    );
    tokio::time::sleep(Duration::from_secs_f64(wait)).await;

    system.step("four positive people report");
    let codes = system.issue_codes(POSITIVE.len() as u32).await;
    for (person, code) in POSITIVE.iter().zip(&codes) {
        system.report(&people[*person].name, code).await;
    }
    let reported = clock.now();

    system.step("the server exports every reported key");
    let files = system.wait_for_stored_keys_exported().await;

    system.step("every agent matches every file");
    system
        .wait_until(
            "every agent matched every file",
            Duration::from_secs(60),
            |s| s.agents().iter().all(|a| a.files_matched() >= files.len()),
        )
        .await;
    let end = clock.now();
    system.stop_agents();

    system.step("checking every notification against the town's ground truth");
    let day = kith_core::Day::of(kith_core::UnixSeconds::new(yesterday)).to_string();
    let threshold = ALERT_MINUTES;
    let (mut must, mut must_not, mut either) = (0, 0, 0);
    let mut table = String::new();
    let mut wrong = Vec::new();
    for (i, person) in people.iter().enumerate() {
        let agent = system.agent(&person.name);
        let notifications = agent.notifications();
        // The exposure command also runs for exposures below the alert, with no days.
        let notified = notifications.iter().any(|(_, days)| !days.is_empty());
        let low = weighted_minutes(&people, i, all_up, reported);
        let high = weighted_minutes(&people, i, first_start, end);
        let expected = if low >= 1.5 * threshold {
            must += 1;
            Some(true)
        } else if high < 0.5 * threshold {
            must_not += 1;
            Some(false)
        } else {
            either += 1;
            None
        };
        let _ = writeln!(
            table,
            "{} {:>5.1}..{:>5.1} weighted min: expected {:?}, notified {notified} {notifications:?}",
            person.name, low, high, expected
        );
        if expected.is_some_and(|e| e != notified) {
            wrong.push(person.name.clone());
        }
        for (_, days) in &notifications {
            assert!(
                days.iter().all(|d| *d == day),
                "{}: {days:?}, not {day}",
                person.name
            );
        }
        assert_eq!(
            agent.files_matched(),
            files.len(),
            "{} matched each file once",
            person.name
        );
    }
    println!("{table}");
    assert!(
        wrong.is_empty(),
        "notified against the ground truth: {wrong:?}\n{table}"
    );
    // The layout leaves few in between, and the test has teeth both ways.
    assert!(
        must >= 8 && must_not >= 20 && either <= 12,
        "{must} must, {must_not} must not, {either} either\n{table}"
    );
}
