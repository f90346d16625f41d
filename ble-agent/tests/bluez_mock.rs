//! The real BlueZ code (btleplug scanning, bluer advertising, the error messages)
//! against python-dbusmock's `bluez5` template on a private D-Bus bus.
//!
//! A custom harness: the parent starts `dbus-daemon` and the mock, then re-runs this
//! binary with `DBUS_SYSTEM_BUS_ADDRESS` pointing at the private bus (the test process
//! cannot set its own environment safely), and stops both by PID. The real system bus
//! is never touched. Needs `dbus-daemon`, Debian's `python3-dbus` and python-dbusmock
//! >= 0.32.1 (`KITH_DBUSMOCK_PYTHON` names its interpreter); scripts/test installs them.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use kith_agent::radio::Radio;
use kith_agent::radio::bluez::BluezRadio;
use kith_core::{Aem, BeaconPayload, Rpi};

const CHILD: &str = "KITH_TEST_ON_PRIVATE_BUS";
const HELPER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/bluez_mock.py");
const FD6F: &str = "0000fd6f-0000-1000-8000-00805f9b34fb";

fn main() {
    if std::env::var_os(CHILD).is_some() {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(radio_checks());
        println!("bluez_mock: radio checks passed");
        return;
    }
    let Some(python) = dbusmock_python() else {
        return kith_test_support::skip(
            "python-dbusmock >= 0.32.1 with dbus-python, or dbus-daemon, not found \
             (set KITH_DBUSMOCK_PYTHON; scripts/test installs them)",
        );
    };
    let dir = tempfile::tempdir().unwrap();
    let bus = PrivateBus::start(dir.path());
    let env = |cmd: &mut Command| {
        cmd.env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)
            .env_remove("DBUS_SESSION_BUS_ADDRESS");
    };

    // Unreachable bus, then a bus without BlueZ: the CLI says what to do.
    let agent = |bus_address: &str| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kith-agent"));
        cmd.args(["run", "--radio", "bluez", "--data-dir"])
            .arg(dir.path().join("agent"))
            .env("DBUS_SYSTEM_BUS_ADDRESS", bus_address)
            .env_remove("DBUS_SESSION_BUS_ADDRESS");
        run_failing(cmd)
    };
    let missing = format!("unix:path={}", dir.path().join("no-such-bus").display());
    expect(&agent(&missing), "cannot reach the D-Bus system bus");
    expect(&agent(&bus.address), "BlueZ is not running");

    let mut mock = Command::new(&python);
    mock.args(["-m", "dbusmock", "--system", "-t", "bluez5"])
        .stdout(Stdio::null());
    env(&mut mock);
    let mock = Process::spawn(mock);
    helper(&python, &bus.address, &["wait"]);
    expect(&agent(&bus.address), "no Bluetooth adapter found");
    helper(&python, &bus.address, &["add-adapter", "hci0"]);
    helper(&python, &bus.address, &["power", "hci0", "off"]);
    expect(&agent(&bus.address), "Bluetooth adapter hci0 is off");
    helper(&python, &bus.address, &["power", "hci0", "on"]);

    let mut child = Command::new(std::env::current_exe().unwrap());
    child.env(CHILD, "1").env("KITH_DBUSMOCK_PYTHON", &python);
    env(&mut child);
    let status = child.status().unwrap();
    drop(mock);
    drop(bus);
    assert!(
        status.success(),
        "the radio checks on the private bus failed"
    );
}

/// Runs in the child, on the private bus with hci0 powered.
async fn radio_checks() {
    let address = std::env::var("DBUS_SYSTEM_BUS_ADDRESS").unwrap();
    assert!(
        address.contains("kith-test-bus"),
        "not the private bus: {address}"
    );
    let python = PathBuf::from(std::env::var_os("KITH_DBUSMOCK_PYTHON").unwrap());
    // Asynchronous, so that this process keeps answering BlueZ's calls (the mock reads
    // our advertisement back from us) while the helper runs.
    let mock = async |args: &[&str]| -> String {
        let out = tokio::process::Command::new(&python)
            .arg(HELPER)
            .args(args)
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "bluez_mock.py {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let device = async |addr: &str, name: &str| -> String {
        serde_json::from_str(&mock(&["add-device", "hci0", addr, name]).await).unwrap()
    };
    let adverts = async || -> serde_json::Value {
        serde_json::from_str(&mock(&["adverts", "hci0"]).await).unwrap()
    };

    // Known before the scan: their data is only in the device properties.
    let before = beacon(1);
    let a = device("AA:00:00:00:00:01", "gaen-phone").await;
    mock(&["service-data", &a, FD6F, &hex(&before.to_service_data())]).await;
    mock(&["rssi", &a, "-61"]).await;
    let b = device("AA:00:00:00:00:02", "headphones").await; // no service data
    mock(&["rssi", &b, "-40"]).await;
    let c = device("AA:00:00:00:00:03", "tracker").await; // another service's data
    mock(&[
        "service-data",
        &c,
        "0000fe9f-0000-1000-8000-00805f9b34fb",
        &hex(&[1; 20]),
    ])
    .await;
    let e = device("AA:00:00:00:00:05", "short").await; // 0xFD6F, but 19 bytes
    mock(&["service-data", &e, FD6F, &hex(&[2; 19])]).await;

    let mut radio = BluezRadio::open(None).await.expect("hci0 opens");
    assert_eq!(radio.adapter_name(), "hci0");

    // Appears during the scan: service data and RSSI come as separate events.
    let during = beacon(4);
    let scan = radio.scan(2_500);
    let change = async {
        tokio::time::sleep(Duration::from_millis(600)).await;
        let d = device("AA:00:00:00:00:04", "gaen-phone-2").await;
        mock(&["service-data", &d, FD6F, &hex(&during.to_service_data())]).await;
        mock(&["rssi", &d, "-50"]).await;
        mock(&["rssi", &d, "-47"]).await;
    };
    let (window, ()) = tokio::join!(scan, change);
    let window = window.expect("the scan runs");
    let mut heard: Vec<(BeaconPayload, i8)> = window
        .received
        .iter()
        .map(|r| (r.beacon(), r.rssi))
        .collect();
    heard.sort_by_key(|(b, _)| b.rpi().to_bytes());
    assert_eq!(heard, vec![(before, -61), (during, -47)], "{window:?}");
    assert!(window.ended_at - window.started_at >= 2_500);

    // Advertising: read the registered advertisement back from our own process.
    let first = beacon(7);
    radio.advertise(&first).await.expect("advertising starts");
    let state = adverts().await;
    assert_eq!(state["active"], 1, "{state}");
    let current = state["current"].as_object().unwrap();
    assert_eq!(current.len(), 1, "{state}");
    let (first_path, props) = current.iter().next().unwrap();
    assert_eq!(props["Type"], "broadcast");
    assert_eq!(props["ServiceUUIDs"], serde_json::json!([FD6F]));
    assert_eq!(props["ServiceData"][FD6F], hex(&first.to_service_data()));
    assert_eq!(
        (props["MinInterval"].as_u64(), props["MaxInterval"].as_u64()),
        (Some(200), Some(270))
    );

    // Rotation: the old one is unregistered before the new one is registered.
    let second = beacon(8);
    radio
        .advertise(&second)
        .await
        .expect("rotation re-registers");
    let state = adverts().await;
    assert_eq!(state["active"], 1, "{state}");
    assert_eq!(state["registered"].as_array().unwrap().len(), 2, "{state}");
    assert_eq!(
        state["unregistered"],
        serde_json::json!([first_path]),
        "{state}"
    );
    let (_, props) = state["current"].as_object().unwrap().iter().next().unwrap();
    assert_eq!(props["ServiceData"][FD6F], hex(&second.to_service_data()));

    // Ten quick rotations never hit "Maximum advertisements reached".
    for i in 0..10 {
        radio
            .advertise(&beacon(20 + i))
            .await
            .expect("no instance race");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    radio.stop_advertising().await.unwrap();
    assert_eq!(adverts().await["active"], 0);
    assert!(radio.beacons_sent() >= 1, "time on air counts as beacons");
}

fn beacon(seed: u8) -> BeaconPayload {
    BeaconPayload::new(
        Rpi::from_bytes([seed; 16]),
        Aem::from_bytes([seed ^ 0xff; 4]),
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs the helper script on the private bus and returns its output.
fn helper(python: &Path, address: &str, args: &[&str]) -> String {
    let out = Command::new(python)
        .arg(HELPER)
        .args(args)
        .env("DBUS_SYSTEM_BUS_ADDRESS", address)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bluez_mock.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `cmd`, expecting it to fail within 30 s.
fn run_failing(mut cmd: Command) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = Process::spawn(cmd);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut child = child;
    loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(child.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
            return Output {
                status,
                stdout: Vec::new(),
                stderr: stderr.into_bytes(),
            };
        }
        assert!(
            Instant::now() < deadline,
            "kith-agent did not fail within 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn expect(out: &Output, message: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "kith-agent should have failed");
    assert!(
        stderr.contains(message),
        "expected {message:?} in:\n{stderr}"
    );
}

/// An interpreter with dbus-python and dbusmock >= 0.32.1, if there is one.
fn dbusmock_python() -> Option<PathBuf> {
    let candidates = std::env::var_os("KITH_DBUSMOCK_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .chain([PathBuf::from("/usr/bin/python3")]);
    let check = "import dbus, dbusmock, sys; \
                 v = tuple(int(x) for x in dbusmock.__version__.split('.')[:3]); \
                 sys.exit(0 if v >= (0, 32, 1) else 1)";
    let daemon = Command::new("dbus-daemon")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    candidates.filter(|_| daemon).find(|p| {
        Command::new(p)
            .args(["-c", check])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// A child process, killed and reaped on drop (by its PID, nothing else).
struct Process(Child);

impl Process {
    fn spawn(mut cmd: Command) -> Self {
        Self(cmd.spawn().expect("starts"))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `dbus-daemon` on a socket in a temp dir, with a minimal allow-all config.
struct PrivateBus {
    address: String,
    _daemon: Process,
}

impl PrivateBus {
    fn start(dir: &Path) -> Self {
        let socket = dir.join("kith-test-bus");
        let config = dir.join("bus.conf");
        std::fs::write(
            &config,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
                socket.display()
            ),
        )
        .unwrap();
        let mut cmd = Command::new("dbus-daemon");
        cmd.arg(format!("--config-file={}", config.display()))
            .args(["--nofork", "--print-address=1"])
            .stdout(Stdio::piped());
        let mut daemon = Process::spawn(cmd);
        let mut line = String::new();
        BufReader::new(daemon.0.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let address = line.trim().to_owned();
        assert!(
            address.starts_with("unix:path="),
            "dbus-daemon printed {address:?}"
        );
        Self {
            address,
            _daemon: daemon,
        }
    }
}
