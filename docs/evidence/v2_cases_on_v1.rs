//! Kept as evidence, not built: copy into tests/ of commit 2095ca7 (protocol v1) and run
//! `cargo test --test v2_cases_on_v1`; all five fail there (2026-12-02), and the same cases
//! pass as tests of protocol v2 (tests/eligibility.rs, tests/store_sync.rs).
//! The v2 cases of issue #17, written against the v1 API: each asserts what v2 guarantees,
//! and each must FAIL on this (old) code.

mod common;

use common::*;
use mynakyukyu::domain::{
    ConsentState, IdentityCheck, IdentityMethod, IncidentId, OperatorId, QualificationRef,
    Record, TerminalId, UnitId,
};
use mynakyukyu::eligibility::wire::{self, Faults, QualificationResponse};
use mynakyukyu::session::{EmergencyInquiry, QualificationRequest};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn request(incident: &str, der: Vec<u8>) -> QualificationRequest {
    QualificationRequest {
        incident: IncidentId::new(incident),
        credential: mynakyukyu::domain::CardCredential {
            auth_certificate_der: der,
        },
        operator: OperatorId::new("EMT-1"),
        unit: UnitId::new("U-1"),
        terminal: TerminalId::new("T-1"),
    }
}

fn inquiry(incident: &str, q: QualificationRef, unit: &str, check: IdentityCheck) -> EmergencyInquiry {
    EmergencyInquiry {
        incident: IncidentId::new(incident),
        qualification: q,
        consent: ConsentState::Consented,
        operator: OperatorId::new("EMT-1"),
        unit: UnitId::new(unit),
        terminal: TerminalId::new("T-1"),
        identity_method: IdentityMethod::MynaCard,
        identity_check: check,
    }
}

/// A TLS server answering the n-th request of a connection with script[n].
async fn scripted(script: Vec<Vec<u8>>) -> u16 {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let dir = pki();
    let chain = CertificateDer::pem_file_iter(dir.join("server.pem")).unwrap().collect::<Result<Vec<_>, _>>().unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(mynakyukyu::eligibility::client::crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13]).unwrap()
        .with_no_client_auth().with_single_cert(chain, key).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let script = script.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                let mut buf = Vec::new();
                for answer in script {
                    let end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") { break i + 4; }
                        let mut c = [0u8; 4096];
                        match tls.read(&mut c).await { Ok(0) | Err(_) => return, Ok(n) => buf.extend_from_slice(&c[..n]) }
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    let len: usize = head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
                    while buf.len() < end + len {
                        let mut c = [0u8; 4096];
                        match tls.read(&mut c).await { Ok(0) | Err(_) => return, Ok(n) => buf.extend_from_slice(&c[..n]) }
                    }
                    buf.drain(..end + len);
                    if tls.write_all(&answer).await.is_err() { return; }
                }
            });
        }
    });
    port
}

fn answer(body: &[u8]) -> Vec<u8> {
    let mut a = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n", body.len()).into_bytes();
    a.extend_from_slice(body);
    a
}

#[tokio::test]
async fn informational_1xx_is_not_the_answer() {
    let health = br#"{"status":"ok","version":"1"}"#;
    let mut first = b"HTTP/1.1 102 Processing\r\n\r\n".to_vec();
    first.extend(answer(health));
    let port = scripted(vec![first, answer(health)]).await;
    let c = client(port);
    c.health().await.expect("first call: its own answer");
    c.health().await.expect("second call: its own answer");
}

#[tokio::test]
async fn an_answer_to_another_request_is_refused() {
    let server = start_sim(Faults::default()).await;
    let c = client(server.local_addr.port());
    let der = server.with_simulator(|s| s.issue_card("P0004").unwrap().auth_certificate_der);
    let QualificationResponse::Coverage { qualification_ref, .. } = c.qualification(&request("I-A", der)).await.unwrap() else { panic!() };
    let a = c.emergency_info(&inquiry("I-A", qualification_ref, "U-1", IdentityCheck::Photo)).await.unwrap();
    let body = serde_json::to_vec(&wire::EmergencyInfoResponse { emergency_summary: a.summary, full_data: a.full }).unwrap();
    // a proxy answering patient B's inquiry with patient A's answer
    let port = scripted(vec![answer(&body), answer(&body)]).await;
    let p = client(port);
    let _ = p.emergency_info(&inquiry("I-A", QualificationRef::new("QA"), "U-1", IdentityCheck::Photo)).await;
    let b = p.emergency_info(&inquiry("I-B", QualificationRef::new("QB"), "U-1", IdentityCheck::Photo)).await;
    assert!(b.is_err(), "patient A's data was shown for patient B");
}

#[tokio::test]
async fn references_cannot_be_walked_or_used_by_another_unit() {
    let server = start_sim(Faults::default()).await;
    let c = client(server.local_addr.port());
    let der = server.with_simulator(|s| s.issue_card("P0004").unwrap().auth_certificate_der);
    c.qualification(&request("I-A", der)).await.unwrap();
    // a guessed sequential reference, asked by another unit
    let walked = c.emergency_info(&inquiry("I-X", QualificationRef::new("Q00000001"), "U-B", IdentityCheck::Photo)).await;
    assert!(walked.is_err(), "a guessed reference from another unit returned a patient's data");
}

#[tokio::test]
async fn the_pin_path_needs_the_cards_signature() {
    let server = start_sim(Faults::default()).await;
    let c = client(server.local_addr.port());
    let der = server.with_simulator(|s| s.issue_card("P0004").unwrap().auth_certificate_der);
    let QualificationResponse::Coverage { qualification_ref, .. } = c.qualification(&request("I-A", der)).await.unwrap() else { panic!() };
    let unsigned = c.emergency_info(&inquiry("I-A", qualification_ref, "U-1", IdentityCheck::Pin)).await;
    assert!(unsigned.is_err(), "a PIN-path inquiry without the card's signature was answered");
}

#[tokio::test]
async fn a_rolled_back_chain_is_refused() {
    let server = start_sim(Faults::default()).await;
    let c = client(server.local_addr.port());
    let live: Vec<Record> = (0..5).map(|i| Record { id: format!("R-live-{i}"), body: opt_out_audit("I-1", i) }).collect();
    c.upload_records(&live).await.unwrap();
    // an older store restored appends its own records 3..5
    let restored: Vec<Record> = (3..6).map(|i| Record { id: format!("R-restored-{i}"), body: opt_out_audit("I-1", i) }).collect();
    let r = c.upload_records(&restored).await;
    assert!(r.is_err(), "the server took a rolled-back chain: {r:?}");
}
