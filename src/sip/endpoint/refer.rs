//! REFER on a confirmed dialog (RFC 3515), the way an operator's phone transfers its call: the
//! call layer hears `Event::Refer` and answers with `accept_refer` (202 Accepted, then NOTIFYs
//! of the implicit subscription saying how the transfer goes) or `reject_refer`.

use super::*;
use crate::sip::refer;

/// How long the implicit subscription of an accepted REFER lasts unless a final NOTIFY ends it
/// sooner (RFC 3515 §2.4.4: the notifier picks).
const REFER_SUBSCRIPTION_SECS: u32 = 60;

impl Endpoint {
    /// A REFER in a dialog: a bad Refer-To gets 400, a REFER on a call not yet (or no longer)
    /// up 403, one from another host than the leg's phone 403 (the dialog's ids travel in the
    /// clear over UDP: knowing them must not be enough to send a call elsewhere), a second one
    /// while the first waits 491; else the call layer decides.
    pub(super) fn on_refer(
        &mut self,
        now: Instant,
        txn: u64,
        leg: LegId,
        request: &Request,
        peer: Peer,
    ) {
        let Some(l) = self.legs.get(&leg) else {
            return;
        };
        let refusal = if l.state != LegState::Confirmed {
            Some((403, "Call Not Established"))
        } else if l.peer.addr.ip() != peer.addr.ip() {
            tracing::warn!(leg, from = %peer.addr, phone = %l.peer.addr, "REFER from another host refused");
            Some((403, "Forbidden"))
        } else if l.pending_refer.is_some() {
            Some((491, "Request Pending"))
        } else {
            None
        };
        if let Some((status, reason)) = refusal {
            self.reply(now, txn, request, peer, status, reason, None, &[]);
            return;
        }
        let refer_to = match refer::parse_refer_to(request.headers.get_all("Refer-To")) {
            Ok(to) => to,
            Err(e) => {
                tracing::info!(leg, error = %e, "REFER refused");
                self.reply(now, txn, request, peer, 400, e.reason(), None, &[]);
                return;
            }
        };
        if let Some(l) = self.legs.get_mut(&leg) {
            l.pending_refer = Some((txn, request.headers.clone(), request.cseq));
        }
        let referred_by = request.headers.get("Referred-By").map(str::to_string);
        self.emit(Event::Refer {
            leg,
            refer_to: Box::new(refer_to),
            referred_by,
        });
    }

    /// 202 Accepted to the pending REFER, then the first NOTIFY (`100 Trying`).
    pub fn accept_refer(&mut self, now: Instant, leg: LegId) {
        let Some(l) = self.legs.get_mut(&leg) else {
            return;
        };
        let Some((txn, head, cseq)) = l.pending_refer.take() else {
            return;
        };
        // §2.4.6: NOTIFYs of a later REFER in the dialog name it by its CSeq.
        l.refer_event = Some(if l.refers_accepted == 0 {
            "refer".to_string()
        } else {
            format!("refer;id={cseq}")
        });
        l.refers_accepted += 1;
        let peer = l.peer;
        let bytes = build::response(
            &head,
            &ResponseSpec {
                status: 202,
                reason: "Accepted",
                to_tag: None,
                source: Some(peer.addr),
                extra: &[],
                body: None,
            },
        );
        self.respond(now, txn, 202, bytes);
        self.notify_refer(now, leg, 100, "Trying");
    }

    /// Refuses the pending REFER (403 for a target not allowed, 404 for one that does not exist).
    pub fn reject_refer(&mut self, now: Instant, leg: LegId, status: u16, reason: &str) {
        let Some(l) = self.legs.get_mut(&leg) else {
            return;
        };
        let Some((txn, head, _)) = l.pending_refer.take() else {
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

    /// A NOTIFY of the accepted REFER's progress (`status` as the target answered); a final
    /// status (≥ 200) ends the subscription. Nothing is sent when no subscription is open.
    pub fn notify_refer(&mut self, now: Instant, leg: LegId, status: u16, reason: &str) {
        let advertised = self.config.advertised.clone();
        let Some(l) = self.legs.get_mut(&leg) else {
            return;
        };
        let Some(event) = l.refer_event.clone() else {
            return;
        };
        let state = if status >= 200 {
            l.refer_event = None;
            "terminated;reason=noresource".to_string()
        } else {
            format!("active;expires={REFER_SUBSCRIPTION_SECS}")
        };
        l.local_cseq += 1;
        let branch = format!("z9hG4bK{}", new_tag());
        let body = refer::sipfrag(status, reason);
        let extra = [
            ("Event", event.as_str()),
            ("Subscription-State", state.as_str()),
        ];
        let bytes = l.in_dialog_request_with_body(
            "NOTIFY",
            &advertised,
            &branch,
            l.local_cseq,
            &extra,
            Some(build::Body {
                content_type: refer::SIPFRAG_TYPE,
                bytes: body.as_bytes(),
            }),
        );
        let peer = l.peer;
        let key = TransactionKey::client(&branch, "NOTIFY");
        // Not tied to the leg: a NOTIFY that fails or times out does not end the call.
        self.start_client(now, key, peer, None, bytes);
    }
}
