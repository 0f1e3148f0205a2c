//! An attended transfer in the caller's task: while the operator consults the target, the caller
//! waits on hold music, the operator's leg and the target's (a third leg, `consult`) relay to each
//! other, and the recording keeps only the caller (the consultation is not the customer's call).
//! Completing connects the caller with the target and drops the operator; cancelling (or the
//! target hanging up) puts the caller back with the operator.

use super::*;

impl Task {
    /// The operator starts consulting: the caller is put on hold.
    pub(super) fn consult_start(&mut self, hold_music: Option<String>) {
        self.end_supervision(); // (the SIP side hangs the supervisor's leg up)
        self.consulting = true;
        self.session.unbridge();
        self.stop_audio();
        self.hold = Some(hold_music);
        self.play_hold_music();
    }

    /// The consulted target answered: its leg talks with the operator's.
    pub(super) fn consult_bridge(
        &mut self,
        rtp: std::net::UdpSocket,
        rtcp: std::net::UdpSocket,
        config: SessionConfig,
        key_codes: bool,
    ) {
        let (Ok(rtp), Ok(rtcp)) = (UdpSocket::from_std(rtp), UdpSocket::from_std(rtcp)) else {
            return; // the SIP side ends that leg and cancels the consultation
        };
        let mut session = MediaSession::new(
            self.t0,
            Instant::now(),
            config,
            rand::random(),
            rand::random(),
            rand::random(),
        );
        session.bridge();
        self.consult = Some(OtherLeg {
            session,
            rtp,
            rtcp,
            key_codes,
        });
    }

    /// The transfer completes: the caller talks with the target, the operator's leg is dropped.
    pub(super) fn consult_complete(&mut self) {
        let Some(target) = self.consult.take() else {
            return;
        };
        self.consulting = false;
        self.other = Some(target);
        if let Some(o) = self.other.as_mut() {
            o.session.set_recording(self.recorder.is_some());
        }
        self.hold = None;
        self.stop_audio();
        self.session.bridge();
    }

    /// The consultation is over without a transfer: the caller is back with the operator.
    pub(super) fn consult_cancel(&mut self) {
        self.consult = None;
        if !std::mem::take(&mut self.consulting) {
            return;
        }
        self.hold = None;
        self.stop_audio();
        if self.other.is_some() {
            self.session.bridge();
        }
    }

    /// Carries out what the consulted target's session produced: its packets, and its audio
    /// relayed to the operator.
    pub(super) async fn drain_consult(&mut self) {
        let Some(consult) = self.consult.as_mut() else {
            return;
        };
        let mut relays = Vec::new();
        while let Some(output) = consult.session.poll_output() {
            match output {
                MediaOutput::Rtp { to, bytes } => {
                    if let Some(e) = send(&consult.rtp, to, &bytes).await {
                        crate::runtime::icmp::drain_error_queue(&consult.rtp);
                        if crate::runtime::icmp::is_unreachable(&e) {
                            consult.session.on_unreachable(Instant::now());
                        }
                    }
                }
                MediaOutput::Rtcp { to, bytes } => {
                    let _ = send(&consult.rtcp, to, &bytes).await;
                }
                MediaOutput::Relay(packet) => relays.push(packet),
                MediaOutput::Event(MediaEvent::Timeout | MediaEvent::Unreachable) => {
                    let _ = self.notices.send(CallNotice::ConsultLost {
                        leg: self.setup_leg,
                    });
                }
                MediaOutput::Event(_) => {}
            }
        }
        if let Some(operator) = self.other.as_mut() {
            for packet in relays {
                operator.session.relay(&packet);
            }
        }
    }
}
