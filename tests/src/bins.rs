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

/// kith-mobile's `uniffi-bindgen`: `$KITH_UNIFFI_BINDGEN_BIN`, else the one beside the
/// test executable.
pub fn uniffi_bindgen() -> PathBuf {
    binary("uniffi-bindgen", "KITH_UNIFFI_BINDGEN_BIN")
}

/// kith-mobile's shared library (what the Python bindings load):
/// `$KITH_MOBILE_LIBRARY`, else the one a workspace build put beside the test
/// executable (`target/debug/deps/`, fresher than its copy one level up).
pub fn mobile_library() -> PathBuf {
    let name = format!(
        "{}kith_mobile{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    if let Some(path) = std::env::var_os("KITH_MOBILE_LIBRARY") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("the test executable's path");
    let deps = exe.parent().expect("the test executable's directory");
    [Some(deps), deps.parent()]
        .into_iter()
        .flatten()
        .map(|dir| dir.join(&name))
        .find(|path| path.is_file())
        .unwrap_or_else(|| {
            panic!(
                "no {name} near {}: run scripts/test, or `cargo build -p kith-mobile` first, \
                 or set KITH_MOBILE_LIBRARY",
                deps.display()
            )
        })
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
