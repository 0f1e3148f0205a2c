//! The UAC core for calls we originate: INVITE (RFC 3261 §8.1, §13.2), its client transaction
//! (§17.1.1, RFC 6026), the ACK for a 2xx (§13.2.2.4), CANCEL (§9.1) and the dialog it creates
//! (§12.1.2). BYE in both directions goes through the leg and dialog code the UAS side uses.

use super::*;
use crate::sip::transaction::ClientInvite;
use crate::sip::transaction::Machine;

/// Where and how to ring someone: an operator's binding (never a host name to resolve).
#[derive(Debug, Clone)]
pub struct OutboundTarget {
    /// Request-URI and To, e.g. the binding's Contact URI.
    pub uri: String,
    /// The address the binding's REGISTER came from: the INVITE goes there.
    pub peer: Peer,
    pub from_display: Option<String>,
    pub from_user: String,
    /// Our SDP offer.
    pub sdp: Bytes,
    /// Credentials for a 401/407 challenge (a trunk's account); without them a challenge ends
    /// the leg like any other refusal.
    pub login: Option<DigestLogin>,
}

/// A SIP account we authenticate with when a peer challenges our INVITE (RFC 3261 §22.2).
#[derive(Clone, PartialEq, Eq)]
pub struct DigestLogin {
    pub username: String,
    pub password: String,
    /// Answer only challenges of this realm (the carrier's), so a hop beyond the trunk cannot
    /// collect a digest of our password; `None`: any realm.
    pub realm: Option<String>,
}

impl DigestLogin {
    /// The first challenge in `values` this account may answer and we can compute (a server
    /// may offer SHA-256 and MD5 side by side, or several realms).
    pub fn pick_challenge<'a>(
        &self,
        values: impl Iterator<Item = &'a str>,
    ) -> Option<crate::sip::auth::Challenge> {
        values
            .filter_map(|v| crate::sip::auth::Challenge::parse(v).ok())
            .find(|c| self.realm.as_ref().is_none_or(|r| *r == c.realm))
    }
}

/// The password never reaches a log through `{:?}`.
impl std::fmt::Debug for DigestLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigestLogin")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("realm", &self.realm)
            .finish()
    }
}

/// The challenge header of a 401 or 407 and the header that answers it (RFC 3261 §22.2–22.3).
pub(super) fn auth_headers(status: u16) -> Option<(&'static str, &'static str)> {
    match status {
        401 => Some(("WWW-Authenticate", "Authorization")),
        407 => Some(("Proxy-Authenticate", "Proxy-Authorization")),
        _ => None,
    }
}

/// Answers per INVITE: one to the first challenge, more only while the peer says our nonce went
/// stale (RFC 7616 §3.3); a second plain challenge means the credentials are wrong.
const MAX_AUTH_ANSWERS: u8 = 3;

/// The CANCEL `Reason` for the phones that lost a ring-all race (RFC 3326).
pub const REASON_COMPLETED_ELSEWHERE: &str = "SIP;cause=200;text=\"Call completed elsewhere\"";

/// What happened on an outbound leg before it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboundUpdate {
    /// A provisional response (180, 183 …) other than 100.
    Progress(u16),
    /// A 2xx with the SDP answer; the ACK is sent.
    Answered { sdp: Bytes },
}

/// The client INVITE transaction of an outbound leg; it may outlive the leg (Timer D and M
/// absorb retransmitted finals).
pub(super) struct UacInvite {
    key: TransactionKey,
    branch: String,
    machine: ClientInvite,
    leg: LegId,
    peer: Peer,
    /// The INVITE's Request-URI, top Via, From, To and CSeq, for CANCEL and the non-2xx ACK.
    uri: String,
    via: String,
    from: String,
    to: String,
    call_id: String,
    cseq: u32,
    provisional: bool,
    /// The call layer asked to stop ringing; the CANCEL waits for a provisional (§9.1).
    cancel_requested: bool,
    /// A `Reason` header for the CANCEL (RFC 3326), e.g. "call completed elsewhere".
    cancel_reason: Option<&'static str>,
    cancel_sent: bool,
    /// A final that never follows our CANCEL ends the leg after 64·T1 anyway.
    cancel_deadline: Option<Instant>,
    /// Our ACK for the 2xx, re-sent for each retransmission of it (§13.2.2.4).
    ack_2xx: Option<Bytes>,
    pub(super) scheduled: Option<Instant>,
    /// The SDP offer and the account, for a repeated INVITE that answers a challenge.
    sdp: Bytes,
    login: Option<DigestLogin>,
    auth_answers: u8,
    /// A challenge was answered with a new INVITE: this transaction only absorbs
    /// retransmissions of its final until it terminates, and no longer speaks for the leg.
    superseded: bool,
}

/// The parts of an INVITE that stay the same when it is sent again with credentials.
struct InviteParts {
    leg: LegId,
    peer: Peer,
    uri: String,
    from: String,
    to: String,
    call_id: String,
    cseq: u32,
    sdp: Bytes,
    login: Option<DigestLogin>,
    auth_answers: u8,
    /// `Authorization` or `Proxy-Authorization` with its value.
    credentials: Option<(&'static str, String)>,
}

impl UacInvite {
    fn poll_timeout(&self) -> Option<Instant> {
        match (self.machine.poll_timeout(), self.cancel_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

impl Endpoint {
    /// Sends an INVITE to `to.peer` and returns the new leg; its fate arrives as
    /// `Event::Outbound` and finally `Event::LegEnded`.
    pub fn dial(&mut self, now: Instant, to: OutboundTarget) -> LegId {
        let leg_id = self.fresh_id();
        let call_id = format!("{}{}@openline", new_tag(), new_tag());
        let local_tag = new_tag();
        let advertised = self.config.advertised.clone();
        let display = to
            .from_display
            .as_deref()
            .map(|d| format!("\"{}\" ", d.replace(['"', '\\', '\r', '\n'], "")))
            .unwrap_or_default();
        let host = advertised
            .rsplit_once(':')
            .map_or(advertised.as_str(), |(h, _)| h);
        let from = format!("{display}<sip:{}@{host}>;tag={local_tag}", to.from_user);
        let to_header = format!("<{}>", to.uri);
        let key = TransactionKey::client("", "INVITE"); // replaced by send_invite
        let leg = Leg {
            id: leg_id,
            sip_call_id: call_id.clone(),
            local_tag: local_tag.clone(),
            remote_tag: None,
            local_party: from.clone(),
            remote_party: to_header.clone(),
            remote_target: to.uri.clone(),
            route_set: Vec::new(),
            remote_cseq: 0,
            local_cseq: 1,
            peer: to.peer,
            invite_key: key,
            invite_head: Headers::default(),
            state: LegState::Early,
            local_sdp: Some(to.sdp.clone()),
            pending_ack: None,
            pending_reinvite: None,
            pending_update: None,
            pending_refer: None,
            refer_event: None,
            refers_accepted: 0,
            end_reported: false,
            scheduled: None,
            login: to.login.clone(),
            bye_challenge_answered: false,
        };
        self.legs.insert(leg_id, leg);
        self.dialogs.insert((call_id.clone(), local_tag), leg_id);
        self.send_invite(
            now,
            InviteParts {
                leg: leg_id,
                peer: to.peer,
                uri: to.uri,
                from,
                to: to_header,
                call_id,
                cseq: 1,
                sdp: to.sdp,
                login: to.login,
                auth_answers: 0,
                credentials: None,
            },
        );
        leg_id
    }

    /// Sends an INVITE of the leg in a new client transaction (the first one, or a repeat that
    /// answers a challenge: same dialog identifiers, the next CSeq, a new branch).
    fn send_invite(&mut self, now: Instant, parts: InviteParts) {
        let branch = format!("z9hG4bK{}", new_tag());
        let via = format!(
            "SIP/2.0/{} {};branch={branch};rport",
            parts.peer.transport.via_name(),
            self.config.advertised
        );
        let contact = self.contact(parts.peer);
        let mut extra = vec![("Contact", contact.as_str()), ("Allow", uas::ALLOW)];
        if let Some((name, value)) = &parts.credentials {
            extra.push((name, value.as_str()));
        }
        let bytes = build::request(&build::RequestSpec {
            method: "INVITE",
            uri: &parts.uri,
            via: &via,
            max_forwards: 70,
            from: &parts.from,
            to: &parts.to,
            call_id: &parts.call_id,
            cseq: parts.cseq,
            extra: &extra,
            body: Some(build::Body {
                content_type: "application/sdp",
                bytes: &parts.sdp,
            }),
        });
        let key = TransactionKey::client(&branch, "INVITE");
        if let Some(leg) = self.legs.get_mut(&parts.leg) {
            leg.invite_key = key.clone();
            leg.local_cseq = parts.cseq;
        }
        let machine = ClientInvite::new(
            now,
            self.config.timers,
            parts.peer.transport.is_reliable(),
            bytes,
        );
        let id = self.fresh_id();
        self.uac_index.insert(key.clone(), id);
        self.uac.insert(
            id,
            UacInvite {
                key,
                branch,
                machine,
                leg: parts.leg,
                peer: parts.peer,
                uri: parts.uri,
                via,
                from: parts.from,
                to: parts.to,
                call_id: parts.call_id,
                cseq: parts.cseq,
                provisional: false,
                cancel_requested: false,
                cancel_reason: None,
                cancel_sent: false,
                cancel_deadline: None,
                ack_2xx: None,
                scheduled: None,
                sdp: parts.sdp,
                login: parts.login,
                auth_answers: parts.auth_answers,
                superseded: false,
            },
        );
        self.drain_uac(now, id);
    }

    /// The repeated INVITE that answers a 401/407 to transaction `id`, when we have an account
    /// for its leg and the challenge is one we may answer; `None`: the challenge is a refusal.
    fn challenge_answer(&self, id: u64, response: &Response) -> Option<InviteParts> {
        let t = self.uac.get(&id)?;
        let login = t.login.clone()?;
        let (challenge_header, credentials_header) = auth_headers(response.status)?;
        let Some(challenge) = login.pick_challenge(response.headers.get_all(challenge_header))
        else {
            tracing::warn!(
                status = response.status,
                "a challenge we cannot or may not answer"
            );
            return None;
        };
        if t.cancel_requested
            || t.auth_answers >= MAX_AUTH_ANSWERS
            || (t.auth_answers > 0 && !challenge.stale)
        {
            return None;
        }
        let answer = crate::sip::auth::authorize(
            &challenge,
            &login.username,
            &login.password,
            "INVITE",
            &t.uri,
            1,
            &new_tag(),
        );
        Some(InviteParts {
            leg: t.leg,
            peer: t.peer,
            uri: t.uri.clone(),
            from: t.from.clone(),
            to: t.to.clone(),
            call_id: t.call_id.clone(),
            cseq: t.cseq + 1,
            sdp: t.sdp.clone(),
            login: Some(login),
            auth_answers: t.auth_answers + 1,
            credentials: Some((credentials_header, answer)),
        })
    }

    /// Stops ringing an outbound leg: CANCEL now if a provisional arrived, else as soon as one
    /// does (§9.1). The leg ends with `Cancelled` on the 487, or is ACKed and BYEd if a 2xx
    /// crosses the CANCEL.
    pub fn cancel(&mut self, now: Instant, leg: LegId) {
        self.cancel_because(now, leg, None);
    }

    /// [`Endpoint::cancel`] with a `Reason` header value for the CANCEL (RFC 3326), e.g.
    /// [`REASON_COMPLETED_ELSEWHERE`] so the phone does not log a missed call.
    pub fn cancel_because(&mut self, now: Instant, leg: LegId, reason: Option<&'static str>) {
        let Some(id) = self.uac_of(leg) else { return };
        if let Some(t) = self.uac.get_mut(&id) {
            t.cancel_requested = true;
            t.cancel_reason = t.cancel_reason.or(reason);
        }
        self.maybe_send_cancel(now, id);
    }

    pub(super) fn is_ringing_outbound(&self, leg: LegId) -> bool {
        self.uac_of(leg).is_some()
            && self
                .legs
                .get(&leg)
                .is_some_and(|l| l.state == LegState::Early)
    }

    fn uac_of(&self, leg: LegId) -> Option<u64> {
        self.uac
            .iter()
            .find(|(_, t)| t.leg == leg && t.ack_2xx.is_none() && !t.superseded)
            .map(|(id, _)| *id)
    }

    fn maybe_send_cancel(&mut self, now: Instant, id: u64) {
        let Some(t) = self.uac.get_mut(&id) else {
            return;
        };
        if !t.cancel_requested || !t.provisional || t.cancel_sent || t.ack_2xx.is_some() {
            return;
        }
        t.cancel_sent = true;
        t.cancel_deadline = Some(now + self.config.timers.t1 * 64);
        let reason = t.cancel_reason.map(|r| ("Reason", r));
        let bytes = build::request(&build::RequestSpec {
            method: "CANCEL",
            uri: &t.uri,
            via: &t.via,
            max_forwards: 70,
            from: &t.from,
            to: &t.to,
            call_id: &t.call_id,
            cseq: t.cseq,
            extra: reason.as_slice(),
            body: None,
        });
        let branch = t.branch.clone();
        let peer = t.peer;
        self.schedule_uac(id);
        let key = TransactionKey::client(&branch, "CANCEL");
        self.start_client(now, key, peer, None, bytes);
    }

    /// A response whose branch and method match one of our INVITEs.
    pub(super) fn on_invite_response(&mut self, now: Instant, id: u64, response: &Response) {
        let status = response.status;
        // Decided before the machine sees the final: over TCP a final ends the transaction at
        // once (§17.1.1.2) and it is gone after `drain_uac`.
        let retry = matches!(status, 401 | 407)
            .then(|| self.challenge_answer(id, response))
            .flatten();
        let Some(t) = self.uac.get_mut(&id) else {
            return;
        };
        let ack = (status >= 300).then(|| {
            // §17.1.1.3: the ACK for a non-2xx copies the INVITE's top Via, and takes To from
            // the response.
            let to = response.headers.get("To").unwrap_or(&t.to).to_string();
            build::request(&build::RequestSpec {
                method: "ACK",
                uri: &t.uri,
                via: &t.via,
                max_forwards: 70,
                from: &t.from,
                to: &to,
                call_id: &t.call_id,
                cseq: t.cseq,
                extra: &[],
                body: None,
            })
        });
        let pass_up = t.machine.on_response(now, status, ack);
        let (leg, cancelled) = (t.leg, t.cancel_requested);
        if pass_up && retry.is_some() {
            t.superseded = true;
        }
        if pass_up && status >= 300 {
            t.cancel_deadline = None;
        }
        self.drain_uac(now, id);
        if !pass_up {
            return;
        }
        match status {
            100..=199 => {
                // §9.1: any provisional, 100 Trying included, lets a pending CANCEL go.
                if let Some(t) = self.uac.get_mut(&id) {
                    t.provisional = true;
                }
                self.maybe_send_cancel(now, id);
                if status > 100
                    && self
                        .legs
                        .get(&leg)
                        .is_some_and(|l| l.state == LegState::Early)
                {
                    self.emit(Event::Outbound {
                        leg,
                        update: OutboundUpdate::Progress(status),
                    });
                }
            }
            200..=299 => self.on_2xx(now, id, response),
            _ => match retry {
                Some(parts) => self.send_invite(now, parts),
                None => {
                    let reason = if cancelled {
                        EndReason::Cancelled
                    } else {
                        EndReason::Rejected(status)
                    };
                    self.end_leg(leg, reason);
                }
            },
        }
    }

    fn on_2xx(&mut self, now: Instant, id: u64, response: &Response) {
        let Some(t) = self.uac.get_mut(&id) else {
            return;
        };
        if let Some(ack) = t.ack_2xx.clone() {
            // A retransmitted 2xx: the ACK goes again, nothing else happens.
            let peer = t.peer;
            self.send(peer, ack);
            return;
        }
        t.cancel_deadline = None;
        let (leg_id, cancel_requested) = (t.leg, t.cancel_requested);
        let advertised = self.config.advertised.clone();
        let Some(l) = self.legs.get_mut(&leg_id) else {
            return;
        };
        // §12.1.2: the dialog takes its remote tag, target and (reversed) route set from the 2xx.
        l.remote_tag = response.to_tag.clone();
        if let Some(to) = response.headers.get("To") {
            l.remote_party = to.to_string();
        }
        if let Some(target) = response
            .headers
            .get("Contact")
            .and_then(|c| NameAddr::parse(c).ok())
        {
            l.remote_target = target.uri;
        }
        let mut routes: Vec<String> = response
            .headers
            .get_all("Record-Route")
            .map(str::to_string)
            .collect();
        routes.reverse();
        l.route_set = routes;
        l.state = LegState::Confirmed;
        let branch = format!("z9hG4bK{}", new_tag());
        let ack = l.in_dialog_request("ACK", &advertised, &branch, l.local_cseq);
        let peer = l.peer;
        if let Some(t) = self.uac.get_mut(&id) {
            t.ack_2xx = Some(ack.clone());
        }
        self.send(peer, ack);
        if cancel_requested {
            // A 2xx crossed our CANCEL: the call is up at the far end, so end it properly.
            if let Some(l) = self.legs.get_mut(&leg_id) {
                l.state = LegState::Ending;
                l.end_reported = true;
            }
            self.send_bye(now, leg_id);
            self.emit(Event::LegEnded {
                leg: leg_id,
                reason: EndReason::Cancelled,
            });
            return;
        }
        self.emit(Event::Outbound {
            leg: leg_id,
            update: OutboundUpdate::Answered {
                sdp: response.body.clone(),
            },
        });
    }

    fn drain_uac(&mut self, now: Instant, id: u64) {
        let Some(t) = self.uac.get_mut(&id) else {
            return;
        };
        let mut sends = Vec::new();
        let (mut terminated, mut timed_out) = (false, false);
        while let Some(action) = t.machine.poll_action() {
            match action {
                Action::Transmit(bytes) => sends.push(bytes),
                Action::Timeout => timed_out = true,
                Action::Terminated => terminated = true,
            }
        }
        let (peer, leg) = (t.peer, t.leg);
        let answered = t.ack_2xx.is_some() || t.superseded;
        let cancelled = t.cancel_requested;
        if terminated {
            let key = t.key.clone();
            self.uac.remove(&id);
            self.uac_index.remove(&key);
        } else {
            self.schedule_uac(id);
        }
        for bytes in sends {
            self.send(peer, bytes);
        }
        if timed_out && !answered {
            // Timer B: nobody answered the INVITE at all (§17.1.1.2).
            let reason = if cancelled {
                EndReason::Cancelled
            } else {
                EndReason::Timeout
            };
            self.end_leg(leg, reason);
        }
        let _ = now;
    }

    fn schedule_uac(&mut self, id: u64) {
        let Some(t) = self.uac.get_mut(&id) else {
            return;
        };
        let next = t.poll_timeout();
        if next.is_some() && next != t.scheduled {
            t.scheduled = next;
            if let Some(at) = next {
                self.timers.push(Reverse((at, Due::Uac(id))));
            }
        }
    }

    pub(super) fn fire_uac(&mut self, now: Instant, id: u64, at: Instant) {
        let Some(t) = self.uac.get_mut(&id) else {
            return;
        };
        if t.scheduled != Some(at) {
            return;
        }
        t.scheduled = None;
        if t.cancel_deadline.is_some_and(|d| d <= now) {
            // §9.1: no final response 64·T1 after our CANCEL — the transaction is given up.
            let (key, leg) = (t.key.clone(), t.leg);
            self.uac.remove(&id);
            self.uac_index.remove(&key);
            self.end_leg(leg, EndReason::Cancelled);
            return;
        }
        t.machine.handle_timeout(now);
        self.drain_uac(now, id);
    }
}
