//! Drills (訓練): scripted scenarios run through the real session state machine against the
//! simulator and a virtual card, producing a debrief report with the timeline.
//!
//! A scenario is a TOML file (see `scenarios/`): the patient, the crew's steps, and the path
//! of screens the trainer expects. [`run`] plays the steps through the app controller in
//! the [`world::TrainingWorld`]: the simulator on loopback, the virtual reader, a training
//! store.
//!
//! What is inside: scenario files (`src/drill/scenarios/*.toml`, 18; `carrier` = card,
//! android, ios or ios-locked), `drill::world::TrainingWorld` (the simulator served on
//! loopback with the dev PKI generated into the training dir, a `DelayProxy` as the
//! trainer's line, the `VirtualReader`, the training roster and store), a runner that plays
//! the steps as `app::Command`s through the same controller the app uses; the debrief
//! report (JSON + HTML; the copy kept in the data dir has clinical alerts redacted)

mod debrief;
pub mod world;

pub use debrief::{render_html, render_text};

use crate::app::view::ViewModel;
use crate::app::{Command, Controller, HandoffCommand};
use crate::domain::{
    AuditAction, ConsentDecision, CoverageStatus, IdentityCheck, RecordBody, Timestamp,
    UnobtainableReason,
};
use crate::handoff::crew::Input;
use crate::handoff::{Complaint, HospitalCode};
use crate::sim::SimError;
use crate::sim::proxy::LinkState;
use crate::store::StoreError;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use world::{TRAINING_CREW, TRAINING_CREW_PIN, TrainingWorld};

#[derive(Debug, Error)]
pub enum DrillError {
    #[error("unknown scenario {0:?} (see `mynakyukyu drill --list`)")]
    UnknownScenario(String),
    #[error("scenario {name}: {source}")]
    BadScenario {
        name: String,
        source: toml::de::Error,
    },
    #[error("scenario {0}: no patient matches {1:?}")]
    UnknownPatient(String, String),
    #[error(transparent)]
    Sim(#[from] SimError),
    #[error("training set-up: {0}")]
    Setup(String),
    #[error("training store: {0}")]
    Store(#[from] StoreError),
}

/// The PIN of every drill card (and the smartphone PIN of every drill phone).
pub const DRILL_PIN: &str = "1234";

/// What the patient holds out: the card, or a phone with the same credential.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Carrier {
    #[default]
    Card,
    /// An Android phone: the smartphone PIN comes first.
    Android,
    /// An iPhone its owner unlocked before holding it out.
    Ios,
    /// An iPhone not unlocked by its owner.
    IosLocked,
}

/// One thing the crew (or the road) does in a drill.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    SignIn,
    PlaceCard,
    /// The patient enters a wrong PIN (photo check impossible).
    PinWrong,
    /// The patient enters the right PIN; on the last try the crew confirms first. With a
    /// phone on the reader, the smartphone PIN.
    PinRight,
    /// The patient cannot type the phone's PIN (unconscious).
    PatientCannotEnter,
    /// The owner unlocks the iPhone (Face ID / Touch ID) before holding it out again.
    OwnerUnlocksPhone,
    /// The card is placed and pulled away before the read completes.
    PlaceCardRemovedMidRead,
    ConfirmPhoto,
    ConsentVerbal,
    ConsentUnobtainable,
    ConsentRefused,
    /// 訂正: the crew corrects the consent decision while viewing.
    CorrectConsentVerbal,
    CorrectConsentRefused,
    /// 傷病者用説明書を渡した.
    ExplanationHanded,
    /// The line drops while the next emergency-info inquiry is in flight.
    LineDropDuringInquiry,
    LineDrop,
    LineRestore,
    ViewFull,
    BackToSummary,
    End,
    Idle,
    /// 「搬送先照会」 (from the summary, or from Ready without a card).
    HandoffOpen,
    ComplaintChestPain,
    ComplaintAlteredConsciousness,
    ComplaintDyspnoea,
    /// A vitals set on the steppers: JCS 10, BP 160, HR 100, SpO₂ 95 (with the screen
    /// opened and closed).
    HandoffVitals,
    /// ETA 10 minutes (four taps up its scale).
    #[serde(rename = "eta-10")]
    Eta10,
    /// 病院を選ぶ.
    ToHospitals,
    /// The first three hospitals listed.
    ChooseThree,
    /// 照会送信.
    SendRequest,
    /// The crew waits (up to 20 s) for the first 受入可.
    WaitAccept,
    /// 搬送決定 on the first hospital that accepted.
    Decide,
    /// ETA −5.
    #[serde(rename = "eta-minus-5")]
    EtaMinus5,
    Arrived,
    /// 終了 on the hand-off screen.
    HandoffEnd,
}

/// The vitals a drill enters: (field, taps on +, taps on −).
const DRILL_VITALS: [(crate::handoff::crew::VitalField, usize, usize); 4] = [
    (crate::handoff::crew::VitalField::BpSystolic, 5, 0),
    (crate::handoff::crew::VitalField::HeartRate, 5, 0),
    (crate::handoff::crew::VitalField::Spo2, 1, 1),
    (crate::handoff::crew::VitalField::RespiratoryRate, 3, 0),
];
/// JCS 10: 0, 1, 2, 3, 10.
const DRILL_JCS_TAPS: usize = 5;

/// A scenario file.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Scenario {
    #[serde(skip_deserializing)]
    pub name: String,
    pub title: String,
    /// A patient id ("P0020") or a patient scenario name ("elderly-warfarin"); empty for
    /// a drill without a card.
    #[serde(default)]
    pub patient: String,
    /// What the patient holds out (default: the card).
    #[serde(default)]
    pub carrier: Carrier,
    pub steps: Vec<Step>,
    pub expected_path: Vec<String>,
    #[serde(default)]
    pub expected_alerts: Vec<String>,
    #[serde(default)]
    pub expected_coverage: Option<String>,
}

const BUILT_IN: [(&str, &str); 18] = [
    (
        "unconscious-warfarin",
        include_str!("scenarios/unconscious-warfarin.toml"),
    ),
    (
        "diabetic-verbal",
        include_str!("scenarios/diabetic-verbal.toml"),
    ),
    (
        "phone-android",
        include_str!("scenarios/phone-android.toml"),
    ),
    (
        "phone-unconscious",
        include_str!("scenarios/phone-unconscious.toml"),
    ),
    ("phone-iphone", include_str!("scenarios/phone-iphone.toml")),
    ("refusal", include_str!("scenarios/refusal.toml")),
    ("opt-out", include_str!("scenarios/opt-out.toml")),
    (
        "invalid-coverage",
        include_str!("scenarios/invalid-coverage.toml"),
    ),
    (
        "card-removed-mid-read",
        include_str!("scenarios/card-removed-mid-read.toml"),
    ),
    (
        "tunnel-line-drop",
        include_str!("scenarios/tunnel-line-drop.toml"),
    ),
    ("revoked-card", include_str!("scenarios/revoked-card.toml")),
    ("dialysis", include_str!("scenarios/dialysis.toml")),
    ("pin-fallback", include_str!("scenarios/pin-fallback.toml")),
    (
        "public-assistance",
        include_str!("scenarios/public-assistance.toml"),
    ),
    (
        "consent-correction",
        include_str!("scenarios/consent-correction.toml"),
    ),
    (
        "public-assistance-lapsed",
        include_str!("scenarios/public-assistance-lapsed.toml"),
    ),
    (
        "handoff-accept",
        include_str!("scenarios/handoff-accept.toml"),
    ),
    (
        "handoff-no-card",
        include_str!("scenarios/handoff-no-card.toml"),
    ),
];

/// The names of the built-in scenarios, in library order.
pub fn scenario_names() -> Vec<&'static str> {
    BUILT_IN.iter().map(|(name, _)| *name).collect()
}

/// Load a built-in scenario by name.
pub fn scenario(name: &str) -> Result<Scenario, DrillError> {
    let (_, text) = BUILT_IN
        .iter()
        .find(|(n, _)| *n == name)
        .ok_or_else(|| DrillError::UnknownScenario(name.to_string()))?;
    parse_scenario(name, text)
}

/// A scenario file's text, named `name` (the fuzz target `scenario_toml` feeds it anything).
pub fn parse_scenario(name: &str, text: &str) -> Result<Scenario, DrillError> {
    let mut s: Scenario = toml::from_str(text).map_err(|source| DrillError::BadScenario {
        name: name.to_string(),
        source,
    })?;
    s.name = name.to_string();
    Ok(s)
}

/// One line of the debrief timeline.
#[derive(Clone, Debug, Serialize)]
pub struct TimelineEntry {
    /// Milliseconds since the drill started.
    pub at_ms: f64,
    /// The step or event that happened.
    pub what: String,
    /// The screen after it.
    pub phase: &'static str,
    /// The message shown, in English (the screen shows it in Japanese).
    pub notice: Option<&'static str>,
}

/// How long one step took, and the screen it left.
#[derive(Clone, Debug, Serialize)]
pub struct StepTiming {
    pub step: String,
    pub ms: f64,
    pub screen: &'static str,
}

/// An audit entry as the debrief shows it (no patient data).
#[derive(Clone, Debug, Serialize)]
pub struct AuditLine {
    pub action: String,
    pub consent: Option<&'static str>,
    pub identity_check: Option<IdentityCheck>,
    /// The card or a phone.
    pub token: Option<&'static str>,
}

/// The debrief report of one drill.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub scenario: String,
    pub title: String,
    pub training: bool,
    pub patient_id: String,
    pub started_at: String,
    pub timeline: Vec<TimelineEntry>,
    /// How long each step took (machine time; the crew's taps are instantaneous here).
    pub steps: Vec<StepTiming>,
    pub path: Vec<&'static str>,
    pub expected_path: Vec<String>,
    pub path_matches: bool,
    pub alerts: Vec<String>,
    pub expected_alerts: Vec<String>,
    pub coverage_status: Option<CoverageStatus>,
    pub consent_records: Vec<ConsentDecision>,
    /// 訂正 records: (from, to).
    pub consent_corrections: Vec<(ConsentDecision, ConsentDecision)>,
    /// 傷病者用説明書 records: whether it was handed.
    pub explanations: Vec<bool>,
    pub audit: Vec<AuditLine>,
    /// The hand-off's records (hospitals asked, answers, 搬送決定, updates): no clinical
    /// content.
    pub handoff: Vec<crate::domain::HandoffEvent>,
    /// From the first 受入照会 to 搬送決定 (ms), when the drill reached it.
    pub handoff_to_decision_ms: Option<f64>,
    /// The crew's taps from the card (or 「搬送先照会」 without one) to 搬送決定.
    pub taps_to_decision: Option<usize>,
    pub server_inquiries: usize,
    /// Where the drill's requests went (always loopback).
    pub endpoint: String,
    pub rejected_events: Vec<String>,
    pub errors_met: Vec<&'static str>,
    pub taps: usize,
    /// Records appended to the training store in this drill, and store failures met.
    pub stored_records: usize,
    pub store_errors: Vec<String>,
    pub total_ms: f64,
    pub passed: bool,
}

/// Runs a scenario's steps as commands to the app controller, as the crew and the trainer
/// would, and collects the debrief.
struct Runner<'w> {
    world: &'w TrainingWorld,
    controller: Controller,
    patient_id: String,
    carrier: Carrier,
    drop_before_next_consent: bool,
    path: Vec<&'static str>,
    seen_journal: usize,
    alerts: Vec<String>,
    coverage_status: Option<CoverageStatus>,
    /// From the first 受入照会 to 搬送決定, as the flow measured it.
    decision_ms: Option<i64>,
}

impl Runner<'_> {
    /// Follow the journal: the screens passed and the events the session refused.
    fn follow(&mut self, rejected: &mut Vec<String>) {
        for e in &self.controller.journal()[self.seen_journal..] {
            if e.what.contains(" not applied: ") {
                rejected.push(e.what.clone());
            } else if e.event && self.path.last() != Some(&e.phase) {
                self.path.push(e.phase);
            }
        }
        self.seen_journal = self.controller.journal().len();
        if let Some((Some(ms), _, _)) = self.controller.handoff_figures() {
            self.decision_ms = Some(ms);
        }
        if let Some(c) = self.controller.session().coverage() {
            self.coverage_status = Some(c.status);
        }
        let vm = self.controller.view();
        if !vm.alerts.is_empty() {
            self.alerts = vm.alerts;
        }
    }

    async fn step(&mut self, step: Step) -> Result<(), DrillError> {
        let command = match step {
            Step::SignIn => Command::SignIn {
                crew_id: TRAINING_CREW.into(),
                pin: TRAINING_CREW_PIN.into(),
            },
            Step::PlaceCard | Step::PlaceCardRemovedMidRead => {
                self.world.place(&self.patient_id, self.carrier)?;
                if step == Step::PlaceCardRemovedMidRead {
                    // the card leaves after the SELECTs, in the middle of READ BINARY
                    self.world.reader.remove_after_apdus(3);
                }
                Command::CardPlaced
            }
            Step::ConfirmPhoto => Command::ConfirmPhoto,
            Step::PatientCannotEnter => Command::PatientCannotEnterPin,
            Step::OwnerUnlocksPhone => {
                // the phone leaves the reader while its owner looks at it
                self.world.reader.remove();
                if self.carrier == Carrier::IosLocked {
                    self.carrier = Carrier::Ios;
                }
                self.controller.note("patient: unlocks the iPhone".into());
                return Ok(());
            }
            Step::PinWrong | Step::PinRight => {
                let pin = if step == Step::PinRight {
                    DRILL_PIN
                } else {
                    "0000"
                };
                self.controller
                    .handle(Command::EnterPin {
                        pin: pin.into(),
                        confirm_last_try: false,
                    })
                    .await;
                if !self.controller.view().pin.confirm_last_try {
                    return Ok(());
                }
                // one try left: the crew reads the warning and confirms the last try
                Command::EnterPin {
                    pin: pin.into(),
                    confirm_last_try: true,
                }
            }
            Step::ConsentVerbal | Step::ConsentUnobtainable | Step::ConsentRefused => {
                if std::mem::take(&mut self.drop_before_next_consent) {
                    // the request leaves as the ambulance enters the tunnel
                    self.world.set_line(LinkState::Down);
                    self.controller.note("trainer: line dropped".into());
                }
                match step {
                    Step::ConsentVerbal => Command::Consent(ConsentDecision::Verbal, None),
                    // the drills' unconscious patient: the reason the crew would choose
                    Step::ConsentUnobtainable => Command::Consent(
                        ConsentDecision::Unobtainable,
                        Some(UnobtainableReason::Unconscious),
                    ),
                    _ => Command::Consent(ConsentDecision::Refused, None),
                }
            }
            Step::LineDropDuringInquiry => {
                self.drop_before_next_consent = true;
                return Ok(());
            }
            Step::LineDrop => {
                self.world.set_line(LinkState::Down);
                Command::LinkLost
            }
            Step::LineRestore => {
                self.world.set_line(LinkState::Up);
                Command::LinkRestored
            }
            Step::CorrectConsentVerbal => Command::CorrectConsent(ConsentDecision::Verbal, None),
            Step::CorrectConsentRefused => Command::CorrectConsent(ConsentDecision::Refused, None),
            Step::ExplanationHanded => Command::ExplanationHanded,
            Step::ViewFull => Command::ViewFullData,
            Step::BackToSummary => Command::BackToSummary,
            Step::End => Command::EndViewing,
            Step::Idle => Command::IdleTimeout,
            Step::HandoffOpen => Command::Handoff(HandoffCommand::Open),
            Step::ComplaintChestPain => tap(Input::Complaint(Complaint::ChestPain)),
            Step::ComplaintAlteredConsciousness => {
                tap(Input::Complaint(Complaint::AlteredConsciousness))
            }
            Step::ComplaintDyspnoea => tap(Input::Complaint(Complaint::Dyspnoea)),
            Step::HandoffVitals => {
                self.controller
                    .handle(Command::Handoff(HandoffCommand::Vitals(true)))
                    .await;
                for _ in 0..DRILL_JCS_TAPS {
                    self.controller.handle(tap(Input::StepJcs(1))).await;
                }
                for (field, up, down) in DRILL_VITALS {
                    for _ in 0..up {
                        self.controller
                            .handle(tap(Input::StepVital(field, 1)))
                            .await;
                    }
                    for _ in 0..down {
                        self.controller
                            .handle(tap(Input::StepVital(field, -1)))
                            .await;
                    }
                }
                Command::Handoff(HandoffCommand::Vitals(false))
            }
            Step::Eta10 => {
                for _ in 0..3 {
                    self.controller.handle(tap(Input::StepEta(1))).await;
                }
                tap(Input::StepEta(1))
            }
            Step::ToHospitals => tap(Input::ToHospitals),
            Step::ChooseThree => {
                let codes: Vec<String> = self
                    .controller
                    .view()
                    .handoff
                    .hospitals
                    .iter()
                    .take(3)
                    .map(|h| h.code.clone())
                    .collect();
                for code in codes {
                    self.controller
                        .handle(tap(Input::ToggleHospital(HospitalCode(code))))
                        .await;
                }
                return Ok(());
            }
            Step::SendRequest => tap(Input::Send),
            Step::WaitAccept => {
                let accepted = self
                    .controller
                    .wait_for(std::time::Duration::from_secs(20), |vm| {
                        vm.handoff.candidates.iter().any(|c| c.can_decide)
                    })
                    .await;
                self.controller.note(format!(
                    "crew: waited for 受入可 ({})",
                    if accepted { "came" } else { "none in 20 s" }
                ));
                return Ok(());
            }
            Step::Decide => {
                let first = self
                    .controller
                    .view()
                    .handoff
                    .candidates
                    .iter()
                    .find(|c| c.can_decide)
                    .map(|c| c.code.clone())
                    .unwrap_or_default();
                tap(Input::Decide(HospitalCode(first)))
            }
            Step::EtaMinus5 => tap(Input::EtaMinus5),
            Step::Arrived => tap(Input::Arrived),
            Step::HandoffEnd => Command::Handoff(HandoffCommand::End),
        };
        self.controller.handle(command).await;
        Ok(())
    }
}

fn tap(input: Input) -> Command {
    Command::Handoff(HandoffCommand::Tap(input))
}

/// The crew's taps in a step.
fn taps_of(step: Step) -> usize {
    let vitals: usize = DRILL_VITALS.iter().map(|(_, up, down)| up + down).sum();
    match step {
        Step::HandoffVitals => 2 + DRILL_JCS_TAPS + vitals,
        Step::Eta10 => 4,
        Step::ChooseThree => 3,
        Step::WaitAccept => 0,
        Step::HandoffOpen
        | Step::ComplaintChestPain
        | Step::ComplaintAlteredConsciousness
        | Step::ComplaintDyspnoea
        | Step::ToHospitals
        | Step::SendRequest
        | Step::Decide
        | Step::EtaMinus5
        | Step::Arrived
        | Step::HandoffEnd => 1,
        s => usize::from(is_tap(s)),
    }
}

fn is_tap(step: Step) -> bool {
    matches!(
        step,
        Step::ConfirmPhoto
            | Step::PinWrong
            | Step::PinRight
            | Step::PatientCannotEnter
            | Step::ConsentVerbal
            | Step::ConsentUnobtainable
            | Step::ConsentRefused
            | Step::CorrectConsentVerbal
            | Step::CorrectConsentRefused
            | Step::ExplanationHanded
            | Step::ViewFull
            | Step::BackToSummary
            | Step::End
    )
}

/// Run a scenario end to end in the training world, through the app controller, the
/// eligibility client and the simulator on loopback. `observe` sees the screen after
/// every step (the headless screenshots).
pub async fn run(
    scenario: &Scenario,
    world: &TrainingWorld,
    observe: &mut dyn FnMut(usize, &str, &ViewModel),
) -> Result<Report, DrillError> {
    let patient_id = if scenario.patient.is_empty() {
        String::new()
    } else {
        world.patient_id(&scenario.patient).ok_or_else(|| {
            DrillError::UnknownPatient(scenario.name.clone(), scenario.patient.clone())
        })?
    };
    world.set_line(LinkState::Up);
    let inquiries_before = world.server.inquiry_count();
    let (mut controller, _views) = Controller::new(world.ports()?, world.settings());
    controller.keep_records_for_debrief();
    let mut runner = Runner {
        world,
        controller,
        patient_id: patient_id.clone(),
        carrier: scenario.carrier,
        drop_before_next_consent: false,
        path: vec![],
        seen_journal: 0,
        alerts: vec![],
        coverage_status: None,
        decision_ms: None,
    };
    let started_at = Timestamp::now().to_rfc3339();
    let mut rejected = vec![];
    let mut steps = vec![];
    observe(0, "start", &runner.controller.view());
    for (i, step) in scenario.steps.iter().enumerate() {
        let started = runner.controller.elapsed_ms();
        runner
            .controller
            .note(format!("step: {}", step_name(*step)));
        runner.step(*step).await?;
        runner.follow(&mut rejected);
        let vm = runner.controller.view();
        steps.push(StepTiming {
            step: step_name(*step),
            ms: runner.controller.elapsed_ms() - started,
            screen: vm.screen.name(),
        });
        observe(i + 1, &step_name(*step), &vm);
    }
    world.reader.remove();
    world.set_line(LinkState::Up);
    let c = &runner.controller;
    let total_ms = c.elapsed_ms();
    let timeline: Vec<TimelineEntry> = c
        .journal()
        .iter()
        .map(|e| TimelineEntry {
            at_ms: e.at_ms,
            what: e.what.clone(),
            phase: e.phase,
            notice: e.notice,
        })
        .collect();
    let mut errors_met: Vec<&'static str> = vec![];
    for n in c.journal().iter().filter_map(|e| e.notice) {
        if errors_met.last() != Some(&n) {
            errors_met.push(n);
        }
    }
    let path_matches = runner.path == scenario.expected_path;
    let alerts_match = scenario
        .expected_alerts
        .iter()
        .all(|a| runner.alerts.contains(a));
    let coverage_matches = scenario.expected_coverage.as_deref().is_none_or(|want| {
        runner
            .coverage_status
            .and_then(|s| serde_json::to_value(s).ok())
            .and_then(|v| v.as_str().map(|s| s == want))
            .unwrap_or(false)
    });
    let mut consent_records = vec![];
    let mut consent_corrections = vec![];
    let mut explanations = vec![];
    let mut audit = vec![];
    let mut handoff = vec![];
    for body in c.recorded() {
        match body {
            RecordBody::Consent(r) => consent_records.push(r.decision),
            RecordBody::ConsentCorrection(r) => consent_corrections.push((r.from, r.to)),
            RecordBody::Explanation(r) => explanations.push(r.handed),
            RecordBody::Audit(a) => audit.push(AuditLine {
                action: match a.action {
                    AuditAction::View { kind } => format!("view {}", kind.label_ja()),
                    other => format!("{other:?}"),
                },
                consent: a.consent.map(|c| c.label_ja()),
                identity_check: a.identity_check,
                token: a.token.map(|t| t.name()),
            }),
            RecordBody::Handoff(x) => handoff.push(x.event.clone()),
        }
    }
    let store_errors = c.store_errors().to_vec();
    let taps: usize = scenario.steps.iter().map(|s| taps_of(*s)).sum();
    // from the card (or, without one, from 「搬送先照会」) to 搬送決定
    let from = scenario
        .steps
        .iter()
        .position(|s| *s == Step::PlaceCard)
        .or_else(|| scenario.steps.iter().position(|s| *s == Step::HandoffOpen));
    let to = scenario.steps.iter().position(|s| *s == Step::Decide);
    let taps_to_decision = from
        .zip(to)
        .map(|(a, b)| scenario.steps[a..=b].iter().map(|s| taps_of(*s)).sum());
    let handoff_to_decision_ms = runner.decision_ms.map(|ms| ms as f64);
    // a drill that taps 搬送決定 passes only when the decision was recorded
    let handoff_decided = !scenario.steps.contains(&Step::Decide)
        || handoff
            .iter()
            .any(|e| matches!(e, crate::domain::HandoffEvent::Decided { .. }));
    Ok(Report {
        scenario: scenario.name.clone(),
        title: scenario.title.clone(),
        training: true,
        patient_id,
        started_at,
        timeline,
        steps,
        path: runner.path.clone(),
        expected_path: scenario.expected_path.clone(),
        path_matches,
        alerts: runner.alerts.clone(),
        expected_alerts: scenario.expected_alerts.clone(),
        coverage_status: runner.coverage_status,
        stored_records: c.recorded().len(),
        consent_records,
        consent_corrections,
        explanations,
        audit,
        handoff,
        handoff_to_decision_ms,
        taps_to_decision,
        server_inquiries: world.server.inquiry_count() - inquiries_before,
        endpoint: format!("127.0.0.1:{}", world.proxy.local_addr.port()),
        rejected_events: rejected,
        errors_met,
        taps,
        passed: path_matches
            && alerts_match
            && coverage_matches
            && handoff_decided
            && store_errors.is_empty(),
        store_errors,
        total_ms,
    })
}

fn step_name(step: Step) -> String {
    serde_json::to_value(step)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
