//! The uploader: drains the store's outbox to the records endpoint in batches, backs off
//! exponentially (with jitter) while the line is down, resumes after a restart from what
//! the outbox still holds, and relies on record ids so the server keeps each record once
//! even when an acknowledgement is lost and a batch is sent again.
//!
//! What is inside: the uploader: outbox → `POST /v2/records` in batches, each record with
//! its chain link and the unit key's signature (on the blocking pool: the key may be in the
//! TPM), exponential backoff with jitter, woken on demand, resumes from the outbox after a
//! restart; sequence numbers and hashes make re-sent batches harmless; at start it compares
//! the chain head the server holds with the store's, and a rollback or fork (there or in a
//! refusal) is marked in the store and stops uploads with every record kept

use crate::domain::{ChainedRecord, Timestamp};
use crate::eligibility::wire::problem;
use crate::eligibility::{ClientError, EligibilityClient};
use crate::store::{Store, StoreError, SyncState};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::{Notify, watch};

#[derive(Debug, Error)]
pub enum SyncError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("upload failed: {0}")]
    Upload(#[from] ClientError),
    #[error("store task failed: {0}")]
    Task(String),
    /// The server holds a chain this store does not continue: nothing more is uploaded
    /// (the records stay queued) until an admin looks.
    #[error("audit chain conflict: {0}")]
    ChainConflict(String),
}

#[derive(Clone, Debug)]
pub struct UploaderSettings {
    pub batch: usize,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// How often to look at the outbox when nothing wakes the uploader.
    pub idle_poll: Duration,
}

impl Default for UploaderSettings {
    fn default() -> Self {
        UploaderSettings {
            batch: 200,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(60),
            idle_poll: Duration::from_secs(30),
        }
    }
}

/// Uploads the outbox through the eligibility client.
pub struct Uploader {
    store: Arc<Store>,
    client: Arc<EligibilityClient>,
    settings: UploaderSettings,
    wake: Arc<Notify>,
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, SyncError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| SyncError::Task(e.to_string()))?
        .map_err(SyncError::from)
}

impl Uploader {
    pub fn new(
        store: Arc<Store>,
        client: Arc<EligibilityClient>,
        settings: UploaderSettings,
    ) -> Self {
        Uploader {
            store,
            client,
            settings,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Notify this to make the uploader try now (a record was appended, the link returned).
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    pub async fn state(&self) -> Result<SyncState, SyncError> {
        let store = self.store.clone();
        blocking(move || store.sync_state()).await
    }

    /// Ask the server which chain head it holds for this tablet's key and compare it with
    /// the store's (a restored older store is found here even before its next record).
    pub async fn check_head(&self) -> Result<(), SyncError> {
        let held = self.client.records_head().await?;
        let Some(head) = held.head else {
            return Ok(());
        };
        let store = self.store.clone();
        match blocking(move || store.check_server_head(&head, Timestamp::now())).await? {
            Some(conflict) => Err(SyncError::ChainConflict(conflict)),
            None => Ok(()),
        }
    }

    /// Upload until the outbox is empty; returns how many records the server took
    /// (including ones it already had). Each record goes with its chain link and the unit
    /// key's signature over it.
    pub async fn sync_once(&self) -> Result<usize, SyncError> {
        let mut sent = 0;
        loop {
            let store = self.store.clone();
            let max = self.settings.batch;
            let batch = blocking(move || store.outbox_batch(max)).await?;
            if batch.is_empty() {
                return Ok(sent);
            }
            let state = {
                let store = self.store.clone();
                blocking(move || store.sync_state()).await?
            };
            if let Some(conflict) = state.chain_conflict {
                return Err(SyncError::ChainConflict(conflict));
            }
            let client = self.client.clone();
            let links: Vec<(u64, String)> = batch.iter().map(|s| (s.seq, s.hash.clone())).collect();
            // the unit key may sit in the TPM: sign on the blocking pool
            let signatures = tokio::task::spawn_blocking(move || {
                links
                    .iter()
                    .map(|(seq, hash)| client.sign_chain_link(*seq, hash))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await
            .map_err(|e| SyncError::Task(e.to_string()))??;
            let records: Vec<ChainedRecord> = batch
                .iter()
                .zip(signatures)
                .map(|(s, signature)| ChainedRecord {
                    seq: s.seq,
                    prev_hash: s.prev_hash.clone(),
                    hash: s.hash.clone(),
                    record: s.record.clone(),
                    signature,
                })
                .collect();
            match self.client.upload_records(&records).await {
                Ok(answer) => {
                    tracing::debug!(
                        accepted = answer.accepted,
                        duplicates = answer.duplicates,
                        head = answer.head.seq,
                        "records uploaded"
                    );
                    let seqs: Vec<u64> = batch.iter().map(|s| s.seq).collect();
                    let store = self.store.clone();
                    blocking(move || store.mark_uploaded(&seqs, Timestamp::now())).await?;
                    sent += records.len();
                }
                Err(ClientError::Refused(p))
                    if p.kind == problem::CHAIN_CONFLICT || p.kind == problem::CHAIN_GAP =>
                {
                    let why = p.log_text();
                    let store = self.store.clone();
                    let text = why.clone();
                    blocking(move || store.record_chain_conflict(&text, Timestamp::now())).await?;
                    return Err(SyncError::ChainConflict(why));
                }
                Err(e) => {
                    let store = self.store.clone();
                    let text = e.to_string();
                    let _ =
                        blocking(move || store.record_sync_error(&text, Timestamp::now())).await;
                    return Err(e.into());
                }
            }
        }
    }

    /// Keep the outbox empty until `stop` turns true.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut failures: u32 = 0;
        let mut delays = backoff(&self.settings);
        let mut head_checked = false;
        loop {
            if !head_checked {
                match self.check_head().await {
                    Ok(()) => head_checked = true,
                    Err(SyncError::ChainConflict(c)) => {
                        tracing::error!(conflict = %c, "uploads stopped: audit chain conflict");
                        head_checked = true;
                    }
                    Err(e) => tracing::info!(error = %e, "chain head check deferred"),
                }
            }
            let wait = match self.sync_once().await {
                Ok(_) => {
                    failures = 0;
                    delays = backoff(&self.settings);
                    self.settings.idle_poll
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::info!(error = %e, failures, "upload deferred");
                    delays.next().unwrap_or(self.settings.backoff_max)
                }
            };
            tokio::select! {
                _ = stop.changed() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
            if *stop.borrow() {
                return;
            }
        }
    }
}

/// The waits after failures in a row: base · 2^(n-1) up to the cap, jittered, for as long
/// as it takes (backon's exponential backoff, the one the client's retries use too).
fn backoff(s: &UploaderSettings) -> impl Iterator<Item = Duration> + use<> {
    use backon::BackoffBuilder;
    backon::ExponentialBuilder::default()
        .with_min_delay(s.backoff_base)
        .with_max_delay(s.backoff_max)
        .with_jitter()
        .without_max_times()
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let s = UploaderSettings {
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_millis(1_000),
            ..UploaderSettings::default()
        };
        // backon's jitter adds up to the delay itself on top of it
        let delays: Vec<Duration> = backoff(&s).take(30).collect();
        assert_eq!(delays.len(), 30, "never gives up");
        for (n, floor) in [(0, 100), (1, 200), (2, 400), (4, 1_000), (29, 1_000)] {
            let d = delays[n];
            let f = Duration::from_millis(floor);
            assert!(d >= f && d <= f * 2, "{n}: {d:?}");
        }
    }
}
