//! What the crew (or the road) asks of the controller: the commands the UI, a drill or a
//! test sends. Their `Debug` names them only (a PIN is never printed).

pub use super::handoff::HandoffCommand;
use crate::domain::{ConsentDecision, UnobtainableReason};

/// What the crew (or the road) does.
#[derive(Clone, PartialEq)]
pub enum Command {
    SignIn {
        crew_id: String,
        pin: String,
    },
    SignOut,
    /// The reader reports a card.
    CardPlaced,
    CardRemoved,
    /// 顔写真と本人が一致.
    ConfirmPhoto,
    /// PIN fallback: the patient's PIN, entered on the tablet (on an Android phone: the
    /// smartphone PIN, before anything is read).
    EnterPin {
        pin: String,
        confirm_last_try: bool,
    },
    /// The patient cannot type the phone's PIN (unconscious etc.).
    PatientCannotEnterPin,
    /// The consent decision; 同意取得困難 with the reason the crew chose.
    Consent(ConsentDecision, Option<UnobtainableReason>),
    /// 訂正 of the consent decision while viewing (to 同意取得困難 with its reason).
    CorrectConsent(ConsentDecision, Option<UnobtainableReason>),
    /// 傷病者用説明書を渡した.
    ExplanationHanded,
    ViewFullData,
    BackToSummary,
    EndViewing,
    Retry,
    /// The line is known to be down / back (drills; on a tablet the link monitor says so).
    LinkLost,
    LinkRestored,
    IdleTimeout,
    /// The hand-off screens (受入照会 → 搬送決定 → 到着).
    Handoff(HandoffCommand),
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // PINs never reach a log.
        f.write_str(self.name())
    }
}

impl Command {
    pub fn name(&self) -> &'static str {
        match self {
            Command::SignIn { .. } => "sign_in",
            Command::SignOut => "sign_out",
            Command::CardPlaced => "card_placed",
            Command::CardRemoved => "card_removed",
            Command::ConfirmPhoto => "confirm_photo",
            Command::EnterPin { .. } => "enter_pin",
            Command::PatientCannotEnterPin => "patient_cannot_enter_pin",
            Command::Consent(..) => "consent",
            Command::CorrectConsent(..) => "correct_consent",
            Command::ExplanationHanded => "explanation_handed",
            Command::ViewFullData => "view_full_data",
            Command::BackToSummary => "back_to_summary",
            Command::EndViewing => "end_viewing",
            Command::Retry => "retry",
            Command::LinkLost => "link_lost",
            Command::LinkRestored => "link_restored",
            Command::IdleTimeout => "idle_timeout",
            Command::Handoff(_) => "handoff",
        }
    }
}
