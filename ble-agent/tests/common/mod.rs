//! What the agent's tests against a real kith-server share.

use std::path::PathBuf;

/// The kith-server binary: `$KITH_SERVER_BIN`, else the one `cargo test --workspace`
/// built beside this test.
pub fn server_bin() -> PathBuf {
    let bin = std::env::var_os("KITH_SERVER_BIN").map_or_else(
        || {
            let exe = std::env::current_exe().unwrap();
            exe.parent()
                .and_then(|deps| deps.parent())
                .unwrap()
                .join("kith-server")
        },
        PathBuf::from,
    );
    assert!(
        bin.exists(),
        "no kith-server at {}: run the workspace's tests (scripts/test), or \
         `cargo build -p kith-server` first",
        bin.display()
    );
    bin
}
