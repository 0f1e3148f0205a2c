//! A blind transfer in the caller's task: the transferring operator's leg is let go, the caller
//! hears hold music while the target rings, and the next bridge connects the target without
//! telling the flow (it is still in the `queue` or `dial` node that connected the first
//! operator, and hears of the call's end only when the last operator hangs up).

use super::*;

impl Task {
    /// The operator transferred the caller: their leg is dropped from the bridge.
    pub(super) fn start_transfer(&mut self, hold_music: Option<String>) {
        if self.other.take().is_some() {
            self.session.unbridge();
        }
        self.transferring = true;
        // (An attended transfer whose operator hung up while the target rang goes on blind.)
        self.consulting = false;
        self.consult = None;
        self.stop_audio();
        self.hold = Some(hold_music);
        self.play_hold_music();
    }

    /// The operator transferred the caller to a flow: their leg leaves, and the call's engine
    /// goes on into that flow, found in the flows in force now (its path goes on too). A call
    /// that runs no flow (an operator's own call), or whose flow has ended, starts one.
    pub(super) fn transfer_to_flow(
        &mut self,
        flow: ivr::FlowId,
        flows: Arc<FlowSet>,
        variables: BTreeMap<String, String>,
    ) {
        if self.other.take().is_some() {
            self.session.unbridge();
        }
        self.end_supervision();
        self.transferring = false;
        self.consulting = false;
        self.consult = None;
        self.queue_bridge = None;
        self.hold = None;
        self.stop_audio();
        if let Some(engine) = self.engine.as_mut().filter(|e| !e.is_ended()) {
            engine.adopt_flows(flows);
            self.engine_event(IvrEvent::Transfer { flow });
            return;
        }
        match ivr::Call::new(flows, flow.as_str(), variables) {
            Ok(mut engine) => {
                let first = engine.start(Instant::now(), self.setup.clock.timestamp());
                self.engine = Some(engine);
                self.execute(first);
            }
            Err(e) => {
                tracing::error!(error = %e, "the transfer's flow cannot start");
                self.disposition = Some("transfer.failed".into());
                self.notify(CallNotice::Hangup {
                    leg: self.setup_leg,
                    disposition: "transfer.failed".into(),
                });
            }
        }
    }

    /// This own call's far party goes to the operator's caller (an attended transfer from the
    /// phone): its leg leaves the bridge with its sockets and session parameters; the operator's
    /// leg, left alone, is hung up by the SIP side.
    pub(super) fn hand_over(&mut self) {
        let media = self.other.take().and_then(|other| {
            self.session.unbridge();
            let config = other.session.config().clone();
            match (other.rtp.into_std(), other.rtcp.into_std()) {
                (Ok(rtp), Ok(rtcp)) => Some((rtp, rtcp, config)),
                _ => None,
            }
        });
        self.notify(CallNotice::HandedOver {
            leg: self.setup_leg,
            media,
        });
    }

    /// The transfer's target answered (an operator, or one found by the target queue): bridged
    /// like the first, recorded on the same file (a queue that records starts it if nothing did).
    /// `true` when this bridge was a transfer's.
    pub(super) fn transfer_bridged(
        &mut self,
        queue: Option<&crate::runtime::calls::QueueBridge>,
    ) -> bool {
        if !std::mem::take(&mut self.transferring) {
            return false;
        }
        // The flow is parked in a queue node: the queue that served last decides what follows
        // (its rating flow, else the first queue's).
        if let (Some(q), Some(old)) = (queue, self.queue_bridge.as_ref()) {
            let mut q = q.clone();
            if q.rating_flow.is_none() {
                q.rating_flow = old.rating_flow.clone();
            }
            self.queue_bridge = Some(q);
        }
        true
    }

    /// The transfer's target could not be reached and there is nowhere to take the caller back
    /// to: the flow's node hears that its operator's call ended (`dial` as a failed dial with
    /// `reason`, `queue` as a completed call); a direct call ends.
    pub(super) fn transfer_failed(&mut self, reason: String) {
        self.transferring = false;
        self.hold = None;
        self.stop_audio();
        if self.engine.is_none() {
            self.disposition = Some("transfer.failed".into());
            self.notify(CallNotice::Hangup {
                leg: self.setup_leg,
                disposition: "transfer.failed".into(),
            });
            return;
        }
        let event = match self.queue_bridge.take() {
            Some(_) => IvrEvent::QueueResult(QueueResult::Ended {
                disposition: "transfer.failed".into(),
            }),
            None => IvrEvent::DialResult(ivr::DialResult::Failed { reason }),
        };
        self.engine_event(event);
    }

    /// The target queue is done with the caller before an operator answered (no such queue,
    /// overflow): a flow parked in a queue node takes the result as its own queue's (an
    /// overflow flow runs); one parked in a `dial` node hears a failed dial.
    pub(super) fn transfer_queue_result(&mut self, result: QueueResult) {
        if self.queue_bridge.is_none() || self.engine.is_none() {
            let reason = match result {
                QueueResult::Unavailable => "transfer.queue_unavailable",
                _ => "transfer.queue_overflow",
            };
            self.transfer_failed(reason.into());
            return;
        }
        self.transferring = false;
        self.queue_bridge = None;
        self.hold = None;
        self.stop_audio();
        self.engine_event(IvrEvent::QueueResult(result));
    }
}
