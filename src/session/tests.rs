//! Every transition of the incident flow, and property tests over random event sequences.

use super::*;
use crate::domain::{ConsentState, CoverageStatus, PatientRef, Sensitive, Sex};
use proptest::prelude::*;

fn station() -> Station {
    Station {
        unit: UnitId::new("U-01"),
        terminal: TerminalId::new("T-01"),
    }
}

fn coverage() -> Coverage {
    Coverage {
        patient: PatientRef {
            local_id: Sensitive("P0001".into()),
            insured_number: Sensitive("12345678-01".into()),
            public_assistance: None,
        },
        name: Sensitive("山田 太郎".into()),
        kana: Sensitive("ヤマダ タロウ".into()),
        birth_date: Sensitive(time::macros::date!(1948 - 03 - 02)),
        sex: Sex::Male,
        insurer_name: Sensitive("東京都後期高齢者医療広域連合".into()),
        insurer_number: Sensitive("39131001".into()),
        status: CoverageStatus::Current,
    }
}

fn credential() -> CardCredential {
    CardCredential {
        auth_certificate_der: vec![0x30, 0x03, 0x02, 0x01, 0x01],
        token: Default::default(),
    }
}

fn phone_credential(token: crate::domain::TokenKind) -> CardCredential {
    CardCredential {
        token,
        ..credential()
    }
}

fn inc(n: u32) -> IncidentId {
    IncidentId(format!("I-{n}"))
}

const T: Timestamp = Timestamp(1_000);

fn ok(s: &mut Session, e: Event) -> Vec<Effect> {
    let name = e.name();
    s.handle(T, e)
        .unwrap_or_else(|err| panic!("{name} rejected: {err}"))
}

fn signed_in() -> Session {
    let mut s = Session::new(station());
    ok(
        &mut s,
        Event::CrewSignedIn {
            operator: OperatorId::new("EMT-7"),
            viewing_permission: true,
        },
    );
    s
}

/// Signed in, card read, coverage on screen.
fn at_consent() -> Session {
    let mut s = signed_in();
    ok(&mut s, Event::CardDetected { incident: inc(1) });
    ok(
        &mut s,
        Event::CardReadOk {
            incident: inc(1),
            credential: credential(),
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

fn viewing(decision: ConsentDecision) -> Session {
    let mut s = at_consent();
    ok(
        &mut s,
        Event::IdentityConfirmed {
            check: IdentityCheck::Photo,
        },
    );
    ok(&mut s, Event::ConsentChosen { decision });
    ok(
        &mut s,
        Event::EmergencyInfoAnswered {
            incident: inc(1),
            info: EmergencyInfo::default(),
        },
    );
    s
}

fn inquiries(effects: &[Effect]) -> Vec<&EmergencyInquiry> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::SendEmergencyInquiry(i) => Some(i),
            _ => None,
        })
        .collect()
}

fn audits(effects: &[Effect]) -> Vec<&AuditEntry> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::AppendAudit(a) => Some(a),
            _ => None,
        })
        .collect()
}

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
    ok(&mut s, Event::CardDetected { incident: inc(1) });
    ok(
        &mut s,
        Event::CardReadOk {
            incident: inc(1),
            credential: credential(),
        },
    );
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
    ok(&mut s, Event::CardDetected { incident: inc(1) });
    ok(
        &mut s,
        Event::CardReadOk {
            incident: inc(1),
            credential: credential(),
        },
    );
    let fx = ok(&mut s, Event::QualificationOptOut { incident: inc(1) });
    assert_eq!(s.phase(), Phase::OptedOut);
    assert_eq!(s.notice(), Some(Notice::OptedOut));
    assert!(s.coverage().is_none());
    let a = audits(&fx);
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].action, AuditAction::QualificationOptOut);
    assert_eq!(a[0].patient, None);
    // nothing to consent to
    assert!(
        s.handle(
            T,
            Event::ConsentChosen {
                decision: ConsentDecision::Verbal
            }
        )
        .is_err()
    );
    let fx = ok(&mut s, Event::EndViewing);
    assert_eq!(fx, vec![Effect::PurgePatientData { incident: inc(1) }]);
    assert_eq!(s.phase(), Phase::Ready);
}

#[test]
fn no_coverage_is_shown_plainly_without_retry() {
    let mut s = signed_in();
    ok(&mut s, Event::CardDetected { incident: inc(1) });
    ok(
        &mut s,
        Event::CardReadOk {
            incident: inc(1),
            credential: credential(),
        },
    );
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
    let err = s
        .handle(
            T,
            Event::ConsentChosen {
                decision: ConsentDecision::Verbal,
            },
        )
        .unwrap_err();
    assert_eq!(err, SessionError::ConsentBeforeIdentity);
    assert_eq!(s.phase(), Phase::IdentityAndConsent);
    assert!(s.incident().unwrap().consent.is_none());
}

#[test]
fn verbal_consent_sends_the_inquiry_with_consent_attached_and_records_it() {
    let mut s = at_consent();
    ok(
        &mut s,
        Event::IdentityConfirmed {
            check: IdentityCheck::Photo,
        },
    );
    let fx = ok(
        &mut s,
        Event::ConsentChosen {
            decision: ConsentDecision::Verbal,
        },
    );
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
    ok(
        &mut s,
        Event::IdentityConfirmed {
            check: IdentityCheck::Photo,
        },
    );
    let fx = ok(
        &mut s,
        Event::ConsentChosen {
            decision: ConsentDecision::Unobtainable,
        },
    );
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
    let fx = ok(
        &mut s,
        Event::ConsentChosen {
            decision: ConsentDecision::Refused,
        },
    );
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
        Event::ConsentChosen {
            decision: ConsentDecision::Verbal,
        },
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
    ok(
        &mut s,
        Event::ConsentChosen {
            decision: ConsentDecision::Verbal,
        },
    );
    let fx = ok(
        &mut s,
        Event::EmergencyInfoAnswered {
            incident: inc(1),
            info: EmergencyInfo::default(),
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

#[test]
fn link_lost_during_inquiry_keeps_consent_and_resends_the_same_inquiry() {
    let mut s = at_consent();
    ok(
        &mut s,
        Event::IdentityConfirmed {
            check: IdentityCheck::Photo,
        },
    );
    let first = ok(
        &mut s,
        Event::ConsentChosen {
            decision: ConsentDecision::Unobtainable,
        },
    );
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
    assert!(
        s.handle(
            T,
            Event::ConsentChosen {
                decision: ConsentDecision::Verbal
            }
        )
        .is_err()
    );
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
            info: EmergencyInfo::default(),
        },
    );
    assert_eq!(s.phase(), Phase::ViewingSummary);
}

#[test]
fn consent_chosen_while_link_is_down_waits_and_goes_out_on_restore() {
    let mut s = at_consent();
    ok(&mut s, Event::LinkLost);
    ok(
        &mut s,
        Event::IdentityConfirmed {
            check: IdentityCheck::Photo,
        },
    );
    let fx = ok(
        &mut s,
        Event::ConsentChosen {
            decision: ConsentDecision::Verbal,
        },
    );
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
    ok(&mut s, Event::CardDetected { incident: inc(1) });
    ok(
        &mut s,
        Event::CardReadOk {
            incident: inc(1),
            credential: credential(),
        },
    );
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
    ok(
        &mut s,
        Event::IdentityConfirmed {
            check: IdentityCheck::Photo,
        },
    );
    ok(
        &mut s,
        Event::ConsentChosen {
            decision: ConsentDecision::Verbal,
        },
    );
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
        Event::ConsentChosen {
            decision: ConsentDecision::Unobtainable,
        },
    ] {
        let before = (s.phase(), s.notice());
        assert!(s.handle(T, e).is_err());
        assert_eq!((s.phase(), s.notice()), before);
    }
}

#[test]
fn notices_have_messages_in_both_languages() {
    use Notice::*;
    for n in [
        NoViewingPermission,
        LockedAfterIdle,
        ViewingEndedAfterIdle,
        NoReader,
        ReaderServiceDown,
        NotMyNumberCard,
        CardRemovedDuringRead,
        CardUnresponsive,
        ReaderBusy,
        CardCertificateNotValid,
        WaitingForLink,
        CertificateRefused,
        ServerCertificateWrong,
        CardNotAccepted,
        NoCoverage,
        ProtocolError,
        TunnelRequired,
        OptedOut,
        RefusalRecorded,
    ] {
        assert!(!n.message_ja().is_ascii(), "{n:?}");
        assert!(n.message_en().is_ascii(), "{n:?}");
    }
}

// ---- properties over random event sequences ----

fn arb_event() -> impl Strategy<Value = Event> {
    let incident = (0u32..3).prop_map(inc);
    prop_oneof![
        any::<bool>().prop_map(|p| Event::CrewSignedIn {
            operator: OperatorId::new("EMT-7"),
            viewing_permission: p
        }),
        Just(Event::CrewSignedOut),
        incident
            .clone()
            .prop_map(|incident| Event::CardDetected { incident }),
        (incident.clone(), 0usize..3).prop_map(|(incident, k)| Event::CardReadOk {
            incident,
            credential: phone_credential(
                [
                    crate::domain::TokenKind::Card,
                    crate::domain::TokenKind::AndroidPhone,
                    crate::domain::TokenKind::IPhone
                ][k]
            )
        }),
        incident
            .clone()
            .prop_map(|incident| Event::PhoneNeedsPin { incident }),
        Just(Event::PatientCannotAuthenticate),
        (incident.clone(), 0usize..8).prop_map(|(incident, k)| Event::CardReadFailed {
            incident,
            failure: [
                CardFailure::NoReader,
                CardFailure::ReaderServiceDown,
                CardFailure::NotMyNumberCard,
                CardFailure::RemovedDuringRead,
                CardFailure::Unresponsive,
                CardFailure::ReaderBusy,
                CardFailure::CertificateNotValid,
                CardFailure::PhoneLocked
            ][k]
        }),
        Just(Event::CardRemoved),
        incident
            .clone()
            .prop_map(|incident| Event::QualificationAnswered {
                incident,
                qualification: QualificationRef::new("Q"),
                coverage: coverage()
            }),
        incident
            .clone()
            .prop_map(|incident| Event::QualificationOptOut { incident }),
        (incident.clone(), arb_failure())
            .prop_map(|(incident, failure)| Event::QualificationFailed { incident, failure }),
        prop_oneof![
            Just(IdentityCheck::Photo),
            Just(IdentityCheck::Pin),
            Just(IdentityCheck::PhoneBiometric)
        ]
        .prop_map(|check| Event::IdentityConfirmed { check }),
        prop_oneof![
            Just(ConsentDecision::Verbal),
            Just(ConsentDecision::Unobtainable),
            Just(ConsentDecision::Refused)
        ]
        .prop_map(|decision| Event::ConsentChosen { decision }),
        incident
            .clone()
            .prop_map(|incident| Event::EmergencyInfoAnswered {
                incident,
                info: EmergencyInfo::default()
            }),
        (incident, arb_failure())
            .prop_map(|(incident, failure)| Event::EmergencyInfoFailed { incident, failure }),
        Just(Event::LinkLost),
        Just(Event::LinkRestored),
        Just(Event::Retry),
        Just(Event::ViewFullData),
        Just(Event::BackToSummary),
        Just(Event::EndViewing),
        Just(Event::IdleTimeout),
        prop_oneof![
            Just(ConsentDecision::Verbal),
            Just(ConsentDecision::Unobtainable),
            Just(ConsentDecision::Refused)
        ]
        .prop_map(|to| Event::ConsentCorrected { to }),
        Just(Event::ExplanationHanded),
    ]
}

fn arb_failure() -> impl Strategy<Value = ServiceFailure> {
    prop_oneof![
        Just(ServiceFailure::LinkDown),
        Just(ServiceFailure::Timeout),
        Just(ServiceFailure::CertificateRefused),
        Just(ServiceFailure::ServerCertificateWrong),
        Just(ServiceFailure::CardNotAccepted),
        Just(ServiceFailure::NoCoverage),
        Just(ServiceFailure::Protocol),
        Just(ServiceFailure::TunnelRequired),
    ]
}

/// The event a crew and a healthy system would produce next; the property test mixes these
/// with random events so that deep phases (viewing, full data) are reached often.
fn guided(s: &Session, k: u8, fresh: &mut u32) -> Event {
    let current = s.incident().map(|i| i.id.clone()).unwrap_or_else(|| inc(0));
    match s.phase() {
        Phase::SignedOut => Event::CrewSignedIn {
            operator: OperatorId::new("EMT-7"),
            viewing_permission: true,
        },
        Phase::Ready => {
            *fresh += 1;
            Event::CardDetected {
                incident: inc(100 + *fresh),
            }
        }
        // one card in five is an Android phone, one in ten an iPhone
        Phase::ReadingCard if k % 5 == 1 => Event::PhoneNeedsPin { incident: current },
        Phase::ReadingCard => Event::CardReadOk {
            incident: current,
            credential: phone_credential(if k % 10 == 2 {
                crate::domain::TokenKind::IPhone
            } else {
                crate::domain::TokenKind::Card
            }),
        },
        Phase::PhonePin if k.is_multiple_of(4) => Event::PatientCannotAuthenticate,
        Phase::PhonePin => Event::CardReadOk {
            incident: current,
            credential: phone_credential(crate::domain::TokenKind::AndroidPhone),
        },
        Phase::CheckingQualification if !s.link_up() => Event::LinkRestored,
        Phase::CheckingQualification if k.is_multiple_of(7) => {
            Event::QualificationOptOut { incident: current }
        }
        Phase::CheckingQualification => Event::QualificationAnswered {
            incident: current,
            qualification: QualificationRef::new("Q"),
            coverage: coverage(),
        },
        Phase::IdentityAndConsent if s.incident().is_some_and(|i| i.identity_check.is_none()) => {
            Event::IdentityConfirmed {
                check: match s.incident().and_then(|i| i.token) {
                    Some(crate::domain::TokenKind::IPhone) => IdentityCheck::PhoneBiometric,
                    Some(crate::domain::TokenKind::AndroidPhone) => IdentityCheck::Pin,
                    _ if k.is_multiple_of(2) => IdentityCheck::Photo,
                    _ => IdentityCheck::Pin,
                },
            }
        }
        Phase::IdentityAndConsent => Event::ConsentChosen {
            decision: [
                ConsentDecision::Verbal,
                ConsentDecision::Unobtainable,
                ConsentDecision::Refused,
            ][usize::from(k % 3)],
        },
        Phase::AwaitingEmergencyInfo if !s.link_up() => Event::LinkRestored,
        Phase::AwaitingEmergencyInfo => Event::EmergencyInfoAnswered {
            incident: current,
            info: EmergencyInfo::default(),
        },
        Phase::ViewingSummary if !k.is_multiple_of(3) => Event::ViewFullData,
        Phase::ViewingFullData if !k.is_multiple_of(3) => Event::BackToSummary,
        Phase::Failed if k.is_multiple_of(2) => Event::Retry,
        _ => Event::EndViewing,
    }
}

/// Random events whose incident id is often the current one, so that answers apply.
fn aim(e: Event, s: &Session, k: u8) -> Event {
    let Some(current) = s.incident().map(|i| i.id.clone()) else {
        return e;
    };
    if k.is_multiple_of(4) {
        return e;
    }
    match e {
        Event::CardReadOk { credential, .. } => Event::CardReadOk {
            incident: current,
            credential,
        },
        Event::CardReadFailed { failure, .. } => Event::CardReadFailed {
            incident: current,
            failure,
        },
        Event::QualificationAnswered {
            qualification,
            coverage,
            ..
        } => Event::QualificationAnswered {
            incident: current,
            qualification,
            coverage,
        },
        Event::QualificationOptOut { .. } => Event::QualificationOptOut { incident: current },
        Event::QualificationFailed { failure, .. } => Event::QualificationFailed {
            incident: current,
            failure,
        },
        Event::EmergencyInfoAnswered { info, .. } => Event::EmergencyInfoAnswered {
            incident: current,
            info,
        },
        Event::EmergencyInfoFailed { failure, .. } => Event::EmergencyInfoFailed {
            incident: current,
            failure,
        },
        other => other,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn the_rules_hold_for_any_sequence_of_events(
        moves in proptest::collection::vec((any::<u8>(), any::<u8>(), arb_event()), 1..80)
    ) {
        let mut s = Session::new(station());
        let mut fresh = 0;
        // what the crew decided, per incident, as seen from outside
        let mut decided: Option<(IncidentId, ConsentDecision)> = None;
        for (step, (choice, k, random)) in moves.into_iter().enumerate() {
            // two moves in three follow the flow, one in three is anything at all
            let e = if choice % 3 != 0 { guided(&s, k, &mut fresh) } else { aim(random, &s, k) };
            let before = s.phase();
            let current = s.incident().map(|i| i.id.clone());
            let chose = match &e { Event::ConsentChosen { decision } => Some(*decision), _ => None };
            let purging = matches!(e, Event::EndViewing | Event::IdleTimeout | Event::CrewSignedOut);
            let name = e.name();
            let result = s.handle(Timestamp(step as i64), e);
            let Ok(fx) = result else {
                // a rejected event changes nothing visible
                prop_assert_eq!(s.phase(), before, "rejected {} moved the phase", name);
                continue;
            };
            if let (Some(d), Some(id)) = (chose, current.clone()) {
                decided = Some((id, d));
            }
            // never an inquiry without an explicit consent decision that allows viewing,
            // and it carries exactly that decision
            for q in inquiries(&fx) {
                let (id, d) = decided.clone().expect("inquiry without any consent decision");
                prop_assert_eq!(&q.incident, &id);
                prop_assert_ne!(d, ConsentDecision::Refused, "a refusal inquired");
                prop_assert_eq!(Some(q.consent), d.inquiry_state());
                // a phone is read only with its owner: no photo check, never 同意取得困難
                let token = s.incident().and_then(|i| i.token).unwrap_or_default();
                prop_assert_eq!(q.token, token);
                if token.is_phone() {
                    prop_assert_ne!(q.consent, ConsentState::Unobtainable, "a phone inquired under 同意取得困難");
                    prop_assert_ne!(q.identity_check, IdentityCheck::Photo, "a phone passed a photo check");
                }
            }
            // whatever the session records names what was read, once it is known
            for a in audits(&fx) {
                prop_assert_eq!(a.token, s.incident().and_then(|i| i.token));
            }
            // every view is audited, with the kind shown
            let after = s.phase();
            let entered_view = after != before || matches!(name, "view_full_data" | "back_to_summary");
            if entered_view && matches!(after, Phase::ViewingSummary | Phase::ViewingFullData) {
                let kind = if after == Phase::ViewingSummary { InfoKind::EmergencySummary } else { InfoKind::FullData };
                let audited = audits(&fx).iter().any(|a| {
                    a.action == AuditAction::View { kind }
                        && a.consent.is_some()
                        && a.patient.is_some()
                        && a.identity_check.is_some()
                });
                prop_assert!(audited, "view of {:?} not audited", kind);
            }
            // a refusal (chosen or corrected to) leaves no patient data behind
            if after == Phase::Refused {
                prop_assert!(!s.holds_patient_data(), "patient data kept after a refusal");
                prop_assert!(s.coverage().is_none());
            }
            // a correction changes the decision and keeps the first one on record
            for e in &fx {
                if let Effect::AppendConsentCorrection(c) = e {
                    prop_assert_ne!(c.from, c.to);
                }
            }
            // ending purges
            if purging {
                prop_assert!(!s.holds_patient_data());
                if let Some(id) = current {
                    let purge = Effect::PurgePatientData { incident: id };
                    prop_assert!(fx.contains(&purge), "no purge effect");
                }
            }
            // no patient data where the screen shows none
            if matches!(after, Phase::SignedOut | Phase::Ready) {
                prop_assert!(!s.holds_patient_data());
            }
            if matches!(
                after,
                Phase::ReadingCard | Phase::CheckingQualification | Phase::PhonePin | Phase::PhoneUnusable
            ) {
                prop_assert!(s.coverage().is_none());
            }
            // nothing of a phone is read before its PIN, and nothing after its owner could not
            if matches!(after, Phase::PhonePin | Phase::PhoneUnusable) {
                prop_assert!(!s.holds_patient_data(), "a phone's data held without its owner");
            }
            if s.emergency_info().is_some() {
                let d = s.incident().and_then(|i| i.consent);
                prop_assert!(matches!(d, Some(ConsentDecision::Verbal | ConsentDecision::Unobtainable)));
            }
            if after != Phase::SignedOut {
                prop_assert!(s.operator().is_some());
            }
        }
    }
}

thread_local! {
    static REACHED: std::cell::RefCell<std::collections::HashSet<Phase>> = Default::default();
}

/// The property test is only worth something if it reaches every screen.
#[test]
fn the_property_test_reaches_every_phase() {
    REACHED.with(|r| r.borrow_mut().clear());
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 300,
        ..ProptestConfig::default()
    });
    runner
        .run(
            &proptest::collection::vec((any::<u8>(), any::<u8>(), arb_event()), 1..80),
            |moves| {
                let mut s = Session::new(station());
                let mut fresh = 0;
                for (choice, k, random) in moves {
                    let e = if choice % 3 != 0 {
                        guided(&s, k, &mut fresh)
                    } else {
                        aim(random, &s, k)
                    };
                    let _ = s.handle(T, e);
                    REACHED.with(|r| r.borrow_mut().insert(s.phase()));
                }
                Ok(())
            },
        )
        .unwrap();
    let reached = REACHED.with(|r| r.borrow().clone());
    for phase in [
        Phase::SignedOut,
        Phase::Ready,
        Phase::ReadingCard,
        Phase::PhonePin,
        Phase::PhoneUnusable,
        Phase::CheckingQualification,
        Phase::IdentityAndConsent,
        Phase::AwaitingEmergencyInfo,
        Phase::ViewingSummary,
        Phase::ViewingFullData,
        Phase::Refused,
        Phase::OptedOut,
        Phase::Failed,
    ] {
        assert!(reached.contains(&phase), "never reached {phase:?}");
    }
}

// ---- the rules of the official documents (DESIGN §2), one test each ----

/// Signed in, the card read, the qualification check under way.
fn card_read(incident: IncidentId) -> Session {
    let mut s = signed_in();
    ok(
        &mut s,
        Event::CardDetected {
            incident: incident.clone(),
        },
    );
    ok(
        &mut s,
        Event::CardReadOk {
            incident,
            credential: credential(),
        },
    );
    s
}

fn consent_records(effects: &[Effect]) -> Vec<&ConsentRecord> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::AppendConsentRecord(r) => Some(r),
            _ => None,
        })
        .collect()
}

#[test]
fn a_refusal_clears_identity_and_coverage_at_once_and_is_recorded() {
    let mut s = at_consent();
    assert!(s.coverage().is_some());
    let fx = ok(
        &mut s,
        Event::ConsentChosen {
            decision: ConsentDecision::Refused,
        },
    );
    let recorded = consent_records(&fx);
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].decision, ConsentDecision::Refused);
    assert_eq!(recorded[0].patient.audit_key(), "12345678-01");
    // gone from the session (so from the screen) in the same event
    assert!(s.coverage().is_none());
    assert!(!s.holds_patient_data());
    assert!(fx.contains(&Effect::PurgePatientData { incident: inc(1) }));
    // the incident can still be closed
    ok(&mut s, Event::EndViewing);
    assert_eq!(s.phase(), Phase::Ready);
}

#[test]
fn a_failed_lookup_is_recorded_with_who_when_which_card_and_why() {
    let mut s = card_read(inc(1));
    let fx = ok(
        &mut s,
        Event::QualificationFailed {
            incident: inc(1),
            failure: ServiceFailure::CardNotAccepted,
        },
    );
    let a = audits(&fx);
    assert_eq!(a.len(), 1, "{fx:?}");
    assert_eq!(
        a[0].action,
        AuditAction::QualificationFailed {
            reason: ServiceFailure::CardNotAccepted
        }
    );
    assert_eq!(a[0].operator, OperatorId::new("EMT-7"));
    assert_eq!(a[0].at, T);
    assert_eq!(
        a[0].card.as_deref(),
        Some(credential().fingerprint().as_str())
    );
    assert!(a[0].patient.is_none());
    // a lost link is not a failed lookup: it waits and resends
    let mut s = card_read(inc(2));
    let fx = ok(
        &mut s,
        Event::QualificationFailed {
            incident: inc(2),
            failure: ServiceFailure::LinkDown,
        },
    );
    assert!(audits(&fx).is_empty());
}

#[test]
fn a_correction_is_appended_never_rewritten_and_later_views_carry_it() {
    let mut s = viewing(ConsentDecision::Unobtainable);
    let fx = ok(
        &mut s,
        Event::ConsentCorrected {
            to: ConsentDecision::Verbal,
        },
    );
    let correction = fx
        .iter()
        .find_map(|e| match e {
            Effect::AppendConsentCorrection(c) => Some(c),
            _ => None,
        })
        .expect("correction record");
    assert_eq!(correction.from, ConsentDecision::Unobtainable);
    assert_eq!(correction.to, ConsentDecision::Verbal);
    assert_eq!(correction.operator, OperatorId::new("EMT-7"));
    assert_eq!(correction.incident, inc(1));
    // no new consent record: the first one stands as it was
    assert!(consent_records(&fx).is_empty());
    assert_eq!(s.phase(), Phase::ViewingSummary);
    let incident = s.incident().unwrap();
    assert_eq!(incident.consent, Some(ConsentDecision::Verbal));
    assert_eq!(incident.corrected_from, Some(ConsentDecision::Unobtainable));
    let fx = ok(&mut s, Event::ViewFullData);
    assert_eq!(audits(&fx)[0].consent, Some(ConsentState::Consented));
    // the same decision again is no correction
    assert_eq!(
        s.handle(
            T,
            Event::ConsentCorrected {
                to: ConsentDecision::Verbal
            }
        ),
        Err(SessionError::CorrectionUnchanged)
    );
    // a correction to a refusal ends the viewing and clears the data
    let fx = ok(
        &mut s,
        Event::ConsentCorrected {
            to: ConsentDecision::Refused,
        },
    );
    assert!(fx.iter().any(
        |e| matches!(e, Effect::AppendConsentCorrection(c) if c.to == ConsentDecision::Refused)
    ));
    assert_eq!(s.phase(), Phase::Refused);
    assert!(!s.holds_patient_data());
    assert!(s.emergency_info().is_none());
}

#[test]
fn a_correction_is_only_possible_while_viewing() {
    let mut s = at_consent();
    assert!(
        s.handle(
            T,
            Event::ConsentCorrected {
                to: ConsentDecision::Verbal
            }
        )
        .is_err()
    );
}

fn explanations(effects: &[Effect]) -> Vec<bool> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::AppendExplanation(x) => Some(x.handed),
            _ => None,
        })
        .collect()
}

#[test]
fn after_viewing_without_consent_the_explanation_is_owed_and_recorded() {
    // handed during the viewing
    let mut s = viewing(ConsentDecision::Unobtainable);
    assert!(s.explanation_owed());
    let fx = ok(&mut s, Event::ExplanationHanded);
    assert_eq!(explanations(&fx), vec![true]);
    assert!(!s.explanation_owed());
    let fx = ok(&mut s, Event::EndViewing);
    assert!(explanations(&fx).is_empty(), "recorded once");

    // not handed when the viewing ends: recorded as still owed, before the purge
    let mut s = viewing(ConsentDecision::Unobtainable);
    let fx = ok(&mut s, Event::EndViewing);
    assert_eq!(explanations(&fx), vec![false]);
    let explanation_at = fx
        .iter()
        .position(|e| matches!(e, Effect::AppendExplanation(_)))
        .unwrap();
    let purge_at = fx
        .iter()
        .position(|e| matches!(e, Effect::PurgePatientData { .. }))
        .unwrap();
    assert!(explanation_at < purge_at);

    // the idle purge records it too
    let mut s = viewing(ConsentDecision::Unobtainable);
    assert_eq!(explanations(&ok(&mut s, Event::IdleTimeout)), vec![false]);

    // with verbal consent nothing is owed
    let mut s = viewing(ConsentDecision::Verbal);
    assert!(!s.explanation_owed());
    assert!(s.handle(T, Event::ExplanationHanded).is_err());
    assert!(explanations(&ok(&mut s, Event::EndViewing)).is_empty());
}

#[test]
fn no_message_steers_the_crew_to_consent_unobtainable() {
    for n in Notice::ALL {
        assert!(
            !n.message_ja().contains("同意取得困難"),
            "{n:?}: {}",
            n.message_ja()
        );
    }
}

#[test]
fn the_opt_out_message_says_it_is_provisional() {
    assert!(Notice::OptedOut.message_ja().contains("暫定"));
    assert!(Notice::OptedOut.message_en().contains("provisional"));
}

#[test]
fn public_assistance_patients_are_audited_by_recipient_number() {
    let mut c = coverage();
    c.patient.insured_number = Sensitive(String::new());
    c.patient.public_assistance = Some(Box::new(crate::domain::PublicAssistance {
        payer_number: Sensitive("12136014".into()),
        recipient_number: Sensitive("1234567".into()),
    }));
    let mut s = card_read(inc(1));
    let fx = ok(
        &mut s,
        Event::QualificationAnswered {
            incident: inc(1),
            qualification: QualificationRef::new("Q-1"),
            coverage: c,
        },
    );
    assert_eq!(
        audits(&fx)[0].patient.as_ref().unwrap().audit_key(),
        "1234567"
    );
}

// ---- a phone held out instead of the card (スマホ用電子証明書) ----

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
        Event::ConsentChosen {
            decision: ConsentDecision::Unobtainable,
        },
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
            s.handle(
                T,
                Event::ConsentChosen {
                    decision: ConsentDecision::Unobtainable
                }
            ),
            Err(SessionError::UnobtainableOnPhone)
        );
        let fx = ok(
            &mut s,
            Event::ConsentChosen {
                decision: ConsentDecision::Verbal,
            },
        );
        let q = inquiries(&fx);
        assert_eq!(q.len(), 1);
        assert_eq!((q[0].token, q[0].identity_check), (token, check));
        assert!(audits(&fx).iter().all(|a| a.token == Some(token)));
        ok(
            &mut s,
            Event::EmergencyInfoAnswered {
                incident: inc(1),
                info: EmergencyInfo::default(),
            },
        );
        // nor can a correction reach 同意取得困難 afterwards
        assert_eq!(
            s.handle(
                T,
                Event::ConsentCorrected {
                    to: ConsentDecision::Unobtainable
                }
            ),
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
