//! The simulator's own tests: answers, references, limits, the inquiry log.

use super::*;
use time::macros::date;

fn sim() -> Simulator {
    Simulator::with_population(
        patients::population(patients::DEFAULT_SEED, 20, date!(2026 - 11 - 22)),
        date!(2026 - 11 - 22),
    )
    .unwrap()
}

fn unit() -> UnitId {
    UnitId::new("U-1")
}

fn cred(card: &CardCertificate) -> CardCredential {
    CardCredential {
        auth_certificate_der: card.auth_certificate_der.clone(),
        token: Default::default(),
    }
}

#[test]
fn issued_card_is_answered_with_its_patients_coverage() {
    let mut s = sim();
    let card = s.issue_card("P0012").unwrap();
    match s.qualification(&unit(), &cred(&card), Timestamp(1)) {
        QualificationAnswer::Coverage { coverage, .. } => {
            assert_eq!(coverage.patient.local_id.expose(), "P0012")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn unknown_revoked_and_opt_out_cards_are_answered_distinctly() {
    let mut s = sim();
    let stranger = JpkiTestCa::generate().unwrap().issue_card(9).unwrap();
    assert_eq!(
        s.qualification(&unit(), &cred(&stranger), Timestamp(1)),
        QualificationAnswer::CardNotAccepted(CardRejection::Unknown)
    );
    let revoked = s
        .scenario_patient(PatientScenario::RevokedCard)
        .unwrap()
        .id
        .clone();
    let card = s.issue_card(&revoked).unwrap();
    assert_eq!(
        s.qualification(&unit(), &cred(&card), Timestamp(1)),
        QualificationAnswer::CardNotAccepted(CardRejection::Revoked)
    );
    let opt_out = s
        .scenario_patient(PatientScenario::OptOut)
        .unwrap()
        .id
        .clone();
    let card = s.issue_card(&opt_out).unwrap();
    assert_eq!(
        s.qualification(&unit(), &cred(&card), Timestamp(1)),
        QualificationAnswer::OptOut
    );
    assert!(matches!(
        s.issue_card("P9999"),
        Err(SimError::UnknownPatient(_))
    ));
    // a card from the same CA for a patient index beyond the population is unknown
    let beyond = issue_patient_card(s.jpki(), 5_000, 1).unwrap();
    assert_eq!(
        s.qualification(&unit(), &cred(&beyond), Timestamp(1)),
        QualificationAnswer::CardNotAccepted(CardRejection::Unknown)
    );
    // garbage is unknown, not a panic
    let junk = CardCredential {
        auth_certificate_der: vec![0x30, 0x82, 0xff, 0xff, 1],
        token: Default::default(),
    };
    assert_eq!(
        s.qualification(&unit(), &junk, Timestamp(1)),
        QualificationAnswer::CardNotAccepted(CardRejection::Unknown)
    );
}

#[test]
fn inquiry_needs_a_known_qualification_and_is_logged_with_consent() {
    let mut s = sim();
    let (incident, operator) = (IncidentId::new("I-1"), OperatorId::new("EMT-1"));
    let (unit, terminal) = (UnitId::new("U-1"), TerminalId::new("T-1"));
    let fields = |qualification| InquiryFields {
        incident: &incident,
        qualification,
        consent: ConsentState::Unobtainable,
        operator: &operator,
        unit: &unit,
        terminal: &terminal,
        identity_check: IdentityCheck::Photo,
        card_signature: None,
        token: crate::domain::TokenKind::Card,
    };
    let bogus = QualificationRef::new("Qx");
    assert_eq!(
        s.emergency_info(Timestamp(0), fields(&bogus)).unwrap_err(),
        InquiryRefusal::UnknownQualification
    );
    assert!(s.audit_log().is_empty());
    let card = s.issue_card("P0004").unwrap();
    let QualificationAnswer::Coverage { qualification, .. } =
        s.qualification(&unit, &cred(&card), Timestamp(1))
    else {
        panic!("no coverage")
    };
    let info = s
        .emergency_info(Timestamp(5), fields(&qualification))
        .unwrap();
    assert!(!info.summary.medications.is_empty());
    assert_eq!(s.audit_log().len(), 1);
    assert_eq!(s.audit_log()[0].consent, ConsentState::Unobtainable);
    assert_eq!(s.audit_log()[0].patient_id, "P0004");
}

fn coverage_ref(s: &mut Simulator, unit: &UnitId, patient: &str, at: i64) -> QualificationRef {
    let card = s.issue_card(patient).unwrap();
    match s.qualification(unit, &cred(&card), Timestamp(at)) {
        QualificationAnswer::Coverage { qualification, .. } => qualification,
        other => panic!("{other:?}"),
    }
}

fn inquire(
    s: &mut Simulator,
    unit: &UnitId,
    q: &QualificationRef,
    at: i64,
) -> Result<EmergencyInfo, InquiryRefusal> {
    s.emergency_info(
        Timestamp(at),
        InquiryFields {
            incident: &IncidentId::new(format!("I-{at}")),
            qualification: q,
            consent: ConsentState::Consented,
            operator: &OperatorId::new("EMT-1"),
            unit,
            terminal: &TerminalId::new("T-1"),
            identity_check: IdentityCheck::Photo,
            card_signature: None,
            token: crate::domain::TokenKind::Card,
        },
    )
}

#[test]
fn references_are_random_so_a_neighbour_of_one_is_nobody() {
    let mut s = sim();
    let u = unit();
    let a = coverage_ref(&mut s, &u, "P0004", 1);
    let b = coverage_ref(&mut s, &u, "P0005", 2);
    assert_ne!(a, b);
    assert_eq!(a.as_str().len(), 33, "Q + 128 bits in hex: {a:?}");
    // walking: the old sequential form and every one-digit neighbour are unknown
    let mut probes = vec!["Q00000001".to_string(), "Q00000002".to_string()];
    for i in 1..a.as_str().len() {
        let mut n = a.as_str().as_bytes().to_vec();
        n[i] = if n[i] == b'0' { b'1' } else { b'0' };
        probes.push(String::from_utf8(n).unwrap());
    }
    for probe in probes {
        assert_eq!(
            inquire(&mut s, &u, &QualificationRef::new(&probe), 3).unwrap_err(),
            InquiryRefusal::UnknownQualification,
            "{probe}"
        );
    }
    assert!(s.audit_log().is_empty(), "nothing of anyone was answered");
    assert!(inquire(&mut s, &u, &a, 4).is_ok());
}

#[test]
fn a_reference_expires_and_belongs_to_the_unit_that_asked() {
    let mut s = sim();
    let (mine, theirs) = (UnitId::new("U-1"), UnitId::new("U-2"));
    let q = coverage_ref(&mut s, &mine, "P0004", 1_000);
    assert_eq!(
        inquire(&mut s, &theirs, &q, 2_000).unwrap_err(),
        InquiryRefusal::ForeignUnit
    );
    assert_eq!(s.flagged_units(), std::slice::from_ref(&theirs));
    assert_eq!(
        inquire(&mut s, &mine, &q, 1_000 + REFERENCE_LIFETIME_MS).unwrap_err(),
        InquiryRefusal::ExpiredQualification
    );
    let fresh = coverage_ref(&mut s, &mine, "P0004", 10_000_000);
    assert!(
        inquire(
            &mut s,
            &mine,
            &fresh,
            10_000_000 + REFERENCE_LIFETIME_MS - 1
        )
        .is_ok()
    );
    assert_eq!(s.audit_log().len(), 1);
    assert_eq!(s.audit_log()[0].unit, mine);
}

#[test]
fn a_unit_asking_for_too_many_patients_is_flagged_then_refused() {
    let mut s = sim();
    s.set_rate_limit(PatientRateLimit {
        flag_at: 3,
        refuse_above: 5,
    });
    let u = unit();
    let ids: Vec<String> = s
        .patients()
        .iter()
        .filter(|p| {
            !matches!(
                p.scenario,
                Some(PatientScenario::RevokedCard | PatientScenario::OptOut)
            )
        })
        .take(8)
        .map(|p| p.id.clone())
        .collect();
    let mut answers = vec![];
    for (i, id) in ids.iter().enumerate() {
        let card = s.issue_card(id).unwrap();
        answers.push(s.qualification(&u, &cred(&card), Timestamp(i as i64)));
        if i == 1 {
            assert!(s.flagged_units().is_empty());
        }
    }
    assert_eq!(s.flagged_units(), std::slice::from_ref(&u));
    let refused = answers
        .iter()
        .filter(|a| **a == QualificationAnswer::RateLimited)
        .count();
    // patients beyond the fifth distinct one (scenario patients may answer otherwise)
    assert_eq!(refused, 3, "{answers:?}");
    // the same patient again is not a new one; an hour later the count starts over
    let card = s.issue_card(&ids[0]).unwrap();
    assert_ne!(
        s.qualification(&u, &cred(&card), Timestamp(10)),
        QualificationAnswer::RateLimited
    );
    let card = s.issue_card(&ids[7]).unwrap();
    assert_ne!(
        s.qualification(&u, &cred(&card), Timestamp(3_600_100)),
        QualificationAnswer::RateLimited
    );
    // another unit is counted on its own
    let card = s.issue_card(&ids[6]).unwrap();
    assert_ne!(
        s.qualification(&UnitId::new("U-9"), &cred(&card), Timestamp(11)),
        QualificationAnswer::RateLimited
    );
}
