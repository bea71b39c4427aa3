//! Identifiers of people, devices, incidents and patients.

use super::Sensitive;
use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! plain_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

plain_id!(
    /// A crew member (救急隊員) on the fire department's roster; the operator of a view.
    OperatorId
);
plain_id!(
    /// The tablet itself (端末), as provisioned.
    TerminalId
);
plain_id!(
    /// The ambulance unit (救急隊) that holds the unit certificate.
    UnitId
);
plain_id!(
    /// One patient contact, from card presence to end of viewing. Idempotency key of the
    /// emergency-info inquiry: a retried inquiry carries the same incident id.
    IncidentId
);
plain_id!(
    /// The eligibility system's reference to one qualification answer; the emergency-info
    /// inquiry cites it instead of repeating the patient's identity.
    QualificationRef
);

/// Who the patient is, as far as the audit log needs: a local id the system gives the
/// patient and the individual insured number (個人単位被保険者番号). Both are redacted in logs.
/// A 医療扶助 (public assistance) patient may have no insured number; the system then names
/// them by 公費負担者番号 + 受給者番号, and the audit key is the 受給者番号.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatientRef {
    pub local_id: Sensitive<String>,
    /// Empty for a public-assistance patient without health insurance.
    pub insured_number: Sensitive<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_assistance: Option<Box<PublicAssistance>>,
}

/// 医療扶助: the public payer's number (公費負担者番号) and the recipient's (受給者番号).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicAssistance {
    pub payer_number: Sensitive<String>,
    pub recipient_number: Sensitive<String>,
}

impl fmt::Debug for PublicAssistance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PublicAssistance([redacted])")
    }
}

impl PatientRef {
    /// The number a citizen's question is answered by: the individual insured number, or
    /// the 受給者番号 where there is none (医療扶助).
    pub fn audit_key(&self) -> &str {
        if !self.insured_number.expose().is_empty() {
            return self.insured_number.expose();
        }
        self.public_assistance
            .as_ref()
            .map(|p| p.recipient_number.expose().as_str())
            .unwrap_or("")
    }
}

impl fmt::Debug for PatientRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PatientRef([redacted])")
    }
}

/// What the card gave us: the user-authentication certificate (利用者証明用電子証明書), DER.
///
/// Its subject is an opaque serial, not the holder's name, but it still identifies a person,
/// so it is redacted in logs.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardCredential {
    pub auth_certificate_der: Vec<u8>,
    /// What held the certificate: the card or a phone.
    #[serde(default)]
    pub token: super::TokenKind,
}

impl CardCredential {
    /// `sha256:` and the first 32 hex digits of the certificate's hash: names the card in
    /// an audit entry without the certificate itself.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(&self.auth_certificate_der);
        format!("sha256:{}", hex::encode(&digest[..16]))
    }
}

impl fmt::Debug for CardCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "CardCredential({} bytes, {})",
            self.auth_certificate_der.len(),
            self.token.name()
        )
    }
}
