//! The card slot the controller reads from: PC/SC (pcscd) on a real tablet, or the
//! in-process virtual reader that training and the UI tests place virtual cards on.
//! Calls block (APDUs), so the controller runs them on tokio's blocking pool.

use crate::card::jpki::{self, PinOutcome};
use crate::card::pcsc_reader::{Pcsc, WaitCanceller};
use crate::card::{CardError, Transport, VirtualCard};
use crate::domain::CardCredential;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::mpsc;

/// A reader with at most one card (or phone) on it.
pub trait CardReader: Send + Sync {
    /// Read the card's user-authentication certificate. An Android phone answers
    /// [`CardError::PhonePinRequired`] (then [`Self::read_phone`]); an iPhone its owner has
    /// not unlocked [`CardError::PhoneLocked`].
    fn read_credential(&self) -> Result<CardCredential, CardError>;
    /// An Android phone: the patient's smartphone PIN, then its certificate, in one card
    /// session.
    fn read_phone(&self, pin: &str, confirm_last_try: bool) -> Result<PhoneRead, CardError>;
    /// A phone signs the server's challenge: an Android phone after its smartphone PIN
    /// (`pin`) again in this card session, an unlocked iPhone as it is (`None`).
    fn phone_sign(&self, pin: Option<&str>, challenge: &[u8]) -> Result<Vec<u8>, CardError>;
    /// Verify the patient's PIN (PIN fallback when the photo cannot be checked) and, once
    /// verified, have the card sign `challenge` with its authentication key in the same
    /// card session (the PIN's security status does not outlive it).
    fn verify_pin(
        &self,
        pin: &str,
        confirm_last_try: bool,
        challenge: &[u8],
    ) -> Result<PinChecked, CardError>;
}

/// A PIN check's outcome, with the card's signature over the challenge when verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinChecked {
    pub outcome: PinOutcome,
    /// `None` when the PIN was not verified, or the card could not sign (logged; the
    /// eligibility system then refuses the PIN-path inquiry).
    pub signature: Option<Vec<u8>>,
}

/// A smartphone PIN attempt's outcome, with the phone's credential once verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhoneRead {
    pub outcome: PinOutcome,
    pub credential: Option<CardCredential>,
}

fn read_phone_with(
    t: &mut dyn Transport,
    pin: &str,
    confirm_last_try: bool,
) -> Result<PhoneRead, CardError> {
    let (outcome, der) = jpki::read_phone_certificate(t, pin, confirm_last_try)?;
    Ok(PhoneRead {
        outcome,
        credential: der.map(|auth_certificate_der| CardCredential {
            auth_certificate_der,
            token: crate::domain::TokenKind::AndroidPhone,
        }),
    })
}

fn phone_sign_with(
    t: &mut dyn Transport,
    pin: Option<&str>,
    challenge: &[u8],
) -> Result<Vec<u8>, CardError> {
    if let Some(pin) = pin {
        // the right PIN again: no try is spent (a verified PIN resets the counter)
        match jpki::verify_auth_pin(t, pin, true)? {
            PinOutcome::Verified => {}
            other => {
                return Err(CardError::Unresponsive(format!(
                    "the phone refused its PIN for signing: {other:?}"
                )));
            }
        }
    }
    jpki::sign_challenge(t, challenge)
}

fn verify_and_sign(
    t: &mut dyn Transport,
    pin: &str,
    confirm_last_try: bool,
    challenge: &[u8],
) -> Result<PinChecked, CardError> {
    let outcome = jpki::verify_auth_pin(t, pin, confirm_last_try)?;
    let signature = match outcome {
        PinOutcome::Verified => match jpki::sign_challenge(t, challenge) {
            Ok(sig) => Some(sig),
            Err(e) => {
                tracing::warn!(error = %e, "the card did not sign the PIN-path challenge");
                None
            }
        },
        _ => None,
    };
    Ok(PinChecked { outcome, signature })
}

fn read_with(t: &mut dyn Transport) -> Result<CardCredential, CardError> {
    let read = jpki::read_auth_certificate(t)?;
    Ok(CardCredential {
        auth_certificate_der: read.der,
        token: read.token,
    })
}

/// An in-process reader: the trainer (or a test) places and removes virtual cards.
#[derive(Default)]
pub struct VirtualReader {
    slot: Mutex<Option<VirtualCard>>,
}

impl VirtualReader {
    pub fn new() -> Arc<VirtualReader> {
        Arc::new(VirtualReader::default())
    }

    pub fn place(&self, card: VirtualCard) {
        *self.slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(card);
    }

    pub fn remove(&self) -> Option<VirtualCard> {
        self.slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// Let the card leave the reader after `n` more APDUs (a card pulled away mid-read).
    pub fn remove_after_apdus(&self, n: usize) {
        if let Some(card) = self
            .slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
        {
            card.faults.remove_after_apdus = Some(card.apdu_count() + n);
        }
    }

    fn with_card<T>(
        &self,
        f: impl FnOnce(&mut VirtualCard) -> Result<T, CardError>,
    ) -> Result<T, CardError> {
        let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        let card = slot.as_mut().ok_or(CardError::Removed)?;
        let out = f(card);
        if matches!(out, Err(CardError::Removed)) {
            *slot = None;
        }
        out
    }
}

impl CardReader for VirtualReader {
    fn read_credential(&self) -> Result<CardCredential, CardError> {
        self.with_card(|c| read_with(c))
    }

    fn verify_pin(
        &self,
        pin: &str,
        confirm_last_try: bool,
        challenge: &[u8],
    ) -> Result<PinChecked, CardError> {
        self.with_card(|c| verify_and_sign(c, pin, confirm_last_try, challenge))
    }

    fn read_phone(&self, pin: &str, confirm_last_try: bool) -> Result<PhoneRead, CardError> {
        self.with_card(|c| read_phone_with(c, pin, confirm_last_try))
    }

    fn phone_sign(&self, pin: Option<&str>, challenge: &[u8]) -> Result<Vec<u8>, CardError> {
        self.with_card(|c| phone_sign_with(c, pin, challenge))
    }
}

/// The tablet's PC/SC reader (any reader pcscd knows; the one the card was seen on).
pub struct PcscReader {
    reader: Mutex<Option<String>>,
}

impl PcscReader {
    /// Watch for cards on a thread of its own: each card placed sends `true`, its removal
    /// `false`. The returned handle stops the watch.
    pub fn watch(presence: mpsc::Sender<bool>) -> (Arc<PcscReader>, PresenceWatch) {
        let reader = Arc::new(PcscReader {
            reader: Mutex::new(None),
        });
        let stop = Arc::new(Mutex::new(None::<WaitCanceller>));
        let (r, s) = (reader.clone(), stop.clone());
        std::thread::spawn(move || watch_loop(&r, &s, &presence));
        (reader, PresenceWatch { canceller: stop })
    }

    fn connect(&self) -> Result<(Pcsc, crate::card::pcsc_reader::PcscCard), CardError> {
        let name = self
            .reader
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or(CardError::Removed)?;
        let pcsc = Pcsc::establish()?;
        let card = pcsc.connect(&name)?;
        Ok((pcsc, card))
    }
}

/// Stops a [`PcscReader::watch`].
pub struct PresenceWatch {
    canceller: Arc<Mutex<Option<WaitCanceller>>>,
}

impl Drop for PresenceWatch {
    fn drop(&mut self) {
        if let Some(c) = self
            .canceller
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            c.cancel();
        }
    }
}

fn watch_loop(
    reader: &PcscReader,
    stop: &Mutex<Option<WaitCanceller>>,
    presence: &mpsc::Sender<bool>,
) {
    loop {
        if presence.is_closed() {
            return;
        }
        let found = crate::card::pcsc_reader::wait_for_card_anywhere(None, Duration::from_secs(2));
        match found {
            Ok((pcsc, name)) => {
                *stop.lock().unwrap_or_else(PoisonError::into_inner) = Some(pcsc.canceller());
                *reader.reader.lock().unwrap_or_else(PoisonError::into_inner) = Some(name.clone());
                if presence.blocking_send(true).is_err() {
                    return;
                }
                match pcsc.wait_for_removal(&name, Duration::from_secs(24 * 3600)) {
                    Ok(()) => {}
                    Err(CardError::Cancelled) => return,
                    Err(e) => tracing::warn!(error = %e, "waiting for card removal failed"),
                }
                *reader.reader.lock().unwrap_or_else(PoisonError::into_inner) = None;
                if presence.blocking_send(false).is_err() {
                    return;
                }
            }
            Err(CardError::Timeout) => {}
            Err(CardError::Cancelled) => return,
            Err(e) => {
                tracing::warn!(error = %e, "card watch");
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }
}

impl CardReader for PcscReader {
    fn read_credential(&self) -> Result<CardCredential, CardError> {
        let (_pcsc, mut card) = self.connect()?;
        read_with(&mut card)
    }

    fn verify_pin(
        &self,
        pin: &str,
        confirm_last_try: bool,
        challenge: &[u8],
    ) -> Result<PinChecked, CardError> {
        let (_pcsc, mut card) = self.connect()?;
        verify_and_sign(&mut card, pin, confirm_last_try, challenge)
    }

    fn read_phone(&self, pin: &str, confirm_last_try: bool) -> Result<PhoneRead, CardError> {
        let (_pcsc, mut card) = self.connect()?;
        read_phone_with(&mut card, pin, confirm_last_try)
    }

    fn phone_sign(&self, pin: Option<&str>, challenge: &[u8]) -> Result<Vec<u8>, CardError> {
        let (_pcsc, mut card) = self.connect()?;
        phone_sign_with(&mut card, pin, challenge)
    }
}
