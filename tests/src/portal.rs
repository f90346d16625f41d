//! The case worker's side: an account made through the admin API, then the portal's HTML
//! forms sent as a browser sends them (session cookie, the form's one-time token, the
//! `Origin` header), the code read from the page that shows it once.

use reqwest::header::{COOKIE, LOCATION, ORIGIN, SET_COOKIE};
use reqwest::redirect::Policy;

/// A case worker logged in to the portal of the operator listener at `base`.
#[derive(Debug)]
pub struct CaseWorker {
    http: reqwest::Client,
    base: String,
    cookie: String,
}

impl CaseWorker {
    /// Creates the account `name` with the admin key, then logs in with the form.
    pub async fn sign_up_and_log_in(base: &str, admin_key: &str, name: &str) -> Self {
        let http = reqwest::Client::builder()
            .redirect(Policy::none())
            .build()
            .expect("an HTTP client");
        let password = "correct horse battery staple";
        let created = http
            .post(format!("{base}/v1/admin/case-workers"))
            .bearer_auth(admin_key)
            .json(&serde_json::json!({"name": name, "password": password}))
            .send()
            .await
            .expect("the admin API answers");
        assert_eq!(created.status(), 201, "creating the case worker {name}");
        let login = http
            .post(format!("{base}/portal/login"))
            .header(ORIGIN, base)
            .form(&[("name", name), ("password", password)])
            .send()
            .await
            .expect("the portal answers");
        assert_eq!(login.status(), 303, "logging in: {:?}", login.text().await);
        assert_eq!(login.headers()[LOCATION], "/portal");
        let cookie = login.headers()[SET_COOKIE]
            .to_str()
            .expect("an ASCII cookie")
            .split(';')
            .next()
            .unwrap_or_default()
            .to_owned();
        Self {
            http,
            base: base.to_owned(),
            cookie,
        }
    }

    /// Issues a code for a confirmed test through the form and reads it off the page.
    pub async fn issue_code(&self) -> String {
        let page = self.get("/portal").await;
        let form_token = between(&page, r#"name="form_token" value=""#, "\"")
            .unwrap_or_else(|| panic!("no form token on the portal page: {page}"));
        let issued = self
            .http
            .post(format!("{}/portal/codes", self.base))
            .header(COOKIE, &self.cookie)
            .header(ORIGIN, &self.base)
            .form(&[
                ("form_token", form_token),
                ("diagnosis", "confirmed_test"),
                ("date_kind", "test"),
                ("date", ""),
            ])
            .send()
            .await
            .expect("the portal answers");
        assert_eq!(issued.status(), 303, "issuing: {:?}", issued.text().await);
        assert_eq!(issued.headers()[LOCATION], "/portal/code");
        let page = self.get("/portal/code").await;
        between(&page, r#"<output id="code" class="code">"#, "</output>")
            .unwrap_or_else(|| panic!("no code on the page: {page}"))
            .to_owned()
    }

    async fn get(&self, path: &str) -> String {
        let answer = self
            .http
            .get(format!("{}{path}", self.base))
            .header(COOKIE, &self.cookie)
            .send()
            .await
            .expect("the portal answers");
        assert_eq!(answer.status(), 200, "GET {path}");
        answer.text().await.expect("an HTML page")
    }
}

/// The text of `page` between `start` and the next `end`.
fn between<'a>(page: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let rest = &page[page.find(start)? + start.len()..];
    Some(&rest[..rest.find(end)?])
}
