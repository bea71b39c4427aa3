//! Fire-department administration of one tablet's data dir: enrolment (device key, CSR,
//! config), installing the issued unit certificate, status, the audit trail, the
//! strongSwan configuration, and crypto-erase. The CLI (`mynakyukyu-admin`) is a thin shell
//! over these functions.
//!
//! What is inside: `init` (keys in the TPM; files only with `--allow-file-keys`),
//! `install_cert`, `install_crl` (server CA's CRLs, a stale one refused; the client refuses
//! an expired CRL and re-reads the file when it changes, dropping sessions resumed from
//! before), `status` (`key_protection`, `integrity`, the TPM keys' exportability, oldest
//! record, next purge, day keys), `check-line` (mutual TLS as the tablet does it), `crew
//! unlock`, `wipe` (stops the app, TPM objects then TPM2_Clear, then the files, never
//! through a symlink; says what is left to do), `admin::audit` (every record kind as a row
//! — checks, failed lookups, views, consent decisions and refusals, corrections,
//! explanations — JST times, RFC 4180 CSV through the `csv` crate with every field quoted
//! and spreadsheet formulas neutralised; `--format bundle` is a tablet's whole chain signed
//! by the unit key record by record and as a whole, with the unit certificate; `audit merge
//! --unit-ca` verifies the certificate against the department's CA, the signatures, then
//! the chain, and answers from all of them), `admin::ipsec` (`ipsec_config`: every value
//! checked against what its strongSwan field may hold, no secret written; `load_ipsec`: the
//! token's secret, unsealed, to charon through a memfd), `tpm_own`, `wipe` (stops the kiosk
//! unit through systemd first), `dev_sign_csr` (the CLI is a thin shell)

use crate::config::{self, DeviceConfig};
use crate::domain::Timestamp;
use crate::eligibility::Endpoint;
use crate::keys::{DeviceKeys, KeyProtection};
use crate::pki::{self, Validity};
use crate::roster::Roster;
use rcgen::{CertificateParams, DistinguishedName, DnType};
use serde::Serialize;
use std::path::{Path, PathBuf};
use thiserror::Error;

mod audit;
mod ipsec;
mod leaflet;
mod wipe;
pub use ipsec::{IpsecOptions, PKCS11_MODULE_NAME, ipsec_config, load_ipsec, write_ipsec_dir};
pub use leaflet::leaflet_html;
pub use wipe::{APP_PID_FILE, KIOSK_UNIT, WipeReport, wipe};
use x509_parser::prelude::{FromDer, X509Certificate};

#[derive(Debug, Error)]
pub enum AdminError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("this data dir is already initialised ({0}); wipe it first")]
    AlreadyInitialised(PathBuf),
    #[error("this data dir is not initialised (run `mynakyukyu-admin init`)")]
    NotInitialised,
    #[error("bad endpoint {0:?} (expected https://host:port)")]
    BadEndpoint(String),
    #[error("certificate refused: {0}")]
    CertificateRefused(String),
    #[error(transparent)]
    Pki(#[from] pki::PkiError),
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Roster(#[from] crate::roster::RosterError),
    #[error("key: {0}")]
    Key(String),
    #[error(transparent)]
    Keys(#[from] crate::keys::KeyError),
    #[error("the tablet app is running (pid {0}); stop it before wiping")]
    AppRunning(u32),
    #[error("{what} {value:?} cannot go into another program's configuration: {why}")]
    UnsafeValue {
        what: &'static str,
        value: String,
        why: &'static str,
    },
    #[error("swanctl: {0}")]
    Swanctl(String),
    #[error(
        "the kiosk unit is running and systemd did not stop it ({0}); run wipe as root (sudo mynakyukyu-admin wipe): a signal alone would be undone by its restart"
    )]
    KioskRunning(String),
    #[error(
        "no department contact in device.toml: set it first (mynakyukyu-admin contact --name NAME --phone PHONE)"
    )]
    NoContact,
    #[error("contact refused: {0}")]
    BadContact(String),
}

fn read(path: &Path) -> Result<Vec<u8>, AdminError> {
    std::fs::read(path).map_err(|e| AdminError::File {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Files in the data dir are written 0600, never through a symlink.
fn write(path: &Path, bytes: &[u8]) -> Result<(), AdminError> {
    Ok(crate::keys::write_private(path, bytes)?)
}

/// Re-sign the manifest of the protected files after an admin change.
pub fn seal_files(data_dir: &Path) -> Result<(), AdminError> {
    Ok(DeviceKeys::open(data_dir)?.seal_files(config::PROTECTED_FILES)?)
}

/// Set the department's contact (shown with the explanation reminder, printed on the
/// leaflet) and sign the configuration again.
pub fn set_contact(data_dir: &Path, contact: config::DepartmentContact) -> Result<(), AdminError> {
    contact.check().map_err(AdminError::BadContact)?;
    let mut cfg = DeviceConfig::load(data_dir)?.ok_or(AdminError::NotInitialised)?;
    // never bless an edited configuration by signing it again
    let keys = DeviceKeys::open(data_dir)?;
    keys.verify_files(config::PROTECTED_FILES)?;
    cfg.contact = Some(contact);
    cfg.save(data_dir)?;
    Ok(keys.seal_files(config::PROTECTED_FILES)?)
}

/// `hub`: enrol the hand-off hub (its endpoint, its CA, whether it is reached through the
/// tunnel, the unit's call-back number), re-signing the manifest. Checked before anything
/// is written: an endpoint that is not `https://host:port` (an address when the tunnel is
/// required), a CA file without a certificate, a call-back that is not a phone number.
pub fn set_hub(
    data_dir: &Path,
    endpoint: &str,
    ca: &Path,
    require_tunnel: bool,
    callback: &str,
) -> Result<(), AdminError> {
    let parsed =
        Endpoint::parse(endpoint).map_err(|_| AdminError::BadEndpoint(endpoint.to_string()))?;
    if require_tunnel && parsed.host.parse::<std::net::IpAddr>().is_err() {
        return Err(AdminError::BadEndpoint(format!(
            "{endpoint}: an address, not a name, when the hub is reached through the tunnel (or --no-tunnel)"
        )));
    }
    let phone_like = !callback.is_empty()
        && callback.len() <= 20
        && callback.chars().all(|c| c.is_ascii_digit() || c == '-');
    if !phone_like {
        return Err(AdminError::UnsafeValue {
            what: "call-back number",
            value: callback.to_string(),
            why: "digits and hyphens only, at most 20",
        });
    }
    let pem = read(ca)?;
    first_certificate(ca)?;
    let mut cfg = DeviceConfig::load(data_dir)?.ok_or(AdminError::NotInitialised)?;
    // never bless an edited configuration by signing it again
    let keys = DeviceKeys::open(data_dir)?;
    keys.verify_files(config::PROTECTED_FILES)?;
    write(&data_dir.join(config::HUB_CA_FILE), &pem)?;
    cfg.hub = Some(config::HubConfig {
        endpoint: endpoint.to_string(),
        require_tunnel,
        callback: callback.to_string(),
    });
    cfg.save(data_dir)?;
    Ok(keys.seal_files(config::PROTECTED_FILES)?)
}

/// One PEM certificate from a file, as DER.
fn first_certificate(path: &Path) -> Result<Vec<u8>, AdminError> {
    let text = String::from_utf8_lossy(&read(path)?).into_owned();
    pki::pem_certificates(&text)
        .into_iter()
        .next()
        .ok_or_else(|| AdminError::File {
            path: path.to_path_buf(),
            message: "no PEM certificate in the file".into(),
        })
}

/// What `init` is told.
pub struct InitOptions<'a> {
    pub unit_id: &'a str,
    pub department: &'a str,
    pub endpoint: &'a str,
    pub server_ca: &'a Path,
    /// The CA that issues unit certificates (the fire department's); default: `server_ca`.
    pub unit_ca: Option<&'a Path>,
    pub terminal_id: Option<&'a str>,
    /// Keep the keys in 0600 files on a machine without a TPM.
    pub allow_file_keys: bool,
    /// The PCRs the token PIN is sealed to (`sha256:0,2,4,7` when `None`).
    pub pcrs: Option<&'a str>,
}

/// Create the device keys (in the TPM, or files only with `allow_file_keys`), the CSR,
/// the device config, and the signed manifest of the configuration files. Returns the
/// CSR's path.
pub fn init(data_dir: &Path, o: &InitOptions<'_>) -> Result<PathBuf, AdminError> {
    if data_dir.join(config::CONFIG_FILE).exists() {
        return Err(AdminError::AlreadyInitialised(data_dir.to_path_buf()));
    }
    Endpoint::parse(o.endpoint).map_err(|_| AdminError::BadEndpoint(o.endpoint.to_string()))?;
    // both CAs must be readable certificates before anything is written
    let server_ca = read(o.server_ca)?;
    first_certificate(o.server_ca)?;
    let unit_ca_path = o.unit_ca.unwrap_or(o.server_ca);
    let unit_ca = read(unit_ca_path)?;
    first_certificate(unit_ca_path)?;
    let keys = DeviceKeys::create(
        data_dir,
        o.allow_file_keys,
        o.pcrs.unwrap_or(crate::keys::tpm_boot::DEFAULT_PCRS),
    )?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, o.department);
    dn.push(DnType::CommonName, o.unit_id);
    params.distinguished_name = dn;
    let csr = keys.unit_csr_pem(&params)?;
    let csr_path = data_dir.join(config::UNIT_CSR_FILE);
    write(&csr_path, csr.as_bytes())?;
    write(&data_dir.join(config::SERVER_CA_FILE), &server_ca)?;
    write(&data_dir.join(config::UNIT_CA_FILE), &unit_ca)?;
    DeviceConfig {
        unit_id: o.unit_id.to_string(),
        department: o.department.to_string(),
        terminal_id: o
            .terminal_id
            .map(str::to_string)
            .unwrap_or_else(|| format!("{}-TAB", o.unit_id)),
        endpoint: o.endpoint.to_string(),
        require_tunnel: true,
        retention_days: 30,
        idle_lock_secs: 300,
        idle_end_viewing_secs: 600,
        unsynced_warning_days: crate::upkeep::UNSYNCED_WARNING_DAYS,
        key_protection: keys.protection(),
        contact: None,
        hub: None,
    }
    .save(data_dir)?;
    keys.seal_files(config::PROTECTED_FILES)?;
    if keys.protection() == KeyProtection::Tpm && rustix::process::geteuid().is_root() {
        tpm_own()?;
    }
    Ok(csr_path)
}

/// `tpm-own` (root): the TPM's owner and lockout hierarchies get the authorisation only
/// root can read, so the kiosk user can neither delete the enrolment record nor clear the
/// TPM. `init` run as root does this itself.
pub fn tpm_own() -> Result<(), AdminError> {
    if crate::keys::enrolled_here()?.is_none() {
        return Err(AdminError::NotInitialised);
    }
    Ok(crate::keys::tpm_boot::TpmTools::new()
        .take_ownership(&crate::keys::tpm_boot::system_dir())?)
}

/// Whether a TPM enrolment still waits for `tpm-own` (the record is not yet protected).
pub fn tpm_ownership_pending(protection: KeyProtection) -> bool {
    protection == KeyProtection::Tpm
        && std::fs::symlink_metadata(
            crate::keys::tpm_boot::system_dir().join(crate::keys::tpm_boot::HIERARCHY_AUTH_FILE),
        )
        .is_err()
}

/// A unit's file in the batch directories an admin carries between the tablets and the
/// fire-department CA: `<unit-id>.csr` out, `<unit-id>.pem` back. Forty tablets are then
/// one `init --csr-out DIR` each, one signing pass over DIR, and one `install-cert DIR`
/// each. The unit id names the file, so it may not name a path.
pub fn batch_file(dir: &Path, unit_id: &str, extension: &str) -> Result<PathBuf, AdminError> {
    let plain = !unit_id.is_empty()
        && !unit_id.starts_with('.')
        && unit_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !plain {
        return Err(AdminError::File {
            path: dir.to_path_buf(),
            message: format!(
                "unit id {unit_id:?} cannot name a file here (letters, digits, '-', '_', '.')"
            ),
        });
    }
    Ok(dir.join(format!("{unit_id}.{extension}")))
}

/// Copy this tablet's CSR into the batch directory (created if missing) as
/// `<unit-id>.csr`. A CSR is public; the file is an ordinary 0644 one on the admin's stick.
pub fn collect_csr(data_dir: &Path, dir: &Path) -> Result<PathBuf, AdminError> {
    let cfg = DeviceConfig::load(data_dir)?.ok_or(AdminError::NotInitialised)?;
    let to = batch_file(dir, &cfg.unit_id, "csr")?;
    let csr = read(&data_dir.join(config::UNIT_CSR_FILE))?;
    let io = |path: &Path, e: std::io::Error| AdminError::File {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    std::fs::write(&to, csr).map_err(|e| io(&to, e))?;
    std::fs::set_permissions(&to, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .map_err(|e| io(&to, e))?;
    Ok(to)
}

/// `install-cert` given a directory: this tablet's `<unit-id>.pem` in it.
pub fn certificate_in_batch(data_dir: &Path, dir: &Path) -> Result<PathBuf, AdminError> {
    let cfg = DeviceConfig::load(data_dir)?.ok_or(AdminError::NotInitialised)?;
    batch_file(dir, &cfg.unit_id, "pem")
}

fn spki_of_cert(der: &[u8]) -> Result<Vec<u8>, AdminError> {
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|e| AdminError::CertificateRefused(format!("not a certificate: {e}")))?;
    Ok(cert.public_key().raw.to_vec())
}

/// Install the server CA's CRL(s): the app then refuses a revoked server certificate.
/// Every CRL in the file must be signed by the configured server CA.
pub fn install_crl(data_dir: &Path, crl: &Path) -> Result<pki::CrlSummary, AdminError> {
    DeviceConfig::load(data_dir)?.ok_or(AdminError::NotInitialised)?;
    let pem = String::from_utf8_lossy(&read(crl)?).into_owned();
    let ca = first_certificate(&data_dir.join(config::SERVER_CA_FILE))?;
    let summary = pki::inspect_crls(&pem, &ca, time::OffsetDateTime::now_utc())?;
    if summary.stale {
        // the client refuses a CRL past its next update (and with it the server)
        return Err(AdminError::CertificateRefused(format!(
            "this CRL is past its next update ({}); get a current one from the CA",
            summary.next_update.as_deref().unwrap_or("not given")
        )));
    }
    let keys = DeviceKeys::open(data_dir)?;
    keys.verify_files(config::PROTECTED_FILES)?;
    write(&data_dir.join(config::SERVER_CRL_FILE), pem.as_bytes())?;
    keys.seal_files(config::PROTECTED_FILES)?;
    Ok(summary)
}

/// Install the issued unit certificate: it must carry this device's key, chain to the
/// configured unit CA, allow clientAuth and be valid now.
pub fn install_cert(
    data_dir: &Path,
    cert: &Path,
    chain: Option<&Path>,
) -> Result<pki::CertSummary, AdminError> {
    DeviceConfig::load(data_dir)?.ok_or(AdminError::NotInitialised)?;
    let der = first_certificate(cert)?;
    let keys = DeviceKeys::open(data_dir)?;
    keys.verify_files(config::PROTECTED_FILES)?;
    let device_spki = keys.unit_spki()?;
    if spki_of_cert(&der)? != device_spki {
        return Err(AdminError::CertificateRefused(
            "it is for another key, not this device's (was it issued for this tablet's CSR?)"
                .into(),
        ));
    }
    let ca = first_certificate(&data_dir.join(config::UNIT_CA_FILE))?;
    let chain_der = match chain {
        Some(p) => {
            let text = String::from_utf8_lossy(&read(p)?).into_owned();
            pki::pem_certificates(&text)
        }
        None => vec![],
    };
    // directly signed by the unit CA, or through the given intermediate(s)
    let chains = pki::is_signed_by(&der, &ca)
        || chain_der
            .iter()
            .any(|inter| pki::is_signed_by(&der, inter) && pki::is_signed_by(inter, &ca));
    if !chains {
        return Err(AdminError::CertificateRefused(
            "it does not chain to the configured fire-department CA".into(),
        ));
    }
    let (_, parsed) = X509Certificate::from_der(&der)
        .map_err(|e| AdminError::CertificateRefused(format!("not a certificate: {e}")))?;
    let client_auth = parsed
        .extended_key_usage()
        .ok()
        .flatten()
        .is_some_and(|eku| eku.value.client_auth || eku.value.any);
    if !client_auth {
        return Err(AdminError::CertificateRefused(
            "it has no clientAuth extended key usage".into(),
        ));
    }
    let summary = pki::inspect(&der, time::OffsetDateTime::now_utc())?;
    if summary.validity != Validity::Valid {
        return Err(AdminError::CertificateRefused(format!(
            "it is not valid now ({:?}: {} to {})",
            summary.validity, summary.not_before, summary.not_after
        )));
    }
    let mut pem = pki::certificate_pem(&der);
    write(&data_dir.join(config::UNIT_CERT_FILE), pem.as_bytes())?;
    for inter in &chain_der {
        pem.push_str(&pki::certificate_pem(inter));
    }
    write(&data_dir.join(config::UNIT_CHAIN_FILE), pem.as_bytes())?;
    keys.seal_files(config::PROTECTED_FILES)?;
    Ok(summary)
}

/// `status` output.
#[derive(Debug, Serialize)]
pub struct Status {
    pub unit_id: String,
    pub department: String,
    pub terminal_id: String,
    pub endpoint: String,
    pub certificate_serial: Option<String>,
    pub certificate_days_left: Option<i64>,
    /// ok, warning (under 30 days), error (expired, missing)
    pub certificate_level: &'static str,
    pub roster_size: usize,
    pub queued_records: usize,
    pub last_sync: Option<String>,
    pub last_sync_error: Option<String>,
    pub tunnel: String,
    pub require_tunnel: bool,
    /// `tpm` or `file`: where the unit key, the store key and the integrity key live.
    pub key_protection: &'static str,
    /// `ok`, or why the signed manifest of the configuration files does not hold.
    pub integrity: String,
    /// The hand-off hub's endpoint and how it is reached (none: not enrolled).
    pub hub: Option<String>,
    /// When the oldest record still on the tablet was appended (RFC 3339).
    pub oldest_record: Option<String>,
    /// When the oldest record is purged (and its day key destroyed, once no other record
    /// needs it); `None` while it waits to be uploaded, or with no records.
    pub next_purge: Option<String>,
    pub retention_days: u32,
    /// Day keys on the tablet (one per day with records kept).
    pub day_keys: usize,
    /// With TPM keys: what the token says about each key's exportability.
    pub tpm_keys: std::collections::BTreeMap<&'static str, crate::keys::tpm::KeyFlags>,
    /// What needs the admin before it stops the tablet (English, one line each).
    pub warnings: Vec<String>,
}

pub fn status(data_dir: &Path) -> Result<Status, AdminError> {
    let cfg = DeviceConfig::load(data_dir)?.ok_or(AdminError::NotInitialised)?;
    let cert = pki::inspect_pem_file(&data_dir.join(config::UNIT_CERT_FILE));
    let level = match &cert {
        None => "error",
        Some(c) if c.validity != Validity::Valid => "error",
        Some(c) if c.days_left < 30 => "warning",
        Some(_) => "ok",
    };
    let roster = Roster::load(&data_dir.join(config::ROSTER_FILE))?;
    let keys = DeviceKeys::open(data_dir)?;
    let integrity = match keys.verify_files(config::PROTECTED_FILES) {
        Ok(()) => "ok".to_string(),
        Err(e) => e.to_string(),
    };
    let mut tpm_keys = std::collections::BTreeMap::new();
    if let Some(token) = keys.token() {
        use crate::keys::tpm::{FILES_KEY_LABEL, STORE_WRAP_LABEL, UNIT_KEY_LABEL};
        for label in [UNIT_KEY_LABEL, STORE_WRAP_LABEL, FILES_KEY_LABEL] {
            tpm_keys.insert(label, token.key_flags(label)?);
        }
    }
    let mut warnings = vec![];
    if tpm_ownership_pending(keys.protection()) {
        warnings.push(
            "the TPM's owner and lockout hierarchies have no password yet: anyone on the tablet could delete its enrolment record or clear it; run `sudo mynakyukyu-admin tpm-own`".to_string(),
        );
    }
    let unkeyed = roster
        .crew
        .iter()
        .filter(|m| !crate::roster::is_keyed(&m.pin_hash))
        .count();
    if unkeyed > 0 {
        warnings.push(format!(
            "{unkeyed} crew PIN hashes are not keyed with the device's key (from an older version): remove and add those crew again so the roster file alone cannot be cracked"
        ));
    }
    let store = config::open_store_with(data_dir, &keys)?;
    let sync = store.sync_state()?;
    let crl = config::server_crl_next_update(data_dir);
    warnings.extend(
        crate::upkeep::warnings(&crate::upkeep::Facts {
            now: Timestamp::now(),
            unit_certificate_not_after: cert.as_ref().map(|c| Timestamp(c.not_after_ms)),
            server_crl_next_update: crl,
            oldest_unsynced: sync.oldest_queued_at,
            unsynced_warning_days: cfg.unsynced_warning_days,
        })
        .into_iter()
        .map(|w| w.en),
    );
    let oldest_record = store.oldest_record()?.map(Timestamp::to_rfc3339);
    let next_purge = store
        .next_purge(cfg.retention_days)?
        .map(Timestamp::to_rfc3339);
    let day_keys = store.day_keys().len();
    let tunnel = Endpoint::parse(&cfg.endpoint)
        .ok()
        .and_then(|e| {
            use std::net::ToSocketAddrs;
            (e.host.as_str(), e.port).to_socket_addrs().ok()?.next()
        })
        .map(|a| {
            use crate::kernel_route::RouteCheck;
            format!("{:?}", crate::kernel_route::KernelRoute.route_to(a.ip()))
        })
        .unwrap_or_else(|| "Unknown".into());
    Ok(Status {
        unit_id: cfg.unit_id,
        department: cfg.department,
        terminal_id: cfg.terminal_id,
        endpoint: cfg.endpoint,
        certificate_serial: cert.as_ref().map(|c| c.serial_hex.clone()),
        certificate_days_left: cert.as_ref().map(|c| c.days_left),
        certificate_level: level,
        roster_size: roster.crew.len(),
        queued_records: sync.queued,
        last_sync: sync.last_success.map(Timestamp::to_rfc3339),
        last_sync_error: sync.last_error,
        tunnel,
        require_tunnel: cfg.require_tunnel,
        key_protection: keys.protection().as_str(),
        integrity,
        oldest_record,
        next_purge,
        retention_days: cfg.retention_days,
        day_keys,
        tpm_keys,
        warnings,
        hub: cfg.hub.as_ref().map(|h| {
            format!(
                "{} ({}; call-back {})",
                h.endpoint,
                if h.require_tunnel {
                    "through the tunnel"
                } else {
                    "outside the tunnel"
                },
                h.callback
            )
        }),
    })
}

pub use audit::{
    AuditBundle, AuditFilter, AuditRow, HandoffSummary, MergeError, audit_bundle, audit_csv,
    audit_export, audit_merge, handoff_report, handoffs_csv, row as audit_row,
};

/// Check the store's hash chain.
pub fn audit_verify(data_dir: &Path) -> Result<crate::store::ChainReport, AdminError> {
    Ok(config::open_store(data_dir)?.verify_chain()?)
}

/// `dev-pki sign`: the development CA in `pki_dir` signs a unit CSR (drills, tests).
pub fn dev_sign_csr(pki_dir: &Path, csr: &Path, days: i64) -> Result<String, AdminError> {
    let ca = pki::CertAuthority::load_files(&pki_dir.join("ca.pem"), &pki_dir.join("ca.key"))?;
    let text = String::from_utf8_lossy(&read(csr)?).into_owned();
    sign_csr_pem(&ca, &text, days)
}

/// Sign a unit CSR given as PEM text (clientAuth, `days` valid): what `dev-pki sign` does
/// with a file from the admin's stick (the fuzz target `admin_files` feeds it anything).
pub fn sign_csr_pem(ca: &pki::CertAuthority, text: &str, days: i64) -> Result<String, AdminError> {
    let request = rcgen::CertificateSigningRequestParams::from_pem(text)
        .map_err(|e| AdminError::Key(format!("CSR: {e}")))?;
    let mut params = request.params;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + time::Duration::days(days);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    let mut serial = [0u8; 8];
    getrandom::fill(&mut serial).map_err(|e| AdminError::Key(e.to_string()))?;
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    let der = ca.sign(&params, &request.public_key)?;
    Ok(pki::certificate_pem(&der))
}

#[cfg(test)]
mod tests {
    use super::batch_file;
    use std::path::Path;

    #[test]
    fn a_unit_id_names_a_file_in_the_batch_directory_and_never_a_path() {
        let d = Path::new("/media/usb/csr");
        assert_eq!(
            batch_file(d, "TOKYO-07_A.2", "csr").unwrap(),
            d.join("TOKYO-07_A.2.csr")
        );
        for bad in ["", "../etc/passwd", "a/b", ".hidden", "救急1"] {
            assert!(batch_file(d, bad, "pem").is_err(), "{bad}");
        }
    }
}
