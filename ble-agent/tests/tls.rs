//! The server connection over TLS (rustls): a real TLS server (`openssl s_server -WWW`,
//! serving `/v1/config` from a directory) with a certificate of a private CA. The agent
//! trusts it through `ca_file`, and refuses it, saying why, without.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kith_agent::server::ServerClient;

/// Kills the TLS server when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn openssl(dir: &Path, args: &[&str]) -> bool {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test]
async fn https_works_with_the_configured_ca_and_an_unknown_ca_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // A private CA, and a server certificate it signs (rustls refuses a CA certificate as
    // the server's own).
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let made = openssl(
        dir.path(),
        &[
            &["req", "-x509"],
            &ec[..],
            &["-days", "1", "-subj", "/CN=Kith test CA"],
            &["-keyout", "ca-key.pem", "-out", "ca.pem"],
        ]
        .concat(),
    );
    if !made {
        return kith_test_support::skip("openssl is not installed (scripts/test installs it)");
    }
    let signed = openssl(
        dir.path(),
        &[
            &["req", "-x509", "-CA", "ca.pem", "-CAkey", "ca-key.pem"],
            &ec[..],
            &["-days", "1", "-subj", "/CN=localhost"],
            &["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
            &["-addext", "basicConstraints=critical,CA:FALSE"],
            &["-keyout", "key.pem", "-out", "cert.pem"],
        ]
        .concat(),
    );
    assert!(signed, "openssl signs the server certificate with the CA");
    let www = dir.path().join("www");
    std::fs::create_dir_all(www.join("v1")).unwrap();
    let config = serde_json::json!({
        "riskConfiguration": {},
        "hpke": {
            "kemId": 32, "kdfId": 1, "aeadId": 1, "publicKey": "AAAA", "info": "kith publish v1",
            "contentType": "application/kith-sealed", "paddedPlaintextLen": 4096
        }
    });
    std::fs::write(www.join("v1/config"), config.to_string()).unwrap();

    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _server = Killed(
        Command::new("openssl")
            .args(["s_server", "-quiet", "-WWW", "-accept"])
            .arg(port.to_string())
            .arg("-cert")
            .arg(dir.path().join("cert.pem"))
            .arg("-key")
            .arg(dir.path().join("key.pem"))
            .current_dir(&www)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "openssl s_server did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    let url = format!("https://localhost:{port}");

    let trusting = ServerClient::new(&url, Some(&dir.path().join("ca.pem"))).unwrap();
    let config = trusting.config().await.unwrap();
    assert_eq!(config.export_keys().len(), 0);

    let system_roots_only = ServerClient::new(&url, None).unwrap();
    let e = system_roots_only.config().await.unwrap_err().to_string();
    assert!(e.contains("certificate"), "{e}");

    let e = ServerClient::new(&url, Some(&dir.path().join("key.pem")))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no PEM certificate"), "{e}");
}
