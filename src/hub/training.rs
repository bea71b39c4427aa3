//! The hub of the training world: the training hospitals, and responders that answer for
//! them as emergency departments do (one accepts after a few seconds, one declines, one
//! asks for a call, one never answers), so a drill meets every kind of answer. The trainer
//! can also answer as any hospital (the trainer panel) or sign in to the inbox page.

use super::store::{HubStore, hospital_audience};
use super::{Hub, HubCore, HubError, HubOptions, admin, seal::SealKey};
use crate::handoff::{Answer, DeclineReason, HospitalCode};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How a training hospital answers a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Behaviour {
    Answers {
        after: Duration,
        answer: Answer,
    },
    /// Never answers (the trainer may answer for it).
    Silent,
}

/// The staff name the responders answer under (the hub's audit shows it).
pub const RESPONDER: &str = "訓練自動応答";
/// The phone number a 要電話 training answer gives.
pub const TRAINING_ER_PHONE: &str = "000-0000-0003";

/// The drills' plan: TRAIN-1 accepts after 3 s, TRAIN-2 declines after 2 s (満床), TRAIN-3
/// asks for a call after 4 s, TRAIN-4 never answers.
pub fn drill_plan() -> Vec<(HospitalCode, Behaviour)> {
    let s = Duration::from_secs;
    vec![
        (
            HospitalCode("TRAIN-1".into()),
            Behaviour::Answers {
                after: s(3),
                answer: Answer::Accept,
            },
        ),
        (
            HospitalCode("TRAIN-2".into()),
            Behaviour::Answers {
                after: s(2),
                answer: Answer::Decline {
                    reason: DeclineReason::BedsFull,
                },
            },
        ),
        (
            HospitalCode("TRAIN-3".into()),
            Behaviour::Answers {
                after: s(4),
                answer: Answer::CallUs {
                    phone: TRAINING_ER_PHONE.into(),
                },
            },
        ),
        (HospitalCode("TRAIN-4".into()), Behaviour::Silent),
    ]
}

/// Answer every new request to the plan's hospitals, until the hub stops.
pub fn start_responders(
    core: Arc<HubCore>,
    plan: Vec<(HospitalCode, Behaviour)>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut wake = core.subscribe();
        let mut stopped = core.stopped();
        let start = core.store.last_event().await.unwrap_or(0);
        let mut seen: Vec<i64> = vec![start; plan.len()];
        loop {
            for (i, (code, behaviour)) in plan.iter().enumerate() {
                let Behaviour::Answers { after, answer } = behaviour else {
                    continue;
                };
                let events = match core
                    .store
                    .events_after(&hospital_audience(code), seen[i])
                    .await
                {
                    Ok(e) => e,
                    Err(e) => {
                        tracing::warn!(error = %e, "training responder cannot read events");
                        continue;
                    }
                };
                for e in events {
                    seen[i] = seen[i].max(e.seq);
                    if e.kind != "request" {
                        continue;
                    }
                    let (core, code, answer, after) =
                        (core.clone(), code.clone(), answer.clone(), *after);
                    tokio::spawn(async move {
                        tokio::time::sleep(after).await;
                        if let Err(e) = core.answer(&code, RESPONDER, &e.case_id, answer).await {
                            // the crew decided or left first: nothing to answer
                            tracing::debug!(error = %e, "training answer not taken");
                        }
                    });
                }
            }
            tokio::select! {
                _ = wake.recv() => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = stopped.changed() => return,
            }
            if *stopped.borrow() {
                return;
            }
        }
    })
}

/// Answer the newest open request to `hospital` as its staff would (the trainer panel).
pub async fn answer_newest(
    core: &HubCore,
    hospital: &HospitalCode,
    answer: Answer,
) -> Result<String, HubError> {
    for id in core.store.cases_of_hospital(hospital).await? {
        if core
            .answer(hospital, "訓練トレーナー", &id, answer.clone())
            .await
            .is_ok()
        {
            return Ok(id);
        }
    }
    Err(HubError::NoSuchCase)
}

/// Where a training hub keeps its database and master key: a directory of its own in
/// memory (`/dev/shm` where there is one), removed when dropped. Never under the tablet's
/// data dir: a stolen tablet's training dir must not hold a packet with the key beside it.
pub struct RuntimeDir(std::path::PathBuf);

impl RuntimeDir {
    fn new() -> std::io::Result<RuntimeDir> {
        let shm = Path::new("/dev/shm");
        let base = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        sweep_abandoned(&base);
        let mut random = [0u8; 8];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random)
            .map_err(|_| std::io::Error::other("no randomness"))?;
        let dir = base.join(format!(
            "{PREFIX}{}-{}",
            std::process::id(),
            data_encoding::HEXLOWER.encode(&random)
        ));
        std::fs::create_dir(&dir)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        Ok(RuntimeDir(dir))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

/// Remove the training hub dirs of our own processes that ended without dropping theirs (a
/// SIGKILL, a crash): their pid is gone. Another user's, or a live process's, stay.
fn sweep_abandoned(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    let me = rustix::process::geteuid().as_raw();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        use std::os::unix::fs::MetadataExt;
        let ours = std::fs::symlink_metadata(e.path()).is_ok_and(|m| m.is_dir() && m.uid() == me);
        if ours && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

const PREFIX: &str = "mynakyukyu-training-hub-";

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running training hub.
pub struct TrainingHub {
    pub hub: Hub,
    responders: tokio::task::JoinHandle<()>,
    dir: RuntimeDir,
}

impl TrainingHub {
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stop the hub; its directory goes with it.
    pub async fn shutdown(self) {
        self.responders.abort();
        self.hub.shutdown().await;
        drop(self.dir);
    }
}

/// A training hub (its own database and master key in a [`RuntimeDir`]), serving with the
/// development PKI in `pki_dir` on loopback, the training hospitals seeded, the drill
/// plan's responders running. Cases are destroyed a minute after 到着.
pub async fn start(pki_dir: &Path) -> Result<TrainingHub, HubError> {
    let dir = RuntimeDir::new().map_err(|e| HubError::Storage(format!("training hub dir: {e}")))?;
    let data = dir.path().join("hub");
    let io = |e: std::io::Error| HubError::Storage(format!("{}: {e}", data.display()));
    std::fs::create_dir_all(&data).map_err(io)?;
    let seal_key = dir.path().join("seal.key");
    let master = SealKey::load_or_create(&seal_key)?;
    let store = HubStore::open(&data).await?;
    if store.trusted_cas().await?.is_empty() {
        let pem = std::fs::read_to_string(pki_dir.join("ca.pem")).map_err(io)?;
        admin::trust_ca(&store, &pem).await?;
    }
    let staff = admin::seed_training(&store, &master).await?;
    store.close().await;
    let mut options = HubOptions::loopback(data, seal_key, pki_dir.to_path_buf());
    options.poll_every = Duration::from_millis(500);
    options.retention = Duration::from_secs(60);
    options.sweep_every = Duration::from_secs(10);
    let hub = Hub::start(options).await?;
    // the trainer may answer as a hospital on its inbox page (training staff only: the
    // hospitals are not real, and the hub is gone when the drill or the app ends)
    tracing::info!(inbox = %format!("https://localhost:{}", hub.inbox_addr.port()), "training hub inbox");
    for line in &staff {
        tracing::info!("{line}");
    }
    let responders = start_responders(hub.core.clone(), drill_plan());
    Ok(TrainingHub {
        hub,
        responders,
        dir,
    })
}
