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
    let conf = std::fs::read_to_string(swan.join("swanctl.conf")).unwrap();
    // the handle is the CKA_ID pkcs11-tool lists for the unit key
    let id = listing
        .split("label:      unit")
        .nth(1)
        .and_then(|rest| rest.lines().find(|l| l.trim_start().starts_with("ID:")))
        .map(|l| l.trim().trim_start_matches("ID:").trim().to_string())
        .unwrap();
    assert!(
        conf.contains("module = tpm2") && conf.contains(&format!("handle = {id}")),
        "{conf}"
    );

    // mutual TLS to the simulator, the handshake signed inside the TPM
    let o = admin(Some(&tpm), &data, &["check-line"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("key: tpm"), "{}", text(&o));
    // the same tablet without its TPM cannot even shake hands
    let o = admin(None, &data, &["check-line"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));

    common::reliability_row(
        "tpm-unit-key",
        "Security",
        "unit key generated in a TPM 2.0 (swtpm + tpm2-abrmd) through PKCS#11; attributes read by our status and by OpenSC pkcs11-tool; C_GetAttributeValue(CKA_VALUE) of each private key; mutual TLS to the simulator; the same data dir without the TPM",
        4,
        0,
        "sensitive, never extractable; the token refuses the key value; TLS 1.3 handshake signed in the TPM; without the TPM no handshake",
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
    assert!(e.contains("cannot open the tablet's token"), "{e}");
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
