//! The crew roster (隊員名簿): who may sign in on this tablet and who may view.
//!
//! The admin keeps it with `mynakyukyu-admin crew …`; the app checks sign-ins against it.
//! PINs are 6 to 12 digits, stored only as Argon2id hashes keyed with a secret of the
//! device ([`RosterKey`], a subkey of the store key, which the TPM unwraps on an enrolled
//! tablet): the roster file alone, copied off the tablet, cannot be cracked offline. The
//! failure counts carry a MAC under the same key, so an edited counter file (`{}`) is a
//! broken one, and breaks open no lock. Five wrong PINs lock a crew id,
//! and each lock after the first is longer ([`LOCKOUT_STEPS_MS`]: 5 minutes, then an hour),
//! until the third needs an admin (`mynakyukyu-admin crew unlock`). The counts live in a
//! small file beside the roster so that a restart does not reset them; a missing or broken
//! counter file reads as every id locked (deleting it must not be a way around the lock).
//! The counts are read from the file at every sign-in, so `crew unlock` takes effect in a
//! running app.
//! A lock's time runs on the boot clock while the tablet stays up, so setting the wall clock
//! forward does not shorten it. An id not on the roster costs one Argon2 verification like a
//! listed one, is counted and locked like one, and gets the same message, so neither time
//! nor text tells them apart. Logs name a crew id only by a keyed fingerprint.

use crate::domain::Timestamp;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use thiserror::Error;
use zeroize::Zeroizing;

mod gate;
pub use gate::{BootInstant, Clocks, SignInGate, SignedIn, counts_intact, unlock};
use gate::{failures_path, write_failures};

/// Wrong PINs in a row before a crew id is locked.
pub const MAX_PIN_FAILURES: u32 = 5;
/// How long a crew id stays locked after [`MAX_PIN_FAILURES`]: the first lock, then the
/// second; the lock after that lasts until an admin unlocks the id.
pub const LOCKOUT_STEPS_MS: [i64; 2] = [5 * 60 * 1000, 60 * 60 * 1000];
/// The first lock's length.
pub const LOCKOUT_MS: i64 = LOCKOUT_STEPS_MS[0];
/// PIN length in digits.
pub const PIN_DIGITS: std::ops::RangeInclusive<usize> = 6..=12;

#[derive(Debug, Error)]
pub enum RosterError {
    #[error("cannot read or write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("roster file {path} is not valid: {message}")]
    Malformed { path: PathBuf, message: String },
    #[error("crew id {0:?} is not valid (1–32 letters, digits, '-' or '_')")]
    BadCrewId(String),
    #[error("a PIN is 6 to 12 digits")]
    BadPin,
    #[error("crew id {0} is already on the roster")]
    AlreadyListed(String),
    #[error("crew id {0} is not on the roster")]
    NotListed(String),
    #[error("crew id or PIN is wrong ({tries_left} tries left before the lock)")]
    WrongPin { tries_left: u32 },
    #[error("crew id is locked after {MAX_PIN_FAILURES} wrong PINs; try again in {seconds_left} s")]
    Locked { seconds_left: i64 },
    #[error("crew id is locked until an admin unlocks it ({reason})")]
    LockedForAdmin { reason: String },
    #[error("cannot hash the PIN: {0}")]
    Hash(String),
}

impl RosterError {
    /// The sign-in screen's message.
    pub fn message_ja(&self) -> String {
        match self {
            RosterError::WrongPin { tries_left } => {
                format!("隊員IDまたはPINが違います（あと{tries_left}回でロック）。")
            }
            RosterError::NotListed(_) => "隊員IDまたはPINが違います。".to_string(),
            RosterError::Locked { seconds_left } => format!(
                "PINを{MAX_PIN_FAILURES}回間違えたためロック中です。{}分後に再試行してください。",
                (seconds_left + 59) / 60
            ),
            RosterError::LockedForAdmin { .. } => {
                "この隊員IDはロックされています。管理者に解除を依頼してください。".to_string()
            }
            RosterError::BadPin => "PINは6〜12桁の数字です。".to_string(),
            RosterError::BadCrewId(_) => "隊員IDを入力してください。".to_string(),
            _ => "名簿を読み込めません。管理者に連絡してください。".to_string(),
        }
    }
}

/// The device's key for the roster: Argon2's secret for PIN hashes, the counter file's MAC
/// key, the key of log fingerprints (each a subkey of it).
#[derive(Clone)]
pub struct RosterKey(Zeroizing<[u8; 32]>);

impl fmt::Debug for RosterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RosterKey(..)")
    }
}

/// The label of the store key's subkey that is the roster's key.
pub const KEY_LABEL: &[u8] = b"mynakyukyu roster key v1";

impl RosterKey {
    /// From a 32-byte secret of the device (the store key's subkey [`KEY_LABEL`]).
    pub fn from_secret(secret: Zeroizing<[u8; 32]>) -> RosterKey {
        RosterKey(secret)
    }

    fn sub(&self, label: &[u8]) -> Zeroizing<[u8; 32]> {
        let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, self.0.as_ref());
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(ring::hmac::sign(&k, label).as_ref());
        out
    }

    fn argon2(&self) -> Result<(Zeroizing<[u8; 32]>, Params), RosterError> {
        Ok((self.sub(b"mynakyukyu roster pin v1"), Params::default()))
    }

    fn counts_mac(&self, bytes: &[u8]) -> String {
        let k = ring::hmac::Key::new(
            ring::hmac::HMAC_SHA256,
            self.sub(b"mynakyukyu roster counts v1").as_ref(),
        );
        hex::encode(ring::hmac::sign(&k, bytes))
    }

    /// What a log line may say of a crew id: a keyed fingerprint (the id as typed never
    /// reaches the journal, nor a PIN typed in its place).
    pub fn fingerprint(&self, crew_id: &str) -> String {
        let k = ring::hmac::Key::new(
            ring::hmac::HMAC_SHA256,
            self.sub(b"mynakyukyu roster log v1").as_ref(),
        );
        hex::encode(&ring::hmac::sign(&k, crew_id.as_bytes()).as_ref()[..6])
    }
}

/// The mark of a PIN hash keyed with the [`RosterKey`] (before the PHC string).
const KEYED: &str = "k1";

/// One crew member on the roster.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CrewMember {
    pub id: String,
    pub name: String,
    /// Only members with viewing permission may view patients' information.
    pub can_view: bool,
    /// `k1` and an Argon2id PHC string keyed with the [`RosterKey`] (a bare PHC string:
    /// unkeyed, from before keys; it still verifies, and `status` warns).
    pub pin_hash: String,
}

impl fmt::Debug for CrewMember {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CrewMember({}, can_view: {})", self.id, self.can_view)
    }
}

/// A crew member as the sign-in screen shows them: a button to tap, nothing secret.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CrewEntry {
    pub id: String,
    pub name: String,
}

/// The roster file (`roster.toml` in the data dir).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Roster {
    #[serde(default)]
    pub crew: Vec<CrewMember>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RosterError + '_ {
    move |source| RosterError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn check_crew_id(id: &str) -> Result<(), RosterError> {
    let ok = !id.is_empty()
        && id.len() <= 32
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(RosterError::BadCrewId(id.to_string()))
    }
}

/// Hash a PIN with Argon2id (the crate's default parameters), a fresh salt and the
/// device's key as Argon2's secret.
pub fn hash_pin(pin: &str, key: &RosterKey) -> Result<String, RosterError> {
    if !PIN_DIGITS.contains(&pin.len()) || !pin.chars().all(|c| c.is_ascii_digit()) {
        return Err(RosterError::BadPin);
    }
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| RosterError::Hash(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| RosterError::Hash(e.to_string()))?;
    let (secret, params) = key.argon2()?;
    Argon2::new_with_secret(secret.as_ref(), Algorithm::Argon2id, Version::V0x13, params)
        .map_err(|e| RosterError::Hash(e.to_string()))?
        .hash_password(pin.as_bytes(), &salt)
        .map(|h| format!("{KEYED}{h}"))
        .map_err(|e| RosterError::Hash(e.to_string()))
}

/// A hash no PIN matches, verified against for ids not on the roster so they cost the
/// same Argon2 time as listed ones.
fn decoy_hash(key: &RosterKey) -> String {
    // a PIN of letters never passes `hash_pin`'s rule, so no one can type it
    let salt = SaltString::encode_b64(b"mynakyukyu-decoy")
        .unwrap_or_else(|_| SaltString::from_b64("bXluYWt5dWt5dWRlY295").expect("constant salt"));
    key.argon2()
        .ok()
        .and_then(|(secret, params)| {
            Argon2::new_with_secret(secret.as_ref(), Algorithm::Argon2id, Version::V0x13, params)
                .ok()?
                .hash_password(b"not-a-pin", &salt)
                .ok()
                .map(|h| format!("{KEYED}{h}"))
        })
        .unwrap_or_default()
}

/// Whether `pin` is the one `hash` was made from (a keyed hash with `key`; an unkeyed one
/// from before keys without it).
pub fn pin_matches(pin: &str, hash: &str, key: &RosterKey) -> bool {
    let (keyed, phc) = match hash.strip_prefix(KEYED) {
        Some(rest) => (true, rest),
        None => (false, hash),
    };
    let Ok(h) = PasswordHash::new(phc) else {
        return false;
    };
    if keyed {
        let Ok((secret, params)) = key.argon2() else {
            return false;
        };
        Argon2::new_with_secret(secret.as_ref(), Algorithm::Argon2id, Version::V0x13, params)
            .map(|a| a.verify_password(pin.as_bytes(), &h).is_ok())
            .unwrap_or(false)
    } else {
        Argon2::default()
            .verify_password(pin.as_bytes(), &h)
            .is_ok()
    }
}

/// Whether a stored hash is keyed with the device's key.
pub fn is_keyed(hash: &str) -> bool {
    hash.starts_with(KEYED)
}

impl Roster {
    /// Load the roster; a missing file is an empty roster.
    pub fn load(path: &Path) -> Result<Roster, RosterError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Roster::default()),
            Err(e) => return Err(io(path)(e)),
        };
        Roster::parse(&text).map_err(|message| RosterError::Malformed {
            path: path.to_path_buf(),
            message,
        })
    }

    /// A roster file's text: TOML, every crew id checked (the fuzz target `config_toml`
    /// feeds it anything).
    pub fn parse(text: &str) -> Result<Roster, String> {
        let roster: Roster = toml::from_str(text).map_err(|e| e.to_string())?;
        for m in &roster.crew {
            check_crew_id(&m.id).map_err(|e| e.to_string())?;
        }
        Ok(roster)
    }

    /// Save the roster. The first save also starts the PIN-failure counter file: from then
    /// on a missing counter file means someone removed it, and every id reads as locked.
    pub fn save(&self, path: &Path, key: &RosterKey) -> Result<(), RosterError> {
        let text = toml::to_string(self).map_err(|e| RosterError::Malformed {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        crate::files::write_private(path, text.as_bytes()).map_err(io(path))?;
        let counts = failures_path(path);
        if !counts.exists() {
            write_failures(&counts, &BTreeMap::new(), key)?;
        }
        Ok(())
    }

    pub fn add(
        &mut self,
        id: &str,
        name: &str,
        pin: &str,
        can_view: bool,
        key: &RosterKey,
    ) -> Result<(), RosterError> {
        check_crew_id(id)?;
        if self.member(id).is_some() {
            return Err(RosterError::AlreadyListed(id.to_string()));
        }
        self.crew.push(CrewMember {
            id: id.to_string(),
            name: name.to_string(),
            can_view,
            pin_hash: hash_pin(pin, key)?,
        });
        Ok(())
    }

    pub fn remove(&mut self, id: &str) -> Result<CrewMember, RosterError> {
        let at = self
            .crew
            .iter()
            .position(|m| m.id == id)
            .ok_or_else(|| RosterError::NotListed(id.to_string()))?;
        Ok(self.crew.remove(at))
    }

    /// The sign-in screen's list: each member's id and name, in the roster's order (the
    /// admin's). No hash and no permission leave this module through it.
    pub fn sign_in_list(&self) -> Vec<CrewEntry> {
        self.crew
            .iter()
            .map(|m| CrewEntry {
                id: m.id.clone(),
                name: m.name.clone(),
            })
            .collect()
    }

    pub fn member(&self, id: &str) -> Option<&CrewMember> {
        self.crew.iter().find(|m| m.id == id)
    }
}

#[cfg(test)]
mod tests;
