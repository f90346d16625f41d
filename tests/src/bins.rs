//! Where the binaries under test are.

use std::path::PathBuf;

/// The `kith-server` binary: `$KITH_SERVER_BIN`, else the one beside the test executable.
pub fn server() -> PathBuf {
    binary("kith-server", "KITH_SERVER_BIN")
}

/// The `kith-agent` binary: `$KITH_AGENT_BIN`, else the one beside the test executable.
pub fn agent() -> PathBuf {
    binary("kith-agent", "KITH_AGENT_BIN")
}

fn binary(name: &str, variable: &str) -> PathBuf {
    let path = std::env::var_os(variable).map_or_else(
        || {
            // target/debug/deps/<test> → target/debug/<name>
            let exe = std::env::current_exe().expect("the test executable's path");
            exe.parent()
                .and_then(|deps| deps.parent())
                .expect("the test executable lives in target/<profile>/deps")
                .join(name)
        },
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "no {name} at {}: run scripts/test, or `cargo build -p kith-server -p kith-agent` \
         first, or set {variable}",
        path.display()
    );
    path
}
