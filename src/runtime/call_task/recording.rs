//! Recording in a call's task: the voicemail a flow asks for, the periodic header flush, and what
//! happens when a write fails (the recording stops, never the call).

use super::*;

/// The call's recording: a stereo WAV that may start mid-call (a queue's `record` starts at the
/// bridge), so positions on the call clock are shifted to the file's own start.
pub(super) struct CallRecorder {
    path: PathBuf,
    inner: StereoRecorder,
    /// The call-clock sample the file starts at.
    origin: u64,
}

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
        self.inner.write(channel, at, &samples[skip..])
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
        let info = self.inner.finish(end_sample.saturating_sub(self.origin))?;
        Ok((self.path, info))
    }
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
