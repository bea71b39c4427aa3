//! The inbox's second factor: RFC 6238 TOTP (HMAC-SHA1, 30-second steps, 6 digits), what
//! every authenticator app speaks and what the national system asks of hospital viewers.
//! Hand-written over ring's HMAC: the algorithm is a dozen lines and the only input from
//! outside is six digits, so no crate is needed to parse anything.

use ring::hmac;

/// Seconds per step.
pub const STEP_S: i64 = 30;
/// Digits of a code.
pub const DIGITS: usize = 6;
/// Bytes of a new secret (160 bits, RFC 4226's recommendation).
pub const SECRET_BYTES: usize = 20;

/// A fresh random secret.
pub fn new_secret() -> [u8; SECRET_BYTES] {
    let mut s = [0u8; SECRET_BYTES];
    // the OS random source failing is not recoverable for a server that issues secrets
    getrandom::fill(&mut s).expect("the OS random source");
    s
}

/// The code of `secret` at time step `step`.
pub fn code_at(secret: &[u8], step: i64) -> u32 {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let mac = hmac::sign(&key, &step.to_be_bytes());
    let mac = mac.as_ref();
    let offset = usize::from(mac[mac.len() - 1] & 0x0f);
    let word = u32::from_be_bytes([
        mac[offset] & 0x7f,
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]);
    word % 10u32.pow(DIGITS as u32)
}

/// Checks `code` at `now_s` (one step of clock drift either way) and returns the step it
/// matched. A step at or before `last_step` was used already: refused, so that a code
/// seen over a shoulder cannot be used again.
pub fn verify(secret: &[u8], code: &str, now_s: i64, last_step: i64) -> Option<i64> {
    let code = code.trim();
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let wanted: u32 = code.parse().ok()?;
    let now = now_s.div_euclid(STEP_S);
    (now - 1..=now + 1)
        .filter(|step| *step > last_step)
        .find(|step| constant_time_eq(code_at(secret, *step), wanted))
}

fn constant_time_eq(a: u32, b: u32) -> bool {
    subtle::ConstantTimeEq::ct_eq(&a, &b).into()
}

/// The secret as authenticator apps take it typed in (RFC 4648 base32, no padding).
pub fn base32(secret: &[u8]) -> String {
    data_encoding::BASE32_NOPAD.encode(secret)
}

/// The `otpauth://` URI an authenticator app scans.
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_S}",
        enc(issuer),
        enc(account),
        base32(secret),
        enc(issuer)
    )
}

/// The URI as a QR code drawn with Unicode half blocks, for the admin's terminal.
pub fn qr_terminal(uri: &str) -> Option<String> {
    let code = qrcode::QrCode::new(uri.as_bytes()).ok()?;
    Some(
        code.render::<qrcode::render::unicode::Dense1x2>()
            .dark_color(qrcode::render::unicode::Dense1x2::Light)
            .light_color(qrcode::render::unicode::Dense1x2::Dark)
            .quiet_zone(true)
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B (SHA-1), cut to six digits.
    #[test]
    fn the_rfc_vectors_hold() {
        let secret = b"12345678901234567890";
        for (t, eight) in [
            (59i64, 94287082u32),
            (1111111109, 7081804),
            (1111111111, 14050471),
            (1234567890, 89005924),
            (2000000000, 69279037),
        ] {
            assert_eq!(code_at(secret, t / STEP_S), eight % 1_000_000, "t={t}");
        }
    }

    #[test]
    fn a_code_is_good_once_and_only_near_its_time() {
        let secret = b"12345678901234567890";
        let now = 1_234_567_890;
        let code = format!("{:06}", code_at(secret, now / STEP_S));
        let step = verify(secret, &code, now, 0).expect("the current code");
        assert_eq!(verify(secret, &code, now, step), None, "replayed");
        assert_eq!(verify(secret, &code, now + 5 * STEP_S, 0), None, "too late");
        assert_eq!(verify(secret, "12345", now, 0), None);
        assert_eq!(verify(secret, "abcdef", now, 0), None);
    }

    #[test]
    fn the_uri_carries_the_base32_secret() {
        let uri = otpauth_uri("Mynakyukyu hub", "er@h1", b"12345678901234567890");
        assert!(
            uri.starts_with(
                "otpauth://totp/Mynakyukyu%20hub:er%40h1?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&"
            ),
            "{uri}"
        );
        assert!(qr_terminal(&uri).is_some_and(|q| q.lines().count() > 10));
    }
}
