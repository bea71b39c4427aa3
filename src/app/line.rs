//! The line to the eligibility system: is the server reachable (a health probe on a client
//! of its own, so it never waits behind an inquiry), and does the route to it go through
//! the IPsec tunnel (`require_tunnel`).

use crate::domain::Timestamp;
use crate::eligibility::EligibilityClient;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

pub use crate::kernel_route::{
    KernelRoute, RouteAnswer, RouteCheck, TunnelState, classify, classify_route,
};

/// The last health probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkProbe {
    pub reachable: bool,
    pub at: Timestamp,
}

/// Probe `/v2/health` every `every` (and at once) until the receiver side is gone.
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
