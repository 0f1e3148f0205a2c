//! What the call's media sessions report (digits, audio for the recorder, playback ends,
//! timeouts) and key presses that came by SIP INFO, handled in the call's task.

use super::*;

impl Task {
    /// The caller's SIP INFO key press: handled like one heard in the media (menus, voicemail,
    /// rating, broadcasts); while bridged the operator's phone gets it too as RFC 4733 events,
    /// when it takes them (a bridge relays audio as it comes, so there is no tone to mix one into).
    /// A press whose RFC 4733 events came first was relayed with them already; one whose INFO
    /// comes first and whose events follow reaches the other phone twice (phones send one or
    /// the other in practice).
    pub(super) fn info_digit(&mut self, digit: char) {
        let now = Instant::now();
        if self.session.on_info_digit(now, digit)
            && let Some(o) = self.other.as_mut()
            && o.session.config().event_pt.is_some()
        {
            o.session.send_digit(now, digit);
        }
    }

    /// The bridged operator's SIP INFO key press, merged with the operator's own media keys, then
    /// sent to the caller as RFC 4733 events (when the caller's phone takes them).
    pub(super) fn operator_info_digit(&mut self, digit: char) {
        let now = Instant::now();
        if let Some(o) = self.other.as_mut()
            && o.session.on_info_digit(now, digit)
            && self.session.config().event_pt.is_some()
        {
            self.session.send_digit(now, digit);
        }
    }

    pub(super) fn on_media_event(&mut self, event: MediaEvent) {
        let mut failed = None;
        match &event {
            MediaEvent::Heard { at_sample, samples } => {
                self.supervision_caller_heard(*at_sample, samples);
                if let Some(r) = self.recorder.as_mut()
                    && let Err(e) = r.write(Channel::Left, *at_sample, samples)
                {
                    failed = Some(e.to_string());
                }
                if let Some(v) = self.voicemail.as_mut() {
                    v.write(*at_sample, samples);
                }
                if self.broadcast.as_ref().is_some_and(|b| b.listening()) {
                    self.broadcast_heard(*at_sample, samples);
                }
            }
            MediaEvent::Played { at_sample, samples } => {
                if let Some(r) = self.recorder.as_mut()
                    && let Err(e) = r.write(Channel::Right, *at_sample, samples)
                {
                    failed = Some(e.to_string());
                }
            }
            _ => {}
        }
        if let Some(error) = failed {
            self.recorder_failed(error);
        }
        match event {
            MediaEvent::Digit {
                digit,
                source,
                at_sample,
            } => {
                let masked = self.recorder.as_ref().is_some_and(|r| r.is_paused());
                self.notify(CallNotice::Digit {
                    leg: self.setup_leg,
                    digit,
                    source,
                    at_ms: at_sample / 8,
                    masked,
                });
                if let Some(v) = &self.voicemail {
                    if v.finish_digit == Some(digit) {
                        self.finish_voicemail(true);
                    }
                    return; // keys during a voicemail are the caller's, not the menu's
                }
                if self.broadcast_digit(digit) {
                    return; // the broadcast's message or detection took it
                }
                if matches!(self.loading, Some((_, _, true))) {
                    // Barge-in while the prompt was still loading.
                    if let Some((h, _, _)) = self.loading.take() {
                        h.abort();
                    }
                }
                self.engine_event(IvrEvent::Digit(digit));
            }
            MediaEvent::PlaybackFinished { interrupted } => {
                if let Some(owner) = self.playing.take() {
                    self.playback_done(owner, interrupted);
                }
            }
            MediaEvent::Timeout => self.notify(CallNotice::Hangup {
                leg: self.setup_leg,
                disposition: "failed.media_timeout".into(),
            }),
            MediaEvent::Unreachable => self.notify(CallNotice::Hangup {
                leg: self.setup_leg,
                disposition: "failed.media_unreachable".into(),
            }),
            MediaEvent::Heard { .. } | MediaEvent::Played { .. } => {}
        }
    }
}
