//! An answer as the client reads it: how one exchange fails, TLS errors told apart (a
//! certificate the server refused, a server certificate we refuse), a problem turned into a
//! typed error, JSON decoded without quoting its values.

use super::*;

/// A raw answer: status and body.
pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) body: Vec<u8>,
}

pub(super) const USER_AGENT: &str = concat!("mynakyukyu/", env!("CARGO_PKG_VERSION"));
/// hyper's read buffer, which bounds an answer's head.
pub(super) const MAX_RESPONSE_HEAD_BYTES: usize = 16 * 1024;

/// What went wrong inside one exchange.
pub(super) enum ExchangeFailure {
    /// The server closed a kept-alive connection before answering: reconnect and resend.
    StaleConnection,
    TooLarge,
    Mismatched(String),
    Io(std::io::Error),
    Http(String),
}

impl ExchangeFailure {
    pub(super) fn from_hyper(e: hyper::Error) -> ExchangeFailure {
        if e.is_canceled() || e.is_closed() || e.is_incomplete_message() {
            return ExchangeFailure::StaleConnection;
        }
        // an I/O error underneath (a TLS alert, a reset) says more than hyper's wrapper
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            if let Some(io) = s.downcast_ref::<std::io::Error>() {
                let kind = io.kind();
                return match io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                    Some(tls) => ExchangeFailure::Io(std::io::Error::new(kind, tls.clone())),
                    None => ExchangeFailure::Io(std::io::Error::new(kind, io.to_string())),
                };
            }
            source = s.source();
        }
        ExchangeFailure::Http(e.to_string())
    }

    pub(super) fn into_client_error(self, cap: usize) -> ClientError {
        match self {
            ExchangeFailure::StaleConnection => ClientError::Unreachable(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "connection closed by the server",
            )),
            ExchangeFailure::TooLarge => ClientError::ResponseTooLarge(cap),
            ExchangeFailure::Mismatched(what) => ClientError::MismatchedAnswer(what),
            ExchangeFailure::Io(io) => tls_error(io),
            ExchangeFailure::Http(e) => ClientError::Protocol(format!("HTTP: {e}")),
        }
    }
}

pub(super) fn rustls_error(e: &std::io::Error) -> Option<&rustls::Error> {
    e.get_ref()?.downcast_ref::<rustls::Error>()
}

/// Map a transport error to what it means for the crew.
pub(super) fn tls_error(e: std::io::Error) -> ClientError {
    use rustls::AlertDescription as A;
    match rustls_error(&e) {
        Some(rustls::Error::InvalidCertificate(c)) => {
            ClientError::ServerCertificateWrong(format!("{c:?}"))
        }
        Some(rustls::Error::AlertReceived(
            alert @ (A::CertificateRequired
            | A::BadCertificate
            | A::UnknownCA
            | A::CertificateRevoked
            | A::CertificateExpired
            | A::CertificateUnknown
            | A::UnsupportedCertificate
            | A::AccessDenied
            | A::DecryptError),
        )) => ClientError::CertificateRefused(format!("{alert:?}")),
        Some(other) => ClientError::Protocol(format!("TLS: {other}")),
        None => ClientError::Unreachable(e),
    }
}

pub(super) fn classify(a: Answer) -> Result<Answer, ClientError> {
    if (200..300).contains(&a.status) {
        return Ok(a);
    }
    if a.status == 503 || a.status == 502 || a.status == 504 {
        return Err(ClientError::Unavailable(a.status));
    }
    let problem: Problem = serde_json::from_slice(&a.body)
        .map_err(|_| ClientError::Protocol(format!("HTTP {} without problem details", a.status)))?;
    Err(match problem.kind.as_str() {
        problem::CARD_UNKNOWN => ClientError::CardNotAccepted(CardProblem::Unknown),
        problem::CARD_REVOKED => ClientError::CardNotAccepted(CardProblem::Revoked),
        problem::CARD_EXPIRED => ClientError::CardNotAccepted(CardProblem::Expired),
        problem::NO_COVERAGE => ClientError::NoCoverage,
        _ => ClientError::Refused(problem),
    })
}

pub(super) fn decode<T: serde::de::DeserializeOwned>(a: &Answer) -> Result<T, ClientError> {
    serde_json::from_slice(&a.body).map_err(|e| ClientError::Protocol(json_error_text(&e)))
}

pub(super) fn to_json<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, ClientError> {
    serde_json::to_vec(v).map_err(|e| ClientError::Protocol(json_error_text(&e)))
}
