//! The device keys in a real TPM 2.0 (swtpm behind tpm2-abrmd, started and stopped here):
//! the unit key is generated inside and never leaves it, mutual TLS to the simulator signs
//! with it, a copy of the data dir opens nothing on another TPM or none, and a wipe clears
//! the TPM so that even a copy taken before it opens nothing on the tablet itself.
//!
//! Everything runs through the binaries, as an admin would: tpm2-pkcs11 reads its store dir
//! from the environment once per process, and each binary sets it from `--data-dir`.

mod common;

use common::tpm::SoftTpm;
use common::{TempDir, copy_dir};
use std::path::Path;
use std::process::Output;

fn admin(tpm: Option<&SoftTpm>, data: &Path, args: &[&str]) -> Output {
    common::admin_with(data, args, &|c| match tpm {
        Some(t) => {
            t.env(c);
        }
        None => {
            c.env_remove("TPM2_PKCS11_TCTI")
                .env_remove("DBUS_SESSION_BUS_ADDRESS")
                .env("TPM2_PKCS11_LOG_LEVEL", "0");
        }
    })
}

fn text(o: &Output) -> String {
    common::output_text(o)
}

/// init (no --allow-file-keys: the keys go into the TPM), the dev CA signs, install-cert.
fn enrol(tpm: &SoftTpm, data: &Path, port: u16) {
    common::enrol(data, &format!("https://127.0.0.1:{port}"), &[], &|c| {
        tpm.env(c);
    });
}

fn status(tpm: Option<&SoftTpm>, data: &Path) -> Result<serde_json::Value, String> {
    let o = admin(tpm, data, &["status", "--json"]);
    if o.status.success() {
        Ok(serde_json::from_slice(&o.stdout).unwrap())
    } else {
        Err(text(&o))
    }
}

#[test]
fn the_unit_key_is_made_in_the_tpm_signs_mutual_tls_and_cannot_be_exported() {
    let tpm = SoftTpm::start("unit");
    let sim = common::SimProcess::start();
    let d = TempDir::new("tpm-unit");
    let data = d.path().join("tablet");
    enrol(&tpm, &data, sim.port);

    // no private key in any file: the unit key file does not exist, the store key is wrapped
    assert!(!data.join("unit.key").exists());
    assert_eq!(
        std::fs::metadata(data.join("store.key")).unwrap().len(),
        256
    );
    let s = status(Some(&tpm), &data).unwrap();
    assert_eq!(s["key_protection"], "tpm");
    assert_eq!(s["integrity"], "ok");
    for label in ["unit", "store-wrap", "files"] {
        let f = &s["tpm_keys"][label];
        assert_eq!(f["sensitive"], true, "{label}: {f}");
        assert_eq!(f["extractable"], false, "{label}: {f}");
        assert_eq!(f["never_extractable"], true, "{label}: {f}");
        assert_eq!(f["value_readable"], false, "{label}: {f}");
    }

    // OpenSC's pkcs11-tool, an independent client with the token's PIN, sees the same (the
    // token refusing CKA_VALUE is in `value_readable` above: our status asks for it)
    let list = tpm.pkcs11_tool(&data, &["--list-objects", "--type", "privkey"]);
    let listing = text(&list);
    assert!(list.status.success(), "{listing}");
    assert!(
        listing.contains("label:      unit") && listing.contains("never extractable"),
        "{listing}"
    );
    // strongSwan's configuration for this tablet names the token key, lays out no key file
    let swan = d.path().join("swanctl");
    let o = admin(
        Some(&tpm),
        &data,
        &[
            "ipsec-config",
            "--remote-addrs",
            "192.0.2.1",
            "--remote-id",
            "CN=gw",
            "--out",
            swan.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(!swan.join("private").join("unit.key").exists());
    // and holds no secret: `ipsec-load` adds the token's, unsealed, in memory
    // (scripts/ipsec-e2e shows charon signing with the token key that way)
    let conf = std::fs::read_to_string(swan.join("swanctl.conf")).unwrap();
    assert!(
        !conf.contains("secrets") && !conf.contains("pin ="),
        "{conf}"
    );
    let secret = tpm.unseal_token_secret(&data).unwrap();
    let laid_out: Vec<_> = common::files(&swan)
        .into_iter()
        .filter(|p| std::fs::read_to_string(p).is_ok_and(|t| t.contains(&secret)))
        .collect();
    assert!(laid_out.is_empty(), "{laid_out:?}");
    // mutual TLS to the simulator, the handshake signed inside the TPM
    let o = admin(Some(&tpm), &data, &["check-line"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("key: tpm"), "{}", text(&o));
    // the same tablet without its TPM cannot even shake hands
    let o = admin(None, &data, &["check-line"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));

    // the hand-off hub: the same unit key, in the TPM, signs its handshakes too
    let rt = common::runtime();
    let hub_dir = TempDir::new("tpm-hub");
    let hub = rt.block_on(async {
        use mynakyukyu::hub::{Hub, HubOptions, admin as hub_admin, store::HubStore};
        let data = hub_dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let store = HubStore::open(&data).await.unwrap();
        let ca = std::fs::read_to_string(common::pki().join("ca.pem")).unwrap();
        hub_admin::trust_ca(&store, &ca).await.unwrap();
        hub_admin::add_hospital(&store, "H1", "第一病院", &["救急科".into()])
            .await
            .unwrap();
        store.close().await;
        Hub::start(HubOptions::loopback(
            data,
            hub_dir.path().join("seal.key"),
            common::pki().to_path_buf(),
        ))
        .await
        .unwrap()
    });
    let endpoint = format!("https://localhost:{}", hub.tablet_addr.port());
    let ca = common::pki().join("ca.pem");
    let o = admin(
        Some(&tpm),
        &data,
        &[
            "hub",
            "--endpoint",
            &endpoint,
            "--ca",
            ca.to_str().unwrap(),
            "--no-tunnel",
            "--callback",
            "090-0000-0001",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = admin(Some(&tpm), &data, &["check-hub"]);
    assert!(
        o.status.success() && text(&o).contains("key: tpm") && text(&o).contains("第一病院"),
        "{}",
        text(&o)
    );
    let o = admin(None, &data, &["check-hub"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    rt.block_on(hub.shutdown());

    common::reliability_row(
        "tpm-unit-key",
        "Security",
        "unit key generated in a TPM 2.0 (swtpm + tpm2-abrmd) through PKCS#11; attributes read by our status and by OpenSC pkcs11-tool; C_GetAttributeValue(CKA_VALUE) of each private key; mutual TLS to the simulator and to the hand-off hub; the same data dir without the TPM",
        6,
        0,
        "sensitive, never extractable; the token refuses the key value; TLS 1.3 handshakes (simulator, hub) signed in the TPM; without the TPM no handshake",
    );
}

#[test]
fn a_copy_of_the_data_dir_opens_nothing_on_another_tpm_and_nothing_after_wipe() {
    let tpm = SoftTpm::start("own");
    let sim = common::SimProcess::start();
    let d = TempDir::new("tpm-thief");
    let data = d.path().join("tablet");
    enrol(&tpm, &data, sim.port);
    assert_eq!(status(Some(&tpm), &data).unwrap()["integrity"], "ok");

    // the thief copies every file, key files and the token's store included (twice: a
    // token store opened on another TPM is no longer this tablet's)
    let copy = d.path().join("copy");
    copy_dir(&data, &copy);
    let kept = d.path().join("kept");
    copy_dir(&data, &kept);
    // on another TPM, or with none, the copy opens nothing: no store key, no unit key
    let other = SoftTpm::start("other");
    let e = status(Some(&other), &copy).unwrap_err();
    assert!(
        e.contains("error: device keys: TPM:") || e.contains("error: TPM:"),
        "{e}"
    );
    let e = text(&admin(Some(&other), &copy, &["audit", "export"]));
    assert!(e.contains("error:"), "{e}");
    let e = status(None, &copy).unwrap_err();
    assert!(e.contains("error:"), "{e}");
    // on the tablet's own TPM the copy is the tablet: this is what the wipe must end
    assert_eq!(status(Some(&tpm), &kept).unwrap()["key_protection"], "tpm");

    let o = admin(Some(&tpm), &data, &["wipe", "--yes"]);
    let said = text(&o);
    assert!(o.status.success(), "{said}");
    let first = said.lines().position(|l| l.contains("TPM objects"));
    let cleared = said.lines().position(|l| l.contains("TPM2_Clear"));
    let files = said
        .lines()
        .position(|l| l.contains("destroyed: device.toml"));
    assert!(
        first.is_some() && cleared.is_some() && files.is_some() && first < files,
        "keys destroyed before files: {said}"
    );
    assert!(
        said.contains("revoke the unit certificate (serial"),
        "{said}"
    );
    assert_eq!(
        std::fs::read_dir(&data).unwrap().count(),
        0,
        "files left after wipe"
    );
    // the copy taken before the wipe now opens nothing, on the very same TPM
    let e = status(Some(&tpm), &kept).unwrap_err();
    assert!(e.contains("error: TPM:"), "{e}");
    let e = text(&admin(Some(&tpm), &kept, &["check-line"]));
    assert!(e.contains("error:"), "{e}");

    common::reliability_row(
        "tpm-thief-copy",
        "Security",
        "the whole data dir (store, wrapped store key, token store, its PIN) copied, then opened on another TPM, with no TPM, on the tablet's own TPM, and on it again after `wipe`",
        4,
        0,
        "nothing opens on another TPM or without one; after wipe (objects destroyed, TPM2_Clear) the earlier copy opens nothing on the tablet either",
    );
}

/// The app on `data` with this TPM, no display: it either runs a headless drill (exit 0)
/// or refuses to start (exit 2, its reason on stderr).
fn app_start(tpm: &SoftTpm, data: &Path) -> Output {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_mynakyukyu"));
    tpm.env(&mut c)
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .arg("--data-dir")
        .arg(data);
    c.output().unwrap()
}

#[test]
fn after_another_boot_the_token_does_not_open_and_the_unit_cannot_authenticate() {
    let tpm = SoftTpm::start("boot");
    let sim = common::SimProcess::start();
    let d = TempDir::new("tpm-boot");
    let data = d.path().join("tablet");
    enrol(&tpm, &data, sim.port);

    // the token's secret is in no file: only its sealed halves are, and the thief who
    // reads every byte of the data dir finds no trace of it
    let secret = tpm.unseal_token_secret(&data).unwrap();
    assert_eq!(secret.len(), 32, "{secret:?}");
    assert!(!data.join("tpm").join("token.pin").exists());
    let found: Vec<_> = common::files(&data)
        .into_iter()
        .filter(|p| {
            std::fs::read(p)
                .unwrap_or_default()
                .windows(secret.len())
                .any(|w| w == secret.as_bytes())
        })
        .collect();
    assert!(found.is_empty(), "the token secret in clear in {found:?}");
    let o = admin(Some(&tpm), &data, &["check-line"]);
    assert!(o.status.success(), "{}", text(&o));

    // the thief boots something else: PCR 7 differs from the enrolled boot state
    tpm.boot_something_else();
    let e = tpm.unseal_token_secret(&data).unwrap_err();
    assert!(e.contains("0x99D") || e.contains("policy"), "{e}");
    let o = admin(Some(&tpm), &data, &["check-line"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("booted in another state"), "{}", text(&o));
    let e = status(Some(&tpm), &data).unwrap_err();
    assert!(e.contains("booted in another state"), "{e}");
    // and the app stops with its screen, never training mode
    let o = app_start(&tpm, &data);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("booted in another state"), "{}", text(&o));
    // charon gets nothing either: ipsec-load cannot unseal
    let o = admin(
        Some(&tpm),
        &data,
        &["ipsec-load", "--swanctl-dir", d.path().to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));

    common::reliability_row(
        "tpm-boot-state",
        "Security",
        "the token secret sealed by the TPM to PCRs 0,2,4,7: the data dir searched for it; then PCR 7 extended (another boot) and the token, mutual TLS, the app and ipsec-load tried",
        5,
        0,
        "the secret is in no file; after the extend the TPM refuses to unseal (policy check failed): no mutual TLS, the app stops with its screen, charon gets no secret",
    );
}

#[test]
fn a_tpm_enrolled_tablet_refuses_file_keys_and_missing_files_and_only_the_admin_clears_it() {
    let tpm = SoftTpm::start("enrolled");
    let sim = common::SimProcess::start();
    let d = TempDir::new("tpm-enrolled");
    let data = d.path().join("tablet");
    enrol(&tpm, &data, sim.port);

    // the attacker's own file-mode data dir (made on a machine without a TPM: his own
    // keys, endpoint, server CA and a manifest MAC'd with his own key) put in its place
    let forged = d.path().join("forged");
    let o = common::admin_with(
        &forged,
        &[
            "init",
            "--unit-id",
            "UNIT-1",
            "--department",
            "131001",
            "--endpoint",
            &format!("https://127.0.0.1:{}", sim.port),
            "--server-ca",
            common::pki().join("ca.pem").to_str().unwrap(),
            "--allow-file-keys",
        ],
        &|c| {
            c.env_remove("TPM2_PKCS11_TCTI")
                .env("MYNAKYUKYU_SYSTEM_DIR", d.path().join("elsewhere"));
        },
    );
    assert!(o.status.success(), "{}", text(&o));
    let original = d.path().join("original");
    std::fs::rename(&data, &original).unwrap();
    copy_dir(&forged, &data);
    let e = status(Some(&tpm), &data).unwrap_err();
    assert!(e.contains("enrolled with its TPM"), "{e}");
    let o = app_start(&tpm, &data);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("enrolled with its TPM"), "{}", text(&o));
    // nor may anyone enrol a second token over the record (the kiosk user's own `init`)
    let o = admin(
        Some(&tpm),
        &d.path().join("second"),
        &[
            "init",
            "--unit-id",
            "UNIT-2",
            "--department",
            "131001",
            "--endpoint",
            "https://127.0.0.1:9",
            "--server-ca",
            common::pki().join("ca.pem").to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("wipe it before enrolling again"),
        "{}",
        text(&o)
    );

    // device.toml, then the unit certificate, deleted: a stop, never training mode
    std::fs::remove_dir_all(&data).unwrap();
    copy_dir(&original, &data);
    for gone in ["device.toml", "unit.pem"] {
        let probe = d.path().join(format!("without-{gone}"));
        copy_dir(&original, &probe);
        std::fs::remove_file(probe.join(gone)).unwrap();
        let o = app_start(&tpm, &probe);
        assert_eq!(o.status.code(), Some(2), "without {gone}: {}", text(&o));
        assert!(
            text(&o).contains("never training mode"),
            "without {gone}: {}",
            text(&o)
        );
    }

    // what the kiosk user can do with the TPM device: the record cannot be deleted, the
    // SRK cannot be evicted, the TPM cannot be cleared (platform closed by the firmware,
    // lockout and owner authorised by root's secret)
    let undefine = tpm.tool("tpm2_nvundefine", &["0x01800a17", "-C", "o"]);
    assert!(!undefine.status.success(), "NV record deleted");
    let evict = tpm.tool("tpm2_evictcontrol", &["-C", "o", "-c", "0x81000001"]);
    assert!(!evict.status.success(), "SRK evicted");
    for h in ["p", "o"] {
        let clear = tpm.tool("tpm2_clear", &["-c", h]);
        assert!(!clear.status.success(), "TPM2_Clear by {h} worked");
    }
    let auth = tpm.system_dir().join("tpm-hierarchy.auth");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&auth).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // the enrolled tablet still works after all that
    let o = admin(Some(&tpm), &data, &["check-line"]);
    assert!(o.status.success(), "{}", text(&o));
    // the admin's wipe clears it (lockout authorisation), and a new enrolment is possible
    let o = admin(Some(&tpm), &data, &["wipe", "--yes"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("TPM2_Clear, lockout"), "{}", text(&o));
    assert!(!auth.exists());
    let list = tpm.tool("tpm2_getcap", &["handles-nv-index"]);
    assert!(
        !String::from_utf8_lossy(&list.stdout)
            .to_lowercase()
            .contains("0x1800a17"),
        "{}",
        text(&list)
    );
    enrol(&tpm, &data, sim.port);
    assert_eq!(status(Some(&tpm), &data).unwrap()["key_protection"], "tpm");

    common::reliability_row(
        "tpm-enrolment-record",
        "Security",
        "on a TPM-enrolled tablet: a forged file-mode data dir (own keys, endpoint, CA, MAC'd manifest); device.toml deleted; unit.pem deleted; the kiosk user's TPM2_NV_UndefineSpace, EvictControl and TPM2_Clear (platform, owner); then the admin's wipe and a new enrolment",
        8,
        0,
        "the forged dir and both deletions stop the app (never training mode); every TPM command of the kiosk user refused; the admin's wipe clears the TPM with the lockout authorisation and the tablet enrols again",
    );
}
