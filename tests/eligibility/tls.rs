//! Certificates both ways: the server refuses the wrong unit certificates, the tablet the wrong server; CRLs.

use super::*;

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
