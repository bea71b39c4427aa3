//! The wire types of protocol v2 (docs/PROTOCOL.md): JSON bodies and RFC 9457 problems.

use crate::domain::{
    ChainHeadAck, ChainedRecord, ConsentState, Coverage, EmergencySummary, FullData, IdentityCheck,
    IdentityMethod, IncidentId, OperatorId, PatientRef, QualificationRef, TerminalId, TokenKind,
    UnitId,
};
use serde::{Deserialize, Serialize};

pub const API_VERSION: &str = "2";
pub const PATH_HEALTH: &str = "/v2/health";
pub const PATH_QUALIFICATION: &str = "/v2/qualification";
pub const PATH_EMERGENCY_INFO: &str = "/v2/emergency-info";
pub const PATH_RECORDS: &str = "/v2/records";
/// The audit-chain head the server holds for the calling device key.
pub const PATH_RECORDS_HEAD: &str = "/v2/records/head";

pub const PROBLEM_JSON: &str = "application/problem+json";

/// Every request carries a fresh request id, echoed by the answer; a mismatch means the
/// answer belongs to another question and is refused (the connection is dropped).
pub const HEADER_REQUEST_ID: &str = "request-id";
/// The incident a request belongs to (absent for health and record uploads), echoed too.
pub const HEADER_INCIDENT_ID: &str = "incident-id";

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
    /// `photo`: the crew compared the face with the card's photo (the national design: the
    /// crew's eyes are the proof); `pin`: the card verified the PIN and signed below.
    pub identity_check: IdentityCheck,
    /// PIN path: base64 RSA PKCS#1 v1.5 SHA-256 signature by the card's authentication key
    /// over `domain::pin_challenge(qualification_ref, incident_id)`. Required with `pin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_signature: Option<String>,
    /// What was read: `card`, `android_phone` or `iphone` (absent: `card`). A phone's check
    /// is `pin` (Android's smartphone PIN) or `phone_biometric` (an iPhone unlocked by its
    /// owner), and it is signed as the PIN path is.
    #[serde(default)]
    pub token: TokenKind,
}

/// The emergency-info answer. Protocol v2, extended compatibly: it also names the
/// reference and the patient it is for (a v2 client ignores them; this client requires
/// them and refuses an answer that names another, so a gateway that mixes up two bodies
/// while echoing the right headers shows nothing).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EmergencyInfoResponse {
    #[serde(default)]
    pub qualification_ref: Option<QualificationRef>,
    #[serde(default)]
    pub patient: Option<PatientRef>,
    pub emergency_summary: EmergencySummary,
    pub full_data: FullData,
}

/// `POST /v2/records`: a batch of chained, signed records in sequence order, idempotent
/// by sequence number and hash.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecordsUpload {
    pub records: Vec<ChainedRecord>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordsAccepted {
    /// Records seen for the first time.
    pub accepted: usize,
    /// Records already held (a retried batch); not stored twice.
    pub duplicates: usize,
    /// The chain head the server now holds for this device key.
    pub head: ChainHeadAck,
}

/// `GET /v2/records/head`: the chain head held for the calling device key (none yet:
/// `head` is null).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordsHead {
    pub head: Option<ChainHeadAck>,
}

/// RFC 9457 problem details.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl std::fmt::Debug for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Problem({})", self.log_text())
    }
}

impl Problem {
    /// The problem as a log line or a stored sync error may carry it: its type if that is
    /// a URN-like token, and its status. A server's title and detail are free text, and an
    /// answer about a patient may name them there: never repeated.
    pub fn log_text(&self) -> String {
        let kind = &self.kind;
        let token = !kind.is_empty()
            && kind.len() <= 100
            && kind
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b":-._/".contains(&b));
        format!(
            "{} (HTTP {})",
            if token {
                kind.as_str()
            } else {
                "an unrecognised problem type"
            },
            self.status
        )
    }
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
    pub const UNIT_MISMATCH: &str = "urn:mynakyukyu:problem:unit-mismatch";
    pub const FOREIGN_UNIT: &str = "urn:mynakyukyu:problem:foreign-unit";
    pub const QUALIFICATION_EXPIRED: &str = "urn:mynakyukyu:problem:qualification-expired";
    pub const TOO_MANY_PATIENTS: &str = "urn:mynakyukyu:problem:too-many-patients";
    /// A record whose signature does not verify with the connection's unit certificate,
    /// or whose hash does not match its content.
    pub const BAD_RECORD_SIGNATURE: &str = "urn:mynakyukyu:problem:bad-record-signature";
    /// A record at a sequence number the server holds with another hash: the tablet's
    /// chain was rolled back (an older store restored) or forked.
    pub const CHAIN_CONFLICT: &str = "urn:mynakyukyu:problem:chain-conflict";
    /// Records are missing between the head the server holds and the batch.
    pub const CHAIN_GAP: &str = "urn:mynakyukyu:problem:chain-gap";
    /// A PIN-path inquiry without the card's signature, or one that does not verify.
    pub const CARD_SIGNATURE_INVALID: &str = "urn:mynakyukyu:problem:card-signature-invalid";
    /// A phone's inquiry under `unobtainable` or with `identity_check` `photo`.
    pub const PHONE_WITHOUT_OWNER: &str = "urn:mynakyukyu:problem:phone-without-owner";
}

impl Problem {
    pub fn new(kind: &str, title: &str, status: http::StatusCode, detail: Option<String>) -> Self {
        Problem {
            kind: kind.to_string(),
            title: title.to_string(),
            status: status.as_u16(),
            detail,
        }
    }
}
