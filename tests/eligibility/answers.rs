//! The answers: one connection, distinct cards, faults, dead endpoints, malformed and mismatched answers, values kept out of logs.

use super::*;

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
            .emergency_info(&inquiry_about(
                "I-LOG",
                QualificationRef::new("Q-LOG"),
                ConsentState::Consented,
                nobody("L-1"),
            ))
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
