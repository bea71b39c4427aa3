//! Device keys: where the unit's client key, the store key and the file-integrity key live,
//! and the only code that touches them.
//!
//! Two protections, chosen at `init` and shown by `status` as `key_protection`:
//! - `tpm`: the three keys are objects of a PKCS#11 token in the TPM 2.0 ([`tpm`]): the unit
//!   key (EC P-256) signs TLS handshakes and the CSR inside the TPM; the store key is a random
//!   32-byte key kept on disk only wrapped by the TPM's RSA key (OAEP); the data dir's
//!   configuration files are covered by a manifest the TPM signs. A copy of the data dir
//!   without this TPM opens nothing.
//! - `file`: the same keys as 0600 files (PEM unit key, raw store key, HMAC key). Training
//!   mode uses it; a provisioned tablet only with `init --allow-file-keys`.
//!
//! Files the keys live in are opened with `O_NOFOLLOW` and refused when group or others may
//! read them.
//!
//! What is inside: the device keys and the only code that touches them (docs/SECURITY.md):
//! with a TPM 2.0 (`keys::tpm`: PKCS#11 through `cryptoki` and tpm2-pkcs11, loaded at run
//! time) the unit key (EC P-256, signs the CSR and every TLS handshake through rustls'
//! `SigningKey`), the store-wrapping key (RSA-2048 OAEP) and the file-integrity key (EC
//! P-256) are token objects that never leave it; without one (training, `init
//! --allow-file-keys`) 0600 files. The signed manifest `integrity.json` over the protected
//! configuration files; private files opened with `O_NOFOLLOW` and refused when others can
//! read them; `destroy` for wipe. `keys::tpm_boot` (tpm2-tools processes): the token's
//! secret sealed to PCRs 0,2,4,7 under the SRK (never in clear; another boot state is
//! `BootStateChanged`), the enrolment record in NV index 0x01800a17 (the files key's
//! digest, write-locked) and `enrolled_here` (that record, or root's hierarchy
//! authorisation file: file keys and missing device files are then refused), the owner and
//! lockout authorisation only root reads, TPM2_Clear at wipe

mod manifest;
mod signer;
pub mod tpm;
pub mod tpm_boot;

pub use signer::{TpmSigner, UnitTlsKey, ecdsa_der};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;
use zeroize::Zeroizing;

#[derive(Debug, Error)]
pub enum KeyError {
    #[error("TPM: {0}")]
    Tpm(String),
    #[error("missing key: {0}")]
    Missing(String),
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("random source failed: {0}")]
    Random(String),
    #[error("this machine has no TPM 2.0; enrol with --allow-file-keys to keep the keys in files")]
    NoTpm,
    #[error("{file} was changed outside mynakyukyu-admin ({reason})")]
    Tampered { file: String, reason: String },
    #[error(
        "the TPM refuses to unseal the token PIN: this tablet booted in another state than the one it was enrolled in (firmware, boot loader or Secure Boot changed, or another system booted); re-enrol"
    )]
    BootStateChanged,
    #[error("this tablet was enrolled with its TPM: {0}")]
    NotAsEnrolled(String),
}

/// Where the keys live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyProtection {
    Tpm,
    File,
}

impl KeyProtection {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyProtection::Tpm => "tpm",
            KeyProtection::File => "file",
        }
    }
}

/// File names inside the data dir.
pub const TPM_DIR: &str = "tpm";
pub const UNIT_KEY_FILE: &str = "unit.key";
pub const STORE_KEY_FILE: &str = "store.key";
pub const FILES_KEY_FILE: &str = "files.key";
/// The integrity manifest: SHA-256 of every protected file, signed (tpm) or MAC'd (file).
pub const MANIFEST_FILE: &str = "integrity.json";

// ---------------------------------------------------------------------------------------
// private files

/// Create a directory only this user can enter (0700), refusing a symlink in its place.
pub fn create_private_dir(dir: &Path) -> Result<(), KeyError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let err = |reason: String| KeyError::File {
        path: dir.to_path_buf(),
        reason,
    };
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_symlink() => return Err(err("is a symbolic link".into())),
        Ok(m) if m.is_dir() => {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| err(e.to_string()))?;
            return Ok(());
        }
        Ok(_) => return Err(err("is not a directory".into())),
        Err(_) => {}
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| err(e.to_string()))
}

/// Write a secret file (0600, `O_NOFOLLOW`), replacing one that exists, durably
/// ([`crate::files::write_private`]).
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), KeyError> {
    crate::files::write_private(path, bytes).map_err(|e| KeyError::File {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Read a secret file: not through a symlink, not readable by group or others.
pub fn read_private(path: &Path) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    use std::io::Read;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let err = |reason: String| KeyError::File {
        path: path.to_path_buf(),
        reason,
    };
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(n) if n == rustix::io::Errno::LOOP.raw_os_error() => {
                err("is a symbolic link; refusing to follow it".into())
            }
            Some(n) if n == rustix::io::Errno::NOENT.raw_os_error() => {
                KeyError::Missing(path.display().to_string())
            }
            _ => err(e.to_string()),
        })?;
    let meta = f.metadata().map_err(|e| err(e.to_string()))?;
    if !meta.is_file() {
        return Err(err("is not a regular file".into()));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(err(format!(
            "mode {:o} lets group or others read it; expected 0600",
            meta.permissions().mode() & 0o777
        )));
    }
    let mut bytes = Zeroizing::new(Vec::new());
    f.read_to_end(&mut bytes).map_err(|e| err(e.to_string()))?;
    Ok(bytes)
}

/// Overwrite and remove a secret file, refusing a symlink. `Ok(false)` when there was none.
pub fn destroy_private(path: &Path) -> Result<bool, KeyError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |reason: String| KeyError::File {
        path: path.to_path_buf(),
        reason,
    };
    let mut f = match std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            return Err(err("is a symbolic link; refusing to follow it".into()));
        }
        Err(e) => return Err(err(e.to_string())),
    };
    let len = f.metadata().map_err(|e| err(e.to_string()))?.len() as usize;
    f.write_all(&vec![0u8; len])
        .map_err(|e| err(e.to_string()))?;
    f.sync_all().map_err(|e| err(e.to_string()))?;
    std::fs::remove_file(path).map_err(|e| err(e.to_string()))?;
    Ok(true)
}

fn random32() -> Result<Zeroizing<[u8; 32]>, KeyError> {
    let mut k = Zeroizing::new([0u8; 32]);
    getrandom::fill(k.as_mut()).map_err(|e| KeyError::Random(e.to_string()))?;
    Ok(k)
}

// ---------------------------------------------------------------------------------------
// the enrolment

/// What the TPM's enrolment record holds: SHA-256 of the files key's public point.
fn files_key_digest(token: &tpm::TpmToken) -> Result<[u8; 32], KeyError> {
    use sha2::Digest;
    Ok(sha2::Sha256::digest(token.ec_point(tpm::FILES_KEY_LABEL)?).into())
}

/// Whether this tablet was enrolled with its TPM, and how that shows: the root-owned
/// hierarchy authorisation in the system dir (there even with the TPM switched off in the
/// firmware), or the TPM's enrolment NV index. Neither is the kiosk user's to remove.
pub fn enrolled_here() -> Result<Option<String>, KeyError> {
    let auth = tpm_boot::system_dir().join(tpm_boot::HIERARCHY_AUTH_FILE);
    if std::fs::symlink_metadata(&auth).is_ok() {
        return Ok(Some(format!("{} exists", auth.display())));
    }
    if tpm::tpm_present() && tpm_boot::TpmTools::new().enrolment()?.is_some() {
        return Ok(Some(format!(
            "its TPM holds the enrolment record (NV index {})",
            tpm_boot::ENROLMENT_NV_INDEX
        )));
    }
    Ok(None)
}

// ---------------------------------------------------------------------------------------
// the device's keys

/// The device's keys, opened.
pub enum DeviceKeys {
    Tpm {
        data_dir: PathBuf,
        token: Arc<tpm::TpmToken>,
    },
    File {
        data_dir: PathBuf,
    },
}

/// SubjectPublicKeyInfo of a P-256 key from its uncompressed point.
pub fn p256_spki(point: &[u8]) -> Vec<u8> {
    let mut spki = vec![
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ];
    spki.extend_from_slice(point);
    spki
}

impl DeviceKeys {
    /// `init`: make the keys. With a TPM they go into it; without one only if
    /// `allow_file_keys`.
    pub fn create(
        data_dir: &Path,
        allow_file_keys: bool,
        pcrs: &str,
    ) -> Result<DeviceKeys, KeyError> {
        if let Some(how) = enrolled_here()? {
            return Err(KeyError::NotAsEnrolled(format!(
                "{how}; wipe it before enrolling again"
            )));
        }
        create_private_dir(data_dir)?;
        let keys = if tpm::tpm_present() {
            let token = tpm::TpmToken::create(&data_dir.join(TPM_DIR), pcrs)?;
            // the enrolment goes where no file edit reaches: the TPM's NV, bound to the
            // files key (so a second token made later in the same TPM is not this one)
            tpm_boot::TpmTools::new().record_enrolment(&files_key_digest(&token)?)?;
            DeviceKeys::Tpm {
                data_dir: data_dir.to_path_buf(),
                token: Arc::new(token),
            }
        } else if allow_file_keys {
            let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
                .map_err(|e| KeyError::Tpm(e.to_string()))?;
            write_private(
                &data_dir.join(UNIT_KEY_FILE),
                key.serialize_pem().as_bytes(),
            )?;
            write_private(&data_dir.join(FILES_KEY_FILE), random32()?.as_ref())?;
            DeviceKeys::File {
                data_dir: data_dir.to_path_buf(),
            }
        } else {
            return Err(KeyError::NoTpm);
        };
        let store_key = random32()?;
        keys.write_store_key(store_key.as_ref())?;
        Ok(keys)
    }

    /// Open the keys `create` made.
    pub fn open(data_dir: &Path) -> Result<DeviceKeys, KeyError> {
        let tpm_dir = data_dir.join(TPM_DIR);
        let enrolled = enrolled_here()?;
        if [tpm_boot::SEALED_PCRS, tpm::LEGACY_PIN_FILE]
            .iter()
            .any(|f| std::fs::symlink_metadata(tpm_dir.join(f)).is_ok())
        {
            let token = tpm::TpmToken::open(&tpm_dir)?;
            if tpm::tpm_present()
                && let Some(recorded) = tpm_boot::TpmTools::new().enrolment()?
                && recorded != files_key_digest(&token)?
            {
                return Err(KeyError::NotAsEnrolled(
                    "the token in the data dir is not the one its TPM enrolled".into(),
                ));
            }
            Ok(DeviceKeys::Tpm {
                data_dir: data_dir.to_path_buf(),
                token: Arc::new(token),
            })
        } else if let Some(how) = enrolled {
            Err(KeyError::NotAsEnrolled(format!(
                "{how}, and its data dir has no TPM token (file keys are refused)"
            )))
        } else if [UNIT_KEY_FILE, STORE_KEY_FILE]
            .iter()
            .any(|f| std::fs::symlink_metadata(data_dir.join(f)).is_ok())
        {
            // file keys; a training dir has only the store key (its unit key is the
            // development PKI's)
            Ok(DeviceKeys::File {
                data_dir: data_dir.to_path_buf(),
            })
        } else {
            Err(KeyError::Missing(format!(
                "no device keys in {} (neither {TPM_DIR}/ nor {UNIT_KEY_FILE} nor {STORE_KEY_FILE})",
                data_dir.display()
            )))
        }
    }

    /// The token's secret, unsealed by the TPM again, for the one other program that logs
    /// in to the token (charon, through `ipsec-load`); `None` with file keys.
    pub fn token_secret(&self) -> Result<Option<Zeroizing<Vec<u8>>>, KeyError> {
        match self {
            DeviceKeys::Tpm { data_dir, .. } => tpm_boot::TpmTools::new()
                .unseal(&data_dir.join(TPM_DIR))
                .map(Some),
            DeviceKeys::File { .. } => Ok(None),
        }
    }

    pub fn protection(&self) -> KeyProtection {
        match self {
            DeviceKeys::Tpm { .. } => KeyProtection::Tpm,
            DeviceKeys::File { .. } => KeyProtection::File,
        }
    }

    fn data_dir(&self) -> &Path {
        match self {
            DeviceKeys::Tpm { data_dir, .. } | DeviceKeys::File { data_dir } => data_dir,
        }
    }

    fn write_store_key(&self, key: &[u8]) -> Result<(), KeyError> {
        let path = self.data_dir().join(STORE_KEY_FILE);
        match self {
            DeviceKeys::Tpm { token, .. } => write_private(&path, &token.wrap(key)?),
            DeviceKeys::File { .. } => write_private(&path, key),
        }
    }

    /// The store's sealing key (unwrapped by the TPM where there is one).
    pub fn store_key(&self) -> Result<Zeroizing<[u8; 32]>, KeyError> {
        let path = self.data_dir().join(STORE_KEY_FILE);
        let on_disk = read_private(&path)?;
        let plain = match self {
            DeviceKeys::Tpm { token, .. } => {
                token.unwrap(&on_disk).map_err(|e| KeyError::File {
                    path: path.clone(),
                    reason: format!(
                        "the TPM cannot unwrap it (replaced, or another device's): {e}"
                    ),
                })?
            }
            DeviceKeys::File { .. } => on_disk,
        };
        let arr: [u8; 32] = plain.as_slice().try_into().map_err(|_| KeyError::File {
            path,
            reason: format!("expected a 32-byte key, found {} bytes", plain.len()),
        })?;
        Ok(Zeroizing::new(arr))
    }

    /// The unit key's SubjectPublicKeyInfo (DER): what the issued certificate must carry.
    pub fn unit_spki(&self) -> Result<Vec<u8>, KeyError> {
        match self {
            DeviceKeys::Tpm { token, .. } => Ok(p256_spki(&token.ec_point(tpm::UNIT_KEY_LABEL)?)),
            DeviceKeys::File { .. } => Ok(rcgen::PublicKeyData::subject_public_key_info(
                &self.unit_key_pair()?,
            )),
        }
    }

    fn unit_key_pair(&self) -> Result<rcgen::KeyPair, KeyError> {
        let path = self.data_dir().join(UNIT_KEY_FILE);
        let pem = read_private(&path)?;
        rcgen::KeyPair::from_pem(&String::from_utf8_lossy(&pem)).map_err(|e| KeyError::File {
            path,
            reason: e.to_string(),
        })
    }

    /// A CSR for the unit certificate, signed by the unit key (inside the TPM).
    pub fn unit_csr_pem(&self, params: &rcgen::CertificateParams) -> Result<String, KeyError> {
        let csr = match self {
            DeviceKeys::Tpm { token, .. } => {
                let signer = TpmSigner::new(token.clone(), tpm::UNIT_KEY_LABEL)?;
                params.serialize_request(&signer)
            }
            DeviceKeys::File { .. } => params.serialize_request(&self.unit_key_pair()?),
        };
        csr.and_then(|c| c.pem())
            .map_err(|e| KeyError::Tpm(format!("CSR: {e}")))
    }

    /// The unit key as rustls wants it for client authentication.
    pub fn unit_tls_key(&self) -> Result<UnitTlsKey, KeyError> {
        match self {
            DeviceKeys::Tpm { token, .. } => Ok(UnitTlsKey::Signer(Arc::new(TpmSigner::new(
                token.clone(),
                tpm::UNIT_KEY_LABEL,
            )?))),
            DeviceKeys::File { .. } => {
                let path = self.data_dir().join(UNIT_KEY_FILE);
                let pem = read_private(&path)?;
                use rustls::pki_types::pem::PemObject;
                rustls::pki_types::PrivateKeyDer::from_pem_slice(&pem)
                    .map(UnitTlsKey::Der)
                    .map_err(|e| KeyError::File {
                        path,
                        reason: e.to_string(),
                    })
            }
        }
    }

    /// ECDSA P-256 with SHA-256 over `msg` by the unit key (inside the TPM where it lives
    /// there), DER: what an audit bundle's records and the bundle itself are signed with.
    pub fn sign_with_unit_key(&self, msg: &[u8]) -> Result<Vec<u8>, KeyError> {
        match self {
            DeviceKeys::Tpm { token, .. } => {
                TpmSigner::new(token.clone(), tpm::UNIT_KEY_LABEL)?.sign_der(msg)
            }
            DeviceKeys::File { .. } => {
                let pair = self.unit_key_pair()?;
                let rng = ring::rand::SystemRandom::new();
                let signer = ring::signature::EcdsaKeyPair::from_pkcs8(
                    &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
                    &pair.serialize_der(),
                    &rng,
                )
                .map_err(|e| KeyError::Tpm(format!("unit key: {e}")))?;
                signer
                    .sign(&rng, msg)
                    .map(|s| s.as_ref().to_vec())
                    .map_err(|e| KeyError::Tpm(format!("signing: {e}")))
            }
        }
    }

    /// The TPM token, for the checks `status` and the tests make.
    pub fn token(&self) -> Option<&tpm::TpmToken> {
        match self {
            DeviceKeys::Tpm { token, .. } => Some(token),
            DeviceKeys::File { .. } => None,
        }
    }

    /// Wipe the keys: the TPM's objects first (every sealed byte is then unreadable,
    /// whatever the flash keeps), then the key files. Returns what was destroyed.
    pub fn destroy(self) -> Result<Vec<String>, KeyError> {
        let mut gone = vec![];
        let dir = self.data_dir().to_path_buf();
        if let DeviceKeys::Tpm { token, .. } = &self {
            let n = token.destroy_all()?;
            gone.push(format!("{n} TPM objects of token {:?}", tpm::TOKEN_LABEL));
        }
        drop(self);
        for name in [STORE_KEY_FILE, UNIT_KEY_FILE, FILES_KEY_FILE, MANIFEST_FILE] {
            if destroy_private(&dir.join(name))? {
                gone.push(name.to_string());
            }
        }
        let tpm_dir = dir.join(TPM_DIR);
        if tpm_dir.exists() {
            for name in [
                tpm::LEGACY_PIN_FILE,
                tpm::STORE_DB,
                tpm_boot::SEALED_PUB,
                tpm_boot::SEALED_PRIV,
                tpm_boot::SEALED_PCRS,
            ] {
                destroy_private(&tpm_dir.join(name))?;
            }
            std::fs::remove_dir_all(&tpm_dir).map_err(|e| KeyError::File {
                path: tpm_dir.clone(),
                reason: e.to_string(),
            })?;
            gone.push(format!("{TPM_DIR}/"));
        }
        Ok(gone)
    }
}

#[cfg(test)]
mod tests;
