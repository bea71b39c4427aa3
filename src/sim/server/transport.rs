//! The simulator's transport: the TLS 1.3 listener that requires a client certificate (the
//! unit is its CN), the accept loop with its limits, faults that act on the connection
//! (reset, stall), and an idle timeout on every connection.

use super::*;

/// What the server knows of one connection: the unit its certificate names, and the
/// drill faults that act on the connection rather than on one request.
pub(super) struct Connection {
    pub(super) unit: UnitId,
    /// The client certificate's public key (an uncompressed P-256 point) and its hex
    /// SHA-256: the records of this connection must be signed by it.
    pub(super) device_key: Vec<u8>,
    pub(super) key_id: String,
    /// Set by the reset fault: the connection task closes the socket with an RST.
    pub(super) reset: Notify,
    /// The last answer on this connection (for the replay fault).
    pub(super) previous: Mutex<Option<(StatusCode, HeaderMap, Bytes)>>,
}

/// The unit named by a verified client certificate (its CN) and the certificate's public
/// key.
pub(super) fn unit_of(certificate: &[u8]) -> Option<(UnitId, Vec<u8>)> {
    let (_, cert) = x509_parser::parse_x509_certificate(certificate).ok()?;
    let cn = cert.subject().iter_common_name().next()?.as_str().ok()?;
    let key = cert.public_key().subject_public_key.data.to_vec();
    (!cn.is_empty()).then(|| (UnitId::new(cn), key))
}

pub(super) async fn accept_loop(
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

pub(super) fn chance(rate: f64) -> bool {
    if rate <= 0.0 {
        return false;
    }
    let mut b = [0u8; 4];
    let _ = getrandom::fill(&mut b);
    f64::from(u32::from_le_bytes(b)) / f64::from(u32::MAX) < rate
}

pub(super) async fn serve_connection(
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
pub(super) fn linger_zero(s: &std::net::TcpStream) -> std::io::Result<()> {
    rustix::net::sockopt::set_socket_linger(s, Some(Duration::ZERO)).map_err(std::io::Error::from)
}

/// Closes a connection on which nothing was read or written for `limit` (keep-alive idle).
pub(super) struct IdleTimeout<S> {
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
