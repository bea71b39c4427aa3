//! The incident on screen, tap by accessible label: the whole flow, refusal, opt-out, a card pulled, the line, the trainer panel, records.

use super::*;

#[test]
fn full_flow_sign_in_card_confirm_consent_summary_full_end() {
    let mut r = Rig::new();
    assert!(r.api().get_status().training);
    assert!(r.shows("訓練モード"), "training banner");
    r.sign_in();
    assert!(r.shows("カードをリーダーに置いてください"));
    r.place_card("elderly-warfarin");
    assert_eq!(r.screen(), Screen::Consent);
    assert!(r.shows("氏名 "), "patient name shown");
    assert!(!r.api().get_patient().name.is_empty());
    // two taps from the card to the summary
    r.tap("顔写真と本人が一致");
    r.tap("同意取得困難（意識障害等）");
    r.tap("意識障害");
    assert_eq!(r.screen(), Screen::Summary);
    assert!(
        r.shows("注意 抗凝固薬"),
        "anticoagulant alert on the summary"
    );
    assert!(
        r.api().get_summary().iter().count() == 7,
        "seven MHLW items"
    );
    r.tap("全量版を見る");
    assert_eq!(r.screen(), Screen::FullData);
    r.tap("サマリーに戻る");
    assert_eq!(r.screen(), Screen::Summary);
    r.tap("閲覧終了");
    assert_eq!(r.screen(), Screen::Ready);
    // viewing ended: the screen's copy of the patient is gone
    let api = r.api();
    assert!(api.get_patient().name.is_empty());
    assert_eq!(api.get_summary().iter().count(), 0);
    assert_eq!(api.get_full().iter().count(), 0);
    assert_eq!(api.get_alerts().iter().count(), 0);
    assert!(!r.controller.view().holds_patient_data());
    assert!(!r.shows("氏名 "));
    // the app keeps no copy of its records in memory (only a drill's debrief asks for one)
    assert!(r.controller.recorded().is_empty());
}

#[test]
fn refusal_records_and_never_inquires() {
    let mut r = Rig::new();
    r.sign_in();
    r.place_card("P0020");
    let before = r.world.server.inquiry_count();
    r.tap("顔写真と本人が一致");
    r.tap("拒否");
    assert_eq!(r.screen(), Screen::Consent);
    assert!(r.api().get_case_closed());
    assert_eq!(r.world.server.inquiry_count(), before);
    r.tap("終了して次の患者へ");
    assert_eq!(r.screen(), Screen::Ready);
    assert!(r.api().get_patient().name.is_empty());
}

#[test]
fn opt_out_is_shown_plainly_without_consent_buttons_enabled() {
    let mut r = Rig::new();
    r.sign_in();
    r.place_card("opt-out");
    assert_eq!(r.screen(), Screen::Consent);
    assert!(r.api().get_case_closed());
    assert!(
        r.api().get_notice().contains("オプトアウト"),
        "{}",
        r.api().get_notice()
    );
    let buttons = r
        .find("口頭同意あり")
        .into_iter()
        .filter(|h| h.accessible_role() == Some(i_slint_backend_testing::AccessibleRole::Button));
    for b in buttons {
        assert_eq!(
            b.accessible_enabled(),
            Some(false),
            "no consent choice after an opt-out: {:?}",
            b.type_name()
        );
    }
    r.tap("終了して次の患者へ");
    assert_eq!(r.screen(), Screen::Ready);
}

#[test]
fn card_removed_mid_read_says_so_and_a_second_read_works() {
    let mut r = Rig::new();
    r.sign_in();
    let id = r.world.patient_id("P0031").unwrap();
    r.world.place_card(&id).unwrap();
    r.world.reader.remove_after_apdus(3);
    r.send(Command::CardPlaced);
    assert_eq!(r.screen(), Screen::Ready);
    let notice = r.api().get_notice().to_string();
    assert!(notice.contains("カード"), "{notice}");
    assert!(r.shows(&notice), "notice shown on the ready screen");
    r.place_card("P0031");
    assert_eq!(r.screen(), Screen::Consent);
}

#[test]
fn line_lost_during_the_inquiry_waits_then_resends_when_restored() {
    let mut r = Rig::new();
    r.sign_in();
    r.place_card("diabetic-insulin");
    r.tap("顔写真と本人が一致");
    r.world.set_line(LinkState::Down);
    r.tap("口頭同意あり");
    assert_eq!(r.screen(), Screen::Consent, "still on the consent screen");
    assert!(r.api().get_waiting_for_link());
    assert!(
        r.api().get_busy().contains("回線待ち"),
        "{}",
        r.api().get_busy()
    );
    assert_eq!(r.controller.view().screen, VScreen::Consent);
    r.world.set_line(LinkState::Up);
    r.send(Command::LinkRestored);
    assert_eq!(r.screen(), Screen::Summary);
    assert!(r.shows("注意 インスリン"));
}

#[test]
fn wrong_crew_pin_is_refused_on_screen() {
    let mut r = Rig::new();
    // nothing chosen: サインイン stays disabled whatever the keypad says
    for d in "9999".chars() {
        r.tap(&d.to_string());
    }
    assert!(!r.enabled("サインイン"), "sign-in with nobody chosen");
    r.tap(TRAINING_CREW_NAME);
    r.tap("サインイン");
    assert_eq!(r.screen(), Screen::SignIn);
    assert!(r.api().get_sign_in_error().contains("PIN"));
}

#[test]
fn trainer_panel_places_a_scenario_card_and_drops_the_line() {
    let mut r = Rig::new();
    r.sign_in();
    r.tap("訓練操作");
    assert!(r.api().get_trainer_open());
    // listed by their Japanese titles, in a list that scrolls: dialysis is below the fold
    let title = mynakyukyu::drill::scenario("dialysis").unwrap().title;
    assert!(!title.is_ascii());
    assert!(r.find(&title).is_empty(), "not visible before scrolling");
    let list = ElementQuery::from_root(&r.app)
        .match_type_name("ScrollView")
        .find_all()
        .into_iter()
        .find(|h| h.absolute_position().x > 700.0)
        .expect("the trainer's scenario list");
    for _ in 0..10 {
        if !r.find(&title).is_empty() {
            break;
        }
        list.scroll(0.0, -200.0);
    }
    r.tap(&title);
    assert_eq!(
        r.screen(),
        Screen::Consent,
        "the scenario's card was placed and read"
    );
    r.tap("訓練操作");
    r.tap("回線断");
    assert!(r.api().get_trainer_message().contains("回線断"));
    r.tap("顔写真と本人が一致");
    r.tap("口頭同意あり");
    assert!(
        r.api().get_waiting_for_link(),
        "the inquiry waits for the line"
    );
    r.tap("回線復旧");
    r.send(Command::LinkRestored);
    assert_eq!(r.screen(), Screen::Summary);
    assert!(r.shows("注意 透析"));
}

#[test]
fn a_refusal_clears_the_patient_from_the_screen_at_once_and_is_exported() {
    let mut r = Rig::new();
    r.sign_in();
    r.place_card("P0020");
    assert!(r.shows("氏名 "));
    r.tap("拒否");
    assert!(
        !r.shows("氏名 "),
        "the name left the screen with the refusal"
    );
    assert!(r.api().get_patient().name.is_empty());
    assert!(!r.api().get_has_patient());
    assert!(r.api().get_notice().contains("拒否を記録"));
    let rows = records(&r);
    assert!(
        rows.iter()
            .any(|x| x.action == "consent:refused" && !x.insured_number.is_empty()),
        "{rows:?}"
    );
}

#[test]
fn a_consent_decision_is_corrected_by_an_appended_record_shown_on_the_summary() {
    let mut r = Rig::new();
    r.sign_in();
    r.place_card("pregnant");
    r.tap("顔写真と本人が一致");
    r.tap("同意取得困難（意識障害等）");
    r.tap("意識障害");
    assert_eq!(r.screen(), Screen::Summary);
    r.tap("同意を訂正");
    assert!(r.api().get_correction_open());
    assert_eq!(
        r.find("同意取得困難に訂正")[0].accessible_enabled(),
        Some(false),
        "the decision in force cannot be chosen again"
    );
    r.tap("口頭同意ありに訂正");
    assert!(!r.api().get_correction_open());
    assert!(
        r.shows("同意: 口頭同意あり\n訂正: 同意取得困難 → 口頭同意あり"),
        "{}",
        r.api().get_consent_correction()
    );
    r.tap("全量版を見る");
    r.tap("閲覧終了");
    let rows = records(&r);
    let actions: Vec<&str> = rows.iter().map(|x| x.action.as_str()).collect();
    let first = actions.iter().position(|a| *a == "consent:unobtainable");
    let correction = actions
        .iter()
        .position(|a| *a == "correction:unobtainable->verbal");
    assert!(
        first.is_some() && correction > first,
        "both kept, in order: {actions:?}"
    );
    let full_view = rows.iter().find(|x| x.action == "view:full_data").unwrap();
    assert_eq!(
        full_view.consent, "consented",
        "views after it carry the correction"
    );
}

#[test]
fn after_viewing_without_consent_the_crew_is_reminded_of_the_explanation() {
    let mut r = Rig::new();
    r.sign_in();
    r.place_card("elderly-warfarin");
    r.tap("顔写真と本人が一致");
    r.tap("同意取得困難（意識障害等）");
    r.tap("意識障害");
    assert!(r.shows("傷病者用説明書を患者・家族に渡してください\n問い合わせ先 訓練消防本部"));
    r.tap("説明書を渡した");
    assert!(r.api().get_explanation_handed());
    assert_eq!(
        r.find("✓ 説明書 交付済")[0].accessible_enabled(),
        Some(false)
    );
    r.tap("閲覧終了");
    // and when the viewing ends before it was handed, the record says it is still owed
    r.place_card("elderly-warfarin");
    r.tap("顔写真と本人が一致");
    r.tap("同意取得困難（意識障害等）");
    r.tap("意識障害");
    r.tap("閲覧終了");
    let handed: Vec<String> = records(&r)
        .into_iter()
        .filter(|x| x.record == "explanation")
        .map(|x| x.action)
        .collect();
    assert_eq!(
        handed,
        vec!["explanation:handed", "explanation:not_yet_handed"]
    );
}

#[test]
fn the_summary_names_its_source_and_flags_most_recent_valid_coverage() {
    let mut r = Rig::new();
    r.sign_in();
    r.place_card("invalid-coverage");
    assert!(
        r.shows("現在有効な資格はありません"),
        "flagged on the identity screen"
    );
    r.tap("顔写真と本人が一致");
    r.tap("口頭同意あり");
    assert_eq!(r.screen(), Screen::Summary);
    assert!(
        r.shows("資格: 現在有効な資格はありません"),
        "flagged on the summary"
    );
    assert!(r.shows("レセプト（診療報酬請求）に基づく情報です"));
    r.tap("全量版を見る");
    assert!(r.shows("レセプト（診療報酬請求）に基づく情報です"));
    assert!(
        r.shows("資格: 現在有効な資格はありません"),
        "and on the full data"
    );
}

#[test]
fn a_public_assistance_patient_shows_payer_and_recipient_numbers() {
    let mut r = Rig::new();
    r.sign_in();
    r.place_card("public-assistance");
    assert_eq!(r.screen(), Screen::Consent);
    let p = r.api().get_patient();
    assert!(
        p.recipient.len() == 7 && p.public_payer.starts_with("12"),
        "{p:?}"
    );
    assert!(r.shows("受給者番号 "));
    assert!(r.shows("公費負担者番号 "));
    r.tap("顔写真と本人が一致");
    r.tap("口頭同意あり");
    r.tap("閲覧終了");
    let rows = records(&r);
    let view = rows
        .iter()
        .find(|x| x.action == "view:emergency_summary")
        .unwrap();
    assert_eq!(view.insured_number, "");
    assert_eq!(view.recipient_number, p.recipient.as_str());
}

#[test]
fn training_sign_in_shows_the_training_crew_and_pin() {
    let r = Rig::new();
    assert!(r.shows(&format!(
        "訓練用: {TRAINING_CREW_NAME}　PIN {TRAINING_CREW_PIN}"
    )));
    // the roster's crew as buttons: the training crew is one of them
    assert!(r.enabled(TRAINING_CREW_NAME));
}

#[test]
fn the_tap_guard_ignores_a_tap_that_lands_just_after_the_screen_changed() {
    let mut r = Rig::new();
    r.sign_in();
    // the real guard from here on
    let panel = ui::TrainingPanel {
        world: r.world.clone(),
        commands: r.tx.clone(),
        runtime: r.rt.handle().clone(),
    };
    ui::bind(&r.app, r.tx.clone(), Some(std::sync::Arc::new(panel)));
    std::thread::sleep(ui::TAP_GUARD);
    r.place_card("diabetic-insulin");
    std::thread::sleep(ui::TAP_GUARD);
    r.tap("顔写真と本人が一致");
    let ignored = ui::taps_ignored();
    // the tap that was already on its way: ignored, nothing recorded
    r.tap("口頭同意あり");
    assert_eq!(ui::taps_ignored(), ignored + 1);
    assert_eq!(r.screen(), Screen::Consent);
    assert!(
        !records(&r).iter().any(|x| x.record == "consent"),
        "no consent recorded from a guarded tap"
    );
    // the crew looks, then taps: accepted
    std::thread::sleep(ui::TAP_GUARD + std::time::Duration::from_millis(50));
    r.tap("口頭同意あり");
    assert_eq!(r.screen(), Screen::Summary);
    // 閲覧終了 right after the summary appeared: ignored too
    r.tap("閲覧終了");
    assert_eq!(r.screen(), Screen::Summary);
    std::thread::sleep(ui::TAP_GUARD + std::time::Duration::from_millis(50));
    r.tap("閲覧終了");
    assert_eq!(r.screen(), Screen::Ready);
    let consents: Vec<String> = records(&r)
        .into_iter()
        .filter(|x| x.record == "consent")
        .map(|x| x.action)
        .collect();
    assert_eq!(consents, vec!["consent:verbal"]);
}

// ---- nothing moves under a finger, at every panel size ----

/// 同意取得困難 takes one more tap, its reason; nothing leaves the tablet before it, the
/// record and the export carry it, and a correction to 同意取得困難 asks for it too.
#[test]
fn unobtainable_consent_asks_why_in_one_tap_and_the_record_says_it() {
    let mut r = Rig::new();
    r.sign_in();
    r.place_card("elderly-warfarin");
    r.tap("顔写真と本人が一致");
    r.tap("同意取得困難（意識障害等）");
    assert_eq!(r.screen(), Screen::Consent, "the reason comes first");
    assert!(r.api().get_reason_picker_open());
    assert!(records(&r).iter().all(|x| x.record != "consent"));
    assert!(
        !r.enabled("口頭同意あり"),
        "no second decision while choosing"
    );
    // the crew can go back and choose otherwise
    r.tap("同意の選択に戻る");
    assert!(!r.api().get_reason_picker_open());
    r.tap("同意取得困難（意識障害等）");
    r.tap("判断能力\n（小児・認知症等）");
    assert_eq!(r.screen(), Screen::Summary);
    assert!(
        r.shows("同意: 同意取得困難（判断能力）"),
        "{}",
        r.api().get_consent()
    );
    // a correction away and back again: to 同意取得困難 with its reason
    r.tap("同意を訂正");
    r.tap("口頭同意ありに訂正");
    r.tap("同意を訂正");
    r.tap("同意取得困難に訂正");
    assert!(
        r.api().get_correction_open(),
        "the reasons open in the panel"
    );
    r.tap("意思疎通困難\n（重篤・言語等）");
    assert!(!r.api().get_correction_open());
    r.tap("閲覧終了");
    let rows = records(&r);
    let consent = rows.iter().find(|x| x.record == "consent").unwrap();
    assert_eq!(
        (consent.consent.as_str(), consent.consent_reason.as_str()),
        ("unobtainable", "lacks_capacity")
    );
    let corrections: Vec<(&str, &str)> = rows
        .iter()
        .filter(|x| x.record == "consent_correction")
        .map(|x| (x.action.as_str(), x.consent_reason.as_str()))
        .collect();
    assert_eq!(
        corrections,
        [
            ("correction:unobtainable->verbal", ""),
            ("correction:verbal->unobtainable", "cannot_communicate")
        ]
    );
    // the official log items: the patient's id on every row, the kind on views and inquiry
    assert!(
        rows.iter()
            .all(|x| x.patient_id == rows[0].patient_id && !x.patient_id.is_empty())
    );
    let inquiry = rows
        .iter()
        .find(|x| x.action == "emergency_info_inquiry")
        .unwrap();
    assert_eq!(inquiry.kind, "emergency_summary+full_data");
    assert!(
        rows.iter()
            .filter(|x| x.action.starts_with("view:"))
            .all(|x| x.action == format!("view:{}", x.kind))
    );
}
