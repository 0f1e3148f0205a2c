//! The SIP endpoint: one sans-IO object that owns every transaction, dialog and binding of a node
//! and implements the UAS core (RFC 3261 §8.2, §12, §13.3, §17 dispatch, §18.2 response routing).
//!
//! The shell feeds it packets and the time (`handle_packet`, `handle_timeout`) and carries out what
//! `poll_output` returns: bytes to send to a [`Peer`] and [`Event`]s for the call layer. The call layer
//! answers incoming calls through `ring`, `answer`, `reject` and `hangup`.

mod leg_commands;
mod refer;
mod uac;
mod uas;

pub use uac::{DigestLogin, OutboundTarget, OutboundUpdate, REASON_COMPLETED_ELSEWHERE};

use super::dialog::{AckTimer, Leg, LegState};
use super::message::build::{self, ResponseSpec};
use super::message::{self, Headers, Message, NameAddr, ParseError, Request, Response};
use super::registrar::{BindingChange, Registrar, RegistrarConfig};
use super::transaction::{
    Action, ClientNonInvite, ServerInvite, ServerNonInvite, TimerConfig, TransactionKey,
};
use super::transport::Peer;
use crate::sip::transaction::Machine;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::{Duration, Instant};

pub use super::dialog::LegId;

#[derive(Debug, Clone)]
pub struct EndpointConfig {
    pub timers: TimerConfig,
    pub registrar: RegistrarConfig,
    /// `host:port` written in our Via and Contact headers (the public IP and the SIP port).
    pub advertised: String,
    /// Secret for stateless digest nonces; nodes that share it accept each other's nonces.
    pub nonce_secret: [u8; 32],
    /// The dialplan's external prefix: an INVITE to it plus a number must be authenticated
    /// (toll fraud), whoever it claims to be.
    pub external_prefix: Option<String>,
}

/// The number after `prefix` when `dialed` is an external number by the dialplan: the prefix,
/// then 3–20 digits (a leading `+` allowed).
pub fn external_number<'a>(prefix: &str, dialed: &'a str) -> Option<&'a str> {
    let rest = dialed.strip_prefix(prefix)?;
    let digits = rest.strip_prefix('+').unwrap_or(rest);
    ((3..=20).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())).then_some(rest)
}

/// An INVITE that starts a new call, handed to the call layer.
#[derive(Debug, Clone)]
pub struct IncomingCall {
    pub leg: LegId,
    pub sip_call_id: String,
    pub from: NameAddr,
    pub to: NameAddr,
    pub request_uri: String,
    /// The SDP offer (empty for a late-offer INVITE).
    pub offer: Bytes,
    pub peer: Peer,
    pub user_agent: Option<String>,
    /// The operator who placed the call, proven by digest (`None`: an outside caller).
    pub operator: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The INVITE was cancelled before a 2xx: by the caller (inbound) or by us (outbound).
    Cancelled,
    /// The peer sent BYE.
    RemoteBye,
    /// We sent BYE (hangup or drain).
    LocalBye,
    /// Our 2xx was never acknowledged (§13.3.1.4).
    AckTimeout,
    /// The INVITE got this final error status (from us inbound, from the callee outbound).
    Rejected(u16),
    /// Our INVITE got no response at all (Timer B).
    Timeout,
}

#[derive(Debug, Clone)]
pub enum Event {
    IncomingCall(Box<IncomingCall>),
    /// The ACK for our 2xx arrived.
    LegConfirmed {
        leg: LegId,
    },
    /// A re-INVITE with a new offer: answer with `answer_reinvite` or `reject_reinvite`.
    Reoffer {
        leg: LegId,
        offer: Bytes,
    },
    /// A key press sent in an INFO (SIP INFO DTMF), already answered 200.
    InfoDigit {
        leg: LegId,
        digit: char,
    },
    /// A REFER (a transfer) on a confirmed leg: answer with `accept_refer` or `reject_refer`.
    Refer {
        leg: LegId,
        refer_to: Box<crate::sip::refer::ReferTo>,
        referred_by: Option<String>,
    },
    /// Progress and the answer on a leg we dialled.
    Outbound {
        leg: LegId,
        update: OutboundUpdate,
    },
    LegEnded {
        leg: LegId,
        reason: EndReason,
    },
    Binding(BindingChange),
}

#[derive(Debug, Clone)]
pub enum Output {
    Send { peer: Peer, bytes: Bytes },
    Event(Event),
}

/// Counters the shell exports as metrics.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub requests: u64,
    pub responses: u64,
    pub rejected: u64,
    pub dropped: u64,
    /// New requests from sources blocked for brute force, dropped unanswered.
    pub blocked: u64,
}

enum ServerMachine {
    Invite(ServerInvite),
    NonInvite(ServerNonInvite),
}

struct ServerTxn {
    key: TransactionKey,
    machine: ServerMachine,
    peer: Peer,
    scheduled: Option<Instant>,
}

struct ClientTxn {
    key: TransactionKey,
    machine: ClientNonInvite,
    peer: Peer,
    leg: Option<LegId>,
    scheduled: Option<Instant>,
}

/// What a timer-heap entry points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    Server(u64),
    Client(u64),
    Uac(u64),
    Leg(LegId),
}

const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(5);

pub struct Endpoint {
    config: EndpointConfig,
    registrar: Registrar,
    accepting: bool,
    next_id: u64,
    server_index: HashMap<TransactionKey, u64>,
    servers: HashMap<u64, ServerTxn>,
    client_index: HashMap<TransactionKey, u64>,
    clients: HashMap<u64, ClientTxn>,
    legs: HashMap<LegId, Leg>,
    /// (Call-ID, our tag) → leg, for requests inside a dialog.
    dialogs: HashMap<(String, String), LegId>,
    /// INVITE server transaction → leg, for CANCEL.
    invites: HashMap<TransactionKey, LegId>,
    /// Client INVITE transactions of the legs we dial.
    uac_index: HashMap<TransactionKey, u64>,
    uac: HashMap<u64, uac::UacInvite>,
    timers: BinaryHeap<Reverse<(Instant, Due)>>,
    next_housekeeping: Option<Instant>,
    outputs: VecDeque<Output>,
    pub stats: Stats,
}

impl Endpoint {
    pub fn new(config: EndpointConfig) -> Self {
        Endpoint {
            registrar: Registrar::new(config.registrar.clone(), config.nonce_secret),
            config,
            accepting: true,
            next_id: 1,
            server_index: HashMap::new(),
            servers: HashMap::new(),
            client_index: HashMap::new(),
            clients: HashMap::new(),
            legs: HashMap::new(),
            dialogs: HashMap::new(),
            invites: HashMap::new(),
            uac_index: HashMap::new(),
            uac: HashMap::new(),
            timers: BinaryHeap::new(),
            next_housekeeping: None,
            outputs: VecDeque::new(),
            stats: Stats::default(),
        }
    }

    pub fn registrar(&self) -> &Registrar {
        &self.registrar
    }

    pub fn registrar_mut(&mut self) -> &mut Registrar {
        &mut self.registrar
    }

    /// While draining for shutdown, new INVITEs are refused with 503.
    pub fn set_accepting(&mut self, accepting: bool) {
        self.accepting = accepting;
    }

    /// Calls (legs) that are still up or still ending.
    pub fn leg_count(&self) -> usize {
        self.legs.len()
    }

    /// The SIP Call-ID of a leg's dialog.
    pub fn sip_call_id(&self, leg: LegId) -> Option<&str> {
        self.legs.get(&leg).map(|l| l.sip_call_id.as_str())
    }

    /// The confirmed leg whose dialog has this Call-ID and these two tags, one ours and one the
    /// peer's, in either order: a `Replaces` (RFC 3891 §3) names the dialog from the sender's
    /// side, and the sender may have been the dialog's caller or its callee.
    pub fn leg_of_dialog(&self, call_id: &str, tag: &str, other_tag: &str) -> Option<LegId> {
        [(tag, other_tag), (other_tag, tag)]
            .into_iter()
            .find_map(|(ours, theirs)| {
                let leg = *self.dialogs.get(&(call_id.to_string(), ours.to_string()))?;
                let l = self.legs.get(&leg)?;
                (l.remote_tag.as_deref() == Some(theirs) && l.state == LegState::Confirmed)
                    .then_some(leg)
            })
    }

    pub fn leg_ids(&self) -> Vec<LegId> {
        self.legs.keys().copied().collect()
    }

    /// Transactions in flight (for metrics and for a clean drain).
    pub fn transaction_count(&self) -> usize {
        self.servers.len() + self.clients.len() + self.uac.len()
    }

    /// Timers armed, including stale ones not yet popped (they go when due): it must fall back
    /// when the load does.
    pub fn timer_count(&self) -> usize {
        self.timers.len()
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let heap = self.timers.peek().map(|Reverse((at, _))| *at);
        match (heap, self.next_housekeeping) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// One datagram, or one framed TCP message, from `peer`.
    pub fn handle_packet(&mut self, now: Instant, utc: DateTime<Utc>, peer: Peer, bytes: &[u8]) {
        if self.next_housekeeping.is_none() {
            self.next_housekeeping = Some(now + HOUSEKEEPING_EVERY);
        }
        match message::parse(bytes) {
            Ok(Message::Request(request)) => {
                self.stats.requests += 1;
                self.on_request(now, utc, peer, request);
            }
            Ok(Message::Response(response)) => {
                self.stats.responses += 1;
                self.on_response(now, response);
            }
            Err(ParseError::Reject(rejection)) => {
                self.stats.rejected += 1;
                let is_ack = rejection
                    .head
                    .get("CSeq")
                    .is_some_and(|c| c.trim_end().ends_with("ACK"));
                if is_ack {
                    return; // an ACK is never answered (§17.2.1)
                }
                let extra: Vec<(&str, &str)> = rejection
                    .extra
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.as_str()))
                    .collect();
                let tag = new_tag();
                let bytes = build::response(
                    &rejection.head,
                    &ResponseSpec {
                        status: rejection.status,
                        reason: &rejection.reason,
                        to_tag: Some(&tag),
                        source: Some(peer.addr),
                        extra: &extra,
                        body: None,
                    },
                );
                self.send(peer, bytes);
            }
            Err(ParseError::Drop(_)) => self.stats.dropped += 1,
        }
    }

    /// Answers a message the transport could not frame or would not take whole (413 too large,
    /// 400 unreadable Content-Length) from whatever of its head can be read.
    pub fn refuse(&mut self, peer: Peer, head: &[u8], status: u16) {
        self.stats.rejected += 1;
        let headers = match message::parse(head) {
            Ok(Message::Request(r)) => r.headers,
            Err(ParseError::Reject(r)) => r.head,
            _ => return,
        };
        let reason = match status {
            413 => "Message Too Large",
            _ => "Bad Content-Length",
        };
        let tag = new_tag();
        let bytes = build::response(
            &headers,
            &ResponseSpec {
                status,
                reason,
                to_tag: Some(&tag),
                source: Some(peer.addr),
                extra: &[],
                body: None,
            },
        );
        self.send(peer, bytes);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, due))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            match due {
                Due::Server(id) => self.fire_server(now, id, at),
                Due::Client(id) => self.fire_client(now, id, at),
                Due::Uac(id) => self.fire_uac(now, id, at),
                Due::Leg(leg) => self.fire_leg(now, leg, at),
            }
        }
        if self.next_housekeeping.is_some_and(|at| at <= now) {
            self.next_housekeeping = Some(now + HOUSEKEEPING_EVERY);
            for change in self.registrar.expire(now) {
                self.outputs
                    .push_back(Output::Event(Event::Binding(change)));
            }
        }
    }

    fn send(&mut self, peer: Peer, bytes: Bytes) {
        self.outputs.push_back(Output::Send { peer, bytes });
    }

    fn emit(&mut self, event: Event) {
        self.outputs.push_back(Output::Event(event));
    }

    fn fresh_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    // ---- server transactions -------------------------------------------------------------

    fn server_key(request: &Request) -> TransactionKey {
        let method = request.method.as_str();
        match request.top_via.branch() {
            Some(branch) if branch.starts_with("z9hG4bK") && branch.len() > 7 => {
                TransactionKey::server(branch, &request.top_via.sent_by(), method)
            }
            _ => TransactionKey::server_rfc2543(
                &request.uri,
                &request.call_id,
                request.from.tag().unwrap_or(""),
                request.cseq,
                &request.top_via.sent_by(),
                method,
            ),
        }
    }

    fn new_server(&mut self, now: Instant, key: TransactionKey, peer: Peer, invite: bool) -> u64 {
        let reliable = peer.transport.is_reliable();
        let machine = if invite {
            ServerMachine::Invite(ServerInvite::new(now, self.config.timers, reliable))
        } else {
            ServerMachine::NonInvite(ServerNonInvite::new(now, self.config.timers, reliable))
        };
        let id = self.fresh_id();
        self.server_index.insert(key.clone(), id);
        self.servers.insert(
            id,
            ServerTxn {
                key,
                machine,
                peer,
                scheduled: None,
            },
        );
        id
    }

    /// Sends a response through its server transaction (which keeps it for retransmissions).
    fn respond(&mut self, now: Instant, txn: u64, status: u16, bytes: Bytes) {
        if let Some(t) = self.servers.get_mut(&txn) {
            match &mut t.machine {
                ServerMachine::Invite(m) => m.send_response(now, status, bytes),
                ServerMachine::NonInvite(m) => m.send_response(now, status, bytes),
            }
        }
        self.drain_server(now, txn);
    }

    /// Builds and sends a response to `request` on transaction `txn`.
    #[allow(clippy::too_many_arguments)]
    fn reply(
        &mut self,
        now: Instant,
        txn: u64,
        request: &Request,
        peer: Peer,
        status: u16,
        reason: &str,
        to_tag: Option<&str>,
        extra: &[(&str, &str)],
    ) {
        let bytes = build::response(
            &request.headers,
            &ResponseSpec {
                status,
                reason,
                to_tag,
                source: Some(peer.addr),
                extra,
                body: None,
            },
        );
        self.respond(now, txn, status, bytes);
    }

    fn drain_server(&mut self, now: Instant, id: u64) {
        let Some(t) = self.servers.get_mut(&id) else {
            return;
        };
        let mut sends = Vec::new();
        let mut terminated = false;
        loop {
            let action = match &mut t.machine {
                ServerMachine::Invite(m) => m.poll_action(),
                ServerMachine::NonInvite(m) => m.poll_action(),
            };
            match action {
                Some(Action::Transmit(bytes)) => sends.push(bytes),
                Some(Action::Timeout) => {}
                Some(Action::Terminated) => terminated = true,
                None => break,
            }
        }
        let peer = t.peer;
        let next = match &t.machine {
            ServerMachine::Invite(m) => m.poll_timeout(),
            ServerMachine::NonInvite(m) => m.poll_timeout(),
        };
        if terminated {
            let key = t.key.clone();
            self.servers.remove(&id);
            self.server_index.remove(&key);
            self.invites.remove(&key);
        } else if next.is_some() && next != t.scheduled {
            t.scheduled = next;
            if let Some(at) = next {
                self.timers.push(Reverse((at, Due::Server(id))));
            }
        }
        for bytes in sends {
            self.send(peer, bytes);
        }
        let _ = now;
    }

    fn fire_server(&mut self, now: Instant, id: u64, at: Instant) {
        let Some(t) = self.servers.get_mut(&id) else {
            return;
        };
        if t.scheduled != Some(at) {
            return; // stale heap entry
        }
        t.scheduled = None;
        match &mut t.machine {
            ServerMachine::Invite(m) => m.handle_timeout(now),
            ServerMachine::NonInvite(m) => m.handle_timeout(now),
        }
        self.drain_server(now, id);
    }

    // ---- client transactions (BYE we send) -----------------------------------------------

    fn start_client(
        &mut self,
        now: Instant,
        key: TransactionKey,
        peer: Peer,
        leg: Option<LegId>,
        request: Bytes,
    ) {
        let machine = ClientNonInvite::new(
            now,
            self.config.timers,
            peer.transport.is_reliable(),
            request,
        );
        let id = self.fresh_id();
        self.client_index.insert(key.clone(), id);
        self.clients.insert(
            id,
            ClientTxn {
                key,
                machine,
                peer,
                leg,
                scheduled: None,
            },
        );
        self.drain_client(now, id);
    }

    fn drain_client(&mut self, now: Instant, id: u64) {
        let Some(t) = self.clients.get_mut(&id) else {
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
        let next = t.machine.poll_timeout();
        if terminated {
            let key = t.key.clone();
            self.clients.remove(&id);
            self.client_index.remove(&key);
        } else if next.is_some() && next != t.scheduled {
            t.scheduled = next;
            if let Some(at) = next {
                self.timers.push(Reverse((at, Due::Client(id))));
            }
        }
        for bytes in sends {
            self.send(peer, bytes);
        }
        if timed_out && let Some(leg) = leg {
            self.end_leg(leg, EndReason::LocalBye);
        }
        let _ = now;
    }

    fn fire_client(&mut self, now: Instant, id: u64, at: Instant) {
        let Some(t) = self.clients.get_mut(&id) else {
            return;
        };
        if t.scheduled != Some(at) {
            return;
        }
        t.scheduled = None;
        t.machine.handle_timeout(now);
        self.drain_client(now, id);
    }

    fn on_response(&mut self, now: Instant, response: Response) {
        let Some(branch) = response.top_via.branch() else {
            return;
        };
        let key = TransactionKey::client(branch, response.cseq_method.as_str());
        if let Some(&id) = self.uac_index.get(&key) {
            self.on_invite_response(now, id, &response);
            return;
        }
        let Some(&id) = self.client_index.get(&key) else {
            return; // stray response (RFC 3261 §18.1.2): dropped
        };
        let Some(t) = self.clients.get_mut(&id) else {
            return;
        };
        let pass_up = t.machine.on_response(now, response.status);
        let leg = t.leg;
        self.drain_client(now, id);
        if pass_up
            && response.status >= 200
            && let Some(leg) = leg
        {
            if matches!(response.status, 401 | 407)
                && response.cseq_method.as_str() == "BYE"
                && self.answer_bye_challenge(now, leg, &response)
            {
                return;
            }
            self.end_leg(leg, EndReason::LocalBye);
        }
    }

    /// A 401/407 to our BYE on a leg with an account (a trunk's): the BYE goes again with
    /// credentials (RFC 3261 §22.3, CSeq + 1). Once: a second challenge ends the leg anyway.
    fn answer_bye_challenge(&mut self, now: Instant, leg: LegId, response: &Response) -> bool {
        let Some((challenge_header, credentials_header)) = uac::auth_headers(response.status)
        else {
            return false;
        };
        let advertised = self.config.advertised.clone();
        let Some(l) = self.legs.get_mut(&leg) else {
            return false;
        };
        let Some(login) = l.login.clone().filter(|_| !l.bye_challenge_answered) else {
            return false;
        };
        let Some(challenge) = login.pick_challenge(response.headers.get_all(challenge_header))
        else {
            return false;
        };
        l.bye_challenge_answered = true;
        l.local_cseq += 1;
        let credentials = crate::sip::auth::authorize(
            &challenge,
            &login.username,
            &login.password,
            "BYE",
            &l.remote_target,
            1,
            &new_tag(),
        );
        let branch = format!("z9hG4bK{}", new_tag());
        let bytes = l.in_dialog_request_with(
            "BYE",
            &advertised,
            &branch,
            l.local_cseq,
            &[(credentials_header, credentials.as_str())],
        );
        let peer = l.peer;
        let key = TransactionKey::client(&branch, "BYE");
        self.start_client(now, key, peer, Some(leg), bytes);
        true
    }

    // ---- legs ----------------------------------------------------------------------------

    fn schedule_leg(&mut self, leg: LegId) {
        let Some(l) = self.legs.get_mut(&leg) else {
            return;
        };
        let next = l.poll_timeout();
        if next.is_some() && next != l.scheduled {
            l.scheduled = next;
            if let Some(at) = next {
                self.timers.push(Reverse((at, Due::Leg(leg))));
            }
        }
    }

    fn fire_leg(&mut self, now: Instant, leg: LegId, at: Instant) {
        let t2 = self.config.timers.t2;
        let Some(l) = self.legs.get_mut(&leg) else {
            return;
        };
        if l.scheduled != Some(at) {
            return;
        }
        l.scheduled = None;
        let peer = l.peer;
        let Some(pending) = l.pending_ack.as_mut() else {
            return;
        };
        match pending.on_timer(now, t2) {
            AckTimer::Idle => {}
            AckTimer::Retransmit(bytes) => self.send(peer, bytes),
            AckTimer::GiveUp => {
                // §13.3.1.4: no ACK for 64·T1 — the session is ended with a BYE.
                l.pending_ack = None;
                l.end_reported = true;
                l.state = LegState::Ending;
                self.send_bye(now, leg);
                self.emit(Event::LegEnded {
                    leg,
                    reason: EndReason::AckTimeout,
                });
                return;
            }
        }
        self.schedule_leg(leg);
    }

    /// Removes a leg and tells the call layer why it ended (once).
    fn end_leg(&mut self, leg: LegId, reason: EndReason) {
        let Some(l) = self.legs.remove(&leg) else {
            return;
        };
        self.dialogs
            .remove(&(l.sip_call_id.clone(), l.local_tag.clone()));
        self.invites.remove(&l.invite_key);
        if !l.end_reported {
            self.emit(Event::LegEnded { leg, reason });
        }
    }

    fn send_bye(&mut self, now: Instant, leg: LegId) {
        let advertised = self.config.advertised.clone();
        let Some(l) = self.legs.get_mut(&leg) else {
            return;
        };
        l.local_cseq += 1;
        let branch = format!("z9hG4bK{}", new_tag());
        let bytes = l.in_dialog_request("BYE", &advertised, &branch, l.local_cseq);
        let peer = l.peer;
        let key = TransactionKey::client(&branch, "BYE");
        self.start_client(now, key, peer, Some(leg), bytes);
    }
}

/// A random token for tags and branches (RFC 3261 §19.3: at least 32 bits of randomness).
pub fn new_tag() -> String {
    use rand::Rng;
    format!("{:016x}", rand::rng().random::<u64>())
}

/// The user part of a header's URI, for logs and records.
pub fn user_of(head: &Headers, name: &str) -> Option<String> {
    head.get(name)
        .and_then(|v| NameAddr::parse(v).ok())
        .and_then(|a| a.user().map(str::to_string))
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod uac_tests;
