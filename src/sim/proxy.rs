//! A small fault-injecting TCP proxy for tests, drills and benchmarks: the kernel here has
//! no netem, so the road is simulated in user space. It delays each direction by half the
//! round-trip time (order preserved), and on command stalls, resets or refuses connections.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// What the proxy does to traffic now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LinkState {
    /// Forward, delayed by the configured RTT.
    #[default]
    Up,
    /// Accept and hold data without forwarding (a tunnel).
    Stalled,
    /// Reset every connection, existing and new (the line dropped).
    Down,
}

struct Control {
    rtt_micros: AtomicU64,
    state: watch::Sender<LinkState>,
    connections: AtomicU64,
}

/// A running proxy from `local_addr` to the target.
pub struct DelayProxy {
    pub local_addr: SocketAddr,
    control: Arc<Control>,
    task: tokio::task::JoinHandle<()>,
}

impl DelayProxy {
    /// Listen on 127.0.0.1 (free port) and forward to `target` with `rtt` added.
    pub async fn start(target: SocketAddr, rtt: Duration) -> std::io::Result<DelayProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let local_addr = listener.local_addr()?;
        let (state, _) = watch::channel(LinkState::Up);
        let control = Arc::new(Control {
            rtt_micros: AtomicU64::new(rtt.as_micros() as u64),
            state,
            connections: AtomicU64::new(0),
        });
        let c = control.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                c.connections.fetch_add(1, Ordering::Relaxed);
                if *c.state.borrow() == LinkState::Down {
                    reset(client);
                    continue;
                }
                let c = c.clone();
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(target).await {
                        pipe(client, server, c).await;
                    }
                });
            }
        });
        Ok(DelayProxy {
            local_addr,
            control,
            task,
        })
    }

    pub fn set_rtt(&self, rtt: Duration) {
        self.control
            .rtt_micros
            .store(rtt.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn set_state(&self, state: LinkState) {
        self.control.state.send_replace(state);
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.control.connections.load(Ordering::Relaxed)
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.set_state(LinkState::Down);
        self.task.abort();
    }
}

fn reset(stream: TcpStream) {
    // A zero linger turns the close into an RST; with zero it does not block.
    #[allow(deprecated)]
    let _ = stream.set_linger(Some(Duration::ZERO));
    drop(stream);
}

async fn pipe(client: TcpStream, server: TcpStream, control: Arc<Control>) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let up = tokio::spawn(direction(cr, sw, control.clone()));
    let down = tokio::spawn(direction(sr, cw, control.clone()));
    let _ = tokio::join!(up, down);
}

/// Forward one direction: each chunk is released half an RTT after it was read.
async fn direction(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    control: Arc<Control>,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let mut state = control.state.subscribe();
    let writer_control = control.clone();
    let writer = tokio::spawn(async move {
        let mut state = writer_control.state.subscribe();
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            // hold data while stalled; give up when the line goes down
            loop {
                let now = *state.borrow_and_update();
                match now {
                    LinkState::Up => break,
                    LinkState::Down => return,
                    LinkState::Stalled => {
                        if state.changed().await.is_err() {
                            return;
                        }
                    }
                }
            }
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    });
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            r = from.read(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let half = control.rtt_micros.load(Ordering::Relaxed) / 2;
                    let due = Instant::now() + Duration::from_micros(half);
                    if tx.send((due, buf[..n].to_vec())).is_err() {
                        break;
                    }
                }
            },
            changed = state.changed() => {
                if changed.is_err() || *state.borrow() == LinkState::Down {
                    writer.abort();
                    return;
                }
            }
        }
    }
    drop(tx);
    let _ = writer.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo_server() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut b = [0u8; 1024];
                    while let Ok(n) = s.read(&mut b).await {
                        if n == 0 || s.write_all(&b[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn adds_the_round_trip_time_and_keeps_order() {
        let proxy = DelayProxy::start(echo_server().await, Duration::from_millis(40))
            .await
            .unwrap();
        let mut s = TcpStream::connect(proxy.local_addr).await.unwrap();
        let t = Instant::now();
        s.write_all(b"abc").await.unwrap();
        s.write_all(b"def").await.unwrap();
        let mut got = Vec::new();
        while got.len() < 6 {
            let mut b = [0u8; 16];
            let n = s.read(&mut b).await.unwrap();
            got.extend_from_slice(&b[..n]);
        }
        assert_eq!(got, b"abcdef");
        let rtt = t.elapsed();
        assert!(rtt >= Duration::from_millis(40), "{rtt:?}");
    }

    #[tokio::test]
    async fn down_resets_and_stalled_holds_until_up() {
        let proxy = DelayProxy::start(echo_server().await, Duration::ZERO)
            .await
            .unwrap();
        let mut s = TcpStream::connect(proxy.local_addr).await.unwrap();
        proxy.set_state(LinkState::Stalled);
        s.write_all(b"x").await.unwrap();
        let mut b = [0u8; 1];
        let held = tokio::time::timeout(Duration::from_millis(150), s.read(&mut b)).await;
        assert!(held.is_err(), "data passed a stalled link: {held:?}");
        proxy.set_state(LinkState::Up);
        let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut b))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&b[..n], b"x");
        proxy.set_state(LinkState::Down);
        let r = tokio::time::timeout(Duration::from_secs(2), s.read(&mut b))
            .await
            .unwrap();
        assert!(matches!(r, Ok(0) | Err(_)), "{r:?}");
        let mut fresh = TcpStream::connect(proxy.local_addr).await.unwrap();
        let r = tokio::time::timeout(Duration::from_secs(2), fresh.read(&mut b))
            .await
            .unwrap();
        assert!(matches!(r, Ok(0) | Err(_)), "{r:?}");
    }
}
