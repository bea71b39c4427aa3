//! What a handled event sends out: the requests (sent, or kept until the link returns), and
//! the records (audit entries, consent decisions, corrections, explanations) and the purge.

use super::*;

impl Session {
    pub(super) fn resend_waiting(&mut self) -> Vec<Effect> {
        let Some(waiting) = self.incident.as_ref().and_then(|i| i.waiting) else {
            if self.notice == Some(Notice::WaitingForLink) {
                self.notice = None;
            }
            return vec![];
        };
        match waiting {
            Pending::Qualification => {
                self.enter(Phase::CheckingQualification, None);
                self.send_qualification()
            }
            Pending::EmergencyInfo => {
                self.enter(Phase::AwaitingEmergencyInfo, None);
                self.send_inquiry()
            }
        }
    }

    /// Enter a viewing phase; the view of `kind` is audited.
    pub(super) fn show(&mut self, now: Timestamp, phase: Phase, kind: InfoKind) -> Vec<Effect> {
        self.enter(phase, None);
        self.audit(now, AuditAction::View { kind })
            .into_iter()
            .collect()
    }

    pub(super) fn send_qualification(&mut self) -> Vec<Effect> {
        let Some(operator) = self.operator.clone() else {
            return vec![];
        };
        let Some(incident) = self.incident.as_mut() else {
            return vec![];
        };
        let Some(credential) = incident.credential.clone() else {
            return vec![];
        };
        if !self.link_up {
            incident.waiting = Some(Pending::Qualification);
            self.notice = Some(Notice::WaitingForLink);
            return vec![];
        }
        incident.waiting = None;
        vec![Effect::SendQualification(QualificationRequest {
            incident: incident.id.clone(),
            credential,
            operator,
            unit: self.station.unit.clone(),
            terminal: self.station.terminal.clone(),
        })]
    }

    /// The inquiry for the current incident; only reachable with a consent decision that
    /// allows viewing and a confirmed identity.
    pub(super) fn send_inquiry(&mut self) -> Vec<Effect> {
        let Some(operator) = self.operator.clone() else {
            return vec![];
        };
        let Some(incident) = self.incident.as_mut() else {
            return vec![];
        };
        let (Some(consent), Some(qualification), Some(check), Some(patient)) = (
            incident.consent.and_then(ConsentDecision::inquiry_state),
            incident.qualification.clone(),
            incident.identity_check,
            incident.coverage.as_ref().map(|c| c.patient.clone()),
        ) else {
            return vec![];
        };
        if !self.link_up {
            incident.waiting = Some(Pending::EmergencyInfo);
            self.notice = Some(Notice::WaitingForLink);
            return vec![];
        }
        incident.waiting = None;
        vec![Effect::SendEmergencyInquiry(EmergencyInquiry {
            incident: incident.id.clone(),
            qualification,
            consent,
            operator,
            unit: self.station.unit.clone(),
            terminal: self.station.terminal.clone(),
            identity_method: IdentityMethod::MynaCard,
            identity_check: check,
            token: incident.token.unwrap_or_default(),
            patient,
        })]
    }

    pub(super) fn audit(&self, now: Timestamp, action: AuditAction) -> Option<Effect> {
        let incident = self.incident.as_ref()?;
        Some(Effect::AppendAudit(AuditEntry {
            at: now,
            incident: incident.id.clone(),
            operator: self.operator.clone()?,
            unit: self.station.unit.clone(),
            terminal: self.station.terminal.clone(),
            patient: incident.coverage.as_ref().map(|c| c.patient.clone()),
            consent: incident.consent.and_then(ConsentDecision::inquiry_state),
            identity_method: IdentityMethod::MynaCard,
            identity_check: incident.identity_check,
            token: incident.token,
            card: None,
            action,
        }))
    }

    /// A refusal (or a correction to one): nothing more is viewed, and the patient's
    /// identity, coverage and any emergency info leave the screen at once. The incident id
    /// stays so that 終了 can close it.
    pub(super) fn refuse(&mut self) -> Vec<Effect> {
        let Some(incident) = self.incident.as_mut() else {
            return vec![];
        };
        incident.credential = None;
        incident.qualification = None;
        incident.coverage = None;
        incident.info = None;
        incident.waiting = None;
        let id = incident.id.clone();
        self.enter(Phase::Refused, Some(Notice::RefusalRecorded));
        vec![Effect::PurgePatientData { incident: id }]
    }

    pub(super) fn correction_record(
        &self,
        now: Timestamp,
        from: ConsentDecision,
        to: ConsentDecision,
        reason: Option<UnobtainableReason>,
    ) -> Option<Effect> {
        let incident = self.incident.as_ref()?;
        Some(Effect::AppendConsentCorrection(ConsentCorrection {
            at: now,
            incident: incident.id.clone(),
            operator: self.operator.clone()?,
            unit: self.station.unit.clone(),
            terminal: self.station.terminal.clone(),
            patient: incident.coverage.as_ref()?.patient.clone(),
            from,
            to,
            reason,
        }))
    }

    pub(super) fn explanation_record(&mut self, now: Timestamp, handed: bool) -> Option<Effect> {
        let operator = self.operator.clone()?;
        let incident = self.incident.as_mut()?;
        let patient = incident.coverage.as_ref()?.patient.clone();
        incident.explanation_recorded = true;
        Some(Effect::AppendExplanation(ExplanationRecord {
            at: now,
            incident: incident.id.clone(),
            operator,
            unit: self.station.unit.clone(),
            terminal: self.station.terminal.clone(),
            patient,
            handed,
        }))
    }

    pub(super) fn consent_record(
        &self,
        now: Timestamp,
        decision: ConsentDecision,
        reason: Option<UnobtainableReason>,
    ) -> Option<Effect> {
        let incident = self.incident.as_ref()?;
        Some(Effect::AppendConsentRecord(ConsentRecord {
            at: now,
            incident: incident.id.clone(),
            operator: self.operator.clone()?,
            unit: self.station.unit.clone(),
            terminal: self.station.terminal.clone(),
            patient: incident.coverage.as_ref()?.patient.clone(),
            decision,
            reason,
        }))
    }

    /// Drop the incident and everything it held; tell the effects layer to do the same.
    /// A viewing under 同意取得困難 that ends before the explanation was handed records that
    /// it is still owed.
    pub(super) fn purge(&mut self, now: Timestamp) -> Vec<Effect> {
        let mut effects = vec![];
        if self.explanation_owed() {
            effects.extend(self.explanation_record(now, false));
        }
        if let Some(incident) = self.incident.take() {
            effects.push(Effect::PurgePatientData {
                incident: incident.id,
            });
        }
        effects
    }
}
