//! The call layer inside the SIP task: what happens to an incoming call (RTP port, SDP answer,
//! ringing, answer, its media task), re-INVITEs, and the end of a call with its records.
//!
//! Each answered call gets a task of its own (`call_task`) that owns its sockets, media and recorder;
//! this module keeps only the bookkeeping the SIP side needs and talks to the tasks over channels.

mod admission;
mod consult;
mod control;
mod dial;
mod media;
mod notices;
mod originate;
mod own_calls;
mod queue;
mod replaces;
mod supervise;
mod transfer;

pub use control::RecordingControl;
pub use own_calls::ExternalDialing;
pub use queue::{AcdRequest, QueueBridge};
pub use supervise::{SuperviseControl, SuperviseError, SuperviseOutcome};
pub use transfer::{
    TRANSFER_RING_TIMEOUT, TransferAction, TransferControl, TransferError, TransferTarget,
};

use super::acd::Acd;
use super::call_task::{self, CallCommand, CallNotice, CallSetup, IvrSetup};
use super::ports::PortPool;
use super::records::{RecordOp, RecordsTx};
use crate::ivr::FlowSet;
use crate::media::prompt::PromptCache;
use crate::media::session::{DigitSource, SessionConfig};
use crate::media::tts::TtsCache;
use crate::sip::dialog::LegId;
use crate::sip::endpoint::{EndReason, Endpoint, IncomingCall};
use crate::sip::sdp::{self, Negotiated};
use crate::store::{NewCall, NewLeg};
use bytes::Bytes;
use chrono::Utc;
use dial::OutboundLeg;
pub use media::local_ip_towards;
use media::session_config;
use own_calls::Destination;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tracing::Instrument;

#[derive(Debug, Clone)]
pub struct CallsConfig {
    /// Ringing before answer (`calls.answer_delay`).
    pub answer_delay: Duration,
    /// Dialed number → flow id (`[routes]`); None = everything to `main`.
    pub routes: Option<BTreeMap<String, String>>,
    pub sounds: PathBuf,
    /// Record every answered call (`calls.record`).
    pub record: bool,
    pub media_timeout: Duration,
    pub data_dir: PathBuf,
    pub public_ip: Option<IpAddr>,
    /// Address RTP sockets bind to (the SIP listen address, or all interfaces).
    pub rtp_bind: IpAddr,
    pub node_id: String,
    /// Where authenticated operators' external numbers go (`[dialplan] external`).
    pub external: Option<ExternalDialing>,
    /// Every configured trunk, by name (broadcasts name theirs).
    pub trunks: Vec<crate::config::TrunkConfig>,
    /// Local times (business hours in flows) are judged by this clock.
    pub clock: super::clock::Clock,
    /// `calls.max_calls` and `calls.max_calls_per_source` (0: none).
    pub max_calls: usize,
    pub max_calls_per_source: usize,
    /// `calls.max_records_backlog`.
    pub max_records_backlog: usize,
    /// `calls.max_call_rate` (0: none).
    pub max_call_rate: f64,
    /// Operators with `supervisor = true`.
    pub supervisors: BTreeSet<String>,
}

/// How SIP says a call ended, kept until its task has finished.
struct PendingEnd {
    at: chrono::DateTime<Utc>,
    disposition: String,
    hangup_by: Option<&'static str>,
    final_status: Option<i32>,
    /// The caller hung up: then the IVR's view (where it left) is the better disposition.
    caller_left: bool,
}

struct ActiveCall {
    call_id: String,
    /// The caller's number and name, shown to the operator we dial.
    caller: String,
    caller_name: Option<String>,
    sip_call_id: String,
    port: Option<u16>,
    sockets: Option<(std::net::UdpSocket, std::net::UdpSocket)>,
    negotiated: Option<Negotiated>,
    /// The flow that answers the call and the variables it starts with.
    flow: Option<(String, BTreeMap<String, String>)>,
    answered: bool,
    /// SIP said the call ended while its task was still running: the record waits for the
    /// task's own disposition (the IVR knows more, e.g. `voicemail.left`).
    pending_end: Option<PendingEnd>,
    answer_sdp: Option<Bytes>,
    /// Our SDP session on this leg: every new description bumps its version.
    sdp_origin: Option<sdp::Origin>,
    task: Option<mpsc::UnboundedSender<CallCommand>>,
    /// The recording row of this call, while one is being written.
    recording_id: Option<String>,
    /// Set when the call task ended the call (the flow hung up, no media): the disposition.
    ended_by_media: Option<String>,
    /// SIP says the call is over; waiting for the media task to finish.
    ended: bool,
    /// Where the leg's SIP messages come from (the caller's source, the trunk's proxy).
    peer_ip: Option<std::net::IpAddr>,
    /// The queue the caller last joined, with their request (its `waited` set at the answer):
    /// where a transfer that nobody answers takes them back.
    last_queue: Option<(String, crate::queue::JoinRequest)>,
    /// An operator's own call (to a colleague, out through the trunk): who placed it, to whom.
    /// What an attended transfer from the phone (REFER with Replaces) may hand to a caller.
    own_call: Option<own_calls::OwnCall>,
}

impl ActiveCall {
    /// A call that has just begun: no media, no task, not answered.
    fn new(
        call_id: String,
        caller: String,
        caller_name: Option<String>,
        sip_call_id: String,
        peer_ip: std::net::IpAddr,
    ) -> ActiveCall {
        ActiveCall {
            call_id,
            caller,
            caller_name,
            sip_call_id,
            port: None,
            sockets: None,
            negotiated: None,
            flow: None,
            answered: false,
            pending_end: None,
            answer_sdp: None,
            sdp_origin: None,
            task: None,
            recording_id: None,
            ended_by_media: None,
            ended: false,
            peer_ip: Some(peer_ip),
            last_queue: None,
            own_call: None,
        }
    }
}

/// What the call layer shares with every call task.
pub struct CallsShared {
    pub prompts: Arc<PromptCache>,
    pub tts: Option<Arc<TtsCache>>,
    pub http: Option<reqwest::Client>,
    /// The flows now in force; a reload swaps the snapshot, running calls keep theirs.
    pub flows: tokio::sync::watch::Receiver<Arc<FlowSet>>,
    /// Where the outcomes of broadcast calls go (the broadcast dispatcher).
    pub broadcast_reports: Option<mpsc::UnboundedSender<super::broadcasts::AttemptReport>>,
}

pub struct Calls {
    config: CallsConfig,
    ports: PortPool,
    shared: CallsShared,
    records: RecordsTx,
    notices: mpsc::UnboundedSender<CallNotice>,
    active: HashMap<LegId, ActiveCall>,
    pending_answers: BTreeSet<(Instant, LegId)>,
    /// Our address towards each peer address seen (a route lookup per call is a syscall pair).
    local_ips: HashMap<IpAddr, IpAddr>,
    outbound: HashMap<LegId, OutboundLeg>,
    /// Operators' legs ringing until these instants.
    ring_deadlines: BTreeSet<(Instant, LegId)>,
    /// Queues and the operator registry.
    acd: Acd,
    /// Calls voice broadcasts placed, by their leg (also in `active`).
    originated: HashMap<LegId, originate::Originated>,
    /// Overload signals read by admission (`runtime::overload`).
    overloaded: super::overload::Overloaded,
    call_rate: Option<super::overload::CallRate>,
    /// SIP messages waiting for the SIP task, as it last saw.
    sip_backlog: usize,
    /// Transfers under way, by the caller's leg.
    transfers: HashMap<LegId, transfer::Transfer>,
    /// Supervisors on (or rung for) calls, by the caller's leg.
    supervisions: HashMap<LegId, supervise::Supervising>,
    /// Attended transfers from the phone waiting for an own call's task to let its consulted
    /// leg go, by the own call's leg.
    handovers: HashMap<LegId, replaces::Handover>,
}

impl Calls {
    pub fn new(
        config: CallsConfig,
        ports: PortPool,
        shared: CallsShared,
        records: RecordsTx,
        notices: mpsc::UnboundedSender<CallNotice>,
        acd: Acd,
    ) -> Self {
        Calls {
            ports,
            shared,
            records,
            notices,
            active: HashMap::new(),
            pending_answers: BTreeSet::new(),
            local_ips: HashMap::new(),
            outbound: HashMap::new(),
            ring_deadlines: BTreeSet::new(),
            call_rate: (config.max_call_rate > 0.0)
                .then(|| super::overload::CallRate::new(config.max_call_rate)),
            config,
            acd,
            originated: HashMap::new(),
            overloaded: Default::default(),
            sip_backlog: 0,
            transfers: HashMap::new(),
            supervisions: HashMap::new(),
            handovers: HashMap::new(),
        }
    }

    /// The lag probe's verdict, read by admission.
    pub fn set_overload_signal(&mut self, overloaded: super::overload::Overloaded) {
        self.overloaded = overloaded;
    }

    /// How many SIP messages wait behind the one being handled.
    pub fn set_sip_backlog(&mut self, waiting: usize) {
        self.sip_backlog = waiting;
    }

    pub fn len(&self) -> usize {
        self.active.len()
    }

    pub fn is_empty(&self) -> bool {
        self.active.is_empty()
    }

    pub fn free_ports(&self) -> usize {
        self.ports.available()
    }

    pub fn next_wake(&self) -> Option<Instant> {
        let answer = self.pending_answers.first().map(|(at, _)| *at);
        let ring = self.ring_deadlines.first().map(|(at, _)| *at);
        [answer, ring, self.acd.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    pub fn incoming(&mut self, endpoint: &mut Endpoint, now: Instant, call: IncomingCall) {
        let utc = Utc::now();
        let call_id = new_call_id(utc);
        let span = tracing::info_span!("call", call_id = %call_id, sip_call_id = %call.sip_call_id);
        let _entered = span.enter();
        if let Some(refusal) = self.admission(now, &call) {
            metrics::counter!("openline_calls_refused_total", "reason" => refusal.reason)
                .increment(1);
            tracing::warn!(reason = refusal.reason, peer = %call.peer.addr, "incoming call refused");
            let retry_after = refusal.retry_after.map(|s| s.to_string());
            let extra: Vec<(&str, &str)> = retry_after
                .iter()
                .map(|s| ("Retry-After", s.as_str()))
                .collect();
            endpoint.reject_with(now, call.leg, refusal.status, refusal.text, &extra);
            return;
        }
        metrics::counter!("openline_calls_started_total").increment(1);
        tracing::info!(from = %call.from.uri, to = %call.request_uri, peer = %call.peer.addr, "incoming call");
        let called = crate::sip::message::grammar::uri_user(&call.request_uri)
            .unwrap_or("")
            .to_string();
        let destination = self.destination(call.operator.as_deref(), &called);
        // The call's row says what it is to the business: an operator's call out is `outbound`
        // to the far number (it lands on that contact's timeline), one to a colleague `internal`.
        let (direction, callee) = match &destination {
            Destination::Colleague | Destination::Supervise { .. } => ("internal", called.clone()),
            Destination::External(number) => ("outbound", number.clone()),
            Destination::Routes => (
                "inbound",
                crate::sip::message::grammar::uri_user(&call.request_uri)
                    .unwrap_or(&call.request_uri)
                    .to_string(),
            ),
        };
        let _ = self.records.send(RecordOp::CallStarted {
            leg: call.leg,
            call: NewCall {
                id: call_id.clone(),
                node_id: self.config.node_id.clone(),
                direction: direction.into(),
                caller: call.from.user().unwrap_or(&call.from.uri).to_string(),
                caller_name: call.from.display_name.clone(),
                callee,
                started_at: utc,
            },
            sip_leg: NewLeg {
                call_id: call_id.clone(),
                sip_call_id: call.sip_call_id.clone(),
                direction: "inbound".into(),
                local_tag: None,
                remote_tag: call.from.tag().map(str::to_string),
                remote_uri: call.from.uri.clone(),
                remote_addr: Some(call.peer.addr.to_string()),
                transport: call.peer.transport.as_str().into(),
                started_at: utc,
            },
        });
        self.active.insert(
            call.leg,
            ActiveCall::new(
                call_id,
                call.from.user().unwrap_or("anonymous").to_string(),
                call.from.display_name.clone(),
                call.sip_call_id.clone(),
                call.peer.addr.ip(),
            ),
        );
        if let (Some(operator), Some(to)) = (&call.operator, destination.own_call_target(&called))
            && let Some(active) = self.active.get_mut(&call.leg)
        {
            active.own_call = Some(own_calls::OwnCall {
                operator: operator.clone(),
                to,
            });
        }
        match destination {
            Destination::Colleague => {
                self.direct_call(endpoint, now, &call, &called);
                return;
            }
            Destination::External(number) => {
                let operator = call.operator.clone().unwrap_or_default();
                self.trunk_call(endpoint, now, &call, &operator, &number);
                return;
            }
            Destination::Supervise { mode, ext } => {
                self.supervise_by_code(endpoint, now, &call, mode, &ext);
                return;
            }
            Destination::Routes => {}
        }
        let flow_id = match &self.config.routes {
            Some(routes) => routes
                .get(&called)
                .or_else(|| routes.get("default"))
                .cloned(),
            None => Some("main".to_string()),
        };
        let Some(flow_id) = flow_id else {
            tracing::info!(%called, "no route for the dialed number");
            endpoint.reject(now, call.leg, 404, "Not Found");
            return;
        };
        if self.shared.flows.borrow().get(&flow_id).is_none() {
            tracing::error!(flow = %flow_id, "the route names a flow that is not loaded");
            endpoint.reject(now, call.leg, 503, "Service Unavailable");
            return;
        }
        let mut variables = BTreeMap::new();
        variables.insert(
            "caller".to_string(),
            call.from.user().unwrap_or(&call.from.uri).to_string(),
        );
        variables.insert("called".to_string(), called);
        if let Some(active) = self.active.get_mut(&call.leg) {
            variables.insert("call_id".to_string(), active.call_id.clone());
            active.flow = Some((flow_id, variables));
        }
        if !self.prepare_media(endpoint, now, &call) {
            return;
        }
        endpoint.ring(now, call.leg);
        self.pending_answers
            .insert((now + self.config.answer_delay, call.leg));
        self.answer_due(endpoint, now);
    }

    /// Answers the calls whose ringing time is over and starts their media tasks; gives up on
    /// operators who did not answer in time; runs the queues' timers.
    pub fn answer_due(&mut self, endpoint: &mut Endpoint, now: Instant) {
        if self.acd.poll_timeout().is_some_and(|t| t <= now) {
            self.acd.handle_timeout(now);
            self.run_acd(endpoint, now);
        }
        while let Some(&(at, out)) = self.ring_deadlines.first() {
            if at > now {
                break;
            }
            self.ring_deadlines.remove(&(at, out));
            if self.is_originated(out) {
                self.originated_ring_timeout(endpoint, now, out);
                continue;
            }
            if let Some(o) = self
                .outbound
                .get_mut(&out)
                .filter(|o| !o.answered && o.supervising)
            {
                // A supervisor who does not answer: no news for the caller's flow.
                o.reported = true;
                endpoint.hangup(now, out);
                continue;
            }
            if let Some(o) = self.outbound.get_mut(&out).filter(|o| !o.answered) {
                o.reported = true;
                let caller = o.caller_leg;
                endpoint.hangup(now, out); // CANCEL once it rings
                self.dial_result(endpoint, now, caller, "no_answer");
            }
        }
        while let Some(&(at, leg)) = self.pending_answers.first() {
            if at > now {
                break;
            }
            self.pending_answers.remove(&(at, leg));
            self.answer_leg(endpoint, now, leg);
        }
    }

    /// Sends the 200 for the caller's INVITE and starts the call's task (with its flow, if any).
    fn answer_leg(&mut self, endpoint: &mut Endpoint, now: Instant, leg: LegId) {
        let Some(active) = self.active.get_mut(&leg) else {
            return; // cancelled while ringing
        };
        let (Some(sdp), Some((rtp, rtcp)), Some(port)) =
            (active.answer_sdp.take(), active.sockets.take(), active.port)
        else {
            return;
        };
        active.answered = true;
        endpoint.answer(now, leg, sdp);
        let _ = self.records.send(RecordOp::CallAnswered {
            leg,
            at: Utc::now(),
        });
        let session = session_config(active.negotiated.as_ref(), self.config.media_timeout);
        self.start_task(now, leg, (rtp, rtcp, port), session, None, true);
    }

    /// Starts the task of an answered call on its media sockets: its flow (if any), or the
    /// broadcast it belongs to; recorded when `calls.record` says so.
    fn start_task(
        &mut self,
        now: Instant,
        leg: LegId,
        (rtp, rtcp, port): (std::net::UdpSocket, std::net::UdpSocket, u16),
        session: SessionConfig,
        broadcast: Option<call_task::BroadcastSetup>,
        awaiting_ack: bool,
    ) {
        let record_to = if self.config.record {
            self.start_recording_row(leg)
        } else {
            None
        };
        let Some(active) = self.active.get_mut(&leg) else {
            return;
        };
        let (tx, rx) = mpsc::unbounded_channel();
        active.task = Some(tx);
        let ivr = active.flow.take().map(|(flow, variables)| IvrSetup {
            flows: self.shared.flows.borrow().clone(),
            flow,
            variables,
        });
        let setup = CallSetup {
            leg,
            call_id: active.call_id.clone(),
            port,
            rtp,
            rtcp,
            session,
            t0: now,
            ivr,
            record_to,
            data_dir: self.config.data_dir.clone(),
            sounds: self.config.sounds.clone(),
            prompts: self.shared.prompts.clone(),
            tts: self.shared.tts.clone(),
            http: self.shared.http.clone(),
            broadcast,
            clock: self.config.clock,
            awaiting_ack,
            signalling_ip: active.peer_ip,
        };
        let span = tracing::info_span!("call", call_id = %active.call_id);
        tokio::spawn(call_task::run(setup, rx, self.notices.clone()).instrument(span));
    }

    /// The call's recording row and the file its task writes (`None` if one is already being
    /// written, or the call is gone).
    fn start_recording_row(&mut self, leg: LegId) -> Option<PathBuf> {
        let active = self
            .active
            .get_mut(&leg)
            .filter(|a| a.recording_id.is_none())?;
        let utc = Utc::now();
        let relative = format!(
            "recordings/{}/{}.wav",
            utc.format("%Y/%m/%d"),
            active.call_id
        );
        let id = new_call_id(utc);
        let _ = self.records.send(RecordOp::RecordingStarted {
            leg,
            id: id.clone(),
            path: relative.clone(),
            at: utc,
        });
        active.recording_id = Some(id);
        Some(self.config.data_dir.join(relative))
    }

    /// SIP says the leg is over: the call row gets its disposition, the media task stops.
    pub fn leg_ended(
        &mut self,
        endpoint: &mut Endpoint,
        now: Instant,
        leg: LegId,
        reason: EndReason,
    ) {
        if self.outbound.contains_key(&leg) {
            self.outbound_ended(endpoint, now, leg, reason);
            return;
        }
        self.leave_queue(endpoint, now, leg);
        self.forget_transfer(leg);
        self.inbound_supervisor_ended(endpoint, now, leg);
        if let Some(s) = self.supervisions.get(&leg).filter(|s| s.inbound) {
            endpoint.hangup(now, s.leg); // the caller left: so does the supervisor who called in
        }
        // The caller is gone: so is any operator leg rung or bridged for it.
        let operators: Vec<LegId> = self
            .outbound
            .iter()
            .filter(|(_, o)| o.caller_leg == leg)
            .map(|(out, _)| *out)
            .collect();
        for out in operators {
            if let Some(o) = self.outbound.get_mut(&out) {
                o.reported = true;
            }
            endpoint.hangup(now, out);
        }
        self.originated_ended(leg, reason);
        let originated = self.originated_disposition(leg, reason);
        let Some(active) = self.active.get_mut(&leg) else {
            return;
        };
        let (mut disposition, hangup_by, final_status) =
            originated.unwrap_or_else(|| disposition(reason, active.answered));
        if let Some(by_media) = &active.ended_by_media {
            disposition = by_media.clone();
        }
        active.ended = true;
        match active.task.take() {
            Some(task) => {
                // The task may know better how the call ended (the IVR); it reports on Finished.
                active.pending_end = Some(PendingEnd {
                    at: Utc::now(),
                    disposition,
                    hangup_by,
                    final_status,
                    caller_left: matches!(reason, EndReason::RemoteBye | EndReason::Cancelled),
                });
                let _ = task.send(CallCommand::Stop);
            }
            None => {
                self.originated_closed(leg);
                self.record_end(leg, Utc::now(), disposition, hangup_by, final_status);
                self.release(leg);
            }
        }
    }

    fn record_end(
        &self,
        leg: LegId,
        at: chrono::DateTime<Utc>,
        disposition: String,
        hangup_by: Option<&'static str>,
        final_status: Option<i32>,
    ) {
        if let Some(active) = self.active.get(&leg) {
            tracing::info!(
                call_id = %active.call_id,
                sip_call_id = %active.sip_call_id,
                disposition = %disposition,
                "call ended"
            );
        }
        metrics::counter!("openline_calls_ended_total", "disposition" => disposition.clone())
            .increment(1);
        let _ = self.records.send(RecordOp::CallEnded {
            leg,
            at,
            disposition,
            hangup_by,
            final_status,
        });
    }

    fn release(&mut self, leg: LegId) {
        if let Some(active) = self.active.remove(&leg)
            && let Some(port) = active.port
        {
            self.ports.release(port);
        }
        let _ = self.records.send(RecordOp::Forget { leg });
    }

    fn event(&self, leg: LegId, kind: &'static str, detail: serde_json::Value) {
        let _ = self.records.send(RecordOp::CallEvent {
            leg,
            at: Utc::now(),
            kind,
            detail,
        });
    }
}

/// Stable, dotted disposition codes stored on the call (read by people and reports).
fn disposition(reason: EndReason, answered: bool) -> (String, Option<&'static str>, Option<i32>) {
    match reason {
        EndReason::RemoteBye if answered => {
            ("answered.caller_hangup".into(), Some("caller"), Some(200))
        }
        EndReason::RemoteBye => ("cancelled.by_caller".into(), Some("caller"), Some(487)),
        EndReason::LocalBye => ("answered.system_hangup".into(), Some("system"), Some(200)),
        EndReason::Cancelled => ("cancelled.by_caller".into(), Some("caller"), Some(487)),
        EndReason::AckTimeout => ("failed.ack_timeout".into(), Some("system"), Some(200)),
        EndReason::Timeout => ("failed.timeout".into(), Some("system"), Some(408)),
        EndReason::Rejected(status) => (
            format!("rejected.{status}"),
            Some("system"),
            Some(i32::from(status)),
        ),
    }
}

/// A UUIDv7 from the wall clock: ids sort by start time, across nodes.
fn new_call_id(utc: chrono::DateTime<Utc>) -> String {
    let ts = uuid::Timestamp::from_unix(
        uuid::NoContext,
        utc.timestamp().max(0) as u64,
        utc.timestamp_subsec_nanos(),
    );
    uuid::Uuid::new_v7(ts).to_string()
}
