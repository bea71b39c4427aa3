//! Every transition of the incident flow, and property tests over random event sequences.

pub use super::*;
pub use crate::domain::{
    ConsentState, CoverageStatus, PatientRef, Sensitive, Sex, UnobtainableReason,
};
pub use proptest::prelude::*;

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

/// The consent event as the screen sends it: 同意取得困難 with a reason, the others without.
fn consent(decision: ConsentDecision) -> Event {
    Event::ConsentChosen {
        decision,
        reason: reason_for(decision),
    }
}

/// A correction as the screen sends it.
fn correct(to: ConsentDecision) -> Event {
    Event::ConsentCorrected {
        to,
        reason: reason_for(to),
    }
}

fn reason_for(decision: ConsentDecision) -> Option<UnobtainableReason> {
    (decision == ConsentDecision::Unobtainable).then_some(UnobtainableReason::Unconscious)
}

/// Card detected and read for incident 1.
fn read_card(s: &mut Session) {
    ok(s, Event::CardDetected { incident: inc(1) });
    ok(
        s,
        Event::CardReadOk {
            incident: inc(1),
            credential: credential(),
        },
    );
}

/// The crew confirmed the patient's identity by the card's photo.
fn confirm_identity(s: &mut Session) {
    ok(
        s,
        Event::IdentityConfirmed {
            check: IdentityCheck::Photo,
        },
    );
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
    read_card(&mut s);
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
    confirm_identity(&mut s);
    ok(&mut s, consent(decision));
    ok(
        &mut s,
        Event::EmergencyInfoAnswered {
            incident: inc(1),
            info: Box::default(),
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

mod flow;
mod line;
mod phone;
mod property;
mod records;
