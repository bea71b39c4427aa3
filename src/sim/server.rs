//! The simulator's mTLS server (`mynakyukyu-sim serve`): TLS 1.3 only, a client certificate
//! chained to the fire-department CA required (expired, unknown-CA and revoked ones refused
//! in the handshake), the protocol as an axum service on hyper's HTTP/1.1 with tower
//! limits (body size, header size, time to read a request head, concurrent connections
//! and requests), fault injection for drills.
//!
//! The unit is the one named by the client certificate (its CN): a request body naming
//! another unit is refused, and every reference is bound to the unit that asked for it.

use super::{
    CardRejection, InquiryFields, InquiryRefusal, QualificationAnswer, SimError, Simulator,
};
use crate::domain::{CardCredential, ChainHeadAck, ChainedRecord, Record, Timestamp, UnitId};
use crate::eligibility::wire::{self, Problem, problem};
use crate::pki::{CertAuthority, JpkiTestCa, PkiError};
use crate::sim::{Faults, PATH_SIM_FAULTS};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use thiserror::Error;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, watch};
use tokio_rustls::TlsAcceptor;

#[derive(Debug, Error)]
pub enum ServeError {
    #[error("PKI directory {0}: missing {1} (create it with `mynakyukyu-admin dev-pki --out DIR`)")]
    MissingPki(String, String),
    #[error("TLS set-up: {0}")]
    Tls(String),
    #[error("cannot listen on {0}: {1}")]
    Listen(SocketAddr, std::io::Error),
    #[error("audit log {0}: {1}")]
    AuditLog(String, std::io::Error),
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error(transparent)]
    Sim(#[from] SimError),
}

/// How to run the server.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    pub pki_dir: PathBuf,
    pub faults: Faults,
    /// Append every inquiry as a JSON line here.
    pub audit_log: Option<PathBuf>,
    pub today: time::Date,
}

/// Largest request body accepted (a records batch).
const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;
/// hyper's read buffer, which bounds the request head (431 beyond).
const MAX_HEAD_BYTES: usize = 16 * 1024;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time to read a request head once its first byte arrived (slowloris).
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection with no request for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Time to answer a request (a stalled drill fault is exempt: it models a dead server).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_CONNECTIONS: usize = 256;
const MAX_REQUESTS_IN_FLIGHT: usize = 128;

/// Counters for tests and the load benchmark.
#[derive(Debug, Default)]
pub struct ServerStats {
    pub handshakes: AtomicU64,
    pub refused_handshakes: AtomicU64,
    pub requests: AtomicU64,
}

/// The audit chain held for one device key: every record by sequence number.
#[derive(Default)]
struct HeldChain {
    records: std::collections::BTreeMap<u64, ChainedRecord>,
}

impl HeldChain {
    fn head(&self) -> Option<ChainHeadAck> {
        self.records.last_key_value().map(|(seq, r)| ChainHeadAck {
            seq: *seq,
            hash: r.hash.clone(),
        })
    }
}

struct Shared {
    sim: Mutex<Simulator>,
    faults: Mutex<Faults>,
    /// Every record accepted, by the device key that signed it and then its id: a record
    /// id is the tablet's to choose, so another tablet's record with the same id is another
    /// record, never a replacement.
    records: Mutex<HashMap<(String, String), Record>>,
    /// The audit chain of each device key (by the hex SHA-256 of its public key).
    chains: Mutex<HashMap<String, HeldChain>>,
    audit_file: Option<Mutex<std::fs::File>>,
    stats: ServerStats,
    /// The fault `swap_emergency_bodies`: an answer waiting for a partner to swap with.
    swap_slot: Mutex<SwapSlot>,
}

type SwapSlot = Option<(
    wire::EmergencyInfoResponse,
    tokio::sync::oneshot::Sender<wire::EmergencyInfoResponse>,
)>;

/// A running simulator server; dropping it does not stop it, `shutdown` does.
pub struct SimServer {
    pub local_addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

fn need(dir: &Path, name: &str) -> Result<PathBuf, ServeError> {
    let p = dir.join(name);
    if p.is_file() {
        Ok(p)
    } else {
        Err(ServeError::MissingPki(
            dir.display().to_string(),
            name.to_string(),
        ))
    }
}

/// The server's TLS configuration from a dev-PKI directory.
pub fn tls_config(pki_dir: &Path) -> Result<rustls::ServerConfig, ServeError> {
    let tls = |e: &dyn std::fmt::Display| ServeError::Tls(e.to_string());
    let provider = crate::eligibility::client::crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(need(pki_dir, "ca.pem")?).map_err(|e| tls(&e))? {
        roots.add(ca.map_err(|e| tls(&e))?).map_err(|e| tls(&e))?;
    }
    let crls = match pki_dir.join("crl.pem") {
        p if p.is_file() => CertificateRevocationListDer::pem_file_iter(&p)
            .map_err(|e| tls(&e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| tls(&e))?,
        _ => vec![],
    };
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .with_crls(crls)
    .build()
    .map_err(|e| tls(&e))?;
    let chain = CertificateDer::pem_file_iter(need(pki_dir, "server.pem")?)
        .map_err(|e| tls(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls(&e))?;
    let key = PrivateKeyDer::from_pem_file(need(pki_dir, "server.key")?).map_err(|e| tls(&e))?;
    rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| tls(&e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| tls(&e))
}

impl SimServer {
    /// Bind, load the PKI and start serving on the current tokio runtime.
    pub async fn start(options: ServeOptions) -> Result<SimServer, ServeError> {
        let config = tls_config(&options.pki_dir)?;
        let jpki = JpkiTestCa::from_authority(CertAuthority::load_files(
            &need(&options.pki_dir, "jpki-ca.pem")?,
            &need(&options.pki_dir, "jpki-ca.key")?,
        )?);
        let sim = Simulator::with_jpki(
            super::patients::population(
                super::patients::DEFAULT_SEED,
                super::patients::DEFAULT_POPULATION,
                options.today,
            ),
            options.today,
            jpki,
        );
        let audit_file = match &options.audit_log {
            Some(p) => Some(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|e| ServeError::AuditLog(p.display().to_string(), e))?,
            )),
            None => None,
        };
        let listener = TcpListener::bind(options.listen)
            .await
            .map_err(|e| ServeError::Listen(options.listen, e))?;
        let local_addr = listener
            .local_addr()
            .map_err(|e| ServeError::Listen(options.listen, e))?;
        let shared = Arc::new(Shared {
            sim: Mutex::new(sim),
            faults: Mutex::new(options.faults),
            swap_slot: Mutex::new(None),
            records: Mutex::new(HashMap::new()),
            chains: Mutex::new(HashMap::new()),
            audit_file,
            stats: ServerStats::default(),
        });
        let (stop, stopped) = watch::channel(false);
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let app = router(shared.clone(), stopped.clone());
        let task = tokio::spawn(accept_loop(
            listener,
            acceptor,
            app,
            shared.clone(),
            stopped,
        ));
        tracing::info!(%local_addr, "simulator listening");
        Ok(SimServer {
            local_addr,
            shared,
            stop,
            task,
        })
    }

    /// Change fault injection at run time.
    pub fn set_faults(&self, faults: Faults) {
        *lock(&self.shared.faults) = faults;
    }

    pub fn stats(&self) -> &ServerStats {
        &self.shared.stats
    }

    /// How many distinct records the server holds, and the ids.
    pub fn record_ids(&self) -> Vec<String> {
        lock(&self.shared.records)
            .keys()
            .map(|(_, id)| id.clone())
            .collect()
    }

    /// Inquiries logged so far (server-side audit log).
    pub fn inquiry_count(&self) -> usize {
        lock(&self.shared.sim).audit_log().len()
    }

    /// Run something against the simulator state (issue cards, read the log).
    pub fn with_simulator<T>(&self, f: impl FnOnce(&mut Simulator) -> T) -> T {
        f(&mut lock(&self.shared.sim))
    }

    /// Stop accepting and close every connection.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Lock a mutex even if a panicking thread poisoned it: the data are counters and maps
/// whose every update is a single step.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the server knows of one connection: the unit its certificate names, and the
/// drill faults that act on the connection rather than on one request.
struct Connection {
    unit: UnitId,
    /// The client certificate's public key (an uncompressed P-256 point) and its hex
    /// SHA-256: the records of this connection must be signed by it.
    device_key: Vec<u8>,
    key_id: String,
    /// Set by the reset fault: the connection task closes the socket with an RST.
    reset: Notify,
    /// The last answer on this connection (for the replay fault).
    previous: Mutex<Option<(StatusCode, HeaderMap, Bytes)>>,
}

/// The unit named by a verified client certificate (its CN) and the certificate's public
/// key.
fn unit_of(certificate: &[u8]) -> Option<(UnitId, Vec<u8>)> {
    let (_, cert) = x509_parser::parse_x509_certificate(certificate).ok()?;
    let cn = cert.subject().iter_common_name().next()?.as_str().ok()?;
    let key = cert.public_key().subject_public_key.data.to_vec();
    (!cn.is_empty()).then(|| (UnitId::new(cn), key))
}

fn router(shared: Arc<Shared>, stopped: watch::Receiver<bool>) -> Router {
    Router::new()
        .route(wire::PATH_HEALTH, get(health))
        .route(wire::PATH_QUALIFICATION, post(qualification))
        .route(wire::PATH_EMERGENCY_INFO, post(emergency_info))
        .route(wire::PATH_RECORDS, post(records))
        .route(wire::PATH_RECORDS_HEAD, get(records_head))
        .route(PATH_SIM_FAULTS, post(set_faults))
        .fallback(|| async {
            problem_response(&Problem::new(problem::NOT_FOUND, "Not found", 404, None))
        })
        .method_not_allowed_fallback(|| async {
            problem_response(&Problem::new(
                problem::BAD_REQUEST,
                "Method not allowed",
                405,
                None,
            ))
        })
        .layer(axum::middleware::from_fn_with_state(
            (shared.clone(), stopped),
            faults_and_echo,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            MAX_REQUEST_BYTES,
        ))
        .layer(tower::limit::ConcurrencyLimitLayer::new(
            MAX_REQUESTS_IN_FLIGHT,
        ))
        .with_state(shared)
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    app: Router,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            accepted = listener.accept() => {
                let Ok((tcp, peer)) = accepted else { continue };
                // over the connection limit: refuse at once rather than queue
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    tracing::warn!(%peer, "connection refused: too many connections");
                    continue;
                };
                let acceptor = acceptor.clone();
                let shared = shared.clone();
                let stopped = stopped.clone();
                let app = app.clone();
                connections.spawn(async move {
                    serve_connection(tcp, acceptor, app, shared, stopped).await;
                    drop(slot);
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
}

fn chance(rate: f64) -> bool {
    if rate <= 0.0 {
        return false;
    }
    let mut b = [0u8; 4];
    let _ = getrandom::fill(&mut b);
    f64::from(u32::from_le_bytes(b)) / f64::from(u32::MAX) < rate
}

async fn serve_connection(
    tcp: TcpStream,
    acceptor: TlsAcceptor,
    app: Router,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
) {
    use std::os::fd::AsFd;
    let _ = tcp.set_nodelay(true);
    // a second handle on the socket, so that the reset fault can make its close an RST
    let socket = tcp
        .as_fd()
        .try_clone_to_owned()
        .ok()
        .map(std::net::TcpStream::from);
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            shared
                .stats
                .refused_handshakes
                .fetch_add(1, Ordering::Relaxed);
            tracing::info!(error = %e, "TLS handshake refused");
            return;
        }
        Err(_) => return,
    };
    shared.stats.handshakes.fetch_add(1, Ordering::Relaxed);
    let Some((unit, device_key)) = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|c| unit_of(c))
    else {
        tracing::warn!("client certificate names no unit: connection closed");
        return;
    };
    let key_id = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&device_key))
    };
    let connection = Arc::new(Connection {
        unit,
        device_key,
        key_id,
        reset: Notify::new(),
        previous: Mutex::new(None),
    });
    let per_connection = connection.clone();
    let service =
        tower::ServiceExt::map_request(app, move |mut req: Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(per_connection.clone());
            req
        });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .max_buf_size(MAX_HEAD_BYTES)
        .keep_alive(true);
    let served = http.serve_connection(
        hyper_util::rt::TokioIo::new(IdleTimeout::new(tls, IDLE_TIMEOUT)),
        hyper_util::service::TowerToHyperService::new(service),
    );
    tokio::select! {
        r = served => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "connection ended");
            }
        }
        _ = connection.reset.notified() => {
            // a zero linger makes the close an RST, as a dropped link looks to the client
            if let Some(s) = &socket {
                let _ = linger_zero(s);
            }
        }
        _ = stopped.changed() => {}
    }
}

/// `SO_LINGER` 0 on the socket (through the std handle, which shares it).
fn linger_zero(s: &std::net::TcpStream) -> std::io::Result<()> {
    rustix::net::sockopt::set_socket_linger(s, Some(Duration::ZERO)).map_err(std::io::Error::from)
}

/// Closes a connection on which nothing was read or written for `limit` (keep-alive idle).
struct IdleTimeout<S> {
    inner: S,
    limit: Duration,
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl<S> IdleTimeout<S> {
    fn new(inner: S, limit: Duration) -> Self {
        IdleTimeout {
            inner,
            limit,
            sleep: Box::pin(tokio::time::sleep(limit)),
        }
    }
    fn touch(&mut self) {
        let at = tokio::time::Instant::now() + self.limit;
        self.sleep.as_mut().reset(at);
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for IdleTimeout<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::future::Future;
        use std::task::Poll;
        match std::pin::Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                self.touch();
                Poll::Ready(r)
            }
            Poll::Pending => match self.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(std::io::ErrorKind::TimedOut.into())),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for IdleTimeout<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        if r.is_ready() {
            self.touch();
        }
        r
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Every answer names its question: the request's `request-id` and `incident-id` are
/// echoed. The drill faults (latency, stall, reset, 503, replaying the previous answer)
/// act here, before and instead of the handlers.
async fn faults_and_echo(
    State((shared, mut stopped)): State<(Arc<Shared>, watch::Receiver<bool>)>,
    Extension(connection): Extension<Arc<Connection>>,
    req: Request,
    next: Next,
) -> Response {
    shared.stats.requests.fetch_add(1, Ordering::Relaxed);
    let echo: Vec<(header::HeaderName, HeaderValue)> =
        [wire::HEADER_REQUEST_ID, wire::HEADER_INCIDENT_ID]
            .into_iter()
            .filter_map(|name| {
                let value = req.headers().get(name)?.clone();
                Some((header::HeaderName::from_static(name), value))
            })
            .collect();
    let faults = lock(&shared.faults).clone();
    if faults.stall {
        // Accept the request and never answer, until the client gives up or we stop.
        let _ = stopped.changed().await;
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    if chance(faults.reset_rate) {
        connection.reset.notify_one();
        std::future::pending::<()>().await;
    }
    if faults.replay_previous {
        let previous = lock(&connection.previous).clone();
        if let Some((status, headers, body)) = previous {
            // a broken proxy: the previous answer, as it was, to this question
            let mut r = (status, body).into_response();
            *r.headers_mut() = headers;
            return r;
        }
    }
    let response = if chance(faults.error_rate) {
        problem_response(&Problem::new(
            problem::UNAVAILABLE,
            "Service temporarily unavailable (injected)",
            503,
            None,
        ))
    } else {
        match tokio::time::timeout(REQUEST_TIMEOUT, next.run(req)).await {
            Ok(r) => r,
            Err(_) => problem_response(&Problem::new(
                problem::UNAVAILABLE,
                "Request timed out",
                503,
                None,
            )),
        }
    };
    let (mut parts, body) = response.into_parts();
    for (name, value) in echo {
        parts.headers.insert(name, value);
    }
    let Ok(body) = axum::body::to_bytes(body, MAX_REQUEST_BYTES * 2).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    *lock(&connection.previous) = Some((parts.status, parts.headers.clone(), body.clone()));
    Response::from_parts(parts, axum::body::Body::from(body))
}

fn problem_response(p: &Problem) -> Response {
    let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_vec(p).unwrap_or_default();
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(wire::PROBLEM_JSON),
        )],
        body,
    )
        .into_response()
}

/// The fault `swap_emergency_bodies`: meet another inquiry in flight (up to 3 s) and
/// answer with its body; alone, answer with one's own.
async fn swapped(shared: &Shared, mine: wire::EmergencyInfoResponse) -> Response {
    let partner = lock(&shared.swap_slot).take();
    match partner {
        Some((theirs, tx)) => {
            let _ = tx.send(mine);
            ok(&theirs)
        }
        None => {
            let (tx, rx) = tokio::sync::oneshot::channel();
            *lock(&shared.swap_slot) = Some((mine.clone(), tx));
            match tokio::time::timeout(std::time::Duration::from_secs(3), rx).await {
                Ok(Ok(theirs)) => ok(&theirs),
                _ => {
                    lock(&shared.swap_slot).take();
                    ok(&mine)
                }
            }
        }
    }
}

fn ok<T: serde::Serialize>(v: &T) -> Response {
    match serde_json::to_vec(v) {
        Ok(body) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response(),
        Err(e) => problem_response(&Problem::new(
            problem::BAD_REQUEST,
            "Cannot encode answer",
            500,
            Some(e.to_string()),
        )),
    }
}

fn bad_request(detail: String) -> Response {
    problem_response(&Problem::new(
        problem::BAD_REQUEST,
        "Malformed request",
        400,
        Some(detail),
    ))
}

/// A body that names a unit other than the certificate's: refused (the tablet's word
/// must match its certificate).
fn unit_mismatch(claimed: &UnitId, certified: &UnitId) -> Response {
    tracing::warn!(claimed = %claimed.as_str(), certified = %certified.as_str(),
        "request refused: the body names another unit than the client certificate");
    problem_response(&Problem::new(
        problem::UNIT_MISMATCH,
        "The request names another unit than the client certificate",
        403,
        None,
    ))
}

async fn health() -> Response {
    ok(&wire::Health {
        status: "ok".into(),
        version: wire::API_VERSION.into(),
    })
}

async fn qualification(
    State(shared): State<Arc<Shared>>,
    Extension(connection): Extension<Arc<Connection>>,
    body: Bytes,
) -> Response {
    let req: wire::QualificationRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return bad_request(e.to_string()),
    };
    if req.unit_id != connection.unit {
        return unit_mismatch(&req.unit_id, &connection.unit);
    }
    let Ok(der) = base64::engine::general_purpose::STANDARD.decode(&req.auth_certificate) else {
        return bad_request("auth_certificate is not base64".into());
    };
    let answer = lock(&shared.sim).qualification(
        &connection.unit,
        &CardCredential {
            auth_certificate_der: der,
            token: Default::default(),
        },
        Timestamp::now(),
    );
    match answer {
        QualificationAnswer::Coverage {
            qualification,
            coverage,
        } => ok(&wire::QualificationResponse::Coverage {
            qualification_ref: qualification,
            coverage,
        }),
        QualificationAnswer::OptOut => ok(&wire::QualificationResponse::OptOut),
        QualificationAnswer::CardNotAccepted(why) => {
            let (kind, title) = match why {
                CardRejection::Unknown => (problem::CARD_UNKNOWN, "Card certificate unknown"),
                CardRejection::Revoked => (problem::CARD_REVOKED, "Card certificate revoked"),
                CardRejection::Expired => (problem::CARD_EXPIRED, "Card certificate expired"),
            };
            problem_response(&Problem::new(kind, title, 422, None))
        }
        QualificationAnswer::RateLimited => problem_response(&Problem::new(
            problem::TOO_MANY_PATIENTS,
            "This unit asked for an unusual number of patients; refused and flagged",
            429,
            None,
        )),
        QualificationAnswer::Unavailable => problem_response(&Problem::new(
            problem::UNAVAILABLE,
            "Cannot issue a reference now",
            503,
            None,
        )),
    }
}

async fn emergency_info(
    State(shared): State<Arc<Shared>>,
    Extension(connection): Extension<Arc<Connection>>,
    body: Bytes,
) -> Response {
    let req: wire::EmergencyInfoRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return bad_request(e.to_string()),
    };
    if req.unit_id != connection.unit {
        return unit_mismatch(&req.unit_id, &connection.unit);
    }
    let signature = match req
        .card_signature
        .as_deref()
        .map(|s| base64::engine::general_purpose::STANDARD.decode(s))
    {
        None => None,
        Some(Ok(sig)) => Some(sig),
        Some(Err(_)) => return bad_request("card_signature is not base64".into()),
    };
    let at = Timestamp::now();
    let result = {
        let mut sim = lock(&shared.sim);
        let patient = sim.patient_for(&req.qualification_ref);
        let r = sim.emergency_info(
            at,
            InquiryFields {
                incident: &req.incident_id,
                qualification: &req.qualification_ref,
                consent: req.consent,
                operator: &req.operator_id,
                unit: &connection.unit,
                terminal: &req.terminal_id,
                identity_check: req.identity_check,
                card_signature: signature.as_deref(),
                token: req.token,
            },
        );
        let logged = sim.audit_log().last().cloned();
        (r.map(|info| (info, patient)), logged)
    };
    match result {
        (Ok((info, patient)), logged) => {
            if let (Some(file), Some(entry)) = (&shared.audit_file, logged)
                && entry.incident == req.incident_id
                && let Ok(mut line) = serde_json::to_vec(&entry)
            {
                line.push(b'\n');
                let _ = lock(file).write_all(&line);
            }
            let answer = wire::EmergencyInfoResponse {
                qualification_ref: Some(req.qualification_ref.clone()),
                patient,
                emergency_summary: info.summary,
                full_data: info.full,
            };
            if lock(&shared.faults).swap_emergency_bodies {
                return swapped(&shared, answer).await;
            }
            ok(&answer)
        }
        (Err(InquiryRefusal::UnknownQualification), _) => problem_response(&Problem::new(
            problem::UNKNOWN_QUALIFICATION,
            "Unknown qualification reference",
            404,
            None,
        )),
        (Err(InquiryRefusal::ExpiredQualification), _) => problem_response(&Problem::new(
            problem::QUALIFICATION_EXPIRED,
            "Qualification reference expired; read the card again",
            410,
            None,
        )),
        (Err(InquiryRefusal::CardSignatureInvalid), _) => problem_response(&Problem::new(
            problem::CARD_SIGNATURE_INVALID,
            "PIN path: the card's signature is missing or does not verify",
            403,
            None,
        )),
        (Err(InquiryRefusal::PhoneWithoutOwner), _) => problem_response(&Problem::new(
            problem::PHONE_WITHOUT_OWNER,
            "A phone is read only with its owner: no 同意取得困難 and no photo check with it",
            403,
            None,
        )),
        (Err(InquiryRefusal::ForeignUnit), _) => problem_response(&Problem::new(
            problem::FOREIGN_UNIT,
            "Qualification reference issued to another unit",
            403,
            None,
        )),
    }
}

async fn records_head(
    State(shared): State<Arc<Shared>>,
    Extension(connection): Extension<Arc<Connection>>,
) -> Response {
    let head = lock(&shared.chains)
        .get(&connection.key_id)
        .and_then(HeldChain::head);
    ok(&wire::RecordsHead { head })
}

/// Why a batch of records was refused.
fn chain_refusal(kind: &str, status: u16, title: &str, detail: String) -> Response {
    tracing::warn!(kind, detail = %detail, "records refused");
    problem_response(&Problem::new(kind, title, status, Some(detail)))
}

/// Hold the tablet to its chain: each record signed by the key that connected, its hash
/// over its content and link, its link to the record before; a sequence number held
/// with another hash (a rolled-back or forked store) or a gap refuses the whole batch,
/// so nothing is half-taken.
async fn records(
    State(shared): State<Arc<Shared>>,
    Extension(connection): Extension<Arc<Connection>>,
    body: Bytes,
) -> Response {
    let req: wire::RecordsUpload = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return bad_request(e.to_string()),
    };
    let key = ring::signature::UnparsedPublicKey::new(
        &ring::signature::ECDSA_P256_SHA256_ASN1,
        connection.device_key.as_slice(),
    );
    let mut chains = lock(&shared.chains);
    let chain = chains.entry(connection.key_id.clone()).or_default();
    let mut fresh: Vec<&ChainedRecord> = vec![];
    let mut duplicates = 0;
    let mut prev: Option<(u64, String)> = chain.head().map(|h| (h.seq, h.hash));
    for r in &req.records {
        let signature_ok = base64::engine::general_purpose::STANDARD
            .decode(&r.signature)
            .is_ok_and(|sig| {
                key.verify(&crate::domain::chain_signing_message(r.seq, &r.hash), &sig)
                    .is_ok()
            });
        if !signature_ok || crate::domain::chain_hash(&r.prev_hash, r.seq, &r.record) != r.hash {
            return chain_refusal(
                problem::BAD_RECORD_SIGNATURE,
                422,
                "Record signature or hash does not verify",
                format!("unit {} record {}", connection.unit.as_str(), r.seq),
            );
        }
        if let Some(held) = chain.records.get(&r.seq) {
            if held.hash == r.hash {
                duplicates += 1;
                continue;
            }
            return chain_refusal(
                problem::CHAIN_CONFLICT,
                409,
                "The server holds another record at this place of the chain",
                format!(
                    "unit {} record {}: held head {}",
                    connection.unit.as_str(),
                    r.seq,
                    chain.head().map(|h| h.seq).unwrap_or_default()
                ),
            );
        }
        // the first record ever held may start anywhere (older ones purged before the
        // server knew this key); after that, each one links to the one before
        if let Some((seq, hash)) = &prev {
            if r.seq != seq + 1 {
                return chain_refusal(
                    problem::CHAIN_GAP,
                    409,
                    "Records are missing before this one",
                    format!(
                        "unit {} record {} after held {}",
                        connection.unit.as_str(),
                        r.seq,
                        seq
                    ),
                );
            }
            if r.prev_hash != *hash {
                return chain_refusal(
                    problem::CHAIN_CONFLICT,
                    409,
                    "The record does not link to the chain the server holds",
                    format!("unit {} record {}", connection.unit.as_str(), r.seq),
                );
            }
        }
        prev = Some((r.seq, r.hash.clone()));
        fresh.push(r);
    }
    let accepted = fresh.len();
    let mut held = lock(&shared.records);
    for r in fresh {
        chain.records.insert(r.seq, r.clone());
        held.insert(
            (connection.key_id.clone(), r.record.id.clone()),
            r.record.clone(),
        );
    }
    let Some(head) = chain.head() else {
        return bad_request("an empty batch".into());
    };
    ok(&wire::RecordsAccepted {
        accepted,
        duplicates,
        head,
    })
}

async fn set_faults(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    match serde_json::from_slice::<Faults>(&body) {
        Ok(f) => {
            *lock(&shared.faults) = f.clone();
            ok(&f)
        }
        Err(e) => bad_request(e.to_string()),
    }
}
