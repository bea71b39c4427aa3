//! The hand-off on the controller: the crew's flow ([`crate::handoff::crew`]) wired to the
//! hub's client, the session and the store. The disclosure and the packet are built here
//! from the session at the moment they leave, and dropped with the task that sends them;
//! the flow itself holds the crew's findings, and is dropped when the viewing ends (a flow
//! opened after a viewing) or at sign-out. Calls to the hub obey the same line rule as the
//! eligibility endpoint (the route check where the tunnel is required).

use super::*;
use crate::domain::{HandoffRecord, Sex, UnitId};
use crate::handoff::crew::{self, CrewFlow, Effect as FlowEffect, Input, Known, Step};
use crate::handoff::{
    AgeBand, AlertClaim, AlertSource, Change, Packet, PacketConsent, PacketPatient, SummaryItem,
};
use crate::hub::client::HubClient;
use crate::hub::tablet::{AskRequest, DecideRequest};
use sha2::Digest;

/// What the crew does on the hand-off screens.
#[derive(Clone, Debug, PartialEq)]
pub enum HandoffCommand {
    /// 「搬送先照会」: open the flow (or show the one under way).
    Open,
    /// Back to the summary (or Ready) with the flow kept.
    Hide,
    /// The vitals screen opened (true) or closed.
    Vitals(bool),
    /// 終了: leave the flow (before 搬送決定 the hub withdraws the request).
    End,
    Tap(Input),
}

/// One hand-off on this tablet.
pub(super) struct HandoffState {
    pub flow: CrewFlow,
    pub incident: IncidentId,
    pub shown: bool,
    /// Outcomes of an earlier flow are ignored by this number.
    pub generation: u64,
    pub watcher: Option<tokio::task::AbortHandle>,
    /// Crew taps on the hand-off screens (the debrief counts them).
    pub taps: u32,
    pub vitals_open: bool,
}

/// How long one call to the hub may take before it counts as not sent.
const HUB_DEADLINE: Duration = Duration::from_secs(5);

impl Controller {
    /// Whether this tablet has a hub to ask (training always; a device when enrolled).
    pub fn hub_available(&self) -> bool {
        self.ports.hub.is_some()
    }

    pub(super) fn handoff_command(&mut self, command: HandoffCommand) {
        match command {
            HandoffCommand::Open => self.open_handoff(),
            HandoffCommand::Hide => {
                if let Some(h) = self.handoff.as_mut() {
                    h.shown = false;
                    h.taps += 1;
                }
            }
            HandoffCommand::Vitals(open) => {
                if let Some(h) = self.handoff.as_mut() {
                    h.vitals_open = open;
                    h.taps += 1;
                }
            }
            HandoffCommand::End => self.end_handoff("crew ended the hand-off"),
            HandoffCommand::Tap(input) => {
                if let Some(h) = self.handoff.as_mut() {
                    h.taps += 1;
                }
                self.handoff_input(input);
            }
        }
    }

    fn open_handoff(&mut self) {
        if self.session.phase() == Phase::SignedOut || self.ports.hub.is_none() {
            return;
        }
        if let Some(h) = self.handoff.as_mut() {
            h.shown = true;
            h.taps += 1;
            return;
        }
        let viewing = self.session.emergency_info().is_some();
        let incident = match (viewing, self.session.incident()) {
            (true, Some(i)) => i.id.clone(),
            _ => {
                self.incident_seq += 1;
                IncidentId(format!(
                    "{}-{}-H{:04}",
                    self.settings.station.terminal.0,
                    Timestamp::now().0,
                    self.incident_seq
                ))
            }
        };
        self.handoff_generation += 1;
        let (flow, effects) = CrewFlow::open(viewing);
        self.handoff = Some(HandoffState {
            flow,
            incident,
            shown: true,
            generation: self.handoff_generation,
            watcher: None,
            taps: 1,
            vitals_open: false,
        });
        self.journal.push(JournalEntry {
            at_ms: self.elapsed_ms(),
            what: format!("handoff: opened (card: {viewing})"),
            event: true,
            phase: Step::Findings.name(),
            notice: None,
        });
        self.handoff_effects(effects);
    }

    /// Drop the flow (its findings with it); before 搬送決定 the hub withdraws the request.
    pub(super) fn end_handoff(&mut self, why: &str) {
        let Some(h) = self.handoff.take() else { return };
        if let Some(w) = &h.watcher {
            w.abort();
        }
        if let Some(event) = h.flow.withdrawn() {
            self.record_handoff(&h.incident, event);
            if let (Some(hub), Some(case)) = (self.ports.hub.clone(), h.flow.case.as_ref()) {
                let id = case.case_id.clone();
                tokio::spawn(withdraw(hub, id));
            }
        }
        self.note(format!("hand-off ended: {why}"));
    }

    pub(super) fn handoff_input(&mut self, input: Input) {
        let regular = matches!(input, Input::HospitalsLoaded(_));
        let Some(h) = self.handoff.as_mut() else {
            return;
        };
        let before = h.flow.step;
        let effects = h.flow.handle(Timestamp::now().0, input);
        if regular {
            let visited = self.visited_hospitals();
            if let Some(h) = self.handoff.as_mut() {
                h.flow.mark_regular(&visited);
            }
        }
        if let Some(h) = self.handoff.as_ref()
            && h.flow.step != before
        {
            // a step of the hand-off is a screen of the drill's path
            let step = h.flow.step.name();
            self.journal.push(JournalEntry {
                at_ms: self.elapsed_ms(),
                what: format!("handoff: {step}"),
                event: true,
                phase: step,
                notice: None,
            });
        }
        self.handoff_effects(effects);
    }

    /// An outcome of hand-off work: ignored when its flow is gone.
    pub(super) fn handoff_outcome(&mut self, generation: u64, input: Input) {
        if self
            .handoff
            .as_ref()
            .is_some_and(|h| h.generation == generation)
        {
            self.handoff_input(input);
        }
    }

    /// The hospitals the summary's 受診歴 names (for かかりつけ).
    fn visited_hospitals(&self) -> Vec<String> {
        self.session
            .emergency_info()
            .map(|i| {
                i.summary
                    .visits
                    .iter()
                    .map(|v| v.hospital.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn record_handoff(&mut self, incident: &IncidentId, event: crate::domain::HandoffEvent) {
        let station = self.settings.station.clone();
        let operator = self
            .session
            .operator()
            .cloned()
            .unwrap_or_else(|| OperatorId::new("unknown"));
        self.append(RecordBody::Handoff(HandoffRecord {
            at: Timestamp::now(),
            incident: incident.clone(),
            operator,
            unit: UnitId::new(&station.unit.0),
            terminal: station.terminal,
            event,
        }));
    }

    /// Spawn a hand-off job; `counted` jobs are waited for by `settle` (calls), the others
    /// not (the event stream, the retry timer).
    fn handoff_job<F>(&mut self, counted: bool, generation: u64, job: F) -> tokio::task::AbortHandle
    where
        F: std::future::Future<Output = Input> + Send + 'static,
    {
        let tx = self.outcomes_tx.clone();
        if counted {
            self.in_flight += 1;
        }
        let handle = tokio::spawn(async move {
            let input = job.await;
            let _ = tx.send(Outcome::Handoff {
                generation,
                input,
                counted,
            });
        });
        handle.abort_handle()
    }

    /// The route check of the line rule, for the hub's address.
    fn hub_route_refused(&self) -> impl std::future::Future<Output = bool> + Send + 'static {
        let route = self.ports.route.clone();
        let addr = self.ports.hub_addr;
        let require = self.settings.hub_require_tunnel;
        async move { Self::tunnel_refuses(require, route, addr).await.1 }
    }

    fn handoff_effects(&mut self, effects: Vec<FlowEffect>) {
        let Some(hub) = self.ports.hub.clone() else {
            return;
        };
        let Some((generation, incident)) = self
            .handoff
            .as_ref()
            .map(|h| (h.generation, h.incident.clone()))
        else {
            return;
        };
        for effect in effects {
            match effect {
                FlowEffect::FetchHospitals => {
                    let (hub, refused) = (hub.clone(), self.hub_route_refused());
                    self.handoff_job(true, generation, async move {
                        if refused.await {
                            return Input::HospitalsFailed;
                        }
                        match tokio::time::timeout(HUB_DEADLINE, hub.hospitals()).await {
                            Ok(Ok(list)) => Input::HospitalsLoaded(
                                list.hospitals.into_iter().map(Into::into).collect(),
                            ),
                            Ok(Err(e)) => {
                                tracing::warn!(error = %e, "hub hospital list failed");
                                Input::HospitalsFailed
                            }
                            Err(_) => Input::HospitalsFailed,
                        }
                    });
                }
                FlowEffect::Ask {
                    candidates,
                    findings,
                } => {
                    let request = AskRequest {
                        incident_id: incident.0.clone(),
                        candidates,
                        disclosure: CrewFlow::disclosure(
                            &findings,
                            &self.known(),
                            &self.settings.callback,
                        ),
                    };
                    let (hub, refused) = (hub.clone(), self.hub_route_refused());
                    self.handoff_job(true, generation, async move {
                        if refused.await {
                            return Input::SendFailed;
                        }
                        match tokio::time::timeout(HUB_DEADLINE, hub.ask(&request)).await {
                            Ok(Ok(view)) => Input::Sent(view.into()),
                            Ok(Err(e)) => {
                                tracing::warn!(error = %e, "受入照会 not sent");
                                Input::SendFailed
                            }
                            Err(_) => Input::SendFailed,
                        }
                    });
                }
                FlowEffect::RetryAfter(ms) => {
                    let wait = Duration::from_millis(u64::try_from(ms).unwrap_or(0));
                    self.handoff_job(false, generation, async move {
                        tokio::time::sleep(wait).await;
                        Input::RetryDue
                    });
                }
                FlowEffect::Watch { case_id } => {
                    let tx = self.outcomes_tx.clone();
                    let hub = hub.clone();
                    let task = tokio::spawn(watch_case(hub, case_id, generation, tx));
                    if let Some(h) = self.handoff.as_mut()
                        && let Some(old) = h.watcher.replace(task.abort_handle())
                    {
                        old.abort();
                    }
                }
                FlowEffect::Decide {
                    case_id,
                    hospital,
                    findings,
                } => {
                    let packet = self.packet(&findings);
                    let sha256 = serde_json::to_vec(&packet)
                        .map(|b| hex::encode(sha2::Sha256::digest(&b)))
                        .unwrap_or_default();
                    let request = DecideRequest { hospital, packet };
                    let (hub, refused) = (hub.clone(), self.hub_route_refused());
                    self.handoff_job(true, generation, async move {
                        if refused.await {
                            return Input::DecideFailed;
                        }
                        let sent =
                            tokio::time::timeout(HUB_DEADLINE, hub.decide(&case_id, &request))
                                .await;
                        // the packet is dropped with this task
                        drop(request);
                        match sent {
                            Ok(Ok(view)) => Input::Decided(view.into(), sha256),
                            Ok(Err(e)) => {
                                tracing::warn!(error = %e, "搬送決定 not sent");
                                Input::DecideFailed
                            }
                            Err(_) => Input::DecideFailed,
                        }
                    });
                }
                FlowEffect::Update { case_id, change } => {
                    let kind = match change {
                        Change::Eta { .. } => "eta",
                        Change::Vitals { .. } => "vitals",
                        Change::Arrived => "arrived",
                    };
                    let (hub, refused) = (hub.clone(), self.hub_route_refused());
                    self.handoff_job(true, generation, async move {
                        if refused.await {
                            return Input::UpdateFailed;
                        }
                        match tokio::time::timeout(HUB_DEADLINE, hub.update(&case_id, &change))
                            .await
                        {
                            Ok(Ok(view)) => Input::Updated(view.into(), kind),
                            Ok(Err(e)) => {
                                tracing::warn!(error = %e, "hand-off update not sent");
                                Input::UpdateFailed
                            }
                            Err(_) => Input::UpdateFailed,
                        }
                    });
                }
                FlowEffect::Close { case_id } => {
                    if let Some(h) = self.handoff.as_mut()
                        && let Some(w) = h.watcher.take()
                    {
                        w.abort();
                    }
                    tokio::spawn(withdraw(hub.clone(), case_id));
                }
                FlowEffect::Record(event) => self.record_handoff(&incident, event),
            }
        }
    }

    /// What the viewing tells the hospitals asked: age band, sex, the alert classes with the
    /// date of the national system's answer. Nothing that names the patient.
    fn known(&self) -> Known {
        let today = view::today_jst(Timestamp::now());
        let Some(c) = self.session.coverage() else {
            return Known::default();
        };
        let alerts = self
            .session
            .emergency_info()
            .map(|i| {
                i.summary
                    .alerts()
                    .iter()
                    .map(|a| AlertClaim {
                        label: a.label_ja(),
                        source: AlertSource::NationalSystem { as_of: today },
                    })
                    .collect()
            })
            .unwrap_or_default();
        Known {
            age_band: Some(AgeBand::of_age(crate::domain::age_on(
                *c.birth_date.expose(),
                today,
            ))),
            sex: Some(c.sex),
            alerts,
        }
    }

    /// The packet for the hospital that accepted: the patient, the consent, the summary's
    /// medications, diagnoses and procedures with their dates; without a card, 氏名不詳.
    fn packet(&self, findings: &crew::Findings) -> Packet {
        let operator = self
            .session
            .operator()
            .map(|o| o.0.clone())
            .unwrap_or_default();
        let date = |d: time::Date| Some(d.to_string());
        let viewing = self.session.coverage().zip(self.session.emergency_info());
        let Some((c, info)) = viewing else {
            return Packet::unidentified(findings.sex.unwrap_or(Sex::NotKnown), vec![operator]);
        };
        let s = &info.summary;
        let consent = self.session.incident().and_then(|i| {
            Some(PacketConsent {
                decision: i.consent?,
                reason: i.unobtainable_reason,
                at_ms: self
                    .consent_at
                    .as_ref()
                    .filter(|(id, _)| *id == i.id)
                    .map(|(_, at)| at.0)
                    .unwrap_or_else(|| Timestamp::now().0),
                recorded_by: operator.clone(),
            })
        });
        Packet {
            patient: PacketPatient {
                name: c.name.expose().clone(),
                kana: c.kana.expose().clone(),
                birth_date: c.birth_date.expose().to_string(),
                sex: c.sex,
                insured_number: None,
            },
            consent,
            medications: s
                .medications
                .iter()
                .map(|m| SummaryItem {
                    text: format!("{} {}", m.drug, m.dose),
                    as_of: date(m.date),
                })
                .collect(),
            // the summary has no diagnoses; its 診療行為 and surgeries are what was done
            diagnoses: vec![],
            procedures: s
                .clinical
                .iter()
                .map(|d| SummaryItem {
                    text: d.description.clone(),
                    as_of: date(d.date),
                })
                .chain(s.surgeries.iter().map(|p| SummaryItem {
                    text: p.procedure.clone(),
                    as_of: date(p.date),
                }))
                .collect(),
            summary_as_of_ms: self.viewed_at.as_ref().map(|t| t.0),
            crew_note: String::new(),
            crew: vec![operator],
        }
    }

    /// The hand-off's part of the view model.
    pub(super) fn handoff_view(&self, vm: &mut ViewModel) {
        vm.hub_available = self.hub_available();
        let Some(h) = &self.handoff else { return };
        vm.handoff = view::handoff::build(&h.flow, h.vitals_open);
        if h.shown {
            vm.screen = match h.flow.step {
                Step::Findings => {
                    if vm.handoff.vitals_open {
                        view::Screen::HandoffVitals
                    } else {
                        view::Screen::HandoffFindings
                    }
                }
                Step::Choosing => view::Screen::HandoffHospitals,
                _ => {
                    if vm.handoff.vitals_open {
                        view::Screen::HandoffVitals
                    } else {
                        view::Screen::HandoffAnswers
                    }
                }
            };
        }
    }

    /// The debrief's figures: (ms from the first request to 搬送決定, taps on the hand-off
    /// screens, hand-off step).
    pub fn handoff_figures(&self) -> Option<(Option<i64>, u32, &'static str)> {
        self.handoff
            .as_ref()
            .map(|h| (h.flow.time_to_decision_ms(), h.taps, h.flow.step.name()))
    }
}

/// Withdraw a request at the hub (the crew left the flow or asks others): a hub that is not
/// reached keeps the case until its stale sweep; nothing waits for this.
async fn withdraw(hub: Arc<HubClient>, case_id: String) {
    match tokio::time::timeout(HUB_DEADLINE, hub.close(&case_id)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "hand-off withdrawal refused"),
        Err(_) => tracing::warn!("hand-off withdrawal not sent in time"),
    }
}

/// Follow a case's events until the flow is dropped (the task is aborted), reconnecting
/// after the last event seen when the line drops.
async fn watch_case(
    hub: Arc<HubClient>,
    case_id: String,
    generation: u64,
    tx: mpsc::UnboundedSender<Outcome>,
) {
    let mut last = None;
    loop {
        match hub.events(&case_id, last).await {
            Ok(mut stream) => loop {
                match stream.next_view().await {
                    Ok(Some((event, view))) => {
                        last = event.id.or(last);
                        let sent = tx.send(Outcome::Handoff {
                            generation,
                            input: Input::Case(view.into()),
                            counted: false,
                        });
                        if sent.is_err() {
                            return;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::debug!(error = %e, "case stream ended");
                        break;
                    }
                }
            },
            Err(e) => tracing::debug!(error = %e, "case stream not open"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
