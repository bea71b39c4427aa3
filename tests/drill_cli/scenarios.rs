//! Every scenario through the binary: paths, refusals, the line, PINs, corrections, phones, screenshots.

use super::*;

#[test]
fn drill_list_names_every_scenario_once() {
    let names = scenario_names();
    assert!(names.len() >= 9, "{names:?}");
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), names.len());
}

#[test]
fn every_scenario_runs_headless_along_its_expected_path() {
    let dir = TempDir::new("drill");
    let names_by_id: std::collections::HashMap<String, String> = patients()
        .iter()
        .map(|p| {
            (
                p["id"].as_str().unwrap().to_string(),
                p["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for name in scenario_names() {
        let report_path = dir.path().join(format!("{name}.json"));
        let out = app()
            .args(["drill", "--scenario", &name, "--headless", "--report"])
            .arg(&report_path)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{name}: {stdout}");
        assert!(stdout.contains("訓練 TRAINING"), "{name}: {stdout}");
        let text = std::fs::read_to_string(&report_path).unwrap();
        let report: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(report["passed"], true, "{name}");
        assert_eq!(report["training"], true);
        assert_eq!(report["path"], report["expected_path"], "{name}");
        // the debrief names the synthetic patient by id only
        // (a drill without a card has no patient)
        let id = report["patient_id"].as_str().unwrap();
        if let Some(patient_name) = names_by_id.get(id) {
            assert!(!text.contains(patient_name.as_str()), "{name}: name leaked");
            assert!(
                !stdout.contains(patient_name.as_str()),
                "{name}: name leaked"
            );
        } else {
            assert_eq!(id, "", "{name}: an unknown patient");
        }
        let viewed = report["audit"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["action"].as_str().unwrap().starts_with("view"))
            .count();
        let path = report["path"].as_array().unwrap();
        // the summary under the hand-off screens was never left: back from them is no
        // new view
        let views_in_path = path
            .iter()
            .enumerate()
            .filter(|(i, p)| {
                p.as_str().unwrap().starts_with("viewing")
                    && !(*i > 0 && path[i - 1].as_str().unwrap().starts_with("handoff_"))
            })
            .count();
        assert_eq!(viewed, views_in_path, "{name}: every view audited");
    }
}

#[test]
fn refusal_drill_records_the_refusal_and_never_inquires() {
    let dir = TempDir::new("drill");
    let path = dir.path().join("r.json");
    let out = app()
        .args(["drill", "--scenario", "refusal", "--headless", "--report"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let report: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(report["consent_records"], serde_json::json!(["refused"]));
    assert_eq!(report["server_inquiries"], 0);
}

#[test]
fn line_drop_drill_resends_once_without_asking_again() {
    let dir = TempDir::new("drill");
    let path = dir.path().join("t.json");
    let out = app()
        .args(["drill", "--scenario", "tunnel-line-drop", "--report"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let report: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(report["consent_records"].as_array().unwrap().len(), 1);
    assert_eq!(report["server_inquiries"], 1);
    let errors = report["errors_met"].as_array().unwrap();
    assert!(
        errors
            .iter()
            .any(|e| e.as_str().unwrap().contains("link down"))
    );
}

#[test]
fn unknown_scenario_is_a_clear_error() {
    let out = app()
        .args(["drill", "--scenario", "no-such-thing"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown scenario"), "{err}");
}

#[test]
fn app_with_no_command_runs_the_training_drill() {
    let out = app().output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("訓練 TRAINING"), "{stdout}");
    assert!(stdout.contains("viewing_summary"), "{stdout}");
}

#[test]
fn simulator_lists_at_least_200_patients_with_scenarios() {
    let list = patients();
    assert!(list.len() >= 200);
    for p in &list {
        assert!(p["id"].is_string() && p["name"].is_string());
        assert!(p.get("scenario").is_some());
    }
    let scenarios: Vec<&str> = list.iter().filter_map(|p| p["scenario"].as_str()).collect();
    for s in [
        "opt-out",
        "invalid-coverage",
        "revoked-card",
        "elderly-warfarin",
        "child",
        "pregnant",
    ] {
        assert!(scenarios.contains(&s), "{s}");
    }
}

#[test]
fn pin_fallback_drill_spends_two_tries_confirms_the_last_and_audits_pin_identity() {
    let dir = TempDir::new("drill");
    let path = dir.path().join("p.json");
    let out = app()
        .args([
            "drill",
            "--scenario",
            "pin-fallback",
            "--headless",
            "--report",
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let report: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let what = timeline(&report);
    assert!(what.contains(&"pin: wrong, tries left: 2"), "{what:?}");
    assert!(what.contains(&"pin: wrong, tries left: 1"), "{what:?}");
    assert!(
        what.iter().any(|w| w.contains("confirms the last try")),
        "{what:?}"
    );
    let views = views(report["audit"].as_array().unwrap());
    assert!(!views.is_empty());
    assert!(views.iter().all(|a| a["identity_check"] == "pin"));
}

#[test]
fn screenshots_render_every_screen_in_both_themes() {
    let d = TempDir::new("drill-shots");
    let shots = d.path().join("shots");
    drill_into(d.path(), "unconscious-warfarin", "--screenshots", &shots);
    // the phone screen comes only with a phone
    let phone = TempDir::new("drill-shots-phone");
    drill_into(phone.path(), "phone-android", "--screenshots", &shots);
    let names: Vec<String> = std::fs::read_dir(&shots)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for screen in [
        "sign-in",
        "ready",
        "phone",
        "consent",
        "summary",
        "full-data",
    ] {
        for theme in ["day", "night"] {
            assert!(
                names
                    .iter()
                    .any(|n| n.contains(&format!("-{screen}-{theme}.png"))),
                "{screen} {theme}: {names:?}"
            );
        }
    }
    // a screen is not blank: many distinct colours (text antialiasing) in the frame
    let summary = names.iter().find(|n| n.contains("-summary-day")).unwrap();
    let bytes = std::fs::read(shots.join(summary)).unwrap();
    assert!(bytes.starts_with(b"\x89PNG"));
    assert!(
        bytes.len() > 40_000,
        "{} bytes: a near-empty frame?",
        bytes.len()
    );
}

/// What happened, in the order of the debrief's timeline.
fn timeline(report: &Value) -> Vec<&str> {
    report["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["what"].as_str().unwrap())
        .collect()
}

fn drill_report(scenario: &str) -> Value {
    let dir = TempDir::new("drill");
    let path = dir.path().join("r.json");
    let out = app()
        .args(["drill", "--scenario", scenario, "--report"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

#[test]
fn correction_drill_appends_a_correction_and_keeps_the_first_decision() {
    let report = drill_report("consent-correction");
    assert_eq!(
        report["consent_records"],
        serde_json::json!(["unobtainable"])
    );
    assert_eq!(
        report["consent_corrections"],
        serde_json::json!([["unobtainable", "verbal"]])
    );
    // corrected to verbal consent before the viewing ended: no explanation owed
    assert_eq!(report["explanations"], serde_json::json!([]));
    let full = report["audit"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["action"].as_str().unwrap().contains("全量版"))
        .unwrap();
    assert_eq!(full["consent"], "同意あり");
}

#[test]
fn unconscious_drill_records_the_explanation_handed() {
    let report = drill_report("unconscious-warfarin");
    assert_eq!(report["explanations"], serde_json::json!([true]));
    let report = drill_report("public-assistance");
    assert_eq!(report["passed"], true);
    assert_eq!(report["consent_records"], serde_json::json!(["verbal"]));
}

#[test]
fn phone_drill_asks_the_smartphone_pin_first_and_records_the_phone() {
    let report = drill_report("phone-android");
    let what = timeline(&report);
    let at = |w: &str| {
        what.iter()
            .position(|x| *x == w)
            .unwrap_or_else(|| panic!("{w} not in {what:?}"))
    };
    // the PIN before the certificate, the certificate before the check, the phone's own
    // signature before the consent
    assert!(at("phone_needs_pin") < at("phone pin: wrong, tries left: 2"));
    assert!(at("phone pin: wrong, tries left: 2") < at("phone pin: verified, certificate read"));
    assert!(at("phone pin: verified, certificate read") < at("qualification_answered"));
    assert!(at("phone: signed the challenge") < at("consent_chosen"));
    assert_eq!(report["server_inquiries"], 1);
    let audit = report["audit"].as_array().unwrap();
    assert!(!audit.is_empty());
    assert!(
        audit.iter().all(|a| a["token"] == "android_phone"),
        "{audit:?}"
    );
    let views = views(audit);
    assert!(!views.is_empty());
    assert!(views.iter().all(|a| a["identity_check"] == "pin"));
}

#[test]
fn an_unconscious_patients_phone_ends_with_nothing_read_inquired_or_recorded() {
    let report = drill_report("phone-unconscious");
    assert_eq!(report["passed"], true);
    assert_eq!(report["server_inquiries"], 0);
    assert_eq!(report["stored_records"], 0);
    assert!(report["audit"].as_array().unwrap().is_empty());
    // 同意取得困難 was tried on the phone screen and refused by the session
    let rejected = report["rejected_events"].as_array().unwrap();
    assert!(
        rejected.iter().any(|r| r
            .as_str()
            .unwrap()
            .starts_with("consent_chosen not applied")),
        "{rejected:?}"
    );
    common::reliability_row(
        "phone-without-owner",
        "Security",
        "drill: an unconscious patient's Android phone; the crew says the patient cannot type its PIN, then tries 同意取得困難",
        1,
        0,
        "phone_unusable with only 終了; 同意取得困難 refused by the session; 0 inquiries, 0 records",
    );
}

/// The case the official document names: 直近有効であった資格が医療扶助の資格である場合. The
/// drill views it under 同意取得困難; the export (as an admin reads it) finds the patient by
/// the 受給者番号, carries the patient id, the consent's reason and the kind of each view.
#[test]
fn public_assistance_lapsed_drill_is_audited_by_recipient_number_with_every_official_item() {
    let dir = TempDir::new("drill-pa-lapsed");
    let report_path = dir.path().join("r.json");
    let out = Command::new(env!("CARGO_BIN_EXE_mynakyukyu"))
        .env("MYNAKYUKYU_DATA", dir.path())
        .args([
            "drill",
            "--scenario",
            "public-assistance-lapsed",
            "--headless",
            "--report",
        ])
        .arg(&report_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let report: Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    assert_eq!(report["passed"], true, "{report}");
    let rows = common::audit_export_json(&dir.path().join("training"));
    let patient = patients()
        .into_iter()
        .find(|p| p["id"] == report["patient_id"])
        .unwrap();
    let recipient = patient["recipient_number"].as_str().unwrap();
    assert!(!recipient.is_empty(), "{patient}");
    assert_eq!(patient["insured_number"], "", "医療扶助: no insured number");
    let about_patient: Vec<&Value> = rows
        .iter()
        .filter(|r| r["recipient_number"] == recipient)
        .collect();
    assert!(about_patient.len() >= 4, "{rows:?}");
    assert!(
        about_patient
            .iter()
            .all(|r| r["patient_id"] == report["patient_id"])
    );
    let consent = about_patient
        .iter()
        .find(|r| r["record"] == "consent")
        .unwrap();
    assert_eq!(consent["consent"], "unobtainable");
    assert_eq!(consent["consent_reason"], "unconscious");
    let kinds: Vec<&str> = about_patient
        .iter()
        .filter(|r| r["record"] == "audit" && r["kind"] != "")
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["emergency_summary+full_data", "emergency_summary"],
        "the inquiry says what it fetched, the view what was shown"
    );
}

/// The view rows of a debrief's audit lines.
fn views(audit: &[Value]) -> Vec<&Value> {
    audit
        .iter()
        .filter(|a| a["action"].as_str().unwrap().starts_with("view"))
        .collect()
}
