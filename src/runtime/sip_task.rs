//! The SIP task: owns the [`Endpoint`], feeds it packets and time, sends what it returns, and runs
//! the call layer's decisions for incoming calls. One task, one owner: no locks around SIP state.
//!
//! What happens to calls is the call layer's business (`calls`, and a task per call for its media).

use super::SipInput;
use super::call_task::CallNotice;
use super::calls::Calls;
use super::records::{RecordOp, RecordsTx};
use crate::sip::endpoint::{Endpoint, Event, Output};
use crate::sip::registrar::BindingChange;
use crate::sip::transport::{ConnId, Peer, TransportKind};
use crate::store::BindingRecord;
use bytes::Bytes;
use chrono::Utc;
use std::collections::HashMap;
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
    /// The API reads or changes the queues and operators.
    Acd(super::calls::AcdRequest),
    /// A voice broadcast places a call.
    Originate(Box<super::broadcasts::OriginateRequest>),
    /// A voice broadcast was cancelled: its calls still ringing are cancelled.
    CancelBroadcast(String),
    /// The brute-force blocks in force (`GET /api/v1/sip/blocks`).
    AuthBlocks(oneshot::Sender<Vec<AuthBlockView>>),
    /// An admin lifts the blocks of an address; replies how many entries went.
    LiftBlocks(std::net::IpAddr, oneshot::Sender<usize>),
    /// Pause or resume a live call's recording.
    Recording(super::calls::RecordingControl),
    /// `POST /api/v1/calls/{id}/transfer`.
    Transfer(super::calls::TransferControl),
    /// `POST /api/v1/calls/{id}/supervise`.
    Supervise(super::calls::SuperviseControl),
    /// A config reload's live changes; the reply says how each went, in order.
    Reload {
        changes: Vec<super::reload::LiveChange>,
        reply: oneshot::Sender<Vec<Result<(), String>>>,
    },
}

/// A brute-force block as the API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AuthBlockView {
    pub ip: std::net::IpAddr,
    /// The user tried; null when the whole address is blocked.
    pub user: Option<String>,
    pub until: chrono::DateTime<Utc>,
}

/// What the node holds, set after every message: handles looked up once, so each update is an
/// atomic store rather than a registry lookup (this runs per SIP message).
struct Gauges {
    calls: metrics::Gauge,
    transactions: metrics::Gauge,
    legs: metrics::Gauge,
    timers: metrics::Gauge,
    ports_free: metrics::Gauge,
    blocked_sources: metrics::Gauge,
    blocked_users: metrics::Gauge,
    blocked_dropped: metrics::Counter,
}

impl Gauges {
    fn new() -> Self {
        Gauges {
            calls: metrics::gauge!("openline_calls_active"),
            transactions: metrics::gauge!("openline_sip_transactions"),
            legs: metrics::gauge!("openline_sip_legs"),
            timers: metrics::gauge!("openline_sip_timers"),
            ports_free: metrics::gauge!("openline_rtp_ports_free"),
            blocked_sources: metrics::gauge!("openline_sip_auth_blocks", "kind" => "source"),
            blocked_users: metrics::gauge!("openline_sip_auth_blocks", "kind" => "user"),
            blocked_dropped: metrics::counter!("openline_sip_blocked_dropped_total"),
        }
    }
}

pub struct SipTask {
    pub endpoint: Endpoint,
    pub udp: Arc<UdpSocket>,
    pub tcp: HashMap<ConnId, mpsc::Sender<Bytes>>,
    pub node_id: String,
    pub records: RecordsTx,
    pub calls: Calls,
    gauges: Gauges,
}

impl SipTask {
    pub fn new(
        endpoint: Endpoint,
        udp: Arc<UdpSocket>,
        node_id: String,
        records: RecordsTx,
        calls: Calls,
    ) -> Self {
        SipTask {
            endpoint,
            udp,
            tcp: HashMap::new(),
            node_id,
            records,
            calls,
            gauges: Gauges::new(),
        }
    }

    pub async fn run(
        mut self,
        mut inputs: mpsc::Receiver<SipInput>,
        mut commands: mpsc::Receiver<SipCommand>,
        mut notices: mpsc::UnboundedReceiver<CallNotice>,
    ) {
        loop {
            let next_answer = self.calls.next_wake();
            let wake = match (self.endpoint.poll_timeout(), next_answer) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            tokio::select! {
                input = inputs.recv() => match input {
                    Some(input) => {
                        self.calls.set_sip_backlog(inputs.len());
                        self.on_input(input)
                    }
                    None => break,
                },
                command = commands.recv() => match command {
                    Some(command) => self.on_command(command),
                    None => break,
                },
                Some(notice) = notices.recv() => {
                    self.calls.notice(&mut self.endpoint, Instant::now().into_std(), notice);
                }
                _ = sleep_until(wake) => {
                    let now = Instant::now().into_std();
                    self.endpoint.handle_timeout(now);
                    self.calls.answer_due(&mut self.endpoint, now);
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
            SipCommand::Acd(request) => self.calls.acd_request(&mut self.endpoint, now, request),
            SipCommand::AuthBlocks(reply) => {
                let utc = Utc::now();
                let blocks = self.endpoint.registrar_mut().auth_blocks(now);
                let views = blocks
                    .into_iter()
                    .map(|b| AuthBlockView {
                        ip: b.ip,
                        user: b.user,
                        until: utc
                            + chrono::Duration::from_std(b.until.saturating_duration_since(now))
                                .unwrap_or_default(),
                    })
                    .collect();
                let _ = reply.send(views);
            }
            SipCommand::LiftBlocks(ip, reply) => {
                let lifted = self.endpoint.registrar_mut().lift_blocks(ip);
                tracing::info!(%ip, lifted, "brute-force blocks lifted by an admin");
                let _ = reply.send(lifted);
            }
            SipCommand::Recording(request) => self.calls.recording_control(request),
            SipCommand::Supervise(request) => {
                self.calls
                    .supervise_control(&mut self.endpoint, now, request)
            }
            SipCommand::Reload { changes, reply } => {
                let _ = reply.send(self.calls.reload(&mut self.endpoint, now, &changes));
            }
            SipCommand::Transfer(request) => {
                self.calls
                    .transfer_control(&mut self.endpoint, now, request)
            }
            SipCommand::Originate(request) => {
                self.calls.originate(&mut self.endpoint, now, *request)
            }
            SipCommand::CancelBroadcast(campaign) => {
                self.calls
                    .cancel_broadcast(&mut self.endpoint, now, &campaign)
            }
        }
    }

    /// Carries out everything the endpoint asked for; the call layer's answers may produce more.
    async fn flush(&mut self) {
        while let Some(output) = self.endpoint.poll_output() {
            match output {
                Output::Send { peer, bytes } => self.send(peer, bytes).await,
                Output::Event(event) => self.on_event(event),
            }
        }
        let g = &self.gauges;
        g.calls.set(self.calls.len() as f64);
        g.transactions.set(self.endpoint.transaction_count() as f64);
        g.legs.set(self.endpoint.leg_count() as f64);
        g.timers.set(self.endpoint.timer_count() as f64);
        let (sources, pairs) = self.endpoint.registrar().block_counts();
        g.blocked_sources.set(sources as f64);
        g.blocked_users.set(pairs as f64);
        g.blocked_dropped.absolute(self.endpoint.stats.blocked);
        g.ports_free.set(self.calls.free_ports() as f64);
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
            Event::IncomingCall(call) => {
                self.calls
                    .incoming(&mut self.endpoint, Instant::now().into_std(), *call)
            }
            Event::LegConfirmed { leg } => self.calls.leg_confirmed(leg),
            Event::Outbound { leg, update } => {
                self.calls
                    .outbound(&mut self.endpoint, Instant::now().into_std(), leg, update)
            }
            Event::Reoffer { leg, offer } => {
                self.calls
                    .reoffer(&mut self.endpoint, Instant::now().into_std(), leg, &offer)
            }
            Event::LegEnded { leg, reason } => {
                self.calls
                    .leg_ended(&mut self.endpoint, Instant::now().into_std(), leg, reason)
            }
            Event::InfoDigit { leg, digit } => self.calls.info_digit(leg, digit),
            Event::Refer {
                leg,
                refer_to,
                referred_by,
            } => self.calls.refer(
                &mut self.endpoint,
                Instant::now().into_std(),
                leg,
                *refer_to,
                referred_by,
            ),
            Event::Binding(change) => self.binding_changed(change),
        }
    }

    fn binding_changed(&mut self, change: BindingChange) {
        let extension = match &change {
            BindingChange::Upsert(b) => b.extension.clone(),
            BindingChange::Remove { extension, .. } => extension.clone(),
        };
        self.calls
            .registration_changed(&mut self.endpoint, Instant::now().into_std(), &extension);
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

async fn sleep_until(at: Option<std::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}
