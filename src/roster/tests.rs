//! The roster's tests: hashing, sign-in, the locks and their clocks, the counter file.

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

fn tmp(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("roster-{name}-"))
        .tempdir()
        .expect("a temporary directory")
}

#[test]
fn pins_are_stored_as_argon2id_hashes_only() {
    let d = tmp("hash");
    let path = roster_in(d.path());
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("$argon2id$"));
    assert!(!text.contains("246800") && !text.contains("135700"));
}

#[test]
fn sign_in_checks_the_pin_and_carries_the_viewing_permission() {
    let d = tmp("signin");
    let mut gate = SignInGate::open(&roster_in(d.path()), key()).unwrap();
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
    let path = roster_in(d.path());
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
}

#[test]
fn each_lock_is_longer_and_the_third_needs_an_admin() {
    let d = tmp("escalate");
    let path = roster_in(d.path());
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
}

#[test]
fn setting_the_clock_forward_does_not_shorten_a_lock() {
    let d = tmp("clock");
    let path = roster_in(d.path());
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
}

#[test]
fn a_deleted_or_broken_counter_file_locks_every_id_until_an_admin_unlocks() {
    let d = tmp("counter");
    let path = roster_in(d.path());
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
    let p = d.path().join("roster.toml");
    std::fs::write(&p, "crew = 5").unwrap();
    assert!(matches!(
        Roster::load(&p),
        Err(RosterError::Malformed { .. })
    ));
}
