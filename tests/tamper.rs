//! A tablet whose files were changed behind the admin's back refuses to start, naming what
//! changed: the roster, the device config, the server CA, the unit certificate, the store
//! key swapped for a symlink, wider file modes, the PIN counter file deleted, a malformed
//! device.toml (never a silent fall into training mode), an endpoint given by name where
//! the tunnel is required. Enrolment goes through `mynakyukyu-admin` (file keys: the TPM
//! has tests/tpm.rs); the refusal is read from `app::device::check`, what the app runs
//! before it opens anything, and from `status`.

mod common;

use common::TempDir;
use mynakyukyu::app::device::{self, DeviceError};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn admin(data: &Path, args: &[&str]) -> Output {
    common::admin_with(data, args, &common::no_tpm)
}

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "{}", common::output_text(&o));
    o
}

/// An enrolled tablet with its certificate and one crew member, in a dir of its own.
fn tablet(tag: &str, endpoint: &str) -> (TempDir, PathBuf) {
    let d = TempDir::new(tag);
    let data = d.path().join("tablet");
    common::enrol(&data, endpoint, &["--allow-file-keys"], &common::no_tpm);
    let mut child = Command::new(env!("CARGO_BIN_EXE_mynakyukyu-admin"))
        .arg("--data-dir")
        .arg(&data)
        .args(["crew", "add", "EMT-1", "--name", "救急 一郎"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"246800\n").unwrap();
    assert!(child.wait().unwrap().success());
    if endpoint == ENDPOINT
        && let Err(e) = device::check(&data)
    {
        panic!("a fresh tablet does not start: {e}");
    }
    (d, data)
}

/// The refusal, its English reason and its Japanese screen line.
fn refused(data: &Path) -> (String, &'static str) {
    match device::check(data) {
        Ok(_) => panic!("{} started", data.display()),
        Err(e) => (e.to_string(), e.screen_message()),
    }
}

fn status_says(data: &Path) -> String {
    let o = admin(data, &["status", "--json"]);
    assert!(!o.status.success(), "status exits non-zero");
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

const ENDPOINT: &str = "https://127.0.0.1:8443";

#[test]
fn an_edited_roster_is_refused() {
    let (_d, data) = tablet("tamper-roster", ENDPOINT);
    let roster = data.join("roster.toml");
    let mut text = std::fs::read_to_string(&roster).unwrap();
    text = text
        .replace("can_view = true", "can_view = true\n")
        .replace("EMT-1", "EMT-X");
    std::fs::write(&roster, text).unwrap();
    let (why, screen) = refused(&data);
    assert!(
        why.contains("roster.toml") && why.contains("changed outside"),
        "{why}"
    );
    assert!(screen.contains("管理者以外"), "{screen}");
    assert!(status_says(&data).contains("roster.toml"));
    common::reliability_row(
        "tamper-roster",
        "Security",
        "roster.toml edited after enrolment (a crew id renamed)",
        1,
        0,
        "the tablet refuses to start: English reason names roster.toml, the screen says the settings were changed by someone other than the admin; status exits 1",
    );
}

#[test]
fn an_edited_device_config_is_refused() {
    let (_d, data) = tablet("tamper-config", ENDPOINT);
    let cfg = data.join("device.toml");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("require_tunnel = true", "require_tunnel = false");
    std::fs::write(&cfg, text).unwrap();
    let (why, _) = refused(&data);
    assert!(
        why.contains("device.toml") && why.contains("changed outside"),
        "{why}"
    );
    common::reliability_row(
        "tamper-config",
        "Security",
        "device.toml edited after enrolment (require_tunnel turned off)",
        1,
        0,
        "refused at start, naming device.toml",
    );
}

#[test]
fn a_swapped_server_ca_or_unit_certificate_is_refused() {
    let (_d, data) = tablet("tamper-ca", ENDPOINT);
    let other = TempDir::new("tamper-other-pki");
    mynakyukyu::pki::dev::generate(other.path()).unwrap();
    let original = std::fs::read(data.join("server-ca.pem")).unwrap();
    // the content swapped, the file's mode kept (0600): the manifest must catch it
    let swap = |name: &str, from: &Path| {
        std::fs::write(data.join(name), std::fs::read(from).unwrap()).unwrap();
    };
    swap("server-ca.pem", &other.path().join("ca.pem"));
    let (why, _) = refused(&data);
    assert!(
        why.contains("server-ca.pem") && why.contains("changed outside"),
        "{why}"
    );
    std::fs::write(data.join("server-ca.pem"), original).unwrap();
    assert!(device::check(&data).is_ok(), "restored, it starts again");
    swap("unit.pem", &other.path().join("unit.pem"));
    let (why, _) = refused(&data);
    assert!(
        why.contains("unit.pem") && why.contains("changed outside"),
        "{why}"
    );
    common::reliability_row(
        "tamper-ca",
        "Security",
        "server-ca.pem swapped for another CA, then unit.pem swapped for another unit's certificate",
        2,
        0,
        "each refused at start naming the file; the original restored starts again",
    );
}

#[test]
fn a_store_key_replaced_by_a_symlink_or_wider_modes_are_refused() {
    let (d, data) = tablet("tamper-link", ENDPOINT);
    let key = data.join("store.key");
    let moved = d.path().join("elsewhere.key");
    std::fs::rename(&key, &moved).unwrap();
    std::os::unix::fs::symlink(&moved, &key).unwrap();
    let (why, screen) = refused(&data);
    assert!(why.contains("symbolic link"), "{why}");
    assert!(screen.contains("鍵"), "{screen}");
    // wipe refuses to follow it: the target is not touched
    let o = admin(&data, &["wipe", "--yes"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "a wipe that met a symlink says so"
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("symbolic link"));
    assert_eq!(
        std::fs::metadata(&moved).unwrap().len(),
        32,
        "target untouched"
    );

    let (_d2, data2) = tablet("tamper-modes", ENDPOINT);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        data2.join("roster.toml"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let (why, screen) = refused(&data2);
    assert!(why.contains("roster.toml") && why.contains("644"), "{why}");
    assert!(screen.contains("権限"), "{screen}");
    std::fs::set_permissions(
        data2.join("roster.toml"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::fs::set_permissions(&data2, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (why, _) = refused(&data2);
    assert!(why.contains("755"), "{why}");
    common::reliability_row(
        "tamper-store-key-link",
        "Security",
        "store.key replaced by a symlink to a copy elsewhere; then wipe run on it",
        2,
        0,
        "refused at start (O_NOFOLLOW); wipe reports the link, exits 2 and leaves the link's target untouched",
    );
    common::reliability_row(
        "tamper-modes",
        "Security",
        "roster.toml made 0644, then the data dir 0755",
        2,
        0,
        "each refused at start naming the path and mode",
    );
}

#[test]
fn a_deleted_or_rewritten_pin_counter_file_locks_every_crew_id_and_an_unlock_counts_at_once() {
    let (_d, data) = tablet("tamper-counter", ENDPOINT);
    let roster = data.join("roster.toml");
    let key = mynakyukyu::config::open_roster_key(&data).unwrap();
    // one gate for the whole test: the running app's
    let mut gate = mynakyukyu::roster::SignInGate::open(&roster, key).unwrap();
    let now = mynakyukyu::domain::Timestamp::now();
    for (attack, undo) in [
        ("deleted", None),
        ("rewritten as {}", Some(&b"{}"[..])),
        (
            "rewritten with zero counts and a made-up MAC",
            Some(&br#"{"counts":{},"mac":"00"}"#[..]),
        ),
    ] {
        for _ in 0..4 {
            assert!(gate.sign_in("EMT-1", "000000", now).is_err());
        }
        // the attacker resets the counts to get five fresh tries
        let counts = data.join("roster.failures.json");
        match undo {
            None => std::fs::remove_file(&counts).unwrap(),
            Some(bytes) => std::fs::write(&counts, bytes).unwrap(),
        }
        let e = gate.sign_in("EMT-1", "246800", now).unwrap_err();
        assert!(
            matches!(e, mynakyukyu::roster::RosterError::LockedForAdmin { .. }),
            "{attack}: {e}"
        );
        assert!(e.message_ja().contains("管理者"), "{}", e.message_ja());
        // the admin's unlock reaches the app that is running (the same gate)
        ok(admin(&data, &["crew", "unlock"]));
        assert!(gate.sign_in("EMT-1", "246800", now).is_ok(), "{attack}");
    }
    common::reliability_row(
        "tamper-pin-counter",
        "Security",
        "four wrong PINs, then roster.failures.json deleted, rewritten as {}, and rewritten with a made-up MAC to reset the count; then `crew unlock` while the app's gate is open",
        3,
        0,
        "every crew id locked until `mynakyukyu-admin crew unlock`; the screen says to ask the admin; the unlock counts in the running app at once",
    );
}

#[test]
fn the_roster_file_alone_cannot_be_cracked_and_an_unknown_id_looks_like_a_wrong_pin() {
    let (_d, data) = tablet("tamper-roster-offline", ENDPOINT);
    let text = std::fs::read_to_string(data.join("roster.toml")).unwrap();
    let roster = mynakyukyu::roster::Roster::parse(&text).unwrap();
    let hash = &roster.member("EMT-1").unwrap().pin_hash;
    // the offline cracker holds the file and even guesses the right PIN: without the
    // device's key (Argon2's secret) no candidate matches
    let phc = hash.strip_prefix("k1").expect("a keyed hash");
    let parsed = argon2::PasswordHash::new(phc).unwrap();
    use argon2::PasswordVerifier;
    assert!(
        argon2::Argon2::default()
            .verify_password(b"246800", &parsed)
            .is_err(),
        "the right PIN verified without the device's key"
    );
    let stolen_key = mynakyukyu::roster::RosterKey::from_secret(zeroize::Zeroizing::new([7u8; 32]));
    assert!(!mynakyukyu::roster::pin_matches(
        "246800",
        hash,
        &stolen_key
    ));
    let key = mynakyukyu::config::open_roster_key(&data).unwrap();
    assert!(mynakyukyu::roster::pin_matches("246800", hash, &key));

    // an id on the roster and one that is not: the same message, the same lock
    let mut gate = mynakyukyu::roster::SignInGate::open(&data.join("roster.toml"), key).unwrap();
    let now = mynakyukyu::domain::Timestamp::now();
    for n in 0..5 {
        let listed = gate.sign_in("EMT-1", "000000", now).unwrap_err();
        let unknown = gate.sign_in("EMT-77", "000000", now).unwrap_err();
        assert_eq!(listed.message_ja(), unknown.message_ja(), "attempt {n}");
        assert_eq!(listed.to_string(), unknown.to_string(), "attempt {n}");
    }
    common::reliability_row(
        "roster-offline",
        "Security",
        "roster.toml taken off the tablet: the right PIN tried against its hash with Argon2id and no key, and with another key; then five wrong PINs for a listed id and for an unknown one",
        2,
        0,
        "no match without the device's key (a subkey of the TPM-wrapped store key); the listed and the unknown id get the same message at every attempt and the same lock",
    );
}

#[test]
fn a_malformed_device_config_is_an_error_never_training_mode() {
    let (_d, data) = tablet("tamper-malformed", ENDPOINT);
    std::fs::write(data.join("device.toml"), "unit_id = [broken").unwrap();
    assert!(mynakyukyu::config::provisioned(&data).is_err());
    let (why, screen) = refused(&data);
    assert!(why.contains("device.toml"), "{why}");
    assert!(screen.contains("設定ファイル"), "{screen}");
    // the app itself: no display, so it would run the training drill if it took the tablet
    // for unprovisioned; it stops with the reason instead
    let o = Command::new(env!("CARGO_BIN_EXE_mynakyukyu"))
        .arg("--data-dir")
        .arg(&data)
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("device.toml"), "{err}");
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains("訓練"),
        "fell into training"
    );
    common::reliability_row(
        "malformed-config",
        "Bad input",
        "device.toml that does not parse on an enrolled tablet; the app started on it",
        1,
        0,
        "an error naming device.toml (exit 2), never training mode",
    );
}

#[test]
fn an_endpoint_by_name_is_refused_where_the_tunnel_is_required() {
    let (_d, data) = tablet("tamper-name", "https://eligibility.example:8443");
    // enrolled by the admin, so the manifest holds; the rule refuses it all the same
    let e = device::check(&data).map(|_| ()).unwrap_err();
    assert!(matches!(e, DeviceError::Config(_)), "{e}");
    assert!(e.to_string().contains("IP address"), "{e}");
}

#[test]
fn wipe_stops_the_running_app_before_it_destroys_anything() {
    let (_d, data) = tablet("wipe-running", ENDPOINT);
    // a long-running mynakyukyu process standing in for the app (the window needs a
    // display): its pid where the app writes its own
    let mut app = Command::new(env!("CARGO_BIN_EXE_mynakyukyu-sim"))
        .args(["serve", "--listen", "127.0.0.1:0", "--pki"])
        .arg(common::pki())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::fs::write(data.join("app.pid"), app.id().to_string()).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(app.try_wait().unwrap().is_none(), "the stand-in runs");
    let o = admin(&data, &["wipe", "--yes"]);
    let said = common::output_text(&o);
    assert!(o.status.success(), "{said}");
    let stopped = said
        .find("stopped the running app")
        .expect("said it stopped the app");
    let keys = said
        .find("destroyed: store.key")
        .expect("destroyed the store key");
    assert!(
        stopped < keys,
        "the app stopped before the keys went: {said}"
    );
    // the wipe waited for it: gone by the time the wipe returned (it exits on SIGTERM)
    assert!(
        app.try_wait().unwrap().is_some(),
        "the app still runs after the wipe"
    );
    assert_eq!(std::fs::read_dir(&data).unwrap().count(), 0, "{said}");
    // a pid file naming a process that is not ours is left alone
    let (_d2, data2) = tablet("wipe-foreign-pid", ENDPOINT);
    let mut other = Command::new("sleep").arg("30").spawn().unwrap();
    std::fs::write(data2.join("app.pid"), other.id().to_string()).unwrap();
    ok(admin(&data2, &["wipe", "--yes"]));
    assert!(
        other.try_wait().unwrap().is_none(),
        "a foreign process was signalled"
    );
    let _ = other.kill();
    let _ = other.wait();
}

/// One date would take down the fleet: the server CRL's next update. `status` warns a week
/// ahead; records that wait for the line are a warning after the set days and are kept.
#[test]
fn status_warns_before_the_crl_runs_out_and_about_records_waiting_for_days_deleting_none() {
    let (_d, data) = tablet("upkeep-status", ENDPOINT);
    let status = |data: &Path| {
        let o = admin(data, &["status", "--json"]);
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["warnings"].clone()
    };
    assert_eq!(
        status(&data),
        serde_json::json!([]),
        "a fresh tablet: quiet"
    );
    ok(admin(
        &data,
        &[
            "install-crl",
            common::pki().join("crl-soon.pem").to_str().unwrap(),
        ],
    ));
    // a record queued five days ago and never sent (the tablet off the line since)
    {
        let store = mynakyukyu::config::open_store(&data).unwrap();
        let five_days_ago = mynakyukyu::domain::Timestamp::now().0 - 5 * 24 * 3600 * 1000;
        store
            .append(
                common::opt_out_audit("I-OLD", five_days_ago),
                mynakyukyu::domain::Timestamp(five_days_ago),
            )
            .unwrap();
    }
    let w = status(&data);
    let text = w.to_string();
    assert!(
        text.contains("the server CRL's next update is in 4 days"),
        "{text}"
    );
    assert!(text.contains("records have waited 5 days"), "{text}");
    assert!(text.contains("nothing is deleted"), "{text}");
    // and nothing was: the record is still queued
    let store = mynakyukyu::config::open_store(&data).unwrap();
    assert_eq!(store.sync_state().unwrap().queued, 1);
    common::reliability_row(
        "upkeep-warnings",
        "Faults",
        "a server CRL five days from its next update installed, and a record queued five days ago that never reached the server",
        2,
        0,
        "status warns of both (the CRL a week ahead, then urgently its last day; unsynced after 3 days); the record is kept",
    );
}
