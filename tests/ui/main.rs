//! The screens driven through Slint's testing backend, with the real controller, the
//! in-process virtual reader and the simulator on loopback (the training world). Every tap
//! is an accessible action on the element a crew would touch, found by its label.

#[path = "../common/mod.rs"]
mod common;

mod faults;
mod flow;
mod geometry;
mod handoff;
mod phones;

pub use common::TempDir;
pub use i_slint_backend_testing::{ElementHandle, ElementQuery};
pub use mynakyukyu::app::view::Screen as VScreen;
pub use mynakyukyu::app::{Command, Controller};
pub use mynakyukyu::drill::world::{TRAINING_CREW_NAME, TRAINING_CREW_PIN, TrainingWorld};
pub use mynakyukyu::sim::proxy::LinkState;
pub use mynakyukyu::ui::{self, Api, AppWindow, Screen, Theme};
pub use slint::{ComponentHandle, Model};
pub use tokio::sync::mpsc;

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
            runtime: rt.handle().clone(),
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

    /// Take the hub's answers as they come (the case's event stream) until `done` holds for
    /// the view model, then show it.
    fn wait(&mut self, done: impl Fn(&mynakyukyu::app::view::ViewModel) -> bool) {
        let held = self.rt.block_on(
            self.controller
                .wait_for(std::time::Duration::from_secs(20), done),
        );
        assert!(held, "not reached in 20 s: {:?}", self.controller.view());
        // the records it set off are written before the test reads them
        self.rt.block_on(self.controller.settle());
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

fn records(r: &Rig) -> Vec<mynakyukyu::admin::AuditRow> {
    r.world
        .store
        .records()
        .unwrap()
        .iter()
        .map(mynakyukyu::admin::audit_row)
        .collect()
}
