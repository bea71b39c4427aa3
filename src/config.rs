//! The device configuration (`device.toml` in the data dir), written by
//! `mynakyukyu-admin init` and read by the app. A device without it, or without an installed
//! unit certificate, is not provisioned and starts in training mode.
//!
//! What is inside: `device.toml` (unit, department, terminal, endpoint, `require_tunnel`,
//! retention, idle timers, `key_protection`), the data-dir file names, `PROTECTED_FILES`
//! (what the manifest covers), `check_modes`; "provisioned" = config + unit certificate,
//! and a `device.toml` that does not parse is an error, never "not provisioned"; the
//! roster's key (`roster_key`: a subkey of the store key) ; the installed server CRL's next
//! update (`server_crl_next_update`)

use crate::keys::KeyProtection;
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
    #[error(
        "{path} has mode {mode:o}: group or others could read the tablet's data (expected 0600 files and 0700 directories)"
    )]
    Modes { path: PathBuf, mode: u32 },
}

/// File names inside the data dir.
pub const CONFIG_FILE: &str = "device.toml";
pub use crate::keys::{STORE_KEY_FILE, UNIT_KEY_FILE};
pub const UNIT_CSR_FILE: &str = "unit.csr";
pub const UNIT_CERT_FILE: &str = "unit.pem";
pub const UNIT_CHAIN_FILE: &str = "unit-chain.pem";
pub const SERVER_CA_FILE: &str = "server-ca.pem";
/// The server CA's CRLs (`mynakyukyu-admin install-crl`); optional.
pub const SERVER_CRL_FILE: &str = "server-crl.pem";
pub const UNIT_CA_FILE: &str = "unit-ca.pem";
/// The hand-off hub's CA (`mynakyukyu-admin hub`); optional.
pub const HUB_CA_FILE: &str = "hub-ca.pem";
pub const STORE_DIR: &str = "store";
pub const ROSTER_FILE: &str = "roster.toml";

/// The files an attacker could swap to point the tablet elsewhere or let someone else view:
/// covered by the signed manifest (`keys::MANIFEST_FILE`) that every admin change re-signs
/// and the app checks at start.
pub const PROTECTED_FILES: &[&str] = &[
    CONFIG_FILE,
    ROSTER_FILE,
    SERVER_CA_FILE,
    SERVER_CRL_FILE,
    UNIT_CA_FILE,
    UNIT_CERT_FILE,
    UNIT_CHAIN_FILE,
    HUB_CA_FILE,
];

fn unsynced_warning_days() -> u32 {
    crate::upkeep::UNSYNCED_WARNING_DAYS
}
fn file_keys() -> KeyProtection {
    KeyProtection::File
}
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
    /// Records waiting longer than this many days for the line are a warning in `status`
    /// and on the status strip (0: never); they are never deleted for it.
    #[serde(default = "unsynced_warning_days")]
    pub unsynced_warning_days: u32,
    /// Where the device keys live (`init` decides; a config without it predates the TPM).
    #[serde(default = "file_keys")]
    pub key_protection: KeyProtection,
    /// Whom a patient or family asks about a viewing (傷病者用説明書の問い合わせ先), shown with
    /// the explanation reminder and printed on the leaflet (`mynakyukyu-admin contact`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<DepartmentContact>,
    /// The hand-off hub this tablet asks (受入照会); none: 「搬送先照会」 is not offered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub: Option<HubConfig>,
}

/// Where the hand-off hub is and how it is reached (`mynakyukyu-admin hub`); its CA is
/// `hub-ca.pem`, covered by the manifest like every file that says whom to trust.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct HubConfig {
    /// `https://host:port` of the hub's tablet face.
    pub endpoint: String,
    /// The department reaches the hub through the tunnel (then the host is an address and
    /// every call's route is checked, as for the eligibility endpoint).
    #[serde(default = "yes")]
    pub require_tunnel: bool,
    /// The unit's call-back number, in every 受入照会.
    pub callback: String,
}

/// The department's contact as a citizen reads it on the leaflet and the crew on screen.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct DepartmentContact {
    /// 「○○市消防本部 警防課」.
    pub name: String,
    /// 「03-1234-5678」.
    pub phone: String,
    /// 「平日 8:30〜17:15」 (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours: Option<String>,
}

impl DepartmentContact {
    /// What the contact may hold: a name of 1–40 characters without control characters, a
    /// phone number of digits, `-`, `+`, `(`, `)` and spaces (4–20), hours of at most 40
    /// characters. Returns what is wrong, in English (the admin's CLI says it).
    pub fn check(&self) -> Result<(), String> {
        let plain = |s: &str| !s.chars().any(char::is_control);
        let chars = self.name.trim().chars().count();
        if !(1..=40).contains(&chars) || !plain(&self.name) {
            return Err("the name must be 1 to 40 characters, without control characters".into());
        }
        let phone = self.phone.trim();
        if !(4..=20).contains(&phone.len())
            || !phone
                .chars()
                .all(|c| c.is_ascii_digit() || "-+() ".contains(c))
            || !phone.chars().any(|c| c.is_ascii_digit())
        {
            return Err("the phone number must be 4 to 20 of 0-9 - + ( ) and spaces".into());
        }
        if let Some(h) = &self.hours
            && (h.chars().count() > 40 || !plain(h))
        {
            return Err(
                "the hours must be at most 40 characters, without control characters".into(),
            );
        }
        Ok(())
    }

    /// 「○○市消防本部 警防課 TEL 03-1234-5678（平日 8:30〜17:15）」.
    pub fn line_ja(&self) -> String {
        let hours = self
            .hours
            .as_deref()
            .map(|h| format!("（{h}）"))
            .unwrap_or_default();
        format!("{} TEL {}{hours}", self.name.trim(), self.phone.trim())
    }
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
        crate::files::write_private(&path, text.as_bytes())
            .map_err(|source| ConfigError::Io { path, source })
    }
}

/// Open the data dir's store with its device key (unwrapped by the TPM where there is one).
pub fn open_store(data_dir: &Path) -> Result<crate::store::Store, crate::store::StoreError> {
    let keys = crate::keys::DeviceKeys::open(data_dir).map_err(key_error(data_dir))?;
    open_store_with(data_dir, &keys)
}

/// The installed server CRL's earliest next update, if there is one that reads.
pub fn server_crl_next_update(data_dir: &Path) -> Option<crate::domain::Timestamp> {
    let pem = std::fs::read_to_string(data_dir.join(SERVER_CRL_FILE)).ok()?;
    let ca = std::fs::read_to_string(data_dir.join(SERVER_CA_FILE)).ok()?;
    let ca = crate::pki::pem_certificates(&ca).into_iter().next()?;
    crate::pki::inspect_crls(&pem, &ca, time::OffsetDateTime::now_utc())
        .ok()?
        .next_update_ms
        .map(crate::domain::Timestamp)
}

/// The roster's key from the device's store key (the TPM unwraps it on a tablet).
pub fn roster_key(
    data_dir: &Path,
    keys: &crate::keys::DeviceKeys,
) -> Result<crate::roster::RosterKey, crate::store::StoreError> {
    let raw = keys.store_key().map_err(key_error(data_dir))?;
    Ok(roster_key_of(&crate::store::StoreKey::from_bytes(&raw)))
}

/// The roster's key: a subkey of the store key.
pub fn roster_key_of(store_key: &crate::store::StoreKey) -> crate::roster::RosterKey {
    crate::roster::RosterKey::from_secret(store_key.subkey(crate::roster::KEY_LABEL))
}

/// The roster's key of the data dir (the admin's crew commands, tests).
pub fn open_roster_key(
    data_dir: &Path,
) -> Result<crate::roster::RosterKey, crate::store::StoreError> {
    let keys = crate::keys::DeviceKeys::open(data_dir).map_err(key_error(data_dir))?;
    roster_key(data_dir, &keys)
}

/// Open the store with keys already opened.
pub fn open_store_with(
    data_dir: &Path,
    keys: &crate::keys::DeviceKeys,
) -> Result<crate::store::Store, crate::store::StoreError> {
    let raw = keys.store_key().map_err(key_error(data_dir))?;
    let key = crate::store::StoreKey::from_bytes(&raw);
    crate::store::Store::open(&data_dir.join(STORE_DIR), &key)
}

fn key_error(data_dir: &Path) -> impl Fn(crate::keys::KeyError) -> crate::store::StoreError {
    let path = data_dir.join(STORE_KEY_FILE).display().to_string();
    move |e| crate::store::StoreError::Key {
        path: path.clone(),
        reason: e.to_string(),
    }
}

/// Whether the data dir holds a configured device with an installed unit certificate.
/// A `device.toml` that cannot be read or parsed is an error, never "not provisioned": a
/// broken tablet must say so, not fall silently into training mode.
pub fn provisioned(data_dir: &Path) -> Result<bool, ConfigError> {
    Ok(DeviceConfig::load(data_dir)?.is_some() && data_dir.join(UNIT_CERT_FILE).is_file())
}

/// Refuse a data dir that group or others can enter, or any file or directory in it with
/// group or other permission bits, naming the first one found. The whole tree is walked
/// (symlinks are not followed).
pub fn check_modes(data_dir: &Path) -> Result<(), ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    let mut stack = vec![data_dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let meta = std::fs::symlink_metadata(&p).map_err(|source| ConfigError::Io {
            path: p.clone(),
            source,
        })?;
        let mode = meta.permissions().mode() & 0o777;
        if !meta.file_type().is_symlink() && mode & 0o077 != 0 {
            return Err(ConfigError::Modes { path: p, mode });
        }
        if meta.is_dir() {
            let entries = std::fs::read_dir(&p).map_err(|source| ConfigError::Io {
                path: p.clone(),
                source,
            })?;
            for e in entries.flatten() {
                stack.push(e.path());
            }
        }
    }
    Ok(())
}
