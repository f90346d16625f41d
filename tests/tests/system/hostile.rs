//! Hostile input, bounded and seeded: random and mutated publish bodies (plain and
//! sealed), mutated export files, and garbage on the simulated radio. Nothing answers
//! 5xx, nothing panics, nothing is stored; a replayed code is refused and a replayed
//! sealed body gets its first answer again.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kith_core::{ExportFile, ExportLimits};
use kith_tests::System;
use kith_tests::fuzz::{mutate, random_bytes};
use kith_tests::keys::{self, KeyBytes};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

/// Requests (or files, or packets) per fuzzed input.
const CASES: usize = 400;

/// Documents that are valid JSON but wrong in kind, range or shape.
fn odd_documents(code: &str) -> Vec<Value> {
    let key = STANDARD.encode([7u8; 16]);
    let with = |k: Value| json!({"temporaryExposureKeys": [k], "verificationCode": code});
    vec![
        json!(null),
        json!([]),
        json!({"temporaryExposureKeys": null, "verificationCode": code}),
        json!({"temporaryExposureKeys": [], "verificationCode": code}),
        json!({"temporaryExposureKeys": vec![json!({}); 1000], "verificationCode": code}),
        json!({"temporaryExposureKeys": [], "verificationCode": 12}),
        with(json!({"key": key, "rollingStartNumber": -1, "rollingPeriod": 144})),
        with(json!({"key": key, "rollingStartNumber": u64::MAX, "rollingPeriod": 144})),
        with(json!({"key": key, "rollingStartNumber": 2_900_000, "rollingPeriod": 0})),
        with(json!({"key": key, "rollingStartNumber": 2_900_000, "rollingPeriod": 1e300})),
        with(json!({"key": "not base64!", "rollingStartNumber": 2_900_000, "rollingPeriod": 144})),
        with(json!({"key": STANDARD.encode([1u8; 15]), "rollingStartNumber": 2_900_000})),
        with(json!({"key": key, "rollingStartNumber": "2900000", "transmissionRisk": 99})),
        with(
            json!({"key": key, "rollingStartNumber": 2_900_000, "daysSinceOnsetOfSymptoms": i64::MIN}),
        ),
        json!({"temporaryExposureKeys": [[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]], "verificationCode": "\u{0}\u{202e}"}),
    ]
}

/// The file at `path` (from the server's root), as a device downloads it.
async fn download(system: &System, path: &str) -> Vec<u8> {
    let answer = system
        .http()
        .get(format!("{}/{path}", system.url()))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    answer.bytes().await.expect("the file's bytes").to_vec()
}

/// Reads `CASES * 5` seeded copies of `bytes` (every fourth random, the others mutated)
/// with `read`, as a device reads a downloaded file: each must be refused (`None`) or read
/// exactly as `bytes` is. Most must be refused.
fn refused_or_read_as_published<T: PartialEq + std::fmt::Debug>(
    rng: &mut ChaCha8Rng,
    bytes: &[u8],
    read: impl Fn(&[u8]) -> Option<T>,
) {
    let original = read(bytes).expect("the server's file verifies");
    let mut refused = 0;
    for case in 0..CASES * 5 {
        let copy = if case % 4 == 0 {
            random_bytes(rng, 2 * bytes.len())
        } else {
            mutate(rng, bytes)
        };
        match read(&copy) {
            None => refused += 1,
            Some(read) => assert_eq!(read, original, "case {case}: a changed file verified"),
        }
    }
    assert!(
        refused > CASES,
        "most mutations break the file: {refused} refused"
    );
}

/// A server that lets one source fail to redeem codes as often as a fuzzer needs.
fn patient_server() -> System {
    System::start_with(&[
        "--failed-redemptions-per-source",
        "1000000",
        "--failed-redemptions-burst",
        "1000000",
        "--failed-redemptions-per-hour",
        "1000000",
    ])
}

async fn hpke_public_key(system: &System) -> Vec<u8> {
    let config: Value = system
        .http()
        .get(format!("{}/v1/config", system.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    STANDARD
        .decode(config["hpke"]["publicKey"].as_str().expect("an HPKE key"))
        .unwrap()
}

/// POSTs `body` to /v1/publish as `content_type`; the status and body.
async fn post(system: &System, content_type: &str, body: Vec<u8>) -> (u16, Vec<u8>) {
    let answer = system
        .http()
        .post(format!("{}/v1/publish", system.url()))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("kith-server answers");
    let status = answer.status().as_u16();
    (status, answer.bytes().await.unwrap().to_vec())
}

pub(crate) async fn random_and_mutated_publish_bodies_get_no_5xx_and_store_nothing() {
    let mut system = patient_server();
    let public_key = hpke_public_key(&system).await;
    // A well-formed code that was never issued: nothing can be stored with it.
    let code = "0000000000000000";
    let keys: Vec<KeyBytes> = (0..14u8).map(|i| [i; 16]).collect();
    let valid = serde_json::to_vec(&keys::publish_document(code, &keys)).unwrap();
    let odd = odd_documents(code);
    let mut rng = ChaCha8Rng::seed_from_u64(0x19);
    let mut sealed_answers = 0;
    for case in 0..CASES {
        system.step(&format!("publish fuzz case {case}"));
        let kind = case % 6;
        let (content_type, body) = match kind {
            0 => ("application/json", random_bytes(&mut rng, 4096)),
            1 => ("application/json", mutate(&mut rng, &valid)),
            2 => (
                "application/json",
                serde_json::to_vec(&odd[case / 6 % odd.len()]).unwrap(),
            ),
            3 => {
                let mut body = vec![0; kith_core::sealed::SEALED_BODY_LEN];
                rng.fill_bytes(&mut body);
                ("application/kith-sealed", mutate(&mut rng, &body))
            }
            4 => {
                // Opens, so the server reads the mutated document inside.
                let inner = mutate(&mut rng, &valid);
                let (body, _) = kith_core::sealed::seal(&public_key, &inner, &mut rng).unwrap();
                ("application/kith-sealed", body)
            }
            _ => ("text/plain", valid.clone()),
        };
        let (status, answer) = post(&system, content_type, body).await;
        assert!(status < 500, "case {case} (kind {kind}) answered {status}");
        if kind == 4 {
            assert_eq!(status, 200, "a sealed body that opens is answered 200");
            assert_eq!(answer.len(), kith_core::sealed::SEALED_RESPONSE_LEN);
            sealed_answers += 1;
        } else {
            assert!(
                status >= 400,
                "case {case} (kind {kind}) was accepted: {status}"
            );
        }
    }
    assert!(sealed_answers > 0);
    system.step("checking that nothing was stored");
    assert_eq!(system.stored().count_keys().unwrap(), 0);
}

pub(crate) async fn a_replayed_code_is_refused_and_a_replayed_sealed_body_gets_its_first_answer() {
    let mut system = System::start();
    let codes = system.issue_codes(2).await;
    let mut rng = ChaCha8Rng::seed_from_u64(0x1919);
    let first: Vec<KeyBytes> = (0..3).map(|_| rng.r#gen()).collect();
    let second: Vec<KeyBytes> = (0..3).map(|_| rng.r#gen()).collect();

    system.step("a plain publish, then the same code again");
    let http = system.http().clone();
    assert_eq!(
        keys::publish(&http, &system.url(), &codes[0], &first)
            .await
            .unwrap(),
        200
    );
    let replayed = keys::publish(&http, &system.url(), &codes[0], &second)
        .await
        .unwrap();
    assert_eq!(replayed, 403, "a used code is refused");
    assert_eq!(system.stored().count_keys().unwrap(), 3);

    system.step("a sealed publish, sent twice");
    let public_key = hpke_public_key(&system).await;
    let document = serde_json::to_vec(&keys::publish_document(&codes[1], &second)).unwrap();
    let (body, opener) = kith_core::sealed::seal(&public_key, &document, &mut rng).unwrap();
    let (status_1, answer_1) = post(&system, kith_core::sealed::CONTENT_TYPE, body.clone()).await;
    let (status_2, answer_2) = post(&system, kith_core::sealed::CONTENT_TYPE, body).await;
    assert_eq!((status_1, status_2), (200, 200));
    let opened_1 = opener.open(&answer_1).expect("the answer opens");
    let opened_2 = opener.open(&answer_2).expect("the replay's answer opens");
    assert_eq!(*opened_1, *opened_2, "the replay gets the first answer");
    let inner: Value = serde_json::from_slice(&opened_1).unwrap();
    assert_eq!(inner["status"], 200, "{inner}");
    assert_eq!(
        system.stored().count_keys().unwrap(),
        6,
        "the replay stored nothing"
    );
}

pub(crate) async fn mutated_export_files_are_refused_or_read_exactly_as_published() {
    let mut system = System::start();
    let codes = system.issue_codes(1).await;
    let mut rng = ChaCha8Rng::seed_from_u64(0x5151);
    let published: Vec<KeyBytes> = (0..5).map(|_| rng.r#gen()).collect();
    let http = system.http().clone();
    assert_eq!(
        keys::publish(&http, &system.url(), &codes[0], &published)
            .await
            .unwrap(),
        200
    );
    system.step("waiting for the export");
    let files = system.wait_for_exports(1, Duration::from_secs(60)).await;
    let bytes = download(&system, &files[0]).await;
    let trusted = keys::trusted_keys(&http, &system.url()).await;
    let read = |bytes: &[u8]| -> Option<Vec<KeyBytes>> {
        let export = ExportFile::parse(bytes, &ExportLimits::default())
            .and_then(|file| file.verify(&trusted))
            .ok()?;
        export
            .keys()
            .map(|key| key.ok().map(|k| *k.tek.expose_secret()))
            .collect()
    };
    let original = read(&bytes).expect("the server's file verifies");
    assert!(published.iter().all(|key| original.contains(key)));
    system.step("reading random and mutated copies");
    refused_or_read_as_published(&mut rng, &bytes, read);
}

pub(crate) async fn garbage_on_the_simulated_radio_is_ignored_and_the_agent_keeps_running() {
    let mut system = System::start();
    system.add_agent("target", [0.0, 0.0]);
    system.wait_for_radio().await;
    let port: u16 = std::fs::read_dir(system.dir().join("ether"))
        .unwrap()
        .find_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .expect("the agent's port");
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    // A well-formed packet from 1 m away, the template for the malformed ones.
    let mut packet = b"KITHSIM1".to_vec();
    packet.extend(7u64.to_le_bytes());
    packet.extend(1.0f32.to_le_bytes());
    packet.extend(0.0f32.to_le_bytes());
    packet.push(-26i8 as u8);
    packet.extend([0x42; 20]);
    let mut rng = ChaCha8Rng::seed_from_u64(0xad);
    system.step("sending malformed packets for 8 s");
    let deadline = std::time::Instant::now() + Duration::from_secs(8);
    let mut sent = 0;
    while std::time::Instant::now() < deadline {
        let garbage = match sent % 4 {
            0 => random_bytes(&mut rng, 200),
            1 => {
                // Right length, wrong magic.
                let mut bad = mutate(&mut rng, &packet);
                bad.resize(packet.len(), 0);
                let at = rng.gen_range(0..8);
                bad[at] = packet[at] ^ 0x80;
                bad
            }
            2 => {
                // Right magic, wrong length.
                let mut bad = packet.clone();
                bad.resize(
                    if rng.r#gen() {
                        44
                    } else {
                        46 + rng.gen_range(0..100)
                    },
                    1,
                );
                bad
            }
            _ => {
                // Well-formed but from nowhere: NaN or infinite positions.
                let mut bad = packet.clone();
                let position = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY][sent % 3];
                bad[16..20].copy_from_slice(&position.to_le_bytes());
                bad
            }
        };
        socket.send_to(&garbage, ("127.0.0.1", port)).unwrap();
        sent += 1;
        if sent % 50 == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            system.assert_running();
        }
    }
    assert!(sent > CASES);
    system.step("stopping the agent and reading its store");
    system.stop_agents();
    let status = system.status("target").await;
    assert_eq!(status["sightings"], 0, "{sent} malformed packets: {status}");
}

/// Downloads through the hostile proxy that get a mutated trace-warning package.
const MUTATED_PACKAGE_ROUNDS: usize = 30;

/// `kith-agent check --json` for the agent in `data_dir` through `server_url`: the sync's
/// outcome (it must exit cleanly and never panic).
async fn check_via(data_dir: &std::path::Path, server_url: &str) -> Value {
    let output = kith_tests::system::agent_cli_via(
        data_dir,
        server_url,
        kith_tests::system::REPLAY_OFFSET,
        &["check", "--json"],
    )
    .output()
    .await
    .expect("running kith-agent check");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("panicked"),
        "kith-agent panicked: {stderr}"
    );
    assert!(
        output.status.success(),
        "kith-agent check: {}: {stderr}",
        output.status
    );
    serde_json::from_slice(&output.stdout).expect("check --json")
}

pub(crate) async fn mutated_trace_warning_packages_are_refused_by_the_agent_and_the_real_one_warns_once()
 {
    use kith_core::checkin::{
        CWA_QR_PREFIX, TraceWarningFile, VenueDetails, VenuePayload, VenueType,
    };

    let mut system = System::start();
    system.add_agent("alice", [0.0, 0.0]);
    system.wait_for_radio().await;
    let bob = system.dir().join("bob");
    let venue = VenuePayload::with_seed(
        VenueDetails {
            description: "Café Kith".to_owned(),
            address: "1 Main Street".to_owned(),
            event: None,
            venue_type: VenueType::PermanentFoodService,
            default_check_in_minutes: Some(30),
        },
        &[0x7a; 16],
    )
    .unwrap();
    let qr = venue.qr_text(CWA_QR_PREFIX);

    system.step("Alice and Bob at the café an hour ago, for its 30 minutes; Alice reports");
    let an_hour_earlier = kith_tests::system::REPLAY_OFFSET - 3_600;
    for dir in [system.agent("alice").data_dir.clone(), bob.clone()] {
        let output = kith_tests::system::agent_cli_via(
            &dir,
            &system.url(),
            an_hour_earlier,
            &["check-in", "--qr", &qr],
        )
        .output()
        .await
        .unwrap();
        assert!(output.status.success(), "{output:?}");
    }
    let code = system.issue_codes(1).await.remove(0);
    system.report("alice", &code).await;
    system.step("waiting for the trace-warning package");
    let package = system
        .wait_for_trace_warnings(1, Duration::from_secs(60))
        .await
        .remove(0);
    let http = system.http().clone();

    system.step("2 000 random and mutated copies of the real package, read as a device reads it");
    let bytes = download(&system, &package).await;
    let trusted = keys::trusted_keys(&http, &system.url()).await;
    let read = |bytes: &[u8]| {
        let file = TraceWarningFile::parse(bytes, &ExportLimits::default()).ok()?;
        let verified = file.verify(&trusted).ok()?;
        Some(
            verified
                .reports()
                .iter()
                .map(|r| r.to_bytes())
                .collect::<Vec<_>>(),
        )
    };
    refused_or_read_as_published(&mut ChaCha8Rng::seed_from_u64(0x7a7a), &bytes, read);

    system.step("Bob syncs through a proxy that mutates the package");
    let proxy = kith_tests::proxy::SpoilingProxy::mutating_trace_warnings(
        system.url(),
        0x7a,
        MUTATED_PACKAGE_ROUNDS,
    )
    .await;
    let mut warned = 0;
    let mut rounds = 0;
    while proxy
        .downloads()
        .get(&format!("/{package}"))
        .map_or(0, Vec::len)
        < MUTATED_PACKAGE_ROUNDS
    {
        let outcome = check_via(&bob, proxy.url()).await;
        let new = outcome["new_venue_exposures"]
            .as_array()
            .expect("a list")
            .len();
        if outcome["trace_warning_packages_new"] == 1 {
            // A change the signature does not cover (the zip's own fields): the reports
            // are the server's, and Bob is warned by them, once.
            assert_eq!(new, 1, "{outcome}");
            warned += 1;
            break;
        }
        assert_eq!(new, 0, "a mutated package warned: {outcome}");
        let failed = outcome["files_failed"].as_array().expect("a list");
        assert_eq!(failed.len(), 1, "the package is named as failed: {outcome}");
        let reason = failed[0].as_str().unwrap();
        assert!(
            reason.starts_with(&format!("{package}: ")) && reason.len() > package.len() + 10,
            "a clear reason: {reason}"
        );
        rounds += 1;
        assert!(
            rounds <= MUTATED_PACKAGE_ROUNDS,
            "each sync downloads the package once"
        );
    }

    system.step("the real package, at the next sync: Bob is warned once");
    if warned == 0 {
        let outcome = check_via(&bob, proxy.url()).await;
        assert_eq!(outcome["trace_warning_packages_new"], 1, "{outcome}");
        let warnings = outcome["new_venue_exposures"].as_array().unwrap();
        assert_eq!(warnings.len(), 1, "{outcome}");
        assert!(warnings[0]["minutes"].as_u64() >= Some(15), "{outcome}");
    }
    let again = check_via(&bob, proxy.url()).await;
    assert_eq!(again["trace_warning_packages_new"], 0, "{again}");
    assert_eq!(again["new_venue_exposures"].as_array().unwrap().len(), 0);
}
