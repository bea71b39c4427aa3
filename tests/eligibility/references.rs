//! References that cannot be walked or borrowed, the PIN path's card signature, a phone only with its owner.

use super::*;

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
