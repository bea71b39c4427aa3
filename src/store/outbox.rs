//! The outbox: records waiting for the eligibility system, in order, and what the last
//! attempt to send them said (the sync state the status strip and `status` show).

use super::*;

impl Store {
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

    pub(super) fn sync_meta(&self) -> Result<SyncMeta, StoreError> {
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
}
