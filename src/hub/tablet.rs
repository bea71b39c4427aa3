//! The tablet face of protocol h1: JSON over mutual TLS, the unit taken from the client
//! certificate (a body never names it), RFC 9457 problems, the request id echoed, a body
//! limit that refuses an oversized packet before it is read whole. A case belongs to the
//! unit that asked it: another unit's case answers 404, as if it did not exist.

use super::serve::ConnectedUnit;
use super::{HubCore, HubError, stream};
use crate::eligibility::wire::{PROBLEM_JSON, Problem, problem};
use crate::handoff::{
    AnswerRecord, CaseError, Change, Disclosure, HospitalCode, MAX_PACKET_BYTES, Packet, Stage,
};
use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

pub const PATH_HOSPITALS: &str = "/h1/hospitals";
pub const PATH_CASES: &str = "/h1/cases";

/// A body larger than this is refused (413) before it is parsed: a packet and its JSON
/// framing.
pub const MAX_BODY_BYTES: usize = MAX_PACKET_BYTES + 16 * 1024;

/// `POST /h1/cases`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AskRequest {
    pub incident_id: String,
    pub candidates: Vec<HospitalCode>,
    pub disclosure: Disclosure,
}

/// `POST /h1/cases/{id}/decision`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DecideRequest {
    pub hospital: HospitalCode,
    pub packet: Packet,
}

/// A candidate hospital as the tablet sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CandidateView {
    pub code: HospitalCode,
    pub name: String,
    /// The answer in force.
    pub answer: Option<AnswerRecord>,
}

/// The case as its tablet sees it (the answer to every call and every event's data).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CaseView {
    pub case_id: String,
    pub incident_id: String,
    pub stage: Stage,
    pub candidates: Vec<CandidateView>,
    pub chosen: Option<HospitalCode>,
    pub version: u32,
    pub acknowledged: u32,
}

impl From<CaseView> for crate::handoff::crew::CaseState {
    fn from(v: CaseView) -> Self {
        crate::handoff::crew::CaseState {
            case_id: v.case_id,
            stage: v.stage,
            candidates: v
                .candidates
                .into_iter()
                .map(|c| crate::handoff::crew::Candidate {
                    code: c.code,
                    name: c.name,
                    answer: c.answer,
                })
                .collect(),
            chosen: v.chosen,
            version: v.version,
            acknowledged: v.acknowledged,
        }
    }
}

impl From<super::store::Hospital> for crate::handoff::crew::Hospital {
    fn from(h: super::store::Hospital) -> Self {
        crate::handoff::crew::Hospital {
            code: h.code,
            name: h.name,
            departments: h.departments,
            regular: false,
        }
    }
}

/// The hospitals a tablet may ask.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HospitalList {
    pub hospitals: Vec<super::store::Hospital>,
}

pub fn router(core: Arc<HubCore>) -> Router {
    Router::new()
        .route(PATH_HOSPITALS, get(hospitals))
        .route(PATH_CASES, post(ask))
        .route("/h1/cases/{id}", get(view))
        .route("/h1/cases/{id}/events", get(events))
        .route("/h1/cases/{id}/decision", post(decide))
        .route("/h1/cases/{id}/updates", post(update))
        .route("/h1/cases/{id}/close", post(close))
        .fallback(|| async {
            problem_response(StatusCode::NOT_FOUND, problem::NOT_FOUND, "Not found", None)
        })
        .layer(axum::middleware::from_fn(echo_request_id))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            MAX_BODY_BYTES,
        ))
        .layer(axum::middleware::map_response(too_large_as_problem))
        .with_state(core)
}

/// The body limit answers 413 in plain text before any handler runs: as a problem, like
/// every other refusal.
async fn too_large_as_problem(res: Response) -> Response {
    let is_problem = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if res.status() == StatusCode::PAYLOAD_TOO_LARGE && !is_problem {
        return problem_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            problem::TOO_LARGE,
            "Request too large",
            Some(format!("at most {MAX_BODY_BYTES} bytes")),
        );
    }
    res
}

async fn echo_request_id(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let id = req.headers().get("x-request-id").cloned();
    let mut res = next.run(req).await;
    if let Some(id) = id {
        res.headers_mut().insert("x-request-id", id);
    }
    res
}

fn problem_response(
    status: StatusCode,
    kind: &str,
    title: &str,
    detail: Option<String>,
) -> Response {
    let p = Problem::new(kind, title, status, detail);
    let body = serde_json::to_vec(&p).unwrap_or_default();
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON))],
        body,
    )
        .into_response()
}

/// Problem types of protocol h1 beyond v1's.
pub mod h1_problem {
    pub const CASE_RULE: &str = "urn:mynakyukyu:problem:h1-case-rule";
    pub const UNKNOWN_HOSPITAL: &str = "urn:mynakyukyu:problem:h1-unknown-hospital";
    pub const IMPLAUSIBLE_VITALS: &str = "urn:mynakyukyu:problem:h1-implausible-vitals";
}

impl IntoResponse for HubError {
    fn into_response(self) -> Response {
        match self {
            HubError::NoSuchCase => problem_response(
                StatusCode::NOT_FOUND,
                problem::NOT_FOUND,
                "No such case",
                None,
            ),
            HubError::UnknownHospital(h) => problem_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                h1_problem::UNKNOWN_HOSPITAL,
                "Unknown hospital",
                Some(format!("no hospital with code {h:?} at this hub")),
            ),
            HubError::Case(CaseError::Vitals(v)) => problem_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                h1_problem::IMPLAUSIBLE_VITALS,
                "Implausible vitals",
                Some(v.to_string()),
            ),
            HubError::Case(e) => problem_response(
                StatusCode::CONFLICT,
                h1_problem::CASE_RULE,
                "Refused by the case's rules",
                Some(e.to_string()),
            ),
            e => {
                tracing::error!(error = %e, "hub request failed");
                problem_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    problem::UNAVAILABLE,
                    "Hub unavailable",
                    None,
                )
            }
        }
    }
}

/// A JSON body, or a problem saying what is wrong with it (never the body itself).
fn body<T>(b: Result<axum::Json<T>, JsonRejection>) -> Result<T, Box<Response>> {
    b.map(|j| j.0).map_err(|e| {
        Box::new({
            let status = e.status();
            if status == StatusCode::PAYLOAD_TOO_LARGE {
                problem_response(
                    status,
                    problem::TOO_LARGE,
                    "Request too large",
                    Some(format!("at most {MAX_BODY_BYTES} bytes")),
                )
            } else {
                problem_response(
                    StatusCode::BAD_REQUEST,
                    problem::BAD_REQUEST,
                    "Malformed request",
                    Some(e.body_text()),
                )
            }
        })
    })
}

pub async fn view_of(
    core: &HubCore,
    stored: &super::store::StoredCase,
) -> Result<CaseView, HubError> {
    let hospitals = core.store.hospitals().await?;
    let case = &stored.body.case;
    Ok(CaseView {
        case_id: stored.id.clone(),
        incident_id: stored.body.incident_id.clone(),
        stage: case.stage,
        candidates: case
            .candidates
            .iter()
            .map(|c| CandidateView {
                code: c.clone(),
                name: hospitals
                    .iter()
                    .find(|h| &h.code == c)
                    .map(|h| h.name.clone())
                    .unwrap_or_default(),
                answer: case.answer_of(c).cloned(),
            })
            .collect(),
        chosen: case.chosen.clone(),
        version: case.version,
        acknowledged: case.acknowledged,
    })
}

async fn hospitals(State(core): State<Arc<HubCore>>) -> Response {
    match core.store.hospitals().await {
        Ok(hospitals) => axum::Json(HospitalList { hospitals }).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn ask(
    State(core): State<Arc<HubCore>>,
    Extension(unit): Extension<ConnectedUnit>,
    req: Result<axum::Json<AskRequest>, JsonRejection>,
) -> Response {
    let req = match body(req) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    let result = async {
        let id = core
            .ask(&unit.0, &req.incident_id, req.disclosure, req.candidates)
            .await?;
        view_of(&core, &core.case(&id).await?).await
    }
    .await;
    match result {
        Ok(v) => (StatusCode::CREATED, axum::Json(v)).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn view(
    State(core): State<Arc<HubCore>>,
    Extension(unit): Extension<ConnectedUnit>,
    Path(id): Path<String>,
) -> Response {
    match async { view_of(&core, &core.case_of_unit(&unit.0, &id).await?).await }.await {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn decide(
    State(core): State<Arc<HubCore>>,
    Extension(unit): Extension<ConnectedUnit>,
    Path(id): Path<String>,
    req: Result<axum::Json<DecideRequest>, JsonRejection>,
) -> Response {
    let req = match body(req) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    match async {
        view_of(
            &core,
            &core.decide(&unit.0, &id, &req.hospital, req.packet).await?,
        )
        .await
    }
    .await
    {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn update(
    State(core): State<Arc<HubCore>>,
    Extension(unit): Extension<ConnectedUnit>,
    Path(id): Path<String>,
    req: Result<axum::Json<Change>, JsonRejection>,
) -> Response {
    let change = match body(req) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    match async { view_of(&core, &core.update(&unit.0, &id, change).await?).await }.await {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn close(
    State(core): State<Arc<HubCore>>,
    Extension(unit): Extension<ConnectedUnit>,
    Path(id): Path<String>,
) -> Response {
    match core.close(&unit.0, &id).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

/// The case's events for its tablet: each carries the whole [`CaseView`] as its data.
async fn events(
    State(core): State<Arc<HubCore>>,
    Extension(unit): Extension<ConnectedUnit>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = core.case_of_unit(&unit.0, &id).await {
        return e.into_response();
    }
    let after = stream::start_after(&core, &headers, None).await;
    let render_core = core.clone();
    let case_id = id.clone();
    let s = stream::events(
        core.clone(),
        super::store::unit_audience(&unit.0),
        after,
        move |row| {
            let core = render_core.clone();
            let case_id = case_id.clone();
            async move {
                if row.case_id != case_id {
                    return None;
                }
                let stored = core.case(&case_id).await.ok()?;
                let view = view_of(&core, &stored).await.ok()?;
                let data = serde_json::to_string(&view).ok()?;
                Some((Event::default().event(row.kind).data(data), false))
            }
        },
    );
    Sse::new(s)
        .keep_alive(KeepAlive::new().interval(std::time::Duration::from_secs(15)))
        .into_response()
}
