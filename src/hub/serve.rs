//! The hub's two listeners and its housekeeping: the tablet API on mutual TLS 1.3 (a client
//! certificate chained to a trusted fire-department CA required in the handshake), the
//! inbox on TLS 1.2/1.3 for browsers, each connection on hyper's HTTP/1.1 with a bound on
//! the request head and the time to read it, a cap on connections, and the retention sweep.

use super::store::{Backend, HubStore, NOTIFY_CHANNEL};
use super::{HubCore, HubError, inbox, seal::SealKey, tablet};
use axum::Router;
use axum::extract::Request;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Open connections per face (an inbox page holds one stream; a wall of screens and a
/// prefecture's tablets stay far below).
pub const MAX_CONNECTIONS: usize = 4096;

/// How to run the hub.
#[derive(Clone, Debug)]
pub struct HubOptions {
    pub data_dir: PathBuf,
    /// The master key's file (outside the data dir).
    pub seal_key: PathBuf,
    /// `server.pem` and `server.key` (the hub's certificate, for both faces).
    pub tls_dir: PathBuf,
    pub tablet_listen: SocketAddr,
    pub inbox_listen: SocketAddr,
    /// Packets are destroyed this long after 到着.
    pub retention: Duration,
    /// A case never arrived is destroyed this long after its request.
    pub stale_after: Duration,
    /// How often the retention sweep runs.
    pub sweep_every: Duration,
    /// `postgres://…` to share one database between hubs; None: SQLite in the data dir.
    pub database: Option<String>,
    /// How often an event stream polls besides being woken.
    pub poll_every: Duration,
}

impl HubOptions {
    /// Loopback ports picked by the OS, the default retention.
    pub fn loopback(data_dir: PathBuf, seal_key: PathBuf, tls_dir: PathBuf) -> HubOptions {
        HubOptions {
            data_dir,
            seal_key,
            tls_dir,
            tablet_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            inbox_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            retention: Duration::from_secs(24 * 3600),
            stale_after: Duration::from_secs(12 * 3600),
            sweep_every: Duration::from_secs(60),
            database: None,
            poll_every: Duration::from_secs(2),
        }
    }
}

/// A running hub; `shutdown` stops it.
pub struct Hub {
    pub tablet_addr: SocketAddr,
    pub inbox_addr: SocketAddr,
    pub core: Arc<HubCore>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

fn tls(e: impl std::fmt::Display) -> HubError {
    HubError::Tls(e.to_string())
}

fn server_identity(
    opts: &HubOptions,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), HubError> {
    let cert = opts.tls_dir.join("server.pem");
    let key = opts.tls_dir.join("server.key");
    let chain = CertificateDer::pem_file_iter(&cert)
        .map_err(|e| tls(format!("{}: {e}", cert.display())))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(tls)?;
    let key =
        PrivateKeyDer::from_pem_file(&key).map_err(|e| tls(format!("{}: {e}", key.display())))?;
    Ok((chain, key))
}

/// The tablet face's TLS: 1.3 only, a client certificate of a trusted CA required.
pub fn tablet_tls(opts: &HubOptions, trusted: &[String]) -> Result<rustls::ServerConfig, HubError> {
    let provider = crate::eligibility::client::crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    for pem in trusted {
        for ca in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            roots.add(ca.map_err(tls)?).map_err(tls)?;
        }
    }
    if roots.is_empty() {
        return Err(HubError::Tls(
            "no fire-department CA is trusted yet (mynakyukyu-hub trust-ca FILE)".into(),
        ));
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(tls)?;
    let (chain, key) = server_identity(opts)?;
    rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(tls)
}

/// The inbox face's TLS: browsers, no client certificate.
pub fn inbox_tls(opts: &HubOptions) -> Result<rustls::ServerConfig, HubError> {
    let provider = crate::eligibility::client::crypto_provider();
    let (chain, key) = server_identity(opts)?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(tls)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

impl Hub {
    /// Open the store, bind both faces and start serving on the current runtime.
    pub async fn start(opts: HubOptions) -> Result<Hub, HubError> {
        if opts.database.is_none() && opts.seal_key.starts_with(&opts.data_dir) {
            return Err(HubError::SealKey(
                opts.seal_key.display().to_string(),
                "inside the data dir: keep the master key apart from what it seals".into(),
            ));
        }
        let master = SealKey::load_or_create(&opts.seal_key)?;
        let store = match &opts.database {
            Some(url) => HubStore::open_url(url).await?,
            None => HubStore::open(&opts.data_dir).await?,
        };
        let tablet_config = tablet_tls(&opts, &store.trusted_cas().await?)?;
        let inbox_config = inbox_tls(&opts)?;
        let core = HubCore::new(store, master, opts.poll_every);
        let (stop, stopped) = watch::channel(false);
        let bind = |addr: SocketAddr| async move {
            let l = TcpListener::bind(addr)
                .await
                .map_err(|e| HubError::Listen(addr, e))?;
            let a = l.local_addr().map_err(|e| HubError::Listen(addr, e))?;
            Ok::<_, HubError>((l, a))
        };
        let (tablet_listener, tablet_addr) = bind(opts.tablet_listen).await?;
        let (inbox_listener, inbox_addr) = bind(opts.inbox_listen).await?;
        let mut tasks = vec![];
        tasks.push(tokio::spawn(accept_loop(
            tablet_listener,
            TlsAcceptor::from(Arc::new(tablet_config)),
            tablet::router(core.clone()),
            true,
            stopped.clone(),
        )));
        tasks.push(tokio::spawn(accept_loop(
            inbox_listener,
            TlsAcceptor::from(Arc::new(inbox_config)),
            inbox::router(core.clone()),
            false,
            stopped.clone(),
        )));
        if core.store.backend() == Backend::Postgres {
            tasks.push(tokio::spawn(listen_loop(core.clone(), stopped.clone())));
        }
        tasks.push(tokio::spawn(sweep_loop(
            core.clone(),
            opts.clone(),
            stopped,
        )));
        tracing::info!(%tablet_addr, %inbox_addr, "hub listening");
        Ok(Hub {
            tablet_addr,
            inbox_addr,
            core,
            stop,
            tasks,
        })
    }

    /// Stop accepting, end every connection and stream, close the store.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        self.core.stop();
        for t in self.tasks {
            let _ = t.await;
        }
        self.core.store.close().await;
    }
}

/// PostgreSQL: every event another hub writes wakes this hub's streams at once (they also
/// poll every 2 s, so a listener that reconnects misses nothing, it is only slower).
async fn listen_loop(core: Arc<HubCore>, mut stopped: watch::Receiver<bool>) {
    loop {
        let listener = async {
            let mut l = sqlx::postgres::PgListener::connect(core.store.url()).await?;
            l.listen(NOTIFY_CHANNEL).await?;
            Ok::<_, sqlx::Error>(l)
        };
        match listener.await {
            Ok(mut l) => loop {
                tokio::select! {
                    n = l.recv() => match n {
                        Ok(n) => core.wake(n.payload().parse().unwrap_or(0)),
                        Err(e) => {
                            tracing::warn!(error = %e, "database notifications lost; reconnecting");
                            break;
                        }
                    },
                    _ = stopped.changed() => return,
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for database notifications; retrying")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stopped.changed() => return,
        }
    }
}

async fn sweep_loop(core: Arc<HubCore>, opts: HubOptions, mut stopped: watch::Receiver<bool>) {
    loop {
        match core
            .sweep(
                opts.retention.as_millis() as i64,
                opts.stale_after.as_millis() as i64,
            )
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(destroyed = n, "retention sweep"),
            Err(e) => tracing::warn!(error = %e, "retention sweep failed; next round retries"),
        }
        tokio::select! {
            _ = tokio::time::sleep(opts.sweep_every) => {}
            _ = stopped.changed() => return,
        }
    }
}

/// The unit a verified client certificate names (its CN).
fn unit_of(certificate: &[u8]) -> Option<String> {
    let (cn, _) = crate::pki::subject_cn_and_key(certificate).ok()?;
    (!cn.is_empty()).then_some(cn)
}

/// The unit of the connection a tablet request came on (an extension the accept loop sets).
#[derive(Clone, Debug)]
pub struct ConnectedUnit(pub String);

/// The peer address of an inbox request (for the sign-in rate limit).
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    app: Router,
    tablet_face: bool,
    mut stopped: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            accepted = listener.accept() => {
                let Ok((tcp, peer)) = accepted else { continue };
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    tracing::warn!(%peer, "connection refused: too many connections");
                    continue;
                };
                let acceptor = acceptor.clone();
                let app = app.clone();
                let mut stopped = stopped.clone();
                connections.spawn(async move {
                    tokio::select! {
                        _ = serve_connection(tcp, peer, acceptor, app, tablet_face) => {}
                        _ = stopped.changed() => {}
                    }
                    drop(slot);
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
}

async fn serve_connection(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    app: Router,
    tablet_face: bool,
) {
    let _ = tcp.set_nodelay(true);
    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::info!(%peer, error = %e, "TLS handshake refused");
            return;
        }
        Err(_) => return,
    };
    let unit = if tablet_face {
        match stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(|c| unit_of(c))
        {
            Some(u) => Some(ConnectedUnit(u)),
            None => {
                tracing::warn!(%peer, "client certificate names no unit: connection closed");
                return;
            }
        }
    } else {
        None
    };
    let service =
        tower::ServiceExt::map_request(app, move |mut req: Request<hyper::body::Incoming>| {
            if let Some(u) = &unit {
                req.extensions_mut().insert(u.clone());
            }
            req.extensions_mut().insert(Peer(peer));
            req
        });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .max_buf_size(MAX_HEAD_BYTES)
        .keep_alive(true);
    if let Err(e) = http
        .serve_connection(
            hyper_util::rt::TokioIo::new(stream),
            hyper_util::service::TowerToHyperService::new(service),
        )
        .await
    {
        tracing::debug!(error = %e, "connection ended");
    }
}
