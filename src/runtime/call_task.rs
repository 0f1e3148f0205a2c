//! A call's task: owns the call leg's RTP and RTCP sockets, its [`MediaSession`], its recorders and
//! the IVR engine walking the caller through a flow, and carries out the engine's commands (prompts
//! from files or text-to-speech, voicemail, webhooks). The SIP task owns the signalling and talks to
//! this task over channels; one task, one owner, no shared call state.

mod bridge;
mod broadcast;
mod commands;
mod consult;
mod ivr_commands;
mod media_events;
mod operator_keys;
mod recording;
mod sockets;
mod supervision;
mod transfer;
mod waiting;

pub use broadcast::{BroadcastSetup, MessageState};
pub use supervision::SuperviseMode;

use super::icmp;
use super::ivr_io::{self, Loaded, Voicemail};
use crate::ivr::{self, Command as IvrCommand, Event as IvrEvent, FlowSet, QueueResult};
use crate::media::prompt::PromptCache;
use crate::media::recorder::{Channel, RecordingInfo, StereoRecorder};
use crate::media::session::{
    DigitSource, MediaEvent, MediaOutput, MediaSession, SessionConfig, position_at,
};
use crate::media::tts::TtsCache;
use crate::sip::dialog::LegId;
use sockets::{recv_other, send, until_done};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Requests from the SIP task to a call.
#[derive(Debug)]
pub enum CallCommand {
    /// The ACK for our 2xx arrived: media may flow.
    Confirmed,
    /// A re-INVITE changed the session (hold, resume, new address).
    Renegotiate(SessionConfig),
    SendDigit(char),
    /// A key the caller pressed, sent by SIP INFO instead of in the media.
    InfoDigit(char),
    /// A key the bridged operator pressed, sent by SIP INFO: passed on to the caller.
    OperatorInfoDigit(char),
    /// The SIP task's answer to `CallNotice::Dial` when the dial failed.
    DialResult(ivr::DialResult),
    /// The dialed operator answered: its leg's sockets and media, to bridge with the caller.
    Bridge {
        rtp: std::net::UdpSocket,
        rtcp: std::net::UdpSocket,
        session: SessionConfig,
        /// The queue that found the operator (`None`: the flow's `dial`).
        queue: Option<super::calls::QueueBridge>,
        /// The leg is an operator's phone, whose key codes count (not a party reached
        /// through a trunk).
        key_codes: bool,
    },
    /// The caller waits in a queue: hold music (looped), after an optional consent prompt.
    Queued {
        hold_music: String,
        announce_recording: Option<String>,
    },
    /// "You are number N in the queue."
    QueuePosition(usize),
    /// The queue is done with the caller (no such queue, overflow).
    QueueResult(QueueResult),
    /// The operator's leg ended after it was bridged: the caller goes back to the flow.
    Unbridge,
    /// A re-INVITE from the operator's phone changed its leg's session (hold, resume).
    RenegotiateOther(SessionConfig),
    /// The operator transferred the caller: their leg leaves the bridge and the caller hears
    /// this hold music (`None`: silence) until the target answers.
    Transfer {
        hold_music: Option<String>,
    },
    /// The operator transferred the caller to a flow: their leg leaves the bridge and the flow
    /// takes the caller (`flows`: the set in force now, where the flow is found).
    TransferToFlow {
        flow: ivr::FlowId,
        flows: Arc<FlowSet>,
        /// What a flow started afresh knows (`caller`, `call_id`).
        variables: BTreeMap<String, String>,
    },
    /// An attended transfer begins: the caller waits on this hold music while the operator
    /// consults the target.
    ConsultStart {
        hold_music: Option<String>,
    },
    /// The consulted target answered: its leg's sockets and media, bridged to the operator.
    ConsultBridge {
        rtp: std::net::UdpSocket,
        rtcp: std::net::UdpSocket,
        session: SessionConfig,
        /// As in `Bridge`: an operator's phone, not a party through a trunk.
        key_codes: bool,
    },
    /// The attended transfer completes: caller and target talk, the operator's leg is dropped.
    ConsultComplete,
    /// An operator's own call is handed to their caller (an attended transfer from the phone):
    /// let the bridged leg go, back to the SIP task as `CallNotice::HandedOver`.
    HandOver,
    /// The consultation ends without a transfer: the caller is back with the operator.
    ConsultCancel,
    /// A supervisor's phone answered: it joins the bridge in `mode`.
    Supervise {
        rtp: std::net::UdpSocket,
        rtcp: std::net::UdpSocket,
        session: SessionConfig,
        mode: SuperviseMode,
    },
    /// The supervisor switches between listen, whisper and barge.
    SuperviseMode(SuperviseMode),
    /// The supervisor's leg ended.
    SuperviseEnd,
    /// Pause or resume the call's recording (the operator keeps card numbers out of it).
    SetRecordingPaused {
        paused: bool,
        reply: tokio::sync::oneshot::Sender<RecordingState>,
    },
    /// The call is over (the caller hung up or the server ends it): finish and stop.
    Stop,
}

/// A call's recording as a pause or resume request leaves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordingState {
    Recording,
    Paused,
    /// The call is not being recorded (nothing to pause).
    NotRecording,
}

/// What a call tells the SIP task.
#[derive(Debug)]
pub enum CallNotice {
    /// The flow's `queue` node: answered with `CallCommand::Queued` or `CallCommand::QueueResult`.
    Enqueue {
        leg: LegId,
        queue: String,
        request: crate::queue::JoinRequest,
    },
    /// The flow wants `target` rung for at most `timeout`; answered with `CallCommand::DialResult`.
    Dial {
        leg: LegId,
        target: String,
        timeout: std::time::Duration,
        /// The flow file names the number itself: it may go out through the trunk.
        may_use_trunk: bool,
    },
    Digit {
        leg: LegId,
        digit: char,
        source: DigitSource,
        at_ms: u64,
        /// Pressed while the recording was paused: the call record keeps that a key was
        /// pressed, never which (card numbers are typed as well as spoken).
        masked: bool,
    },
    /// The flow moved on: its id and the path so far as JSON.
    Path {
        leg: LegId,
        flow: String,
        path: serde_json::Value,
    },
    Rating {
        leg: LegId,
        rating: u8,
    },
    /// The recording was paused or resumed: `at_ms` on the call clock, `recording_ms` in the file;
    /// `by` the API or the operator's `phone` (its key code).
    RecordingPaused {
        leg: LegId,
        paused: bool,
        by: &'static str,
        at_ms: u64,
        recording_ms: u64,
    },
    /// A voicemail message was saved as a recording of the call.
    Voicemail {
        leg: LegId,
        path: PathBuf,
        info: RecordingInfo,
    },
    /// The call should end (the flow hung up, or no media): BYE with this disposition.
    Hangup {
        leg: LegId,
        disposition: String,
    },
    /// A broadcast call's answering-machine detection decided.
    Amd {
        leg: LegId,
        verdict: crate::broadcast::amd::Verdict,
        reason: &'static str,
    },
    /// A broadcast call's message started, ended, or was cut short.
    Message {
        leg: LegId,
        state: MessageState,
    },
    /// The supervisor pressed a key on their phone (1 listen, 2 whisper, 3 barge).
    SupervisorDigit {
        leg: LegId,
        digit: char,
    },
    /// The supervisor's phone stopped sending media (or answers with ICMP errors).
    SupervisorLost {
        leg: LegId,
    },
    /// So did the consulted target's phone.
    ConsultLost {
        leg: LegId,
    },
    /// The answer to `CallCommand::HandOver`: the bridged leg's sockets and session (`None`
    /// when none was bridged).
    HandedOver {
        leg: LegId,
        media: Option<(std::net::UdpSocket, std::net::UdpSocket, SessionConfig)>,
    },
    /// A recording problem (e.g. disk full): the call goes on without it.
    RecordingFailed {
        leg: LegId,
        error: String,
    },
    /// The task ended; its port can be reused.
    Finished {
        leg: LegId,
        port: u16,
        recording: Option<(PathBuf, RecordingInfo)>,
        /// How the IVR says the call ended (`ivr.completed`, `voicemail.left`, …), if it ran.
        disposition: Option<String>,
        stats: MediaStats,
    },
}

#[derive(Debug, Default, Clone)]
pub struct MediaStats {
    pub packets_sent: u64,
    pub packets_received: u64,
    pub packets_lost: i64,
    pub skipped: u64,
    pub refused: u64,
}

/// The IVR a call runs.
pub struct IvrSetup {
    pub flows: Arc<FlowSet>,
    pub flow: String,
    pub variables: BTreeMap<String, String>,
}

/// Everything a call task starts with.
pub struct CallSetup {
    pub leg: LegId,
    pub call_id: String,
    pub port: u16,
    pub rtp: std::net::UdpSocket,
    pub rtcp: std::net::UdpSocket,
    pub session: SessionConfig,
    pub t0: Instant,
    pub ivr: Option<IvrSetup>,
    pub record_to: Option<PathBuf>,
    pub data_dir: PathBuf,
    pub sounds: PathBuf,
    pub prompts: Arc<PromptCache>,
    pub tts: Option<Arc<TtsCache>>,
    pub http: Option<reqwest::Client>,
    /// A voice broadcast placed this call: detection, message, answer flow.
    pub broadcast: Option<BroadcastSetup>,
    /// Local times (business hours) are judged by this clock.
    pub clock: crate::runtime::clock::Clock,
    /// We answered an INVITE: send no media before its ACK (or the caller's first packet).
    pub awaiting_ack: bool,
    /// Where the leg's SIP messages come from; with the SDP address, the only sources whose
    /// first packet may latch the stream.
    pub signalling_ip: Option<std::net::IpAddr>,
}

/// How far the recorder lets one channel lag the other before padding it with silence.
const RECORDER_MAX_LAG: u64 = 1600; // 200 ms: what a crash can lose beyond the last flush

/// Who asked for what is playing (or loading).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PlayOwner {
    /// A `Play` of the IVR engine: its end goes back to the engine.
    Engine,
    /// The voicemail beep: recording starts when it ends.
    Beep,
    /// The queue's hold music: played again when it ends, while the caller waits.
    HoldMusic,
    /// A queue prompt (consent, position): the hold music resumes after it.
    QueueNotice,
    /// A broadcast's message.
    Broadcast,
}

/// The dialed operator's leg while it is bridged to the caller.
struct OtherLeg {
    session: MediaSession,
    rtp: UdpSocket,
    rtcp: UdpSocket,
    /// An operator's phone (its key codes count), not a party reached through a trunk.
    key_codes: bool,
}

struct Task {
    setup_leg: LegId,
    t0: Instant,
    session: MediaSession,
    other: Option<OtherLeg>,
    recorder: Option<recording::CallRecorder>,
    voicemail: Option<Voicemail>,
    engine: Option<ivr::Call>,
    /// Waiting in a queue: its hold music (`None` once it could not be played).
    hold: Option<Option<String>>,
    /// Bridged by a queue: what happens when the operator hangs up.
    queue_bridge: Option<super::calls::QueueBridge>,
    /// A transfer is under way: the next bridge is its target's, the flow is not told.
    transferring: bool,
    /// The operator is consulting a transfer's target (the caller on hold).
    consulting: bool,
    /// The consulted target's leg, once it answered.
    consult: Option<OtherLeg>,
    /// A supervisor on the call.
    supervision: Option<supervision::Supervision>,
    /// The bridged operator's key codes (`*1` pause, `*2` resume the recording).
    operator_keys: operator_keys::OperatorKeys,
    loading: Option<(JoinHandle<Loaded>, PlayOwner, bool)>,
    playing: Option<PlayOwner>,
    webhook: Option<JoinHandle<Result<serde_json::Value, String>>>,
    pending_record: Option<ivr_io::RecordRequest>,
    path_reported: (usize, usize),
    disposition: Option<String>,
    notices: mpsc::UnboundedSender<CallNotice>,
    setup: Arc<CallSetupShared>,
    broadcast: Option<broadcast::Broadcast>,
}

/// The parts of the setup the task keeps using.
struct CallSetupShared {
    call_id: String,
    data_dir: PathBuf,
    sounds: PathBuf,
    prompts: Arc<PromptCache>,
    tts: Option<Arc<TtsCache>>,
    http: Option<reqwest::Client>,
    clock: crate::runtime::clock::Clock,
}

pub async fn run(
    setup: CallSetup,
    mut commands: mpsc::UnboundedReceiver<CallCommand>,
    notices: mpsc::UnboundedSender<CallNotice>,
) {
    let leg = setup.leg;
    let (rtp, rtcp) = match (
        UdpSocket::from_std(setup.rtp),
        UdpSocket::from_std(setup.rtcp),
    ) {
        (Ok(a), Ok(b)) => (a, b),
        _ => {
            let _ = notices.send(CallNotice::Finished {
                leg,
                port: setup.port,
                recording: None,
                disposition: None,
                stats: MediaStats::default(),
            });
            return;
        }
    };
    let now = Instant::now();
    let mut session = MediaSession::new(
        setup.t0,
        now,
        setup.session,
        rand::random(),
        rand::random(),
        rand::random(),
    );
    session.allow_sources(setup.signalling_ip);
    if setup.awaiting_ack {
        session.hold_until_confirmed();
    }
    let since_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .saturating_sub(now.saturating_duration_since(setup.t0));
    session.set_ntp_origin(crate::media::rtcp::ntp_from_unix(since_unix));
    let recorder = match &setup.record_to {
        Some(path) => match recording::CallRecorder::open(path, 0) {
            Ok(r) => Some(r),
            Err(e) => {
                let _ = notices.send(CallNotice::RecordingFailed {
                    leg,
                    error: e.to_string(),
                });
                None
            }
        },
        None => None,
    };
    let engine =
        setup.ivr.and_then(
            |ivr| match ivr::Call::new(ivr.flows, &ivr.flow, ivr.variables) {
                Ok(call) => Some(call),
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the IVR");
                    None
                }
            },
        );
    let mut task = Task {
        setup_leg: leg,
        t0: setup.t0,
        session,
        other: None,
        recorder,
        voicemail: None,
        engine,
        hold: None,
        queue_bridge: None,
        transferring: false,
        consulting: false,
        consult: None,
        supervision: None,
        operator_keys: Default::default(),
        loading: None,
        playing: None,
        webhook: None,
        pending_record: None,
        path_reported: (0, 0),
        disposition: None,
        notices: notices.clone(),
        setup: Arc::new(CallSetupShared {
            call_id: setup.call_id,
            data_dir: setup.data_dir,
            sounds: setup.sounds,
            prompts: setup.prompts,
            tts: setup.tts,
            http: setup.http,
            clock: setup.clock,
        }),
        broadcast: setup
            .broadcast
            .map(|b| broadcast::Broadcast::new(b, position_at(setup.t0, now))),
    };
    task.update_recording_flag();
    let first = match task.engine.as_mut() {
        Some(engine) => engine.start(now, task.setup.clock.timestamp()),
        None => Vec::new(),
    };
    task.execute(first);
    if task.broadcast.is_some() {
        task.broadcast_start();
    }

    let mut rtp_buf = vec![0u8; 2048];
    let mut rtcp_buf = vec![0u8; 2048];
    let mut other_buf = vec![0u8; 2048];
    let mut other_rtcp_buf = vec![0u8; 2048];
    let mut consult_buf = vec![0u8; 2048];
    let mut consult_rtcp_buf = vec![0u8; 2048];
    let mut supervisor_buf = vec![0u8; 2048];
    let mut supervisor_rtcp_buf = vec![0u8; 2048];
    let mut header_flush = tokio::time::interval(Duration::from_secs(1));
    header_flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stats = MediaStats::default();
    loop {
        let mut wake = task.session.poll_timeout();
        if let Some(at) = task.engine.as_ref().and_then(|e| e.poll_timeout()) {
            wake = wake.min(at);
        }
        if let Some(v) = &task.voicemail {
            wake = wake.min(v.deadline);
        }
        if let Some(o) = &task.other {
            wake = wake.min(o.session.poll_timeout());
        }
        if let Some(o) = &task.consult {
            wake = wake.min(o.session.poll_timeout());
        }
        if let Some(at) = task.supervisor_timeout() {
            wake = wake.min(at);
        }
        if let Some(at) = task
            .broadcast
            .as_ref()
            .and_then(|b| b.poll_timeout(Instant::now()))
        {
            wake = wake.min(at);
        }
        tokio::select! {
            received = rtp.recv_from(&mut rtp_buf) => match received {
                Ok((n, from)) => {
                    stats.packets_received += 1;
                    task.session.on_rtp(Instant::now(), from, &rtp_buf[..n]);
                }
                Err(e) => {
                    // Every ICMP report waits in the error queue (and takes receive buffer)
                    // until read; only unreachable ones count against the peer.
                    icmp::drain_error_queue(&rtp);
                    if icmp::is_unreachable(&e) {
                        task.session.on_unreachable(Instant::now());
                    }
                }
            },
            received = rtcp.recv_from(&mut rtcp_buf) => {
                if let Ok((n, from)) = received {
                    task.session.on_rtcp(Instant::now(), from, &rtcp_buf[..n]);
                }
            }
            command = commands.recv() => match command {
                Some(CallCommand::Stop) | None => break,
                Some(command) => task.on_command(command),
            },
            received = recv_other(task.other.as_ref().map(|o| &o.rtp), &mut other_buf) => {
                match (received, task.other.as_mut()) {
                    (Ok((n, from)), Some(o)) => o.session.on_rtp(Instant::now(), from, &other_buf[..n]),
                    (Err(e), Some(o)) => {
                        icmp::drain_error_queue(&o.rtp);
                        if icmp::is_unreachable(&e) {
                            o.session.on_unreachable(Instant::now());
                        }
                    }
                    _ => {}
                }
            }
            received = recv_other(task.other.as_ref().map(|o| &o.rtcp), &mut other_rtcp_buf) => {
                if let (Ok((n, from)), Some(o)) = (received, task.other.as_mut()) {
                    o.session.on_rtcp(Instant::now(), from, &other_rtcp_buf[..n]);
                }
            }
            received = recv_other(task.consult.as_ref().map(|o| &o.rtp), &mut consult_buf) => {
                if let (Ok((n, from)), Some(o)) = (received, task.consult.as_mut()) {
                    o.session.on_rtp(Instant::now(), from, &consult_buf[..n]);
                }
            }
            received = recv_other(task.consult.as_ref().map(|o| &o.rtcp), &mut consult_rtcp_buf) => {
                if let (Ok((n, from)), Some(o)) = (received, task.consult.as_mut()) {
                    o.session.on_rtcp(Instant::now(), from, &consult_rtcp_buf[..n]);
                }
            }
            received = recv_other(task.supervision.as_ref().map(|s| &s.leg.rtp), &mut supervisor_buf) => {
                if let Ok((n, from)) = received {
                    task.supervisor_rtp(from, &supervisor_buf[..n], false);
                }
            }
            received = recv_other(task.supervision.as_ref().map(|s| &s.leg.rtcp), &mut supervisor_rtcp_buf) => {
                if let Ok((n, from)) = received {
                    task.supervisor_rtp(from, &supervisor_rtcp_buf[..n], true);
                }
            }
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => task.on_timer(Instant::now()),
            Some(loaded) = until_done(task.loading.as_mut().map(|(h, _, _)| h)) => task.on_loaded(loaded),
            Some(answer) = until_done(task.webhook.as_mut()) => {
                task.webhook = None;
                let result = answer.unwrap_or_else(|e| Err(format!("webhook task failed: {e}")));
                task.engine_event(IvrEvent::WebhookResult(result));
            }
            _ = header_flush.tick() => task.flush_recorders(),
        }
        while let Some(output) = task.session.poll_output() {
            match output {
                MediaOutput::Rtp { to, bytes } => {
                    stats.packets_sent += 1;
                    if let Some(e) = send(&rtp, to, &bytes).await {
                        icmp::drain_error_queue(&rtp);
                        if icmp::is_unreachable(&e) {
                            task.session.on_unreachable(Instant::now());
                        }
                    }
                }
                MediaOutput::Rtcp { to, bytes } => {
                    let _ = send(&rtcp, to, &bytes).await;
                }
                MediaOutput::Relay(packet) => {
                    let relay = task.relays_to_operator();
                    if let Some(o) = task.other.as_mut().filter(|_| relay) {
                        o.session.relay(&packet);
                    }
                }
                MediaOutput::Event(event) => task.on_media_event(event),
            }
        }
        task.drain_other().await;
        task.drain_consult().await;
        task.drain_supervision().await;
    }
    // The caller (or the server) ended the call.
    if let Some(engine) = task.engine.as_mut()
        && !engine.is_ended()
    {
        let commands = engine.step(
            Instant::now(),
            task.setup.clock.timestamp(),
            IvrEvent::Hangup,
        );
        for command in commands {
            if let IvrCommand::Hangup { disposition } = command {
                task.disposition = Some(disposition);
            }
        }
    }
    if task.playing == Some(PlayOwner::Broadcast) {
        task.notify(CallNotice::Message {
            leg,
            state: MessageState::Partial,
        });
    }
    task.finish_voicemail(false);
    task.report_path();
    if let Some((h, _, _)) = task.loading.take() {
        h.abort();
    }
    if let Some(h) = task.webhook.take() {
        h.abort();
    }
    let end = position_at(task.t0, Instant::now());
    let recording = match task.recorder.take() {
        Some(r) => match r.finish(end) {
            Ok(done) => Some(done),
            Err(e) => {
                let _ = notices.send(CallNotice::RecordingFailed {
                    leg,
                    error: e.to_string(),
                });
                None
            }
        },
        None => None,
    };
    let incoming = task.session.incoming();
    stats.packets_lost = incoming.stats.lost().max(0);
    stats.refused = incoming.refused;
    stats.skipped = task.session.skipped_packets();
    let _ = notices.send(CallNotice::Finished {
        leg,
        port: setup.port,
        recording,
        disposition: task.disposition.take(),
        stats,
    });
}

impl Task {
    fn notify(&self, notice: CallNotice) {
        let _ = self.notices.send(notice);
    }

    /// The session emits audio for recorders only while one listens.
    fn update_recording_flag(&mut self) {
        let on = self.recorder.is_some()
            || self.supervision.is_some()
            || self.voicemail.is_some()
            || self.broadcast.as_ref().is_some_and(|b| b.listening());
        self.session.set_recording(on);
    }

    fn on_timer(&mut self, now: Instant) {
        self.session.handle_timeout(now);
        if let Some(o) = self.other.as_mut() {
            o.session.handle_timeout(now);
        }
        if let Some(o) = self.consult.as_mut() {
            o.session.handle_timeout(now);
        }
        self.supervisor_tick(now);
        if self.voicemail.as_ref().is_some_and(|v| v.deadline <= now) {
            self.finish_voicemail(true);
        }
        if self.broadcast.as_ref().is_some_and(|b| b.listening()) {
            self.broadcast_timer(now);
        }
        if self
            .engine
            .as_ref()
            .and_then(|e| e.poll_timeout())
            .is_some_and(|at| at <= now)
        {
            self.engine_event(IvrEvent::Timeout);
        }
    }

    /// Stops what plays or loads; an engine prompt stopped this way is `interrupted`, which the
    /// engine ignores (it already moved on).
    fn stop_audio(&mut self) {
        if let Some((h, _, _)) = self.loading.take() {
            h.abort();
        }
        self.playing = None;
        self.session.stop_playback();
        // stop_playback's PlaybackFinished{interrupted} is dropped in on_media_event: nothing plays.
    }

    fn load(&mut self, items: ivr_io::PlayItems, owner: PlayOwner, barge_in: bool) {
        let shared = self.setup.clone();
        let handle = tokio::task::spawn_blocking(move || {
            ivr_io::load_audio(
                &items,
                &shared.sounds,
                &shared.prompts,
                shared.tts.as_deref(),
            )
        });
        self.loading = Some((handle, owner, barge_in));
    }

    fn on_loaded(&mut self, loaded: Result<Loaded, tokio::task::JoinError>) {
        let Some((_, owner, barge_in)) = self.loading.take() else {
            return;
        };
        match loaded {
            Ok(Ok(samples)) if !samples.is_empty() => {
                self.playing = Some(owner);
                self.session.play(samples, barge_in);
            }
            Ok(Ok(_)) if owner == PlayOwner::HoldMusic => self.hold_music_failed("it is empty"),
            Ok(Ok(_)) if owner == PlayOwner::Broadcast => self.broadcast_message_failed("empty"),
            Ok(Ok(_)) => self.playback_done(owner, false),
            Ok(Err(error)) if owner == PlayOwner::HoldMusic => self.hold_music_failed(&error),
            Ok(Err(error)) if owner == PlayOwner::Broadcast => {
                self.broadcast_message_failed(&error)
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, "prompt cannot be played");
                self.playback_done(owner, false);
            }
            Err(e) => {
                tracing::warn!(error = %e, "prompt loader failed");
                self.playback_done(owner, false);
            }
        }
    }

    /// A prompt ended (or could not be played).
    fn playback_done(&mut self, owner: PlayOwner, interrupted: bool) {
        match owner {
            PlayOwner::Engine => self.engine_event(IvrEvent::PlaybackFinished { interrupted }),
            PlayOwner::Beep => {
                if let Some(request) = self.pending_record.take() {
                    self.start_voicemail(request);
                }
            }
            PlayOwner::HoldMusic | PlayOwner::QueueNotice => self.play_hold_music(),
            PlayOwner::Broadcast => self.broadcast_message_done(interrupted),
        }
    }
}
