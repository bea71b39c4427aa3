//! The JPKI dialogue's tests against the virtual card and recorded answers.

use super::*;
use crate::card::{CardFaults, FaceItems, VirtualCard};
use proptest::prelude::*;

fn assert_security_not_satisfied(err: &CardError) {
    assert!(
        matches!(
            err,
            CardError::Status {
                sw: apdu::StatusWord::SECURITY_NOT_SATISFIED,
                ..
            }
        ),
        "{err}"
    );
}

fn card() -> (VirtualCard, Vec<u8>, Vec<u8>) {
    let ca = crate::pki::JpkiTestCa::generate().unwrap();
    let c = ca.issue_card(0x4d4e_0001_0000_0001).unwrap();
    (
        VirtualCard::new(
            &c.auth_certificate_der,
            &c.ca_certificate_der,
            "1234",
            FaceItems::default(),
        )
        .with_auth_key(c.auth_key_pkcs8.clone()),
        c.auth_certificate_der,
        c.ca_certificate_der,
    )
}

#[test]
fn reads_the_exact_certificate_with_minimal_apdus() {
    let (mut vc, cert, ca) = card();
    let r = read_auth_certificate(&mut vc).unwrap();
    assert_eq!(r.der, cert);
    // SELECT AP, READ BINARY of EF 0006 by SFI, SELECT EF 000A, the certificate's reads
    assert_eq!(r.apdus, 3 + cert.len().div_ceil(256));
    assert_eq!(r.token, TokenKind::Card);
    assert_eq!(read_auth_ca_certificate(&mut vc).unwrap().der, ca);
}

#[test]
fn a_non_jpki_card_is_not_a_my_number_card() {
    let (mut vc, _, _) = card();
    vc.faults = CardFaults {
        not_jpki: true,
        ..Default::default()
    };
    assert!(matches!(
        read_auth_certificate(&mut vc),
        Err(CardError::NotMyNumberCard)
    ));
}

#[test]
fn removal_at_every_apdu_index_is_a_clean_error_then_a_clean_read() {
    let (mut vc, cert, _) = card();
    let needed = 3 + cert.len().div_ceil(256);
    for n in 0..needed {
        vc.reset();
        vc.faults.remove_after_apdus = Some(vc.apdu_count() + n);
        let err = read_auth_certificate(&mut vc).unwrap_err();
        assert!(matches!(err, CardError::Removed), "at {n}: {err}");
        vc.faults.remove_after_apdus = None;
        assert_eq!(read_auth_certificate(&mut vc).unwrap().der, cert);
    }
}

#[test]
fn garbage_answers_are_unresponsive_not_data() {
    let (mut vc, _, _) = card();
    vc.faults.garbage = true;
    let err = read_auth_certificate(&mut vc).unwrap_err();
    assert!(matches!(err, CardError::Unresponsive(_)), "{err}");
}

#[test]
fn pin_tries_count_down_and_block() {
    let (mut vc, _, _) = card();
    let mut n = 0;
    let mut send = |vc: &mut VirtualCard, a: Vec<u8>| {
        n += 1;
        Response::parse(&vc.transmit(&a).unwrap()).unwrap().sw
    };
    send(&mut vc, apdu::select_df(&JPKI_AID));
    send(&mut vc, apdu::select_ef([0x00, 0x18]));
    assert_eq!(
        send(&mut vc, apdu::verify(0x80, &[]).unwrap()).tries_left(),
        Some(3)
    );
    assert_eq!(
        send(&mut vc, apdu::verify(0x80, b"0000").unwrap()).tries_left(),
        Some(2)
    );
    assert_eq!(
        send(&mut vc, apdu::verify(0x80, b"1234").unwrap()),
        apdu::StatusWord::OK
    );
    for left in [2, 1] {
        assert_eq!(
            send(&mut vc, apdu::verify(0x80, b"9999").unwrap()).tries_left(),
            Some(left)
        );
    }
    assert_eq!(
        send(&mut vc, apdu::verify(0x80, b"9999").unwrap()),
        apdu::StatusWord::PIN_BLOCKED
    );
    assert_eq!(
        send(&mut vc, apdu::verify(0x80, b"1234").unwrap()),
        apdu::StatusWord::PIN_BLOCKED
    );
}

#[test]
fn pin_fallback_shows_tries_never_retries_and_guards_the_last_try() {
    let (mut vc, _, _) = card();
    assert_eq!(auth_pin_state(&mut vc).unwrap(), PinState::TriesLeft(3));
    assert!(matches!(
        verify_auth_pin(&mut vc, "12a4", false),
        Err(CardError::PinFormat)
    ));
    let sent = vc.apdu_count();
    assert_eq!(
        verify_auth_pin(&mut vc, "0000", false).unwrap(),
        PinOutcome::Wrong { tries_left: 2 }
    );
    // one attempt = select AP, select EF, query, verify: no automatic retry
    assert_eq!(vc.apdu_count() - sent, 4);
    assert_eq!(
        verify_auth_pin(&mut vc, "1111", false).unwrap(),
        PinOutcome::Wrong { tries_left: 1 }
    );
    assert!(matches!(
        verify_auth_pin(&mut vc, "2222", false),
        Err(CardError::LastTryNeedsConfirmation)
    ));
    assert_eq!(
        auth_pin_state(&mut vc).unwrap(),
        PinState::TriesLeft(1),
        "refusal spent nothing"
    );
    assert_eq!(
        verify_auth_pin(&mut vc, "2222", true).unwrap(),
        PinOutcome::Blocked
    );
    assert_eq!(auth_pin_state(&mut vc).unwrap(), PinState::Blocked);
    assert_eq!(
        verify_auth_pin(&mut vc, "1234", true).unwrap(),
        PinOutcome::Blocked
    );
}

#[test]
fn the_right_pin_verifies_and_resets_the_counter() {
    let (mut vc, _, _) = card();
    verify_auth_pin(&mut vc, "9999", false).unwrap();
    assert_eq!(
        verify_auth_pin(&mut vc, "1234", false).unwrap(),
        PinOutcome::Verified
    );
    assert_eq!(auth_pin_state(&mut vc).unwrap(), PinState::TriesLeft(3));
}

#[test]
fn the_challenge_signature_needs_the_pin_and_verifies_with_the_card_certificate() {
    let (mut vc, cert, _) = card();
    let challenge = b"server nonce 0123456789";
    let err = sign_challenge(&mut vc, challenge).unwrap_err();
    assert_security_not_satisfied(&err);
    assert_eq!(
        verify_auth_pin(&mut vc, "1234", false).unwrap(),
        PinOutcome::Verified
    );
    let sig = sign_challenge(&mut vc, challenge).unwrap();
    assert_eq!(sig.len(), 256, "RSA-2048");
    assert!(crate::pki::verify_card_signature(&cert, challenge, &sig));
    assert!(!crate::pki::verify_card_signature(&cert, b"other", &sig));
}

fn phone(kind: TokenKind) -> (VirtualCard, Vec<u8>) {
    let (vc, cert, _) = card();
    (vc.as_phone(kind), cert)
}

#[test]
fn ef_0006_tells_card_android_and_iphone_apart() {
    for (kind, label) in [
        (TokenKind::Card, TOKEN_LABEL_CARD),
        (TokenKind::AndroidPhone, TOKEN_LABEL_ANDROID),
        (TokenKind::IPhone, TOKEN_LABEL_IPHONE),
    ] {
        let (mut vc, _) = phone(kind);
        select_jpki(&mut vc).unwrap();
        assert_eq!(read_token(&mut vc).unwrap(), kind, "{label}");
    }
    let mut padded = TOKEN_LABEL_ANDROID.as_bytes().to_vec();
    padded.resize(32, b' ');
    assert_eq!(token_kind(&padded).unwrap(), TokenKind::AndroidPhone);
    assert!(matches!(
        token_kind(b"JPKIAPICCTOKEN      "),
        Err(CardError::NotMyNumberCard)
    ));
    // an unknown label is read as a card, not refused
    assert_eq!(token_kind(b"JPKIAPICCTOKEN3").unwrap(), TokenKind::Card);
    assert_eq!(token_kind(b"").unwrap(), TokenKind::Card);
}

/// A card that refuses READ BINARY by short EF identifier (6A 81).
struct NoSfi(VirtualCard);
impl Transport for NoSfi {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, CardError> {
        if apdu.get(1) == Some(&0xB0) && apdu.get(2).is_some_and(|p1| p1 & 0x80 != 0) {
            return Ok(vec![0x6A, 0x81]);
        }
        self.0.transmit(apdu).ok_or(CardError::Removed)
    }
}

#[test]
fn a_card_without_short_ef_reads_falls_back_to_select_and_read() {
    let (vc, cert, _) = card();
    let mut t = NoSfi(vc.as_phone(TokenKind::IPhone));
    t.0.owner_unlocked = true;
    let r = read_auth_certificate(&mut t).unwrap();
    assert_eq!((r.token, &r.der), (TokenKind::IPhone, &cert));
    // the refused SFI read, then SELECT EF 0006 and READ BINARY: two more
    assert_eq!(r.apdus, 5 + cert.len().div_ceil(256));
}

#[test]
fn an_android_phone_gives_nothing_before_its_pin_then_its_certificate() {
    let (mut vc, cert) = phone(TokenKind::AndroidPhone);
    let before = vc.apdu_count();
    assert!(matches!(
        read_auth_certificate(&mut vc),
        Err(CardError::PhonePinRequired)
    ));
    // SELECT AP and the token read: nothing more is asked of a phone before its PIN
    assert_eq!(vc.apdu_count() - before, 2);
    // even asked directly, the certificate EF answers 6982 before the PIN
    select_jpki(&mut vc).unwrap();
    let err = read_certificate_ef(&mut vc, EF_AUTH_CERT).unwrap_err();
    assert_security_not_satisfied(&err);
    assert_eq!(
        read_phone_certificate(&mut vc, "0000", false).unwrap(),
        (PinOutcome::Wrong { tries_left: 2 }, None)
    );
    let (outcome, der) = read_phone_certificate(&mut vc, "1234", false).unwrap();
    assert_eq!((outcome, der), (PinOutcome::Verified, Some(cert.clone())));
    // and it signs only with its PIN verified in the session
    vc.reset();
    assert!(sign_challenge(&mut vc, b"c").is_err());
    verify_auth_pin(&mut vc, "1234", false).unwrap();
    let sig = sign_challenge(&mut vc, b"c").unwrap();
    assert!(crate::pki::verify_card_signature(&cert, b"c", &sig));
}

#[test]
fn an_iphone_is_read_only_once_its_owner_unlocked_it() {
    let (mut vc, cert) = phone(TokenKind::IPhone);
    assert!(matches!(
        read_auth_certificate(&mut vc),
        Err(CardError::PhoneLocked)
    ));
    assert!(sign_challenge(&mut vc, b"c").is_err());
    vc.owner_unlocked = true;
    let r = read_auth_certificate(&mut vc).unwrap();
    assert_eq!((r.token, r.der), (TokenKind::IPhone, cert.clone()));
    // the owner's unlock, not a PIN, opens the key
    let sig = sign_challenge(&mut vc, b"c").unwrap();
    assert!(crate::pki::verify_card_signature(&cert, b"c", &sig));
}

#[test]
fn a_phone_pulled_away_at_any_apdu_of_its_pin_read_is_a_clean_error() {
    let (mut vc, cert) = phone(TokenKind::AndroidPhone);
    // select AP, select PIN EF, tries query, VERIFY, select EF 000A, the reads
    let needed = 5 + cert.len().div_ceil(256);
    for n in 0..needed {
        vc.reset();
        vc.faults.remove_after_apdus = Some(vc.apdu_count() + n);
        let err = read_phone_certificate(&mut vc, "1234", false).unwrap_err();
        assert!(matches!(err, CardError::Removed), "at {n}: {err}");
        vc.faults.remove_after_apdus = None;
    }
    vc.reset();
    assert_eq!(
        read_phone_certificate(&mut vc, "1234", false).unwrap().1,
        Some(cert)
    );
}

/// A card that answers arbitrary bytes to every READ BINARY.
struct Hostile {
    answers: Vec<Vec<u8>>,
    i: usize,
}
impl Transport for Hostile {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, CardError> {
        if apdu[1] == 0xA4 {
            return Ok(vec![0x90, 0x00]);
        }
        let a = self.answers.get(self.i).cloned().unwrap_or_default();
        self.i += 1;
        Ok(a)
    }
}

proptest! {
    #[test]
    fn hostile_answers_never_panic_loop_or_overallocate(
        answers in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..40)
    ) {
        let mut t = Hostile { answers, i: 0 };
        if let Ok(r) = read_auth_certificate(&mut t) {
            prop_assert!(r.der.len() <= MAX_CERT_BYTES);
        }
        prop_assert!(t.i <= 40, "kept reading after the answers ran out");
    }
}
