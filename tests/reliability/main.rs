//! Faults and bad input through the app's own controller and store, each test reporting
//! a row of docs/RELIABILITY.md (see `common::reliability_row`): the card removed at every
//! APDU index, the link reset at every phase of both requests, the disk filling up while
//! appending, and time-bounded fuzzing of card answers and certificate DER.

#[path = "../common/mod.rs"]
mod common;

mod card;
mod disk;
mod line;

pub use common::{TempDir, reliability_row};
pub use mynakyukyu::app::view::Screen;
pub use mynakyukyu::app::{Command, Controller};
pub use mynakyukyu::domain::{ConsentDecision, RecordBody, Timestamp};
pub use mynakyukyu::drill::world::{TRAINING_CREW, TRAINING_CREW_PIN, TrainingWorld};
pub use mynakyukyu::eligibility::client::tls_config;
pub use mynakyukyu::eligibility::{EligibilityClient, Endpoint, UnitIdentity};
pub use std::net::SocketAddr;
pub use std::sync::atomic::{AtomicUsize, Ordering};
pub use std::sync::{Arc, Mutex};
pub use std::time::{Duration, Instant};
pub use tokio::io::{AsyncReadExt, AsyncWriteExt};
pub use tokio::net::{TcpListener, TcpStream};

struct Rig {
    rt: tokio::runtime::Runtime,
    world: TrainingWorld,
    controller: Controller,
    /// The controller's client, to drop its kept-alive connection between cases.
    client: Arc<EligibilityClient>,
    patient: String,
    _dir: TempDir,
}

impl Rig {
    /// The training world and the app's controller; `client` replaces the training client
    /// (e.g. one going through a cutting proxy).
    fn new(
        client: impl FnOnce(&TrainingWorld, &tokio::runtime::Runtime) -> Option<EligibilityClient>,
    ) -> Rig {
        let dir = TempDir::new("reliability");
        let rt = common::runtime();
        let today = time::OffsetDateTime::now_utc().date();
        let world = rt
            .block_on(TrainingWorld::start(dir.path(), today))
            .unwrap();
        let mut ports = world.ports().unwrap();
        if let Some(c) = client(&world, &rt) {
            ports.client = Arc::new(c);
        }
        let client = ports.client.clone();
        let (controller, _) = Controller::new(ports, world.settings());
        let patient = world.patient_id("elderly-warfarin").unwrap();
        let mut rig = Rig {
            rt,
            world,
            controller,
            client,
            patient,
            _dir: dir,
        };
        rig.send(Command::SignIn {
            crew_id: TRAINING_CREW.into(),
            pin: TRAINING_CREW_PIN.into(),
        });
        rig
    }

    fn send(&mut self, cmd: Command) -> mynakyukyu::app::view::ViewModel {
        self.rt.block_on(self.controller.handle(cmd));
        self.controller.view()
    }

    /// Consent and audit records the tablet holds, and inquiries logged by the simulator.
    fn counts(&self) -> (usize, usize, usize) {
        let records = self.world.store.records().unwrap();
        let consent = records
            .iter()
            .filter(|r| matches!(r.record.body, RecordBody::Consent(_)))
            .count();
        let audit = records
            .iter()
            .filter(|r| matches!(r.record.body, RecordBody::Audit(_)))
            .count();
        (consent, audit, self.world.server.inquiry_count())
    }
}
