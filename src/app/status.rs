//! The status strip: the line, the tunnel, the server, the certificate (or the CRL's date,
//! when it is the more urgent), the queue and the last send, refreshed at every command.

use super::*;

impl Controller {
    pub(super) fn check_route(&self) -> TunnelState {
        match self.ports.endpoint_addr {
            Some(addr) => self.ports.route.route_to(addr),
            None => TunnelState::Unknown,
        }
    }

    /// Re-read the store's sync state and the route for the status strip.
    pub fn refresh_status(&mut self) {
        let s = &mut self.status;
        s.training = self.settings.training;
        let link_up = self.session.link_up() && self.probe.as_ref().is_none_or(|p| p.reachable);
        (s.line, s.line_level) = if link_up {
            ("回線 正常".into(), Level::Ok)
        } else {
            ("回線 断".into(), Level::Error)
        };
        (s.server, s.server_level) = match &self.probe {
            None => ("サーバー確認中".into(), Level::Warn),
            Some(p) if p.reachable => ("サーバー可".into(), Level::Ok),
            Some(_) => ("サーバー応答なし".into(), Level::Error),
        };
        s.tunnel = self.tunnel.label_ja().into();
        s.tunnel_level = match self.tunnel {
            TunnelState::Tunnel | TunnelState::Loopback => Level::Ok,
            TunnelState::Direct if self.settings.require_tunnel => Level::Error,
            _ => Level::Warn,
        };
        let now = Timestamp::now();
        let sync = self.ports.store.sync_state();
        let upkeep = crate::upkeep::warnings(&crate::upkeep::Facts {
            now,
            unit_certificate_not_after: self.settings.unit_certificate_not_after,
            server_crl_next_update: self
                .crl_watch
                .next_update(self.settings.crl_data_dir.as_deref()),
            oldest_unsynced: sync.as_ref().ok().and_then(|s| s.oldest_queued_at),
            unsynced_warning_days: self.settings.unsynced_warning_days,
        });
        let level_of = |w: &crate::upkeep::UpkeepWarning| match w.severity {
            crate::upkeep::Severity::Urgent => Level::Error,
            crate::upkeep::Severity::Warn => Level::Warn,
        };
        // the certificate's place shows the more urgent of the certificate and the CRL
        let credential = upkeep.iter().find(|w| {
            matches!(
                w.topic,
                crate::upkeep::Topic::ServerCrl | crate::upkeep::Topic::UnitCertificate
            )
        });
        (s.certificate, s.certificate_level) =
            match (credential, self.settings.unit_certificate_not_after) {
                (Some(w), _) => (w.ja.clone(), level_of(w)),
                (None, None) => ("証明書 なし".into(), Level::Error),
                (None, Some(end)) => (
                    format!(
                        "証明書 {}日",
                        (end.0 - now.0).div_euclid(24 * 60 * 60 * 1000)
                    ),
                    Level::Ok,
                ),
            };
        let unsynced = upkeep
            .iter()
            .find(|w| w.topic == crate::upkeep::Topic::Unsynced);
        match sync {
            Ok(state) => {
                s.queued = state.queued;
                s.last_sync = state
                    .last_success
                    .map(|t| format!("{}送信", clock(t)))
                    .unwrap_or_default();
                s.sync_level = if state.queued == 0 {
                    Level::Ok
                } else if state.last_error.is_some() {
                    Level::Warn
                } else {
                    Level::Ok
                };
                // records waiting too long: said where the last send is (never deleted)
                if let Some(w) = unsynced {
                    s.last_sync = w.ja.clone();
                    s.sync_level = Level::Warn;
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "store sync state unreadable");
                s.last_sync = "記録の状態を読めません".into();
                s.sync_level = Level::Error;
            }
        }
    }
}

pub(super) fn clock(t: Timestamp) -> String {
    t.in_jst()
        .map(|d| format!("{:02}:{:02}", d.hour(), d.minute()))
        .unwrap_or_default()
}
