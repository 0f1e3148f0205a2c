//! The UAS core: what the endpoint does with each new request (RFC 3261 §8.2 checks, §10.3 REGISTER,
//! §13.3 INVITE, §9.2 CANCEL, §15.1.2 BYE, §11.2 OPTIONS). The call layer's commands on a leg are
//! in `leg_commands`.

use super::*;
use crate::sip::info_dtmf::{self, InfoBody};
use crate::sip::message::Method;
use crate::sip::message::grammar::uri_scheme;
use crate::sip::registrar::{InviteAuth, RegisterOutcome};

/// Methods we implement, for `Allow` (§20.5).
pub const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, REGISTER, INFO, UPDATE, REFER";
/// Option tags we support (none needed yet); anything in `Require` is answered with 420.
const SUPPORTED: &[&str] = &[];

/// A refusal of an offer: status, reason phrase, extra headers.
type OfferRefusal = (u16, &'static str, &'static [(&'static str, &'static str)]);

impl Endpoint {
    pub(super) fn on_request(
        &mut self,
        now: Instant,
        utc: DateTime<Utc>,
        peer: Peer,
        request: Request,
    ) {
        let key = Self::server_key(&request);
        if request.method == Method::Ack {
            self.on_ack(now, key, &request);
            return;
        }
        if let Some(&id) = self.server_index.get(&key) {
            // A retransmission: the transaction answers it (§17.2.1, §17.2.2).
            if let Some(t) = self.servers.get_mut(&id) {
                match &mut t.machine {
                    ServerMachine::Invite(m) => m.on_request_retransmit(now),
                    ServerMachine::NonInvite(m) => m.on_request_retransmit(now),
                }
            }
            self.drain_server(now, id);
            return;
        }
        // A source blocked for brute force gets nothing for new requests: no transaction, no
        // answer (what is up in a dialog with it goes on, and a CANCEL of its ringing call).
        if request.to.tag().is_none()
            && request.method != Method::Cancel
            && self.registrar.source_blocked(now, peer.addr.ip())
        {
            self.stats.blocked += 1;
            return;
        }
        let is_invite = request.method == Method::Invite;
        let txn = self.new_server(now, key.clone(), peer, is_invite);
        if request.method == Method::Cancel {
            self.on_cancel(now, txn, &key, &request, peer);
            return;
        }
        if let Some((status, reason, extra)) = precheck(&request) {
            let extra: Vec<(&str, &str)> = extra.iter().map(|(n, v)| (*n, v.as_str())).collect();
            let tag = new_tag();
            self.reply(now, txn, &request, peer, status, reason, Some(&tag), &extra);
            return;
        }
        if let Some(to_tag) = request.to.tag().map(str::to_string) {
            self.in_dialog(now, txn, &request, peer, &to_tag);
            return;
        }
        match request.method {
            Method::Invite => self.new_call(now, utc, txn, key, request, peer),
            Method::Register => self.on_register(now, utc, txn, &request, peer),
            Method::Options => self.options(now, txn, &request, peer),
            Method::Bye | Method::Info | Method::Update | Method::Prack => {
                let tag = new_tag();
                self.reply(
                    now,
                    txn,
                    &request,
                    peer,
                    481,
                    "Call/Transaction Does Not Exist",
                    Some(&tag),
                    &[],
                );
            }
            _ => {
                let tag = new_tag();
                let allow = [("Allow", ALLOW)];
                self.reply(
                    now,
                    txn,
                    &request,
                    peer,
                    405,
                    "Method Not Allowed",
                    Some(&tag),
                    &allow,
                );
            }
        }
    }

    fn options(&mut self, now: Instant, txn: u64, request: &Request, peer: Peer) {
        let tag = new_tag();
        let extra = [
            ("Allow", ALLOW),
            ("Accept", "application/sdp"),
            ("Accept-Language", "en"),
        ];
        self.reply(now, txn, request, peer, 200, "OK", Some(&tag), &extra);
    }

    fn on_register(
        &mut self,
        now: Instant,
        utc: DateTime<Utc>,
        txn: u64,
        request: &Request,
        peer: Peer,
    ) {
        match self.registrar.handle_register(now, utc, request, peer) {
            // No answer at all: drop the transaction without a response.
            RegisterOutcome::Ignore => self.forget_server(txn),
            RegisterOutcome::Reply {
                status,
                reason,
                extra,
                changes,
            } => {
                let date = utc.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
                let mut headers: Vec<(&str, &str)> = extra
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.as_str()))
                    .collect();
                if status == 200 {
                    headers.push(("Date", &date));
                }
                let tag = new_tag();
                self.reply(
                    now,
                    txn,
                    request,
                    peer,
                    status,
                    reason,
                    Some(&tag),
                    &headers,
                );
                for change in changes {
                    self.emit(Event::Binding(change));
                }
            }
        }
    }

    /// Drops a server transaction that will get no response (a request we ignore).
    fn forget_server(&mut self, txn: u64) {
        if let Some(t) = self.servers.remove(&txn) {
            self.server_index.remove(&t.key);
        }
    }

    fn new_call(
        &mut self,
        now: Instant,
        utc: DateTime<Utc>,
        txn: u64,
        key: TransactionKey,
        request: Request,
        peer: Peer,
    ) {
        let local_tag = new_tag();
        // Operators prove who they are; external numbers are for them only (toll fraud).
        let dialed = crate::sip::message::grammar::uri_user(&request.uri).unwrap_or_default();
        let external = self
            .config
            .external_prefix
            .as_deref()
            .is_some_and(|prefix| external_number(prefix, dialed).is_some());
        let claims_operator = request
            .from
            .user()
            .is_some_and(|u| self.registrar.looks_like_extension(u));
        let operator = match self.registrar.authorize_invite(
            now,
            utc,
            &request,
            peer,
            external || claims_operator,
        ) {
            InviteAuth::Anonymous => None,
            InviteAuth::Operator(ext) => Some(ext),
            // Blocked for brute force: not even a 100 Trying (after one, the caller's INVITE
            // would wait for a final answer without end).
            InviteAuth::Ignore => {
                self.forget_server(txn);
                return;
            }
            InviteAuth::Refuse {
                status,
                reason,
                extra,
            } => {
                let extra: Vec<(&str, &str)> = extra
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.as_str()))
                    .collect();
                self.reply(
                    now,
                    txn,
                    &request,
                    peer,
                    status,
                    reason,
                    Some(&local_tag),
                    &extra,
                );
                return;
            }
        };
        // 100 Trying once the caller is let in, so its Timer A stops (§17.2.1). The checks
        // above answer at once or not at all.
        self.reply(now, txn, &request, peer, 100, "Trying", None, &[]);
        if !self.accepting {
            let extra = [("Retry-After", "30")];
            self.reply(
                now,
                txn,
                &request,
                peer,
                503,
                "Service Unavailable",
                Some(&local_tag),
                &extra,
            );
            return;
        }
        let offer = if request.body.is_empty() {
            Bytes::new()
        } else {
            request.body.clone()
        };
        let leg_id = self.fresh_id();
        let remote_target = request
            .headers
            .get("Contact")
            .and_then(|c| NameAddr::parse(c).ok())
            .map(|a| a.uri)
            .unwrap_or_else(|| request.from.uri.clone());
        let local_party = format!(
            "{};tag={local_tag}",
            request.headers.get("To").unwrap_or_default()
        );
        let leg = Leg {
            id: leg_id,
            sip_call_id: request.call_id.clone(),
            local_tag: local_tag.clone(),
            remote_tag: request.from.tag().map(str::to_string),
            local_party,
            remote_party: request.headers.get("From").unwrap_or_default().to_string(),
            remote_target,
            route_set: request
                .headers
                .get_all("Record-Route")
                .map(str::to_string)
                .collect(),
            remote_cseq: request.cseq,
            local_cseq: 0,
            peer,
            invite_key: key.clone(),
            invite_head: request.headers.clone(),
            state: LegState::Early,
            local_sdp: None,
            pending_ack: None,
            pending_reinvite: None,
            pending_update: None,
            pending_refer: None,
            refer_event: None,
            refers_accepted: 0,
            end_reported: false,
            scheduled: None,
            login: None,
            bye_challenge_answered: false,
        };
        self.legs.insert(leg_id, leg);
        self.dialogs
            .insert((request.call_id.clone(), local_tag), leg_id);
        self.invites.insert(key, leg_id);
        self.emit(Event::IncomingCall(Box::new(IncomingCall {
            leg: leg_id,
            sip_call_id: request.call_id,
            from: request.from,
            to: request.to,
            request_uri: request.uri,
            offer,
            peer,
            user_agent: request.headers.get("User-Agent").map(str::to_string),
            operator,
        })));
    }

    fn on_cancel(
        &mut self,
        now: Instant,
        txn: u64,
        key: &TransactionKey,
        request: &Request,
        peer: Peer,
    ) {
        let target = key.for_cancel_target();
        let leg = self.invites.get(&target).copied();
        let tag = new_tag();
        let Some(leg) = leg else {
            self.reply(
                now,
                txn,
                request,
                peer,
                481,
                "Call/Transaction Does Not Exist",
                Some(&tag),
                &[],
            );
            return;
        };
        self.reply(now, txn, request, peer, 200, "OK", Some(&tag), &[]);
        // §9.2: if the INVITE has no final response yet, it gets 487.
        if self
            .legs
            .get(&leg)
            .is_some_and(|l| l.state == LegState::Early)
        {
            self.final_for_invite(now, leg, 487, "Request Terminated", &[]);
            self.end_leg(leg, EndReason::Cancelled);
        }
    }

    fn on_ack(&mut self, now: Instant, key: TransactionKey, request: &Request) {
        // ACK for a non-2xx belongs to the INVITE transaction (§17.2.1).
        if let Some(&id) = self.server_index.get(&key) {
            if let Some(t) = self.servers.get_mut(&id)
                && let ServerMachine::Invite(m) = &mut t.machine
            {
                m.on_ack(now);
            }
            self.drain_server(now, id);
        }
        // ACK for a 2xx is its own transaction, matched to the dialog (§13.3.1.4).
        let Some(tag) = request.to.tag() else { return };
        let Some(&leg) = self
            .dialogs
            .get(&(request.call_id.clone(), tag.to_string()))
        else {
            return;
        };
        let confirmed = match self.legs.get_mut(&leg) {
            Some(l)
                if l.pending_ack
                    .as_ref()
                    .is_some_and(|p| p.cseq == request.cseq) =>
            {
                l.pending_ack = None;
                true
            }
            _ => false,
        };
        if confirmed {
            self.emit(Event::LegConfirmed { leg });
        }
    }

    fn in_dialog(&mut self, now: Instant, txn: u64, request: &Request, peer: Peer, to_tag: &str) {
        let leg = self
            .dialogs
            .get(&(request.call_id.clone(), to_tag.to_string()))
            .copied();
        let Some(leg) = leg.filter(|l| self.legs.contains_key(l)) else {
            self.reply(
                now,
                txn,
                request,
                peer,
                481,
                "Call/Transaction Does Not Exist",
                None,
                &[],
            );
            return;
        };
        let Some(l) = self.legs.get_mut(&leg) else {
            return;
        };
        // §12.2.2: a lower CSeq than the last one seen is out of order.
        if request.cseq < l.remote_cseq {
            self.reply(
                now,
                txn,
                request,
                peer,
                500,
                "Server Internal Error",
                None,
                &[],
            );
            return;
        }
        l.remote_cseq = request.cseq;
        match request.method {
            Method::Bye => {
                self.reply(now, txn, request, peer, 200, "OK", None, &[]);
                if self
                    .legs
                    .get(&leg)
                    .is_some_and(|l| l.state == LegState::Early)
                {
                    self.final_for_invite(now, leg, 487, "Request Terminated", &[]);
                }
                self.end_leg(leg, EndReason::RemoteBye);
            }
            Method::Invite => self.reinvite(now, txn, leg, request, peer),
            Method::Update if !request.body.is_empty() => {
                self.update_offer(now, txn, leg, request, peer)
            }
            Method::Info => self.info(now, txn, leg, request, peer),
            Method::Refer => self.on_refer(now, txn, leg, request, peer),
            Method::Options | Method::Update => {
                self.reply_with_body(now, txn, request, peer, 200, None);
            }
            _ => {
                let allow = [("Allow", ALLOW)];
                self.reply(
                    now,
                    txn,
                    request,
                    peer,
                    405,
                    "Method Not Allowed",
                    None,
                    &allow,
                );
            }
        }
    }

    /// An in-dialog INFO: a key press (`application/dtmf-relay`, `application/dtmf`) goes to the
    /// call layer as `Event::InfoDigit`; a DTMF body that names no key gets 400, other bodies 415.
    fn info(&mut self, now: Instant, txn: u64, leg: LegId, request: &Request, peer: Peer) {
        let content_type = request.headers.get("Content-Type");
        match info_dtmf::parse(content_type, &request.body) {
            Ok(InfoBody::Digit(digit)) => {
                self.reply_with_body(now, txn, request, peer, 200, None);
                self.emit(Event::InfoDigit { leg, digit });
            }
            Ok(InfoBody::Empty) => self.reply_with_body(now, txn, request, peer, 200, None),
            Ok(InfoBody::Unsupported) => {
                let accept = [("Accept", info_dtmf::ACCEPTED_TYPES)];
                self.reply(
                    now,
                    txn,
                    request,
                    peer,
                    415,
                    "Unsupported Media Type",
                    None,
                    &accept,
                );
            }
            Err(_) => self.reply(now, txn, request, peer, 400, "Bad DTMF Body", None, &[]),
        }
    }

    /// A re-INVITE (refresh, hold, resume): without a body it gets our current SDP again; with an
    /// offer the call layer answers it through `answer_reinvite` / `reject_reinvite`.
    fn reinvite(&mut self, now: Instant, txn: u64, leg: LegId, request: &Request, peer: Peer) {
        let busy = self.legs.get(&leg).is_none_or(|l| {
            l.state != LegState::Confirmed
                || l.pending_ack.is_some()
                || l.pending_reinvite.is_some()
                || l.pending_update.is_some()
        });
        if busy {
            // §14.2: an INVITE while another is pending gets 500 with Retry-After.
            let extra = [("Retry-After", "1")];
            self.reply(
                now,
                txn,
                request,
                peer,
                500,
                "Server Internal Error",
                None,
                &extra,
            );
            return;
        }
        if let Some(l) = self.legs.get_mut(&leg) {
            l.pending_reinvite = Some((txn, request.headers.clone(), request.cseq));
        }
        if request.body.is_empty() {
            let sdp = self.legs.get(&leg).and_then(|l| l.local_sdp.clone());
            if let Some(sdp) = sdp {
                self.answer_reinvite(now, leg, sdp);
            }
            return;
        }
        self.emit(Event::Reoffer {
            leg,
            offer: request.body.clone(),
        });
    }

    /// An UPDATE with an offer (RFC 3311): answered by the call layer like a re-INVITE's, unless
    /// another offer is in progress (§5.2: 491 while ours or a re-INVITE is pending).
    fn update_offer(&mut self, now: Instant, txn: u64, leg: LegId, request: &Request, peer: Peer) {
        let Some(l) = self.legs.get(&leg) else {
            return;
        };
        // Early-dialog offers (RFC 3311 §5.1) are not taken: the call layer answers offers of
        // confirmed calls only. While the peer's own re-INVITE offer is open the answer is 500
        // with Retry-After, while another UPDATE is, 491 (RFC 3311 §5.2).
        let refusal: Option<OfferRefusal> = if l.state != LegState::Confirmed {
            Some((488, "Not Acceptable Here", &[]))
        } else if l.pending_reinvite.is_some() {
            Some((500, "Server Internal Error", &[("Retry-After", "1")]))
        } else if l.pending_update.is_some() {
            Some((491, "Request Pending", &[]))
        } else {
            None
        };
        if let Some((status, reason, extra)) = refusal {
            self.reply(now, txn, request, peer, status, reason, None, extra);
            return;
        }
        if let Some(l) = self.legs.get_mut(&leg) {
            l.pending_update = Some((txn, request.headers.clone()));
        }
        self.emit(Event::Reoffer {
            leg,
            offer: request.body.clone(),
        });
    }

    fn reply_with_body(
        &mut self,
        now: Instant,
        txn: u64,
        request: &Request,
        peer: Peer,
        status: u16,
        sdp: Option<Bytes>,
    ) {
        let body = sdp.as_ref().map(|b| build::Body {
            content_type: "application/sdp",
            bytes: b,
        });
        let bytes = build::response(
            &request.headers,
            &ResponseSpec {
                status,
                reason: "OK",
                to_tag: None,
                source: Some(peer.addr),
                extra: &[],
                body,
            },
        );
        self.respond(now, txn, status, bytes);
    }

    /// A 2xx to an INVITE with our Contact and the SDP.
    pub(super) fn ok_with_contact(
        &self,
        head: &Headers,
        peer: Peer,
        to_tag: Option<&str>,
        sdp: Option<&Bytes>,
    ) -> Bytes {
        let contact = self.contact(peer);
        let mut extra = vec![("Contact", contact.as_str()), ("Allow", ALLOW)];
        let record_routes: Vec<&str> = head.get_all("Record-Route").collect();
        for rr in &record_routes {
            extra.push(("Record-Route", rr)); // §12.1.1: copied into the 2xx
        }
        build::response(
            head,
            &ResponseSpec {
                status: 200,
                reason: "OK",
                to_tag,
                source: Some(peer.addr),
                extra: &extra,
                body: sdp.map(|b| build::Body {
                    content_type: "application/sdp",
                    bytes: b,
                }),
            },
        )
    }

    pub(super) fn contact(&self, peer: Peer) -> String {
        match peer.transport {
            super::super::transport::TransportKind::Udp => {
                format!("<sip:openline@{}>", self.config.advertised)
            }
            super::super::transport::TransportKind::Tcp => {
                format!("<sip:openline@{};transport=tcp>", self.config.advertised)
            }
        }
    }

    /// Sends a final non-2xx for the leg's INVITE through its transaction.
    pub(super) fn final_for_invite(
        &mut self,
        now: Instant,
        leg: LegId,
        status: u16,
        reason: &str,
        extra: &[(&str, &str)],
    ) {
        let Some(l) = self.legs.get(&leg) else { return };
        let Some(&txn) = self.server_index.get(&l.invite_key) else {
            return;
        };
        let bytes = build::response(
            &l.invite_head,
            &ResponseSpec {
                status,
                reason,
                to_tag: Some(&l.local_tag),
                source: Some(l.peer.addr),
                extra,
                body: None,
            },
        );
        self.respond(now, txn, status, bytes);
    }

    // ---- commands from the call layer --------------------------------------------------------
}

/// §8.2.1–§8.2.3 checks shared by every new request: hop limit, URI scheme, required extensions,
/// and for INVITE the body we can read and a response type the caller accepts.
/// A status, its reason phrase and extra headers for the answer.
type Refusal = (u16, &'static str, Vec<(&'static str, String)>);

fn precheck(request: &Request) -> Option<Refusal> {
    if request.max_forwards == Some(0) {
        return Some((483, "Too Many Hops", Vec::new()));
    }
    match uri_scheme(&request.uri).as_deref() {
        Some("sip") | Some("sips") | Some("tel") => {}
        _ => return Some((416, "Unsupported URI Scheme", Vec::new())),
    }
    if request.method != Method::Cancel {
        let unsupported: Vec<&str> = request
            .headers
            .tokens("Require")
            .filter(|t| !SUPPORTED.iter().any(|s| s.eq_ignore_ascii_case(t)))
            .collect();
        if !unsupported.is_empty() {
            return Some((
                420,
                "Bad Extension",
                vec![("Unsupported", unsupported.join(", "))],
            ));
        }
    }
    if request.method == Method::Invite {
        if !request.body.is_empty() {
            let content_type = request.headers.get("Content-Type").unwrap_or("");
            let media = content_type.split(';').next().unwrap_or("").trim();
            if !media.eq_ignore_ascii_case("application/sdp") {
                return Some((
                    415,
                    "Unsupported Media Type",
                    vec![("Accept", "application/sdp".into())],
                ));
            }
        }
        let accepts: Vec<&str> = request.headers.tokens("Accept").collect();
        let sdp_ok = accepts.is_empty()
            || accepts.iter().any(|a| {
                let media = a
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                media == "application/sdp" || media == "application/*" || media == "*/*"
            });
        if !sdp_ok {
            return Some((
                406,
                "Not Acceptable",
                vec![("Accept", "application/sdp".into())],
            ));
        }
    }
    None
}
