//! Runs are deterministic per seed and identical on one and two threads.

use crate::common;

use kith_sim::{Arm, Simulation};

fn run(seed: u64, threads: usize) -> Simulation {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        let mut sim = Simulation::new(&common::town(3_000, 25), seed, Arm::WithApp).unwrap();
        sim.run(|_| {}).unwrap();
        sim
    })
}

#[test]
fn same_seed_same_run_on_one_and_two_threads() {
    let one = run(4, 1);
    let two = run(4, 2);
    assert!(
        one.daily.last().unwrap().cum_notifications > 0,
        "the app did something"
    );
    assert_eq!(one.daily, two.daily);
    assert_eq!(one.transmissions, two.transmissions);
    assert_eq!(one.people.notified, two.people.notified);
    assert_eq!(one.close_contacts, two.close_contacts);
    let other = run(5, 2);
    assert_ne!(one.transmissions, other.transmissions);
}
