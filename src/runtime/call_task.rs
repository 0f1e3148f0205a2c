//! A call's task: owns the call leg's RTP and RTCP sockets, its [`MediaSession`] and its recorder,
//! and runs what the call does with its media. The SIP task owns the signalling and talks to this
//! task over channels; one task, one owner, no shared media state.
//!
//! What a call does with media is, for now, a small built-in script: play `calls.greeting` (a digit
//! stops it), record when `calls.record` is on, and report every digit. The IVR flow engine takes this
//! place with the IVR issue.

use crate::media::prompt::PromptCache;
use crate::media::recorder::{Channel, RecordingInfo, StereoRecorder};
use crate::media::session::{
    DigitSource, MediaEvent, MediaOutput, MediaSession, SessionConfig, position_at,
};
use crate::sip::dialog::LegId;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// Requests from the SIP task to a call.
#[derive(Debug)]
pub enum CallCommand {
    /// A re-INVITE changed the session (hold, resume, new address).
    Renegotiate(SessionConfig),
    SendDigit(char),
    /// The call is over: finish the recording and stop.
    Stop,
}

/// What a call tells the SIP task.
#[derive(Debug)]
pub enum CallNotice {
    Digit {
        leg: LegId,
        digit: char,
        source: DigitSource,
        at_ms: u64,
    },
    /// No media for `media_timeout`: hang the call up.
    MediaTimeout { leg: LegId },
    /// A recording problem (e.g. disk full): the call goes on without it.
    RecordingFailed { leg: LegId, error: String },
    /// The task ended; its port can be reused.
    Finished {
        leg: LegId,
        port: u16,
        recording: Option<(PathBuf, RecordingInfo)>,
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

/// Everything a call task starts with.
pub struct CallSetup {
    pub leg: LegId,
    pub call_id: String,
    pub port: u16,
    pub rtp: std::net::UdpSocket,
    pub rtcp: std::net::UdpSocket,
    pub session: SessionConfig,
    pub t0: Instant,
    pub greeting: Option<PathBuf>,
    pub record_to: Option<PathBuf>,
    pub prompts: Arc<PromptCache>,
}

/// How far the recorder lets one channel lag the other before padding it with silence.
const RECORDER_MAX_LAG: u64 = 1600; // 200 ms: what a crash can lose beyond the last flush

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
    let since_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .saturating_sub(now.saturating_duration_since(setup.t0));
    session.set_ntp_origin(crate::media::rtcp::ntp_from_unix(since_unix));
    let mut recorder = match &setup.record_to {
        Some(path) => match open_recorder(path) {
            Ok(r) => {
                session.set_recording(true);
                Some((path.clone(), r))
            }
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
    // Prompts decode on a blocking thread while the loop keeps reading RTP: the first packets'
    // arrival times place the caller's audio on the call clock, so they must not wait.
    let mut loading = setup.greeting.map(|path| {
        let prompts = setup.prompts.clone();
        tokio::task::spawn_blocking(move || prompts.get(&path))
    });
    let mut rtp_buf = vec![0u8; 2048];
    let mut rtcp_buf = vec![0u8; 2048];
    let mut header_flush = tokio::time::interval(Duration::from_secs(1));
    header_flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stats = MediaStats::default();
    loop {
        let wake = tokio::time::Instant::from_std(session.poll_timeout());
        tokio::select! {
            received = rtp.recv_from(&mut rtp_buf) => {
                if let Ok((n, from)) = received {
                    stats.packets_received += 1;
                    session.on_rtp(Instant::now(), from, &rtp_buf[..n]);
                }
            }
            received = rtcp.recv_from(&mut rtcp_buf) => {
                if let Ok((n, from)) = received {
                    session.on_rtcp(Instant::now(), from, &rtcp_buf[..n]);
                }
            }
            command = commands.recv() => match command {
                Some(CallCommand::Renegotiate(config)) => session.renegotiate(Instant::now(), config),
                Some(CallCommand::SendDigit(digit)) => session.send_digit(Instant::now(), digit),
                Some(CallCommand::Stop) | None => break,
            },
            _ = tokio::time::sleep_until(wake) => session.handle_timeout(Instant::now()),
            Some(loaded) = until_done(loading.as_mut()) => {
                loading = None;
                match loaded {
                    Ok(Ok(samples)) => session.play(samples, true),
                    Ok(Err(e)) => tracing::warn!(error = %e, "greeting cannot be played"),
                    Err(e) => tracing::warn!(error = %e, "prompt decoder failed"),
                }
            }
            _ = header_flush.tick() => {
                if let Some((_, r)) = recorder.as_mut() {
                    let now_position = position_at(setup.t0, Instant::now());
                    let result = r.advance(now_position).and_then(|()| r.flush_header());
                    if let Err(e) = result {
                        recorder_failed(&mut recorder, &mut session, &notices, leg, e.to_string());
                    }
                }
            }
        }
        while let Some(output) = session.poll_output() {
            match output {
                MediaOutput::Rtp { to, bytes } => {
                    stats.packets_sent += 1;
                    send(&rtp, to, &bytes).await;
                }
                MediaOutput::Rtcp { to, bytes } => send(&rtcp, to, &bytes).await,
                MediaOutput::Relay(_) => {} // bridging arrives with the queues
                MediaOutput::Event(event) => {
                    let write = match (&event, recorder.as_mut()) {
                        (MediaEvent::Heard { at_sample, samples }, Some((_, r))) => {
                            Some(r.write(Channel::Left, *at_sample, samples))
                        }
                        (MediaEvent::Played { at_sample, samples }, Some((_, r))) => {
                            Some(r.write(Channel::Right, *at_sample, samples))
                        }
                        _ => None,
                    };
                    if let Some(Err(e)) = write {
                        recorder_failed(&mut recorder, &mut session, &notices, leg, e.to_string());
                    }
                    match event {
                        MediaEvent::Digit {
                            digit,
                            source,
                            at_sample,
                        } => {
                            let _ = notices.send(CallNotice::Digit {
                                leg,
                                digit,
                                source,
                                at_ms: at_sample / 8,
                            });
                        }
                        MediaEvent::Timeout => {
                            let _ = notices.send(CallNotice::MediaTimeout { leg });
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    let end = position_at(setup.t0, Instant::now());
    let recording = match recorder {
        Some((path, r)) => match r.finish(end) {
            Ok(info) => Some((path, info)),
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
    let incoming = session.incoming();
    stats.packets_lost = incoming.stats.lost().max(0);
    stats.refused = incoming.refused;
    stats.skipped = session.skipped_packets();
    let _ = notices.send(CallNotice::Finished {
        leg,
        port: setup.port,
        recording,
        stats,
    });
}

fn open_recorder(
    path: &std::path::Path,
) -> Result<StereoRecorder, crate::media::recorder::RecorderError> {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    StereoRecorder::create(path, RECORDER_MAX_LAG)
}

/// A full disk (or any write error) ends the recording, never the call.
fn recorder_failed(
    recorder: &mut Option<(PathBuf, StereoRecorder)>,
    session: &mut MediaSession,
    notices: &mpsc::UnboundedSender<CallNotice>,
    leg: LegId,
    error: String,
) {
    tracing::error!(error = %error, "recording stopped; the call goes on");
    metrics::counter!("openline_recording_failures_total").increment(1);
    *recorder = None;
    session.set_recording(false);
    let _ = notices.send(CallNotice::RecordingFailed { leg, error });
}

/// Waits for a running task, or forever when there is none (a disabled `select!` branch).
async fn until_done<T>(
    task: Option<&mut tokio::task::JoinHandle<T>>,
) -> Option<Result<T, tokio::task::JoinError>> {
    match task {
        Some(task) => Some(task.await),
        None => std::future::pending().await,
    }
}

async fn send(socket: &UdpSocket, to: SocketAddr, bytes: &[u8]) {
    match socket.try_send_to(bytes, to) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
            let _ = socket.send_to(bytes, to).await;
        }
        Err(_) => {} // ICMP errors from an earlier packet; RTP is fire-and-forget
    }
}
