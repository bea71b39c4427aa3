//! Which way the kernel routes an address: through the IPsec tunnel, around it, or to this
//! machine. The app's `require_tunnel` guard, its status strip and `mynakyukyu-admin status`
//! all ask here; it sits at the bottom of the map (netlink only) so that none of them has to
//! reach into another's module for it.
//!
//! The question is RTM_GETROUTE over rtnetlink through `netlink-packet-route`: no process
//! per check, and the kernel itself applies the policy rules and strongSwan's table 220.

use std::net::IpAddr;

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

/// Asks the kernel the way `ip route get` does, over rtnetlink (RTM_GETROUTE for one
/// address: the policy rules and strongSwan's table 220 are applied by the kernel itself),
/// without starting a process: strongSwan's kernel-libipsec routes tunnelled traffic through
/// its TUN device (`ipsec0`) from routing table 220.
pub struct KernelRoute;

/// What the kernel's answer for one destination says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteAnswer {
    /// The output interface's name.
    pub dev: Option<String>,
    pub table: Option<u32>,
}

/// Classify a route answer.
pub fn classify(answer: &RouteAnswer) -> TunnelState {
    let dev = answer.dev.as_deref().unwrap_or("");
    if dev == "lo" {
        TunnelState::Loopback
    } else if dev.starts_with("ipsec") || answer.table == Some(220) {
        TunnelState::Tunnel
    } else if dev.is_empty() {
        TunnelState::Unknown
    } else {
        TunnelState::Direct
    }
}

/// Read `ip route get` output (kept for the scripts and for reading captures by hand).
pub fn classify_route(output: &str) -> TunnelState {
    let words: Vec<&str> = output.split_whitespace().collect();
    let dev = words
        .windows(2)
        .find(|w| w[0] == "dev")
        .map(|w| w[1].to_string());
    let table = words
        .windows(2)
        .find(|w| w[0] == "table")
        .and_then(|w| w[1].parse().ok());
    classify(&RouteAnswer { dev, table })
}

/// The interface name of an index, from sysfs.
fn interface_name(index: u32) -> Option<String> {
    std::fs::read_dir("/sys/class/net")
        .ok()?
        .flatten()
        .find_map(|e| {
            let i: u32 = std::fs::read_to_string(e.path().join("ifindex"))
                .ok()?
                .trim()
                .parse()
                .ok()?;
            (i == index).then(|| e.file_name().to_string_lossy().to_string())
        })
}

/// RTM_GETROUTE for `addr`. `Ok(None)`: the kernel has no route to it.
pub fn kernel_route(addr: IpAddr) -> std::io::Result<Option<RouteAnswer>> {
    use netlink_packet_core::{NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload};
    use netlink_packet_route::route::{RouteAttribute, RouteMessage};
    use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
    use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
    let io = |e: String| std::io::Error::other(e);
    let mut socket = Socket::new(NETLINK_ROUTE)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    let mut msg = RouteMessage::default();
    match addr {
        IpAddr::V4(_) => {
            msg.header.address_family = AddressFamily::Inet;
            msg.header.destination_prefix_length = 32;
        }
        IpAddr::V6(_) => {
            msg.header.address_family = AddressFamily::Inet6;
            msg.header.destination_prefix_length = 128;
        }
    }
    msg.attributes
        .push(RouteAttribute::Destination(addr.into()));
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST;
    let mut packet = NetlinkMessage::new(
        header,
        NetlinkPayload::from(RouteNetlinkMessage::GetRoute(msg)),
    );
    packet.finalize();
    let mut buf = vec![0; packet.buffer_len()];
    packet.serialize(&mut buf[..]);
    socket.send(&buf, 0)?;
    let mut answer = vec![0; 8192];
    let n = socket.recv(&mut &mut answer[..], 0)?;
    let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&answer[..n])
        .map_err(|e| io(format!("rtnetlink answer: {e}")))?;
    match reply.payload {
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(route)) => {
            let mut out = RouteAnswer {
                dev: None,
                table: Some(u32::from(route.header.table)),
            };
            for a in route.attributes {
                match a {
                    RouteAttribute::Oif(i) => out.dev = interface_name(i),
                    RouteAttribute::Table(t) => out.table = Some(t),
                    _ => {}
                }
            }
            Ok(Some(out))
        }
        // ENETUNREACH, EHOSTUNREACH and the like: no route at all
        NetlinkPayload::Error(e) if e.code.is_some() => Ok(None),
        other => Err(io(format!("unexpected rtnetlink answer: {other:?}"))),
    }
}

impl RouteCheck for KernelRoute {
    fn route_to(&self, addr: IpAddr) -> TunnelState {
        if addr.is_loopback() {
            return TunnelState::Loopback;
        }
        match kernel_route(addr) {
            Ok(Some(answer)) => classify(&answer),
            Ok(None) => TunnelState::Direct, // no route at all: certainly not the tunnel
            Err(e) => {
                tracing::warn!(error = %e, "cannot ask the kernel for the route");
                TunnelState::Unknown
            }
        }
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

    /// rtnetlink and iproute2 asked the same question on this machine give the same device
    /// (`ip` is the independent peer; only the test runs it).
    #[test]
    fn the_netlink_answer_matches_ip_route_get() {
        for addr in ["127.0.0.2", "10.1.2.3", "192.0.2.7", "::1"] {
            let ip: IpAddr = addr.parse().unwrap();
            let ours = kernel_route(ip).expect("rtnetlink answers");
            let out = std::process::Command::new("ip")
                .args(["route", "get", addr])
                .output()
                .expect("iproute2");
            if !out.status.success() {
                assert_eq!(ours, None, "{addr}: ip has no route, nor do we");
                continue;
            }
            let text = String::from_utf8_lossy(&out.stdout);
            let dev = text
                .split_whitespace()
                .collect::<Vec<_>>()
                .windows(2)
                .find(|w| w[0] == "dev")
                .map(|w| w[1].to_string());
            assert_eq!(ours.and_then(|a| a.dev), dev, "{addr}: {text}");
        }
    }
}
