//! DTMF in and out: RFC 4733 telephone-events (`event`), in-band tones with ITU-T Q.23 frequencies
//! (`generate`) and a Goertzel detector held to ITU-T Q.24 limits (`detect`), and the merger that
//! turns one key press heard both ways into one digit (`merge`).
//!
//! All of it is pure: no IO, no clock. Time is RTP timestamps or 8 kHz sample counts passed in.

mod detect;
mod event;
mod generate;
mod merge;

#[cfg(test)]
mod detect_tests;
#[cfg(test)]
mod testsignals;

pub use detect::{InbandDetector, InbandDigit};
pub use event::{EventBurst, EventReceiver, TelephoneEvent, event_burst};
pub use generate::tone;
pub use merge::DigitMerger;

/// Sample rate of in-band DTMF and of the default telephone-event clock (RFC 4733 §2.1).
pub const SAMPLE_RATE: u32 = 8000;

/// Q.23 row (low group) frequencies in Hz.
pub(crate) const LOW_HZ: [u32; 4] = [697, 770, 852, 941];
/// Q.23 column (high group) frequencies in Hz.
pub(crate) const HIGH_HZ: [u32; 4] = [1209, 1336, 1477, 1633];
/// The keypad: `KEYPAD[row][column]`, rows by low frequency, columns by high frequency.
pub(crate) const KEYPAD: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];

/// The digit of an RFC 4733 §3.2 DTMF event code: 0-9, 10 `*`, 11 `#`, 12-15 `A`-`D`; other codes
/// (flash, modem and fax tones…) are not digits.
pub fn digit_for_event(event: u8) -> Option<char> {
    match event {
        0..=9 => char::from_digit(u32::from(event), 10),
        10 => Some('*'),
        11 => Some('#'),
        12 => Some('A'),
        13 => Some('B'),
        14 => Some('C'),
        15 => Some('D'),
        _ => None,
    }
}

/// The RFC 4733 event code of a digit (`a`-`d` are accepted as `A`-`D`).
pub fn event_for_digit(digit: char) -> Option<u8> {
    match digit {
        '0'..='9' => digit.to_digit(10).and_then(|d| u8::try_from(d).ok()),
        '*' => Some(10),
        '#' => Some(11),
        'A' | 'a' => Some(12),
        'B' | 'b' => Some(13),
        'C' | 'c' => Some(14),
        'D' | 'd' => Some(15),
        _ => None,
    }
}

/// The keypad position (row, column) of a digit.
pub(crate) fn key_position(digit: char) -> Option<(usize, usize)> {
    let digit = digit.to_ascii_uppercase();
    KEYPAD.iter().enumerate().find_map(|(row, keys)| {
        keys.iter()
            .position(|&k| k == digit)
            .map(|column| (row, column))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_codes_and_digits_are_inverse() {
        let digits = "0123456789*#ABCD";
        for (code, digit) in digits.chars().enumerate() {
            let code = u8::try_from(code).unwrap();
            assert_eq!(digit_for_event(code), Some(digit));
            assert_eq!(event_for_digit(digit), Some(code));
        }
        for code in 16..=u8::MAX {
            assert_eq!(digit_for_event(code), None);
        }
        assert_eq!(event_for_digit('d'), Some(15));
        assert_eq!(event_for_digit('E'), None);
        assert_eq!(event_for_digit(' '), None);
    }

    #[test]
    fn keypad_positions() {
        assert_eq!(key_position('1'), Some((0, 0)));
        assert_eq!(key_position('0'), Some((3, 1)));
        assert_eq!(key_position('#'), Some((3, 2)));
        assert_eq!(key_position('d'), Some((3, 3)));
        assert_eq!(key_position('x'), None);
    }
}
