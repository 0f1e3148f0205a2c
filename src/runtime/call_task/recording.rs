//! Recording in a call's task: the voicemail a flow asks for, the periodic header flush, and what
//! happens when a write fails (the recording stops, never the call).

use super::*;

impl Task {
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
        if let Some((_, r)) = self.recorder.as_mut()
            && let Err(e) = r.advance(now_position).and_then(|()| r.flush_header())
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
