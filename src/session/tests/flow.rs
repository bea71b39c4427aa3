//! The incident's paths, one example each: sign-in, the card, the answers, consent, views, the line.

use super::*;

#[test]
fn starts_signed_out_and_sign_in_needs_viewing_permission() {
    let mut s = Session::new(station());
    assert_eq!(s.phase(), Phase::SignedOut);
    let err = s
        .handle(
            T,
            Event::CrewSignedIn {
                operator: OperatorId::new("EMT-X"),
                viewing_permission: false,
            },
        )
        .unwrap_err();
    assert_eq!(err, SessionError::NoViewingPermission);
    assert_eq!(s.phase(), Phase::SignedOut);
    assert_eq!(s.notice(), Some(Notice::NoViewingPermission));
    assert!(s.operator().is_none());
    // and without sign-in no card can start an incident
    assert!(
        s.handle(T, Event::CardDetected { incident: inc(1) })
            .is_err()
    );
    assert!(s.incident().is_none());
}

#[test]
fn card_detected_reads_the_card() {
    let mut s = signed_in();
    let fx = ok(&mut s, Event::CardDetected { incident: inc(1) });
    assert_eq!(fx, vec![Effect::ReadCard { incident: inc(1) }]);
    assert_eq!(s.phase(), Phase::ReadingCard);
}

#[test]
fn card_read_sends_the_qualification_check() {
    let mut s = signed_in();
    ok(&mut s, Event::CardDetected { incident: inc(1) });
    let fx = ok(
        &mut s,
        Event::CardReadOk {
            incident: inc(1),
            credential: credential(),
        },
    );
    assert_eq!(
        fx,
        vec![Effect::SendQualification(QualificationRequest {
            incident: inc(1),
            credential: credential(),
            operator: OperatorId::new("EMT-7"),
            unit: UnitId::new("U-01"),
            terminal: TerminalId::new("T-01"),
        })]
    );
    assert_eq!(s.phase(), Phase::CheckingQualification);
    assert!(s.coverage().is_none());
}

#[test]
fn each_card_failure_returns_to_ready_with_its_own_notice() {
    let cases = [
        (CardFailure::NoReader, Notice::NoReader),
        (CardFailure::ReaderServiceDown, Notice::ReaderServiceDown),
        (CardFailure::NotMyNumberCard, Notice::NotMyNumberCard),
        (
            CardFailure::RemovedDuringRead,
            Notice::CardRemovedDuringRead,
        ),
        (CardFailure::Unresponsive, Notice::CardUnresponsive),
        (CardFailure::ReaderBusy, Notice::ReaderBusy),
        (
            CardFailure::CertificateNotValid,
            Notice::CardCertificateNotValid,
        ),
    ];
    for (failure, notice) in cases {
        let mut s = signed_in();
        ok(&mut s, Event::CardDetected { incident: inc(1) });
        let fx = ok(
            &mut s,
            Event::CardReadFailed {
                incident: inc(1),
                failure,
            },
        );
        assert_eq!(s.phase(), Phase::Ready);
        assert_eq!(s.notice(), Some(notice));
        assert!(s.incident().is_none());
        assert_eq!(fx, vec![Effect::PurgePatientData { incident: inc(1) }]);
    }
}

#[test]
fn card_removed_mid_read_leaves_nothing_on_screen_and_late_answers_are_stale() {
    let mut s = signed_in();
    ok(&mut s, Event::CardDetected { incident: inc(1) });
    let fx = ok(&mut s, Event::CardRemoved);
    assert_eq!(fx, vec![Effect::PurgePatientData { incident: inc(1) }]);
    assert_eq!(s.phase(), Phase::Ready);
    assert_eq!(s.notice(), Some(Notice::CardRemovedDuringRead));
    assert!(!s.holds_patient_data());
    // the read that was under way finishes late: it must not resurrect the incident
    let err = s
        .handle(
            T,
            Event::CardReadOk {
                incident: inc(1),
                credential: credential(),
            },
        )
        .unwrap_err();
    assert!(matches!(err, SessionError::NotApplicable { .. }));
    assert!(s.coverage().is_none());
    // a new card starts a new incident; an answer for the old one is stale
    ok(&mut s, Event::CardDetected { incident: inc(2) });
    ok(
        &mut s,
        Event::CardReadOk {
            incident: inc(2),
            credential: credential(),
        },
    );
    let err = s
        .handle(
            T,
            Event::QualificationAnswered {
                incident: inc(1),
                qualification: QualificationRef::new("Q-old"),
                coverage: coverage(),
            },
        )
        .unwrap_err();
    assert_eq!(err, SessionError::StaleAnswer(inc(1)));
    assert!(s.incident().unwrap().coverage.is_none());
}

#[test]
fn card_removed_after_a_complete_read_does_not_disturb_the_flow() {
    let mut s = at_consent();
    assert!(s.handle(T, Event::CardRemoved).is_err());
    assert_eq!(s.phase(), Phase::IdentityAndConsent);
    assert!(s.coverage().is_some());
}

#[test]
fn qualification_answer_shows_coverage_and_is_audited() {
    let s = at_consent();
    assert_eq!(s.phase(), Phase::IdentityAndConsent);
    assert_eq!(s.coverage(), Some(&coverage()));
    assert!(s.emergency_info().is_none());

    let mut s = signed_in();
    read_card(&mut s);
    let fx = ok(
        &mut s,
        Event::QualificationAnswered {
            incident: inc(1),
            qualification: QualificationRef::new("Q-1"),
            coverage: coverage(),
        },
    );
    let a = audits(&fx);
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].action, AuditAction::QualificationCheck);
    assert_eq!(a[0].consent, None);
    assert_eq!(a[0].patient, Some(coverage().patient));
    assert_eq!(a[0].identity_method, IdentityMethod::MynaCard);
}

#[test]
fn opt_out_shows_nothing_and_is_audited_without_patient() {
    let mut s = signed_in();
    read_card(&mut s);
    let fx = ok(&mut s, Event::QualificationOptOut { incident: inc(1) });
    assert_eq!(s.phase(), Phase::OptedOut);
    assert_eq!(s.notice(), Some(Notice::OptedOut));
    assert!(s.coverage().is_none());
    let a = audits(&fx);
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].action, AuditAction::QualificationOptOut);
    assert_eq!(a[0].patient, None);
    // nothing to consent to
    assert!(s.handle(T, consent(ConsentDecision::Verbal)).is_err());
    let fx = ok(&mut s, Event::EndViewing);
    assert_eq!(fx, vec![Effect::PurgePatientData { incident: inc(1) }]);
    assert_eq!(s.phase(), Phase::Ready);
}

#[test]
fn no_coverage_is_shown_plainly_without_retry() {
    let mut s = signed_in();
    read_card(&mut s);
    ok(
        &mut s,
        Event::QualificationFailed {
            incident: inc(1),
            failure: ServiceFailure::NoCoverage,
        },
    );
    assert_eq!(s.phase(), Phase::Failed);
    assert_eq!(s.notice(), Some(Notice::NoCoverage));
    assert!(!Notice::NoCoverage.offers_retry());
}

#[test]
fn consent_needs_the_identity_confirmed_first() {
    let mut s = at_consent();
    let err = s.handle(T, consent(ConsentDecision::Verbal)).unwrap_err();
    assert_eq!(err, SessionError::ConsentBeforeIdentity);
    assert_eq!(s.phase(), Phase::IdentityAndConsent);
    assert!(s.incident().unwrap().consent.is_none());
}

#[test]
fn verbal_consent_sends_the_inquiry_with_consent_attached_and_records_it() {
    let mut s = at_consent();
    confirm_identity(&mut s);
    let fx = ok(&mut s, consent(ConsentDecision::Verbal));
    assert_eq!(s.phase(), Phase::AwaitingEmergencyInfo);
    let q = inquiries(&fx);
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].consent, ConsentState::Consented);
    assert_eq!(q[0].identity_check, IdentityCheck::Photo);
    assert_eq!(q[0].qualification, QualificationRef::new("Q-1"));
    assert_eq!(q[0].operator, OperatorId::new("EMT-7"));
    assert_eq!(q[0].terminal, TerminalId::new("T-01"));
    let consent = fx.iter().find_map(|e| match e {
        Effect::AppendConsentRecord(r) => Some(r),
        _ => None,
    });
    assert_eq!(consent.unwrap().decision, ConsentDecision::Verbal);
    let a = audits(&fx);
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].action, AuditAction::EmergencyInfoInquiry);
    assert_eq!(a[0].consent, Some(ConsentState::Consented));
    // the consent record comes before the inquiry goes out
    let pos_record = fx
        .iter()
        .position(|e| matches!(e, Effect::AppendConsentRecord(_)))
        .unwrap();
    let pos_send = fx
        .iter()
        .position(|e| matches!(e, Effect::SendEmergencyInquiry(_)))
        .unwrap();
    assert!(pos_record < pos_send);
}

#[test]
fn unobtainable_consent_is_carried_as_such() {
    let mut s = at_consent();
    confirm_identity(&mut s);
    let fx = ok(&mut s, consent(ConsentDecision::Unobtainable));
    assert_eq!(inquiries(&fx)[0].consent, ConsentState::Unobtainable);
    // a card read records the card as its token
    assert_eq!(inquiries(&fx)[0].token, crate::domain::TokenKind::Card);
    assert!(
        audits(&fx)
            .iter()
            .all(|a| a.token == Some(crate::domain::TokenKind::Card))
    );
}

#[test]
fn refusal_never_inquires_and_is_recorded() {
    let mut s = at_consent();
    let fx = ok(&mut s, consent(ConsentDecision::Refused));
    assert!(inquiries(&fx).is_empty());
    assert_eq!(s.phase(), Phase::Refused);
    assert_eq!(s.notice(), Some(Notice::RefusalRecorded));
    let record = fx
        .iter()
        .find_map(|e| match e {
            Effect::AppendConsentRecord(r) => Some(r),
            _ => None,
        })
        .expect("refusal recorded");
    assert_eq!(record.decision, ConsentDecision::Refused);
    // nothing after a refusal can inquire: link flaps, retries, identity
    for e in [
        Event::LinkLost,
        Event::LinkRestored,
        Event::Retry,
        Event::IdentityConfirmed {
            check: IdentityCheck::Photo,
        },
        consent(ConsentDecision::Verbal),
    ] {
        if let Ok(fx) = s.handle(T, e) {
            assert!(inquiries(&fx).is_empty());
        }
    }
    assert!(s.emergency_info().is_none());
}

#[test]
fn answer_shows_summary_and_audits_the_view() {
    let mut s = at_consent();
    ok(
        &mut s,
        Event::IdentityConfirmed {
            check: IdentityCheck::Pin,
        },
    );
    ok(&mut s, consent(ConsentDecision::Verbal));
    let fx = ok(
        &mut s,
        Event::EmergencyInfoAnswered {
            incident: inc(1),
            info: Box::default(),
        },
    );
    assert_eq!(s.phase(), Phase::ViewingSummary);
    assert!(s.emergency_info().is_some());
    let a = audits(&fx);
    assert_eq!(a.len(), 1);
    assert_eq!(
        a[0].action,
        AuditAction::View {
            kind: InfoKind::EmergencySummary
        }
    );
    assert_eq!(a[0].consent, Some(ConsentState::Consented));
    assert_eq!(a[0].identity_check, Some(IdentityCheck::Pin));
    assert_eq!(a[0].operator, OperatorId::new("EMT-7"));
    assert_eq!(a[0].terminal, TerminalId::new("T-01"));
    assert_eq!(a[0].unit, UnitId::new("U-01"));
    assert_eq!(a[0].patient, Some(coverage().patient));
    assert_eq!(a[0].at, T);
}

#[test]
fn full_data_and_back_each_audit_a_view() {
    let mut s = viewing(ConsentDecision::Unobtainable);
    let fx = ok(&mut s, Event::ViewFullData);
    assert_eq!(s.phase(), Phase::ViewingFullData);
    assert_eq!(
        audits(&fx)[0].action,
        AuditAction::View {
            kind: InfoKind::FullData
        }
    );
    assert_eq!(audits(&fx)[0].consent, Some(ConsentState::Unobtainable));
    let fx = ok(&mut s, Event::BackToSummary);
    assert_eq!(s.phase(), Phase::ViewingSummary);
    assert_eq!(
        audits(&fx)[0].action,
        AuditAction::View {
            kind: InfoKind::EmergencySummary
        }
    );
}

#[test]
fn end_viewing_purges_and_returns_to_ready() {
    let mut s = viewing(ConsentDecision::Verbal);
    ok(&mut s, Event::ViewFullData);
    let fx = ok(&mut s, Event::EndViewing);
    assert_eq!(fx, vec![Effect::PurgePatientData { incident: inc(1) }]);
    assert_eq!(s.phase(), Phase::Ready);
    assert!(!s.holds_patient_data());
    assert!(s.incident().is_none());
    assert_eq!(s.operator(), Some(&OperatorId::new("EMT-7")));
}

#[test]
fn idle_timeout_purges_then_locks() {
    let mut s = viewing(ConsentDecision::Verbal);
    let fx = ok(&mut s, Event::IdleTimeout);
    assert_eq!(fx, vec![Effect::PurgePatientData { incident: inc(1) }]);
    assert_eq!(s.phase(), Phase::Ready);
    assert_eq!(s.notice(), Some(Notice::ViewingEndedAfterIdle));
    assert!(!s.holds_patient_data());
    ok(&mut s, Event::IdleTimeout);
    assert_eq!(s.phase(), Phase::SignedOut);
    assert_eq!(s.notice(), Some(Notice::LockedAfterIdle));
    assert!(s.operator().is_none());
}

#[test]
fn sign_out_mid_incident_purges() {
    let mut s = at_consent();
    let fx = ok(&mut s, Event::CrewSignedOut);
    assert_eq!(fx, vec![Effect::PurgePatientData { incident: inc(1) }]);
    assert_eq!(s.phase(), Phase::SignedOut);
    assert!(!s.holds_patient_data());
}
