//! What the SIP task's commands do to a call's task (one arm each; the work is in the modules
//! named after it: bridge, transfer, consult, waiting, recording, media events).

use super::*;

impl Task {
    /// Carries out one command (all but `Stop`, which ends the task's loop).
    pub(super) fn on_command(&mut self, command: CallCommand) {
        match command {
            CallCommand::Confirmed => self.session.confirm(),
            CallCommand::Renegotiate(config) => self.session.renegotiate(Instant::now(), config),
            CallCommand::SendDigit(digit) => self.session.send_digit(Instant::now(), digit),
            CallCommand::InfoDigit(digit) => self.info_digit(digit),
            CallCommand::OperatorInfoDigit(digit) => self.operator_info_digit(digit),
            CallCommand::DialResult(ivr::DialResult::Failed { reason }) if self.transferring => {
                self.transfer_failed(reason)
            }
            CallCommand::DialResult(result) => self.engine_event(IvrEvent::DialResult(result)),
            CallCommand::Bridge {
                rtp,
                rtcp,
                session,
                queue,
                key_codes,
            } => self.bridge(rtp, rtcp, session, queue, key_codes),
            CallCommand::Queued {
                hold_music,
                announce_recording,
            } => self.queued(hold_music, announce_recording),
            CallCommand::QueuePosition(position) => self.announce_position(position),
            CallCommand::QueueResult(result) if self.transferring => {
                self.transfer_queue_result(result)
            }
            CallCommand::QueueResult(result) => {
                self.hold = None;
                self.stop_audio();
                self.engine_event(IvrEvent::QueueResult(result));
            }
            CallCommand::Unbridge => self.unbridge(),
            CallCommand::RenegotiateOther(config) => {
                if let Some(o) = self.other.as_mut() {
                    o.session.renegotiate(Instant::now(), config);
                }
            }
            CallCommand::Transfer { hold_music } => self.start_transfer(hold_music),
            CallCommand::TransferToFlow {
                flow,
                flows,
                variables,
            } => self.transfer_to_flow(flow, flows, variables),
            CallCommand::ConsultStart { hold_music } => self.consult_start(hold_music),
            CallCommand::ConsultBridge {
                rtp,
                rtcp,
                session,
                key_codes,
            } => self.consult_bridge(rtp, rtcp, session, key_codes),
            CallCommand::ConsultComplete => self.consult_complete(),
            CallCommand::HandOver => self.hand_over(),
            CallCommand::ConsultCancel => self.consult_cancel(),
            CallCommand::SetRecordingPaused { paused, reply } => {
                let _ = reply.send(self.set_recording_paused(paused, "api"));
            }
            CallCommand::Supervise {
                rtp,
                rtcp,
                session,
                mode,
            } => self.supervise(rtp, rtcp, session, mode),
            CallCommand::SuperviseMode(mode) => self.set_supervise_mode(mode),
            CallCommand::SuperviseEnd => self.end_supervision(),
            CallCommand::Stop => {}
        }
    }
}
