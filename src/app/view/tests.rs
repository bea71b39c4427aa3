//! The view model's tests: what each phase shows, and what it never shows.

use super::*;

#[test]
fn dates_on_screen_are_jst() {
    // 2026-01-01T15:30Z is already 2 January in Japan: a patient born on 2 January
    // turns a year older at this instant on a tablet whose clock zone is UTC
    let now = Timestamp(1_767_281_400_000);
    assert_eq!(today_jst(now), time::macros::date!(2026 - 01 - 02));
    let birth = time::macros::date!(1950 - 01 - 02);
    assert_eq!(age_on(birth, today_jst(now)), 76);
}

#[test]
fn no_pin_message_steers_the_crew_to_consent_unobtainable() {
    let mut all = vec![
        PinNotice::Wrong { tries_left: 2 },
        PinNotice::Blocked,
        PinNotice::LastTry,
        PinNotice::Format,
    ];
    all.extend(Notice::ALL.map(PinNotice::Card));
    for n in all {
        assert!(!n.message_ja().contains("同意取得困難"), "{n:?}");
    }
    // a blocked PIN offers the photo check or the end, nothing else
    let blocked = PinNotice::Blocked.message_ja();
    assert!(
        blocked.contains("顔写真") && blocked.contains("終了"),
        "{blocked}"
    );
}

#[test]
fn the_claims_caveat_says_lag_and_gaps_and_what_none_means() {
    assert!(CLAIMS_CAVEAT.contains("レセプト"));
    assert!(CLAIMS_CAVEAT.contains("遅れ"));
    assert!(CLAIMS_CAVEAT.contains("「該当なし」は既往がないことを意味しません"));
}

/// The windows on screen are the answer's: another window reads as that window, a missing
/// one as 「期間不明」, never as the 3 months we happen to know today.
#[test]
fn section_windows_on_screen_are_the_answers_own() {
    use crate::domain::{SUMMARY_WINDOWS, SectionWindows, Window};
    let mut info = EmergencyInfo::default();
    info.summary.windows = SectionWindows {
        visits: Some(Window::months(6)),
        ..SUMMARY_WINDOWS
    };
    info.summary.surgeries.push(crate::domain::Surgery {
        date: time::macros::date!(2025 - 01 - 10),
        procedure: "胃切除術".into(),
        hospital: "市民病院".into(),
    });
    let sections = summary_sections(&info);
    let window = |title: &str| {
        sections
            .iter()
            .find(|s| s.title == title)
            .map(|s| s.window.clone())
            .unwrap()
    };
    assert_eq!(window("受診歴"), "6か月");
    assert_eq!(window("電子処方箋"), "45日");
    let alerts: Vec<String> = info.summary.alerts().iter().map(Alert::label_ja).collect();
    assert_eq!(alerts, ["手術歴（5年以内）"]);

    // an answer that states no windows
    info.summary.windows = SectionWindows::default();
    info.full.windows = SectionWindows::default();
    for s in summary_sections(&info).iter().chain(&full_sections(&info)) {
        assert_eq!(s.window, "期間不明", "{}", s.title);
    }
    let alerts: Vec<String> = info.summary.alerts().iter().map(Alert::label_ja).collect();
    assert_eq!(alerts, ["手術歴（期間不明）"]);
}
