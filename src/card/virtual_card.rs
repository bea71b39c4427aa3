//! A virtual My Number card: the JPKI application with EFs 000A/000B/0006/0017/0018 and the
//! card-face helper application (4-digit PIN, basic four items), with PIN retry counters
//! and blocking, and faults on request. It answers APDUs in process (the drill's reader)
//! or through pcscd's vpcd driver (`card::vpcd`).
//!
//! In phone mode ([`VirtualCard::as_phone`]) it is a スマホ用電子証明書 instead: EF 0006
//! names the phone, an Android phone answers the certificate EFs and signs only after the
//! smartphone PIN was verified, an iPhone only after its owner unlocked it
//! ([`VirtualCard::owner_unlocked`]), and over vpcd each answer comes [`PHONE_APDU_MS`]
//! late.

use super::apdu::{Response, StatusWord};
// the application's identifiers are the protocol's: defined where the real dialogue is
pub use super::jpki::{
    EF_AUTH_CA, EF_AUTH_CERT, EF_AUTH_KEY, EF_AUTH_PIN, EF_TOKEN_INFO, FACE_AID, JPKI_AID,
    JPKI_ATR, SFI_TOKEN_INFO, TOKEN_LABEL_ANDROID, TOKEN_LABEL_CARD, TOKEN_LABEL_IPHONE,
    TOKEN_LABEL_JUKI,
};
use crate::domain::TokenKind;

/// Signature certificate, its CA, key and PIN (PIN-protected; present so that generic
/// middleware such as OpenSC recognises the application).
const EF_SIGN_CERT: [u8; 2] = [0x00, 0x01];
const EF_SIGN_CA: [u8; 2] = [0x00, 0x02];
const EF_SIGN_KEY: [u8; 2] = [0x00, 0x1A];
const EF_SIGN_PIN: [u8; 2] = [0x00, 0x1B];
const SIGN_PIN_TRIES: u8 = 5;
const EF_FACE_PIN: [u8; 2] = [0x00, 0x11];
const EF_FACE_BASIC: [u8; 2] = [0x00, 0x02];
const PIN_TRIES: u8 = 3;
/// Certificate EFs are fixed-size on the card; the certificate is shorter.
const CERT_EF_SIZE: usize = 2048;
/// How late a phone answers each APDU over vpcd: NFC to a phone's secure element is slower
/// than to a card. A training figure, not one measured on a phone.
pub const PHONE_APDU_MS: u64 = 25;

/// Misbehaviour on request, for tests and drills.
#[derive(Clone, Debug, Default)]
pub struct CardFaults {
    /// Stop answering (vanish) after this many APDUs.
    pub remove_after_apdus: Option<usize>,
    /// Answer every APDU with bytes that are not a valid response.
    pub garbage: bool,
    /// Delay every answer (vpcd only).
    pub slow_ms: u64,
    /// Answer SELECT of the JPKI AP with 6A 82: "not a My Number card".
    pub not_jpki: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum App {
    None,
    Jpki,
    Face,
}

/// The basic four items on the card face (基本4情報).
#[derive(Clone, Debug, Default)]
pub struct FaceItems {
    pub name: String,
    pub address: String,
    /// YYYYMMDD
    pub birth: String,
    /// "1" male, "2" female, "9" not known
    pub sex: String,
}

pub struct VirtualCard {
    app: App,
    ef: Option<[u8; 2]>,
    auth_cert_ef: Vec<u8>,
    auth_ca_ef: Vec<u8>,
    auth_pin: Vec<u8>,
    auth_tries: u8,
    auth_verified: bool,
    sign_pin: Vec<u8>,
    sign_tries: u8,
    sign_verified: bool,
    face_pin: Vec<u8>,
    face_tries: u8,
    face_verified: bool,
    face: FaceItems,
    auth_key_pkcs8: Option<Vec<u8>>,
    token: TokenKind,
    /// iPhone: its owner authenticated on the phone (Face ID / Touch ID).
    pub owner_unlocked: bool,
    pub faults: CardFaults,
    apdus: usize,
}

fn padded(der: &[u8]) -> Vec<u8> {
    let mut v = der.to_vec();
    if v.len() < CERT_EF_SIZE {
        v.resize(CERT_EF_SIZE, 0xFF);
    }
    v
}

impl VirtualCard {
    /// A card holding this user-authentication certificate and its CA, PIN `pin` (4 digits).
    pub fn new(auth_cert: &[u8], auth_ca: &[u8], pin: &str, face: FaceItems) -> VirtualCard {
        VirtualCard {
            app: App::None,
            ef: None,
            auth_cert_ef: padded(auth_cert),
            auth_ca_ef: padded(auth_ca),
            auth_pin: pin.as_bytes().to_vec(),
            auth_tries: PIN_TRIES,
            auth_verified: false,
            sign_pin: b"TRAINING1".to_vec(),
            sign_tries: SIGN_PIN_TRIES,
            sign_verified: false,
            face_pin: pin.as_bytes().to_vec(),
            face_tries: PIN_TRIES,
            face_verified: false,
            face,
            auth_key_pkcs8: None,
            token: TokenKind::Card,
            owner_unlocked: false,
            faults: CardFaults::default(),
            apdus: 0,
        }
    }

    /// The same credential held by a phone of this kind (its PIN is the smartphone PIN),
    /// answering with a phone's delay over vpcd. An iPhone starts locked.
    pub fn as_phone(mut self, kind: TokenKind) -> VirtualCard {
        self.token = kind;
        if kind.is_phone() {
            self.faults.slow_ms = self.faults.slow_ms.max(PHONE_APDU_MS);
        }
        self
    }

    /// What this token says it is in EF 0006.
    pub fn token(&self) -> TokenKind {
        self.token
    }

    fn token_label(&self) -> &'static str {
        match self.token {
            TokenKind::Card => TOKEN_LABEL_CARD,
            TokenKind::AndroidPhone => TOKEN_LABEL_ANDROID,
            TokenKind::IPhone => TOKEN_LABEL_IPHONE,
        }
    }

    /// Whether the certificates and the signing key are open to the reader now: always on
    /// a card (the certificate needs no PIN there; signing checks the PIN itself), after
    /// the smartphone PIN on Android, after the owner's unlock on an iPhone.
    fn phone_open(&self) -> bool {
        match self.token {
            TokenKind::Card => true,
            TokenKind::AndroidPhone => self.auth_verified,
            TokenKind::IPhone => self.owner_unlocked,
        }
    }

    /// Give the card its authentication key (PKCS#8), enabling the sign command on EF 0017.
    ///
    /// Like a real JPKI card, the key is RSA-2048 and the card signs the DigestInfo it is
    /// sent with PKCS#1 v1.5 padding.
    pub fn with_auth_key(mut self, pkcs8: Vec<u8>) -> VirtualCard {
        self.auth_key_pkcs8 = Some(pkcs8);
        self
    }

    /// APDUs answered so far.
    pub fn apdu_count(&self) -> usize {
        self.apdus
    }

    /// Whether the card has "left the reader" (the remove fault fired).
    pub fn removed(&self) -> bool {
        self.faults
            .remove_after_apdus
            .is_some_and(|n| self.apdus >= n)
    }

    /// Power-on / reset: nothing selected, PIN states cleared.
    pub fn reset(&mut self) {
        self.app = App::None;
        self.ef = None;
        self.auth_verified = false;
        self.sign_verified = false;
        self.face_verified = false;
    }

    /// Answer one command APDU; `None` once removed (the reader sees nothing).
    pub fn transmit(&mut self, apdu: &[u8]) -> Option<Vec<u8>> {
        if self.removed() {
            return None;
        }
        self.apdus += 1;
        if self.faults.garbage {
            return Some(vec![0x42]);
        }
        Some(self.answer(apdu).to_bytes())
    }

    fn answer(&mut self, apdu: &[u8]) -> Response {
        if apdu.len() < 4 {
            return Response::status(StatusWord::WRONG_LENGTH);
        }
        let (cla, ins, p1, p2) = (apdu[0], apdu[1], apdu[2], apdu[3]);
        let body = &apdu[4..];
        let (data, le) = match body.len() {
            0 => (&[][..], None),
            1 => (
                &[][..],
                Some(if body[0] == 0 { 256 } else { body[0] as usize }),
            ),
            _ => {
                let lc = body[0] as usize;
                if body.len() < 1 + lc {
                    return Response::status(StatusWord::WRONG_LENGTH);
                }
                let le = body
                    .get(1 + lc)
                    .map(|&b| if b == 0 { 256 } else { b as usize });
                (&body[1..1 + lc], le)
            }
        };
        match (cla, ins) {
            (0x00, 0xA4) => self.select(p1, p2, data),
            // P1 b8 set: b5-b1 name the EF by its short identifier, P2 is the offset
            (0x00, 0xB0) if p1 & 0x80 != 0 => {
                if p1 & 0x60 != 0 || self.app != App::Jpki || p1 & 0x1F != SFI_TOKEN_INFO {
                    return Response::status(StatusWord::FILE_NOT_FOUND);
                }
                self.ef = Some(EF_TOKEN_INFO);
                self.read_binary(p2 as usize, le.unwrap_or(256))
            }
            (0x00, 0xB0) => {
                self.read_binary(((p1 as usize & 0x7F) << 8) | p2 as usize, le.unwrap_or(256))
            }
            (0x00, 0x20) => self.verify(p2, data),
            (0x80, 0x2A) if p1 == 0x00 && p2 == 0x80 => self.sign(data),
            _ => Response::status(StatusWord::INS_NOT_SUPPORTED),
        }
    }

    fn select(&mut self, p1: u8, _p2: u8, data: &[u8]) -> Response {
        match p1 {
            0x04 => {
                if data == JPKI_AID && !self.faults.not_jpki {
                    self.app = App::Jpki;
                } else if data == FACE_AID {
                    self.app = App::Face;
                } else {
                    return Response::status(StatusWord::FILE_NOT_FOUND);
                }
                self.ef = None;
                Response::status(StatusWord::OK)
            }
            0x02 => {
                let Ok(fid) = <[u8; 2]>::try_from(data) else {
                    return Response::status(StatusWord::WRONG_LENGTH);
                };
                let known = match self.app {
                    App::Jpki => [
                        EF_AUTH_CERT,
                        EF_AUTH_CA,
                        EF_TOKEN_INFO,
                        EF_AUTH_KEY,
                        EF_SIGN_CERT,
                        EF_SIGN_CA,
                        EF_SIGN_KEY,
                        EF_SIGN_PIN,
                        EF_AUTH_PIN,
                    ]
                    .contains(&fid),
                    App::Face => [EF_FACE_PIN, EF_FACE_BASIC].contains(&fid),
                    App::None => false,
                };
                if !known {
                    return Response::status(StatusWord::FILE_NOT_FOUND);
                }
                self.ef = Some(fid);
                Response::status(StatusWord::OK)
            }
            _ => Response::status(StatusWord::WRONG_P1P2),
        }
    }

    fn face_basic(&self) -> Vec<u8> {
        let tlv = |tag: u8, v: &[u8]| {
            let mut out = vec![0xDF, tag, v.len() as u8];
            out.extend_from_slice(v);
            out
        };
        let mut inner = tlv(0x21, &[0; 10]);
        inner.extend(tlv(0x22, self.face.name.as_bytes()));
        inner.extend(tlv(0x23, self.face.address.as_bytes()));
        inner.extend(tlv(0x24, self.face.birth.as_bytes()));
        inner.extend(tlv(0x25, self.face.sex.as_bytes()));
        let mut out = vec![0xFF, 0x20, 0x81, inner.len() as u8];
        out.extend(inner);
        out
    }

    fn read_binary(&mut self, offset: usize, le: usize) -> Response {
        let content: Vec<u8> = match (self.app, self.ef) {
            (App::Jpki, Some(EF_AUTH_CERT | EF_AUTH_CA)) if !self.phone_open() => {
                return Response::status(StatusWord::SECURITY_NOT_SATISFIED);
            }
            (App::Jpki, Some(EF_AUTH_CERT)) => self.auth_cert_ef.clone(),
            (App::Jpki, Some(EF_AUTH_CA)) => self.auth_ca_ef.clone(),
            (App::Jpki, Some(EF_TOKEN_INFO)) => {
                let mut t = self.token_label().as_bytes().to_vec();
                t.resize(32, b' ');
                t
            }
            (App::Face, Some(EF_FACE_BASIC)) if self.face_verified => self.face_basic(),
            (App::Face, Some(EF_FACE_BASIC)) => {
                return Response::status(StatusWord::SECURITY_NOT_SATISFIED);
            }
            (_, Some(_)) => return Response::status(StatusWord::SECURITY_NOT_SATISFIED),
            (_, None) => return Response::status(StatusWord(0x6986)),
        };
        if offset >= content.len() {
            return Response::status(StatusWord::WRONG_P1P2);
        }
        let end = (offset + le).min(content.len());
        Response {
            data: content[offset..end].to_vec(),
            sw: StatusWord::OK,
        }
    }

    /// COMPUTE DIGITAL SIGNATURE with the authentication key; needs EF 0017 selected and
    /// the auth PIN verified.
    fn sign(&mut self, data: &[u8]) -> Response {
        if self.app != App::Jpki || self.ef != Some(EF_AUTH_KEY) {
            return Response::status(StatusWord(0x6986));
        }
        let unlocked = match self.token {
            TokenKind::IPhone => self.owner_unlocked,
            TokenKind::Card | TokenKind::AndroidPhone => self.auth_verified,
        };
        if !unlocked {
            return Response::status(StatusWord::SECURITY_NOT_SATISFIED);
        }
        let Some(pkcs8) = &self.auth_key_pkcs8 else {
            return Response::status(StatusWord(0x6A88));
        };
        use rsa::pkcs8::DecodePrivateKey;
        let Ok(key) = rsa::RsaPrivateKey::from_pkcs8_der(pkcs8) else {
            return Response::status(StatusWord(0x6F00));
        };
        // the card pads and signs what it is given (a DigestInfo), as a JPKI card does
        if data.len() > 2048 / 8 - 11 {
            return Response::status(StatusWord(0x6700));
        }
        match key.sign(rsa::Pkcs1v15Sign::new_unprefixed(), data) {
            Ok(sig) => Response {
                data: sig,
                sw: StatusWord::OK,
            },
            Err(_) => Response::status(StatusWord(0x6F00)),
        }
    }

    fn verify(&mut self, p2: u8, pin: &[u8]) -> Response {
        let (expected, tries, verified) = match (self.app, self.ef, p2) {
            (App::Jpki, Some(EF_AUTH_PIN), 0x80) => (
                &self.auth_pin,
                &mut self.auth_tries,
                &mut self.auth_verified,
            ),
            (App::Jpki, Some(EF_SIGN_PIN), 0x80) => (
                &self.sign_pin,
                &mut self.sign_tries,
                &mut self.sign_verified,
            ),
            (App::Face, Some(EF_FACE_PIN), 0x80) => (
                &self.face_pin,
                &mut self.face_tries,
                &mut self.face_verified,
            ),
            _ => return Response::status(StatusWord(0x6986)),
        };
        if *tries == 0 {
            return Response::status(StatusWord::PIN_BLOCKED);
        }
        if pin.is_empty() {
            return Response::status(StatusWord(0x63C0 | u16::from(*tries)));
        }
        if pin == expected.as_slice() {
            *tries = PIN_TRIES;
            *verified = true;
            Response::status(StatusWord::OK)
        } else {
            *tries -= 1;
            *verified = false;
            if *tries == 0 {
                Response::status(StatusWord::PIN_BLOCKED)
            } else {
                Response::status(StatusWord(0x63C0 | u16::from(*tries)))
            }
        }
    }
}
