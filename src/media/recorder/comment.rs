//! A note in a finished recording's own metadata: a RIFF `LIST`/`INFO` chunk with one `ICMT`
//! (comment) after the audio, the place players and editors (sox, Audacity, ffprobe) show it.
//! Used to mark where a recording was paused, so the file says so even when it travels without
//! its call record.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use super::RecorderError;

/// Appends `text` as the file's comment and fixes the RIFF size; returns the bytes added.
/// Only for a finished WAV (audio last, sizes consistent): the chunk goes after the audio, where
/// a reader that stops at `data` never looks and [`super::repair`] leaves it alone.
pub fn append_comment(path: &Path, text: &str) -> Result<u64, RecorderError> {
    let io_error = |e| RecorderError::io(path, e);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_error)?;
    let len = file.metadata().map_err(io_error)?.len();
    // RIFF chunks are padded to an even size: a data chunk of odd length has a pad byte first.
    let pad = len % 2;
    let chunk = list_chunk(text);
    let new_len = len + pad + chunk.len() as u64;
    let riff_size = u32::try_from(new_len - 8).map_err(|_| {
        io_error(std::io::Error::other(
            "the recording is too large for a comment",
        ))
    })?;
    file.seek(SeekFrom::End(0)).map_err(io_error)?;
    if pad == 1 {
        file.write_all(&[0]).map_err(io_error)?;
    }
    file.write_all(&chunk).map_err(io_error)?;
    file.seek(SeekFrom::Start(4)).map_err(io_error)?;
    file.write_all(&riff_size.to_le_bytes()).map_err(io_error)?;
    file.sync_data().map_err(io_error)?;
    Ok(new_len - len)
}

/// `LIST` <size> `INFO` `ICMT` <size> text NUL [pad].
fn list_chunk(text: &str) -> Vec<u8> {
    let mut comment = text.replace('\0', " ").into_bytes();
    comment.push(0);
    let icmt_size = comment.len() as u32;
    if comment.len() % 2 == 1 {
        comment.push(0);
    }
    let mut chunk = Vec::with_capacity(20 + comment.len());
    chunk.extend_from_slice(b"LIST");
    chunk.extend_from_slice(&(4 + 8 + comment.len() as u32).to_le_bytes());
    chunk.extend_from_slice(b"INFO");
    chunk.extend_from_slice(b"ICMT");
    chunk.extend_from_slice(&icmt_size.to_le_bytes());
    chunk.extend_from_slice(&comment);
    chunk
}

/// The file's `ICMT` comment, if it has one (walks the top-level chunks).
pub fn read_comment(path: &Path) -> std::io::Result<Option<String>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?.read_to_end(&mut bytes)?;
    let mut at = 12; // "RIFF" size "WAVE"
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let size = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        let body = at + 8;
        let end = body.saturating_add(size).min(bytes.len());
        if id == b"LIST" && bytes.get(body..body + 4) == Some(b"INFO") {
            let mut sub = body + 4;
            while sub + 8 <= end {
                let sub_size =
                    u32::from_le_bytes(bytes[sub + 4..sub + 8].try_into().unwrap()) as usize;
                let text_end = (sub + 8).saturating_add(sub_size).min(end);
                if &bytes[sub..sub + 4] == b"ICMT" {
                    let text = &bytes[sub + 8..text_end];
                    let text = text.split(|b| *b == 0).next().unwrap_or(&[]);
                    return Ok(Some(String::from_utf8_lossy(text).into_owned()));
                }
                sub = text_end + (sub_size % 2);
            }
        }
        at = end + (size % 2);
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_comment_after_the_audio_leaves_the_wav_readable_and_consistent() {
        let dir = tempfile::tempdir().unwrap();
        for text in ["paused 1.000-2.500 s", "odd!"] {
            let path = dir.path().join("call.wav");
            let spec = hound::WavSpec {
                channels: 2,
                sample_rate: 8000,
                bits_per_sample: 16,
                sample_format: hound::SampleFormat::Int,
            };
            let mut w = hound::WavWriter::create(&path, spec).unwrap();
            for i in 0..800i16 {
                w.write_sample(i).unwrap();
            }
            w.finalize().unwrap();
            let before = std::fs::metadata(&path).unwrap().len();

            let added = append_comment(&path, text).unwrap();

            let after = std::fs::metadata(&path).unwrap().len();
            assert_eq!(after, before + added);
            assert_eq!(read_comment(&path).unwrap().as_deref(), Some(text));
            let samples: Vec<i16> = hound::WavReader::open(&path)
                .unwrap()
                .into_samples()
                .map(Result::unwrap)
                .collect();
            assert_eq!(samples, (0..800).collect::<Vec<i16>>(), "{text}");
            let riff = u32::from_le_bytes(std::fs::read(&path).unwrap()[4..8].try_into().unwrap());
            assert_eq!(u64::from(riff) + 8, after, "RIFF size covers the comment");
            assert_eq!(
                super::super::repair(&path).unwrap(),
                None,
                "repair leaves it alone"
            );
        }
    }
}
