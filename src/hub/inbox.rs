//! The hospitals' inbox: an HTTPS page for emergency-department staff. Sign-in with a
//! password (Argon2id) and a TOTP code; five failures in a row lock the account as a crew
//! PIN locks (5 minutes, then an hour), and one address failing twenty times in fifteen
//! minutes waits. The session is a random token in a `__Host-` cookie (Secure, HttpOnly,
//! SameSite=Strict) of which the database keeps only the SHA-256; every form carries the
//! session's CSRF token. A hospital sees a case only while the case says it may
//! ([`crate::handoff::Case::visibility`]); any other case answers 404. Every view, answer
//! and acknowledgement is audited with who, when and which version.

use super::serve::Peer;
use super::store::{SessionRow, hospital_audience};
use super::{HubCore, HubError, page, stream, totp};
use crate::handoff::{HospitalCode, Visibility};
use axum::Router;
use axum::extract::{Extension, Form, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

pub const COOKIE: &str = "__Host-hub-session";
/// A session lasts a shift.
pub const SESSION_MS: i64 = 12 * 3600 * 1000;
/// Failures in a row before an account locks.
pub const MAX_FAILURES: i64 = crate::roster::MAX_PIN_FAILURES as i64;
/// Failures from one address in [`ADDRESS_WINDOW_MS`] before it waits.
pub const MAX_ADDRESS_FAILURES: u32 = 20;
pub const ADDRESS_WINDOW_MS: i64 = 15 * 60 * 1000;
/// The largest form the inbox reads.
const MAX_FORM_BYTES: usize = 8 * 1024;

struct Inbox {
    core: Arc<HubCore>,
    /// Sign-in failures per address: (count, start of the window).
    failures: Mutex<HashMap<IpAddr, (u32, i64)>>,
}

pub fn router(core: Arc<HubCore>) -> Router {
    let state = Arc::new(Inbox {
        core,
        failures: Mutex::new(HashMap::new()),
    });
    Router::new()
        .route("/", get(inbox))
        .route("/sign-in", get(sign_in_page).post(sign_in))
        .route("/sign-out", post(sign_out))
        .route("/cases", get(cases_fragment))
        .route("/events", get(events))
        .route("/cases/{id}/answer", post(answer))
        .route("/cases/{id}/ack", post(acknowledge))
        .route("/cases/{id}/packet.json", get(packet_json))
        .route(
            "/static/inbox.js",
            get(|| async { static_file("text/javascript; charset=utf-8", page::SCRIPT) }),
        )
        .route(
            "/static/inbox.css",
            get(|| async { static_file("text/css; charset=utf-8", page::STYLE) }),
        )
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                Html(page::message("見つかりません", "このページはありません。").into_string()),
            )
        })
        .layer(axum::middleware::from_fn(security_headers))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_FORM_BYTES))
        .with_state(state)
}

fn static_file(kind: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, kind)], body).into_response()
}

/// No framing, no inline script, no caching of patient pages, no referrer.
async fn security_headers(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    let set = |h: &mut HeaderMap, k: &'static str, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(
        h,
        "content-security-policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(h, "x-content-type-options", "nosniff");
    set(h, "referrer-policy", "no-referrer");
    set(h, "cache-control", "no-store");
    set(h, "strict-transport-security", "max-age=31536000");
    set(h, "x-frame-options", "DENY");
    res
}

fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

fn random_token() -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("the OS random source");
    hex::encode(b)
}

fn session_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == COOKIE)
        .map(|c| c.value().to_string())
}

/// The signed-in session of a request, if any.
async fn session(state: &Inbox, headers: &HeaderMap) -> Option<SessionRow> {
    let token = session_token(headers)?;
    state
        .core
        .store
        .session(&sha256_hex(&token), super::now_ms())
        .await
        .ok()
        .flatten()
}

/// The session of a form's request whose CSRF token is the session's; otherwise the answer:
/// the sign-in page without a session, 403 with another token (nothing changes).
async fn form_session(
    state: &Inbox,
    headers: &HeaderMap,
    csrf: &str,
) -> Result<SessionRow, Box<Response>> {
    let Some(s) = session(state, headers).await else {
        return Err(Box::new(Redirect::to("/sign-in").into_response()));
    };
    if !csrf_ok(&s, csrf) {
        return Err(Box::new(refused(
            StatusCode::FORBIDDEN,
            "受け付けられません",
            "画面を開き直してから、もう一度操作してください。",
        )));
    }
    Ok(s)
}

fn csrf_ok(session: &SessionRow, given: &str) -> bool {
    subtle::ConstantTimeEq::ct_eq(session.csrf.as_bytes(), given.as_bytes()).into()
}

fn refused(status: StatusCode, title: &str, text: &str) -> Response {
    (status, Html(page::message(title, text).into_string())).into_response()
}

fn storage_failed(e: HubError) -> Response {
    tracing::error!(error = %e, "inbox request failed");
    refused(
        StatusCode::SERVICE_UNAVAILABLE,
        "一時的に使えません",
        "しばらくしてからもう一度お試しください。救急隊からの電話連絡に切り替えてください。",
    )
}

async fn sign_in_page() -> Html<String> {
    Html(page::sign_in(None).into_string())
}

#[derive(Deserialize)]
struct SignIn {
    login: String,
    password: String,
    code: String,
}

/// A hash to verify unknown logins against, so that their answer takes as long as a known
/// login's (no telling which logins exist by timing).
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| super::admin::hash_password(&random_token()).unwrap_or_default())
}

/// Argon2id takes tens of milliseconds on purpose: off the async workers, so that sign-ins
/// do not stall the streams.
async fn password_matches(hash: &str, password: &str) -> bool {
    use argon2::PasswordVerifier;
    let (hash, password) = (
        hash.to_string(),
        zeroize::Zeroizing::new(password.to_string()),
    );
    tokio::task::spawn_blocking(move || {
        argon2::PasswordHash::new(&hash).is_ok_and(|h| {
            argon2::Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
    })
    .await
    .unwrap_or(false)
}

async fn sign_in(
    State(state): State<Arc<Inbox>>,
    Extension(Peer(peer)): Extension<Peer>,
    Form(form): Form<SignIn>,
) -> Response {
    let now = super::now_ms();
    let ip = peer.ip();
    {
        let mut f = state.failures.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((n, since)) = f.get(&ip).copied() {
            if now - since > ADDRESS_WINDOW_MS {
                f.remove(&ip);
            } else if n >= MAX_ADDRESS_FAILURES {
                return refused(
                    StatusCode::TOO_MANY_REQUESTS,
                    "しばらくお待ちください",
                    "この端末からのサインインの失敗が続いたため、15分間受け付けません。",
                );
            }
        }
    }
    let fail = |text: &'static str| {
        let mut f = state.failures.lock().unwrap_or_else(|p| p.into_inner());
        let e = f.entry(ip).or_insert((0, now));
        e.0 += 1;
        (
            StatusCode::UNAUTHORIZED,
            Html(page::sign_in(Some(text)).into_string()),
        )
            .into_response()
    };
    const WRONG: &str = "ID、パスワード、確認コードのいずれかが違います。";
    let staff = match state.core.store.staff_by_login(form.login.trim()).await {
        Ok(s) => s,
        Err(e) => return storage_failed(e),
    };
    let Some(staff) = staff else {
        let _ = password_matches(decoy_hash(), &form.password).await;
        let _ = state
            .core
            .store
            .audit(now, "(unknown login)", None, None, "sign_in_failed", None)
            .await;
        return fail(WRONG);
    };
    if staff.locked_until_ms > now {
        let _ = state
            .core
            .store
            .audit(
                now,
                &staff.login,
                Some(&staff.hospital),
                None,
                "sign_in_locked",
                None,
            )
            .await;
        return fail(
            "失敗が続いたためロックされています。時間をおいてから、または管理者に連絡してください。",
        );
    }
    let password_ok = password_matches(&staff.password_hash, &form.password).await;
    let step = state
        .core
        .master()
        .open(
            format!("totp:{}", staff.login).as_bytes(),
            &staff.totp_sealed,
        )
        .and_then(|secret| totp::verify(&secret, &form.code, now / 1000, staff.last_step));
    let step = match (password_ok, step) {
        (true, Some(step)) => step,
        _ => {
            let _ = state
                .core
                .store
                .sign_in_failed(&staff, now, MAX_FAILURES, &crate::roster::LOCKOUT_STEPS_MS)
                .await;
            let _ = state
                .core
                .store
                .audit(
                    now,
                    &staff.login,
                    Some(&staff.hospital),
                    None,
                    "sign_in_failed",
                    None,
                )
                .await;
            return fail(WRONG);
        }
    };
    if let Err(e) = state.core.store.sign_in_succeeded(&staff, step).await {
        return match e {
            HubError::Replayed => fail(WRONG),
            e => storage_failed(e),
        };
    }
    let token = random_token();
    let csrf = random_token();
    if let Err(e) = state
        .core
        .store
        .create_session(&sha256_hex(&token), staff.id, &csrf, now + SESSION_MS)
        .await
    {
        return storage_failed(e);
    }
    let _ = state
        .core
        .store
        .audit(
            now,
            &staff.login,
            Some(&staff.hospital),
            None,
            "sign_in",
            None,
        )
        .await;
    let cookie = format!(
        "{COOKIE}={token}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={}",
        SESSION_MS / 1000
    );
    let mut res = Redirect::to("/").into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

#[derive(Deserialize)]
struct CsrfOnly {
    csrf: String,
}

async fn sign_out(
    State(state): State<Arc<Inbox>>,
    headers: HeaderMap,
    Form(form): Form<CsrfOnly>,
) -> Response {
    if let Some(s) = session(&state, &headers).await
        && csrf_ok(&s, &form.csrf)
    {
        {
            if let Some(t) = session_token(&headers) {
                let _ = state.core.store.end_session(&sha256_hex(&t)).await;
            }
            let _ = state
                .core
                .store
                .audit(
                    super::now_ms(),
                    &s.staff.login,
                    Some(&s.staff.hospital),
                    None,
                    "sign_out",
                    None,
                )
                .await;
        }
    }
    let mut res = Redirect::to("/sign-in").into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "__Host-hub-session=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0",
        ),
    );
    res
}

/// Every case `session`'s hospital may see now, rendered; each view audited.
async fn render_cases(state: &Inbox, s: &SessionRow) -> Result<maud::Markup, HubError> {
    let core = &state.core;
    let hospital = &s.staff.hospital;
    let mut items = vec![];
    for id in core.store.cases_of_hospital(hospital).await? {
        let Ok(stored) = core.case(&id).await else {
            continue;
        };
        let visibility = stored.body.case.visibility(hospital);
        if visibility == Visibility::Nothing {
            let elsewhere = stored.body.case.chosen.is_some();
            items.push(page::closed_case(stored.body.case.asked_at_ms, elsewhere));
            continue;
        }
        let version = (visibility == Visibility::Packet).then_some(stored.body.case.version);
        core.store
            .audit(
                super::now_ms(),
                &s.staff.login,
                Some(hospital),
                Some(&id),
                "view",
                version,
            )
            .await?;
        items.push(page::case(&stored, visibility, hospital, &s.csrf));
    }
    Ok(page::cases(items))
}

async fn inbox(State(state): State<Arc<Inbox>>, headers: HeaderMap) -> Response {
    let Some(s) = session(&state, &headers).await else {
        return Redirect::to("/sign-in").into_response();
    };
    let hospital = match state.core.store.hospital(&s.staff.hospital).await {
        Ok(Some(h)) => h,
        Ok(None) => {
            return refused(
                StatusCode::FORBIDDEN,
                "使えません",
                "この病院は登録されていません。",
            );
        }
        Err(e) => return storage_failed(e),
    };
    match render_cases(&state, &s).await {
        Ok(list) => {
            Html(page::inbox(&hospital, &s.staff.name, &s.csrf, list).into_string()).into_response()
        }
        Err(e) => storage_failed(e),
    }
}

async fn cases_fragment(State(state): State<Arc<Inbox>>, headers: HeaderMap) -> Response {
    let Some(s) = session(&state, &headers).await else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    match render_cases(&state, &s).await {
        Ok(list) => Html(list.into_string()).into_response(),
        Err(e) => storage_failed(e),
    }
}

/// The hospital's events: the data is only the kind; the page fetches `/cases` to show it.
#[derive(Deserialize)]
struct After {
    after: Option<i64>,
}

async fn events(
    State(state): State<Arc<Inbox>>,
    headers: HeaderMap,
    axum::extract::Query(query): axum::extract::Query<After>,
) -> Response {
    let Some(s) = session(&state, &headers).await else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let after = stream::start_after(&state.core, &headers, query.after).await;
    let s = stream::events(
        state.core.clone(),
        hospital_audience(&s.staff.hospital),
        after,
        |row| async move {
            Some((
                Event::default()
                    .data(row.kind)
                    .retry(std::time::Duration::from_secs(2)),
                false,
            ))
        },
    );
    Sse::new(s)
        .keep_alive(KeepAlive::new().interval(std::time::Duration::from_secs(15)))
        .into_response()
}

#[derive(Deserialize)]
struct AnswerForm {
    csrf: String,
    answer: String,
    reason: Option<String>,
    phone: Option<String>,
}

fn case_refusal(e: HubError) -> Response {
    match e {
        HubError::NoSuchCase => refused(
            StatusCode::NOT_FOUND,
            "見つかりません",
            "この照会は終了したか、当院あてではありません。",
        ),
        HubError::Case(crate::handoff::CaseError::Replayed(_)) => Redirect::to("/").into_response(),
        HubError::Case(e) => {
            tracing::info!(error = %e, "inbox step refused by the case");
            refused(
                StatusCode::CONFLICT,
                "受け付けられません",
                "この照会はすでに搬送先が決まったか、終了しています。",
            )
        }
        e => storage_failed(e),
    }
}

async fn answer(
    State(state): State<Arc<Inbox>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<AnswerForm>,
) -> Response {
    let s = match form_session(&state, &headers, &form.csrf).await {
        Ok(s) => s,
        Err(refusal) => return *refusal,
    };
    let Some(answer) =
        page::answer_from_form(&form.answer, form.reason.as_deref(), form.phone.as_deref())
    else {
        return refused(
            StatusCode::BAD_REQUEST,
            "入力を確認してください",
            "回答の内容が正しくありません（電話番号は数字とハイフン）。",
        );
    };
    match state
        .core
        .answer(&s.staff.hospital, &s.staff.login, &id, answer)
        .await
    {
        Ok(_) => Redirect::to("/").into_response(),
        Err(e) => case_refusal(e),
    }
}

#[derive(Deserialize)]
struct AckForm {
    csrf: String,
    version: u32,
}

async fn acknowledge(
    State(state): State<Arc<Inbox>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<AckForm>,
) -> Response {
    let s = match form_session(&state, &headers, &form.csrf).await {
        Ok(s) => s,
        Err(refusal) => return *refusal,
    };
    match state
        .core
        .acknowledge(&s.staff.hospital, &s.staff.login, &id, form.version)
        .await
    {
        Ok(_) => Redirect::to("/").into_response(),
        Err(e) => case_refusal(e),
    }
}

/// The packet as JSON for the hospital's systems (the chosen hospital only).
async fn packet_json(
    State(state): State<Arc<Inbox>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let Some(s) = session(&state, &headers).await else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let hospital: &HospitalCode = &s.staff.hospital;
    match state.core.case_for_hospital(hospital, &id).await {
        Ok((stored, Visibility::Packet)) => {
            let version = stored.body.case.version;
            if let Err(e) = state
                .core
                .store
                .audit(
                    super::now_ms(),
                    &s.staff.login,
                    Some(hospital),
                    Some(&id),
                    "export",
                    Some(version),
                )
                .await
            {
                return storage_failed(e);
            }
            let hospitals = match state.core.store.hospitals().await {
                Ok(h) => h,
                Err(e) => return storage_failed(e),
            };
            let Some(doc) = super::packet_bundle(&stored, &hospitals) else {
                return case_refusal(HubError::NoSuchCase);
            };
            let json = serde_json::to_string_pretty(&doc).unwrap_or_default();
            (
                [(header::CONTENT_TYPE, "application/fhir+json; charset=utf-8")],
                json,
            )
                .into_response()
        }
        Ok(_) | Err(HubError::NoSuchCase) => case_refusal(HubError::NoSuchCase),
        Err(e) => storage_failed(e),
    }
}
