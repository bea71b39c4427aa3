//! A card pulled at every APDU.

use super::*;

#[test]
fn card_removed_at_every_apdu_index_leaves_nothing_and_the_next_read_works() {
    let mut rig = Rig::new(|_, _| None);
    // how many APDUs a whole read takes
    rig.world.place_card(&rig.patient).unwrap();
    let vm = rig.send(Command::CardPlaced);
    assert_eq!(vm.screen, Screen::Consent);
    rig.send(Command::CardRemoved);
    let vm = rig.send(Command::EndViewing);
    assert_eq!(vm.screen, Screen::Ready);
    // SELECT AP, EF 0006, SELECT EF, READ BINARY ×2 (the counts are pinned in card::jpki tests)
    let apdus = 5;
    let mut runs = 0;
    for index in 0..apdus {
        rig.world.place_card(&rig.patient).unwrap();
        rig.world.reader.remove_after_apdus(index);
        let vm = rig.send(Command::CardPlaced);
        assert_eq!(vm.screen, Screen::Ready, "removed after {index} APDUs");
        assert!(!vm.has_patient, "nothing half-read kept");
        assert!(
            vm.notice.contains("カード"),
            "a plain message: {}",
            vm.notice
        );
        // the card again, whole: a clean read
        rig.world.place_card(&rig.patient).unwrap();
        let vm = rig.send(Command::CardPlaced);
        assert_eq!(vm.screen, Screen::Consent, "read after removal at {index}");
        assert!(vm.has_patient);
        rig.world.reader.remove();
        rig.send(Command::EndViewing);
        runs += 1;
    }
    // an Android phone: SELECT AP and EF 0006 before its PIN; then SELECT AP, SELECT EF 0018,
    // tries, VERIFY, SELECT EF 000A, READ BINARY ×2 after it
    let phone_apdus = 9;
    for index in 0..phone_apdus {
        let phone = mynakyukyu::drill::Carrier::Android;
        rig.world.place(&rig.patient, phone).unwrap();
        rig.world.reader.remove_after_apdus(index);
        let mut vm = rig.send(Command::CardPlaced);
        if vm.phase == "phone_pin" {
            vm = rig.send(Command::EnterPin {
                pin: mynakyukyu::drill::DRILL_PIN.into(),
                confirm_last_try: false,
            });
        }
        assert_eq!(
            vm.screen,
            Screen::Ready,
            "phone removed after {index} APDUs"
        );
        assert!(
            !vm.holds_patient_data(),
            "nothing of the phone kept at {index}"
        );
        assert!(
            vm.notice.contains("外れました"),
            "at {index}: {}",
            vm.notice
        );
        assert!(rig.controller.session().incident().is_none());
        rig.world.place(&rig.patient, phone).unwrap();
        assert_eq!(rig.send(Command::CardPlaced).phase, "phone_pin");
        let vm = rig.send(Command::EnterPin {
            pin: mynakyukyu::drill::DRILL_PIN.into(),
            confirm_last_try: false,
        });
        assert_eq!(
            vm.screen,
            Screen::Consent,
            "phone read after removal at {index}"
        );
        rig.world.reader.remove();
        rig.send(Command::EndViewing);
        runs += 1;
    }
    reliability_row(
        "card-removed",
        "Faults",
        "the card pulled away after every APDU index of a read (0–4), and an Android phone after every APDU index of its token read and its PIN-then-certificate read (0–8), through the app's controller, then put back",
        runs,
        0,
        "back at Ready with a Japanese message and no patient data each time; the next read complete (every index also in card::jpki's unit tests)",
    );
}
