//! Running a process that a test or bench expects to succeed.

use std::process::{Command, Output};

/// Runs `command` to its end and returns what it printed; panics with its stderr unless
/// it succeeded.
pub fn run_ok(command: &mut Command) -> Output {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{} failed ({}): {}",
        command.get_program().to_string_lossy(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
