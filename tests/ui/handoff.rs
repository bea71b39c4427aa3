//! 搬送先照会 on the screens: from the summary (and from Ready without a card) to 搬送決定,
//! ETA and 到着, by accessible labels; what was recorded; what is left after the viewing.

use super::*;
use mynakyukyu::domain::{HandoffEvent, RecordBody};

fn handoff_records(r: &Rig) -> Vec<HandoffEvent> {
    r.world
        .store
        .records()
        .unwrap()
        .into_iter()
        .filter_map(|s| match s.record.body {
            RecordBody::Handoff(h) => Some(h.event),
            _ => None,
        })
        .collect()
}

#[test]
fn from_the_summary_to_a_hospital_that_said_yes_by_touch() {
    let mut r = Rig::with_size(1280.0, 720.0);
    r.sign_in();
    r.place_card("elderly-warfarin");
    r.tap("顔写真と本人が一致");
    r.tap("同意取得困難（意識障害等）");
    r.tap("意識障害");
    assert_eq!(r.screen(), Screen::Summary);
    r.tap("搬送先照会");
    assert_eq!(r.screen(), Screen::HandoffFindings);
    assert!(!r.enabled("病院を選ぶ →"), "the complaint comes first");
    r.tap("主訴 意識障害");
    r.tap("突然発症");
    r.tap("バイタル入力");
    assert_eq!(r.screen(), Screen::HandoffVitals);
    for _ in 0..5 {
        r.tap("JCS +");
    }
    // the first tap sets 120, 18 more reach 300, the 20th would be 310
    for _ in 0..20 {
        r.tap("血圧（上） +");
    }
    // 310 is no blood pressure: asked again, 300 kept
    assert!(r.api().get_handoff().notice.contains("310"));
    assert!(r.shows("血圧（上） 300"));
    r.tap("戻る");
    assert!(r.api().get_handoff().vitals_summary.contains("JCS 10"));
    r.tap("到着まで +");
    r.tap("到着まで +");
    r.tap("病院を選ぶ →");
    assert_eq!(r.screen(), Screen::HandoffHospitals);
    let hospitals: Vec<_> = r.api().get_handoff().hospitals.iter().collect();
    assert_eq!(hospitals.len(), 4);
    assert!(
        hospitals[0].regular,
        "the summary's hospital is かかりつけ, first"
    );
    for h in &hospitals[..3] {
        r.tap(&h.name);
    }
    assert_eq!(r.api().get_handoff().selected, 3);
    r.tap("照会送信");
    assert_eq!(r.screen(), Screen::HandoffAnswers);
    r.wait(|vm| vm.handoff.candidates.iter().any(|c| c.can_decide));
    let accepting = r
        .api()
        .get_handoff()
        .candidates
        .iter()
        .find(|c| c.can_decide)
        .unwrap();
    assert!(accepting.answer.contains("受入可") && !accepting.at.is_empty());
    r.tap(&format!("搬送決定 {}", accepting.name));
    assert!(r.api().get_handoff().decided);
    assert!(
        r.api()
            .get_handoff()
            .chosen
            .contains(accepting.name.as_str())
    );
    r.tap("到着予定 −5分");
    r.tap("到着");
    assert!(r.api().get_handoff().arrived);
    // back to the summary, then the viewing ends: the flow and the patient go with it
    r.tap("サマリーへ");
    assert_eq!(r.screen(), Screen::Summary);
    assert!(r.shows("照会に戻る"));
    r.tap("説明書を渡した");
    r.tap("閲覧終了");
    assert_eq!(r.screen(), Screen::Ready);
    assert!(
        !r.controller.view().handoff.open,
        "the flow went with the viewing"
    );
    assert!(!r.controller.view().holds_patient_data());
    let recs = handoff_records(&r);
    let steps: Vec<&str> = recs
        .iter()
        .map(|e| match e {
            HandoffEvent::Asked { .. } => "asked",
            HandoffEvent::Answered { .. } => "answered",
            HandoffEvent::Decided { .. } => "decided",
            HandoffEvent::Updated { .. } => "updated",
            HandoffEvent::Withdrawn { .. } => "withdrawn",
            HandoffEvent::NotSent { .. } => "not_sent",
        })
        .collect();
    assert_eq!(steps.first(), Some(&"asked"));
    assert!(steps.contains(&"decided"));
    assert_eq!(steps.iter().filter(|s| **s == "updated").count(), 2);
}

#[test]
fn without_a_card_from_ready_and_withdrawn_before_a_decision() {
    let mut r = Rig::with_size(960.0, 540.0);
    r.sign_in();
    r.tap("搬送先照会（カードなし）");
    assert_eq!(r.screen(), Screen::HandoffFindings);
    r.tap("主訴 胸痛");
    r.tap("年代（推定） +");
    r.tap("性別: —");
    r.tap("病院を選ぶ →");
    let h = r.api().get_handoff().hospitals.row_data(3).unwrap();
    r.tap(&h.name);
    r.tap("照会送信");
    r.wait(|vm| vm.handoff.step == "handoff_asking");
    // the crew phones instead and leaves: the hub withdraws the request
    r.tap("照会終了");
    assert_eq!(r.screen(), Screen::Ready);
    let recs = handoff_records(&r);
    assert!(
        matches!(recs.first(), Some(HandoffEvent::Asked { hospitals, .. }) if hospitals.len() == 1)
    );
    assert!(matches!(recs.last(), Some(HandoffEvent::Withdrawn { .. })));
}

#[test]
fn a_request_on_a_dropped_line_says_so_at_once_and_goes_when_the_line_is_back() {
    let mut r = Rig::new();
    r.sign_in();
    r.tap("搬送先照会（カードなし）");
    r.tap("主訴 呼吸困難");
    r.tap("病院を選ぶ →");
    let h = r.api().get_handoff().hospitals.row_data(0).unwrap();
    r.tap(&h.name);
    r.world.set_line(LinkState::Down);
    r.tap("照会送信");
    // said at once, with the phone as the way on; nothing recorded as asked
    let notice = r.api().get_handoff().notice.to_string();
    assert!(notice.contains("電話で照会"), "{notice}");
    assert!(r.api().get_handoff().notice_is_error);
    assert!(handoff_records(&r).is_empty());
    // the line comes back while the crew is still on the flow: the retry sends it
    r.world.set_line(LinkState::Up);
    r.wait(|vm| vm.handoff.step == "handoff_asking");
    assert!(matches!(
        handoff_records(&r).first(),
        Some(HandoffEvent::Asked { .. })
    ));
    r.tap("照会終了");
    common::reliability_row(
        "handoff-line-down",
        "Faults",
        "a 受入照会 sent with the trainer's line down (the hub behind it), then the line back while the crew stays on the flow",
        1,
        0,
        "said at once (電話で照会), nothing recorded as asked; retried every 5 s and sent once the line was back, within the 90 s bound (the bound itself: handoff::crew unit tests)",
    );
}

#[test]
fn the_trainer_answers_for_the_silent_hospital_and_sign_out_ends_the_flow() {
    let mut r = Rig::new();
    r.sign_in();
    r.tap("搬送先照会（カードなし）");
    r.tap("主訴 発熱");
    r.tap("病院を選ぶ →");
    let silent = mynakyukyu::hub::admin::TRAINING_HOSPITALS[3].1;
    r.tap(silent);
    r.tap("照会送信");
    r.wait(|vm| vm.handoff.step == "handoff_asking");
    r.tap("訓練操作");
    r.tap("訓練病院 受入可");
    assert!(r.api().get_trainer_message().contains("受入可"));
    r.tap("訓練操作");
    r.wait(|vm| vm.handoff.candidates.iter().any(|c| c.can_decide));
    // the crew leaves the flow for Ready and signs out: the next crew finds nothing of it
    r.tap("待機画面へ");
    assert_eq!(r.screen(), Screen::Ready);
    assert!(
        r.shows("受入可あり — 照会に戻る"),
        "the 受入可 waiting is said under the flow"
    );
    r.tap("サインアウト");
    assert_eq!(r.screen(), Screen::SignIn);
    assert!(!r.controller.view().handoff.open);
    assert!(matches!(
        handoff_records(&r).last(),
        Some(HandoffEvent::Withdrawn { .. })
    ));
}
