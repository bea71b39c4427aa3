//! The eligibility simulator: synthetic patients, the virtual cards issued to them, and the
//! answers the national system would give (qualification check, emergency-info inquiry).
//!
//! [`Simulator`] is the service's logic with no transport; the drills call it in-process.
//!
//! What is inside: the eligibility simulator: deterministic synthetic patients
//! (`sim::patients`), cards issued to them whose serial names the patient (any process
//! holding the test JPKI CA can make one), qualification answers (coverage / most recent
//! valid / opt-out / card unknown, revoked, expired), emergency info cut with the MHLW
//! windows, an inquiry log idempotent per incident; qualification references that are
//! random (128 bits), expire (15 min) and belong to the unit that asked, a per-unit limit
//! on distinct patients an hour (flag, then refuse), the PIN path's card signature checked
//! against the card certificate; `sim::server` (an axum service on hyper's HTTP/1.1 over
//! tokio-rustls: client certificate required, CRL, the unit taken from the certificate's
//! CN, tower and hyper limits on body, head, read time, connections and requests in flight,
//! the ids echoed, each device key's audit chain held and verified — signature, hash, link,
//! gap, rollback — fault injection at start and run time (`sim::Faults` on
//! `sim::PATH_SIM_FAULTS`, the simulator's own path: not part of protocol v2, and the
//! production client has no call for it), including replaying the previous answer);
//! `sim::proxy` (delay / stall / reset TCP proxy: the road, since there is no netem)

pub mod patients;
pub mod proxy;
pub mod server;

/// The simulator's own path: change fault injection at run time (drills, tests). It is not
/// part of protocol v2, and the production client has no call for it.
pub const PATH_SIM_FAULTS: &str = "/v2/sim/faults";

/// Fault injection for drills.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Faults {
    /// Added before every answer.
    #[serde(default)]
    pub latency_ms: u64,
    /// Accept requests but never answer.
    #[serde(default)]
    pub stall: bool,
    /// Fraction (0–1) of requests answered by resetting the connection.
    #[serde(default)]
    pub reset_rate: f64,
    /// Fraction (0–1) of requests answered 503.
    #[serde(default)]
    pub error_rate: f64,
    /// Answer every request on a connection with that connection's previous answer, as a
    /// broken proxy or cache would.
    #[serde(default)]
    pub replay_previous: bool,
    /// A gateway that mixes up bodies: two emergency-info inquiries in flight together
    /// (within 3 s) get each other's body, while every header, the ids included, is right.
    #[serde(default)]
    pub swap_emergency_bodies: bool,
}

use crate::domain::{
    CardCredential, ConsentState, Coverage, EmergencyInfo, IdentityCheck, IncidentId, OperatorId,
    QualificationRef, TerminalId, Timestamp, UnitId,
};
use crate::pki::{self, CardCertificate, JpkiTestCa, PkiError};
use patients::{Patient, PatientScenario};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use thiserror::Error;
use time::Date;

#[derive(Debug, Error)]
pub enum SimError {
    #[error("no synthetic patient with id {0}")]
    UnknownPatient(String),
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error("random source failed: {0}")]
    Random(String),
}

/// Issue the `nth` card of the patient at `index` with the given JPKI CA. Any process that
/// holds the CA (the simulator server, the virtual card) makes cards the simulator knows.
pub fn issue_patient_card(
    jpki: &JpkiTestCa,
    index: usize,
    nth: u64,
) -> Result<CardCertificate, PkiError> {
    let serial = CARD_SERIAL_TAG | (((index as u64 + 1) & 0xff_ffff) << 24) | (nth & 0xff_ffff);
    jpki.issue_card(serial)
}

/// A virtual card for the synthetic patient `patient_id`, issued from the dev PKI's test
/// JPKI CA in `pki_dir` (`jpki-ca.pem`/`.key`). Any process holding that directory makes
/// cards that a simulator serving from it accepts: the `mynakyukyu-sim card` command, and
/// tests whose simulator runs in another process or network namespace.
pub fn patient_card(
    pki_dir: &std::path::Path,
    patient_id: &str,
    pin: &str,
    today: Date,
) -> Result<(crate::card::VirtualCard, CardCertificate), SimError> {
    use crate::card::{FaceItems, VirtualCard};
    let population =
        patients::population(patients::DEFAULT_SEED, patients::DEFAULT_POPULATION, today);
    let index = population
        .iter()
        .position(|p| p.id == patient_id)
        .ok_or_else(|| SimError::UnknownPatient(patient_id.to_string()))?;
    let p = &population[index];
    let jpki = JpkiTestCa::from_authority(pki::CertAuthority::load_files(
        &pki_dir.join("jpki-ca.pem"),
        &pki_dir.join("jpki-ca.key"),
    )?);
    let issued = issue_patient_card(&jpki, index, 1)?;
    let face = FaceItems {
        name: p.name.clone(),
        address: "東京都千代田区（訓練用）".into(),
        birth: format!(
            "{:04}{:02}{:02}",
            p.birth_date.year(),
            p.birth_date.month() as u8,
            p.birth_date.day()
        ),
        sex: match p.sex {
            crate::domain::Sex::Male => "1",
            crate::domain::Sex::Female => "2",
            crate::domain::Sex::NotKnown => "9",
        }
        .into(),
    };
    let card = VirtualCard::new(
        &issued.auth_certificate_der,
        &issued.ca_certificate_der,
        pin,
        face,
    )
    .with_auth_key(issued.auth_key_pkcs8.clone());
    Ok((card, issued))
}

/// The qualification check's possible answers.
#[derive(Clone, Debug, PartialEq)]
pub enum QualificationAnswer {
    Coverage {
        qualification: QualificationRef,
        coverage: Coverage,
    },
    /// The patient opted out: nothing is returned.
    OptOut,
    /// The card's certificate is not one the system can accept.
    CardNotAccepted(CardRejection),
    /// This unit asked for more distinct patients this hour than the limit allows.
    RateLimited,
    /// The answer could not be made (the random source failed).
    Unavailable,
}

/// Why a card's certificate was not accepted; answered distinctly on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CardRejection {
    /// Not issued by the (test) JPKI CA, or unreadable.
    Unknown,
    Revoked,
    Expired,
}

/// Why an emergency-info inquiry was refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum InquiryRefusal {
    #[error("unknown qualification reference")]
    UnknownQualification,
    #[error("qualification reference expired")]
    ExpiredQualification,
    /// The reference was issued to another unit's certificate: refused and flagged.
    #[error("qualification reference issued to another unit")]
    ForeignUnit,
    /// A PIN-path inquiry whose card signature is missing or does not verify.
    #[error("the card's signature is missing or does not verify")]
    CardSignatureInvalid,
    /// A phone's inquiry under 同意取得困難 or by the photo: a phone is read only with its
    /// owner, so neither can be true of it.
    #[error("a phone's inquiry without its owner (unobtainable consent or a photo check)")]
    PhoneWithoutOwner,
}

/// How long a qualification reference may be used for the emergency-info inquiry.
pub const REFERENCE_LIFETIME_MS: i64 = 15 * 60 * 1000;

/// Limits on how many distinct patients one unit may look up per hour: above `flag_at` the
/// unit is flagged in the log, above `refuse_above` further qualification checks are
/// refused (a stolen unit certificate cannot harvest a town's records).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PatientRateLimit {
    pub flag_at: usize,
    pub refuse_above: usize,
}

impl Default for PatientRateLimit {
    fn default() -> Self {
        PatientRateLimit {
            flag_at: 12,
            refuse_above: 40,
        }
    }
}

/// A qualification reference as issued: whose, to which unit, until when.
#[derive(Clone, Debug)]
struct IssuedReference {
    patient: usize,
    /// The card certificate the reference was issued for (checks the PIN-path signature).
    card: Vec<u8>,
    unit: UnitId,
    expires: Timestamp,
}

/// A random reference: 128 bits, so that holding one says nothing of any other.
fn random_reference() -> Result<QualificationRef, SimError> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| SimError::Random(e.to_string()))?;
    Ok(QualificationRef(format!("Q{}", hex::encode_upper(b))))
}

/// What the simulator logs of every inquiry (DESIGN.md §2 items).
#[derive(Clone, Debug, serde::Serialize)]
pub struct SimAuditEntry {
    pub at: Timestamp,
    pub qualification: QualificationRef,
    pub incident: IncidentId,
    pub operator: OperatorId,
    pub unit: UnitId,
    pub terminal: TerminalId,
    pub patient_id: String,
    pub consent: ConsentState,
    /// `photo`: the crew's eyes are the proof (the national design); `pin`: the card
    /// verified the PIN.
    pub identity_check: IdentityCheck,
    /// Whether the card signed this inquiry's challenge and the signature verified.
    pub card_signature_verified: bool,
    /// What the tablet read: the card or a phone.
    pub token: crate::domain::TokenKind,
}

/// The fields of an inquiry the simulator needs.
pub struct InquiryFields<'a> {
    pub incident: &'a IncidentId,
    pub qualification: &'a QualificationRef,
    pub consent: ConsentState,
    pub operator: &'a OperatorId,
    /// From the client certificate.
    pub unit: &'a UnitId,
    pub terminal: &'a TerminalId,
    pub identity_check: IdentityCheck,
    /// The card's signature over the PIN-path challenge (required with every check but
    /// `Photo`).
    pub card_signature: Option<&'a [u8]>,
    pub token: crate::domain::TokenKind,
}

/// The simulated national system.
pub struct Simulator {
    patients: Vec<Patient>,
    today: Date,
    jpki: JpkiTestCa,
    cards_issued: u64,
    qualifications: HashMap<String, IssuedReference>,
    /// Per unit: (time, patient) of each qualification answered with coverage.
    lookups: HashMap<UnitId, Vec<(Timestamp, usize)>>,
    flagged: Vec<UnitId>,
    limit: PatientRateLimit,
    audit: Vec<SimAuditEntry>,
}

/// Card serials carry the patient's index: `4D4E` tag, 24-bit index + 1, 24-bit counter.
const CARD_SERIAL_TAG: u64 = 0x4d4e << 48;

impl Simulator {
    /// The default population as of `today`, with a fresh test JPKI CA.
    pub fn new(today: Date) -> Result<Self, SimError> {
        Self::with_population(
            patients::population(patients::DEFAULT_SEED, patients::DEFAULT_POPULATION, today),
            today,
        )
    }

    pub fn with_population(patients: Vec<Patient>, today: Date) -> Result<Self, SimError> {
        Ok(Self::with_jpki(patients, today, JpkiTestCa::generate()?))
    }

    /// A simulator whose cards are issued by (and checked against) this JPKI CA, so that
    /// cards made by another process with the same CA are recognised.
    pub fn with_jpki(patients: Vec<Patient>, today: Date, jpki: JpkiTestCa) -> Self {
        Simulator {
            patients,
            today,
            jpki,
            cards_issued: 0,
            qualifications: HashMap::new(),
            lookups: HashMap::new(),
            flagged: Vec::new(),
            limit: PatientRateLimit::default(),
            audit: Vec::new(),
        }
    }

    /// Change the per-unit patient limit (benchmarks and load tests raise it).
    pub fn set_rate_limit(&mut self, limit: PatientRateLimit) {
        self.limit = limit;
    }

    /// Units that asked for an unusual number of patients, in the order flagged.
    pub fn flagged_units(&self) -> &[UnitId] {
        &self.flagged
    }

    pub fn jpki(&self) -> &JpkiTestCa {
        &self.jpki
    }

    pub fn patients(&self) -> &[Patient] {
        &self.patients
    }

    pub fn patient(&self, id: &str) -> Option<&Patient> {
        self.patients.iter().find(|p| p.id == id)
    }

    /// The first patient of a scenario.
    pub fn scenario_patient(&self, scenario: PatientScenario) -> Option<&Patient> {
        self.patients.iter().find(|p| p.scenario == Some(scenario))
    }

    /// Issue a virtual card to a patient.
    pub fn issue_card(&mut self, patient_id: &str) -> Result<CardCertificate, SimError> {
        let index = self
            .patients
            .iter()
            .position(|p| p.id == patient_id)
            .ok_or_else(|| SimError::UnknownPatient(patient_id.to_string()))?;
        self.cards_issued += 1;
        Ok(issue_patient_card(&self.jpki, index, self.cards_issued)?)
    }

    /// The qualification check by the card's authentication certificate, asked by `unit`
    /// (the unit named by the client certificate, never by the request body) at `now`.
    pub fn qualification(
        &mut self,
        unit: &UnitId,
        credential: &CardCredential,
        now_at: Timestamp,
    ) -> QualificationAnswer {
        let der = &credential.auth_certificate_der;
        if !pki::is_signed_by(der, self.jpki.certificate_der()) {
            return QualificationAnswer::CardNotAccepted(CardRejection::Unknown);
        }
        let now = time::OffsetDateTime::now_utc();
        match pki::inspect(der, now).map(|s| s.validity) {
            Ok(pki::Validity::Valid) => {}
            Ok(_) => return QualificationAnswer::CardNotAccepted(CardRejection::Expired),
            Err(_) => return QualificationAnswer::CardNotAccepted(CardRejection::Unknown),
        }
        let Some(index) = pki::serial_u64(der)
            .filter(|s| s >> 48 == CARD_SERIAL_TAG >> 48)
            .map(|s| ((s >> 24) & 0xff_ffff) as usize)
            .and_then(|i| i.checked_sub(1))
            .filter(|i| *i < self.patients.len())
        else {
            return QualificationAnswer::CardNotAccepted(CardRejection::Unknown);
        };
        let patient = &self.patients[index];
        match patient.scenario {
            Some(PatientScenario::RevokedCard) => {
                return QualificationAnswer::CardNotAccepted(CardRejection::Revoked);
            }
            Some(PatientScenario::OptOut) => return QualificationAnswer::OptOut,
            _ => {}
        }
        let coverage = patient.coverage();
        if !self.count_lookup(unit, index, now_at) {
            return QualificationAnswer::RateLimited;
        }
        let Ok(reference) = random_reference() else {
            return QualificationAnswer::Unavailable;
        };
        let now_ms = now_at.0;
        self.qualifications
            .retain(|_, issued| issued.expires.0 > now_ms);
        self.qualifications.insert(
            reference.as_str().to_string(),
            IssuedReference {
                patient: index,
                card: credential.auth_certificate_der.clone(),
                unit: unit.clone(),
                expires: Timestamp(now_ms + REFERENCE_LIFETIME_MS),
            },
        );
        QualificationAnswer::Coverage {
            qualification: reference,
            coverage,
        }
    }

    /// Count one lookup of `patient` by `unit`; false when the unit is over its limit.
    fn count_lookup(&mut self, unit: &UnitId, patient: usize, at: Timestamp) -> bool {
        const HOUR_MS: i64 = 3_600_000;
        let seen = self.lookups.entry(unit.clone()).or_default();
        seen.retain(|(t, _)| at.0 - t.0 < HOUR_MS);
        let mut distinct: Vec<usize> = seen.iter().map(|(_, p)| *p).collect();
        distinct.sort_unstable();
        distinct.dedup();
        let new_patient = !distinct.contains(&patient);
        let count = distinct.len() + usize::from(new_patient);
        if new_patient && count > self.limit.refuse_above {
            tracing::warn!(unit = %unit.as_str(), patients_last_hour = count - 1,
                "qualification refused: unit over its patient limit");
            return false;
        }
        seen.push((at, patient));
        if count >= self.limit.flag_at && !self.flagged.contains(unit) {
            tracing::warn!(unit = %unit.as_str(), patients_last_hour = count,
                "unit flagged: unusual number of patients");
            self.flagged.push(unit.clone());
        }
        true
    }

    /// The emergency-info inquiry; logged whatever the outcome of the lookup.
    pub fn emergency_info(
        &mut self,
        at: Timestamp,
        inquiry: InquiryFields<'_>,
    ) -> Result<EmergencyInfo, InquiryRefusal> {
        let issued = self
            .qualifications
            .get(inquiry.qualification.as_str())
            .ok_or(InquiryRefusal::UnknownQualification)?;
        if issued.unit != *inquiry.unit {
            tracing::warn!(unit = %inquiry.unit.as_str(), issued_to = %issued.unit.as_str(),
                "inquiry refused and flagged: a reference issued to another unit");
            if !self.flagged.contains(inquiry.unit) {
                self.flagged.push(inquiry.unit.clone());
            }
            return Err(InquiryRefusal::ForeignUnit);
        }
        if issued.expires.0 <= at.0 {
            return Err(InquiryRefusal::ExpiredQualification);
        }
        let challenge = crate::domain::pin_challenge(inquiry.qualification, inquiry.incident);
        let card_signature_verified = inquiry
            .card_signature
            .is_some_and(|sig| pki::verify_card_signature(&issued.card, &challenge, sig));
        if inquiry.token.is_phone()
            && (inquiry.consent == ConsentState::Unobtainable
                || inquiry.identity_check == IdentityCheck::Photo)
        {
            tracing::warn!(unit = %inquiry.unit.as_str(), token = inquiry.token.name(),
                "phone inquiry refused: a phone is read only with its owner");
            return Err(InquiryRefusal::PhoneWithoutOwner);
        }
        if inquiry.identity_check.needs_card_signature() && !card_signature_verified {
            tracing::warn!(unit = %inquiry.unit.as_str(), "PIN-path inquiry refused: card signature missing or invalid");
            return Err(InquiryRefusal::CardSignatureInvalid);
        }
        let index = issued.patient;
        let patient = &self.patients[index];
        // Idempotent by incident: a resent inquiry is answered again but logged once.
        let repeat = self
            .audit
            .iter()
            .any(|a| a.incident == *inquiry.incident && a.qualification == *inquiry.qualification);
        if repeat {
            return Ok(patient.emergency_info(self.today));
        }
        self.audit.push(SimAuditEntry {
            qualification: inquiry.qualification.clone(),
            at,
            incident: inquiry.incident.clone(),
            operator: inquiry.operator.clone(),
            unit: inquiry.unit.clone(),
            terminal: inquiry.terminal.clone(),
            patient_id: patient.id.clone(),
            consent: inquiry.consent,
            identity_check: inquiry.identity_check,
            card_signature_verified,
            token: inquiry.token,
        });
        Ok(patient.emergency_info(self.today))
    }

    /// The patient a reference was issued for, as the qualification answer named them.
    pub fn patient_for(&self, q: &QualificationRef) -> Option<crate::domain::PatientRef> {
        let issued = self.qualifications.get(q.as_str())?;
        Some(self.patients.get(issued.patient)?.coverage().patient)
    }

    /// The server-side log of inquiries.
    /// (Kept in memory; the server also appends it to a file when asked.)
    pub fn audit_log(&self) -> &[SimAuditEntry] {
        &self.audit
    }
}

#[cfg(test)]
mod tests;
