//! The hub enrolled on a tablet as an admin does (`mynakyukyu-admin hub`): bad input refused
//! before anything is written, the endpoint and CA in `device.toml` and `hub-ca.pem` under
//! the signed manifest, `status` naming it, the tablet's hub client (built as the app
//! builds it) presenting the tablet's own unit certificate and key, and a hand edit of the
//! hub's CA refusing the start.

use super::*;
use mynakyukyu::app::device;
use std::path::Path;
use std::process::Output;

fn admin(data: &Path, args: &[&str]) -> Output {
    common::admin_with(data, args, &common::no_tpm)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_enrols_the_hub_and_the_tablet_asks_it_as_itself() {
    let fx = HubFixture::start().await;
    let d = TempDir::new("hub-enrol");
    let data = d.path().join("tablet");
    common::enrol(
        &data,
        "https://127.0.0.1:8443",
        &["--allow-file-keys"],
        &common::no_tpm,
    );
    let ca = pki().join("ca.pem");
    let ca = ca.to_str().unwrap();
    let not_a_cert = data.join("device.toml");
    let endpoint = format!("https://localhost:{}", fx.hub().tablet_addr.port());
    for (args, why) in [
        (
            vec!["--endpoint", "ftp://hub", "--ca", ca, "--callback", "090-1"],
            "bad endpoint",
        ),
        (
            vec!["--endpoint", &endpoint, "--ca", ca, "--callback", "090-1"],
            "an address, not a name",
        ),
        (
            vec![
                "--endpoint",
                "https://127.0.0.1:9443",
                "--ca",
                not_a_cert.to_str().unwrap(),
                "--callback",
                "090-1",
            ],
            "no PEM certificate",
        ),
        (
            vec![
                "--endpoint",
                &endpoint,
                "--no-tunnel",
                "--ca",
                ca,
                "--callback",
                "090; rm -rf /",
            ],
            "call-back number",
        ),
    ] {
        let o = admin(&data, &[&["hub"][..], &args].concat());
        let text = common::output_text(&o);
        assert!(
            !o.status.success() && text.contains(why),
            "{args:?}: {text}"
        );
        assert!(!data.join("hub-ca.pem").exists(), "{args:?} wrote the CA");
    }
    let o = admin(
        &data,
        &[
            "hub",
            "--endpoint",
            &endpoint,
            "--ca",
            ca,
            "--no-tunnel",
            "--callback",
            "090-1234-5678",
        ],
    );
    assert!(o.status.success(), "{}", common::output_text(&o));
    let status = common::output_text(&admin(&data, &["status"]));
    assert!(
        status.contains(&format!(
            "hub:         {endpoint} (outside the tunnel; call-back 090-1234-5678)"
        )) && status.contains("integrity:   ok"),
        "{status}"
    );
    // the admin's own check, before the tablet goes into service
    let check = common::output_text(&admin(&data, &["check-hub"]));
    assert!(
        check.contains("hub ok:")
            && check.contains("3 hospitals")
            && check.contains("H1  第一病院"),
        "{check}"
    );
    // the client the app builds: the tablet's own certificate and key, the hub's CA
    let (cfg, keys) = device::check(&data).expect("the enrolled tablet starts");
    let hub_cfg = cfg.hub.clone().expect("the hub in device.toml");
    assert!(!hub_cfg.require_tunnel);
    let (client, addr) = device::hub_client(&data, &hub_cfg, &keys).unwrap();
    assert_eq!(addr, Some(std::net::IpAddr::from([127, 0, 0, 1])));
    let list = client
        .hospitals()
        .await
        .expect("the hub answers the tablet");
    assert_eq!(list.hospitals.len(), 3);
    let view = client
        .ask(&AskRequest {
            incident_id: "UNIT-T-1".into(),
            candidates: vec![HospitalCode("H1".into())],
            disclosure: disclosure(),
        })
        .await
        .unwrap();
    let stored = fx.hub().core.case(&view.case_id).await.unwrap();
    assert_eq!(
        stored.unit, "UNIT-T",
        "the hub knows the tablet by its own certificate"
    );
    drop((client, keys));
    // a CA swapped in by hand: the tablet names the file and does not start
    let mut pem = std::fs::read(data.join("hub-ca.pem")).unwrap();
    pem.extend(std::fs::read(pki().join("other-ca.pem")).unwrap());
    std::fs::write(data.join("hub-ca.pem"), pem).unwrap();
    let e = device::check(&data).map(|_| ()).unwrap_err().to_string();
    assert!(e.contains("hub-ca.pem"), "{e}");
}
