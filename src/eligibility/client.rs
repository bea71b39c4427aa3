//! The mutual-TLS client: TLS 1.3 only, the unit certificate as client certificate, the
//! server CA pinned to the provisioned one and the host name checked; HTTP/1.1 through
//! hyper on one kept-alive connection reused across calls, TLS session resumption,
//! timeouts, bounded jittered retries (backon) within a total deadline for idempotent
//! calls, a cap on every response, and every answer checked against its question (the
//! echoed request and incident ids).

mod answer;

pub use super::endpoint::Endpoint;
pub use super::error::{CardProblem, ClientError, RouteGuard};
pub use super::identity::{UnitIdentity, crypto_provider, tls_config};
use super::wire::{self, Problem, problem};
use crate::domain::{CardCredential, ChainedRecord, EmergencyInfo, IdentityMethod};
use crate::domain::{EmergencyInquiry, QualificationRequest, json_error_text};
use answer::{
    Answer, ExchangeFailure, MAX_RESPONSE_HEAD_BYTES, USER_AGENT, classify, decode, tls_error,
    to_json,
};
use backon::Retryable;
use base64::Engine;
use http_body_util::BodyExt;
use rustls::pki_types::ServerName;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// How the client behaves; the defaults suit a moving ambulance.
#[derive(Clone, Debug)]
pub struct ClientSettings {
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// Retries after the first attempt, for idempotent calls only.
    pub retries: u32,
    pub backoff_base: Duration,
    pub max_response_bytes: usize,
    /// The whole call, retries and backoff included, ends within this.
    pub total_deadline: Duration,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            retries: 2,
            backoff_base: Duration::from_millis(200),
            max_response_bytes: 4 * 1024 * 1024,
            total_deadline: Duration::from_secs(30),
        }
    }
}

type Body = http_body_util::Full<bytes::Bytes>;

/// A kept-alive HTTP/1.1 connection: hyper's sender and its connection, and the address it
/// reached (for the route guard). The connection is driven inside each exchange, in the
/// caller's task (calls are serialised anyway): no hop to a driver task per request.
struct Conn {
    sender: hyper::client::conn::http1::SendRequest<Body>,
    connection: hyper::client::conn::http1::Connection<
        hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<TcpStream>>,
        Body,
    >,
    /// The connection future has finished: nothing more goes over it.
    ended: bool,
    peer: std::net::SocketAddr,
}

/// Counters for tests and benchmarks.
#[derive(Debug, Default)]
pub struct ClientStats {
    pub connections: AtomicU64,
    pub resumed: AtomicU64,
    pub retries: AtomicU64,
}

/// The eligibility client. Cheap to share behind an `Arc`; calls are serialised over the
/// one kept-alive connection.
pub struct EligibilityClient {
    connector: TlsConnector,
    endpoint: Endpoint,
    server_name: ServerName<'static>,
    settings: ClientSettings,
    /// `host[:port]` as sent in the Host header.
    host_header: String,
    /// The unit certificate and key the TLS handshakes present; it also signs the audit
    /// chain, so the server holds each record to the key that connected.
    unit_key: Arc<dyn rustls::client::ResolvesClientCert>,
    conn: tokio::sync::Mutex<Option<Conn>>,
    route_guard: Option<RouteGuard>,
    pub stats: ClientStats,
}

/// What names a question: a fresh request id, and the incident it belongs to.
#[derive(Clone, Debug)]
struct Question {
    request_id: String,
    incident: Option<String>,
}

impl Question {
    fn new(incident: Option<&crate::domain::IncidentId>) -> Result<Self, ClientError> {
        let mut b = [0u8; 16];
        getrandom::fill(&mut b).map_err(|e| ClientError::Setup(format!("random: {e}")))?;
        Ok(Question {
            request_id: hex::encode(b),
            incident: incident.map(|i| i.as_str().to_string()),
        })
    }
}

impl EligibilityClient {
    pub fn new(
        endpoint: Endpoint,
        config: rustls::ClientConfig,
        settings: ClientSettings,
    ) -> Result<Self, ClientError> {
        let server_name = ServerName::try_from(endpoint.host.clone())
            .map_err(|_| ClientError::BadEndpoint(endpoint.host.clone()))?;
        let host_header = if endpoint.host.contains(':') {
            format!("[{}]:{}", endpoint.host, endpoint.port)
        } else {
            format!("{}:{}", endpoint.host, endpoint.port)
        };
        let unit_key = config.client_auth_cert_resolver.clone();
        Ok(EligibilityClient {
            unit_key,
            connector: TlsConnector::from(Arc::new(config)),
            host_header,
            endpoint,
            server_name,
            settings,
            conn: tokio::sync::Mutex::new(None),
            route_guard: None,
            stats: ClientStats::default(),
        })
    }

    /// Check every connection's peer address with `guard` before anything is sent on it.
    pub fn with_route_guard(mut self, guard: RouteGuard) -> Self {
        self.route_guard = Some(guard);
        self
    }

    fn check_route(&self, peer: std::net::SocketAddr) -> Result<(), ClientError> {
        let Some(guard) = &self.route_guard else {
            return Ok(());
        };
        if guard(peer) {
            Ok(())
        } else {
            tracing::warn!(%peer, "request refused: the connection is not through the tunnel");
            Err(ClientError::TunnelRequired(peer))
        }
    }

    /// Like `new`, but check the certificate against a different name than the host
    /// connected to (tests of the name check).
    pub fn with_server_name(mut self, name: &str) -> Result<Self, ClientError> {
        self.server_name = ServerName::try_from(name.to_string())
            .map_err(|_| ClientError::BadEndpoint(name.to_string()))?;
        Ok(self)
    }

    /// Drop the kept-alive connection (the next call reconnects, resuming the session).
    pub async fn disconnect(&self) {
        *self.conn.lock().await = None;
    }

    pub async fn health(&self) -> Result<wire::Health, ClientError> {
        let a = self.call("GET", wire::PATH_HEALTH, None, None).await?;
        decode(&a)
    }

    /// The qualification check for a card read.
    pub async fn qualification(
        &self,
        request: &QualificationRequest,
    ) -> Result<wire::QualificationResponse, ClientError> {
        let body = wire::QualificationRequest {
            incident_id: request.incident.clone(),
            auth_certificate: encode_certificate(&request.credential),
            operator_id: request.operator.clone(),
            unit_id: request.unit.clone(),
            terminal_id: request.terminal.clone(),
        };
        let a = self
            .call(
                "POST",
                wire::PATH_QUALIFICATION,
                Some(to_json(&body)?),
                Some(&request.incident),
            )
            .await?;
        decode(&a)
    }

    /// The consented emergency-info inquiry (photo path).
    pub async fn emergency_info(
        &self,
        inquiry: &EmergencyInquiry,
    ) -> Result<EmergencyInfo, ClientError> {
        self.emergency_info_signed(inquiry, None).await
    }

    /// The consented emergency-info inquiry, with the card's signature over the PIN-path
    /// challenge when the identity was checked by PIN.
    pub async fn emergency_info_signed(
        &self,
        inquiry: &EmergencyInquiry,
        card_signature: Option<&[u8]>,
    ) -> Result<EmergencyInfo, ClientError> {
        let body = wire::EmergencyInfoRequest {
            incident_id: inquiry.incident.clone(),
            qualification_ref: inquiry.qualification.clone(),
            consent: inquiry.consent,
            operator_id: inquiry.operator.clone(),
            unit_id: inquiry.unit.clone(),
            terminal_id: inquiry.terminal.clone(),
            identity_method: IdentityMethod::MynaCard,
            identity_check: inquiry.identity_check,
            card_signature: card_signature
                .map(|s| base64::engine::general_purpose::STANDARD.encode(s)),
            token: inquiry.token,
        };
        let a = self
            .call(
                "POST",
                wire::PATH_EMERGENCY_INFO,
                Some(to_json(&body)?),
                Some(&inquiry.incident),
            )
            .await?;
        let r: wire::EmergencyInfoResponse = decode(&a)?;
        // the body must name the question: the reference asked with, and the patient the
        // qualification answer named (the ids in the headers only say which request it
        // answers, not whose data the body is)
        let unbound = match (&r.qualification_ref, &r.patient) {
            (None, _) | (_, None) => Some("it names no reference or patient"),
            (Some(q), _) if *q != inquiry.qualification => Some("it names another reference"),
            (_, Some(p)) if *p != inquiry.patient => Some("it names another patient"),
            _ => None,
        };
        if let Some(why) = unbound {
            self.disconnect().await;
            return Err(ClientError::AnswerForAnotherPatient(why));
        }
        Ok(EmergencyInfo {
            summary: r.emergency_summary,
            full: r.full_data,
        })
    }

    /// Sign a record's chain link with the unit key (blocking: the key may be in the TPM).
    pub fn sign_chain_link(&self, seq: u64, hash: &str) -> Result<String, ClientError> {
        let scheme = rustls::SignatureScheme::ECDSA_NISTP256_SHA256;
        let certified = self
            .unit_key
            .resolve(&[], &[scheme])
            .ok_or_else(|| ClientError::Setup("no unit key to sign with".into()))?;
        let signer = certified
            .key
            .choose_scheme(&[scheme])
            .ok_or_else(|| ClientError::Setup("the unit key is not ECDSA P-256".into()))?;
        let signature = signer
            .sign(&crate::domain::chain_signing_message(seq, hash))
            .map_err(|e| ClientError::Setup(format!("signing the audit chain: {e}")))?;
        Ok(base64::engine::general_purpose::STANDARD.encode(signature))
    }

    /// The audit-chain head the server holds for this unit key.
    pub async fn records_head(&self) -> Result<wire::RecordsHead, ClientError> {
        let a = self
            .call("GET", wire::PATH_RECORDS_HEAD, None, None)
            .await?;
        decode(&a)
    }

    /// Upload a batch of chained, signed records (idempotent by sequence number).
    pub async fn upload_records(
        &self,
        records: &[ChainedRecord],
    ) -> Result<wire::RecordsAccepted, ClientError> {
        let body = wire::RecordsUpload {
            records: records.to_vec(),
        };
        let a = self
            .call("POST", wire::PATH_RECORDS, Some(to_json(&body)?), None)
            .await?;
        decode(&a)
    }

    /// Every call of the protocol is idempotent (reads, or keyed by incident / record id),
    /// so every call may be retried; the bound, the backoff and the total deadline keep a
    /// dead line cheap. Each attempt is a new question (a new request id).
    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
        incident: Option<&crate::domain::IncidentId>,
    ) -> Result<Answer, ClientError> {
        let policy = backon::ExponentialBuilder::default()
            .with_min_delay(self.settings.backoff_base)
            .with_max_delay(self.settings.backoff_base.saturating_mul(64))
            .with_factor(2.0)
            .with_jitter()
            .with_max_times(self.settings.retries as usize);
        let body = body.map(bytes::Bytes::from);
        let once = || async {
            let question = Question::new(incident)?;
            self.attempt(method, path, body.clone(), &question)
                .await
                .and_then(classify)
        };
        let retried = once
            .retry(policy)
            .sleep(tokio::time::sleep)
            .when(ClientError::retryable)
            .notify(|_, _| {
                self.stats.retries.fetch_add(1, Ordering::Relaxed);
            });
        let deadline = self.settings.total_deadline;
        tokio::time::timeout(deadline, retried)
            .await
            .map_err(|_| ClientError::Timeout(deadline))?
    }

    /// One attempt; a kept-alive connection the server closed meanwhile is replaced once.
    async fn attempt(
        &self,
        method: &str,
        path: &str,
        body: Option<bytes::Bytes>,
        question: &Question,
    ) -> Result<Answer, ClientError> {
        let mut slot = self.conn.lock().await;
        let (mut conn, reused) = match slot.take() {
            Some(c) if !c.ended && !c.sender.is_closed() => {
                // the route may have changed under a kept-alive connection (tunnel down,
                // a cleartext route added): ask again for the address it is connected to
                self.check_route(c.peer)?;
                (c, true)
            }
            _ => (self.connect().await?, false),
        };
        let timeout = self.settings.request_timeout;
        let outcome = tokio::time::timeout(
            timeout,
            self.exchange(&mut conn, method, path, body.clone(), question),
        )
        .await
        .map_err(|_| ClientError::Timeout(timeout))?;
        let outcome = match outcome {
            Err(ExchangeFailure::StaleConnection) if reused => {
                conn = self.connect().await?;
                tokio::time::timeout(
                    timeout,
                    self.exchange(&mut conn, method, path, body, question),
                )
                .await
                .map_err(|_| ClientError::Timeout(timeout))?
            }
            other => other,
        };
        match outcome {
            Ok(answer) => {
                // hyper knows whether the server will keep the connection
                if !conn.ended && !conn.sender.is_closed() {
                    *slot = Some(conn);
                }
                Ok(answer)
            }
            // any failure drops the connection: the next call starts clean
            Err(e) => Err(e.into_client_error(self.settings.max_response_bytes)),
        }
    }

    async fn connect(&self) -> Result<Conn, ClientError> {
        let addr = (self.endpoint.host.as_str(), self.endpoint.port);
        let timeout = self.settings.connect_timeout;
        let tcp = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| ClientError::Timeout(timeout))?
            .map_err(ClientError::Unreachable)?;
        let peer = tcp.peer_addr().map_err(ClientError::Unreachable)?;
        // before the TLS handshake: not even a ClientHello goes around the tunnel
        self.check_route(peer)?;
        let _ = tcp.set_nodelay(true);
        let tls = tokio::time::timeout(
            timeout,
            self.connector.connect(self.server_name.clone(), tcp),
        )
        .await
        .map_err(|_| ClientError::Timeout(timeout))?
        .map_err(tls_error)?;
        self.stats.connections.fetch_add(1, Ordering::Relaxed);
        if tls.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
            self.stats.resumed.fetch_add(1, Ordering::Relaxed);
        }
        let (sender, connection) = hyper::client::conn::http1::Builder::new()
            .max_buf_size(MAX_RESPONSE_HEAD_BYTES)
            .handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .map_err(|e| ClientError::Protocol(format!("HTTP: {e}")))?;
        Ok(Conn {
            sender,
            connection,
            ended: false,
            peer,
        })
    }

    /// One request and its answer, driving the connection meanwhile. If the connection
    /// finishes first (the server closed it, or hyper found the answer malformed), what
    /// it delivered to the request is the outcome.
    async fn exchange(
        &self,
        conn: &mut Conn,
        method: &str,
        path: &str,
        body: Option<bytes::Bytes>,
        question: &Question,
    ) -> Result<Answer, ExchangeFailure> {
        if conn.ended {
            return Err(ExchangeFailure::StaleConnection);
        }
        let Conn {
            sender,
            connection,
            ended,
            ..
        } = conn;
        let work = self.request_and_answer(sender, method, path, body, question);
        tokio::pin!(work);
        tokio::select! {
            biased;
            answer = &mut work => answer,
            finished = connection => {
                *ended = true;
                if let Err(e) = &finished {
                    tracing::debug!(error = %e, "eligibility connection ended");
                }
                work.await
            }
        }
    }

    async fn request_and_answer(
        &self,
        sender: &mut hyper::client::conn::http1::SendRequest<Body>,
        method: &str,
        path: &str,
        body: Option<bytes::Bytes>,
        question: &Question,
    ) -> Result<Answer, ExchangeFailure> {
        use http::header;
        let mut request = http::Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, self.host_header.as_str())
            .header(header::USER_AGENT, USER_AGENT)
            .header(header::ACCEPT, "application/json")
            .header(wire::HEADER_REQUEST_ID, question.request_id.as_str());
        if let Some(incident) = &question.incident {
            request = request.header(wire::HEADER_INCIDENT_ID, incident.as_str());
        }
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(http_body_util::Full::new(body.unwrap_or_default()))
            .map_err(|e| ExchangeFailure::Http(format!("request: {e}")))?;
        // resolves as the connection (polled alongside) is ready for the next message
        if sender.ready().await.is_err() {
            return Err(ExchangeFailure::StaleConnection);
        }
        let response = sender
            .send_request(request)
            .await
            .map_err(ExchangeFailure::from_hyper)?;
        let (parts, body) = response.into_parts();
        let cap = self.settings.max_response_bytes;
        // refuse an announced oversize answer before reading it
        if parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|n| n > cap as u64)
        {
            return Err(ExchangeFailure::TooLarge);
        }
        // both framings at once is how responses are split (RFC 9112 §6.1: "ought to be
        // handled as an error"); hyper lets chunked win, we refuse the answer
        if parts.headers.contains_key(header::CONTENT_LENGTH)
            && parts.headers.contains_key(header::TRANSFER_ENCODING)
        {
            return Err(ExchangeFailure::Http(
                "answer framed by both Content-Length and Transfer-Encoding".into(),
            ));
        }
        let echoed = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
        if echoed(wire::HEADER_REQUEST_ID) != Some(question.request_id.as_str()) {
            tracing::warn!("answer refused: it names another request");
            return Err(ExchangeFailure::Mismatched("request id".into()));
        }
        if let Some(incident) = &question.incident
            && echoed(wire::HEADER_INCIDENT_ID) != Some(incident.as_str())
        {
            tracing::warn!("answer refused: it names another incident");
            return Err(ExchangeFailure::Mismatched("incident id".into()));
        }
        let body = http_body_util::Limited::new(body, cap)
            .collect()
            .await
            .map_err(|e| {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    ExchangeFailure::TooLarge
                } else {
                    match e.downcast::<hyper::Error>() {
                        Ok(h) => ExchangeFailure::from_hyper(*h),
                        Err(other) => ExchangeFailure::Http(other.to_string()),
                    }
                }
            })?
            .to_bytes();
        Ok(Answer {
            status: parts.status.as_u16(),
            body: body.to_vec(),
        })
    }
}

pub fn encode_certificate(credential: &CardCredential) -> String {
    base64::engine::general_purpose::STANDARD.encode(&credential.auth_certificate_der)
}

#[cfg(test)]
mod tests;
