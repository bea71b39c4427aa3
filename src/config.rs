//! The device configuration (`device.toml` in the data dir), written by
//! `mynakyukyu-admin init` and read by the app. A device without it, or without an installed
//! unit certificate, is not provisioned and starts in training mode.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read or write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("device config {path} is not valid: {message}")]
    Malformed { path: PathBuf, message: String },
}

/// File names inside the data dir.
pub const CONFIG_FILE: &str = "device.toml";
pub const UNIT_KEY_FILE: &str = "unit.key";
pub const UNIT_CSR_FILE: &str = "unit.csr";
pub const UNIT_CERT_FILE: &str = "unit.pem";
pub const UNIT_CHAIN_FILE: &str = "unit-chain.pem";
pub const SERVER_CA_FILE: &str = "server-ca.pem";
/// The server CA's CRLs (`mynakyukyu-admin install-crl`); optional.
pub const SERVER_CRL_FILE: &str = "server-crl.pem";
pub const UNIT_CA_FILE: &str = "unit-ca.pem";
pub const STORE_KEY_FILE: &str = "store.key";
pub const STORE_DIR: &str = "store";
pub const ROSTER_FILE: &str = "roster.toml";

fn yes() -> bool {
    true
}
fn retention_days() -> u32 {
    30
}
fn idle_lock_secs() -> u64 {
    300
}
fn idle_end_viewing_secs() -> u64 {
    600
}

/// What `init` decided for this tablet.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeviceConfig {
    pub unit_id: String,
    pub department: String,
    pub terminal_id: String,
    /// `https://host:port` of the eligibility system.
    pub endpoint: String,
    /// Refuse patient-related requests unless the route to the endpoint is the tunnel.
    #[serde(default = "yes")]
    pub require_tunnel: bool,
    /// Uploaded records older than this are purged from the tablet.
    #[serde(default = "retention_days")]
    pub retention_days: u32,
    /// Sign the crew out after this long without a touch.
    #[serde(default = "idle_lock_secs")]
    pub idle_lock_secs: u64,
    /// End a viewing (and purge its data) after this long without a touch.
    #[serde(default = "idle_end_viewing_secs")]
    pub idle_end_viewing_secs: u64,
}

impl DeviceConfig {
    pub fn load(data_dir: &Path) -> Result<Option<DeviceConfig>, ConfigError> {
        let path = data_dir.join(CONFIG_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(ConfigError::Io { path, source }),
        };
        toml::from_str(&text)
            .map(Some)
            .map_err(|e| ConfigError::Malformed {
                path,
                message: e.to_string(),
            })
    }

    pub fn save(&self, data_dir: &Path) -> Result<(), ConfigError> {
        let path = data_dir.join(CONFIG_FILE);
        let text = toml::to_string(self).map_err(|e| ConfigError::Malformed {
            path: path.clone(),
            message: e.to_string(),
        })?;
        crate::roster::write_atomically(&path, text.as_bytes())
            .map_err(|source| ConfigError::Io { path, source })
    }
}

/// Open the data dir's store with its device key.
pub fn open_store(data_dir: &Path) -> Result<crate::store::Store, crate::store::StoreError> {
    let key = crate::store::DeviceKey::load(&data_dir.join(STORE_KEY_FILE))?;
    crate::store::Store::open(&data_dir.join(STORE_DIR), &key)
}

/// Whether the data dir holds a configured device with an installed unit certificate.
pub fn is_provisioned(data_dir: &Path) -> bool {
    matches!(DeviceConfig::load(data_dir), Ok(Some(_))) && data_dir.join(UNIT_CERT_FILE).is_file()
}
