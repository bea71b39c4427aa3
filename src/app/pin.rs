//! The PIN flows of the identity screen: the patient's card PIN (the PIN path, the card's
//! signature over the server's challenge in the same card session) and an Android phone's
//! smartphone PIN (kept zeroizing until the phone signed), with their phase checks.

use super::*;

impl Controller {
    pub(super) fn enter_pin(&mut self, pin: String, confirm_last_try: bool) {
        if self.session.phase() != Phase::IdentityAndConsent {
            return;
        }
        let Some((incident, challenge)) = self.session.incident().and_then(|i| {
            let q = i.qualification.as_ref()?;
            Some((i.id.clone(), crate::domain::pin_challenge(q, &i.id)))
        }) else {
            return;
        };
        let reader = self.ports.reader.clone();
        let failed = incident.clone();
        self.spawn(
            async move {
                let checked = tokio::task::spawn_blocking(move || {
                    reader.verify_pin(&pin, confirm_last_try, &challenge)
                })
                .await
                .unwrap_or_else(|e| Err(CardError::Unresponsive(format!("card task: {e}"))));
                Outcome::Pin(incident, checked)
            },
            Outcome::Pin(
                failed,
                Err(CardError::Unresponsive("card task failed".into())),
            ),
        );
    }

    /// The smartphone PIN of an Android phone: one attempt, then the certificate in the same
    /// card session (`CardReadOk`), on the blocking pool.
    pub(super) fn enter_phone_pin(&mut self, pin: String, confirm_last_try: bool) {
        let Some(incident) = self.session.incident().map(|i| i.id.clone()) else {
            return;
        };
        let reader = self.ports.reader.clone();
        let failed = incident.clone();
        let pin = zeroize::Zeroizing::new(pin);
        self.spawn(
            async move {
                let (checked, pin) = tokio::task::spawn_blocking(move || {
                    (reader.read_phone(&pin, confirm_last_try), pin)
                })
                .await
                .unwrap_or_else(|e| {
                    (
                        Err(CardError::Unresponsive(format!("card task: {e}"))),
                        zeroize::Zeroizing::new(String::new()),
                    )
                });
                Outcome::PhonePin(incident, checked, pin)
            },
            Outcome::PhonePin(
                failed,
                Err(CardError::Unresponsive("card task failed".into())),
                zeroize::Zeroizing::new(String::new()),
            ),
        );
    }

    pub(super) fn phone_pin_outcome(
        &mut self,
        incident: IncidentId,
        outcome: Result<reader::PhoneRead, CardError>,
        pin: zeroize::Zeroizing<String>,
    ) -> Option<Event> {
        if self.session.phase() != Phase::PhonePin
            || self.session.incident().map(|i| &i.id) != Some(&incident)
        {
            // the incident ended (or the phone left) while the phone checked the PIN
            return None;
        }
        self.pin = PinView::default();
        let (event, note) = match outcome {
            Ok(reader::PhoneRead {
                outcome: PinOutcome::Verified,
                credential: Some(credential),
            }) => {
                self.phone_pin = Some((incident.clone(), pin));
                (
                    Some(Event::CardReadOk {
                        incident,
                        credential,
                    }),
                    "phone pin: verified, certificate read".to_string(),
                )
            }
            Ok(reader::PhoneRead {
                outcome: PinOutcome::Verified,
                ..
            }) => {
                self.pin.message = view::PinNotice::PhoneNotConfirmed.message_ja();
                (None, "phone pin: verified but no certificate".into())
            }
            Ok(reader::PhoneRead { outcome, .. }) => (
                None,
                self.pin_refused("phone pin", Ok(outcome), view::PinNotice::PhoneBlocked)
                    .unwrap_or_default(),
            ),
            Err(e)
                if let Some(note) =
                    self.pin_refused("phone pin", Err(&e), view::PinNotice::PhoneBlocked) =>
            {
                (None, note)
            }
            Err(e) => {
                // the phone pulled away (or mute): nothing was read, nothing stays
                tracing::warn!(error = %e, "phone read failed");
                (
                    Some(Event::CardReadFailed {
                        incident,
                        failure: e.card_failure(),
                    }),
                    format!("phone pin: {e}"),
                )
            }
        };
        self.note(note);
        event
    }

    /// On the identity screen with a phone whose owner was not confirmed yet: have the
    /// phone sign the server's challenge at once (no tap: the PIN or the owner's unlock
    /// came before the read).
    pub(super) fn sign_on_phone(&mut self) {
        let Some(i) = self.session.incident() else {
            return;
        };
        let token = i.token.unwrap_or_default();
        if self.session.phase() != Phase::IdentityAndConsent
            || !token.is_phone()
            || i.identity_check.is_some()
            || self.phone_signing.as_ref() == Some(&i.id)
        {
            return;
        }
        let Some(q) = i.qualification.as_ref() else {
            return;
        };
        let incident = i.id.clone();
        let challenge = crate::domain::pin_challenge(q, &incident);
        let pin = match (token, &self.phone_pin) {
            (crate::domain::TokenKind::AndroidPhone, Some((id, pin))) if *id == incident => {
                Some(pin.clone())
            }
            (crate::domain::TokenKind::AndroidPhone, _) => return,
            _ => None,
        };
        self.phone_signing = Some(incident.clone());
        let reader = self.ports.reader.clone();
        let failed = incident.clone();
        self.spawn(
            async move {
                let signed = tokio::task::spawn_blocking(move || {
                    reader.phone_sign(pin.as_ref().map(|p| p.as_str()), &challenge)
                })
                .await
                .unwrap_or_else(|e| Err(CardError::Unresponsive(format!("card task: {e}"))));
                Outcome::PhoneSigned(incident, signed)
            },
            Outcome::PhoneSigned(
                failed,
                Err(CardError::Unresponsive("card task failed".into())),
            ),
        );
    }

    pub(super) fn phone_signed(
        &mut self,
        incident: IncidentId,
        signed: Result<Vec<u8>, CardError>,
    ) -> Option<Event> {
        self.phone_signing = None;
        if self.session.phase() != Phase::IdentityAndConsent
            || self.session.incident().map(|i| &i.id) != Some(&incident)
        {
            return None;
        }
        self.phone_pin = None;
        let check = match self.session.incident().and_then(|i| i.token) {
            Some(crate::domain::TokenKind::IPhone) => IdentityCheck::PhoneBiometric,
            _ => IdentityCheck::Pin,
        };
        match signed {
            Ok(sig) => {
                self.card_signature = Some((incident, sig));
                self.note("phone: signed the challenge".into());
                Some(Event::IdentityConfirmed { check })
            }
            Err(e) => {
                tracing::warn!(error = %e, "the phone did not sign the challenge");
                self.pin.message = view::PinNotice::PhoneNotConfirmed.message_ja();
                self.note(format!("phone: not signed: {e}"));
                None
            }
        }
    }

    /// The answers a PIN attempt has alike on the card and on a phone: wrong (tries left),
    /// blocked (`blocked` says what then), one try left to confirm, not 4 digits. Sets the
    /// PIN pad's message and returns the journal's note; `None` for any other answer.
    pub(super) fn pin_refused(
        &mut self,
        who: &str,
        answer: Result<PinOutcome, &CardError>,
        blocked: view::PinNotice,
    ) -> Option<String> {
        let (notice, note) = match answer {
            Ok(PinOutcome::Wrong { tries_left }) => (
                view::PinNotice::Wrong { tries_left },
                format!("{who}: wrong, tries left: {tries_left}"),
            ),
            Ok(PinOutcome::Blocked) => {
                self.pin.blocked = true;
                (blocked, format!("{who}: blocked"))
            }
            Err(CardError::LastTryNeedsConfirmation) => {
                self.pin.confirm_last_try = true;
                (
                    view::PinNotice::LastTry,
                    format!("{who}: one try left, crew confirms the last try"),
                )
            }
            Err(CardError::PinFormat) => (view::PinNotice::Format, format!("{who}: not 4 digits")),
            Ok(PinOutcome::Verified) | Err(_) => return None,
        };
        self.pin.message = notice.message_ja();
        Some(note)
    }

    pub(super) fn pin_outcome(
        &mut self,
        incident: IncidentId,
        outcome: Result<reader::PinChecked, CardError>,
    ) -> Option<Event> {
        if self.session.phase() != Phase::IdentityAndConsent
            || self.session.incident().map(|i| &i.id) != Some(&incident)
        {
            // the incident ended while the card was checking the PIN
            return None;
        }
        self.pin = PinView::default();
        let outcome = outcome.map(|checked| {
            if let Some(sig) = checked.signature {
                self.card_signature = Some((incident.clone(), sig));
            }
            checked.outcome
        });
        let (event, note) = match outcome {
            Ok(PinOutcome::Verified) => (
                Some(Event::IdentityConfirmed {
                    check: IdentityCheck::Pin,
                }),
                "pin: verified".to_string(),
            ),
            Ok(outcome) => (
                None,
                self.pin_refused("pin", Ok(outcome), view::PinNotice::Blocked)
                    .unwrap_or_default(),
            ),
            Err(e)
                if let Some(note) = self.pin_refused("pin", Err(&e), view::PinNotice::Blocked) =>
            {
                (None, note)
            }
            Err(e) => {
                self.pin.message =
                    view::PinNotice::Card(Notice::from_card_failure(e.card_failure())).message_ja();
                (None, format!("pin: {e}"))
            }
        };
        self.note(note);
        event
    }
}
