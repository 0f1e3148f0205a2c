//! The IO the IVR engine's commands need, kept out of the call task's loop: loading prompts (files
//! and text-to-speech, on a blocking thread), the webhook HTTP POST, and the voicemail recorder.

use crate::ivr::Prompt;
use crate::media::prompt::PromptCache;
use crate::media::recorder::{Channel, RecordingInfo, StereoRecorder};
use crate::media::tts::TtsCache;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What to play: the engine's prompts, or files of our own (beep, please-hold).
pub enum PlayItems {
    Ivr(Vec<Prompt>),
    Files(Vec<String>),
    /// A file the server placed itself (a broadcast's uploaded message under the data
    /// directory), never a name from a flow or a request.
    Owned(PathBuf),
}

/// Decoded audio ready to play, or why it cannot be.
pub type Loaded = Result<Arc<[i16]>, String>;

/// Decodes (or synthesises) every item and joins them; runs on a blocking thread.
pub fn load_audio(
    items: &PlayItems,
    sounds: &Path,
    prompts: &PromptCache,
    tts: Option<&TtsCache>,
) -> Loaded {
    let file = |name: &str| -> Result<Arc<[i16]>, String> {
        let relative = Path::new(name);
        let plain = relative
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
        if !plain {
            return Err(format!(
                "{name}: not a plain path inside the sounds directory"
            ));
        }
        prompts
            .get(&sounds.join(relative))
            .map_err(|e| e.to_string())
    };
    let parts: Vec<Arc<[i16]>> = match items {
        PlayItems::Files(names) => names.iter().map(|n| file(n)).collect::<Result<_, _>>()?,
        PlayItems::Owned(path) => vec![prompts.get(path).map_err(|e| e.to_string())?],
        PlayItems::Ivr(list) => list
            .iter()
            .map(|p| match p {
                Prompt::File(name) => file(name),
                Prompt::Say { text, voice } => match tts {
                    Some(tts) => tts.get(text, voice.as_deref()).map_err(|e| e.to_string()),
                    None => Err("no text-to-speech engine".into()),
                },
            })
            .collect::<Result<_, _>>()?,
    };
    if parts.len() == 1 {
        return Ok(parts[0].clone());
    }
    let joined: Vec<i16> = parts.iter().flat_map(|p| p.iter().copied()).collect();
    Ok(joined.into())
}

/// POSTs `body` as JSON and returns the JSON answer (an empty body is `{}`); errors and the
/// timeout are `Err` with a short reason the flow can branch on.
pub async fn webhook(
    client: Option<reqwest::Client>,
    url: String,
    body: serde_json::Value,
    timeout: Duration,
) -> Result<serde_json::Value, String> {
    let Some(client) = client else {
        return Err("no HTTP client".into());
    };
    let request = client
        .post(&url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_string())
        .timeout(timeout)
        .send();
    let response = match tokio::time::timeout(timeout, request).await {
        Err(_) => return Err("timeout".into()),
        Ok(Err(e)) if e.is_timeout() => return Err("timeout".into()),
        Ok(Err(e)) => return Err(format!("request failed: {e}")),
        Ok(Ok(r)) => r,
    };
    let status = response.status();
    if !status.is_success() {
        return Err(format!("HTTP {}", status.as_u16()));
    }
    let bytes = match tokio::time::timeout(timeout, response.bytes()).await {
        Err(_) => return Err("timeout".into()),
        Ok(Err(e)) => return Err(format!("reading the answer failed: {e}")),
        Ok(Ok(b)) => b,
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::json!({}));
    }
    serde_json::from_slice(&bytes).map_err(|_| "the answer is not JSON".into())
}

/// What the flow's voicemail node asked for.
pub struct RecordRequest {
    pub max_length: Duration,
    pub finish_digit: Option<char>,
}

/// A voicemail being recorded: the caller's audio only, in the recording format (left channel).
pub struct Voicemail {
    path: PathBuf,
    recorder: Option<StereoRecorder>,
    /// Call-clock position where the message starts; the file starts at 0.
    start: u64,
    pub deadline: Instant,
    pub finish_digit: Option<char>,
}

impl Voicemail {
    pub fn start(path: PathBuf, start: u64, request: RecordRequest) -> Result<Voicemail, String> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        }
        let recorder = StereoRecorder::create(&path, 1600).map_err(|e| e.to_string())?;
        Ok(Voicemail {
            path,
            recorder: Some(recorder),
            start,
            deadline: Instant::now() + request.max_length,
            finish_digit: request.finish_digit,
        })
    }

    pub fn write(&mut self, at: u64, samples: &[i16]) {
        let Some(r) = self.recorder.as_mut() else {
            return;
        };
        let (at, samples) = if at >= self.start {
            (at - self.start, samples)
        } else {
            let skip = ((self.start - at) as usize).min(samples.len());
            (0, &samples[skip..])
        };
        if r.write(Channel::Left, at, samples).is_err() {
            tracing::error!(path = %self.path.display(), "voicemail write failed; message cut");
            self.recorder = None;
        }
    }

    pub fn flush(&mut self, now: u64) {
        if let Some(r) = self.recorder.as_mut() {
            let _ = r
                .advance(now.saturating_sub(self.start))
                .and_then(|()| r.flush_header());
        }
    }

    pub fn finish(self, end: u64) -> Result<(PathBuf, RecordingInfo), String> {
        let recorder = self.recorder.ok_or("the recording failed")?;
        let info = recorder
            .finish(end.saturating_sub(self.start))
            .map_err(|e| e.to_string())?;
        Ok((self.path, info))
    }
}
