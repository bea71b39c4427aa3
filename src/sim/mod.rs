//! The eligibility simulator: synthetic patients, the virtual cards issued to them, and the
//! answers the national system would give (qualification check, emergency-info inquiry).
//!
//! [`Simulator`] is the service's logic with no transport; the drills call it in-process.

pub mod patients;
pub mod proxy;
pub mod server;

use crate::domain::{
    CardCredential, ConsentState, Coverage, EmergencyInfo, IncidentId, OperatorId,
    QualificationRef, TerminalId, Timestamp, UnitId,
};
use crate::pki::{self, CardCertificate, JpkiTestCa, PkiError};
use patients::{Patient, PatientScenario};
use std::collections::HashMap;
use thiserror::Error;
use time::Date;

#[derive(Debug, Error)]
pub enum SimError {
    #[error("no synthetic patient with id {0}")]
    UnknownPatient(String),
    #[error(transparent)]
    Pki(#[from] PkiError),
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
}

/// The fields of an inquiry the simulator needs.
pub struct InquiryFields<'a> {
    pub incident: &'a IncidentId,
    pub qualification: &'a QualificationRef,
    pub consent: ConsentState,
    pub operator: &'a OperatorId,
    pub unit: &'a UnitId,
    pub terminal: &'a TerminalId,
}

/// The simulated national system.
pub struct Simulator {
    patients: Vec<Patient>,
    today: Date,
    jpki: JpkiTestCa,
    cards_issued: u64,
    qualifications: HashMap<String, usize>,
    next_qualification: u64,
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
            next_qualification: 1,
            audit: Vec::new(),
        }
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

    /// The qualification check by the card's authentication certificate.
    pub fn qualification(&mut self, credential: &CardCredential) -> QualificationAnswer {
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
        let reference = format!("Q{:08}", self.next_qualification);
        self.next_qualification += 1;
        self.qualifications.insert(reference.clone(), index);
        QualificationAnswer::Coverage {
            qualification: QualificationRef(reference),
            coverage: patient.coverage(),
        }
    }

    /// The emergency-info inquiry; logged whatever the outcome of the lookup.
    pub fn emergency_info(
        &mut self,
        at: Timestamp,
        inquiry: InquiryFields<'_>,
    ) -> Result<EmergencyInfo, InquiryRefusal> {
        let index = *self
            .qualifications
            .get(inquiry.qualification.as_str())
            .ok_or(InquiryRefusal::UnknownQualification)?;
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
        });
        Ok(patient.emergency_info(self.today))
    }

    /// The server-side log of inquiries.
    /// (Kept in memory; the server also appends it to a file when asked.)
    pub fn audit_log(&self) -> &[SimAuditEntry] {
        &self.audit
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn sim() -> Simulator {
        Simulator::with_population(
            patients::population(patients::DEFAULT_SEED, 20, date!(2026 - 11 - 22)),
            date!(2026 - 11 - 22),
        )
        .unwrap()
    }

    fn cred(card: &CardCertificate) -> CardCredential {
        CardCredential {
            auth_certificate_der: card.auth_certificate_der.clone(),
        }
    }

    #[test]
    fn issued_card_is_answered_with_its_patients_coverage() {
        let mut s = sim();
        let card = s.issue_card("P0012").unwrap();
        match s.qualification(&cred(&card)) {
            QualificationAnswer::Coverage { coverage, .. } => {
                assert_eq!(coverage.patient.local_id.expose(), "P0012")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_revoked_and_opt_out_cards_are_answered_distinctly() {
        let mut s = sim();
        let stranger = JpkiTestCa::generate().unwrap().issue_card(9).unwrap();
        assert_eq!(
            s.qualification(&cred(&stranger)),
            QualificationAnswer::CardNotAccepted(CardRejection::Unknown)
        );
        let revoked = s
            .scenario_patient(PatientScenario::RevokedCard)
            .unwrap()
            .id
            .clone();
        let card = s.issue_card(&revoked).unwrap();
        assert_eq!(
            s.qualification(&cred(&card)),
            QualificationAnswer::CardNotAccepted(CardRejection::Revoked)
        );
        let opt_out = s
            .scenario_patient(PatientScenario::OptOut)
            .unwrap()
            .id
            .clone();
        let card = s.issue_card(&opt_out).unwrap();
        assert_eq!(s.qualification(&cred(&card)), QualificationAnswer::OptOut);
        assert!(matches!(
            s.issue_card("P9999"),
            Err(SimError::UnknownPatient(_))
        ));
        // a card from the same CA for a patient index beyond the population is unknown
        let beyond = issue_patient_card(s.jpki(), 5_000, 1).unwrap();
        assert_eq!(
            s.qualification(&cred(&beyond)),
            QualificationAnswer::CardNotAccepted(CardRejection::Unknown)
        );
        // garbage is unknown, not a panic
        let junk = CardCredential {
            auth_certificate_der: vec![0x30, 0x82, 0xff, 0xff, 1],
        };
        assert_eq!(
            s.qualification(&junk),
            QualificationAnswer::CardNotAccepted(CardRejection::Unknown)
        );
    }

    #[test]
    fn inquiry_needs_a_known_qualification_and_is_logged_with_consent() {
        let mut s = sim();
        let (incident, operator) = (IncidentId::new("I-1"), OperatorId::new("EMT-1"));
        let (unit, terminal) = (UnitId::new("U-1"), TerminalId::new("T-1"));
        let fields = |qualification| InquiryFields {
            incident: &incident,
            qualification,
            consent: ConsentState::Unobtainable,
            operator: &operator,
            unit: &unit,
            terminal: &terminal,
        };
        let bogus = QualificationRef::new("Qx");
        assert_eq!(
            s.emergency_info(Timestamp(0), fields(&bogus)).unwrap_err(),
            InquiryRefusal::UnknownQualification
        );
        assert!(s.audit_log().is_empty());
        let card = s.issue_card("P0004").unwrap();
        let QualificationAnswer::Coverage { qualification, .. } = s.qualification(&cred(&card))
        else {
            panic!("no coverage")
        };
        let info = s
            .emergency_info(Timestamp(5), fields(&qualification))
            .unwrap();
        assert!(!info.summary.medications.is_empty());
        assert_eq!(s.audit_log().len(), 1);
        assert_eq!(s.audit_log()[0].consent, ConsentState::Unobtainable);
        assert_eq!(s.audit_log()[0].patient_id, "P0004");
    }
}
