//! Phones on screen: the smartphone PIN first, no 同意取得困難, one line for a locked iPhone.

use super::*;

#[test]
fn an_android_phone_takes_the_smartphone_pin_first_and_never_offers_consent_unobtainable() {
    let mut r = Rig::new();
    r.sign_in();
    r.hold_phone("diabetic-insulin", mynakyukyu::drill::Carrier::Android);
    assert_eq!(r.screen(), Screen::Phone);
    assert!(r.shows("患者さんに、スマホ用の暗証番号（4桁）を入力してもらってください"));
    assert!(
        !r.api().get_has_patient(),
        "nothing of the patient before the PIN"
    );
    assert!(!r.enabled("確認"), "確認 before four digits");
    for d in "1234".chars() {
        r.tap(&d.to_string());
    }
    r.tap("確認");
    assert_eq!(r.screen(), Screen::Consent);
    assert!(r.api().get_has_patient());
    assert!(
        r.shows("✓ スマホの暗証番号で本人確認済み"),
        "{:?}",
        r.api().get_identity_confirmed()
    );
    // no photo, no 同意取得困難: only the patient's own answer or a refusal
    assert!(!r.enabled("同意取得困難（スマホでは不可）"));
    assert!(r.find("同意取得困難（意識障害等）").is_empty());
    assert!(
        !r.enabled("写真で確認できない → 暗証番号") && !r.enabled("写真なし（スマートフォン）")
    );
    r.tap("口頭同意あり");
    assert_eq!(r.screen(), Screen::Summary);
    let rows = records(&r);
    let audits: Vec<_> = rows.iter().filter(|x| x.record == "audit").collect();
    assert!(!audits.is_empty());
    assert!(
        audits.iter().all(|x| x.token == "android_phone"),
        "{rows:?}"
    );
    assert!(
        audits
            .iter()
            .filter(|x| x.action.starts_with("view"))
            .all(|x| x.identity_check == "pin")
    );
}

#[test]
fn an_unconscious_patients_phone_shows_one_line_and_only_the_end() {
    let mut r = Rig::new();
    r.sign_in();
    r.hold_phone("elderly-warfarin", mynakyukyu::drill::Carrier::Android);
    assert_eq!(r.screen(), Screen::Phone);
    r.tap("本人が入力できない（意識なし等）");
    assert!(r.shows("スマートフォンは本人の暗証番号がないと読めません。意識のない方には使えません。終了してください。"));
    // nothing else to tap: the pad, 確認 and the button itself are disabled in place
    for label in ["1", "0", "確認", "本人が入力できない（意識なし等）"] {
        assert!(!r.enabled(label), "{label} enabled");
    }
    assert!(r.find("同意取得困難（意識障害等）").is_empty());
    r.tap("終了");
    assert_eq!(r.screen(), Screen::Ready);
    assert!(records(&r).is_empty(), "nothing recorded");
}

#[test]
fn a_locked_iphone_asks_the_crew_for_the_owners_face_id_in_one_line() {
    let mut r = Rig::new();
    r.sign_in();
    r.hold_phone("diabetic-insulin", mynakyukyu::drill::Carrier::IosLocked);
    assert_eq!(r.screen(), Screen::Ready);
    assert!(r.shows(
        "iPhoneです。持ち主の方にFace ID / Touch IDで認証してもらい、もう一度かざしてください。"
    ));
    assert!(!r.api().get_has_patient());
    // the owner unlocked it and holds it out again: read with no PIN, signed by the phone
    r.world.reader.remove();
    r.hold_phone("diabetic-insulin", mynakyukyu::drill::Carrier::Ios);
    assert_eq!(r.screen(), Screen::Consent);
    assert!(r.shows("✓ iPhoneの生体認証で本人確認済み"));
    r.tap("口頭同意あり");
    assert_eq!(r.screen(), Screen::Summary);
    let rows = records(&r);
    assert!(
        rows.iter()
            .filter(|x| x.record == "audit" && x.action.starts_with("view"))
            .all(|x| x.token == "iphone" && x.identity_check == "phone_biometric"),
        "{rows:?}"
    );
}
