//! The staff console (`bibgate serve --console ADDR:PORT`): server-side rendered pages over
//! the same functions as the staff CLI (`cmd/`), on the tokio runtime `serve` runs.
//!
//! - `auth`: sessions (a random 256-bit id in an HttpOnly, SameSite=Strict cookie; the
//!   table in memory), the per-session CSRF token every form carries, and the sign-in
//!   back-off per user name and per address.
//! - `pages`: what each page reads and each form does, as blocking functions over `Data`.
//! - `views`: the askama templates' values (`templates/console/`, checked at build time).
//! - `multipart`: the one upload form's body.
//!
//! Invariants:
//! - Every rule is the CLI's: a page calls the function its command calls (`results`,
//!   `result retry`, `record show|diff|history|edit|restore|merge`, `editor`,
//!   `duplicates`), never a second implementation.
//! - A staff member sees and changes only their institution's zone and its network zone
//!   (results: only their institution's); an administrator sees every zone. Anything else
//!   is "not found" (GET) or refused (POST).
//! - Every POST carries the session's CSRF token (sign-in: the sign-in cookie's token) and
//!   is refused without it; a session cookie that names no live session signs out.
//! - Pages work without JavaScript.

mod auth;
mod multipart;
mod pages;
mod views;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tracing::{info, warn};

use crate::data::Data;
use auth::{Backoff, BackoffConfig, SESSION_COOKIE, SIGNIN_COOKIE, Sessions};

/// The largest file the upload page takes.
pub const UPLOAD_MAX_BYTES: usize = 64 * 1024 * 1024;
/// Form bodies other than uploads are at most this long (a record's mrk text fits).
const FORM_MAX_BYTES: usize = 1024 * 1024;

/// How the console is served.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Cookies are `Secure` (the console is reached over TLS, e.g. behind the load
    /// balancer).
    pub secure: bool,
}

/// The console's state: the stores (opened once by `serve`), the sessions and the back-off.
struct Console {
    data: Arc<Data>,
    options: Options,
    sessions: Mutex<Sessions>,
    backoff: Mutex<Backoff>,
}

/// The signed-in staff member of a request.
#[derive(Clone, Debug)]
pub(crate) struct Who {
    session: String,
    /// The user name.
    pub user: String,
    /// Their institution.
    pub institution: String,
    /// Their institution's network zone.
    pub network: Option<String>,
    /// A consortium administrator (every zone).
    pub admin: bool,
    /// The session's CSRF token.
    pub csrf: String,
    /// The message left by the last POST.
    pub flash: Option<(bool, String)>,
}

impl Who {
    /// Whether the staff member may see and change records of `zone`.
    pub fn sees_zone(&self, zone: &str) -> bool {
        self.admin || zone == self.institution || self.network.as_deref() == Some(zone)
    }

    /// Whether the staff member may see the results of `institution` (and act on them).
    pub fn sees_institution(&self, institution: &str) -> bool {
        self.admin || institution == self.institution
    }
}

/// Why a request gets no page.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// Not signed in (or the session ended): to the sign-in page.
    SignIn,
    /// A POST without the right CSRF token, or a change outside the staff member's zones.
    Forbidden(String),
    /// Nothing there, or nothing this staff member may see.
    NotFound(String),
    /// A request that makes no sense.
    Bad(String),
    /// The console or a store failed.
    Internal(String),
}

impl From<anyhow::Error> for Refusal {
    fn from(error: anyhow::Error) -> Self {
        Refusal::Internal(format!("{error:#}"))
    }
}

impl From<bibgate_store::Error> for Refusal {
    fn from(error: bibgate_store::Error) -> Self {
        Refusal::Internal(error.to_string())
    }
}

impl From<bibgate_import::Error> for Refusal {
    fn from(error: bibgate_import::Error) -> Self {
        Refusal::Internal(error.to_string())
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let (status, text) = match self {
            Refusal::SignIn => {
                return (
                    StatusCode::SEE_OTHER,
                    [
                        (header::LOCATION, "/signin".to_string()),
                        (
                            header::SET_COOKIE,
                            auth::set_cookie(SESSION_COOKIE, "", false, Some(0)),
                        ),
                    ],
                )
                    .into_response();
            }
            Refusal::Forbidden(text) => (StatusCode::FORBIDDEN, text),
            Refusal::NotFound(text) => (StatusCode::NOT_FOUND, text),
            Refusal::Bad(text) => (StatusCode::BAD_REQUEST, text),
            Refusal::Internal(text) => {
                warn!(error = %text, "console: request failed");
                (StatusCode::INTERNAL_SERVER_ERROR, text)
            }
        };
        let mut response = views::render(&views::MessagePage {
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            text,
        });
        *response.status_mut() = status;
        response
    }
}

/// Runs `work` on a blocking thread (every store call blocks).
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Refusal> + Send + 'static,
) -> Result<T, Refusal> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| Refusal::Internal(format!("the request's task failed: {error}")))?
}

fn session_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(|text| auth::cookie(text, SESSION_COOKIE))
}

fn signin_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(|text| auth::cookie(text, SIGNIN_COOKIE))
}

/// A 303 to `to` (after a POST, and for `/`).
fn see_other(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_string())]).into_response()
}

impl Console {
    /// The signed-in staff member, from the session cookie and the stored account (a
    /// removed account signs out). `take_flash` takes the last POST's message (pages do).
    async fn who(self: &Arc<Self>, headers: &HeaderMap, take_flash: bool) -> Result<Who, Refusal> {
        let id = session_id(headers).ok_or(Refusal::SignIn)?.to_string();
        let (user, csrf, flash) = {
            let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
            let session = sessions.get(&id, Instant::now()).ok_or(Refusal::SignIn)?;
            let flash = if take_flash {
                session.flash.take()
            } else {
                None
            };
            (session.user.clone(), session.csrf.clone(), flash)
        };
        let data = self.data.clone();
        let name = user.clone();
        let found = blocking(move || {
            let store = data.store()?;
            let Some(account) = store.staff(&name)? else {
                return Ok(None);
            };
            let network = store
                .institution(&account.institution)?
                .and_then(|i| i.network);
            Ok(Some((account, network)))
        })
        .await?;
        let Some((account, network)) = found else {
            self.sessions
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .end(&id);
            return Err(Refusal::SignIn);
        };
        Ok(Who {
            session: id,
            user,
            institution: account.institution,
            network,
            admin: account.admin,
            csrf,
            flash,
        })
    }

    /// [`Console::who`] for a POST: its form's CSRF token must be the session's.
    async fn who_posting(
        self: &Arc<Self>,
        headers: &HeaderMap,
        token: Option<&str>,
    ) -> Result<Who, Refusal> {
        let who = self.who(headers, false).await?;
        match token {
            Some(token) if auth::same_token(token, &who.csrf) => Ok(who),
            _ => Err(Refusal::Forbidden(
                "the form's security token is missing or wrong: reload the page and try again"
                    .to_string(),
            )),
        }
    }

    /// Leaves a message for the next page of the session.
    fn flash(&self, who: &Who, error: bool, text: String) {
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(session) = sessions.get(&who.session, Instant::now()) {
            session.flash = Some((error, text));
        }
    }

    /// The outcome of a form's action as the next page's message, and a 303 to `to`.
    fn done(&self, who: &Who, outcome: anyhow::Result<String>, to: &str) -> Response {
        match outcome {
            Ok(text) => self.flash(who, false, text),
            Err(error) => self.flash(who, true, format!("{error:#}")),
        }
        see_other(to)
    }
}

/// Serves the console on `listener` until `stop` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    data: Arc<Data>,
    options: Options,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let console = Arc::new(Console {
        data,
        options,
        sessions: Mutex::new(Sessions::default()),
        backoff: Mutex::new(Backoff::new(BackoffConfig::default())),
    });
    axum::serve(
        listener,
        router(console).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(stop)
    .await
}

type App = State<Arc<Console>>;
type Fields = axum::Form<HashMap<String, String>>;

fn router(console: Arc<Console>) -> Router {
    Router::new()
        .route("/", get(|| async { see_other("/imports") }))
        .route("/static/console.css", get(stylesheet))
        .route("/signin", get(signin_page).post(signin))
        .route("/signout", post(signout))
        .route("/imports", get(imports))
        .route("/result", get(result_page))
        .route("/result/retry", post(retry))
        .route("/record", get(record_page))
        .route("/record/action", post(record_action))
        .route("/records", get(find_records))
        .route("/duplicates", get(duplicates))
        .route("/duplicates/merge", post(merge))
        .route("/locks", get(locks))
        .route("/policies", get(policies))
        .route("/policies/action", post(policy_action))
        // The two multipart forms read their bodies themselves (multipart_form), up to the
        // upload limit and only for a signed-in caller.
        .route("/upload", get(upload_page).post(upload))
        .route("/policies/diff", post(policy_diff))
        .route("/upload/report", get(upload_report))
        .route("/upload/download", get(upload_download))
        .layer(DefaultBodyLimit::max(FORM_MAX_BYTES))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(console)
}

/// Headers on every answer: no caching of staff pages, no framing, no scripts or styles
/// from elsewhere.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CACHE_CONTROL, "no-store"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    ] {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    }
    response
}

async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../../templates/console/console.css"),
    )
        .into_response()
}

// Sign-in and sign-out.

async fn signin_page(State(app): App) -> Response {
    let token = auth::random_token();
    let mut response = views::render(&views::SigninPage {
        csrf: token.clone(),
        error: String::new(),
        user: String::new(),
    });
    if let Ok(value) = HeaderValue::from_str(&auth::set_cookie(
        SIGNIN_COOKIE,
        &token,
        app.options.secure,
        Some(3_600),
    )) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

async fn signin(
    State(app): App,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    axum::Form(form): Fields,
) -> Result<Response, Refusal> {
    let token = form.get("csrf").map(String::as_str);
    match (token, signin_token(&headers)) {
        (Some(form_token), Some(cookie_token)) if auth::same_token(form_token, cookie_token) => {}
        _ => {
            return Err(Refusal::Forbidden(
                "the sign-in form's security token is missing or wrong: open the sign-in page again"
                    .to_string(),
            ));
        }
    }
    let user = form.get("user").cloned().unwrap_or_default();
    let password = form.get("password").cloned().unwrap_or_default();
    let address: IpAddr = peer.ip();
    let wait = app
        .backoff
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .wait(&user, address, Instant::now());
    if !wait.is_zero() {
        warn!(%user, %address, "console: sign-in refused during back-off");
        let seconds = wait.as_secs().max(1);
        let mut response = views::render(&views::SigninPage {
            csrf: token.unwrap_or_default().to_string(),
            error: format!(
                "Too many failed sign-ins for this user or from this address: try again in {seconds} s."
            ),
            user,
        });
        *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return Ok(response);
    }
    let data = app.data.clone();
    let name = user.clone();
    let verified = blocking(move || {
        let account = data.store()?.staff(&name)?;
        Ok(match account {
            Some(account) => {
                bibgate_import::auth::verify_password(&password, &account.password_hash)
            }
            // The same cost, so the time does not tell known user names from unknown ones.
            None => {
                let _ = bibgate_import::auth::verify_dummy_password(&password);
                false
            }
        })
    })
    .await?;
    if !verified {
        app.backoff
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .failed(&user, address, Instant::now());
        warn!(%user, %address, "console: sign-in failed");
        let mut response = views::render(&views::SigninPage {
            csrf: token.unwrap_or_default().to_string(),
            error: "The user name or the password is wrong.".to_string(),
            user,
        });
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        return Ok(response);
    }
    app.backoff
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .succeeded(&user, address);
    let id = app
        .sessions
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .start(&user, Instant::now());
    info!(%user, %address, "console: signed in");
    let secure = app.options.secure;
    Ok((
        StatusCode::SEE_OTHER,
        axum::response::AppendHeaders([
            (header::LOCATION, "/imports".to_string()),
            (
                header::SET_COOKIE,
                auth::set_cookie(SESSION_COOKIE, &id, secure, None),
            ),
            (
                header::SET_COOKIE,
                auth::set_cookie(SIGNIN_COOKIE, "", secure, Some(0)),
            ),
        ]),
    )
        .into_response())
}

async fn signout(
    State(app): App,
    headers: HeaderMap,
    axum::Form(form): Fields,
) -> Result<Response, Refusal> {
    let who = app
        .who_posting(&headers, form.get("csrf").map(String::as_str))
        .await?;
    app.sessions
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .end(&who.session);
    Err(Refusal::SignIn)
}

// Pages: each reads through `pages` on a blocking thread.

async fn imports(
    State(app): App,
    headers: HeaderMap,
    Query(query): Query<pages::ImportsQuery>,
) -> Result<Response, Refusal> {
    let who = app.who(&headers, true).await?;
    let data = app.data.clone();
    blocking(move || pages::imports(&data, who, &query)).await
}

async fn result_page(
    State(app): App,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, Refusal> {
    let who = app.who(&headers, true).await?;
    let id = query.get("id").cloned().unwrap_or_default();
    let data = app.data.clone();
    blocking(move || pages::result(&data, who, &id)).await
}

async fn retry(
    State(app): App,
    headers: HeaderMap,
    axum::Form(form): Fields,
) -> Result<Response, Refusal> {
    let who = app
        .who_posting(&headers, form.get("csrf").map(String::as_str))
        .await?;
    let id = form.get("id").cloned().unwrap_or_default();
    let data = app.data.clone();
    let caller = who.clone();
    let (outcome, to) = blocking(move || pages::retry(&data, &caller, &id)).await?;
    Ok(app.done(&who, outcome, &to))
}

async fn record_page(
    State(app): App,
    headers: HeaderMap,
    Query(query): Query<pages::RecordQuery>,
) -> Result<Response, Refusal> {
    let who = app.who(&headers, true).await?;
    let data = app.data.clone();
    blocking(move || pages::record(&data, who, &query)).await
}

async fn record_action(
    State(app): App,
    headers: HeaderMap,
    axum::Form(form): Fields,
) -> Result<Response, Refusal> {
    let who = app
        .who_posting(&headers, form.get("csrf").map(String::as_str))
        .await?;
    let data = app.data.clone();
    let caller = who.clone();
    let (outcome, to) = blocking(move || pages::record_action(&data, &caller, &form)).await?;
    Ok(app.done(&who, outcome, &to))
}

async fn find_records(
    State(app): App,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, Refusal> {
    let who = app.who(&headers, true).await?;
    let data = app.data.clone();
    blocking(move || pages::find_records(&data, who, &query)).await
}

async fn duplicates(
    State(app): App,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, Refusal> {
    let who = app.who(&headers, true).await?;
    let data = app.data.clone();
    blocking(move || pages::duplicates(&data, who, &query)).await
}

async fn merge(
    State(app): App,
    headers: HeaderMap,
    axum::Form(form): Fields,
) -> Result<Response, Refusal> {
    let who = app
        .who_posting(&headers, form.get("csrf").map(String::as_str))
        .await?;
    let data = app.data.clone();
    let caller = who.clone();
    let (outcome, to) = blocking(move || pages::merge(&data, &caller, &form)).await?;
    Ok(app.done(&who, outcome, &to))
}

async fn locks(State(app): App, headers: HeaderMap) -> Result<Response, Refusal> {
    let who = app.who(&headers, true).await?;
    let data = app.data.clone();
    blocking(move || pages::locks(&data, who)).await
}

async fn policies(State(app): App, headers: HeaderMap) -> Result<Response, Refusal> {
    let who = app.who(&headers, true).await?;
    let data = app.data.clone();
    blocking(move || pages::policies(&data, who)).await
}

async fn policy_action(
    State(app): App,
    headers: HeaderMap,
    axum::Form(form): Fields,
) -> Result<Response, Refusal> {
    let who = app
        .who_posting(&headers, form.get("csrf").map(String::as_str))
        .await?;
    let data = app.data.clone();
    let caller = who.clone();
    let (outcome, to) = blocking(move || pages::policy_action(&data, &caller, &form)).await?;
    Ok(app.done(&who, outcome, &to))
}

async fn upload_page(State(app): App, headers: HeaderMap) -> Result<Response, Refusal> {
    let who = app.who(&headers, true).await?;
    let data = app.data.clone();
    blocking(move || pages::upload_page(&data, who)).await
}

/// A multipart form's caller and fields. The session is checked before the body is read,
/// so a client without one cannot make the console buffer an upload-sized body; the form's
/// CSRF token after.
async fn multipart_form(
    app: &Arc<Console>,
    headers: &HeaderMap,
    body: axum::body::Body,
) -> Result<(Who, multipart::Form), Refusal> {
    app.who(headers, false).await?;
    let body = axum::body::to_bytes(body, UPLOAD_MAX_BYTES + 64 * 1024)
        .await
        .map_err(|_| {
            Refusal::Bad(format!(
                "the form is larger than {} MiB or was cut short",
                UPLOAD_MAX_BYTES / (1024 * 1024)
            ))
        })?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let form = multipart::parse(content_type, &body).map_err(Refusal::Bad)?;
    let who = app
        .who_posting(headers, form.text("csrf").as_deref())
        .await?;
    Ok((who, form))
}

async fn upload(
    State(app): App,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, Refusal> {
    let (who, form) = multipart_form(&app, &headers, body).await?;
    let data = app.data.clone();
    let caller = who.clone();
    let (outcome, to) = blocking(move || pages::upload(&data, &caller, form)).await?;
    Ok(app.done(&who, outcome, &to))
}

async fn policy_diff(
    State(app): App,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, Refusal> {
    let (who, form) = multipart_form(&app, &headers, body).await?;
    let data = app.data.clone();
    blocking(move || pages::policy_diff(&data, who, form)).await
}

async fn upload_report(
    State(app): App,
    headers: HeaderMap,
    Query(query): Query<pages::ReportQuery>,
) -> Result<Response, Refusal> {
    let who = app.who(&headers, true).await?;
    let data = app.data.clone();
    blocking(move || pages::upload_report(&data, who, &query)).await
}

async fn upload_download(
    State(app): App,
    headers: HeaderMap,
    Query(query): Query<pages::ReportQuery>,
) -> Result<Response, Refusal> {
    let who = app.who(&headers, false).await?;
    let data = app.data.clone();
    blocking(move || pages::upload_download(&data, &who, &query)).await
}
