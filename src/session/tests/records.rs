//! What is recorded: refusals, failed lookups, corrections, explanations, public-assistance patients.

use super::*;

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

/// The correction record among the effects.
fn correction_in(effects: &[Effect]) -> &ConsentCorrection {
    effects
        .iter()
        .find_map(|e| match e {
            Effect::AppendConsentCorrection(c) => Some(c),
            _ => None,
        })
        .expect("correction record")
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
    let fx = ok(&mut s, consent(ConsentDecision::Refused));
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
    let fx = ok(&mut s, correct(ConsentDecision::Verbal));
    let correction = correction_in(&fx);
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
        s.handle(T, correct(ConsentDecision::Verbal)),
        Err(SessionError::CorrectionUnchanged)
    );
    // a correction to a refusal ends the viewing and clears the data
    let fx = ok(&mut s, correct(ConsentDecision::Refused));
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
    assert!(s.handle(T, correct(ConsentDecision::Verbal)).is_err());
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

/// 同意取得困難 only 「意識不明等のため同意を得ることが困難である場合に限り」: the record says
/// which case the crew judged it to be, at the choice and at a correction to it.
#[test]
fn unobtainable_consent_is_recorded_with_its_reason_and_never_without_one() {
    for (decision, reason) in [
        (ConsentDecision::Unobtainable, None),
        (ConsentDecision::Verbal, Some(UnobtainableReason::Other)),
        (
            ConsentDecision::Refused,
            Some(UnobtainableReason::Unconscious),
        ),
    ] {
        let mut s = at_consent();
        confirm_identity(&mut s);
        let before = (s.phase(), s.notice());
        assert_eq!(
            s.handle(T, Event::ConsentChosen { decision, reason }),
            Err(SessionError::ReasonMismatch),
            "{decision:?} with {reason:?}"
        );
        assert_eq!((s.phase(), s.notice()), before);
        assert!(s.incident().unwrap().consent.is_none());
    }
    for reason in UnobtainableReason::ALL {
        let mut s = at_consent();
        confirm_identity(&mut s);
        let fx = ok(
            &mut s,
            Event::ConsentChosen {
                decision: ConsentDecision::Unobtainable,
                reason: Some(reason),
            },
        );
        let records = consent_records(&fx);
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].reason, Some(reason));
        assert_eq!(inquiries(&fx)[0].consent, ConsentState::Unobtainable);
        assert_eq!(s.incident().unwrap().unobtainable_reason, Some(reason));
    }
    // verbal consent carries none
    let mut s = at_consent();
    confirm_identity(&mut s);
    let fx = ok(&mut s, consent(ConsentDecision::Verbal));
    assert_eq!(consent_records(&fx)[0].reason, None);
}

#[test]
fn a_correction_to_unobtainable_carries_its_reason_and_one_away_from_it_drops_it() {
    let mut s = viewing(ConsentDecision::Verbal);
    assert_eq!(
        s.handle(
            T,
            Event::ConsentCorrected {
                to: ConsentDecision::Unobtainable,
                reason: None,
            }
        ),
        Err(SessionError::ReasonMismatch)
    );
    let fx = ok(
        &mut s,
        Event::ConsentCorrected {
            to: ConsentDecision::Unobtainable,
            reason: Some(UnobtainableReason::LacksCapacity),
        },
    );
    let correction = correction_in(&fx);
    assert_eq!(correction.reason, Some(UnobtainableReason::LacksCapacity));
    assert_eq!(
        s.incident().unwrap().unobtainable_reason,
        Some(UnobtainableReason::LacksCapacity)
    );
    let fx = ok(&mut s, correct(ConsentDecision::Verbal));
    assert!(
        fx.iter()
            .any(|e| matches!(e, Effect::AppendConsentCorrection(c) if c.reason.is_none()))
    );
    assert_eq!(s.incident().unwrap().unobtainable_reason, None);
}
