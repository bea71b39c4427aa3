//! The crew's side of a hand-off, on the tablet: the findings entered with gloves on, the
//! hospitals chosen, the answers as they come, 搬送決定 and the quick updates after it.
//! Pure like the session: inputs in (taps, the hub's answers, failures, the time as
//! `now_ms`), effects out (calls to the hub, records, a retry timer); the app controller
//! carries them out. No patient data lives here: the disclosure and the packet are built
//! by the controller from the session at the moment they leave (so they are dropped with
//! the viewing), and the records this flow asks for carry hospital codes, answers, times
//! and a hash, never clinical content.
//!
//! The line rule: a request that cannot be sent says so at once (the crew phones instead)
//! and is retried every [`RETRY_EVERY_MS`] while the crew stays on the flow, but never
//! after [`SEND_BOUND_MS`] from the first attempt: a request arriving later than that
//! would reach a hospital after the crew had already phoned one, and a hospital that then
//! prepares a bed for a patient who is going elsewhere is worse than no request at all.

use super::{
    AgeBand, AlertClaim, Answer, AnswerRecord, Change, Complaint, Disclosure, HospitalCode, Jcs,
    MAX_CANDIDATES, Modifier, VitalError, Vitals,
};
use crate::domain::{HandoffEvent, Sex};

/// How long after the first attempt a request that could not be sent is still sent (90 s:
/// the time a crew gives the tablet before it phones; docs/HANDOFF.md).
pub const SEND_BOUND_MS: i64 = 90_000;
/// How often a request that could not be sent is tried again.
pub const RETRY_EVERY_MS: i64 = 5_000;
/// ETA steps on the findings screen (minutes).
pub const ETA_STEPS: [u16; 12] = [3, 5, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60];
/// Onset steps (minutes before now); the first, 0, means 「不明」.
pub const ONSET_STEPS: [u16; 10] = [0, 5, 10, 15, 30, 60, 120, 180, 360, 720];

/// A value the crew sets with the keypad.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VitalField {
    BpSystolic,
    BpDiastolic,
    HeartRate,
    RespiratoryRate,
    Spo2,
    /// Tenths of a degree on the wire; the keypad takes 368 for 36.8 °C.
    Temperature,
    Gcs,
}

impl VitalField {
    pub const ALL: [VitalField; 7] = [
        VitalField::BpSystolic,
        VitalField::BpDiastolic,
        VitalField::HeartRate,
        VitalField::RespiratoryRate,
        VitalField::Spo2,
        VitalField::Temperature,
        VitalField::Gcs,
    ];

    pub fn label_ja(self) -> &'static str {
        match self {
            VitalField::BpSystolic => "血圧（上）",
            VitalField::BpDiastolic => "血圧（下）",
            VitalField::HeartRate => "脈拍",
            VitalField::RespiratoryRate => "呼吸数",
            VitalField::Spo2 => "SpO₂",
            VitalField::Temperature => "体温",
            VitalField::Gcs => "GCS",
        }
    }

    pub fn get(self, v: &Vitals) -> Option<u16> {
        match self {
            VitalField::BpSystolic => v.bp_systolic,
            VitalField::BpDiastolic => v.bp_diastolic,
            VitalField::HeartRate => v.heart_rate,
            VitalField::RespiratoryRate => v.respiratory_rate,
            VitalField::Spo2 => v.spo2.map(u16::from),
            VitalField::Temperature => v.temperature_tenths,
            VitalField::Gcs => v.gcs.map(u16::from),
        }
    }

    /// The value a first tap starts from, and the step of one tap (a gloved finger taps a
    /// few times; a keypad would need a keyboard's precision).
    pub fn start_and_step(self) -> (u16, u16) {
        match self {
            VitalField::BpSystolic => (120, 10),
            VitalField::BpDiastolic => (70, 10),
            VitalField::HeartRate => (80, 5),
            VitalField::RespiratoryRate => (16, 2),
            VitalField::Spo2 => (96, 1),
            VitalField::Temperature => (365, 2),
            VitalField::Gcs => (15, 1),
        }
    }

    fn set(self, v: &mut Vitals, value: Option<u16>) {
        let small = |x: Option<u16>| x.map(|x| u8::try_from(x).unwrap_or(u8::MAX));
        match self {
            VitalField::BpSystolic => v.bp_systolic = value,
            VitalField::BpDiastolic => v.bp_diastolic = value,
            VitalField::HeartRate => v.heart_rate = value,
            VitalField::RespiratoryRate => v.respiratory_rate = value,
            VitalField::Spo2 => v.spo2 = small(value),
            VitalField::Temperature => v.temperature_tenths = value,
            VitalField::Gcs => v.gcs = small(value),
        }
    }

    /// How the screen shows a value ("36.8" for a temperature).
    pub fn show(self, value: Option<u16>) -> String {
        match (self, value) {
            (_, None) => "—".into(),
            (VitalField::Temperature, Some(t)) => format!("{}.{}", t / 10, t % 10),
            (_, Some(x)) => x.to_string(),
        }
    }
}

/// What the crew entered: everything optional but the complaint.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Findings {
    pub complaint: Option<Complaint>,
    pub modifiers: Vec<Modifier>,
    pub vitals: Vitals,
    /// Minutes since onset (None: 不明).
    pub onset_minutes_ago: Option<u16>,
    pub eta_minutes: Option<u16>,
    /// Without a card: the crew's estimate (None: 不明).
    pub age_band: Option<AgeBand>,
    pub sex: Option<Sex>,
}

impl Findings {
    /// A vital as the screen shows it, when measured.
    pub fn vitals_value(&self, field: VitalField) -> Option<String> {
        field.get(&self.vitals).map(|v| field.show(Some(v)))
    }
}

/// A hospital this unit may ask, as the hub lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hospital {
    pub code: HospitalCode,
    pub name: String,
    pub departments: Vec<String>,
    /// かかりつけ: the summary's 受診歴 names it.
    pub regular: bool,
}

/// A candidate as the case stands at the hub.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub code: HospitalCode,
    pub name: String,
    pub answer: Option<AnswerRecord>,
}

/// The case as the hub reports it (every call's answer and every event).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseState {
    pub case_id: String,
    pub stage: super::Stage,
    pub candidates: Vec<Candidate>,
    pub chosen: Option<HospitalCode>,
    pub version: u32,
    pub acknowledged: u32,
}

/// Where the crew is in the flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Findings,
    Choosing,
    /// The request is on its way (or waiting for the line).
    Sending,
    Asking,
    /// 搬送決定 sent, not yet confirmed.
    Deciding,
    Decided,
    Arrived,
}

impl Step {
    pub fn name(self) -> &'static str {
        match self {
            Step::Findings => "handoff_findings",
            Step::Choosing => "handoff_choosing",
            Step::Sending => "handoff_sending",
            Step::Asking => "handoff_asking",
            Step::Deciding => "handoff_deciding",
            Step::Decided => "handoff_decided",
            Step::Arrived => "handoff_arrived",
        }
    }
}

/// What the flow tells the crew.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FlowNotice {
    NeedComplaint,
    TooManyHospitals,
    NoHospitalChosen,
    VitalRefused(VitalError),
    HospitalsUnavailable,
    /// The request could not be sent; it is retried until the bound.
    SendFailed,
    /// The bound passed: nothing will be sent.
    GaveUp,
    NotAccepted,
    DecideFailed,
    UpdateFailed,
    /// An answer came after 搬送決定: shown as late.
    LateAnswer,
}

impl FlowNotice {
    pub fn message_ja(&self) -> String {
        match self {
            FlowNotice::NeedComplaint => "主訴を選んでください".into(),
            FlowNotice::TooManyHospitals => {
                format!("一度に照会できるのは{MAX_CANDIDATES}病院までです")
            }
            FlowNotice::NoHospitalChosen => "照会する病院を選んでください".into(),
            FlowNotice::VitalRefused(e) => format!(
                "{} {} はありえない値です（{}〜{}）。もう一度入力してください",
                e.what, e.value, e.low, e.high
            ),
            FlowNotice::HospitalsUnavailable => {
                "病院一覧を取得できません。電話で照会してください".into()
            }
            FlowNotice::SendFailed => {
                "照会を送信できません。電話で照会してください（回線が戻れば90秒まで自動で再送）"
                    .into()
            }
            FlowNotice::GaveUp => {
                "照会は送信されませんでした（90秒を過ぎたため中止）。電話で照会してください".into()
            }
            FlowNotice::NotAccepted => "受入可の病院だけに搬送決定できます".into(),
            FlowNotice::DecideFailed => {
                "搬送決定を送信できません。病院に電話で連絡してください".into()
            }
            FlowNotice::UpdateFailed => "更新を送信できません。もう一度押してください".into(),
            FlowNotice::LateAnswer => "搬送決定の後に届いた回答があります（遅延）".into(),
        }
    }

    pub fn is_error(&self) -> bool {
        !matches!(self, FlowNotice::LateAnswer)
    }
}

/// What happens to the flow.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    Complaint(Complaint),
    ToggleModifier(Modifier),
    /// One step up (+1) or down (-1) the JCS scale; down from 0 clears it.
    StepJcs(i8),
    /// A keypad value (None: cleared). Out of range: asked again, nothing kept.
    SetVital(VitalField, Option<u16>),
    /// One tap on a vital's − or +: the first tap sets the usual value, the next ones step
    /// (a step past the plausible range is refused like a typo).
    StepVital(VitalField, i8),
    StepOnset(i8),
    StepEta(i8),
    StepAgeBand(i8),
    /// 男 → 女 → 不明 → (none).
    CycleSex,
    ToHospitals,
    BackToFindings,
    HospitalsLoaded(Vec<Hospital>),
    HospitalsFailed,
    ToggleHospital(HospitalCode),
    Send,
    Sent(CaseState),
    SendFailed,
    /// The retry timer fired.
    RetryDue,
    /// A case view from the event stream or a call.
    Case(CaseState),
    Decide(HospitalCode),
    /// 別の病院に照会: none of those asked will do; this request is withdrawn and the crew
    /// chooses others (those asked are no longer listed).
    AskMore,
    /// The hub took 搬送決定; the packet's SHA-256 (hex) the controller sent.
    Decided(CaseState, String),
    DecideFailed,
    /// ETA −5 minutes.
    EtaMinus5,
    Arrived,
    /// The findings' vitals as a new set (after 搬送決定).
    SendVitals,
    Updated(CaseState, &'static str),
    UpdateFailed,
}

/// What the controller must do.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    FetchHospitals,
    /// 受入照会: the controller adds what the session knows (age band, sex, alerts) and the
    /// unit's call-back number.
    Ask {
        candidates: Vec<HospitalCode>,
        findings: Findings,
    },
    /// Send [`Input::RetryDue`] after this many ms.
    RetryAfter(i64),
    /// Follow the case's events.
    Watch {
        case_id: String,
    },
    /// 搬送決定: the controller builds the packet from the session for this hospital.
    Decide {
        case_id: String,
        hospital: HospitalCode,
        findings: Findings,
    },
    Update {
        case_id: String,
        change: Change,
    },
    /// Withdraw the request at the hub (the crew asks others instead).
    Close {
        case_id: String,
    },
    Record(HandoffEvent),
}

/// One hand-off, from 「搬送先照会」 to 到着 (or the end of the viewing).
#[derive(Clone, Debug)]
pub struct CrewFlow {
    pub step: Step,
    pub findings: Findings,
    pub hospitals: Vec<Hospital>,
    pub selected: Vec<HospitalCode>,
    pub case: Option<CaseState>,
    pub notice: Option<FlowNotice>,
    /// When the crew first tapped 照会送信 (the start of "time to 搬送決定").
    pub first_request_ms: Option<i64>,
    /// When the request now on its way was first tried (the send bound counts from it).
    sending_since_ms: Option<i64>,
    /// Hospitals asked in an earlier request of this flow.
    pub asked_before: Vec<HospitalCode>,
    /// 照会送信 taps that left (requests made).
    pub requests: u32,
    pub decided_at_ms: Option<i64>,
    pub arrived_at_ms: Option<i64>,
    /// Answers already recorded, per (hospital, answered at).
    recorded_answers: Vec<(HospitalCode, i64)>,
    /// A card was read for this flow (the patient's summary is there to draw on).
    pub with_card: bool,
}

impl CrewFlow {
    /// 「搬送先照会」 tapped: the findings screen, and the hospital list fetched at once so
    /// that it is there when the crew moves on.
    pub fn open(with_card: bool) -> (CrewFlow, Vec<Effect>) {
        (
            CrewFlow {
                step: Step::Findings,
                findings: Findings::default(),
                hospitals: vec![],
                selected: vec![],
                case: None,
                notice: None,
                first_request_ms: None,
                sending_since_ms: None,
                asked_before: vec![],
                requests: 0,
                decided_at_ms: None,
                arrived_at_ms: None,
                recorded_answers: vec![],
                with_card,
            },
            vec![Effect::FetchHospitals],
        )
    }

    /// ms from the first request to 搬送決定.
    pub fn time_to_decision_ms(&self) -> Option<i64> {
        Some(self.decided_at_ms? - self.first_request_ms?)
    }

    fn case_id(&self) -> Option<String> {
        self.case.as_ref().map(|c| c.case_id.clone())
    }

    /// Mark the hospitals the summary's 受診歴 names as かかりつけ (by name, as the answer
    /// gives names only), and list them first.
    pub fn mark_regular(&mut self, visited: &[String]) {
        for h in &mut self.hospitals {
            h.regular = visited.iter().any(|v| v.trim() == h.name.trim());
        }
        self.hospitals.sort_by_key(|h| !h.regular);
    }

    pub fn handle(&mut self, now_ms: i64, input: Input) -> Vec<Effect> {
        let mut fx = vec![];
        let editing = matches!(self.step, Step::Findings | Step::Decided);
        match input {
            Input::Complaint(c) if self.step == Step::Findings => {
                self.findings.complaint = Some(c);
                self.clear_notice_of(&[FlowNotice::NeedComplaint]);
            }
            Input::ToggleModifier(m) if self.step == Step::Findings => {
                let list = &mut self.findings.modifiers;
                if let Some(i) = list.iter().position(|x| *x == m) {
                    list.remove(i);
                } else {
                    list.push(m);
                }
            }
            Input::StepJcs(dir) if editing => {
                let steps = Jcs::STEPS;
                let at = self
                    .findings
                    .vitals
                    .jcs
                    .and_then(|j| steps.iter().position(|s| *s == j.value()));
                self.findings.vitals.jcs = match (at, dir > 0) {
                    (None, true) => Jcs::new(steps[0]),
                    (None, false) => None,
                    (Some(0), false) => None,
                    (Some(i), true) => Jcs::new(steps[(i + 1).min(steps.len() - 1)]),
                    (Some(i), false) => Jcs::new(steps[i - 1]),
                };
            }
            Input::StepVital(field, dir) if editing => {
                let (start, step) = field.start_and_step();
                let value = match field.get(&self.findings.vitals) {
                    None => start,
                    Some(v) if dir > 0 => v.saturating_add(step),
                    Some(v) => v.saturating_sub(step),
                };
                return self.handle(now_ms, Input::SetVital(field, Some(value)));
            }
            Input::SetVital(field, value) if editing => {
                let mut v = self.findings.vitals.clone();
                field.set(&mut v, value);
                match v.check() {
                    Ok(()) => {
                        self.findings.vitals = v;
                        self.notice = None;
                    }
                    Err(e) => self.notice = Some(FlowNotice::VitalRefused(e)),
                }
            }
            Input::StepOnset(dir) if self.step == Step::Findings => {
                self.findings.onset_minutes_ago = step_in(
                    &ONSET_STEPS,
                    self.findings.onset_minutes_ago.unwrap_or(0),
                    dir,
                )
                .filter(|m| *m > 0);
            }
            Input::StepEta(dir) if self.step == Step::Findings => {
                self.findings.eta_minutes = match self.findings.eta_minutes {
                    None if dir > 0 => Some(ETA_STEPS[0]),
                    None => None,
                    Some(m) if dir < 0 && m <= ETA_STEPS[0] => None,
                    Some(m) => step_in(&ETA_STEPS, m, dir),
                };
            }
            Input::StepAgeBand(dir) if self.step == Step::Findings => {
                self.findings.age_band = match (self.findings.age_band, dir > 0) {
                    (None, true) => Some(AgeBand { from: 0 }),
                    (None, false) => None,
                    (Some(AgeBand { from: 0 }), false) => None,
                    (Some(b), true) => Some(AgeBand {
                        from: (b.from + 10).min(90),
                    }),
                    (Some(b), false) => Some(AgeBand { from: b.from - 10 }),
                };
            }
            Input::CycleSex if self.step == Step::Findings => {
                self.findings.sex = match self.findings.sex {
                    None => Some(Sex::Male),
                    Some(Sex::Male) => Some(Sex::Female),
                    Some(Sex::Female) => Some(Sex::NotKnown),
                    Some(Sex::NotKnown) => None,
                };
            }
            Input::ToHospitals if self.step == Step::Findings => {
                if self.findings.complaint.is_none() {
                    self.notice = Some(FlowNotice::NeedComplaint);
                } else {
                    self.step = Step::Choosing;
                    self.notice = None;
                    if self.hospitals.is_empty() {
                        fx.push(Effect::FetchHospitals);
                    }
                }
            }
            Input::BackToFindings if self.step == Step::Choosing => {
                self.step = Step::Findings;
                self.notice = None;
            }
            Input::HospitalsLoaded(list) => {
                let asked = &self.asked_before;
                self.hospitals = list
                    .into_iter()
                    .filter(|h| !asked.contains(&h.code))
                    .collect();
                self.clear_notice_of(&[FlowNotice::HospitalsUnavailable]);
            }
            Input::HospitalsFailed if self.step == Step::Choosing => {
                self.notice = Some(FlowNotice::HospitalsUnavailable);
            }
            Input::ToggleHospital(code) if self.step == Step::Choosing => {
                if let Some(i) = self.selected.iter().position(|c| *c == code) {
                    self.selected.remove(i);
                    self.notice = None;
                } else if self.selected.len() >= MAX_CANDIDATES {
                    self.notice = Some(FlowNotice::TooManyHospitals);
                } else if self.hospitals.iter().any(|h| h.code == code) {
                    self.selected.push(code);
                    self.notice = None;
                }
            }
            Input::Send if self.step == Step::Choosing => {
                if self.selected.is_empty() {
                    self.notice = Some(FlowNotice::NoHospitalChosen);
                } else {
                    self.step = Step::Sending;
                    self.first_request_ms.get_or_insert(now_ms);
                    self.sending_since_ms = Some(now_ms);
                    self.notice = None;
                    fx.push(self.ask());
                }
            }
            Input::Sent(state) if self.step == Step::Sending => {
                self.step = Step::Asking;
                self.requests += 1;
                self.sending_since_ms = None;
                self.notice = None;
                fx.push(Effect::Record(HandoffEvent::Asked {
                    case_id: state.case_id.clone(),
                    hospitals: state.candidates.iter().map(|c| c.code.0.clone()).collect(),
                }));
                fx.push(Effect::Watch {
                    case_id: state.case_id.clone(),
                });
                self.absorb(state, &mut fx);
            }
            Input::SendFailed if self.step == Step::Sending => {
                let first = self.sending_since_ms.unwrap_or(now_ms);
                if now_ms - first + RETRY_EVERY_MS <= SEND_BOUND_MS {
                    self.notice = Some(FlowNotice::SendFailed);
                    fx.push(Effect::RetryAfter(RETRY_EVERY_MS));
                } else {
                    self.give_up(&mut fx);
                }
            }
            Input::RetryDue if self.step == Step::Sending => {
                let first = self.sending_since_ms.unwrap_or(now_ms);
                if now_ms - first <= SEND_BOUND_MS {
                    fx.push(self.ask());
                } else {
                    self.give_up(&mut fx);
                }
            }
            Input::Case(state)
                if self
                    .case
                    .as_ref()
                    .is_some_and(|c| c.case_id == state.case_id) =>
            {
                self.absorb(state, &mut fx)
            }
            Input::AskMore if self.step == Step::Asking => {
                if let Some(case) = self.case.take() {
                    fx.push(Effect::Record(HandoffEvent::Withdrawn {
                        case_id: case.case_id.clone(),
                    }));
                    fx.push(Effect::Close {
                        case_id: case.case_id.clone(),
                    });
                    self.asked_before
                        .extend(case.candidates.iter().map(|c| c.code.clone()));
                }
                let asked = &self.asked_before;
                self.hospitals.retain(|h| !asked.contains(&h.code));
                self.selected.clear();
                self.step = Step::Choosing;
                self.notice = None;
            }
            Input::Decide(code) if self.step == Step::Asking => {
                let accepted = self
                    .case
                    .as_ref()
                    .and_then(|c| c.candidates.iter().find(|x| x.code == code))
                    .and_then(|c| c.answer.as_ref())
                    .is_some_and(|a| a.answer == Answer::Accept);
                match (accepted, self.case_id()) {
                    (true, Some(case_id)) => {
                        self.step = Step::Deciding;
                        self.decided_at_ms = Some(now_ms);
                        self.notice = None;
                        fx.push(Effect::Decide {
                            case_id,
                            hospital: code,
                            findings: self.findings.clone(),
                        });
                    }
                    _ => self.notice = Some(FlowNotice::NotAccepted),
                }
            }
            Input::Decided(state, sha256) if self.step == Step::Deciding => {
                self.step = Step::Decided;
                if let Some(hospital) = state.chosen.clone() {
                    fx.push(Effect::Record(HandoffEvent::Decided {
                        case_id: state.case_id.clone(),
                        hospital: hospital.0,
                        packet_version: state.version,
                        packet_sha256: sha256,
                    }));
                }
                self.absorb(state, &mut fx);
            }
            Input::DecideFailed if self.step == Step::Deciding => {
                self.step = Step::Asking;
                self.decided_at_ms = None;
                self.notice = Some(FlowNotice::DecideFailed);
            }
            Input::EtaMinus5 if self.step == Step::Decided => {
                let eta = self.findings.eta_minutes.unwrap_or(5).saturating_sub(5);
                self.findings.eta_minutes = Some(eta);
                if let Some(case_id) = self.case_id() {
                    fx.push(Effect::Update {
                        case_id,
                        change: Change::Eta { minutes: eta },
                    });
                }
            }
            Input::Arrived if self.step == Step::Decided => {
                if let Some(case_id) = self.case_id() {
                    fx.push(Effect::Update {
                        case_id,
                        change: Change::Arrived,
                    });
                }
            }
            Input::SendVitals if self.step == Step::Decided => {
                if let Some(case_id) = self.case_id() {
                    fx.push(Effect::Update {
                        case_id,
                        change: Change::Vitals {
                            vitals: self.findings.vitals.clone(),
                        },
                    });
                }
            }
            Input::Updated(state, change) => {
                fx.push(Effect::Record(HandoffEvent::Updated {
                    case_id: state.case_id.clone(),
                    version: state.version,
                    change: change.to_string(),
                }));
                if state.stage == super::Stage::Arrived {
                    self.step = Step::Arrived;
                    self.arrived_at_ms = Some(now_ms);
                }
                self.notice = None;
                self.absorb(state, &mut fx);
            }
            Input::UpdateFailed => self.notice = Some(FlowNotice::UpdateFailed),
            _ => {}
        }
        fx
    }

    /// What to record when the flow ends before 搬送決定 (the hub withdraws the request).
    pub fn withdrawn(&self) -> Option<HandoffEvent> {
        match self.step {
            Step::Asking | Step::Deciding => self
                .case_id()
                .map(|case_id| HandoffEvent::Withdrawn { case_id }),
            _ => None,
        }
    }

    fn ask(&self) -> Effect {
        Effect::Ask {
            candidates: self.selected.clone(),
            findings: self.findings.clone(),
        }
    }

    fn give_up(&mut self, fx: &mut Vec<Effect>) {
        self.step = Step::Choosing;
        self.notice = Some(FlowNotice::GaveUp);
        fx.push(Effect::Record(HandoffEvent::NotSent {
            hospitals: self.selected.iter().map(|c| c.0.clone()).collect(),
        }));
        self.sending_since_ms = None;
        if self.requests == 0 {
            self.first_request_ms = None;
        }
    }

    fn clear_notice_of(&mut self, kinds: &[FlowNotice]) {
        if self.notice.as_ref().is_some_and(|n| kinds.contains(n)) {
            self.notice = None;
        }
    }

    /// Take a case view: record each answer once, flag a late one.
    fn absorb(&mut self, state: CaseState, fx: &mut Vec<Effect>) {
        for c in &state.candidates {
            let Some(a) = &c.answer else { continue };
            let key = (c.code.clone(), a.at_ms);
            if self.recorded_answers.contains(&key) {
                continue;
            }
            self.recorded_answers.push(key);
            // the hub marks an answer given after 搬送決定 as late, by its own clock (the
            // tablet's may differ); a late answer is shown and recorded, never decides
            let late = a.late;
            if late {
                self.notice = Some(FlowNotice::LateAnswer);
            }
            fx.push(Effect::Record(HandoffEvent::Answered {
                case_id: state.case_id.clone(),
                hospital: c.code.0.clone(),
                answer: answer_code(&a.answer),
                answered_at_ms: a.at_ms,
                late,
            }));
        }
        self.case = Some(state);
    }

    /// The request's disclosure from the findings and what the session knows.
    pub fn disclosure(findings: &Findings, known: &Known, callback: &str) -> Disclosure {
        Disclosure {
            age_band: known.age_band.or(findings.age_band),
            sex: known.sex.or(findings.sex).unwrap_or(Sex::NotKnown),
            complaint: findings.complaint.unwrap_or(Complaint::Other),
            modifiers: findings.modifiers.clone(),
            onset_minutes_ago: findings.onset_minutes_ago,
            vitals: findings.vitals.clone(),
            alerts: known.alerts.clone(),
            eta_minutes: findings.eta_minutes,
            callback: callback.to_string(),
        }
    }
}

/// What a viewing gave the flow: nothing that names the patient.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Known {
    pub age_band: Option<AgeBand>,
    pub sex: Option<Sex>,
    pub alerts: Vec<AlertClaim>,
}

/// An answer as a record names it: `accept`, `decline:beds_full`, `call_us`.
pub fn answer_code(a: &Answer) -> String {
    match a {
        Answer::Accept => "accept".into(),
        Answer::Decline { reason } => format!("decline:{}", reason.code()),
        Answer::CallUs { .. } => "call_us".into(),
    }
}

/// The next step of a scale from `now` in direction `dir` (the nearest step when `now` is
/// between two).
fn step_in(steps: &[u16], now: u16, dir: i8) -> Option<u16> {
    let i = steps
        .iter()
        .position(|s| *s >= now)
        .unwrap_or(steps.len() - 1);
    let j = if dir > 0 {
        if steps[i] > now {
            i
        } else {
            (i + 1).min(steps.len() - 1)
        }
    } else {
        i.saturating_sub(1)
    };
    steps.get(j).copied()
}

#[cfg(test)]
mod tests;
