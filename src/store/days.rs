//! Day keys: every record is sealed under the key of the UTC day it was appended, kept in
//! `keys/<day>.key` sealed under the store key, so that destroying a day's key is the end
//! of that day's records wherever their bytes linger (sled's log, flash blocks).

use super::*;

impl Store {
    pub(super) fn day_key_path(&self, day: u32) -> PathBuf {
        self.dir.join(DAY_KEYS_DIR).join(format!("{day}.key"))
    }

    /// The sealer of `day`: loaded from its key file, or (`create`) made and written durably
    /// before anything is sealed under it.
    pub(super) fn day_sealer(
        &self,
        day: u32,
        create: bool,
    ) -> Result<Option<std::sync::Arc<Sealer>>, StoreError> {
        let mut cache = self.day_sealers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = cache.get(&day) {
            return Ok(Some(s.clone()));
        }
        let path = self.day_key_path(day);
        let aad = format!("day-key\0{day}");
        let raw = match crate::keys::read_private(&path) {
            Ok(sealed) => {
                let plain = self.sealer.open(b"keys", aad.as_bytes(), &sealed).ok_or(
                    StoreError::Tampered {
                        tree: "keys",
                        key: day.to_string(),
                    },
                )?;
                let arr: [u8; 32] =
                    plain
                        .as_slice()
                        .try_into()
                        .map_err(|_| StoreError::Corrupt {
                            tree: "keys",
                            key: day.to_string(),
                            reason: "not a 32-byte key".into(),
                        })?;
                zeroize::Zeroizing::new(arr)
            }
            Err(crate::keys::KeyError::Missing(_)) if create => {
                let k = Sealer::random_key()?;
                let sealed = self.sealer.seal(b"keys", aad.as_bytes(), k.as_ref())?;
                crate::keys::create_private_dir(&self.dir.join(DAY_KEYS_DIR))
                    .and_then(|()| crate::keys::write_private(&path, &sealed))
                    .map_err(|e| StoreError::Key {
                        path: path.display().to_string(),
                        reason: e.to_string(),
                    })?;
                k
            }
            Err(crate::keys::KeyError::Missing(_)) => return Ok(None),
            Err(e) => {
                return Err(StoreError::Key {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                });
            }
        };
        let sealer = std::sync::Arc::new(Sealer::new(&StoreKey::from_bytes(&raw)));
        cache.insert(day, sealer.clone());
        Ok(Some(sealer))
    }

    /// Seal a record-tree value under the key of `day`.
    pub(super) fn seal_day(
        &self,
        day: u32,
        tree: &str,
        key: &[u8],
        plain: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        let sealer = self
            .day_sealer(day, true)?
            .ok_or_else(|| StoreError::Seal("day key missing".into()))?;
        let mut out = vec![DAY_SEALED];
        out.extend_from_slice(&day.to_be_bytes());
        out.extend(sealer.seal(tree.as_bytes(), key, plain)?);
        Ok(out)
    }

    /// Open a record-tree value: under its day key, or (older stores) the store key.
    /// `None` when it does not open (altered, or its day key destroyed).
    pub(super) fn open_day(
        &self,
        tree: &str,
        key: &[u8],
        sealed: &[u8],
    ) -> Result<Option<Vec<u8>>, StoreError> {
        if sealed.len() > 5
            && sealed[0] == DAY_SEALED
            && let Some(sealer) = self.day_sealer(
                u32::from_be_bytes([sealed[1], sealed[2], sealed[3], sealed[4]]),
                false,
            )?
            && let Some(plain) = sealer.open(tree.as_bytes(), key, &sealed[5..])
        {
            return Ok(Some(plain));
        }
        Ok(self.sealer.open(tree.as_bytes(), key, sealed))
    }

    /// The day a stored value names in its prefix (`None`: sealed under the store key).
    pub(super) fn value_day(sealed: &[u8]) -> Option<u32> {
        (sealed.len() > 5 && sealed[0] == DAY_SEALED)
            .then(|| u32::from_be_bytes([sealed[1], sealed[2], sealed[3], sealed[4]]))
    }

    pub(super) fn open_record(
        &self,
        key: &[u8],
        sealed: &[u8],
    ) -> Result<StoredRecord, StoreError> {
        let key_text = String::from_utf8_lossy(key).to_string();
        let plain = self
            .open_day("records", key, sealed)?
            .ok_or_else(|| StoreError::Tampered {
                tree: "records",
                key: key_text.clone(),
            })?;
        serde_json::from_slice(&plain).map_err(|e| StoreError::Corrupt {
            tree: "records",
            key: key_text,
            reason: e.to_string(),
        })
    }

    /// Serialise and seal; either failing is an error, never an empty value stored.
    pub(super) fn seal_json<T: Serialize>(
        &self,
        tree: &str,
        key: &[u8],
        value: &T,
    ) -> Result<Vec<u8>, StoreError> {
        let plain = zeroize::Zeroizing::new(
            serde_json::to_vec(value).map_err(|e| StoreError::Seal(e.to_string()))?,
        );
        self.sealer.seal(tree.as_bytes(), key, &plain)
    }

    pub(super) fn open_json<T: serde::de::DeserializeOwned>(
        &self,
        tree: &'static str,
        key: &[u8],
        sealed: &[u8],
    ) -> Result<T, StoreError> {
        let key_text = String::from_utf8_lossy(key).to_string();
        let plain = self
            .sealer
            .open(tree.as_bytes(), key, sealed)
            .ok_or_else(|| StoreError::Tampered {
                tree,
                key: key_text.clone(),
            })?;
        serde_json::from_slice(&plain).map_err(|e| StoreError::Corrupt {
            tree,
            key: key_text,
            reason: e.to_string(),
        })
    }
}
