//! The portal's forms in-process: case-worker accounts, lockout, the audit log, the
//! cookie, cross-site requests and resubmitted forms. (`portal.rs` drives Chromium.)

use crate::common::*;
use axum::http::Method;
use serde_json::json;

const FORM: &str = "application/x-www-form-urlencoded";

fn form(
    path: &str,
    body: &str,
    cookie: Option<&str>,
    origin: Option<&str>,
) -> axum::http::Request<Vec<u8>> {
    let mut request = request(Method::POST, path, Some(FORM), body.as_bytes().to_vec());
    let headers = request.headers_mut();
    headers.insert("host", "portal.test".parse().unwrap());
    if let Some(cookie) = cookie {
        headers.insert("cookie", cookie.parse().unwrap());
    }
    if let Some(origin) = origin {
        headers.insert("origin", origin.parse().unwrap());
    }
    request
}

fn page(path: &str, cookie: &str) -> axum::http::Request<Vec<u8>> {
    let mut request = get(path);
    request
        .headers_mut()
        .insert("cookie", cookie.parse().unwrap());
    request
}

async fn add_worker(server: &TestServer, name: &str, password: &str) -> u16 {
    add_case_worker(server, &server.admin_key, name, password).await
}

/// Logs in; returns the `name=value` of the session cookie and the whole Set-Cookie.
async fn log_in(server: &TestServer, name: &str, password: &str) -> (String, String) {
    let reply = server
        .send(form(
            "/portal/login",
            &format!("name={name}&password={password}"),
            None,
            Some("http://portal.test"),
        ))
        .await;
    assert_eq!(reply.status, 303, "{}", reply.text());
    let set_cookie = reply.headers["set-cookie"].to_str().unwrap().to_owned();
    (set_cookie.split(';').next().unwrap().to_owned(), set_cookie)
}

fn form_token(html: &str) -> String {
    let marker = r#"name="form_token" value=""#;
    let at = html.find(marker).expect("the form has a token") + marker.len();
    html[at..].chars().take_while(|c| *c != '"').collect()
}

fn codes_stored(server: &TestServer) -> i64 {
    server
        .stored()
        .count("SELECT count(*) FROM verification_codes")
        .unwrap()
}

#[tokio::test]
async fn accounts_issue_codes_once_each_and_leave_an_audit_trail() {
    let server = TestServer::new();
    assert_eq!(
        add_worker(&server, "ana", "correct horse battery").await,
        201
    );
    assert_eq!(
        add_worker(&server, "ana", "another long password").await,
        400
    );
    assert_eq!(add_worker(&server, "bo", "short").await, 400);
    // The shared admin key is not a portal login any more.
    let reply = server
        .send(form(
            "/portal/login",
            &format!("name=admin&password={}", server.admin_key),
            None,
            None,
        ))
        .await;
    assert_eq!(reply.status, 401);

    let (cookie, set_cookie) = log_in(&server, "ana", "correct%20horse%20battery").await;
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"));
    let html = server.send(page("/portal", &cookie)).await.text();
    let token = form_token(&html);
    let body = format!("form_token={token}&diagnosis=self_report&date_kind=symptom&date=");
    // Cross-site: refused, nothing issued, and the token is still good.
    let forged = server
        .send(form(
            "/portal/codes",
            &body,
            Some(&cookie),
            Some("https://evil.example"),
        ))
        .await;
    assert_eq!(forged.status, 403);
    assert_eq!(codes_stored(&server), 0);
    // Same site: issued, then redirected to the page that shows it (POST-redirect-GET).
    let issued = server
        .send(form(
            "/portal/codes",
            &body,
            Some(&cookie),
            Some("http://portal.test"),
        ))
        .await;
    assert_eq!(
        (issued.status, issued.headers["location"].to_str().unwrap()),
        (303, "/portal/code")
    );
    // The same form sent again (a double click, a reload): no second code.
    let again = server
        .send(form("/portal/codes", &body, Some(&cookie), None))
        .await;
    assert_eq!(again.status, 303);
    assert_eq!(codes_stored(&server), 1);
    // A form without the token cannot issue either.
    let tokenless = server
        .send(form(
            "/portal/codes",
            "diagnosis=self_report&date_kind=symptom&date=",
            Some(&cookie),
            None,
        ))
        .await;
    assert_eq!(tokenless.status, 303);
    assert_eq!(codes_stored(&server), 1);
    let shown = server.send(page("/portal/code", &cookie)).await.text();
    let marker = r#"id="code" class="code">"#;
    let at = shown.find(marker).unwrap() + marker.len();
    let code: String = shown[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    assert_eq!(code.len(), 16);
    assert!(
        !server
            .send(page("/portal/code", &cookie))
            .await
            .text()
            .contains(&code),
        "shown once"
    );
    assert_eq!(publish_status(&server, &code, 1).await, 200);

    // The audit log names the case worker and the code's hash; nothing about the patient.
    let stored = server.stored();
    let rows = stored
        .texts("SELECT case_worker || ' ' || action FROM audit_log")
        .unwrap();
    assert_eq!(rows, ["ana issue_code"]);
}

every_backend! {
async fn repeated_failed_logins_lock_the_account() {
    let server = TestServer::new();
    add_worker(&server, "ana", "correct horse battery").await;
    for _ in 0..4 {
        let reply = server
            .send(form("/portal/login", "name=ana&password=guess", None, None))
            .await;
        assert_eq!(reply.status, 401);
    }
    let reply = server
        .send(form("/portal/login", "name=ana&password=guess", None, None))
        .await;
    assert_eq!(reply.status, 429);
    let right = "name=ana&password=correct%20horse%20battery";
    assert_eq!(
        server
            .send(form("/portal/login", right, None, None))
            .await
            .status,
        429,
        "locked"
    );
    server.clock.advance(15 * 60);
    assert_eq!(
        server
            .send(form("/portal/login", right, None, None))
            .await
            .status,
        303
    );
}
}

every_backend! {
async fn behind_tls_the_cookie_is_host_bound_and_secure() {
    let server = TestServer::with_config(|config| config.portal_secure_cookie = true);
    add_worker(&server, "ana", "correct horse battery").await;
    let reply = server
        .send(form(
            "/portal/login",
            "name=ana&password=correct%20horse%20battery",
            None,
            Some("https://portal.test"),
        ))
        .await;
    assert_eq!(reply.status, 303);
    let cookie = reply.headers["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("__Host-kith_session="), "{cookie}");
    assert!(
        cookie.contains("; Secure") && cookie.contains("; Path=/;"),
        "{cookie}"
    );
    // An http:// origin is another origin.
    let plain = server
        .send(form(
            "/portal/login",
            "name=ana&password=correct%20horse%20battery",
            None,
            Some("http://portal.test"),
        ))
        .await;
    assert_eq!(plain.status, 403);
}
}

#[tokio::test]
async fn a_code_exists_only_with_its_audit_row() {
    let server = TestServer::new();
    // An audit log that refuses rows, as a disk filling up between two statements
    // would: the codes must not be issued without them.
    let conn = rusqlite::Connection::open(server.dir.path().join("kith.sqlite3")).unwrap();
    conn.execute_batch(
        "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log
         BEGIN SELECT RAISE(ABORT, 'audit log refused'); END;",
    )
    .unwrap();
    let mut order = post_json(
        "/v1/admin/codes",
        &json!({"diagnosis": "confirmed_test", "count": 3}),
    );
    order.headers_mut().insert(
        "authorization",
        format!("Bearer {}", server.admin_key).parse().unwrap(),
    );
    let refused = server.send(order).await;
    assert_eq!(refused.status, 503, "{}", refused.text());
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(count("SELECT count(*) FROM verification_codes"), 0);

    conn.execute_batch("DROP TRIGGER refuse_audit").unwrap();
    assert_eq!(issue_many(&server, &server.admin_key, 3).await.len(), 3);
    assert_eq!(count("SELECT count(*) FROM verification_codes"), 3);
    assert_eq!(
        count(
            "SELECT count(*) FROM audit_log JOIN verification_codes USING (code_hash)
             WHERE case_worker = 'admin API' AND action = 'issue_code'"
        ),
        3
    );
}

every_backend! {
async fn the_dashboard_and_metrics_count_each_figure_on_the_day_it_happened() {
    let server = TestServer::new();
    let activity = three_days_of_activity(&server).await;
    assert!(!activity.files.is_empty(), "the export wrote files");
    let file_bytes: u64 = activity.files.iter().map(|f| f.1).sum();
    let expected = [
        (activity.issued_on, [3, 0, 0, 0, 0]),
        (activity.published_on, [0, 2, 5, 0, 0]),
        (
            activity.exported_on,
            [0, 0, 0, activity.files.len() as u64, file_bytes],
        ),
    ];

    assert_eq!(
        add_worker(&server, "ana", "correct horse battery").await,
        201
    );
    let (cookie, _) = log_in(&server, "ana", "correct horse battery").await;
    let reply = server.send(page("/portal/dashboard", &cookie)).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.headers["cache-control"], "no-store");
    let html = reply.text();
    for (day, figures) in expected {
        let cells: String = figures.iter().map(|n| format!("<td>{n}</td>")).collect();
        let row = format!(r#"<tr id="day-{day}"><td>{day}</td>{cells}</tr>"#);
        assert!(html.contains(&row), "{row} missing");
    }
    let quiet_day = activity.exported_on.minus(1);
    assert!(html.contains(&format!(
        r#"<tr id="day-{quiet_day}"><td>{quiet_day}</td><td>0</td><td>0</td><td>0</td><td>0</td><td>0</td></tr>"#
    )));
    assert_eq!(html.matches("<svg").count(), 4, "four charts");
    assert_eq!(server.send(get("/portal/dashboard")).await.status, 401);

    let metrics = server.send(get("/metrics")).await.text();
    let names = [
        "kith_daily_codes_issued",
        "kith_daily_codes_redeemed",
        "kith_daily_keys_published",
        "kith_daily_export_files",
        "kith_daily_export_bytes",
    ];
    for (day, figures) in expected {
        for (name, n) in names.iter().zip(figures) {
            let line = format!("{name}{{day=\"{day}\"}} {n}");
            assert!(metrics.lines().any(|l| l == line), "{line} missing");
        }
    }
}
}
