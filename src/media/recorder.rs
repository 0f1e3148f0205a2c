//! Call recording: one stereo WAV per call (8 kHz, 16-bit, left = caller, right = the other side),
//! written with `hound` as the call goes, both channels on the call's sample clock.
//!
//! The recorder is fed audio tagged with its position on the call's clock (8 kHz samples since the
//! recording started) and the clock itself ([`StereoRecorder::advance`]); it reads no time of its own.
//! Each channel buffers at most `max_lag` samples ahead of what the file holds, so memory is bounded
//! and a silent or stalled side is padded with silence. The RIFF and data sizes are rewritten every
//! second of audio written (and on [`StereoRecorder::flush_header`]), so after a SIGKILL the file
//! opens as it stood at the last rewrite; [`repair`] (run at start) recovers the rest that reached the
//! disk. An IO error — a full disk above all — stops the recording, never the call.

mod comment;
mod repair;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufWriter, Seek, Write};
use std::path::{Path, PathBuf};

use hound::{SampleFormat, WavSpec, WavWriter};

pub use comment::{append_comment, read_comment};
pub use repair::{FormatProblem, repair};

/// Recording sample rate (the call's clock ticks in these samples).
const RATE: u32 = 8000;
/// Bytes before the audio in the files written here (`hound`'s PCMWAVEFORMAT layout).
const HEADER_BYTES: u64 = 44;
/// One stereo 16-bit frame.
const FRAME_BYTES: u64 = 4;
/// The most frames a WAV can hold: its RIFF size field is 32 bits.
const MAX_FRAMES: u64 = (u32::MAX as u64 - (HEADER_BYTES - 8)) / FRAME_BYTES;
/// Frames written between automatic header rewrites: one second.
const HEADER_EVERY_FRAMES: u64 = RATE as u64;

const SPEC: WavSpec = WavSpec {
    channels: 2,
    sample_rate: RATE,
    bits_per_sample: 16,
    sample_format: SampleFormat::Int,
};

#[derive(Debug, thiserror::Error)]
pub enum RecorderError {
    /// Reading or writing the file failed; a full disk shows here (see [`RecorderError::is_disk_full`]).
    #[error("recording {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The file is not a WAV that can be repaired.
    #[error("recording {}: {problem}", path.display())]
    Format {
        path: PathBuf,
        problem: FormatProblem,
    },
    /// The WAV encoder refused a sample (not reachable with this recorder's fixed format).
    #[error("recording {}: WAV encoder: {source}", path.display())]
    Encoder {
        path: PathBuf,
        #[source]
        source: hound::Error,
    },
    /// The recording reached the 4 GiB a WAV can address (about 37 hours).
    #[error("recording {}: {frames} frames is more than a WAV file can hold", path.display())]
    TooLong { path: PathBuf, frames: u64 },
    /// An earlier error stopped this recording; nothing more is written.
    #[error("recording {}: stopped after an earlier error", path.display())]
    Stopped { path: PathBuf },
}

impl RecorderError {
    /// A stable, dotted code for the call record.
    pub fn code(&self) -> &'static str {
        match self {
            RecorderError::Io { .. } if self.is_disk_full() => "recording.disk_full",
            RecorderError::Io { .. } => "recording.io",
            RecorderError::Format { .. } => "recording.format",
            RecorderError::Encoder { .. } => "recording.encoder",
            RecorderError::TooLong { .. } => "recording.too_long",
            RecorderError::Stopped { .. } => "recording.stopped",
        }
    }

    /// No space left on the device, or the disk quota is used up.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, RecorderError::Io { source, .. }
            if matches!(source.kind(), io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded))
    }

    fn io(path: &Path, source: io::Error) -> Self {
        RecorderError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    fn from_hound(path: &Path, error: hound::Error) -> Self {
        match error {
            hound::Error::IoError(source) => RecorderError::io(path, source),
            source => RecorderError::Encoder {
                path: path.to_path_buf(),
                source,
            },
        }
    }
}

/// Where the WAV bytes go: the recording file (a test can put a failing writer in its place).
trait Sink: Write + Seek + Send {}
impl<T: Write + Seek + Send> Sink for T {}

type Writer = WavWriter<BufWriter<Box<dyn Sink>>>;

/// A call recording: 8 kHz, 16-bit, stereo WAV; left = caller, right = the other side.
/// Both channels are written on one clock: samples carry their position (8 kHz samples since the recording started);
/// gaps are filled with silence; at most `max_lag` samples are buffered per channel (bounded memory), after which the
/// lagging channel is padded with silence so the file keeps up with the call.
pub struct StereoRecorder {
    path: PathBuf,
    /// `None` once an error stopped the recording.
    wav: Option<Writer>,
    /// The same file, kept to sync it when the recording is finished.
    file: Option<File>,
    max_lag: u64,
    /// Frames in the file; the buffers start at this position.
    written: u64,
    /// `written` at the last header rewrite.
    header_at: u64,
    left: VecDeque<i16>,
    right: VecDeque<i16>,
    dropped: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// The caller.
    Left,
    /// The other side: the operator, or the prompts the server played.
    Right,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordingInfo {
    /// Stereo frames (samples per channel).
    pub frames: u64,
    pub duration_ms: u64,
    pub size_bytes: u64,
}

impl RecordingInfo {
    fn from_frames(frames: u64) -> Self {
        RecordingInfo {
            frames,
            duration_ms: frames * 1000 / u64::from(RATE),
            size_bytes: HEADER_BYTES + frames * FRAME_BYTES,
        }
    }
}

impl StereoRecorder {
    /// Creates (or truncates) the file and writes a valid, empty WAV to it at once.
    pub fn create(path: &Path, max_lag_samples: u64) -> Result<Self, RecorderError> {
        let file = File::create(path).map_err(|e| RecorderError::io(path, e))?;
        let sync = file.try_clone().map_err(|e| RecorderError::io(path, e))?;
        let mut recorder = Self::with_sink(path, Box::new(file), max_lag_samples)?;
        recorder.file = Some(sync);
        Ok(recorder)
    }

    fn with_sink(path: &Path, sink: Box<dyn Sink>, max_lag: u64) -> Result<Self, RecorderError> {
        let mut wav = WavWriter::new(BufWriter::new(sink), SPEC)
            .map_err(|e| RecorderError::from_hound(path, e))?;
        wav.flush()
            .map_err(|e| RecorderError::from_hound(path, e))?;
        let capacity = usize::try_from(max_lag.min(RATE as u64)).unwrap_or(0);
        Ok(StereoRecorder {
            path: path.to_path_buf(),
            wav: Some(wav),
            file: None,
            max_lag,
            written: 0,
            header_at: 0,
            left: VecDeque::with_capacity(capacity),
            right: VecDeque::with_capacity(capacity),
            dropped: 0,
        })
    }

    /// Audio for one channel at `at_sample`. Overlapping/late audio behind what was already written is dropped (counted).
    ///
    /// "Already written" is per channel: anything before the end of what this channel has been given
    /// (or before what the file holds) is dropped; a jump forward is filled with silence.
    pub fn write(
        &mut self,
        channel: Channel,
        at_sample: u64,
        samples: &[i16],
    ) -> Result<(), RecorderError> {
        self.live()?;
        let count = samples.len() as u64;
        let end = at_sample.saturating_add(count);
        let next = self.channel_end(channel);
        if end <= next {
            self.dropped += count;
            return Ok(());
        }
        let skip = next.saturating_sub(at_sample);
        self.dropped += skip;
        let at = at_sample + skip;
        let samples = &samples[usize::try_from(skip).unwrap_or(samples.len())..];
        // Keep the gap to fill within the lag bound: write out what lies before this audio.
        if end - self.written > self.max_lag {
            self.emit_until(at.min(end - self.max_lag))?;
        }
        let gap = at - self.channel_end(channel);
        let max_lag = self.max_lag;
        let buffer = self.buffer(channel);
        buffer.extend(std::iter::repeat_n(0, usize::try_from(gap).unwrap_or(0)));
        buffer.extend(samples);
        let excess = (buffer.len() as u64).saturating_sub(max_lag);
        if excess > 0 {
            self.emit_until(self.written + excess)?;
        }
        Ok(())
    }

    /// The call's clock reached `now_sample`: everything older than `now_sample - max_lag` is written out (silence where a channel had nothing).
    pub fn advance(&mut self, now_sample: u64) -> Result<(), RecorderError> {
        self.live()?;
        self.emit_until(now_sample.saturating_sub(self.max_lag))
    }

    /// Rewrites the RIFF and data sizes so the file is valid as it stands (call at least every second).
    pub fn flush_header(&mut self) -> Result<(), RecorderError> {
        let result = match self.wav.as_mut() {
            Some(wav) => wav.flush(),
            None => return Err(self.stopped()),
        };
        self.check(result)?;
        self.header_at = self.written;
        Ok(())
    }

    /// Writes what is buffered up to `end_sample` and finalises the file.
    ///
    /// Audio buffered beyond `end_sample` is discarded. After an earlier error (the recording is
    /// stopped) the file is salvaged as [`repair`] would, and what it holds is returned.
    pub fn finish(mut self, end_sample: u64) -> Result<RecordingInfo, RecorderError> {
        if self.wav.is_none() {
            self.file = None;
            return repair::salvage(&self.path);
        }
        self.emit_until(end_sample)?;
        let Some(wav) = self.wav.take() else {
            return Err(self.stopped());
        };
        wav.finalize()
            .map_err(|e| RecorderError::from_hound(&self.path, e))?;
        if let Some(file) = self.file.take() {
            file.sync_data()
                .map_err(|e| RecorderError::io(&self.path, e))?;
        }
        Ok(RecordingInfo::from_frames(self.written))
    }

    /// Frames (samples per channel) in the file so far.
    pub fn samples_written(&self) -> u64 {
        self.written
    }

    /// Samples of `channel` held in memory, not yet in the file (never more than `max_lag` between calls).
    pub fn buffered(&self, channel: Channel) -> usize {
        match channel {
            Channel::Left => self.left.len(),
            Channel::Right => self.right.len(),
        }
    }

    /// Samples dropped because they arrived behind their channel's audio or the file.
    pub fn dropped_samples(&self) -> u64 {
        self.dropped
    }

    /// The recording file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn buffer(&mut self, channel: Channel) -> &mut VecDeque<i16> {
        match channel {
            Channel::Left => &mut self.left,
            Channel::Right => &mut self.right,
        }
    }

    /// The position just after this channel's audio (buffered or already in the file).
    fn channel_end(&self, channel: Channel) -> u64 {
        self.written + self.buffered(channel) as u64
    }

    fn live(&self) -> Result<(), RecorderError> {
        if self.wav.is_some() {
            Ok(())
        } else {
            Err(self.stopped())
        }
    }

    fn stopped(&self) -> RecorderError {
        RecorderError::Stopped {
            path: self.path.clone(),
        }
    }

    /// Writes frames up to (not including) `target`, each channel from its buffer or silence.
    fn emit_until(&mut self, target: u64) -> Result<(), RecorderError> {
        if target <= self.written {
            return Ok(());
        }
        if target > MAX_FRAMES {
            let error = RecorderError::TooLong {
                path: self.path.clone(),
                frames: target,
            };
            return Err(self.stop(error));
        }
        let Some(wav) = self.wav.as_mut() else {
            return Err(self.stopped());
        };
        let mut result = Ok(());
        while self.written < target {
            let left = self.left.pop_front().unwrap_or(0);
            let right = self.right.pop_front().unwrap_or(0);
            result = wav
                .write_sample(left)
                .and_then(|()| wav.write_sample(right));
            if result.is_err() {
                break;
            }
            self.written += 1;
        }
        self.check(result)?;
        if self.written - self.header_at >= HEADER_EVERY_FRAMES {
            self.flush_header()?;
        }
        Ok(())
    }

    fn check<T>(&mut self, result: Result<T, hound::Error>) -> Result<T, RecorderError> {
        result.map_err(|e| {
            let error = RecorderError::from_hound(&self.path, e);
            self.stop(error)
        })
    }

    /// Stops the recording after an error: logs the alert, closes the file, frees the buffers.
    fn stop(&mut self, error: RecorderError) -> RecorderError {
        tracing::error!(
            path = %self.path.display(),
            code = error.code(),
            frames = self.written,
            error = %error,
            "recording stopped; the call goes on"
        );
        // Dropping the writer makes a best-effort header rewrite; `finish` or `repair` fixes the rest.
        self.wav = None;
        self.left = VecDeque::new();
        self.right = VecDeque::new();
        error
    }
}

impl std::fmt::Debug for StereoRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StereoRecorder")
            .field("path", &self.path)
            .field("stopped", &self.wav.is_none())
            .field("written", &self.written)
            .field("buffered", &(self.left.len(), self.right.len()))
            .field("dropped", &self.dropped)
            .finish()
    }
}
