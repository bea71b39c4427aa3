//! The device key and the AEAD that seals every stored value.
//!
//! ChaCha20-Poly1305 with a random 96-bit nonce per value; the tree name and the key the
//! value is stored under are authenticated data, so a value moved to another slot (or
//! another tree) fails to open just like an altered one.

use super::StoreError;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use std::path::Path;
use zeroize::Zeroizing;

/// The store's key: 32 random bytes in a file readable only by the app's user.
pub struct StoreKey(Zeroizing<[u8; 32]>);

impl StoreKey {
    /// A key handed over by [`crate::keys::DeviceKeys::store_key`] (unwrapped by the TPM).
    pub fn from_bytes(bytes: &[u8; 32]) -> StoreKey {
        StoreKey(Zeroizing::new(*bytes))
    }

    /// A key for another purpose derived from this one (HMAC-SHA256 over `label`): the
    /// roster's key is one, so it is as safe as the store key (TPM-wrapped on a tablet)
    /// and needs no file of its own.
    pub fn subkey(&self, label: &[u8]) -> Zeroizing<[u8; 32]> {
        let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, self.0.as_ref());
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(ring::hmac::sign(&k, label).as_ref());
        out
    }

    pub fn generate() -> Result<StoreKey, StoreError> {
        let mut k = Zeroizing::new([0u8; 32]);
        getrandom::fill(k.as_mut()).map_err(|e| StoreError::Key {
            path: "(random)".into(),
            reason: e.to_string(),
        })?;
        Ok(StoreKey(k))
    }

    /// Read the key file, refusing one that others can read.
    pub fn load(path: &Path) -> Result<StoreKey, StoreError> {
        use std::os::unix::fs::PermissionsExt;
        let err = |reason: String| StoreError::Key {
            path: path.display().to_string(),
            reason,
        };
        let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(err("readable by group or others; expected mode 0600".into()));
        }
        let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| err(e.to_string()))?);
        let arr: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| err(format!("expected 32 bytes, found {}", bytes.len())))?;
        Ok(StoreKey(Zeroizing::new(arr)))
    }

    /// Write a new key file (0600). Fails if one exists: a key is never silently replaced.
    pub fn create(path: &Path) -> Result<StoreKey, StoreError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let err = |reason: String| StoreError::Key {
            path: path.display().to_string(),
            reason,
        };
        let key = StoreKey::generate()?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| err(e.to_string()))?;
        f.write_all(key.0.as_ref())
            .map_err(|e| err(e.to_string()))?;
        f.sync_all().map_err(|e| err(e.to_string()))?;
        Ok(key)
    }

    /// Load the key, or create it if there is none yet (training mode's first run).
    pub fn load_or_create(path: &Path) -> Result<StoreKey, StoreError> {
        if path.exists() {
            StoreKey::load(path)
        } else {
            StoreKey::create(path)
        }
    }

    /// Crypto-erase: overwrite and remove the key file; whatever it sealed is unreadable.
    pub fn destroy(path: &Path) -> Result<(), StoreError> {
        let err = |reason: String| StoreError::Key {
            path: path.display().to_string(),
            reason,
        };
        if let Ok(meta) = std::fs::metadata(path) {
            let zeros = vec![0u8; meta.len() as usize];
            std::fs::write(path, zeros).map_err(|e| err(e.to_string()))?;
            std::fs::remove_file(path).map_err(|e| err(e.to_string()))?;
        }
        Ok(())
    }
}

/// The random source, with a switch for the test that proves a failing source is an error.
fn fill_random(buf: &mut [u8]) -> Result<(), String> {
    #[cfg(test)]
    if FAIL_RANDOM.with(|f| f.get()) {
        return Err("random source failed (test switch)".into());
    }
    getrandom::fill(buf).map_err(|e| format!("random source failed: {e}"))
}

#[cfg(test)]
thread_local! {
    pub(super) static FAIL_RANDOM: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

pub(super) struct Sealer {
    cipher: ChaCha20Poly1305,
}

impl Sealer {
    pub(super) fn new(key: &StoreKey) -> Sealer {
        Sealer {
            cipher: ChaCha20Poly1305::new(Key::from_slice(key.0.as_ref())),
        }
    }

    /// A fresh random key (a day key), as raw bytes to be sealed under the store key.
    pub(super) fn random_key() -> Result<Zeroizing<[u8; 32]>, StoreError> {
        let mut k = Zeroizing::new([0u8; 32]);
        fill_random(k.as_mut()).map_err(StoreError::Seal)?;
        Ok(k)
    }

    fn aad(tree: &[u8], key: &[u8]) -> Vec<u8> {
        let mut aad = Vec::with_capacity(tree.len() + key.len() + 1);
        aad.extend_from_slice(tree);
        aad.push(0);
        aad.extend_from_slice(key);
        aad
    }

    /// nonce ‖ ciphertext+tag. A failed random source is an error, never a fixed nonce
    /// (a repeated nonce under one key gives away both plaintexts' XOR and the MAC key).
    pub(super) fn seal(
        &self,
        tree: &[u8],
        key: &[u8],
        plain: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        let mut nonce = [0u8; 12];
        fill_random(&mut nonce).map_err(StoreError::Seal)?;
        let aad = Self::aad(tree, key);
        let ct = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: &aad,
                },
            )
            .map_err(|_| StoreError::Seal("the AEAD refused to seal".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(out)
    }

    pub(super) fn open(&self, tree: &[u8], key: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < 12 + 16 {
            return None;
        }
        let (nonce, ct) = sealed.split_at(12);
        let aad = Self::aad(tree, key);
        self.cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: &aad })
            .ok()
    }
}
