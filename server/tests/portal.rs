//! The case worker's page in a real headless Chromium, driven over WebDriver.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`scripts/test` installs them). Without
//! them the test skips (see `kith_test_support::skip`).

mod common;

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use fantoccini::{ClientBuilder, Locator};
use serde_json::json;

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

/// Kills chromedriver (and with it the browser) however the test ends.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn case_worker_logs_in_and_issues_a_code_in_chromium() {
    let browser = on_path("chromium").or_else(|| on_path("chromium-browser"));
    let (Some(chromium), Some(chromedriver)) = (browser, on_path("chromedriver")) else {
        return kith_test_support::skip(
            "chromium or chromedriver not found (apt-get install chromium chromium-driver)",
        );
    };

    let (dir, server, admin) = fresh_server(&[], &[]);
    let created = client()
        .post(server.url("/v1/admin/case-workers"))
        .bearer_auth(&admin)
        .json(&json!({"name": "ana", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);

    let port = free_port();
    let _driver = Driver(
        Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "chromedriver did not start listening"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let profile = tempfile::tempdir().unwrap();
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage",
                format!("--user-data-dir={}", profile.path().display()),
            ],
        }),
    );
    let browser = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("WebDriver session");

    let outcome = async {
        // A wrong password is refused.
        browser.goto(&server.url("/portal")).await?;
        browser
            .find(Locator::Id("name"))
            .await?
            .send_keys("ana")
            .await?;
        browser
            .find(Locator::Id("password"))
            .await?
            .send_keys("not the password")
            .await?;
        browser.find(Locator::Id("login")).await?.click().await?;
        // Clicks return before the next page loads: wait for elements only it has.
        let error = browser
            .wait()
            .for_element(Locator::Id("error"))
            .await?
            .text()
            .await?;
        assert!(error.contains("Wrong name or password"), "{error}");

        // The right password logs in; the session cookie is invisible to scripts (HttpOnly).
        browser
            .find(Locator::Id("name"))
            .await?
            .send_keys("ana")
            .await?;
        browser
            .find(Locator::Id("password"))
            .await?
            .send_keys("correct horse battery")
            .await?;
        browser.find(Locator::Id("login")).await?.click().await?;
        browser.wait().for_element(Locator::Id("diagnosis")).await?;
        let cookies = browser.execute("return document.cookie", vec![]).await?;
        assert_eq!(cookies, json!(""));

        // Issue a code for a clinical diagnosis with a test date five days ago.
        browser
            .find(Locator::Css(
                "#diagnosis option[value='clinical_diagnosis']",
            ))
            .await?
            .click()
            .await?;
        browser
            .find(Locator::Css("#date_kind option[value='test']"))
            .await?
            .click()
            .await?;
        browser
            .execute(
                "document.getElementById('date').value = arguments[0]",
                vec![json!(date_days_ago(&server, 5))],
            )
            .await?;
        let before = now_unix();
        browser.find(Locator::Id("issue")).await?.click().await?;
        let code = browser
            .wait()
            .for_element(Locator::Id("code"))
            .await?
            .text()
            .await?;
        let expires = browser
            .find(Locator::Id("expires"))
            .await?
            .attr("datetime")
            .await?
            .unwrap_or_default();
        let after = now_unix();
        // POST-redirect-GET: the code is on a page reached by GET, and reloading it
        // neither shows the code again nor issues another.
        let shown_at = browser.current_url().await?;
        assert_eq!(shown_at.path(), "/portal/code");
        browser.refresh().await?;
        browser.wait().for_element(Locator::Id("shown")).await?;
        assert!(!browser.source().await?.contains(&code));

        // Shown once: the form page does not show it again.
        browser.goto(&server.url("/portal")).await?;
        let page = browser.source().await?;
        assert!(!page.contains(&code));
        browser
            .wait()
            .for_element(Locator::Id("logout"))
            .await?
            .click()
            .await?;
        browser.wait().for_element(Locator::Id("password")).await?;
        Ok::<_, fantoccini::error::CmdError>((code, expires, before, after))
    }
    .await;
    browser.close().await.ok();
    let (code, expires, before, after) = outcome.expect("browser steps");

    assert_eq!(code.len(), 16, "{code}");
    assert!(code.bytes().all(|b| b.is_ascii_digit()));
    let expected: Vec<String> = (before..=after)
        .map(|t| {
            kith_server::calendar::format_rfc3339(kith_server::UnixSeconds::new(t + 24 * 3600))
        })
        .collect();
    assert!(
        expected.contains(&expires),
        "expiry {expires} is not 24 h from now"
    );

    // The code works once, with the page's diagnosis and date.
    let key = random_key();
    let (status, body, _) = publish_json(&server, &publish_doc(&server, &code, &[key])).await;
    assert_eq!(status, 200, "{body}");
    let stored = kith_server::inspect::StoredData::open(dir.path()).unwrap();
    let record = stored.key_record(&key).unwrap().unwrap();
    assert_eq!(record.report_type, 2, "clinical diagnosis");
    assert_eq!(
        record.days_since_onset,
        Some(5),
        "counted from the test date"
    );
    let codes: i64 = stored
        .connection()
        .query_row("SELECT count(*) FROM redeemed_codes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(codes, 1, "one code issued through the page");
}
