//! The provisioned app's controller on the real line: run by `scripts/ipsec-e2e` (root)
//! inside the tablet's network namespace, with the simulator behind a strongSwan gateway in
//! another namespace. Ignored by plain `cargo test`: without that setup there is no tunnel.
//!
//! `MYNA_LINE_DATA` is the provisioned data dir (`mynakyukyu-admin init`, `install-cert`,
//! `crew add`), `MYNA_LINE_PKI` the dev PKI whose test JPKI CA issues the patient's card,
//! `MYNA_LINE_CREW`/`MYNA_LINE_PIN` a roster member.

use mynakyukyu::app::reader::VirtualReader;
use mynakyukyu::app::view::{Screen, ViewModel};
use mynakyukyu::app::{Command, Controller};
use mynakyukyu::domain::ConsentDecision;
use mynakyukyu::sim::patients::{DEFAULT_POPULATION, DEFAULT_SEED, PatientScenario, population};
use std::path::PathBuf;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set (run scripts/ipsec-e2e)"))
}

/// Sign in, place a card for a synthetic patient, confirm the photo and give verbal consent,
/// exactly as the screens would; the view model after each step.
fn incident() -> Vec<ViewModel> {
    let data = PathBuf::from(env("MYNA_LINE_DATA"));
    let pki = PathBuf::from(env("MYNA_LINE_PKI"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let mut device = mynakyukyu::app::device::open(&data).expect("provisioned device");
    assert!(
        device.settings.require_tunnel,
        "provisioned: tunnel required"
    );
    let today = time::OffsetDateTime::now_utc().date();
    let patients = population(DEFAULT_SEED, DEFAULT_POPULATION, today);
    let patient = patients
        .iter()
        .find(|p| p.scenario == Some(PatientScenario::ElderlyWarfarin))
        .unwrap();
    let (card, _) = mynakyukyu::sim::patient_card(&pki, &patient.id, "1234", today).unwrap();
    let reader = VirtualReader::new();
    reader.place(card);
    device.ports.reader = reader;
    let (mut controller, _) = Controller::new(device.ports, device.settings);
    let mut views = vec![];
    for cmd in [
        Command::SignIn {
            crew_id: env("MYNA_LINE_CREW"),
            pin: env("MYNA_LINE_PIN"),
        },
        Command::CardPlaced,
        Command::ConfirmPhoto,
        Command::Consent(ConsentDecision::Verbal),
    ] {
        rt.block_on(controller.handle(cmd));
        let vm = controller.view();
        eprintln!(
            "{:?}: screen {:?}, tunnel {}, notice {}",
            views.len(),
            vm.screen,
            vm.status.tunnel,
            vm.notice
        );
        views.push(vm);
    }
    views
}

#[test]
#[ignore = "needs the namespaces and tunnel of scripts/ipsec-e2e"]
fn summary_through_the_tunnel() {
    let views = incident();
    let last = views.last().unwrap();
    assert_eq!(last.screen, Screen::Summary, "{last:?}");
    assert!(last.has_patient);
    assert_eq!(last.status.tunnel, "IPsec");
    assert!(!last.summary.is_empty());
}

#[test]
#[ignore = "needs the namespaces of scripts/ipsec-e2e, with the tunnel down"]
fn refused_with_the_tunnel_down() {
    let views = incident();
    let last = views.last().unwrap();
    assert_ne!(last.screen, Screen::Summary);
    assert!(!last.has_patient, "nothing about the patient came back");
    assert!(
        views.iter().any(|v| v
            .notice
            .contains("専用回線（IPsec）が確立していないため送信しません")),
        "{views:?}"
    );
    assert_eq!(last.status.tunnel, "トンネル外");
}
