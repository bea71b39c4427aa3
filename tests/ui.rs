//! The screens driven through Slint's testing backend, with the real controller, the
//! in-process virtual reader and the simulator on loopback (the training world). Every tap
//! is an accessible action on the element a crew would touch, found by its label.

mod common;

use common::TempDir;
use i_slint_backend_testing::{ElementHandle, ElementQuery};
use mynakyukyu::app::view::Screen as VScreen;
use mynakyukyu::app::{Command, Controller};
use mynakyukyu::drill::world::{TRAINING_CREW, TRAINING_CREW_PIN, TrainingWorld};
use mynakyukyu::sim::proxy::LinkState;
use mynakyukyu::ui::{self, Api, AppWindow, Screen};
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
        i_slint_backend_testing::init_no_event_loop();
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
        ui::bind(&app, tx.clone(), Some(std::sync::Arc::new(panel)));
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

    fn crew_id_field(&self) -> ElementHandle {
        self.find("隊員ID")
            .into_iter()
            .find(|h| h.type_name().as_deref() == Some("TextField"))
            .expect("crew id field")
    }

    fn sign_in(&mut self) {
        assert_eq!(self.screen(), Screen::SignIn);
        self.crew_id_field().set_accessible_value(TRAINING_CREW);
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
    assert!(
        r.find("口頭同意あり").is_empty(),
        "no consent choice after an opt-out"
    );
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
    r.crew_id_field().set_accessible_value(TRAINING_CREW);
    for d in "9999".chars() {
        r.tap(&d.to_string());
    }
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
    r.tap("dialysis");
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
