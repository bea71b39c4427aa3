//! The hand-off screens' part of the view model: plain strings and flags built from the
//! crew's flow, like the rest of the view model.

use crate::handoff::crew::{CrewFlow, FlowNotice, Step, VitalField};
use crate::handoff::{AgeBand, Answer, Complaint, Modifier};

/// A preset or a modifier: its label, whether it is chosen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Choice {
    pub label: String,
    pub on: bool,
}

/// One value with its − / + (JCS and the vitals).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stepper {
    pub label: String,
    pub value: String,
}

/// A hospital to choose.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HospitalItem {
    pub code: String,
    pub name: String,
    pub departments: String,
    pub regular: bool,
    pub selected: bool,
}

/// How an answer looks: none yet, 受入可, 受入不可, 要電話.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AnswerKind {
    #[default]
    Waiting,
    Accept,
    Decline,
    CallUs,
}

/// A candidate with its answer as it came.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CandidateItem {
    pub code: String,
    pub name: String,
    /// 「受入可」「受入不可（満床）」「要電話 03-…」「回答待ち」.
    pub answer: String,
    pub kind: AnswerKind,
    /// HH:MM of the answer (JST).
    pub at: String,
    pub late: bool,
    pub chosen: bool,
    pub can_decide: bool,
}

/// Everything the hand-off screens show.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HandoffView {
    /// A flow exists (the summary's button reads 「照会に戻る」).
    pub open: bool,
    pub step: &'static str,
    /// A card was read: the source line names the national system.
    pub with_card: bool,
    pub complaints: Vec<Choice>,
    pub modifiers: Vec<Choice>,
    pub jcs: Stepper,
    pub vitals: Vec<Stepper>,
    pub vitals_summary: String,
    pub vitals_open: bool,
    pub onset: String,
    pub eta: String,
    pub age_band: String,
    pub sex: String,
    pub can_choose: bool,
    pub hospitals: Vec<HospitalItem>,
    pub selected: usize,
    pub candidates: Vec<CandidateItem>,
    pub sending: bool,
    /// 別の病院に照会 is offered (a request is out and no decision yet).
    pub can_ask_more: bool,
    /// A 受入可 waits for 搬送決定 (the summary's and Ready's button say so while the flow is
    /// hidden under them).
    pub accept_waiting: bool,
    pub decided: bool,
    pub arrived: bool,
    /// The chosen hospital's name.
    pub chosen: String,
    /// What it has read: 「第2版 送信済み・未読」「第2版まで既読・最新 第3版」.
    pub chosen_status: String,
    pub notice: String,
    pub notice_is_error: bool,
}

fn hm(ms: i64) -> String {
    crate::domain::Timestamp(ms)
        .in_jst()
        .map(|t| format!("{:02}:{:02}", t.hour(), t.minute()))
        .unwrap_or_default()
}

pub fn build(flow: &CrewFlow, vitals_open: bool) -> HandoffView {
    let f = &flow.findings;
    let vitals: Vec<Stepper> = VitalField::ALL
        .iter()
        .map(|field| Stepper {
            label: field.label_ja().into(),
            value: field.show(field.get(&f.vitals)),
        })
        .collect();
    let jcs = f
        .vitals
        .jcs
        .map(|j| j.value().to_string())
        .unwrap_or_else(|| "—".into());
    let measured: Vec<String> =
        std::iter::once(("JCS", f.vitals.jcs.map(|j| j.value().to_string())))
            .chain(
                VitalField::ALL
                    .iter()
                    .map(|v| (v.label_ja(), f.vitals_value(*v))),
            )
            .filter_map(|(label, v)| v.map(|v| format!("{label} {v}")))
            .collect();
    let decided_to = flow.case.as_ref().and_then(|c| c.chosen.clone());
    let candidates = flow
        .case
        .as_ref()
        .map(|c| {
            c.candidates
                .iter()
                .map(|x| {
                    let (answer, kind) = match x.answer.as_ref().map(|a| &a.answer) {
                        None => ("回答待ち".to_string(), AnswerKind::Waiting),
                        Some(a @ Answer::Accept) => (a.label_ja(), AnswerKind::Accept),
                        Some(a @ Answer::Decline { .. }) => (a.label_ja(), AnswerKind::Decline),
                        Some(a @ Answer::CallUs { .. }) => (a.label_ja(), AnswerKind::CallUs),
                    };
                    let late = x.answer.as_ref().is_some_and(|a| a.late);
                    CandidateItem {
                        code: x.code.0.clone(),
                        name: x.name.clone(),
                        answer: if late {
                            format!("{answer}（決定後・遅延）")
                        } else {
                            answer
                        },
                        kind,
                        at: x.answer.as_ref().map(|a| hm(a.at_ms)).unwrap_or_default(),
                        late,
                        chosen: decided_to.as_ref() == Some(&x.code),
                        can_decide: flow.step == Step::Asking
                            && kind == AnswerKind::Accept
                            && !late,
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let (chosen, chosen_status) = flow
        .case
        .as_ref()
        .and_then(|c| {
            let code = c.chosen.as_ref()?;
            let name = c.candidates.iter().find(|x| &x.code == code)?.name.clone();
            let status = if c.acknowledged > 0 {
                format!("第{}版まで既読・最新 第{}版", c.acknowledged, c.version)
            } else {
                format!("第{}版 送信済み・未読", c.version)
            };
            Some((name, status))
        })
        .unwrap_or_default();
    HandoffView {
        open: true,
        step: flow.step.name(),
        with_card: flow.with_card,
        complaints: Complaint::ALL
            .iter()
            .map(|c| Choice {
                label: c.label_ja().into(),
                on: f.complaint == Some(*c),
            })
            .collect(),
        modifiers: Modifier::ALL
            .iter()
            .map(|m| Choice {
                label: m.label_ja().into(),
                on: f.modifiers.contains(m),
            })
            .collect(),
        jcs: Stepper {
            label: "JCS".into(),
            value: jcs,
        },
        vitals,
        vitals_summary: if measured.is_empty() {
            "未入力".into()
        } else {
            measured.join("　")
        },
        vitals_open,
        onset: f
            .onset_minutes_ago
            .map(|m| format!("{m}分前"))
            .unwrap_or_else(|| "不明".into()),
        eta: f
            .eta_minutes
            .map(|m| format!("{m}分"))
            .unwrap_or_else(|| "—".into()),
        age_band: if flow.with_card {
            "カードから".into()
        } else {
            AgeBand::label_of(f.age_band)
        },
        sex: if flow.with_card {
            "カードから".into()
        } else {
            f.sex.map(|s| s.label_ja()).unwrap_or("—").into()
        },
        can_choose: f.complaint.is_some(),
        hospitals: flow
            .hospitals
            .iter()
            .map(|h| HospitalItem {
                code: h.code.0.clone(),
                name: h.name.clone(),
                departments: h.departments.join("・"),
                regular: h.regular,
                selected: flow.selected.contains(&h.code),
            })
            .collect(),
        selected: flow.selected.len(),
        candidates,
        sending: flow.step == Step::Sending || flow.step == Step::Deciding,
        can_ask_more: flow.step == Step::Asking,
        accept_waiting: flow.step == Step::Asking
            && flow.case.as_ref().is_some_and(|c| {
                c.candidates.iter().any(|x| {
                    x.answer
                        .as_ref()
                        .is_some_and(|a| a.answer == Answer::Accept && !a.late)
                })
            }),
        decided: matches!(flow.step, Step::Decided | Step::Arrived),
        arrived: flow.step == Step::Arrived,
        chosen,
        chosen_status,
        notice: flow
            .notice
            .as_ref()
            .map(FlowNotice::message_ja)
            .unwrap_or_default(),
        notice_is_error: flow.notice.as_ref().is_some_and(FlowNotice::is_error),
    }
}
