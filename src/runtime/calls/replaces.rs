//! Attended transfers from the operator's phone: REFER with `Replaces` (RFC 3891) in its
//! Refer-To, the way phones do it (RFC 5589 §7). The operator put the caller on hold, called a
//! colleague (or a number through the trunk) as an own call, talked, and pressed *transfer*: the
//! phone sends REFER on the caller's call (or, some phones, on the consultation) naming the
//! other dialog.
//!
//! Both dialogs end on Openline (a B2BUA), so nobody needs an INVITE with Replaces: the
//! consulted party's leg is moved from the own call's task into the caller's task (its sockets
//! and session parameters; the colleague's phone sees a new RTP stream on the same dialog), and
//! both of the operator's legs end (202, NOTIFY `200 OK`, BYE). The caller keeps one call id,
//! recording and flow, as after a blind transfer; the events say `transfer` (attended, by
//! `refer`) and `transfer_connected`. The consulted leg's row stays on the own call, where it
//! was placed; that call ends as `answered.transferred`.
//!
//! Refused: a Replaces naming no dialog here (481); one naming a call that is not the same
//! operator's own answered call to a colleague or a number, e.g. a consultation in which the
//! colleague called the operator (403: that colleague is their call's own caller, whose leg no
//! task can hand over).

use super::transfer::{Transfer, TransferError, TransferTarget};
use super::*;
use crate::sip::refer::Replaces;

/// An own call's consulted leg on its way to a caller's task.
pub(super) struct Handover {
    /// The consulted party's leg (its `caller_leg` is the caller's already).
    consulted: LegId,
    caller: LegId,
}

impl Calls {
    /// A REFER with `Replaces` on `leg`: one of the two legs (the REFER's, the dialog it names)
    /// is the operator's on a caller's call, the other the operator's own call.
    pub(super) fn refer_replaces(
        &mut self,
        endpoint: &mut Endpoint,
        now: Instant,
        leg: LegId,
        replaces: &Replaces,
        referred_by: Option<&str>,
    ) -> Result<TransferTarget, TransferError> {
        // Only an operator's legs get as far as naming dialogs (no probing by callers).
        let on_own_call = self.active.get(&leg).is_some_and(|a| a.own_call.is_some());
        if !self.outbound.contains_key(&leg) && !on_own_call {
            return Err(TransferError::NotFromOperator);
        }
        let named = endpoint
            .leg_of_dialog(&replaces.call_id, &replaces.to_tag, &replaces.from_tag)
            .ok_or(TransferError::ReplacesUnknown)?;
        let (operator_leg, own_call) = if self.outbound.contains_key(&leg) {
            (leg, named)
        } else {
            (named, leg)
        };
        if !self.outbound.contains_key(&operator_leg) {
            return Err(TransferError::NotFromOperator);
        }
        let (caller, from, back_to) = self.transferable(operator_leg)?;
        let (consulted, target) = self.consultation(own_call, &from)?;
        // First the own call's task lets the consulted leg go; if it cannot hear that, nothing
        // has changed yet.
        let handing_over = self
            .active
            .get(&own_call)
            .and_then(|a| a.task.as_ref())
            .is_some_and(|task| task.send(CallCommand::HandOver).is_ok());
        if !handing_over {
            return Err(TransferError::ReplacesNotConsultation);
        }
        self.handovers
            .insert(own_call, Handover { consulted, caller });

        self.end_supervision_of(endpoint, now, caller);
        self.end_supervision_of(endpoint, now, own_call);
        if let Some(o) = self.outbound.get_mut(&operator_leg) {
            o.detached = true;
        }
        let own_trunk_leg = self
            .outbound
            .get(&consulted)
            .is_some_and(|o| o.via_trunk && o.counted && o.ext == from);
        if own_trunk_leg {
            // The operator's call out through the trunk counted as theirs: it is the caller's now.
            self.acd.call_ended(now, &from, None);
        }
        if let Some(o) = self.outbound.get_mut(&consulted) {
            o.caller_leg = caller;
            if own_trunk_leg {
                o.ext.clear();
            }
        }
        let call_id_of = |leg: LegId| self.active.get(&leg).map(|a| a.call_id.clone());
        let (caller_call, own_call_id) = (call_id_of(caller), call_id_of(own_call));
        metrics::counter!("openline_transfers_total", "kind" => target.kind()).increment(1);
        self.event(
            caller,
            "transfer",
            serde_json::json!({
                "from": from,
                "to": target.name(),
                "kind": target.kind(),
                "by": "refer",
                "referred_by": referred_by,
                "attended": true,
                // The operator's own call to the target, where the target's leg began.
                "consultation_call_id": own_call_id,
            }),
        );
        self.event(
            own_call,
            "handed_over",
            serde_json::json!({ "to_call_id": caller_call, "target": target.name() }),
        );
        // The caller leaves the operator now and hears the consulted party a moment later.
        self.tell(caller, CallCommand::Transfer { hold_music: None });
        self.transfers.insert(
            caller,
            Transfer {
                from,
                target: target.clone(),
                back_to,
                consult: None,
            },
        );
        if let Some(a) = self.active.get_mut(&own_call) {
            a.ended_by_media = Some("answered.transferred".into());
        }
        // The REFER's own leg ends after its NOTIFY (in `refer`); the operator's other one now.
        let other = if leg == operator_leg {
            own_call
        } else {
            operator_leg
        };
        endpoint.hangup(now, other);
        self.run_acd(endpoint, now);
        Ok(target)
    }

    /// `own_call` is `operator`'s own call, answered, with its far party's leg bridged: that leg
    /// and whom it reaches.
    fn consultation(
        &self,
        own_call: LegId,
        operator: &str,
    ) -> Result<(LegId, TransferTarget), TransferError> {
        let active = self
            .active
            .get(&own_call)
            .filter(|a| !a.ended && a.answered && a.task.is_some())
            .ok_or(TransferError::ReplacesNotConsultation)?;
        let target = active
            .own_call
            .as_ref()
            .filter(|c| c.operator == operator)
            .map(|c| c.to.clone())
            .ok_or(TransferError::ReplacesNotConsultation)?;
        if self.transfers.contains_key(&own_call) || self.handovers.contains_key(&own_call) {
            return Err(TransferError::InProgress);
        }
        let consulted = self
            .outbound
            .iter()
            .find(|(_, o)| {
                o.caller_leg == own_call
                    && o.answered
                    && o.counted
                    && !o.detached
                    && !o.consult
                    && !o.supervising
            })
            .map(|(leg, _)| *leg)
            .ok_or(TransferError::ReplacesNotConsultation)?;
        Ok((consulted, target))
    }

    /// The own call's task let the consulted leg go: it joins the caller's task. If the
    /// consulted party or the caller hung up meanwhile, the transfer fails as an unanswered one
    /// (a caller from a queue goes back to it).
    pub(super) fn handed_over(
        &mut self,
        endpoint: &mut Endpoint,
        now: Instant,
        own_call: LegId,
        media: Option<(std::net::UdpSocket, std::net::UdpSocket, SessionConfig)>,
    ) {
        let Some(Handover { consulted, caller }) = self.handovers.remove(&own_call) else {
            return;
        };
        let consulted_leg = self.outbound.get(&consulted);
        let ext = consulted_leg.map(|o| o.ext.clone());
        let key_codes = consulted_leg.is_some_and(|o| !o.via_trunk);
        let task = self
            .active
            .get(&caller)
            .filter(|a| !a.ended)
            .and_then(|a| a.task.clone());
        match (ext, media, task) {
            (Some(ext), Some((rtp, rtcp, session)), Some(task)) => {
                tracing::info!(
                    caller,
                    consulted,
                    "attended transfer: the consulted leg joins the caller"
                );
                self.transfer_connected(caller, &ext);
                let _ = task.send(CallCommand::Bridge {
                    rtp,
                    rtcp,
                    session,
                    queue: None,
                    key_codes,
                });
            }
            (ext, _, _) => {
                if ext.is_some() {
                    if let Some(o) = self.outbound.get_mut(&consulted) {
                        o.reported = true;
                    }
                    endpoint.hangup(now, consulted);
                }
                self.transfer_unreached(endpoint, now, caller, "target_gone");
            }
        }
    }
}
