//! The mutual-TLS client: TLS 1.3 only, the unit certificate as client certificate, the
//! server CA pinned to the provisioned one and the host name checked; HTTP/1.1 through
//! hyper on one kept-alive connection reused across calls, TLS session resumption,
//! timeouts, bounded jittered retries (backon) within a total deadline for idempotent
//! calls, a cap on every response, and every answer checked against its question (the
//! echoed request and incident ids).

use super::wire::{self, Problem, problem};
use crate::domain::{CardCredential, ChainedRecord, EmergencyInfo, IdentityMethod};
use crate::domain::{EmergencyInquiry, QualificationRequest, ServiceFailure, json_error_text};
use backon::Retryable;
use base64::Engine;
use http_body_util::BodyExt;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use thiserror::Error;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

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
    fn retryable(&self) -> bool {
        matches!(
            self,
            ClientError::Unreachable(_) | ClientError::Timeout(_) | ClientError::Unavailable(_)
        )
    }
}

/// Where the eligibility system is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    /// Parse `https://host:port` (IPv6 in brackets); the port defaults to 443.
    pub fn parse(url: &str) -> Result<Self, ClientError> {
        let bad = || ClientError::BadEndpoint(url.to_string());
        let rest = url.strip_prefix("https://").ok_or_else(bad)?;
        let authority = rest.split('/').next().unwrap_or_default();
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(bad)?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| bad())?,
                None if after.is_empty() => 443,
                None => return Err(bad()),
            };
            (host.to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p.parse().map_err(|_| bad())?),
                None => (authority.to_string(), 443),
            }
        };
        if host.is_empty() {
            return Err(bad());
        }
        Ok(Endpoint { host, port })
    }
}

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

/// The identity material of the unit: its certificate chain, key, and the pinned server CA.
pub struct UnitIdentity {
    pub chain: Vec<CertificateDer<'static>>,
    /// The unit key: a PEM key's DER (file keys), or a signer inside the TPM.
    pub key: crate::keys::UnitTlsKey,
    pub server_ca: Vec<CertificateDer<'static>>,
    /// CRLs of the server CA: a revoked server certificate is refused. Empty: no
    /// revocation check (the CA's CRL has not been installed).
    pub server_crls: Vec<rustls::pki_types::CertificateRevocationListDer<'static>>,
    /// Where the CRLs came from: re-read at a handshake after the file changed
    /// (`install-crl` while the app runs).
    pub server_crl_file: Option<std::path::PathBuf>,
}

impl UnitIdentity {
    /// Load from PEM files (unit cert [+ chain], unit key, server CA).
    pub fn from_files(cert: &Path, key: &Path, server_ca: &Path) -> Result<Self, ClientError> {
        let key = crate::keys::UnitTlsKey::Der(
            PrivateKeyDer::from_pem_file(key)
                .map_err(|e| ClientError::Setup(format!("unit key {}: {e}", key.display())))?,
        );
        Self::with_key(cert, key, server_ca)
    }

    /// The unit certificate and server CA from PEM files, with a key held elsewhere (the
    /// TPM's signer).
    pub fn with_key(
        cert: &Path,
        key: crate::keys::UnitTlsKey,
        server_ca: &Path,
    ) -> Result<Self, ClientError> {
        let setup = |what: &str, p: &Path, e: &dyn std::fmt::Display| {
            ClientError::Setup(format!("{what} {}: {e}", p.display()))
        };
        let chain = CertificateDer::pem_file_iter(cert)
            .map_err(|e| setup("unit certificate", cert, &e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| setup("unit certificate", cert, &e))?;
        let server_ca = CertificateDer::pem_file_iter(server_ca)
            .map_err(|e| setup("server CA", server_ca, &e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| setup("server CA", server_ca, &e))?;
        if chain.is_empty() || server_ca.is_empty() {
            return Err(ClientError::Setup("empty certificate file".into()));
        }
        Ok(UnitIdentity {
            chain,
            key,
            server_ca,
            server_crls: vec![],
            server_crl_file: None,
        })
    }

    /// Also check the server's certificate against the CRLs in this PEM file (re-read when
    /// it changes; a CRL past its next update is refused).
    pub fn with_server_crls(mut self, crl: &Path) -> Result<Self, ClientError> {
        self.server_crls = read_crls(crl)?;
        self.server_crl_file = Some(crl.to_path_buf());
        Ok(self)
    }
}

fn read_crls(
    crl: &Path,
) -> Result<Vec<rustls::pki_types::CertificateRevocationListDer<'static>>, ClientError> {
    let setup = |e: &dyn std::fmt::Display| {
        ClientError::Setup(format!("server CRL {}: {e}", crl.display()))
    };
    let crls = rustls::pki_types::CertificateRevocationListDer::pem_file_iter(crl)
        .map_err(|e| setup(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| setup(&e))?;
    if crls.is_empty() {
        return Err(setup(&"no CRL in the file"));
    }
    Ok(crls)
}

fn crl_verifier(
    roots: &Arc<rustls::RootCertStore>,
    crls: Vec<rustls::pki_types::CertificateRevocationListDer<'static>>,
) -> Result<Arc<rustls::client::WebPkiServerVerifier>, ClientError> {
    rustls::client::WebPkiServerVerifier::builder_with_provider(roots.clone(), crypto_provider())
        .with_crls(crls)
        // a CRL past its next update says nothing about today: refuse, do not trust it
        .enforce_revocation_expiration()
        .build()
        .map_err(|e| ClientError::Setup(format!("server CRL: {e}")))
}

/// A file's size and modification time (`None`: it cannot be read).
type FileStamp = Option<(u64, std::time::SystemTime)>;

/// The server verifier with the CRL file re-read when its size or modification time
/// changes, so a CRL installed while the app runs applies at the next handshake. A CRL file
/// that no longer reads refuses the handshake (fail closed).
#[derive(Debug)]
struct ReloadingCrlVerifier {
    roots: Arc<rustls::RootCertStore>,
    file: std::path::PathBuf,
    current: std::sync::RwLock<(FileStamp, Arc<rustls::client::WebPkiServerVerifier>)>,
}

impl ReloadingCrlVerifier {
    fn stamp(&self) -> FileStamp {
        let m = std::fs::metadata(&self.file).ok()?;
        Some((m.len(), m.modified().ok()?))
    }

    fn verifier(&self) -> Result<Arc<rustls::client::WebPkiServerVerifier>, rustls::Error> {
        let stamp = self.stamp();
        {
            let cur = self.current.read().unwrap_or_else(|p| p.into_inner());
            if cur.0 == stamp && stamp.is_some() {
                return Ok(cur.1.clone());
            }
        }
        let fresh = read_crls(&self.file)
            .and_then(|crls| crl_verifier(&self.roots, crls))
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        tracing::info!(file = %self.file.display(), "server CRL re-read");
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = (stamp, fresh.clone());
        Ok(fresh)
    }
}

impl rustls::client::danger::ServerCertVerifier for ReloadingCrlVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        self.verifier()?.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.verifier()?.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.verifier()?.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        crypto_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// TLS session resumption skips the server's certificate, so sessions from before a CRL
/// change must not be resumed: the cache starts empty whenever the CRL file changed.
#[derive(Debug)]
struct CrlAwareSessions {
    crl: Arc<ReloadingCrlVerifier>,
    inner: std::sync::Mutex<(FileStamp, Arc<rustls::client::ClientSessionMemoryCache>)>,
}

impl CrlAwareSessions {
    fn cache(&self) -> Arc<rustls::client::ClientSessionMemoryCache> {
        let stamp = self.crl.stamp();
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if g.0 != stamp {
            *g = (
                stamp,
                Arc::new(rustls::client::ClientSessionMemoryCache::new(32)),
            );
        }
        g.1.clone()
    }
}

impl rustls::client::ClientSessionStore for CrlAwareSessions {
    fn set_kx_hint(&self, name: rustls::pki_types::ServerName<'static>, group: rustls::NamedGroup) {
        self.cache().set_kx_hint(name, group)
    }
    fn kx_hint(&self, name: &rustls::pki_types::ServerName<'_>) -> Option<rustls::NamedGroup> {
        self.cache().kx_hint(name)
    }
    fn set_tls12_session(
        &self,
        name: rustls::pki_types::ServerName<'static>,
        value: rustls::client::Tls12ClientSessionValue,
    ) {
        self.cache().set_tls12_session(name, value)
    }
    fn tls12_session(
        &self,
        name: &rustls::pki_types::ServerName<'_>,
    ) -> Option<rustls::client::Tls12ClientSessionValue> {
        self.cache().tls12_session(name)
    }
    fn remove_tls12_session(&self, name: &rustls::pki_types::ServerName<'static>) {
        self.cache().remove_tls12_session(name)
    }
    fn insert_tls13_ticket(
        &self,
        name: rustls::pki_types::ServerName<'static>,
        value: rustls::client::Tls13ClientSessionValue,
    ) {
        self.cache().insert_tls13_ticket(name, value)
    }
    fn take_tls13_ticket(
        &self,
        name: &rustls::pki_types::ServerName<'static>,
    ) -> Option<rustls::client::Tls13ClientSessionValue> {
        self.cache().take_tls13_ticket(name)
    }
}

/// The rustls provider everything here uses (ring).
pub fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// TLS 1.3 only, client auth with the unit certificate, only the provisioned CA trusted.
pub fn tls_config(identity: UnitIdentity) -> Result<rustls::ClientConfig, ClientError> {
    let mut roots = rustls::RootCertStore::empty();
    for ca in identity.server_ca {
        roots
            .add(ca)
            .map_err(|e| ClientError::Setup(format!("server CA: {e}")))?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| ClientError::Setup(e.to_string()))?;
    let mut sessions = None;
    let builder = if identity.server_crls.is_empty() {
        builder.with_root_certificates(roots)
    } else {
        let roots = Arc::new(roots);
        let first = crl_verifier(&roots, identity.server_crls)?;
        match identity.server_crl_file {
            Some(file) => {
                let reloading = ReloadingCrlVerifier {
                    roots,
                    current: std::sync::RwLock::new((None, first)),
                    file,
                };
                let stamp = reloading.stamp();
                reloading
                    .current
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .0 = stamp;
                let reloading = Arc::new(reloading);
                sessions = Some(Arc::new(CrlAwareSessions {
                    crl: reloading.clone(),
                    inner: std::sync::Mutex::new((
                        stamp,
                        Arc::new(rustls::client::ClientSessionMemoryCache::new(32)),
                    )),
                }));
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(reloading)
            }
            None => builder.with_webpki_verifier(first),
        }
    };
    let mut config = match identity.key {
        crate::keys::UnitTlsKey::Der(key) => builder
            .with_client_auth_cert(identity.chain, key)
            .map_err(|e| ClientError::Setup(format!("unit certificate/key: {e}")))?,
        crate::keys::UnitTlsKey::Signer(key) => {
            let certified = rustls::sign::CertifiedKey::new(identity.chain, key);
            builder.with_client_cert_resolver(Arc::new(OneClientCert(Arc::new(certified))))
        }
    };
    if let Some(store) = sessions {
        config.resumption = rustls::client::Resumption::store(store);
    }
    Ok(config)
}

/// The unit certificate with a key rustls cannot hold itself (the TPM's): always offered.
#[derive(Debug)]
struct OneClientCert(Arc<rustls::sign::CertifiedKey>);

impl rustls::client::ResolvesClientCert for OneClientCert {
    fn resolve(
        &self,
        _root_hints: &[&[u8]],
        sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.0.key.choose_scheme(sigschemes)?;
        Some(self.0.clone())
    }
    fn has_certs(&self) -> bool {
        true
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

/// A raw answer: status and body.
struct Answer {
    status: u16,
    body: Vec<u8>,
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
            Err(Exchange::StaleConnection) if reused => {
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
    ) -> Result<Answer, Exchange> {
        if conn.ended {
            return Err(Exchange::StaleConnection);
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
    ) -> Result<Answer, Exchange> {
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
            .map_err(|e| Exchange::Http(format!("request: {e}")))?;
        // resolves as the connection (polled alongside) is ready for the next message
        if sender.ready().await.is_err() {
            return Err(Exchange::StaleConnection);
        }
        let response = sender
            .send_request(request)
            .await
            .map_err(Exchange::from_hyper)?;
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
            return Err(Exchange::TooLarge);
        }
        // both framings at once is how responses are split (RFC 9112 §6.1: "ought to be
        // handled as an error"); hyper lets chunked win, we refuse the answer
        if parts.headers.contains_key(header::CONTENT_LENGTH)
            && parts.headers.contains_key(header::TRANSFER_ENCODING)
        {
            return Err(Exchange::Http(
                "answer framed by both Content-Length and Transfer-Encoding".into(),
            ));
        }
        let echoed = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
        if echoed(wire::HEADER_REQUEST_ID) != Some(question.request_id.as_str()) {
            tracing::warn!("answer refused: it names another request");
            return Err(Exchange::Mismatched("request id".into()));
        }
        if let Some(incident) = &question.incident
            && echoed(wire::HEADER_INCIDENT_ID) != Some(incident.as_str())
        {
            tracing::warn!("answer refused: it names another incident");
            return Err(Exchange::Mismatched("incident id".into()));
        }
        let body = http_body_util::Limited::new(body, cap)
            .collect()
            .await
            .map_err(|e| {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    Exchange::TooLarge
                } else {
                    match e.downcast::<hyper::Error>() {
                        Ok(h) => Exchange::from_hyper(*h),
                        Err(other) => Exchange::Http(other.to_string()),
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

const USER_AGENT: &str = concat!("mynakyukyu/", env!("CARGO_PKG_VERSION"));
/// hyper's read buffer, which bounds an answer's head.
const MAX_RESPONSE_HEAD_BYTES: usize = 16 * 1024;

/// What went wrong inside one exchange.
enum Exchange {
    /// The server closed a kept-alive connection before answering: reconnect and resend.
    StaleConnection,
    TooLarge,
    Mismatched(String),
    Io(std::io::Error),
    Http(String),
}

impl Exchange {
    fn from_hyper(e: hyper::Error) -> Exchange {
        if e.is_canceled() || e.is_closed() || e.is_incomplete_message() {
            return Exchange::StaleConnection;
        }
        // an I/O error underneath (a TLS alert, a reset) says more than hyper's wrapper
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            if let Some(io) = s.downcast_ref::<std::io::Error>() {
                let kind = io.kind();
                return match io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                    Some(tls) => Exchange::Io(std::io::Error::new(kind, tls.clone())),
                    None => Exchange::Io(std::io::Error::new(kind, io.to_string())),
                };
            }
            source = s.source();
        }
        Exchange::Http(e.to_string())
    }

    fn into_client_error(self, cap: usize) -> ClientError {
        match self {
            Exchange::StaleConnection => ClientError::Unreachable(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "connection closed by the server",
            )),
            Exchange::TooLarge => ClientError::ResponseTooLarge(cap),
            Exchange::Mismatched(what) => ClientError::MismatchedAnswer(what),
            Exchange::Io(io) => tls_error(io),
            Exchange::Http(e) => ClientError::Protocol(format!("HTTP: {e}")),
        }
    }
}

fn rustls_error(e: &std::io::Error) -> Option<&rustls::Error> {
    e.get_ref()?.downcast_ref::<rustls::Error>()
}

/// Map a transport error to what it means for the crew.
fn tls_error(e: std::io::Error) -> ClientError {
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

fn classify(a: Answer) -> Result<Answer, ClientError> {
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

fn decode<T: serde::de::DeserializeOwned>(a: &Answer) -> Result<T, ClientError> {
    serde_json::from_slice(&a.body).map_err(|e| ClientError::Protocol(json_error_text(&e)))
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, ClientError> {
    serde_json::to_vec(v).map_err(|e| ClientError::Protocol(json_error_text(&e)))
}

pub fn encode_certificate(credential: &CardCredential) -> String {
    base64::engine::general_purpose::STANDARD.encode(&credential.auth_certificate_der)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_answer_is_an_error_that_quotes_none_of_its_values() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        enum Class {
            Anticoagulant,
        }
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Shape {
            days: u32,
            class: Class,
        }
        let drug = "【抗凝固薬】ワーファリン錠1mg";
        for body in [
            format!(r#"{{"days": "{drug}", "class": "Anticoagulant"}}"#),
            format!(r#"{{"days": 28, "class": "{drug}"}}"#),
            format!(r#"{{"days": 28, "class": "Anticoagulant", "note": "{drug}"#),
        ] {
            // serde_json's own message quotes the value (what reached the journal before)
            let raw = serde_json::from_slice::<Shape>(body.as_bytes()).unwrap_err();
            assert!(
                raw.to_string().contains("ワーファリン") || raw.is_eof(),
                "{raw}"
            );
            let answer = Answer {
                status: 200,
                body: body.into_bytes(),
            };
            let e = decode::<Shape>(&answer).unwrap_err();
            let text = format!("{e} {e:?}");
            assert!(matches!(e, ClientError::Protocol(_)), "{text}");
            assert!(
                !text.contains("ワーファリン") && !text.contains("抗凝固"),
                "{text}"
            );
            assert!(text.contains("line 1 column"), "{text}");
        }
    }

    #[test]
    fn endpoints_parse_or_fail_clearly() {
        assert_eq!(
            Endpoint::parse("https://localhost:8443").unwrap(),
            Endpoint {
                host: "localhost".into(),
                port: 8443
            }
        );
        assert_eq!(Endpoint::parse("https://[::1]:9/v1").unwrap().host, "::1");
        assert_eq!(Endpoint::parse("https://example.test").unwrap().port, 443);
        for bad in ["http://x:1", "https://:1", "https://x:notaport", "x"] {
            assert!(
                matches!(Endpoint::parse(bad), Err(ClientError::BadEndpoint(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn problems_map_to_typed_errors() {
        let answer = |status, kind: &str| Answer {
            status,
            body: serde_json::to_vec(&Problem::new(kind, "t", status, None)).unwrap(),
        };
        assert!(matches!(
            classify(answer(422, problem::CARD_REVOKED)),
            Err(ClientError::CardNotAccepted(CardProblem::Revoked))
        ));
        assert!(matches!(
            classify(answer(404, problem::NO_COVERAGE)),
            Err(ClientError::NoCoverage)
        ));
        assert!(matches!(
            classify(answer(400, problem::BAD_REQUEST)),
            Err(ClientError::Refused(_))
        ));
        assert!(matches!(
            classify(Answer {
                status: 503,
                body: vec![]
            }),
            Err(ClientError::Unavailable(503))
        ));
        assert!(matches!(
            classify(Answer {
                status: 418,
                body: b"<html>".to_vec()
            }),
            Err(ClientError::Protocol(_))
        ));
    }
}
