//! The simulator's mTLS server (`mynakyukyu-sim serve`): TLS 1.3 only, a client certificate
//! chained to the fire-department CA required (expired, unknown-CA and revoked ones refused
//! in the handshake), the protocol as an axum service on hyper's HTTP/1.1 with tower
//! limits (body size, header size, time to read a request head, concurrent connections
//! and requests), fault injection for drills.
//!
//! The unit is the one named by the client certificate (its CN): a request body naming
//! another unit is refused, and every reference is bound to the unit that asked for it.

mod faults;
mod handlers;
mod transport;

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
use faults::*;
use handlers::*;
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
use transport::*;

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

fn router(shared: Arc<Shared>, stopped: watch::Receiver<bool>) -> Router {
    Router::new()
        .route(wire::PATH_HEALTH, get(health))
        .route(wire::PATH_QUALIFICATION, post(qualification))
        .route(wire::PATH_EMERGENCY_INFO, post(emergency_info))
        .route(wire::PATH_RECORDS, post(records))
        .route(wire::PATH_RECORDS_HEAD, get(records_head))
        .route(PATH_SIM_FAULTS, post(set_faults))
        .fallback(|| async {
            problem_response(&Problem::new(
                problem::NOT_FOUND,
                "Not found",
                StatusCode::NOT_FOUND,
                None,
            ))
        })
        .method_not_allowed_fallback(|| async {
            problem_response(&Problem::new(
                problem::BAD_REQUEST,
                "Method not allowed",
                StatusCode::METHOD_NOT_ALLOWED,
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
