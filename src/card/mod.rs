//! The patient's My Number card, layered apdu → transport → jpki:
//! [`apdu`] encodes commands and checks every response and length; [`Transport`] carries
//! APDUs to a card (pcscd through [`pcsc_reader`], or the in-process [`VirtualCard`] for
//! drills); [`jpki`] is the dialogue that reads the user-authentication certificate (without
//! a PIN from a card; behind the smartphone PIN from an Android phone). [`vpcd`] lets a [`VirtualCard`] insert itself into pcscd's virtual reader.
//!
//! What is inside: the patient's card, layered `apdu` (short APDUs, status words, DER
//! length, every length bounded; an empty answer is "card vanished", never data) →
//! `Transport` (pcscd via `pcsc_reader`: readers, waiting with get_status_change following
//! readers that appear, disconnect leaving the card; or the in-process `VirtualCard`) →
//! `jpki` (SELECT AP, EF 0006 read by its short EF id in one APDU — card, Android phone or
//! iPhone; a 住基カード's label is not a My Number card — SELECT EF, READ BINARY in 256-byte
//! chunks: 3 + ⌈n/256⌉ APDUs; an Android phone's certificate only after its smartphone PIN
//! (`read_phone_certificate`), an iPhone's only once its owner unlocked it; the PIN
//! fallback: tries left without spending one, one VERIFY per attempt, none sent on the last
//! try unless confirmed; the challenge signature on EF 0017: RSA-2048 PKCS#1 v1.5 over the
//! DigestInfo it is sent, as on real cards, so OpenSC's pkcs11-tool signs with the virtual
//! card too). `virtual_card`: JPKI AP (000A/000B/0006/0017/0018 and the signature EFs
//! OpenSC probes), card-face helper AP, PIN counters and blocking, faults, and a phone mode
//! (`as_phone`: the token label, the PIN or the owner's unlock before the certificate and
//! the key, a phone's delay over vpcd); `vpcd`: the card's side of the vpcd protocol with
//! TCP_QUICKACK after every read; `replay`: `ReplayCard`, a card that answers from a
//! recorded script (the fuzz target and its seeds). `CardError` → `CardFailure` for the
//! session

pub mod apdu;
pub mod jpki;
pub mod pcsc_reader;
pub mod replay;
pub mod virtual_card;
pub mod vpcd;

pub use replay::ReplayCard;
pub use virtual_card::{CardFaults, FaceItems, VirtualCard};

use crate::domain::CardFailure;
use thiserror::Error;

/// Why a card could not be read, in kinds a crew can act on.
#[derive(Debug, Error)]
pub enum CardError {
    #[error("no card reader found")]
    NoReader,
    #[error("PC/SC service (pcscd) not running")]
    ServiceDown,
    #[error("not a My Number card (JPKI application not found)")]
    NotMyNumberCard,
    #[error("card removed during the read")]
    Removed,
    #[error("card does not answer properly: {0}")]
    Unresponsive(String),
    #[error("reader busy")]
    ReaderBusy,
    #[error("card answered {sw} to {what}")]
    Status {
        what: &'static str,
        sw: apdu::StatusWord,
    },
    #[error("certificate on the card is malformed: {0}")]
    BadCertificate(String),
    #[error("PC/SC: {0}")]
    Pcsc(String),
    #[error("timed out waiting for a card")]
    Timeout,
    #[error("waiting for a card was cancelled")]
    Cancelled,
    #[error("the PIN must be 4 digits")]
    PinFormat,
    #[error("only one PIN try is left: the crew must confirm before it is spent")]
    LastTryNeedsConfirmation,
    /// Not a failure: an Android phone's certificate is read only after its smartphone PIN.
    #[error("an Android phone: the patient's smartphone PIN comes before the certificate")]
    PhonePinRequired,
    #[error("an iPhone its owner has not unlocked (Face ID / Touch ID)")]
    PhoneLocked,
}

impl CardError {
    /// The session's view of this failure.
    pub fn card_failure(&self) -> CardFailure {
        match self {
            CardError::NoReader => CardFailure::NoReader,
            CardError::ServiceDown => CardFailure::ReaderServiceDown,
            CardError::NotMyNumberCard => CardFailure::NotMyNumberCard,
            CardError::Removed => CardFailure::RemovedDuringRead,
            CardError::PhoneLocked => CardFailure::PhoneLocked,
            CardError::ReaderBusy => CardFailure::ReaderBusy,
            CardError::Unresponsive(_)
            | CardError::Status { .. }
            | CardError::BadCertificate(_)
            | CardError::Pcsc(_)
            | CardError::Timeout
            | CardError::Cancelled
            | CardError::PinFormat
            | CardError::LastTryNeedsConfirmation
            | CardError::PhonePinRequired => CardFailure::Unresponsive,
        }
    }
}

/// Something that carries command APDUs to a card and brings back raw responses.
pub trait Transport {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, CardError>;
}

/// The in-process reader: the virtual card answers directly.
impl Transport for VirtualCard {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, CardError> {
        VirtualCard::transmit(self, apdu).ok_or(CardError::Removed)
    }
}
