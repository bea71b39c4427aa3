//! The virtual card's side of the vpcd protocol: the card connects to pcscd's vpcd driver
//! over TCP (insertion) and answers until the socket closes (removal). Both directions
//! frame messages as a 2-byte big-endian length and the bytes; a 1-byte message is a
//! control (00 power off, 01 power on, 02 reset, 04 get ATR — only the last is answered).
//! vpcd sends header and body in two writes without TCP_NODELAY, so the card sets
//! TCP_QUICKACK after every header read; without it each APDU stalls about 44 ms.

use super::virtual_card::{JPKI_ATR, VirtualCard};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::linux::net::TcpStreamExt;
use std::time::Duration;

/// Why the card left the reader.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// pcscd closed the connection.
    ReaderClosed,
    /// The card's remove fault fired.
    Removed,
}

fn read_frame(s: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 2];
    match s.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let _ = s.set_quickack(true);
    let mut body = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut body)?;
    let _ = s.set_quickack(true);
    Ok(Some(body))
}

fn write_frame(s: &mut TcpStream, body: &[u8]) -> std::io::Result<()> {
    let mut frame = (body.len() as u16).to_be_bytes().to_vec();
    frame.extend_from_slice(body);
    s.write_all(&frame)
}

/// Insert the card into the vpcd reader at `addr` and serve it until removed.
pub fn serve(card: &mut VirtualCard, addr: &str) -> std::io::Result<Ended> {
    let mut s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    serve_stream(card, &mut s)
}

/// Keep the card in the vpcd reader at `addr` on a thread of its own for the life of the
/// process: served, and inserted again 100 ms after each time pcscd lets it go. Returns the
/// count of command APDUs it answered (benchmarks count the APDUs another program sends).
pub fn keep_inserted(
    mut card: VirtualCard,
    addr: &str,
) -> std::sync::Arc<std::sync::atomic::AtomicUsize> {
    let counter = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (count, addr) = (counter.clone(), addr.to_string());
    std::thread::spawn(move || {
        loop {
            let _ = serve_counted(&mut card, &addr, &count);
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    counter
}

/// Like [`serve`], counting every command APDU answered in `counter`.
pub fn serve_counted(
    card: &mut VirtualCard,
    addr: &str,
    counter: &std::sync::atomic::AtomicUsize,
) -> std::io::Result<Ended> {
    let mut s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    serve_inner(card, &mut s, Some(counter))
}

pub fn serve_stream(card: &mut VirtualCard, s: &mut TcpStream) -> std::io::Result<Ended> {
    serve_inner(card, s, None)
}

fn serve_inner(
    card: &mut VirtualCard,
    s: &mut TcpStream,
    counter: Option<&std::sync::atomic::AtomicUsize>,
) -> std::io::Result<Ended> {
    loop {
        let Some(msg) = read_frame(s)? else {
            return Ok(Ended::ReaderClosed);
        };
        match msg.as_slice() {
            [0x04] => write_frame(s, &JPKI_ATR)?,
            [0x00] | [0x01] | [0x02] => card.reset(),
            [_] => {}
            apdu => {
                if let Some(c) = counter {
                    c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                if card.faults.slow_ms > 0 {
                    std::thread::sleep(Duration::from_millis(card.faults.slow_ms));
                }
                match card.transmit(apdu) {
                    Some(answer) => write_frame(s, &answer)?,
                    None => {
                        let _ = s.shutdown(std::net::Shutdown::Both);
                        return Ok(Ended::Removed);
                    }
                }
            }
        }
    }
}
