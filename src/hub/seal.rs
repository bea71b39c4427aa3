//! The hub's sealing at rest: every case is sealed under a key of its own (ChaCha20-Poly1305,
//! the case id as authenticated data), and that case key is sealed under the hub's master
//! key, which lives outside the data dir (a systemd credential, or a file on another
//! path). Destroying a case deletes its row with its case key: with SQLite's
//! `secure_delete` the bytes are overwritten, and even a copy taken before holds nothing
//! the master key alone opens once the case key is gone.

use super::HubError;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use std::path::Path;
use zeroize::Zeroizing;

const NONCE: usize = 12;
const TAG: usize = 16;

/// A 256-bit AEAD key (the master key, or one case's key).
pub struct SealKey(Zeroizing<[u8; 32]>);

impl SealKey {
    pub fn generate() -> SealKey {
        let mut k = Zeroizing::new([0u8; 32]);
        // without the OS random source the hub cannot seal anything: not recoverable
        getrandom::fill(k.as_mut()).expect("the OS random source");
        SealKey(k)
    }

    /// The master key from `path`, created (0600, parent 0700) when missing. A file that
    /// others can read, or of the wrong length, is refused.
    pub fn load_or_create(path: &Path) -> Result<SealKey, HubError> {
        use std::os::unix::fs::PermissionsExt;
        let err = |reason: String| HubError::SealKey(path.display().to_string(), reason);
        if !path.exists() {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
            }
            let key = SealKey::generate();
            crate::files::write_private(path, key.0.as_ref()).map_err(|e| err(e.to_string()))?;
            return Ok(key);
        }
        let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(err("readable by group or others; expected mode 0600".into()));
        }
        let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| err(e.to_string()))?);
        Self::from_slice(&bytes)
            .ok_or_else(|| err(format!("expected 32 bytes, found {}", bytes.len())))
    }

    pub fn from_slice(bytes: &[u8]) -> Option<SealKey> {
        let arr: [u8; 32] = bytes.try_into().ok()?;
        Some(SealKey(Zeroizing::new(arr)))
    }

    pub fn bytes(&self) -> &[u8] {
        self.0.as_ref()
    }

    /// nonce ‖ ciphertext+tag, `aad` authenticated.
    pub fn seal(&self, aad: &[u8], plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE];
        getrandom::fill(&mut nonce).expect("the OS random source");
        let cipher = ChaCha20Poly1305::new(Key::from_slice(self.0.as_ref()));
        // encryption with a valid key and nonce cannot fail (the length is far below the limit)
        let ct = cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plain, aad })
            .expect("ChaCha20-Poly1305 seals any buffer under 256 GiB");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        out
    }

    /// The plain bytes, or None when `sealed` was altered, moved to another `aad`, or sealed
    /// under another key.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        if sealed.len() < NONCE + TAG {
            return None;
        }
        let (nonce, ct) = sealed.split_at(NONCE);
        let cipher = ChaCha20Poly1305::new(Key::from_slice(self.0.as_ref()));
        cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
            .ok()
            .map(Zeroizing::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_its_aad() {
        let k = SealKey::generate();
        let s = k.seal(b"case-1", b"chest pain");
        assert_eq!(
            k.open(b"case-1", &s).as_deref().map(|v| v.as_slice()),
            Some(&b"chest pain"[..])
        );
        assert!(k.open(b"case-2", &s).is_none());
        assert!(SealKey::generate().open(b"case-1", &s).is_none());
        let mut bent = s.clone();
        bent[20] ^= 1;
        assert!(k.open(b"case-1", &bent).is_none());
        assert!(!s.windows(5).any(|w| w == b"chest"));
    }

    #[test]
    fn a_key_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("keys/seal.key");
        let a = SealKey::load_or_create(&p).unwrap();
        let b = SealKey::load_or_create(&p).unwrap();
        assert_eq!(a.bytes(), b.bytes());
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            SealKey::load_or_create(&p),
            Err(HubError::SealKey(..))
        ));
    }
}
