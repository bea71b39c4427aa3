//! What needs the admin before it stops the tablet: one date that would take down a fleet
//! (the server CRL's next update: past it every tablet refuses the server), the unit
//! certificate's end, and records that have waited too long for the line. `status` lists
//! these in English; the status strip shows the most urgent in a few Japanese characters.
//! Nothing here deletes anything: a record unsynced for long is a warning, never a purge.
//!
//! Pure: the caller gathers the dates (pki, store) and gets the warnings back.
//!
//! The thresholds: the CRL's next update warns 7 days ahead and is urgent on the last
//! day; the unit certificate's end warns at 30 days and again at 7; records unsynced for
//! more than `unsynced_warning_days` (device.toml, default 3) warn.

use crate::domain::Timestamp;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;
/// Warn this many days before the CRL's next update, then urgently one day before.
pub const CRL_WARN_DAYS: i64 = 7;
pub const CRL_URGENT_DAYS: i64 = 1;
/// Warn this many days before the unit certificate expires, urgently a week before.
pub const CERT_WARN_DAYS: i64 = 30;
pub const CERT_URGENT_DAYS: i64 = 7;
/// The default for `device.toml`'s `unsynced_warning_days`.
pub const UNSYNCED_WARNING_DAYS: u32 = 3;

/// How soon the admin must act.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Warn,
    Urgent,
}

/// What a warning is about (the strip puts each kind in its own place).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topic {
    ServerCrl,
    UnitCertificate,
    Unsynced,
}

/// One warning: for the admin's `status` (English) and for the strip (short Japanese).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpkeepWarning {
    pub topic: Topic,
    pub severity: Severity,
    pub en: String,
    pub ja: String,
}

/// The dates the warnings are judged from.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    pub now: Timestamp,
    pub unit_certificate_not_after: Option<Timestamp>,
    pub server_crl_next_update: Option<Timestamp>,
    pub oldest_unsynced: Option<Timestamp>,
    pub unsynced_warning_days: u32,
}

/// Whole days from `now` until `then` (negative once past), rounded down.
fn days_until(now: Timestamp, then: Timestamp) -> i64 {
    (then.0 - now.0).div_euclid(DAY_MS)
}

/// The warnings, most urgent first.
pub fn warnings(f: &Facts) -> Vec<UpkeepWarning> {
    let mut out = vec![];
    if let Some(next) = f.server_crl_next_update {
        let left_ms = next.0 - f.now.0;
        let days = days_until(f.now, next);
        let w = |severity, en: String, ja: String| UpkeepWarning {
            topic: Topic::ServerCrl,
            severity,
            en,
            ja,
        };
        if left_ms <= 0 {
            out.push(w(
                Severity::Urgent,
                "the server CRL is past its next update: the tablet refuses the server until a new CRL is installed (mynakyukyu-admin install-crl)".into(),
                "CRL期限切れ".into(),
            ));
        } else if left_ms <= CRL_URGENT_DAYS * DAY_MS {
            out.push(w(
                Severity::Urgent,
                format!(
                    "the server CRL's next update is within a day ({} h): install the new CRL now, or every tablet refuses the server then",
                    left_ms / (60 * 60 * 1000)
                ),
                "CRL 1日以内".into(),
            ));
        } else if days < CRL_WARN_DAYS {
            out.push(w(
                Severity::Warn,
                format!(
                    "the server CRL's next update is in {days} days: install the new CRL before then"
                ),
                format!("CRL {days}日"),
            ));
        }
    }
    if let Some(end) = f.unit_certificate_not_after {
        let days = days_until(f.now, end);
        let (severity, en, ja) = if end.0 <= f.now.0 {
            (
                Some(Severity::Urgent),
                "the unit certificate has expired: the server refuses this tablet; renew it"
                    .to_string(),
                "証明書 期限切れ".to_string(),
            )
        } else if days < CERT_URGENT_DAYS {
            (
                Some(Severity::Urgent),
                format!("the unit certificate expires in {days} days: renew it now"),
                format!("証明書 {days}日"),
            )
        } else if days < CERT_WARN_DAYS {
            (
                Some(Severity::Warn),
                format!("the unit certificate expires in {days} days: renew it"),
                format!("証明書 {days}日"),
            )
        } else {
            (None, String::new(), String::new())
        };
        if let Some(severity) = severity {
            out.push(UpkeepWarning {
                topic: Topic::UnitCertificate,
                severity,
                en,
                ja,
            });
        }
    }
    if let Some(oldest) = f.oldest_unsynced {
        let days = days_until(oldest, f.now);
        if f.unsynced_warning_days > 0 && days >= i64::from(f.unsynced_warning_days) {
            out.push(UpkeepWarning {
                topic: Topic::Unsynced,
                severity: Severity::Warn,
                en: format!(
                    "records have waited {days} days to be sent (the oldest since {}): nothing is deleted; check the line, the tunnel and the server",
                    oldest.to_rfc3339()
                ),
                ja: format!("未送信 {days}日"),
            });
        }
    }
    out.sort_by_key(|w| std::cmp::Reverse(w.severity));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(days: f64) -> Timestamp {
        Timestamp(1_800_000_000_000 + (days * DAY_MS as f64) as i64)
    }

    fn facts() -> Facts {
        Facts {
            now: at(0.0),
            unsynced_warning_days: 3,
            ..Facts::default()
        }
    }

    #[test]
    fn the_crl_warns_seven_days_ahead_then_urgently_the_last_day_then_says_it_is_past() {
        let at_crl = |next: f64| {
            warnings(&Facts {
                server_crl_next_update: Some(at(next)),
                ..facts()
            })
        };
        assert!(at_crl(7.5).is_empty(), "more than 7 days: quiet");
        let w = at_crl(6.5);
        assert_eq!(
            (w[0].severity, w[0].ja.as_str()),
            (Severity::Warn, "CRL 6日")
        );
        let w = at_crl(0.5);
        assert_eq!(w[0].severity, Severity::Urgent);
        assert_eq!(w[0].ja, "CRL 1日以内");
        let w = at_crl(-0.1);
        assert_eq!(w[0].ja, "CRL期限切れ");
        assert!(w[0].en.contains("install-crl"));
    }

    #[test]
    fn the_certificate_warns_a_month_ahead_and_urgently_the_last_week() {
        let at_cert = |end: f64| {
            warnings(&Facts {
                unit_certificate_not_after: Some(at(end)),
                ..facts()
            })
        };
        assert!(at_cert(31.0).is_empty());
        assert_eq!(at_cert(20.5)[0].severity, Severity::Warn);
        assert_eq!(at_cert(20.5)[0].ja, "証明書 20日");
        assert_eq!(at_cert(3.5)[0].severity, Severity::Urgent);
        assert_eq!(at_cert(-1.0)[0].ja, "証明書 期限切れ");
    }

    #[test]
    fn records_waiting_past_the_set_days_are_a_warning_and_the_most_urgent_comes_first() {
        let w = warnings(&Facts {
            oldest_unsynced: Some(at(-2.9)),
            ..facts()
        });
        assert!(w.is_empty(), "under 3 days: quiet");
        let w = warnings(&Facts {
            oldest_unsynced: Some(at(-4.2)),
            server_crl_next_update: Some(at(0.2)),
            ..facts()
        });
        assert_eq!(w.len(), 2);
        assert_eq!(w[0].topic, Topic::ServerCrl, "urgent first");
        assert_eq!(w[1].ja, "未送信 4日");
        assert!(w[1].en.contains("nothing is deleted"));
        // 0 turns the unsynced warning off
        let w = warnings(&Facts {
            oldest_unsynced: Some(at(-40.0)),
            unsynced_warning_days: 0,
            ..facts()
        });
        assert!(w.is_empty());
    }
}
