//! Answering-machine detection: a pure detector over the first seconds of what the called party
//! says, by the cadence of speech (as Asterisk's `AMD()` and most dialers judge it) plus beep
//! detection. People answer with one short word ("Hello?") and then wait; machines talk on
//! ("Hi, you've reached…") and end with a beep.
//!
//! Audio comes in 20 ms frames of 8 kHz samples at their call-clock position; a gap in the
//! positions (no packets) counts as silence, and [`Detector::advance`] moves time on when nothing
//! arrives at all. Per frame: is it voice (RMS above a floor that follows the background noise),
//! and is it a tone (one frequency holds nearly all the frame's energy — a beep, never speech,
//! whose energy spreads over harmonics).
//!
//! Rules, in the order they can fire (durations from [`AmdSettings`]):
//! - a tone of `beep_min` or longer → `machine` (`beep`);
//! - voice for longer than `greeting` in total → `machine` (`long_greeting`);
//! - more than `max_words` words → `machine` (`many_words`);
//! - some voice, then `after_greeting_silence` of silence → `human` (`short_greeting`);
//! - nothing said for `initial_silence` → `unsure` (`initial_silence`);
//! - no decision after `total` → `unsure` (`timeout`).
//!
//! After a `machine` verdict, [`Detector::ready_for_message`] says when a message left on the
//! machine will be recorded: at the end of its beep, else after `end_of_greeting_silence` of
//! silence following its greeting, else after `beep_wait` at the latest.

use std::time::Duration;

const RATE: u64 = 8000;
const FRAME: usize = 160; // 20 ms

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Human,
    Machine,
    Unsure,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Human => "human",
            Verdict::Machine => "machine",
            Verdict::Unsure => "unsure",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    /// Which rule fired (`beep`, `long_greeting`, `many_words`, `short_greeting`,
    /// `initial_silence`, `timeout`).
    pub reason: &'static str,
    /// Time since the detector started listening.
    pub after: Duration,
}

/// The detector's thresholds; the defaults are Asterisk's `amd.conf` defaults, tuned on the
/// corpus in `bench/amd_corpus.rs` (BENCHMARKS.md has its confusion table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmdSettings {
    pub initial_silence: Duration,
    pub greeting: Duration,
    pub after_greeting_silence: Duration,
    pub total: Duration,
    /// Voice shorter than this is noise (a click, a breath), not a word.
    pub min_word: Duration,
    /// Silence that separates two words.
    pub between_words: Duration,
    pub max_words: u32,
    /// A tone this long is a beep.
    pub beep_min: Duration,
    /// After a machine verdict: silence that ends its greeting when no beep comes.
    pub end_of_greeting_silence: Duration,
    /// After a machine verdict: the longest wait for its beep.
    pub beep_wait: Duration,
}

impl Default for AmdSettings {
    fn default() -> Self {
        AmdSettings {
            initial_silence: Duration::from_millis(2500),
            greeting: Duration::from_millis(1500),
            after_greeting_silence: Duration::from_millis(800),
            total: Duration::from_millis(5000),
            min_word: Duration::from_millis(100),
            between_words: Duration::from_millis(50),
            max_words: 4,
            beep_min: Duration::from_millis(120),
            end_of_greeting_silence: Duration::from_millis(2000),
            beep_wait: Duration::from_secs(30),
        }
    }
}

/// When to start the message on a machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ready {
    /// Its beep just ended.
    AfterBeep,
    /// It stopped talking and no beep came.
    AfterSilence,
    /// Neither happened within `beep_wait`.
    WaitedLongEnough,
}

#[derive(Debug, Clone)]
pub struct Detector {
    settings: AmdSettings,
    /// Call-clock sample position where listening started, and the next frame's position.
    start: u64,
    next: u64,
    pending: Vec<i16>,
    /// Recent frame RMS values (one second), for the noise floor.
    recent_rms: std::collections::VecDeque<f64>,
    voice_frames: u64,
    /// The current run of voice or silence, in frames.
    run_voice: bool,
    run_frames: u64,
    /// Voice frames of the word being spoken (not yet counted).
    word_frames: u64,
    words: u32,
    heard_voice: bool,
    /// The current run of tonal frames and its frequency.
    tone_frames: u64,
    tone_hz: f64,
    beep_seen: bool,
    decision: Option<Decision>,
    /// After a machine verdict: when it came (sample position) and the answer to
    /// `ready_for_message` once known.
    decided_at: u64,
    ready: Option<Ready>,
}

impl Detector {
    /// Listens from call-clock position `start` (the answer).
    pub fn new(settings: AmdSettings, start: u64) -> Detector {
        Detector {
            settings,
            start,
            next: start,
            pending: Vec::with_capacity(FRAME),
            recent_rms: std::collections::VecDeque::with_capacity(50),
            voice_frames: 0,
            run_voice: false,
            run_frames: 0,
            word_frames: 0,
            words: 0,
            heard_voice: false,
            tone_frames: 0,
            tone_hz: 0.0,
            beep_seen: false,
            decision: None,
            decided_at: 0,
            ready: None,
        }
    }

    pub fn decision(&self) -> Option<Decision> {
        self.decision
    }

    /// After a machine verdict: whether the message may start now, and why.
    pub fn ready_for_message(&self) -> Option<Ready> {
        self.ready
    }

    /// Audio heard at call-clock position `at`. Returns the decision when it is made.
    pub fn push(&mut self, at: u64, samples: &[i16]) -> Option<Decision> {
        let before = self.decision;
        let cursor = self.cursor();
        if at + (samples.len() as u64) <= cursor {
            return None; // audio from before what we have heard already
        }
        let skip = cursor.saturating_sub(at) as usize;
        self.fill_gap(at.max(cursor));
        for &s in &samples[skip..] {
            self.pending.push(s);
            if self.pending.len() == FRAME {
                let frame = std::mem::take(&mut self.pending);
                self.frame(&frame);
                self.pending = frame;
                self.pending.clear();
            }
        }
        self.changed(before)
    }

    /// Time went on to call-clock position `until` with nothing heard: silence.
    pub fn advance(&mut self, until: u64) -> Option<Decision> {
        let before = self.decision;
        self.fill_gap(until);
        self.changed(before)
    }

    fn changed(&self, before: Option<Decision>) -> Option<Decision> {
        if before.is_none() {
            self.decision
        } else {
            None
        }
    }

    /// The position of the next sample expected.
    fn cursor(&self) -> u64 {
        self.next + self.pending.len() as u64
    }

    /// Silence up to `position`: the partial frame padded, then whole silent frames, but only as
    /// far as the rules can still use them (a caller far ahead does not make us loop).
    fn fill_gap(&mut self, position: u64) {
        if position <= self.cursor() {
            return;
        }
        if !self.pending.is_empty() {
            let missing = FRAME - self.pending.len();
            self.pending.extend(std::iter::repeat_n(0, missing));
            let frame = std::mem::take(&mut self.pending);
            self.frame(&frame);
        }
        let horizon = self.start
            + ms_to_samples(self.settings.total + self.settings.beep_wait)
            + FRAME as u64;
        let silence = [0i16; FRAME];
        while self.next + FRAME as u64 <= position.min(horizon) {
            self.frame(&silence);
        }
        if position > horizon {
            self.next = self.next.max(position);
        }
    }

    fn frame(&mut self, frame: &[i16]) {
        self.next += FRAME as u64;
        let elapsed = self.next - self.start;
        let rms = rms(frame);
        let floor = self.noise_floor();
        self.recent_rms.push_back(rms);
        if self.recent_rms.len() > 50 {
            self.recent_rms.pop_front();
        }
        let voice = rms >= floor;
        let tone = if voice { tone_hz(frame) } else { None };
        self.track_tone(tone);
        if voice == self.run_voice {
            self.run_frames += 1;
        } else {
            self.run_voice = voice;
            self.run_frames = 1;
        }
        if voice {
            self.voice_frames += 1;
            self.word_frames += 1;
            self.heard_voice = true;
        } else if self.word_frames > 0 && frames_to(self.run_frames) >= self.settings.between_words
        {
            self.end_word();
        }
        if self.decision.is_none() {
            self.decide(elapsed);
        } else if self.decision.is_some_and(|d| d.verdict == Verdict::Machine)
            && self.ready.is_none()
        {
            self.watch_for_beep_end(voice, elapsed);
        }
    }

    fn end_word(&mut self) {
        if frames_to(self.word_frames) >= self.settings.min_word {
            self.words += 1;
        }
        self.word_frames = 0;
    }

    fn track_tone(&mut self, tone: Option<f64>) {
        match tone {
            Some(hz)
                if self.tone_frames > 0 && (hz - self.tone_hz).abs() <= self.tone_hz * 0.05 =>
            {
                self.tone_frames += 1;
            }
            Some(hz) => {
                self.tone_frames = 1;
                self.tone_hz = hz;
            }
            None => {
                if frames_to(self.tone_frames) >= self.settings.beep_min {
                    self.beep_seen = true;
                }
                self.tone_frames = 0;
            }
        }
    }

    fn decide(&mut self, elapsed: u64) {
        let s = self.settings;
        let after = samples_to(elapsed);
        let verdict = if frames_to(self.tone_frames) >= s.beep_min || self.beep_seen {
            Some((Verdict::Machine, "beep"))
        } else if frames_to(self.voice_frames) > s.greeting {
            Some((Verdict::Machine, "long_greeting"))
        } else if self.words + u32::from(frames_to(self.word_frames) >= s.min_word) > s.max_words {
            Some((Verdict::Machine, "many_words"))
        } else if self.heard_voice
            && !self.run_voice
            && frames_to(self.run_frames) >= s.after_greeting_silence
            && self.words > 0
        {
            Some((Verdict::Human, "short_greeting"))
        } else if !self.heard_voice && after >= s.initial_silence {
            Some((Verdict::Unsure, "initial_silence"))
        } else if after >= s.total {
            Some((Verdict::Unsure, "timeout"))
        } else {
            None
        };
        if let Some((verdict, reason)) = verdict {
            self.decision = Some(Decision {
                verdict,
                reason,
                after,
            });
            self.decided_at = self.next;
            if verdict == Verdict::Machine && self.beep_seen && self.tone_frames == 0 {
                self.ready = Some(Ready::AfterBeep);
            }
        }
    }

    fn watch_for_beep_end(&mut self, voice: bool, elapsed: u64) {
        let s = self.settings;
        if self.beep_seen && self.tone_frames == 0 {
            self.ready = Some(Ready::AfterBeep);
        } else if !voice && frames_to(self.run_frames) >= s.end_of_greeting_silence {
            self.ready = Some(Ready::AfterSilence);
        } else if samples_to(self.next - self.decided_at) >= s.beep_wait {
            self.ready = Some(Ready::WaitedLongEnough);
        }
        let _ = elapsed;
    }

    /// Voice is what stands 10 dB above the quietest of the last second (the line's noise),
    /// and above an absolute floor (-48 dBFS) on a clean line.
    fn noise_floor(&self) -> f64 {
        let quietest = self
            .recent_rms
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min);
        let noise = if quietest.is_finite() { quietest } else { 0.0 };
        (noise * 3.16).max(130.0)
    }
}

fn ms_to_samples(d: Duration) -> u64 {
    d.as_millis() as u64 * RATE / 1000
}

fn samples_to(samples: u64) -> Duration {
    Duration::from_millis(samples * 1000 / RATE)
}

fn frames_to(frames: u64) -> Duration {
    Duration::from_millis(frames * 20)
}

fn rms(frame: &[i16]) -> f64 {
    let sum: f64 = frame.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    (sum / frame.len().max(1) as f64).sqrt()
}

/// The frequency of a frame that is one steady tone (a beep), else `None`. The zero crossings
/// give the candidate frequency; Goertzel at it and its neighbours tells how much of the frame's
/// energy that one frequency holds. Three Goertzel runs a frame keep it cheap for many calls.
fn tone_hz(frame: &[i16]) -> Option<f64> {
    let crossings = frame
        .windows(2)
        .filter(|w| (w[0] >= 0) != (w[1] >= 0))
        .count();
    let estimate = crossings as f64 * RATE as f64 / (2.0 * frame.len() as f64);
    if !(300.0..=3000.0).contains(&estimate) {
        return None;
    }
    let energy: f64 = frame.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    if energy <= 0.0 {
        return None;
    }
    let (best_hz, best) = [-25.0, 0.0, 25.0]
        .into_iter()
        .map(|d| {
            let hz = estimate + d;
            (hz, goertzel(frame, hz))
        })
        .fold((0.0, 0.0), |a, b| if b.1 > a.1 { b } else { a });
    // A pure tone's power at its frequency is energy·N/2; speech holds far less in one bin.
    let share = best / (energy * frame.len() as f64 / 2.0);
    (share >= 0.7).then_some(best_hz)
}

fn goertzel(frame: &[i16], hz: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * hz / RATE as f64;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in frame {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    s1 * s1 + s2 * s2 - coeff * s1 * s2
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Speech-like sound: a 140 Hz voice with harmonics, in syllables of `syllable` ms, for
    /// `total` ms. Deterministic.
    fn talk(total_ms: u64, syllable_ms: u64, level: f64) -> Vec<i16> {
        let n = (total_ms * RATE / 1000) as usize;
        let syl = (syllable_ms * RATE / 1000) as usize;
        (0..n)
            .map(|i| {
                let t = i as f64 / RATE as f64;
                let within = (i % syl) as f64 / syl as f64;
                let envelope = (std::f64::consts::PI * within).sin().max(0.0).powf(0.5);
                let voice: f64 = (1..=12)
                    .map(|h| (2.0 * std::f64::consts::PI * 140.0 * h as f64 * t).sin() / h as f64)
                    .sum();
                (voice * envelope * level).clamp(-32000.0, 32000.0) as i16
            })
            .collect()
    }

    fn silence(ms: u64) -> Vec<i16> {
        vec![0; (ms * RATE / 1000) as usize]
    }

    fn noise(ms: u64, level: f64, seed: u64) -> Vec<i16> {
        let mut x = seed | 1;
        (0..ms * RATE / 1000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (((x % 2001) as f64 - 1000.0) / 1000.0 * level) as i16
            })
            .collect()
    }

    fn tone(ms: u64, hz: f64, level: f64) -> Vec<i16> {
        (0..ms * RATE / 1000)
            .map(|i| {
                (level * (2.0 * std::f64::consts::PI * hz * i as f64 / RATE as f64).sin()) as i16
            })
            .collect()
    }

    fn mix(a: &[i16], b: &[i16]) -> Vec<i16> {
        a.iter()
            .zip(b.iter().chain(std::iter::repeat(&0)))
            .map(|(&x, &y)| x.saturating_add(y))
            .collect()
    }

    /// Feeds `audio` in 20 ms packets from position 1000 (not frame aligned on purpose).
    fn run(audio: &[i16]) -> (Detector, Option<Decision>) {
        let mut d = Detector::new(AmdSettings::default(), 1000);
        let mut first = None;
        for (i, chunk) in audio.chunks(160).enumerate() {
            if let Some(dec) = d.push(1000 + i as u64 * 160, chunk) {
                first.get_or_insert(dec);
            }
        }
        (d, first)
    }

    fn concat(parts: &[Vec<i16>]) -> Vec<i16> {
        parts.concat()
    }

    #[test]
    fn a_short_hello_then_silence_is_a_person() {
        let audio = concat(&[silence(300), talk(600, 300, 6000.0), silence(3000)]);
        let (_, dec) = run(&audio);
        let dec = dec.expect("decided");
        assert_eq!(
            (dec.verdict, dec.reason),
            (Verdict::Human, "short_greeting")
        );
        assert!(dec.after < Duration::from_millis(2000), "{:?}", dec.after);
    }

    #[test]
    fn a_long_greeting_is_a_machine() {
        let audio = concat(&[silence(200), talk(4000, 250, 6000.0), silence(500)]);
        let (_, dec) = run(&audio);
        let dec = dec.expect("decided");
        assert_eq!(dec.verdict, Verdict::Machine);
        assert!(
            dec.reason == "long_greeting" || dec.reason == "many_words",
            "{dec:?}"
        );
        assert!(dec.after <= Duration::from_millis(2500), "{:?}", dec.after);
    }

    #[test]
    fn a_beep_is_a_machine_and_the_message_starts_when_it_ends() {
        let audio = concat(&[silence(400), tone(400, 1000.0, 8000.0), silence(1000)]);
        let (d, dec) = run(&audio);
        assert_eq!(dec.expect("decided").reason, "beep");
        assert_eq!(d.ready_for_message(), Some(Ready::AfterBeep));
    }

    #[test]
    fn after_a_machine_greeting_the_message_waits_for_the_beep() {
        let greeting = talk(3000, 250, 6000.0);
        let audio = concat(&[
            silence(200),
            greeting.clone(),
            silence(300),
            tone(500, 850.0, 9000.0),
            silence(200),
        ]);
        let mut d = Detector::new(AmdSettings::default(), 0);
        let mut ready_at = None;
        for (i, chunk) in audio.chunks(160).enumerate() {
            d.push(i as u64 * 160, chunk);
            if ready_at.is_none() && d.ready_for_message().is_some() {
                ready_at = Some(i * 20);
            }
        }
        assert_eq!(d.decision().expect("decided").verdict, Verdict::Machine);
        assert_eq!(d.ready_for_message(), Some(Ready::AfterBeep));
        let beep_end = 200 + 3000 + 300 + 500;
        let at = ready_at.expect("ready") as u64;
        assert!((beep_end..=beep_end + 60).contains(&at), "ready at {at} ms");
    }

    #[test]
    fn a_machine_without_a_beep_gets_the_message_after_its_greeting_ends() {
        let audio = concat(&[talk(3000, 250, 6000.0), silence(2500)]);
        let (d, _) = run(&audio);
        assert_eq!(d.ready_for_message(), Some(Ready::AfterSilence));
    }

    #[test]
    fn nobody_speaking_is_unsure() {
        let (_, dec) = run(&silence(3000));
        let dec = dec.expect("decided");
        assert_eq!(
            (dec.verdict, dec.reason),
            (Verdict::Unsure, "initial_silence")
        );
        assert_eq!(dec.after, Duration::from_millis(2500));
    }

    #[test]
    fn no_packets_at_all_is_silence_by_position() {
        let mut d = Detector::new(AmdSettings::default(), 500);
        assert_eq!(d.advance(500 + 8000), None);
        let dec = d.advance(500 + 8 * 2600).expect("decided");
        assert_eq!(dec.reason, "initial_silence");
        // Far-off positions do not loop for ever.
        assert_eq!(d.advance(u64::MAX / 2), None);
    }

    #[test]
    fn a_hello_over_line_noise_is_still_a_person() {
        let hello = concat(&[silence(500), talk(500, 250, 7000.0), silence(2500)]);
        let audio = mix(&hello, &noise(3500, 600.0, 7));
        let (_, dec) = run(&audio);
        assert_eq!(dec.expect("decided").verdict, Verdict::Human);
    }

    #[test]
    fn noise_alone_is_not_a_person() {
        let (_, dec) = run(&noise(6000, 800.0, 3));
        assert_ne!(dec.expect("decided").verdict, Verdict::Human);
    }

    #[test]
    fn tones_are_told_from_speech() {
        for hz in [400.0, 1000.0, 1400.0, 2100.0] {
            let t = tone(20, hz, 8000.0);
            let got = tone_hz(&t).expect("tone");
            assert!((got - hz).abs() < 40.0, "{hz}: {got}");
        }
        let speech = talk(20, 300, 6000.0);
        assert_eq!(tone_hz(&speech[..160]), None);
        assert_eq!(tone_hz(&noise(20, 5000.0, 9)), None);
    }
}
