//! The wire types of protocol v1 (docs/PROTOCOL.md): JSON bodies and RFC 9457 problems.

use crate::domain::{
    ConsentState, Coverage, EmergencySummary, FullData, IdentityCheck, IdentityMethod, IncidentId,
    OperatorId, QualificationRef, Record, TerminalId, UnitId,
};
use serde::{Deserialize, Serialize};

pub const API_VERSION: &str = "1";
pub const PATH_HEALTH: &str = "/v1/health";
pub const PATH_QUALIFICATION: &str = "/v1/qualification";
pub const PATH_EMERGENCY_INFO: &str = "/v1/emergency-info";
pub const PATH_RECORDS: &str = "/v1/records";
/// Simulator only: change fault injection at run time.
pub const PATH_SIM_FAULTS: &str = "/v1/sim/faults";

pub const PROBLEM_JSON: &str = "application/problem+json";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
    pub version: String,
}

/// `POST /v1/qualification`: check coverage by the card's user-authentication certificate.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QualificationRequest {
    pub incident_id: IncidentId,
    /// DER, base64 (standard alphabet, padded).
    pub auth_certificate: String,
    /// Optional: base64 signature by the card's auth key over a server challenge (PIN path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge_signature: Option<String>,
    pub operator_id: OperatorId,
    pub unit_id: UnitId,
    pub terminal_id: TerminalId,
}

/// The qualification answer: coverage (possibly the most recent valid one), or opt-out.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum QualificationResponse {
    Coverage {
        qualification_ref: QualificationRef,
        coverage: Coverage,
    },
    /// The patient opted out in advance: nothing is returned.
    OptOut,
}

/// `POST /v1/emergency-info`: the consented inquiry. Idempotent by `incident_id`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EmergencyInfoRequest {
    pub incident_id: IncidentId,
    pub qualification_ref: QualificationRef,
    pub consent: ConsentState,
    pub operator_id: OperatorId,
    pub unit_id: UnitId,
    pub terminal_id: TerminalId,
    pub identity_method: IdentityMethod,
    pub identity_check: IdentityCheck,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EmergencyInfoResponse {
    pub emergency_summary: EmergencySummary,
    pub full_data: FullData,
}

/// `POST /v1/records`: a batch of records, idempotent by record id.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecordsUpload {
    pub records: Vec<Record>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordsAccepted {
    /// Records seen for the first time.
    pub accepted: usize,
    /// Records already held (a retried batch); not stored twice.
    pub duplicates: usize,
}

/// Fault injection for drills (simulator only).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Faults {
    /// Added before every answer.
    #[serde(default)]
    pub latency_ms: u64,
    /// Accept requests but never answer.
    #[serde(default)]
    pub stall: bool,
    /// Fraction (0–1) of requests answered by resetting the connection.
    #[serde(default)]
    pub reset_rate: f64,
    /// Fraction (0–1) of requests answered 503.
    #[serde(default)]
    pub error_rate: f64,
}

/// RFC 9457 problem details.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The problem types of protocol v1.
pub mod problem {
    pub const CARD_UNKNOWN: &str = "urn:mynakyukyu:problem:card-unknown";
    pub const CARD_REVOKED: &str = "urn:mynakyukyu:problem:card-revoked";
    pub const CARD_EXPIRED: &str = "urn:mynakyukyu:problem:card-expired";
    pub const NO_COVERAGE: &str = "urn:mynakyukyu:problem:no-coverage";
    pub const UNKNOWN_QUALIFICATION: &str = "urn:mynakyukyu:problem:unknown-qualification";
    pub const BAD_REQUEST: &str = "urn:mynakyukyu:problem:bad-request";
    pub const NOT_FOUND: &str = "urn:mynakyukyu:problem:not-found";
    pub const TOO_LARGE: &str = "urn:mynakyukyu:problem:too-large";
    pub const UNAVAILABLE: &str = "urn:mynakyukyu:problem:unavailable";
}

impl Problem {
    pub fn new(kind: &str, title: &str, status: u16, detail: Option<String>) -> Self {
        Problem {
            kind: kind.to_string(),
            title: title.to_string(),
            status,
            detail,
        }
    }
}
