//! Enrolment as an admin does it: init, the CSR signed, install-cert, status; wrong certificates; the IPsec config.

use super::*;

#[test]
fn enrol_sign_install_and_status_shows_the_days_left() {
    let d = TempDir::new("admin");
    let data = d.path().join("tablet");
    init(&data);
    let key_mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(data.join("unit.key"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(key_mode & 0o777, 0o600);
    // init twice is refused, nothing overwritten
    let again = admin(
        &data,
        &[
            "init",
            "--unit-id",
            "X",
            "--department",
            "1",
            "--endpoint",
            "https://a:1",
            "--server-ca",
            pki().join("ca.pem").to_str().unwrap(),
        ],
    );
    assert_eq!(again.status.code(), Some(2));
    assert!(text(&again).contains("already initialised"));

    let cert = d.path().join("unit.pem");
    sign(&data.join("unit.csr"), pki(), 20, &cert);
    let o = admin(&data, &["install-cert", cert.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let o = admin(&data, &["status", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(s["unit_id"], "UNIT-07");
    let days = s["certificate_days_left"].as_i64().unwrap();
    assert!((19..=20).contains(&days), "{days}");
    assert_eq!(s["certificate_level"], "warning", "under 30 days");
    assert_eq!(s["require_tunnel"], true);
    // the server CA's CRL: signed by the server CA or refused
    let o = admin(
        &data,
        &["install-crl", pki().join("crl.pem").to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("2 revoked"), "{}", text(&o));
    assert!(data.join("server-crl.pem").is_file());
    let foreign = TempDir::new("foreign-crl");
    mynakyukyu::pki::dev::generate(foreign.path()).unwrap();
    let o = admin(
        &data,
        &[
            "install-crl",
            foreign.path().join("crl.pem").to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("not signed by the server CA"),
        "{}",
        text(&o)
    );
    let o = admin(
        &data,
        &["install-crl", pki().join("ca.pem").to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(2), "a certificate is not a CRL");
    let o = admin(
        &data,
        &[
            "install-crl",
            pki().join("crl-expired.pem").to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(2), "a stale CRL is refused");
    assert!(text(&o).contains("past its next update"), "{}", text(&o));
    assert!(mynakyukyu::config::provisioned(&data).unwrap());
}

#[test]
fn wrong_certificates_are_refused_with_the_reason() {
    let d = TempDir::new("admin-refuse");
    let data = d.path().join("tablet");
    init(&data);
    let csr = data.join("unit.csr");
    // another key: the dev PKI's own unit certificate
    let o = admin(
        &data,
        &["install-cert", pki().join("unit.pem").to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("another key"), "{}", text(&o));
    // the right key, signed by another CA
    let other = TempDir::new("other-ca");
    mynakyukyu::pki::dev::generate(other.path()).unwrap();
    let foreign = d.path().join("foreign.pem");
    sign(&csr, other.path(), 365, &foreign);
    let o = admin(&data, &["install-cert", foreign.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("does not chain"), "{}", text(&o));
    // expired
    let expired = d.path().join("expired.pem");
    sign(&csr, pki(), -1, &expired);
    let o = admin(&data, &["install-cert", expired.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("not valid now"), "{}", text(&o));
    // without clientAuth: the server certificate's shape, re-signed for this key
    let server_like = d.path().join("server-like.pem");
    let pem = mynakyukyu::admin::dev_sign_csr(pki(), &csr, 30).unwrap();
    let der = mynakyukyu::pki::pem_certificates(&pem).remove(0);
    assert!(!der.is_empty());
    let ca =
        mynakyukyu::pki::CertAuthority::load_files(&pki().join("ca.pem"), &pki().join("ca.key"))
            .unwrap();
    let req =
        rcgen::CertificateSigningRequestParams::from_pem(&std::fs::read_to_string(&csr).unwrap())
            .unwrap();
    let mut params = req.params;
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let der = ca.sign(&params, &req.public_key).unwrap();
    std::fs::write(&server_like, mynakyukyu::pki::certificate_pem(&der)).unwrap();
    let o = admin(&data, &["install-cert", server_like.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("clientAuth"), "{}", text(&o));
    // nothing was installed by any of these
    assert!(!data.join("unit.pem").exists());
    let o = admin(&data, &["status"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "no certificate is an error status"
    );
}

#[test]
fn ipsec_config_tunnels_only_the_endpoint() {
    let d = TempDir::new("admin-ipsec");
    let data = d.path().join("tablet");
    init(&data);
    let o = admin(
        &data,
        &[
            "ipsec-config",
            "--remote-addrs",
            "192.0.2.1",
            "--remote-id",
            "CN=gw",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let conf = String::from_utf8(o.stdout).unwrap();
    assert!(conf.contains("version = 2"));
    assert!(
        conf.contains("remote_ts = 10.10.2.1/32[tcp/8443]"),
        "{conf}"
    );
    assert!(conf.contains("auth = pubkey"));
    assert!(conf.contains("certs = unit.pem"));

    // a whole swanctl dir needs the certificate first
    let dir = d.path().join("swanctl");
    let args = |dir: &Path| {
        vec![
            "ipsec-config".to_string(),
            "--remote-addrs=192.0.2.1".into(),
            "--remote-id=CN=gw".into(),
            format!("--gateway-ca={}", pki().join("ca.pem").display()),
            format!("--out={}", dir.display()),
        ]
    };
    let run = |v: Vec<String>| admin(&data, &v.iter().map(String::as_str).collect::<Vec<_>>());
    let o = run(args(&dir));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("install-cert first"), "{}", text(&o));
    let cert = d.path().join("unit.pem");
    sign(&data.join("unit.csr"), pki(), 365, &cert);
    assert!(
        admin(&data, &["install-cert", cert.to_str().unwrap()])
            .status
            .success()
    );
    let o = run(args(&dir));
    assert!(o.status.success(), "{}", text(&o));
    let conf = std::fs::read_to_string(dir.join("swanctl.conf")).unwrap();
    assert!(conf.contains("cacerts = gateway-ca.pem"), "{conf}");
    // the key is a link into the data dir, not a second copy that `wipe` would miss
    let key = dir.join("private/unit.key");
    assert!(
        std::fs::symlink_metadata(&key)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        std::fs::read(&key).unwrap(),
        std::fs::read(data.join("unit.key")).unwrap()
    );
    assert!(dir.join("x509/unit.pem").is_file());
    assert!(dir.join("x509ca/gateway-ca.pem").is_file());
    // writing again replaces the links
    assert!(run(args(&dir)).status.success());
}
