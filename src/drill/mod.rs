//! Drills (訓練): scripted scenarios run through the real session state machine against the
//! simulator and a virtual card, producing a debrief report with the timeline.
//!
//! A scenario is a TOML file (see `scenarios/`): the patient, the crew's steps, and the path
//! of screens the trainer expects. [`run`] carries out the session's effects in-process.

use crate::card::jpki::{self, PinOutcome};
use crate::card::{CardError, FaceItems, VirtualCard};
use crate::domain::{
    AuditAction, AuditEntry, CardCredential, ConsentDecision, ConsentRecord, CoverageStatus,
    IdentityCheck, IncidentId, OperatorId, RecordBody, TerminalId, Timestamp, UnitId,
};
use crate::session::{CardFailure, Effect, Event, ServiceFailure, Session, Station};
use crate::sim::patients::PatientScenario;
use crate::sim::{InquiryFields, QualificationAnswer, SimError, Simulator};
use crate::store::{Store, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::time::Instant;
use thiserror::Error;

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
    #[error("no card on the reader")]
    NoCard,
    #[error("training store: {0}")]
    Store(#[from] StoreError),
}

/// The PIN of every drill card.
pub const DRILL_PIN: &str = "1234";

/// How long clinical data may stay cached (sealed) for a dead zone.
pub const CACHE_TTL_MS: i64 = 30 * 60 * 1000;

/// One thing the crew (or the road) does in a drill.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    SignIn,
    PlaceCard,
    /// The patient enters a wrong PIN (photo check impossible).
    PinWrong,
    /// The patient enters the right PIN; on the last try the crew confirms first.
    PinRight,
    /// The card is placed and pulled away before the read completes.
    PlaceCardRemovedMidRead,
    ConfirmPhoto,
    ConsentVerbal,
    ConsentUnobtainable,
    ConsentRefused,
    /// The line drops while the next emergency-info inquiry is in flight.
    LineDropDuringInquiry,
    LineDrop,
    LineRestore,
    ViewFull,
    BackToSummary,
    End,
    Idle,
}

/// A scenario file.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Scenario {
    #[serde(skip_deserializing)]
    pub name: String,
    pub title: String,
    /// A patient id ("P0020") or a patient scenario name ("elderly-warfarin").
    pub patient: String,
    pub steps: Vec<Step>,
    pub expected_path: Vec<String>,
    #[serde(default)]
    pub expected_alerts: Vec<String>,
    #[serde(default)]
    pub expected_coverage: Option<String>,
}

const BUILT_IN: [(&str, &str); 10] = [
    (
        "unconscious-warfarin",
        include_str!("scenarios/unconscious-warfarin.toml"),
    ),
    (
        "diabetic-verbal",
        include_str!("scenarios/diabetic-verbal.toml"),
    ),
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

/// An audit entry as the debrief shows it (no patient data).
#[derive(Clone, Debug, Serialize)]
pub struct AuditLine {
    pub action: String,
    pub consent: Option<&'static str>,
    pub identity_check: Option<IdentityCheck>,
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
    pub path: Vec<&'static str>,
    pub expected_path: Vec<String>,
    pub path_matches: bool,
    pub alerts: Vec<String>,
    pub expected_alerts: Vec<String>,
    pub coverage_status: Option<CoverageStatus>,
    pub consent_records: Vec<ConsentDecision>,
    pub audit: Vec<AuditLine>,
    pub server_inquiries: usize,
    pub rejected_events: Vec<String>,
    pub errors_met: Vec<&'static str>,
    pub taps: usize,
    /// Records appended to the training store in this drill, and store failures met.
    pub stored_records: usize,
    pub store_errors: Vec<String>,
    pub total_ms: f64,
    pub passed: bool,
}

/// The in-process world a drill runs in: the simulator, the card on the reader, the line.
struct World<'s> {
    sim: Simulator,
    store: Option<&'s Store>,
    store_errors: Vec<String>,
    patient_id: String,
    /// The virtual card on the in-process reader, read with the real JPKI dialogue.
    card: Option<VirtualCard>,
    remove_mid_read: bool,
    link_up: bool,
    drop_during_inquiry: bool,
    next_incident: u32,
    consent_records: Vec<ConsentRecord>,
    audit: Vec<AuditEntry>,
    alerts: Vec<String>,
    coverage_status: Option<CoverageStatus>,
}

struct Runner<'s> {
    session: Session,
    world: World<'s>,
    start: Instant,
    timeline: Vec<TimelineEntry>,
    path: Vec<&'static str>,
    rejected: Vec<String>,
    errors: Vec<&'static str>,
}

impl Runner<'_> {
    fn elapsed_ms(&self) -> f64 {
        self.start.elapsed().as_secs_f64() * 1e3
    }

    fn note(&mut self, what: String) {
        let phase = self.session.phase();
        if self.path.last() != Some(&phase.name()) {
            self.path.push(phase.name());
        }
        let notice = self.session.notice();
        if let Some(n) = notice
            && self.errors.last() != Some(&n.message_en())
        {
            self.errors.push(n.message_en());
        }
        self.timeline.push(TimelineEntry {
            at_ms: self.elapsed_ms(),
            what,
            phase: phase.name(),
            notice: notice.map(|n| n.message_en()),
        });
    }

    /// Apply an event and carry out every effect it leads to.
    fn apply(&mut self, event: Event) {
        let mut queue = VecDeque::from([event]);
        while let Some(event) = queue.pop_front() {
            let name = event.name();
            match self.session.handle(Timestamp::now(), event) {
                Ok(effects) => {
                    self.note(name.to_string());
                    for effect in effects {
                        queue.extend(self.execute(effect));
                    }
                }
                Err(e) => {
                    tracing::debug!(event = name, error = %e, "event not applied");
                    self.rejected.push(format!("{name}: {e}"));
                }
            }
        }
    }

    fn execute(&mut self, effect: Effect) -> Vec<Event> {
        let w = &mut self.world;
        match effect {
            Effect::ReadCard { incident } => {
                let Some(card) = w.card.as_mut() else {
                    return vec![Event::CardReadFailed {
                        incident,
                        failure: CardFailure::RemovedDuringRead,
                    }];
                };
                if w.remove_mid_read {
                    // the card leaves the reader after the SELECTs, in the middle of READ BINARY
                    w.remove_mid_read = false;
                    card.faults.remove_after_apdus = Some(card.apdu_count() + 3);
                }
                match jpki::read_auth_certificate(card) {
                    Ok(read) => vec![Event::CardReadOk {
                        incident,
                        credential: CardCredential {
                            auth_certificate_der: read.der,
                        },
                    }],
                    Err(e) => {
                        if matches!(e, CardError::Removed) {
                            w.card = None;
                        }
                        vec![Event::CardReadFailed {
                            incident,
                            failure: e.card_failure(),
                        }]
                    }
                }
            }
            Effect::SendQualification(request) => {
                if !w.link_up {
                    return vec![Event::QualificationFailed {
                        incident: request.incident,
                        failure: ServiceFailure::LinkDown,
                    }];
                }
                match w.sim.qualification(&request.credential) {
                    QualificationAnswer::Coverage {
                        qualification,
                        coverage,
                    } => {
                        w.coverage_status = Some(coverage.status);
                        vec![Event::QualificationAnswered {
                            incident: request.incident,
                            qualification,
                            coverage,
                        }]
                    }
                    QualificationAnswer::OptOut => vec![Event::QualificationOptOut {
                        incident: request.incident,
                    }],
                    QualificationAnswer::CardNotAccepted(_) => vec![Event::QualificationFailed {
                        incident: request.incident,
                        failure: ServiceFailure::CardNotAccepted,
                    }],
                }
            }
            Effect::SendEmergencyInquiry(inquiry) => {
                if w.drop_during_inquiry {
                    // The request left, the line died before the answer came back.
                    w.drop_during_inquiry = false;
                    w.link_up = false;
                    return vec![
                        Event::LinkLost,
                        Event::EmergencyInfoFailed {
                            incident: inquiry.incident,
                            failure: ServiceFailure::LinkDown,
                        },
                    ];
                }
                if !w.link_up {
                    return vec![Event::EmergencyInfoFailed {
                        incident: inquiry.incident,
                        failure: ServiceFailure::LinkDown,
                    }];
                }
                let answer = w.sim.emergency_info(
                    Timestamp::now(),
                    InquiryFields {
                        incident: &inquiry.incident,
                        qualification: &inquiry.qualification,
                        consent: inquiry.consent,
                        operator: &inquiry.operator,
                        unit: &inquiry.unit,
                        terminal: &inquiry.terminal,
                    },
                );
                match answer {
                    Ok(info) => {
                        if let Some(store) = w.store {
                            let expires = Timestamp(Timestamp::now().0 + CACHE_TTL_MS);
                            if let Err(e) = store.cache_put(&inquiry.incident, &info, expires) {
                                w.store_errors.push(e.to_string());
                            }
                        }
                        w.alerts = info.summary.alerts().iter().map(|a| a.label_ja()).collect();
                        vec![Event::EmergencyInfoAnswered {
                            incident: inquiry.incident,
                            info,
                        }]
                    }
                    Err(_) => vec![Event::EmergencyInfoFailed {
                        incident: inquiry.incident,
                        failure: ServiceFailure::Protocol,
                    }],
                }
            }
            Effect::AppendConsentRecord(record) => {
                if let Some(store) = w.store
                    && let Err(e) =
                        store.append(RecordBody::Consent(record.clone()), Timestamp::now())
                {
                    w.store_errors.push(e.to_string());
                }
                w.consent_records.push(record);
                vec![]
            }
            Effect::AppendAudit(entry) => {
                if let Some(store) = w.store
                    && let Err(e) = store.append(RecordBody::Audit(entry.clone()), Timestamp::now())
                {
                    w.store_errors.push(e.to_string());
                }
                w.audit.push(entry);
                vec![]
            }
            Effect::PurgePatientData { incident } => {
                if let Some(store) = w.store
                    && let Err(e) = store.purge_incident(&incident)
                {
                    w.store_errors.push(e.to_string());
                }
                vec![]
            }
        }
    }

    fn step(&mut self, step: Step) -> Result<(), DrillError> {
        let event = match step {
            Step::SignIn => Event::CrewSignedIn {
                operator: OperatorId::new("EMT-0001"),
                viewing_permission: true,
            },
            Step::PlaceCard | Step::PlaceCardRemovedMidRead => {
                let patient = self.world.patient_id.clone();
                let issued = self.world.sim.issue_card(&patient)?;
                self.world.card = Some(
                    VirtualCard::new(
                        &issued.auth_certificate_der,
                        &issued.ca_certificate_der,
                        DRILL_PIN,
                        FaceItems::default(),
                    )
                    .with_auth_key(issued.auth_key_pkcs8),
                );
                self.world.remove_mid_read = step == Step::PlaceCardRemovedMidRead;
                self.world.next_incident += 1;
                Event::CardDetected {
                    incident: IncidentId(format!("DRILL-{:04}", self.world.next_incident)),
                }
            }
            Step::ConfirmPhoto => Event::IdentityConfirmed {
                check: IdentityCheck::Photo,
            },
            Step::PinWrong | Step::PinRight => {
                let pin = if step == Step::PinRight {
                    DRILL_PIN
                } else {
                    "0000"
                };
                let Some(card) = self.world.card.as_mut() else {
                    self.note("pin: no card on the reader".into());
                    return Ok(());
                };
                let mut outcome = jpki::verify_auth_pin(card, pin, false);
                if matches!(outcome, Err(CardError::LastTryNeedsConfirmation)) {
                    self.note("pin: one try left, crew confirms the last try".into());
                    let card = self.world.card.as_mut().ok_or(DrillError::NoCard)?;
                    outcome = jpki::verify_auth_pin(card, pin, true);
                }
                match outcome {
                    Ok(PinOutcome::Verified) => Event::IdentityConfirmed {
                        check: IdentityCheck::Pin,
                    },
                    Ok(PinOutcome::Wrong { tries_left }) => {
                        self.note(format!("pin: wrong, tries left: {tries_left}"));
                        return Ok(());
                    }
                    Ok(PinOutcome::Blocked) => {
                        self.note("pin: blocked".into());
                        return Ok(());
                    }
                    Err(e) => {
                        self.note(format!("pin: {e}"));
                        return Ok(());
                    }
                }
            }
            Step::ConsentVerbal => Event::ConsentChosen {
                decision: ConsentDecision::Verbal,
            },
            Step::ConsentUnobtainable => Event::ConsentChosen {
                decision: ConsentDecision::Unobtainable,
            },
            Step::ConsentRefused => Event::ConsentChosen {
                decision: ConsentDecision::Refused,
            },
            Step::LineDropDuringInquiry => {
                self.world.drop_during_inquiry = true;
                return Ok(());
            }
            Step::LineDrop => {
                self.world.link_up = false;
                Event::LinkLost
            }
            Step::LineRestore => {
                self.world.link_up = true;
                Event::LinkRestored
            }
            Step::ViewFull => Event::ViewFullData,
            Step::BackToSummary => Event::BackToSummary,
            Step::End => Event::EndViewing,
            Step::Idle => Event::IdleTimeout,
        };
        self.apply(event);
        Ok(())
    }
}

fn is_tap(step: Step) -> bool {
    matches!(
        step,
        Step::ConfirmPhoto
            | Step::PinWrong
            | Step::PinRight
            | Step::ConsentVerbal
            | Step::ConsentUnobtainable
            | Step::ConsentRefused
            | Step::ViewFull
            | Step::BackToSummary
            | Step::End
    )
}

/// Run a scenario end to end against a fresh simulator; `today` dates the patients' history.
/// With a store, records are appended to it and clinical data cached and purged as on a
/// real call (training mode keeps its own store).
pub fn run(
    scenario: &Scenario,
    today: time::Date,
    store: Option<&Store>,
) -> Result<Report, DrillError> {
    let sim = Simulator::new(today)?;
    let patient_id = PatientScenario::ALL
        .iter()
        .find(|s| s.name() == scenario.patient)
        .and_then(|s| sim.scenario_patient(*s))
        .or_else(|| sim.patient(&scenario.patient))
        .map(|p| p.id.clone())
        .ok_or_else(|| {
            DrillError::UnknownPatient(scenario.name.clone(), scenario.patient.clone())
        })?;
    let station = Station {
        unit: UnitId::new("TRAINING-UNIT"),
        terminal: TerminalId::new("TRAINING-TERMINAL"),
    };
    let mut runner = Runner {
        session: Session::new(station),
        world: World {
            sim,
            store,
            store_errors: vec![],
            patient_id: patient_id.clone(),
            card: None,
            remove_mid_read: false,
            link_up: true,
            drop_during_inquiry: false,
            next_incident: 0,
            consent_records: vec![],
            audit: vec![],
            alerts: vec![],
            coverage_status: None,
        },
        start: Instant::now(),
        timeline: vec![],
        path: vec![],
        rejected: vec![],
        errors: vec![],
    };
    let started_at = Timestamp::now().to_rfc3339();
    for step in &scenario.steps {
        runner.timeline.push(TimelineEntry {
            at_ms: runner.elapsed_ms(),
            what: format!("step: {}", step_name(*step)),
            phase: runner.session.phase().name(),
            notice: None,
        });
        runner.step(*step)?;
    }
    let total_ms = runner.elapsed_ms();
    let path_matches = runner.path == scenario.expected_path;
    let alerts_match = scenario
        .expected_alerts
        .iter()
        .all(|a| runner.world.alerts.contains(a));
    let coverage_matches = scenario.expected_coverage.as_deref().is_none_or(|want| {
        runner
            .world
            .coverage_status
            .and_then(|s| serde_json::to_value(s).ok())
            .and_then(|v| v.as_str().map(|s| s == want))
            .unwrap_or(false)
    });
    let audit = runner
        .world
        .audit
        .iter()
        .map(|a| AuditLine {
            action: match a.action {
                AuditAction::View { kind } => format!("view {}", kind.label_ja()),
                other => format!("{other:?}"),
            },
            consent: a.consent.map(|c| c.label_ja()),
            identity_check: a.identity_check,
        })
        .collect();
    let taps = scenario.steps.iter().filter(|s| is_tap(**s)).count();
    Ok(Report {
        scenario: scenario.name.clone(),
        title: scenario.title.clone(),
        training: true,
        patient_id,
        started_at,
        timeline: runner.timeline,
        path: runner.path,
        expected_path: scenario.expected_path.clone(),
        path_matches,
        alerts: runner.world.alerts,
        expected_alerts: scenario.expected_alerts.clone(),
        coverage_status: runner.world.coverage_status,
        consent_records: runner
            .world
            .consent_records
            .iter()
            .map(|r| r.decision)
            .collect(),
        audit,
        server_inquiries: runner.world.sim.audit_log().len(),
        rejected_events: runner.rejected,
        errors_met: runner.errors,
        taps,
        stored_records: if store.is_some() {
            runner.world.consent_records.len() + runner.world.audit.len()
        } else {
            0
        },
        passed: path_matches
            && alerts_match
            && coverage_matches
            && runner.world.store_errors.is_empty(),
        store_errors: runner.world.store_errors,
        total_ms,
    })
}

fn step_name(step: Step) -> String {
    serde_json::to_value(step)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The report as the text a trainer reads in a terminal.
pub fn render_text(report: &Report) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "【訓練 TRAINING】 {} — {}\n",
        report.scenario, report.title
    ));
    for e in &report.timeline {
        out.push_str(&format!(
            "  {:>8.1} ms  {:<32} → {}{}\n",
            e.at_ms,
            e.what,
            e.phase,
            e.notice.map(|n| format!("  ({n})")).unwrap_or_default()
        ));
    }
    out.push_str(&format!("  path:     {}\n", report.path.join(" → ")));
    if !report.alerts.is_empty() {
        out.push_str(&format!("  alerts:   {}\n", report.alerts.join(", ")));
    }
    out.push_str(&format!(
        "  records:  {} consent, {} audit; {} inquiries at the server; {} taps\n",
        report.consent_records.len(),
        report.audit.len(),
        report.server_inquiries,
        report.taps
    ));
    out.push_str(&format!(
        "  result:   {}\n",
        if report.passed {
            "PASS (expected path)"
        } else {
            "FAIL (path differs from the scenario's expected path)"
        }
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_scenario_parses() {
        for name in scenario_names() {
            let s = scenario(name).unwrap();
            assert!(!s.steps.is_empty(), "{name}");
            assert_eq!(s.expected_path.first().map(String::as_str), Some("ready"));
        }
        assert!(matches!(
            scenario("nope"),
            Err(DrillError::UnknownScenario(_))
        ));
    }
}
