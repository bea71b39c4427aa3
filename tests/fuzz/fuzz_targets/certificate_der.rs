//! A certificate as the card hands it over (DER): the inspector, the issuer check and the
//! card-signature check the PIN path uses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mynakyukyu::pki;

fuzz_target!(|data: &[u8]| {
    let now = time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
    let _ = pki::inspect(data, now);
    let _ = pki::serial_u64(data);
    let _ = pki::is_signed_by(data, data);
    let _ = pki::verify_card_signature(data, b"message", &[0u8; 256]);
});
