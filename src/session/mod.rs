//! The incident flow as a pure, synchronous state machine.
//!
//! card → qualification → identity + consent → emergency info → views → end.
//!
//! [`Session::handle`] takes the current time and one [`Event`] and returns the
//! [`Effect`]s the effects layer must carry out (read the card, send a request, append a
//! record, purge data). It knows nothing of Slint, PC/SC, sockets or clocks, so every path
//! is a plain unit test. The rules from the official documents live here and only here:
//!
//! - no emergency-info inquiry before an explicit consent decision, and the inquiry carries
//!   exactly the consent chosen (同意取得困難 is never a default);
//! - a refusal never inquires and is recorded;
//! - every view (summary, full data) yields an audit entry;
//! - ending the viewing, an idle timeout or signing out purges the patient's data;
//! - a card removed mid-read never leaves a half-read identity on screen;
//! - a lost link keeps the consent decision and resends the same inquiry when the link
//!   returns, without asking the crew again;
//! - only a crew member with viewing permission (閲覧権限) can start an incident;
//! - a phone (スマホ用電子証明書) is read only with its owner: an Android phone after the
//!   patient typed the smartphone PIN, an iPhone after its owner unlocked it. It has no
//!   photo, and 同意取得困難 is never offered with it, so an unconscious patient's phone
//!   ends the incident instead of becoming a way around the patient.
//!
//! Patient data lives only in the current [`Incident`]; dropping it is the purge.

mod notice;
mod outputs;
/// 同意取得困難 carries its reason; no other decision carries one.
fn check_reason(
    decision: ConsentDecision,
    reason: Option<UnobtainableReason>,
) -> Result<(), SessionError> {
    if (decision == ConsentDecision::Unobtainable) == reason.is_some() {
        Ok(())
    } else {
        Err(SessionError::ReasonMismatch)
    }
}

#[cfg(test)]
mod tests;
mod vocabulary;

pub use crate::domain::{CardFailure, EmergencyInquiry, QualificationRequest, ServiceFailure};
pub use notice::Notice;
use vocabulary::Pending;
pub use vocabulary::{Effect, Event, Incident, Phase};

use crate::domain::{
    AuditAction, AuditEntry, CardCredential, ConsentCorrection, ConsentDecision, ConsentRecord,
    Coverage, EmergencyInfo, ExplanationRecord, IdentityCheck, IdentityMethod, IncidentId,
    InfoKind, OperatorId, QualificationRef, TerminalId, Timestamp, UnitId, UnobtainableReason,
};
use thiserror::Error;

/// The device this session runs on; stamped on every record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Station {
    pub unit: UnitId,
    pub terminal: TerminalId,
}

/// Why an event was not applied. The state is unchanged and no effect is produced.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SessionError {
    #[error("event {event} does not apply in phase {phase:?}")]
    NotApplicable { event: &'static str, phase: Phase },
    #[error("answer for incident {0} is stale")]
    StaleAnswer(IncidentId),
    #[error("crew member has no viewing permission")]
    NoViewingPermission,
    #[error("consent cannot be chosen before the identity is confirmed")]
    ConsentBeforeIdentity,
    #[error("a correction must change the consent decision")]
    CorrectionUnchanged,
    #[error("a phone has no photo: its owner's PIN or unlock is the identity check")]
    PhoneHasNoPhoto,
    #[error("同意取得困難 is not offered with a phone: it is read only with its owner")]
    UnobtainableOnPhone,
    #[error("同意取得困難 is recorded with its reason, and no other decision takes one")]
    ReasonMismatch,
}

/// The incident state machine for one tablet.
#[derive(Clone, Debug)]
pub struct Session {
    station: Station,
    operator: Option<OperatorId>,
    phase: Phase,
    link_up: bool,
    notice: Option<Notice>,
    incident: Option<Incident>,
}

impl Session {
    pub fn new(station: Station) -> Self {
        Session {
            station,
            operator: None,
            phase: Phase::SignedOut,
            link_up: true,
            notice: None,
            incident: None,
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The message the screen shows with the phase, if any.
    pub fn notice(&self) -> Option<Notice> {
        self.notice
    }

    pub fn link_up(&self) -> bool {
        self.link_up
    }

    pub fn operator(&self) -> Option<&OperatorId> {
        self.operator.as_ref()
    }

    pub fn station(&self) -> &Station {
        &self.station
    }

    /// The current incident, with whatever patient data it holds.
    pub fn incident(&self) -> Option<&Incident> {
        self.incident.as_ref()
    }

    /// The coverage to show, only in phases where the screen shows it.
    pub fn coverage(&self) -> Option<&Coverage> {
        match self.phase {
            Phase::IdentityAndConsent
            | Phase::AwaitingEmergencyInfo
            | Phase::ViewingSummary
            | Phase::ViewingFullData
            | Phase::Failed => self.incident.as_ref()?.coverage.as_ref(),
            _ => None,
        }
    }

    /// The emergency info to show, only while viewing.
    pub fn emergency_info(&self) -> Option<&EmergencyInfo> {
        match self.phase {
            Phase::ViewingSummary | Phase::ViewingFullData => self.incident.as_ref()?.info.as_ref(),
            _ => None,
        }
    }

    /// Whether any patient data is held (coverage, credential or emergency info).
    pub fn holds_patient_data(&self) -> bool {
        self.incident
            .as_ref()
            .is_some_and(|i| i.coverage.is_some() || i.info.is_some() || i.credential.is_some())
    }

    /// Whether the crew still owes the patient the written explanation (傷病者用説明書): the
    /// data is on screen under 同意取得困難 and no explanation record was made yet.
    pub fn explanation_owed(&self) -> bool {
        matches!(self.phase, Phase::ViewingSummary | Phase::ViewingFullData)
            && self.incident.as_ref().is_some_and(|i| {
                i.consent == Some(ConsentDecision::Unobtainable) && !i.explanation_recorded
            })
    }

    /// Whether a request is waiting for the link (shown as "回線待ち・自動再送").
    pub fn waiting_for_link(&self) -> bool {
        !self.link_up && self.incident.as_ref().is_some_and(|i| i.waiting.is_some())
    }

    /// Apply one event at time `now`.
    pub fn handle(&mut self, now: Timestamp, event: Event) -> Result<Vec<Effect>, SessionError> {
        let name = event.name();
        let phase = self.phase;
        let not_applicable = || SessionError::NotApplicable { event: name, phase };
        match event {
            Event::CrewSignedIn {
                operator,
                viewing_permission,
            } => {
                if phase != Phase::SignedOut {
                    return Err(not_applicable());
                }
                if !viewing_permission {
                    self.notice = Some(Notice::NoViewingPermission);
                    return Err(SessionError::NoViewingPermission);
                }
                self.operator = Some(operator);
                self.enter(Phase::Ready, None);
                Ok(vec![])
            }
            Event::CrewSignedOut => {
                if phase == Phase::SignedOut {
                    return Err(not_applicable());
                }
                let effects = self.purge(now);
                self.operator = None;
                self.enter(Phase::SignedOut, None);
                Ok(effects)
            }
            Event::CardDetected { incident } => {
                if phase != Phase::Ready {
                    return Err(not_applicable());
                }
                self.incident = Some(Incident::new(incident.clone()));
                self.enter(Phase::ReadingCard, None);
                Ok(vec![Effect::ReadCard { incident }])
            }
            Event::CardReadOk {
                incident,
                credential,
            } => {
                if !matches!(phase, Phase::ReadingCard | Phase::PhonePin) {
                    return Err(not_applicable());
                }
                let current = self.current_incident(&incident)?;
                if phase == Phase::PhonePin
                    && credential.token != crate::domain::TokenKind::AndroidPhone
                {
                    // the PIN was typed for an Android phone; anything else is not its read
                    return Err(not_applicable());
                }
                current.token = Some(credential.token);
                current.credential = Some(credential);
                self.enter(Phase::CheckingQualification, None);
                Ok(self.send_qualification())
            }
            Event::CardReadFailed { incident, failure } => {
                if !matches!(phase, Phase::ReadingCard | Phase::PhonePin) {
                    return Err(not_applicable());
                }
                self.current_incident(&incident)?;
                let effects = self.purge(now);
                self.enter(Phase::Ready, Some(Notice::from_card_failure(failure)));
                Ok(effects)
            }
            Event::PhoneNeedsPin { incident } => {
                self.expect(Phase::ReadingCard, name)?;
                let current = self.current_incident(&incident)?;
                current.token = Some(crate::domain::TokenKind::AndroidPhone);
                self.enter(Phase::PhonePin, None);
                Ok(vec![])
            }
            Event::PatientCannotAuthenticate => {
                self.expect(Phase::PhonePin, name)?;
                // nothing was read: there is no patient to record, only the end to offer
                self.enter(Phase::PhoneUnusable, Some(Notice::PhoneNeedsItsOwner));
                Ok(vec![])
            }
            Event::CardRemoved => match phase {
                // Mid-read (a phone waiting for its PIN included): whatever was read is
                // dropped, nothing half-read stays.
                Phase::ReadingCard | Phase::PhonePin => {
                    let effects = self.purge(now);
                    self.enter(Phase::Ready, Some(Notice::CardRemovedDuringRead));
                    Ok(effects)
                }
                // After a complete read the card is no longer needed; handing it back to
                // the patient is normal.
                _ => Err(not_applicable()),
            },
            Event::QualificationAnswered {
                incident,
                qualification,
                coverage,
            } => {
                self.expect(Phase::CheckingQualification, name)?;
                let current = self.current_incident(&incident)?;
                current.waiting = None;
                current.qualification = Some(qualification);
                current.coverage = Some(coverage);
                let audit = self.audit(now, AuditAction::QualificationCheck);
                self.enter(Phase::IdentityAndConsent, None);
                Ok(audit.into_iter().collect())
            }
            Event::QualificationOptOut { incident } => {
                self.expect(Phase::CheckingQualification, name)?;
                let current = self.current_incident(&incident)?;
                current.waiting = None;
                let audit = self.audit(now, AuditAction::QualificationOptOut);
                self.enter(Phase::OptedOut, Some(Notice::OptedOut));
                Ok(audit.into_iter().collect())
            }
            Event::QualificationFailed { incident, failure } => {
                self.expect(Phase::CheckingQualification, name)?;
                let current = self.current_incident(&incident)?;
                current.waiting = Some(Pending::Qualification);
                let card = current.credential.as_ref().map(CardCredential::fingerprint);
                self.fail(failure);
                if failure.waits_for_link() {
                    // resent unchanged when the link returns: not a failed lookup yet
                    return Ok(vec![]);
                }
                let mut audit =
                    self.audit(now, AuditAction::QualificationFailed { reason: failure });
                if let Some(Effect::AppendAudit(entry)) = audit.as_mut() {
                    entry.card = card;
                }
                Ok(audit.into_iter().collect())
            }
            Event::IdentityConfirmed { check } => {
                self.expect(Phase::IdentityAndConsent, name)?;
                let current = self.incident.as_mut().ok_or_else(not_applicable)?;
                let token = current.token.unwrap_or_default();
                match (token, check) {
                    (t, IdentityCheck::Photo) if t.is_phone() => {
                        return Err(SessionError::PhoneHasNoPhoto);
                    }
                    // each check belongs to its token: the iPhone's unlock to the iPhone,
                    // a typed PIN to the card or the Android phone
                    (crate::domain::TokenKind::IPhone, IdentityCheck::Pin)
                    | (
                        crate::domain::TokenKind::Card | crate::domain::TokenKind::AndroidPhone,
                        IdentityCheck::PhoneBiometric,
                    ) => return Err(not_applicable()),
                    _ => {}
                }
                current.identity_check = Some(check);
                self.notice = None;
                Ok(vec![])
            }
            Event::ConsentChosen { decision, reason } => {
                self.expect(Phase::IdentityAndConsent, name)?;
                check_reason(decision, reason)?;
                let current = self.incident.as_mut().ok_or_else(not_applicable)?;
                if decision != ConsentDecision::Refused && current.identity_check.is_none() {
                    return Err(SessionError::ConsentBeforeIdentity);
                }
                if decision == ConsentDecision::Unobtainable
                    && current.token.is_some_and(|t| t.is_phone())
                {
                    return Err(SessionError::UnobtainableOnPhone);
                }
                current.consent = Some(decision);
                current.unobtainable_reason = reason;
                let mut effects = vec![];
                effects.extend(self.consent_record(now, decision, reason));
                if decision == ConsentDecision::Refused {
                    effects.extend(self.refuse());
                    return Ok(effects);
                }
                effects.extend(self.audit(now, AuditAction::EmergencyInfoInquiry));
                self.enter(Phase::AwaitingEmergencyInfo, None);
                effects.extend(self.send_inquiry());
                Ok(effects)
            }
            Event::ConsentCorrected { to, reason } => {
                if !matches!(phase, Phase::ViewingSummary | Phase::ViewingFullData) {
                    return Err(not_applicable());
                }
                check_reason(to, reason)?;
                let current = self.incident.as_mut().ok_or_else(not_applicable)?;
                let from = current.consent.ok_or_else(not_applicable)?;
                if from == to {
                    return Err(SessionError::CorrectionUnchanged);
                }
                if to == ConsentDecision::Unobtainable
                    && current.token.is_some_and(|t| t.is_phone())
                {
                    return Err(SessionError::UnobtainableOnPhone);
                }
                current.consent = Some(to);
                current.unobtainable_reason = reason;
                current.corrected_from.get_or_insert(from);
                let mut effects: Vec<Effect> = self
                    .correction_record(now, from, to, reason)
                    .into_iter()
                    .collect();
                if to == ConsentDecision::Refused {
                    effects.extend(self.refuse());
                }
                Ok(effects)
            }
            Event::ExplanationHanded => {
                if !self.explanation_owed() {
                    return Err(not_applicable());
                }
                Ok(self.explanation_record(now, true).into_iter().collect())
            }
            Event::EmergencyInfoAnswered { incident, info } => {
                // An answer that arrives after a Failed screen is still the answer the crew
                // is waiting for.
                if !matches!(phase, Phase::AwaitingEmergencyInfo | Phase::Failed) {
                    return Err(not_applicable());
                }
                let current = self.current_incident(&incident)?;
                if current
                    .consent
                    .and_then(ConsentDecision::inquiry_state)
                    .is_none()
                {
                    return Err(not_applicable());
                }
                current.waiting = None;
                current.info = Some(*info);
                Ok(self.show(now, Phase::ViewingSummary, InfoKind::EmergencySummary))
            }
            Event::EmergencyInfoFailed { incident, failure } => {
                self.expect(Phase::AwaitingEmergencyInfo, name)?;
                self.current_incident(&incident)?.waiting = Some(Pending::EmergencyInfo);
                self.fail(failure);
                Ok(vec![])
            }
            Event::LinkLost => {
                if !self.link_up {
                    return Err(not_applicable());
                }
                self.link_up = false;
                // A request in flight will not be answered; resend it when the link returns.
                if let Some(incident) = self.incident.as_mut() {
                    match phase {
                        Phase::CheckingQualification => {
                            incident.waiting = Some(Pending::Qualification)
                        }
                        Phase::AwaitingEmergencyInfo => {
                            incident.waiting = Some(Pending::EmergencyInfo)
                        }
                        _ => {}
                    }
                }
                Ok(vec![])
            }
            Event::LinkRestored => {
                if self.link_up {
                    return Err(not_applicable());
                }
                self.link_up = true;
                Ok(self.resend_waiting())
            }
            Event::Retry => {
                if phase != Phase::Failed || !self.link_up {
                    return Err(not_applicable());
                }
                Ok(self.resend_waiting())
            }
            Event::ViewFullData => {
                self.expect(Phase::ViewingSummary, name)?;
                Ok(self.show(now, Phase::ViewingFullData, InfoKind::FullData))
            }
            Event::BackToSummary => {
                self.expect(Phase::ViewingFullData, name)?;
                Ok(self.show(now, Phase::ViewingSummary, InfoKind::EmergencySummary))
            }
            Event::EndViewing => {
                if matches!(phase, Phase::SignedOut | Phase::Ready) {
                    return Err(not_applicable());
                }
                let effects = self.purge(now);
                self.enter(Phase::Ready, None);
                Ok(effects)
            }
            Event::IdleTimeout => match phase {
                Phase::SignedOut => Err(not_applicable()),
                // Idle at Ready: lock the tablet.
                Phase::Ready => {
                    self.operator = None;
                    self.enter(Phase::SignedOut, Some(Notice::LockedAfterIdle));
                    Ok(vec![])
                }
                _ => {
                    let effects = self.purge(now);
                    self.enter(Phase::Ready, Some(Notice::ViewingEndedAfterIdle));
                    Ok(effects)
                }
            },
        }
    }

    fn enter(&mut self, phase: Phase, notice: Option<Notice>) {
        self.phase = phase;
        self.notice = notice;
    }

    fn expect(&self, phase: Phase, event: &'static str) -> Result<(), SessionError> {
        if self.phase == phase {
            Ok(())
        } else {
            Err(SessionError::NotApplicable {
                event,
                phase: self.phase,
            })
        }
    }

    /// The current incident if `id` names it; an answer for any other incident is stale.
    fn current_incident(&mut self, id: &IncidentId) -> Result<&mut Incident, SessionError> {
        match self.incident.as_mut() {
            Some(incident) if incident.id == *id => Ok(incident),
            _ => Err(SessionError::StaleAnswer(id.clone())),
        }
    }

    fn fail(&mut self, failure: ServiceFailure) {
        if failure.waits_for_link() {
            // Keep the phase (and the consent decision); the link monitor will report the
            // link's return and the request goes out again unchanged.
            self.link_up = false;
            self.notice = Some(Notice::WaitingForLink);
        } else {
            self.enter(Phase::Failed, Some(Notice::from_service_failure(failure)));
        }
    }
}
