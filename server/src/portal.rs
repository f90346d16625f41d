//! `/portal`: the case worker's page. Log in with the admin API key, issue a code for
//! one person, see it once. Server-rendered HTML, inline CSS, no scripts, no external
//! assets; a session cookie (HttpOnly, SameSite=Strict) keeps the case worker logged in.

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

use crate::calendar::{self, Day};
use crate::clock::UnixSeconds;
use crate::codes::{CodeOrder, Diagnosis, MAX_ONSET_AGE_DAYS, OnsetDates, VerificationCode};
use crate::error::AppError;
use crate::html::{self, error_note, escape, layout};
use crate::sessions::SESSION_SECONDS;
use crate::state::AppState;

const COOKIE: &str = "kith_session";

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
    session_token(headers).is_some_and(|t| state.sessions.is_valid(&t, state.clock.now()))
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
        html::page(StatusCode::OK, &issue_form(&state, None))
    } else {
        html::page(StatusCode::OK, &login_form(None))
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
        return html::page(
            StatusCode::BAD_REQUEST,
            &login_form(Some("The form was incomplete.")),
        );
    };
    if !state.keyring.is_admin_key(form.admin_key.trim()) {
        return html::page(
            StatusCode::UNAUTHORIZED,
            &login_form(Some("That is not the admin key.")),
        );
    }
    let token = state.sessions.create(state.clock.now());
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
        return html::page(
            StatusCode::UNAUTHORIZED,
            &login_form(Some("Please log in first.")),
        );
    }
    let Ok(Form(form)) = form else {
        return html::page(
            StatusCode::BAD_REQUEST,
            &issue_form(&state, Some("The form was incomplete.")),
        );
    };
    match issue_one(&state, &form).await {
        Ok((code, expires_at)) => html::page(StatusCode::OK, &code_page(&code, expires_at)),
        Err(error) => {
            let status = error.status();
            let message = if status.is_client_error() {
                error.to_string()
            } else {
                error.body().message
            };
            html::page(status, &issue_form(&state, Some(&message)))
        }
    }
}

async fn issue_one(
    state: &AppState,
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
            HeaderValue::from_static("a=1; kith_session=tok; b=2"),
        );
        assert_eq!(session_token(&headers).as_deref(), Some("tok"));
    }
}
