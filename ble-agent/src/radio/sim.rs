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
use crate::clock::{Clock, SystemClock};
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
    /// Milliseconds between two packets of an advertisement.
    pub interval_millis: u64,
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
        }
    }
}

impl SimConfig {
    /// The RSSI a signal sent with `tx_dbm` from `from` has here, before noise; `None`
    /// when too weak to hear.
    fn mean_rssi(&self, from: [f32; 2], tx_dbm: i8) -> Option<f32> {
        let d =
            ((from[0] - self.position[0]).powi(2) + (from[1] - self.position[1]).powi(2)).sqrt();
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
            config.ether.clone(),
            port,
            on_air.clone(),
            Duration::from_millis(config.interval_millis.max(1)),
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
        let mean = self.config.mean_rssi([x, y], tx)?;
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
        packet[16..20].copy_from_slice(&self.config.position[0].to_le_bytes());
        packet[20..24].copy_from_slice(&self.config.position[1].to_le_bytes());
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
        let deadline = tokio::time::Instant::now() + Duration::from_millis(millis);
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

/// Sends what is on the air to every other agent in the ether, every `interval`.
async fn broadcast(
    socket: Arc<UdpSocket>,
    ether: PathBuf,
    own_port: u16,
    on_air: Arc<Mutex<OnAir>>,
    interval: Duration,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut peers = Vec::new();
    for tick in 0u64.. {
        ticker.tick().await;
        if tick % 8 == 0 {
            peers = peer_ports(&ether, own_port);
        }
        let packet = {
            let mut on_air = on_air.lock().unwrap_or_else(|e| e.into_inner());
            if on_air.packet.is_some() {
                on_air.sent += 1;
            }
            on_air.packet
        };
        let Some(packet) = packet else { continue };
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
        let here = SimConfig::default();
        let at_1m = here.mean_rssi([1.0, 0.0], -26).unwrap();
        let at_10m = here.mean_rssi([10.0, 0.0], -26).unwrap();
        assert_eq!(at_1m, -66.0);
        assert_eq!(at_10m, -86.0);
        assert_eq!(here.mean_rssi([200.0, 0.0], -26), None);
        assert_eq!(here.mean_rssi([f32::NAN, 0.0], -26), None);
        assert_eq!(here.mean_rssi([0.0, f32::INFINITY], -26), None);
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
