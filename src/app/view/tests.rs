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
