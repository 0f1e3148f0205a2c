//! Keys the bridged operator presses on their phone that mean something to Openline: `*1`
//! pauses the call's recording (the caller is about to read out a card number), `*2` resumes
//! it. The two presses must come within [`KEY_GAP`]; anything else is just a key, and every key
//! still reaches the caller as it always did (a bridge relays RFC 4733 events as they come, so
//! the caller's phone may play the tones: what a caller hears while an operator types anyway).

use std::time::{Duration, Instant};

/// How long after `*` the second key still counts as part of the code.
pub const KEY_GAP: Duration = Duration::from_secs(3);

/// What an operator's key code asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperatorKey {
    PauseRecording,
    ResumeRecording,
}

/// Reads the operator's key presses, one at a time.
#[derive(Debug, Default)]
pub struct OperatorKeys {
    /// `*` was pressed at this instant, and no key since.
    star_at: Option<Instant>,
}

impl OperatorKeys {
    /// One key press at `now`: the code it completes, if any.
    pub fn press(&mut self, now: Instant, digit: char) -> Option<OperatorKey> {
        let after_star = self
            .star_at
            .take()
            .is_some_and(|at| now.saturating_duration_since(at) <= KEY_GAP);
        match (after_star, digit) {
            (_, '*') => {
                self.star_at = Some(now);
                None
            }
            (true, '1') => Some(OperatorKey::PauseRecording),
            (true, '2') => Some(OperatorKey::ResumeRecording),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Key presses (ms after the first, key) and what each returns.
    type Case = (&'static [(u64, char)], &'static [Option<OperatorKey>]);

    #[test]
    fn star_then_one_or_two_within_the_gap_are_the_codes_and_nothing_else_is() {
        let t0 = crate::testing::t0();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        const GAP: u64 = KEY_GAP.as_millis() as u64;
        let table: &[Case] = &[
            (
                &[(0, '*'), (500, '1')],
                &[None, Some(OperatorKey::PauseRecording)],
            ),
            (
                &[(0, '*'), (500, '2')],
                &[None, Some(OperatorKey::ResumeRecording)],
            ),
            // The second key exactly at the gap still counts; a moment later it does not.
            (
                &[(0, '*'), (GAP, '1')],
                &[None, Some(OperatorKey::PauseRecording)],
            ),
            (&[(0, '*'), (GAP + 1, '1')], &[None, None]),
            // Keys alone, or with another key between, are just keys.
            (&[(0, '1'), (100, '2')], &[None, None]),
            (&[(0, '*'), (100, '5'), (200, '1')], &[None, None, None]),
            (&[(0, '*'), (100, '3')], &[None, None]),
            // `**1`: the second star starts the code afresh.
            (
                &[(0, '*'), (100, '*'), (200, '1')],
                &[None, None, Some(OperatorKey::PauseRecording)],
            ),
            // A code is used once: `*1` then `1` again is just a key.
            (
                &[(0, '*'), (100, '1'), (200, '1')],
                &[None, Some(OperatorKey::PauseRecording), None],
            ),
            // `#` and letters (RFC 4733 A-D) are never part of a code.
            (&[(0, '*'), (100, '#'), (200, '2')], &[None, None, None]),
        ];
        for (presses, expected) in table {
            let mut keys = OperatorKeys::default();
            let got: Vec<Option<OperatorKey>> = presses
                .iter()
                .map(|(ms, digit)| keys.press(at(*ms), *digit))
                .collect();
            assert_eq!(got, *expected, "{presses:?}");
        }
    }
}
