//! The call layer's commands on a leg (ring, answer, reject, hang up, and the answers to its
//! re-INVITE and UPDATE offers): what the endpoint sends for each, through the leg's INVITE
//! transaction or a new in-dialog request.

use super::*;
use crate::sip::dialog::PendingAck;

impl Endpoint {
    /// 200 OK with our new SDP to a pending re-INVITE (retransmitted until its ACK) or UPDATE.
    pub fn answer_reinvite(&mut self, now: Instant, leg: LegId, sdp: Bytes) {
        let Some(l) = self.legs.get_mut(&leg) else {
            return;
        };
        if let Some((txn, head)) = l.pending_update.take() {
            let peer = l.peer;
            let bytes = self.ok_with_contact(&head, peer, None, Some(&sdp));
            self.respond(now, txn, 200, bytes);
            if let Some(l) = self.legs.get_mut(&leg) {
                l.local_sdp = Some(sdp);
            }
            return;
        }
        let Some((txn, head, cseq)) = l.pending_reinvite.take() else {
            return;
        };
        let peer = l.peer;
        let bytes = self.ok_with_contact(&head, peer, None, Some(&sdp));
        self.respond(now, txn, 200, bytes.clone());
        if let Some(l) = self.legs.get_mut(&leg) {
            l.local_sdp = Some(sdp);
            l.pending_ack = Some(PendingAck::new(cseq, bytes, now, self.config.timers.t1));
        }
        self.schedule_leg(leg);
    }

    /// Refuses a pending re-INVITE (488 when its offer has nothing we can use); the call goes on
    /// with the old session.
    pub fn reject_reinvite(&mut self, now: Instant, leg: LegId, status: u16, reason: &str) {
        let Some(l) = self.legs.get_mut(&leg) else {
            return;
        };
        let pending = l
            .pending_update
            .take()
            .or_else(|| l.pending_reinvite.take().map(|(txn, head, _)| (txn, head)));
        let Some((txn, head)) = pending else {
            return;
        };
        let peer = l.peer;
        let bytes = build::response(
            &head,
            &ResponseSpec {
                status,
                reason,
                to_tag: None,
                source: Some(peer.addr),
                extra: &[],
                body: None,
            },
        );
        self.respond(now, txn, status, bytes);
    }

    /// 180 Ringing on an early leg.
    pub fn ring(&mut self, now: Instant, leg: LegId) {
        let Some(l) = self.legs.get(&leg).filter(|l| l.state == LegState::Early) else {
            return;
        };
        let Some(&txn) = self.server_index.get(&l.invite_key) else {
            return;
        };
        let contact = self.contact(l.peer);
        let bytes = build::response(
            &l.invite_head,
            &ResponseSpec {
                status: 180,
                reason: "Ringing",
                to_tag: Some(&l.local_tag),
                source: Some(l.peer.addr),
                extra: &[("Contact", &contact)],
                body: None,
            },
        );
        self.respond(now, txn, 180, bytes);
    }

    /// 200 OK with our SDP answer; retransmitted until the ACK (§13.3.1.4).
    pub fn answer(&mut self, now: Instant, leg: LegId, sdp: Bytes) {
        let Some(l) = self.legs.get(&leg).filter(|l| l.state == LegState::Early) else {
            return;
        };
        let Some(&txn) = self.server_index.get(&l.invite_key) else {
            return;
        };
        let bytes = self.ok_with_contact(&l.invite_head, l.peer, Some(&l.local_tag), Some(&sdp));
        let cseq = l.remote_cseq;
        self.respond(now, txn, 200, bytes.clone());
        if let Some(l) = self.legs.get_mut(&leg) {
            l.state = LegState::Confirmed;
            l.local_sdp = Some(sdp);
            l.pending_ack = Some(PendingAck::new(cseq, bytes, now, self.config.timers.t1));
        }
        self.schedule_leg(leg);
    }

    /// A final error for an early leg (e.g. 404 unrouted, 488 no common codec, 486 busy).
    pub fn reject(&mut self, now: Instant, leg: LegId, status: u16, reason: &str) {
        self.reject_with(now, leg, status, reason, &[]);
    }

    /// [`Self::reject`] with extra headers (`Retry-After` on a 503).
    pub fn reject_with(
        &mut self,
        now: Instant,
        leg: LegId,
        status: u16,
        reason: &str,
        extra: &[(&str, &str)],
    ) {
        if !self
            .legs
            .get(&leg)
            .is_some_and(|l| l.state == LegState::Early)
        {
            return;
        }
        self.final_for_invite(now, leg, status, reason, extra);
        self.end_leg(leg, EndReason::Rejected(status));
    }

    /// Ends a leg from our side: 480 while early (CANCEL for a leg we dialled), BYE once
    /// answered.
    pub fn hangup(&mut self, now: Instant, leg: LegId) {
        let Some(state) = self.legs.get(&leg).map(|l| l.state) else {
            return;
        };
        if self.is_ringing_outbound(leg) {
            self.cancel(now, leg);
            return;
        }
        match state {
            LegState::Early => self.reject(now, leg, 480, "Temporarily Unavailable"),
            LegState::Confirmed => {
                if let Some(l) = self.legs.get_mut(&leg) {
                    l.pending_ack = None;
                    l.state = LegState::Ending;
                }
                self.send_bye(now, leg);
            }
            LegState::Ending => {}
        }
    }
}
