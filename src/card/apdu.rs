//! APDUs: short command encoding, response parsing with status words, and the DER length
//! of a certificate from its first bytes. Every length is bounded.

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ApduError {
    #[error("empty response: the card vanished")]
    Empty,
    #[error("response of {0} byte(s) has no status word")]
    NoStatus(usize),
    #[error("command data of {0} bytes does not fit a short APDU")]
    TooLong(usize),
    #[error("not a DER certificate header: {0}")]
    BadDer(String),
}

/// A status word (SW1 SW2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusWord(pub u16);

impl StatusWord {
    pub const OK: StatusWord = StatusWord(0x9000);
    pub const FILE_NOT_FOUND: StatusWord = StatusWord(0x6A82);
    pub const WRONG_P1P2: StatusWord = StatusWord(0x6B00);
    pub const PIN_BLOCKED: StatusWord = StatusWord(0x6983);
    pub const SECURITY_NOT_SATISFIED: StatusWord = StatusWord(0x6982);
    pub const INS_NOT_SUPPORTED: StatusWord = StatusWord(0x6D00);
    pub const WRONG_LENGTH: StatusWord = StatusWord(0x6700);

    pub fn is_ok(self) -> bool {
        self == Self::OK
    }

    /// `63 Cx`: a PIN check failed or was queried; x tries remain.
    pub fn tries_left(self) -> Option<u8> {
        (self.0 & 0xFFF0 == 0x63C0).then_some((self.0 & 0x0F) as u8)
    }
}

impl std::fmt::Display for StatusWord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:02X} {:02X}", self.0 >> 8, self.0 & 0xFF)
    }
}

/// A response: data and status word.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub data: Vec<u8>,
    pub sw: StatusWord,
}

impl Response {
    /// Split raw bytes; fewer than two bytes is an error, never data.
    pub fn parse(raw: &[u8]) -> Result<Response, ApduError> {
        match raw.len() {
            0 => Err(ApduError::Empty),
            1 => Err(ApduError::NoStatus(1)),
            n => Ok(Response {
                data: raw[..n - 2].to_vec(),
                sw: StatusWord(u16::from_be_bytes([raw[n - 2], raw[n - 1]])),
            }),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = self.data.clone();
        v.extend_from_slice(&self.sw.0.to_be_bytes());
        v
    }

    pub fn status(sw: StatusWord) -> Response {
        Response { data: vec![], sw }
    }
}

/// Encode a short command APDU (cases 1–4). `le` of 256 is encoded as 00.
pub fn command(
    cla: u8,
    ins: u8,
    p1: u8,
    p2: u8,
    data: &[u8],
    le: Option<u16>,
) -> Result<Vec<u8>, ApduError> {
    if data.len() > 255 {
        return Err(ApduError::TooLong(data.len()));
    }
    let mut v = vec![cla, ins, p1, p2];
    if !data.is_empty() {
        v.push(data.len() as u8);
        v.extend_from_slice(data);
    }
    if let Some(le) = le {
        v.push(if le >= 256 { 0 } else { le as u8 });
    }
    Ok(v)
}

/// SELECT by DF name (AID), no response data (P2 0C).
pub fn select_df(aid: &[u8]) -> Vec<u8> {
    command(0x00, 0xA4, 0x04, 0x0C, aid, None).unwrap_or_default()
}

/// SELECT EF by file id, no response data.
pub fn select_ef(fid: [u8; 2]) -> Vec<u8> {
    command(0x00, 0xA4, 0x02, 0x0C, &fid, None).unwrap_or_default()
}

/// READ BINARY at `offset` (must stay below 0x8000), `le` bytes (1–256).
pub fn read_binary(offset: u16, le: u16) -> Vec<u8> {
    let [hi, lo] = (offset & 0x7FFF).to_be_bytes();
    command(0x00, 0xB0, hi, lo, &[], Some(le.clamp(1, 256))).unwrap_or_default()
}

/// VERIFY for the PIN in the current DF's `reference`; no data asks for the tries left.
pub fn verify(reference: u8, pin: &[u8]) -> Result<Vec<u8>, ApduError> {
    command(0x00, 0x20, 0x00, reference, pin, None)
}

/// The total length of a DER SEQUENCE from its first bytes (tag 30 and the length octets),
/// or `None` if more bytes are needed. Refuses anything over `max`.
pub fn der_total_length(head: &[u8], max: usize) -> Result<Option<usize>, ApduError> {
    let Some(&tag) = head.first() else {
        return Ok(None);
    };
    if tag != 0x30 {
        return Err(ApduError::BadDer(format!("tag {tag:02X}, expected 30")));
    }
    let Some(&first) = head.get(1) else {
        return Ok(None);
    };
    let (len, header) = if first < 0x80 {
        (first as usize, 2)
    } else {
        let n = (first & 0x7F) as usize;
        if n == 0 || n > 3 {
            return Err(ApduError::BadDer(format!("length of {n} octets")));
        }
        if head.len() < 2 + n {
            return Ok(None);
        }
        let len = head[2..2 + n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | *b as usize);
        (len, 2 + n)
    };
    let total = header + len;
    if total > max {
        return Err(ApduError::BadDer(format!("{total} bytes exceeds {max}")));
    }
    Ok(Some(total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn commands_encode_as_the_jpki_documents_show() {
        assert_eq!(
            select_df(&[0xD3, 0x92, 0xF0, 0x00, 0x26, 0x01, 0x00, 0x00, 0x00, 0x01]),
            vec![
                0x00, 0xA4, 0x04, 0x0C, 0x0A, 0xD3, 0x92, 0xF0, 0x00, 0x26, 0x01, 0x00, 0x00, 0x00,
                0x01
            ]
        );
        assert_eq!(
            select_ef([0x00, 0x0A]),
            vec![0x00, 0xA4, 0x02, 0x0C, 0x02, 0x00, 0x0A]
        );
        assert_eq!(read_binary(0x0100, 256), vec![0x00, 0xB0, 0x01, 0x00, 0x00]);
        assert_eq!(verify(0x80, &[]).unwrap(), vec![0x00, 0x20, 0x00, 0x80]);
        assert_eq!(
            command(0, 0, 0, 0, &[0; 256], None),
            Err(ApduError::TooLong(256))
        );
    }

    #[test]
    fn responses_need_a_status_word() {
        assert_eq!(Response::parse(&[]), Err(ApduError::Empty));
        assert_eq!(Response::parse(&[0x90]), Err(ApduError::NoStatus(1)));
        let r = Response::parse(&[1, 2, 0x90, 0x00]).unwrap();
        assert_eq!((r.data.as_slice(), r.sw.is_ok()), (&[1u8, 2][..], true));
        assert_eq!(StatusWord(0x63C2).tries_left(), Some(2));
        assert_eq!(StatusWord::OK.tries_left(), None);
    }

    #[test]
    fn der_lengths() {
        assert_eq!(
            der_total_length(&[0x30, 0x82, 0x04, 0x00], 4096),
            Ok(Some(0x404))
        );
        assert_eq!(der_total_length(&[0x30, 0x10], 4096), Ok(Some(0x12)));
        assert_eq!(der_total_length(&[0x30, 0x82, 0x04], 4096), Ok(None));
        assert!(der_total_length(&[0x31, 0x10], 4096).is_err());
        assert!(der_total_length(&[0x30, 0x84, 1, 2, 3, 4], 1 << 30).is_err());
        assert!(der_total_length(&[0x30, 0x83, 0xFF, 0xFF, 0xFF], 8192).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_and_stay_bounded(bytes in proptest::collection::vec(any::<u8>(), 0..16)) {
            let _ = Response::parse(&bytes);
            if let Ok(Some(n)) = der_total_length(&bytes, 8192) {
                prop_assert!(n <= 8192);
            }
        }
    }
}
