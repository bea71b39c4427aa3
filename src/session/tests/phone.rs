//! A phone instead of the card: only with its owner, no photo, no 同意取得困難.

use super::*;

/// Signed in, an Android phone on the reader, waiting for its smartphone PIN.
fn android_at_pin() -> Session {
    let mut s = signed_in();
    ok(&mut s, Event::CardDetected { incident: inc(1) });
    assert!(ok(&mut s, Event::PhoneNeedsPin { incident: inc(1) }).is_empty());
    assert_eq!(s.phase(), Phase::PhonePin);
    s
}

#[test]
fn an_android_phone_asks_for_its_pin_before_anything_is_read() {
    let mut s = android_at_pin();
    assert!(!s.holds_patient_data());
    // the PIN verified and the certificate read: the qualification check goes out
    let fx = ok(
        &mut s,
        Event::CardReadOk {
            incident: inc(1),
            credential: phone_credential(crate::domain::TokenKind::AndroidPhone),
        },
    );
    assert!(matches!(fx.as_slice(), [Effect::SendQualification(_)]));
    // a card's read answering for the phone is not the phone's read
    let mut other = android_at_pin();
    assert!(
        other
            .handle(
                T,
                Event::CardReadOk {
                    incident: inc(1),
                    credential: credential(),
                },
            )
            .is_err()
    );
    assert_eq!(other.phase(), Phase::PhonePin);
}

#[test]
fn a_phone_pulled_away_while_waiting_for_its_pin_leaves_nothing() {
    let mut s = android_at_pin();
    let fx = ok(&mut s, Event::CardRemoved);
    assert_eq!(s.phase(), Phase::Ready);
    assert_eq!(s.notice(), Some(Notice::CardRemovedDuringRead));
    assert!(fx.contains(&Effect::PurgePatientData { incident: inc(1) }));
    assert!(s.incident().is_none());
}

#[test]
fn an_unconscious_patients_phone_ends_the_incident_and_never_reaches_consent() {
    let mut s = android_at_pin();
    assert!(ok(&mut s, Event::PatientCannotAuthenticate).is_empty());
    assert_eq!(s.phase(), Phase::PhoneUnusable);
    assert_eq!(s.notice(), Some(Notice::PhoneNeedsItsOwner));
    assert!(
        !Notice::PhoneNeedsItsOwner
            .message_ja()
            .contains("同意取得困難")
    );
    // no way around the patient: no consent, no photo, no read, nothing recorded
    for e in [
        consent(ConsentDecision::Unobtainable),
        Event::IdentityConfirmed {
            check: IdentityCheck::Photo,
        },
        Event::CardReadOk {
            incident: inc(1),
            credential: phone_credential(crate::domain::TokenKind::AndroidPhone),
        },
        Event::Retry,
    ] {
        let name = e.name();
        assert!(s.handle(T, e).is_err(), "{name} applied");
        assert_eq!(s.phase(), Phase::PhoneUnusable);
    }
    let fx = ok(&mut s, Event::EndViewing);
    assert_eq!(s.phase(), Phase::Ready);
    assert!(
        fx.iter()
            .all(|e| matches!(e, Effect::PurgePatientData { .. })),
        "{fx:?}"
    );
}

/// A phone read and its coverage on screen.
fn phone_at_consent(token: crate::domain::TokenKind) -> Session {
    let mut s = signed_in();
    ok(&mut s, Event::CardDetected { incident: inc(1) });
    if token == crate::domain::TokenKind::AndroidPhone {
        ok(&mut s, Event::PhoneNeedsPin { incident: inc(1) });
    }
    ok(
        &mut s,
        Event::CardReadOk {
            incident: inc(1),
            credential: phone_credential(token),
        },
    );
    ok(
        &mut s,
        Event::QualificationAnswered {
            incident: inc(1),
            qualification: QualificationRef::new("Q-1"),
            coverage: coverage(),
        },
    );
    s
}

#[test]
fn a_phone_has_no_photo_check_and_no_consent_unobtainable() {
    use crate::domain::TokenKind;
    for (token, check) in [
        (TokenKind::AndroidPhone, IdentityCheck::Pin),
        (TokenKind::IPhone, IdentityCheck::PhoneBiometric),
    ] {
        let mut s = phone_at_consent(token);
        assert_eq!(
            s.handle(
                T,
                Event::IdentityConfirmed {
                    check: IdentityCheck::Photo
                }
            ),
            Err(SessionError::PhoneHasNoPhoto)
        );
        // the other phone's check is not this phone's
        let wrong = if check == IdentityCheck::Pin {
            IdentityCheck::PhoneBiometric
        } else {
            IdentityCheck::Pin
        };
        assert!(
            s.handle(T, Event::IdentityConfirmed { check: wrong })
                .is_err()
        );
        ok(&mut s, Event::IdentityConfirmed { check });
        assert_eq!(
            s.handle(T, consent(ConsentDecision::Unobtainable)),
            Err(SessionError::UnobtainableOnPhone)
        );
        let fx = ok(&mut s, consent(ConsentDecision::Verbal));
        let q = inquiries(&fx);
        assert_eq!(q.len(), 1);
        assert_eq!((q[0].token, q[0].identity_check), (token, check));
        assert!(audits(&fx).iter().all(|a| a.token == Some(token)));
        ok(
            &mut s,
            Event::EmergencyInfoAnswered {
                incident: inc(1),
                info: Box::default(),
            },
        );
        // nor can a correction reach 同意取得困難 afterwards
        assert_eq!(
            s.handle(T, correct(ConsentDecision::Unobtainable)),
            Err(SessionError::UnobtainableOnPhone)
        );
    }
}

#[test]
fn a_locked_iphone_goes_back_to_ready_with_one_line_for_the_crew() {
    let mut s = signed_in();
    ok(&mut s, Event::CardDetected { incident: inc(1) });
    ok(
        &mut s,
        Event::CardReadFailed {
            incident: inc(1),
            failure: CardFailure::PhoneLocked,
        },
    );
    assert_eq!(s.phase(), Phase::Ready);
    assert_eq!(s.notice(), Some(Notice::PhoneLocked));
    let line = Notice::PhoneLocked.message_ja();
    assert!(
        line.contains("Face ID") && line.contains("Touch ID"),
        "{line}"
    );
    assert!(!line.contains('\n'));
}
