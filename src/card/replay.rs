//! A card that answers from a script: each APDU gets the next recorded answer, whatever it
//! asked. The fuzz target `card_answers` (tests/fuzz) feeds the JPKI reads scripts made of
//! arbitrary bytes; tests/fuzz_seeds.rs records a real read into one for the seed corpus.
//!
//! A script's bytes are frames, each a big-endian `u16` length and that many bytes of
//! answer (a short R-APDU is at most 258 bytes); a frame cut short is taken as it is.

use super::{CardError, Transport};

pub struct ReplayCard {
    answers: Vec<Vec<u8>>,
    next: usize,
}

impl ReplayCard {
    pub fn new(answers: Vec<Vec<u8>>) -> ReplayCard {
        ReplayCard { answers, next: 0 }
    }

    /// Decode a script (see the module doc).
    pub fn from_frames(mut bytes: &[u8]) -> ReplayCard {
        let mut answers = vec![];
        while bytes.len() >= 2 {
            let n = usize::from(u16::from_be_bytes([bytes[0], bytes[1]]));
            let end = (2 + n).min(bytes.len());
            answers.push(bytes[2..end].to_vec());
            bytes = &bytes[end..];
        }
        ReplayCard::new(answers)
    }

    /// Encode answers as a script. An answer over 65,535 bytes is cut there.
    pub fn frames(answers: &[Vec<u8>]) -> Vec<u8> {
        let mut out = vec![];
        for a in answers {
            let n = a.len().min(usize::from(u16::MAX));
            out.extend_from_slice(&(n as u16).to_be_bytes());
            out.extend_from_slice(&a[..n]);
        }
        out
    }
}

impl Transport for ReplayCard {
    /// Past the end of the script the card is gone, as a card pulled out mid-read is.
    fn transmit(&mut self, _apdu: &[u8]) -> Result<Vec<u8>, CardError> {
        let a = self.answers.get(self.next).cloned();
        self.next += 1;
        a.ok_or(CardError::Removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_script_decodes_to_its_answers_and_a_cut_frame_is_kept() {
        let answers = vec![vec![0x90, 0x00], vec![], vec![1, 2, 3, 0x90, 0x00]];
        let mut bytes = ReplayCard::frames(&answers);
        let mut c = ReplayCard::from_frames(&bytes);
        for a in &answers {
            assert_eq!(&c.transmit(&[0]).unwrap(), a);
        }
        assert!(matches!(c.transmit(&[0]), Err(CardError::Removed)));
        bytes.truncate(bytes.len() - 2);
        let mut c = ReplayCard::from_frames(&bytes);
        c.transmit(&[0]).unwrap();
        c.transmit(&[0]).unwrap();
        assert_eq!(c.transmit(&[0]).unwrap(), vec![1, 2, 3]);
    }
}
