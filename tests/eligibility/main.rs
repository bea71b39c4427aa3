//! The mutual-TLS client against the real simulator server (and against a hostile one).

#[path = "../common/mod.rs"]
mod common;

mod answers;
mod load;
mod records;
mod references;
mod tls;

pub use common::*;
pub use mynakyukyu::domain::{
    CardCredential, ConsentState, CoverageStatus, IdentityCheck, IdentityMethod, IncidentId,
    OperatorId, QualificationRef, TerminalId, UnitId,
};
pub use mynakyukyu::eligibility::wire::QualificationResponse;
pub use mynakyukyu::eligibility::{CardProblem, ClientError, ClientSettings};
pub use mynakyukyu::session::{EmergencyInquiry, QualificationRequest, ServiceFailure};
pub use mynakyukyu::sim::Faults;
pub use mynakyukyu::sim::server::{ServeOptions, SimServer};
pub use std::sync::Arc;
pub use std::sync::atomic::Ordering;
pub use std::time::Duration;
pub use tokio::io::AsyncWriteExt;

fn request(incident: &str, der: Vec<u8>) -> QualificationRequest {
    QualificationRequest {
        incident: IncidentId::new(incident),
        credential: CardCredential {
            auth_certificate_der: der,
            token: Default::default(),
        },
        operator: OperatorId::new("EMT-1"),
        unit: UnitId::new(mynakyukyu::pki::dev::UNIT),
        terminal: TerminalId::new("T-1"),
    }
}

/// An inquiry about the patient the simulator issued `q` for (the answer must name them).
fn inquiry(
    server: &mynakyukyu::sim::server::SimServer,
    incident: &str,
    q: QualificationRef,
    consent: ConsentState,
) -> EmergencyInquiry {
    // a made-up or foreign reference names nobody: the server refuses it before any body
    let patient = server
        .with_simulator(|s| s.patient_for(&q))
        .unwrap_or_else(|| nobody(""));
    inquiry_about(incident, q, consent, patient)
}

/// A patient reference with this local id and nothing else.
fn nobody(local_id: &str) -> mynakyukyu::domain::PatientRef {
    mynakyukyu::domain::PatientRef {
        local_id: mynakyukyu::domain::Sensitive(local_id.to_string()),
        insured_number: mynakyukyu::domain::Sensitive(String::new()),
        public_assistance: None,
    }
}

/// An inquiry by photo from unit `pki::dev::UNIT`, terminal T-1, crew EMT-1.
fn inquiry_about(
    incident: &str,
    q: QualificationRef,
    consent: ConsentState,
    patient: mynakyukyu::domain::PatientRef,
) -> EmergencyInquiry {
    EmergencyInquiry {
        patient,
        incident: IncidentId::new(incident),
        qualification: q,
        consent,
        operator: OperatorId::new("EMT-1"),
        unit: UnitId::new(mynakyukyu::pki::dev::UNIT),
        terminal: TerminalId::new("T-1"),
        identity_method: IdentityMethod::MynaCard,
        identity_check: IdentityCheck::Photo,
        token: Default::default(),
    }
}

fn card_of(server: &mynakyukyu::sim::server::SimServer, patient: &str) -> Vec<u8> {
    server.with_simulator(|s| s.issue_card(patient).unwrap().auth_certificate_der)
}

/// A second unit of the same fire department (its own certificate from the dev CA).
fn second_unit(port: u16) -> mynakyukyu::eligibility::EligibilityClient {
    use mynakyukyu::pki::{self, CertAuthority, LeafKind};
    let dir = pki();
    if !dir.join("unit-b.key").is_file() {
        let ca = CertAuthority::load_files(&dir.join("ca.pem"), &dir.join("ca.key")).unwrap();
        let now = time::OffsetDateTime::now_utc();
        let leaf = pki::issue_leaf(
            &ca,
            LeafKind::Unit {
                department: pki::dev::DEPARTMENT,
                unit: "U-B",
            },
            0x4242,
            now - time::Duration::days(1),
            now + time::Duration::days(30),
        )
        .unwrap();
        std::fs::write(dir.join("unit-b.pem"), pki::certificate_pem(&leaf.cert_der)).unwrap();
        std::fs::write(dir.join("unit-b.key"), leaf.key_pem.as_bytes()).unwrap();
    }
    client_with(port, "localhost", "unit-b", "ca.pem", fast_settings())
}
