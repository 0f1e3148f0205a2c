//! Live control of calls that are up: key presses sent by SIP INFO, and the recording paused and
//! resumed through the API. (Transfers and supervision have modules of their own.)

use super::*;
use crate::runtime::call_task::RecordingState;

/// `POST /api/v1/calls/{id}/recording/pause|resume`, as the SIP task receives it.
#[derive(Debug)]
pub struct RecordingControl {
    pub call_id: String,
    pub paused: bool,
    /// An operator's token may only touch a call it is bridged to.
    pub operator: Option<String>,
    /// `None`: no such call up on this node (or not the operator's).
    pub reply: tokio::sync::oneshot::Sender<Option<RecordingState>>,
}

impl Calls {
    /// A key press sent by SIP INFO: a caller's (or a broadcast callee's) goes to its call like one
    /// in the media; an answered operator's is passed on to the caller it is bridged with.
    pub fn info_digit(&mut self, leg: LegId, digit: char) {
        if let Some(caller) = self.supervised_by(leg) {
            self.supervisor_digit(caller, digit);
            return;
        }
        let task_of = |leg: &LegId| self.active.get(leg).and_then(|a| a.task.as_ref());
        if let Some(task) = task_of(&leg) {
            let _ = task.send(CallCommand::InfoDigit(digit));
        } else if let Some(o) = self
            .outbound
            .get(&leg)
            .filter(|o| o.answered && !o.supervising && !o.consult)
            && let Some(task) = task_of(&o.caller_leg)
        {
            let _ = task.send(CallCommand::OperatorInfoDigit(digit));
        }
    }

    /// Pauses or resumes a live call's recording; the call's task answers.
    pub fn recording_control(&mut self, request: RecordingControl) {
        let leg = self
            .active
            .iter()
            .find(|(_, a)| a.call_id == request.call_id && !a.ended)
            .map(|(leg, _)| *leg);
        let allowed = |leg: LegId| match &request.operator {
            None => true,
            // (A trunk leg a flow dialled has no extension: "" must match nobody.)
            Some(ext) => {
                !ext.is_empty()
                    && self.outbound.values().any(|o| {
                        o.caller_leg == leg && o.answered && !o.supervising && &o.ext == ext
                    })
            }
        };
        let task = leg
            .filter(|leg| allowed(*leg))
            .and_then(|leg| self.active.get(&leg)?.task.clone());
        let Some(task) = task else {
            let _ = request.reply.send(None);
            return;
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let command = CallCommand::SetRecordingPaused {
            paused: request.paused,
            reply: tx,
        };
        if task.send(command).is_err() {
            let _ = request.reply.send(None);
            return;
        }
        // The call's task answers on its own; the SIP task does not wait for it.
        tokio::spawn(async move {
            let _ = request.reply.send(rx.await.ok());
        });
    }
}
