//! Wiring a provisioned tablet: device config, unit certificate, roster, store, the PC/SC
//! reader, and the two clients (one for patient requests, one for the health probe and
//! uploads, so neither waits behind the other).

use super::line::KernelRoute;
use super::reader::{CardReader, PcscReader, PresenceWatch};
use super::{Ports, Settings};
use crate::config::{self, DeviceConfig};
use crate::domain::{TerminalId, UnitId};
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
    let config = DeviceConfig::load(data_dir)?.ok_or(DeviceError::NotProvisioned)?;
    let cert_path = data_dir.join(config::UNIT_CERT_FILE);
    if !cert_path.is_file() {
        return Err(DeviceError::NotProvisioned);
    }
    let crl = data_dir.join(config::SERVER_CRL_FILE);
    let identity = || {
        UnitIdentity::from_files(
            &cert_path,
            &data_dir.join(config::UNIT_KEY_FILE),
            &data_dir.join(config::SERVER_CA_FILE),
        )
        .and_then(|i| {
            if crl.is_file() {
                i.with_server_crls(&crl)
            } else {
                Ok(i)
            }
        })
        .map_err(|e| DeviceError::Certificate(e.to_string()))
    };
    let endpoint =
        Endpoint::parse(&config.endpoint).map_err(|e| DeviceError::Certificate(e.to_string()))?;
    let client = |settings| -> Result<Arc<EligibilityClient>, DeviceError> {
        let tls = tls_config(identity()?).map_err(|e| DeviceError::Certificate(e.to_string()))?;
        EligibilityClient::new(endpoint.clone(), tls, settings)
            .map(Arc::new)
            .map_err(|e| DeviceError::Certificate(e.to_string()))
    };
    let days_left = crate::pki::inspect_pem_file(&cert_path).map(|s| s.days_left);
    let store = Arc::new(config::open_store(data_dir)?);
    let gate = SignInGate::open(&data_dir.join(config::ROSTER_FILE))?;
    let endpoint_addr = (endpoint.host.as_str(), endpoint.port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .map(|a| a.ip());
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
            uploader_wake: None,
        },
        settings: Settings {
            station: Station {
                unit: UnitId::new(&config.unit_id),
                terminal: TerminalId::new(&config.terminal_id),
            },
            training: false,
            require_tunnel: config.require_tunnel,
            unit_certificate_days_left: days_left,
            request_deadline: crate::app::REQUEST_DEADLINE,
            idle_lock: Duration::from_secs(config.idle_lock_secs),
            idle_end_viewing: Duration::from_secs(config.idle_end_viewing_secs),
        },
        background_client: client(ClientSettings::default())?,
        config,
        presence,
        watch,
    })
}
