//! `kith-agent venue`: a screen at a place shows a QR code visitors check in with, a new
//! one every day, and the device checks itself in to each.
//!
//! The code is Corona-Warn-App's venue format (core's [`checkin`](kith_core::checkin)), so
//! any CWA-compatible app checks in. Its seed changes at every UTC midnight, so the
//! place's published location hash changes too and warnings cannot be collected per venue
//! over time. Each day's seed is HMAC-SHA256 of a secret kept in the data directory
//! (`venue.key`, created on first use) over the venue and the day: a restart shows the
//! same code the same day, and nobody without the secret can tell the next one.
//! The device checks itself in to each day's code, so it holds the visit a warning about
//! that place would match.

use std::path::{Path, PathBuf};

use clap::Args;
use hmac::{Hmac, Mac};
use kith_core::checkin::{CWA_QR_PREFIX as QR_PREFIX, SEED_LEN, VenueDetails, VenuePayload};
use kith_core::{Day, OsRng, UnixSeconds};
use rand_core::RngCore;
use serde::Serialize;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::clock::Clock;
use crate::error::{Error, Result};

/// The file in the data directory holding the venue's secret.
const SECRET_FILE: &str = "venue.key";

/// Options of `venue`.
#[derive(Clone, Debug, Args)]
pub struct VenueArgs {
    /// Name of the place, as visitors' apps show it (1–100 characters).
    #[arg(long)]
    pub description: String,
    /// Its address (1–100 characters).
    #[arg(long)]
    pub address: String,
    /// Minutes a visit lasts unless the visitor checks out earlier.
    #[arg(long, default_value_t = 120)]
    pub minutes: u32,
    /// Also write the day's code to this SVG file (rewritten every day), e.g. for a
    /// browser kiosk or a poster.
    #[arg(long)]
    pub svg: Option<PathBuf>,
    /// Show today's code, check in and exit, instead of showing it until stopped.
    #[arg(long)]
    pub once: bool,
}

/// One day's code.
#[derive(Clone, Debug, Serialize)]
pub struct DayCode {
    /// The day, `YYYY-MM-DD` (UTC).
    pub date: String,
    /// The QR code's text.
    pub qr_text: String,
    /// The SVG file written, if any.
    pub svg: Option<PathBuf>,
    /// The code drawn for a terminal (Unicode half blocks).
    #[serde(skip)]
    pub terminal: String,
}

impl std::fmt::Display for DayCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{}", self.terminal)?;
        writeln!(
            f,
            "check in with a CWA-compatible app; code of {}",
            self.date
        )?;
        if let Some(svg) = &self.svg {
            writeln!(f, "also written to {}", svg.display())?;
        }
        Ok(())
    }
}

/// The venue's secret, read from `data_dir` or created there (mode 0600).
pub fn secret(data_dir: &Path) -> Result<Zeroizing<[u8; 32]>> {
    let path = data_dir.join(SECRET_FILE);
    let mut secret = Zeroizing::new([0u8; 32]);
    match std::fs::read(&path) {
        Ok(bytes) if bytes.len() == 32 => secret.copy_from_slice(&bytes),
        Ok(_) => {
            return Err(Error::Config(format!(
                "{} is not a venue secret (32 bytes); move it away to make a new one",
                path.display()
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            OsRng.fill_bytes(secret.as_mut());
            write_private(&path, secret.as_ref())?;
        }
        Err(e) => return Err(Error::io(format!("reading {}", path.display()))(e)),
    }
    Ok(secret)
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(Error::io(format!("creating {}", path.display())))?;
    file.write_all(bytes)
        .map_err(Error::io(format!("writing {}", path.display())))
}

/// The venue's code on `day`: the same inputs give the same code.
pub fn day_code(secret: &[u8; 32], args: &VenueArgs, day: Day) -> Result<VenuePayload> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    for part in [
        b"kith venue seed v1".as_slice(),
        args.description.as_bytes(),
        &[0],
        args.address.as_bytes(),
        &[0],
        &day.get().to_be_bytes(),
    ] {
        mac.update(part);
    }
    let digest = Zeroizing::new(mac.finalize().into_bytes());
    let mut seed = Zeroizing::new([0u8; SEED_LEN]);
    seed.copy_from_slice(&digest[..SEED_LEN]);
    let details = VenueDetails {
        description: args.description.clone(),
        address: args.address.clone(),
        default_check_in_minutes: Some(args.minutes),
        ..VenueDetails::default()
    };
    VenuePayload::with_seed(details, &seed).map_err(|e| Error::Config(format!("venue: {e}")))
}

/// Draws `payload`'s QR code for a terminal, and as SVG.
pub fn render(payload: &VenuePayload) -> Result<(String, String)> {
    let code = qrcode::QrCode::new(payload.qr_text(QR_PREFIX).as_bytes())
        .map_err(|e| Error::Config(format!("venue: the code does not fit a QR code: {e}")))?;
    let terminal = code
        .render::<qrcode::render::unicode::Dense1x2>()
        .dark_color(qrcode::render::unicode::Dense1x2::Light)
        .light_color(qrcode::render::unicode::Dense1x2::Dark)
        .quiet_zone(true)
        .build();
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(400, 400)
        .quiet_zone(true)
        .build();
    Ok((terminal, svg))
}

/// The day's code at `now`: rendered, written to the SVG file, and checked in to.
pub fn show_day<C: Clock>(
    agent: &mut crate::Agent<C>,
    secret: &[u8; 32],
    args: &VenueArgs,
) -> Result<DayCode> {
    let day = agent.now().day();
    let payload = day_code(secret, args, day)?;
    let (terminal, svg) = render(&payload)?;
    if let Some(path) = &args.svg {
        std::fs::write(path, svg).map_err(Error::io(format!("writing {}", path.display())))?;
    }
    agent.check_in_venue(&payload)?;
    Ok(DayCode {
        date: day.to_string(),
        qr_text: payload.qr_text(QR_PREFIX),
        svg: args.svg.clone(),
        terminal,
    })
}

/// Seconds from `now` to the next UTC midnight.
pub fn until_midnight(now: UnixSeconds) -> u64 {
    now.day().plus(1).start().since(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> VenueArgs {
        VenueArgs {
            description: "Café Kith".into(),
            address: "1 Main Street".into(),
            minutes: 90,
            svg: None,
            once: true,
        }
    }

    #[test]
    fn a_day_has_one_code_and_the_next_day_another() {
        let secret = [7; 32];
        let today = day_code(&secret, &args(), Day::new(20_000)).unwrap();
        let again = day_code(&secret, &args(), Day::new(20_000)).unwrap();
        let tomorrow = day_code(&secret, &args(), Day::new(20_001)).unwrap();
        assert_eq!(today.qr_text(QR_PREFIX), again.qr_text(QR_PREFIX));
        assert_ne!(today.location_id(), tomorrow.location_id());
        let other_secret = day_code(&[8; 32], &args(), Day::new(20_000)).unwrap();
        assert_ne!(today.location_id(), other_secret.location_id());

        // What a visitor's app reads from the code.
        let scanned = VenuePayload::from_qr_text(&today.qr_text(QR_PREFIX)).unwrap();
        assert_eq!(scanned.details().description, "Café Kith");
        assert_eq!(scanned.details().address, "1 Main Street");
        assert_eq!(scanned.details().default_check_in_minutes, Some(90));
        assert_eq!(scanned.location_id(), today.location_id());
    }

    #[test]
    fn bad_details_say_what_is_wrong() {
        let long = VenueArgs {
            description: "x".repeat(101),
            ..args()
        };
        let e = day_code(&[7; 32], &long, Day::new(1))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("configuration: venue:"), "{e}");
    }

    #[test]
    fn midnight_is_the_next_rotation() {
        assert_eq!(until_midnight(UnixSeconds::new(86_400 * 3)), 86_400);
        assert_eq!(until_midnight(UnixSeconds::new(86_400 * 3 + 86_399)), 1);
    }
}
