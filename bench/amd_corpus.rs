//! Accuracy of answering-machine detection (`openline::broadcast::amd`) on a labelled corpus
//! generated here: espeak-ng speaks people's short answers and machines' greetings in several
//! voices and speeds, machines end with a beep (or not), some clips get background noise, and
//! some are silence or noise alone. Each clip runs through the detector as 20 ms frames, as the
//! call task feeds it; the result is a confusion table (markdown, for BENCHMARKS.md).
//!
//! ```text
//! cargo run --release --example amd_corpus                 # the table
//! cargo run --release --example amd_corpus -- --fixtures tests/data/amd   # + e2e fixtures
//! ```
//! Needs `espeak-ng`. Deterministic: the noise comes from a fixed-seed generator.

use openline::broadcast::amd::{AmdSettings, Detector, Ready, Verdict};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const RATE: usize = 8000;

/// What a clip really is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Truth {
    Human,
    Machine,
    /// Nobody speaks (a silent line, noise): the right answer is `unsure`.
    Nobody,
}

struct Clip {
    name: String,
    truth: Truth,
    samples: Vec<i16>,
    /// For machines with a beep: where it ends (samples), to judge when the message starts.
    beep_end: Option<usize>,
}

const HUMAN_LINES: &[&str] = &[
    "Hello?",
    "Yes?",
    "Hi.",
    "Hello, who is this?",
    "Yeah, hello.",
    "Speaking.",
    "Hello, Olena speaking.",
    "Good morning.",
];

const MACHINE_LINES: &[&str] = &[
    "Hi, you have reached Anna. I can't take your call right now, please leave a message after the tone.",
    "You have reached the voicemail of 0 4 4 1 2 3 4 5 6 7. Please leave a message.",
    "Hello, this is Taras. Leave your name and number and I will call you back.",
    "The person you are calling is not available. Please record your message after the tone. When you have finished, hang up.",
    "Hi! It's Sam. Leave a message.",
    "Thank you for calling Acme. Our office is closed. Please call again between nine and six.",
];

const VOICES: &[(&str, u32)] = &[
    ("en-us", 160),
    ("en-gb", 175),
    ("en-gb-scotland", 150),
    ("en-029", 185),
];

fn speak(text: &str, voice: &str, speed: u32, dir: &Path, n: usize) -> Vec<i16> {
    let path = dir.join(format!("clip{n}.wav"));
    let status = Command::new("espeak-ng")
        .args(["-v", voice, "-s", &speed.to_string(), "-w"])
        .arg(&path)
        .arg(text)
        .status()
        .expect("espeak-ng must be installed");
    assert!(status.success(), "espeak-ng failed");
    let samples = openline::media::prompt::decode_file(&path).expect("decode espeak output");
    let _ = std::fs::remove_file(&path);
    trim(samples)
}

/// espeak-ng pads its output with silence; a person's or machine's speech starts at once.
fn trim(samples: Vec<i16>) -> Vec<i16> {
    let loud = |s: &i16| s.unsigned_abs() > 300;
    let start = samples.iter().position(loud).unwrap_or(0);
    let end = samples
        .iter()
        .rposition(loud)
        .map_or(samples.len(), |e| e + 1);
    samples[start..end].to_vec()
}

fn silence(seconds: f64) -> Vec<i16> {
    vec![0; (seconds * RATE as f64) as usize]
}

fn tone(hz: f64, seconds: f64, amplitude: f64) -> Vec<i16> {
    (0..(seconds * RATE as f64) as usize)
        .map(|i| {
            (amplitude * (2.0 * std::f64::consts::PI * hz * i as f64 / RATE as f64).sin()) as i16
        })
        .collect()
}

/// A fixed-seed generator (xorshift) for reproducible noise.
struct Noise(u64);

impl Noise {
    fn sample(&mut self, amplitude: f64) -> i16 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 % 2001) as f64 / 1000.0 - 1.0).mul_add(amplitude, 0.0) as i16
    }

    fn add(&mut self, samples: &mut [i16], amplitude: f64) {
        for s in samples {
            *s = s.saturating_add(self.sample(amplitude));
        }
    }
}

fn corpus(dir: &Path) -> Vec<Clip> {
    let mut clips = Vec::new();
    let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
    let mut n = 0;
    for (v, (voice, speed)) in VOICES.iter().enumerate() {
        for (i, line) in HUMAN_LINES.iter().enumerate() {
            n += 1;
            // A person answers after a moment and then waits for us.
            let mut samples = silence(0.2 + 0.1 * (i % 3) as f64);
            samples.extend(speak(line, voice, *speed, dir, n));
            samples.extend(silence(4.0));
            let noisy = (i + v) % 3 == 0;
            if noisy {
                noise.add(&mut samples, 300.0);
            }
            clips.push(Clip {
                name: format!(
                    "human {voice} {line:?}{}",
                    if noisy { " +noise" } else { "" }
                ),
                truth: Truth::Human,
                samples,
                beep_end: None,
            });
        }
        for (i, line) in MACHINE_LINES.iter().enumerate() {
            n += 1;
            let mut samples = silence(0.3);
            samples.extend(speak(line, voice, *speed, dir, n));
            let with_beep = (i + v) % 4 != 3;
            let mut beep_end = None;
            samples.extend(silence(0.4));
            if with_beep {
                let hz = [1000.0, 850.0, 1400.0][(i + v) % 3];
                samples.extend(tone(hz, 0.4 + 0.1 * (i % 3) as f64, 8000.0));
                beep_end = Some(samples.len());
            }
            samples.extend(silence(3.0));
            let noisy = (i + v) % 3 == 1;
            if noisy {
                noise.add(&mut samples, 300.0);
            }
            clips.push(Clip {
                name: format!(
                    "machine {voice} {}{}{}",
                    line.split_whitespace()
                        .take(4)
                        .collect::<Vec<_>>()
                        .join(" "),
                    if with_beep { " +beep" } else { "" },
                    if noisy { " +noise" } else { "" }
                ),
                truth: Truth::Machine,
                samples,
                beep_end,
            });
        }
    }
    for (i, amplitude) in [0.0, 100.0, 400.0, 1200.0].iter().enumerate() {
        let mut samples = silence(6.0);
        noise.add(&mut samples, *amplitude);
        clips.push(Clip {
            name: format!("nobody, noise {amplitude}"),
            truth: Truth::Nobody,
            samples,
            beep_end: None,
        });
        let _ = i;
    }
    clips
}

struct Outcome {
    verdict: Verdict,
    reason: &'static str,
    after_ms: u128,
    /// For machines: how the message start was chosen and when (ms into the clip).
    ready: Option<(Ready, u128)>,
}

fn detect(samples: &[i16]) -> Outcome {
    let mut detector = Detector::new(AmdSettings::default(), 0);
    let mut ready = None;
    for (i, frame) in samples.chunks(160).enumerate() {
        let at = (i * 160) as u64;
        detector.push(at, frame);
        if ready.is_none()
            && let Some(r) = detector.ready_for_message()
        {
            ready = Some((r, (at as u128 + 160) / 8));
        }
    }
    detector.advance(samples.len() as u64 + 8000 * 30);
    if ready.is_none()
        && let Some(r) = detector.ready_for_message()
    {
        ready = Some((r, samples.len() as u128 / 8));
    }
    let decision = detector.decision().expect("a decision by the end");
    Outcome {
        verdict: decision.verdict,
        reason: decision.reason,
        after_ms: decision.after.as_millis(),
        ready,
    }
}

fn write_fixture(dir: &Path, name: &str, samples: &[i16]) {
    std::fs::create_dir_all(dir).expect("fixtures dir");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(dir.join(name), spec).expect("create wav");
    for &s in samples {
        w.write_sample(s).expect("write");
    }
    w.finalize().expect("finalize");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let fixtures: Option<PathBuf> = args
        .iter()
        .position(|a| a == "--fixtures")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from);
    let verbose = args.iter().any(|a| a == "--verbose");
    let work = tempfile::tempdir().expect("temp dir");
    let clips = corpus(work.path());

    let mut table: BTreeMap<Truth, BTreeMap<&str, usize>> = BTreeMap::new();
    let mut reasons: BTreeMap<(Truth, &str, &str), usize> = BTreeMap::new();
    let mut decision_ms: BTreeMap<Truth, Vec<u128>> = BTreeMap::new();
    let (mut after_beep, mut beeps, mut early) = (0, 0, 0);
    for clip in &clips {
        let out = detect(&clip.samples);
        *table
            .entry(clip.truth)
            .or_default()
            .entry(out.verdict.as_str())
            .or_default() += 1;
        *reasons
            .entry((clip.truth, out.verdict.as_str(), out.reason))
            .or_default() += 1;
        decision_ms
            .entry(clip.truth)
            .or_default()
            .push(out.after_ms);
        if let (Some(end), Verdict::Machine) = (clip.beep_end, out.verdict) {
            beeps += 1;
            if let Some((Ready::AfterBeep, at)) = out.ready {
                after_beep += 1;
                if at < end as u128 / 8 {
                    early += 1;
                }
            }
        }
        if verbose {
            println!(
                "{:<70} → {} ({}, {} ms) ready {:?}",
                clip.name,
                out.verdict.as_str(),
                out.reason,
                out.after_ms,
                out.ready
            );
        }
    }

    println!("| truth \\ verdict | human | machine | unsure | clips | right |");
    println!("|---|---:|---:|---:|---:|---:|");
    let mut right_total = 0;
    for (truth, row) in &table {
        let get = |k: &str| row.get(k).copied().unwrap_or(0);
        let total: usize = row.values().sum();
        let right = match truth {
            Truth::Human => get("human"),
            Truth::Machine => get("machine"),
            Truth::Nobody => get("unsure"),
        };
        right_total += right;
        println!(
            "| {truth:?} | {} | {} | {} | {total} | {:.0} % |",
            get("human"),
            get("machine"),
            get("unsure"),
            100.0 * right as f64 / total.max(1) as f64
        );
    }
    println!(
        "\n{} clips, {:.1} % right. Machines with a beep detected as machines: {beeps}; message \
         started at the end of the beep for {after_beep} ({early} before the beep ended).",
        clips.len(),
        100.0 * right_total as f64 / clips.len() as f64
    );
    for (truth, ms) in &mut decision_ms {
        ms.sort();
        println!(
            "{truth:?}: median decision after {} ms (max {} ms)",
            ms[ms.len() / 2],
            ms[ms.len() - 1]
        );
    }
    println!("\nRules that fired:");
    for ((truth, verdict, reason), n) in &reasons {
        println!("- {truth:?} → {verdict} by `{reason}`: {n}");
    }

    if let Some(dir) = fixtures {
        // For the end-to-end test: one machine greeting with a beep, one short human answer.
        let machine = clips
            .iter()
            .find(|c| c.truth == Truth::Machine && c.beep_end.is_some())
            .expect("a machine clip");
        let human = clips
            .iter()
            .find(|c| c.truth == Truth::Human)
            .expect("a human clip");
        write_fixture(&dir, "machine_greeting_beep.wav", &machine.samples);
        write_fixture(&dir, "human_hello.wav", &human.samples);
        println!(
            "\nfixtures written to {}: {:?}, {:?}",
            dir.display(),
            machine.name,
            human.name
        );
    }
}
