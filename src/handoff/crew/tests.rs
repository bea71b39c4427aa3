//! Every path of the crew's flow, as plain unit tests.

use super::*;
use crate::handoff::{DeclineReason, Stage};

fn h(code: &str) -> HospitalCode {
    HospitalCode(code.into())
}

fn hospitals() -> Vec<Hospital> {
    ["A", "B", "C", "D", "E", "F"]
        .iter()
        .map(|c| Hospital {
            code: h(c),
            name: format!("{c}病院"),
            departments: vec!["救急科".into()],
            regular: false,
        })
        .collect()
}

fn state(answers: &[(&str, Option<Answer>, i64, bool)], stage: Stage) -> CaseState {
    CaseState {
        case_id: "case-1".into(),
        stage,
        candidates: answers
            .iter()
            .map(|(c, a, at, late)| Candidate {
                code: h(c),
                name: format!("{c}病院"),
                answer: a.clone().map(|answer| AnswerRecord {
                    answer,
                    by: "staff".into(),
                    at_ms: *at,
                    late: *late,
                }),
            })
            .collect(),
        chosen: None,
        version: 0,
        acknowledged: 0,
    }
}

/// A flow with a complaint, hospitals A–C chosen, the request sent and accepted by the hub.
fn asking() -> CrewFlow {
    let (mut f, fx) = CrewFlow::open(true);
    assert_eq!(fx, vec![Effect::FetchHospitals]);
    f.handle(0, Input::HospitalsLoaded(hospitals()));
    f.handle(0, Input::Complaint(Complaint::ChestPain));
    f.handle(0, Input::ToHospitals);
    for c in ["A", "B", "C"] {
        f.handle(0, Input::ToggleHospital(h(c)));
    }
    let fx = f.handle(1_000, Input::Send);
    assert!(matches!(&fx[..], [Effect::Ask { candidates, .. }] if candidates.len() == 3));
    let fx = f.handle(
        1_200,
        Input::Sent(state(
            &[
                ("A", None, 0, false),
                ("B", None, 0, false),
                ("C", None, 0, false),
            ],
            Stage::Asking,
        )),
    );
    assert!(fx.contains(&Effect::Watch {
        case_id: "case-1".into()
    }));
    assert!(fx.contains(&Effect::Record(HandoffEvent::Asked {
        case_id: "case-1".into(),
        hospitals: vec!["A".into(), "B".into(), "C".into()]
    })));
    assert_eq!(f.step, Step::Asking);
    f
}

#[test]
fn the_complaint_is_the_only_thing_required() {
    let (mut f, _) = CrewFlow::open(false);
    f.handle(0, Input::ToHospitals);
    assert_eq!(f.step, Step::Findings);
    assert_eq!(f.notice, Some(FlowNotice::NeedComplaint));
    f.handle(0, Input::Complaint(Complaint::Fever));
    assert_eq!(f.notice, None);
    let fx = f.handle(0, Input::ToHospitals);
    assert_eq!(f.step, Step::Choosing);
    assert_eq!(
        fx,
        vec![Effect::FetchHospitals],
        "the list was not there yet"
    );
}

#[test]
fn an_implausible_vital_is_asked_again_and_never_kept() {
    let (mut f, _) = CrewFlow::open(false);
    f.handle(0, Input::SetVital(VitalField::BpSystolic, Some(1200)));
    assert_eq!(f.findings.vitals.bp_systolic, None);
    assert!(matches!(&f.notice, Some(FlowNotice::VitalRefused(e)) if e.value == 1200));
    assert!(f.notice.as_ref().unwrap().message_ja().contains("1200"));
    f.handle(0, Input::SetVital(VitalField::BpSystolic, Some(120)));
    assert_eq!(f.findings.vitals.bp_systolic, Some(120));
    assert_eq!(f.notice, None);
    // a diastolic above the systolic is a slip too
    f.handle(0, Input::SetVital(VitalField::BpDiastolic, Some(130)));
    assert_eq!(f.findings.vitals.bp_diastolic, None);
    f.handle(0, Input::SetVital(VitalField::Temperature, Some(368)));
    assert_eq!(
        VitalField::Temperature.show(f.findings.vitals.temperature_tenths),
        "36.8"
    );
    f.handle(0, Input::SetVital(VitalField::Spo2, Some(101)));
    assert_eq!(f.findings.vitals.spo2, None);
}

#[test]
fn jcs_walks_its_real_steps_and_eta_and_onset_their_scales() {
    let (mut f, _) = CrewFlow::open(false);
    let mut seen = vec![];
    for _ in 0..12 {
        f.handle(0, Input::StepJcs(1));
        seen.push(f.findings.vitals.jcs.map(|j| j.value()).unwrap());
    }
    assert_eq!(seen, [0, 1, 2, 3, 10, 20, 30, 100, 200, 300, 300, 300]);
    f.handle(0, Input::StepJcs(-1));
    assert_eq!(f.findings.vitals.jcs.map(|j| j.value()), Some(200));
    for _ in 0..12 {
        f.handle(0, Input::StepJcs(-1));
    }
    assert_eq!(f.findings.vitals.jcs, None, "down from 0 clears it");

    f.handle(0, Input::StepEta(1));
    assert_eq!(f.findings.eta_minutes, Some(3));
    f.handle(0, Input::StepEta(1));
    f.handle(0, Input::StepEta(1));
    assert_eq!(f.findings.eta_minutes, Some(8));
    f.handle(0, Input::StepEta(-1));
    assert_eq!(f.findings.eta_minutes, Some(5));
    f.handle(0, Input::StepOnset(1));
    assert_eq!(f.findings.onset_minutes_ago, Some(5));
    f.handle(0, Input::StepOnset(-1));
    assert_eq!(f.findings.onset_minutes_ago, None, "back to 不明");
    f.handle(0, Input::StepAgeBand(1));
    f.handle(0, Input::StepAgeBand(1));
    assert_eq!(f.findings.age_band, Some(AgeBand { from: 10 }));
    f.handle(0, Input::CycleSex);
    assert_eq!(f.findings.sex, Some(Sex::Male));
}

#[test]
fn at_most_five_hospitals_and_only_listed_ones() {
    let (mut f, _) = CrewFlow::open(true);
    f.handle(0, Input::HospitalsLoaded(hospitals()));
    f.handle(0, Input::Complaint(Complaint::Trauma));
    f.handle(0, Input::ToHospitals);
    f.handle(0, Input::Send);
    assert_eq!(f.notice, Some(FlowNotice::NoHospitalChosen));
    for c in ["A", "B", "C", "D", "E", "F", "ZZ"] {
        f.handle(0, Input::ToggleHospital(h(c)));
    }
    assert_eq!(f.selected.len(), 5);
    assert_eq!(f.notice, Some(FlowNotice::TooManyHospitals));
    f.handle(0, Input::ToggleHospital(h("A")));
    assert_eq!(f.selected.len(), 4, "a second tap takes it back");
}

#[test]
fn regular_hospitals_are_marked_and_listed_first() {
    let (mut f, _) = CrewFlow::open(true);
    f.handle(0, Input::HospitalsLoaded(hospitals()));
    f.mark_regular(&["C病院".into(), "よその病院".into()]);
    assert_eq!(f.hospitals[0].code, h("C"));
    assert!(f.hospitals[0].regular);
    assert_eq!(f.hospitals.iter().filter(|h| h.regular).count(), 1);
}

#[test]
fn answers_are_recorded_once_and_decide_needs_an_accept() {
    let mut f = asking();
    let s = state(
        &[
            ("A", Some(Answer::Accept), 5_000, false),
            (
                "B",
                Some(Answer::Decline {
                    reason: DeclineReason::BedsFull,
                }),
                4_000,
                false,
            ),
            ("C", None, 0, false),
        ],
        Stage::Asking,
    );
    let fx = f.handle(5_100, Input::Case(s.clone()));
    let answered: Vec<_> = fx
        .iter()
        .filter(|e| matches!(e, Effect::Record(HandoffEvent::Answered { .. })))
        .collect();
    assert_eq!(answered.len(), 2);
    assert!(
        f.handle(5_200, Input::Case(s)).is_empty(),
        "the same answers again are not recorded again"
    );
    f.handle(6_000, Input::Decide(h("B")));
    assert_eq!(f.notice, Some(FlowNotice::NotAccepted));
    assert_eq!(f.step, Step::Asking);
    let fx = f.handle(6_000, Input::Decide(h("A")));
    assert!(matches!(&fx[..], [Effect::Decide { hospital, .. }] if *hospital == h("A")));
    assert_eq!(f.step, Step::Deciding);
    let mut decided = state(&[("A", Some(Answer::Accept), 5_000, false)], Stage::Decided);
    decided.chosen = Some(h("A"));
    decided.version = 1;
    let fx = f.handle(6_300, Input::Decided(decided, "ab".repeat(32)));
    assert!(fx.contains(&Effect::Record(HandoffEvent::Decided {
        case_id: "case-1".into(),
        hospital: "A".into(),
        packet_version: 1,
        packet_sha256: "ab".repeat(32),
    })));
    assert_eq!(f.step, Step::Decided);
    assert_eq!(f.time_to_decision_ms(), Some(5_000));
}

#[test]
fn an_answer_after_the_decision_is_late_never_a_new_decision() {
    let mut f = asking();
    f.handle(
        2_000,
        Input::Case(state(
            &[("A", Some(Answer::Accept), 2_000, false)],
            Stage::Asking,
        )),
    );
    f.handle(3_000, Input::Decide(h("A")));
    let mut decided = state(&[("A", Some(Answer::Accept), 2_000, false)], Stage::Decided);
    decided.chosen = Some(h("A"));
    f.handle(3_100, Input::Decided(decided.clone(), "00".into()));
    // C accepts afterwards
    let mut later = decided;
    later.candidates.push(Candidate {
        code: h("C"),
        name: "C病院".into(),
        answer: Some(AnswerRecord {
            answer: Answer::Accept,
            by: "x".into(),
            at_ms: 9_000,
            late: true,
        }),
    });
    let fx = f.handle(9_100, Input::Case(later));
    assert!(fx.iter().any(|e| matches!(
        e,
        Effect::Record(HandoffEvent::Answered { hospital, late: true, .. }) if hospital == "C"
    )));
    assert_eq!(f.notice, Some(FlowNotice::LateAnswer));
    assert!(f.handle(9_200, Input::Decide(h("C"))).is_empty());
    assert_eq!(f.step, Step::Decided, "still decided for A");
}

#[test]
fn a_request_that_cannot_leave_is_retried_until_the_bound_then_dropped() {
    let (mut f, _) = CrewFlow::open(false);
    f.handle(0, Input::HospitalsLoaded(hospitals()));
    f.handle(0, Input::Complaint(Complaint::Dyspnoea));
    f.handle(0, Input::ToHospitals);
    f.handle(0, Input::ToggleHospital(h("A")));
    f.handle(10_000, Input::Send);
    let fx = f.handle(10_050, Input::SendFailed);
    assert_eq!(fx, vec![Effect::RetryAfter(RETRY_EVERY_MS)]);
    assert_eq!(f.notice, Some(FlowNotice::SendFailed), "said at once");
    let mut t = 10_050;
    let mut tries = 1;
    loop {
        t += RETRY_EVERY_MS;
        let fx = f.handle(t, Input::RetryDue);
        if !matches!(fx.first(), Some(Effect::Ask { .. })) {
            break;
        }
        tries += 1;
        let fx = f.handle(t + 50, Input::SendFailed);
        if fx != vec![Effect::RetryAfter(RETRY_EVERY_MS)] {
            assert!(matches!(
                &fx[..],
                [Effect::Record(HandoffEvent::NotSent { hospitals })] if hospitals == &["A".to_string()]
            ));
            break;
        }
    }
    assert!(
        t - 10_000 <= SEND_BOUND_MS + RETRY_EVERY_MS,
        "stopped at the bound"
    );
    assert!(tries >= 10, "retried while the crew stayed: {tries}");
    assert_eq!(f.step, Step::Choosing);
    assert_eq!(f.notice, Some(FlowNotice::GaveUp));
    // a retry timer firing after the bound sends nothing
    assert!(f.handle(t + 60_000, Input::RetryDue).is_empty());
}

#[test]
fn updates_after_the_decision_are_one_tap_each() {
    let mut f = asking();
    f.findings.eta_minutes = Some(12);
    f.handle(
        2_000,
        Input::Case(state(
            &[("A", Some(Answer::Accept), 2_000, false)],
            Stage::Asking,
        )),
    );
    f.handle(3_000, Input::Decide(h("A")));
    let mut decided = state(&[("A", Some(Answer::Accept), 2_000, false)], Stage::Decided);
    decided.chosen = Some(h("A"));
    f.handle(3_100, Input::Decided(decided.clone(), "00".into()));
    let fx = f.handle(4_000, Input::EtaMinus5);
    assert!(matches!(
        &fx[..],
        [Effect::Update {
            change: Change::Eta { minutes: 7 },
            ..
        }]
    ));
    f.handle(4_000, Input::SetVital(VitalField::HeartRate, Some(110)));
    let fx = f.handle(4_100, Input::SendVitals);
    assert!(
        matches!(&fx[..], [Effect::Update { change: Change::Vitals { vitals }, .. }] if vitals.heart_rate == Some(110))
    );
    let fx = f.handle(5_000, Input::Arrived);
    assert!(matches!(
        &fx[..],
        [Effect::Update {
            change: Change::Arrived,
            ..
        }]
    ));
    let mut arrived = decided;
    arrived.stage = Stage::Arrived;
    arrived.version = 4;
    let fx = f.handle(5_100, Input::Updated(arrived, "arrived"));
    assert!(fx.contains(&Effect::Record(HandoffEvent::Updated {
        case_id: "case-1".into(),
        version: 4,
        change: "arrived".into()
    })));
    assert_eq!(f.step, Step::Arrived);
}

#[test]
fn leaving_before_the_decision_withdraws_and_the_disclosure_names_nobody() {
    let f = asking();
    assert_eq!(
        f.withdrawn(),
        Some(HandoffEvent::Withdrawn {
            case_id: "case-1".into()
        })
    );
    let known = Known {
        age_band: Some(AgeBand::of_age(84)),
        sex: Some(Sex::Female),
        alerts: vec![],
    };
    let d = CrewFlow::disclosure(&f.findings, &known, "090-0000-0000");
    assert_eq!(d.complaint, Complaint::ChestPain);
    assert_eq!(d.age_band, Some(AgeBand { from: 80 }));
    // without a card: the crew's estimate, or 不明
    let d = CrewFlow::disclosure(&f.findings, &Known::default(), "x");
    assert_eq!((d.age_band, d.sex), (None, Sex::NotKnown));
}

#[test]
fn steppers_start_at_the_usual_value_and_a_step_past_the_range_is_refused() {
    let (mut f, _) = CrewFlow::open(false);
    f.handle(0, Input::StepVital(VitalField::BpSystolic, 1));
    assert_eq!(f.findings.vitals.bp_systolic, Some(120));
    for _ in 0..18 {
        f.handle(0, Input::StepVital(VitalField::BpSystolic, 1));
    }
    assert_eq!(f.findings.vitals.bp_systolic, Some(300));
    f.handle(0, Input::StepVital(VitalField::BpSystolic, 1));
    assert_eq!(f.findings.vitals.bp_systolic, Some(300), "310 is not kept");
    assert!(matches!(f.notice, Some(FlowNotice::VitalRefused(_))));
    f.handle(0, Input::StepVital(VitalField::Spo2, -1));
    assert_eq!(f.findings.vitals.spo2, Some(96));
    f.handle(0, Input::StepVital(VitalField::Spo2, -1));
    assert_eq!(f.findings.vitals.spo2, Some(95));
}

#[test]
fn when_none_will_do_the_crew_asks_others_and_the_clock_keeps_running() {
    let mut f = asking();
    f.handle(
        4_000,
        Input::Case(state(
            &[
                (
                    "A",
                    Some(Answer::Decline {
                        reason: DeclineReason::BedsFull,
                    }),
                    3_000,
                    false,
                ),
                ("B", None, 0, false),
                ("C", None, 0, false),
            ],
            Stage::Asking,
        )),
    );
    let fx = f.handle(5_000, Input::AskMore);
    assert!(fx.contains(&Effect::Close {
        case_id: "case-1".into()
    }));
    assert!(fx.contains(&Effect::Record(HandoffEvent::Withdrawn {
        case_id: "case-1".into()
    })));
    assert_eq!(f.step, Step::Choosing);
    let listed: Vec<_> = f.hospitals.iter().map(|h| h.code.0.as_str()).collect();
    assert_eq!(listed, ["D", "E", "F"], "those asked are not listed again");
    // an event of the withdrawn case changes nothing
    assert!(
        f.handle(
            5_100,
            Input::Case(state(
                &[("B", Some(Answer::Accept), 5_050, false)],
                Stage::Closed
            ))
        )
        .is_empty()
    );
    f.handle(6_000, Input::ToggleHospital(h("D")));
    f.handle(6_000, Input::Send);
    let mut s2 = state(&[("D", None, 0, false)], Stage::Asking);
    s2.case_id = "case-2".into();
    f.handle(6_100, Input::Sent(s2));
    let mut s3 = state(&[("D", Some(Answer::Accept), 8_000, false)], Stage::Asking);
    s3.case_id = "case-2".into();
    f.handle(8_100, Input::Case(s3));
    f.handle(9_000, Input::Decide(h("D")));
    assert_eq!(f.requests, 2);
    assert_eq!(
        f.time_to_decision_ms(),
        Some(8_000),
        "from the first request"
    );
}
