//! The tablet's offline-safe store on sled: consent and audit records in an append-only,
//! hash-chained log with an outbox for upload. No clinical data: the emergency info lives in
//! memory for the incident only (an old store's clinical cache is dropped at open). Every
//! value is sealed with ChaCha20-Poly1305; tree keys are sequence numbers, never patient
//! data. An append returns only after sled has flushed it to disk.
//!
//! Keys rotate by day: a record and its outbox entry are sealed under the key of the (UTC)
//! day they were appended, kept in `keys/<day>.key` sealed under the store key (which the
//! TPM unwraps). Retention ([`Store::purge_expired`]) removes uploaded records past the
//! retention period and then destroys every day key no remaining record uses: expiry is key
//! destruction, so the old sealed bytes that sled's log may keep until compaction can no
//! longer be opened, not even with the store key. The chain head, sync state and anchor are
//! sealed under the store key itself.
//!
//! What is inside: sled 0.34 behind a small interface: consent and audit records in an
//! append-only log keyed by sequence number, each value sealed with ChaCha20-Poly1305 (tree
//! name + key are the AEAD's associated data) under the key of the UTC day it was appended
//! (`keys/<day>.key`, sealed under the store key, which the TPM unwraps); `purge_expired`
//! removes uploaded records past retention and then destroys every day key no remaining
//! record uses (expiry is key destruction: sled's log may keep old bytes, no key opens
//! them); the chain head, sync state and anchor under the store key; a failing random
//! source or serialiser is an error, never a zero nonce or an empty value; SHA-256 hash
//! chain over the records with a copy of the chain head outside sled (sled recovers a
//! damaged log by dropping its tail; the copy shows the loss), an outbox tree (its length
//! counted once at open and kept with every change: sled's `len()` walks the tree, ~50 ms
//! at 100,000 records, and the status strip asks on every command), sync state, retention
//! of uploaded records. No clinical data: the emergency info lives in the session for the
//! incident only; the clinical-data cache of earlier versions is dropped at open. `append`
//! returns only after commit + flush; a sled snapshot a kill left unfinished
//! (`snap.*.generating`, which sled 0.34 would read and refuse as corrupt) is removed when
//! sled refuses to open on it, and the open retried

mod chain;
mod days;
mod outbox;
mod retention;
mod seal;

pub use seal::StoreKey;

use crate::domain::{Record, RecordBody, Timestamp, chain_hash};
use seal::Sealer;
use serde::{Deserialize, Serialize};
use sled::Transactional;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("store at {path}: {source}")]
    Open { path: String, source: sled::Error },
    #[error("disk full: the record was not stored")]
    DiskFull,
    #[error("store I/O: {0}")]
    Io(String),
    #[error("device key {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("cannot seal the value: {0}")]
    Seal(String),
    #[error("value in {tree} at {key} cannot be opened (tampered, or another device's key)")]
    Tampered { tree: &'static str, key: String },
    #[error("value in {tree} at {key} is not valid: {reason}")]
    Corrupt {
        tree: &'static str,
        key: String,
        reason: String,
    },
}

fn is_disk_full(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io) if io.raw_os_error() == Some(rustix::io::Errno::NOSPC.raw_os_error()))
}

fn tx_error(e: sled::transaction::TransactionError<()>) -> StoreError {
    match e {
        sled::transaction::TransactionError::Storage(s) => StoreError::from(s),
        sled::transaction::TransactionError::Abort(()) => {
            StoreError::Io("transaction aborted".into())
        }
    }
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        if is_disk_full(&e) {
            StoreError::DiskFull
        } else {
            StoreError::Io(e.to_string())
        }
    }
}

/// sled's page cache for the store: records are written once, then read back only to
/// upload or export them.
const STORE_CACHE_BYTES: u64 = 8 * 1024 * 1024;

/// A record as stored: its place in the log and its link in the audit hash chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRecord {
    pub seq: u64,
    pub appended_at: Timestamp,
    pub record: Record,
    /// Hex SHA-256 of the previous record (the chain anchor for the first one).
    pub prev_hash: String,
    /// Hex SHA-256 over `prev_hash`, `seq` and the record.
    pub hash: String,
}

/// The first place the audit hash chain does not hold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokenLink {
    pub seq: u64,
    /// The record id when the record could still be read.
    pub record_id: Option<String>,
    pub reason: String,
}

/// What `verify_chain` found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChainReport {
    pub checked: usize,
    pub first_broken: Option<BrokenLink>,
}

/// The upload state the UI's status strip shows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SyncState {
    pub queued: usize,
    pub oldest_queued_at: Option<Timestamp>,
    pub last_success: Option<Timestamp>,
    pub last_error: Option<String>,
    pub last_error_at: Option<Timestamp>,
    /// The server holds a chain this store does not continue (an older store restored, or
    /// a fork): uploads are refused until an admin looks; the records stay queued.
    pub chain_conflict: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct SyncMeta {
    last_success: Option<Timestamp>,
    last_error: Option<String>,
    last_error_at: Option<Timestamp>,
    #[serde(default)]
    chain_conflict: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct ChainHead {
    next_seq: u64,
    last_hash: String,
}

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
const META_HEAD: &[u8] = b"chain_head";
const META_ANCHOR: &[u8] = b"chain_anchor";
const META_SYNC: &[u8] = b"sync";
const META_GAP: &[u8] = b"chain_gap";
const HEAD_FILE: &str = "chain.head";
/// The tree where earlier versions cached clinical data; dropped at open.
const OLD_CLINICAL_CACHE: &[u8] = b"cache";

/// A value sealed under a day key starts with this byte and the day (u32, big-endian);
/// values of stores from before rotation have no prefix and open with the store key.
const DAY_SEALED: u8 = 0xD1;
const DAY_KEYS_DIR: &str = "keys";
const MS_PER_DAY: i64 = 86_400_000;

fn day_of(t: Timestamp) -> u32 {
    t.0.div_euclid(MS_PER_DAY).clamp(0, u32::MAX as i64) as u32
}

/// What retention did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PurgeReport {
    pub records_removed: usize,
    /// Days whose keys were destroyed (days since 1970-01-01, UTC).
    pub day_keys_destroyed: Vec<u32>,
}

/// The store. Share it behind an `Arc`; appends are serialised internally.
pub struct Store {
    dir: PathBuf,
    /// The chain head, also kept outside sled: sled recovers a damaged log by dropping its
    /// tail, and only a copy elsewhere shows that records went missing.
    head_file: std::fs::File,
    db: sled::Db,
    records: sled::Tree,
    outbox: sled::Tree,
    meta: sled::Tree,
    sealer: Sealer,
    /// Day keys opened so far (day → sealer); loaded from `keys/` as needed.
    day_sealers: Mutex<std::collections::BTreeMap<u32, std::sync::Arc<Sealer>>>,
    head: Mutex<ChainHead>,
    /// Records in the outbox. sled's `len()` walks the tree, and the status strip asks
    /// for this on every command: with 100,000 records queued that walk took ~50 ms. Counted
    /// once at open, then kept with every change.
    queued: std::sync::atomic::AtomicUsize,
}

/// Check a chain of records taken out of a store (an audit bundle): consecutive sequence
/// numbers, each record's hash over its content, each link to the one before. The first
/// record's `prev_hash` is taken as given (older records may have been purged).
pub fn verify_records(records: &[StoredRecord]) -> ChainReport {
    let mut checked = 0;
    let mut prev: Option<&StoredRecord> = None;
    for r in records {
        let broken = |reason: &str| ChainReport {
            checked,
            first_broken: Some(BrokenLink {
                seq: r.seq,
                record_id: Some(r.record.id.clone()),
                reason: reason.to_string(),
            }),
        };
        if let Err(fault) = crate::domain::check_link(
            prev.map(|p| p.seq),
            prev.map(|p| p.hash.as_str()),
            r.seq,
            &r.prev_hash,
            &r.record,
            &r.hash,
        ) {
            return broken(fault.reason());
        }
        prev = Some(r);
        checked += 1;
    }
    ChainReport {
        checked,
        first_broken: None,
    }
}

fn new_record_id() -> String {
    let mut b = [0u8; 16];
    // getrandom only fails without an OS RNG; fall back to time so ids stay unique enough
    if getrandom::fill(&mut b).is_err() {
        b[..16].copy_from_slice(
            &(std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default())
            .to_be_bytes(),
        );
    }
    hex::encode(b)
}

/// sled 0.34 writes a snapshot to `snap.<lsn>.generating`, syncs it and renames it to
/// `snap.<lsn>`; the rename is the commit. A process killed before the rename leaves the
/// `.generating` file, and sled's open takes the newest `snap.*` file, that one included,
/// and refuses a cut one as corrupt (its checksum). An uncommitted snapshot is only a
/// shortcut never taken: without it sled starts from the last committed snapshot and
/// replays the log, so removing it loses nothing. Returns whether one was removed.
fn remove_cut_snapshots(sled_dir: &Path) -> Result<bool, StoreError> {
    let Ok(entries) = std::fs::read_dir(sled_dir) else {
        return Ok(false);
    };
    let mut removed = false;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            tracing::warn!(file = %name, "removing a sled snapshot a crash left unfinished");
            std::fs::remove_file(entry.path())
                .map_err(|e| StoreError::Io(format!("{}: {e}", entry.path().display())))?;
            removed = true;
        }
    }
    Ok(removed)
}

impl Store {
    /// Open (or create) the store in `dir` (sled in `dir/sled`, the chain head in
    /// `dir/chain.head`) with the device key.
    pub fn open(dir: &Path, key: &StoreKey) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Io(e.to_string()))?;
        let head_path = dir.join(HEAD_FILE);
        let head_file = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(&head_path)
                .map_err(|e| StoreError::Io(format!("{}: {e}", head_path.display())))?
        };
        let open_sled = || {
            sled::Config::new()
                .path(dir.join("sled"))
                .mode(sled::Mode::HighThroughput)
                // sled's default page cache is 1 GiB, filled as records are written: the
                // app grew ~1 MiB per 100 incidents (benches/shift.rs); the store is read
                // for uploads and audits, never hot
                .cache_capacity(STORE_CACHE_BYTES)
                .open()
        };
        let db = match open_sled() {
            // sled holds its file lock by the time it reads the snapshot, so no other
            // process is writing one now
            Err(sled::Error::Corruption { .. }) if remove_cut_snapshots(&dir.join("sled"))? => {
                open_sled()
            }
            other => other,
        }
        .map_err(|source| StoreError::Open {
            path: dir.display().to_string(),
            source,
        })?;
        // Earlier versions cached the emergency info here for dead zones; clinical data now
        // lives in memory for the incident only. Drop what an old store may still hold.
        if db
            .tree_names()
            .iter()
            .any(|n| n.as_ref() == OLD_CLINICAL_CACHE)
        {
            db.drop_tree(OLD_CLINICAL_CACHE)?;
            db.flush()?;
        }
        let store = Store {
            dir: dir.to_path_buf(),
            head_file,
            records: db.open_tree("records")?,
            outbox: db.open_tree("outbox")?,
            meta: db.open_tree("meta")?,
            db,
            sealer: Sealer::new(key),
            day_sealers: Mutex::new(Default::default()),
            head: Mutex::new(ChainHead {
                next_seq: 0,
                last_hash: GENESIS.to_string(),
            }),
            queued: Default::default(),
        };
        store.queued.store(store.outbox.len(), Ordering::SeqCst);
        let head = match store.meta.get(META_HEAD)? {
            Some(v) => store.open_json::<ChainHead>("meta", META_HEAD, &v)?,
            None => ChainHead {
                next_seq: 0,
                last_hash: GENESIS.to_string(),
            },
        };
        store.check_head_file(&head)?;
        *store.lock_head() = head;
        Ok(store)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn lock_head(&self) -> std::sync::MutexGuard<'_, ChainHead> {
        self.head.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Append a record: sealed, chained, queued for upload, and flushed to disk before
    /// this returns. On error nothing is acknowledged.
    pub fn append(&self, body: RecordBody, now: Timestamp) -> Result<StoredRecord, StoreError> {
        let mut head = self.lock_head();
        let seq = head.next_seq;
        let record = Record {
            id: new_record_id(),
            body,
        };
        let hash = chain_hash(&head.last_hash, seq, &record);
        let stored = StoredRecord {
            seq,
            appended_at: now,
            record,
            prev_hash: head.last_hash.clone(),
            hash: hash.clone(),
        };
        let key = seq.to_be_bytes();
        let day = day_of(now);
        let plain = zeroize::Zeroizing::new(
            serde_json::to_vec(&stored).map_err(|e| StoreError::Seal(e.to_string()))?,
        );
        let value = self.seal_day(day, "records", &key, &plain)?;
        let queued = self.seal_day(day, "outbox", &key, &now.0.to_be_bytes())?;
        let next = ChainHead {
            next_seq: seq + 1,
            last_hash: hash,
        };
        let head_value = self.seal_json("meta", META_HEAD, &next)?;
        (&self.records, &self.outbox, &self.meta)
            .transaction(|(r, o, m)| {
                r.insert(&key, value.as_slice())?;
                o.insert(&key, queued.as_slice())?;
                m.insert(META_HEAD, head_value.as_slice())?;
                Ok(())
            })
            .map_err(tx_error)?;
        if let Err(e) = self.db.flush() {
            // Not durable: take the record back out so nothing unacknowledged lingers. After
            // an I/O error sled may refuse the removal too; the record then stays beyond the
            // acknowledged head, where uploads do not look and the next append overwrites it.
            let _ = self.records.remove(key);
            let _ = self.outbox.remove(key);
            return Err(e.into());
        }
        self.write_head_file(&next)?;
        *head = next;
        // under the head lock, so the outbox batch (which takes it) sees the count and the
        // head move together
        self.queued.fetch_add(1, Ordering::SeqCst);
        Ok(stored)
    }

    /// When the oldest retained record was appended.
    pub fn oldest_record(&self) -> Result<Option<Timestamp>, StoreError> {
        match self.records.first()? {
            Some((k, v)) => Ok(Some(self.open_record(&k, &v)?.appended_at)),
            None => Ok(None),
        }
    }

    /// Every retained record, in append order.
    pub fn records(&self) -> Result<Vec<StoredRecord>, StoreError> {
        self.records
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                self.open_record(&k, &v)
            })
            .collect()
    }

    /// The sled trees this store keeps (the tests check that none holds clinical data).
    pub fn tree_names(&self) -> Vec<String> {
        self.db
            .tree_names()
            .iter()
            .map(|n| String::from_utf8_lossy(n).to_string())
            .collect()
    }

    /// Bytes the store occupies on disk.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.db.size_on_disk()?)
    }
}

#[cfg(test)]
mod tests;
