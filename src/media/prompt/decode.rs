//! Reading audio files into the mixdown/resampling [`Pipeline`]: WAV through `hound`, everything else
//! (and the WAV encodings `hound` cannot read) through `symphonia`.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use hound::{SampleFormat, WavReader};
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{CODEC_TYPE_NULL, DecoderOptions};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use super::PromptError;
use super::resample::{Pipeline, ResampleFailure};

/// Interleaved samples handed to the pipeline at a time on the `hound` path.
const BLOCK_SAMPLES: usize = 4096;

/// Decoded frames may fall short of the frame count the container announces by this much (packet
/// granularity, encoder padding) before the file counts as truncated.
const TRUNCATION_SLACK_FRAMES: u64 = 4608;

pub(super) fn decode(path: &Path) -> Result<Vec<i16>, PromptError> {
    let mut file = File::open(path).map_err(|e| PromptError::io(path, e))?;
    let len = file.metadata().map_err(|e| PromptError::io(path, e))?.len();
    if len == 0 {
        return Err(PromptError::Empty {
            path: path.to_path_buf(),
        });
    }
    if is_riff_wave(&mut file).map_err(|e| PromptError::io(path, e))? {
        let hound_refusal = match WavReader::new(BufReader::new(&mut file)) {
            Ok(reader) => return decode_hound(path, reader),
            Err(e) => e,
        };
        // hound reads PCM and 32-bit float only; µ-law, A-law, ADPCM and 64-bit float go to symphonia.
        file.seek(SeekFrom::Start(0))
            .map_err(|e| PromptError::io(path, e))?;
        return match decode_symphonia(path, file) {
            Ok(samples) => Ok(samples),
            Err(sym) => Err(match hound_refusal {
                hound::Error::FormatError(reason) => PromptError::decode(path, reason),
                hound::Error::IoError(e) if is_short_read(&e) => {
                    PromptError::decode(path, "the WAV header is cut short")
                }
                _ => sym,
            }),
        };
    }
    decode_symphonia(path, file)
}

/// Reads the first 12 bytes and rewinds.
fn is_riff_wave(file: &mut File) -> io::Result<bool> {
    let mut magic = [0u8; 12];
    let mut filled = 0;
    while filled < magic.len() {
        match file.read(&mut magic[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    file.seek(SeekFrom::Start(0))?;
    Ok(filled == magic.len() && &magic[..4] == b"RIFF" && &magic[8..] == b"WAVE")
}

fn decode_hound<R: Read>(path: &Path, mut reader: WavReader<R>) -> Result<Vec<i16>, PromptError> {
    let spec = reader.spec();
    let mut pipe = Pipeline::new(spec.sample_rate, usize::from(spec.channels))
        .map_err(|e| PromptError::unsupported(path, e.to_string()))?;
    let mut block = Vec::with_capacity(BLOCK_SAMPLES);
    match (spec.sample_format, spec.bits_per_sample) {
        (SampleFormat::Float, 32) => {
            for sample in reader.samples::<f32>() {
                block.push(sample.map_err(|e| hound_read_error(path, e))?);
                flush_if_full(path, &mut pipe, &mut block)?;
            }
        }
        (SampleFormat::Int, bits @ 1..=32) => {
            let scale = 1.0 / (1u64 << (bits - 1)) as f32;
            for sample in reader.samples::<i32>() {
                block.push(sample.map_err(|e| hound_read_error(path, e))? as f32 * scale);
                flush_if_full(path, &mut pipe, &mut block)?;
            }
        }
        (format, bits) => {
            return Err(PromptError::unsupported(
                path,
                format!("{bits}-bit {format:?} WAV samples"),
            ));
        }
    }
    pipe.push_interleaved(&block)
        .map_err(|e| resample_error(path, e))?;
    pipe.finish().map_err(|e| resample_error(path, e))
}

fn flush_if_full(
    path: &Path,
    pipe: &mut Pipeline,
    block: &mut Vec<f32>,
) -> Result<(), PromptError> {
    if block.len() >= BLOCK_SAMPLES {
        pipe.push_interleaved(block)
            .map_err(|e| resample_error(path, e))?;
        block.clear();
    }
    Ok(())
}

fn hound_read_error(path: &Path, error: hound::Error) -> PromptError {
    match error {
        hound::Error::IoError(e) if is_short_read(&e) => {
            PromptError::decode(path, "the WAV data is truncated")
        }
        hound::Error::IoError(e) => PromptError::io(path, e),
        other => PromptError::decode(path, other.to_string()),
    }
}

/// `hound` reports a file that ends early as a synthetic `io::Error` ("Failed to read enough bytes",
/// kind `Other`); a real read failure carries an OS error code.
fn is_short_read(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::UnexpectedEof || error.raw_os_error().is_none()
}

fn resample_error(path: &Path, error: ResampleFailure) -> PromptError {
    PromptError::decode(path, error.to_string())
}

fn symphonia_error(path: &Path, error: SymError) -> PromptError {
    match error {
        SymError::IoError(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            PromptError::decode(path, "unexpected end of file")
        }
        SymError::IoError(e) => PromptError::io(path, e),
        SymError::Unsupported(reason) => PromptError::unsupported(path, reason),
        SymError::DecodeError(reason) | SymError::LimitError(reason) => {
            PromptError::decode(path, reason)
        }
        other => PromptError::decode(path, other.to_string()),
    }
}

fn decode_symphonia(path: &Path, file: File) -> Result<Vec<i16>, PromptError> {
    let source = MediaSourceStream::new(Box::new(file), Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(OsStr::to_str) {
        hint.with_extension(ext);
    }
    let format_options = FormatOptions {
        enable_gapless: true,
        ..Default::default()
    };
    let probed = symphonia::default::get_probe()
        .format(&hint, source, &format_options, &MetadataOptions::default())
        .map_err(|e| symphonia_error(path, e))?;
    let mut format = probed.format;
    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| PromptError::unsupported(path, "no audio track"))?;
    let track_id = track.id;
    let announced_frames = track.codec_params.n_frames;
    let mut decoder = symphonia::default::get_codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .map_err(|e| symphonia_error(path, e))?;

    let mut pipe: Option<(u32, Pipeline)> = None;
    let mut interleaved: Option<SampleBuffer<f32>> = None;
    let (mut frames, mut packets, mut bad_packets) = (0u64, 0u64, 0u64);
    loop {
        let packet = match format.next_packet() {
            Ok(packet) => packet,
            Err(SymError::IoError(e)) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            // A chained stream (a new Ogg logical stream): the prompt is the first one.
            Err(SymError::ResetRequired) => break,
            Err(e) => return Err(symphonia_error(path, e)),
        };
        if packet.track_id() != track_id {
            continue;
        }
        packets += 1;
        let decoded = match decoder.decode(&packet) {
            Ok(decoded) => decoded,
            Err(SymError::DecodeError(reason)) => {
                // One damaged packet is skipped, as players do; too many fail the file below.
                tracing::debug!(path = %path.display(), reason, "skipping a corrupt audio packet");
                bad_packets += 1;
                continue;
            }
            Err(e) => return Err(symphonia_error(path, e)),
        };
        let spec = *decoded.spec();
        let count = decoded.frames();
        if count == 0 {
            continue;
        }
        let channels = spec.channels.count();
        let (rate, pipe) = match &mut pipe {
            Some(existing) => existing,
            None => pipe.insert((
                spec.rate,
                Pipeline::new(spec.rate, channels)
                    .map_err(|e| PromptError::unsupported(path, e.to_string()))?,
            )),
        };
        if *rate != spec.rate || pipe.channels() != channels {
            return Err(PromptError::unsupported(
                path,
                "the sample rate or channel count changes mid-stream",
            ));
        }
        let needed = count * channels;
        if interleaved.as_ref().is_some_and(|b| b.capacity() < needed) {
            interleaved = None;
        }
        let capacity = decoded.capacity().max(count) as u64;
        let buffer = interleaved.get_or_insert_with(|| SampleBuffer::new(capacity, spec));
        buffer.copy_interleaved_ref(decoded);
        pipe.push_interleaved(buffer.samples())
            .map_err(|e| resample_error(path, e))?;
        frames += count as u64;
    }

    if bad_packets > 0 && (frames == 0 || bad_packets * 10 > packets) {
        return Err(PromptError::decode(
            path,
            format!("{bad_packets} of {packets} audio packets are corrupt"),
        ));
    }
    if let Some(announced) = announced_frames
        && frames + TRUNCATION_SLACK_FRAMES.max(announced / 100) < announced
    {
        return Err(PromptError::decode(
            path,
            format!("truncated: {frames} of {announced} frames"),
        ));
    }
    match pipe {
        Some((_, pipe)) => pipe.finish().map_err(|e| resample_error(path, e)),
        None => Ok(Vec::new()),
    }
}
