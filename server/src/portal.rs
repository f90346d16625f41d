//! `/portal`: the case worker's page. Log in with a case-worker account, issue a code
//! for one person, see it once. Server-rendered HTML, inline CSS, no scripts, no
//! external assets. A session cookie (HttpOnly, SameSite=Strict; `__Host-` and Secure
//! with `--portal-secure-cookie`) keeps the case worker logged in; every POST must come
//! from this origin (`Origin` header) and the code form carries a one-time token, so a
//! cross-site form cannot issue a code and a resubmitted one does not issue a second.
//! Issuing answers with a redirect to `/portal/code` (POST-redirect-GET), which shows
//! the code once. Who issued which code when goes to the audit log.

use std::fmt::Write as _;

use axum::Form;
use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::accounts::LoginError;
use crate::calendar::{self, Day};
use crate::clock::UnixSeconds;
use crate::codes::{CodeOrder, Diagnosis, MAX_ONSET_AGE_DAYS, OnsetDates, VerificationCode};
use crate::error::AppError;
use crate::html::{self, error_note, escape, layout};
use crate::sessions::SESSION_SECONDS;
use crate::state::AppState;

/// The session cookie's name: `__Host-` binds it to this host over HTTPS only.
fn cookie_name(state: &AppState) -> &'static str {
    if state.config.portal_secure_cookie {
        "__Host-kith_session"
    } else {
        "kith_session"
    }
}

fn session_cookie(state: &AppState, value: &str, max_age: u64) -> String {
    if state.config.portal_secure_cookie {
        format!(
            "{}={value}; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age={max_age}",
            cookie_name(state)
        )
    } else {
        format!(
            "{}={value}; HttpOnly; SameSite=Strict; Path=/portal; Max-Age={max_age}",
            cookie_name(state)
        )
    }
}

fn session_token(name: &str, headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(name)?.strip_prefix('='))
        .map(str::to_owned)
}

/// The session token and its case worker, if logged in.
pub fn session(state: &AppState, headers: &HeaderMap) -> Option<(String, String)> {
    let token = session_token(cookie_name(state), headers)?;
    let who = state.sessions.case_worker(&token, state.clock.now())?;
    Some((token, who))
}

/// Whether a POST comes from this origin: a browser's `Origin` must name the host the
/// request was sent to. (Clients that send no `Origin` are not browsers a forged form
/// could drive.)
fn same_origin(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let scheme = if state.config.portal_secure_cookie {
        "https"
    } else {
        "http"
    };
    matches!((origin.to_str(), host), (Ok(origin), Some(host)) if origin == format!("{scheme}://{host}"))
}

/// The login page, saying that the page asked for needs a login.
pub fn not_logged_in() -> Response {
    html::page(
        StatusCode::UNAUTHORIZED,
        &login_form(Some("Please log in first.")),
    )
}

/// Why a form sent to the portal is not acted on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// It came from another site.
    CrossSite,
    /// No one is logged in.
    NotLoggedIn,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Self::CrossSite => cross_site(),
            Self::NotLoggedIn => not_logged_in(),
        }
    }
}

/// The session token and case worker behind a form sent to the portal.
pub fn form_sender(state: &AppState, headers: &HeaderMap) -> Result<(String, String), Refusal> {
    if !same_origin(state, headers) {
        return Err(Refusal::CrossSite);
    }
    session(state, headers).ok_or(Refusal::NotLoggedIn)
}

/// The page refusing a form sent from another site.
fn cross_site() -> Response {
    html::page(
        StatusCode::FORBIDDEN,
        &layout("Refused", "<p>This form was sent from another site.</p>"),
    )
}

/// The login form.
#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginForm {
    /// The case worker's account name.
    pub name: String,
    /// Their password.
    pub password: String,
}

/// The code form.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CodeForm {
    /// The one-time token of the form as it was shown.
    #[serde(default)]
    pub form_token: String,
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
        .routes(routes!(show_code))
        .routes(routes!(logout))
}

/// The issue form with a fresh one-time token.
fn issue_page(state: &AppState, token: &str, status: StatusCode, error: Option<&str>) -> Response {
    match state.sessions.new_form_token(token, state.clock.now()) {
        Some(form_token) => html::page(status, &issue_form(state, &form_token, error)),
        None => not_logged_in(),
    }
}

/// The case worker's page: a login form, or the form to issue a code.
#[utoipa::path(get, path = "/portal", tag = "health authority", responses(
    (status = 200, description = "HTML page", body = String, content_type = "text/html"),
))]
async fn page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match session(&state, &headers) {
        Some((token, _)) => issue_page(&state, &token, StatusCode::OK, None),
        None => html::page(StatusCode::OK, &login_form(None)),
    }
}

/// Logs a case worker in and sets the session cookie.
#[utoipa::path(post, path = "/portal/login", tag = "health authority",
    request_body(content = LoginForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Logged in; back to /portal"),
        (status = 400, description = "Malformed form", body = String, content_type = "text/html"),
        (status = 401, description = "Wrong name or password", body = String, content_type = "text/html"),
        (status = 403, description = "Sent from another site", body = String, content_type = "text/html"),
        (status = 429, description = "Account locked after repeated failures", body = String, content_type = "text/html"),
    ),
)]
async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    if !same_origin(&state, &headers) {
        return cross_site();
    }
    let Ok(Form(form)) = form else {
        return html::page(
            StatusCode::BAD_REQUEST,
            &login_form(Some("The form was incomplete.")),
        );
    };
    let accounts = state.accounts.clone();
    let now = state.clock.now();
    let name = form.name.trim().to_owned();
    let checked = {
        let name = name.clone();
        tokio::task::spawn_blocking(move || accounts.verify(&name, &form.password, now)).await
    };
    match checked {
        Ok(Ok(Ok(()))) => {
            let token = state.sessions.create(&name, now);
            redirect_with_cookie(
                "/portal",
                Some(&session_cookie(&state, &token, SESSION_SECONDS)),
            )
        }
        Ok(Ok(Err(LoginError::Wrong))) => html::page(
            StatusCode::UNAUTHORIZED,
            &login_form(Some("Wrong name or password.")),
        ),
        Ok(Ok(Err(LoginError::Locked {
            retry_after_seconds,
        }))) => html::page(
            StatusCode::TOO_MANY_REQUESTS,
            &login_form(Some(&format!(
                "Too many failed logins: this account is locked for {} more minutes.",
                retry_after_seconds.div_ceil(60)
            ))),
        ),
        _ => html::page(
            StatusCode::SERVICE_UNAVAILABLE,
            &login_form(Some("The server could not check the login; try again.")),
        ),
    }
}

/// Ends the session.
#[utoipa::path(post, path = "/portal/logout", tag = "health authority", responses(
    (status = 303, description = "Logged out; back to /portal"),
    (status = 403, description = "Sent from another site", body = String, content_type = "text/html"),
))]
async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if !same_origin(&state, &headers) {
        return cross_site();
    }
    if let Some(token) = session_token(cookie_name(&state), &headers) {
        state.sessions.end(&token);
    }
    redirect_with_cookie("/portal", Some(&session_cookie(&state, "", 0)))
}

/// Issues one code and redirects to the page that shows it once.
#[utoipa::path(post, path = "/portal/codes", tag = "health authority",
    request_body(content = CodeForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Issued (or already issued from this form); see /portal/code"),
        (status = 400, description = "Invalid form", body = String, content_type = "text/html"),
        (status = 401, description = "Not logged in", body = String, content_type = "text/html"),
        (status = 403, description = "Sent from another site", body = String, content_type = "text/html"),
    ),
)]
async fn issue(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<CodeForm>, FormRejection>,
) -> Response {
    let (token, who) = match form_sender(&state, &headers) {
        Ok(sender) => sender,
        Err(refusal) => return refusal.into_response(),
    };
    let Ok(Form(form)) = form else {
        return issue_page(
            &state,
            &token,
            StatusCode::BAD_REQUEST,
            Some("The form was incomplete."),
        );
    };
    let now = state.clock.now();
    if !state
        .sessions
        .take_form_token(&token, &form.form_token, now)
    {
        // A resubmitted (or forged) form: no second code.
        return redirect_with_cookie("/portal/code", None);
    }
    match issue_one(&state, &who, &form).await {
        Ok((code, expires_at)) => {
            state.sessions.hold_issued(&token, code, expires_at, now);
            redirect_with_cookie("/portal/code", None)
        }
        Err(error) => {
            let status = error.status();
            let message = if status.is_client_error() {
                error.to_string()
            } else {
                error.body().message
            };
            issue_page(&state, &token, status, Some(&message))
        }
    }
}

/// Shows the code just issued, once.
#[utoipa::path(get, path = "/portal/code", tag = "health authority", responses(
    (status = 200, description = "The code, or a note that it was shown already", body = String, content_type = "text/html"),
    (status = 401, description = "Not logged in", body = String, content_type = "text/html"),
))]
async fn show_code(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some((token, _)) = session(&state, &headers) else {
        return not_logged_in();
    };
    match state.sessions.take_issued(&token, state.clock.now()) {
        Some((code, expires_at)) => html::page(StatusCode::OK, &code_page(&code, expires_at)),
        None => html::page(
            StatusCode::OK,
            &layout(
                "Verification code",
                r#"<p id="shown">This code was shown already; codes are shown only once.</p>
<form method="get" action="/portal"><button id="again" type="submit">Issue another code</button></form>"#,
            ),
        ),
    }
}

async fn issue_one(
    state: &AppState,
    case_worker: &str,
    form: &CodeForm,
) -> Result<(VerificationCode, UnixSeconds), AppError> {
    let diagnosis = Diagnosis::ALL
        .into_iter()
        .find(|d| d.name() == form.diagnosis)
        .ok_or_else(|| AppError::invalid("invalid_diagnosis", "Choose a diagnosis."))?;
    let date = Some(form.date.trim()).filter(|d| !d.is_empty());
    let dates = match form.date_kind.as_str() {
        "symptom" => OnsetDates {
            symptom_onset: date,
            test: None,
        },
        "test" => OnsetDates {
            symptom_onset: None,
            test: date,
        },
        _ => {
            return Err(AppError::invalid(
                "invalid_date_kind",
                "Choose symptom onset or test date.",
            ));
        }
    };
    let order = CodeOrder::new(
        diagnosis,
        dates,
        1,
        state.clock.now(),
        state.config.code_lifetime_seconds(),
    )?;
    let code = state
        .writer
        .issue_codes(order, case_worker)
        .await?
        .pop()
        .ok_or(AppError::Unavailable)?;
    Ok((code, order.expires_at))
}

fn redirect_with_cookie(location: &'static str, cookie: Option<&str>) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, HeaderValue::from_static(location));
    if let Some(value) = cookie.and_then(|c| HeaderValue::from_str(c).ok()) {
        headers.insert(header::SET_COOKIE, value);
    }
    response
}

fn login_form(error: Option<&str>) -> String {
    layout(
        "Case worker login",
        &format!(
            r#"{}
<form method="post" action="/portal/login">
<label for="name">Name</label>
<input id="name" name="name" autocomplete="username" required>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button id="login" type="submit">Log in</button>
</form>"#,
            error_note(error)
        ),
    )
}

fn issue_form(state: &AppState, form_token: &str, error: Option<&str>) -> String {
    let today = Day::of(state.clock.now());
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
<input type="hidden" name="form_token" value="{form_token}">
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
<form method="post" action="/portal/logout"><button id="logout" class="secondary" type="submit">Log out</button></form>
<p><a href="/portal/dashboard">Dashboard</a> · <a href="/portal/venues">Venues</a></p>"#,
            error = error_note(error),
            form_token = escape(form_token),
            min = today.minus(MAX_ONSET_AGE_DAYS),
            max = today,
        ),
    )
}

fn code_page(code: &VerificationCode, expires_at: UnixSeconds) -> String {
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
    fn session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; kith_session_x=no; kith_session=tok; b=2"),
        );
        assert_eq!(
            session_token("kith_session", &headers).as_deref(),
            Some("tok")
        );
        assert_eq!(session_token("__Host-kith_session", &headers), None);
    }
}
