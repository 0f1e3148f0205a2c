//! In-band DTMF generation at 8 kHz (ITU-T Q.23 frequency pairs), for peers without telephone-event.

use super::{HIGH_HZ, LOW_HZ, SAMPLE_RATE, key_position};

/// Longest tone [`tone`] generates; longer requests are cut to this (a key press is ~100 ms).
pub const MAX_TONE_MS: u32 = 10_000;

/// The two-tone signal for `digit`, `duration_ms` long (at most [`MAX_TONE_MS`]), each frequency with a
/// peak of `amplitude / 2` so the sum never exceeds `amplitude`. Both sines start at phase zero, so the
/// signal starts and ends near zero. An unknown digit gives an empty vector.
///
/// Levels: a sine peaking at about 22 700 is 0 dBm0 in G.711, so `amplitude` 10 000 puts each tone near
/// -13 dBm0, a typical telephone level.
pub fn tone(digit: char, duration_ms: u32, amplitude: i16) -> Vec<i16> {
    let Some((row, column)) = key_position(digit) else {
        return Vec::new();
    };
    let samples = duration_ms.min(MAX_TONE_MS) as usize * (SAMPLE_RATE / 1000) as usize;
    let half = f64::from(amplitude) / 2.0;
    dual_tone(
        f64::from(LOW_HZ[row]),
        f64::from(HIGH_HZ[column]),
        half,
        half,
        samples,
    )
}

/// Sum of two sines (frequencies in Hz, peak amplitudes in 16-bit units) over `samples` samples at 8 kHz,
/// rounded and saturated to `i16`.
pub(crate) fn dual_tone(
    low_hz: f64,
    high_hz: f64,
    low_amp: f64,
    high_amp: f64,
    samples: usize,
) -> Vec<i16> {
    let w_low = std::f64::consts::TAU * low_hz / f64::from(SAMPLE_RATE);
    let w_high = std::f64::consts::TAU * high_hz / f64::from(SAMPLE_RATE);
    (0..samples)
        .map(|n| {
            let t = n as f64;
            let v = low_amp * (w_low * t).sin() + high_amp * (w_high * t).sin();
            // `as` saturates; the value is already in range for sane amplitudes.
            v.round() as i16
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Correlation of `x` with a complex exponential at `hz`, as an amplitude estimate.
    fn amplitude_at(x: &[i16], hz: f64) -> f64 {
        let w = std::f64::consts::TAU * hz / f64::from(SAMPLE_RATE);
        let (mut re, mut im) = (0.0, 0.0);
        for (n, &s) in x.iter().enumerate() {
            re += f64::from(s) * (w * n as f64).cos();
            im += f64::from(s) * (w * n as f64).sin();
        }
        2.0 * (re * re + im * im).sqrt() / x.len() as f64
    }

    #[test]
    fn every_digit_has_its_two_frequencies() {
        for (row, keys) in super::super::KEYPAD.iter().enumerate() {
            for (column, &digit) in keys.iter().enumerate() {
                let x = tone(digit, 100, 10_000);
                assert_eq!(x.len(), 800);
                let low = amplitude_at(&x, f64::from(LOW_HZ[row]));
                let high = amplitude_at(&x, f64::from(HIGH_HZ[column]));
                assert!((low - 5000.0).abs() < 60.0, "{digit}: low {low}");
                assert!((high - 5000.0).abs() < 60.0, "{digit}: high {high}");
                assert!(x.iter().all(|s| s.unsigned_abs() <= 10_000));
            }
        }
    }

    #[test]
    fn unknown_digit_is_empty_and_length_is_capped() {
        assert!(tone('x', 100, 10_000).is_empty());
        assert!(tone('5', 0, 10_000).is_empty());
        assert_eq!(tone('5', u32::MAX, 1000).len(), 80_000);
    }

    #[test]
    fn saturates_instead_of_wrapping() {
        let x = dual_tone(697.0, 1209.0, 30_000.0, 30_000.0, 400);
        assert!(x.contains(&i16::MAX) || x.contains(&i16::MIN));
    }
}
