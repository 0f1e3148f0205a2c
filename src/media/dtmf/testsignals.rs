//! Test signals for the DTMF detector: tones at given levels and offsets, white noise, and synthetic
//! speech-like and music-like signals for talk-off (all deterministic).

use super::generate::dual_tone;
use super::{HIGH_HZ, LOW_HZ, SAMPLE_RATE, key_position};
use crate::media::g711::Law;
use std::f64::consts::{PI, TAU};

const FS: f64 = SAMPLE_RATE as f64;
/// Peak of a 0 dBm0 sine in 16-bit linear (as in `detect`).
pub const DBM0_PEAK: f64 = 22_700.0;

/// Sine peak for a level in dBm0.
pub fn peak(dbm0: f64) -> f64 {
    DBM0_PEAK * 10f64.powf(dbm0 / 20.0)
}

pub fn samples(ms: u32) -> usize {
    ms as usize * 8
}

pub fn silence(ms: u32) -> Vec<i16> {
    vec![0; samples(ms)]
}

/// The nominal (low, high) frequencies of a digit.
pub fn freqs(digit: char) -> (f64, f64) {
    let (row, column) = key_position(digit).expect("a DTMF digit");
    (f64::from(LOW_HZ[row]), f64::from(HIGH_HZ[column]))
}

/// A two-tone burst with explicit frequencies and per-tone levels in dBm0.
pub fn dual(low_hz: f64, high_hz: f64, low_dbm0: f64, high_dbm0: f64, ms: u32) -> Vec<i16> {
    dual_tone(
        low_hz,
        high_hz,
        peak(low_dbm0),
        peak(high_dbm0),
        samples(ms),
    )
}

/// A digit at nominal frequencies, both tones at `dbm0`.
pub fn key(digit: char, dbm0: f64, ms: u32) -> Vec<i16> {
    let (low, high) = freqs(digit);
    dual(low, high, dbm0, dbm0, ms)
}

/// Through a G.711 encoder and decoder.
pub fn through(law: Law, x: &[i16]) -> Vec<i16> {
    let mut bytes = Vec::new();
    law.encode_into(x, &mut bytes);
    let mut out = Vec::new();
    law.decode_into(&bytes, &mut out);
    out
}

/// Deterministic xorshift64* generator.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }
    pub fn gaussian(&mut self) -> f64 {
        let u1 = self.uniform().max(1e-12);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (TAU * u2).cos()
    }
}

/// White Gaussian noise of the given RMS.
pub fn noise(rng: &mut Rng, rms: f64, len: usize) -> Vec<f64> {
    (0..len).map(|_| rms * rng.gaussian()).collect()
}

/// `x + y`, saturated to i16.
pub fn mix(x: &[i16], y: &[f64]) -> Vec<i16> {
    x.iter()
        .zip(y)
        .map(|(&a, &b)| (f64::from(a) + b).round().clamp(-32768.0, 32767.0) as i16)
        .collect()
}

pub fn rms(x: &[i16]) -> f64 {
    (x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / x.len().max(1) as f64).sqrt()
}

/// Scales `x` so that its peak is `peak`.
fn normalise(x: &[f64], peak: f64) -> Vec<i16> {
    let max = x.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-9);
    x.iter().map(|v| (v * peak / max).round() as i16).collect()
}

/// Two-pole resonator (a formant).
struct Resonator {
    y1: f64,
    y2: f64,
}

impl Resonator {
    fn step(&mut self, x: f64, hz: f64, bandwidth: f64) -> f64 {
        let r = (-PI * bandwidth / FS).exp();
        let a1 = 2.0 * r * (TAU * hz / FS).cos();
        let a2 = -r * r;
        let y = (1.0 - r) * x + a1 * self.y1 + a2 * self.y2;
        self.y2 = self.y1;
        self.y1 = y;
        y
    }
}

/// Vowel formants (F1, F2, F3) in Hz, adult averages.
const VOWELS: [(f64, f64, f64); 8] = [
    (730.0, 1090.0, 2440.0), // a
    (270.0, 2290.0, 3010.0), // i
    (300.0, 870.0, 2240.0),  // u
    (530.0, 1840.0, 2480.0), // e
    (570.0, 840.0, 2410.0),  // o
    (660.0, 1720.0, 2410.0), // æ
    (440.0, 1020.0, 2240.0), // ʊ
    (490.0, 1350.0, 1690.0), // ɝ
];

/// Speech-like signal: a glottal pulse train (pitch around `pitch_hz` with glides, vibrato and jitter,
/// -12 dB/octave tilt) through three moving formant resonators, in syllables of 100-300 ms separated by
/// pauses and fricative noise bursts. Peak about -6 dBFS.
pub fn speech_like(rng: &mut Rng, pitch_hz: f64, seconds: f64) -> Vec<i16> {
    let total = (seconds * FS) as usize;
    let mut out = Vec::with_capacity(total);
    let mut formants = [
        Resonator { y1: 0.0, y2: 0.0 },
        Resonator { y1: 0.0, y2: 0.0 },
        Resonator { y1: 0.0, y2: 0.0 },
    ];
    let (mut f1, mut f2, mut f3) = VOWELS[0];
    let mut phase = 0.0f64;
    let (mut tilt1, mut tilt2) = (0.0f64, 0.0f64);
    while out.len() < total {
        // A syllable.
        let len = (rng.range(0.10, 0.30) * FS) as usize;
        let target = VOWELS[(rng.next_u64() % VOWELS.len() as u64) as usize];
        let p0 = pitch_hz * rng.range(0.8, 1.25);
        let p1 = p0 * rng.range(0.7, 1.3);
        let vibrato_hz = rng.range(4.0, 7.0);
        for n in 0..len {
            let t = n as f64 / len as f64;
            let pitch =
                (p0 + (p1 - p0) * t) * (1.0 + 0.02 * (TAU * vibrato_hz * n as f64 / FS).sin());
            let jitter = 1.0 + 0.01 * rng.gaussian();
            phase += pitch * jitter / FS;
            let pulse = if phase >= 1.0 {
                phase -= 1.0;
                1.0
            } else {
                0.0
            };
            // Glottal tilt: two one-pole low-passes.
            tilt1 = 0.9 * tilt1 + pulse;
            tilt2 = 0.9 * tilt2 + tilt1;
            // Formants glide towards the syllable's vowel.
            f1 += (target.0 - f1) * 0.002;
            f2 += (target.1 - f2) * 0.002;
            f3 += (target.2 - f3) * 0.002;
            let env = (PI * t).sin().powf(0.3);
            let v = formants[0].step(tilt2, f1, 80.0) * 1.0
                + formants[1].step(tilt2, f2, 100.0) * 0.6
                + formants[2].step(tilt2, f3, 140.0) * 0.3;
            out.push(v * env);
        }
        // Then a pause or a fricative.
        let gap = (rng.range(0.03, 0.15) * FS) as usize;
        let fricative = rng.uniform() < 0.4;
        let mut previous = 0.0;
        for _ in 0..gap {
            let v = if fricative {
                let w = rng.gaussian();
                let hp = w - previous; // crude high-pass: 's'/'f'-like
                previous = w;
                0.05 * hp
            } else {
                0.0
            };
            out.push(v);
        }
    }
    out.truncate(total);
    normalise(&out, 16_000.0)
}

/// Equal-tempered frequency of a MIDI note.
fn midi(note: u8) -> f64 {
    440.0 * 2f64.powf((f64::from(note) - 69.0) / 12.0)
}

/// Music-like signal: chords and dyads of harmonic-rich notes (8 harmonics at 1/k, attack and decay),
/// chosen to put fundamentals close to DTMF pairs: F5+E6 (698/1319 Hz), A♯5+F♯6 (932/1480 Hz, within
/// 1 % of the '#' pair), G♯5+G♯6 (831/1661 Hz)…, 0.5 s each, cycling for `seconds`.
pub fn music_like(seconds: f64) -> Vec<i16> {
    let chords: [&[u8]; 10] = [
        &[77, 81, 84, 88], // Fmaj7: F5 A5 C6 E6
        &[77, 88],         // F5 + E6
        &[82, 90],         // A#5 + F#6
        &[82, 86, 90],     // A#5 D6 F#6
        &[80, 92],         // G#5 + G#6
        &[79, 83, 86, 91], // G5 B5 D6 G6
        &[72, 76, 79, 84], // C5 E5 G5 C6
        &[78, 85],         // F#5 + C#6 (740/1109)
        &[69, 72, 76, 81], // A4 C5 E5 A5
        &[81, 91],         // A5 + G6 (880/1568)
    ];
    let chord_len = (0.5 * FS) as usize;
    let total = (seconds * FS) as usize;
    let mut out = Vec::with_capacity(total);
    let mut index = 0;
    while out.len() < total {
        let notes = chords[index % chords.len()];
        index += 1;
        for n in 0..chord_len {
            let t = n as f64 / FS;
            let env = (t / 0.015).min(1.0) * (-t / 0.6).exp();
            let mut v = 0.0;
            for &note in notes {
                let f = midi(note);
                for k in 1..=8u32 {
                    let fk = f * f64::from(k);
                    if fk < FS / 2.0 {
                        v += (TAU * fk * t).sin() / f64::from(k);
                    }
                }
            }
            out.push(v * env);
        }
    }
    out.truncate(total);
    normalise(&out, 20_000.0)
}
