//! In-band DTMF detection over 8 kHz samples with a windowed Goertzel filter bank, held to the
//! ITU-T Q.24 limits (accept ≥ 40 ms, ±1.5 % + 2 Hz, twist 8 dB / 4 dB; reject ≤ 20 ms, ±3.5 %, talk-off).
//!
//! Design:
//! - Analysis windows of 205 samples (25.6 ms, Hann-weighted) every 40 samples (5 ms). Each window runs
//!   one Goertzel filter per Q.23 frequency and keeps its complex output. 205 samples give 39 Hz bins:
//!   a neighbour in the same group (≥ 73 Hz away) sits near the Hann's first null, the other group's
//!   tones in its sidelobes (< -40 dB), so strong twist does not bias the weaker tone.
//! - Frequency is measured from the phase advance of a filter's output between consecutive windows
//!   (unambiguous to ±100 Hz), which is precise to a fraction of a hertz and independent of level. It
//!   also corrects the window's scalloping loss, so twist and levels are right off-centre too.
//! - A window is a *hit* for a key when: each tone is above the minimum level (-32 dBm0); twist is within
//!   +9 dB (low louder) / -5 dB (high louder); each tone beats the other three of its group by 10 dB; the
//!   two tones hold ≥ 70 % of the window's energy; and the second harmonics, at twice the measured
//!   frequencies, are 15 dB down (speech and music are harmonic-rich; for the low tone the check is
//!   skipped when the high tone lies within 120 Hz of its second harmonic).
//! - Consecutive hits for one key form a run. A digit is reported once per run, as soon as the run has
//!   5 *strong* windows (tone energy within 3 dB of the run's maximum, i.e. windows mostly filled by the
//!   tone) and the frequency averaged over those windows is within 2.5 % + 1 Hz of nominal for both
//!   tones (midway between the ±1.5 % + 2 Hz to accept and the ±3.5 % to reject). Measured: tones of
//!   33 ms or more are reported at any alignment, 26 ms or less never; deviations up to ±2.6 % pass,
//!   ±3 % do not. A run ends at the first window that is not a hit for its key, which a pause of 40 ms
//!   always contains, so a repeated key with such a pause counts twice.
//! - Limit: two nearly pure tones within 2.5 % of a DTMF pair (second harmonics more than 15 dB down)
//!   are a DTMF signal as far as Q.24 is concerned, and are reported; harmonic-rich notes are not.
//!
//! Levels: 0 dBm0 is taken as a sine of peak 22 700 in 16-bit linear (G.711 overload is +3.17 dBm0 for
//! µ-law, +3.14 dBm0 for A-law). Accepted range per tone: -32 dBm0 up to the unclipped maximum (about
//! -3 dBm0 each with both tones equal).

use std::f32::consts::{PI, TAU};
use std::sync::LazyLock;

use super::{HIGH_HZ, KEYPAD, LOW_HZ, SAMPLE_RATE};

/// Analysis window length in samples.
const WINDOW: usize = 205;
/// Samples between the starts of consecutive windows.
const HOP: usize = 40;
const FS: f32 = SAMPLE_RATE as f32;

/// Peak of a 0 dBm0 sine in 16-bit linear.
const DBM0_PEAK: f32 = 22_700.0;
/// Minimum level per tone, in dBm0.
const MIN_LEVEL_DBM0: f32 = -32.0;
/// Largest accepted excess of the low tone over the high one (Q.24 asks 8 dB), in dB.
const MAX_TWIST_LOW_DB: f32 = 9.0;
/// Largest accepted excess of the high tone over the low one (Q.24 asks 4 dB), in dB.
const MAX_TWIST_HIGH_DB: f32 = 5.0;
/// How far the chosen tone must beat the others in its group (energy ratio, 10 dB).
const GROUP_DOMINANCE: f32 = 10.0;
/// Share of the window's energy the two tones must hold.
const MIN_PURITY: f32 = 0.70;
/// Largest second-harmonic to fundamental energy ratio (-15 dB).
const MAX_SECOND_HARMONIC: f32 = 0.0316;
/// The low tone's second harmonic is only checked when no high tone is this close to it, in Hz.
const HARMONIC_CLEARANCE_HZ: f32 = 120.0;
/// Strong windows (energy ≥ half the run's maximum) needed to report a digit.
const MIN_STRONG_WINDOWS: usize = 5;
/// Accepted frequency error: `REL * f + ABS` Hz.
const FREQ_TOLERANCE_REL: f32 = 0.025;
const FREQ_TOLERANCE_ABS_HZ: f32 = 1.0;
/// Windows remembered per run (only the first ones matter, to decide and to date the tone).
const MAX_RUN_WINDOWS: usize = 64;
/// Where a tone starts inside the first strong window, on average (the window is 60-80 % covered).
const TONE_START_IN_WINDOW: u64 = 61;

/// A digit recognised in the audio, with the sample index (since the detector started) where its tone
/// began, to within about 5 ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InbandDigit {
    pub digit: char,
    pub start_sample: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Complex {
    re: f32,
    im: f32,
}

impl Complex {
    fn norm_sqr(self) -> f32 {
        self.re * self.re + self.im * self.im
    }
    /// `self * conj(other)`.
    fn mul_conj(self, other: Complex) -> Complex {
        Complex {
            re: self.re * other.re + self.im * other.im,
            im: self.im * other.re - self.re * other.im,
        }
    }
    fn mul(self, other: Complex) -> Complex {
        Complex {
            re: self.re * other.re - self.im * other.im,
            im: self.re * other.im + self.im * other.re,
        }
    }
    fn add(self, other: Complex) -> Complex {
        Complex {
            re: self.re + other.re,
            im: self.im + other.im,
        }
    }
    fn arg(self) -> f32 {
        self.im.atan2(self.re)
    }
}

/// One Goertzel filter.
#[derive(Debug, Clone, Copy)]
struct Filter {
    hz: f32,
    coef: f32,
    cos: f32,
    sin: f32,
    /// `e^{-jωH}`: removes the phase a tone exactly at `hz` gains from one window to the next.
    unrotate: Complex,
}

impl Filter {
    fn new(hz: f32) -> Filter {
        let w = TAU * hz / FS;
        let advance = w * HOP as f32;
        Filter {
            hz,
            coef: 2.0 * w.cos(),
            cos: w.cos(),
            sin: w.sin(),
            unrotate: Complex {
                re: advance.cos(),
                im: -advance.sin(),
            },
        }
    }

    /// Goertzel over `x`: `s1 - e^{-jω} s2`, the DFT at `hz` times a constant phase factor
    /// (`e^{jω(N-1)}`), which cancels in window-to-window phase differences.
    fn run(&self, x: &[f32]) -> Complex {
        let (mut s1, mut s2) = (0.0f32, 0.0f32);
        for &v in x {
            let s0 = v + self.coef * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        Complex {
            re: s1 - self.cos * s2,
            im: self.sin * s2,
        }
    }

    /// Frequency offset (Hz) of the tone seen by this filter, from `phase_step = X_k · conj(X_{k-1})`.
    fn offset_hz(&self, phase_step: Complex) -> f32 {
        if phase_step == Complex::default() {
            return 0.0;
        }
        phase_step.mul(self.unrotate).arg() * FS / (TAU * HOP as f32)
    }
}

struct Tables {
    window: [f32; WINDOW],
    /// `(Σw)² / (2 Σw²)`: a lone sine's |X|² over the windowed energy.
    purity_norm: f32,
    /// Filters 0-3: low group, 4-7: high group.
    tones: [Filter; 8],
    min_energy: f32,
    /// Windowed energy below which a window cannot hold a tone at the minimum level (a quarter of
    /// one such tone's): silence and quiet noise skip the eight filters, the bulk of the cost.
    quiet_energy: f32,
}

static TABLES: LazyLock<Tables> = LazyLock::new(|| {
    let window: [f32; WINDOW] =
        std::array::from_fn(|n| 0.5 - 0.5 * (TAU * (n as f32 + 0.5) / WINDOW as f32).cos());
    let sum: f32 = window.iter().sum();
    let sum_sq: f32 = window.iter().map(|w| w * w).sum();
    let hz: [f32; 8] = std::array::from_fn(|i| {
        if i < 4 {
            LOW_HZ[i] as f32
        } else {
            HIGH_HZ[i - 4] as f32
        }
    });
    let min_peak = DBM0_PEAK * 10f32.powf(MIN_LEVEL_DBM0 / 20.0);
    Tables {
        window,
        purity_norm: sum * sum / (2.0 * sum_sq),
        tones: hz.map(Filter::new),
        min_energy: (min_peak * sum / 2.0).powi(2),
        quiet_energy: min_peak * min_peak / 2.0 * sum_sq * 0.25,
    }
});

/// The Hann window's gain for a tone `bins` bins off the filter (1.0 on centre, 0.5 one bin off).
fn window_gain(bins: f32) -> f32 {
    let x = bins.abs().min(1.0);
    if x < 1e-4 {
        return 1.0;
    }
    if 1.0 - x < 1e-4 {
        return 0.5;
    }
    let px = PI * x;
    (px.sin() / px) / (1.0 - x * x)
}

/// What one window says about one key.
#[derive(Debug, Clone, Copy)]
struct Hit {
    key: (usize, usize),
    /// Both tones' energy, corrected for scalloping.
    energy: f32,
    /// Phase steps since the previous window, for the low and the high tone.
    step_low: Complex,
    step_high: Complex,
}

#[derive(Debug, Clone, Copy)]
struct RunWindow {
    start: u64,
    energy: f32,
    step_low: Complex,
    step_high: Complex,
}

#[derive(Debug, Clone)]
struct Run {
    key: (usize, usize),
    reported: bool,
    windows: Vec<RunWindow>,
}

impl Run {
    /// When the run qualifies as a key press, the sample where its tone began.
    fn decide(&self) -> Option<u64> {
        let t = &*TABLES;
        let max = self.windows.iter().map(|w| w.energy).fold(0.0f32, f32::max);
        let mut strong = self.windows.iter().filter(|w| w.energy >= 0.5 * max);
        let first = strong.next()?;
        let (mut low, mut high, mut count) = (first.step_low, first.step_high, 1usize);
        for w in strong {
            low = low.add(w.step_low);
            high = high.add(w.step_high);
            count += 1;
        }
        if count < MIN_STRONG_WINDOWS {
            return None;
        }
        let (row, column) = self.key;
        for (filter, step) in [(&t.tones[row], low), (&t.tones[4 + column], high)] {
            let tolerance = FREQ_TOLERANCE_REL * filter.hz + FREQ_TOLERANCE_ABS_HZ;
            if filter.offset_hz(step).abs() > tolerance {
                return None;
            }
        }
        Some(first.start + TONE_START_IN_WINDOW)
    }
}

/// Goertzel DTMF detector over 8 kHz samples, fed in any chunk sizes (normally 160-sample frames).
#[derive(Debug, Clone, Default)]
pub struct InbandDetector {
    /// Samples not yet past, starting at `buffer_start`.
    buffer: Vec<f32>,
    buffer_start: u64,
    previous: Option<[Complex; 8]>,
    run: Option<Run>,
}

impl InbandDetector {
    pub fn new() -> Self {
        InbandDetector {
            buffer: Vec::with_capacity(WINDOW + 160),
            buffer_start: 0,
            previous: None,
            run: None,
        }
    }

    /// Returns digits as they are recognised (about 35 ms into the tone), each once per key press, with
    /// the sample index (since the detector started) where the tone began.
    pub fn push(&mut self, samples: &[i16]) -> Vec<InbandDigit> {
        let mut found = Vec::new();
        let mut buffer = std::mem::take(&mut self.buffer);
        buffer.extend(samples.iter().map(|&s| f32::from(s)));
        let mut offset = 0;
        while buffer.len() - offset >= WINDOW {
            let start = self.buffer_start + offset as u64;
            if let Some(digit) = self.analyse(&buffer[offset..offset + WINDOW], start) {
                found.push(digit);
            }
            offset += HOP;
        }
        buffer.drain(..offset);
        self.buffer_start += offset as u64;
        self.buffer = buffer;
        found
    }

    fn analyse(&mut self, samples: &[f32], start: u64) -> Option<InbandDigit> {
        let t = &*TABLES;
        let mut x = [0.0f32; WINDOW];
        let mut energy = 0.0f32;
        for ((x, &s), &w) in x.iter_mut().zip(samples).zip(&t.window) {
            *x = s * w;
            energy += *x * *x;
        }
        if energy < t.quiet_energy {
            self.previous = None;
            self.run = None;
            return None;
        }
        let spectrum: [Complex; 8] = std::array::from_fn(|i| t.tones[i].run(&x));
        let hit = classify(&x, energy, &spectrum, self.previous.as_ref());
        self.previous = Some(spectrum);

        let Some(hit) = hit else {
            self.run = None;
            return None;
        };
        let window = RunWindow {
            start,
            energy: hit.energy,
            step_low: hit.step_low,
            step_high: hit.step_high,
        };
        let run = match &mut self.run {
            Some(run) if run.key == hit.key => run,
            other => other.insert(Run {
                key: hit.key,
                reported: false,
                windows: Vec::new(),
            }),
        };
        if run.reported {
            return None;
        }
        if run.windows.len() < MAX_RUN_WINDOWS {
            run.windows.push(window);
        }
        let start_sample = run.decide()?;
        run.reported = true;
        Some(InbandDigit {
            digit: KEYPAD[run.key.0][run.key.1],
            start_sample,
        })
    }
}

/// Index of the largest value in `energies`, and whether it beats every other by `GROUP_DOMINANCE`.
fn dominant(energies: &[f32]) -> (usize, bool) {
    let mut best = 0;
    for (i, &e) in energies.iter().enumerate() {
        if e > energies[best] {
            best = i;
        }
    }
    let top = energies[best];
    let clear = energies
        .iter()
        .enumerate()
        .all(|(i, &e)| i == best || e * GROUP_DOMINANCE <= top);
    (best, clear)
}

/// The checks of one window (see the module docs).
fn classify(
    x: &[f32],
    energy: f32,
    spectrum: &[Complex; 8],
    previous: Option<&[Complex; 8]>,
) -> Option<Hit> {
    let t = &*TABLES;
    if !(energy.is_finite() && energy > 0.0) {
        return None;
    }
    let power: [f32; 8] = spectrum.map(Complex::norm_sqr);
    let (row, low_clear) = dominant(&power[..4]);
    let (column, high_clear) = dominant(&power[4..]);
    if !(low_clear && high_clear) {
        return None;
    }
    let (lo, hi) = (row, 4 + column);

    let step = |i: usize| previous.map_or(Complex::default(), |p| spectrum[i].mul_conj(p[i]));
    let (step_low, step_high) = (step(lo), step(hi));
    // Measured frequencies, and energies corrected for the window's loss off-centre.
    let f_low = t.tones[lo].hz + t.tones[lo].offset_hz(step_low);
    let f_high = t.tones[hi].hz + t.tones[hi].offset_hz(step_high);
    let corrected = |i: usize, f: f32| {
        let bins = (f - t.tones[i].hz) * WINDOW as f32 / FS;
        power[i] / window_gain(bins).powi(2)
    };
    let (e_low, e_high) = (corrected(lo, f_low), corrected(hi, f_high));

    if e_low < t.min_energy || e_high < t.min_energy {
        return None;
    }
    let twist_db = 10.0 * (e_low / e_high).log10();
    if !(-MAX_TWIST_HIGH_DB..=MAX_TWIST_LOW_DB).contains(&twist_db) {
        return None;
    }
    if (e_low + e_high) < MIN_PURITY * t.purity_norm * energy {
        return None;
    }
    // Second harmonics, at twice the measured frequency (a note 2 % off nominal has its harmonic 4 %
    // off twice nominal, far enough to hide in the window's skirt).
    let harmonic = |f: f32| Filter::new(2.0 * f).run(x).norm_sqr();
    if harmonic(f_high) > MAX_SECOND_HARMONIC * e_high {
        return None;
    }
    if (2.0 * f_low - f_high).abs() >= HARMONIC_CLEARANCE_HZ
        && harmonic(f_low) > MAX_SECOND_HARMONIC * e_low
    {
        return None;
    }
    Some(Hit {
        key: (row, column),
        energy: e_low + e_high,
        step_low,
        step_high,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_gain_matches_hann_landmarks() {
        assert!((window_gain(0.0) - 1.0).abs() < 1e-6);
        assert!((window_gain(1.0) - 0.5).abs() < 1e-6);
        assert!((window_gain(-0.5) - 0.8488).abs() < 1e-3);
        assert!((window_gain(7.0) - 0.5).abs() < 1e-6, "clamped to one bin");
    }

    #[test]
    fn filter_measures_frequency_offset_from_phase() {
        let t = &*TABLES;
        for offset in [-30.0f32, -12.5, 0.0, 7.0, 26.5] {
            let f = &t.tones[5];
            let hz = f.hz + offset;
            let signal: Vec<f32> = (0..WINDOW + HOP)
                .map(|n| 8000.0 * (TAU * hz * n as f32 / FS).sin())
                .collect();
            let windowed =
                |s: &[f32]| -> Vec<f32> { s.iter().zip(&t.window).map(|(a, b)| a * b).collect() };
            let a = f.run(&windowed(&signal[..WINDOW]));
            let b = f.run(&windowed(&signal[HOP..HOP + WINDOW]));
            let measured = f.offset_hz(b.mul_conj(a));
            assert!((measured - offset).abs() < 0.3, "{offset}: {measured}");
        }
    }

    #[test]
    fn silence_and_extremes_do_not_panic() {
        let mut d = InbandDetector::new();
        assert!(d.push(&[]).is_empty());
        assert!(d.push(&[0; 1000]).is_empty());
        assert!(d.push(&[i16::MAX; 1000]).is_empty());
        let square: Vec<i16> = (0..4000)
            .map(|n| if n % 2 == 0 { i16::MIN } else { i16::MAX })
            .collect();
        assert!(d.push(&square).is_empty());
        assert!(d.buffer.len() < WINDOW);
    }
}
