//! The whole hand-off as the people in it see it: a tablet asks two hospitals, one answers
//! on its page and the tablet hears it, the crew decides, the packet reaches that hospital
//! alone, an ETA update is highlighted until acknowledged, the other hospital loses the
//! request; and a tablet that reconnects misses nothing.

use super::*;
use mynakyukyu::handoff::{Answer, Change, Stage};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_reaches_the_asked_hospitals_and_only_the_chosen_one_gets_the_packet() {
    let mut fx = HubFixture::start().await;
    let tablet = fx.tablet("unit");
    let hospitals = tablet.hospitals().await.unwrap();
    assert_eq!(hospitals.hospitals.len(), 3);

    let asked = tablet.ask(&ask(&["H1", "H2"])).await.unwrap();
    assert_eq!(asked.stage, Stage::Asking);
    assert_eq!(asked.candidates.len(), 2);
    let id = asked.case_id.clone();
    let mut events = tablet.events(&id, None).await.unwrap();

    // H1's page shows the request: what the disclosure says, nothing of the patient
    let mut h1 = fx.signed_in("er1").await;
    let page = h1.get("/").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("80代"), "age band on the page");
    assert!(page.body.contains("意識障害"));
    assert!(page.body.contains("抗凝固薬"));
    assert!(
        page.body.contains("data-unacked"),
        "an unanswered request flashes"
    );
    for w in CLINICAL_WORDS {
        assert!(
            !page.body.contains(w),
            "{w} on a candidate's page before 搬送決定"
        );
    }
    // H3 was not asked: nothing
    let mut h3 = fx.signed_in("er3").await;
    assert!(!h3.get("/").await.body.contains(&id));

    // H2 declines, H1 accepts; the tablet hears both, in order, with who answered
    let mut h2 = fx.signed_in("er2").await;
    let csrf2 = h2.csrf().await;
    let r = h2
        .post(
            &format!("/cases/{id}/answer"),
            &[
                ("csrf", &csrf2),
                ("answer", "decline"),
                ("reason", "beds_full"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let csrf1 = h1.csrf().await;
    let r = h1
        .post(
            &format!("/cases/{id}/answer"),
            &[("csrf", &csrf1), ("answer", "accept")],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let (e1, v1) = tokio::time::timeout(Duration::from_secs(10), events.next_view())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let (e2, v2) = tokio::time::timeout(Duration::from_secs(10), events.next_view())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!((e1.event.as_str(), e2.event.as_str()), ("answer", "answer"));
    assert!(e2.id > e1.id);
    assert!(matches!(
        v1.candidates[1].answer.as_ref().map(|a| &a.answer),
        Some(Answer::Decline { .. })
    ));
    let accepted = v2.candidates[0].answer.as_ref().unwrap();
    assert_eq!(
        (&accepted.answer, accepted.by.as_str()),
        (&Answer::Accept, "er1")
    );

    // 搬送決定 for a hospital that declined is refused; for H1 it goes
    assert!(tablet.decide(&id, &decide("H2")).await.is_err());
    let decided = tablet.decide(&id, &decide("H1")).await.unwrap();
    assert_eq!((decided.stage, decided.version), (Stage::Decided, 1));

    // H1 now sees the packet; H2 sees nothing of the case, not even on a direct link
    let page = h1.get("/").await;
    assert!(page.body.contains("山田花子") && page.body.contains("ワルファリン錠1mg"));
    assert!(
        page.body.contains("レセプト由来"),
        "claims-derived items say so"
    );
    assert!(page.body.contains("同意取得困難") && page.body.contains("意識障害"));
    let page2 = h2.get("/").await;
    assert!(
        !page2.body.contains(&id),
        "the declined hospital lost the case"
    );
    assert!(
        page2.body.contains("他院へ搬送決定"),
        "and is told it ended"
    );
    for w in CLINICAL_WORDS {
        assert!(!page2.body.contains(w));
    }
    assert_eq!(
        h2.get(&format!("/cases/{id}/packet.json")).await.status,
        404
    );

    // an ETA update: version 2, highlighted on H1's page until acknowledged
    let v = tablet
        .update(&id, &Change::Eta { minutes: 4 })
        .await
        .unwrap();
    assert_eq!(v.version, 2);
    let page = h1.get("/").await;
    assert!(
        page.body
            .contains("class=\"changed\" data-change-version=\"2\""),
        "the update is highlighted"
    );
    assert!(page.body.contains("data-eta-ms="), "the ETA counts down");
    let csrf1 = h1.csrf().await;
    let r = h1
        .post(
            &format!("/cases/{id}/ack"),
            &[("csrf", &csrf1), ("version", "2")],
        )
        .await;
    assert_eq!(r.status, 303);
    let page = h1.get("/").await;
    assert!(
        !page.body.contains("class=\"changed\""),
        "acknowledged: no longer highlighted"
    );
    assert!(!page.body.contains("data-unacked"));
    assert_eq!(tablet.case(&id).await.unwrap().acknowledged, 2);

    // 到着
    let v = tablet.update(&id, &Change::Arrived).await.unwrap();
    assert_eq!((v.stage, v.version), (Stage::Arrived, 3));

    // the audit trail: who did what to which version, and no clinical word in it
    let audit = fx.hub().core.store.audit_rows().await.unwrap();
    let text = serde_json::to_string(&audit).unwrap();
    for w in CLINICAL_WORDS.iter().chain(["抗凝固薬", "意識障害"].iter()) {
        assert!(!text.contains(w), "{w} in the audit trail");
    }
    let did =
        |actor: &str, action: &str| audit.iter().any(|a| a.actor == actor && a.action == action);
    assert!(did(UNIT, "ask") && did(UNIT, "decide") && did("er1", "answer:accept"));
    assert!(did("er2", "answer:decline") && did("er1", "acknowledge") && did("er1", "view"));
    assert!(
        audit
            .iter()
            .any(|a| a.actor == "er1" && a.action == "view" && a.version == Some(2))
    );
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tablet_that_reconnects_with_its_last_event_id_misses_nothing() {
    let mut fx = HubFixture::start().await;
    let tablet = fx.tablet("unit");
    let id = tablet.ask(&ask(&["H1", "H2", "H3"])).await.unwrap().case_id;
    let mut events = tablet.events(&id, None).await.unwrap();
    let hub = &fx.hub().core;
    hub.answer(&HospitalCode("H1".into()), "er1", &id, Answer::Accept)
        .await
        .unwrap();
    let (first, _) = events.next_view().await.unwrap().unwrap();
    drop(events); // the line drops
    hub.answer(
        &HospitalCode("H2".into()),
        "er2",
        &id,
        Answer::CallUs {
            phone: "03-1111-2222".into(),
        },
    )
    .await
    .unwrap();
    hub.answer(&HospitalCode("H3".into()), "er3", &id, Answer::Accept)
        .await
        .unwrap();
    let mut again = tablet.events(&id, first.id).await.unwrap();
    let (a, _) = again.next_view().await.unwrap().unwrap();
    let (b, view) = again.next_view().await.unwrap().unwrap();
    assert!(a.id > first.id && b.id > a.id, "{first:?} {a:?} {b:?}");
    assert!(
        view.candidates.iter().all(|c| c.answer.is_some()),
        "all three answers seen"
    );
    common::reliability_row(
        "hub-sse-resume",
        "Faults",
        "a tablet's answer stream dropped between answers and reconnected with Last-Event-ID",
        1,
        0,
        "both answers given while it was away arrived, in order, once",
    );
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_killed_mid_case_serves_the_case_after_a_restart() {
    use std::process::{Command, Stdio};
    let data = TempDir::new("hub-kill");
    let keys = TempDir::new("hub-kill-keys");
    let hub_cmd = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_mynakyukyu-hub"));
        c.arg("--data-dir")
            .arg(data.path())
            .arg("--seal-key")
            .arg(keys.path().join("seal.key"))
            .args(args);
        c
    };
    let ca = pki().join("ca.pem");
    for args in [
        vec!["trust-ca", ca.to_str().unwrap()],
        vec!["add-hospital", "--code", "H1", "--name", "第一病院"],
        vec!["add-hospital", "--code", "H2", "--name", "第二病院"],
    ] {
        let o = hub_cmd(&args).output().unwrap();
        assert!(o.status.success(), "{}", common::output_text(&o));
    }
    let start = || {
        let mut child = hub_cmd(&[
            "serve",
            "--tls-dir",
            pki().to_str().unwrap(),
            "--tablet-listen",
            "127.0.0.1:0",
            "--inbox-listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        std::io::BufRead::read_line(&mut out, &mut line).unwrap();
        let port: u16 = line.trim().rsplit(':').next().unwrap().parse().unwrap();
        (child, port)
    };
    let (mut hub, port) = start();
    let tablet = tablet_at(port, "unit");
    let id = tablet.ask(&ask(&["H1", "H2"])).await.unwrap().case_id;
    hub.kill().unwrap(); // SIGKILL, mid-case: no shutdown, no checkpoint
    hub.wait().unwrap();
    let (hub, port) = start();
    let _hub = common::Killed(hub);
    let tablet = tablet_at(port, "unit");
    let view = tablet.case(&id).await.unwrap();
    assert_eq!(view.stage, mynakyukyu::handoff::Stage::Asking);
    assert_eq!(view.candidates.len(), 2);
    common::reliability_row(
        "hub-killed-mid-case",
        "Faults",
        "the hub process SIGKILLed with a case asked and unanswered, then started again",
        1,
        0,
        "the case, its candidates and its stage were there after the restart",
    );
}
