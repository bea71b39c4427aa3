//! The crew roster (隊員名簿): who may sign in on this tablet and who may view.
//!
//! The admin keeps it with `mynakyukyu-admin crew …`; the app checks sign-ins against it.
//! PINs are stored only as Argon2id hashes. Five wrong PINs lock a crew id for
//! [`LOCKOUT_MS`]; the failure counts live in a small file beside the roster so that
//! restarting the app does not reset them.

use crate::domain::Timestamp;
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Wrong PINs in a row before a crew id is locked.
pub const MAX_PIN_FAILURES: u32 = 5;
/// How long a crew id stays locked after [`MAX_PIN_FAILURES`].
pub const LOCKOUT_MS: i64 = 5 * 60 * 1000;

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
    #[error("a PIN is 4 to 12 digits")]
    BadPin,
    #[error("crew id {0} is already on the roster")]
    AlreadyListed(String),
    #[error("crew id {0} is not on the roster")]
    NotListed(String),
    #[error("crew id or PIN is wrong ({tries_left} tries left before the lock)")]
    WrongPin { tries_left: u32 },
    #[error("crew id is locked after {MAX_PIN_FAILURES} wrong PINs; try again in {seconds_left} s")]
    Locked { seconds_left: i64 },
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
            RosterError::BadPin => "PINは4〜12桁の数字です。".to_string(),
            RosterError::BadCrewId(_) => "隊員IDを入力してください。".to_string(),
            _ => "名簿を読み込めません。管理者に連絡してください。".to_string(),
        }
    }
}

/// One crew member on the roster.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CrewMember {
    pub id: String,
    pub name: String,
    /// Only members with viewing permission may view patients' information.
    pub can_view: bool,
    /// Argon2id PHC string.
    pub pin_hash: String,
}

impl fmt::Debug for CrewMember {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CrewMember({}, can_view: {})", self.id, self.can_view)
    }
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

/// Write through a temporary file and rename, so a crash leaves the old or the new file.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, path)
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

/// Hash a PIN with Argon2id (the crate's default parameters) and a fresh salt.
pub fn hash_pin(pin: &str) -> Result<String, RosterError> {
    if !(4..=12).contains(&pin.len()) || !pin.chars().all(|c| c.is_ascii_digit()) {
        return Err(RosterError::BadPin);
    }
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| RosterError::Hash(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| RosterError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(pin.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| RosterError::Hash(e.to_string()))
}

fn pin_matches(pin: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(pin.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

impl Roster {
    /// Load the roster; a missing file is an empty roster.
    pub fn load(path: &Path) -> Result<Roster, RosterError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Roster::default()),
            Err(e) => return Err(io(path)(e)),
        };
        let roster: Roster = toml::from_str(&text).map_err(|e| RosterError::Malformed {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        for m in &roster.crew {
            check_crew_id(&m.id).map_err(|e| RosterError::Malformed {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        }
        Ok(roster)
    }

    pub fn save(&self, path: &Path) -> Result<(), RosterError> {
        let text = toml::to_string(self).map_err(|e| RosterError::Malformed {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        write_atomically(path, text.as_bytes()).map_err(io(path))
    }

    pub fn add(
        &mut self,
        id: &str,
        name: &str,
        pin: &str,
        can_view: bool,
    ) -> Result<(), RosterError> {
        check_crew_id(id)?;
        if self.member(id).is_some() {
            return Err(RosterError::AlreadyListed(id.to_string()));
        }
        self.crew.push(CrewMember {
            id: id.to_string(),
            name: name.to_string(),
            can_view,
            pin_hash: hash_pin(pin)?,
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

    pub fn member(&self, id: &str) -> Option<&CrewMember> {
        self.crew.iter().find(|m| m.id == id)
    }
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
struct Failures {
    count: u32,
    locked_until_ms: i64,
}

/// A successful sign-in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedIn {
    pub crew_id: String,
    pub can_view: bool,
}

/// Checks sign-ins against the roster and keeps the PIN-failure counts on disk.
pub struct SignInGate {
    roster_path: PathBuf,
    failures_path: PathBuf,
    failures: BTreeMap<String, Failures>,
}

impl SignInGate {
    /// The roster at `roster_path`; failure counts beside it (`<roster>.failures.json`).
    pub fn open(roster_path: &Path) -> Result<SignInGate, RosterError> {
        let failures_path = roster_path.with_extension("failures.json");
        let failures = match std::fs::read(&failures_path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                // A broken counter file must not open the lock: start counting again, loudly.
                tracing::warn!(error = %e, "PIN failure counts unreadable; starting from zero");
                BTreeMap::new()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(io(&failures_path)(e)),
        };
        Ok(SignInGate {
            roster_path: roster_path.to_path_buf(),
            failures_path,
            failures,
        })
    }

    /// Check a crew id and PIN. The roster is read afresh, so the admin's changes apply at
    /// the next sign-in.
    pub fn sign_in(
        &mut self,
        crew_id: &str,
        pin: &str,
        now: Timestamp,
    ) -> Result<SignedIn, RosterError> {
        check_crew_id(crew_id)?;
        let entry = self.failures.get(crew_id).copied().unwrap_or_default();
        if entry.locked_until_ms > now.0 {
            return Err(RosterError::Locked {
                seconds_left: (entry.locked_until_ms - now.0 + 999) / 1000,
            });
        }
        let roster = Roster::load(&self.roster_path)?;
        // Unknown ids are counted like wrong PINs so that the lock cannot be used to tell
        // listed ids from unlisted ones.
        let member = roster.member(crew_id);
        if let Some(m) = member
            && pin_matches(pin, &m.pin_hash)
        {
            if self.failures.remove(crew_id).is_some() {
                self.save_failures()?;
            }
            return Ok(SignedIn {
                crew_id: m.id.clone(),
                can_view: m.can_view,
            });
        }
        let mut entry = if entry.locked_until_ms != 0 {
            Failures::default() // the lock ran out: a fresh count
        } else {
            entry
        };
        entry.count += 1;
        let tries_left = MAX_PIN_FAILURES.saturating_sub(entry.count);
        if tries_left == 0 {
            entry.locked_until_ms = now.0 + LOCKOUT_MS;
        }
        self.failures.insert(crew_id.to_string(), entry);
        self.save_failures()?;
        tracing::warn!(crew_id, tries_left, "sign-in refused");
        if tries_left == 0 {
            Err(RosterError::Locked {
                seconds_left: LOCKOUT_MS / 1000,
            })
        } else if member.is_none() {
            Err(RosterError::NotListed(crew_id.to_string()))
        } else {
            Err(RosterError::WrongPin { tries_left })
        }
    }

    fn save_failures(&self) -> Result<(), RosterError> {
        let bytes = serde_json::to_vec(&self.failures).map_err(|e| RosterError::Malformed {
            path: self.failures_path.clone(),
            message: e.to_string(),
        })?;
        write_atomically(&self.failures_path, &bytes).map_err(io(&self.failures_path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roster_in(dir: &Path) -> PathBuf {
        let path = dir.join("roster.toml");
        let mut r = Roster::default();
        r.add("EMT-1", "救急 一郎", "2468", true).unwrap();
        r.add("DRV-2", "機関員 二郎", "1357", false).unwrap();
        r.save(&path).unwrap();
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
        assert!(!text.contains("2468") && !text.contains("1357"));
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn sign_in_checks_the_pin_and_carries_the_viewing_permission() {
        let d = tmp("signin");
        let mut gate = SignInGate::open(&roster_in(&d)).unwrap();
        let t = Timestamp(1_000_000);
        assert_eq!(
            gate.sign_in("EMT-1", "2468", t).unwrap(),
            SignedIn {
                crew_id: "EMT-1".into(),
                can_view: true
            }
        );
        assert!(!gate.sign_in("DRV-2", "1357", t).unwrap().can_view);
        assert!(matches!(
            gate.sign_in("EMT-9", "2468", t),
            Err(RosterError::NotListed(_))
        ));
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn five_wrong_pins_lock_the_crew_id_across_restarts_until_the_lock_runs_out() {
        let d = tmp("lock");
        let path = roster_in(&d);
        let mut gate = SignInGate::open(&path).unwrap();
        let t = Timestamp(10_000_000);
        for left in (1..MAX_PIN_FAILURES).rev() {
            assert!(matches!(
                gate.sign_in("EMT-1", "0000", t),
                Err(RosterError::WrongPin { tries_left }) if tries_left == left
            ));
        }
        assert!(matches!(
            gate.sign_in("EMT-1", "0000", t),
            Err(RosterError::Locked { .. })
        ));
        // the right PIN does not open a locked id, not even after a restart
        let mut gate = SignInGate::open(&path).unwrap();
        assert!(matches!(
            gate.sign_in("EMT-1", "2468", t),
            Err(RosterError::Locked { .. })
        ));
        // other ids are not affected
        assert!(gate.sign_in("DRV-2", "1357", t).is_ok());
        let later = Timestamp(t.0 + LOCKOUT_MS + 1);
        assert!(gate.sign_in("EMT-1", "2468", later).is_ok());
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn bad_input_is_refused_with_a_reason() {
        let mut r = Roster::default();
        assert!(matches!(
            r.add("x y", "n", "1234", true),
            Err(RosterError::BadCrewId(_))
        ));
        assert!(matches!(
            r.add("A", "n", "12", true),
            Err(RosterError::BadPin)
        ));
        assert!(matches!(
            r.add("A", "n", "12ab", true),
            Err(RosterError::BadPin)
        ));
        r.add("A", "n", "1234", true).unwrap();
        assert!(matches!(
            r.add("A", "n", "1234", true),
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
