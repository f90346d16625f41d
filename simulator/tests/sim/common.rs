//! Small scenarios shared by the integration tests: sized to run in seconds in debug.

use kith_sim::Scenario;
use kith_sim::scenario::NetworkKind;

/// A small structured town where the app has plenty to do.
pub fn town(population: u32, days: u32) -> Scenario {
    let mut s = Scenario {
        name: "town".into(),
        population,
        days,
        seeds: 1,
        initial_infections: population / 100,
        ..Scenario::default()
    };
    s.disease.r0 = 2.5;
    s.testing.symptomatic_test_probability = 0.9;
    s.testing.test_delay_days = 1;
    s.app.uptake = 0.8;
    s.app.upload_compliance = 1.0;
    s.app.upload_delay_days = 0;
    s
}

/// Everyone meets `contacts` random people a day; nobody is tested or traced.
pub fn homogeneous(population: u32, days: u32, contacts: u32) -> Scenario {
    let mut s = Scenario {
        name: "homogeneous".into(),
        population,
        days,
        seeds: 1,
        ..Scenario::default()
    };
    s.network.kind = NetworkKind::Homogeneous;
    s.network.homogeneous_contacts = contacts;
    s.testing.symptomatic_test_probability = 0.0;
    s.app.uptake = 0.0;
    s
}
