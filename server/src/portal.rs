//! `/portal`: the case worker's page. Log in with the admin API key, issue a code for
//! one person, see it once. Server-rendered HTML, inline CSS, no scripts, no external
//! assets; a session cookie (HttpOnly, SameSite=Strict) keeps the case worker logged in.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use axum::Form;
use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand_core::{OsRng, RngCore};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::admin::{MAX_ONSET_AGE_DAYS, code_order};
use crate::calendar;
use crate::codes::{Diagnosis, VerificationCode};
use crate::error::AppError;
use crate::state::AppState;

const COOKIE: &str = "kith_session";
/// A case worker's session lasts a working day.
const SESSION_SECONDS: u64 = 8 * 3600;

/// Logged-in sessions: SHA-256 of the cookie token → expiry (Unix seconds).
/// Only hashes are kept, so a memory dump does not hand out live sessions.
#[derive(Debug, Default)]
pub struct Sessions(Mutex<HashMap<[u8; 32], u64>>);

impl Sessions {
    fn create(&self, now: u64) -> String {
        let mut token = [0u8; 32];
        OsRng.fill_bytes(&mut token);
        let token = URL_SAFE_NO_PAD.encode(token);
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, expiry| *expiry > now);
        map.insert(Sha256::digest(&token).into(), now + SESSION_SECONDS);
        token
    }

    fn is_valid(&self, token: &str, now: u64) -> bool {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&<[u8; 32]>::from(Sha256::digest(token)))
            .is_some_and(|expiry| *expiry > now)
    }

    fn end(&self, token: &str) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&<[u8; 32]>::from(Sha256::digest(token)));
    }
}

fn session_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| pair.trim().strip_prefix("kith_session="))
        .map(str::to_owned)
}

fn logged_in(state: &AppState, headers: &HeaderMap) -> bool {
    session_token(headers).is_some_and(|t| state.sessions.is_valid(&t, state.clock.now_unix()))
}

/// The login form.
#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginForm {
    /// The admin API key printed on the server's first start.
    pub admin_key: String,
}

/// The code form.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CodeForm {
    /// `confirmed_test`, `clinical_diagnosis` or `self_report`.
    pub diagnosis: String,
    /// `symptom` or `test`: what `date` is.
    pub date_kind: String,
    /// `YYYY-MM-DD`, or empty when unknown.
    #[serde(default)]
    pub date: String,
}

/// The routes of this resource.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(page))
        .routes(routes!(login))
        .routes(routes!(issue))
        .routes(routes!(logout))
}

/// The case worker's page: a login form, or the form to issue a code.
#[utoipa::path(get, path = "/portal", tag = "health authority", responses(
    (status = 200, description = "HTML page", body = String, content_type = "text/html"),
))]
async fn page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if logged_in(&state, &headers) {
        html(StatusCode::OK, &issue_form(&state, None))
    } else {
        html(StatusCode::OK, &login_form(None))
    }
}

/// Logs in with the admin API key and sets the session cookie.
#[utoipa::path(post, path = "/portal/login", tag = "health authority",
    request_body(content = LoginForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Logged in; back to /portal"),
        (status = 400, description = "Malformed form", body = String, content_type = "text/html"),
        (status = 401, description = "Wrong key", body = String, content_type = "text/html"),
    ),
)]
async fn login(
    State(state): State<AppState>,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return html(
            StatusCode::BAD_REQUEST,
            &login_form(Some("The form was incomplete.")),
        );
    };
    if !state.keyring.is_admin_key(form.admin_key.trim()) {
        return html(
            StatusCode::UNAUTHORIZED,
            &login_form(Some("That is not the admin key.")),
        );
    }
    let token = state.sessions.create(state.clock.now_unix());
    let cookie = format!(
        "{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/portal; Max-Age={SESSION_SECONDS}"
    );
    redirect_with_cookie(&cookie)
}

/// Ends the session.
#[utoipa::path(post, path = "/portal/logout", tag = "health authority", responses(
    (status = 303, description = "Logged out; back to /portal"),
))]
async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(token) = session_token(&headers) {
        state.sessions.end(&token);
    }
    redirect_with_cookie(&format!(
        "{COOKIE}=; HttpOnly; SameSite=Strict; Path=/portal; Max-Age=0"
    ))
}

/// Issues one code and shows it once.
#[utoipa::path(post, path = "/portal/codes", tag = "health authority",
    request_body(content = CodeForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The code, shown once", body = String, content_type = "text/html"),
        (status = 400, description = "Invalid form", body = String, content_type = "text/html"),
        (status = 401, description = "Not logged in", body = String, content_type = "text/html"),
    ),
)]
async fn issue(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<CodeForm>, FormRejection>,
) -> Response {
    if !logged_in(&state, &headers) {
        return html(
            StatusCode::UNAUTHORIZED,
            &login_form(Some("Please log in first.")),
        );
    }
    let Ok(Form(form)) = form else {
        return html(
            StatusCode::BAD_REQUEST,
            &issue_form(&state, Some("The form was incomplete.")),
        );
    };
    match issue_one(&state, &form).await {
        Ok((code, expires_at)) => html(StatusCode::OK, &code_page(&code, expires_at)),
        Err(error) => {
            let status = error.status();
            let message = if status.is_client_error() {
                error.to_string()
            } else {
                error.body().message
            };
            html(status, &issue_form(&state, Some(&message)))
        }
    }
}

async fn issue_one(state: &AppState, form: &CodeForm) -> Result<(VerificationCode, u64), AppError> {
    let diagnosis = Diagnosis::ALL
        .into_iter()
        .find(|d| d.name() == form.diagnosis)
        .ok_or_else(|| AppError::invalid("invalid_diagnosis", "Choose a diagnosis."))?;
    let date = Some(form.date.trim()).filter(|d| !d.is_empty());
    let (symptom, test) = match form.date_kind.as_str() {
        "symptom" => (date, None),
        "test" => (None, date),
        _ => {
            return Err(AppError::invalid(
                "invalid_date_kind",
                "Choose symptom onset or test date.",
            ));
        }
    };
    let order = code_order(state, diagnosis, symptom, test, 1)?;
    let code = state
        .writer
        .issue_codes(order)
        .await?
        .pop()
        .ok_or(AppError::Unavailable)?;
    Ok((code, order.expires_at))
}

fn redirect_with_cookie(cookie: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, HeaderValue::from_static("/portal"));
    if let Ok(value) = HeaderValue::from_str(cookie) {
        headers.insert(header::SET_COOKIE, value);
    }
    response
}

fn html(status: StatusCode, body: &str) -> Response {
    let mut response = (status, Html(body.to_owned())).into_response();
    let headers = response.headers_mut();
    // Codes must not linger in caches, and the page needs nothing from elsewhere.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn layout(title: &str, content: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · Kith</title>
<style>
body {{ font-family: system-ui, sans-serif; background: #f4f6f8; color: #1d2630; margin: 0; }}
main {{ max-width: 34rem; margin: 3rem auto; background: #fff; padding: 2rem; border-radius: 8px; box-shadow: 0 1px 4px #0002; }}
h1 {{ font-size: 1.4rem; margin-top: 0; }}
label {{ display: block; margin: 1rem 0 .3rem; font-weight: 600; }}
input, select, button {{ font: inherit; padding: .5rem; width: 100%; box-sizing: border-box; }}
button {{ margin-top: 1.2rem; background: #1f6feb; color: #fff; border: 0; border-radius: 4px; cursor: pointer; }}
button.secondary {{ background: #6e7781; }}
.error {{ background: #ffebe9; border: 1px solid #ff8182; padding: .6rem; border-radius: 4px; }}
.code {{ display: block; font: 700 2.2rem ui-monospace, monospace; letter-spacing: .15rem; text-align: center; margin: 1rem 0; }}
</style>
</head>
<body><main>
<h1>{title}</h1>
{content}
</main></body>
</html>
"#
    )
}

fn error_note(error: Option<&str>) -> String {
    error.map_or_else(String::new, |e| {
        format!(
            r#"<p class="error" id="error" role="alert">{}</p>"#,
            escape(e)
        )
    })
}

fn login_form(error: Option<&str>) -> String {
    layout(
        "Case worker login",
        &format!(
            r#"{}
<form method="post" action="/portal/login">
<label for="admin_key">Admin API key</label>
<input id="admin_key" name="admin_key" type="password" autocomplete="off" required>
<button id="login" type="submit">Log in</button>
</form>"#,
            error_note(error)
        ),
    )
}

fn issue_form(state: &AppState, error: Option<&str>) -> String {
    let today = calendar::day_of(state.clock.now_unix());
    let mut options = String::new();
    for d in Diagnosis::ALL {
        let _ = write!(
            options,
            r#"<option value="{}">{}</option>"#,
            d.name(),
            d.label()
        );
    }
    layout(
        "Issue a verification code",
        &format!(
            r#"{error}
<form method="post" action="/portal/codes">
<label for="diagnosis">Diagnosis</label>
<select id="diagnosis" name="diagnosis">{options}</select>
<label for="date_kind">The date below is the</label>
<select id="date_kind" name="date_kind">
<option value="symptom">day symptoms began</option>
<option value="test">day of the test (no symptoms)</option>
</select>
<label for="date">Date (UTC; leave empty if unknown)</label>
<input id="date" name="date" type="date" min="{min}" max="{max}">
<button id="issue" type="submit">Issue code</button>
</form>
<form method="post" action="/portal/logout"><button id="logout" class="secondary" type="submit">Log out</button></form>"#,
            error = error_note(error),
            min = calendar::format_date(today.saturating_sub(MAX_ONSET_AGE_DAYS)),
            max = calendar::format_date(today),
        ),
    )
}

fn code_page(code: &VerificationCode, expires_at: u64) -> String {
    let expires = calendar::format_rfc3339(expires_at);
    layout(
        "Verification code",
        &format!(
            r#"<p>Give this code to the person now. It is shown only once and works once.</p>
<output id="code" class="code">{code}</output>
<p>Valid until <time id="expires" datetime="{expires}">{expires}</time>.</p>
<form method="get" action="/portal"><button id="again" type="submit">Issue another code</button></form>"#,
            code = escape(code.expose_secret()),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert!(login_form(Some("<script>")).contains("&lt;script&gt;"));
    }

    #[test]
    fn sessions_expire_and_end() {
        let sessions = Sessions::default();
        let token = sessions.create(1000);
        assert!(sessions.is_valid(&token, 1000 + SESSION_SECONDS - 1));
        assert!(!sessions.is_valid(&token, 1000 + SESSION_SECONDS));
        assert!(!sessions.is_valid("forged", 1000));
        sessions.end(&token);
        assert!(!sessions.is_valid(&token, 1001));
    }

    #[test]
    fn session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; kith_session=tok; b=2"),
        );
        assert_eq!(session_token(&headers).as_deref(), Some("tok"));
    }
}
