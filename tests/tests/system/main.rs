//! Every end-to-end scenario, fault and hostile-input test of kith-tests in one test
//! binary, `system`: compiled and linked once, and run side by side as threads of one
//! process, since they mostly wait for their processes (agents listening, the server
//! cutting exports, agents syncing) rather than compute.
//!
//! The harness is libtest's look-alike ([`libtest_mimic`]), so `cargo test -p kith-tests
//! full_story`, `--exact`, `--skip`, `--list` and `--test-threads` work as usual; only the
//! default differs: every selected scenario at once, not one per core. Output is not
//! captured: each scenario's step lines name it (`== full_story::…: step: …`), and a
//! failing one prints its step and every process's log tail.
//!
//! Each scenario is an `async fn` in its module, run on a runtime of its own with two
//! worker threads; a scenario not listed in [`main`] is dead code, which the lints refuse.
//! They share nothing: each [`kith_tests::System`] has its own temporary directory, simulated
//! radio and servers on ephemeral ports, and none changes the environment or the working
//! directory.

mod agent_faults;
mod database_restart;
mod disk_full;
mod full_story;
mod hostile;
mod python_phone;
mod server_killed;
mod small_town;
mod two_instances;
mod venue_check_in;

use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;

use libtest_mimic::{Arguments, Trial};

/// `module::scenario, …` as trials named `module::scenario`.
macro_rules! scenarios {
    ($($module:ident :: $scenario:ident),* $(,)?) => {
        vec![$(trial(
            concat!(stringify!($module), "::", stringify!($scenario)),
            || Box::pin($module::$scenario()),
        )),*]
    };
}

fn main() -> ExitCode {
    let mut args = Arguments::from_args();
    let trials = scenarios![
        agent_faults::an_agent_killed_mid_sync_resumes_and_matches_each_file_once,
        agent_faults::a_truncated_download_and_a_bad_signature_are_refused_and_fetched_again,
        database_restart::postgres_stopped_under_load_gives_503_and_the_same_server_recovers_losing_nothing,
        disk_full::a_full_disk_answers_503_and_keeps_nothing_partial,
        full_story::a_portal_code_notifies_the_near_agents_of_the_day_they_met_and_not_the_far_ones,
        hostile::random_and_mutated_publish_bodies_get_no_5xx_and_store_nothing,
        hostile::a_replayed_code_is_refused_and_a_replayed_sealed_body_gets_its_first_answer,
        hostile::mutated_export_files_are_refused_or_read_exactly_as_published,
        hostile::garbage_on_the_simulated_radio_is_ignored_and_the_agent_keeps_running,
        hostile::mutated_trace_warning_packages_are_refused_by_the_agent_and_the_real_one_warns_once,
        python_phone::a_python_phone_and_an_agent_meet_on_the_radio_and_each_is_notified_of_the_other,
        server_killed::a_server_killed_while_publishing_loses_no_acknowledged_key_and_exports_each_once,
        server_killed::export_runs_killed_half_way_export_each_key_exactly_once,
        small_town::fifty_agents_are_notified_as_their_time_near_the_positive_ones_says,
        two_instances::two_instances_behind_one_address_export_once_and_notify_the_near_agent_only,
        venue_check_in::the_visitor_who_overlapped_a_positive_one_is_warned_with_the_time_and_the_later_one_not,
    ];
    // They wait far more than they compute: all at once unless told otherwise.
    args.test_threads.get_or_insert(trials.len());
    libtest_mimic::run(&args, trials).exit_code()
}

/// A scenario as a trial: on a runtime of its own, its name known to its [`System`]s.
///
/// [`System`]: kith_tests::System
fn trial(name: &'static str, scenario: fn() -> Pin<Box<dyn Future<Output = ()> + Send>>) -> Trial {
    Trial::test(name, move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| format!("a runtime for {name}: {e}"))?;
        runtime.block_on(kith_tests::scenario::named(name, scenario()));
        Ok(())
    })
}
