//! The hash chain over the records: its head in sled and in a file outside it (sled drops a
//! damaged log's tail; the file shows the loss), the server's head compared with ours (a
//! rolled-back or forked store), and the walk that verifies every link.

use super::*;

impl Store {
    /// Compare sled's chain head with the copy outside sled; if the copy is ahead, records
    /// were lost from the log: remember the gap so `verify_chain` reports it.
    pub(super) fn check_head_file(&self, head: &ChainHead) -> Result<(), StoreError> {
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

    pub(super) fn remember_gap(&self, gap: BrokenLink) -> Result<(), StoreError> {
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

    pub(super) fn write_head_file(&self, head: &ChainHead) -> Result<(), StoreError> {
        use std::os::unix::fs::FileExt;
        let sealed = self.seal_json("head", HEAD_FILE.as_bytes(), head)?;
        let io = |e: std::io::Error| StoreError::Io(format!("chain head: {e}"));
        // one write over the old copy, then trim: a kill between the two leaves a whole
        // copy (truncating first would leave an empty file, which reads as emptied)
        self.head_file.write_all_at(&sealed, 0).map_err(io)?;
        self.head_file.set_len(sealed.len() as u64).map_err(io)?;
        self.head_file.sync_data().map_err(io)
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

    pub(super) fn walk_chain(&self) -> Result<ChainReport, StoreError> {
        let mut expected_prev = match self.meta.get(META_ANCHOR)? {
            Some(v) => self.open_json::<String>("meta", META_ANCHOR, &v)?,
            None => GENESIS.to_string(),
        };
        let mut last_seq: Option<u64> = None;
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
            if let Err(fault) = crate::domain::check_link(
                last_seq,
                Some(&expected_prev),
                seq,
                &stored.prev_hash,
                &stored.record,
                &stored.hash,
            ) {
                return Ok(broken(id, fault.reason()));
            }
            expected_prev = stored.hash;
            last_seq = Some(seq);
            checked += 1;
        }
        Ok(ChainReport {
            checked,
            first_broken: None,
        })
    }
}
