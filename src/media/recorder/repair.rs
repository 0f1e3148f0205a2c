//! Repair of WAV recordings left unfinished by a crash: the RIFF and data sizes are set from the
//! file's real length and a partial last frame is cut, so the file opens with everything that
//! reached the disk.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use super::{RecorderError, RecordingInfo};

/// What makes a file impossible to repair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FormatProblem {
    #[error("not a RIFF/WAVE file")]
    NotRiffWave,
    #[error("no fmt chunk before the audio")]
    NoFmtChunk,
    #[error("the fmt chunk is invalid")]
    BadFmtChunk,
    #[error("no data chunk")]
    NoDataChunk,
}

/// Where the audio is and how it is laid out.
#[derive(Debug, Clone, Copy)]
struct Layout {
    riff_size: u32,
    block_align: u16,
    sample_rate: u32,
    /// Offset of the first audio byte.
    data_offset: u64,
    data_size: u32,
}

impl Layout {
    /// The header agrees with the file: sizes match its length and hold whole frames.
    fn is_consistent(&self, file_len: u64) -> bool {
        u64::from(self.riff_size) + 8 == file_len
            && self.data_offset + u64::from(self.data_size) <= file_len
            && self.data_size.is_multiple_of(u32::from(self.block_align))
    }

    fn info(&self, data_size: u64) -> RecordingInfo {
        let frames = data_size / u64::from(self.block_align);
        RecordingInfo {
            frames,
            duration_ms: frames * 1000 / u64::from(self.sample_rate),
            size_bytes: self.data_offset + data_size,
        }
    }
}

/// Repairs a WAV left unfinished by a crash (RIFF/data sizes from the real file length, a partial last frame cut).
///
/// Returns `None` when the header already agrees with the file, so running it twice changes
/// nothing. Meant for recordings (audio last in the file), run at start before any recorder opens
/// the file.
pub fn repair(path: &Path) -> Result<Option<RecordingInfo>, RecorderError> {
    let io_error = |e| RecorderError::io(path, e);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_error)?;
    let file_len = file.metadata().map_err(io_error)?.len();
    let layout = read_layout(&mut file, file_len)
        .map_err(io_error)?
        .map_err(|problem| RecorderError::Format {
            path: path.to_path_buf(),
            problem,
        })?;
    if layout.is_consistent(file_len) {
        return Ok(None);
    }
    let block = u64::from(layout.block_align);
    let max_data = u64::from(u32::MAX) - (layout.data_offset - 8);
    let data_size = (file_len - layout.data_offset).min(max_data) / block * block;
    let new_len = layout.data_offset + data_size;
    file.set_len(new_len).map_err(io_error)?;
    // Both fit in u32: `data_size` is capped so that the RIFF size does.
    let riff_size = u32::try_from(new_len - 8).unwrap_or(u32::MAX);
    let data_field = u32::try_from(data_size).unwrap_or(u32::MAX);
    file.seek(SeekFrom::Start(4)).map_err(io_error)?;
    file.write_all(&riff_size.to_le_bytes()).map_err(io_error)?;
    file.seek(SeekFrom::Start(layout.data_offset - 4))
        .map_err(io_error)?;
    file.write_all(&data_field.to_le_bytes())
        .map_err(io_error)?;
    file.sync_data().map_err(io_error)?;
    let info = layout.info(data_size);
    tracing::warn!(
        path = %path.display(),
        frames = info.frames,
        "repaired a recording left unfinished"
    );
    Ok(Some(info))
}

/// Repairs if needed and describes what the file holds.
pub(super) fn salvage(path: &Path) -> Result<RecordingInfo, RecorderError> {
    if let Some(info) = repair(path)? {
        return Ok(info);
    }
    let mut file = File::open(path).map_err(|e| RecorderError::io(path, e))?;
    let file_len = file
        .metadata()
        .map_err(|e| RecorderError::io(path, e))?
        .len();
    match read_layout(&mut file, file_len).map_err(|e| RecorderError::io(path, e))? {
        Ok(layout) => Ok(layout.info(u64::from(layout.data_size))),
        Err(problem) => Err(RecorderError::Format {
            path: path.to_path_buf(),
            problem,
        }),
    }
}

/// Walks the RIFF chunks up to the data chunk. The outer `Result` is IO, the inner the format.
fn read_layout(file: &mut File, file_len: u64) -> io::Result<Result<Layout, FormatProblem>> {
    let mut head = [0u8; 12];
    if file_len < 12 {
        return Ok(Err(FormatProblem::NotRiffWave));
    }
    file.seek(SeekFrom::Start(0))?;
    file.read_exact(&mut head)?;
    if &head[..4] != b"RIFF" || &head[8..] != b"WAVE" {
        return Ok(Err(FormatProblem::NotRiffWave));
    }
    let riff_size = u32_at(&head, 4);
    let mut fmt: Option<(u16, u32)> = None;
    let mut pos: u64 = 12;
    loop {
        if pos + 8 > file_len {
            return Ok(Err(FormatProblem::NoDataChunk));
        }
        let mut chunk = [0u8; 8];
        file.seek(SeekFrom::Start(pos))?;
        file.read_exact(&mut chunk)?;
        let size = u32_at(&chunk, 4);
        match &chunk[..4] {
            b"fmt " => {
                if size < 16 || pos + 8 + 16 > file_len {
                    return Ok(Err(FormatProblem::BadFmtChunk));
                }
                let mut body = [0u8; 16];
                file.read_exact(&mut body)?;
                let sample_rate = u32_at(&body, 4);
                let block_align = u16::from_le_bytes([body[12], body[13]]);
                if sample_rate == 0 || block_align == 0 {
                    return Ok(Err(FormatProblem::BadFmtChunk));
                }
                fmt = Some((block_align, sample_rate));
            }
            b"data" => {
                let Some((block_align, sample_rate)) = fmt else {
                    return Ok(Err(FormatProblem::NoFmtChunk));
                };
                return Ok(Ok(Layout {
                    riff_size,
                    block_align,
                    sample_rate,
                    data_offset: pos + 8,
                    data_size: size,
                }));
            }
            _ => {}
        }
        // Chunks are padded to an even size.
        pos += 8 + u64::from(size) + u64::from(size & 1);
    }
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}
