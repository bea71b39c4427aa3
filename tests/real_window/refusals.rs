//! A tablet that must not start, and a phone without its PIN, on the real window.

use super::*;

#[test]
fn a_tampered_tablet_shows_one_line_and_nothing_to_tap() {
    // an enrolled tablet (file keys; the TPM has tests/tpm.rs) whose roster was edited
    let d = TempDir::new("real-window-tamper");
    let data = d.path().join("tablet");
    common::enrol(
        &data,
        "https://127.0.0.1:9",
        &["--allow-file-keys"],
        &common::no_tpm,
    );
    // a roster slipped in with the file mode the admin tool would give it (0600): only the
    // signed manifest can tell
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(data.join("roster.toml"))
            .unwrap();
        f.write_all(
            b"[[crew]]\nid = \"INTRUDER\"\nname = \"x\"\ncan_view = true\npin_hash = \"x\"\n",
        )
        .unwrap();
    }

    let (_xvfb, display) = start_xvfb();
    let log = d.path().join("app.log");
    let app = Killed(
        Command::new(env!("CARGO_BIN_EXE_mynakyukyu"))
            .arg("--data-dir")
            .arg(&data)
            .env("DISPLAY", &display)
            .env_remove("WAYLAND_DISPLAY")
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(d.path().join("app.err")).unwrap())
            .spawn()
            .unwrap(),
    );
    let (mut s, shots) = Screenful::of(
        &app,
        display,
        "real-window-tamper",
        &d.path().join("app.err"),
    );
    std::thread::sleep(Duration::from_secs(2));
    s.shot("stopped");
    // taps where sign-in's controls stand on a working tablet change nothing
    for p in [(640, 400), (640, 600), (1200, 40)] {
        s.tap(p, 2);
    }
    std::thread::sleep(LOOK);
    s.shot("stopped-after-taps");
    let a = std::fs::read(shots.join("01-stopped.png")).unwrap();
    let b = std::fs::read(shots.join("02-stopped-after-taps.png")).unwrap();
    let err = std::fs::read_to_string(d.path().join("app.err")).unwrap();
    assert!(
        err.contains("roster.toml")
            && err.contains("changed outside")
            && err.contains("refuses to start"),
        "{err}"
    );
    assert!(
        matches!(app.0.id(), id if std::path::Path::new(&format!("/proc/{id}")).exists()),
        "the stop screen stays up"
    );
    // the window's pixels did not change under the taps
    assert!(
        pixels(&a) == pixels(&b),
        "the stop screen changed under taps"
    );
    common::reliability_row(
        "real-window-stopped",
        "UI",
        "an enrolled tablet whose roster.toml was edited, started in a real window under Xvfb, then tapped by coordinates where controls stand on a working tablet",
        3,
        0,
        "a full-window stop screen (使用できません + one Japanese line) with nothing to tap; the log names roster.toml; the pixels do not change under the taps",
    );
}

#[test]
fn a_phone_on_the_real_window_takes_the_patients_pin_and_nothing_else_without_it() {
    let layout = Layout::new();
    let api = layout.api();
    let sign_in = SignInPlaces::of(&layout);
    api.set_screen(Screen::Ready);
    let trainer = layout.by_label("訓練操作");
    api.set_trainer_open(true);
    let title = |n: &str| mynakyukyu::drill::scenario(n).unwrap().title;
    let android = layout.by_label(&title("phone-android"));
    let unconscious = layout.by_label(&title("phone-unconscious"));
    // the panel's list is not scrolled: both must stand inside the window
    assert!(
        android.1 < 780 && unconscious.1 < 780,
        "{android:?} {unconscious:?}"
    );
    api.set_trainer_open(false);
    api.set_screen(Screen::Phone);
    let digits: Vec<(i32, i32)> = (0..10).map(|d| layout.by_label(&d.to_string())).collect();
    let digit = |d: char| digits[d.to_digit(10).unwrap() as usize];
    let confirm = layout.by_id("PhoneScreen::phoneconfirm");
    let cannot = layout.by_id("PhoneScreen::cannot");
    let phone_end = layout.by_id("PhoneScreen::end");
    api.set_screen(Screen::Consent);
    api.set_photo_offered(false);
    api.set_unobtainable_offered(false);
    let verbal = layout.by_id("ConsentScreen::verbal");
    let unobtainable = layout.by_id("ConsentScreen::unobtainable");
    api.set_screen(Screen::Summary);
    let end_viewing = layout.by_id("ViewingHeader::end");

    let TrainingWindow {
        mut s,
        shots,
        app,
        _xvfb,
        d,
    } = TrainingWindow::start("real-window-phone", &sign_in);
    let hold = |s: &mut Screenful, at: (i32, i32), name: &str| {
        s.tap(trainer, 1);
        std::thread::sleep(LOOK);
        s.tap(at, 1);
        std::thread::sleep(CARD);
        s.shot(name);
    };
    let type_pin = |s: &mut Screenful, pin: &str| {
        for c in pin.chars() {
            s.tap(digit(c), 1);
            std::thread::sleep(Duration::from_millis(150));
        }
        std::thread::sleep(LOOK);
        s.tap(confirm, 1);
        std::thread::sleep(CARD);
    };

    // 1. a conscious patient's Android phone: a wrong PIN, the right one, then a double
    //    tap where 同意取得困難 stands (disabled with a phone), then 口頭同意あり
    hold(&mut s, android, "phone-pin");
    type_pin(&mut s, "0000");
    s.shot("phone-pin-wrong");
    type_pin(&mut s, mynakyukyu::drill::DRILL_PIN);
    s.shot("phone-consent");
    s.tap(unobtainable, 2);
    std::thread::sleep(LOOK);
    s.shot("phone-unobtainable-tapped");
    s.tap(verbal, 1);
    std::thread::sleep(CARD);
    s.shot("phone-summary");
    s.tap(end_viewing, 1);
    std::thread::sleep(LOOK);

    // 2. an unconscious patient's phone: the crew says so; the pad then takes nothing
    hold(&mut s, unconscious, "phone-unconscious");
    s.tap(cannot, 1);
    std::thread::sleep(LOOK);
    s.shot("phone-unusable");
    for c in "1234".chars() {
        s.tap(digit(c), 1);
        std::thread::sleep(Duration::from_millis(150));
    }
    s.tap(confirm, 2);
    std::thread::sleep(LOOK);
    s.shot("phone-unusable-after-taps");
    let a = std::fs::read(shots.join("09-phone-unusable.png")).unwrap();
    let b = std::fs::read(shots.join("10-phone-unusable-after-taps.png")).unwrap();
    assert!(
        pixels(&a) == pixels(&b),
        "the unusable phone's screen changed under taps on its pad; see {}",
        shots.display()
    );
    s.tap(phone_end, 1);
    std::thread::sleep(LOOK);
    s.shot("ready-after-phone");
    drop(app);

    // what an admin reads afterwards: one decision, the one tapped, and the phone named
    let rows = admin_export(d.path());
    let decisions = decisions(&rows);
    assert_eq!(
        decisions,
        vec!["consent:verbal"],
        "screenshots in {}",
        shots.display()
    );
    let audits: Vec<&serde_json::Value> = rows.iter().filter(|r| r["record"] == "audit").collect();
    assert!(!audits.is_empty());
    assert!(
        audits.iter().all(|r| r["token"] == "android_phone"),
        "{audits:?}"
    );
    let views: Vec<&&serde_json::Value> = audits
        .iter()
        .filter(|r| r["action"] == "view:emergency_summary")
        .collect();
    assert_eq!(views.len(), 1, "one summary viewed");
    assert_eq!(views[0]["identity_check"], "pin");
    assert_eq!(views[0]["consent"], "consented");
    common::reliability_row(
        "real-window-phone",
        "UI",
        "the real window under Xvfb tapped by coordinates: an Android phone's PIN on the phone screen (a wrong one, then the right one), a double tap where 同意取得困難 stands, 口頭同意あり; an unconscious patient's phone, then taps on its pad and 確認",
        2,
        0,
        "the export holds one decision (consent:verbal), every audit row names android_phone, the view was by pin; the unusable phone's pixels did not change under the taps",
    );
}
