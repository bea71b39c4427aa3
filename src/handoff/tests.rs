//! Every rule of the case, and the disclosure's limits.

use super::*;

fn h(code: &str) -> HospitalCode {
    HospitalCode(code.into())
}

fn disclosure() -> Disclosure {
    Disclosure {
        age_band: Some(AgeBand::of_age(86)),
        modifiers: vec![Modifier::Sudden],
        onset_minutes_ago: Some(30),
        sex: crate::domain::Sex::Female,
        complaint: Complaint::AlteredConsciousness,
        vitals: Vitals {
            jcs: Jcs::new(100),
            bp_systolic: Some(168),
            bp_diastolic: Some(92),
            ..Vitals::default()
        },
        alerts: vec![AlertClaim {
            label: "抗凝固薬".into(),
            source: AlertSource::NationalSystem {
                as_of: time::macros::date!(2026 - 11 - 30),
            },
        }],
        eta_minutes: Some(12),
        callback: "090-0000-0000".into(),
    }
}

fn asked() -> Case {
    Case::ask(disclosure(), vec![h("A"), h("B"), h("C")], 1_000)
        .unwrap()
        .0
}

#[test]
fn a_request_names_one_to_five_hospitals_once_each_and_notifies_them() {
    let (case, fx) = Case::ask(disclosure(), vec![h("A"), h("B")], 0).unwrap();
    assert_eq!(fx, vec![Effect::Notify(vec![h("A"), h("B")])]);
    assert_eq!(case.visibility(&h("A")), Visibility::Request);
    assert_eq!(case.visibility(&h("Z")), Visibility::Nothing);
    for bad in [
        vec![],
        vec![h("A"), h("A")],
        (0..6).map(|i| h(&i.to_string())).collect(),
    ] {
        assert_eq!(
            Case::ask(disclosure(), bad, 0).unwrap_err(),
            CaseError::Candidates
        );
    }
}

#[test]
fn the_disclosure_names_nobody() {
    let json = serde_json::to_value(disclosure()).unwrap();
    let keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "age_band",
            "alerts",
            "callback",
            "complaint",
            "eta_minutes",
            "modifiers",
            "onset_minutes_ago",
            "sex",
            "vitals"
        ],
        "exactly these fields (serde_json keeps them sorted)"
    );
    assert_eq!(AgeBand::of_age(86).label_ja(), "80代");
    assert_eq!(AgeBand::of_age(6).label_ja(), "10歳未満");
    assert_eq!(AgeBand::of_age(97).label_ja(), "90歳以上");
    assert_eq!(json["alerts"][0]["source"], "national_system");
    assert_eq!(json["alerts"][0]["as_of"], "2026-11-30");
}

#[test]
fn implausible_vitals_are_asked_again_not_sent() {
    let mut d = disclosure();
    d.vitals.bp_systolic = Some(1200);
    let e = Case::ask(d, vec![h("A")], 0).unwrap_err();
    assert!(
        matches!(
            e,
            CaseError::Vitals(VitalError {
                what: "BP systolic",
                ..
            })
        ),
        "{e}"
    );
    let mut d = disclosure();
    d.vitals.bp_diastolic = Some(170);
    assert!(
        Case::ask(d, vec![h("A")], 0).is_err(),
        "diastolic over systolic"
    );
    assert_eq!(Jcs::new(15), None, "not a JCS step");
    assert!(serde_json::from_str::<Jcs>("25").is_err());
    assert_eq!(serde_json::from_str::<Jcs>("200").unwrap().value(), 200);
    let mut case = asked();
    case.answer(&h("A"), Answer::Accept, "Dr. A", 2_000)
        .unwrap();
    case.decide(&h("A"), 3_000).unwrap();
    let bad = Vitals {
        spo2: Some(12),
        ..Vitals::default()
    };
    assert!(case.update(Change::Vitals { vitals: bad }).is_err());
    assert_eq!(case.version, 1, "nothing sent");
}

#[test]
fn only_a_hospital_that_accepted_can_be_chosen_and_the_others_lose_the_request() {
    let mut case = asked();
    case.answer(
        &h("A"),
        Answer::Decline {
            reason: DeclineReason::BedsFull,
        },
        "A",
        1_500,
    )
    .unwrap();
    case.answer(
        &h("B"),
        Answer::CallUs {
            phone: "03-1111-2222".into(),
        },
        "B",
        1_600,
    )
    .unwrap();
    assert_eq!(
        case.decide(&h("A"), 1_700),
        Err(CaseError::NotAccepted(h("A")))
    );
    assert_eq!(
        case.decide(&h("B"), 1_700),
        Err(CaseError::NotAccepted(h("B")))
    );
    assert_eq!(
        case.decide(&h("Z"), 1_700),
        Err(CaseError::NotACandidate(h("Z")))
    );
    case.answer(&h("C"), Answer::Accept, "Dr. C", 4_000)
        .unwrap();
    let fx = case.decide(&h("C"), 5_000).unwrap();
    assert_eq!(
        fx,
        vec![
            Effect::Packet {
                to: h("C"),
                version: 1
            },
            Effect::Withdraw(vec![h("A"), h("B")]),
        ]
    );
    assert_eq!(case.visibility(&h("C")), Visibility::Packet);
    assert_eq!(case.visibility(&h("A")), Visibility::Nothing);
    assert_eq!(case.visibility(&h("B")), Visibility::Nothing);
    assert_eq!(
        case.decide(&h("C"), 5_000),
        Err(CaseError::WrongStage(Stage::Decided))
    );
    assert_eq!(case.hospitals_asked(), 3);
    assert_eq!(case.time_to_acceptance_ms(), Some(3_000));
}

#[test]
fn a_late_answer_is_kept_as_late_and_a_replay_changes_nothing() {
    let mut case = asked();
    case.answer(&h("A"), Answer::Accept, "Dr. A", 2_000)
        .unwrap();
    assert_eq!(
        case.answer(&h("A"), Answer::Accept, "Dr. A", 2_100),
        Err(CaseError::Replayed(h("A")))
    );
    assert_eq!(case.answers[0].len(), 1);
    case.decide(&h("A"), 3_000).unwrap();
    // B's 受入可 was on its way: recorded as late, it decides nothing
    let fx = case
        .answer(&h("B"), Answer::Accept, "Dr. B", 3_100)
        .unwrap();
    assert_eq!(fx, vec![Effect::AnswerToTablet(h("B"))]);
    assert!(case.answer_of(&h("B")).unwrap().late);
    assert_eq!(case.chosen, Some(h("A")));
    assert_eq!(case.visibility(&h("B")), Visibility::Nothing);
    assert_eq!(
        case.time_to_acceptance_ms(),
        Some(1_000),
        "late answers do not count"
    );
}

#[test]
fn updates_are_versions_the_chosen_hospital_acknowledges() {
    let mut case = asked();
    case.answer(&h("B"), Answer::Accept, "Dr. B", 2_000)
        .unwrap();
    assert_eq!(
        case.update(Change::Eta { minutes: 5 }),
        Err(CaseError::WrongStage(Stage::Asking))
    );
    case.decide(&h("B"), 3_000).unwrap();
    let fx = case.update(Change::Eta { minutes: 7 }).unwrap();
    assert_eq!(
        fx,
        vec![Effect::Packet {
            to: h("B"),
            version: 2
        }]
    );
    case.update(Change::Vitals {
        vitals: Vitals {
            heart_rate: Some(112),
            ..Vitals::default()
        },
    })
    .unwrap();
    assert_eq!(case.acknowledge(&h("A"), 1), Err(CaseError::NotChosen));
    assert_eq!(
        case.acknowledge(&h("B"), 9),
        Err(CaseError::NoSuchVersion(9))
    );
    case.acknowledge(&h("B"), 3).unwrap();
    case.acknowledge(&h("B"), 2).unwrap();
    assert_eq!(
        case.acknowledged, 3,
        "an older acknowledgement does not step back"
    );
    case.update(Change::Arrived).unwrap();
    assert_eq!(case.stage, Stage::Arrived);
    assert_eq!(case.version, 4);
    assert_eq!(
        case.update(Change::Eta { minutes: 1 }),
        Err(CaseError::WrongStage(Stage::Arrived))
    );
    assert_eq!(
        case.changes.iter().map(|(v, _)| *v).collect::<Vec<_>>(),
        [2, 3, 4]
    );
}

#[test]
fn a_withdrawn_request_leaves_every_candidate_with_nothing() {
    let mut case = asked();
    let fx = case.close().unwrap();
    assert_eq!(fx, vec![Effect::Withdraw(vec![h("A"), h("B"), h("C")])]);
    for c in [h("A"), h("B"), h("C")] {
        assert_eq!(case.visibility(&c), Visibility::Nothing);
        assert!(case.answer(&c, Answer::Accept, "x", 9).is_err());
    }
}
