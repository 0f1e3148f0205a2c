//! Prompts: audio files decoded once to 8 kHz mono 16-bit PCM and shared by every call that plays them.
//!
//! WAV (integer 8/16/24/32-bit and 32-bit float) is read with `hound`; MP3, Ogg/Vorbis, FLAC and the WAV
//! encodings `hound` does not read (µ-law, A-law, IMA/MS ADPCM, 64-bit float) go through `symphonia`.
//! All channels are mixed down to mono, then resampled to [`RATE`] by `rubato`'s FFT resampler, whose
//! windowed-sinc filter removes everything above the new Nyquist frequency before decimating
//! (see `resample`). A corrupt, truncated or empty file is an error value, never a panic.
//!
//! [`PromptCache`] keeps decoded prompts keyed by path, modification time and length, so a thousand
//! callers hearing one prompt share one `Arc<[i16]>`.

mod cache;
mod decode;
mod resample;
#[cfg(test)]
mod tests;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use cache::PromptCache;
pub(crate) use resample::resample_mono;

/// The sample rate every prompt is decoded to (G.711 narrowband).
pub const RATE: u32 = 8000;

/// Why a prompt could not be decoded. Cloneable so that callers waiting on one shared decode all
/// receive its outcome.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PromptError {
    /// The file could not be opened or read.
    #[error("prompt {}: cannot read the file: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: Arc<io::Error>,
    },
    /// Not an audio format (or codec, or sample layout) that can be decoded.
    #[error("prompt {}: unsupported audio: {reason}", path.display())]
    Unsupported { path: PathBuf, reason: String },
    /// A supported format whose content is corrupt or truncated.
    #[error("prompt {}: cannot decode: {reason}", path.display())]
    Decode { path: PathBuf, reason: String },
    /// The file decodes to no audio at all.
    #[error("prompt {}: the file holds no audio", path.display())]
    Empty { path: PathBuf },
}

impl PromptError {
    /// A stable, dotted code for call records and API errors.
    pub fn code(&self) -> &'static str {
        match self {
            PromptError::Io { .. } => "prompt.io",
            PromptError::Unsupported { .. } => "prompt.unsupported",
            PromptError::Decode { .. } => "prompt.decode",
            PromptError::Empty { .. } => "prompt.empty",
        }
    }

    /// The prompt file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            PromptError::Io { path, .. }
            | PromptError::Unsupported { path, .. }
            | PromptError::Decode { path, .. }
            | PromptError::Empty { path } => path,
        }
    }

    pub(crate) fn io(path: &Path, source: io::Error) -> Self {
        PromptError::Io {
            path: path.to_path_buf(),
            source: Arc::new(source),
        }
    }

    pub(crate) fn unsupported(path: &Path, reason: impl Into<String>) -> Self {
        PromptError::Unsupported {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }

    pub(crate) fn decode(path: &Path, reason: impl Into<String>) -> Self {
        PromptError::Decode {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }
}

/// Decodes any supported file to 8 kHz mono i16 (mixdown of all channels; resampled with anti-aliasing).
///
/// Blocking: it reads the whole file. The call runs on a blocking thread. Memory stays proportional to
/// the 8 kHz output: the source is decoded, mixed and resampled packet by packet.
pub fn decode_file(path: &Path) -> Result<Vec<i16>, PromptError> {
    // The decoders are third-party code fed with files from outside; a panic inside one of them
    // must not take a call task down with it. It is reported as a decode error (and is a bug).
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| decode::decode(path)));
    let samples = match outcome {
        Ok(result) => result?,
        Err(_) => {
            tracing::error!(path = %path.display(), "audio decoder panicked");
            return Err(PromptError::decode(path, "the decoder panicked"));
        }
    };
    if samples.is_empty() {
        return Err(PromptError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(samples)
}
