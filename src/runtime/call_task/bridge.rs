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
    ) {
        let (Ok(rtp), Ok(rtcp)) = (UdpSocket::from_std(rtp), UdpSocket::from_std(rtcp)) else {
            self.engine_event(IvrEvent::DialResult(ivr::DialResult::Failed {
                reason: "dial.no_media".into(),
            }));
            return;
        };
        self.stop_audio();
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
        self.other = Some(OtherLeg { session, rtp, rtcp });
        self.engine_event(IvrEvent::DialResult(ivr::DialResult::Answered));
    }

    /// The operator hung up: the caller's leg sends its own media again and the flow goes on.
    pub(super) fn unbridge(&mut self) {
        if self.other.take().is_some() {
            self.session.unbridge();
            self.engine_event(IvrEvent::DialResult(ivr::DialResult::Completed));
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
        while let Some(output) = other.session.poll_output() {
            match output {
                MediaOutput::Rtp { to, bytes } => send(&other.rtp, to, &bytes).await,
                MediaOutput::Rtcp { to, bytes } => send(&other.rtcp, to, &bytes).await,
                MediaOutput::Relay(packet) => relays.push(packet),
                MediaOutput::Event(MediaEvent::Heard { at_sample, samples }) => {
                    heard.push((at_sample, samples));
                }
                MediaOutput::Event(_) => {}
            }
        }
        for packet in relays {
            self.session.relay(&packet);
        }
        let mut failed = None;
        if let Some((_, r)) = self.recorder.as_mut() {
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
