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

/// A transport that counts the APDUs it carries, for what a read reports
/// ([`CertificateRead::apdus`]): one wrapper at the top of a read instead of a counter
/// threaded through every call.
pub struct Counted<'t> {
    inner: &'t mut dyn Transport,
    sent: usize,
}

impl<'t> Counted<'t> {
    pub fn new(inner: &'t mut dyn Transport) -> Counted<'t> {
        Counted { inner, sent: 0 }
    }

    /// APDUs sent through it so far.
    pub fn sent(&self) -> usize {
        self.sent
    }
}

impl Transport for Counted<'_> {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, CardError> {
        self.sent += 1;
        self.inner.transmit(apdu)
    }
}

fn exchange(t: &mut dyn Transport, cmd: &[u8]) -> Result<Response, CardError> {
    let raw = t.transmit(cmd)?;
    Response::parse(&raw).map_err(|e| match e {
        ApduError::Empty => CardError::Removed,
        other => CardError::Unresponsive(other.to_string()),
    })
}

/// SELECT the JPKI AP; 6A 82 means this is not a My Number card.
pub fn select_jpki(t: &mut dyn Transport) -> Result<(), CardError> {
    let r = exchange(t, &apdu::select_df(&JPKI_AID))?;
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
pub fn read_certificate_ef(t: &mut dyn Transport, fid: [u8; 2]) -> Result<Vec<u8>, CardError> {
    let r = exchange(t, &apdu::select_ef(fid))?;
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
        let r = exchange(t, &apdu::read_binary(der.len() as u16, want as u16))?;
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
pub fn read_token(t: &mut dyn Transport) -> Result<TokenKind, CardError> {
    let cmd = [0x00, 0xB0, 0x80 | SFI_TOKEN_INFO, 0x00, 0x20];
    let r = exchange(t, &cmd)?;
    if r.sw.is_ok() {
        return token_kind(&r.data);
    }
    let r = exchange(t, &apdu::select_ef(EF_TOKEN_INFO))?;
    if r.sw == apdu::StatusWord::FILE_NOT_FOUND {
        return Ok(TokenKind::Card);
    }
    if !r.sw.is_ok() {
        return Err(CardError::Status {
            what: "SELECT EF 0006",
            sw: r.sw,
        });
    }
    let r = exchange(t, &apdu::read_binary(0, 0x20))?;
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
    let t = &mut Counted::new(t);
    select_jpki(t)?;
    let token = read_token(t)?;
    if token == TokenKind::AndroidPhone {
        return Err(CardError::PhonePinRequired);
    }
    match read_certificate_ef(t, EF_AUTH_CERT) {
        Ok(der) => Ok(CertificateRead {
            der,
            apdus: t.sent(),
            token,
        }),
        Err(CardError::Status {
            sw: apdu::StatusWord::SECURITY_NOT_SATISFIED,
            ..
        }) if token == TokenKind::IPhone => Err(CardError::PhoneLocked),
        Err(e) => Err(e),
    }
}

/// The CA certificate of the user-authentication certificate (EF 000B).
pub fn read_auth_ca_certificate(t: &mut dyn Transport) -> Result<CertificateRead, CardError> {
    let t = &mut Counted::new(t);
    select_jpki(t)?;
    let der = read_certificate_ef(t, EF_AUTH_CA)?;
    Ok(CertificateRead {
        der,
        apdus: t.sent(),
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
    let der = read_certificate_ef(t, EF_AUTH_CERT)?;
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

fn select_auth_pin(t: &mut dyn Transport) -> Result<(), CardError> {
    select_jpki(t)?;
    let r = exchange(t, &apdu::select_ef(EF_AUTH_PIN))?;
    if r.sw.is_ok() {
        Ok(())
    } else {
        Err(CardError::Status {
            what: "SELECT PIN EF",
            sw: r.sw,
        })
    }
}

fn pin_state_after(t: &mut dyn Transport) -> Result<PinState, CardError> {
    let r = exchange(t, &apdu::verify(0x80, &[]).unwrap_or_default())?;
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
    select_auth_pin(t)?;
    pin_state_after(t)
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
    select_auth_pin(t)?;
    match pin_state_after(t)? {
        PinState::Blocked => return Ok(PinOutcome::Blocked),
        PinState::TriesLeft(1) if !last_try_confirmed => {
            return Err(CardError::LastTryNeedsConfirmation);
        }
        PinState::TriesLeft(_) => {}
    }
    // the VERIFY command carries the patient's PIN: zeroed when dropped
    let command = zeroize::Zeroizing::new(apdu::verify(0x80, pin.as_bytes()).unwrap_or_default());
    let r = exchange(t, &command)?;
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
    select_jpki(t)?;
    let r = exchange(t, &apdu::select_ef(EF_AUTH_KEY))?;
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
    let r = exchange(t, &cmd)?;
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
mod tests;
