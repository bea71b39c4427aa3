//! Files an admin hands to `mynakyukyu-admin`: certificates (install-cert, --server-ca),
//! CRLs (install-crl) and unit CSRs (dev-pki sign), as PEM text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mynakyukyu::pki;
use std::sync::OnceLock;

fn ca() -> &'static pki::CertAuthority {
    static CA: OnceLock<pki::CertAuthority> = OnceLock::new();
    CA.get_or_init(|| pki::CertAuthority::generate("Fuzz", "Fuzz CA").unwrap())
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let now = time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
    for der in pki::pem_certificates(&text) {
        let _ = pki::inspect(&der, now);
        let _ = pki::is_signed_by(&der, ca().certificate_der());
    }
    let _ = pki::inspect_crls(&text, ca().certificate_der(), now);
    let _ = mynakyukyu::admin::sign_csr_pem(ca(), &text, 30);
});
