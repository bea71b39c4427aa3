//! Retention: uploaded records past the retention period are purged and every day key no
//! remaining record needs is destroyed (expiry is key destruction). Nothing unsent goes.

use super::*;

impl Store {
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
}
