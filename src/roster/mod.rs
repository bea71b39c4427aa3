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

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
struct Failures {
    /// Wrong PINs since the last lock (or the last good sign-in).
    count: u32,
    /// Locks so far (reset only by a good sign-in or an admin unlock).
    #[serde(default)]
    locks: u32,
    /// When the lock in force began, on the wall clock and on the boot clock.
    #[serde(default)]
    locked_at_ms: i64,
    #[serde(default)]
    locked_boot: Option<BootInstant>,
    /// Kept for counter files written before escalation: the end of a lock.
    #[serde(default)]
    locked_until_ms: i64,
}

/// A point on this boot's clock (CLOCK_BOOTTIME: runs in suspend, never set by anyone).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct BootInstant {
    pub boot_id: String,
    pub ms: i64,
}

impl BootInstant {
    /// Now on this boot's clock; `None` where the kernel does not say.
    pub fn now() -> Option<BootInstant> {
        let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
        let t = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
        Some(BootInstant {
            boot_id: boot_id.trim().to_string(),
            ms: t.tv_sec * 1000 + t.tv_nsec / 1_000_000,
        })
    }
}

/// The clocks a sign-in is judged by.
#[derive(Clone, Debug)]
pub struct Clocks {
    pub wall: Timestamp,
    pub boot: Option<BootInstant>,
}

impl Clocks {
    pub fn now() -> Clocks {
        Clocks {
            wall: Timestamp::now(),
            boot: BootInstant::now(),
        }
    }
}

/// How long a lock has run: on the boot clock within the same boot; across a reboot on the
/// wall clock, where a clock set back counts as no time at all.
fn lock_elapsed_ms(f: &Failures, now: &Clocks) -> i64 {
    match (&f.locked_boot, &now.boot) {
        (Some(then), Some(n)) if then.boot_id == n.boot_id => (n.ms - then.ms).max(0),
        _ => (now.wall.0 - f.locked_at_ms).max(0),
    }
}

/// The length of the `locks`-th lock; `None`: until an admin unlocks.
fn lock_length_ms(locks: u32) -> Option<i64> {
    LOCKOUT_STEPS_MS
        .get(locks.saturating_sub(1) as usize)
        .copied()
}

/// A successful sign-in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedIn {
    pub crew_id: String,
    pub can_view: bool,
}

fn failures_path(roster_path: &Path) -> PathBuf {
    roster_path.with_extension("failures.json")
}

/// Checks sign-ins against the roster and keeps the PIN-failure counts on disk.
pub struct SignInGate {
    roster_path: PathBuf,
    failures_path: PathBuf,
    key: RosterKey,
}

/// The counter file: the counts and their MAC under the roster key.
#[derive(Serialize, Deserialize)]
struct CounterFile {
    counts: BTreeMap<String, Failures>,
    mac: String,
}

/// The counts, or why every id is locked: the counter file is missing, broken, or its MAC
/// does not hold (edited by someone without the key).
fn read_failures(
    path: &Path,
    roster_path: &Path,
    key: &RosterKey,
) -> Result<BTreeMap<String, Failures>, String> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let file: CounterFile = serde_json::from_slice(&bytes).map_err(|e| {
                tracing::error!(
                    error = %crate::domain::json_error_text(&e),
                    "PIN failure counts unreadable: every crew id locked"
                );
                "the PIN failure counter file is broken".to_string()
            })?;
            let body = serde_json::to_vec(&file.counts).map_err(|e| e.to_string())?;
            if key.counts_mac(&body) != file.mac {
                tracing::error!("PIN failure counts edited outside the app: every crew id locked");
                return Err("the PIN failure counter file was changed outside the app".into());
            }
            Ok(file.counts)
        }
        // a tablet with no roster yet has no counter file either
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !roster_path.exists() => {
            Ok(BTreeMap::new())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::error!("PIN failure counter file missing: every crew id locked");
            Err("the PIN failure counter file was removed".into())
        }
        Err(e) => Err(format!("the PIN failure counter file cannot be read: {e}")),
    }
}

fn write_failures(
    path: &Path,
    counts: &BTreeMap<String, Failures>,
    key: &RosterKey,
) -> Result<(), RosterError> {
    let malformed = |e: serde_json::Error| RosterError::Malformed {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let body = serde_json::to_vec(counts).map_err(malformed)?;
    let file = CounterFile {
        counts: counts.clone(),
        mac: key.counts_mac(&body),
    };
    let bytes = serde_json::to_vec(&file).map_err(malformed)?;
    crate::files::write_private(path, &bytes).map_err(io(path))
}

impl SignInGate {
    /// The roster at `roster_path`; failure counts beside it (`<roster>.failures.json`).
    pub fn open(roster_path: &Path, key: RosterKey) -> Result<SignInGate, RosterError> {
        Ok(SignInGate {
            roster_path: roster_path.to_path_buf(),
            failures_path: failures_path(roster_path),
            key,
        })
    }

    /// Where the roster this gate checks against lies.
    pub fn roster_path(&self) -> &Path {
        &self.roster_path
    }

    /// Check a crew id and PIN now.
    pub fn sign_in(
        &mut self,
        crew_id: &str,
        pin: &str,
        now: Timestamp,
    ) -> Result<SignedIn, RosterError> {
        self.sign_in_at(
            crew_id,
            pin,
            &Clocks {
                wall: now,
                boot: BootInstant::now(),
            },
        )
    }

    /// Check a crew id and PIN at the given clocks. The roster is read afresh, so the
    /// admin's changes apply at the next sign-in.
    pub fn sign_in_at(
        &mut self,
        crew_id: &str,
        pin: &str,
        now: &Clocks,
    ) -> Result<SignedIn, RosterError> {
        check_crew_id(crew_id)?;
        // read at every attempt: an admin's `crew unlock` counts in a running app
        let mut failures = read_failures(&self.failures_path, &self.roster_path, &self.key)
            .map_err(|reason| RosterError::LockedForAdmin { reason })?;
        let failures = &mut failures;
        let mut entry = failures.get(crew_id).cloned().unwrap_or_default();
        if entry.locks > 0 && entry.count == 0 {
            // a lock is in force (the count starts again when it has run out)
            let Some(length) = lock_length_ms(entry.locks) else {
                return Err(RosterError::LockedForAdmin {
                    reason: format!("{} locks in a row", entry.locks),
                });
            };
            let left = length - lock_elapsed_ms(&entry, now);
            if left > 0 {
                return Err(RosterError::Locked {
                    seconds_left: (left + 999) / 1000,
                });
            }
        } else if entry.locked_until_ms > now.wall.0 {
            // a counter file from before escalation
            return Err(RosterError::Locked {
                seconds_left: (entry.locked_until_ms - now.wall.0 + 999) / 1000,
            });
        }
        let roster = Roster::load(&self.roster_path)?;
        // Unknown ids are verified against a decoy and counted like wrong PINs, so neither
        // the time taken nor the lock tells listed ids from unlisted ones.
        let member = roster.member(crew_id);
        let decoy;
        let hash = match member {
            Some(m) => m.pin_hash.as_str(),
            None => {
                decoy = decoy_hash(&self.key);
                decoy.as_str()
            }
        };
        let matches = pin_matches(pin, hash, &self.key);
        if let Some(m) = member.filter(|_| matches) {
            if failures.remove(crew_id).is_some() {
                write_failures(&self.failures_path, failures, &self.key)?;
            }
            return Ok(SignedIn {
                crew_id: m.id.clone(),
                can_view: m.can_view,
            });
        }
        entry.count += 1;
        entry.locked_at_ms = 0;
        entry.locked_boot = None;
        let tries_left = MAX_PIN_FAILURES.saturating_sub(entry.count);
        if tries_left == 0 {
            entry.count = 0;
            entry.locks += 1;
            entry.locked_at_ms = now.wall.0;
            entry.locked_boot = now.boot.clone();
        }
        let locks = entry.locks;
        failures.insert(crew_id.to_string(), entry);
        write_failures(&self.failures_path, failures, &self.key)?;
        tracing::warn!(
            crew = %self.key.fingerprint(crew_id),
            tries_left,
            locks,
            "sign-in refused"
        );
        if tries_left == 0 {
            match lock_length_ms(locks) {
                Some(ms) => Err(RosterError::Locked {
                    seconds_left: ms / 1000,
                }),
                None => Err(RosterError::LockedForAdmin {
                    reason: format!("{locks} locks in a row"),
                }),
            }
        } else {
            // the same answer for an id not on the roster: counted and locked alike
            Err(RosterError::WrongPin { tries_left })
        }
    }
}

/// Whether the counter file beside `roster_path` is there (or not needed yet) and its MAC
/// holds under `key`.
pub fn counts_intact(roster_path: &Path, key: &RosterKey) -> bool {
    read_failures(&failures_path(roster_path), roster_path, key).is_ok()
}

/// `crew unlock`: clear one id's lock (or, with `None`, every id's, and a missing or broken
/// counter file). Admin only.
pub fn unlock(
    roster_path: &Path,
    crew_id: Option<&str>,
    key: &RosterKey,
) -> Result<(), RosterError> {
    let path = failures_path(roster_path);
    let mut failures = read_failures(&path, roster_path, key).unwrap_or_default();
    match crew_id {
        Some(id) => {
            failures.remove(id);
        }
        None => failures.clear(),
    }
    write_failures(&path, &failures, key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> RosterKey {
        RosterKey::from_secret(Zeroizing::new([42u8; 32]))
    }

    fn roster_in(dir: &Path) -> PathBuf {
        let path = dir.join("roster.toml");
        let mut r = Roster::default();
        r.add("EMT-1", "救急 一郎", "246800", true, &key()).unwrap();
        r.add("DRV-2", "機関員 二郎", "135700", false, &key())
            .unwrap();
        r.save(&path, &key()).unwrap();
        path
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("roster-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn pins_are_stored_as_argon2id_hashes_only() {
        let d = tmp("hash");
        let path = roster_in(&d);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("$argon2id$"));
        assert!(!text.contains("246800") && !text.contains("135700"));
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn sign_in_checks_the_pin_and_carries_the_viewing_permission() {
        let d = tmp("signin");
        let mut gate = SignInGate::open(&roster_in(&d), key()).unwrap();
        let t = Timestamp(1_000_000);
        assert_eq!(
            gate.sign_in("EMT-1", "246800", t).unwrap(),
            SignedIn {
                crew_id: "EMT-1".into(),
                can_view: true
            }
        );
        assert!(!gate.sign_in("DRV-2", "135700", t).unwrap().can_view);
        // an id not on the roster: the answer a wrong PIN gets, nothing that says "unknown"
        assert!(matches!(
            gate.sign_in("EMT-9", "246800", t),
            Err(RosterError::WrongPin { tries_left: 4 })
        ));
        let _ = std::fs::remove_dir_all(d);
    }

    fn at(wall: i64, boot: &str, boot_ms: i64) -> Clocks {
        Clocks {
            wall: Timestamp(wall),
            boot: Some(BootInstant {
                boot_id: boot.into(),
                ms: boot_ms,
            }),
        }
    }

    fn lock_out(gate: &mut SignInGate, now: &Clocks) -> RosterError {
        for left in (1..MAX_PIN_FAILURES).rev() {
            assert!(matches!(
                gate.sign_in_at("EMT-1", "000000", now),
                Err(RosterError::WrongPin { tries_left }) if tries_left == left
            ));
        }
        gate.sign_in_at("EMT-1", "000000", now).unwrap_err()
    }

    #[test]
    fn five_wrong_pins_lock_the_crew_id_across_restarts_until_the_lock_runs_out() {
        let d = tmp("lock");
        let path = roster_in(&d);
        let mut gate = SignInGate::open(&path, key()).unwrap();
        let t = at(10_000_000, "boot-a", 1_000);
        assert!(matches!(
            lock_out(&mut gate, &t),
            RosterError::Locked { .. }
        ));
        // the right PIN does not open a locked id, not even after a restart
        let mut gate = SignInGate::open(&path, key()).unwrap();
        assert!(matches!(
            gate.sign_in_at("EMT-1", "246800", &t),
            Err(RosterError::Locked { .. })
        ));
        // other ids are not affected
        assert!(gate.sign_in_at("DRV-2", "135700", &t).is_ok());
        let later = at(t.wall.0 + LOCKOUT_MS + 1, "boot-a", 1_000 + LOCKOUT_MS + 1);
        assert!(gate.sign_in_at("EMT-1", "246800", &later).is_ok());
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn each_lock_is_longer_and_the_third_needs_an_admin() {
        let d = tmp("escalate");
        let path = roster_in(&d);
        let mut gate = SignInGate::open(&path, key()).unwrap();
        let mut boot = 0;
        let mut t = || {
            boot += 1;
            at(50_000_000 + boot, "boot-e", boot)
        };
        assert!(matches!(
            lock_out(&mut gate, &t()),
            RosterError::Locked { seconds_left } if seconds_left == LOCKOUT_STEPS_MS[0] / 1000
        ));
        let after_first = at(0, "boot-e", 10 + LOCKOUT_STEPS_MS[0]);
        let second = lock_out(&mut gate, &after_first);
        assert!(
            matches!(second, RosterError::Locked { seconds_left } if seconds_left == LOCKOUT_STEPS_MS[1] / 1000),
            "{second}"
        );
        // five minutes are not enough the second time
        let five_min_later = at(0, "boot-e", 20 + 2 * LOCKOUT_STEPS_MS[0]);
        assert!(matches!(
            gate.sign_in_at("EMT-1", "246800", &five_min_later),
            Err(RosterError::Locked { .. })
        ));
        let after_second = at(0, "boot-e", 20 + LOCKOUT_STEPS_MS[0] + LOCKOUT_STEPS_MS[1]);
        let third = lock_out(&mut gate, &after_second);
        assert!(
            matches!(third, RosterError::LockedForAdmin { .. }),
            "{third}"
        );
        let a_week_later = at(0, "boot-e", 7 * 24 * 3_600_000);
        assert!(matches!(
            gate.sign_in_at("EMT-1", "246800", &a_week_later),
            Err(RosterError::LockedForAdmin { .. })
        ));
        assert!(
            !RosterError::LockedForAdmin {
                reason: String::new()
            }
            .message_ja()
            .contains("同意取得困難")
        );
        unlock(&path, Some("EMT-1"), &key()).unwrap();
        let mut gate = SignInGate::open(&path, key()).unwrap();
        assert!(gate.sign_in_at("EMT-1", "246800", &a_week_later).is_ok());
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn setting_the_clock_forward_does_not_shorten_a_lock() {
        let d = tmp("clock");
        let path = roster_in(&d);
        let mut gate = SignInGate::open(&path, key()).unwrap();
        let t = at(10_000_000, "boot-c", 5_000);
        lock_out(&mut gate, &t);
        // the wall clock jumps a day ahead, the boot clock moved one second
        let jumped = at(10_000_000 + 86_400_000, "boot-c", 6_000);
        assert!(matches!(
            gate.sign_in_at("EMT-1", "246800", &jumped),
            Err(RosterError::Locked { .. })
        ));
        // after a reboot the wall clock counts, and a clock set back counts as no time
        let rebooted_back = at(10_000_000 - 86_400_000, "boot-d", 10);
        assert!(matches!(
            gate.sign_in_at("EMT-1", "246800", &rebooted_back),
            Err(RosterError::Locked { .. })
        ));
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn a_deleted_or_broken_counter_file_locks_every_id_until_an_admin_unlocks() {
        let d = tmp("counter");
        let path = roster_in(&d);
        let counts = path.with_extension("failures.json");
        assert!(
            counts.exists(),
            "the roster's first save starts the counter file"
        );
        let t = at(1_000, "boot-x", 1);
        std::fs::remove_file(&counts).unwrap();
        let mut gate = SignInGate::open(&path, key()).unwrap();
        for id in ["EMT-1", "DRV-2", "NOBODY"] {
            assert!(
                matches!(
                    gate.sign_in_at(id, "246800", &t),
                    Err(RosterError::LockedForAdmin { .. })
                ),
                "{id}"
            );
        }
        std::fs::write(&counts, "{ not json").unwrap();
        let mut gate = SignInGate::open(&path, key()).unwrap();
        assert!(matches!(
            gate.sign_in_at("EMT-1", "246800", &t),
            Err(RosterError::LockedForAdmin { .. })
        ));
        unlock(&path, None, &key()).unwrap();
        let mut gate = SignInGate::open(&path, key()).unwrap();
        assert!(gate.sign_in_at("EMT-1", "246800", &t).is_ok());
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn an_unknown_id_is_verified_against_a_decoy_like_a_known_one() {
        // the decoy is a real Argon2id hash with the roster's parameters
        let decoy_text = decoy_hash(&key());
        let decoy = PasswordHash::new(decoy_text.strip_prefix(KEYED).unwrap()).unwrap();
        let real_hash = hash_pin("246800", &key()).unwrap();
        let real = PasswordHash::new(real_hash.strip_prefix(KEYED).unwrap()).unwrap();
        assert_eq!(decoy.algorithm, real.algorithm);
        assert_eq!(decoy.params, real.params);
        assert!(!pin_matches("246800", &decoy_text, &key()));
        assert!(!pin_matches("000000", &decoy_text, &key()));
    }

    #[test]
    fn bad_input_is_refused_with_a_reason() {
        let mut r = Roster::default();
        assert!(matches!(
            r.add("x y", "n", "123456", true, &key()),
            Err(RosterError::BadCrewId(_))
        ));
        assert!(matches!(
            r.add("A", "n", "12345", true, &key()),
            Err(RosterError::BadPin)
        ));
        assert!(matches!(
            r.add("A", "n", "12ab56", true, &key()),
            Err(RosterError::BadPin)
        ));
        r.add("A", "n", "123456", true, &key()).unwrap();
        assert!(matches!(
            r.add("A", "n", "123456", true, &key()),
            Err(RosterError::AlreadyListed(_))
        ));
        assert!(matches!(r.remove("B"), Err(RosterError::NotListed(_))));
        let d = tmp("bad");
        let p = d.join("roster.toml");
        std::fs::write(&p, "crew = 5").unwrap();
        assert!(matches!(
            Roster::load(&p),
            Err(RosterError::Malformed { .. })
        ));
        let _ = std::fs::remove_dir_all(d);
    }
}
