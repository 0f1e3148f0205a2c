//! Recording in a call's task: the voicemail a flow asks for, the periodic header flush, and what
//! happens when a write fails (the recording stops, never the call).

use super::*;

/// The call's recording: a stereo WAV that may start mid-call (a queue's `record` starts at the
/// bridge), so positions on the call clock are shifted to the file's own start.
///
/// The operator may pause it (card numbers must not be recorded): audio inside a pause is never
/// written, so the file holds silence there (the recorder pads gaps), and the finished file says
/// where in its `ICMT` comment.
pub(super) struct CallRecorder {
    path: PathBuf,
    inner: StereoRecorder,
    /// The call-clock sample the file starts at.
    origin: u64,
    /// Paused stretches in file samples, in order; the last may still be open.
    pauses: Vec<(u64, Option<u64>)>,
    /// The end of the latest audio given to `write` (file samples), written or not.
    latest: u64,
}

/// How far past both the resume request and the latest audio a pause lasts (120 ms): audio that
/// arrived before the resume may still be in the 60 ms playout buffer, or be placed a little ahead
/// of the clock by its timestamps, and must not reach the file.
const RESUME_MARGIN: u64 = 960;

impl CallRecorder {
    pub(super) fn open(
        path: &std::path::Path,
        origin: u64,
    ) -> Result<Self, crate::media::recorder::RecorderError> {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        Ok(CallRecorder {
            path: path.to_path_buf(),
            inner: StereoRecorder::create(path, RECORDER_MAX_LAG)?,
            origin,
            pauses: Vec::new(),
            latest: 0,
        })
    }

    pub(super) fn write(
        &mut self,
        channel: Channel,
        at_sample: u64,
        samples: &[i16],
    ) -> Result<(), crate::media::recorder::RecorderError> {
        // Audio that began before the file did loses its head, so both channels stay aligned.
        let skip = self.origin.saturating_sub(at_sample) as usize;
        if skip >= samples.len() {
            return Ok(());
        }
        let at = at_sample.max(self.origin) - self.origin;
        let end = at + (samples.len() - skip) as u64;
        self.latest = self.latest.max(end);
        if self.pauses.is_empty() {
            // Every 20 ms per channel: no clipping (and no allocation) unless paused once.
            return self.inner.write(channel, at, &samples[skip..]);
        }
        for (from, to) in unpaused(&self.pauses, at, end) {
            let piece = &samples[skip + (from - at) as usize..skip + (to - at) as usize];
            self.inner.write(channel, from, piece)?;
        }
        Ok(())
    }

    pub(super) fn is_paused(&self) -> bool {
        matches!(self.pauses.last(), Some((_, None)))
    }

    /// Pauses (or resumes) at call-clock sample `at`; returns the file position the pause starts
    /// (or ends) at, or `None` when it already was in that state. A pause ends `RESUME_MARGIN`
    /// after the later of the request and the latest audio seen.
    pub(super) fn set_paused(&mut self, paused: bool, at: u64) -> Option<u64> {
        if paused == self.is_paused() {
            return None;
        }
        let at = at.saturating_sub(self.origin);
        if paused {
            self.pauses.push((at, None));
            return Some(at);
        }
        let last = self.pauses.last_mut()?;
        let end = at.max(self.latest).max(last.0) + RESUME_MARGIN;
        last.1 = Some(end);
        Some(end)
    }

    fn advance_and_flush(
        &mut self,
        now_sample: u64,
    ) -> Result<(), crate::media::recorder::RecorderError> {
        self.inner
            .advance(now_sample.saturating_sub(self.origin))
            .and_then(|()| self.inner.flush_header())
    }

    pub(super) fn finish(
        self,
        end_sample: u64,
    ) -> Result<(PathBuf, RecordingInfo), crate::media::recorder::RecorderError> {
        let mut info = self.inner.finish(end_sample.saturating_sub(self.origin))?;
        if !self.pauses.is_empty() {
            let comment = pause_comment(&self.pauses, info.frames);
            // The audio is safe; a comment that cannot be written is logged, not fatal.
            match crate::media::recorder::append_comment(&self.path, &comment) {
                Ok(added) => info.size_bytes += added,
                Err(error) => {
                    tracing::warn!(%error, "the recording's pause marks were not written")
                }
            }
        }
        Ok((self.path, info))
    }
}

/// The parts of `[from, to)` outside every pause (`pauses` in order, the last possibly open).
fn unpaused(pauses: &[(u64, Option<u64>)], from: u64, to: u64) -> Vec<(u64, u64)> {
    let mut pieces = Vec::new();
    let mut start = from;
    for &(p_from, p_to) in pauses {
        let p_to = p_to.unwrap_or(u64::MAX);
        if p_to <= start || p_from >= to {
            continue;
        }
        if p_from > start {
            pieces.push((start, p_from));
        }
        start = start.max(p_to);
        if start >= to {
            return pieces;
        }
    }
    if start < to {
        pieces.push((start, to));
    }
    pieces
}

/// `recording paused 0:12.340-0:20.100, 1:02.000-1:05.500 (operator request)`, in file time.
fn pause_comment(pauses: &[(u64, Option<u64>)], frames: u64) -> String {
    let clock = |samples: u64| {
        let ms = samples / 8;
        format!("{}:{:02}.{:03}", ms / 60_000, ms / 1000 % 60, ms % 1000)
    };
    let stretches: Vec<String> = pauses
        .iter()
        .map(|&(from, to)| {
            let to = to.unwrap_or(frames).clamp(from, frames.max(from));
            format!("{}-{}", clock(from), clock(to))
        })
        .collect();
    format!(
        "recording paused {} (operator request)",
        stretches.join(", ")
    )
}

impl Task {
    /// A queue bridged the call with `record` on: the recording starts now.
    pub(super) fn start_recording(&mut self, path: &std::path::Path) {
        if self.recorder.is_some() {
            return;
        }
        let origin = position_at(self.t0, Instant::now());
        match CallRecorder::open(path, origin) {
            Ok(r) => self.recorder = Some(r),
            Err(e) => self.notify(CallNotice::RecordingFailed {
                leg: self.setup_leg,
                error: e.to_string(),
            }),
        }
        self.update_recording_flag();
    }

    pub(super) fn start_voicemail(&mut self, request: ivr_io::RecordRequest) {
        let utc = chrono::Utc::now();
        let relative = format!(
            "voicemail/{}/{}-{}.wav",
            utc.format("%Y/%m/%d"),
            self.setup.call_id,
            utc.timestamp_millis()
        );
        let path = self.setup.data_dir.join(relative);
        let at = position_at(self.t0, Instant::now());
        match Voicemail::start(path, at, request) {
            Ok(v) => self.voicemail = Some(v),
            Err(error) => {
                tracing::error!(%error, "voicemail cannot be recorded");
                self.engine_event(IvrEvent::RecordingFinished { duration_ms: 0 });
            }
        }
        self.update_recording_flag();
    }

    /// Ends a voicemail; `tell_engine` is false when the caller already hung up.
    pub(super) fn finish_voicemail(&mut self, tell_engine: bool) {
        let Some(v) = self.voicemail.take() else {
            return;
        };
        self.update_recording_flag();
        let end = position_at(self.t0, Instant::now());
        let duration_ms = match v.finish(end) {
            Ok((path, info)) => {
                let ms = info.duration_ms;
                self.notify(CallNotice::Voicemail {
                    leg: self.setup_leg,
                    path,
                    info,
                });
                ms
            }
            Err(error) => {
                tracing::error!(%error, "voicemail lost");
                0
            }
        };
        if tell_engine {
            self.engine_event(IvrEvent::RecordingFinished { duration_ms });
        }
    }

    /// Pauses or resumes the call's recording now; a repeated request changes nothing.
    pub(super) fn set_recording_paused(
        &mut self,
        paused: bool,
        by: &'static str,
    ) -> RecordingState {
        let at = position_at(self.t0, Instant::now());
        let Some(recorder) = self.recorder.as_mut() else {
            return RecordingState::NotRecording;
        };
        if let Some(file_at) = recorder.set_paused(paused, at) {
            tracing::info!(
                paused,
                recording_ms = file_at / 8,
                "recording pause changed"
            );
            self.notify(CallNotice::RecordingPaused {
                leg: self.setup_leg,
                paused,
                by,
                at_ms: at / 8,
                recording_ms: file_at / 8,
            });
        }
        if paused {
            RecordingState::Paused
        } else {
            RecordingState::Recording
        }
    }

    pub(super) fn flush_recorders(&mut self) {
        let now_position = position_at(self.t0, Instant::now());
        if let Some(r) = self.recorder.as_mut()
            && let Err(e) = r.advance_and_flush(now_position)
        {
            self.recorder_failed(e.to_string());
        }
        if let Some(v) = self.voicemail.as_mut() {
            v.flush(now_position);
        }
    }

    /// A full disk (or any write error) ends the recording, never the call.
    pub(super) fn recorder_failed(&mut self, error: String) {
        tracing::error!(error = %error, "recording stopped; the call goes on");
        metrics::counter!("openline_recording_failures_total").increment(1);
        self.recorder = None;
        self.update_recording_flag();
        self.notify(CallNotice::RecordingFailed {
            leg: self.setup_leg,
            error,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_inside_a_pause_is_cut_out() {
        type Pauses<'a> = &'a [(u64, Option<u64>)];
        type Pieces<'a> = &'a [(u64, u64)];
        let cases: &[(&str, Pauses, (u64, u64), Pieces)] = &[
            ("no pause", &[], (0, 160), &[(0, 160)]),
            (
                "chunk before the pause",
                &[(200, None)],
                (0, 160),
                &[(0, 160)],
            ),
            (
                "pause starts mid-chunk",
                &[(100, None)],
                (0, 160),
                &[(0, 100)],
            ),
            ("inside an open pause", &[(100, None)], (160, 320), &[]),
            (
                "resumed mid-chunk",
                &[(100, Some(200))],
                (160, 320),
                &[(200, 320)],
            ),
            (
                "a short pause inside a chunk",
                &[(40, Some(60))],
                (0, 160),
                &[(0, 40), (60, 160)],
            ),
            (
                "two pauses across one chunk",
                &[(10, Some(20)), (100, Some(120))],
                (0, 160),
                &[(0, 10), (20, 100), (120, 160)],
            ),
            (
                "after a closed pause",
                &[(10, Some(20))],
                (160, 320),
                &[(160, 320)],
            ),
            (
                "pause ends exactly at the chunk",
                &[(0, Some(160))],
                (160, 320),
                &[(160, 320)],
            ),
        ];
        for (name, pauses, (from, to), expected) in cases {
            assert_eq!(unpaused(pauses, *from, *to), *expected, "{name}");
        }
    }

    /// The call's clock runs 4 s; 20 ms chunks on both channels, paused from 1 s to 2.5 s (and
    /// the margin: the pause ends 120 ms after the resume request).
    #[test]
    fn a_paused_recording_holds_silence_there_and_audio_around_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("call.wav");
        let origin = 8000;
        let mut r = CallRecorder::open(&path, origin).unwrap();
        for chunk in 0..200u64 {
            let at = origin + chunk * 160;
            match at - origin {
                8000 => assert_eq!(r.set_paused(true, at), Some(8000)),
                20000 => assert_eq!(r.set_paused(false, at), Some(20000 + RESUME_MARGIN)),
                _ => {}
            }
            r.write(Channel::Left, at, &[1000; 160]).unwrap();
            r.write(Channel::Right, at, &[-1000; 160]).unwrap();
            if chunk % 50 == 0 {
                r.advance_and_flush(at).unwrap();
            }
        }
        let (_, info) = r.finish(origin + 200 * 160).unwrap();
        assert_eq!(info.frames, 32000);
        let samples: Vec<i16> = hound::WavReader::open(&path)
            .unwrap()
            .into_samples()
            .map(Result::unwrap)
            .collect();
        let left: Vec<i16> = samples.iter().step_by(2).copied().collect();
        assert!(left[..8000].iter().all(|s| *s == 1000));
        assert!(left[8000..20960].iter().all(|s| *s == 0));
        assert!(
            left[20960..].iter().all(|s| *s == 1000),
            "audio after the resume"
        );
        assert_eq!(
            crate::media::recorder::read_comment(&path)
                .unwrap()
                .as_deref(),
            Some("recording paused 0:01.000-0:02.620 (operator request)")
        );
    }

    /// Review: audio placed ahead of the clock (a stream leading by its timestamps) that arrived
    /// while paused must not be written after the resume point.
    #[test]
    fn a_pause_ends_after_the_latest_audio_seen_while_paused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lead.wav");
        let mut r = CallRecorder::open(&path, 0).unwrap();
        r.set_paused(true, 8000);
        // Paused audio placed up to 300 ms ahead of the clock, then the resume at 2 s.
        r.write(Channel::Left, 16_000 + 2400 - 160, &[7; 160])
            .unwrap();
        assert_eq!(r.set_paused(false, 16_000), Some(18_400 + RESUME_MARGIN));
        r.write(Channel::Left, 18_400, &[7; 160]).unwrap();
        let (_, info) = r.finish(24_000).unwrap();
        assert_eq!(info.frames, 24_000);
        let left: Vec<i16> = hound::WavReader::open(&path)
            .unwrap()
            .into_samples()
            .map(Result::unwrap)
            .step_by(2)
            .collect();
        assert!(
            left.iter().all(|s| *s == 0),
            "nothing said while paused is in the file"
        );
    }

    #[test]
    fn the_comment_names_each_stretch_in_file_time() {
        let pauses = [
            (8000 * 12 + 8 * 340, Some(8000 * 20 + 800)),
            (8000 * 62, None),
        ];
        assert_eq!(
            pause_comment(&pauses, 8000 * 65 + 4000),
            "recording paused 0:12.340-0:20.100, 1:02.000-1:05.500 (operator request)"
        );
    }
}
