//! The rules for any sequence of events (proptest), and that the generator reaches every phase.

use super::*;

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
        .prop_map(consent),
        incident
            .clone()
            .prop_map(|incident| Event::EmergencyInfoAnswered {
                incident,
                info: Box::default()
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
        .prop_map(correct),
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
        Phase::IdentityAndConsent => consent(
            [
                ConsentDecision::Verbal,
                ConsentDecision::Unobtainable,
                ConsentDecision::Refused,
            ][usize::from(k % 3)],
        ),
        Phase::AwaitingEmergencyInfo if !s.link_up() => Event::LinkRestored,
        Phase::AwaitingEmergencyInfo => Event::EmergencyInfoAnswered {
            incident: current,
            info: Box::default(),
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
            let chose = match &e { Event::ConsentChosen { decision, .. } => Some(*decision), _ => None };
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
