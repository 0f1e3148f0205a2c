//! A call leg's dialog as the UAS side holds it (RFC 3261 §12.1.1, §12.2.2), and the 2xx
//! retransmission the UAS core owes until the ACK arrives (§13.3.1.4).

use super::message::Headers;
use super::transaction::TransactionKey;
use super::transport::Peer;
use bytes::Bytes;
use std::time::{Duration, Instant};

/// Identifies a call leg inside the endpoint and towards the call layer.
pub type LegId = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegState {
    /// INVITE received, no final response yet.
    Early,
    /// 2xx sent; the dialog exists.
    Confirmed,
    /// We sent BYE and wait for its answer.
    Ending,
}

/// Our 2xx to an INVITE, retransmitted T1, 2·T1 … capped at T2 until its ACK or 64·T1 (§13.3.1.4).
#[derive(Debug, Clone)]
pub struct PendingAck {
    pub cseq: u32,
    pub response: Bytes,
    pub next_at: Instant,
    pub interval: Duration,
    pub give_up_at: Instant,
}

#[derive(Debug, Clone)]
pub struct Leg {
    pub id: LegId,
    pub sip_call_id: String,
    pub local_tag: String,
    pub remote_tag: Option<String>,
    /// The INVITE's To value with our tag: the From of requests we send.
    pub local_party: String,
    /// The INVITE's From value: the To of requests we send.
    pub remote_party: String,
    /// The peer's Contact URI (§12.1.1 remote target).
    pub remote_target: String,
    /// Record-Route values in received order, which is the UAS route set (§12.1.1).
    pub route_set: Vec<String>,
    pub remote_cseq: u32,
    pub local_cseq: u32,
    pub peer: Peer,
    /// The INVITE server transaction while the leg is early (for 1xx, the final and CANCEL).
    pub invite_key: TransactionKey,
    /// The INVITE's headers, for building its responses.
    pub invite_head: Headers,
    pub state: LegState,
    /// The SDP we answered with (re-sent unchanged to a re-INVITE).
    pub local_sdp: Option<Bytes>,
    pub pending_ack: Option<PendingAck>,
    /// A re-INVITE waiting for the call layer's answer: (server transaction, its headers, CSeq).
    pub pending_reinvite: Option<(u64, Headers, u32)>,
    /// An UPDATE with an offer waiting for the call layer's answer (RFC 3311): (server
    /// transaction, its headers). Answered in its 200, which no ACK follows.
    pub pending_update: Option<(u64, Headers)>,
    /// A REFER waiting for the call layer's verdict: (server transaction, its headers, CSeq).
    pub pending_refer: Option<(u64, Headers, u32)>,
    /// The Event value of the NOTIFYs of an accepted REFER (`refer`, `refer;id=7` for a later
    /// one in the dialog, RFC 3515 §2.4.6), while its implicit subscription is open.
    pub refer_event: Option<String>,
    /// REFERs accepted on this dialog so far.
    pub refers_accepted: u32,
    /// The call layer was already told the leg ended (an ACK timeout reported before its BYE ends).
    pub end_reported: bool,
    /// Where the leg is in the endpoint's timer heap.
    pub scheduled: Option<Instant>,
    /// The account a leg we dialed authenticates with (a trunk's): a challenge to our BYE is
    /// answered once, so the far end really ends the call (and its billing).
    pub login: Option<crate::sip::endpoint::DigestLogin>,
    pub bye_challenge_answered: bool,
}

impl Leg {
    /// A request inside this dialog (§12.2.1.1): to the remote target, through the route set, with
    /// our Via (`advertised` host:port, `branch`) and the dialog's parties and Call-ID.
    pub fn in_dialog_request(
        &self,
        method: &str,
        advertised: &str,
        branch: &str,
        cseq: u32,
    ) -> Bytes {
        self.in_dialog_request_with(method, advertised, branch, cseq, &[])
    }

    /// [`Leg::in_dialog_request`] with `extra` headers (e.g. `Authorization`).
    pub fn in_dialog_request_with(
        &self,
        method: &str,
        advertised: &str,
        branch: &str,
        cseq: u32,
        extra: &[(&str, &str)],
    ) -> Bytes {
        self.in_dialog_request_with_body(method, advertised, branch, cseq, extra, None)
    }

    /// [`Leg::in_dialog_request_with`] carrying a body (a NOTIFY's sipfrag).
    pub fn in_dialog_request_with_body(
        &self,
        method: &str,
        advertised: &str,
        branch: &str,
        cseq: u32,
        extra: &[(&str, &str)],
        body: Option<super::message::build::Body<'_>>,
    ) -> Bytes {
        let via = format!(
            "SIP/2.0/{} {advertised};branch={branch};rport",
            self.peer.transport.via_name()
        );
        let routes: Vec<(&str, &str)> = self
            .route_set
            .iter()
            .map(|r| ("Route", r.as_str()))
            .chain(extra.iter().copied())
            .collect();
        super::message::build::request(&super::message::build::RequestSpec {
            method,
            uri: &self.remote_target,
            via: &via,
            max_forwards: 70,
            from: &self.local_party,
            to: &self.remote_party,
            call_id: &self.sip_call_id,
            cseq,
            extra: &routes,
            body,
        })
    }

    /// The next instant this leg needs the endpoint's attention.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending_ack
            .as_ref()
            .map(|p| p.next_at.min(p.give_up_at))
    }
}

/// What a pending 2xx wants done at `now`.
#[derive(Debug, PartialEq, Eq)]
pub enum AckTimer {
    Idle,
    Retransmit(Bytes),
    GiveUp,
}

impl PendingAck {
    pub fn new(cseq: u32, response: Bytes, now: Instant, t1: Duration) -> Self {
        PendingAck {
            cseq,
            response,
            next_at: now + t1,
            interval: t1,
            give_up_at: now + t1 * 64,
        }
    }

    pub fn on_timer(&mut self, now: Instant, t2: Duration) -> AckTimer {
        if now >= self.give_up_at {
            return AckTimer::GiveUp;
        }
        if now < self.next_at {
            return AckTimer::Idle;
        }
        self.interval = (self.interval * 2).min(t2);
        self.next_at = now + self.interval;
        AckTimer::Retransmit(self.response.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_hundred_retransmits_double_to_t2_then_give_up() {
        let t0 = crate::testing::t0();
        let (t1, t2) = (Duration::from_millis(500), Duration::from_secs(4));
        let mut p = PendingAck::new(1, Bytes::from_static(b"200"), t0, t1);
        let mut fired = Vec::new();
        let end = loop {
            let now = p.next_at.min(p.give_up_at);
            match p.on_timer(now, t2) {
                AckTimer::Retransmit(_) => fired.push((now - t0).as_millis()),
                AckTimer::GiveUp => break now,
                AckTimer::Idle => panic!("woken for nothing"),
            }
        };
        assert_eq!(&fired[..6], &[500, 1500, 3500, 7500, 11500, 15500]);
        assert_eq!((end - t0).as_secs(), 32);
        assert_eq!(p.on_timer(end, t2), AckTimer::GiveUp);
    }
}
