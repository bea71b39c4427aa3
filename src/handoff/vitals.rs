//! Vital signs as the crew enters them with gloves on: every value optional, each checked
//! against a plausible range so that a slip of the finger (BP 1200) is asked again instead
//! of sent. JCS in its real steps, GCS beside it.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Japan Coma Scale: 0, I-1…3, II-10/20/30, III-100/200/300.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u16", into = "u16")]
pub struct Jcs(u16);

impl Jcs {
    /// The scale's steps, in order.
    pub const STEPS: [u16; 10] = [0, 1, 2, 3, 10, 20, 30, 100, 200, 300];

    pub fn new(value: u16) -> Option<Jcs> {
        Jcs::STEPS.contains(&value).then_some(Jcs(value))
    }

    pub fn value(self) -> u16 {
        self.0
    }
}

impl TryFrom<u16> for Jcs {
    type Error = String;
    fn try_from(v: u16) -> Result<Jcs, String> {
        Jcs::new(v).ok_or_else(|| format!("JCS {v} is not a step of the scale"))
    }
}

impl From<Jcs> for u16 {
    fn from(j: Jcs) -> u16 {
        j.0
    }
}

/// One set of vitals; what was not measured is `None`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Vitals {
    pub jcs: Option<Jcs>,
    pub gcs: Option<u8>,
    pub bp_systolic: Option<u16>,
    pub bp_diastolic: Option<u16>,
    pub heart_rate: Option<u16>,
    pub respiratory_rate: Option<u16>,
    pub spo2: Option<u8>,
    /// Body temperature in tenths of a degree (36.8 °C = 368).
    pub temperature_tenths: Option<u16>,
}

/// A value outside what a living patient shows: asked again, never sent.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("{what} {value} is outside {low}–{high}: enter it again")]
pub struct VitalError {
    pub what: &'static str,
    pub value: u16,
    pub low: u16,
    pub high: u16,
}

impl Vitals {
    /// Every value present within its range, and the diastolic below the systolic.
    pub fn check(&self) -> Result<(), VitalError> {
        let range = |what: &'static str, v: Option<u16>, low: u16, high: u16| match v {
            Some(value) if !(low..=high).contains(&value) => Err(VitalError {
                what,
                value,
                low,
                high,
            }),
            _ => Ok(()),
        };
        range("GCS", self.gcs.map(u16::from), 3, 15)?;
        range("BP systolic", self.bp_systolic, 20, 300)?;
        range("BP diastolic", self.bp_diastolic, 10, 200)?;
        range("HR", self.heart_rate, 0, 300)?;
        range("RR", self.respiratory_rate, 0, 80)?;
        range("SpO2", self.spo2.map(u16::from), 30, 100)?;
        range("BT (0.1 °C)", self.temperature_tenths, 250, 440)?;
        if let (Some(s), Some(d)) = (self.bp_systolic, self.bp_diastolic)
            && d >= s
        {
            return Err(VitalError {
                what: "BP diastolic",
                value: d,
                low: 10,
                high: s.saturating_sub(1),
            });
        }
        Ok(())
    }
}
