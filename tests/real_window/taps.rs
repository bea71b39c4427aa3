//! A gloved hand on the real window: a whole shift of incidents tapped by coordinates, what was recorded read back.

use super::*;

#[test]
fn a_gloved_hand_on_the_real_window_records_what_the_crew_chose() {
    let layout = Layout::new();
    let api = layout.api();
    // the places, screen by screen
    let CardPlaces {
        sign_in,
        trainer,
        place_card,
        photo,
    } = CardPlaces::of(&layout);
    let pin_open = layout.by_id("ConsentScreen::pinopen");
    let verbal = layout.by_id("ConsentScreen::verbal");
    let unobtainable = layout.by_id("ConsentScreen::unobtainable");
    let refuse = layout.by_id("ConsentScreen::refuse");
    let end = layout.by_id("ConsentScreen::end");
    api.set_pin_entry_open(true);
    let pin_close = layout.by_id("ConsentScreen::pinclose");
    api.set_pin_entry_open(false);
    api.set_reason_picker_open(true);
    let reason_unconscious = layout.by_id("ConsentScreen::unconscious");
    api.set_reason_picker_open(false);
    api.set_screen(Screen::Summary);
    let end_viewing = layout.by_id("ViewingHeader::end");
    // the defect this test was written for: the verbal button stood where the photo
    // buttons' column ended; a tap there must never record 同意取得困難
    assert!(verbal.1 > photo.1 && unobtainable.1 > verbal.1);

    let TrainingWindow {
        mut s,
        shots,
        app,
        _xvfb,
        d,
    } = TrainingWindow::start("real-window", &sign_in);

    let place = |s: &mut Screenful, name: &str| {
        s.tap(trainer, 1);
        std::thread::sleep(LOOK);
        s.tap(place_card, 1);
        std::thread::sleep(CARD);
        s.shot(name);
    };

    // 1. The flow from the issue: photo, then at once where 口頭同意あり stood.
    place(&mut s, "consent");
    s.tap(photo, 1);
    std::thread::sleep(Duration::from_millis(150));
    s.tap(verbal, 1); // on its way before the screen changed: ignored
    std::thread::sleep(LOOK);
    s.shot("photo-confirmed-quick-tap-ignored");
    s.tap(verbal, 1);
    std::thread::sleep(CARD);
    s.shot("summary-verbal");
    s.tap(end_viewing, 1);
    std::thread::sleep(LOOK);

    // 2. A double tap on each button of the consent screen.
    place(&mut s, "double-photo");
    s.tap(photo, 2);
    std::thread::sleep(LOOK);
    s.shot("double-photo-after");
    s.tap(end, 1);
    std::thread::sleep(LOOK);

    place(&mut s, "double-pin");
    s.tap(pin_open, 2);
    std::thread::sleep(LOOK);
    s.shot("double-pin-after");
    s.tap(pin_close, 1);
    std::thread::sleep(LOOK);
    s.tap(end, 1);
    std::thread::sleep(LOOK);

    place(&mut s, "double-verbal");
    s.tap(photo, 1);
    std::thread::sleep(LOOK);
    s.tap(verbal, 2);
    std::thread::sleep(CARD);
    s.shot("double-verbal-after");
    s.tap(end_viewing, 1);
    std::thread::sleep(LOOK);

    place(&mut s, "double-unobtainable");
    s.tap(photo, 1);
    std::thread::sleep(LOOK);
    s.tap(unobtainable, 2);
    std::thread::sleep(LOOK);
    s.shot("double-unobtainable-reason-picker");
    // the reason, tapped twice too: one decision
    s.tap(reason_unconscious, 2);
    std::thread::sleep(CARD);
    s.shot("double-unobtainable-after");
    s.tap(end_viewing, 1);
    std::thread::sleep(LOOK);

    place(&mut s, "double-refuse");
    s.tap(refuse, 2);
    std::thread::sleep(LOOK);
    s.shot("double-refuse-after");
    s.tap(end, 1);
    std::thread::sleep(LOOK);

    place(&mut s, "double-end");
    s.tap(end, 2);
    std::thread::sleep(LOOK);
    s.shot("double-end-after");
    drop(app);

    // what an admin reads afterwards
    let rows = admin_export(d.path());
    let decisions = decisions(&rows);
    assert_eq!(
        decisions,
        vec![
            "consent:verbal",
            "consent:verbal",
            "consent:unobtainable",
            "explanation:not_yet_handed",
            "consent:refused",
        ],
        "exactly the decisions tapped, once each; screenshots in {}",
        shots.display()
    );
    let checks = rows
        .iter()
        .filter(|r| r["action"] == "qualification_check")
        .count();
    assert_eq!(checks, 7, "seven cards placed");
    let summaries: Vec<&str> = rows
        .iter()
        .filter(|r| r["action"] == "view:emergency_summary")
        .map(|r| r["consent"].as_str().unwrap())
        .collect();
    assert_eq!(summaries, vec!["consented", "consented", "unobtainable"]);
    let reasons: Vec<&str> = rows
        .iter()
        .filter(|r| r["record"] == "consent")
        .map(|r| r["consent_reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        vec!["", "", "unconscious", ""],
        "the reason tapped, recorded"
    );
    common::reliability_row(
        "real-window-taps",
        "UI",
        "the real window under Xvfb tapped by coordinates (xdotool): photo then an immediate tap where 口頭同意あり stands, and a double tap on each consent-screen button; the audit export read back",
        7,
        0,
        "each decision recorded exactly as tapped, once; a tap within the guard time ignored",
    );
}
