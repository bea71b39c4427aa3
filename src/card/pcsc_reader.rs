//! Readers through pcscd (the `pcsc` crate): list readers, wait for a card without busy
//! looping (get_status_change, cancellable by timeout, following readers that appear),
//! connect, transmit, and disconnect leaving the card as it is.

use super::{CardError, Transport};
use std::ffi::CString;
use std::time::{Duration, Instant};

fn map(e: pcsc::Error) -> CardError {
    match e {
        pcsc::Error::NoReadersAvailable => CardError::NoReader,
        pcsc::Error::NoService | pcsc::Error::ServiceStopped => CardError::ServiceDown,
        pcsc::Error::UnknownReader | pcsc::Error::ReaderUnavailable => CardError::NoReader,
        pcsc::Error::RemovedCard | pcsc::Error::NoSmartcard | pcsc::Error::ResetCard => {
            CardError::Removed
        }
        pcsc::Error::NotTransacted => CardError::Removed,
        pcsc::Error::SharingViolation => CardError::ReaderBusy,
        pcsc::Error::UnresponsiveCard | pcsc::Error::UnpoweredCard => {
            CardError::Unresponsive(e.to_string())
        }
        pcsc::Error::Timeout => CardError::Timeout,
        other => CardError::Pcsc(other.to_string()),
    }
}

/// A connection to pcscd.
pub struct Pcsc {
    ctx: pcsc::Context,
}

/// Cancels a `wait_for_card` under way on another thread (the crew left the Ready screen).
#[derive(Clone)]
pub struct WaitCanceller(pcsc::Context);

impl WaitCanceller {
    pub fn cancel(&self) {
        let _ = self.0.cancel();
    }
}

/// A card connected in a reader.
pub struct PcscCard {
    card: Option<pcsc::Card>,
    pub reader: String,
}

impl Pcsc {
    pub fn establish() -> Result<Pcsc, CardError> {
        pcsc::Context::establish(pcsc::Scope::User)
            .map(|ctx| Pcsc { ctx })
            .map_err(map)
    }

    pub fn canceller(&self) -> WaitCanceller {
        WaitCanceller(self.ctx.clone())
    }

    pub fn readers(&self) -> Result<Vec<String>, CardError> {
        match self.ctx.list_readers_owned() {
            Ok(v) => Ok(v
                .into_iter()
                .map(|c| c.to_string_lossy().into_owned())
                .collect()),
            Err(pcsc::Error::NoReadersAvailable) => Ok(vec![]),
            Err(e) => Err(map(e)),
        }
    }

    /// Wait until a card is present in `reader` (or any reader), following readers that
    /// appear meanwhile; returns the reader's name.
    pub fn wait_for_card(
        &self,
        reader: Option<&str>,
        timeout: Duration,
    ) -> Result<String, CardError> {
        let deadline = Instant::now() + timeout;
        let mut states: Vec<pcsc::ReaderState> = vec![pcsc::ReaderState::new(
            pcsc::PNP_NOTIFICATION(),
            pcsc::State::UNAWARE,
        )];
        loop {
            // keep one state per current reader, plus the plug-and-play pseudo reader
            let names = self.readers()?;
            states.retain(|s| {
                s.name() == pcsc::PNP_NOTIFICATION()
                    || names.iter().any(|n| n.as_bytes() == s.name().to_bytes())
            });
            for n in &names {
                if reader.is_some_and(|r| r != n) {
                    continue;
                }
                if !states.iter().any(|s| s.name().to_bytes() == n.as_bytes())
                    && let Ok(c) = CString::new(n.as_str())
                {
                    states.push(pcsc::ReaderState::new(c, pcsc::State::UNAWARE));
                }
            }
            for s in &states[1..] {
                if s.event_state().contains(pcsc::State::PRESENT)
                    && !s.event_state().contains(pcsc::State::MUTE)
                {
                    return Ok(s.name().to_string_lossy().into_owned());
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(CardError::Timeout);
            }
            for s in &mut states {
                s.sync_current_state();
            }
            match self.ctx.get_status_change(left, &mut states) {
                Ok(()) | Err(pcsc::Error::Timeout) => {}
                Err(pcsc::Error::Cancelled) => return Err(CardError::Cancelled),
                Err(e) => return Err(map(e)),
            }
        }
    }

    /// Wait until the card leaves `reader` (or the reader itself goes away).
    pub fn wait_for_removal(&self, reader: &str, timeout: Duration) -> Result<(), CardError> {
        let name = CString::new(reader).map_err(|_| CardError::NoReader)?;
        let deadline = Instant::now() + timeout;
        let mut states = vec![pcsc::ReaderState::new(name, pcsc::State::UNAWARE)];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(CardError::Timeout);
            }
            match self.ctx.get_status_change(left, &mut states) {
                Ok(()) | Err(pcsc::Error::Timeout) => {}
                Err(pcsc::Error::Cancelled) => return Err(CardError::Cancelled),
                Err(pcsc::Error::UnknownReader) | Err(pcsc::Error::NoService) => return Ok(()),
                Err(e) => return Err(map(e)),
            }
            let state = states[0].event_state();
            if state.contains(pcsc::State::EMPTY)
                || state.contains(pcsc::State::UNAVAILABLE)
                || state.contains(pcsc::State::UNKNOWN)
            {
                return Ok(());
            }
            states[0].sync_current_state();
        }
    }

    pub fn connect(&self, reader: &str) -> Result<PcscCard, CardError> {
        let name = CString::new(reader).map_err(|_| CardError::NoReader)?;
        let card = self
            .ctx
            .connect(&name, pcsc::ShareMode::Shared, pcsc::Protocols::ANY)
            .map_err(map)?;
        Ok(PcscCard {
            card: Some(card),
            reader: reader.to_string(),
        })
    }
}

/// Wait for a card even while the reader stack is not up yet (pcscd starting after the
/// app, restarted, or no reader plugged in): once pcscd answers, readers that appear are
/// followed by `wait_for_card`; while it does not, it is asked again every 250 ms.
pub fn wait_for_card_anywhere(
    reader: Option<&str>,
    timeout: Duration,
) -> Result<(Pcsc, String), CardError> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(CardError::Timeout);
        }
        match Pcsc::establish() {
            Ok(p) => match p.wait_for_card(reader, left) {
                Ok(name) => return Ok((p, name)),
                Err(CardError::ServiceDown | CardError::NoReader) => {}
                Err(e) => return Err(e),
            },
            Err(CardError::ServiceDown) => {}
            Err(e) => return Err(e),
        }
        std::thread::sleep(Duration::from_millis(250).min(left));
    }
}

impl Transport for PcscCard {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, CardError> {
        let card = self.card.as_ref().ok_or(CardError::Removed)?;
        let mut buf = [0u8; pcsc::MAX_BUFFER_SIZE];
        card.transmit(apdu, &mut buf)
            .map(<[u8]>::to_vec)
            .map_err(map)
    }
}

impl Drop for PcscCard {
    /// Dropping a `pcsc::Card` resets the card; leave it as it is instead.
    fn drop(&mut self) {
        if let Some(card) = self.card.take() {
            let _ = card.disconnect(pcsc::Disposition::LeaveCard);
        }
    }
}
