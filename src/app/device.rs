//! Wiring a provisioned tablet: device config, unit certificate, roster, store, the PC/SC
//! reader, and the two clients (one for patient requests, one for the health probe and
//! uploads, so neither waits behind the other).

use super::line::{KernelRoute, RouteCheck, TunnelState};
use super::reader::{CardReader, PcscReader, PresenceWatch};
use super::{Ports, Settings};
use crate::config::{self, DeviceConfig};
use crate::domain::{TerminalId, Timestamp, UnitId};
use crate::eligibility::client::tls_config;
use crate::eligibility::{ClientSettings, EligibilityClient, Endpoint, UnitIdentity};
use crate::roster::SignInGate;
use crate::session::Station;
use std::net::ToSocketAddrs;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::mpsc;

#[derive(Debug, Error)]
pub enum DeviceError {
    #[error("this device is not provisioned (run `mynakyukyu-admin init` and `install-cert`)")]
    NotProvisioned,
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("unit certificate: {0}")]
    Certificate(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Roster(#[from] crate::roster::RosterError),
    #[error("device keys: {0}")]
    Keys(#[from] crate::keys::KeyError),
    #[error(
        "this tablet was enrolled with its TPM ({0}) but its device files are gone: refusing to start (never training mode on an enrolled tablet)"
    )]
    Unenrolled(String),
}

impl DeviceError {
    /// What the crew sees on the tablet's screen when it cannot start (Japanese); the
    /// English `Display` goes to the log.
    pub fn screen_message(&self) -> &'static str {
        match self {
            DeviceError::NotProvisioned => {
                "この端末は登録されていません。\n管理者に連絡してください。"
            }
            DeviceError::Config(config::ConfigError::Modes { .. }) => {
                "端末のデータの権限が変更されています。\n使用を中止し、管理者に連絡してください。"
            }
            DeviceError::Config(_) => {
                "端末の設定ファイルが壊れています。\n使用を中止し、管理者に連絡してください。"
            }
            DeviceError::Keys(crate::keys::KeyError::Tampered { .. }) => {
                "端末の設定が管理者以外によって変更されています。\n使用を中止し、管理者に連絡してください。"
            }
            DeviceError::Keys(crate::keys::KeyError::BootStateChanged) => {
                "端末の起動状態が登録時と違うため、鍵を開けません。\n使用を中止し、管理者に連絡してください（再登録が必要です）。"
            }
            DeviceError::Unenrolled(_) => {
                "端末の登録情報（設定または証明書）が見つかりません。\n使用を中止し、管理者に連絡してください。"
            }
            DeviceError::Keys(crate::keys::KeyError::NotAsEnrolled(_)) => {
                "端末の登録情報が管理者以外によって変更されています。\n使用を中止し、管理者に連絡してください。"
            }
            DeviceError::Keys(_) | DeviceError::Store(_) => {
                "端末の鍵を開けません。\n使用を中止し、管理者に連絡してください。"
            }
            DeviceError::Certificate(_) => {
                "救急隊用電子証明書を使えません。\n管理者に連絡してください。"
            }
            DeviceError::Roster(_) => "隊員名簿を読めません。\n管理者に連絡してください。",
        }
    }
}

/// Everything a provisioned tablet checks before it opens anything else: the data dir's
/// modes, the keys, and the signed manifest of its configuration files.
pub fn check(data_dir: &Path) -> Result<(DeviceConfig, crate::keys::DeviceKeys), DeviceError> {
    // whatever this process creates from now on (sled makes files as it goes) is the
    // owner's only; the binaries set this at start, a process embedding the device too
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let config = DeviceConfig::load(data_dir)?.ok_or(DeviceError::NotProvisioned)?;
    config::check_modes(data_dir)?;
    let keys = crate::keys::DeviceKeys::open(data_dir)?;
    keys.verify_files(config::PROTECTED_FILES)?;
    // the store key must open now, not at the first record
    drop(keys.store_key()?);
    if config.require_tunnel
        && Endpoint::parse(&config.endpoint)
            .map(|e| e.host.parse::<std::net::IpAddr>().is_err())
            .unwrap_or(true)
    {
        // a name could be answered by anyone on the road; the tunnel's selectors are
        // addresses
        return Err(DeviceError::Config(config::ConfigError::Malformed {
            path: data_dir.join(config::CONFIG_FILE),
            message: format!(
                "endpoint {} must be an IP address when require_tunnel is set",
                config.endpoint
            ),
        }));
    }
    if keys.protection() != config.key_protection {
        return Err(DeviceError::Keys(crate::keys::KeyError::Tampered {
            file: config::CONFIG_FILE.into(),
            reason: format!(
                "it says {} keys, the device has {} keys",
                config.key_protection.as_str(),
                keys.protection().as_str()
            ),
        }));
    }
    Ok((config, keys))
}

/// The hand-off hub's client: mutual TLS with the same unit certificate and unit key (the
/// TPM signs the handshake where the key lives there), the hub's own CA from `hub-ca.pem`;
/// and the hub's address for the route check.
pub fn hub_client(
    data_dir: &Path,
    hub: &crate::config::HubConfig,
    keys: &crate::keys::DeviceKeys,
) -> Result<(Arc<crate::hub::client::HubClient>, Option<std::net::IpAddr>), DeviceError> {
    let cert = |e: &dyn std::fmt::Display| DeviceError::Certificate(format!("hub: {e}"));
    let endpoint = Endpoint::parse(&hub.endpoint).map_err(|e| cert(&e))?;
    let key = keys.unit_tls_key().map_err(|e| cert(&e))?;
    let identity = UnitIdentity::with_key(
        &data_dir.join(config::UNIT_CERT_FILE),
        key,
        &data_dir.join(config::HUB_CA_FILE),
    )
    .map_err(|e| cert(&e))?;
    let tls = tls_config(identity).map_err(|e| cert(&e))?;
    let addr = (endpoint.host.as_str(), endpoint.port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .map(|a| a.ip());
    Ok((
        Arc::new(crate::hub::client::HubClient::new(
            tls,
            &endpoint.host,
            endpoint.port,
        )),
        addr,
    ))
}

/// A mutual-TLS client to the endpoint with the unit certificate and the unit key (the
/// TPM signs the handshake where the key lives there), the pinned server CA and its CRL.
pub fn client(
    data_dir: &Path,
    endpoint: &Endpoint,
    keys: &crate::keys::DeviceKeys,
    settings: ClientSettings,
    route_guard: Option<Arc<dyn RouteCheck>>,
) -> Result<Arc<EligibilityClient>, DeviceError> {
    let cert = |e: &dyn std::fmt::Display| DeviceError::Certificate(e.to_string());
    let key = keys.unit_tls_key().map_err(|e| cert(&e))?;
    let mut identity = UnitIdentity::with_key(
        &data_dir.join(config::UNIT_CERT_FILE),
        key,
        &data_dir.join(config::SERVER_CA_FILE),
    )
    .map_err(|e| cert(&e))?;
    let crl = data_dir.join(config::SERVER_CRL_FILE);
    if crl.is_file() {
        identity = identity.with_server_crls(&crl).map_err(|e| cert(&e))?;
    }
    let tls = tls_config(identity).map_err(|e| cert(&e))?;
    let client = EligibilityClient::new(endpoint.clone(), tls, settings).map_err(|e| cert(&e))?;
    Ok(Arc::new(match route_guard {
        Some(route) => client.with_route_guard(Arc::new(move |peer: std::net::SocketAddr| {
            // asked of the kernel over rtnetlink: no process per request
            route.route_to(peer.ip()) == TunnelState::Tunnel
        })),
        None => client,
    }))
}

/// How often retention runs while the app is up.
pub const RETENTION_EVERY: Duration = Duration::from_secs(3600);

fn purge_expired(store: &crate::store::Store, days: u32) -> Result<(), DeviceError> {
    let r = store.purge_expired(crate::domain::Timestamp::now(), days)?;
    if r.records_removed > 0 || !r.day_keys_destroyed.is_empty() {
        tracing::info!(
            records = r.records_removed,
            day_keys = r.day_keys_destroyed.len(),
            "retention: uploaded records past the retention period purged, their day keys destroyed"
        );
    }
    Ok(())
}

/// Retention at start and then every `every`, on the blocking pool (off the window's
/// first frame), until `stop` turns true.
pub async fn enforce_retention(
    store: Arc<crate::store::Store>,
    days: u32,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let s = store.clone();
        match tokio::task::spawn_blocking(move || purge_expired(&s, days)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "retention failed"),
            Err(e) => tracing::error!(error = %e, "retention task failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
    }
}

/// A provisioned tablet's parts.
pub struct Device {
    pub ports: Ports,
    pub settings: Settings,
    pub config: DeviceConfig,
    /// The second client: health probe and record uploads.
    pub background_client: Arc<EligibilityClient>,
    /// Card presence (true: placed, false: removed).
    pub presence: mpsc::Receiver<bool>,
    pub watch: PresenceWatch,
}

pub fn open(data_dir: &Path) -> Result<Device, DeviceError> {
    let (config, keys) = check(data_dir)?;
    let cert_path = data_dir.join(config::UNIT_CERT_FILE);
    if !cert_path.is_file() {
        return Err(DeviceError::NotProvisioned);
    }
    let endpoint =
        Endpoint::parse(&config.endpoint).map_err(|e| DeviceError::Certificate(e.to_string()))?;
    // with require_tunnel, every connection of both clients (patient requests, the health
    // probe and the uploader) is checked against the route to the address it reached
    let guard: Option<Arc<dyn RouteCheck>> = config
        .require_tunnel
        .then(|| Arc::new(KernelRoute) as Arc<dyn RouteCheck>);
    let client = |settings| client(data_dir, &endpoint, &keys, settings, guard.clone());
    let not_after = crate::pki::inspect_pem_file(&cert_path).map(|s| Timestamp(s.not_after_ms));
    let store = Arc::new(config::open_store_with(data_dir, &keys)?);
    let gate = SignInGate::open(
        &data_dir.join(config::ROSTER_FILE),
        config::roster_key(data_dir, &keys)?,
    )?;
    let endpoint_addr = (endpoint.host.as_str(), endpoint.port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .map(|a| a.ip());
    let hub = config
        .hub
        .as_ref()
        .map(|h| hub_client(data_dir, h, &keys))
        .transpose()?;
    let (tx, presence) = mpsc::channel(8);
    let (reader, watch) = PcscReader::watch(tx);
    let reader: Arc<dyn CardReader> = reader;
    Ok(Device {
        ports: Ports {
            reader,
            client: client(ClientSettings::default())?,
            store,
            gate: Arc::new(std::sync::Mutex::new(gate)),
            route: Arc::new(KernelRoute),
            endpoint_addr,
            hub: hub.as_ref().map(|(c, _)| c.clone()),
            hub_addr: hub.as_ref().and_then(|(_, a)| *a),
            uploader_wake: None,
        },
        settings: Settings {
            station: Station {
                unit: UnitId::new(&config.unit_id),
                terminal: TerminalId::new(&config.terminal_id),
            },
            training: false,
            require_tunnel: config.require_tunnel,
            unit_certificate_not_after: not_after,
            crl_data_dir: Some(data_dir.to_path_buf()),
            unsynced_warning_days: config.unsynced_warning_days,
            request_deadline: crate::app::REQUEST_DEADLINE,
            idle_lock: Duration::from_secs(config.idle_lock_secs),
            idle_end_viewing: Duration::from_secs(config.idle_end_viewing_secs),
            explanation_contact: config
                .contact
                .as_ref()
                .map(crate::config::DepartmentContact::line_ja)
                .unwrap_or_default(),
            callback: config
                .hub
                .as_ref()
                .map(|h| h.callback.clone())
                .unwrap_or_default(),
            hub_require_tunnel: config.hub.as_ref().is_some_and(|h| h.require_tunnel),
        },
        background_client: client(ClientSettings::default())?,
        config,
        presence,
        watch,
    })
}
