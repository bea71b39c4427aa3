//! What can go wrong talking to the eligibility system, as types, and what the session
//! makes of each ([`ClientError::service_failure`]); which failures a retry may cure.

use super::wire::Problem;
use crate::domain::ServiceFailure;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;

/// Why a call failed, in kinds the UI can turn into a Japanese message.
#[derive(Debug, Error)]
pub enum ClientError {
    #[error("endpoint {0:?} is not an https://host:port URL")]
    BadEndpoint(String),
    #[error("TLS set-up: {0}")]
    Setup(String),
    #[error("eligibility server unreachable: {0}")]
    Unreachable(std::io::Error),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("the server refused our unit certificate ({0})")]
    CertificateRefused(String),
    #[error("the server's certificate is not the provisioned one: {0}")]
    ServerCertificateWrong(String),
    #[error("card not accepted: {0}")]
    CardNotAccepted(CardProblem),
    #[error("no coverage found")]
    NoCoverage,
    /// Shown by its problem type and status only: a server's title and detail are free
    /// text, and an answer about a patient may name them there.
    #[error("the server refused the request: {}", .0.log_text())]
    Refused(Problem),
    #[error("the server is temporarily unavailable (HTTP {0})")]
    Unavailable(u16),
    #[error("response larger than the {0}-byte limit")]
    ResponseTooLarge(usize),
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The answer names another request or incident than the one asked: refused, and the
    /// connection dropped (it may carry another patient's data).
    #[error("the answer belongs to another request ({0})")]
    MismatchedAnswer(String),
    /// The emergency-info body names another reference or patient than the one asked for
    /// (or none): nothing of it is shown, and the connection is dropped.
    #[error("the emergency-info answer is not for the patient asked about ({0})")]
    AnswerForAnotherPatient(&'static str),
    #[error("refused to send: the connection to {0} does not go through the IPsec tunnel")]
    TunnelRequired(std::net::SocketAddr),
}

/// Decides, for the address a connection actually reached, whether a request may be sent
/// over it (`require_tunnel`: only through the IPsec tunnel). Given by the app; checked
/// after every TCP connect (before the TLS handshake) and before every request on a
/// kept-alive connection, for every call, uploads included.
pub type RouteGuard = Arc<dyn Fn(std::net::SocketAddr) -> bool + Send + Sync>;

/// Why the eligibility system did not accept a card.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CardProblem {
    Unknown,
    Revoked,
    Expired,
}

impl std::fmt::Display for CardProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CardProblem::Unknown => "unknown certificate",
            CardProblem::Revoked => "certificate revoked",
            CardProblem::Expired => "certificate expired",
        })
    }
}

impl ClientError {
    /// The session's view of this failure.
    pub fn service_failure(&self) -> ServiceFailure {
        match self {
            ClientError::Unreachable(_) | ClientError::Unavailable(_) => ServiceFailure::LinkDown,
            ClientError::Timeout(_) => ServiceFailure::Timeout,
            ClientError::CertificateRefused(_) => ServiceFailure::CertificateRefused,
            ClientError::ServerCertificateWrong(_) => ServiceFailure::ServerCertificateWrong,
            ClientError::CardNotAccepted(_) => ServiceFailure::CardNotAccepted,
            ClientError::NoCoverage => ServiceFailure::NoCoverage,
            ClientError::TunnelRequired(_) => ServiceFailure::TunnelRequired,
            ClientError::BadEndpoint(_)
            | ClientError::Setup(_)
            | ClientError::Refused(_)
            | ClientError::ResponseTooLarge(_)
            | ClientError::MismatchedAnswer(_)
            | ClientError::AnswerForAnotherPatient(_)
            | ClientError::Protocol(_) => ServiceFailure::Protocol,
        }
    }

    /// Whether sending the same idempotent request again may succeed.
    pub(super) fn retryable(&self) -> bool {
        matches!(
            self,
            ClientError::Unreachable(_) | ClientError::Timeout(_) | ClientError::Unavailable(_)
        )
    }
}
