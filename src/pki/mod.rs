//! Certificates: issuing the test JPKI CA and the virtual cards' user-authentication
//! certificates for training and tests (rcgen). Parsing and checking certificates
//! (x509-parser) and the fire-department development PKI build on this.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum PkiError {
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
}

/// A card's certificate material as the virtual card holds it.
pub struct CardCertificate {
    /// User-authentication certificate (EF 000A), DER.
    pub auth_certificate_der: Vec<u8>,
    /// Its key (EF 0017 on a real card), PKCS#8 DER.
    pub auth_key_pkcs8: Vec<u8>,
    /// The issuing CA certificate (EF 000B), DER.
    pub ca_certificate_der: Vec<u8>,
}

/// The test JPKI CA that issues the virtual cards' certificates. Never a real CA.
pub struct JpkiTestCa {
    key: KeyPair,
    params: CertificateParams,
    der: Vec<u8>,
}

impl JpkiTestCa {
    /// A fresh CA with its own P-256 key.
    pub fn generate() -> Result<Self, PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CountryName, "JP");
        dn.push(DnType::OrganizationName, "Mynakyukyu Training");
        dn.push(
            DnType::CommonName,
            "Test JPKI User Authentication CA (training only)",
        );
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let der = params.self_signed(&key)?.der().to_vec();
        Ok(JpkiTestCa { key, params, der })
    }

    pub fn certificate_der(&self) -> &[u8] {
        &self.der
    }

    /// Issue a user-authentication certificate whose subject is an opaque serial, as on a
    /// real card (the holder's name is never in it).
    pub fn issue_card(&self, serial: u64) -> Result<CardCertificate, PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CountryName, "JP");
        dn.push(DnType::CommonName, format!("{serial:016X}"));
        params.distinguished_name = dn;
        params.serial_number = Some(SerialNumber::from(serial.to_be_bytes().to_vec()));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(365);
        params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(4 * 365);
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer)?;
        Ok(CardCertificate {
            auth_certificate_der: cert.der().to_vec(),
            auth_key_pkcs8: key.serialize_der(),
            ca_certificate_der: self.der.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_card_certificates_are_distinct_der() {
        let ca = JpkiTestCa::generate().unwrap();
        let a = ca.issue_card(1).unwrap();
        let b = ca.issue_card(2).unwrap();
        assert_eq!(a.auth_certificate_der[0], 0x30, "DER SEQUENCE");
        assert_ne!(a.auth_certificate_der, b.auth_certificate_der);
        assert_eq!(a.ca_certificate_der, ca.certificate_der());
    }
}
