//! Attended transfers through the API (`POST /api/v1/calls/{id}/transfer` with
//! `"attended": true`, then `…/transfer/complete` or `…/transfer/cancel`): the caller waits on hold
//! music while the operator talks with the target on a third leg of the caller's task; complete
//! connects caller and target and lets the operator go, cancel (or the target not answering or
//! hanging up) puts the caller back with the operator. If the operator hangs up while consulting,
//! the transfer completes (an answered target) or goes on as a blind one (a ringing target), as
//! on a desk phone. The target's leg is the caller's call's from the first ring: one call id.

use super::transfer::{TRANSFER_RING_TIMEOUT, Transfer, TransferError, TransferTarget};
use super::*;

/// An attended transfer's consultation.
pub(super) struct Consult {
    /// The operator's leg (bridged to the caller until the transfer completes).
    pub(super) transferor: LegId,
    /// The target's leg, bridged to the operator once it answers.
    pub(super) leg: LegId,
    pub(super) answered: bool,
}

impl Calls {
    /// Starts consulting `name` for the caller of operator leg `out`.
    pub(super) fn consult(
        &mut self,
        endpoint: &mut Endpoint,
        now: Instant,
        out: LegId,
        name: &str,
        by: &'static str,
    ) -> Result<TransferTarget, TransferError> {
        let (caller, from, back_to) = self.transferable(out)?;
        let target = self.transfer_target(endpoint, now, name, &from)?;
        let ringing = match &target {
            TransferTarget::Queue(_) => return Err(TransferError::AttendedToQueue),
            TransferTarget::Flow(_) => return Err(TransferError::AttendedToFlow),
            TransferTarget::Operator(ext) => self.ring_operator(endpoint, now, caller, ext, None),
            TransferTarget::External(number) => {
                self.ring_trunk(endpoint, now, caller, number, None)
            }
        };
        let leg = ringing.map_err(|reason| {
            tracing::info!(caller, %reason, "the consulted target cannot be rung");
            TransferError::TargetUnreachable
        })?;
        if let Some(o) = self.outbound.get_mut(&leg) {
            o.consult = true;
        }
        self.ring_deadlines
            .insert((now + TRANSFER_RING_TIMEOUT, leg));
        let hold_music = back_to
            .as_ref()
            .and_then(|(queue, _)| self.acd.media(queue))
            .map(|m| m.hold_music.clone());
        metrics::counter!("openline_transfers_total", "kind" => target.kind()).increment(1);
        self.event(
            caller,
            "transfer",
            serde_json::json!({
                "from": from, "to": target.name(), "kind": target.kind(), "by": by, "attended": true,
            }),
        );
        // The operator leaves the caller to consult: a supervisor leaves with them.
        self.end_supervision_of(endpoint, now, caller);
        self.tell(caller, CallCommand::ConsultStart { hold_music });
        self.transfers.insert(
            caller,
            Transfer {
                from,
                target: target.clone(),
                back_to,
                consult: Some(Consult {
                    transferor: out,
                    leg,
                    answered: false,
                }),
            },
        );
        Ok(target)
    }

    /// The consulted target answered: its media goes to the caller's task, bridged to the
    /// operator.
    pub(super) fn consult_answered(
        &mut self,
        endpoint: &mut Endpoint,
        now: Instant,
        leg: LegId,
        (rtp, rtcp, session): (std::net::UdpSocket, std::net::UdpSocket, SessionConfig),
    ) {
        let Some(o) = self.outbound.get_mut(&leg) else {
            return;
        };
        let (caller, ext, key_codes) = (o.caller_leg, o.ext.clone(), !o.via_trunk);
        if !o.counted {
            o.counted = true;
            self.acd.call_started(now, &ext);
            self.run_acd(endpoint, now);
        }
        let Some(consult) = self
            .transfers
            .get_mut(&caller)
            .and_then(|t| t.consult.as_mut())
            .filter(|c| c.leg == leg)
        else {
            endpoint.hangup(now, leg);
            return;
        };
        consult.answered = true;
        let to = ext.clone();
        self.event(
            caller,
            "transfer_consulting",
            serde_json::json!({ "to": to }),
        );
        self.tell(
            caller,
            CallCommand::ConsultBridge {
                rtp,
                rtcp,
                session,
                key_codes,
            },
        );
    }

    /// `…/transfer/complete`: the target takes the caller, the operator's leg ends.
    pub(super) fn complete_consult(
        &mut self,
        endpoint: &mut Endpoint,
        now: Instant,
        caller: LegId,
    ) -> Result<TransferTarget, TransferError> {
        let consult = self
            .transfers
            .get(&caller)
            .and_then(|t| t.consult.as_ref())
            .ok_or(TransferError::NoConsultation)?;
        if !consult.answered {
            return Err(TransferError::ConsultNotAnswered);
        }
        let (transferor, leg) = (consult.transferor, consult.leg);
        let target = self.finish_consult(caller, leg, "api");
        if let Some(o) = self.outbound.get_mut(&transferor) {
            o.detached = true;
        }
        endpoint.hangup(now, transferor);
        target.ok_or(TransferError::NoConsultation)
    }

    /// The caller and the consulted target are connected (the operator is let go by the caller).
    fn finish_consult(&mut self, caller: LegId, leg: LegId, by: &str) -> Option<TransferTarget> {
        let t = self.transfers.remove(&caller)?;
        if let Some(o) = self.outbound.get_mut(&leg) {
            o.consult = false;
        }
        self.tell(caller, CallCommand::ConsultComplete);
        self.event(
            caller,
            "transfer_connected",
            serde_json::json!({
                "from": t.from, "to": t.target.name(), "kind": t.target.kind(), "attended": true, "by": by,
            }),
        );
        Some(t.target)
    }

    /// `…/transfer/cancel`: the target's leg ends, the caller is back with the operator.
    pub(super) fn cancel_consult(
        &mut self,
        endpoint: &mut Endpoint,
        now: Instant,
        caller: LegId,
    ) -> Result<TransferTarget, TransferError> {
        let is_consult = self
            .transfers
            .get(&caller)
            .is_some_and(|t| t.consult.is_some());
        if !is_consult {
            return Err(TransferError::NoConsultation);
        }
        let t = self
            .transfers
            .remove(&caller)
            .ok_or(TransferError::NoConsultation)?;
        if let Some(c) = &t.consult {
            if let Some(o) = self.outbound.get_mut(&c.leg) {
                o.reported = true;
            }
            endpoint.hangup(now, c.leg);
        }
        self.tell(caller, CallCommand::ConsultCancel);
        self.event(
            caller,
            "transfer_cancelled",
            serde_json::json!({ "to": t.target.name(), "kind": t.target.kind(), "by": "api" }),
        );
        Ok(t.target)
    }

    /// A consultation's target leg ended before the transfer completed: the caller is back with
    /// the operator (the target hung up, or refused or missed the ring).
    pub(super) fn consult_leg_ended(&mut self, caller: LegId, leg: LegId, reason: EndReason) {
        let ours = self
            .transfers
            .get(&caller)
            .and_then(|t| t.consult.as_ref())
            .is_some_and(|c| c.leg == leg);
        if !ours {
            return; // cancelled by us, or the call is gone
        }
        let Some(t) = self.transfers.remove(&caller) else {
            return;
        };
        let answered = t.consult.as_ref().is_some_and(|c| c.answered);
        let (kind, detail) = if answered {
            (
                "transfer_cancelled",
                serde_json::json!({ "to": t.target.name(), "kind": t.target.kind(), "by": "target" }),
            )
        } else {
            let reason = match reason {
                EndReason::Rejected(486 | 600) => "busy".to_string(),
                EndReason::Rejected(s) => format!("rejected.{s}"),
                _ => "no_answer".to_string(),
            };
            (
                "transfer_failed",
                serde_json::json!({ "to": t.target.name(), "kind": t.target.kind(), "reason": reason, "attended": true }),
            )
        };
        self.event(caller, kind, detail);
        self.tell(caller, CallCommand::ConsultCancel);
    }

    /// The operator's leg ended while consulting: an answered target takes the caller; a
    /// ringing one makes it a blind transfer. Returns true when `out` was consulting.
    pub(super) fn transferor_left_consult(&mut self, out: LegId, caller: LegId) -> bool {
        let Some(c) = self
            .transfers
            .get(&caller)
            .and_then(|t| t.consult.as_ref())
            .filter(|c| c.transferor == out)
        else {
            return false;
        };
        let (leg, answered) = (c.leg, c.answered);
        if answered {
            self.finish_consult(caller, leg, "transferor_hangup");
            return true;
        }
        // Still ringing: a blind transfer from here on (the caller already hears hold music).
        let hold_music = self
            .transfers
            .get(&caller)
            .and_then(|t| t.back_to.as_ref())
            .and_then(|(queue, _)| self.acd.media(queue))
            .map(|m| m.hold_music.clone());
        if let Some(t) = self.transfers.get_mut(&caller) {
            t.consult = None;
        }
        if let Some(o) = self.outbound.get_mut(&leg) {
            o.consult = false;
        }
        self.tell(caller, CallCommand::Transfer { hold_music });
        true
    }
}
