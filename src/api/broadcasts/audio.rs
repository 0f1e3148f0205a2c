//! A campaign's message audio: decoded once from whatever was uploaded (or named in `sounds/`)
//! into `broadcasts/<id>/message.wav` (8 kHz mono) under the data directory.

use std::path::PathBuf;

use axum::body::Bytes;

use super::invalid;
use crate::api::{ApiError, ApiState};
use crate::broadcast::Message;

fn audio_dir(state: &ApiState, id: &str) -> PathBuf {
    state.options().data_dir.join("broadcasts").join(id)
}

pub(super) async fn remove_audio(state: &ApiState, id: &str) {
    let _ = tokio::fs::remove_dir_all(audio_dir(state, id)).await;
}

/// Decodes an uploaded or named sound (any format the media engine reads) once, into
/// `broadcasts/<id>/message.wav` (8 kHz mono) under the data directory.
pub(super) async fn convert_audio(
    state: &ApiState,
    id: &str,
    file_name: &str,
    bytes: Bytes,
) -> Result<Message, ApiError> {
    if bytes.is_empty() {
        return Err(invalid("message: the audio part is empty"));
    }
    let dir = audio_dir(state, id);
    let extension = std::path::Path::new(file_name)
        .extension()
        .and_then(|e| e.to_str())
        .filter(|e| e.len() <= 5 && e.chars().all(|c| c.is_ascii_alphanumeric()))
        .unwrap_or("bin")
        .to_ascii_lowercase();
    let upload = dir.join(format!("upload.{extension}"));
    let target = dir.join("message.wav");
    let written = {
        let (dir, upload, target) = (dir.clone(), upload.clone(), target.clone());
        tokio::task::spawn_blocking(move || -> Result<f64, String> {
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            std::fs::write(&upload, &bytes).map_err(|e| e.to_string())?;
            let decoded = crate::media::prompt::decode_file(&upload);
            let _ = std::fs::remove_file(&upload);
            let samples = decoded.map_err(|e| format!("the audio cannot be read: {e}"))?;
            write_wav(&target, &samples).map_err(|e| e.to_string())?;
            Ok(samples.len() as f64 / 8000.0)
        })
        .await
    };
    match written {
        Ok(Ok(seconds)) if seconds <= 600.0 => {}
        Ok(Ok(_)) => {
            remove_audio(state, id).await;
            return Err(invalid("message: at most 10 minutes of audio"));
        }
        Ok(Err(reason)) => {
            remove_audio(state, id).await;
            return Err(invalid(&format!("message: {reason}")));
        }
        Err(_) => {
            remove_audio(state, id).await;
            return Err(invalid("message: the audio could not be converted"));
        }
    }
    Ok(Message::Audio {
        file: format!("broadcasts/{id}/message.wav"),
    })
}

fn write_wav(path: &std::path::Path, samples: &[i16]) -> Result<(), hound::Error> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec)?;
    for &s in samples {
        writer.write_sample(s)?;
    }
    writer.finalize()
}
