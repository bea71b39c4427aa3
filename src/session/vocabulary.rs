//! What the state machine speaks: the events that come in, the effects that go out, the
//! screen phase, and the incident that holds the patient's data while it lasts.

use super::*;

/// Something that happened: a tap, a card, an answer, the line, the clock.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    CrewSignedIn {
        operator: OperatorId,
        viewing_permission: bool,
    },
    CrewSignedOut,
    /// A card was placed on the reader; the effects layer chose a fresh incident id.
    CardDetected {
        incident: IncidentId,
    },
    CardReadOk {
        incident: IncidentId,
        credential: CardCredential,
    },
    CardReadFailed {
        incident: IncidentId,
        failure: CardFailure,
    },
    /// The reader found an Android phone: its certificate comes only after the patient
    /// typed the smartphone PIN. The effects layer reads it then and reports `CardReadOk`.
    PhoneNeedsPin {
        incident: IncidentId,
    },
    /// The crew says the patient cannot type the smartphone PIN (unconscious etc.).
    PatientCannotAuthenticate,
    CardRemoved,
    QualificationAnswered {
        incident: IncidentId,
        qualification: QualificationRef,
        coverage: Coverage,
    },
    QualificationOptOut {
        incident: IncidentId,
    },
    QualificationFailed {
        incident: IncidentId,
        failure: ServiceFailure,
    },
    IdentityConfirmed {
        check: IdentityCheck,
    },
    /// The crew's consent decision; 同意取得困難 with the reason the crew chose.
    ConsentChosen {
        decision: ConsentDecision,
        reason: Option<UnobtainableReason>,
    },
    /// 訂正: while viewing, the crew corrects the consent decision. A correction to 拒否
    /// ends the viewing.
    ConsentCorrected {
        to: ConsentDecision,
        reason: Option<UnobtainableReason>,
    },
    /// The crew handed the written explanation (傷病者用説明書) after a viewing under
    /// 同意取得困難.
    ExplanationHanded,
    EmergencyInfoAnswered {
        incident: IncidentId,
        /// Boxed: the answer is by far the largest event.
        info: Box<EmergencyInfo>,
    },
    EmergencyInfoFailed {
        incident: IncidentId,
        failure: ServiceFailure,
    },
    LinkLost,
    LinkRestored,
    /// The crew asks to resend a request that failed for a reason other than the link.
    Retry,
    ViewFullData,
    BackToSummary,
    EndViewing,
    IdleTimeout,
}

impl Event {
    /// A short name for logs and reports (carries no patient data).
    pub fn name(&self) -> &'static str {
        match self {
            Event::CrewSignedIn { .. } => "crew_signed_in",
            Event::CrewSignedOut => "crew_signed_out",
            Event::CardDetected { .. } => "card_detected",
            Event::CardReadOk { .. } => "card_read_ok",
            Event::CardReadFailed { .. } => "card_read_failed",
            Event::PhoneNeedsPin { .. } => "phone_needs_pin",
            Event::PatientCannotAuthenticate => "patient_cannot_authenticate",
            Event::CardRemoved => "card_removed",
            Event::QualificationAnswered { .. } => "qualification_answered",
            Event::QualificationOptOut { .. } => "qualification_opt_out",
            Event::QualificationFailed { .. } => "qualification_failed",
            Event::IdentityConfirmed { .. } => "identity_confirmed",
            Event::ConsentChosen { .. } => "consent_chosen",
            Event::ConsentCorrected { .. } => "consent_corrected",
            Event::ExplanationHanded => "explanation_handed",
            Event::EmergencyInfoAnswered { .. } => "emergency_info_answered",
            Event::EmergencyInfoFailed { .. } => "emergency_info_failed",
            Event::LinkLost => "link_lost",
            Event::LinkRestored => "link_restored",
            Event::Retry => "retry",
            Event::ViewFullData => "view_full_data",
            Event::BackToSummary => "back_to_summary",
            Event::EndViewing => "end_viewing",
            Event::IdleTimeout => "idle_timeout",
        }
    }
}

/// Work for the effects layer, in the order given.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    ReadCard {
        incident: IncidentId,
    },
    SendQualification(QualificationRequest),
    SendEmergencyInquiry(EmergencyInquiry),
    AppendConsentRecord(ConsentRecord),
    AppendConsentCorrection(ConsentCorrection),
    AppendExplanation(ExplanationRecord),
    AppendAudit(AuditEntry),
    /// Drop every copy of this incident's patient data (caches, screen models).
    PurgePatientData {
        incident: IncidentId,
    },
}

/// What the screen shows; the UI renders one screen per phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Crew sign-in (locked).
    SignedOut,
    /// Waiting for a card.
    Ready,
    ReadingCard,
    /// An Android phone is on the reader: the patient types the smartphone PIN.
    PhonePin,
    /// The phone cannot be read without its owner (who cannot authenticate): only 終了.
    PhoneUnusable,
    CheckingQualification,
    /// Coverage shown; photo confirmation and consent on one screen.
    IdentityAndConsent,
    AwaitingEmergencyInfo,
    ViewingSummary,
    ViewingFullData,
    /// The refusal was recorded; nothing will be viewed.
    Refused,
    /// The patient opted out; the system returns nothing.
    OptedOut,
    /// A request failed for a reason the crew must see (retry or end).
    Failed,
}

impl Phase {
    /// The snake_case name used in drill reports and scenario files.
    pub fn name(self) -> &'static str {
        match self {
            Phase::SignedOut => "signed_out",
            Phase::Ready => "ready",
            Phase::ReadingCard => "reading_card",
            Phase::PhonePin => "phone_pin",
            Phase::PhoneUnusable => "phone_unusable",
            Phase::CheckingQualification => "checking_qualification",
            Phase::IdentityAndConsent => "identity_and_consent",
            Phase::AwaitingEmergencyInfo => "awaiting_emergency_info",
            Phase::ViewingSummary => "viewing_summary",
            Phase::ViewingFullData => "viewing_full_data",
            Phase::Refused => "refused",
            Phase::OptedOut => "opted_out",
            Phase::Failed => "failed",
        }
    }
}

/// A request that could not go out (or got no answer) and must be resent unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Pending {
    Qualification,
    EmergencyInfo,
}

/// One patient contact. All patient data of the session lives here and nowhere else.
#[derive(Clone, Debug)]
pub struct Incident {
    pub id: IncidentId,
    /// What is on the reader, once known (EF 0006).
    pub token: Option<crate::domain::TokenKind>,
    pub credential: Option<CardCredential>,
    pub qualification: Option<QualificationRef>,
    pub coverage: Option<Coverage>,
    pub identity_check: Option<IdentityCheck>,
    pub consent: Option<ConsentDecision>,
    /// Why consent was unobtainable, with that decision.
    pub unobtainable_reason: Option<UnobtainableReason>,
    pub info: Option<EmergencyInfo>,
    /// The consent decision as first chosen, when it was corrected since (訂正).
    pub corrected_from: Option<ConsentDecision>,
    /// Whether an explanation record (handed or still owed) was appended.
    pub explanation_recorded: bool,
    /// The request that failed, kept so that Retry or LinkRestored can resend it.
    pub(super) waiting: Option<Pending>,
}

impl Incident {
    pub(super) fn new(id: IncidentId) -> Self {
        Incident {
            id,
            token: None,
            credential: None,
            qualification: None,
            coverage: None,
            identity_check: None,
            consent: None,
            unobtainable_reason: None,
            info: None,
            corrected_from: None,
            explanation_recorded: false,
            waiting: None,
        }
    }
}
