//! The integrity manifest (`integrity.json`): the SHA-256 of every protected configuration
//! file, signed by the TPM's files key (or MAC'd with the file key); checked at start and
//! by `status`, signed again by every admin change.

use super::*;

#[derive(serde::Serialize, serde::Deserialize)]
struct Manifest {
    protection: KeyProtection,
    files: BTreeMap<String, String>,
    /// Hex: ECDSA P-256 r ‖ s by the TPM's files key, or HMAC-SHA256 with the file key.
    tag: String,
}

impl DeviceKeys {
    pub(super) fn manifest_body(files: &BTreeMap<String, String>) -> Vec<u8> {
        // BTreeMap: a stable order, so the same files give the same bytes
        serde_json::to_vec(files).unwrap_or_default()
    }

    pub(super) fn hash_files(
        data_dir: &Path,
        names: &[&str],
    ) -> Result<BTreeMap<String, String>, KeyError> {
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

    pub(super) fn tag(&self, body: &[u8]) -> Result<Vec<u8>, KeyError> {
        match self {
            DeviceKeys::Tpm { token, .. } => token.sign_p256(tpm::FILES_KEY_LABEL, body),
            DeviceKeys::File { data_dir } => {
                let key = read_private(&data_dir.join(FILES_KEY_FILE))?;
                let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
                Ok(ring::hmac::sign(&k, body).as_ref().to_vec())
            }
        }
    }

    pub(super) fn check_tag(&self, body: &[u8], tag: &[u8]) -> Result<bool, KeyError> {
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
}
