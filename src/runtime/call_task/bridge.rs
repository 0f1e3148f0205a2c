//! Bridging in a call's task: the dialed operator's leg gets a second media session on the call
//! clock, and the two legs relay to each other; the operator is the recording's right channel.

use super::*;

impl Task {
    /// The operator answered: a second session on the call clock, both legs relaying.
    pub(super) fn bridge(
        &mut self,
        rtp: std::net::UdpSocket,
        rtcp: std::net::UdpSocket,
        config: SessionConfig,
        queue: Option<crate::runtime::calls::QueueBridge>,
        key_codes: bool,
    ) {
        let (Ok(rtp), Ok(rtcp)) = (UdpSocket::from_std(rtp), UdpSocket::from_std(rtcp)) else {
            // The operator's leg ends with its sockets; the SIP side reports that end.
            if self.transferring {
                self.transfer_failed("dial.no_media".into());
            } else if queue.is_none() {
                self.engine_event(IvrEvent::DialResult(ivr::DialResult::Failed {
                    reason: "dial.no_media".into(),
                }));
            }
            return;
        };
        self.hold = None;
        self.stop_audio();
        if let Some(path) = queue.as_ref().and_then(|q| q.record_to.as_ref()) {
            self.start_recording(path);
        }
        let mut session = MediaSession::new(
            self.t0,
            Instant::now(),
            config,
            rand::random(),
            rand::random(),
            rand::random(),
        );
        session.set_recording(self.recorder.is_some());
        session.bridge();
        self.session.bridge();
        self.operator_keys = Default::default(); // a new operator's keys start afresh
        self.other = Some(OtherLeg {
            session,
            rtp,
            rtcp,
            key_codes,
        });
        if self.transfer_bridged(queue.as_ref()) {
            return;
        }
        match queue {
            Some(queue) => {
                self.queue_bridge = Some(queue);
                self.engine_event(IvrEvent::QueueResult(QueueResult::Answered));
            }
            None => self.engine_event(IvrEvent::DialResult(ivr::DialResult::Answered)),
        }
    }

    /// The operator hung up: the caller's leg sends its own media again and the flow goes on
    /// (a queue call goes to the queue's rating flow, or ends).
    pub(super) fn unbridge(&mut self) {
        if self.other.take().is_none() {
            return;
        }
        self.session.unbridge();
        if self.engine.is_none() {
            // A direct call between operators: when one hangs up, so does the other.
            self.disposition = Some("answered.callee_hangup".into());
            self.notify(CallNotice::Hangup {
                leg: self.setup_leg,
                disposition: "answered.callee_hangup".into(),
            });
            return;
        }
        let event = match self.queue_bridge.take() {
            Some(q) => IvrEvent::QueueResult(
                match q.rating_flow.and_then(|f| ivr::FlowId::new(&f).ok()) {
                    Some(flow) => QueueResult::Continue { flow },
                    None => QueueResult::Ended {
                        disposition: ivr::engine::disposition::QUEUE_COMPLETED.into(),
                    },
                },
            ),
            None => IvrEvent::DialResult(ivr::DialResult::Completed),
        };
        self.engine_event(event);
    }

    /// The operator's keys (RFC 4733 or SIP INFO; relayed to the caller as ever): a key code
    /// pauses or resumes the recording. A pause outlives a transfer (the next operator may be
    /// the one taking the card number); `*2` or the API resumes it.
    fn operator_pressed(&mut self, keys: &[char]) {
        if !self.other.as_ref().is_some_and(|o| o.key_codes) {
            return; // an outside party's keys never touch the recording
        }
        for digit in keys {
            let code = self.operator_keys.press(Instant::now(), *digit);
            let paused = match code {
                Some(operator_keys::OperatorKey::PauseRecording) => true,
                Some(operator_keys::OperatorKey::ResumeRecording) => false,
                None => continue,
            };
            let state = self.set_recording_paused(paused, "phone");
            tracing::info!(paused, ?state, "operator's key code for the recording");
        }
    }

    /// Carries out what the operator's session produced: its packets, relays to the caller and its
    /// audio for the recorder's right channel.
    pub(super) async fn drain_other(&mut self) {
        let Some(other) = self.other.as_mut() else {
            return;
        };
        let mut relays = Vec::new();
        let mut heard = Vec::new();
        let mut keys = Vec::new();
        while let Some(output) = other.session.poll_output() {
            match output {
                MediaOutput::Rtp { to, bytes } => {
                    if let Some(e) = send(&other.rtp, to, &bytes).await {
                        crate::runtime::icmp::drain_error_queue(&other.rtp);
                        if crate::runtime::icmp::is_unreachable(&e) {
                            other.session.on_unreachable(Instant::now());
                        }
                    }
                }
                MediaOutput::Rtcp { to, bytes } => {
                    let _ = send(&other.rtcp, to, &bytes).await;
                }
                MediaOutput::Relay(packet) => relays.push(packet),
                MediaOutput::Event(MediaEvent::Heard { at_sample, samples }) => {
                    heard.push((at_sample, samples));
                }
                // Tones heard in the audio never count: a caller's keys can come back as echo.
                MediaOutput::Event(MediaEvent::Digit { digit, source, .. })
                    if source != DigitSource::Inband =>
                {
                    keys.push(digit)
                }
                MediaOutput::Event(_) => {}
            }
        }
        self.operator_pressed(&keys);
        // While the operator consults a transfer's target, they talk with it, not the caller,
        // and the recording keeps only the caller.
        if self.consulting {
            if let Some(consult) = self.consult.as_mut() {
                for packet in relays {
                    consult.session.relay(&packet);
                }
            }
            heard.clear();
        } else if self.relays_to_caller() {
            for packet in relays {
                self.session.relay(&packet);
            }
        }
        heard.retain(|(at, samples)| self.supervision_operator_heard(*at, samples));
        let mut failed = None;
        if let Some(r) = self.recorder.as_mut() {
            for (at, samples) in heard {
                if let Err(e) = r.write(Channel::Right, at, &samples) {
                    failed = Some(e.to_string());
                    break;
                }
            }
        }
        if let Some(error) = failed {
            self.recorder_failed(error);
        }
    }
}
