//! The screens driven through Slint's testing backend, with the real controller, the
//! in-process virtual reader and the simulator on loopback (the training world). Every tap
//! is an accessible action on the element a crew would touch, found by its label.

mod common;

use common::TempDir;
use i_slint_backend_testing::{ElementHandle, ElementQuery};
use mynakyukyu::app::view::Screen as VScreen;
use mynakyukyu::app::{Command, Controller};
use mynakyukyu::drill::world::{TRAINING_CREW_NAME, TRAINING_CREW_PIN, TrainingWorld};
use mynakyukyu::sim::proxy::LinkState;
use mynakyukyu::ui::{self, Api, AppWindow, Screen, Theme};
use slint::{ComponentHandle, Model};
use tokio::sync::mpsc;

struct Rig {
    rt: tokio::runtime::Runtime,
    world: std::sync::Arc<TrainingWorld>,
    controller: Controller,
    app: AppWindow,
    rx: mpsc::Receiver<Command>,
    tx: mpsc::Sender<Command>,
    _dir: TempDir,
}

impl Rig {
    fn new() -> Rig {
        Rig::with_size(1280.0, 800.0)
    }

    /// The app in a window of this logical size (a panel's pixels over its scale factor).
    fn with_size(width: f32, height: f32) -> Rig {
        // once per test thread: the platform cannot be set twice
        thread_local!(static PLATFORM: () = i_slint_backend_testing::init_no_event_loop());
        PLATFORM.with(|_| ());
        let dir = TempDir::new("ui");
        let rt = common::runtime();
        let today = time::OffsetDateTime::now_utc().date();
        let world = std::sync::Arc::new(
            rt.block_on(TrainingWorld::start(dir.path(), today))
                .unwrap(),
        );
        let (controller, _) = Controller::new(world.ports().unwrap(), world.settings());
        let app = AppWindow::new().unwrap();
        let (tx, rx) = mpsc::channel(16);
        let panel = ui::TrainingPanel {
            world: world.clone(),
            commands: tx.clone(),
        };
        app.window()
            .set_size(slint::LogicalSize::new(width, height));
        // the theme takes the window's size, as the app's timer does (ui::follow_window_size)
        mynakyukyu::ui::fit_theme_to_window(&app);
        // taps by accessible label come one at a time; the guard has tests of its own
        ui::bind_with_guard(
            &app,
            tx.clone(),
            Some(std::sync::Arc::new(panel)),
            std::time::Duration::ZERO,
        );
        let mut rig = Rig {
            rt,
            world,
            controller,
            app,
            rx,
            tx,
            _dir: dir,
        };
        rig.pump();
        rig
    }

    /// Let the controller carry out what the screens asked, then show its view model.
    fn pump(&mut self) {
        while let Ok(cmd) = self.rx.try_recv() {
            self.rt.block_on(self.controller.handle(cmd));
        }
        ui::apply(&self.app, &self.controller.view());
    }

    fn send(&mut self, cmd: Command) {
        self.tx.try_send(cmd).unwrap();
        self.pump();
    }

    fn find(&self, label: &str) -> Vec<ElementHandle> {
        ElementHandle::find_by_accessible_label(&self.app, label).collect()
    }

    fn tap(&mut self, label: &str) {
        let found: Vec<_> = self
            .find(label)
            .into_iter()
            .filter(|h| {
                h.accessible_role() == Some(i_slint_backend_testing::AccessibleRole::Button)
            })
            .collect();
        assert!(
            !found.is_empty(),
            "no button labelled {label:?} on {:?}",
            self.screen()
        );
        assert_eq!(
            found[0].accessible_enabled(),
            Some(true),
            "{label:?} is disabled"
        );
        found[0].invoke_accessible_default_action();
        self.pump();
    }

    fn screen(&self) -> Screen {
        self.app.global::<Api>().get_screen()
    }

    fn shows(&self, label_start: &str) -> bool {
        let want = label_start.to_string();
        ElementQuery::from_root(&self.app)
            .match_descendants()
            .match_predicate(move |e| {
                e.accessible_label()
                    .is_some_and(|l| l.starts_with(want.as_str()))
            })
            .find_first()
            .is_some()
    }

    fn sign_in(&mut self) {
        assert_eq!(self.screen(), Screen::SignIn);
        self.tap(TRAINING_CREW_NAME);
        for digit in TRAINING_CREW_PIN.chars() {
            self.tap(&digit.to_string());
        }
        self.tap("サインイン");
        assert_eq!(self.screen(), Screen::Ready, "{:?}", self.controller.view());
    }

    fn place_card(&mut self, patient: &str) {
        let id = self.world.patient_id(patient).unwrap();
        self.world.place_card(&id).unwrap();
        self.send(Command::CardPlaced);
    }

    fn api(&self) -> Api<'_> {
        self.app.global::<Api>()
    }

    /// The patient holds out a phone with this patient's credential instead of the card.
    fn hold_phone(&mut self, patient: &str, carrier: mynakyukyu::drill::Carrier) {
        let id = self.world.patient_id(patient).unwrap();
        self.world.place(&id, carrier).unwrap();
        self.send(Command::CardPlaced);
    }

    /// Whether the button with this label is there and enabled.
    fn enabled(&self, label: &str) -> bool {
        self.find(label)
            .iter()
            .filter(|h| {
                h.accessible_role() == Some(i_slint_backend_testing::AccessibleRole::Button)
            })
            .any(|h| h.accessible_enabled() == Some(true))
    }
}

#[test]
fn full_flow_sign_in_card_confirm_consent_summary_full_end() {
    let mut r = Rig::new();
    assert!(r.api().get_status().training);
    assert!(r.shows("訓練モード"), "training banner");
    r.sign_in();
    assert!(r.shows("カードをリーダーに置いてください"));
    r.place_card("elderly-warfarin");
    assert_eq!(r.screen(), Screen::Consent);
    assert!(r.shows("氏名 "), "patient name shown");
    assert!(!r.api().get_patient().name.is_empty());
    // two taps from the card to the summary
    r.tap("顔写真と本人が一致");
    r.tap("同意取得困難（意識障害等）");
    assert_eq!(r.screen(), Screen::Summary);
    assert!(
        r.shows("注意 抗凝固薬"),
        "anticoagulant alert on the summary"
    );
    assert!(
        r.api().get_summary().iter().count() == 7,
        "seven MHLW items"
    );
    r.tap("全量版を見る");
    assert_eq!(r.screen(), Screen::FullData);
    r.tap("サマリーに戻る");
    assert_eq!(r.screen(), Screen::Summary);
    r.tap("閲覧終了");
    assert_eq!(r.screen(), Screen::Ready);
    // viewing ended: the screen's copy of the patient is gone
    let api = r.api();
    assert!(api.get_patient().name.is_empty());
    assert_eq!(api.get_summary().iter().count(), 0);
    assert_eq!(api.get_full().iter().count(), 0);
    assert_eq!(api.get_alerts().iter().count(), 0);
    assert!(!r.controller.view().holds_patient_data());
    assert!(!r.shows("氏名 "));
    // the app keeps no copy of its records in memory (only a drill's debrief asks for one)
    assert!(r.controller.recorded().is_empty());
}

#[test]
fn refusal_records_and_never_inquires() {
    let mut r = Rig::new();
    r.sign_in();
    r.place_card("P0020");
    let before = r.world.server.inquiry_count();
    r.tap("顔写真と本人が一致");
    r.tap("拒否");
    assert_eq!(r.screen(), Screen::Consent);
    assert!(r.api().get_case_closed());
    assert_eq!(r.world.server.inquiry_count(), before);
    r.tap("終了して次の患者へ");
    assert_eq!(r.screen(), Screen::Ready);
    assert!(r.api().get_patient().name.is_empty());
}

#[test]
fn opt_out_is_shown_plainly_without_consent_buttons_enabled() {
    let mut r = Rig::new();
    r.sign_in();
    r.place_card("opt-out");
    assert_eq!(r.screen(), Screen::Consent);
    assert!(r.api().get_case_closed());
    assert!(
        r.api().get_notice().contains("オプトアウト"),
        "{}",
        r.api().get_notice()
    );
    let buttons = r
        .find("口頭同意あり")
        .into_iter()
        .filter(|h| h.accessible_role() == Some(i_slint_backend_testing::AccessibleRole::Button));
    for b in buttons {
        assert_eq!(
            b.accessible_enabled(),
            Some(false),
            "no consent choice after an opt-out: {:?}",
            b.type_name()
        );
    }
    r.tap("終了して次の患者へ");
    assert_eq!(r.screen(), Screen::Ready);
}

#[test]
fn card_removed_mid_read_says_so_and_a_second_read_works() {
    let mut r = Rig::new();
    r.sign_in();
    let id = r.world.patient_id("P0031").unwrap();
    r.world.place_card(&id).unwrap();
    r.world.reader.remove_after_apdus(3);
    r.send(Command::CardPlaced);
    assert_eq!(r.screen(), Screen::Ready);
    let notice = r.api().get_notice().to_string();
    assert!(notice.contains("カード"), "{notice}");
    assert!(r.shows(&notice), "notice shown on the ready screen");
    r.place_card("P0031");
    assert_eq!(r.screen(), Screen::Consent);
}

#[test]
fn line_lost_during_the_inquiry_waits_then_resends_when_restored() {
    let mut r = Rig::new();
    r.sign_in();
    r.place_card("diabetic-insulin");
    r.tap("顔写真と本人が一致");
    r.world.set_line(LinkState::Down);
    r.tap("口頭同意あり");
    assert_eq!(r.screen(), Screen::Consent, "still on the consent screen");
    assert!(r.api().get_waiting_for_link());
    assert!(
        r.api().get_busy().contains("回線待ち"),
        "{}",
        r.api().get_busy()
    );
    assert_eq!(r.controller.view().screen, VScreen::Consent);
    r.world.set_line(LinkState::Up);
    r.send(Command::LinkRestored);
    assert_eq!(r.screen(), Screen::Summary);
    assert!(r.shows("注意 インスリン"));
}

#[test]
fn wrong_crew_pin_is_refused_on_screen() {
    let mut r = Rig::new();
    // nothing chosen: サインイン stays disabled whatever the keypad says
    for d in "9999".chars() {
        r.tap(&d.to_string());
    }
    assert!(!r.enabled("サインイン"), "sign-in with nobody chosen");
    r.tap(TRAINING_CREW_NAME);
    r.tap("サインイン");
    assert_eq!(r.screen(), Screen::SignIn);
    assert!(r.api().get_sign_in_error().contains("PIN"));
}

#[test]
fn trainer_panel_places_a_scenario_card_and_drops_the_line() {
    let mut r = Rig::new();
    r.sign_in();
    r.tap("訓練操作");
    assert!(r.api().get_trainer_open());
    // listed by their Japanese titles, in a list that scrolls: dialysis is below the fold
    let title = mynakyukyu::drill::scenario("dialysis").unwrap().title;
    assert!(!title.is_ascii());
    assert!(r.find(&title).is_empty(), "not visible before scrolling");
    let list = ElementQuery::from_root(&r.app)
        .match_type_name("ScrollView")
        .find_all()
        .into_iter()
        .find(|h| h.absolute_position().x > 700.0)
        .expect("the trainer's scenario list");
    for _ in 0..10 {
        if !r.find(&title).is_empty() {
            break;
        }
        list.scroll(0.0, -200.0);
    }
    r.tap(&title);
    assert_eq!(
        r.screen(),
        Screen::Consent,
        "the scenario's card was placed and read"
    );
    r.tap("訓練操作");
    r.tap("回線断");
    assert!(r.api().get_trainer_message().contains("回線断"));
    r.tap("顔写真と本人が一致");
    r.tap("口頭同意あり");
    assert!(
        r.api().get_waiting_for_link(),
        "the inquiry waits for the line"
    );
    r.tap("回線復旧");
    r.send(Command::LinkRestored);
    assert_eq!(r.screen(), Screen::Summary);
    assert!(r.shows("注意 透析"));
}

fn records(r: &Rig) -> Vec<mynakyukyu::admin::AuditRow> {
    r.world
        .store
        .records()
        .unwrap()
        .iter()
        .map(mynakyukyu::admin::audit_row)
        .collect()
}

#[test]
fn a_refusal_clears_the_patient_from_the_screen_at_once_and_is_exported() {
    let mut r = Rig::new();
    r.sign_in();
    r.place_card("P0020");
    assert!(r.shows("氏名 "));
    r.tap("拒否");
    assert!(
        !r.shows("氏名 "),
        "the name left the screen with the refusal"
    );
    assert!(r.api().get_patient().name.is_empty());
    assert!(!r.api().get_has_patient());
    assert!(r.api().get_notice().contains("拒否を記録"));
    let rows = records(&r);
    assert!(
        rows.iter()
            .any(|x| x.action == "consent:refused" && !x.insured_number.is_empty()),
        "{rows:?}"
    );
}

#[test]
fn a_consent_decision_is_corrected_by_an_appended_record_shown_on_the_summary() {
    let mut r = Rig::new();
    r.sign_in();
    r.place_card("pregnant");
    r.tap("顔写真と本人が一致");
    r.tap("同意取得困難（意識障害等）");
    assert_eq!(r.screen(), Screen::Summary);
    r.tap("同意を訂正");
    assert!(r.api().get_correction_open());
    assert_eq!(
        r.find("同意取得困難に訂正")[0].accessible_enabled(),
        Some(false),
        "the decision in force cannot be chosen again"
    );
    r.tap("口頭同意ありに訂正");
    assert!(!r.api().get_correction_open());
    assert!(
        r.shows("同意: 口頭同意あり\n訂正: 同意取得困難 → 口頭同意あり"),
        "{}",
        r.api().get_consent_correction()
    );
    r.tap("全量版を見る");
    r.tap("閲覧終了");
    let rows = records(&r);
    let actions: Vec<&str> = rows.iter().map(|x| x.action.as_str()).collect();
    let first = actions.iter().position(|a| *a == "consent:unobtainable");
    let correction = actions
        .iter()
        .position(|a| *a == "correction:unobtainable->verbal");
    assert!(
        first.is_some() && correction > first,
        "both kept, in order: {actions:?}"
    );
    let full_view = rows.iter().find(|x| x.action == "view:full_data").unwrap();
    assert_eq!(
        full_view.consent, "consented",
        "views after it carry the correction"
    );
}

#[test]
fn after_viewing_without_consent_the_crew_is_reminded_of_the_explanation() {
    let mut r = Rig::new();
    r.sign_in();
    r.place_card("elderly-warfarin");
    r.tap("顔写真と本人が一致");
    r.tap("同意取得困難（意識障害等）");
    assert!(r.shows("同意取得困難で閲覧しました: 傷病者用説明書"));
    r.tap("説明書を渡した");
    assert!(r.api().get_explanation_handed());
    assert_eq!(
        r.find("✓ 説明書 交付済")[0].accessible_enabled(),
        Some(false)
    );
    r.tap("閲覧終了");
    // and when the viewing ends before it was handed, the record says it is still owed
    r.place_card("elderly-warfarin");
    r.tap("顔写真と本人が一致");
    r.tap("同意取得困難（意識障害等）");
    r.tap("閲覧終了");
    let handed: Vec<String> = records(&r)
        .into_iter()
        .filter(|x| x.record == "explanation")
        .map(|x| x.action)
        .collect();
    assert_eq!(
        handed,
        vec!["explanation:handed", "explanation:not_yet_handed"]
    );
}

#[test]
fn the_summary_names_its_source_and_flags_most_recent_valid_coverage() {
    let mut r = Rig::new();
    r.sign_in();
    r.place_card("invalid-coverage");
    assert!(
        r.shows("現在有効な資格はありません"),
        "flagged on the identity screen"
    );
    r.tap("顔写真と本人が一致");
    r.tap("口頭同意あり");
    assert_eq!(r.screen(), Screen::Summary);
    assert!(
        r.shows("資格: 現在有効な資格はありません"),
        "flagged on the summary"
    );
    assert!(r.shows("レセプト（診療報酬請求）に基づく情報です"));
    r.tap("全量版を見る");
    assert!(r.shows("レセプト（診療報酬請求）に基づく情報です"));
    assert!(
        r.shows("資格: 現在有効な資格はありません"),
        "and on the full data"
    );
}

#[test]
fn a_public_assistance_patient_shows_payer_and_recipient_numbers() {
    let mut r = Rig::new();
    r.sign_in();
    r.place_card("public-assistance");
    assert_eq!(r.screen(), Screen::Consent);
    let p = r.api().get_patient();
    assert!(
        p.recipient.len() == 7 && p.public_payer.starts_with("12"),
        "{p:?}"
    );
    assert!(r.shows("受給者番号 "));
    assert!(r.shows("公費負担者番号 "));
    r.tap("顔写真と本人が一致");
    r.tap("口頭同意あり");
    r.tap("閲覧終了");
    let rows = records(&r);
    let view = rows
        .iter()
        .find(|x| x.action == "view:emergency_summary")
        .unwrap();
    assert_eq!(view.insured_number, "");
    assert_eq!(view.recipient_number, p.recipient.as_str());
}

#[test]
fn training_sign_in_shows_the_training_crew_and_pin() {
    let r = Rig::new();
    assert!(r.shows(&format!(
        "訓練用: {TRAINING_CREW_NAME}　PIN {TRAINING_CREW_PIN}"
    )));
    // the roster's crew as buttons: the training crew is one of them
    assert!(r.enabled(TRAINING_CREW_NAME));
}

#[test]
fn the_tap_guard_ignores_a_tap_that_lands_just_after_the_screen_changed() {
    let mut r = Rig::new();
    r.sign_in();
    // the real guard from here on
    let panel = ui::TrainingPanel {
        world: r.world.clone(),
        commands: r.tx.clone(),
    };
    ui::bind(&r.app, r.tx.clone(), Some(std::sync::Arc::new(panel)));
    std::thread::sleep(ui::TAP_GUARD);
    r.place_card("diabetic-insulin");
    std::thread::sleep(ui::TAP_GUARD);
    r.tap("顔写真と本人が一致");
    let ignored = ui::taps_ignored();
    // the tap that was already on its way: ignored, nothing recorded
    r.tap("口頭同意あり");
    assert_eq!(ui::taps_ignored(), ignored + 1);
    assert_eq!(r.screen(), Screen::Consent);
    assert!(
        !records(&r).iter().any(|x| x.record == "consent"),
        "no consent recorded from a guarded tap"
    );
    // the crew looks, then taps: accepted
    std::thread::sleep(ui::TAP_GUARD + std::time::Duration::from_millis(50));
    r.tap("口頭同意あり");
    assert_eq!(r.screen(), Screen::Summary);
    // 閲覧終了 right after the summary appeared: ignored too
    r.tap("閲覧終了");
    assert_eq!(r.screen(), Screen::Summary);
    std::thread::sleep(ui::TAP_GUARD + std::time::Duration::from_millis(50));
    r.tap("閲覧終了");
    assert_eq!(r.screen(), Screen::Ready);
    let consents: Vec<String> = records(&r)
        .into_iter()
        .filter(|x| x.record == "consent")
        .map(|x| x.action)
        .collect();
    assert_eq!(consents, vec!["consent:verbal"]);
}

// ---- nothing moves under a finger, at every panel size ----

/// A control on screen: its identity, whether it takes taps, where it is.
#[derive(Clone, Debug)]
struct Control {
    key: String,
    label: String,
    enabled: bool,
    /// Its label needs more room than it has (the button says so: widgets.slint).
    clipped: bool,
    rect: (f32, f32, f32, f32),
}

/// Every button on screen. A control is known by its element id (so a button relabelled in
/// place is the same control), or by id and label where one id stands for many (keypads).
fn controls(app: &AppWindow) -> Vec<Control> {
    let found = ElementQuery::from_root(app)
        .match_accessible_role(i_slint_backend_testing::AccessibleRole::Button)
        .find_all();
    let mut out: Vec<Control> = found
        .iter()
        .filter(|h| h.computed_opacity() > 0.0)
        .map(|h| {
            let p = h.absolute_position();
            let s = h.size();
            Control {
                key: h.id().map(|s| s.to_string()).unwrap_or_default(),
                label: h
                    .accessible_label()
                    .map(|s| s.to_string())
                    .unwrap_or_default(),
                enabled: h.accessible_enabled() == Some(true),
                clipped: h.accessible_description().as_deref() == Some("clipped"),
                rect: (p.x, p.y, s.width, s.height),
            }
        })
        .collect();
    let mut seen = std::collections::HashMap::<String, usize>::new();
    for c in &out {
        *seen.entry(c.key.clone()).or_default() += 1;
    }
    for c in &mut out {
        if c.key.is_empty() || seen[&c.key] > 1 || in_scroll_list(c) {
            c.key = format!("{}|{}", c.key, c.label);
        }
    }
    out
}

/// The texts on screen that need more room than their box gives them (`WholeText` and the
/// status items say so through their accessible description).
fn clipped_texts(app: &AppWindow) -> Vec<String> {
    ElementQuery::from_root(app)
        .match_descendants()
        .match_predicate(|e| {
            e.accessible_description().as_deref() == Some("clipped")
                && e.accessible_role() == Some(i_slint_backend_testing::AccessibleRole::Text)
                && e.computed_opacity() > 0.0
        })
        .find_all()
        .iter()
        .map(|h| {
            let s = h.size();
            format!(
                "{:?} in {:.0}×{:.0}",
                h.accessible_label().unwrap_or_default(),
                s.width,
                s.height
            )
        })
        .collect()
}

/// The same place to a finger: within half a pixel (layouts sum floats).
fn same_place(a: (f32, f32, f32, f32), b: (f32, f32, f32, f32)) -> bool {
    (a.0 - b.0).abs() < 0.5
        && (a.1 - b.1).abs() < 0.5
        && (a.2 - b.2).abs() < 0.5
        && (a.3 - b.3).abs() < 0.5
}

/// Overlapping by more than the half pixel layouts round to.
fn overlaps(a: (f32, f32, f32, f32), b: (f32, f32, f32, f32)) -> bool {
    a.0 + 0.5 < b.0 + b.2 && b.0 + 0.5 < a.0 + a.2 && a.1 + 0.5 < b.1 + b.3 && b.1 + 0.5 < a.1 + a.3
}

/// Buttons in a scrolling list: they may lie below the list's visible part.
fn in_scroll_list(c: &Control) -> bool {
    c.key.starts_with("SignInScreen::crew") || c.key.starts_with("TrainerPanel::scenario")
}

struct Walk {
    size: (f32, f32),
    /// The theme's smallest control at this size.
    touch: f32,
    /// Where the chrome (training banner and status strip) ends.
    strip_bottom: f32,
    last: Option<(Screen, String, Vec<Control>)>,
    states: usize,
    failures: Vec<String>,
}

impl Walk {
    fn new(r: &Rig, size: (f32, f32)) -> Walk {
        let theme = r.app.global::<Theme>();
        assert_eq!(
            (theme.get_window_width(), theme.get_window_height()),
            size,
            "the theme knows the window's size"
        );
        assert_eq!(theme.get_compact(), size.1 < 760.0, "compact below 760 px");
        Walk {
            size,
            touch: theme.get_touch(),
            strip_bottom: theme.get_banner_height() + theme.get_strip_height(),
            last: None,
            states: 0,
            failures: vec![],
        }
    }

    fn snap(&mut self, r: &Rig, state: &str) {
        let screen = r.screen();
        let now = controls(&r.app);
        assert!(!now.is_empty(), "{state}: no controls found");
        let (w, h) = self.size;
        let tag = format!("{w}×{h} {state}");
        // every control whole, inside the window, at least a finger's size, label whole
        for c in &now {
            let (x, y, cw, ch) = c.rect;
            let inside_x = x > -0.5 && x + cw < w + 0.5;
            let inside_y = y > -0.5 && y + ch < h + 0.5;
            if !inside_x || (!inside_y && !in_scroll_list(c)) {
                self.failures.push(format!(
                    "{tag}: {:?} outside the window: {:?}",
                    c.label, c.rect
                ));
            }
            if cw.min(ch) + 0.5 < self.touch {
                self.failures.push(format!(
                    "{tag}: {:?} smaller than a finger ({} px): {:?}",
                    c.label, self.touch, c.rect
                ));
            }
            if c.clipped {
                self.failures
                    .push(format!("{tag}: {:?}'s label is cut: {:?}", c.label, c.rect));
            }
        }
        // no two controls on top of each other (the trainer panel is an overlay by design)
        if !r.api().get_trainer_open() {
            for (i, a) in now.iter().enumerate() {
                for b in &now[i + 1..] {
                    if overlaps(a.rect, b.rect) && !in_scroll_list(a) && !in_scroll_list(b) {
                        self.failures.push(format!(
                            "{tag}: {:?} {:?} overlaps {:?} {:?}",
                            a.label, a.rect, b.label, b.rect
                        ));
                    }
                }
            }
        }
        for t in clipped_texts(&r.app) {
            self.failures.push(format!("{tag}: text cut: {t}"));
        }
        // no screen has a field to type into: the tablet has no keyboard
        let typing = ElementQuery::from_root(&r.app)
            .match_descendants()
            .match_accessible_role(i_slint_backend_testing::AccessibleRole::TextInput)
            .find_all();
        if !typing.is_empty() {
            self.failures.push(format!(
                "{tag}: {} text field(s) need a keyboard",
                typing.len()
            ));
        }
        if let Some((prev_screen, prev_state, prev)) = &self.last {
            for c in &now {
                let before = prev.iter().find(|p| p.key == c.key);
                let same_screen = *prev_screen == screen;
                match before {
                    Some(p)
                        if (same_screen || c.rect.1 < self.strip_bottom)
                            && !same_place(p.rect, c.rect) =>
                    {
                        self.failures.push(format!(
                            "{tag}: {prev_state} → {state}: {:?} ({}) moved {:?} → {:?}",
                            c.key, c.label, p.rect, c.rect
                        ));
                    }
                    None if same_screen && c.enabled => {
                        // a control that appears must not stand where another one stood
                        for p in prev.iter().filter(|p| p.key != c.key) {
                            if overlaps(p.rect, c.rect) && !now.iter().any(|n| n.key == p.key) {
                                self.failures.push(format!(
                                    "{tag}: {prev_state} → {state}: {:?} appeared where {:?} was",
                                    c.label, p.label
                                ));
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        self.last = Some((screen, state.to_string(), now));
        self.states += 1;
    }
}

/// The panels a tablet meets (logical size = pixels / scale factor): the six panel sizes
/// at scale 1, and the two full-HD panels at scale 2 (and 1920×1200 at 1.5, which is
/// 1280×800).
const PANELS: [(&str, f32, f32); 8] = [
    ("1024×600", 1024.0, 600.0),
    ("1280×720", 1280.0, 720.0),
    ("1366×768", 1366.0, 768.0),
    ("1280×800", 1280.0, 800.0),
    ("1920×1080", 1920.0, 1080.0),
    ("1920×1200", 1920.0, 1200.0),
    ("1920×1080 @2", 960.0, 540.0),
    ("1920×1200 @2", 960.0, 600.0),
];

/// Every state of every screen at one window size.
fn walk_every_state(width: f32, height: f32) -> Walk {
    let mut r = Rig::with_size(width, height);
    let mut w = Walk::new(&r, (width, height));
    // sign-in: empty, a crew member chosen, PIN typed, wrong PIN, a long notice, a
    // department of a hundred
    w.snap(&r, "sign-in");
    r.tap(TRAINING_CREW_NAME);
    w.snap(&r, "sign-in crew chosen");
    for d in "9999".chars() {
        r.tap(&d.to_string());
    }
    w.snap(&r, "sign-in pin");
    r.tap("サインイン");
    w.snap(&r, "sign-in refused");
    r.api().set_notice(
        "操作がなかったためロックしました。再度サインインしてください。"
            .repeat(3)
            .into(),
    );
    w.snap(&r, "sign-in long notice");
    r.api().set_notice("".into());
    let roster = r.api().get_crew_list();
    r.api()
        .set_crew_list(slint::ModelRc::new(slint::VecModel::from(
            // the roster's first member stays first; 99 more below
            roster
                .iter()
                .take(1)
                .chain((1..100).map(|i| mynakyukyu::ui::CrewItem {
                    id: format!("EMT-{i:04}").into(),
                    name: format!("救急 隊員{i}").into(),
                }))
                .collect::<Vec<_>>(),
        )));
    w.snap(&r, "sign-in a hundred crew");
    r.api().set_crew_list(roster);
    r.pump();
    r.sign_in();
    w.snap(&r, "ready");
    // ready: a notice (card pulled), busy, retry offered
    let id = r.world.patient_id("P0031").unwrap();
    r.world.place_card(&id).unwrap();
    r.world.reader.remove_after_apdus(3);
    r.send(Command::CardPlaced);
    w.snap(&r, "ready card pulled");
    r.api().set_busy("資格を確認中…".into());
    w.snap(&r, "ready busy");
    r.api().set_offers_retry(true);
    r.api().set_notice_is_error(true);
    r.api()
        .set_notice("サーバーの応答が不正です。再送するか、閲覧を終了してください。".into());
    w.snap(&r, "ready retry offered");
    r.pump();
    w.snap(&r, "ready again");
    // a phone: its PIN screen empty, typed, a wrong PIN, then the patient cannot enter it
    r.hold_phone("diabetic-insulin", mynakyukyu::drill::Carrier::Android);
    w.snap(&r, "phone pin");
    for d in "0000".chars() {
        r.tap(&d.to_string());
    }
    w.snap(&r, "phone pin typed");
    r.tap("確認");
    w.snap(&r, "phone pin wrong");
    r.tap("本人が入力できない（意識なし等）");
    w.snap(&r, "phone unusable");
    r.tap("終了");
    w.snap(&r, "ready after the phone");
    // consent: unconfirmed, PIN pad open with its messages, confirmed, busy, waiting
    r.place_card("diabetic-insulin");
    w.snap(&r, "consent");
    r.tap("写真で確認できない → 暗証番号");
    w.snap(&r, "consent pin pad");
    for d in "0000".chars() {
        r.tap(&d.to_string());
    }
    w.snap(&r, "consent pin typed");
    r.tap("確認");
    w.snap(&r, "consent pin wrong");
    r.api().set_pin_confirm_last_try(true);
    r.api().set_pin_message(
        "残り1回です。間違えるとカードがロックされます。確認してもう一度押してください".into(),
    );
    w.snap(&r, "consent pin last try");
    r.pump();
    r.tap("写真確認に戻る");
    r.pump();
    w.snap(&r, "consent pin closed");
    r.tap("顔写真と本人が一致");
    w.snap(&r, "consent confirmed");
    r.api().set_busy("救急用サマリーを照会中…".into());
    w.snap(&r, "consent busy");
    r.api().set_waiting_for_link(true);
    r.api()
        .set_busy("回線待ち — 記録は保持され、回線復旧後に自動で再送します".into());
    r.api().set_notice(
        "回線が切れています。記録は保存済みです。回線が戻ると自動で再送します。".into(),
    );
    w.snap(&r, "consent waiting for the line");
    r.api().set_case_closed(true);
    r.api().set_offers_retry(true);
    w.snap(&r, "consent failed, retry offered");
    r.pump();
    w.snap(&r, "consent confirmed again");
    r.tap("拒否");
    w.snap(&r, "consent refused (case closed)");
    r.tap("終了して次の患者へ");
    w.snap(&r, "ready after refusal");
    r.place_card("opt-out");
    w.snap(&r, "consent opt-out");
    r.tap("終了して次の患者へ");
    // summary and full data: notes, correction panel, explanation owed and handed
    r.place_card("elderly-warfarin");
    w.snap(&r, "consent 2");
    r.tap("顔写真と本人が一致");
    w.snap(&r, "consent 2 confirmed");
    r.tap("同意取得困難（意識障害等）");
    w.snap(&r, "summary, explanation owed");
    r.tap("同意を訂正");
    w.snap(&r, "summary correction panel");
    r.tap("訂正しない");
    w.snap(&r, "summary correction closed");
    r.tap("説明書を渡した");
    w.snap(&r, "summary explanation handed");
    r.tap("全量版を見る");
    w.snap(&r, "full data");
    r.tap("同意を訂正");
    w.snap(&r, "full data correction panel");
    r.tap("口頭同意ありに訂正");
    w.snap(&r, "full data corrected");
    r.tap("サマリーに戻る");
    w.snap(&r, "summary corrected");
    r.tap("閲覧終了");
    w.snap(&r, "ready after viewing");
    r.place_card("invalid-coverage");
    r.tap("顔写真と本人が一致");
    r.tap("口頭同意あり");
    w.snap(&r, "summary, most recent valid coverage");
    r.tap("閲覧終了");
    r.tap("訓練操作");
    w.snap(&r, "trainer panel");
    r.tap("訓練操作");
    r.tap("サインアウト");
    w.snap(&r, "signed out");
    w
}

#[test]
fn no_control_moves_under_a_finger_in_any_state_of_any_screen_at_any_panel_size() {
    let mut states = 0;
    let mut failures = vec![];
    for (panel, width, height) in PANELS {
        let w = walk_every_state(width, height);
        assert!(w.states >= 36, "{panel}: {} states walked", w.states);
        states += w.states;
        failures.extend(w.failures.into_iter().map(|f| format!("[{panel}] {f}")));
    }
    assert!(
        failures.is_empty(),
        "{} problems:\n{}",
        failures.len(),
        failures.join("\n")
    );
    common::reliability_row(
        "ui-geometry",
        "UI",
        "every screen walked through its states (sign-in with a crew chosen, errors and a hundred crew, ready notices and retry, consent with PIN pad, busy, waiting for the line, case closed, summary and full data with correction panel and explanation) at 1024×600, 1280×720, 1366×768, 1280×800, 1920×1080, 1920×1200 and the full-HD panels at scale 2 (960×540, 960×600); every button's place compared between consecutive states; every button inside the window, at least the theme's touch size, not overlapping another, its label whole; no text clipped; no text field",
        states,
        0,
        "no control moved, overlapped, left the window or lost its label; no text cut; nothing to type into",
    );
}

#[test]
fn an_android_phone_takes_the_smartphone_pin_first_and_never_offers_consent_unobtainable() {
    let mut r = Rig::new();
    r.sign_in();
    r.hold_phone("diabetic-insulin", mynakyukyu::drill::Carrier::Android);
    assert_eq!(r.screen(), Screen::Phone);
    assert!(r.shows("患者さんに、スマホ用の暗証番号（4桁）を入力してもらってください"));
    assert!(
        !r.api().get_has_patient(),
        "nothing of the patient before the PIN"
    );
    assert!(!r.enabled("確認"), "確認 before four digits");
    for d in "1234".chars() {
        r.tap(&d.to_string());
    }
    r.tap("確認");
    assert_eq!(r.screen(), Screen::Consent);
    assert!(r.api().get_has_patient());
    assert!(
        r.shows("✓ スマホの暗証番号で本人確認済み"),
        "{:?}",
        r.api().get_identity_confirmed()
    );
    // no photo, no 同意取得困難: only the patient's own answer or a refusal
    assert!(!r.enabled("同意取得困難（スマホでは不可）"));
    assert!(r.find("同意取得困難（意識障害等）").is_empty());
    assert!(
        !r.enabled("写真で確認できない → 暗証番号") && !r.enabled("写真なし（スマートフォン）")
    );
    r.tap("口頭同意あり");
    assert_eq!(r.screen(), Screen::Summary);
    let rows = records(&r);
    let audits: Vec<_> = rows.iter().filter(|x| x.record == "audit").collect();
    assert!(!audits.is_empty());
    assert!(
        audits.iter().all(|x| x.token == "android_phone"),
        "{rows:?}"
    );
    assert!(
        audits
            .iter()
            .filter(|x| x.action.starts_with("view"))
            .all(|x| x.identity_check == "pin")
    );
}

#[test]
fn an_unconscious_patients_phone_shows_one_line_and_only_the_end() {
    let mut r = Rig::new();
    r.sign_in();
    r.hold_phone("elderly-warfarin", mynakyukyu::drill::Carrier::Android);
    assert_eq!(r.screen(), Screen::Phone);
    r.tap("本人が入力できない（意識なし等）");
    assert!(r.shows("スマートフォンは本人の暗証番号がないと読めません。意識のない方には使えません。終了してください。"));
    // nothing else to tap: the pad, 確認 and the button itself are disabled in place
    for label in ["1", "0", "確認", "本人が入力できない（意識なし等）"] {
        assert!(!r.enabled(label), "{label} enabled");
    }
    assert!(r.find("同意取得困難（意識障害等）").is_empty());
    r.tap("終了");
    assert_eq!(r.screen(), Screen::Ready);
    assert!(records(&r).is_empty(), "nothing recorded");
}

#[test]
fn a_locked_iphone_asks_the_crew_for_the_owners_face_id_in_one_line() {
    let mut r = Rig::new();
    r.sign_in();
    r.hold_phone("diabetic-insulin", mynakyukyu::drill::Carrier::IosLocked);
    assert_eq!(r.screen(), Screen::Ready);
    assert!(r.shows(
        "iPhoneです。持ち主の方にFace ID / Touch IDで認証してもらい、もう一度かざしてください。"
    ));
    assert!(!r.api().get_has_patient());
    // the owner unlocked it and holds it out again: read with no PIN, signed by the phone
    r.world.reader.remove();
    r.hold_phone("diabetic-insulin", mynakyukyu::drill::Carrier::Ios);
    assert_eq!(r.screen(), Screen::Consent);
    assert!(r.shows("✓ iPhoneの生体認証で本人確認済み"));
    r.tap("口頭同意あり");
    assert_eq!(r.screen(), Screen::Summary);
    let rows = records(&r);
    assert!(
        rows.iter()
            .filter(|x| x.record == "audit" && x.action.starts_with("view"))
            .all(|x| x.token == "iphone" && x.identity_check == "phone_biometric"),
        "{rows:?}"
    );
}

#[test]
fn no_clinical_text_is_cut_for_any_simulated_patient_on_the_smallest_window() {
    // the smallest window a tablet gives (a full-HD panel at scale 2): every patient of the
    // simulator read, viewed and shown in full, every text checked against its box
    let (width, height) = (960.0, 540.0);
    let mut r = Rig::with_size(width, height);
    r.sign_in();
    let mut viewed = 0;
    let mut failures = vec![];
    for n in 1..=mynakyukyu::sim::patients::DEFAULT_POPULATION {
        let id = format!("P{n:04}");
        if r.world.patient_id(&id).is_none() {
            continue;
        }
        r.world.place_card(&id).unwrap();
        r.send(Command::CardPlaced);
        if r.enabled("顔写真と本人が一致") {
            r.tap("顔写真と本人が一致");
        }
        if r.enabled("口頭同意あり") {
            r.tap("口頭同意あり");
        }
        for t in clipped_texts(&r.app) {
            failures.push(format!("{id} {:?}: {t}", r.screen()));
        }
        if r.screen() == Screen::Summary {
            viewed += 1;
            r.tap("全量版を見る");
            for t in clipped_texts(&r.app) {
                failures.push(format!("{id} full data: {t}"));
            }
            r.tap("閲覧終了");
        } else {
            for end in ["終了して次の患者へ", "中止して終了", "終了"] {
                if r.enabled(end) {
                    r.tap(end);
                    break;
                }
            }
        }
        // the crew takes the card back before the next patient
        r.send(Command::CardRemoved);

        assert_eq!(
            r.screen(),
            Screen::Ready,
            "{id}: back to Ready: {:?}",
            r.controller.view().notice
        );
    }
    assert!(viewed >= 20, "only {viewed} patients viewed");
    assert!(
        failures.is_empty(),
        "text cut at {width}×{height}:\n{}",
        failures.join("\n")
    );
}

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
