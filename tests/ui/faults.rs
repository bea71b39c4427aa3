//! What the crew sees when something goes wrong: a revoked card, an admin's roster change, swapped answers, the strip's warnings.

use super::*;

#[test]
fn a_revoked_card_leaves_the_crew_a_way_out_and_the_next_card_reads() {
    // found by the walk over every simulated patient: a revoked card ended the case on
    // the Ready screen with no control at all, and the next card was refused
    let mut r = Rig::new();
    r.sign_in();
    r.place_card("revoked-card");
    assert_eq!(r.screen(), Screen::Ready);
    assert!(
        r.shows("このカードの証明書は失効"),
        "{:?}",
        r.controller.view().notice
    );
    assert!(r.enabled("終了"), "no way out of a failed case");
    r.tap("終了");
    assert_eq!(r.controller.view().phase, "ready");
    r.place_card("diabetic-insulin");
    assert_eq!(r.screen(), Screen::Consent);
}

#[test]
fn a_crew_member_the_admin_adds_is_on_the_sign_in_screen_at_the_next_view() {
    let mut r = Rig::new();
    assert!(r.enabled(TRAINING_CREW_NAME));
    assert!(!r.enabled("追加 隊員"));
    let path = r.world.dir.join(mynakyukyu::config::ROSTER_FILE);
    let mut roster = mynakyukyu::roster::Roster::load(&path).unwrap();
    let key = r.world.roster_key();
    roster
        .add("EMT-0042", "追加 隊員", "424242", true, key)
        .unwrap();
    roster.save(&path, key).unwrap();
    // any view model while signed out (here: a sign-out that has nothing to do)
    r.send(Command::SignOut);
    assert!(r.enabled("追加 隊員"), "the roster was read again");
    assert!(r.enabled(TRAINING_CREW_NAME));
}

/// A gateway that mixes up the bodies of two inquiries in flight together while echoing
/// the right ids (`Faults::swap_emergency_bodies`): this tablet asks about one patient,
/// another tablet of the unit about another at the same moment, and each gets the other's
/// body. Neither shows anything of either patient.
#[test]
fn a_gateway_that_swaps_two_patients_bodies_shows_nothing_of_either() {
    use mynakyukyu::domain::{
        CardCredential, ConsentState, EmergencyInquiry, IdentityCheck, IdentityMethod, IncidentId,
        OperatorId, QualificationRequest, TerminalId, UnitId,
    };
    use mynakyukyu::eligibility::client::ClientError;
    use mynakyukyu::eligibility::wire::QualificationResponse;
    let mut r = Rig::new();
    r.sign_in();
    r.place_card("elderly-warfarin");
    assert_eq!(r.screen(), Screen::Consent);
    let own_name = r.api().get_patient().name.to_string();
    r.tap("顔写真と本人が一致");
    // the other tablet: another patient, its inquiry sent while this one's is in flight
    let other_id = r.world.patient_id("diabetic-insulin").unwrap();
    let der = r
        .world
        .server
        .with_simulator(|s| s.issue_card(&other_id).unwrap().auth_certificate_der);
    let other_tablet = r.world.client(TrainingWorld::client_settings()).unwrap();
    r.world.server.set_faults(mynakyukyu::sim::Faults {
        swap_emergency_bodies: true,
        ..Default::default()
    });
    let other = r.rt.spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let unit = UnitId::new(mynakyukyu::pki::dev::UNIT);
        let QualificationResponse::Coverage {
            qualification_ref,
            coverage,
        } = other_tablet
            .qualification(&QualificationRequest {
                incident: IncidentId::new("OTHER-1"),
                credential: CardCredential {
                    auth_certificate_der: der,
                    token: Default::default(),
                },
                operator: OperatorId::new("EMT-2"),
                unit: unit.clone(),
                terminal: TerminalId::new("T-2"),
            })
            .await
            .unwrap()
        else {
            panic!("coverage")
        };
        other_tablet
            .emergency_info(&EmergencyInquiry {
                incident: IncidentId::new("OTHER-1"),
                qualification: qualification_ref,
                consent: ConsentState::Consented,
                operator: OperatorId::new("EMT-2"),
                unit,
                terminal: TerminalId::new("T-2"),
                identity_method: IdentityMethod::MynaCard,
                identity_check: IdentityCheck::Photo,
                token: Default::default(),
                patient: coverage.patient,
            })
            .await
    });
    r.tap("同意取得困難（意識障害等）");
    r.tap("意識障害");
    let other = r.rt.block_on(other).unwrap();
    // the other tablet refused this patient's body
    assert!(
        matches!(other, Err(ClientError::AnswerForAnotherPatient(_))),
        "{other:?}"
    );
    // and this one the other patient's: no summary, no full data, no other name
    assert_ne!(r.screen(), Screen::Summary);
    assert_ne!(r.screen(), Screen::FullData);
    assert_eq!(r.api().get_summary().iter().count(), 0);
    let shown = r.api().get_patient().name.to_string();
    assert!(shown.is_empty() || shown == own_name, "{shown}");
    assert!(!r.shows("注意 インスリン"), "the other patient's alert");
    assert!(
        !r.shows("注意 抗凝固薬"),
        "this patient's alert from a refused answer"
    );
    common::reliability_row(
        "answer-body-swapped",
        "Bad input",
        "a gateway swaps the emergency-info bodies of two inquiries in flight together (this tablet's patient and another tablet's), every header and id right",
        2,
        0,
        "both refused (the body names another reference and patient): no summary, no full data, no alert of either patient on the screen",
    );
}

/// The status strip says what `status` says, in its own few characters: the CRL's date in
/// the certificate's place, records waiting for days in the last send's.
#[test]
fn the_strip_warns_of_the_crls_date_and_of_records_waiting_for_days() {
    let mut r = Rig::new();
    let dir = TempDir::new("strip-upkeep");
    std::fs::copy(
        common::pki().join("ca.pem"),
        dir.path().join(mynakyukyu::config::SERVER_CA_FILE),
    )
    .unwrap();
    std::fs::copy(
        common::pki().join("crl-soon.pem"),
        dir.path().join(mynakyukyu::config::SERVER_CRL_FILE),
    )
    .unwrap();
    let five_days_ago = mynakyukyu::domain::Timestamp::now().0 - 5 * 24 * 3600 * 1000;
    r.world
        .store
        .append(
            common::opt_out_audit("I-OLD", five_days_ago),
            mynakyukyu::domain::Timestamp(five_days_ago),
        )
        .unwrap();
    let mut settings = r.world.settings();
    settings.crl_data_dir = Some(dir.path().to_path_buf());
    let (controller, _) = Controller::new(r.world.ports().unwrap(), settings);
    r.controller = controller;
    r.send(Command::SignOut);
    let status = r.api().get_status();
    assert_eq!(status.certificate.as_str(), "CRL 4日");
    assert_eq!(status.last_sync.as_str(), "未送信 5日");
    assert!(r.shows("CRL 4日"), "on the screen");
    // the CRL file replaced by one past its date: the strip follows the file
    std::fs::copy(
        common::pki().join("crl-expired.pem"),
        dir.path().join(mynakyukyu::config::SERVER_CRL_FILE),
    )
    .unwrap();
    // (a file's time has a coarse grain on some file systems: make the change visible)
    let f = std::fs::File::options()
        .write(true)
        .open(dir.path().join(mynakyukyu::config::SERVER_CRL_FILE))
        .unwrap();
    f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5))
        .unwrap();
    r.send(Command::SignOut);
    assert_eq!(r.api().get_status().certificate.as_str(), "CRL期限切れ");
}
