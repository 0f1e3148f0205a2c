//! A campaign's settings as stored with it (JSON in the `broadcasts` row) and checked into the
//! values the dispatcher and the call layer use. Pure.

use super::amd::AmdSettings;
use super::outcome::RetryRules;
use super::window::{CallingWindow, parse_zones};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// What the recipient hears.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Message {
    /// An uploaded recording, stored as 8 kHz WAV at this path under the data directory.
    Audio { file: String },
    /// Text for the text-to-speech engine.
    Text {
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        voice: Option<String>,
    },
}

/// What to do when answering-machine detection hears a machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AmdMode {
    /// No detection: everyone hears the message at once.
    #[default]
    Off,
    /// Hang up on machines; they are called again by the `machine` retry rule.
    Hangup,
    /// Wait for the machine's beep (or the end of its greeting) and leave the message.
    LeaveMessage,
}

/// The settings as stored (durations in seconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredSettings {
    pub message: Message,
    /// An IVR flow run after the message (press 1 to confirm, 2 for an operator…).
    #[serde(default)]
    pub answer_flow: Option<String>,
    /// The digit that puts the number on the do-not-call list.
    #[serde(default)]
    pub opt_out_digit: Option<char>,
    /// Local days → hours, as a flow's business hours.
    pub window: BTreeMap<String, String>,
    /// Judge the window in this zone for everyone (else each number's own zones).
    #[serde(default)]
    pub timezone: Option<String>,
    pub max_attempts: u32,
    #[serde(default)]
    pub retry_busy_secs: Option<u64>,
    #[serde(default)]
    pub retry_no_answer_secs: Option<u64>,
    #[serde(default)]
    pub retry_failed_secs: Option<u64>,
    #[serde(default)]
    pub retry_machine_secs: Option<u64>,
    pub max_ring_secs: u64,
    #[serde(default)]
    pub amd: AmdMode,
}

/// The settings checked: what the dispatcher and the calls run with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub message: Message,
    pub answer_flow: Option<String>,
    pub opt_out_digit: Option<char>,
    pub window: CallingWindow,
    pub timezone: Option<Vec<jiff::tz::TimeZone>>,
    pub retry: RetryRules,
    pub max_ring: Duration,
    pub amd: AmdMode,
    pub amd_settings: AmdSettings,
}

/// Why stored or submitted settings cannot run, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct SpecError {
    pub field: &'static str,
    pub reason: String,
}

fn err(field: &'static str, reason: impl Into<String>) -> SpecError {
    SpecError {
        field,
        reason: reason.into(),
    }
}

/// The longest a recipient may be left ringing, and the most calls per recipient.
pub const MAX_RING: Duration = Duration::from_secs(180);
pub const MAX_ATTEMPTS: u32 = 20;

impl StoredSettings {
    pub fn check(&self) -> Result<Settings, SpecError> {
        match &self.message {
            Message::Audio { file } if file.is_empty() => {
                return Err(err("message", "no audio file"));
            }
            Message::Text { text, .. } if text.trim().is_empty() => {
                return Err(err("message.text", "empty"));
            }
            Message::Text { text, .. } if text.chars().count() > 2000 => {
                return Err(err("message.text", "at most 2000 characters"));
            }
            _ => {}
        }
        if let Some(d) = self.opt_out_digit
            && !matches!(d, '0'..='9' | '*' | '#')
        {
            return Err(err("opt_out_digit", "one of 0-9, * or #"));
        }
        let window =
            CallingWindow::parse(&self.window).map_err(|e| err("window", e.to_string()))?;
        if window.is_never_open() {
            return Err(err("window", "no day has calling hours"));
        }
        let timezone = self
            .timezone
            .as_deref()
            .map(parse_zones)
            .transpose()
            .map_err(|e| err("timezone", e))?;
        if !(1..=MAX_ATTEMPTS).contains(&self.max_attempts) {
            return Err(err("retry.max_attempts", format!("1 to {MAX_ATTEMPTS}")));
        }
        let max_ring = Duration::from_secs(self.max_ring_secs);
        if max_ring < Duration::from_secs(5) || max_ring > MAX_RING {
            return Err(err("max_ring", "between 5 s and 3 min"));
        }
        let secs = |s: Option<u64>| s.map(Duration::from_secs);
        Ok(Settings {
            message: self.message.clone(),
            answer_flow: self.answer_flow.clone(),
            opt_out_digit: self.opt_out_digit,
            window,
            timezone,
            retry: RetryRules {
                max_attempts: self.max_attempts,
                busy: secs(self.retry_busy_secs),
                no_answer: secs(self.retry_no_answer_secs),
                failed: secs(self.retry_failed_secs),
                machine: secs(self.retry_machine_secs),
            },
            max_ring,
            amd: self.amd,
            amd_settings: AmdSettings::default(),
        })
    }
}

impl Settings {
    /// The zones a recipient's window is judged in: the campaign's zone, else the recipient's
    /// own (`zones`, `&`-joined names from the CSV or the number's prefix).
    pub fn zones_for(&self, recipient_zones: &str) -> Vec<jiff::tz::TimeZone> {
        match &self.timezone {
            Some(zones) => zones.clone(),
            None => parse_zones(recipient_zones).unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn sample() -> StoredSettings {
        StoredSettings {
            message: Message::Text {
                text: "Your order is ready".into(),
                voice: None,
            },
            answer_flow: None,
            opt_out_digit: Some('9'),
            window: [("daily".to_string(), "09:00-20:00".to_string())].into(),
            timezone: None,
            max_attempts: 3,
            retry_busy_secs: Some(600),
            retry_no_answer_secs: Some(1800),
            retry_failed_secs: None,
            retry_machine_secs: None,
            max_ring_secs: 30,
            amd: AmdMode::Off,
        }
    }

    #[test]
    fn good_settings_check_and_round_trip_as_json() {
        let s = sample();
        let checked = s.check().expect("valid");
        assert_eq!(checked.retry.busy, Some(Duration::from_secs(600)));
        assert_eq!(checked.max_ring, Duration::from_secs(30));
        let json = serde_json::to_string(&s).expect("json");
        let back: StoredSettings = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, s);
        assert!(json.contains(r#""kind":"text""#), "{json}");
    }

    #[test]
    fn bad_settings_name_their_field() {
        type Change = Box<dyn Fn(&mut StoredSettings)>;
        let cases: Vec<(Change, &str)> = vec![
            (Box::new(|s| s.opt_out_digit = Some('x')), "opt_out_digit"),
            (
                Box::new(|s| s.window = [("mon".into(), "25:00-26:00".into())].into()),
                "window",
            ),
            (Box::new(|s| s.window = BTreeMap::new()), "window"),
            (
                Box::new(|s| s.timezone = Some("Moon/Base".into())),
                "timezone",
            ),
            (Box::new(|s| s.max_attempts = 0), "retry.max_attempts"),
            (Box::new(|s| s.max_ring_secs = 1), "max_ring"),
            (
                Box::new(|s| {
                    s.message = Message::Text {
                        text: " ".into(),
                        voice: None,
                    }
                }),
                "message.text",
            ),
        ];
        for (change, field) in cases {
            let mut s = sample();
            change(&mut s);
            assert_eq!(s.check().expect_err(field).field, field);
        }
    }

    #[test]
    fn the_campaign_zone_overrides_the_recipients() {
        let mut s = sample();
        s.timezone = Some("Europe/London".into());
        let checked = s.check().expect("valid");
        assert_eq!(checked.zones_for("Europe/Kyiv").len(), 1);
        assert_eq!(
            checked.zones_for("Europe/Kyiv")[0].iana_name(),
            Some("Europe/London")
        );
        let own = sample().check().expect("valid");
        assert_eq!(
            own.zones_for("Europe/Kyiv")[0].iana_name(),
            Some("Europe/Kyiv")
        );
    }
}
