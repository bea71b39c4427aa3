//! The mutual-TLS client against the real simulator server (and against a hostile one).

mod common;

use common::*;
use mynakyukyu::domain::{
    CardCredential, ConsentState, CoverageStatus, IdentityCheck, IdentityMethod, IncidentId,
    OperatorId, QualificationRef, TerminalId, UnitId,
};
use mynakyukyu::eligibility::wire::QualificationResponse;
use mynakyukyu::eligibility::{CardProblem, ClientError, ClientSettings};
use mynakyukyu::session::{EmergencyInquiry, QualificationRequest, ServiceFailure};
use mynakyukyu::sim::Faults;
use mynakyukyu::sim::server::{ServeOptions, SimServer};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

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
        .unwrap_or_else(|| mynakyukyu::domain::PatientRef {
            local_id: mynakyukyu::domain::Sensitive(String::new()),
            insured_number: mynakyukyu::domain::Sensitive(String::new()),
            public_assistance: None,
        });
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

#[tokio::test]
async fn full_inquiry_over_one_kept_alive_connection_then_resumed() {
    let server = start_sim(Faults::default()).await;
    let c = client(server.local_addr.port());
    assert_eq!(c.health().await.unwrap().version, "2");
    let der = card_of(&server, "P0004");
    let QualificationResponse::Coverage {
        qualification_ref,
        coverage,
    } = c.qualification(&request("I-1", der)).await.unwrap()
    else {
        panic!("expected coverage")
    };
    assert_eq!(coverage.patient.local_id.expose(), "P0004");
    assert_eq!(coverage.status, CoverageStatus::Current);
    let info = c
        .emergency_info(&inquiry(
            &server,
            "I-1",
            qualification_ref.clone(),
            ConsentState::Unobtainable,
        ))
        .await
        .unwrap();
    assert!(!info.summary.medications.is_empty());
    assert_eq!(c.stats.connections.load(Ordering::Relaxed), 1, "kept alive");
    // the same inquiry resent (idempotent): same answer, logged once at the server
    let again = c
        .emergency_info(&inquiry(
            &server,
            "I-1",
            qualification_ref,
            ConsentState::Unobtainable,
        ))
        .await
        .unwrap();
    assert!(again == info);
    assert_eq!(server.inquiry_count(), 1);
    // a new connection resumes the TLS session
    c.disconnect().await;
    c.health().await.unwrap();
    assert_eq!(c.stats.connections.load(Ordering::Relaxed), 2);
    assert_eq!(c.stats.resumed.load(Ordering::Relaxed), 1, "TLS resumption");
    server.shutdown().await;
}

#[tokio::test]
async fn cards_are_answered_distinctly() {
    let server = start_sim(Faults::default()).await;
    let c = client(server.local_addr.port());
    // P0001 opted out, P0002 lost coverage, P0003's card is revoked
    let opt_out = card_of(&server, "P0001");
    assert!(matches!(
        c.qualification(&request("I-a", opt_out)).await.unwrap(),
        QualificationResponse::OptOut
    ));
    let lapsed = card_of(&server, "P0002");
    match c.qualification(&request("I-b", lapsed)).await.unwrap() {
        QualificationResponse::Coverage { coverage, .. } => {
            assert_eq!(coverage.status, CoverageStatus::MostRecentValid)
        }
        other => panic!("{other:?}"),
    }
    let revoked = card_of(&server, "P0003");
    assert!(matches!(
        c.qualification(&request("I-c", revoked)).await,
        Err(ClientError::CardNotAccepted(CardProblem::Revoked))
    ));
    let stranger = mynakyukyu::pki::JpkiTestCa::generate()
        .unwrap()
        .issue_card(1)
        .unwrap()
        .auth_certificate_der;
    let err = c
        .qualification(&request("I-d", stranger))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        ClientError::CardNotAccepted(CardProblem::Unknown)
    ));
    assert_eq!(err.service_failure(), ServiceFailure::CardNotAccepted);
    let err = c
        .emergency_info(&inquiry(
            &server,
            "I-e",
            QualificationRef::new("Q-bogus"),
            ConsentState::Consented,
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Refused(ref p) if p.status == 404),
        "{err}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn server_refuses_expired_revoked_and_foreign_unit_certificates() {
    let server = start_sim(Faults::default()).await;
    let port = server.local_addr.port();
    for unit in ["unit-expired", "unit-revoked", "other-unit"] {
        let c = client_with(port, "localhost", unit, "ca.pem", fast_settings());
        let err = c.health().await.unwrap_err();
        assert!(
            matches!(err, ClientError::CertificateRefused(_)),
            "{unit}: {err}"
        );
        assert_eq!(err.service_failure(), ServiceFailure::CertificateRefused);
        assert_eq!(c.stats.retries.load(Ordering::Relaxed), 0, "not retried");
    }
    assert!(server.stats().refused_handshakes.load(Ordering::Relaxed) >= 3);
    server.shutdown().await;
    common::reliability_row(
        "certs-unit",
        "Bad input",
        "unit certificates the server must refuse: expired, revoked, from an unknown CA",
        3,
        0,
        "each refused in the TLS handshake, typed CertificateRefused, never retried",
    );
}

/// The simulator serving `server_name`.pem/.key of a copy of the dev PKI.
async fn sim_with_server_cert(dir: &std::path::Path, pem: &[u8], key: &[u8]) -> SimServer {
    for f in std::fs::read_dir(pki()).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, dir.join(f.file_name().unwrap())).unwrap();
    }
    std::fs::write(dir.join("server.pem"), pem).unwrap();
    std::fs::write(dir.join("server.key"), key).unwrap();
    SimServer::start(ServeOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        pki_dir: dir.to_path_buf(),
        faults: Faults::default(),
        audit_log: None,
        today: time::OffsetDateTime::now_utc().date(),
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn client_rejects_a_server_from_another_ca_with_the_wrong_name_expired_or_revoked() {
    let server = start_sim(Faults::default()).await;
    let port = server.local_addr.port();
    let pinned_other = client_with(port, "localhost", "unit", "other-ca.pem", fast_settings());
    let err = pinned_other.health().await.unwrap_err();
    assert!(
        matches!(err, ClientError::ServerCertificateWrong(_)),
        "{err}"
    );
    let wrong_name = client_with(port, "localhost", "unit", "ca.pem", fast_settings())
        .with_server_name("eligibility.example.jp")
        .unwrap();
    let err = wrong_name.health().await.unwrap_err();
    assert!(
        matches!(err, ClientError::ServerCertificateWrong(_)),
        "{err}"
    );
    assert_eq!(server.stats().requests.load(Ordering::Relaxed), 0);
    server.shutdown().await;

    // the right CA and name, but expired yesterday
    let dir = TempDir::new("expired-server");
    let ca =
        mynakyukyu::pki::CertAuthority::load_files(&pki().join("ca.pem"), &pki().join("ca.key"))
            .unwrap();
    let now = time::OffsetDateTime::now_utc();
    let expired = mynakyukyu::pki::issue_leaf(
        &ca,
        mynakyukyu::pki::LeafKind::Server {
            names: &mynakyukyu::pki::dev::SERVER_NAMES,
        },
        0x2002,
        now - time::Duration::days(400),
        now - time::Duration::days(1),
    )
    .unwrap();
    let server = sim_with_server_cert(
        dir.path(),
        mynakyukyu::pki::certificate_pem(&expired.cert_der).as_bytes(),
        expired.key_pem.as_bytes(),
    )
    .await;
    let c = client_with(
        server.local_addr.port(),
        "localhost",
        "unit",
        "ca.pem",
        fast_settings(),
    );
    let err = c.health().await.unwrap_err();
    assert!(
        matches!(err, ClientError::ServerCertificateWrong(_)),
        "{err}"
    );
    assert!(err.to_string().to_lowercase().contains("expired"), "{err}");
    assert_eq!(server.stats().requests.load(Ordering::Relaxed), 0);
    server.shutdown().await;

    // revoked: on the CA's CRL. Refused once the CRL is installed; accepted without it,
    // which is what the CRL is for.
    let dir = TempDir::new("revoked-server");
    let server = sim_with_server_cert(
        dir.path(),
        &std::fs::read(pki().join("server-revoked.pem")).unwrap(),
        &std::fs::read(pki().join("server-revoked.key")).unwrap(),
    )
    .await;
    let port = server.local_addr.port();
    let identity = || {
        mynakyukyu::eligibility::UnitIdentity::from_files(
            &pki().join("unit.pem"),
            &pki().join("unit.key"),
            &pki().join("ca.pem"),
        )
        .unwrap()
    };
    let with_crl = mynakyukyu::eligibility::EligibilityClient::new(
        mynakyukyu::eligibility::Endpoint {
            host: "localhost".into(),
            port,
        },
        mynakyukyu::eligibility::client::tls_config(
            identity().with_server_crls(&pki().join("crl.pem")).unwrap(),
        )
        .unwrap(),
        fast_settings(),
    )
    .unwrap();
    let err = with_crl.health().await.unwrap_err();
    assert!(
        matches!(err, ClientError::ServerCertificateWrong(_)),
        "{err}"
    );
    assert!(err.to_string().contains("Revoked"), "{err}");
    assert_eq!(server.stats().requests.load(Ordering::Relaxed), 0);
    client(port)
        .health()
        .await
        .expect("without the CRL the revocation is unknown");
    server.shutdown().await;
    common::reliability_row(
        "certs-server",
        "Bad input",
        "server certificates the tablet must refuse: from another CA, for another name, expired, revoked (on the CA's CRL, installed with `install-crl`)",
        4,
        0,
        "each refused in the handshake before any request was sent (the server counted 0 requests); typed ServerCertificateWrong",
    );
}

/// Record ids are each tablet's own: another tablet's record with the same id is another
/// record at the server, not a replacement of the first one's.
#[tokio::test]
async fn the_server_holds_records_per_device_key_not_by_record_id_alone() {
    let server = start_sim(Faults::default()).await;
    let port = server.local_addr.port();
    let a = client(port);
    let b = second_unit(port);
    let genesis = "0".repeat(64);
    let from_a = chain_of(&a, 0, &genesis, 3, "same-ids");
    let from_b = chain_of(&b, 0, &genesis, 3, "same-ids");
    assert_eq!(from_a[0].record.id, from_b[0].record.id, "the same ids");
    assert_eq!(a.upload_records(&from_a).await.unwrap().accepted, 3);
    assert_eq!(b.upload_records(&from_b).await.unwrap().accepted, 3);
    assert_eq!(server.record_ids().len(), 6, "both tablets' records held");
    // and each tablet's chain is its own: A's head is still A's
    assert_eq!(
        a.records_head().await.unwrap().head.unwrap().hash,
        from_a[2].hash
    );
    server.shutdown().await;
    common::reliability_row(
        "records-per-device-key",
        "Security",
        "two tablets (two unit keys) upload records with the same record ids",
        2,
        0,
        "the server holds all six, keyed by the signing device key and then the id; neither tablet's record replaced the other's",
    );
}

#[tokio::test]
async fn records_upload_is_idempotent_and_held_to_the_signed_chain() {
    use mynakyukyu::eligibility::wire::problem;
    let server = start_sim(Faults::default()).await;
    let c = client(server.local_addr.port());
    let genesis = "0".repeat(64);
    let records = chain_of(&c, 0, &genesis, 5, "live");
    let first = c.upload_records(&records).await.unwrap();
    assert_eq!((first.accepted, first.duplicates), (5, 0));
    assert_eq!((first.head.seq, &first.head.hash), (4, &records[4].hash));
    let again = c.upload_records(&records[2..]).await.unwrap();
    assert_eq!((again.accepted, again.duplicates), (0, 3));
    assert_eq!(server.record_ids().len(), 5);
    assert_eq!(
        c.records_head().await.unwrap().head,
        Some(first.head.clone())
    );
    let refused = |e: ClientError| match e {
        ClientError::Refused(p) => p.kind,
        other => panic!("{other}"),
    };
    let next = chain_of(&c, 5, &records[4].hash, 3, "live");
    // forged: another link's signature, a record altered after signing, another unit's key
    let mut swapped = next[0].clone();
    swapped.signature = next[1].signature.clone();
    let mut altered = next[0].clone();
    altered.record.id = "R-altered".into();
    let other = client_with(
        server.local_addr.port(),
        "localhost",
        "other-unit",
        "ca.pem",
        fast_settings(),
    );
    let mut foreign = next[0].clone();
    foreign.signature = other.sign_chain_link(foreign.seq, &foreign.hash).unwrap();
    for forged in [swapped, altered, foreign] {
        let e = c.upload_records(&[forged]).await.unwrap_err();
        assert_eq!(refused(e), problem::BAD_RECORD_SIGNATURE);
    }
    // a gap: record 6 without 5
    let e = c.upload_records(&next[1..]).await.unwrap_err();
    assert_eq!(refused(e), problem::CHAIN_GAP);
    // a rollback: an older store restored appends its own record 3 and 4 and 5
    let rolled_back = chain_of(&c, 3, &records[2].hash, 3, "restored");
    let e = c.upload_records(&rolled_back).await.unwrap_err();
    assert_eq!(refused(e), problem::CHAIN_CONFLICT);
    // nothing of any refused batch was taken; the true next records still are
    assert_eq!(server.record_ids().len(), 5);
    let ok = c.upload_records(&next).await.unwrap();
    assert_eq!((ok.accepted, ok.head.seq), (3, 7));
    server.shutdown().await;
    common::reliability_row(
        "chain-forged-gap-rollback",
        "Bad input",
        "records uploaded with another link's signature, altered after signing, signed by another unit's key; a gap; a rolled-back chain",
        5,
        0,
        "each batch refused whole (bad-record-signature, chain-gap, chain-conflict), nothing of it stored; the true continuation accepted",
    );
}

#[tokio::test]
async fn injected_faults_become_typed_errors_after_bounded_retries() {
    let server = start_sim(Faults {
        error_rate: 1.0,
        ..Faults::default()
    })
    .await;
    let c = client(server.local_addr.port());
    let err = c.health().await.unwrap_err();
    assert!(matches!(err, ClientError::Unavailable(503)), "{err}");
    assert_eq!(c.stats.retries.load(Ordering::Relaxed), 2);
    assert_eq!(err.service_failure(), ServiceFailure::LinkDown);

    server.set_faults(Faults {
        reset_rate: 1.0,
        ..Faults::default()
    });
    let c = client(server.local_addr.port());
    let err = c.health().await.unwrap_err();
    assert!(
        matches!(err, ClientError::Unreachable(_) | ClientError::Protocol(_)),
        "{err}"
    );

    server.set_faults(Faults {
        stall: true,
        ..Faults::default()
    });
    let c = client_with(
        server.local_addr.port(),
        "localhost",
        "unit",
        "ca.pem",
        ClientSettings {
            request_timeout: Duration::from_millis(300),
            retries: 1,
            ..fast_settings()
        },
    );
    let err = c.health().await.unwrap_err();
    assert!(matches!(err, ClientError::Timeout(_)), "{err}");
    assert_eq!(err.service_failure(), ServiceFailure::Timeout);

    server.set_faults(Faults {
        latency_ms: 30,
        ..Faults::default()
    });
    let c = client(server.local_addr.port());
    let started = std::time::Instant::now();
    c.health().await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(30));
    server.shutdown().await;
}

#[tokio::test]
async fn a_dead_endpoint_is_unreachable_not_a_hang() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let c = client(port);
    let err = c.health().await.unwrap_err();
    assert!(matches!(err, ClientError::Unreachable(_)), "{err}");
    assert_eq!(c.stats.retries.load(Ordering::Relaxed), 2);
}

/// A TLS server with the simulator's certificate that answers the n-th request on each
/// connection with `script[n]` (raw bytes, `{rid}` replaced by the request's request id),
/// then closes. Counts connections. Its own reading of requests is a test's: it only has
/// to find the end of a head and skip a Content-Length body.
async fn scripted_server(script: Vec<Vec<u8>>) -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio::io::AsyncReadExt;
    let dir = pki();
    let chain = CertificateDer::pem_file_iter(dir.join("server.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(
        mynakyukyu::eligibility::client::crypto_provider(),
    )
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            let acceptor = acceptor.clone();
            let script = script.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = Vec::new();
                for answer in script {
                    // read one request: head, then a Content-Length body
                    let head_end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        let mut chunk = [0u8; 4096];
                        match tls.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let original = String::from_utf8_lossy(&buf[..head_end]).to_string();
                    // names matched in lower case, values as sent
                    let field = |name: &str| {
                        original
                            .lines()
                            .find(|l| l.to_ascii_lowercase().starts_with(name))
                            .map(|l| l[name.len()..].trim().to_string())
                    };
                    let body_len: usize = field("content-length:")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    while buf.len() < head_end + body_len {
                        let mut chunk = [0u8; 4096];
                        match tls.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    buf.drain(..head_end + body_len);
                    let rid = field("request-id:").unwrap_or_default();
                    let iid = field("incident-id:").unwrap_or_default();
                    let raw = match std::str::from_utf8(&answer) {
                        Ok(text) => text
                            .replace("{rid}", &rid)
                            .replace("{iid}", &iid)
                            .into_bytes(),
                        Err(_) => answer,
                    };
                    if tls.write_all(&raw).await.is_err() {
                        return;
                    }
                }
                let _ = tls.shutdown().await;
            });
        }
    });
    (port, connections)
}

/// A raw health answer with `head` lines added and the request id echoed.
fn health_answer(extra_head: &str) -> Vec<u8> {
    let body = r#"{"status":"ok","version":"2"}"#;
    format!(
        "HTTP/1.1 200 OK\r\nrequest-id: {{rid}}\r\ncontent-type: application/json\r\n{extra_head}content-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Answers about a patient that do not parse, and refusals whose text names one: what the
/// app would log of them (every tracing line of the client, and each error as the app
/// logs it) holds none of the patient's values.
#[tokio::test]
async fn no_value_of_a_malformed_answer_or_a_refusal_reaches_a_log_line() {
    use std::io::Write;
    #[derive(Clone, Default)]
    struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);
    impl Write for Captured {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let secrets = [
        "ワーファリン錠1mg",
        "木村 花子",
        "キムラ ハナコ",
        "みなと循環器",
    ];
    let answer = |status: &str, ctype: &str, body: &str| {
        format!(
            "HTTP/1.1 {status}\r\nrequest-id: {{rid}}\r\nincident-id: {{iid}}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    };
    let cases = vec![
        // a drug class the tablet does not know: serde would quote the variant
        answer(
            "200 OK",
            "application/json",
            r#"{"emergency_summary":{"medications":[{"date":"2026-12-01","drug":"ワーファリン錠1mg","class":"ワーファリン錠1mg","dose":"1","days":7,"prescriber":"みなと循環器"}]},"full_data":{}}"#,
        ),
        // a name where a number belongs
        answer(
            "200 OK",
            "application/json",
            r#"{"emergency_summary":{"medications":[{"date":"2026-12-01","drug":"x","class":"other","dose":"1","days":"木村 花子","prescriber":"x"}]},"full_data":{}}"#,
        ),
        // a refusal whose title and detail name the patient
        answer(
            "403 Forbidden",
            "application/problem+json",
            r#"{"type":"urn:mynakyukyu:problem:foreign-unit","title":"木村 花子 (キムラ ハナコ) is not yours","status":403,"detail":"みなと循環器 ワーファリン錠1mg"}"#,
        ),
        // and a problem type that is itself a name
        answer(
            "403 Forbidden",
            "application/problem+json",
            r#"{"type":"木村 花子","title":"x","status":403}"#,
        ),
    ];
    let n = cases.len();
    for raw in cases {
        let (port, _) = scripted_server(vec![raw]).await;
        let c = client(port);
        let err = c
            .emergency_info(&EmergencyInquiry {
                incident: IncidentId::new("I-LOG"),
                qualification: QualificationRef::new("Q-LOG"),
                consent: ConsentState::Consented,
                operator: OperatorId::new("EMT-1"),
                unit: UnitId::new(mynakyukyu::pki::dev::UNIT),
                terminal: TerminalId::new("T-1"),
                identity_method: IdentityMethod::MynaCard,
                identity_check: IdentityCheck::Photo,
                token: Default::default(),
                patient: mynakyukyu::domain::PatientRef {
                    local_id: mynakyukyu::domain::Sensitive("L-1".into()),
                    insured_number: mynakyukyu::domain::Sensitive("1".into()),
                    public_assistance: None,
                },
            })
            .await
            .unwrap_err();
        // as the app logs a failed request
        tracing::warn!(error = %err, debug = ?err, "emergency info failed");
    }
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(log.matches("emergency info failed").count() == n, "{log}");
    for s in secrets {
        assert!(!log.contains(s), "{s:?} reached the log:\n{log}");
    }
    common::reliability_row(
        "log-no-answer-values",
        "Security",
        "malformed emergency-info answers carrying a drug, a name and a hospital (an unknown drug class, a name where a number belongs), and refusals whose type, title and detail name the patient; every tracing line captured, each error logged as the app does",
        n,
        0,
        "none of the values in any log line: JSON errors by kind and position, refusals by their problem type (or 'unrecognised') and status",
    );
}

#[tokio::test]
async fn malformed_truncated_and_oversized_answers_are_typed_errors() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "broken json",
            b"HTTP/1.1 200 OK\r\nrequest-id: {rid}\r\ncontent-length: 9\r\n\r\n{\"status\"".to_vec(),
        ),
        (
            "truncated body",
            b"HTTP/1.1 200 OK\r\nrequest-id: {rid}\r\ncontent-length: 100\r\n\r\n{\"status\":".to_vec(),
        ),
        (
            "garbage status line",
            b"\x00\x01\x02 garbage\r\n\r\n".to_vec(),
        ),
        ("no head at all", b"HTTP/1.1 200".to_vec()),
        (
            "conflicting content-length",
            b"HTTP/1.1 200 OK\r\nrequest-id: {rid}\r\ncontent-length: 2\r\ncontent-length: 29\r\n\r\n{\"status\":\"ok\",\"version\":\"2\"}".to_vec(),
        ),
        (
            "content-length and chunked together",
            b"HTTP/1.1 200 OK\r\nrequest-id: {rid}\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n1d\r\n{\"status\":\"ok\",\"version\":\"2\"}\r\n0\r\n\r\n".to_vec(),
        ),
        (
            "html error",
            b"HTTP/1.1 500 Oops\r\nrequest-id: {rid}\r\ncontent-length: 6\r\n\r\n<html>".to_vec(),
        ),
    ];
    let n = cases.len();
    for (name, raw) in cases {
        let (port, _) = scripted_server(vec![raw]).await;
        let c = client(port);
        let err = c.health().await.unwrap_err();
        assert!(
            matches!(err, ClientError::Protocol(_) | ClientError::Unreachable(_)),
            "{name}: {err}"
        );
        if let ClientError::Protocol(_) = err {
            assert_eq!(err.service_failure(), ServiceFailure::Protocol, "{name}");
            assert_eq!(
                c.stats.retries.load(Ordering::Relaxed),
                0,
                "{name}: retried"
            );
        }
    }
    let oversized =
        b"HTTP/1.1 200 OK\r\nrequest-id: {rid}\r\ncontent-length: 999999999999\r\n\r\n".to_vec();
    let (port, _) = scripted_server(vec![oversized]).await;
    let err = client(port).health().await.unwrap_err();
    assert!(matches!(err, ClientError::ResponseTooLarge(_)), "{err}");
    common::reliability_row(
        "malformed-answers",
        "Bad input",
        "malformed server answers: broken and truncated JSON, garbage status line, no head, conflicting Content-Length, Content-Length with chunked, HTML error, a 1 TB content-length",
        n + 1,
        0,
        "each a typed error (hyper's framing), nothing allocated for the oversized body",
    );
}

#[tokio::test]
async fn an_informational_answer_is_not_the_answer_and_chunked_answers_are_read() {
    // 102 Processing before the real answer: the old framing took the 102 as the answer
    // and read the real one as the reply to the next request
    let mut early = b"HTTP/1.1 102 Processing\r\n\r\n".to_vec();
    early.extend(health_answer(""));
    let body = r#"{"status":"ok","version":"2"}"#;
    let chunked = format!(
        "HTTP/1.1 200 OK\r\nrequest-id: {{rid}}\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{}\r\n{:x}\r\n{}\r\n0\r\n\r\n",
        10,
        &body[..10],
        body.len() - 10,
        &body[10..]
    )
    .into_bytes();
    let (port, connections) =
        scripted_server(vec![early, health_answer(""), chunked, health_answer("")]).await;
    let c = client(port);
    for call in 0..4 {
        let h = c
            .health()
            .await
            .unwrap_or_else(|e| panic!("call {call}: {e}"));
        assert_eq!(h.version, "2", "call {call}");
    }
    assert_eq!(
        connections.load(Ordering::SeqCst),
        1,
        "one kept-alive connection"
    );
    common::reliability_row(
        "http-1xx-chunked",
        "Bad input",
        "server answers 102 Processing before the answer, then a chunked answer, on one kept-alive connection",
        4,
        0,
        "each call gets its own answer; the 1xx is skipped, not taken as the answer",
    );
}

#[tokio::test]
async fn after_an_error_the_connection_is_not_reused() {
    let garbage = b"HTTP/1.1 200 OK\r\nrequest-id: {rid}\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\nabcd"
        .to_vec();
    // on one connection: a good answer, then a framing error, then (never reached) a good one
    let (port, connections) =
        scripted_server(vec![health_answer(""), garbage, health_answer("")]).await;
    let c = client(port);
    c.health().await.unwrap();
    assert!(c.health().await.is_err());
    // the next call opens a new connection, whose first answer is a good one
    c.health().await.unwrap();
    assert_eq!(connections.load(Ordering::SeqCst), 2);
    assert_eq!(c.stats.connections.load(Ordering::Relaxed), 2);
}

#[tokio::test]
async fn an_answer_to_another_request_is_refused_and_shows_nothing_of_that_patient() {
    let server = start_sim(Faults::default()).await;
    let c = client(server.local_addr.port());
    let first = card_of(&server, "P0004");
    let second = card_of(&server, "P0005");
    let QualificationResponse::Coverage {
        qualification_ref: q1,
        ..
    } = c.qualification(&request("I-A", first)).await.unwrap()
    else {
        panic!("coverage")
    };
    let QualificationResponse::Coverage {
        qualification_ref: q2,
        ..
    } = c.qualification(&request("I-B", second)).await.unwrap()
    else {
        panic!("coverage")
    };
    let a = c
        .emergency_info(&inquiry(&server, "I-A", q1, ConsentState::Consented))
        .await
        .unwrap();
    assert_eq!(c.stats.connections.load(Ordering::Relaxed), 1);
    // a broken proxy in front of the server: the previous answer (patient A's data) comes
    // back as the answer to patient B's inquiry on the same kept-alive connection
    server.set_faults(Faults {
        replay_previous: true,
        ..Faults::default()
    });
    let err = c
        .emergency_info(&inquiry(
            &server,
            "I-B",
            q2.clone(),
            ConsentState::Consented,
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::MismatchedAnswer(_)), "{err}");
    assert_eq!(err.service_failure(), ServiceFailure::Protocol);
    assert_eq!(c.stats.retries.load(Ordering::Relaxed), 0, "not retried");
    // the connection was dropped: with the fault gone, B's own answer on a new one
    server.set_faults(Faults::default());
    let b = c
        .emergency_info(&inquiry(&server, "I-B", q2, ConsentState::Consented))
        .await
        .unwrap();
    assert_eq!(c.stats.connections.load(Ordering::Relaxed), 2);
    assert_ne!(
        serde_json::to_string(&a.summary).unwrap(),
        serde_json::to_string(&b.summary).unwrap()
    );
    server.shutdown().await;
    common::reliability_row(
        "answer-of-another-request",
        "Bad input",
        "a proxy replays patient A's emergency-info answer as the answer to patient B's inquiry on the kept-alive connection",
        1,
        0,
        "refused as MismatchedAnswer (request id and incident id echoed), connection dropped, B's own answer on a new connection",
    );
}

#[tokio::test]
async fn two_hundred_concurrent_tablets_all_get_answers() {
    let server = Arc::new(start_sim(Faults::default()).await);
    // 200 tablets sharing one test certificate: one unit, 200 patients
    server.with_simulator(|s| {
        s.set_rate_limit(mynakyukyu::sim::PatientRateLimit {
            flag_at: 1000,
            refuse_above: 1000,
        })
    });
    let port = server.local_addr.port();
    let cards: Vec<Vec<u8>> = (0..200)
        .map(|i| card_of(&server, &format!("P{:04}", 10 + i % 200)))
        .collect();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, der) in cards.into_iter().enumerate() {
        let server = server.clone();
        tasks.spawn(async move {
            let started = std::time::Instant::now();
            let c = client_with(
                port,
                "localhost",
                "unit",
                "ca.pem",
                ClientSettings::default(),
            );
            let incident = format!("LOAD-{i}");
            let QualificationResponse::Coverage {
                qualification_ref, ..
            } = c.qualification(&request(&incident, der)).await?
            else {
                return Ok::<Option<f64>, ClientError>(None);
            };
            c.emergency_info(&inquiry(
                &server,
                &incident,
                qualification_ref,
                ConsentState::Consented,
            ))
            .await?;
            Ok(Some(started.elapsed().as_secs_f64() * 1e3))
        });
    }
    let mut latencies = vec![];
    while let Some(r) = tasks.join_next().await {
        if let Some(ms) = r.unwrap().unwrap() {
            latencies.push(ms);
        }
    }
    // P0010.. are ordinary patients: every one answered
    assert_eq!(latencies.len(), 200);
    assert_eq!(server.inquiry_count(), 200);
    latencies.sort_by(f64::total_cmp);
    common::reliability_row(
        "load-200",
        "Load",
        "200 tablets at once, each a new mTLS connection, a qualification check and an inquiry (debug build, loopback, one process)",
        200,
        0,
        &format!(
            "0 errors; per tablet p50 {:.0} ms, p99 {:.0} ms",
            latencies[100], latencies[197]
        ),
    );
}

#[tokio::test]
async fn an_expired_crl_is_refused_and_a_changed_crl_file_is_read_again() {
    let server = start_sim(Faults::default()).await;
    let port = server.local_addr.port();
    let dir = TempDir::new("crl-reload");
    let crl = dir.path().join("server-crl.pem");
    std::fs::copy(pki().join("crl.pem"), &crl).unwrap();
    let identity = mynakyukyu::eligibility::UnitIdentity::from_files(
        &pki().join("unit.pem"),
        &pki().join("unit.key"),
        &pki().join("ca.pem"),
    )
    .unwrap()
    .with_server_crls(&crl)
    .unwrap();
    let c = mynakyukyu::eligibility::EligibilityClient::new(
        mynakyukyu::eligibility::Endpoint {
            host: "localhost".into(),
            port,
        },
        mynakyukyu::eligibility::client::tls_config(identity).unwrap(),
        fast_settings(),
    )
    .unwrap();
    // a current CRL that does not list this server: accepted
    c.health().await.expect("current CRL, server not revoked");
    // the file replaced (as `install-crl` does while the app runs) by one past its next
    // update: the next handshake reads it and refuses
    c.disconnect().await;
    std::fs::write(&crl, std::fs::read(pki().join("crl-expired.pem")).unwrap()).unwrap();
    let err = c.health().await.unwrap_err();
    assert!(
        matches!(err, ClientError::ServerCertificateWrong(_)),
        "{err}"
    );
    assert!(err.to_string().contains("Expired"), "{err}");
    // and back: read again, accepted
    c.disconnect().await;
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(&crl, std::fs::read(pki().join("crl.pem")).unwrap()).unwrap();
    c.health().await.expect("the current CRL read again");
    // a CRL file that no longer parses: refused, never "no revocation check"
    c.disconnect().await;
    std::fs::write(
        &crl,
        b"-----BEGIN X509 CRL-----\nbroken\n-----END X509 CRL-----\n",
    )
    .unwrap();
    assert!(c.health().await.is_err(), "a broken CRL file must refuse");
    server.shutdown().await;
    common::reliability_row(
        "crl-expiry-reload",
        "Bad input",
        "the server CA's CRL file replaced while the client runs: a current one, one past its next update, the current one again, a broken one",
        4,
        0,
        "read again at the next handshake each time; the expired CRL and the broken file refuse the server (ServerCertificateWrong), the current one admits it",
    );
}

#[tokio::test]
async fn the_uploader_sends_nothing_over_a_connection_the_route_guard_refuses() {
    use std::sync::atomic::AtomicBool;
    let server = start_sim(Faults::default()).await;
    let tunnel_up = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let guard: mynakyukyu::eligibility::client::RouteGuard = {
        let (up, seen) = (tunnel_up.clone(), seen.clone());
        Arc::new(move |peer| {
            seen.lock().unwrap().push(peer);
            up.load(Ordering::SeqCst)
        })
    };
    let c = Arc::new(client(server.local_addr.port()).with_route_guard(guard));
    let dir = TempDir::new("guarded-upload");
    let key = mynakyukyu::store::StoreKey::create(&dir.path().join("store.key")).unwrap();
    let store = Arc::new(mynakyukyu::store::Store::open(&dir.path().join("store"), &key).unwrap());
    for i in 0..3 {
        store
            .append(opt_out_audit("I-G", i), mynakyukyu::domain::Timestamp(i))
            .unwrap();
    }
    let uploader = mynakyukyu::sync::Uploader::new(store.clone(), c.clone(), Default::default());
    // the route is not the tunnel: refused before the TLS handshake, nothing sent, kept
    let err = uploader.sync_once().await.unwrap_err();
    assert!(err.to_string().contains("IPsec tunnel"), "{err}");
    assert_eq!(server.stats().handshakes.load(Ordering::Relaxed), 0);
    assert_eq!(store.sync_state().unwrap().queued, 3);
    assert_eq!(
        seen.lock().unwrap().first().copied(),
        Some(server.local_addr),
        "asked about the address the connection reached"
    );
    // the tunnel is up: uploaded
    tunnel_up.store(true, Ordering::SeqCst);
    assert_eq!(uploader.sync_once().await.unwrap(), 3);
    assert_eq!(server.record_ids().len(), 3);
    // down again under the kept-alive connection: the next request is refused on it
    tunnel_up.store(false, Ordering::SeqCst);
    store
        .append(opt_out_audit("I-G", 9), mynakyukyu::domain::Timestamp(9))
        .unwrap();
    let requests = server.stats().requests.load(Ordering::Relaxed);
    assert!(uploader.sync_once().await.is_err());
    assert_eq!(server.stats().requests.load(Ordering::Relaxed), requests);
    assert_eq!(
        c.health().await.unwrap_err().service_failure(),
        ServiceFailure::TunnelRequired
    );
    server.shutdown().await;
    common::reliability_row(
        "uploader-line-rule",
        "Security",
        "records queued while the route guard says the connection is not the tunnel; then the tunnel up; then down again under the kept-alive connection",
        3,
        0,
        "nothing sent while refused (no TLS handshake, no request, records kept queued); uploaded once when up; refused again on the reused connection",
    );
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

#[tokio::test]
async fn references_cannot_be_walked_or_used_by_another_unit() {
    use mynakyukyu::eligibility::wire::problem;
    let server = start_sim(Faults::default()).await;
    let port = server.local_addr.port();
    let c = client(port);
    let der = card_of(&server, "P0004");
    let QualificationResponse::Coverage {
        qualification_ref, ..
    } = c.qualification(&request("I-W", der.clone())).await.unwrap()
    else {
        panic!("coverage")
    };
    // walking: the old sequential references, and neighbours of a real one
    let real = qualification_ref.as_str().to_string();
    let mut probes: Vec<String> = (1..=20).map(|n| format!("Q{n:08}")).collect();
    for i in [1, 10, real.len() - 1] {
        let mut b = real.clone().into_bytes();
        b[i] = if b[i] == b'A' { b'B' } else { b'A' };
        probes.push(String::from_utf8(b).unwrap());
    }
    for probe in &probes {
        let err = c
            .emergency_info(&inquiry(
                &server,
                "I-W",
                QualificationRef::new(probe),
                ConsentState::Consented,
            ))
            .await
            .unwrap_err();
        assert!(
            matches!(err, ClientError::Refused(ref p) if p.kind == problem::UNKNOWN_QUALIFICATION),
            "{probe}: {err}"
        );
    }
    assert_eq!(server.inquiry_count(), 0, "nothing of anyone answered");
    // another unit of the same department, with a valid certificate, holding the reference
    let b = second_unit(port);
    let mut theirs = inquiry(
        &server,
        "I-W",
        qualification_ref.clone(),
        ConsentState::Consented,
    );
    theirs.unit = UnitId::new("U-B");
    let err = b.emergency_info(&theirs).await.unwrap_err();
    assert!(
        matches!(err, ClientError::Refused(ref p) if p.kind == problem::FOREIGN_UNIT),
        "{err}"
    );
    assert!(server.with_simulator(|s| s.flagged_units().contains(&UnitId::new("U-B"))));
    // ...or claiming in the body to be the unit that asked: its certificate says otherwise
    let err = b
        .emergency_info(&inquiry(
            &server,
            "I-W",
            qualification_ref.clone(),
            ConsentState::Consented,
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Refused(ref p) if p.kind == problem::UNIT_MISMATCH),
        "{err}"
    );
    assert_eq!(server.inquiry_count(), 0);
    // the unit that asked still gets its patient
    c.emergency_info(&inquiry(
        &server,
        "I-W",
        qualification_ref,
        ConsentState::Consented,
    ))
    .await
    .unwrap();
    assert_eq!(server.inquiry_count(), 1);
    // a unit asking for an unusual number of patients is refused
    server.with_simulator(|s| {
        s.set_rate_limit(mynakyukyu::sim::PatientRateLimit {
            flag_at: 2,
            refuse_above: 3,
        })
    });
    let mut refused = 0;
    for i in 0..6 {
        let der = card_of(&server, &format!("P{:04}", 20 + i));
        let mut q = request(&format!("I-R{i}"), der);
        q.unit = UnitId::new("U-B");
        match b.qualification(&q).await {
            Err(ClientError::Refused(p)) if p.kind == problem::TOO_MANY_PATIENTS => refused += 1,
            Ok(_) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(refused, 3);
    server.shutdown().await;
    common::reliability_row(
        "references-walk-foreign",
        "Security",
        "23 guessed qualification references (the old sequential ones, neighbours of a real one); a real one used by another unit's valid certificate, and by that unit claiming the first unit in the body; 6 patients asked by one unit over a limit of 3",
        23 + 2 + 6,
        0,
        "every guess unknown, nothing answered; the foreign unit refused and flagged; the body's claim refused against the certificate; patients beyond the limit refused",
    );
}

/// A virtual card (PIN 1234, its key) issued to `patient`, and the qualification reference
/// the server gave for it in `incident`.
async fn card_with_reference(
    server: &mynakyukyu::sim::server::SimServer,
    c: &mynakyukyu::eligibility::EligibilityClient,
    patient: &str,
    incident: &str,
) -> (mynakyukyu::card::VirtualCard, QualificationRef) {
    use mynakyukyu::card::{FaceItems, VirtualCard};
    let issued = server.with_simulator(|s| s.issue_card(patient).unwrap());
    let QualificationResponse::Coverage {
        qualification_ref: q,
        ..
    } = c
        .qualification(&request(incident, issued.auth_certificate_der.clone()))
        .await
        .unwrap()
    else {
        panic!("coverage")
    };
    let card = VirtualCard::new(
        &issued.auth_certificate_der,
        &issued.ca_certificate_der,
        "1234",
        FaceItems::default(),
    )
    .with_auth_key(issued.auth_key_pkcs8);
    (card, q)
}

#[tokio::test]
async fn the_pin_path_needs_the_cards_own_signature_over_its_challenge() {
    use mynakyukyu::card::jpki;
    use mynakyukyu::eligibility::wire::problem;
    let server = start_sim(Faults::default()).await;
    let c = client(server.local_addr.port());
    let (mut card, q) = card_with_reference(&server, &c, "P0004", "I-PIN").await;
    assert_eq!(
        jpki::verify_auth_pin(&mut card, "1234", false).unwrap(),
        jpki::PinOutcome::Verified
    );
    let incident = IncidentId::new("I-PIN");
    let right =
        jpki::sign_challenge(&mut card, &mynakyukyu::domain::pin_challenge(&q, &incident)).unwrap();
    let other_incident = jpki::sign_challenge(
        &mut card,
        &mynakyukyu::domain::pin_challenge(&q, &IncidentId::new("I-OTHER")),
    )
    .unwrap();
    let mut flipped = right.clone();
    flipped[100] ^= 1;
    let mut pin = inquiry(&server, "I-PIN", q.clone(), ConsentState::Consented);
    pin.identity_check = IdentityCheck::Pin;
    for (name, sig) in [
        ("none", None),
        (
            "another incident's challenge",
            Some(other_incident.as_slice()),
        ),
        ("one bit flipped", Some(flipped.as_slice())),
        ("random bytes", Some(&[7u8; 256][..])),
    ] {
        let err = c.emergency_info_signed(&pin, sig).await.unwrap_err();
        assert!(
            matches!(err, ClientError::Refused(ref p) if p.kind == problem::CARD_SIGNATURE_INVALID),
            "{name}: {err}"
        );
    }
    assert_eq!(server.inquiry_count(), 0);
    c.emergency_info_signed(&pin, Some(&right)).await.unwrap();
    // the photo path needs no signature, and the log says which proof each one had
    let photo = inquiry(&server, "I-PHOTO", q, ConsentState::Consented);
    c.emergency_info(&photo).await.unwrap();
    let log = server.with_simulator(|s| s.audit_log().to_vec());
    assert_eq!(log.len(), 2);
    assert_eq!(
        (log[0].identity_check, log[0].card_signature_verified),
        (IdentityCheck::Pin, true)
    );
    assert_eq!(
        (log[1].identity_check, log[1].card_signature_verified),
        (IdentityCheck::Photo, false)
    );
    server.shutdown().await;
    common::reliability_row(
        "pin-path-signature",
        "Security",
        "PIN-path inquiries with no card signature, a signature over another incident's challenge, one bit flipped, random bytes",
        4,
        0,
        "each refused (card-signature-invalid) and nothing answered; the card's own signature accepted; the server log marks pin+signed and photo",
    );
}

#[tokio::test]
async fn the_server_refuses_a_phone_inquiry_without_its_owner() {
    use mynakyukyu::card::jpki;
    use mynakyukyu::domain::TokenKind;
    use mynakyukyu::eligibility::wire::problem;
    let server = start_sim(Faults::default()).await;
    let c = client(server.local_addr.port());
    let (card, q) = card_with_reference(&server, &c, "P0006", "I-PHONE").await;
    // the phone signs the challenge after its smartphone PIN, as the tablet has it do
    let mut phone = card.as_phone(TokenKind::AndroidPhone);
    jpki::verify_auth_pin(&mut phone, "1234", false).unwrap();
    let incident = IncidentId::new("I-PHONE");
    let sig = jpki::sign_challenge(
        &mut phone,
        &mynakyukyu::domain::pin_challenge(&q, &incident),
    )
    .unwrap();
    // a tablet that sends what ours never does: 同意取得困難 with a phone, or a photo check
    let mut unobtainable = inquiry(&server, "I-PHONE", q.clone(), ConsentState::Unobtainable);
    unobtainable.identity_check = IdentityCheck::Pin;
    unobtainable.token = TokenKind::AndroidPhone;
    let mut photo = inquiry(&server, "I-PHONE", q.clone(), ConsentState::Consented);
    photo.token = TokenKind::IPhone;
    for (name, bad) in [("unobtainable", &unobtainable), ("photo", &photo)] {
        let err = c.emergency_info_signed(bad, Some(&sig)).await.unwrap_err();
        assert!(
            matches!(err, ClientError::Refused(ref p) if p.kind == problem::PHONE_WITHOUT_OWNER),
            "{name}: {err}"
        );
    }
    assert_eq!(server.inquiry_count(), 0, "nothing answered");
    // the phone's own inquiry: consented, by its PIN, signed
    let mut owned = inquiry(&server, "I-PHONE", q, ConsentState::Consented);
    owned.identity_check = IdentityCheck::Pin;
    owned.token = TokenKind::AndroidPhone;
    c.emergency_info_signed(&owned, Some(&sig)).await.unwrap();
    let log = server.with_simulator(|s| s.audit_log().to_vec());
    assert_eq!(log.len(), 1);
    assert_eq!(
        (
            log[0].token,
            log[0].identity_check,
            log[0].card_signature_verified
        ),
        (TokenKind::AndroidPhone, IdentityCheck::Pin, true)
    );
    server.shutdown().await;
}
