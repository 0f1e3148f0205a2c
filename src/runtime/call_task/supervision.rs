//! Supervision in the caller's task: a supervisor's phone joins the bridge as a third leg, in one
//! of three modes that say who hears whom. The caller is never told (no tone, no prompt).
//!
//! | mode      | supervisor hears   | operator hears        | caller hears            |
//! |-----------|--------------------|-----------------------|-------------------------|
//! | `listen`  | caller + operator  | caller                | operator                |
//! | `whisper` | caller + operator  | caller + supervisor   | operator                |
//! | `barge`   | caller + operator  | caller + supervisor   | operator + supervisor   |
//!
//! A leg that hears one party gets that party's packets relayed as they come; a leg that hears
//! two gets their decoded audio mixed ([`Mixer`]) and sent on its own pacing. In `barge` the
//! recording's right channel is what the caller heard (operator and supervisor).

use super::*;
use crate::media::mixer::Mixer;

/// Who hears whom on a supervised call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SuperviseMode {
    Listen,
    Whisper,
    Barge,
}

impl SuperviseMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SuperviseMode::Listen => "listen",
            SuperviseMode::Whisper => "whisper",
            SuperviseMode::Barge => "barge",
        }
    }
}

/// How far one side of a mix may fall behind before it counts as silence (200 ms).
const MIX_MAX_LAG: u64 = 1600;

pub(super) struct Supervision {
    pub(super) leg: OtherLeg,
    mode: SuperviseMode,
    /// Caller + operator, for the supervisor.
    to_supervisor: Mixer,
    /// Caller + supervisor, for the operator (whisper, barge).
    to_operator: Mixer,
    /// Operator + supervisor, for the caller (barge).
    to_caller: Mixer,
}

impl Task {
    /// The supervisor's phone answered: it joins in `mode`.
    pub(super) fn supervise(
        &mut self,
        rtp: std::net::UdpSocket,
        rtcp: std::net::UdpSocket,
        config: SessionConfig,
        mode: SuperviseMode,
    ) {
        let sockets = (UdpSocket::from_std(rtp), UdpSocket::from_std(rtcp));
        let (false, (Ok(rtp), Ok(rtcp))) = (self.consulting, sockets) else {
            // A transfer began meanwhile, or the sockets are unusable: the leg is ended.
            self.notify(CallNotice::SupervisorLost {
                leg: self.setup_leg,
            });
            return;
        };
        let now = Instant::now();
        let mut session = MediaSession::new(
            self.t0,
            now,
            config,
            rand::random(),
            rand::random(),
            rand::random(),
        );
        session.set_recording(true); // its `Heard` audio feeds the mixes
        let start = position_at(self.t0, now);
        self.supervision = Some(Supervision {
            leg: OtherLeg {
                session,
                rtp,
                rtcp,
                key_codes: false,
            },
            mode,
            to_supervisor: Mixer::new(start, MIX_MAX_LAG),
            to_operator: Mixer::new(start, MIX_MAX_LAG),
            to_caller: Mixer::new(start, MIX_MAX_LAG),
        });
        self.apply_supervise_mode();
    }

    pub(super) fn set_supervise_mode(&mut self, mode: SuperviseMode) {
        if let Some(s) = self.supervision.as_mut() {
            s.mode = mode;
        }
        self.apply_supervise_mode();
    }

    /// The supervisor hung up (or the operator left): the bridge is as before.
    pub(super) fn end_supervision(&mut self) {
        if self.supervision.take().is_some() {
            self.apply_supervise_mode();
        }
    }

    fn mode(&self) -> Option<SuperviseMode> {
        self.supervision.as_ref().map(|s| s.mode)
    }

    /// The operator's leg hears the caller's packets relayed (no supervisor voice mixed in).
    pub(super) fn relays_to_operator(&self) -> bool {
        matches!(self.mode(), None | Some(SuperviseMode::Listen))
    }

    /// The caller's leg hears the operator's packets relayed (not barged into).
    pub(super) fn relays_to_caller(&self) -> bool {
        self.mode() != Some(SuperviseMode::Barge)
    }

    /// Sets each leg to relaying or to a mix for the mode in force.
    fn apply_supervise_mode(&mut self) {
        let supervised = self.supervision.is_some();
        let (to_operator, to_caller) = (self.relays_to_operator(), self.relays_to_caller());
        if let Some(o) = self.other.as_mut() {
            o.session
                .set_recording(self.recorder.is_some() || supervised);
            if self.consulting {
                return;
            }
            if to_operator {
                o.session.bridge();
            } else {
                o.session.send_mix();
            }
            if to_caller {
                self.session.bridge();
            } else {
                self.session.send_mix();
            }
        }
        self.update_recording_flag();
    }

    /// What the caller said, for the mixes that carry it.
    pub(super) fn supervision_caller_heard(&mut self, at: u64, samples: &[i16]) {
        if let Some(s) = self.supervision.as_mut() {
            s.to_supervisor.push(0, at, samples);
            s.to_operator.push(0, at, samples);
        }
    }

    /// What the operator said; `false` when the recorder should not take it as its right channel
    /// (in barge the right channel is the caller's mix).
    pub(super) fn supervision_operator_heard(&mut self, at: u64, samples: &[i16]) -> bool {
        let Some(s) = self.supervision.as_mut() else {
            return true;
        };
        s.to_supervisor.push(1, at, samples);
        s.to_caller.push(0, at, samples);
        s.mode != SuperviseMode::Barge
    }

    /// Sends the supervisor's leg its packets, takes in its audio, and feeds every mix to the
    /// leg that hears it.
    pub(super) async fn drain_supervision(&mut self) {
        let Some(s) = self.supervision.as_mut() else {
            return;
        };
        let mut notices = Vec::new();
        while let Some(output) = s.leg.session.poll_output() {
            match output {
                MediaOutput::Rtp { to, bytes } => {
                    if let Some(e) = send(&s.leg.rtp, to, &bytes).await {
                        crate::runtime::icmp::drain_error_queue(&s.leg.rtp);
                        if crate::runtime::icmp::is_unreachable(&e) {
                            s.leg.session.on_unreachable(Instant::now());
                        }
                    }
                }
                MediaOutput::Rtcp { to, bytes } => {
                    let _ = send(&s.leg.rtcp, to, &bytes).await;
                }
                MediaOutput::Event(MediaEvent::Heard { at_sample, samples }) => {
                    s.to_operator.push(1, at_sample, &samples);
                    s.to_caller.push(1, at_sample, &samples);
                }
                MediaOutput::Event(MediaEvent::Digit { digit, .. }) => {
                    notices.push(CallNotice::SupervisorDigit {
                        leg: self.setup_leg,
                        digit,
                    });
                }
                MediaOutput::Event(MediaEvent::Timeout | MediaEvent::Unreachable) => {
                    notices.push(CallNotice::SupervisorLost {
                        leg: self.setup_leg,
                    });
                }
                MediaOutput::Relay(_) | MediaOutput::Event(_) => {}
            }
        }
        for notice in notices {
            let _ = self.notices.send(notice);
        }
        let for_supervisor = s.to_supervisor.pull();
        s.leg.session.feed(&for_supervisor);
        let for_operator = s.to_operator.pull();
        let at = s.to_caller.position();
        let for_caller = s.to_caller.pull();
        let mode = s.mode;
        if mode != SuperviseMode::Listen
            && let Some(o) = self.other.as_mut()
        {
            o.session.feed(&for_operator);
        }
        if mode == SuperviseMode::Barge {
            self.session.feed(&for_caller);
            let failed = self
                .recorder
                .as_mut()
                .and_then(|r| r.write(Channel::Right, at, &for_caller).err());
            if let Some(e) = failed {
                self.recorder_failed(e.to_string());
            }
        }
    }
}

impl Task {
    /// When the supervisor's session needs its timer.
    pub(super) fn supervisor_timeout(&self) -> Option<Instant> {
        self.supervision
            .as_ref()
            .map(|s| s.leg.session.poll_timeout())
    }

    pub(super) fn supervisor_tick(&mut self, now: Instant) {
        if let Some(s) = self.supervision.as_mut() {
            s.leg.session.handle_timeout(now);
        }
    }

    pub(super) fn supervisor_rtp(
        &mut self,
        from: std::net::SocketAddr,
        datagram: &[u8],
        rtcp: bool,
    ) {
        if let Some(s) = self.supervision.as_mut() {
            if rtcp {
                s.leg.session.on_rtcp(Instant::now(), from, datagram);
            } else {
                s.leg.session.on_rtp(Instant::now(), from, datagram);
            }
        }
    }
}
