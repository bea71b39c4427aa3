//! The two requests the session asks the effects layer to send, in the vocabulary every
//! layer shares (the eligibility client sends them; the session builds them).

use super::{
    CardCredential, ConsentState, IdentityCheck, IdentityMethod, IncidentId, OperatorId,
    PatientRef, QualificationRef, TerminalId, TokenKind, UnitId,
};

/// The qualification request the effects layer sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QualificationRequest {
    pub incident: IncidentId,
    pub credential: CardCredential,
    pub operator: OperatorId,
    pub unit: UnitId,
    pub terminal: TerminalId,
}

/// The emergency-info inquiry, with the consent decision attached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmergencyInquiry {
    pub incident: IncidentId,
    pub qualification: QualificationRef,
    pub consent: ConsentState,
    pub operator: OperatorId,
    pub unit: UnitId,
    pub terminal: TerminalId,
    pub identity_method: IdentityMethod,
    pub identity_check: IdentityCheck,
    /// The card or a phone.
    pub token: TokenKind,
    /// The patient the qualification answer named: the emergency-info answer must name the
    /// same one (and the same reference), or nothing of it is shown.
    pub patient: PatientRef,
}
