//! The Slint side: the screens in `ui/*.slint`, compiled by build.rs. This module copies
//! the controller's [`ViewModel`] into the `Api` global and turns the screens' callbacks
//! into [`Command`]s. The controller runs on a tokio worker and pushes view models here
//! with `upgrade_in_event_loop`, so the UI thread never waits for a card or the network.
//!
//! The tap guard: a crew command from the screen is ignored for [`TAP_GUARD`] after the
//! screen changed (a new view model that differs on screen, or a panel opened or closed).
//! A tap that was already on its way when the screen changed lands on what the crew did
//! not see, so it must not count; see docs/ARCHITECTURE.md for the figure.

pub mod headless;

use crate::app::view::handoff::{AnswerKind, HandoffView};
use crate::app::view::{self, Level as VLevel, Screen as VScreen, ViewModel};
use crate::app::{Command, HandoffCommand};
use crate::domain::{ConsentDecision, UnobtainableReason};
use crate::drill::world::LinkState;
use crate::drill::{self, world::TrainingWorld};
use crate::handoff::crew::{Input, VitalField};
use crate::handoff::{Complaint, HospitalCode, Modifier};
use slint::{ComponentHandle, ModelRc, SharedString, VecModel};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

slint::include_modules!();

/// How long crew commands are ignored after the screen changed. 500 ms: longer than a
/// double tap (Windows' default double-click time is 500 ms, Android's double-tap timeout
/// 300 ms) and about twice the time a person needs to see a change and stop a tap already
/// under way (perceive + decide + move ≈ 240 ms in Card, Moran & Newell's Model Human
/// Processor).
pub const TAP_GUARD: Duration = Duration::from_millis(500);

/// When the screen last changed, on the UI thread.
struct Guard {
    window: Duration,
    last_screen: Option<ViewModel>,
    changed_at: Option<Instant>,
    ignored: usize,
}

thread_local! {
    static GUARD: RefCell<Guard> = const {
        RefCell::new(Guard {
            window: TAP_GUARD,
            last_screen: None,
            changed_at: None,
            ignored: 0,
        })
    };
}

/// Mark the screen as changed now.
fn screen_changed() {
    GUARD.with_borrow_mut(|g| g.changed_at = Some(Instant::now()));
}

/// Whether a crew command may go through now; counts the ones it stops.
fn guard_allows(command: &str) -> bool {
    GUARD.with_borrow_mut(|g| {
        let allowed = g.changed_at.is_none_or(|t| t.elapsed() >= g.window);
        if !allowed {
            g.ignored += 1;
            tracing::info!(
                command,
                guard_ms = g.window.as_millis() as u64,
                "tap ignored: the screen changed under it"
            );
        }
        allowed
    })
}

/// How many taps the guard ignored on this thread (tests, the drill debrief).
pub fn taps_ignored() -> usize {
    GUARD.with_borrow(|g| g.ignored)
}

/// Note a new view model: the screen changed if anything but the status strip did.
fn note_view(vm: &ViewModel) {
    GUARD.with_borrow_mut(|g| {
        let mut screen = vm.clone();
        screen.status = Default::default();
        if g.last_screen.as_ref() != Some(&screen) {
            g.last_screen = Some(screen);
            g.changed_at = Some(Instant::now());
        }
    });
}

/// What the trainer panel can do (training mode only).
pub trait Trainer: Send + Sync {
    /// (name, Japanese title) of every scenario.
    fn scenarios(&self) -> Vec<(String, String)>;
    fn place_card(&self, scenario: &str) -> String;
    fn remove_card(&self) -> String;
    fn line_drop(&self) -> String;
    fn line_restore(&self) -> String;
    /// Answer the newest request to a training hospital as its staff would (0 受入可,
    /// 1 受入不可, 2 要電話).
    fn answer_as(&self, hospital: &str, answer: i32) -> String;
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
    /// Where the trainer's answers as a hospital run (the UI thread is not on tokio).
    pub runtime: tokio::runtime::Handle,
}

impl Trainer for TrainingPanel {
    fn scenarios(&self) -> Vec<(String, String)> {
        drill::scenario_names()
            .iter()
            .map(|name| {
                let title = drill::scenario(name)
                    .map(|s| s.title)
                    .unwrap_or_else(|_| name.to_string());
                (name.to_string(), title)
            })
            .collect()
    }
    fn place_card(&self, name: &str) -> String {
        let placed = drill::scenario(name)
            .map_err(|e| e.to_string())
            .and_then(|s| {
                self.world
                    .patient_id(&s.patient)
                    .map(|id| (id, s.carrier))
                    .ok_or_else(|| format!("no patient {}", s.patient))
            })
            .and_then(|(id, carrier)| {
                self.world
                    .place(&id, carrier)
                    .map(|()| carrier)
                    .map_err(|e| e.to_string())
            });
        match placed {
            Ok(carrier) => {
                let _ = self.commands.try_send(Command::CardPlaced);
                if carrier == drill::Carrier::Card {
                    format!("{name}: カードを置きました")
                } else {
                    format!("{name}: スマートフォンをかざしました")
                }
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
    fn answer_as(&self, hospital: &str, answer: i32) -> String {
        use crate::handoff::{Answer, DeclineReason};
        let answer = match answer {
            0 => Answer::Accept,
            1 => Answer::Decline {
                reason: DeclineReason::InTreatment,
            },
            _ => Answer::CallUs {
                phone: crate::hub::training::TRAINING_ER_PHONE.into(),
            },
        };
        let label = answer.label_ja();
        let core = self.world.hub.hub.core.clone();
        let code = HospitalCode(hospital.to_string());
        self.runtime.spawn(async move {
            if let Err(e) = crate::hub::training::answer_newest(&core, &code, answer).await {
                tracing::info!(error = %e, "trainer's answer not taken");
            }
        });
        format!("{hospital}: {label} と回答")
    }
}

fn handoff_view(h: &HandoffView) -> Handoff {
    let model = |v: Vec<HandoffChoice>| ModelRc::from(Rc::new(VecModel::from(v)));
    let choices = |list: &[view::handoff::Choice]| {
        model(
            list.iter()
                .map(|c| HandoffChoice {
                    label: s(&c.label),
                    on: c.on,
                })
                .collect(),
        )
    };
    let stepper = |st: &view::handoff::Stepper| HandoffStepper {
        label: s(&st.label),
        value: s(&st.value),
    };
    // the screens index the presets and the vitals: the lists are whole even with no flow
    let empty = crate::app::view::handoff::Stepper::default();
    let vitals: Vec<HandoffStepper> = (0..VitalField::ALL.len())
        .map(|i| stepper(h.vitals.get(i).unwrap_or(&empty)))
        .collect();
    Handoff {
        open: h.open,
        with_card: h.with_card,
        complaints: choices(&h.complaints),
        modifiers: choices(&h.modifiers),
        jcs: stepper(&h.jcs),
        vitals: ModelRc::from(Rc::new(VecModel::from(vitals))),
        vitals_summary: s(&h.vitals_summary),
        onset: s(&h.onset),
        eta: s(&h.eta),
        age_band: s(&h.age_band),
        sex: s(&h.sex),
        can_choose: h.can_choose,
        hospitals: ModelRc::from(Rc::new(VecModel::from(
            h.hospitals
                .iter()
                .map(|x| HandoffHospital {
                    code: s(&x.code),
                    name: s(&x.name),
                    departments: s(&x.departments),
                    regular: x.regular,
                    selected: x.selected,
                })
                .collect::<Vec<_>>(),
        ))),
        selected: i32::try_from(h.selected).unwrap_or(0),
        candidates: ModelRc::from(Rc::new(VecModel::from(
            h.candidates
                .iter()
                .map(|c| HandoffCandidate {
                    code: s(&c.code),
                    name: s(&c.name),
                    answer: s(&c.answer),
                    kind: match c.kind {
                        AnswerKind::Waiting => 0,
                        AnswerKind::Accept => 1,
                        AnswerKind::Decline => 2,
                        AnswerKind::CallUs => 3,
                    },
                    at: s(&c.at),
                    late: c.late,
                    chosen: c.chosen,
                    can_decide: c.can_decide,
                })
                .collect::<Vec<_>>(),
        ))),
        sending: h.sending,
        can_ask_more: h.can_ask_more,
        accept_waiting: h.accept_waiting,
        decided: h.decided,
        arrived: h.arrived,
        chosen: s(&h.chosen),
        chosen_status: s(&h.chosen_status),
        notice: s(&h.notice),
        notice_is_error: h.notice_is_error,
    }
}

fn decision(choice: ConsentChoice) -> ConsentDecision {
    match choice {
        ConsentChoice::Verbal => ConsentDecision::Verbal,
        ConsentChoice::Unobtainable => ConsentDecision::Unobtainable,
        ConsentChoice::Refused => ConsentDecision::Refused,
    }
}

fn reason(reason: NoConsentReason) -> Option<UnobtainableReason> {
    match reason {
        NoConsentReason::None => None,
        NoConsentReason::Unconscious => Some(UnobtainableReason::Unconscious),
        NoConsentReason::CannotCommunicate => Some(UnobtainableReason::CannotCommunicate),
        NoConsentReason::LacksCapacity => Some(UnobtainableReason::LacksCapacity),
        NoConsentReason::Other => Some(UnobtainableReason::Other),
    }
}

/// Give the theme the window's logical size, so every screen takes the sizes of the panel
/// it is on (compact below 760 px, narrow below 1200 px).
pub fn fit_theme_to_window(app: &AppWindow) {
    let window = app.window();
    let size = window.size().to_logical(window.scale_factor());
    let theme = app.global::<Theme>();
    if size.width <= 0.0 || size.height <= 0.0 {
        return;
    }
    let changed = (theme.get_window_width() - size.width).abs() > 0.5
        || (theme.get_window_height() - size.height).abs() > 0.5;
    if changed {
        theme.set_window_width(size.width);
        theme.set_window_height(size.height);
        window.request_redraw();
    }
}

/// Keep the theme fitted to the window while the returned timer lives. Slint has no resize
/// callback, so the window's size is looked at every 100 ms, outside any frame: a change
/// made while a frame is drawn (a `changed height` handler in the .slint) was drawn only in
/// part under cage, and the first screen kept the old sizes.
pub fn follow_window_size(app: &AppWindow) -> slint::Timer {
    fit_theme_to_window(app);
    let timer = slint::Timer::default();
    let weak = app.as_weak();
    timer.start(
        slint::TimerMode::Repeated,
        Duration::from_millis(100),
        move || {
            if let Some(app) = weak.upgrade() {
                fit_theme_to_window(&app);
            }
        },
    );
    timer
}

/// Copy a view model into the `Api` global. Every patient field is overwritten, so a view
/// model without a patient clears the screen's copy.
/// The stop screen: one Japanese line over everything, no control (see `app::device`).
pub fn show_stopped(app: &AppWindow, message: &str) {
    let api = app.global::<Api>();
    api.set_version(s(env!("CARGO_PKG_VERSION")));
    api.set_stopped(s(message));
}

pub fn apply(app: &AppWindow, vm: &ViewModel) {
    note_view(vm);
    let api = app.global::<Api>();
    api.set_claims_caveat(s(view::CLAIMS_CAVEAT));
    api.set_training_crew(if vm.status.training {
        s(&format!(
            "訓練用: {}　PIN {}",
            drill::world::TRAINING_CREW_NAME,
            drill::world::TRAINING_CREW_PIN
        ))
    } else {
        SharedString::new()
    });
    api.set_screen(match vm.screen {
        VScreen::SignIn => Screen::SignIn,
        VScreen::Ready => Screen::Ready,
        VScreen::Phone => Screen::Phone,
        VScreen::Consent => Screen::Consent,
        VScreen::Summary => Screen::Summary,
        VScreen::FullData => Screen::FullData,
        VScreen::HandoffFindings => Screen::HandoffFindings,
        VScreen::HandoffVitals => Screen::HandoffVitals,
        VScreen::HandoffHospitals => Screen::HandoffHospitals,
        VScreen::HandoffAnswers => Screen::HandoffAnswers,
    });
    api.set_hub_available(vm.hub_available);
    api.set_handoff(handoff_view(&vm.handoff));
    api.set_crew(s(&vm.crew));
    api.set_crew_list(ModelRc::from(Rc::new(VecModel::from(
        vm.crew_list
            .iter()
            .map(|m| CrewItem {
                id: s(&m.id),
                name: s(&m.name),
            })
            .collect::<Vec<_>>(),
    ))));
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
        public_payer: s(&p.public_payer),
        recipient: s(&p.recipient),
    });
    api.set_identity_confirmed(s(&vm.identity_confirmed));
    api.set_phone(s(&vm.phone));
    api.set_phone_unusable(vm.phone_unusable);
    api.set_photo_offered(vm.photo_offered);
    api.set_unobtainable_offered(vm.unobtainable_offered);
    if !vm.identity_confirmed.is_empty() || vm.screen != VScreen::Consent || !vm.photo_offered {
        api.set_pin_entry_open(false);
    } else if !vm.pin.message.is_empty() && api.get_pin_message() != vm.pin.message.as_str() {
        // a new PIN answer is shown where the PIN was entered; a pad the crew closed stays
        // closed when the same answer comes again with the next view model
        api.set_pin_entry_open(true);
    }
    if vm.screen != VScreen::Consent || !vm.consent.is_empty() {
        api.set_reason_picker_open(false);
    }
    api.set_consent(s(&vm.consent));
    api.set_consent_correction(s(&vm.consent_correction));
    api.set_can_correct(!vm.corrections.is_empty());
    if vm.corrections.is_empty() {
        api.set_correction_open(false);
    }
    if !api.get_correction_open() {
        api.set_correction_reason_open(false);
    }
    api.set_current_consent(
        match [
            ConsentDecision::Verbal,
            ConsentDecision::Unobtainable,
            ConsentDecision::Refused,
        ]
        .into_iter()
        .find(|d| !vm.corrections.contains(d))
        {
            Some(ConsentDecision::Unobtainable) => ConsentChoice::Unobtainable,
            Some(ConsentDecision::Refused) => ConsentChoice::Refused,
            _ => ConsentChoice::Verbal,
        },
    );
    api.set_explanation_owed(vm.explanation_owed);
    api.set_explanation_contact(s(&vm.explanation_contact));
    api.set_explanation_handed(vm.explanation_handed);
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
/// The tap guard is [`TAP_GUARD`]; see [`bind_with_guard`].
pub fn bind(app: &AppWindow, commands: mpsc::Sender<Command>, trainer: Option<Arc<dyn Trainer>>) {
    bind_with_guard(app, commands, trainer, TAP_GUARD);
}

/// [`bind`] with another tap guard (tests that press by accessible label use zero; the
/// guard's own tests and the real window keep [`TAP_GUARD`]).
pub fn bind_with_guard(
    app: &AppWindow,
    commands: mpsc::Sender<Command>,
    trainer: Option<Arc<dyn Trainer>>,
    guard: Duration,
) {
    GUARD.with_borrow_mut(|g| g.window = guard);
    let api = app.global::<Api>();
    api.set_version(s(env!("CARGO_PKG_VERSION")));
    api.on_local_change(screen_changed);
    let send = move |c: Command| {
        // every crew command from the screen is guarded; the trainer's are not
        if !guard_allows(c.name()) {
            return;
        }
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
    api.on_patient_cannot_enter(move || tx(Command::PatientCannotEnterPin));
    let tx = send.clone();
    api.on_consent_chosen(move |choice, why| tx(Command::Consent(decision(choice), reason(why))));
    let tx = send.clone();
    api.on_correct_consent(move |choice, why| {
        tx(Command::CorrectConsent(decision(choice), reason(why)))
    });
    let tx = send.clone();
    api.on_hand_explanation(move || tx(Command::ExplanationHanded));
    let tx = send.clone();
    api.on_view_full(move || tx(Command::ViewFullData));
    let tx = send.clone();
    api.on_back_to_summary(move || tx(Command::BackToSummary));
    let tx = send.clone();
    api.on_end_viewing(move || tx(Command::EndViewing));
    let tx = send.clone();
    api.on_retry(move || tx(Command::Retry));
    let hand = |c: HandoffCommand| Command::Handoff(c);
    let tap = |i: Input| Command::Handoff(HandoffCommand::Tap(i));
    let tx = send.clone();
    api.on_handoff_open(move || tx(hand(HandoffCommand::Open)));
    let tx = send.clone();
    api.on_handoff_hide(move || tx(hand(HandoffCommand::Hide)));
    let tx = send.clone();
    api.on_handoff_end(move || tx(hand(HandoffCommand::End)));
    let tx = send.clone();
    api.on_handoff_vitals(move |open| tx(hand(HandoffCommand::Vitals(open))));
    let tx = send.clone();
    api.on_handoff_complaint(move |i| {
        if let Some(c) = usize::try_from(i).ok().and_then(|i| Complaint::ALL.get(i)) {
            tx(tap(Input::Complaint(*c)))
        }
    });
    let tx = send.clone();
    api.on_handoff_modifier(move |i| {
        if let Some(m) = usize::try_from(i).ok().and_then(|i| Modifier::ALL.get(i)) {
            tx(tap(Input::ToggleModifier(*m)))
        }
    });
    let dir = |d: i32| if d < 0 { -1 } else { 1 };
    let tx = send.clone();
    api.on_handoff_jcs(move |d| tx(tap(Input::StepJcs(dir(d)))));
    let tx = send.clone();
    api.on_handoff_vital(move |i, d| {
        if let Some(f) = usize::try_from(i).ok().and_then(|i| VitalField::ALL.get(i)) {
            tx(tap(Input::StepVital(*f, dir(d))))
        }
    });
    let tx = send.clone();
    api.on_handoff_onset(move |d| tx(tap(Input::StepOnset(dir(d)))));
    let tx = send.clone();
    api.on_handoff_eta(move |d| tx(tap(Input::StepEta(dir(d)))));
    let tx = send.clone();
    api.on_handoff_age(move |d| tx(tap(Input::StepAgeBand(dir(d)))));
    let tx = send.clone();
    api.on_handoff_sex(move || tx(tap(Input::CycleSex)));
    let tx = send.clone();
    api.on_handoff_to_hospitals(move || tx(tap(Input::ToHospitals)));
    let tx = send.clone();
    api.on_handoff_back(move || tx(tap(Input::BackToFindings)));
    let tx = send.clone();
    api.on_handoff_toggle(move |code| {
        tx(tap(Input::ToggleHospital(HospitalCode(code.to_string()))))
    });
    let tx = send.clone();
    api.on_handoff_send(move || tx(tap(Input::Send)));
    let tx = send.clone();
    api.on_handoff_decide(move |code| tx(tap(Input::Decide(HospitalCode(code.to_string())))));
    let tx = send.clone();
    api.on_handoff_eta_minus_5(move || tx(tap(Input::EtaMinus5)));
    let tx = send.clone();
    api.on_handoff_ask_more(move || tx(tap(Input::AskMore)));
    let tx = send.clone();
    api.on_handoff_arrived(move || tx(tap(Input::Arrived)));
    let tx = send;
    api.on_handoff_send_vitals(move || tx(tap(Input::SendVitals)));

    let Some(trainer) = trainer else { return };
    api.set_scenarios(ModelRc::from(Rc::new(VecModel::from(
        trainer
            .scenarios()
            .iter()
            .map(|(name, title)| ScenarioItem {
                name: s(name),
                title: s(title),
            })
            .collect::<Vec<_>>(),
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
    let (t, r) = (trainer.clone(), report.clone());
    api.on_trainer_line_restore(move || r(t.line_restore()));
    let (t, r) = (trainer, report);
    api.on_trainer_answer(move |code, answer| r(t.answer_as(&code, answer)));
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
