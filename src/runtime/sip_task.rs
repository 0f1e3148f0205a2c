//! The SIP task: owns the [`Endpoint`], feeds it packets and time, sends what it returns, and runs
//! the call layer's decisions for incoming calls. One task, one owner: no locks around SIP state.
//!
//! Calls are answered and held for now (the media engine and IVR come next): each call gets an RTP
//! port and an SDP answer with a real address, a row when it starts, and its disposition when it ends.

use super::SipInput;
use super::ports::PortPool;
use super::records::{RecordOp, RecordsTx};
use crate::sip::dialog::LegId;
use crate::sip::endpoint::{EndReason, Endpoint, Event, IncomingCall, Output};
use crate::sip::registrar::BindingChange;
use crate::sip::sdp;
use crate::sip::transport::{ConnId, Peer, TransportKind};
use crate::store::{BindingRecord, NewCall, NewLeg};
use bytes::Bytes;
use chrono::Utc;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Requests to the SIP task from the rest of the server.
pub enum SipCommand {
    /// Shutdown step 1: new INVITEs get 503.
    StopAccepting,
    /// Shutdown step 2: hang up every call still up.
    HangupAll,
    /// How many calls and transactions are still in flight.
    Load(oneshot::Sender<(usize, usize)>),
}

struct ActiveCall {
    call_id: String,
    sip_call_id: String,
    rtp_port: Option<u16>,
    answered: bool,
    /// Our SDP, sent in the 200 when the ringing time is over.
    answer_sdp: Option<Bytes>,
}

pub struct SipTask {
    pub endpoint: Endpoint,
    pub udp: Arc<UdpSocket>,
    pub tcp: HashMap<ConnId, mpsc::Sender<Bytes>>,
    pub ports: PortPool,
    pub public_ip: Option<IpAddr>,
    pub node_id: String,
    pub records: RecordsTx,
    /// Ringing before answer (`calls.answer_delay`).
    pub answer_delay: std::time::Duration,
    calls: HashMap<LegId, ActiveCall>,
    /// Calls ringing until their answer time, earliest first.
    pending_answers: std::collections::BTreeSet<(std::time::Instant, LegId)>,
}

impl SipTask {
    pub fn new(
        endpoint: Endpoint,
        udp: Arc<UdpSocket>,
        ports: PortPool,
        public_ip: Option<IpAddr>,
        node_id: String,
        records: RecordsTx,
        answer_delay: std::time::Duration,
    ) -> Self {
        SipTask {
            endpoint,
            udp,
            tcp: HashMap::new(),
            ports,
            public_ip,
            node_id,
            records,
            answer_delay,
            calls: HashMap::new(),
            pending_answers: Default::default(),
        }
    }

    pub async fn run(
        mut self,
        mut inputs: mpsc::Receiver<SipInput>,
        mut commands: mpsc::Receiver<SipCommand>,
    ) {
        loop {
            let next_answer = self.pending_answers.first().map(|(at, _)| *at);
            let wake = match (self.endpoint.poll_timeout(), next_answer) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            tokio::select! {
                input = inputs.recv() => match input {
                    Some(input) => self.on_input(input),
                    None => break,
                },
                command = commands.recv() => match command {
                    Some(command) => self.on_command(command),
                    None => break,
                },
                _ = sleep_until(wake) => {
                    let now = Instant::now().into_std();
                    self.endpoint.handle_timeout(now);
                    self.answer_due(now);
                }
            }
            self.flush().await;
        }
    }

    fn on_input(&mut self, input: SipInput) {
        match input {
            SipInput::Packet { peer, bytes } => {
                metrics::counter!("openline_sip_messages_received_total", "transport" => peer.transport.as_str())
                    .increment(1);
                self.endpoint
                    .handle_packet(Instant::now().into_std(), Utc::now(), peer, &bytes);
            }
            SipInput::Refuse { peer, head, status } => self.endpoint.refuse(peer, &head, status),
            SipInput::TcpOpened { conn, tx } => {
                self.tcp.insert(conn, tx);
            }
            SipInput::TcpClosed { conn } => {
                self.tcp.remove(&conn);
            }
        }
    }

    fn on_command(&mut self, command: SipCommand) {
        let now = Instant::now().into_std();
        match command {
            SipCommand::StopAccepting => self.endpoint.set_accepting(false),
            SipCommand::HangupAll => {
                for leg in self.endpoint.leg_ids() {
                    self.endpoint.hangup(now, leg);
                }
            }
            SipCommand::Load(reply) => {
                let _ = reply.send((self.endpoint.leg_count(), self.endpoint.transaction_count()));
            }
        }
    }

    /// Carries out everything the endpoint asked for, including the call layer's answers, which
    /// may produce more output.
    async fn flush(&mut self) {
        while let Some(output) = self.endpoint.poll_output() {
            match output {
                Output::Send { peer, bytes } => self.send(peer, bytes).await,
                Output::Event(event) => self.on_event(event),
            }
        }
        metrics::gauge!("openline_calls_active").set(self.calls.len() as f64);
        metrics::gauge!("openline_sip_transactions").set(self.endpoint.transaction_count() as f64);
        metrics::gauge!("openline_rtp_ports_free").set(self.ports.available() as f64);
    }

    async fn send(&mut self, peer: Peer, bytes: Bytes) {
        metrics::counter!("openline_sip_messages_sent_total", "transport" => peer.transport.as_str())
            .increment(1);
        match peer.transport {
            TransportKind::Udp => {
                if let Err(e) = self.udp.try_send_to(&bytes, peer.addr) {
                    if e.kind() == std::io::ErrorKind::WouldBlock {
                        let _ = self.udp.send_to(&bytes, peer.addr).await;
                    } else {
                        tracing::debug!(error = %e, to = %peer.addr, "udp send failed");
                    }
                }
            }
            TransportKind::Tcp => {
                let Some(tx) = peer.conn.and_then(|c| self.tcp.get(&c)) else {
                    // The connection is gone; we never open one towards an address from a message.
                    tracing::debug!(to = %peer.addr, "tcp connection closed before send");
                    return;
                };
                if tx.try_send(bytes).is_err() {
                    tracing::warn!(to = %peer.addr, "tcp peer not reading; message dropped");
                }
            }
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::IncomingCall(call) => self.incoming_call(*call),
            Event::LegConfirmed { .. } => {}
            Event::LegEnded { leg, reason } => self.call_ended(leg, reason),
            Event::Binding(change) => self.binding_changed(change),
        }
    }

    fn incoming_call(&mut self, call: IncomingCall) {
        let now = Instant::now().into_std();
        let utc = Utc::now();
        let call_id = new_call_id(utc);
        let span = tracing::info_span!("call", call_id = %call_id, sip_call_id = %call.sip_call_id);
        let _entered = span.enter();
        metrics::counter!("openline_calls_started_total").increment(1);
        tracing::info!(from = %call.from.uri, to = %call.request_uri, peer = %call.peer.addr, "incoming call");
        let _ = self.records.send(RecordOp::CallStarted {
            leg: call.leg,
            call: NewCall {
                id: call_id.clone(),
                node_id: self.node_id.clone(),
                direction: "inbound".into(),
                caller: call.from.user().unwrap_or(&call.from.uri).to_string(),
                caller_name: call.from.display_name.clone(),
                callee: crate::sip::message::grammar::uri_user(&call.request_uri)
                    .unwrap_or(&call.request_uri)
                    .to_string(),
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
        self.calls.insert(
            call.leg,
            ActiveCall {
                call_id,
                sip_call_id: call.sip_call_id.clone(),
                rtp_port: None,
                answered: false,
                answer_sdp: None,
            },
        );
        let negotiated = if call.offer.is_empty() {
            None
        } else {
            match sdp::negotiate(&call.offer) {
                Ok(n) => Some(n),
                Err(e) => {
                    tracing::info!(error = %e, "no usable media offer");
                    self.endpoint
                        .reject(now, call.leg, 488, "Not Acceptable Here");
                    return;
                }
            }
        };
        let Some(port) = self.ports.allocate() else {
            tracing::warn!("RTP port range exhausted");
            self.endpoint
                .reject(now, call.leg, 503, "Service Unavailable");
            return;
        };
        if let Some(active) = self.calls.get_mut(&call.leg) {
            active.rtp_port = Some(port);
        }
        let local_ip = self
            .public_ip
            .unwrap_or_else(|| local_ip_towards(call.peer.addr.ip()));
        let session_id = utc.timestamp_micros().unsigned_abs();
        let answer = sdp::write(local_ip, port, session_id, negotiated.as_ref());
        self.endpoint.ring(now, call.leg);
        if let Some(active) = self.calls.get_mut(&call.leg) {
            active.answer_sdp = Some(Bytes::from(answer));
        }
        self.pending_answers
            .insert((now + self.answer_delay, call.leg));
        self.answer_due(now);
    }

    /// Answers the calls whose ringing time is over.
    fn answer_due(&mut self, now: std::time::Instant) {
        while let Some(&(at, leg)) = self.pending_answers.first() {
            if at > now {
                break;
            }
            self.pending_answers.remove(&(at, leg));
            let Some(active) = self.calls.get_mut(&leg) else {
                continue; // cancelled while ringing
            };
            let Some(sdp) = active.answer_sdp.take() else {
                continue;
            };
            active.answered = true;
            self.endpoint.answer(now, leg, sdp);
            let _ = self.records.send(RecordOp::CallAnswered {
                leg,
                at: Utc::now(),
            });
        }
    }

    fn call_ended(&mut self, leg: LegId, reason: EndReason) {
        let Some(call) = self.calls.remove(&leg) else {
            return;
        };
        if let Some(port) = call.rtp_port {
            self.ports.release(port);
        }
        let (disposition, hangup_by, final_status) = disposition(reason, call.answered);
        tracing::info!(
            call_id = %call.call_id,
            sip_call_id = %call.sip_call_id,
            disposition = %disposition,
            "call ended"
        );
        metrics::counter!("openline_calls_ended_total", "disposition" => disposition.clone())
            .increment(1);
        let _ = self.records.send(RecordOp::CallEnded {
            leg,
            at: Utc::now(),
            disposition,
            hangup_by,
            final_status,
        });
    }

    fn binding_changed(&mut self, change: BindingChange) {
        let op = match change {
            BindingChange::Upsert(b) => RecordOp::BindingUpsert(BindingRecord {
                extension: b.extension,
                contact_uri: b.contact_uri,
                received: Some(b.peer.addr.to_string()),
                transport: b.peer.transport.as_str().into(),
                call_id: b.call_id,
                cseq: i64::from(b.cseq),
                expires_at: b.expires_utc,
                user_agent: b.user_agent,
                node_id: self.node_id.clone(),
            }),
            BindingChange::Remove {
                extension,
                contact_uri,
            } => RecordOp::BindingRemove {
                extension,
                contact_uri,
            },
        };
        let _ = self.records.send(op);
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

/// The local address of the interface that routes to `peer` (no packet is sent: a UDP connect only
/// asks the kernel for the route). Falls back to loopback.
fn local_ip_towards(peer: IpAddr) -> IpAddr {
    let bind: std::net::SocketAddr = if peer.is_ipv6() {
        "[::]:0".parse().expect("literal")
    } else {
        "0.0.0.0:0".parse().expect("literal")
    };
    std::net::UdpSocket::bind(bind)
        .and_then(|s| {
            s.connect((peer, 9))?;
            s.local_addr()
        })
        .map(|a| a.ip())
        .ok()
        .filter(|ip| !ip.is_unspecified())
        .unwrap_or(if peer.is_ipv6() {
            IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)
        } else {
            IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
        })
}

async fn sleep_until(at: Option<std::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}
