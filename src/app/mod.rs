//! The app controller: the session state machine wired to the real parts. It runs on a tokio
//! worker, takes the crew's commands (from the UI, a drill, or a test), carries out the
//! session's effects and publishes a fresh [`view::ViewModel`] after every event. It knows
//! nothing of Slint: the UI layer subscribes to the view model.
//!
//! The controller never waits for the card, the network or the disk: card reads and PIN
//! checks run on the blocking pool, requests (with the route check and a total deadline)
//! on tasks of their own, records on a store-writer thread that keeps their order. Each
//! outcome comes back to the loop as an [`Outcome`] and becomes a session event, so
//! 閲覧終了, a card removed, sign-out or the idle purge take effect at once even while a
//! request hangs; the session ignores the late answer by its incident id. A request waits
//! for the records queued before it (a barrier on the writer), so a consent record is on
//! disk before the inquiry that carries it leaves the tablet.

mod command;
mod crl_watch;
pub mod device;
mod effects;
mod handoff;
pub mod line;
mod pin;
pub mod reader;
mod status;
mod store_writer;
pub mod view;

use crate::card::CardError;
use crate::card::jpki::PinOutcome;
use crate::domain::{IdentityCheck, IncidentId, OperatorId, RecordBody, Timestamp};
use crate::eligibility::EligibilityClient;
use crate::eligibility::wire::QualificationResponse;
use crate::roster::SignInGate;
use crate::session::Effect;
use crate::session::{Event, Notice, Phase, ServiceFailure, Session, Station};
use crate::store::Store;
pub use command::{Command, HandoffCommand};
use line::{LinkProbe, RouteCheck, TunnelState};
use reader::CardReader;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use store_writer::StoreWriter;
use tokio::sync::{Notify, mpsc, watch};
use view::{Level, PinView, StatusStrip, ViewModel};

/// How this tablet behaves.
#[derive(Clone, Debug)]
pub struct Settings {
    pub station: Station,
    pub training: bool,
    /// Refuse patient-related requests unless the route to the endpoint is the tunnel.
    pub require_tunnel: bool,
    /// When the unit certificate ends, for the status strip (days are counted at every
    /// refresh: a tablet runs for weeks).
    pub unit_certificate_not_after: Option<Timestamp>,
    /// The data dir whose server CRL's next update the strip watches (re-read when the file
    /// changes); `None` in training.
    pub crl_data_dir: Option<std::path::PathBuf>,
    /// Records waiting longer than this for the line are a warning on the strip (0: never).
    pub unsynced_warning_days: u32,
    pub idle_lock: Duration,
    pub idle_end_viewing: Duration,
    /// The whole time a request may take, retries included; then it counts as a timeout
    /// (the session waits for the link and resends).
    pub request_deadline: Duration,
    /// The department's contact shown with the explanation reminder (empty: none set).
    pub explanation_contact: String,
    /// The unit's call-back number, in every 受入照会.
    pub callback: String,
    /// Calls to the hand-off hub are refused unless their route is the tunnel.
    pub hub_require_tunnel: bool,
}

/// The default total deadline of one request.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(10);

/// The parts the controller drives.
pub struct Ports {
    pub reader: Arc<dyn CardReader>,
    pub client: Arc<EligibilityClient>,
    pub store: Arc<Store>,
    /// Shared so that the PIN check (Argon2id, tens of ms) runs on the blocking pool.
    pub gate: Arc<std::sync::Mutex<SignInGate>>,
    pub route: Arc<dyn RouteCheck>,
    /// The endpoint's address, for the route check.
    pub endpoint_addr: Option<IpAddr>,
    /// Woken after every append so that the uploader sends at once.
    pub uploader_wake: Option<Arc<Notify>>,
    /// The hand-off hub (none: 「搬送先照会」 is not offered).
    pub hub: Option<Arc<crate::hub::client::HubClient>>,
    /// The hub's address, for the route check.
    pub hub_addr: Option<IpAddr>,
}

/// One line of the controller's journal (drill debriefs): no patient data.
#[derive(Clone, Debug, PartialEq)]
pub struct JournalEntry {
    pub at_ms: f64,
    pub what: String,
    /// A session event (not a note).
    pub event: bool,
    pub phase: &'static str,
    pub notice: Option<&'static str>,
}

pub struct Controller {
    session: Session,
    ports: Ports,
    settings: Settings,
    view: watch::Sender<ViewModel>,
    status: StatusStrip,
    pin: PinView,
    sign_in_error: String,
    /// The roster file, read for the sign-in screen's list while signed out.
    roster_path: std::path::PathBuf,
    /// That list, with the roster's modification time when it was read: read again only
    /// when an admin changed the roster, not at every view model.
    crew_list: Option<(std::time::SystemTime, Vec<crate::roster::CrewEntry>)>,
    incident_seq: u64,
    started: Instant,
    last_touch: Instant,
    journal: Vec<JournalEntry>,
    /// Records appended, kept only for a drill's debrief (`keep_records_for_debrief`): an
    /// app running a whole training shift kept every record here and grew by it.
    recorded: Option<Vec<RecordBody>>,
    store_errors: Vec<String>,
    tunnel: TunnelState,
    probe: Option<LinkProbe>,
    /// Outcomes of work running off the loop.
    outcomes_tx: mpsc::UnboundedSender<Outcome>,
    outcomes: mpsc::UnboundedReceiver<Outcome>,
    /// Jobs whose outcome has not come back yet (what `settle` waits for).
    in_flight: usize,
    writer: StoreWriter,
    /// The card's signature over the PIN-path challenge of this incident: sent with its
    /// emergency-info inquiry, dropped with the incident.
    card_signature: Option<(IncidentId, Vec<u8>)>,
    /// An Android phone's smartphone PIN, from its verification until the phone signed the
    /// server's challenge (a second card session needs it again); dropped with the
    /// incident, zeroed when dropped, never logged.
    phone_pin: Option<(IncidentId, zeroize::Zeroizing<String>)>,
    /// The incident whose phone is signing the challenge now.
    phone_signing: Option<IncidentId>,
    /// The server CRL's next update, for the strip's warning.
    crl_watch: crl_watch::CrlWatch,
    /// The hand-off under way (its findings; never the packet).
    handoff: Option<handoff::HandoffState>,
    handoff_generation: u64,
    /// When this incident's consent was recorded and its summary answered (the packet
    /// says so).
    consent_at: Option<(IncidentId, Timestamp)>,
    viewed_at: Option<Timestamp>,
}

/// What work off the loop reports back.
pub enum Outcome {
    /// Session events (a card read, an answer, a failure).
    Events(Vec<Event>),
    /// A PIN check on the card, for this incident, with the card's signature when verified.
    Pin(IncidentId, Result<reader::PinChecked, CardError>),
    /// A smartphone PIN attempt on an Android phone (the PIN comes back to be kept for the
    /// signature when it verified).
    PhonePin(
        IncidentId,
        Result<reader::PhoneRead, CardError>,
        zeroize::Zeroizing<String>,
    ),
    /// A phone's signature over the server's challenge.
    PhoneSigned(IncidentId, Result<Vec<u8>, CardError>),
    /// Where the route to the endpoint goes now.
    Route(TunnelState),
    /// A request's answer (or failure), with the route it was checked against.
    Answer {
        route: Option<TunnelState>,
        events: Vec<Event>,
    },
    /// A record append finished (the error text if it failed).
    Stored(Result<(), String>),
    /// Hand-off work: an input for the flow of this generation. `counted`: a call that
    /// `settle` waits for (not the event stream or the retry timer).
    Handoff {
        generation: u64,
        input: crate::handoff::crew::Input,
        counted: bool,
    },
}

/// Keep the journal bounded on a tablet that runs for days.
const JOURNAL_CAP: usize = 2000;

impl Controller {
    pub fn new(ports: Ports, settings: Settings) -> (Controller, watch::Receiver<ViewModel>) {
        let (view, rx) = watch::channel(ViewModel::default());
        let (outcomes_tx, outcomes) = mpsc::unbounded_channel();
        let writer = StoreWriter::start(
            ports.store.clone(),
            ports.uploader_wake.clone(),
            outcomes_tx.clone(),
        );
        let roster_path = ports
            .gate
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .roster_path()
            .to_path_buf();
        let mut c = Controller {
            roster_path,
            crew_list: None,
            session: Session::new(settings.station.clone()),
            ports,
            settings,
            view,
            status: StatusStrip::default(),
            pin: PinView::default(),
            sign_in_error: String::new(),
            incident_seq: 0,
            started: Instant::now(),
            last_touch: Instant::now(),
            journal: vec![],
            recorded: None,
            store_errors: vec![],
            tunnel: TunnelState::Unknown,
            probe: None,
            outcomes_tx,
            outcomes,
            in_flight: 0,
            writer,
            card_signature: None,
            phone_pin: None,
            phone_signing: None,
            crl_watch: Default::default(),
            handoff: None,
            handoff_generation: 0,
            consent_at: None,
            viewed_at: None,
        };
        c.tunnel = c.check_route();
        c.refresh_status();
        c.publish();
        (c, rx)
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    pub fn view(&self) -> ViewModel {
        self.view.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<ViewModel> {
        self.view.subscribe()
    }

    pub fn store(&self) -> Arc<Store> {
        self.ports.store.clone()
    }

    pub fn journal(&self) -> &[JournalEntry] {
        &self.journal
    }

    /// From now on, keep a copy of every record appended, for a drill's debrief.
    pub fn keep_records_for_debrief(&mut self) {
        self.recorded.get_or_insert_with(Vec::new);
    }

    /// The records appended since `keep_records_for_debrief` (none before it).
    pub fn recorded(&self) -> &[RecordBody] {
        self.recorded.as_deref().unwrap_or_default()
    }

    pub fn store_errors(&self) -> &[String] {
        &self.store_errors
    }

    /// Milliseconds since the controller started (the journal's clock).
    pub fn elapsed_ms(&self) -> f64 {
        self.started.elapsed().as_secs_f64() * 1e3
    }

    /// Add a line to the journal (a drill step, a trainer action).
    pub fn note(&mut self, what: String) {
        self.journal_push(what, false);
    }

    fn journal_push(&mut self, what: String, event: bool) {
        let notice = self.session.notice().map(|n| n.message_en());
        self.journal.push(JournalEntry {
            at_ms: self.elapsed_ms(),
            what,
            event,
            phase: self.session.phase().name(),
            notice,
        });
        if self.journal.len() > JOURNAL_CAP {
            self.journal.drain(..JOURNAL_CAP / 2);
        }
    }

    fn publish(&mut self) {
        let today = view::today_jst(Timestamp::now());
        let vm = view::build(
            &self.session,
            today,
            &self.status,
            &self.pin,
            &self.sign_in_error,
        );
        let mut vm = vm;
        if vm.explanation_owed {
            vm.explanation_contact = self.settings.explanation_contact.clone();
        }
        if vm.screen == view::Screen::SignIn {
            vm.crew_list = self.sign_in_list();
        }
        self.handoff_view(&mut vm);
        self.view.send_replace(vm);
    }

    /// The roster's crew for the sign-in screen. An admin's `crew add` shows at the next
    /// view model (the roster's modification time changed); an unreadable roster lists
    /// nobody, and sign-in then says why (the gate reads the roster too).
    fn sign_in_list(&mut self) -> Vec<crate::roster::CrewEntry> {
        let modified = std::fs::metadata(&self.roster_path)
            .and_then(|m| m.modified())
            .ok();
        if let (Some(at), Some((read_at, list))) = (modified, &self.crew_list)
            && at == *read_at
        {
            return list.clone();
        }
        let list = crate::roster::Roster::load(&self.roster_path)
            .map(|r| r.sign_in_list())
            .unwrap_or_default();
        self.crew_list = modified.map(|at| (at, list.clone()));
        list
    }

    /// Carry out one command and wait until everything it set off has come back (drills,
    /// tests and benches read the result right after). The app's loop uses [`Self::dispatch`].
    pub async fn handle(&mut self, command: Command) {
        self.dispatch(command).await;
        self.settle().await;
    }

    /// Carry out one command without waiting for the work it sets off; the view model is
    /// published after every event.
    pub async fn dispatch(&mut self, command: Command) {
        self.last_touch = Instant::now();
        let name = command.name();
        tracing::debug!(command = name, "command");
        let event = match command {
            Command::SignIn { crew_id, pin } => self.sign_in(crew_id, pin).await,
            Command::SignOut => Some(Event::CrewSignedOut),
            Command::CardPlaced => {
                // a card on the reader: its screens come first; a hand-off without a card
                // waits under them (「照会に戻る」 on Ready or the summary)
                if let Some(h) = self.handoff.as_mut() {
                    h.shown = false;
                }
                self.incident_seq += 1;
                self.pin = PinView::default();
                Some(Event::CardDetected {
                    incident: IncidentId(format!(
                        "{}-{}-{:04}",
                        self.settings.station.terminal.0,
                        Timestamp::now().0,
                        self.incident_seq
                    )),
                })
            }
            Command::CardRemoved => Some(Event::CardRemoved),
            Command::ConfirmPhoto => Some(Event::IdentityConfirmed {
                check: IdentityCheck::Photo,
            }),
            Command::EnterPin {
                pin,
                confirm_last_try,
            } => {
                if self.session.phase() == Phase::PhonePin {
                    self.enter_phone_pin(pin, confirm_last_try);
                } else {
                    self.enter_pin(pin, confirm_last_try);
                }
                None
            }
            Command::PatientCannotEnterPin => Some(Event::PatientCannotAuthenticate),
            Command::Consent(decision, reason) => Some(Event::ConsentChosen { decision, reason }),
            Command::CorrectConsent(to, reason) => Some(Event::ConsentCorrected { to, reason }),
            Command::ExplanationHanded => Some(Event::ExplanationHanded),
            Command::ViewFullData => Some(Event::ViewFullData),
            Command::BackToSummary => Some(Event::BackToSummary),
            Command::EndViewing => Some(Event::EndViewing),
            Command::Retry => Some(Event::Retry),
            Command::LinkLost => Some(Event::LinkLost),
            Command::LinkRestored => Some(Event::LinkRestored),
            Command::IdleTimeout => Some(Event::IdleTimeout),
            Command::Handoff(c) => {
                self.handoff_command(c);
                None
            }
        };
        if let Some(event) = event {
            self.apply(event);
        }
        self.refresh_status();
        self.publish();
    }

    /// Take outcomes (the hub's answers on the event stream among them) until `done` holds
    /// for the view model or `timeout` passed; whether it held.
    pub async fn wait_for(&mut self, timeout: Duration, done: impl Fn(&ViewModel) -> bool) -> bool {
        let until = tokio::time::Instant::now() + timeout;
        loop {
            self.refresh_status();
            self.publish();
            if done(&self.view.borrow()) {
                return true;
            }
            match tokio::time::timeout_at(until, self.outcomes.recv()).await {
                Ok(Some(outcome)) => self.absorb(outcome),
                Ok(None) | Err(_) => return done(&self.view.borrow()),
            }
        }
    }

    /// Wait for every job off the loop and apply what it reports, until none is left.
    pub async fn settle(&mut self) {
        while self.in_flight > 0 {
            let Some(outcome) = self.outcomes.recv().await else {
                break;
            };
            self.absorb(outcome);
        }
        self.refresh_status();
        self.publish();
    }

    /// Apply one outcome of work off the loop.
    fn absorb(&mut self, outcome: Outcome) {
        if !matches!(outcome, Outcome::Handoff { counted: false, .. }) {
            self.in_flight = self.in_flight.saturating_sub(1);
        }
        match outcome {
            Outcome::Handoff {
                generation, input, ..
            } => self.handoff_outcome(generation, input),
            Outcome::Events(events) => {
                for event in events {
                    self.apply(event);
                }
            }
            Outcome::Pin(incident, result) => {
                if let Some(event) = self.pin_outcome(incident, result) {
                    self.apply(event);
                }
            }
            Outcome::PhonePin(incident, result, pin) => {
                if let Some(event) = self.phone_pin_outcome(incident, result, pin) {
                    self.apply(event);
                }
            }
            Outcome::PhoneSigned(incident, result) => {
                if let Some(event) = self.phone_signed(incident, result) {
                    self.apply(event);
                }
            }
            Outcome::Route(state) => self.tunnel = state,
            Outcome::Answer { route, events } => {
                if let Some(state) = route {
                    self.tunnel = state;
                }
                for event in events {
                    self.apply(event);
                }
            }
            Outcome::Stored(Ok(())) => {}
            Outcome::Stored(Err(e)) => {
                // Nothing is acknowledged that was not written: the crew sees it on screen.
                tracing::error!(error = %e, "record store failed");
                self.store_errors.push(e);
            }
        }
        self.publish();
    }

    /// Run `job` off the loop; its outcome comes back through the outcome channel. If the
    /// job panics, `fallback` is reported instead, so the session never waits forever.
    fn spawn<F>(&mut self, job: F, fallback: Outcome)
    where
        F: std::future::Future<Output = Outcome> + Send + 'static,
    {
        self.in_flight += 1;
        let tx = self.outcomes_tx.clone();
        let handle = tokio::spawn(job);
        tokio::spawn(async move {
            let outcome = handle.await.unwrap_or_else(|e| {
                tracing::error!(error = %e, "controller job failed");
                fallback
            });
            let _ = tx.send(outcome);
        });
    }

    async fn sign_in(&mut self, crew_id: String, pin: String) -> Option<Event> {
        if self.session.phase() != Phase::SignedOut {
            return None;
        }
        // the crew's PIN is zeroed when dropped (after the check, on the blocking pool)
        let pin = zeroize::Zeroizing::new(pin);
        let gate = self.ports.gate.clone();
        let checked = tokio::task::spawn_blocking(move || {
            gate.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .sign_in(crew_id.trim(), &pin, Timestamp::now())
        })
        .await
        .unwrap_or_else(|e| {
            Err(crate::roster::RosterError::Hash(format!(
                "PIN check task: {e}"
            )))
        });
        match checked {
            Ok(ok) => {
                self.sign_in_error.clear();
                Some(Event::CrewSignedIn {
                    operator: OperatorId::new(&ok.crew_id),
                    viewing_permission: ok.can_view,
                })
            }
            Err(e) => {
                self.sign_in_error = e.message_ja();
                self.note(format!("sign-in refused: {e}"));
                None
            }
        }
    }

    /// Apply an event and carry out its effects; what they report comes back later as
    /// outcomes.
    fn apply(&mut self, event: Event) {
        let name = event.name();
        let answered = matches!(event, Event::EmergencyInfoAnswered { .. });
        match self.session.handle(Timestamp::now(), event) {
            Ok(effects) => {
                if answered {
                    self.viewed_at = Some(Timestamp::now());
                }
                // the next crew never meets this crew's hand-off
                if self.session.phase() == Phase::SignedOut {
                    self.end_handoff("signed out");
                }
                self.journal_push(name.to_string(), true);
                self.publish();
                for effect in effects {
                    self.execute(effect);
                }
                self.sign_on_phone();
            }
            Err(e) => {
                tracing::debug!(event = name, error = %e, "event not applied");
                self.note(format!("{name} not applied: {e}"));
            }
        }
    }

    /// A health probe arrived: tell the session when the line went or came back.
    pub async fn link_probe(&mut self, probe: LinkProbe) {
        let reachable = probe.reachable;
        self.probe = Some(probe);
        if let Some(addr) = self.ports.endpoint_addr {
            let route = self.ports.route.clone();
            self.spawn(
                async move {
                    Outcome::Route(
                        tokio::task::spawn_blocking(move || route.route_to(addr))
                            .await
                            .unwrap_or(TunnelState::Unknown),
                    )
                },
                Outcome::Route(TunnelState::Unknown),
            );
        }
        if reachable && !self.session.link_up() {
            self.apply(Event::LinkRestored);
        } else if !reachable && self.session.link_up() {
            self.apply(Event::LinkLost);
        }
        self.refresh_status();
        self.publish();
    }

    fn idle_limit(&self) -> Option<Duration> {
        match self.session.phase() {
            Phase::SignedOut => None,
            Phase::Ready => Some(self.settings.idle_lock),
            _ => Some(self.settings.idle_end_viewing),
        }
    }

    /// Run until the command channel closes: commands, link probes, idle timers, and a
    /// status refresh every few seconds.
    pub async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut link: Option<watch::Receiver<Option<LinkProbe>>>,
    ) {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            let idle_at = self
                .idle_limit()
                .map(|d| tokio::time::Instant::from_std(self.last_touch + d));
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(cmd) => self.dispatch(cmd).await,
                    None => break,
                },
                Some(outcome) = self.outcomes.recv() => {
                    self.absorb(outcome);
                    self.refresh_status();
                    self.publish();
                }
                changed = async { match link.as_mut() {
                    Some(l) => l.changed().await.map(|_| l.borrow_and_update().clone()),
                    None => std::future::pending().await,
                } } => match changed {
                    Ok(Some(probe)) => self.link_probe(probe).await,
                    Ok(None) => {}
                    Err(_) => link = None, // the monitor is gone; keep serving the crew
                },
                _ = async { match idle_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                } } => self.dispatch(Command::IdleTimeout).await,
                _ = tick.tick() => {
                    self.refresh_status();
                    self.publish();
                }
            }
        }
    }
}
