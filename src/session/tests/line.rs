//! The line and the server on the road: a lost link keeps the decision and resends, timeouts, refusals, events out of place, notices.

use super::*;

#[test]
fn link_lost_during_inquiry_keeps_consent_and_resends_the_same_inquiry() {
    let mut s = at_consent();
    confirm_identity(&mut s);
    let first = ok(&mut s, consent(ConsentDecision::Unobtainable));
    let sent = inquiries(&first)[0].clone();
    ok(&mut s, Event::LinkLost);
    // the client reports the failure too
    ok(
        &mut s,
        Event::EmergencyInfoFailed {
            incident: inc(1),
            failure: ServiceFailure::LinkDown,
        },
    );
    assert_eq!(s.phase(), Phase::AwaitingEmergencyInfo);
    assert_eq!(s.notice(), Some(Notice::WaitingForLink));
    assert!(s.waiting_for_link());
    assert_eq!(
        s.incident().unwrap().consent,
        Some(ConsentDecision::Unobtainable)
    );
    // consent is not asked again
    assert!(s.handle(T, consent(ConsentDecision::Verbal)).is_err());
    let fx = ok(&mut s, Event::LinkRestored);
    let resent = inquiries(&fx);
    assert_eq!(resent.len(), 1);
    assert_eq!(*resent[0], sent, "the very same inquiry goes out again");
    // no second consent record, no second inquiry audit
    assert!(audits(&fx).is_empty());
    assert!(
        !fx.iter()
            .any(|e| matches!(e, Effect::AppendConsentRecord(_)))
    );
    ok(
        &mut s,
        Event::EmergencyInfoAnswered {
            incident: inc(1),
            info: Box::default(),
        },
    );
    assert_eq!(s.phase(), Phase::ViewingSummary);
}

#[test]
fn consent_chosen_while_link_is_down_waits_and_goes_out_on_restore() {
    let mut s = at_consent();
    ok(&mut s, Event::LinkLost);
    confirm_identity(&mut s);
    let fx = ok(&mut s, consent(ConsentDecision::Verbal));
    assert!(inquiries(&fx).is_empty());
    // the consent is recorded even though nothing can be sent
    assert!(
        fx.iter()
            .any(|e| matches!(e, Effect::AppendConsentRecord(_)))
    );
    assert!(s.waiting_for_link());
    let fx = ok(&mut s, Event::LinkRestored);
    assert_eq!(inquiries(&fx).len(), 1);
}

#[test]
fn timeout_in_qualification_waits_for_link_and_resends() {
    let mut s = signed_in();
    read_card(&mut s);
    ok(
        &mut s,
        Event::QualificationFailed {
            incident: inc(1),
            failure: ServiceFailure::Timeout,
        },
    );
    assert_eq!(s.phase(), Phase::CheckingQualification);
    assert!(!s.link_up());
    let fx = ok(&mut s, Event::LinkRestored);
    assert!(matches!(fx.as_slice(), [Effect::SendQualification(_)]));
}

#[test]
fn server_refusal_fails_with_retry_that_resends() {
    let mut s = at_consent();
    confirm_identity(&mut s);
    ok(&mut s, consent(ConsentDecision::Verbal));
    ok(
        &mut s,
        Event::EmergencyInfoFailed {
            incident: inc(1),
            failure: ServiceFailure::CertificateRefused,
        },
    );
    assert_eq!(s.phase(), Phase::Failed);
    assert_eq!(s.notice(), Some(Notice::CertificateRefused));
    assert!(s.coverage().is_some(), "the crew still sees who it was for");
    let fx = ok(&mut s, Event::Retry);
    assert_eq!(inquiries(&fx).len(), 1);
    assert_eq!(s.phase(), Phase::AwaitingEmergencyInfo);
}

#[test]
fn events_out_of_place_change_nothing() {
    let mut s = signed_in();
    for e in [
        Event::ViewFullData,
        Event::BackToSummary,
        Event::Retry,
        Event::EndViewing,
        Event::CardRemoved,
        Event::IdentityConfirmed {
            check: IdentityCheck::Photo,
        },
        consent(ConsentDecision::Unobtainable),
    ] {
        let before = (s.phase(), s.notice());
        assert!(s.handle(T, e).is_err());
        assert_eq!((s.phase(), s.notice()), before);
    }
}

#[test]
fn notices_have_messages_in_both_languages() {
    for n in Notice::ALL {
        assert!(!n.message_ja().is_ascii(), "{n:?}");
        assert!(n.message_en().is_ascii(), "{n:?}");
    }
}

// ---- properties over random event sequences ----
