//! The unit key as the TLS and certificate libraries want it: a PEM key's DER, or a signer
//! whose ECDSA happens inside the TPM (rustls' `SigningKey`, rcgen's `SigningKey`).

use super::*;

/// The unit key for rustls: a PEM key's DER (file keys) or a signer in the TPM.
pub enum UnitTlsKey {
    Der(rustls::pki_types::PrivateKeyDer<'static>),
    Signer(Arc<dyn rustls::sign::SigningKey>),
}

impl std::fmt::Debug for UnitTlsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UnitTlsKey::Der(_) => f.write_str("UnitTlsKey::Der(..)"),
            UnitTlsKey::Signer(_) => f.write_str("UnitTlsKey::Signer(tpm)"),
        }
    }
}

pub use super::tpm::TpmSigner;

impl TpmSigner {
    pub fn new(token: Arc<tpm::TpmToken>, label: &'static str) -> Result<TpmSigner, KeyError> {
        let point = token.ec_point(label)?;
        Ok(TpmSigner {
            token,
            label,
            point,
        })
    }

    /// ECDSA-Sig-Value (DER) from the token's r ‖ s.
    pub(super) fn sign_der(&self, msg: &[u8]) -> Result<Vec<u8>, KeyError> {
        let raw = self.token.sign_p256(self.label, msg)?;
        if raw.len() != 64 {
            return Err(KeyError::Tpm(format!(
                "ECDSA signature of {} bytes, expected 64",
                raw.len()
            )));
        }
        Ok(ecdsa_der(&raw[..32], &raw[32..]))
    }
}

/// DER SEQUENCE { INTEGER r, INTEGER s } from big-endian r and s.
pub fn ecdsa_der(r: &[u8], s: &[u8]) -> Vec<u8> {
    fn int(v: &[u8]) -> Vec<u8> {
        let mut v: &[u8] = v;
        while v.len() > 1 && v[0] == 0 {
            v = &v[1..];
        }
        let mut out = vec![0x02];
        if v[0] & 0x80 != 0 {
            out.push(v.len() as u8 + 1);
            out.push(0);
        } else {
            out.push(v.len() as u8);
        }
        out.extend_from_slice(v);
        out
    }
    let (r, s) = (int(r), int(s));
    let mut out = vec![0x30, (r.len() + s.len()) as u8];
    out.extend(r);
    out.extend(s);
    out
}

impl std::fmt::Debug for TpmSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TpmSigner({})", self.label)
    }
}

impl rcgen::PublicKeyData for TpmSigner {
    fn der_bytes(&self) -> &[u8] {
        &self.point
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

impl rcgen::SigningKey for TpmSigner {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.sign_der(msg).map_err(|e| {
            tracing::error!(error = %e, "TPM signature for the CSR failed");
            rcgen::Error::RemoteKeyError
        })
    }
}

impl rustls::sign::SigningKey for TpmSigner {
    fn choose_scheme(
        &self,
        offered: &[rustls::SignatureScheme],
    ) -> Option<Box<dyn rustls::sign::Signer>> {
        offered
            .contains(&rustls::SignatureScheme::ECDSA_NISTP256_SHA256)
            .then(|| Box::new(self.clone()) as Box<dyn rustls::sign::Signer>)
    }
    fn public_key(&self) -> Option<rustls::pki_types::SubjectPublicKeyInfoDer<'_>> {
        Some(p256_spki(&self.point).into())
    }
    fn algorithm(&self) -> rustls::SignatureAlgorithm {
        rustls::SignatureAlgorithm::ECDSA
    }
}

impl rustls::sign::Signer for TpmSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        self.sign_der(message)
            .map_err(|e| rustls::Error::General(e.to_string()))
    }
    fn scheme(&self) -> rustls::SignatureScheme {
        rustls::SignatureScheme::ECDSA_NISTP256_SHA256
    }
}
