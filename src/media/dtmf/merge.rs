//! One key press, one digit: merges digits from RFC 4733 events, SIP INFO and the in-band detector
//! that describe the same press (a gateway or phone that sends more than one), on the call's 8 kHz
//! media clock.

/// Where a digit came from (a bit each, so a press remembers every path that reported it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Rfc4733 = 1,
    Inband = 2,
    SipInfo = 4,
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    digit: char,
    at: u64,
    /// The sources that reported this press so far (`Source` bits).
    sources: u8,
}

/// Most digits remembered; older ones are forgotten first (a press is far rarer than this).
const MAX_REMEMBERED: usize = 32;

/// Merges the digit sources of a call.
///
/// A digit from one source is swallowed when the same digit came from *another* source within
/// `window_samples` (either order) and that press has not been reported by this source yet;
/// otherwise it is passed on. So each source keeps its own repeats (a fast "55" over RFC 4733 stays
/// two digits), a press reported several ways yields one digit (whichever arrived first), and
/// different digits are never merged.
#[derive(Debug, Clone)]
pub struct DigitMerger {
    window: u64,
    recent: Vec<Seen>,
}

impl DigitMerger {
    /// `window_samples`: how far apart on the media clock the reports of one press may be, e.g.
    /// `8000 * 3 / 10` (300 ms); it must cover the in-band detector's latency, any clock offset and,
    /// for SIP INFO, the signalling path's delay.
    pub fn new(window_samples: u64) -> Self {
        DigitMerger {
            window: window_samples,
            recent: Vec::new(),
        }
    }

    /// A digit from RFC 4733 events; `at_sample` is the press's position on the call's media clock.
    /// Returns the digit unless another path already reported this press.
    pub fn rfc4733(&mut self, digit: char, at_sample: u64) -> Option<char> {
        self.accept(Source::Rfc4733, digit, at_sample)
    }

    /// A digit from the in-band detector (its `start_sample`, mapped to the call's media clock).
    /// Returns the digit unless another path already reported this press.
    pub fn inband(&mut self, digit: char, at_sample: u64) -> Option<char> {
        self.accept(Source::Inband, digit, at_sample)
    }

    /// A digit from a SIP INFO (its arrival, mapped to the call's media clock).
    /// Returns the digit unless another path already reported this press.
    pub fn sip_info(&mut self, digit: char, at_sample: u64) -> Option<char> {
        self.accept(Source::SipInfo, digit, at_sample)
    }

    fn accept(&mut self, source: Source, digit: char, at: u64) -> Option<char> {
        let digit = digit.to_ascii_uppercase();
        let bit = source as u8;
        // Forget what can no longer pair with anything near `at` (kept twice the window: the
        // sources may arrive a little out of order).
        let horizon = at.saturating_sub(self.window.saturating_mul(2));
        self.recent.retain(|s| s.at >= horizon);

        let partner = self
            .recent
            .iter_mut()
            .filter(|s| {
                s.sources & bit == 0 && s.digit == digit && s.at.abs_diff(at) <= self.window
            })
            .min_by_key(|s| s.at.abs_diff(at));
        if let Some(partner) = partner {
            partner.sources |= bit;
            return None;
        }

        if self.recent.len() >= MAX_REMEMBERED {
            self.recent.remove(0);
        }
        self.recent.push(Seen {
            digit,
            at,
            sources: bit,
        });
        Some(digit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: u64 = 2400; // 300 ms

    #[derive(Clone, Copy)]
    enum Via {
        Rfc(char, u64),
        Tone(char, u64),
        Info(char, u64),
    }
    use Via::{Info, Rfc, Tone};

    /// (name, inputs, expected outputs)
    type Case<'a> = (&'a str, &'a [Via], &'a [Option<char>]);

    fn run(inputs: &[Via]) -> Vec<Option<char>> {
        let mut m = DigitMerger::new(WINDOW);
        inputs
            .iter()
            .map(|&v| match v {
                Rfc(d, at) => m.rfc4733(d, at),
                Tone(d, at) => m.inband(d, at),
                Info(d, at) => m.sip_info(d, at),
            })
            .collect()
    }

    #[test]
    fn table() {
        let cases: &[Case] = &[
            (
                "rfc first, tone inside window",
                &[Rfc('5', 8000), Tone('5', 8100)],
                &[Some('5'), None],
            ),
            (
                "tone first, rfc inside window",
                &[Tone('5', 8000), Rfc('5', 8200)],
                &[Some('5'), None],
            ),
            (
                "tone reported earlier on the clock",
                &[Rfc('5', 8000), Tone('5', 7900)],
                &[Some('5'), None],
            ),
            (
                "just outside the window",
                &[Rfc('5', 8000), Tone('5', 8000 + WINDOW + 1)],
                &[Some('5'), Some('5')],
            ),
            (
                "at the window edge",
                &[Rfc('5', 8000), Tone('5', 8000 + WINDOW)],
                &[Some('5'), None],
            ),
            (
                "different digits never merge",
                &[Rfc('5', 8000), Tone('6', 8010)],
                &[Some('5'), Some('6')],
            ),
            (
                "same digit pressed twice, both paths, presses further apart than the window",
                &[Rfc('7', 0), Tone('7', 150), Rfc('7', 4000), Tone('7', 4150)],
                &[Some('7'), None, Some('7'), None],
            ),
            (
                "interleaved arrival of two presses",
                &[Rfc('7', 0), Rfc('7', 3000), Tone('7', 100), Tone('7', 3100)],
                &[Some('7'), Some('7'), None, None],
            ),
            (
                "one source repeating quickly keeps both",
                &[Rfc('1', 0), Rfc('1', 900)],
                &[Some('1'), Some('1')],
            ),
            (
                "in-band repeating quickly keeps both",
                &[Tone('1', 0), Tone('1', 900)],
                &[Some('1'), Some('1')],
            ),
            (
                "a pair is used once",
                &[Rfc('9', 0), Tone('9', 10), Tone('9', 20)],
                &[Some('9'), None, Some('9')],
            ),
            (
                "a press sent three ways is one digit",
                &[Info('4', 8000), Rfc('4', 7900), Tone('4', 8100)],
                &[Some('4'), None, None],
            ),
            (
                "info repeats are kept, each pairs with its own rfc report",
                &[Info('2', 0), Info('2', 1600), Rfc('2', 100), Rfc('2', 1700)],
                &[Some('2'), Some('2'), None, None],
            ),
            (
                "info and rfc of different presses far apart",
                &[Rfc('3', 0), Info('3', 8000)],
                &[Some('3'), Some('3')],
            ),
            (
                "case-insensitive letters",
                &[Rfc('a', 0), Tone('A', 10)],
                &[Some('A'), None],
            ),
            (
                "clock near zero",
                &[Tone('#', 0), Rfc('#', 0)],
                &[Some('#'), None],
            ),
            (
                "clock near the end",
                &[Tone('#', u64::MAX), Rfc('#', u64::MAX - 5)],
                &[Some('#'), None],
            ),
        ];
        for (name, inputs, expected) in cases {
            assert_eq!(run(inputs), *expected, "{name}");
        }
    }

    #[test]
    fn memory_stays_bounded() {
        let mut m = DigitMerger::new(u64::MAX);
        for i in 0..10_000u64 {
            assert_eq!(m.rfc4733('1', i), Some('1'));
        }
        assert!(m.recent.len() <= MAX_REMEMBERED);
    }
}
