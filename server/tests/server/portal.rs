//! The case worker's page in a real headless Chromium, driven over WebDriver.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`scripts/test` installs them). Without
//! them the test skips (see `kith_test_support::skip`).

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
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

/// A headless Chromium driven over WebDriver (chromedriver is ended on drop), or `None`
/// (the test skips) when they are not installed.
async fn chromium() -> Option<(Driver, tempfile::TempDir, fantoccini::Client)> {
    let browser = on_path("chromium").or_else(|| on_path("chromium-browser"));
    let (Some(chromium), Some(chromedriver)) = (browser, on_path("chromedriver")) else {
        kith_test_support::skip(
            "chromium or chromedriver not found (apt-get install chromium chromium-driver)",
        );
        return None;
    };
    let port = free_port();
    let driver = Driver(
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

    Some((driver, profile, browser))
}

/// A case-worker account `ana`.
async fn add_ana(api: &impl Api, admin: &str) {
    let status = add_case_worker(api, admin, "ana", "correct horse battery").await;
    assert_eq!(status, 201);
}

/// Types each text into the input with its id.
async fn fill(
    browser: &fantoccini::Client,
    fields: &[(&str, &str)],
) -> Result<(), fantoccini::error::CmdError> {
    for (id, text) in fields {
        browser.find(Locator::Id(id)).await?.send_keys(text).await?;
    }
    Ok(())
}

/// Logs `ana` in on the login form the browser shows.
async fn log_in(browser: &fantoccini::Client) -> Result<(), fantoccini::error::CmdError> {
    fill(
        browser,
        &[("name", "ana"), ("password", "correct horse battery")],
    )
    .await?;
    browser.find(Locator::Id("login")).await?.click().await?;
    browser.wait().for_element(Locator::Id("diagnosis")).await?;
    Ok(())
}

#[tokio::test]
async fn case_worker_logs_in_and_issues_a_code_in_chromium() {
    let Some((_driver, _profile, browser)) = chromium().await else {
        return;
    };
    let (dir, server, admin) = fresh_server(&[], &[]);
    add_ana(&server, &admin).await;

    let outcome = async {
        // A wrong password is refused.
        browser.goto(&server.url("/portal")).await?;
        fill(
            &browser,
            &[("name", "ana"), ("password", "not the password")],
        )
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
        log_in(&browser).await?;
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
    let codes = stored.count("SELECT count(*) FROM redeemed_codes").unwrap();
    assert_eq!(codes, 1, "one code issued through the page");
}

/// A positive person's check-in at the venue of `qr`, uploaded with their keys (and
/// padded to 280 by the server).
async fn upload_visit(server: &ServerProcess, admin: &str, qr: &str) {
    use kith_core::checkin::{ProtectedReport, Stay, TransmissionRiskLevel, VenuePayload};
    let venue = VenuePayload::from_qr_text(qr).unwrap();
    let now = kith_core::UnixSeconds::new(now_unix());
    let stay = Stay::new(now - 7200, now - 3600).unwrap();
    let report = ProtectedReport::seal(
        &mut kith_core::OsRng,
        venue.location_id(),
        stay,
        TransmissionRiskLevel::HIGHEST,
    );
    let code = issue_code(server, admin).await;
    let mut doc = publish_doc(server, &code, &[random_key()]);
    doc["checkInProtectedReports"] = json!([base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        report.to_bytes()
    )]);
    let (status, body, _) = publish_json(server, &doc).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn the_authority_registers_a_venue_prints_its_poster_and_sees_a_cluster_in_chromium() {
    let Some((_driver, _profile, browser)) = chromium().await else {
        return;
    };
    let (dir, server, admin) = fresh_server(&["--cluster-min-check-ins", "2"], &[]);
    add_ana(&server, &admin).await;

    let registered = async {
        browser.goto(&server.url("/portal")).await?;
        log_in(&browser).await?;
        browser.goto(&server.url("/portal/venues")).await?;
        fill(
            &browser,
            &[
                ("description", "Café <Kith>"),
                ("address", "Main Street 1"),
                ("minutes", "90"),
            ],
        )
        .await?;
        browser.find(Locator::Id("register")).await?.click().await?;
        // The poster: the QR code as SVG, the address, links to PNG and SVG.
        let qr = browser.wait().for_element(Locator::Css("#qr svg")).await?;
        let size = qr.rectangle().await?;
        let address = browser.find(Locator::Id("address")).await?.text().await?;
        let png = browser
            .find(Locator::Id("png"))
            .await?
            .attr("href")
            .await?
            .unwrap_or_default();
        let title = browser.find(Locator::Css("h1")).await?.text().await?;
        Ok::<_, fantoccini::error::CmdError>((size, address, png, title))
    }
    .await;
    let (size, address, png, title) = match registered {
        Ok(found) => found,
        Err(error) => {
            browser.close().await.ok();
            panic!("browser steps: {error}");
        }
    };
    assert!(
        size.2 > 200.0 && size.3 > 200.0,
        "QR code drawn at {size:?}"
    );
    assert_eq!(
        (title.as_str(), address.as_str()),
        ("Café <Kith>", "Main Street 1")
    );
    let hex = png
        .strip_prefix("/portal/venues/")
        .and_then(|rest| rest.strip_suffix("/qr.png"))
        .expect("PNG link")
        .to_owned();

    // The poster's code is a CWA-format venue code that phones can check into.
    let stored = kith_server::inspect::StoredData::open(dir.path()).unwrap();
    let qr = stored
        .texts("SELECT qr_text FROM venues")
        .unwrap()
        .remove(0);
    let venue = kith_core::checkin::VenuePayload::from_qr_text(&qr).unwrap();
    assert_eq!(hex::encode(venue.location_id().hash().to_bytes()), hex);
    assert_eq!(venue.details().default_check_in_minutes, Some(90));

    // One positive check-in: counted, no cluster. A place the authority never registered
    // appears by its hash once seen twice; the padding of the uploads (random hashes,
    // each seen once) is only counted.
    let unregistered = kith_core::checkin::VenuePayload::generate(
        &mut kith_core::OsRng,
        kith_core::checkin::VenueDetails {
            description: "Elsewhere".into(),
            address: "Side Street 2".into(),
            ..Default::default()
        },
    )
    .unwrap()
    .qr_text(kith_core::checkin::CWA_QR_PREFIX);
    upload_visit(&server, &admin, &qr).await;
    upload_visit(&server, &admin, &unregistered).await;
    upload_visit(&server, &admin, &unregistered).await;
    let row = format!("venue-{hex}");
    let seen = async {
        browser.goto(&server.url("/portal/venues")).await?;
        let venue_row = browser.wait().for_element(Locator::Id(&row)).await?;
        let mut counts = Vec::new();
        for cell in venue_row.find_all(Locator::Css("td")).await? {
            counts.push(cell.text().await?);
        }
        let before = (
            venue_row.attr("class").await?,
            counts,
            browser
                .find_all(Locator::Css("tr[id^='hash-']"))
                .await?
                .len(),
            browser.find(Locator::Id("once")).await?.text().await?,
        );
        Ok::<_, fantoccini::error::CmdError>(before)
    }
    .await;
    // A second one makes a cluster (--cluster-min-check-ins 2).
    upload_visit(&server, &admin, &qr).await;
    let flagged = async {
        browser.refresh().await?;
        let venue_row = browser.wait().for_element(Locator::Id(&row)).await?;
        Ok::<_, fantoccini::error::CmdError>((
            venue_row.attr("class").await?,
            venue_row.find(Locator::Css(".flag")).await?.text().await?,
        ))
    }
    .await;
    browser.close().await.ok();
    let (class, cells, unknown, once) = seen.expect("browser steps");
    assert_eq!(class, None, "one check-in is no cluster: {cells:?}");
    // Place, 14 days, the flag, the poster link: one day counts one check-in.
    assert_eq!(cells.len(), 17, "{cells:?}");
    let days: Vec<&str> = cells[1..15].iter().map(String::as_str).collect();
    assert_eq!(
        days.iter().filter(|c| !c.is_empty()).collect::<Vec<_>>(),
        [&"1"],
        "{cells:?}"
    );
    assert_eq!(unknown, 1, "the unregistered place is listed by its hash");
    // Three uploads, each padded to 280: 279 random hashes each seen once.
    assert!(
        once.starts_with("Not listed: 837 unregistered location hashes seen once"),
        "{once}"
    );
    let (class, flag) = flagged.expect("browser steps");
    assert_eq!(class.as_deref(), Some("cluster"));
    assert_eq!(flag, "CLUSTER");
}

#[tokio::test]
async fn the_health_authority_reads_the_daily_figures_on_the_dashboard_in_chromium() {
    let Some((_driver, _profile, browser)) = chromium().await else {
        return;
    };
    // In this process, on a manual clock, so that the figures fall on several days; the
    // operator listener is served on a loopback port for the browser.
    let server = TestServer::new();
    let activity = three_days_of_activity(&server).await;
    add_ana(&server, &server.admin_key).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let operator = format!("http://{}", listener.local_addr().unwrap());
    let router = kith_server::operator(server.server.state());
    tokio::spawn(async move { axum::serve(listener, router).await });

    let seen = async {
        browser.goto(&format!("{operator}/portal")).await?;
        log_in(&browser).await?;
        browser
            .goto(&format!("{operator}/portal/dashboard"))
            .await?;
        let table = browser.wait().for_element(Locator::Id("counts")).await?;
        let mut rows = Vec::new();
        for row in table.find_all(Locator::Css("tr[id^='day-']")).await? {
            let mut cells = Vec::new();
            for cell in row.find_all(Locator::Css("td")).await? {
                cells.push(cell.text().await?);
            }
            rows.push(cells);
        }
        let mut charts = Vec::new();
        for id in ["codes", "keys", "files", "bytes"] {
            let chart = browser
                .find(Locator::Css(&format!("#chart-{id} svg")))
                .await?;
            let bars = chart.find_all(Locator::Css("rect")).await?.len();
            charts.push((id, chart.rectangle().await?, bars));
        }
        Ok::<_, fantoccini::error::CmdError>((rows, charts))
    }
    .await;
    browser.close().await.ok();
    let (rows, charts) = seen.expect("browser steps");

    let row = |day: kith_server::calendar::Day| {
        rows.iter()
            .find(|cells| cells[0] == day.to_string())
            .unwrap_or_else(|| panic!("no row for {day}: {rows:?}"))
            .clone()
    };
    assert_eq!(rows.len(), 28, "four weeks, one row a day");
    assert_eq!(rows[0][0], activity.exported_on.to_string(), "newest first");
    assert_eq!(row(activity.issued_on)[1..], ["3", "0", "0", "0", "0"]);
    assert_eq!(row(activity.published_on)[1..], ["0", "2", "5", "0", "0"]);
    let bytes: u64 = activity.files.iter().map(|f| f.1).sum();
    assert_eq!(
        row(activity.exported_on)[1..],
        [
            "0".to_owned(),
            "0".to_owned(),
            "0".to_owned(),
            activity.files.len().to_string(),
            bytes.to_string()
        ]
    );
    for (id, size, rects) in charts {
        assert!(
            size.2 > 200.0 && size.3 > 100.0,
            "{id} chart drawn at {size:?}"
        );
        // A bar per day and series, with the background and legend around them.
        assert!(rects >= 28, "{id}: {rects} rectangles");
    }
}
