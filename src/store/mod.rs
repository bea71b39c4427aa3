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

mod seal;

pub use seal::DeviceKey;

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
    matches!(e, sled::Error::Io(io) if io.raw_os_error() == Some(28))
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
        if let Some(p) = prev {
            if r.seq != p.seq + 1 {
                return broken("a record before this one is missing");
            }
            if r.prev_hash != p.hash {
                return broken("previous-hash link does not match");
            }
        }
        if chain_hash(&r.prev_hash, r.seq, &r.record) != r.hash {
            return broken("record content does not match its hash");
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
    pub fn open(dir: &Path, key: &DeviceKey) -> Result<Store, StoreError> {
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

    /// Compare sled's chain head with the copy outside sled; if the copy is ahead, records
    /// were lost from the log: remember the gap so `verify_chain` reports it.
    fn check_head_file(&self, head: &ChainHead) -> Result<(), StoreError> {
        use std::io::Read;
        let mut sealed = Vec::new();
        (&self.head_file)
            .read_to_end(&mut sealed)
            .map_err(|e| StoreError::Io(e.to_string()))?;
        if sealed.is_empty() {
            // A new store writes its genesis head here at once, before any append can
            // happen: so a kill right after the first append leaves a copy that is behind
            // (harmless), never an empty file, and empty with records in the log means
            // emptied. (Before this, a kill between the first record and the first copy
            // read as "emptied"; CI met it under load in the SIGKILL test.)
            if head.next_seq == 0 {
                return self.write_head_file(head);
            }
            return self.remember_gap(BrokenLink {
                seq: head.next_seq,
                record_id: None,
                reason: "the chain head copy was emptied".into(),
            });
        }
        let gap = match self.open_json::<ChainHead>("head", HEAD_FILE.as_bytes(), &sealed) {
            Ok(copy) if copy.next_seq > head.next_seq => Some(BrokenLink {
                seq: head.next_seq,
                record_id: None,
                reason: format!(
                    "records {} to {} are missing from the log (truncated)",
                    head.next_seq,
                    copy.next_seq - 1
                ),
            }),
            Ok(_) => None,
            Err(_) => Some(BrokenLink {
                seq: head.next_seq,
                record_id: None,
                reason: "the chain head copy is altered".into(),
            }),
        };
        match gap {
            Some(gap) => self.remember_gap(gap),
            None => Ok(()),
        }
    }

    fn remember_gap(&self, gap: BrokenLink) -> Result<(), StoreError> {
        if self.meta.get(META_GAP)?.is_none() {
            tracing::warn!(seq = gap.seq, reason = %gap.reason, "audit chain broken");
            self.meta
                .insert(META_GAP, self.seal_json("meta", META_GAP, &gap)?)?;
            self.db.flush()?;
        }
        Ok(())
    }

    /// The next sequence number and the hash of the last record appended.
    pub fn chain_head(&self) -> (u64, String) {
        let head = self.lock_head();
        (head.next_seq, head.last_hash.clone())
    }

    /// The hash of the record at `seq`, if this store still holds it.
    pub fn hash_at(&self, seq: u64) -> Result<Option<String>, StoreError> {
        let key = seq.to_be_bytes();
        match self.records.get(key)? {
            Some(v) => Ok(Some(self.open_record(&key, &v)?.hash)),
            None => Ok(None),
        }
    }

    /// Compare the chain head the server holds with this store's: a head beyond ours, or
    /// another hash at the same place, means this store was rolled back (or forked).
    /// Remembered (and shown in the sync state) until an admin clears the store.
    pub fn check_server_head(
        &self,
        server: &crate::domain::ChainHeadAck,
        now: Timestamp,
    ) -> Result<Option<String>, StoreError> {
        let (next_seq, _) = self.chain_head();
        let conflict = if server.seq >= next_seq {
            Some(format!(
                "the server holds record {} of this tablet's chain; this store ends before it at {}: an older store was restored",
                server.seq, next_seq
            ))
        } else {
            match self.hash_at(server.seq)? {
                Some(hash) if hash != server.hash => Some(format!(
                    "the server holds another record {} than this store: the chain was forked",
                    server.seq
                )),
                _ => None,
            }
        };
        if let Some(c) = &conflict {
            self.record_chain_conflict(c, now)?;
        }
        Ok(conflict)
    }

    /// Remember that the server refused our chain (kept until the store is cleared).
    pub fn record_chain_conflict(&self, why: &str, now: Timestamp) -> Result<(), StoreError> {
        tracing::error!(reason = %why, "audit chain conflict with the server");
        let mut meta = self.sync_meta()?;
        meta.chain_conflict = Some(why.to_string());
        meta.last_error = Some(why.to_string());
        meta.last_error_at = Some(now);
        self.meta
            .insert(META_SYNC, self.seal_json("meta", META_SYNC, &meta)?)?;
        self.db.flush()?;
        Ok(())
    }

    fn write_head_file(&self, head: &ChainHead) -> Result<(), StoreError> {
        use std::os::unix::fs::FileExt;
        let sealed = self.seal_json("head", HEAD_FILE.as_bytes(), head)?;
        let io = |e: std::io::Error| StoreError::Io(format!("chain head: {e}"));
        // one write over the old copy, then trim: a kill between the two leaves a whole
        // copy (truncating first would leave an empty file, which reads as emptied)
        self.head_file.write_all_at(&sealed, 0).map_err(io)?;
        self.head_file.set_len(sealed.len() as u64).map_err(io)?;
        self.head_file.sync_data().map_err(io)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn lock_head(&self) -> std::sync::MutexGuard<'_, ChainHead> {
        self.head.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn day_key_path(&self, day: u32) -> PathBuf {
        self.dir.join(DAY_KEYS_DIR).join(format!("{day}.key"))
    }

    /// The sealer of `day`: loaded from its key file, or (`create`) made and written durably
    /// before anything is sealed under it.
    fn day_sealer(
        &self,
        day: u32,
        create: bool,
    ) -> Result<Option<std::sync::Arc<Sealer>>, StoreError> {
        let mut cache = self.day_sealers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = cache.get(&day) {
            return Ok(Some(s.clone()));
        }
        let path = self.day_key_path(day);
        let aad = format!("day-key\0{day}");
        let raw = match crate::keys::read_private(&path) {
            Ok(sealed) => {
                let plain = self.sealer.open(b"keys", aad.as_bytes(), &sealed).ok_or(
                    StoreError::Tampered {
                        tree: "keys",
                        key: day.to_string(),
                    },
                )?;
                let arr: [u8; 32] =
                    plain
                        .as_slice()
                        .try_into()
                        .map_err(|_| StoreError::Corrupt {
                            tree: "keys",
                            key: day.to_string(),
                            reason: "not a 32-byte key".into(),
                        })?;
                zeroize::Zeroizing::new(arr)
            }
            Err(crate::keys::KeyError::Missing(_)) if create => {
                let k = Sealer::random_key()?;
                let sealed = self.sealer.seal(b"keys", aad.as_bytes(), k.as_ref())?;
                crate::keys::create_private_dir(&self.dir.join(DAY_KEYS_DIR))
                    .and_then(|()| crate::keys::write_private(&path, &sealed))
                    .map_err(|e| StoreError::Key {
                        path: path.display().to_string(),
                        reason: e.to_string(),
                    })?;
                k
            }
            Err(crate::keys::KeyError::Missing(_)) => return Ok(None),
            Err(e) => {
                return Err(StoreError::Key {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                });
            }
        };
        let sealer = std::sync::Arc::new(Sealer::new(&DeviceKey::from_bytes(&raw)));
        cache.insert(day, sealer.clone());
        Ok(Some(sealer))
    }

    /// Seal a record-tree value under the key of `day`.
    fn seal_day(
        &self,
        day: u32,
        tree: &str,
        key: &[u8],
        plain: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        let sealer = self
            .day_sealer(day, true)?
            .ok_or_else(|| StoreError::Seal("day key missing".into()))?;
        let mut out = vec![DAY_SEALED];
        out.extend_from_slice(&day.to_be_bytes());
        out.extend(sealer.seal(tree.as_bytes(), key, plain)?);
        Ok(out)
    }

    /// Open a record-tree value: under its day key, or (older stores) the store key.
    /// `None` when it does not open (altered, or its day key destroyed).
    fn open_day(
        &self,
        tree: &str,
        key: &[u8],
        sealed: &[u8],
    ) -> Result<Option<Vec<u8>>, StoreError> {
        if sealed.len() > 5
            && sealed[0] == DAY_SEALED
            && let Some(sealer) = self.day_sealer(
                u32::from_be_bytes([sealed[1], sealed[2], sealed[3], sealed[4]]),
                false,
            )?
            && let Some(plain) = sealer.open(tree.as_bytes(), key, &sealed[5..])
        {
            return Ok(Some(plain));
        }
        Ok(self.sealer.open(tree.as_bytes(), key, sealed))
    }

    /// The day a stored value names in its prefix (`None`: sealed under the store key).
    fn value_day(sealed: &[u8]) -> Option<u32> {
        (sealed.len() > 5 && sealed[0] == DAY_SEALED)
            .then(|| u32::from_be_bytes([sealed[1], sealed[2], sealed[3], sealed[4]]))
    }

    fn open_record(&self, key: &[u8], sealed: &[u8]) -> Result<StoredRecord, StoreError> {
        let key_text = String::from_utf8_lossy(key).to_string();
        let plain = self
            .open_day("records", key, sealed)?
            .ok_or_else(|| StoreError::Tampered {
                tree: "records",
                key: key_text.clone(),
            })?;
        serde_json::from_slice(&plain).map_err(|e| StoreError::Corrupt {
            tree: "records",
            key: key_text,
            reason: e.to_string(),
        })
    }

    /// Serialise and seal; either failing is an error, never an empty value stored.
    fn seal_json<T: Serialize>(
        &self,
        tree: &str,
        key: &[u8],
        value: &T,
    ) -> Result<Vec<u8>, StoreError> {
        let plain = zeroize::Zeroizing::new(
            serde_json::to_vec(value).map_err(|e| StoreError::Seal(e.to_string()))?,
        );
        self.sealer.seal(tree.as_bytes(), key, &plain)
    }

    fn open_json<T: serde::de::DeserializeOwned>(
        &self,
        tree: &'static str,
        key: &[u8],
        sealed: &[u8],
    ) -> Result<T, StoreError> {
        let key_text = String::from_utf8_lossy(key).to_string();
        let plain = self
            .sealer
            .open(tree.as_bytes(), key, sealed)
            .ok_or_else(|| StoreError::Tampered {
                tree,
                key: key_text.clone(),
            })?;
        serde_json::from_slice(&plain).map_err(|e| StoreError::Corrupt {
            tree,
            key: key_text,
            reason: e.to_string(),
        })
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

    /// Walk the hash chain from the oldest retained record; report the first broken link
    /// (including records missing at the end, seen against the chain-head copy).
    pub fn verify_chain(&self) -> Result<ChainReport, StoreError> {
        let mut report = self.walk_chain()?;
        if let Some(v) = self.meta.get(META_GAP)? {
            let gap: BrokenLink = self.open_json("meta", META_GAP, &v)?;
            if report.first_broken.as_ref().is_none_or(|b| b.seq > gap.seq) {
                report.first_broken = Some(gap);
            }
        }
        Ok(report)
    }

    fn walk_chain(&self) -> Result<ChainReport, StoreError> {
        let mut expected_prev = match self.meta.get(META_ANCHOR)? {
            Some(v) => self.open_json::<String>("meta", META_ANCHOR, &v)?,
            None => GENESIS.to_string(),
        };
        let mut expected_seq: Option<u64> = None;
        let mut checked = 0;
        for kv in self.records.iter() {
            let (k, v) = kv?;
            let seq = k
                .as_ref()
                .try_into()
                .map(u64::from_be_bytes)
                .unwrap_or(u64::MAX);
            let broken = |record_id: Option<String>, reason: &str| ChainReport {
                checked,
                first_broken: Some(BrokenLink {
                    seq,
                    record_id,
                    reason: reason.to_string(),
                }),
            };
            let stored: StoredRecord = match self.open_record(&k, &v) {
                Ok(s) => s,
                Err(StoreError::Tampered { .. }) => {
                    return Ok(broken(None, "sealed value altered (authentication failed)"));
                }
                Err(e) => return Ok(broken(None, &e.to_string())),
            };
            let id = Some(stored.record.id.clone());
            if stored.seq != seq {
                return Ok(broken(id, "record moved to another position"));
            }
            if let Some(want) = expected_seq
                && seq != want
            {
                return Ok(broken(id, "a record before this one is missing"));
            }
            if stored.prev_hash != expected_prev {
                return Ok(broken(id, "previous-hash link does not match"));
            }
            if chain_hash(&stored.prev_hash, stored.seq, &stored.record) != stored.hash {
                return Ok(broken(id, "record content does not match its hash"));
            }
            expected_prev = stored.hash;
            expected_seq = Some(seq + 1);
            checked += 1;
        }
        Ok(ChainReport {
            checked,
            first_broken: None,
        })
    }

    /// Up to `max` queued records, oldest first.
    pub fn outbox_batch(&self, max: usize) -> Result<Vec<StoredRecord>, StoreError> {
        // only acknowledged records: an append in progress holds the head until it is
        // durable, and one that failed leaves its record beyond the head
        let acknowledged_end = self.lock_head().next_seq;
        let mut out = Vec::new();
        for kv in self
            .outbox
            .range(..acknowledged_end.to_be_bytes())
            .take(max)
        {
            let (k, _) = kv?;
            if let Some(v) = self.records.get(&k)? {
                out.push(self.open_record(&k, &v)?);
            }
        }
        Ok(out)
    }

    /// The server accepted these records: take them out of the outbox (durably).
    pub fn mark_uploaded(&self, seqs: &[u64], now: Timestamp) -> Result<(), StoreError> {
        let mut meta = self.sync_meta()?;
        meta.last_success = Some(now);
        meta.last_error = None;
        meta.last_error_at = None;
        let meta_value = self.seal_json("meta", META_SYNC, &meta)?;
        let removed = (&self.outbox, &self.meta)
            .transaction(|(o, m)| {
                let mut removed = 0;
                for seq in seqs {
                    if o.remove(&seq.to_be_bytes())?.is_some() {
                        removed += 1;
                    }
                }
                m.insert(META_SYNC, meta_value.as_slice())?;
                Ok(removed)
            })
            .map_err(tx_error)?;
        self.queued.fetch_sub(removed, Ordering::SeqCst);
        self.db.flush()?;
        Ok(())
    }

    /// Remember why the last upload failed (for the status strip).
    pub fn record_sync_error(&self, error: &str, now: Timestamp) -> Result<(), StoreError> {
        let mut meta = self.sync_meta()?;
        meta.last_error = Some(error.to_string());
        meta.last_error_at = Some(now);
        self.meta
            .insert(META_SYNC, self.seal_json("meta", META_SYNC, &meta)?)?;
        Ok(())
    }

    fn sync_meta(&self) -> Result<SyncMeta, StoreError> {
        match self.meta.get(META_SYNC)? {
            Some(v) => self.open_json("meta", META_SYNC, &v),
            None => Ok(SyncMeta::default()),
        }
    }

    pub fn sync_state(&self) -> Result<SyncState, StoreError> {
        let meta = self.sync_meta()?;
        let oldest_queued_at = match self.outbox.first()? {
            Some((k, v)) => self
                .open_day("outbox", &k, &v)?
                .and_then(|b| b.try_into().ok())
                .map(|b: [u8; 8]| Timestamp(i64::from_be_bytes(b))),
            None => None,
        };
        Ok(SyncState {
            queued: self.queued.load(Ordering::SeqCst),
            oldest_queued_at,
            last_success: meta.last_success,
            last_error: meta.last_error,
            last_error_at: meta.last_error_at,
            chain_conflict: meta.chain_conflict,
        })
    }

    /// Drop uploaded records appended before `cutoff` (retention). The hash of the last
    /// dropped record becomes the chain anchor, so the rest still verifies.
    pub fn purge_uploaded_before(&self, cutoff: Timestamp) -> Result<usize, StoreError> {
        let _head = self.lock_head();
        let mut removed = 0;
        for kv in self.records.iter() {
            let (k, v) = kv?;
            if self.outbox.contains_key(&k)? {
                break;
            }
            let stored: StoredRecord = self.open_record(&k, &v)?;
            if stored.appended_at >= cutoff {
                break;
            }
            let anchor = self.seal_json("meta", META_ANCHOR, &stored.hash)?;
            (&self.records, &self.meta)
                .transaction(|(r, m)| {
                    r.remove(&k)?;
                    m.insert(META_ANCHOR, anchor.as_slice())?;
                    Ok(())
                })
                .map_err(tx_error)?;
            removed += 1;
        }
        self.db.flush()?;
        Ok(removed)
    }

    /// Retention: drop uploaded records appended more than `retention_days` before `now`,
    /// then destroy the key of every past day that no remaining record or outbox entry is
    /// sealed under. Run at start and on a timer.
    pub fn purge_expired(
        &self,
        now: Timestamp,
        retention_days: u32,
    ) -> Result<PurgeReport, StoreError> {
        let cutoff = Timestamp(now.0 - i64::from(retention_days) * MS_PER_DAY);
        let records_removed = self.purge_uploaded_before(cutoff)?;
        let _head = self.lock_head();
        let mut in_use = std::collections::BTreeSet::new();
        for tree in [&self.records, &self.outbox] {
            for kv in tree.iter() {
                let (_, v) = kv?;
                if let Some(day) = Self::value_day(&v) {
                    in_use.insert(day);
                }
            }
        }
        let today = day_of(now);
        let mut day_keys_destroyed = vec![];
        let dir = self.dir.join(DAY_KEYS_DIR);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(PurgeReport {
                    records_removed,
                    day_keys_destroyed,
                });
            }
            Err(e) => return Err(StoreError::Io(format!("{}: {e}", dir.display()))),
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let Some(day) = name
                .strip_suffix(".key")
                .and_then(|d| d.parse::<u32>().ok())
            else {
                continue;
            };
            if day >= today || in_use.contains(&day) {
                continue;
            }
            self.day_sealers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&day);
            crate::keys::destroy_private(&entry.path()).map_err(|e| StoreError::Key {
                path: entry.path().display().to_string(),
                reason: e.to_string(),
            })?;
            day_keys_destroyed.push(day);
        }
        day_keys_destroyed.sort_unstable();
        Ok(PurgeReport {
            records_removed,
            day_keys_destroyed,
        })
    }

    /// When the oldest record will be purged: its append time plus the retention period,
    /// once it has been uploaded (`None` while it waits in the outbox, or with no records).
    pub fn next_purge(&self, retention_days: u32) -> Result<Option<Timestamp>, StoreError> {
        let Some((k, v)) = self.records.first()? else {
            return Ok(None);
        };
        if self.outbox.contains_key(&k)? {
            return Ok(None);
        }
        let r = self.open_record(&k, &v)?;
        Ok(Some(Timestamp(
            r.appended_at.0 + i64::from(retention_days) * MS_PER_DAY,
        )))
    }

    /// Day keys on disk (days since 1970-01-01, UTC), for status and the tests.
    pub fn day_keys(&self) -> Vec<u32> {
        let mut days: Vec<u32> = std::fs::read_dir(self.dir.join(DAY_KEYS_DIR))
            .map(|e| {
                e.flatten()
                    .filter_map(|e| {
                        e.file_name()
                            .to_string_lossy()
                            .strip_suffix(".key")
                            .and_then(|d| d.parse().ok())
                    })
                    .collect()
            })
            .unwrap_or_default();
        days.sort_unstable();
        days
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
