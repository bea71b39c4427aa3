//! The sign-in gate: a crew id and PIN checked against the roster, the failure counts kept
//! on disk with their MAC and read at every attempt, the locks and the clocks they run on.

use super::*;

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(super) struct Failures {
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
pub(super) fn lock_elapsed_ms(f: &Failures, now: &Clocks) -> i64 {
    match (&f.locked_boot, &now.boot) {
        (Some(then), Some(n)) if then.boot_id == n.boot_id => (n.ms - then.ms).max(0),
        _ => (now.wall.0 - f.locked_at_ms).max(0),
    }
}

/// The length of the `locks`-th lock; `None`: until an admin unlocks.
pub(super) fn lock_length_ms(locks: u32) -> Option<i64> {
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

pub(super) fn failures_path(roster_path: &Path) -> PathBuf {
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
pub(super) struct CounterFile {
    counts: BTreeMap<String, Failures>,
    mac: String,
}

/// The counts, or why every id is locked: the counter file is missing, broken, or its MAC
/// does not hold (edited by someone without the key).
pub(super) fn read_failures(
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

pub(super) fn write_failures(
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
