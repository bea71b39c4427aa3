//! What a card (or a phone, or something pretending to be one) answers: a script of
//! R-APDUs (`ReplayCard` frames) into the JPKI reads the app makes. Any answer is a typed
//! error or a read within its bounds, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mynakyukyu::card::{ReplayCard, jpki};

fuzz_target!(|data: &[u8]| {
    let _ = jpki::read_token(&mut ReplayCard::from_frames(data));
    if let Ok(read) = jpki::read_auth_certificate(&mut ReplayCard::from_frames(data)) {
        assert!(read.der.len() <= jpki::MAX_CERT_BYTES);
    }
    let _ = jpki::auth_pin_state(&mut ReplayCard::from_frames(data));
    let _ = jpki::read_phone_certificate(&mut ReplayCard::from_frames(data), "123456", false);
    let _ = jpki::sign_challenge(&mut ReplayCard::from_frames(data), b"challenge");
});
