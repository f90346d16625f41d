//! A simulated radio: agents on one machine share a loopback "ether".
//!
//! Each agent binds a UDP socket on 127.0.0.1 and announces its port in the ether
//! directory (one empty file per port). Advertising sends the 20 service-data bytes,
//! the sender's position and its transmit power to every port in the directory, every
//! GAEN advertising interval. The receiver turns distance into RSSI with a log-distance
//! path-loss model plus Gaussian noise, and drops what falls below its sensitivity.
//!
//! ```text
//! packet = "KITHSIM1" ‖ advertiser id (u64 LE) ‖ x (f32 LE) ‖ y (f32 LE) ‖ tx dBm (i8) ‖ service data (20)
//! ```
//!
//! The advertiser id is random per advertisement (a fresh address), x and y are where the
//! sender stands when it sends (metres), the RSSI the receiver computes is
//! `tx − loss_at_1m − 10·exponent·log10(max(d, 0.1 m)) + N(0, noise)`, rounded, heard
//! when at least `sensitivity`. Any program can take part: bind a UDP socket on
//! 127.0.0.1, create an empty file named by its port in the ether, send such packets
//! to the ports named there.
//!
//! An agent can move: a [`Stay`] puts it elsewhere during a time of day (UTC, of the
//! agent's clock, which a simulation may run faster); outside every stay it stands at
//! its `position`.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kith_core::{BeaconPayload, SERVICE_DATA_LEN};
use rand::Rng;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use tokio::net::UdpSocket;

use super::{Radio, Received, ScanWindow, WindowCollector};
use crate::clock::{Clock, SystemClock, UnixMillis};
use crate::error::{Error, Result};

const MAGIC: &[u8; 8] = b"KITHSIM1";
const PACKET_LEN: usize = 8 + 8 + 4 + 4 + 1 + SERVICE_DATA_LEN;

/// Where an agent stands in the ether and how its signals fade.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimConfig {
    /// The shared directory in which agents announce their ports.
    pub ether: PathBuf,
    /// Position in metres.
    pub position: [f32; 2],
    /// Path loss at 1 m, dB (free space at 2.4 GHz: about 40).
    pub loss_at_1m_db: f32,
    /// Log-distance path-loss exponent (2 in free space, 2–4 indoors).
    pub path_loss_exponent: f32,
    /// Standard deviation of the RSSI noise, dB.
    pub noise_db: f32,
    /// Weakest signal still received, dBm.
    pub sensitivity_dbm: f32,
    /// Milliseconds between two packets of an advertisement, in real time (also when
    /// the agent's clock runs faster: then keep a scan window longer than this).
    pub interval_millis: u64,
    /// Where it is at other times of day than at `position`, e.g. `"07:30-08:00=250,4"`
    /// (the first stay that holds the time wins).
    pub schedule: Vec<Stay>,
}

/// Being somewhere from one time of day until another (UTC; may wrap past midnight):
/// `HH:MM-HH:MM=x,y`, e.g. `07:30-08:00=250,4` for the bus in the morning.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Stay {
    /// From this minute of the day (0–1439) on …
    pub from_minute: u16,
    /// … until before this one.
    pub until_minute: u16,
    /// Where, metres.
    pub position: [f32; 2],
}

impl Stay {
    /// Whether it holds at `minute` of the day.
    pub fn holds(&self, minute: u16) -> bool {
        if self.from_minute <= self.until_minute {
            (self.from_minute..self.until_minute).contains(&minute)
        } else {
            minute >= self.from_minute || minute < self.until_minute
        }
    }
}

impl std::str::FromStr for Stay {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        let wrong = |why: &str| {
            format!("stay {text:?}: {why}; expected HH:MM-HH:MM=x,y, e.g. 07:30-08:00=250,4")
        };
        let (times, position) = text.split_once('=').ok_or_else(|| wrong("no '='"))?;
        let (from, until) = times
            .split_once('-')
            .ok_or_else(|| wrong("no '-' between the times"))?;
        let minute = |hh_mm: &str| -> std::result::Result<u16, String> {
            let (h, m) = hh_mm
                .trim()
                .split_once(':')
                .ok_or_else(|| wrong("a time without ':'"))?;
            match (h.parse::<u16>(), m.parse::<u16>()) {
                (Ok(h), Ok(m)) if h < 24 && m < 60 => Ok(h * 60 + m),
                _ => Err(wrong(&format!("{hh_mm:?} is no time of day"))),
            }
        };
        let (from_minute, until_minute) = (minute(from)?, minute(until)?);
        if from_minute == until_minute {
            return Err(wrong("it ends when it starts"));
        }
        let position = crate::cli::parse_position(position).map_err(|e| wrong(&e))?;
        Ok(Self {
            from_minute,
            until_minute,
            position,
        })
    }
}

impl std::fmt::Display for Stay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [x, y] = self.position;
        let (from, until) = (self.from_minute, self.until_minute);
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02}={x},{y}",
            from / 60,
            from % 60,
            until / 60,
            until % 60
        )
    }
}

impl TryFrom<String> for Stay {
    type Error = String;

    fn try_from(text: String) -> std::result::Result<Self, String> {
        text.parse()
    }
}

impl From<Stay> for String {
    fn from(stay: Stay) -> Self {
        stay.to_string()
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            ether: std::env::temp_dir().join("kith-ether"),
            position: [0.0, 0.0],
            loss_at_1m_db: 40.0,
            path_loss_exponent: 2.0,
            noise_db: 3.0,
            sensitivity_dbm: -100.0,
            interval_millis: 250,
            schedule: Vec::new(),
        }
    }
}

impl SimConfig {
    /// Where it is at `now` (Unix milliseconds of its clock).
    pub fn position_at(&self, now: UnixMillis) -> [f32; 2] {
        let minute = (now / 60_000 % 1440) as u16;
        self.schedule
            .iter()
            .find(|stay| stay.holds(minute))
            .map_or(self.position, |stay| stay.position)
    }

    /// The RSSI a signal sent with `tx_dbm` from `from` has at `here`, before noise;
    /// `None` when too weak to hear.
    fn mean_rssi(&self, here: [f32; 2], from: [f32; 2], tx_dbm: i8) -> Option<f32> {
        let d = ((from[0] - here[0]).powi(2) + (from[1] - here[1]).powi(2)).sqrt();
        // A position from the air may be NaN, which `max` would turn into 10 cm away.
        if !d.is_finite() {
            return None;
        }
        let d = d.max(0.1);
        let rssi =
            f32::from(tx_dbm) - self.loss_at_1m_db - 10.0 * self.path_loss_exponent * d.log10();
        (rssi >= self.sensitivity_dbm).then_some(rssi)
    }
}

/// What is on the air now.
#[derive(Debug, Default)]
struct OnAir {
    packet: Option<[u8; PACKET_LEN]>,
    sent: u64,
    /// The agent's clock, for where it stands when it sends.
    clock: SystemClock,
}

/// The simulated radio of one agent.
#[derive(Debug)]
pub struct SimRadio {
    config: SimConfig,
    tx_dbm: i8,
    socket: Arc<UdpSocket>,
    announcement: PathBuf,
    on_air: Arc<Mutex<OnAir>>,
    sender: tokio::task::JoinHandle<()>,
    rng: StdRng,
    clock: SystemClock,
}

impl SimRadio {
    /// Stamps what it hears with `clock` (the agent's, which a demo shifts) instead of
    /// the system clock.
    pub fn with_clock(mut self, clock: SystemClock) -> Self {
        self.clock = clock;
        self.on_air.lock().unwrap_or_else(|e| e.into_inner()).clock = clock;
        self
    }

    /// Joins the ether at `config.position`, transmitting with `tx_dbm`.
    pub async fn join(config: SimConfig, tx_dbm: i8) -> Result<Self> {
        std::fs::create_dir_all(&config.ether).map_err(Error::SimulatedRadio)?;
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(Error::SimulatedRadio)?;
        let port = socket.local_addr().map_err(Error::SimulatedRadio)?.port();
        let announcement = config.ether.join(port.to_string());
        std::fs::write(&announcement, b"").map_err(Error::SimulatedRadio)?;
        let socket = Arc::new(socket);
        let on_air = Arc::new(Mutex::new(OnAir::default()));
        let sender = tokio::spawn(broadcast(
            socket.clone(),
            config.clone(),
            port,
            on_air.clone(),
        ));
        Ok(Self {
            config,
            tx_dbm,
            socket,
            announcement,
            on_air,
            sender,
            rng: StdRng::from_entropy(),
            clock: SystemClock::default(),
        })
    }

    fn gaussian(&mut self) -> f32 {
        // Box–Muller.
        let (u1, u2): (f32, f32) = (self.rng.gen_range(f32::EPSILON..1.0), self.rng.r#gen());
        (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
    }

    fn decode(&mut self, packet: &[u8], at: u64) -> Option<(String, Received)> {
        if packet.len() != PACKET_LEN || &packet[..8] != MAGIC {
            return None;
        }
        let id = u64::from_le_bytes(packet[8..16].try_into().ok()?);
        let x = f32::from_le_bytes(packet[16..20].try_into().ok()?);
        let y = f32::from_le_bytes(packet[20..24].try_into().ok()?);
        let tx = packet[24] as i8;
        let here = self.config.position_at(self.clock.now_millis());
        let mean = self.config.mean_rssi(here, [x, y], tx)?;
        let rssi = (mean + self.config.noise_db * self.gaussian())
            .round()
            .clamp(-127.0, 20.0);
        let service_data = packet[25..].try_into().ok()?;
        Some((
            format!("{id:016x}"),
            Received {
                service_data,
                rssi: rssi as i8,
                at,
            },
        ))
    }
}

impl Radio for SimRadio {
    async fn advertise(&mut self, payload: &BeaconPayload) -> Result<()> {
        let mut packet = [0u8; PACKET_LEN];
        packet[..8].copy_from_slice(MAGIC);
        // A fresh "address" per advertisement, as the kernel picks for a real one.
        packet[8..16].copy_from_slice(&self.rng.r#gen::<u64>().to_le_bytes());
        // Bytes 16..24, where it stands, are written as each packet is sent.
        packet[24] = self.tx_dbm as u8;
        packet[25..].copy_from_slice(&payload.to_service_data());
        self.on_air.lock().unwrap_or_else(|e| e.into_inner()).packet = Some(packet);
        Ok(())
    }

    async fn stop_advertising(&mut self) -> Result<()> {
        self.on_air.lock().unwrap_or_else(|e| e.into_inner()).packet = None;
        Ok(())
    }

    async fn scan(&mut self, millis: u64) -> Result<ScanWindow> {
        let clock = self.clock;
        // What arrived while not scanning was not heard.
        let mut buf = [0u8; 128];
        while self.socket.try_recv_from(&mut buf).is_ok() {}
        let started_at = clock.now_millis();
        let deadline = tokio::time::Instant::now() + clock.real_duration(millis);
        let mut window = WindowCollector::default();
        loop {
            match tokio::time::timeout_at(deadline, self.socket.recv_from(&mut buf)).await {
                Err(_elapsed) => break,
                Ok(Err(e)) => return Err(Error::SimulatedRadio(e)),
                Ok(Ok((len, _from))) => {
                    if let Some((who, received)) = self.decode(&buf[..len], clock.now_millis()) {
                        window.hear(&who, received);
                    }
                }
            }
        }
        Ok(window.finish(started_at, clock.now_millis()))
    }

    fn beacons_sent(&self) -> u64 {
        self.on_air.lock().unwrap_or_else(|e| e.into_inner()).sent
    }
}

impl Drop for SimRadio {
    fn drop(&mut self) {
        self.sender.abort();
        let _ = std::fs::remove_file(&self.announcement);
    }
}

/// Sends what is on the air, with where it stands then, to every other agent in the
/// ether, every `config.interval_millis`.
async fn broadcast(
    socket: Arc<UdpSocket>,
    config: SimConfig,
    own_port: u16,
    on_air: Arc<Mutex<OnAir>>,
) {
    let mut ticker = tokio::time::interval(Duration::from_millis(config.interval_millis.max(1)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut peers = Vec::new();
    for tick in 0u64.. {
        ticker.tick().await;
        if tick % 8 == 0 {
            peers = peer_ports(&config.ether, own_port);
        }
        let (packet, clock) = {
            let mut on_air = on_air.lock().unwrap_or_else(|e| e.into_inner());
            if on_air.packet.is_some() {
                on_air.sent += 1;
            }
            (on_air.packet, on_air.clock)
        };
        let Some(mut packet) = packet else { continue };
        let [x, y] = config.position_at(clock.now_millis());
        packet[16..20].copy_from_slice(&x.to_le_bytes());
        packet[20..24].copy_from_slice(&y.to_le_bytes());
        for port in &peers {
            // A peer that left is simply not there; the radio does not care.
            let _ = socket
                .send_to(&packet, SocketAddr::from((Ipv4Addr::LOCALHOST, *port)))
                .await;
        }
    }
}

/// The ports announced in the ether, other than ours.
fn peer_ports(ether: &Path, own_port: u16) -> Vec<u16> {
    std::fs::read_dir(ether)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u16>().ok())
                .filter(|port| *port != own_port)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kith_core::{Aem, Rpi};

    fn config(ether: &Path, x: f32) -> SimConfig {
        SimConfig {
            ether: ether.to_owned(),
            position: [x, 0.0],
            interval_millis: 20,
            ..SimConfig::default()
        }
    }

    #[test]
    fn rssi_falls_with_distance_and_vanishes_far_away() {
        let config = SimConfig::default();
        let here = [0.0, 0.0];
        let at_1m = config.mean_rssi(here, [1.0, 0.0], -26).unwrap();
        let at_10m = config.mean_rssi(here, [10.0, 0.0], -26).unwrap();
        assert_eq!(at_1m, -66.0);
        assert_eq!(at_10m, -86.0);
        assert_eq!(config.mean_rssi([5.0, 0.0], [15.0, 0.0], -26), Some(-86.0));
        assert_eq!(config.mean_rssi(here, [200.0, 0.0], -26), None);
        assert_eq!(config.mean_rssi(here, [f32::NAN, 0.0], -26), None);
        assert_eq!(config.mean_rssi(here, [0.0, f32::INFINITY], -26), None);
    }

    #[tokio::test]
    async fn near_agents_hear_each_other_and_a_far_one_hears_nothing() {
        let ether = tempfile::tempdir().unwrap();
        let mut a = SimRadio::join(config(ether.path(), 0.0), -26)
            .await
            .unwrap();
        let mut b = SimRadio::join(config(ether.path(), 1.5), -26)
            .await
            .unwrap();
        let mut far = SimRadio::join(config(ether.path(), 500.0), -26)
            .await
            .unwrap();
        let beacon = BeaconPayload::new(Rpi::from_bytes([7; 16]), Aem::from_bytes([9; 4]));
        a.advertise(&beacon).await.unwrap();
        // The senders re-read the directory every 8 ticks.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (heard, far_heard) = tokio::join!(b.scan(300), far.scan(300));
        let heard = heard.unwrap();
        assert_eq!(
            heard.received.len(),
            1,
            "one advertiser, one beacon: {heard:?}"
        );
        assert_eq!(heard.received[0].beacon(), beacon);
        let rssi = i32::from(heard.received[0].rssi);
        assert!((-85..=-55).contains(&rssi), "1.5 m away: {rssi} dBm");
        assert!(far_heard.unwrap().received.is_empty());
        assert!(a.beacons_sent() > 5);
        assert_eq!(b.beacons_sent(), 0);

        // Stopping takes it off the air.
        a.stop_advertising().await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(b.scan(200).await.unwrap().received.is_empty());
    }

    #[test]
    fn stays_read_and_print_as_hh_mm_ranges_and_may_wrap_past_midnight() {
        let bus: Stay = "07:30-08:00=250,4".parse().unwrap();
        assert_eq!((bus.from_minute, bus.until_minute), (450, 480));
        assert_eq!(bus.position, [250.0, 4.0]);
        assert_eq!(bus.to_string(), "07:30-08:00=250,4");
        assert!(bus.holds(450) && bus.holds(479) && !bus.holds(480) && !bus.holds(449));
        let night: Stay = "22:00-06:00=-3.5,0".parse().unwrap();
        assert!(night.holds(1439) && night.holds(0) && night.holds(359) && !night.holds(360));
        for bad in [
            "07:30-08:00",
            "0730-08:00=1,1",
            "07:30-24:00=1,1",
            "07:60-08:00=1,1",
            "07:30-07:30=1,1",
            "07:30-08:00=1",
            "07:30-08:00=x,1",
        ] {
            let e = bad.parse::<Stay>().unwrap_err();
            assert!(e.contains(bad) && e.contains("HH:MM-HH:MM=x,y"), "{e}");
        }
        // In a configuration file, the same text.
        let config: crate::config::Config = crate::config::Config::from_toml(
            "[sim]\nschedule = [\"07:30-08:00=250,4\", \"08:00-16:00=900,2\"]",
        )
        .unwrap();
        assert_eq!(config.sim.schedule[0], bus);
        let e = crate::config::Config::from_toml("[sim]\nschedule = [\"7-8=1,1\"]").unwrap_err();
        assert!(e.contains("7-8=1,1"), "{e}");
    }

    #[test]
    fn the_first_stay_that_holds_places_it_else_it_stands_at_its_position() {
        let config = SimConfig {
            position: [1.0, 2.0],
            schedule: vec![
                "07:30-08:00=250,4".parse().unwrap(),
                "07:00-16:00=900,2".parse().unwrap(),
            ],
            ..SimConfig::default()
        };
        let day = 1_764_547_200_000; // 2026-12-01 00:00 UTC
        let at = |h: u64, m: u64| config.position_at(day + (h * 60 + m) * 60_000);
        assert_eq!(at(6, 59), [1.0, 2.0]);
        assert_eq!(at(7, 0), [900.0, 2.0]);
        assert_eq!(at(7, 45), [250.0, 4.0]);
        assert_eq!(at(15, 59), [900.0, 2.0]);
        assert_eq!(at(16, 0), [1.0, 2.0]);
        // Every day alike.
        assert_eq!(
            config.position_at(day + 86_400_000 + 450 * 60_000),
            [250.0, 4.0]
        );
    }

    /// A stay from now until a few minutes from now.
    fn stay_now(position: [f32; 2]) -> Stay {
        let minute = (SystemClock::default().now_millis() / 60_000 % 1440) as u16;
        Stay {
            from_minute: minute,
            until_minute: (minute + 3) % 1440,
            position,
        }
    }

    #[tokio::test]
    async fn an_agent_is_heard_where_its_schedule_puts_it_and_hears_there() {
        let ether = tempfile::tempdir().unwrap();
        let mut listener = SimRadio::join(config(ether.path(), 0.0), -26)
            .await
            .unwrap();
        // Far away by its position, beside the listener by its schedule now.
        let mut visitor = SimRadio::join(
            SimConfig {
                schedule: vec![stay_now([1.5, 0.0])],
                ..config(ether.path(), 500.0)
            },
            -26,
        )
        .await
        .unwrap();
        // Beside the listener by its position, far away by its schedule now.
        let mut away = SimRadio::join(
            SimConfig {
                schedule: vec![stay_now([0.0, 800.0])],
                ..config(ether.path(), 1.5)
            },
            -26,
        )
        .await
        .unwrap();
        let beacon = |n| BeaconPayload::new(Rpi::from_bytes([n; 16]), Aem::from_bytes([n; 4]));
        visitor.advertise(&beacon(1)).await.unwrap();
        away.advertise(&beacon(2)).await.unwrap();
        listener.advertise(&beacon(3)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (heard, visitor_heard, away_heard) =
            tokio::join!(listener.scan(300), visitor.scan(300), away.scan(300));
        let heard: Vec<_> = heard
            .unwrap()
            .received
            .iter()
            .map(Received::beacon)
            .collect();
        assert_eq!(heard, [beacon(1)], "only the visitor is near");
        let visitor_heard = visitor_heard.unwrap().received;
        assert!(
            visitor_heard.iter().any(|r| r.beacon() == beacon(3)),
            "{visitor_heard:?}"
        );
        assert!(away_heard.unwrap().received.is_empty());
    }

    #[tokio::test]
    async fn an_accelerated_radio_scans_for_the_real_time_of_its_window() {
        let ether = tempfile::tempdir().unwrap();
        let clock = SystemClock::default().accelerated(100, SystemClock::default().now());
        let mut radio = SimRadio::join(config(ether.path(), 0.0), -26)
            .await
            .unwrap()
            .with_clock(clock);
        let started = std::time::Instant::now();
        let window = radio.scan(20_000).await.unwrap();
        let real = started.elapsed();
        assert!(
            (Duration::from_millis(200)..Duration::from_millis(1_000)).contains(&real),
            "{real:?}"
        );
        // Its window is in the agent's time: 20 s.
        let length = window.ended_at - window.started_at;
        assert!((20_000..30_000).contains(&length), "{length} ms");
    }

    #[tokio::test]
    async fn junk_on_the_socket_is_ignored() {
        let ether = tempfile::tempdir().unwrap();
        let mut radio = SimRadio::join(config(ether.path(), 0.0), -26)
            .await
            .unwrap();
        assert!(radio.decode(b"hello", 0).is_none());
        let mut bad = [0u8; PACKET_LEN];
        bad[..8].copy_from_slice(b"KITHSIM0");
        assert!(radio.decode(&bad, 0).is_none());
    }
}
