//! The roster, the audit export and verify, the signed bundles merged, and wipe.

use super::*;

#[test]
fn roster_pins_are_hashed_and_checked_with_lockout() {
    let d = TempDir::new("admin-crew");
    let data = d.path().join("tablet");
    init(&data);
    let o = admin_stdin(
        &data,
        &["crew", "add", "EMT-1", "--name", "救急 一郎"],
        "246800\n",
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = admin_stdin(
        &data,
        &["crew", "add", "DRV-2", "--name", "機関員", "--no-view"],
        "135700\n",
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = admin_stdin(&data, &["crew", "add", "BAD", "--name", "x"], "12\n");
    assert_eq!(o.status.code(), Some(2), "short PIN refused");
    let list = String::from_utf8(admin(&data, &["crew", "list"]).stdout).unwrap();
    assert!(
        list.contains("EMT-1\t救急 一郎\tview") && list.contains("DRV-2\t機関員\tno-view"),
        "{list}"
    );
    let roster = std::fs::read_to_string(data.join("roster.toml")).unwrap();
    assert!(!roster.contains("246800") && roster.contains("$argon2id$"));
    // the app's gate: a non-roster id cannot sign in, five wrong PINs lock
    let key = mynakyukyu::config::open_roster_key(&data).unwrap();
    let mut gate = mynakyukyu::roster::SignInGate::open(&data.join("roster.toml"), key).unwrap();
    let now = Timestamp::now();
    assert!(gate.sign_in("EMT-9", "246800", now).is_err());
    assert!(!gate.sign_in("DRV-2", "135700", now).unwrap().can_view);
    for _ in 0..5 {
        assert!(gate.sign_in("EMT-1", "000000", now).is_err());
    }
    assert!(matches!(
        gate.sign_in("EMT-1", "246800", now),
        Err(mynakyukyu::roster::RosterError::Locked { .. })
    ));
    assert!(admin(&data, &["crew", "remove", "EMT-1"]).status.success());
    assert_eq!(
        admin(&data, &["crew", "remove", "EMT-1"]).status.code(),
        Some(2)
    );
    common::reliability_row(
        "roster",
        "Security",
        "sign-in with an id not on the roster, with a member without viewing permission, and five wrong PINs",
        7,
        0,
        "the unknown id refused, the member without permission cannot view, the sixth try (right PIN) refused as locked; PINs stored only as Argon2id hashes",
    );
}

#[test]
fn audit_export_lists_the_records_and_verify_checks_the_chain_then_wipe_erases() {
    let d = TempDir::new("admin-audit");
    let data = d.path().join("tablet");
    init(&data);
    {
        let key = mynakyukyu::store::StoreKey::load(&data.join("store.key")).unwrap();
        let store = mynakyukyu::store::Store::open(&data.join("store"), &key).unwrap();
        for i in 0..3 {
            store
                .append(
                    common::opt_out_audit(&format!("INC-{i}"), 1_790_000_000_000 + i),
                    Timestamp::now(),
                )
                .unwrap();
        }
    }
    let o = admin(&data, &["audit", "export", "--format", "json"]);
    assert!(o.status.success(), "{}", text(&o));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["incident_id"], "INC-0");
    assert_eq!(rows[0]["crew_id"], "EMT-1");
    let csv = String::from_utf8(admin(&data, &["audit", "export"]).stdout).unwrap();
    assert_eq!(csv.lines().count(), 4, "{csv}");
    let o = admin(&data, &["audit", "export", "--since", "2099-01-01"]);
    assert_eq!(
        String::from_utf8(o.stdout).unwrap().lines().count(),
        1,
        "header only"
    );
    let o = admin(&data, &["audit", "export", "--since", "nope"]);
    assert_eq!(o.status.code(), Some(2));
    let o = admin(&data, &["audit", "verify"]);
    assert!(
        o.status.success() && text(&o).contains("intact: 3"),
        "{}",
        text(&o)
    );
    // tamper: delete the middle record straight from the sled files
    {
        let db = sled::open(data.join("store").join("sled")).unwrap();
        let records = db.open_tree("records").unwrap();
        let keys: Vec<_> = records.iter().keys().map(Result::unwrap).collect();
        assert_eq!(keys.len(), 3);
        records.remove(&keys[1]).unwrap();
        db.flush().unwrap();
    }
    let o = admin(&data, &["audit", "verify"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("BROKEN at record seq 2"),
        "names the first broken record: {}",
        text(&o)
    );
    common::reliability_row(
        "audit-tamper",
        "Security",
        "a record deleted from the audit store's files behind the app's back, then `mynakyukyu-admin audit verify`",
        1,
        0,
        "exit 1, the first broken record named; the store's own tests also catch flipped bytes, moved and rewritten records",
    );
    // wipe: the key first, then the files
    let o = admin_stdin(&data, &["wipe"], "no\n");
    assert_eq!(o.status.code(), Some(1));
    assert!(data.join("store.key").exists());
    let o = admin(&data, &["wipe", "--yes"]);
    assert!(o.status.success(), "{}", text(&o));
    for f in ["store.key", "unit.key", "device.toml", "store"] {
        assert!(!data.join(f).exists(), "{f} left after wipe");
    }
}

/// A consent record for a patient, for the audit tests.
fn consent_record(
    unit: &str,
    incident: &str,
    at: i64,
    insured: &str,
    decision: mynakyukyu::domain::ConsentDecision,
) -> mynakyukyu::domain::RecordBody {
    use mynakyukyu::domain::*;
    RecordBody::Consent(ConsentRecord {
        at: Timestamp(at),
        incident: IncidentId::new(incident),
        operator: OperatorId::new("=cmd|' /C calc'!A0"),
        unit: UnitId::new(unit),
        terminal: TerminalId::new(format!("{unit}-T")),
        patient: PatientRef {
            local_id: Sensitive("P0001".into()),
            insured_number: Sensitive(insured.into()),
            public_assistance: None,
        },
        decision,
        reason: (decision == ConsentDecision::Unobtainable).then_some(UnobtainableReason::Other),
    })
}

#[test]
fn audit_merge_answers_from_every_tablet_and_refuses_a_broken_chain() {
    use mynakyukyu::domain::ConsentDecision as D;
    let d = TempDir::new("admin-merge");
    let mut bundles = vec![];
    for (n, unit) in ["UNIT-07", "UNIT-08"].iter().enumerate() {
        let data = d.path().join(unit);
        // enrolled with a certificate: a bundle carries it and is signed by its key
        common::enrol(
            &data,
            "https://10.10.2.1:8443",
            &["--allow-file-keys"],
            &common::no_tpm,
        );
        {
            let key = mynakyukyu::store::StoreKey::load(&data.join("store.key")).unwrap();
            let store = mynakyukyu::store::Store::open(&data.join("store"), &key).unwrap();
            // the citizen's patient on both tablets, another patient on the second
            let t = 1_790_000_000_000 + n as i64 * 1000;
            store
                .append(
                    consent_record(unit, &format!("{unit}-1"), t, "12345678-01", D::Verbal),
                    Timestamp::now(),
                )
                .unwrap();
            store
                .append(
                    consent_record(unit, &format!("{unit}-2"), t + 1, "99999999-09", D::Refused),
                    Timestamp::now(),
                )
                .unwrap();
        }
        let o = admin(&data, &["audit", "export", "--format", "bundle"]);
        assert!(o.status.success(), "{}", text(&o));
        let path = d.path().join(format!("{unit}.json"));
        std::fs::write(&path, &o.stdout).unwrap();
        bundles.push(path);
    }
    let any = d.path().join("UNIT-07");
    let ca = pki().join("ca.pem").to_str().unwrap().to_string();
    let args = |extra: &[&str]| {
        let mut a = vec!["audit", "merge", "--unit-ca", ca.as_str()];
        a.extend(bundles.iter().map(|p| p.to_str().unwrap()));
        a.extend(extra);
        a.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let run = |a: Vec<String>| {
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        admin(&any, &refs)
    };
    let o = run(args(&[
        "--insured-number",
        "12345678-01",
        "--format",
        "json",
    ]));
    assert!(o.status.success(), "{}", text(&o));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    let units: Vec<&str> = rows
        .iter()
        .map(|r| r["unit_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        units,
        vec!["UNIT-07", "UNIT-08"],
        "both tablets, in time order"
    );
    assert!(rows.iter().all(|r| r["action"] == "consent:verbal"));
    assert!(
        rows[0]["at"].as_str().unwrap().ends_with("+09:00"),
        "JST: {}",
        rows[0]["at"]
    );
    // refusals are in the answer too
    let o = run(args(&[
        "--insured-number",
        "99999999-09",
        "--format",
        "json",
    ]));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r["action"] == "consent:refused"));
    // the CSV quotes every field and a formula is not a formula
    let o = run(args(&[]));
    let csv = String::from_utf8(o.stdout).unwrap();
    assert_eq!(csv.lines().count(), 5, "{csv}");
    assert!(csv.contains("\"'=cmd|' /C calc'!A0\""), "{csv}");
    assert!(csv.lines().all(|l| l.starts_with('"')));

    // a bundle whose record was edited after export: refused, naming the file and record
    let text_of = std::fs::read_to_string(&bundles[1]).unwrap();
    std::fs::write(
        &bundles[1],
        text_of.replacen("\"refused\"", "\"verbal\"", 1),
    )
    .unwrap();
    let o = run(args(&[]));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = text(&o);
    assert!(
        err.contains("UNIT-08.json") && err.contains("seq 1") && err.contains("hash"),
        "{err}"
    );
    // the attacker's way round a hash chain: delete a row and hash the rest again. The
    // chain then holds; the unit key's signatures do not.
    let mut bundle: mynakyukyu::admin::AuditBundle = serde_json::from_str(&text_of).unwrap();
    bundle.records.remove(0);
    bundle.signatures.remove(0);
    let mut prev = bundle.records[0].prev_hash.clone();
    for (i, r) in bundle.records.iter_mut().enumerate() {
        r.seq = i as u64;
        r.prev_hash = prev.clone();
        r.hash = mynakyukyu::domain::chain_hash(&r.prev_hash, r.seq, &r.record);
        prev = r.hash.clone();
    }
    std::fs::write(&bundles[1], serde_json::to_vec(&bundle).unwrap()).unwrap();
    let o = run(args(&[]));
    assert_eq!(o.status.code(), Some(2), "a re-hashed bundle: {}", text(&o));
    assert!(
        text(&o).contains("signature does not verify at record seq 0"),
        "{}",
        text(&o)
    );
    // the last record cut off: every remaining signature holds, the bundle's does not
    let mut cut: mynakyukyu::admin::AuditBundle = serde_json::from_str(&text_of).unwrap();
    cut.records.pop();
    cut.signatures.pop();
    std::fs::write(&bundles[1], serde_json::to_vec(&cut).unwrap()).unwrap();
    let o = run(args(&[]));
    assert_eq!(o.status.code(), Some(2), "a cut bundle: {}", text(&o));
    assert!(
        text(&o).contains("the bundle's own signature"),
        "{}",
        text(&o)
    );
    // a bundle of a unit another CA certified: refused
    std::fs::write(&bundles[1], &text_of).unwrap();
    let o = admin(
        &any,
        &[
            "audit",
            "merge",
            "--unit-ca",
            pki().join("other-ca.pem").to_str().unwrap(),
            bundles[1].to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("not issued by the department"),
        "{}",
        text(&o)
    );

    // a bundle exported after retention purged its first records verifies (its own
    // signature covers where it starts)
    let data = d.path().join("UNIT-08");
    {
        let store = mynakyukyu::config::open_store(&data).unwrap();
        store.mark_uploaded(&[0], Timestamp::now()).unwrap();
        let purged = store
            .purge_uploaded_before(Timestamp(Timestamp::now().0 + 60_000))
            .unwrap();
        assert_eq!(purged, 1);
    }
    let o = admin(&data, &["audit", "export", "--format", "bundle"]);
    assert!(o.status.success(), "{}", text(&o));
    std::fs::write(&bundles[1], &o.stdout).unwrap();
    let o = run(args(&[]));
    assert!(
        o.status.success(),
        "a bundle may start after purged records: {}",
        text(&o)
    );
    common::reliability_row(
        "audit-bundle-signed",
        "Security",
        "an exported audit bundle with a record edited; with a row deleted and the chain hashed again; with its last record cut off; checked against another CA",
        4,
        0,
        "`audit merge --unit-ca` refuses each (hash, the unit key's record signature, the bundle's own signature, the certificate's issuer); a bundle exported after a retention purge verifies",
    );
}

/// systemd is not PID 1 on this machine: a stand-in `systemctl` (MYNAKYUKYU_SYSTEMCTL)
/// answers as systemd would for an active kiosk unit and records what it was asked, so the
/// test sees the order: the unit stopped through systemd before any key is destroyed, and
/// no wipe at all when systemd refuses (an admin who forgot sudo).
#[test]
fn wipe_stops_the_kiosk_unit_through_systemd_before_any_key_and_refuses_when_it_cannot() {
    use std::os::unix::fs::PermissionsExt;
    let d = TempDir::new("admin-wipe-unit");
    let data = d.path().join("tablet");
    init(&data);
    let log = d.path().join("systemctl.log");
    let fake = d.path().join("systemctl");
    let write_fake = |stop_status: u8| {
        std::fs::write(
            &fake,
            format!(
                "#!/bin/sh\necho \"$* key=$(test -e '{}' && echo present || echo gone)\" >> '{}'\ncase \"$1\" in is-active) exit 0;; stop) exit {stop_status};; esac\n",
                data.join("store.key").display(),
                log.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    let wipe = || {
        Command::new(env!("CARGO_BIN_EXE_mynakyukyu-admin"))
            .env("MYNAKYUKYU_SYSTEMCTL", &fake)
            .arg("--data-dir")
            .arg(&data)
            .args(["wipe", "--yes"])
            .output()
            .unwrap()
    };
    // systemd refuses (Access denied: not root): nothing is destroyed
    write_fake(1);
    let o = wipe();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("run wipe as root"), "{}", text(&o));
    assert!(
        data.join("store.key").exists(),
        "a key destroyed on a refused wipe"
    );
    // systemd stops it: the stop comes first, with every key still there
    std::fs::remove_file(&log).unwrap();
    write_fake(0);
    let o = wipe();
    assert!(o.status.success(), "{}", text(&o));
    let calls = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        calls.lines().collect::<Vec<_>>(),
        [
            "is-active --quiet mynakyukyu-kiosk.service key=present",
            "stop mynakyukyu-kiosk.service key=present"
        ],
        "{calls}"
    );
    assert!(!data.join("store.key").exists());
    assert!(
        text(&o).contains("stopped mynakyukyu-kiosk.service through systemd"),
        "{}",
        text(&o)
    );
}
