//! 搬送先照会 on the real window, tapped by coordinates: without a card from Ready (the
//! complaint, the hospital, 照会送信, 搬送決定 on the one that said 受入可 once its answer
//! came, 到着), and the `handoff-accept` drill's path from a card (photo, 同意取得困難,
//! the summary, 搬送先照会, vitals, three hospitals, 搬送決定, ETA −5, 到着, 閲覧終了); then
//! what was recorded, read back with the admin's audit export, and the taps counted.

use super::*;
use mynakyukyu::ui::{Handoff, HandoffCandidate, HandoffChoice, HandoffHospital, HandoffStepper};

/// The hand-off as the screens show it in this drill, for the layout to place the controls.
fn handoff_shown() -> Handoff {
    let model = |v: Vec<HandoffChoice>| ModelRc::from(Rc::new(VecModel::from(v)));
    Handoff {
        open: true,
        complaints: model(
            mynakyukyu::handoff::Complaint::ALL
                .iter()
                .map(|c| HandoffChoice {
                    label: c.label_ja().into(),
                    on: false,
                })
                .collect(),
        ),
        modifiers: model(
            mynakyukyu::handoff::Modifier::ALL
                .iter()
                .map(|m| HandoffChoice {
                    label: m.label_ja().into(),
                    on: false,
                })
                .collect(),
        ),
        jcs: HandoffStepper {
            label: "JCS".into(),
            value: "—".into(),
        },
        vitals: ModelRc::from(Rc::new(VecModel::from(
            mynakyukyu::handoff::crew::VitalField::ALL
                .iter()
                .map(|f| HandoffStepper {
                    label: f.label_ja().into(),
                    value: "—".into(),
                })
                .collect::<Vec<_>>(),
        ))),
        hospitals: ModelRc::from(Rc::new(VecModel::from(
            mynakyukyu::hub::admin::TRAINING_HOSPITALS
                .iter()
                .map(|(code, name, _)| HandoffHospital {
                    code: (*code).into(),
                    name: (*name).into(),
                    ..Default::default()
                })
                .collect::<Vec<_>>(),
        ))),
        candidates: ModelRc::from(Rc::new(VecModel::from(vec![HandoffCandidate {
            code: "TRAIN-1".into(),
            name: mynakyukyu::hub::admin::TRAINING_HOSPITALS[0].1.into(),
            can_decide: true,
            ..Default::default()
        }]))),
        ..Default::default()
    }
}

#[test]
fn a_gloved_hand_sends_a_request_and_decides_on_the_real_window() {
    let layout = Layout::new();
    let api = layout.api();
    let sign_in = SignInPlaces::of(&layout);
    api.set_crew("TRAINEE".into());
    api.set_hub_available(true);
    api.set_handoff(handoff_shown());
    api.set_screen(Screen::Ready);
    let open = layout.by_id("ReadyScreen::handoff");
    api.set_screen(Screen::HandoffFindings);
    let chest_pain = layout.by_label("主訴 胸痛");
    let next = layout.by_id("HandoffFindingsScreen::next");
    api.set_screen(Screen::HandoffHospitals);
    let first_hospital = layout.by_label(mynakyukyu::hub::admin::TRAINING_HOSPITALS[0].1);
    let hospitals: Vec<(i32, i32)> = mynakyukyu::hub::admin::TRAINING_HOSPITALS
        .iter()
        .take(3)
        .map(|(_, name, _)| layout.by_label(name))
        .collect();
    let send = layout.by_id("HandoffHospitalsScreen::send");
    api.set_screen(Screen::HandoffAnswers);
    let decide = layout.by_label(&format!(
        "搬送決定 {}",
        mynakyukyu::hub::admin::TRAINING_HOSPITALS[0].1
    ));
    let arrived = layout.by_id("HandoffAnswersScreen::arrived");
    let eta = layout.by_id("HandoffAnswersScreen::eta");
    let end = layout.by_id("HandoffAnswersScreen::end");
    let altered = {
        api.set_screen(Screen::HandoffFindings);
        layout.by_label("主訴 意識障害")
    };
    let vitals_open = layout.by_id("HandoffFindingsScreen::vitals");
    api.set_screen(Screen::HandoffVitals);
    let jcs_up = layout.by_label("JCS +");
    let bp_up = layout.by_label("血圧（上） +");
    let vitals_done = layout.by_id("HandoffVitalsScreen::done");
    // the card's screens: the trainer places the elderly patient's card, photo, 同意取得困難
    // with its reason, the summary's 搬送先照会, 閲覧終了
    api.set_screen(Screen::Ready);
    let trainer = layout.by_label("訓練操作");
    api.set_trainer_open(true);
    let title = mynakyukyu::drill::scenario("unconscious-warfarin")
        .unwrap()
        .title;
    let place_card = layout.by_label(&title);
    api.set_trainer_open(false);
    api.set_screen(Screen::Consent);
    let photo = layout.by_id("ConsentScreen::photo");
    let unobtainable = layout.by_id("ConsentScreen::unobtainable");
    api.set_reason_picker_open(true);
    let unconscious = layout.by_id("ConsentScreen::unconscious");
    api.set_reason_picker_open(false);
    api.set_screen(Screen::Summary);
    let summary_handoff = layout.by_id("ViewingHeader::handoff");
    let hide = {
        api.set_screen(Screen::HandoffAnswers);
        layout.by_id("HandoffAnswersScreen::hide")
    };
    api.set_screen(Screen::Summary);
    let end_viewing = layout.by_id("ViewingHeader::end");

    let TrainingWindow {
        mut s,
        shots,
        app,
        _xvfb,
        d,
    } = TrainingWindow::start("real-window-handoff", &sign_in);
    s.tap(open, 1);
    std::thread::sleep(LOOK);
    s.shot("handoff-findings");
    s.tap(chest_pain, 1);
    std::thread::sleep(LOOK);
    s.tap(next, 1);
    std::thread::sleep(CARD);
    s.shot("handoff-hospitals");
    s.tap(first_hospital, 1);
    std::thread::sleep(LOOK);
    // a quick second tap on 照会送信 as the screen changes: one request, not two
    s.tap(send, 2);
    // みなと循環器病院 answers 受入可 after 3 s in training
    std::thread::sleep(Duration::from_secs(5));
    s.shot("handoff-answer-in");
    s.tap(decide, 1);
    std::thread::sleep(CARD);
    s.shot("handoff-decided");
    s.tap(arrived, 1);
    std::thread::sleep(CARD);
    s.shot("handoff-arrived");
    s.tap(end, 1);
    std::thread::sleep(LOOK);
    s.shot("ready-after");

    // the handoff-accept drill by touch: card to 搬送決定, the crew's taps counted
    let taps = std::cell::Cell::new(0);
    let tap = |s: &mut Screenful, at: (i32, i32), wait: Duration| {
        s.tap(at, 1);
        taps.set(taps.get() + 1);
        std::thread::sleep(wait);
    };
    s.tap(trainer, 1);
    std::thread::sleep(LOOK);
    s.tap(place_card, 1);
    std::thread::sleep(CARD);
    tap(&mut s, photo, LOOK);
    tap(&mut s, unobtainable, LOOK);
    tap(&mut s, unconscious, CARD);
    s.shot("card-summary");
    tap(&mut s, summary_handoff, CARD);
    tap(&mut s, altered, LOOK);
    tap(&mut s, vitals_open, LOOK);
    for _ in 0..5 {
        tap(&mut s, jcs_up, Duration::from_millis(650));
    }
    for _ in 0..5 {
        tap(&mut s, bp_up, Duration::from_millis(650));
    }
    s.shot("card-vitals");
    tap(&mut s, vitals_done, LOOK);
    tap(&mut s, next, CARD);
    s.shot("card-hospitals");
    for h in &hospitals {
        tap(&mut s, *h, LOOK);
    }
    tap(&mut s, send, Duration::from_secs(5));
    s.shot("card-answers");
    // the summary's かかりつけ (TRAIN-1) is listed and asked first: its row is the first
    tap(&mut s, decide, CARD);
    let taps_to_decision = taps.get();
    s.shot("card-decided");
    tap(&mut s, eta, CARD);
    tap(&mut s, arrived, CARD);
    s.shot("card-arrived");
    tap(&mut s, hide, LOOK);
    tap(&mut s, end_viewing, LOOK);
    s.shot("card-ended");
    drop(app);

    let rows = admin_export(d.path());
    let actions: Vec<&str> = rows
        .iter()
        .filter(|r| r["record"] == "handoff")
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    let shown = shots.display();
    assert!(actions.len() > 4, "{actions:?} (screenshots in {shown})");
    let (first, second) = actions.split_at(4);
    assert_eq!(
        first,
        [
            "handoff:asked",
            "handoff:answer:accept",
            "handoff:decided",
            "handoff:update:arrived"
        ],
        "screenshots in {shown}"
    );
    assert_eq!(second.first(), Some(&"handoff:asked"), "{actions:?}");
    for want in [
        "handoff:answer:accept",
        "handoff:decided",
        "handoff:update:eta",
        "handoff:update:arrived",
    ] {
        assert!(
            second.contains(&want),
            "{want}: {actions:?} (screenshots in {shown})"
        );
    }
    let asked: Vec<_> = rows
        .iter()
        .filter(|r| r["action"] == "handoff:asked")
        .collect();
    assert_eq!(asked[0]["hospitals"], "TRAIN-1");
    assert_eq!(asked[0]["kind"], "照会回数 1");
    assert_eq!(asked[1]["hospitals"], "TRAIN-1+TRAIN-2+TRAIN-3");
    assert_eq!(asked[1]["kind"], "照会回数 3");
    let decided: Vec<_> = rows
        .iter()
        .filter(|r| r["action"] == "handoff:decided")
        .collect();
    assert_eq!(decided[1]["hospitals"], "TRAIN-1");
    assert!(rows.iter().any(|r| r["action"] == "consent:unobtainable"));
    println!("taps from the card to 搬送決定 on the real window: {taps_to_decision}");
    assert_eq!(
        taps_to_decision, 23,
        "photo, 同意取得困難 and its reason, 搬送先照会, the complaint, the vitals (open, 10 steps, back), 病院を選ぶ, three hospitals, 照会送信, 搬送決定"
    );
    let asked = asked[0];
    assert!(asked["at"].as_str().unwrap().ends_with("+09:00"), "JST");
    common::reliability_row(
        "real-window-handoff",
        "UI",
        "the real app under Xvfb tapped by coordinates only: 搬送先照会 without a card from Ready (主訴, one hospital, 照会送信 double-tapped, 搬送決定 on the 受入可 when it came, 到着); then the handoff-accept path from a card (photo, 同意取得困難, summary, 搬送先照会, vitals, three hospitals, 搬送決定, ETA −5, 到着, 閲覧終了); the admin's audit export read afterwards",
        2,
        0,
        "each request once, its answers, the decision and updates as hand-off rows with JST times; 23 taps from the card to 搬送決定 (10 of them vitals)",
    );
}
