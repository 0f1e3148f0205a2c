//! Mixdown and resampling of decoded audio to 8 kHz mono i16, streamed chunk by chunk.
//!
//! Resampling uses `rubato`'s synchronous FFT resampler: the signal is filtered in the frequency
//! domain with a Blackman-Harris windowed sinc whose cutoff sits just below the lower Nyquist
//! frequency, so a 5 kHz tone in a 48 kHz file does not alias into the 8 kHz output. The filter's
//! start-up delay is trimmed and the output is cut to exactly `ceil(frames · 8000 / rate)` samples.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Indexing, Resampler, WindowFunction};

use super::RATE;

/// Input frames per resampler chunk (a hint: rubato rounds it to a multiple of its FFT block). One FFT
/// block per chunk keeps the block large, which puts the anti-aliasing cutoff close to 4 kHz.
const CHUNK_FRAMES: usize = 2048;

/// Highest source rate accepted; beyond this a file is almost certainly not a prompt.
pub(super) const MAX_RATE: u32 = 768_000;

/// The longest audio decoded (one hour at 8 kHz, ~58 MB): a small, highly compressed file (a
/// FLAC of silence, a broadcast upload) must not decode into gigabytes of memory.
pub(crate) const MAX_SECONDS: usize = 3600;
const MAX_OUT: usize = MAX_SECONDS * RATE as usize;

/// Why the resampling stage failed. Only reachable on a bad source rate or a rubato bug.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ResampleFailure {
    #[error("sample rate {0} Hz is not supported")]
    Rate(u32),
    #[error("{0} channels is not supported")]
    Channels(usize),
    #[error("resampler: {0}")]
    Construction(#[from] rubato::ResamplerConstructionError),
    #[error("resampler: {0}")]
    Process(#[from] rubato::ResampleError),
    #[error("resampler: buffer size mismatch")]
    Buffer,
    #[error("longer than {MAX_SECONDS} s")]
    TooLong,
}

/// Takes interleaved f32 frames (full scale ±1.0) at the source rate and channel count and produces
/// 8 kHz mono i16.
pub(super) struct Pipeline {
    channels: usize,
    stage: Stage,
    out: Vec<i16>,
}

enum Stage {
    /// The source is already at 8 kHz: mixdown and quantisation only (bit-exact for 16-bit mono).
    Pass,
    Resample(Box<Downsampler>),
}

impl Pipeline {
    pub(super) fn new(rate: u32, channels: usize) -> Result<Self, ResampleFailure> {
        if rate == 0 || rate > MAX_RATE {
            return Err(ResampleFailure::Rate(rate));
        }
        if channels == 0 || channels > 64 {
            return Err(ResampleFailure::Channels(channels));
        }
        let stage = if rate == RATE {
            Stage::Pass
        } else {
            Stage::Resample(Box::new(Downsampler::new(rate)?))
        };
        Ok(Pipeline {
            channels,
            stage,
            out: Vec::new(),
        })
    }

    pub(super) fn channels(&self) -> usize {
        self.channels
    }

    /// Pushes interleaved samples; a trailing partial frame is ignored.
    pub(super) fn push_interleaved(&mut self, samples: &[f32]) -> Result<(), ResampleFailure> {
        let scale = 1.0 / self.channels as f32;
        for frame in samples.chunks_exact(self.channels) {
            let mono = if self.channels == 1 {
                frame[0]
            } else {
                frame.iter().sum::<f32>() * scale
            };
            match &mut self.stage {
                Stage::Pass => self.out.push(quantise(mono)),
                Stage::Resample(down) => down.push(mono, &mut self.out)?,
            }
        }
        if self.out.len() > MAX_OUT {
            return Err(ResampleFailure::TooLong);
        }
        Ok(())
    }

    /// Drains the resampler and returns the 8 kHz samples.
    pub(super) fn finish(mut self) -> Result<Vec<i16>, ResampleFailure> {
        if let Stage::Resample(down) = self.stage {
            down.finish(&mut self.out)?;
        }
        Ok(self.out)
    }
}

/// Resamples mono 16-bit audio already in memory (a TTS engine's output) to 8 kHz through the same
/// anti-aliased pipeline as decoded files. Output length is `ceil(len · 8000 / rate)`.
pub(crate) fn resample_mono(samples: &[i16], rate: u32) -> Result<Vec<i16>, ResampleFailure> {
    let mut pipe = Pipeline::new(rate, 1)?;
    let mut block = Vec::with_capacity(CHUNK_FRAMES);
    for chunk in samples.chunks(CHUNK_FRAMES) {
        block.clear();
        block.extend(chunk.iter().map(|&s| f32::from(s) / 32768.0));
        pipe.push_interleaved(&block)?;
    }
    pipe.finish()
}

/// Full-scale f32 to i16, rounded and clamped. Exact for values that came from i16.
fn quantise(x: f32) -> i16 {
    let scaled = (x * 32768.0).round();
    // NaN maps to 0 through the saturating cast; clamp keeps the positive peak at 32767.
    scaled.clamp(-32768.0, 32767.0) as i16
}

/// A mono streaming resampler to 8 kHz around `rubato::Fft`.
struct Downsampler {
    fft: Fft<f32>,
    /// Pending input, always shorter than `chunk_in`.
    chunk: Vec<f32>,
    chunk_in: usize,
    out_buf: Vec<f32>,
    /// Output frames still to drop for the filter's delay.
    to_trim: usize,
    frames_in: u64,
    produced: u64,
    rate: u32,
}

impl Downsampler {
    fn new(rate: u32) -> Result<Self, ResampleFailure> {
        let fft = Fft::<f32>::new_custom(
            rate as usize,
            RATE as usize,
            CHUNK_FRAMES,
            1,
            1,
            WindowFunction::BlackmanHarris2,
            FixedSync::Input,
        )?;
        let chunk_in = fft.input_frames_next();
        let out_len = fft.output_frames_max();
        let to_trim = fft.output_delay();
        Ok(Downsampler {
            fft,
            chunk: Vec::with_capacity(chunk_in),
            chunk_in,
            out_buf: vec![0.0; out_len],
            to_trim,
            frames_in: 0,
            produced: 0,
            rate,
        })
    }

    fn push(&mut self, x: f32, out: &mut Vec<i16>) -> Result<(), ResampleFailure> {
        self.chunk.push(x);
        self.frames_in += 1;
        if self.chunk.len() >= self.chunk_in {
            self.run(None, out)?;
            self.chunk.clear();
        }
        Ok(())
    }

    /// Resamples the pending chunk; `partial` is the number of real frames when the chunk is short
    /// (rubato pads the rest with silence).
    fn run(&mut self, partial: Option<usize>, out: &mut Vec<i16>) -> Result<(), ResampleFailure> {
        let frames = self.chunk.len();
        let input = InterleavedSlice::new(&self.chunk[..], 1, frames)
            .map_err(|_| ResampleFailure::Buffer)?;
        let out_frames = self.out_buf.len();
        let mut output = InterleavedSlice::new_mut(&mut self.out_buf[..], 1, out_frames)
            .map_err(|_| ResampleFailure::Buffer)?;
        let indexing = partial.map(|n| Indexing::new().partial_len(n));
        let (_, written) = self
            .fft
            .process_into_buffer(&input, &mut output, indexing.as_ref())?;
        for &y in self.out_buf.iter().take(written) {
            if self.to_trim > 0 {
                self.to_trim -= 1;
                continue;
            }
            out.push(quantise(y));
            self.produced += 1;
        }
        Ok(())
    }

    fn finish(mut self, out: &mut Vec<i16>) -> Result<(), ResampleFailure> {
        let expected = (self.frames_in * u64::from(RATE)).div_ceil(u64::from(self.rate));
        if !self.chunk.is_empty() {
            let real = self.chunk.len();
            self.run(Some(real), out)?;
            self.chunk.clear();
        }
        // Pump silence through until the delayed tail has come out. A pump can yield nothing while
        // rubato gathers a whole FFT block (longer than our chunk at 22.05 kHz, say), so the bound is
        // the silence the owed output needs plus two blocks, not progress on every pump.
        let owed = self.to_trim as u64
            + expected.saturating_sub(self.produced)
            + 2 * self.out_buf.len() as u64;
        let max_pumps =
            (owed * u64::from(self.rate)).div_ceil(u64::from(RATE) * self.chunk_in as u64) + 1;
        let mut pumps = 0;
        while self.produced < expected {
            if pumps == max_pumps {
                return Err(ResampleFailure::Buffer);
            }
            self.run(Some(0), out)?;
            pumps += 1;
        }
        let surplus =
            usize::try_from(self.produced - expected).map_err(|_| ResampleFailure::Buffer)?;
        out.truncate(out.len().saturating_sub(surplus));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (review): decoding had no bound, so a small upload that decodes to hours of
    /// audio (silence compresses to almost nothing) could take gigabytes of memory.
    #[test]
    fn decoding_stops_past_an_hour_of_audio() {
        let mut pipe = Pipeline::new(RATE, 1).expect("8 kHz mono");
        let second = vec![0.0f32; RATE as usize];
        for _ in 0..MAX_SECONDS {
            pipe.push_interleaved(&second).expect("within the bound");
        }
        assert!(matches!(
            pipe.push_interleaved(&second),
            Err(ResampleFailure::TooLong)
        ));
    }
}
