//! The server CRL's next update for the status strip, read again only when the file
//! changes (the strip refreshes at every command; the CRL is parsed and its signature
//! checked only after an admin's `install-crl`).

use crate::domain::Timestamp;
use std::path::Path;
use std::time::SystemTime;

#[derive(Default)]
pub struct CrlWatch {
    /// The CRL file's modification time when read, and what it said.
    read: Option<(SystemTime, Option<Timestamp>)>,
}

impl CrlWatch {
    /// The next update of the CRL in `data_dir` (none without a data dir or a CRL).
    pub fn next_update(&mut self, data_dir: Option<&Path>) -> Option<Timestamp> {
        let dir = data_dir?;
        let modified = std::fs::metadata(dir.join(crate::config::SERVER_CRL_FILE))
            .and_then(|m| m.modified())
            .ok()?;
        match &self.read {
            Some((at, next)) if *at == modified => *next,
            _ => {
                let next = crate::config::server_crl_next_update(dir);
                self.read = Some((modified, next));
                next
            }
        }
    }
}
