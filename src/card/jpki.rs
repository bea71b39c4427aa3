//! The JPKI dialogue: SELECT the JPKI AP, read the token information (EF 0006) by its short
//! EF identifier in one APDU, SELECT an EF, READ BINARY in 256-byte chunks with the total
//! taken from the DER header. The first read brings the header and the first data at
//! once, so a certificate of n bytes costs 3 + ⌈n/256⌉ APDUs.
//!
//! EF 0006 tells the plastic card from a phone's スマホ用電子証明書, which serves the same
//! application: an Android phone needs the smartphone PIN before even the certificate
//! ([`read_phone_certificate`]); an iPhone answers only once its owner unlocked it.

use super::apdu::{self, ApduError, Response};
use super::{CardError, Transport};
use crate::domain::TokenKind;

// The JPKI application as cards and phones present it (facts from the public
// specifications and client code; the virtual card serves the same ids).

/// JPKI AP (公的個人認証 AP).
pub const JPKI_AID: [u8; 10] = [0xD3, 0x92, 0xF0, 0x00, 0x26, 0x01, 0x00, 0x00, 0x00, 0x01];
/// Card-face helper AP (券面事項入力補助 AP).
pub const FACE_AID: [u8; 10] = [0xD3, 0x92, 0x10, 0x00, 0x31, 0x00, 0x01, 0x01, 0x04, 0x08];
/// The ATR OpenSC's JPKI driver recognises.
pub const JPKI_ATR: [u8; 9] = [0x3B, 0xE0, 0x00, 0xFF, 0x81, 0x31, 0xFE, 0x45, 0x14];

pub const EF_AUTH_CERT: [u8; 2] = [0x00, 0x0A];
pub const EF_AUTH_CA: [u8; 2] = [0x00, 0x0B];
pub const EF_TOKEN_INFO: [u8; 2] = [0x00, 0x06];
pub const EF_AUTH_KEY: [u8; 2] = [0x00, 0x17];
pub const EF_AUTH_PIN: [u8; 2] = [0x00, 0x18];
/// The short EF identifier of EF 0006 (READ BINARY with P1 = 0x80 | SFI).
pub const SFI_TOKEN_INFO: u8 = 0x06;

/// EF 0006's label on a My Number card.
pub const TOKEN_LABEL_CARD: &str = "JPKIAPICCTOKEN2";
/// EF 0006's label on an Android phone's secure element (GP-SE).
pub const TOKEN_LABEL_ANDROID: &str = "JPKIAPGPSETOKEN";
/// EF 0006's label on an iPhone, as public client code reads it (not checked against a
/// device here: see docs/SECURITY.md "Phones").
pub const TOKEN_LABEL_IPHONE: &str = "JPKIAPIOSTOKEN";
/// EF 0006's label on the older 住基カード, which is not a My Number card.
pub const TOKEN_LABEL_JUKI: &str = "JPKIAPICCTOKEN";

/// No JPKI certificate is near this size; a card claiming more is refused.
pub const MAX_CERT_BYTES: usize = 8 * 1024;
/// READ BINARY offsets must stay below 0x8000.
const MAX_OFFSET: usize = 0x7FFF;

/// What a read produced, with the APDUs it took.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateRead {
    pub der: Vec<u8>,
    pub apdus: usize,
    /// What held it (EF 0006).
    pub token: TokenKind,
}

fn exchange(t: &mut dyn Transport, cmd: &[u8], apdus: &mut usize) -> Result<Response, CardError> {
    *apdus += 1;
    let raw = t.transmit(cmd)?;
    Response::parse(&raw).map_err(|e| match e {
        ApduError::Empty => CardError::Removed,
        other => CardError::Unresponsive(other.to_string()),
    })
}

/// SELECT the JPKI AP; 6A 82 means this is not a My Number card.
pub fn select_jpki(t: &mut dyn Transport, apdus: &mut usize) -> Result<(), CardError> {
    let r = exchange(t, &apdu::select_df(&JPKI_AID), apdus)?;
    match r.sw {
        sw if sw.is_ok() => Ok(()),
        apdu::StatusWord::FILE_NOT_FOUND => Err(CardError::NotMyNumberCard),
        sw => Err(CardError::Status {
            what: "SELECT JPKI AP",
            sw,
        }),
    }
}

/// Read the certificate in EF `fid` of the already selected JPKI AP.
pub fn read_certificate_ef(
    t: &mut dyn Transport,
    fid: [u8; 2],
    apdus: &mut usize,
) -> Result<Vec<u8>, CardError> {
    let r = exchange(t, &apdu::select_ef(fid), apdus)?;
    if !r.sw.is_ok() {
        return Err(CardError::Status {
            what: "SELECT EF",
            sw: r.sw,
        });
    }
    let mut der: Vec<u8> = Vec::new();
    let mut total: Option<usize> = None;
    loop {
        let want = match total {
            Some(t) if der.len() >= t => break,
            Some(t) => (t - der.len()).min(256),
            None => 256,
        };
        if der.len() > MAX_OFFSET {
            return Err(CardError::BadCertificate("offset beyond 0x7FFF".into()));
        }
        let r = exchange(t, &apdu::read_binary(der.len() as u16, want as u16), apdus)?;
        if !r.sw.is_ok() {
            return Err(CardError::Status {
                what: "READ BINARY",
                sw: r.sw,
            });
        }
        if r.data.is_empty() {
            return Err(CardError::Unresponsive(
                "READ BINARY returned no data".into(),
            ));
        }
        der.extend_from_slice(&r.data[..r.data.len().min(want)]);
        if total.is_none() {
            total = apdu::der_total_length(&der, MAX_CERT_BYTES)
                .map_err(|e| CardError::BadCertificate(e.to_string()))?;
            if total.is_none() && der.len() >= 8 {
                return Err(CardError::BadCertificate("no DER length".into()));
            }
        }
    }
    if let Some(t) = total {
        der.truncate(t);
    }
    Ok(der)
}

/// The token kind an EF 0006 label names. The 住基カード's label is not a My Number card;
/// a label we do not know is taken for a card (the card path then reads or fails as it
/// would), so a new card generation is not refused for its name.
pub fn token_kind(label: &[u8]) -> Result<TokenKind, CardError> {
    let end = label
        .iter()
        .rposition(|&b| b != b' ' && b != 0)
        .map_or(0, |i| i + 1);
    let name = &label[..end];
    Ok(match name {
        n if n == TOKEN_LABEL_CARD.as_bytes() => TokenKind::Card,
        n if n == TOKEN_LABEL_ANDROID.as_bytes() => TokenKind::AndroidPhone,
        n if n == TOKEN_LABEL_IPHONE.as_bytes() => TokenKind::IPhone,
        n if n == TOKEN_LABEL_JUKI.as_bytes() => return Err(CardError::NotMyNumberCard),
        other => {
            tracing::debug!(label = %String::from_utf8_lossy(other), "unknown JPKI token label: read as a card");
            TokenKind::Card
        }
    })
}

/// EF 0006 of the selected JPKI AP: one READ BINARY by short EF identifier; where that is
/// refused, SELECT EF 0006 and READ BINARY. A token without EF 0006 is read as a card.
pub fn read_token(t: &mut dyn Transport, apdus: &mut usize) -> Result<TokenKind, CardError> {
    let cmd = [0x00, 0xB0, 0x80 | SFI_TOKEN_INFO, 0x00, 0x20];
    let r = exchange(t, &cmd, apdus)?;
    if r.sw.is_ok() {
        return token_kind(&r.data);
    }
    let r = exchange(t, &apdu::select_ef(EF_TOKEN_INFO), apdus)?;
    if r.sw == apdu::StatusWord::FILE_NOT_FOUND {
        return Ok(TokenKind::Card);
    }
    if !r.sw.is_ok() {
        return Err(CardError::Status {
            what: "SELECT EF 0006",
            sw: r.sw,
        });
    }
    let r = exchange(t, &apdu::read_binary(0, 0x20), apdus)?;
    if !r.sw.is_ok() {
        return Err(CardError::Status {
            what: "READ BINARY EF 0006",
            sw: r.sw,
        });
    }
    token_kind(&r.data)
}

/// The user-authentication certificate (EF 000A), read without a PIN, and what held it.
/// An Android phone needs its smartphone PIN first ([`CardError::PhonePinRequired`]); an
/// iPhone its owner's unlock ([`CardError::PhoneLocked`]).
pub fn read_auth_certificate(t: &mut dyn Transport) -> Result<CertificateRead, CardError> {
    let mut apdus = 0;
    select_jpki(t, &mut apdus)?;
    let token = read_token(t, &mut apdus)?;
    if token == TokenKind::AndroidPhone {
        return Err(CardError::PhonePinRequired);
    }
    match read_certificate_ef(t, EF_AUTH_CERT, &mut apdus) {
        Ok(der) => Ok(CertificateRead { der, apdus, token }),
        Err(CardError::Status {
            sw: apdu::StatusWord::SECURITY_NOT_SATISFIED,
            ..
        }) if token == TokenKind::IPhone => Err(CardError::PhoneLocked),
        Err(e) => Err(e),
    }
}

/// The CA certificate of the user-authentication certificate (EF 000B).
pub fn read_auth_ca_certificate(t: &mut dyn Transport) -> Result<CertificateRead, CardError> {
    let mut apdus = 0;
    select_jpki(t, &mut apdus)?;
    let der = read_certificate_ef(t, EF_AUTH_CA, &mut apdus)?;
    Ok(CertificateRead {
        der,
        apdus,
        token: TokenKind::Card,
    })
}

/// An Android phone's certificate behind its smartphone PIN: one PIN attempt (with the
/// same last-try guard as the card's PIN) and, once verified, the certificate in the same
/// card session.
pub fn read_phone_certificate(
    t: &mut dyn Transport,
    pin: &str,
    last_try_confirmed: bool,
) -> Result<(PinOutcome, Option<Vec<u8>>), CardError> {
    let outcome = verify_auth_pin(t, pin, last_try_confirmed)?;
    if outcome != PinOutcome::Verified {
        return Ok((outcome, None));
    }
    let mut apdus = 0;
    let der = read_certificate_ef(t, EF_AUTH_CERT, &mut apdus)?;
    Ok((outcome, Some(der)))
}

/// The state of the user-authentication PIN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PinState {
    TriesLeft(u8),
    Blocked,
}

/// What one PIN attempt did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PinOutcome {
    Verified,
    Wrong { tries_left: u8 },
    Blocked,
}

fn select_auth_pin(t: &mut dyn Transport, apdus: &mut usize) -> Result<(), CardError> {
    select_jpki(t, apdus)?;
    let r = exchange(t, &apdu::select_ef(EF_AUTH_PIN), apdus)?;
    if r.sw.is_ok() {
        Ok(())
    } else {
        Err(CardError::Status {
            what: "SELECT PIN EF",
            sw: r.sw,
        })
    }
}

fn pin_state_after(t: &mut dyn Transport, apdus: &mut usize) -> Result<PinState, CardError> {
    let r = exchange(t, &apdu::verify(0x80, &[]).unwrap_or_default(), apdus)?;
    match (r.sw.tries_left(), r.sw) {
        (Some(n), _) => Ok(PinState::TriesLeft(n)),
        (None, apdu::StatusWord::PIN_BLOCKED) => Ok(PinState::Blocked),
        (None, sw) => Err(CardError::Status {
            what: "VERIFY (tries left)",
            sw,
        }),
    }
}

/// The auth PIN's remaining tries, without spending one (VERIFY with no data → 63 Cx).
pub fn auth_pin_state(t: &mut dyn Transport) -> Result<PinState, CardError> {
    let mut apdus = 0;
    select_auth_pin(t, &mut apdus)?;
    pin_state_after(t, &mut apdus)
}

/// One attempt at the 4-digit auth PIN. Never retried automatically; when only one try
/// is left the attempt is refused unless the crew confirmed it (`last_try_confirmed`).
pub fn verify_auth_pin(
    t: &mut dyn Transport,
    pin: &str,
    last_try_confirmed: bool,
) -> Result<PinOutcome, CardError> {
    if pin.len() != 4 || !pin.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CardError::PinFormat);
    }
    let mut apdus = 0;
    select_auth_pin(t, &mut apdus)?;
    match pin_state_after(t, &mut apdus)? {
        PinState::Blocked => return Ok(PinOutcome::Blocked),
        PinState::TriesLeft(1) if !last_try_confirmed => {
            return Err(CardError::LastTryNeedsConfirmation);
        }
        PinState::TriesLeft(_) => {}
    }
    // the VERIFY command carries the patient's PIN: zeroed when dropped
    let command = zeroize::Zeroizing::new(apdu::verify(0x80, pin.as_bytes()).unwrap_or_default());
    let r = exchange(t, &command, &mut apdus)?;
    match (r.sw, r.sw.tries_left()) {
        (sw, _) if sw.is_ok() => Ok(PinOutcome::Verified),
        (_, Some(n)) => Ok(PinOutcome::Wrong { tries_left: n }),
        (apdu::StatusWord::PIN_BLOCKED, _) => Ok(PinOutcome::Blocked),
        (sw, None) => Err(CardError::Status { what: "VERIFY", sw }),
    }
}

/// DER prefix of a SHA-256 DigestInfo.
const SHA256_DIGEST_INFO: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

/// The DigestInfo the card signs for a challenge: SHA-256 of the challenge, DER-wrapped.
pub fn challenge_digest_info(challenge: &[u8]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut v = SHA256_DIGEST_INFO.to_vec();
    v.extend_from_slice(&Sha256::digest(challenge));
    v
}

/// Sign a server-issued challenge with the card's authentication key (JPKI sign command on
/// EF 0017). The auth PIN must have been verified in this card session.
pub fn sign_challenge(t: &mut dyn Transport, challenge: &[u8]) -> Result<Vec<u8>, CardError> {
    let mut apdus = 0;
    select_jpki(t, &mut apdus)?;
    let r = exchange(t, &apdu::select_ef(EF_AUTH_KEY), &mut apdus)?;
    if !r.sw.is_ok() {
        return Err(CardError::Status {
            what: "SELECT key EF",
            sw: r.sw,
        });
    }
    let cmd = apdu::command(
        0x80,
        0x2A,
        0x00,
        0x80,
        &challenge_digest_info(challenge),
        Some(256),
    )
    .map_err(|e| CardError::Unresponsive(e.to_string()))?;
    let r = exchange(t, &cmd, &mut apdus)?;
    if !r.sw.is_ok() {
        return Err(CardError::Status {
            what: "COMPUTE DIGITAL SIGNATURE",
            sw: r.sw,
        });
    }
    if r.data.is_empty() {
        return Err(CardError::Unresponsive("empty signature".into()));
    }
    Ok(r.data)
}

#[cfg(test)]
mod tests {
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
        let mut apdus = 0;
        for (kind, label) in [
            (TokenKind::Card, TOKEN_LABEL_CARD),
            (TokenKind::AndroidPhone, TOKEN_LABEL_ANDROID),
            (TokenKind::IPhone, TOKEN_LABEL_IPHONE),
        ] {
            let (mut vc, _) = phone(kind);
            select_jpki(&mut vc, &mut apdus).unwrap();
            assert_eq!(read_token(&mut vc, &mut apdus).unwrap(), kind, "{label}");
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
        let mut n = 0;
        select_jpki(&mut vc, &mut n).unwrap();
        let err = read_certificate_ef(&mut vc, EF_AUTH_CERT, &mut n).unwrap_err();
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
}
