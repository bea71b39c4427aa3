//! The Slint side: the screens in `ui/*.slint`, compiled by build.rs. This module copies
//! the controller's [`ViewModel`] into the `Api` global and turns the screens' callbacks
//! into [`Command`]s. The controller runs on a tokio worker and pushes view models here
//! with `upgrade_in_event_loop`, so the UI thread never waits for a card or the network.

pub mod headless;

use crate::app::Command;
use crate::app::view::{self, Level as VLevel, Screen as VScreen, ViewModel};
use crate::domain::ConsentDecision;
use crate::drill::{self, world::TrainingWorld};
use crate::sim::proxy::LinkState;
use slint::{ComponentHandle, ModelRc, SharedString, VecModel};
use std::rc::Rc;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

slint::include_modules!();

/// What the trainer panel can do (training mode only).
pub trait Trainer: Send + Sync {
    fn scenarios(&self) -> Vec<String>;
    fn place_card(&self, scenario: &str) -> String;
    fn remove_card(&self) -> String;
    fn line_drop(&self) -> String;
    fn line_restore(&self) -> String;
}

fn s(text: &str) -> SharedString {
    SharedString::from(text)
}

fn level(l: VLevel) -> Level {
    match l {
        VLevel::Ok => Level::Ok,
        VLevel::Warn => Level::Warn,
        VLevel::Error => Level::Error,
    }
}

fn sections(list: &[view::Section]) -> ModelRc<Section> {
    let v: Vec<Section> = list
        .iter()
        .map(|sec| Section {
            title: s(&sec.title),
            window: s(&sec.window),
            rows: ModelRc::from(Rc::new(VecModel::from(
                sec.rows
                    .iter()
                    .map(|r| Row {
                        date: s(&r.date),
                        text: s(&r.text),
                        detail: s(&r.detail),
                        alert: r.alert,
                    })
                    .collect::<Vec<_>>(),
            ))),
        })
        .collect();
    ModelRc::from(Rc::new(VecModel::from(v)))
}

/// The trainer panel's actions on the training world (the simulator's cards, the line).
pub struct TrainingPanel {
    pub world: Arc<TrainingWorld>,
    pub commands: tokio::sync::mpsc::Sender<Command>,
}

impl Trainer for TrainingPanel {
    fn scenarios(&self) -> Vec<String> {
        drill::scenario_names()
            .iter()
            .map(|s| s.to_string())
            .collect()
    }
    fn place_card(&self, name: &str) -> String {
        let placed = drill::scenario(name)
            .map_err(|e| e.to_string())
            .and_then(|s| {
                self.world
                    .patient_id(&s.patient)
                    .ok_or_else(|| format!("no patient {}", s.patient))
            })
            .and_then(|id| self.world.place_card(&id).map_err(|e| e.to_string()));
        match placed {
            Ok(()) => {
                let _ = self.commands.try_send(Command::CardPlaced);
                format!("{name}: カードを置きました")
            }
            Err(e) => format!("失敗: {e}"),
        }
    }
    fn remove_card(&self) -> String {
        self.world.reader.remove();
        let _ = self.commands.try_send(Command::CardRemoved);
        "カードを外しました".into()
    }
    fn line_drop(&self) -> String {
        self.world.set_line(LinkState::Down);
        "回線断（プローブが検知すると表示が変わります）".into()
    }
    fn line_restore(&self) -> String {
        self.world.set_line(LinkState::Up);
        "回線復旧".into()
    }
}

/// Copy a view model into the `Api` global. Every patient field is overwritten, so a view
/// model without a patient clears the screen's copy.
pub fn apply(app: &AppWindow, vm: &ViewModel) {
    let api = app.global::<Api>();
    api.set_screen(match vm.screen {
        VScreen::SignIn => Screen::SignIn,
        VScreen::Ready => Screen::Ready,
        VScreen::Consent => Screen::Consent,
        VScreen::Summary => Screen::Summary,
        VScreen::FullData => Screen::FullData,
    });
    api.set_crew(s(&vm.crew));
    let st = &vm.status;
    api.set_status(Status {
        training: st.training,
        line: s(&st.line),
        line_level: level(st.line_level),
        tunnel: s(&st.tunnel),
        tunnel_level: level(st.tunnel_level),
        server: s(&st.server),
        server_level: level(st.server_level),
        certificate: s(&st.certificate),
        certificate_level: level(st.certificate_level),
        queued: i32::try_from(st.queued).unwrap_or(i32::MAX),
        last_sync: s(&st.last_sync),
        sync_level: level(st.sync_level),
    });
    api.set_busy(s(&vm.busy));
    api.set_notice(s(&vm.notice));
    api.set_notice_is_error(vm.notice_is_error);
    api.set_offers_retry(vm.offers_retry);
    api.set_sign_in_error(s(&vm.sign_in_error));
    api.set_has_patient(vm.has_patient);
    let p = &vm.patient;
    api.set_patient(Patient {
        name: s(&p.name),
        kana: s(&p.kana),
        birth: s(&p.birth),
        age: s(&p.age),
        sex: s(&p.sex),
        insurer: s(&p.insurer),
        coverage_note: s(&p.coverage_note),
    });
    api.set_identity_confirmed(s(&vm.identity_confirmed));
    if !vm.identity_confirmed.is_empty() || vm.screen != VScreen::Consent {
        api.set_pin_entry_open(false);
    } else if !vm.pin.message.is_empty() {
        api.set_pin_entry_open(true); // a PIN answer is shown where the PIN was entered
    }
    api.set_consent(s(&vm.consent));
    api.set_case_closed(vm.case_closed);
    api.set_waiting_for_link(vm.waiting_for_link);
    api.set_pin_message(s(&vm.pin.message));
    api.set_pin_confirm_last_try(vm.pin.confirm_last_try);
    api.set_pin_blocked(vm.pin.blocked);
    api.set_alerts(ModelRc::from(Rc::new(VecModel::from(
        vm.alerts.iter().map(|a| s(a)).collect::<Vec<_>>(),
    ))));
    api.set_last_visit(s(&vm.last_visit));
    api.set_summary(sections(&vm.summary));
    api.set_full(sections(&vm.full));
}

/// Wire the screens' callbacks to the controller's command channel (and the trainer).
pub fn bind(app: &AppWindow, commands: mpsc::Sender<Command>, trainer: Option<Arc<dyn Trainer>>) {
    let api = app.global::<Api>();
    api.set_version(s(env!("CARGO_PKG_VERSION")));
    let send = move |c: Command| {
        if let Err(e) = commands.try_send(c) {
            tracing::warn!(error = %e, "command dropped (controller busy or gone)");
        }
    };
    let tx = send.clone();
    api.on_sign_in(move |id, pin| {
        tx(Command::SignIn {
            crew_id: id.to_string(),
            pin: pin.to_string(),
        })
    });
    let tx = send.clone();
    api.on_sign_out(move || tx(Command::SignOut));
    let tx = send.clone();
    api.on_confirm_photo(move || tx(Command::ConfirmPhoto));
    let tx = send.clone();
    api.on_enter_pin(move |pin, confirm| {
        tx(Command::EnterPin {
            pin: pin.to_string(),
            confirm_last_try: confirm,
        })
    });
    let tx = send.clone();
    api.on_consent_chosen(move |choice| {
        tx(Command::Consent(match choice {
            ConsentChoice::Verbal => ConsentDecision::Verbal,
            ConsentChoice::Unobtainable => ConsentDecision::Unobtainable,
            ConsentChoice::Refused => ConsentDecision::Refused,
        }))
    });
    let tx = send.clone();
    api.on_view_full(move || tx(Command::ViewFullData));
    let tx = send.clone();
    api.on_back_to_summary(move || tx(Command::BackToSummary));
    let tx = send.clone();
    api.on_end_viewing(move || tx(Command::EndViewing));
    let tx = send;
    api.on_retry(move || tx(Command::Retry));

    let Some(trainer) = trainer else { return };
    api.set_scenarios(ModelRc::from(Rc::new(VecModel::from(
        trainer.scenarios().iter().map(|n| s(n)).collect::<Vec<_>>(),
    ))));
    let weak = app.as_weak();
    let report = move |msg: String| {
        if let Some(app) = weak.upgrade() {
            app.global::<Api>().set_trainer_message(s(&msg));
        }
    };
    let (t, r) = (trainer.clone(), report.clone());
    api.on_trainer_place_card(move |name| r(t.place_card(&name)));
    let (t, r) = (trainer.clone(), report.clone());
    api.on_trainer_remove_card(move || r(t.remove_card()));
    let (t, r) = (trainer.clone(), report.clone());
    api.on_trainer_line_drop(move || r(t.line_drop()));
    let (t, r) = (trainer, report);
    api.on_trainer_line_restore(move || r(t.line_restore()));
}

/// Forward every new view model to the window, from a tokio task, through Slint's event
/// loop. Ends when the controller or the window is gone.
pub async fn forward_views(mut views: watch::Receiver<ViewModel>, app: slint::Weak<AppWindow>) {
    loop {
        let vm = views.borrow_and_update().clone();
        if app
            .upgrade_in_event_loop(move |app| apply(&app, &vm))
            .is_err()
        {
            return;
        }
        if views.changed().await.is_err() {
            return;
        }
    }
}
