//! Tests of the in-band detector against the ITU-T Q.24 limits, on generated signals.

use super::testsignals::{
    Rng, dual, freqs, key, mix, music_like, noise, peak, rms, silence, speech_like, through,
};
use super::{InbandDetector, InbandDigit, tone};
use crate::media::g711::Law;

const DIGITS: &str = "123456789*0#ABCD";
/// Per-tone level used where the level is not the point, in dBm0.
const LEVEL: f64 = -10.0;

fn detect(x: &[i16]) -> Vec<InbandDigit> {
    let mut d = InbandDetector::new();
    x.chunks(160).flat_map(|c| d.push(c)).collect()
}

fn digits(x: &[i16]) -> String {
    detect(x).iter().map(|d| d.digit).collect()
}

/// `lead` ms of silence, the burst, 100 ms of silence.
fn framed(lead_samples: usize, burst: Vec<i16>) -> Vec<i16> {
    let mut x = vec![0; lead_samples];
    x.extend(burst);
    x.extend(silence(100));
    x
}

/// Q.24 accept limit: ±(1.5 % + 2 Hz).
fn accept_offset(f: f64) -> f64 {
    0.015 * f + 2.0
}

/// Q.24 reject limit: ±3.5 %.
fn reject_offset(f: f64) -> f64 {
    0.035 * f
}

#[test]
fn all_sixteen_digits_at_nominal_frequencies() {
    for digit in DIGITS.chars() {
        let found = detect(&framed(800, key(digit, LEVEL, 60)));
        assert_eq!(found.len(), 1, "{digit}: {found:?}");
        assert_eq!(found[0].digit, digit);
        let start = found[0].start_sample as i64;
        assert!(
            (start - 800).abs() <= 40,
            "{digit}: tone began at 800, reported {start}"
        );
    }
}

#[test]
fn the_generator_feeds_the_detector() {
    for digit in DIGITS.chars() {
        assert_eq!(
            digits(&framed(400, tone(digit, 50, 12_000))),
            digit.to_string()
        );
    }
}

#[test]
fn a_dialled_sequence() {
    let mut x = silence(50);
    for digit in DIGITS.chars() {
        x.extend(key(digit, LEVEL, 45));
        x.extend(silence(45));
    }
    let found = detect(&x);
    assert_eq!(found.iter().map(|d| d.digit).collect::<String>(), DIGITS);
    for (i, d) in found.iter().enumerate() {
        let expected = 400 + i as i64 * 720;
        assert!(
            (d.start_sample as i64 - expected).abs() <= 40,
            "{d:?} expected near {expected}"
        );
    }
}

#[test]
fn frequency_deviation_within_q24_accept_limits_is_accepted() {
    for digit in DIGITS.chars() {
        let (low, high) = freqs(digit);
        for sign in [-1.0, 1.0] {
            let cases = [
                (low + sign * accept_offset(low), high),
                (low, high + sign * accept_offset(high)),
                (
                    low + sign * accept_offset(low),
                    high - sign * accept_offset(high),
                ),
                (
                    low + sign * accept_offset(low),
                    high + sign * accept_offset(high),
                ),
            ];
            for (fl, fh) in cases {
                let x = framed(333, dual(fl, fh, LEVEL, LEVEL, 50));
                assert_eq!(
                    digits(&x),
                    digit.to_string(),
                    "{digit} at {fl:.1}/{fh:.1} Hz"
                );
            }
        }
    }
}

#[test]
fn frequency_deviation_beyond_q24_reject_limits_is_rejected() {
    for digit in DIGITS.chars() {
        let (low, high) = freqs(digit);
        for sign in [-1.0, 1.0] {
            for (fl, fh) in [
                (low + sign * reject_offset(low), high),
                (low, high + sign * reject_offset(high)),
            ] {
                let x = framed(333, dual(fl, fh, LEVEL, LEVEL, 100));
                assert_eq!(digits(&x), "", "{digit} at {fl:.1}/{fh:.1} Hz");
            }
        }
    }
}

#[test]
fn twist() {
    // (low-group level, high-group level, accepted)
    let cases = [
        (-8.0, -16.0, true),   // low group 8 dB louder
        (-14.0, -10.0, true),  // high group 4 dB louder
        (-6.0, -16.0, false),  // low group 10 dB louder
        (-16.0, -10.0, false), // high group 6 dB louder
    ];
    for digit in DIGITS.chars() {
        let (low, high) = freqs(digit);
        for (low_db, high_db, accepted) in cases {
            let x = framed(400, dual(low, high, low_db, high_db, 60));
            let expected = if accepted {
                digit.to_string()
            } else {
                String::new()
            };
            assert_eq!(
                digits(&x),
                expected,
                "{digit} low {low_db} dBm0, high {high_db} dBm0"
            );
        }
    }
}

#[test]
fn twist_at_the_edge_of_the_frequency_tolerance() {
    for digit in DIGITS.chars() {
        let (low, high) = freqs(digit);
        for sign in [-1.0, 1.0] {
            let (fl, fh) = (
                low - sign * accept_offset(low),
                high + sign * accept_offset(high),
            );
            for (low_db, high_db) in [(-8.0, -16.0), (-14.0, -10.0)] {
                let x = framed(400, dual(fl, fh, low_db, high_db, 60));
                assert_eq!(
                    digits(&x),
                    digit.to_string(),
                    "{digit} {fl:.1}/{fh:.1} Hz {low_db}/{high_db} dBm0"
                );
            }
        }
    }
}

#[test]
fn duration_40_ms_is_accepted_at_any_alignment() {
    for digit in DIGITS.chars() {
        for lead in (0..40).step_by(5) {
            assert_eq!(
                digits(&framed(400 + lead, key(digit, LEVEL, 40))),
                digit.to_string(),
                "{digit} lead {lead}"
            );
        }
    }
}

#[test]
fn duration_20_ms_or_less_is_rejected_at_any_alignment() {
    for digit in DIGITS.chars() {
        for ms in [5, 10, 15, 20] {
            for lead in (0..40).step_by(4) {
                assert_eq!(
                    digits(&framed(400 + lead, key(digit, LEVEL, ms))),
                    "",
                    "{digit} {ms} ms lead {lead}"
                );
            }
        }
    }
}

#[test]
fn levels() {
    // Accepted from -25 dBm0 per tone up to -3 dBm0 (both tones at 0 dBm0 would clip 16 bits).
    for dbm0 in [-25.0, -20.0, -13.0, -6.0, -3.0] {
        for digit in DIGITS.chars() {
            assert_eq!(
                digits(&framed(400, key(digit, dbm0, 50))),
                digit.to_string(),
                "{digit} at {dbm0} dBm0"
            );
        }
    }
    for digit in DIGITS.chars() {
        assert_eq!(
            digits(&framed(400, key(digit, -40.0, 100))),
            "",
            "{digit} at -40 dBm0"
        );
    }
}

#[test]
fn a_pause_of_40_ms_separates_repeated_digits() {
    for digit in DIGITS.chars() {
        for lead in (0..40).step_by(10) {
            let mut burst = key(digit, LEVEL, 45);
            burst.extend(silence(40));
            burst.extend(key(digit, LEVEL, 45));
            assert_eq!(
                digits(&framed(400 + lead, burst)),
                format!("{digit}{digit}"),
                "lead {lead}"
            );
        }
    }
}

#[test]
fn a_long_press_is_one_digit() {
    for digit in ['5', '#', 'D'] {
        assert_eq!(
            digits(&framed(400, key(digit, LEVEL, 3000))),
            digit.to_string()
        );
    }
}

#[test]
fn white_noise_at_20_db_snr_does_not_break_detection() {
    let mut rng = Rng::new(7);
    for digit in DIGITS.chars() {
        let mut clean = silence(100);
        clean.extend(key(digit, -13.0, 45));
        clean.extend(silence(100));
        // Two tones of peak p carry p² of power together; noise 20 dB below that.
        let noise_rms = peak(-13.0) / 10.0;
        let x = mix(&clean, &noise(&mut rng, noise_rms, clean.len()));
        assert_eq!(digits(&x), digit.to_string(), "{digit}");
    }
}

#[test]
fn noise_alone_yields_nothing() {
    let mut rng = Rng::new(11);
    for dbm0 in [-30.0, -20.0, -10.0] {
        let rms_level = peak(dbm0) / std::f64::consts::SQRT_2;
        let x = mix(&vec![0; 8000 * 4], &noise(&mut rng, rms_level, 8000 * 4));
        assert_eq!(digits(&x), "", "noise at {dbm0} dBm0");
    }
}

#[test]
fn g711_quantised_tones_are_detected() {
    for law in [Law::Ulaw, Law::Alaw] {
        for dbm0 in [-25.0, -10.0, -3.0] {
            for digit in DIGITS.chars() {
                let x = through(law, &framed(400, key(digit, dbm0, 45)));
                assert_eq!(
                    digits(&x),
                    digit.to_string(),
                    "{law:?} {digit} at {dbm0} dBm0"
                );
            }
        }
    }
}

#[test]
fn talk_off_speech_like_signal_yields_no_digit() {
    let mut rng = Rng::new(2024);
    for pitch in [95.0, 130.0, 210.0, 260.0] {
        let x = speech_like(&mut rng, pitch, 5.0);
        assert!(rms(&x) > 1000.0, "the signal is not silent");
        assert_eq!(detect(&x), [], "voice at {pitch} Hz");
        assert_eq!(
            detect(&through(Law::Ulaw, &x)),
            [],
            "voice at {pitch} Hz through µ-law"
        );
    }
}

#[test]
fn talk_off_music_like_signal_yields_no_digit() {
    let x = music_like(10.0);
    assert!(rms(&x) > 1000.0, "the signal is not silent");
    assert_eq!(detect(&x), []);
    assert_eq!(detect(&through(Law::Alaw, &x)), []);
}

#[test]
fn a_digit_after_speech_is_still_detected() {
    let mut rng = Rng::new(5);
    let mut x = speech_like(&mut rng, 120.0, 1.0);
    x.extend(silence(50));
    x.extend(key('8', LEVEL, 50));
    x.extend(silence(100));
    assert_eq!(digits(&x), "8");
}

#[test]
fn chunk_size_does_not_change_the_result() {
    let mut x = silence(30);
    for digit in "159#".chars() {
        x.extend(key(digit, LEVEL, 50));
        x.extend(silence(50));
    }
    let reference = detect(&x);
    assert_eq!(reference.len(), 4);
    for size in [1, 7, 40, 80, 159, 161, 205, 1000, x.len()] {
        let mut d = InbandDetector::new();
        let found: Vec<InbandDigit> = x.chunks(size).flat_map(|c| d.push(c)).collect();
        assert_eq!(found, reference, "chunks of {size}");
    }
}
