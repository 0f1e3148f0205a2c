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
    /// The consulted party's leg (now counted as the caller's).
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
        let named = endpoint
            .leg_of_dialog(&replaces.call_id, &replaces.to_tag, &replaces.from_tag)
            .ok_or(TransferError::ReplacesUnknown)?;
        let (out, own) = if self.outbound.contains_key(&leg) {
            (leg, named)
        } else {
            (named, leg)
        };
        if !self.outbound.contains_key(&out) {
            return Err(TransferError::NotFromOperator);
        }
        let (caller, from, back_to) = self.transferable(out)?;
        let (consulted, target) = self.consultation(own, &from)?;

        self.end_supervision_of(endpoint, now, caller);
        self.end_supervision_of(endpoint, now, own);
        if let Some(o) = self.outbound.get_mut(&out) {
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
            }),
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
        self.tell(own, CallCommand::HandOver);
        self.handovers.insert(own, Handover { consulted, caller });
        if let Some(a) = self.active.get_mut(&own) {
            a.ended_by_media = Some("answered.transferred".into());
        }
        // The REFER's own leg ends after its NOTIFY (in `refer`); the operator's other one now.
        endpoint.hangup(now, if leg == out { own } else { out });
        self.run_acd(endpoint, now);
        Ok(target)
    }

    /// `own` is `operator`'s own call, answered, with its far party's leg bridged: that leg and
    /// whom it reaches.
    fn consultation(
        &self,
        own: LegId,
        operator: &str,
    ) -> Result<(LegId, TransferTarget), TransferError> {
        let active = self
            .active
            .get(&own)
            .filter(|a| !a.ended && a.answered && a.task.is_some())
            .ok_or(TransferError::ReplacesNotConsultation)?;
        let target = active
            .own_call
            .as_ref()
            .filter(|c| c.operator == operator)
            .map(|c| c.to.clone())
            .ok_or(TransferError::ReplacesNotConsultation)?;
        if self.transfers.contains_key(&own) || self.handovers.contains_key(&own) {
            return Err(TransferError::InProgress);
        }
        let consulted = self
            .outbound
            .iter()
            .find(|(_, o)| {
                o.caller_leg == own
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
        own: LegId,
        media: Option<(std::net::UdpSocket, std::net::UdpSocket, SessionConfig)>,
    ) {
        let Some(Handover { consulted, caller }) = self.handovers.remove(&own) else {
            return;
        };
        let ext = self
            .outbound
            .get(&consulted)
            .map(|o| (o.ext.clone(), !o.via_trunk));
        let task = self
            .active
            .get(&caller)
            .filter(|a| !a.ended)
            .and_then(|a| a.task.clone());
        match (ext, media, task) {
            (Some((ext, operator)), Some((rtp, rtcp, session)), Some(task)) => {
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
                    operator,
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
