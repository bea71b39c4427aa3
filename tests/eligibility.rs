//! The mutual-TLS client against the real simulator server (and against a hostile one).

mod common;

use common::*;
use mynakyukyu::domain::{
    CardCredential, ConsentState, CoverageStatus, IdentityCheck, IdentityMethod, IncidentId,
    OperatorId, QualificationRef, Record, TerminalId, UnitId,
};
use mynakyukyu::eligibility::wire::{Faults, QualificationResponse};
use mynakyukyu::eligibility::{CardProblem, ClientError, ClientSettings};
use mynakyukyu::session::{EmergencyInquiry, QualificationRequest, ServiceFailure};
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
        },
        operator: OperatorId::new("EMT-1"),
        unit: UnitId::new("U-1"),
        terminal: TerminalId::new("T-1"),
    }
}

fn inquiry(incident: &str, q: QualificationRef, consent: ConsentState) -> EmergencyInquiry {
    EmergencyInquiry {
        incident: IncidentId::new(incident),
        qualification: q,
        consent,
        operator: OperatorId::new("EMT-1"),
        unit: UnitId::new("U-1"),
        terminal: TerminalId::new("T-1"),
        identity_method: IdentityMethod::MynaCard,
        identity_check: IdentityCheck::Photo,
    }
}

fn card_of(server: &mynakyukyu::sim::server::SimServer, patient: &str) -> Vec<u8> {
    server.with_simulator(|s| s.issue_card(patient).unwrap().auth_certificate_der)
}

#[tokio::test]
async fn full_inquiry_over_one_kept_alive_connection_then_resumed() {
    let server = start_sim(Faults::default()).await;
    let c = client(server.local_addr.port());
    assert_eq!(c.health().await.unwrap().version, "1");
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

#[tokio::test]
async fn records_upload_is_idempotent_by_id() {
    let server = start_sim(Faults::default()).await;
    let c = client(server.local_addr.port());
    let records: Vec<Record> = (0..5)
        .map(|i| Record {
            id: format!("R-{i}"),
            body: opt_out_audit("I-1", i),
        })
        .collect();
    let first = c.upload_records(&records).await.unwrap();
    assert_eq!((first.accepted, first.duplicates), (5, 0));
    let again = c.upload_records(&records[2..]).await.unwrap();
    assert_eq!((again.accepted, again.duplicates), (0, 3));
    assert_eq!(server.record_ids().len(), 5);
    server.shutdown().await;
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

/// A TLS server with the simulator's certificate that answers every request with `raw`.
async fn hostile_server(raw: Vec<u8>) -> u16 {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
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
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let raw = raw.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut conn = tokio::io::BufReader::new(tls);
                let _ = mynakyukyu::eligibility::http::read_head(&mut conn).await;
                let _ = conn.write_all(&raw).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    port
}

#[tokio::test]
async fn malformed_truncated_and_oversized_answers_are_typed_errors() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "broken json",
            b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n{\"status\"".to_vec(),
        ),
        (
            "truncated body",
            b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{\"status\":".to_vec(),
        ),
        (
            "garbage status line",
            b"\x00\x01\x02 garbage\r\n\r\n".to_vec(),
        ),
        ("no head at all", b"HTTP/1.1 200".to_vec()),
        (
            "chunked",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
                .to_vec(),
        ),
        (
            "html error",
            b"HTTP/1.1 500 Oops\r\ncontent-length: 6\r\n\r\n<html>".to_vec(),
        ),
    ];
    for (name, raw) in cases {
        let port = hostile_server(raw).await;
        let c = client(port);
        let err = c.health().await.unwrap_err();
        assert!(matches!(err, ClientError::Protocol(_)), "{name}: {err}");
        assert_eq!(err.service_failure(), ServiceFailure::Protocol, "{name}");
        assert_eq!(
            c.stats.retries.load(Ordering::Relaxed),
            0,
            "{name}: retried"
        );
    }
    let oversized = b"HTTP/1.1 200 OK\r\ncontent-length: 999999999999\r\n\r\n".to_vec();
    let port = hostile_server(oversized).await;
    let err = client(port).health().await.unwrap_err();
    assert!(matches!(err, ClientError::ResponseTooLarge(_)), "{err}");
    common::reliability_row(
        "malformed-answers",
        "Bad input",
        "malformed server answers: broken and truncated JSON, garbage status line, no head, chunked, HTML error, a 1 TB content-length",
        7,
        0,
        "each a typed Protocol / ResponseTooLarge error, not retried, nothing allocated for the oversized body",
    );
}

#[tokio::test]
async fn two_hundred_concurrent_tablets_all_get_answers() {
    let server = Arc::new(start_sim(Faults::default()).await);
    let port = server.local_addr.port();
    let cards: Vec<Vec<u8>> = (0..200)
        .map(|i| card_of(&server, &format!("P{:04}", 10 + i % 200)))
        .collect();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, der) in cards.into_iter().enumerate() {
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
    let key = mynakyukyu::store::DeviceKey::create(&dir.path().join("store.key")).unwrap();
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
