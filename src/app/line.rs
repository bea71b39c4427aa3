//! The line to the eligibility system: is the server reachable (a health probe on a client
//! of its own, so it never waits behind an inquiry), and does the route to it go through
//! the IPsec tunnel (`require_tunnel`).

use crate::domain::Timestamp;
use crate::eligibility::EligibilityClient;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Where the route to the endpoint goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TunnelState {
    /// Through the IPsec tunnel.
    Tunnel,
    /// Around it, in the clear: patient requests are refused when the tunnel is required.
    Direct,
    /// The endpoint is on this machine (training, tests): no tunnel involved.
    Loopback,
    /// The route could not be determined.
    Unknown,
}

impl TunnelState {
    pub fn label_ja(self) -> &'static str {
        match self {
            TunnelState::Tunnel => "IPsec",
            TunnelState::Direct => "トンネル外",
            TunnelState::Loopback => "端末内",
            TunnelState::Unknown => "経路不明",
        }
    }
}

/// Tells where the route to an address goes.
pub trait RouteCheck: Send + Sync {
    fn route_to(&self, addr: IpAddr) -> TunnelState;
}

/// Asks the kernel with `ip route get`: strongSwan's kernel-libipsec routes tunnelled
/// traffic through its TUN device (`ipsec0`) from routing table 220.
pub struct KernelRoute;

/// Read `ip route get` output.
pub fn classify_route(output: &str) -> TunnelState {
    let words: Vec<&str> = output.split_whitespace().collect();
    let dev = words
        .windows(2)
        .find(|w| w[0] == "dev")
        .map(|w| w[1])
        .unwrap_or("");
    if dev == "lo" {
        TunnelState::Loopback
    } else if dev.starts_with("ipsec") || words.windows(2).any(|w| w == ["table", "220"]) {
        TunnelState::Tunnel
    } else if dev.is_empty() {
        TunnelState::Unknown
    } else {
        TunnelState::Direct
    }
}

impl RouteCheck for KernelRoute {
    fn route_to(&self, addr: IpAddr) -> TunnelState {
        if addr.is_loopback() {
            return TunnelState::Loopback;
        }
        match std::process::Command::new("ip")
            .args(["route", "get", &addr.to_string()])
            .output()
        {
            Ok(out) if out.status.success() => {
                classify_route(&String::from_utf8_lossy(&out.stdout))
            }
            Ok(_) => TunnelState::Direct, // no route at all: certainly not the tunnel
            Err(e) => {
                tracing::warn!(error = %e, "cannot run `ip route get`");
                TunnelState::Unknown
            }
        }
    }
}

/// The last health probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkProbe {
    pub reachable: bool,
    pub at: Timestamp,
}

/// Probe `/v1/health` every `every` (and at once) until the receiver side is gone.
pub async fn monitor(
    client: Arc<EligibilityClient>,
    every: Duration,
    tx: watch::Sender<Option<LinkProbe>>,
) {
    loop {
        let reachable =
            match tokio::time::timeout(every.max(Duration::from_secs(1)), client.health()).await {
                Ok(Ok(_)) => true,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "health probe failed");
                    client.disconnect().await;
                    false
                }
                Err(_) => {
                    client.disconnect().await;
                    false
                }
            };
        tx.send_replace(Some(LinkProbe {
            reachable,
            at: Timestamp::now(),
        }));
        if tx.is_closed() {
            return;
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_classified_from_ip_route_get() {
        assert_eq!(
            classify_route("10.10.2.1 dev ipsec0 table 220 src 10.10.1.1 uid 0 \n    cache"),
            TunnelState::Tunnel
        );
        assert_eq!(
            classify_route("10.10.2.1 via 10.0.0.1 dev eth0 src 10.0.0.5 uid 0"),
            TunnelState::Direct
        );
        assert_eq!(
            classify_route("local 127.0.0.1 dev lo table local"),
            TunnelState::Loopback
        );
        assert_eq!(classify_route(""), TunnelState::Unknown);
        assert_eq!(
            KernelRoute.route_to("127.0.0.1".parse().unwrap()),
            TunnelState::Loopback
        );
    }
}
