//! What Kith's tests share across crates.
//!
//! A test that needs something outside the repository (the GAEN reference material in
//! `../shared/gaen`, a browser, pytest) may skip on a developer's machine, saying why. In CI,
//! and under the README's test command, `KITH_REQUIRE_ALL=1` turns every such skip into a
//! failure, so a green run means every test ran. Tests never read the variable themselves:
//! they call [`skip`] or [`shared_gaen`].

use std::fmt::Display;
use std::path::PathBuf;

/// The environment variable that turns every skip into a failure (`1`; unset or `0` allows skips).
pub const REQUIRE_ALL: &str = "KITH_REQUIRE_ALL";

/// The environment variable that points at the GAEN reference material when it is not at
/// `../shared/gaen` beside the workspace.
pub const GAEN_DIR: &str = "KITH_GAEN_DIR";

/// Whether skips are forbidden (`KITH_REQUIRE_ALL` set to anything but `0` or empty).
pub fn skips_forbidden() -> bool {
    std::env::var_os(REQUIRE_ALL).is_some_and(|value| !value.is_empty() && value != "0")
}

/// Ends a test early because `reason` (what is missing and how to get it): prints
/// `skipped: <reason>`, or fails the test when skips are forbidden.
///
/// The caller returns right after: `if missing { return skip("…") }`.
#[track_caller]
pub fn skip(reason: impl Display) {
    assert!(
        !skips_forbidden(),
        "{REQUIRE_ALL} is set, so this test may not skip: {reason}"
    );
    println!("skipped: {reason} (with {REQUIRE_ALL}=1 this fails)");
}

/// The directory of the GAEN reference material: `$KITH_GAEN_DIR`, else `../shared/gaen`
/// beside the workspace. It may not exist.
pub fn gaen_dir() -> PathBuf {
    std::env::var_os(GAEN_DIR).map_or_else(
        || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/gaen")),
        PathBuf::from,
    )
}

/// `relative` inside the GAEN reference material, or `None` after [`skip`] when it is absent
/// (the material is not in the repository: its files are not ours to commit).
#[track_caller]
pub fn shared_gaen(relative: &str) -> Option<PathBuf> {
    let path = gaen_dir().join(relative);
    if path.exists() {
        Some(path)
    } else {
        skip(format_args!(
            "{} not found (the GAEN reference material belongs at ../shared/gaen beside the \
             repository, or set {GAEN_DIR})",
            path.display()
        ));
        None
    }
}
