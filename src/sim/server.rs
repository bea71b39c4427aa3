//! The simulator's mTLS server (`mynakyukyu-sim serve`): TLS 1.3 only, a client certificate
//! chained to the fire-department CA required (expired, unknown-CA and revoked ones refused
//! in the handshake), protocol v1 over HTTP/1.1 keep-alive, fault injection for drills.

use super::{CardRejection, InquiryFields, QualificationAnswer, SimError, Simulator};
use crate::domain::{CardCredential, Record, Timestamp};
use crate::eligibility::http::{self, HttpError};
use crate::eligibility::wire::{self, Faults, Problem, problem};
use crate::pki::{CertAuthority, JpkiTestCa, PkiError};
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
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
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
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Counters for tests and the load benchmark.
#[derive(Debug, Default)]
pub struct ServerStats {
    pub handshakes: AtomicU64,
    pub refused_handshakes: AtomicU64,
    pub requests: AtomicU64,
}

struct Shared {
    sim: Mutex<Simulator>,
    faults: Mutex<Faults>,
    records: Mutex<HashMap<String, Record>>,
    audit_file: Option<Mutex<std::fs::File>>,
    stats: ServerStats,
}

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
            records: Mutex::new(HashMap::new()),
            audit_file,
            stats: ServerStats::default(),
        });
        let (stop, stopped) = watch::channel(false);
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let task = tokio::spawn(accept_loop(listener, acceptor, shared.clone(), stopped));
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
        lock(&self.shared.records).keys().cloned().collect()
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

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            accepted = listener.accept() => {
                let Ok((tcp, peer)) = accepted else { continue };
                let acceptor = acceptor.clone();
                let shared = shared.clone();
                let stopped = stopped.clone();
                connections.spawn(async move {
                    if let Err(e) = serve_connection(tcp, acceptor, shared, stopped).await {
                        tracing::debug!(%peer, error = %e, "connection ended");
                    }
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
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
) -> Result<(), HttpError> {
    let _ = tcp.set_nodelay(true);
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            shared
                .stats
                .refused_handshakes
                .fetch_add(1, Ordering::Relaxed);
            tracing::info!(error = %e, "TLS handshake refused");
            return Ok(());
        }
        Err(_) => return Ok(()),
    };
    shared.stats.handshakes.fetch_add(1, Ordering::Relaxed);
    let mut conn = BufReader::new(tls);
    loop {
        let head = tokio::select! {
            _ = stopped.changed() => return Ok(()),
            r = tokio::time::timeout(IDLE_TIMEOUT, http::read_head(&mut conn)) => match r {
                Err(_) => return Ok(()),
                Ok(Ok(Some(h))) => h,
                Ok(Ok(None)) => return Ok(()),
                Ok(Err(e)) => return Err(e),
            },
        };
        shared.stats.requests.fetch_add(1, Ordering::Relaxed);
        if head
            .header("expect")
            .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
        {
            conn.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
            conn.flush().await?;
        }
        let body = match http::read_body(&mut conn, &head, MAX_REQUEST_BYTES).await {
            Ok(b) => b,
            Err(HttpError::TooLarge(n, max)) => {
                let p = Problem::new(
                    problem::TOO_LARGE,
                    "Request too large",
                    413,
                    Some(format!("{n} bytes, limit {max}")),
                );
                respond_problem(&mut conn, &p, true).await?;
                return Ok(());
            }
            Err(HttpError::UnsupportedEncoding) => {
                let p = Problem::new(
                    problem::BAD_REQUEST,
                    "Transfer-Encoding not supported; send Content-Length",
                    411,
                    None,
                );
                respond_problem(&mut conn, &p, true).await?;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let faults = lock(&shared.faults).clone();
        if faults.stall {
            // Accept the request and never answer, until the client gives up or we stop.
            let _ = stopped.changed().await;
            return Ok(());
        }
        if faults.latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
        }
        if chance(faults.reset_rate) {
            // A zero linger makes the close an RST, as a dropped link looks to the client;
            // with zero it does not block (the deprecation is about non-zero values).
            #[allow(deprecated)]
            let _ = conn.get_ref().get_ref().0.set_linger(Some(Duration::ZERO));
            return Ok(());
        }
        let close = head.wants_close();
        let (status, content_type, answer) = if chance(faults.error_rate) {
            problem_answer(&Problem::new(
                problem::UNAVAILABLE,
                "Service temporarily unavailable (injected)",
                503,
                None,
            ))
        } else {
            route(&shared, &head.first[0], &head.first[1], &body)
        };
        http::write_response(&mut conn, status, content_type, &answer, close).await?;
        if close {
            let _ = conn.shutdown().await;
            return Ok(());
        }
    }
}

async fn respond_problem<W: tokio::io::AsyncWrite + Unpin>(
    w: &mut W,
    p: &Problem,
    close: bool,
) -> Result<(), HttpError> {
    let (status, ct, body) = problem_answer(p);
    http::write_response(w, status, ct, &body, close).await
}

fn problem_answer(p: &Problem) -> (u16, &'static str, Vec<u8>) {
    (
        p.status,
        wire::PROBLEM_JSON,
        serde_json::to_vec(p).unwrap_or_default(),
    )
}

fn ok<T: serde::Serialize>(v: &T) -> (u16, &'static str, Vec<u8>) {
    match serde_json::to_vec(v) {
        Ok(body) => (200, "application/json", body),
        Err(e) => problem_answer(&Problem::new(
            problem::BAD_REQUEST,
            "Cannot encode answer",
            500,
            Some(e.to_string()),
        )),
    }
}

fn bad_request(detail: String) -> (u16, &'static str, Vec<u8>) {
    problem_answer(&Problem::new(
        problem::BAD_REQUEST,
        "Malformed request",
        400,
        Some(detail),
    ))
}

fn route(shared: &Shared, method: &str, path: &str, body: &[u8]) -> (u16, &'static str, Vec<u8>) {
    match (method, path) {
        ("GET", wire::PATH_HEALTH) => ok(&wire::Health {
            status: "ok".into(),
            version: wire::API_VERSION.into(),
        }),
        ("POST", wire::PATH_QUALIFICATION) => {
            let req: wire::QualificationRequest = match serde_json::from_slice(body) {
                Ok(r) => r,
                Err(e) => return bad_request(e.to_string()),
            };
            let Ok(der) = base64::engine::general_purpose::STANDARD.decode(&req.auth_certificate)
            else {
                return bad_request("auth_certificate is not base64".into());
            };
            let answer = lock(&shared.sim).qualification(&CardCredential {
                auth_certificate_der: der,
            });
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
                        CardRejection::Unknown => {
                            (problem::CARD_UNKNOWN, "Card certificate unknown")
                        }
                        CardRejection::Revoked => {
                            (problem::CARD_REVOKED, "Card certificate revoked")
                        }
                        CardRejection::Expired => {
                            (problem::CARD_EXPIRED, "Card certificate expired")
                        }
                    };
                    problem_answer(&Problem::new(kind, title, 422, None))
                }
            }
        }
        ("POST", wire::PATH_EMERGENCY_INFO) => {
            let req: wire::EmergencyInfoRequest = match serde_json::from_slice(body) {
                Ok(r) => r,
                Err(e) => return bad_request(e.to_string()),
            };
            let at = Timestamp::now();
            let result = {
                let mut sim = lock(&shared.sim);
                let r = sim.emergency_info(
                    at,
                    InquiryFields {
                        incident: &req.incident_id,
                        qualification: &req.qualification_ref,
                        consent: req.consent,
                        operator: &req.operator_id,
                        unit: &req.unit_id,
                        terminal: &req.terminal_id,
                    },
                );
                let logged = sim.audit_log().last().cloned();
                (r, logged)
            };
            match result {
                (Ok(info), logged) => {
                    if let (Some(file), Some(entry)) = (&shared.audit_file, logged)
                        && entry.incident == req.incident_id
                        && let Ok(mut line) = serde_json::to_vec(&entry)
                    {
                        line.push(b'\n');
                        let _ = lock(file).write_all(&line);
                    }
                    ok(&wire::EmergencyInfoResponse {
                        emergency_summary: info.summary,
                        full_data: info.full,
                    })
                }
                (Err(_), _) => problem_answer(&Problem::new(
                    problem::UNKNOWN_QUALIFICATION,
                    "Unknown qualification reference",
                    404,
                    None,
                )),
            }
        }
        ("POST", wire::PATH_RECORDS) => {
            let req: wire::RecordsUpload = match serde_json::from_slice(body) {
                Ok(r) => r,
                Err(e) => return bad_request(e.to_string()),
            };
            let mut held = lock(&shared.records);
            let mut accepted = 0;
            let mut duplicates = 0;
            for record in req.records {
                if held.contains_key(&record.id) {
                    duplicates += 1;
                } else {
                    held.insert(record.id.clone(), record);
                    accepted += 1;
                }
            }
            ok(&wire::RecordsAccepted {
                accepted,
                duplicates,
            })
        }
        ("POST", wire::PATH_SIM_FAULTS) => match serde_json::from_slice::<Faults>(body) {
            Ok(f) => {
                *lock(&shared.faults) = f.clone();
                ok(&f)
            }
            Err(e) => bad_request(e.to_string()),
        },
        (_, wire::PATH_HEALTH | wire::PATH_QUALIFICATION | wire::PATH_EMERGENCY_INFO)
        | (_, wire::PATH_RECORDS | wire::PATH_SIM_FAULTS) => problem_answer(&Problem::new(
            problem::BAD_REQUEST,
            "Method not allowed",
            405,
            None,
        )),
        _ => problem_answer(&Problem::new(problem::NOT_FOUND, "Not found", 404, None)),
    }
}
