//! The store writer: one thread that appends the session's records in the order they were
//! produced, so fsyncs never block a runtime worker and a request can wait for the records
//! queued before it (a barrier).

use super::Outcome;
use crate::domain::{RecordBody, Timestamp};
use crate::store::Store;
use std::sync::Arc;
use tokio::sync::{Notify, mpsc, oneshot};

pub(super) enum StoreJob {
    Append(Box<RecordBody>, Timestamp),
    /// Answered once every job queued before it is done.
    Barrier(oneshot::Sender<()>),
}

/// One thread that writes records in the order the session produced them, so that fsyncs
/// never block a runtime worker and a request can wait for the records before it.
pub(super) struct StoreWriter {
    jobs: Option<std::sync::mpsc::Sender<StoreJob>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for StoreWriter {
    /// Finish the queued writes and let go of the store before the controller is gone, so
    /// whoever opens the store next finds it unlocked and complete.
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl StoreWriter {
    pub(super) fn start(
        store: Arc<Store>,
        wake: Option<Arc<Notify>>,
        outcomes: mpsc::UnboundedSender<Outcome>,
    ) -> StoreWriter {
        let (jobs, rx) = std::sync::mpsc::channel::<StoreJob>();
        let spawned = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                for job in rx {
                    let done = match job {
                        StoreJob::Append(body, now) => store.append(*body, now).map(|_| {
                            if let Some(w) = &wake {
                                w.notify_one();
                            }
                        }),
                        StoreJob::Barrier(tx) => {
                            let _ = tx.send(());
                            continue;
                        }
                    };
                    let _ = outcomes.send(Outcome::Stored(done.map_err(|e| e.to_string())));
                }
            });
        let thread = match spawned {
            Ok(t) => Some(t),
            Err(e) => {
                // Without a thread the jobs' channel is closed: every append then reports
                // an error on screen instead of being silently lost.
                tracing::error!(error = %e, "cannot start the store writer");
                None
            }
        };
        StoreWriter {
            jobs: Some(jobs),
            thread,
        }
    }

    /// Queue a job; false if the writer is gone.
    pub(super) fn send(&self, job: StoreJob) -> bool {
        self.jobs.as_ref().is_some_and(|j| j.send(job).is_ok())
    }

    /// Resolves when every job queued so far is done (at once if the writer is gone).
    pub(super) fn barrier(&self) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        self.send(StoreJob::Barrier(tx));
        rx
    }
}
