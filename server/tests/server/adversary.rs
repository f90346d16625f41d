//! The binary under attack on loopback, bounded in count and time: guessing from many
//! source addresses, idle and dripping connections, invented methods, a second
//! instance on the same data directory.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::json;

/// A client whose connections come from `address` (any 127.x.y.z works on Linux).
fn client_from(address: Ipv4Addr) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(address))
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

every_backend! {
async fn guessing_from_a_thousand_addresses_blocks_no_legitimate_upload() {
    const ATTACKERS: u32 = 1000;
    const GUESSES: u32 = 3;
    const PEOPLE: u32 = 100;
    let (_dir, server, admin) = fresh_server(&[], &[]);
    let codes = issue_many(&server, &admin, PEOPLE).await;
    let today = today_start(&server);
    let started = Instant::now();
    let url = server.url("/v1/publish");
    let attack: Vec<_> = (0..ATTACKERS)
        .map(|i| {
            let client = client_from(Ipv4Addr::new(127, 1, (i / 250) as u8, (i % 250 + 1) as u8));
            let url = url.clone();
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                for g in 0..GUESSES {
                    let guess = format!("{:016}", u64::from(i) * 7_919 + u64::from(g) * 104_729);
                    let doc = publish_doc_at(today, &guess, &[random_key()]);
                    let status = client.post(&url).json(&doc).send().await.unwrap().status();
                    statuses.push(status.as_u16());
                }
                statuses
            })
        })
        .collect();
    // People publish while the attack runs, each from their own address, once.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let people: Vec<_> = codes
        .into_iter()
        .enumerate()
        .map(|(i, code)| {
            let client = client_from(Ipv4Addr::new(127, 2, 0, i as u8 + 1));
            let url = url.clone();
            tokio::spawn(async move {
                let doc = publish_doc_at(today, &code, &[random_key()]);
                client
                    .post(&url)
                    .json(&doc)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let mut succeeded = 0;
    for person in people {
        if person.await.unwrap() == 200 {
            succeeded += 1;
        }
    }
    let (mut refused, mut wrong) = (0, 0);
    for attacker in attack {
        for status in attacker.await.unwrap() {
            match status {
                401 => wrong += 1,
                429 => refused += 1,
                other => panic!("a guess got {other}"),
            }
        }
    }
    println!(
        "{succeeded}/{PEOPLE} legitimate uploads succeeded at the first try during {} guesses from {ATTACKERS} addresses ({wrong} answered 401, {refused} refused with 429) in {:.1} s",
        ATTACKERS * GUESSES,
        started.elapsed().as_secs_f64()
    );
    assert!(succeeded * 100 >= PEOPLE * 99, "{succeeded} of {PEOPLE}");
    // The attack was limited: far fewer wrong codes were answered than guesses sent.
    assert!(
        wrong <= 100 + ATTACKERS + 10,
        "{wrong} guesses were answered"
    );
    assert!(refused > 0);
}
}

every_backend! {
async fn the_guessing_budget_survives_a_restart() {
    const GUESS: &str = "1111222233334444";
    let budget = [
        "--failed-redemptions-burst",
        "2",
        "--failed-redemptions-per-hour",
        "1",
    ];
    let (dir, server, _) = fresh_server(&budget, &[]);
    assert_eq!(publish_status(&server, GUESS, 1).await, 401);
    assert_eq!(publish_status(&server, GUESS, 1).await, 401);
    assert_eq!(
        publish_status(&server, GUESS, 1).await,
        429,
        "this source failed and the budget is spent"
    );
    assert!(server.stop());
    let again = ServerProcess::start(dir.path(), &budget, &[]);
    // The source is new to the restarted server, so its first try is answered; the
    // budget is not refilled by the restart, so its second is not.
    assert_eq!(publish_status(&again, GUESS, 1).await, 401);
    assert_eq!(publish_status(&again, GUESS, 1).await, 429);
}
}

/// Reads until the peer closes (true) or `within` passes (false).
fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            Ok(_) => continue, // a 408 or similar before the close
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[tokio::test]
async fn a_thousand_idle_and_dripping_connections_stop_neither_health_nor_publishes() {
    let (_dir, server, admin) = fresh_server(&["--request-timeout-seconds", "3"], &[]);
    let code = issue_code(&server, &admin).await;
    let mut idle: Vec<TcpStream> = (0..900)
        .map(|_| TcpStream::connect(server.addr).unwrap())
        .collect();
    let mut dripping: Vec<TcpStream> = (0..100)
        .map(|_| {
            let mut s = TcpStream::connect(server.addr).unwrap();
            s.write_all(b"POST /v1/publish HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            s
        })
        .collect();
    for s in &mut dripping {
        s.write_all(b"X-Drip: 1\r\n").unwrap();
    }
    // With 1 000 connections open, the server still answers on both listeners.
    let health = client().get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(publish_status(&server, &code, 2).await, 200);
    let operator = client()
        .get(format!("http://{}/healthz", server.operator_addr))
        .send()
        .await
        .unwrap();
    assert_eq!(operator.status(), 200);
    // A header dripped every second does not keep a connection: all are closed once
    // the header timeout has passed, idle ones too.
    for s in &mut dripping {
        let _ = s.write_all(b"X-Drip: 2\r\n");
    }
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut closed = 0;
    for s in dripping.iter_mut().chain(idle.iter_mut().step_by(10)) {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(10));
        if closed_within(s, left) {
            closed += 1;
        }
    }
    println!(
        "held 1000 connections (900 idle, 100 dripping headers) while /healthz and a publish answered; {closed}/190 checked were closed after the 3 s header timeout"
    );
    assert_eq!(closed, 190);
}

#[tokio::test]
async fn connections_beyond_the_cap_are_closed_and_the_operator_listener_still_answers() {
    let (_dir, server, _) = fresh_server(&["--max-connections", "20"], &[]);
    let _held: Vec<TcpStream> = (0..20)
        .map(|_| TcpStream::connect(server.addr).unwrap())
        .collect();
    // Let the server accept them all before the one too many.
    std::thread::sleep(Duration::from_millis(200));
    let mut extra = TcpStream::connect(server.addr).unwrap();
    assert!(
        closed_within(&mut extra, Duration::from_secs(2)),
        "the 21st connection is closed"
    );
    let operator = client()
        .get(format!("http://{}/healthz", server.operator_addr))
        .send()
        .await
        .unwrap();
    assert_eq!(operator.status(), 200);
}

#[tokio::test]
async fn invented_methods_do_not_grow_the_metrics() {
    let (_dir, server, _) = fresh_server(&[], &[]);
    let http = client();
    for i in 0..300 {
        let method = reqwest::Method::from_bytes(format!("M{i}X{}", i * 31).as_bytes()).unwrap();
        let _ = http
            .request(method, server.url("/v1/config"))
            .send()
            .await
            .unwrap();
    }
    let metrics = http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains(r#"method="other""#), "{metrics}");
    assert!(
        !metrics.contains("M17X527"),
        "an invented method became a label"
    );
    assert!(
        metrics.len() < 64 * 1024,
        "/metrics is {} bytes",
        metrics.len()
    );
    // The public listener does not serve /metrics at all.
    let public = http
        .get(format!("http://{}/metrics", server.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), 404);
}

/// Starts the binary expecting it to exit before it listens: its log (stderr).
fn refused_start(data_dir: &std::path::Path) -> String {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_kith-server"));
    match kith_launch::ServerProcess::start(bin, data_dir, &[], &[]) {
        Err(kith_launch::LaunchError::Exited { status, log, .. }) => {
            assert!(!status.contains("exit status: 0"), "{status}");
            log
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a second server kept running"),
    }
}

#[tokio::test]
async fn a_data_directory_is_private_and_serves_one_server_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let server = ServerProcess::start(dir.path(), &[], &[]);
    let mode = std::fs::metadata(dir.path()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    assert!(
        server.log().contains("its mode is now 0700"),
        "{}",
        server.log()
    );
    let stderr = refused_start(dir.path());
    assert!(stderr.contains("in use by another kith-server"), "{stderr}");
    // The first one is unharmed.
    assert_eq!(get_json(&server, "/healthz").await["status"], "ok");
}

#[tokio::test]
async fn the_admin_key_can_go_to_a_private_file_instead_of_stdout() {
    let keys = tempfile::tempdir().unwrap();
    let file = keys.path().join("admin.key");
    let flag = ["--admin-key-file", file.to_str().unwrap()];
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), &flag, &[]);
    assert!(server.admin_key.is_none());
    let key = std::fs::read_to_string(&file).unwrap().trim().to_owned();
    assert!(key.starts_with("kith_"));
    assert!(!server.stdout().contains(&key));
    assert!(!server.log().contains(&key));
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        issue_codes(&server, &key, json!({"diagnosis": "self_report"}))
            .await
            .len(),
        1
    );
}
