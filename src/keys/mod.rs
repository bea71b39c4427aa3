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

pub mod tpm;
pub mod tpm_boot;

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
            Some(40) => err("is a symbolic link; refusing to follow it".into()),
            Some(2) => KeyError::Missing(path.display().to_string()),
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
        Err(e) if e.raw_os_error() == Some(40) => {
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

    // -- the integrity manifest --------------------------------------------------------

    fn manifest_body(files: &BTreeMap<String, String>) -> Vec<u8> {
        // BTreeMap: a stable order, so the same files give the same bytes
        serde_json::to_vec(files).unwrap_or_default()
    }

    fn hash_files(data_dir: &Path, names: &[&str]) -> Result<BTreeMap<String, String>, KeyError> {
        use sha2::Digest;
        let mut files = BTreeMap::new();
        for name in names {
            let path = data_dir.join(name);
            match std::fs::symlink_metadata(&path) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(KeyError::Tampered {
                        file: name.to_string(),
                        reason: "it is a symbolic link".into(),
                    });
                }
                Ok(_) => {
                    let bytes = std::fs::read(&path).map_err(|e| KeyError::File {
                        path: path.clone(),
                        reason: e.to_string(),
                    })?;
                    files.insert(name.to_string(), hex::encode(sha2::Sha256::digest(&bytes)));
                }
                Err(_) => {}
            }
        }
        Ok(files)
    }

    /// Sign the manifest of the protected files that exist now (every admin change ends
    /// with this).
    pub fn seal_files(&self, names: &[&str]) -> Result<(), KeyError> {
        let files = Self::hash_files(self.data_dir(), names)?;
        let body = Self::manifest_body(&files);
        let tag = self.tag(&body)?;
        let manifest = Manifest {
            protection: self.protection(),
            files,
            tag: hex::encode(tag),
        };
        write_private(
            &self.data_dir().join(MANIFEST_FILE),
            &serde_json::to_vec_pretty(&manifest).unwrap_or_default(),
        )
    }

    /// Check the protected files against the signed manifest: any file changed, added,
    /// removed or swapped for a link is refused, naming it.
    pub fn verify_files(&self, names: &[&str]) -> Result<(), KeyError> {
        let path = self.data_dir().join(MANIFEST_FILE);
        let text = read_private(&path).map_err(|e| KeyError::Tampered {
            file: MANIFEST_FILE.into(),
            reason: e.to_string(),
        })?;
        let manifest: Manifest = serde_json::from_slice(&text).map_err(|e| KeyError::Tampered {
            file: MANIFEST_FILE.into(),
            reason: format!("not a manifest: {e}"),
        })?;
        if manifest.protection != self.protection() {
            return Err(KeyError::Tampered {
                file: MANIFEST_FILE.into(),
                reason: format!(
                    "it was signed with {} keys, the device has {} keys",
                    manifest.protection.as_str(),
                    self.protection().as_str()
                ),
            });
        }
        let tag = hex::decode(&manifest.tag).unwrap_or_default();
        if !self.check_tag(&Self::manifest_body(&manifest.files), &tag)? {
            return Err(KeyError::Tampered {
                file: MANIFEST_FILE.into(),
                reason: "its signature does not verify".into(),
            });
        }
        let now = Self::hash_files(self.data_dir(), names)?;
        for name in names {
            match (manifest.files.get(*name), now.get(*name)) {
                (Some(a), Some(b)) if a == b => {}
                (None, None) => {}
                (Some(_), Some(_)) => {
                    return Err(KeyError::Tampered {
                        file: name.to_string(),
                        reason: "its content differs from what the admin signed".into(),
                    });
                }
                (Some(_), None) => {
                    return Err(KeyError::Tampered {
                        file: name.to_string(),
                        reason: "it was removed".into(),
                    });
                }
                (None, Some(_)) => {
                    return Err(KeyError::Tampered {
                        file: name.to_string(),
                        reason: "it was added".into(),
                    });
                }
            }
        }
        Ok(())
    }

    fn tag(&self, body: &[u8]) -> Result<Vec<u8>, KeyError> {
        match self {
            DeviceKeys::Tpm { token, .. } => token.sign_p256(tpm::FILES_KEY_LABEL, body),
            DeviceKeys::File { data_dir } => {
                let key = read_private(&data_dir.join(FILES_KEY_FILE))?;
                let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
                Ok(ring::hmac::sign(&k, body).as_ref().to_vec())
            }
        }
    }

    fn check_tag(&self, body: &[u8], tag: &[u8]) -> Result<bool, KeyError> {
        match self {
            DeviceKeys::Tpm { token, .. } => {
                // verified in software against the public key the TPM holds
                let point = token.ec_point(tpm::FILES_KEY_LABEL)?;
                let key = ring::signature::UnparsedPublicKey::new(
                    &ring::signature::ECDSA_P256_SHA256_FIXED,
                    point,
                );
                Ok(key.verify(body, tag).is_ok())
            }
            DeviceKeys::File { data_dir } => {
                let key = read_private(&data_dir.join(FILES_KEY_FILE))?;
                let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
                Ok(ring::hmac::verify(&k, body, tag).is_ok())
            }
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

#[derive(serde::Serialize, serde::Deserialize)]
struct Manifest {
    protection: KeyProtection,
    files: BTreeMap<String, String>,
    /// Hex: ECDSA P-256 r ‖ s by the TPM's files key, or HMAC-SHA256 with the file key.
    tag: String,
}

/// The unit key for rustls: a PEM key's DER (file keys) or a signer in the TPM.
pub enum UnitTlsKey {
    Der(rustls::pki_types::PrivateKeyDer<'static>),
    Signer(Arc<dyn rustls::sign::SigningKey>),
}

impl std::fmt::Debug for UnitTlsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UnitTlsKey::Der(_) => f.write_str("UnitTlsKey::Der(..)"),
            UnitTlsKey::Signer(_) => f.write_str("UnitTlsKey::Signer(tpm)"),
        }
    }
}

pub use tpm::TpmSigner;

impl TpmSigner {
    pub fn new(token: Arc<tpm::TpmToken>, label: &'static str) -> Result<TpmSigner, KeyError> {
        let point = token.ec_point(label)?;
        Ok(TpmSigner {
            token,
            label,
            point,
        })
    }

    /// ECDSA-Sig-Value (DER) from the token's r ‖ s.
    fn sign_der(&self, msg: &[u8]) -> Result<Vec<u8>, KeyError> {
        let raw = self.token.sign_p256(self.label, msg)?;
        if raw.len() != 64 {
            return Err(KeyError::Tpm(format!(
                "ECDSA signature of {} bytes, expected 64",
                raw.len()
            )));
        }
        Ok(ecdsa_der(&raw[..32], &raw[32..]))
    }
}

/// DER SEQUENCE { INTEGER r, INTEGER s } from big-endian r and s.
pub fn ecdsa_der(r: &[u8], s: &[u8]) -> Vec<u8> {
    fn int(v: &[u8]) -> Vec<u8> {
        let mut v: &[u8] = v;
        while v.len() > 1 && v[0] == 0 {
            v = &v[1..];
        }
        let mut out = vec![0x02];
        if v[0] & 0x80 != 0 {
            out.push(v.len() as u8 + 1);
            out.push(0);
        } else {
            out.push(v.len() as u8);
        }
        out.extend_from_slice(v);
        out
    }
    let (r, s) = (int(r), int(s));
    let mut out = vec![0x30, (r.len() + s.len()) as u8];
    out.extend(r);
    out.extend(s);
    out
}

impl std::fmt::Debug for TpmSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TpmSigner({})", self.label)
    }
}

impl rcgen::PublicKeyData for TpmSigner {
    fn der_bytes(&self) -> &[u8] {
        &self.point
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

impl rcgen::SigningKey for TpmSigner {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.sign_der(msg).map_err(|e| {
            tracing::error!(error = %e, "TPM signature for the CSR failed");
            rcgen::Error::RemoteKeyError
        })
    }
}

impl rustls::sign::SigningKey for TpmSigner {
    fn choose_scheme(
        &self,
        offered: &[rustls::SignatureScheme],
    ) -> Option<Box<dyn rustls::sign::Signer>> {
        offered
            .contains(&rustls::SignatureScheme::ECDSA_NISTP256_SHA256)
            .then(|| Box::new(self.clone()) as Box<dyn rustls::sign::Signer>)
    }
    fn public_key(&self) -> Option<rustls::pki_types::SubjectPublicKeyInfoDer<'_>> {
        Some(p256_spki(&self.point).into())
    }
    fn algorithm(&self) -> rustls::SignatureAlgorithm {
        rustls::SignatureAlgorithm::ECDSA
    }
}

impl rustls::sign::Signer for TpmSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        self.sign_der(message)
            .map_err(|e| rustls::Error::General(e.to_string()))
    }
    fn scheme(&self) -> rustls::SignatureScheme {
        rustls::SignatureScheme::ECDSA_NISTP256_SHA256
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecdsa_der_matches_what_ring_verifies() {
        // sign with ring in fixed form, re-encode, verify as ASN.1
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &rng,
        )
        .unwrap();
        let kp = ring::signature::EcdsaKeyPair::from_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8.as_ref(),
            &rng,
        )
        .unwrap();
        use ring::signature::KeyPair;
        for i in 0..64u8 {
            let msg = [i; 40];
            let sig = kp.sign(&rng, &msg).unwrap();
            let der = ecdsa_der(&sig.as_ref()[..32], &sig.as_ref()[32..]);
            let pk = ring::signature::UnparsedPublicKey::new(
                &ring::signature::ECDSA_P256_SHA256_ASN1,
                kp.public_key().as_ref(),
            );
            assert!(pk.verify(&msg, &der).is_ok(), "round {i}");
        }
    }

    #[test]
    fn private_files_refuse_links_and_wide_modes() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("myna-keys-{}", std::process::id()));
        create_private_dir(&dir).unwrap();
        let f = dir.join("k");
        write_private(&f, b"secret").unwrap();
        assert_eq!(
            std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(read_private(&f).unwrap().as_slice(), b"secret");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(read_private(&f).unwrap_err().to_string().contains("0600"));
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        let link = dir.join("link");
        std::os::unix::fs::symlink(&f, &link).unwrap();
        assert!(
            read_private(&link)
                .unwrap_err()
                .to_string()
                .contains("symbolic link")
        );
        assert!(
            destroy_private(&link)
                .unwrap_err()
                .to_string()
                .contains("symbolic link")
        );
        assert!(f.exists(), "the link's target was not touched");
        assert!(write_private(&link, b"x").is_err());
        assert_eq!(read_private(&f).unwrap().as_slice(), b"secret");
        assert!(destroy_private(&f).unwrap());
        assert!(!destroy_private(&f).unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn file_keys_seal_and_verify_the_manifest() {
        let dir = std::env::temp_dir().join(format!("myna-manifest-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let keys = DeviceKeys::create(&dir, true, tpm_boot::DEFAULT_PCRS).unwrap();
        std::fs::write(dir.join("a.toml"), "x = 1").unwrap();
        keys.seal_files(&["a.toml", "b.pem"]).unwrap();
        keys.verify_files(&["a.toml", "b.pem"]).unwrap();
        std::fs::write(dir.join("a.toml"), "x = 2").unwrap();
        let e = keys.verify_files(&["a.toml", "b.pem"]).unwrap_err();
        assert!(e.to_string().contains("a.toml"), "{e}");
        std::fs::write(dir.join("a.toml"), "x = 1").unwrap();
        std::fs::write(dir.join("b.pem"), "new").unwrap();
        let e = keys.verify_files(&["a.toml", "b.pem"]).unwrap_err();
        assert!(
            e.to_string().contains("b.pem") && e.to_string().contains("added"),
            "{e}"
        );
        assert_eq!(keys.store_key().unwrap().len(), 32);
        let gone = DeviceKeys::open(&dir).unwrap().destroy().unwrap();
        assert!(gone.iter().any(|g| g == STORE_KEY_FILE), "{gone:?}");
        assert!(DeviceKeys::open(&dir).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
