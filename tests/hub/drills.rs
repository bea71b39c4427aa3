//! The crew's side of the hand-off (issue #26) in the training world: the two hand-off
//! drills run headless through the app controller, against the training hub and its
//! scripted hospitals; then the same run checked from the hospitals' side (the chosen one
//! holds the packet the tablet sent, field by field; the others see nothing of the case)
//! and from the store's (records of every request, answer and decision, no clinical word).

use super::*;
use mynakyukyu::domain::{HandoffEvent, RecordBody};
use mynakyukyu::drill::{self, world::TrainingWorld};
use mynakyukyu::handoff::Visibility;

/// Where training hubs keep their dirs (as `hub::training` picks it).
fn world_base() -> std::path::PathBuf {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// A nurse of `hospital` enrolled on the training hub: (login, TOTP secret).
async fn nurse(world: &TrainingWorld, hospital: &str, login: &str) -> (String, Vec<u8>) {
    let master =
        mynakyukyu::hub::seal::SealKey::load_or_create(&world.hub.dir().join("seal.key")).unwrap();
    let secret = enrol_staff(
        &world.hub.hub.core.store,
        &master,
        hospital,
        login,
        "訓練 看護師",
    )
    .await;
    (login.to_string(), secret)
}

/// What a signed-in nurse's inbox page shows (its text), in Debian's chromium.
async fn inbox_text(
    world: &TrainingWorld,
    dir: &std::path::Path,
    who: &(String, Vec<u8>),
) -> Option<String> {
    let b = common::chromium::Chromium::start_for(&dir.join("pki")).await?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let code = format!("{:06}", totp::code_at(&who.1, now / totp::STEP_S));
    b.sign_in(world.hub.hub.inbox_addr.port(), &who.0, PASSWORD, &code)
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let text = b
        .client
        .find(fantoccini::Locator::Css("body"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    if let Some(dir) = std::env::var_os("MYNA_HUB_SHOTS") {
        let png = b.client.screenshot().await.unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            std::path::Path::new(&dir).join(format!("hub-10-from-the-tablet-{}.png", who.0)),
            png,
        )
        .unwrap();
    }
    Some(text)
}

fn decided(report: &drill::Report) -> (String, String) {
    report
        .handoff
        .iter()
        .find_map(|e| match e {
            HandoffEvent::Decided {
                case_id, hospital, ..
            } => Some((case_id.clone(), hospital.clone())),
            _ => None,
        })
        .expect("a 搬送決定 record")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handoff_drills_pass_and_only_the_chosen_hospital_sees_the_patient() {
    let dir = TempDir::new("handoff-drills");
    let today = time::OffsetDateTime::now_utc().date();
    // a training hub's dir left by a process killed with SIGKILL (pid 4194305 is past
    // Linux's largest): the next start removes it
    let abandoned = world_base().join("mynakyukyu-training-hub-4194305-0000000000000000");
    std::fs::create_dir_all(abandoned.join("hub")).unwrap();
    let world = TrainingWorld::start(dir.path(), today).await.unwrap();
    assert!(
        !abandoned.exists(),
        "an abandoned training hub dir is swept"
    );
    let hub_dir = world.hub.dir().to_path_buf();
    assert!(
        !hub_dir.starts_with(dir.path()),
        "the training hub keeps nothing under the tablet's data dir"
    );
    let core = world.hub.hub.core.clone();

    // with a card: the summary's alerts go with the request, the packet names the patient
    let s = drill::scenario("handoff-accept").unwrap();
    let r = drill::run(&s, &world, &mut |_, _, _| {}).await.unwrap();
    assert!(
        r.passed,
        "path {:?}\nexpected {:?}\nrejected {:?}\nrecords {:?}",
        r.path, r.expected_path, r.rejected_events, r.handoff
    );
    let asked: Vec<_> = r
        .handoff
        .iter()
        .filter_map(|e| match e {
            HandoffEvent::Asked { hospitals, .. } => Some(hospitals.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(asked.len(), 1, "one request");
    assert_eq!(asked[0].len(), 3, "three hospitals at once");
    assert_eq!(
        asked[0][0], "TRAIN-1",
        "かかりつけ (the summary's 受診歴) listed first"
    );
    let answers = r
        .handoff
        .iter()
        .filter(|e| matches!(e, HandoffEvent::Answered { .. }))
        .count();
    assert!(answers >= 1, "{:?}", r.handoff);
    let updates: Vec<&str> = r
        .handoff
        .iter()
        .filter_map(|e| match e {
            HandoffEvent::Updated { change, .. } => Some(change.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(updates, ["eta", "arrived"]);
    let ms = r
        .handoff_to_decision_ms
        .expect("time to 搬送決定 in the debrief");
    assert!(ms >= 2_500.0, "TRAIN-1 accepts after 3 s: {ms}");
    assert!(
        r.taps_to_decision.is_some_and(|t| t > 5),
        "{:?}",
        r.taps_to_decision
    );

    let (case_id, chosen) = decided(&r);
    assert_eq!(chosen, "TRAIN-1");
    let patient = world
        .server
        .with_simulator(|sim| sim.patient(&r.patient_id).cloned())
        .unwrap();
    let (stored, vis) = core
        .case_for_hospital(&HospitalCode(chosen.clone()), &case_id)
        .await
        .unwrap();
    assert_eq!(vis, Visibility::Packet);
    let packet = stored
        .body
        .packet
        .clone()
        .expect("the packet reached the hub");
    assert_eq!(packet.patient.name, patient.name);
    assert_eq!(packet.patient.kana, patient.kana);
    assert_eq!(packet.patient.birth_date, patient.birth_date.to_string());
    assert!(packet.patient.insured_number.is_none(), "off by default");
    assert!(packet.consent.is_some(), "the consent behind the viewing");
    assert!(
        packet
            .medications
            .iter()
            .any(|m| m.text.contains("ワーファリン") && m.as_of.is_some()),
        "the summary's medications, with their dates"
    );
    let d = &stored.body.case.disclosure;
    assert!(d.alerts.iter().any(|a| a.label == "抗凝固薬"));
    assert_eq!(d.vitals.jcs.map(|j| j.value()), Some(10));
    assert_eq!(d.vitals.bp_systolic, Some(160));
    assert_eq!(d.eta_minutes, Some(10));
    assert_eq!(stored.body.case.stage, mynakyukyu::handoff::Stage::Arrived);
    for other in stored.body.case.candidates.iter().filter(|c| c.0 != chosen) {
        assert!(
            core.case_for_hospital(other, &case_id).await.is_err(),
            "{other:?} still sees the case after 搬送決定"
        );
    }
    // the same run from the hospitals' side, in a browser: the chosen one's inbox shows the
    // packet the tablet sent, field by field; the one that declined shows nothing of it
    let chosen_nurse = nurse(&world, "TRAIN-1", "er-drill-1").await;
    let declined_nurse = nurse(&world, "TRAIN-2", "er-drill-2").await;
    if let Some(page) = inbox_text(&world, dir.path(), &chosen_nurse).await {
        for want in [
            patient.name.as_str(),
            patient.kana.as_str(),
            &patient.birth_date.to_string(),
            "ワーファリン錠1mg",
            "抗凝固薬",
            "意識障害",
            "160 mmHg",
            "JCS",
            "同意取得困難",
        ] {
            assert!(
                page.contains(want),
                "{want} not on the chosen hospital's page:\n{page}"
            );
        }
        let other = inbox_text(&world, dir.path(), &declined_nurse)
            .await
            .unwrap();
        for secret in [
            patient.name.as_str(),
            patient.kana.as_str(),
            "ワーファリン",
            "意識障害",
        ] {
            assert!(
                !other.contains(secret),
                "{secret} on the page of a hospital that was not chosen:\n{other}"
            );
        }
    }

    // without a card: the crew's findings only, 氏名不詳
    let s = drill::scenario("handoff-no-card").unwrap();
    let r = drill::run(&s, &world, &mut |_, _, _| {}).await.unwrap();
    assert!(r.passed, "path {:?} records {:?}", r.path, r.handoff);
    let (case_id, chosen) = decided(&r);
    let (stored, _) = core
        .case_for_hospital(&HospitalCode(chosen), &case_id)
        .await
        .unwrap();
    let packet = stored.body.packet.clone().unwrap();
    assert_eq!(packet.patient.name, "氏名不詳");
    assert!(packet.consent.is_none() && packet.medications.is_empty());
    assert_eq!(stored.body.case.disclosure.age_band, None);
    assert!(stored.body.case.disclosure.alerts.is_empty());

    // the records on the tablet: every step, no clinical word
    let records = world.store.records().unwrap();
    let handoff: Vec<_> = records
        .iter()
        .filter_map(|r| match &r.record.body {
            RecordBody::Handoff(h) => Some(h),
            _ => None,
        })
        .collect();
    assert!(handoff.len() >= 10, "{}", handoff.len());
    let text = serde_json::to_string(&handoff).unwrap();
    for word in [
        patient.name.as_str(),
        patient.kana.as_str(),
        "ワーファリン",
        "意識障害",
        "胸痛",
        "抗凝固薬",
        "bp_systolic",
    ] {
        assert!(!text.contains(word), "{word} in the hand-off records");
    }
    world.shutdown().await;
    assert!(!hub_dir.exists(), "the training hub's dir is gone with it");

    // as the department reads it: every request, answer and decision in the audit export,
    // JST; per incident 照会回数 and the time to acceptance and to 搬送決定
    let rows = common::audit_export_json(dir.path());
    let handoff_rows: Vec<&serde_json::Value> =
        rows.iter().filter(|r| r["record"] == "handoff").collect();
    assert_eq!(handoff_rows.len(), handoff.len());
    for r in &handoff_rows {
        assert!(r["at"].as_str().unwrap().ends_with("+09:00"), "{r}");
        assert!(
            !r["handoff_case"].as_str().unwrap().is_empty() || r["action"] == "handoff:not_sent"
        );
    }
    let actions: Vec<&str> = handoff_rows
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    for want in [
        "handoff:asked",
        "handoff:answer:accept",
        "handoff:answer:decline:beds_full",
        "handoff:decided",
        "handoff:update:eta",
        "handoff:update:arrived",
    ] {
        assert_eq!(
            actions.iter().filter(|a| **a == want).count(),
            2,
            "{want} once per drill: {actions:?}"
        );
    }
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_mynakyukyu-admin"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["audit", "handoffs", "--format", "json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", common::output_text(&o));
    let report: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report.len(), 2, "{report:?}");
    for r in &report {
        assert_eq!(r["hospitals_asked"], 3);
        assert_eq!(r["requests"], 1);
        assert_eq!(r["decided_hospital"], "TRAIN-1");
        let accept = r["seconds_to_acceptance"].as_i64().unwrap();
        let decision = r["seconds_to_decision"].as_i64().unwrap();
        assert!((2..=6).contains(&accept) && decision >= accept, "{r}");
    }
}
