//! Text-to-speech: the small [`Tts`] trait, espeak-ng as its first engine, and [`TtsCache`], which
//! synthesizes each (voice, text) once and shares the 8 kHz audio like a decoded prompt.
//!
//! espeak-ng runs as a child process, never through a shell: the text is one argument after `--`
//! (so `--help` is spoken, not obeyed), at most [`MAX_TEXT_CHARS`] characters, with control characters
//! turned into spaces and espeak's `[[phoneme]]` brackets broken up so it is read literally; voice names
//! are checked against a small safe charset; the child is killed after a timeout. Its WAV (stdout) is
//! read with `hound`, resampled to 8 kHz by the prompt pipeline and peak-normalised to [`TARGET_PEAK`].
//!
//! Synthesis blocks (a process and a resample): call [`Tts::synthesize`] and [`TtsCache::get`] on a
//! blocking thread. A missing engine is a [`TtsError::NotInstalled`] value, never a panic.

use std::borrow::Cow;
use std::io::{self, Cursor, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use super::cache::AudioCache;
use super::prompt::resample_mono;

/// Longest text accepted for one synthesis, in characters (about two minutes of speech).
pub const MAX_TEXT_CHARS: usize = 2000;

/// Longest voice name accepted.
pub const MAX_VOICE_CHARS: usize = 40;

/// Peak level synthesized audio is normalised to: −3 dBFS, as the shipped prompts (`sounds/make.sh`).
pub const TARGET_PEAK: i16 = 23197;

/// Most a quiet synthesis is amplified (+12 dB), so near-silence is not blown up into noise.
const MAX_GAIN: f32 = 4.0;

/// How long espeak-ng may run before it is killed.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest WAV accepted from the engine (2,000 characters of speech at 22 kHz is well under this).
const MAX_WAV_BYTES: usize = 32 << 20;

/// Stderr kept for error messages.
const MAX_STDERR_BYTES: usize = 4096;

/// A text-to-speech engine. Implementations block; callers run them on a blocking thread.
pub trait Tts: Send + Sync {
    /// The engine's name, for logs and errors ("espeak-ng").
    fn name(&self) -> &str;

    /// 8 kHz mono PCM for `text` in `voice` (engine-specific voice/language name; None = default).
    fn synthesize(&self, text: &str, voice: Option<&str>) -> Result<Vec<i16>, TtsError>;

    /// Whether `voice` can be used, for flow loading: a bad voice is a load error, not a failed call.
    /// The default synthesizes a short word with it.
    fn check_voice(&self, voice: &str) -> Result<(), TtsError> {
        self.synthesize("test", Some(voice)).map(|_| ())
    }
}

/// Why speech could not be synthesized. Cloneable so that callers waiting on one shared synthesis
/// all receive its outcome.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TtsError {
    /// The engine's program is missing or is not the expected engine.
    #[error("text-to-speech engine {} is not available: {reason}", program.display())]
    NotInstalled { program: PathBuf, reason: String },
    /// The voice name is malformed (rejected before running anything) or unknown to the engine.
    #[error("{engine}: voice {voice:?} {reason}")]
    BadVoice {
        engine: String,
        voice: String,
        reason: &'static str,
    },
    /// The text is longer than [`MAX_TEXT_CHARS`].
    #[error("text of {chars} characters is longer than the {max} allowed for text-to-speech")]
    TooLong { chars: usize, max: usize },
    /// Nothing to say (empty or whitespace only).
    #[error("there is no text to speak")]
    EmptyText,
    /// The engine did not finish in time and was killed.
    #[error("{engine} did not finish within {timeout:?} and was stopped")]
    Timeout { engine: String, timeout: Duration },
    /// The engine ran and failed (exit status, output too large, an IO error talking to it).
    #[error("{engine} failed: {reason}")]
    Failed { engine: String, reason: String },
    /// The engine's output is not audio we can read.
    #[error("{engine}: cannot decode its audio: {reason}")]
    Decode { engine: String, reason: String },
}

impl TtsError {
    /// A stable, dotted code for call records and API errors.
    pub fn code(&self) -> &'static str {
        match self {
            TtsError::NotInstalled { .. } => "tts.not_installed",
            TtsError::BadVoice { .. } => "tts.bad_voice",
            TtsError::TooLong { .. } => "tts.too_long",
            TtsError::EmptyText => "tts.empty_text",
            TtsError::Timeout { .. } => "tts.timeout",
            TtsError::Failed { .. } => "tts.failed",
            TtsError::Decode { .. } => "tts.decode",
        }
    }
}

/// Checks that `text` can be spoken: not empty, at most [`MAX_TEXT_CHARS`]. Engine-independent, so the
/// flow loader can run it on literal `say` text.
pub fn check_text(text: &str) -> Result<(), TtsError> {
    let chars = text.chars().count();
    if chars > MAX_TEXT_CHARS {
        return Err(TtsError::TooLong {
            chars,
            max: MAX_TEXT_CHARS,
        });
    }
    if text.trim().is_empty() {
        return Err(TtsError::EmptyText);
    }
    Ok(())
}

/// Checks a voice name's form: 1–[`MAX_VOICE_CHARS`] of `A–Z a–z 0–9 - _ +`, starting with a letter or
/// digit (so never an option, a path or anything a shell would read). Whether the engine has the voice
/// is [`Tts::check_voice`].
pub fn check_voice_name(engine: &str, voice: &str) -> Result<(), TtsError> {
    let bad = |reason| TtsError::BadVoice {
        engine: engine.to_owned(),
        voice: voice.to_owned(),
        reason,
    };
    if voice.is_empty() || voice.len() > MAX_VOICE_CHARS {
        return Err(bad("is empty or too long"));
    }
    if !voice.starts_with(|c: char| c.is_ascii_alphanumeric())
        || !voice
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '+'))
    {
        return Err(bad("is not a voice name (letters, digits, '-', '_', '+')"));
    }
    Ok(())
}

/// The text as espeak-ng should get it: control characters (newlines, NUL…) become spaces and `[[`,
/// which espeak reads as the start of phoneme input, becomes `[ [`.
fn literal_text(text: &str) -> Cow<'_, str> {
    if !text.contains(|c: char| c.is_control()) && !text.contains("[[") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.push(' ');
        } else if c == '[' && out.ends_with('[') {
            out.push_str(" [");
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// The espeak-ng engine, run as `espeak-ng --stdout [-v VOICE] -- TEXT`.
#[derive(Debug, Clone)]
pub struct EspeakNg {
    program: PathBuf,
    version: String,
    default_voice: Option<String>,
    timeout: Duration,
}

impl EspeakNg {
    /// The program looked up on `PATH` by [`EspeakNg::detect`].
    pub const PROGRAM: &'static str = "espeak-ng";

    /// espeak-ng from `PATH` if it is installed and runs; `None` otherwise. For the reason (to log a
    /// startup warning), use [`EspeakNg::with_program`]`(EspeakNg::PROGRAM)`.
    pub fn detect() -> Option<EspeakNg> {
        EspeakNg::with_program(Self::PROGRAM).ok()
    }

    /// The engine at `program` (a path, or a name looked up on `PATH`), checked by running
    /// `program --version`: it must exit successfully and say it is eSpeak NG.
    pub fn with_program(program: impl Into<PathBuf>) -> Result<EspeakNg, TtsError> {
        let program = program.into();
        let not_installed = |reason: String| TtsError::NotInstalled {
            program: program.clone(),
            reason,
        };
        let mut command = Command::new(&program);
        command.arg("--version");
        let finished = run(command, Duration::from_secs(5), 64 * 1024).map_err(|e| match e {
            RunError::Spawn(e) if e.kind() == io::ErrorKind::NotFound => {
                not_installed("not found (install the `espeak-ng` package)".into())
            }
            other => not_installed(format!("`--version` {other}")),
        })?;
        let stdout = String::from_utf8_lossy(&finished.stdout);
        if !finished.status.success() || !stdout.contains("eSpeak NG") {
            return Err(not_installed(format!(
                "`--version` did not identify eSpeak NG ({})",
                finished.status
            )));
        }
        let version = stdout.lines().next().unwrap_or_default().trim().to_owned();
        Ok(EspeakNg {
            program,
            version,
            default_voice: None,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Uses `voice` when a request names none (checked for form here; see [`Tts::check_voice`]).
    pub fn with_default_voice(mut self, voice: &str) -> Result<EspeakNg, TtsError> {
        check_voice_name(self.name(), voice)?;
        self.default_voice = Some(voice.to_owned());
        Ok(self)
    }

    /// How long one synthesis may run before the child is killed ([`DEFAULT_TIMEOUT`] otherwise).
    pub fn with_timeout(mut self, timeout: Duration) -> EspeakNg {
        self.timeout = timeout;
        self
    }

    /// The first line of `espeak-ng --version`, for the startup log.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The program that is run.
    pub fn program(&self) -> &Path {
        &self.program
    }

    fn failed(&self, reason: impl Into<String>) -> TtsError {
        TtsError::Failed {
            engine: self.name().to_owned(),
            reason: reason.into(),
        }
    }

    fn decode_error(&self, reason: impl Into<String>) -> TtsError {
        TtsError::Decode {
            engine: self.name().to_owned(),
            reason: reason.into(),
        }
    }
}

impl Tts for EspeakNg {
    fn name(&self) -> &str {
        Self::PROGRAM
    }

    fn synthesize(&self, text: &str, voice: Option<&str>) -> Result<Vec<i16>, TtsError> {
        check_text(text)?;
        if let Some(voice) = voice {
            check_voice_name(self.name(), voice)?;
        }
        let voice = voice.or(self.default_voice.as_deref());
        let mut command = Command::new(&self.program);
        command.arg("--stdout");
        if let Some(voice) = voice {
            command.arg("-v").arg(voice);
        }
        command.arg("--").arg(&*literal_text(text));

        let finished = run(command, self.timeout, MAX_WAV_BYTES).map_err(|e| match e {
            RunError::Spawn(e) if e.kind() == io::ErrorKind::NotFound => TtsError::NotInstalled {
                program: self.program.clone(),
                reason: "not found (install the `espeak-ng` package)".into(),
            },
            RunError::Timeout => TtsError::Timeout {
                engine: self.name().to_owned(),
                timeout: self.timeout,
            },
            other => self.failed(other.to_string()),
        })?;
        if !finished.status.success() {
            let stderr = String::from_utf8_lossy(&finished.stderr);
            let stderr = stderr.trim();
            if let Some(voice) = voice
                && stderr.contains("voice")
            {
                return Err(TtsError::BadVoice {
                    engine: self.name().to_owned(),
                    voice: voice.to_owned(),
                    reason: "is not installed",
                });
            }
            return Err(self.failed(format!("{}: {stderr}", finished.status)));
        }
        let (samples, rate) = read_wav(&finished.stdout).map_err(|e| self.decode_error(e))?;
        let mut pcm =
            resample_mono(&samples, rate).map_err(|e| self.decode_error(e.to_string()))?;
        if pcm.is_empty() {
            return Err(self.decode_error("no audio"));
        }
        normalise(&mut pcm);
        Ok(pcm)
    }
}

/// Reads a mono 16-bit PCM WAV from memory. espeak-ng streams to a pipe, so its header announces a
/// placeholder length (0x7ffff000): the data ends where the bytes do.
fn read_wav(bytes: &[u8]) -> Result<(Vec<i16>, u32), String> {
    let reader = hound::WavReader::new(Cursor::new(bytes)).map_err(|e| e.to_string())?;
    let spec = reader.spec();
    if spec.channels != 1
        || spec.bits_per_sample != 16
        || spec.sample_format != hound::SampleFormat::Int
    {
        return Err(format!(
            "expected mono 16-bit PCM, got {} channel(s) of {}-bit {:?}",
            spec.channels, spec.bits_per_sample, spec.sample_format
        ));
    }
    let mut samples = Vec::with_capacity(bytes.len() / 2);
    for sample in reader.into_samples::<i16>() {
        match sample {
            Ok(s) => samples.push(s),
            // The placeholder length runs past the end of the stream: that is the end.
            Err(hound::Error::IoError(_)) => break,
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok((samples, spec.sample_rate))
}

/// Scales the audio so its peak is [`TARGET_PEAK`], boosting by at most [`MAX_GAIN`]. Silence stays.
fn normalise(pcm: &mut [i16]) {
    let peak = pcm.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
    if peak == 0 {
        return;
    }
    let gain = (f32::from(TARGET_PEAK) / f32::from(peak)).min(MAX_GAIN);
    if (gain - 1.0).abs() < 0.01 {
        return;
    }
    for s in pcm.iter_mut() {
        *s = (f32::from(*s) * gain)
            .round()
            .clamp(-f32::from(TARGET_PEAK), f32::from(TARGET_PEAK)) as i16;
    }
}

/// What a finished child left behind.
struct Finished {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error("cannot start: {0}")]
    Spawn(io::Error),
    #[error("timed out")]
    Timeout,
    #[error("output larger than {0} bytes")]
    TooLarge(usize),
    #[error("{0}")]
    Io(io::Error),
}

/// Runs `command` with no stdin, collecting stdout (at most `max_stdout` bytes) and stderr, and kills
/// it once `timeout` has passed. Pipes are drained on their own threads so the child never blocks on a
/// full pipe; the caller waits with a short polling backoff (1–20 ms) on `try_wait`.
fn run(mut command: Command, timeout: Duration, max_stdout: usize) -> Result<Finished, RunError> {
    let deadline = Instant::now() + timeout;
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().map_err(RunError::Spawn)?;
    let readers = child
        .stdout
        .take()
        .zip(child.stderr.take())
        .ok_or_else(|| io::Error::other("the child's pipes are missing"))
        .and_then(|(out, err)| Ok((drain(out, max_stdout + 1)?, drain(err, MAX_STDERR_BYTES)?)));
    let (stdout, stderr) = match readers {
        Ok(readers) => readers,
        Err(e) => {
            kill(&mut child);
            return Err(RunError::Io(e));
        }
    };

    let mut step = Duration::from_millis(1);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => {
                kill(&mut child);
                return Err(RunError::Io(e));
            }
        }
        let now = Instant::now();
        if now >= deadline {
            kill(&mut child);
            return Err(RunError::Timeout);
        }
        thread::sleep(step.min(deadline - now));
        step = (step * 2).min(Duration::from_millis(20));
    };

    // The child has exited; its pipes close unless it left a process behind holding them.
    let collect = |rx: Receiver<io::Result<Vec<u8>>>| {
        let wait = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait.max(Duration::from_millis(100))) {
            Ok(result) => result.map_err(RunError::Io),
            Err(RecvTimeoutError::Timeout) => Err(RunError::Timeout),
            Err(RecvTimeoutError::Disconnected) => {
                Err(RunError::Io(io::Error::other("pipe reader stopped")))
            }
        }
    };
    let stdout = collect(stdout)?;
    let stderr = collect(stderr)?;
    if stdout.len() > max_stdout {
        return Err(RunError::TooLarge(max_stdout));
    }
    Ok(Finished {
        status,
        stdout,
        stderr,
    })
}

/// Reads `pipe` to its end (keeping at most `limit` bytes) on a thread of its own. Stopping at the
/// limit closes the pipe, so a runaway child gets EPIPE instead of blocking.
fn drain(
    pipe: impl Read + Send + 'static,
    limit: usize,
) -> io::Result<Receiver<io::Result<Vec<u8>>>> {
    let (tx, rx) = mpsc::sync_channel(1);
    thread::Builder::new()
        .name("tts-pipe".into())
        .spawn(move || {
            let mut buf = Vec::new();
            let result = pipe.take(limit as u64).read_to_end(&mut buf).map(|_| buf);
            // The receiver may have given up (timeout); nothing left to do then.
            let _ = tx.send(result);
        })?;
    Ok(rx)
}

fn kill(child: &mut Child) {
    // Fails only if it has already exited; `wait` then reaps it either way.
    let _ = child.kill();
    let _ = child.wait();
}

/// Synthesized speech shared by every call, keyed by (voice, text): a cache belongs to one engine, so
/// that completes the (engine, voice, text) key. Concurrent first requests for one key synthesize
/// once; the others wait for that result. Least recently used entries are evicted beyond the byte
/// budget; errors are not kept (the next request tries again). The mechanism is [`AudioCache`],
/// shared with [`PromptCache`](super::prompt::PromptCache).
pub struct TtsCache {
    engine: Arc<dyn Tts>,
    max_bytes: usize,
    cache: AudioCache<Key, (), TtsError>,
    /// Syntheses started, for tests and metrics.
    syntheses: AtomicUsize,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    voice: Option<String>,
    text: String,
}

impl TtsCache {
    /// A cache in front of `engine` holding at most `max_bytes` of audio (2 bytes a sample).
    pub fn new(engine: Arc<dyn Tts>, max_bytes: usize) -> Self {
        TtsCache {
            engine,
            max_bytes,
            cache: AudioCache::new(max_bytes),
            syntheses: AtomicUsize::new(0),
        }
    }

    /// The engine behind the cache.
    pub fn engine(&self) -> &dyn Tts {
        &*self.engine
    }

    /// 8 kHz speech for `text` in `voice`, synthesized on a miss. Malformed text or voice names are
    /// rejected before the engine runs. Blocking on a miss (or while another caller synthesizes the
    /// same key): run it on a blocking thread.
    pub fn get(&self, text: &str, voice: Option<&str>) -> Result<Arc<[i16]>, TtsError> {
        check_text(text)?;
        if let Some(voice) = voice {
            check_voice_name(self.engine.name(), voice)?;
        }
        let key = Key {
            voice: voice.map(str::to_owned),
            text: text.to_owned(),
        };
        self.cache.get_or_produce(&key, (), || {
            self.syntheses.fetch_add(1, Ordering::Relaxed);
            self.engine.synthesize(text, voice).map(Arc::from)
        })
    }

    /// Entries held (synthesized, or being synthesized).
    pub fn len(&self) -> usize {
        self.cache.len()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }

    /// Bytes of audio held.
    pub fn bytes(&self) -> usize {
        self.cache.bytes()
    }

    /// Syntheses started since the cache was made.
    pub fn syntheses(&self) -> usize {
        self.syntheses.load(Ordering::Relaxed)
    }
}

impl std::fmt::Debug for TtsCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TtsCache")
            .field("engine", &self.engine.name())
            .field("max_bytes", &self.max_bytes)
            .field("entries", &self.cache.len())
            .field("bytes", &self.cache.bytes())
            .finish()
    }
}

#[cfg(test)]
mod tests;
