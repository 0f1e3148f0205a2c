//! A call a voice broadcast placed, once answered: answering-machine detection over what the
//! other side says, then the campaign's message, then its answer flow (an ordinary IVR flow).
//!
//! - AMD off: the message starts at once.
//! - `human` or `unsure`: the message, then the answer flow (a key pressed during the message
//!   skips to the flow with that key).
//! - `machine`: hang up (AMD `hangup`), or wait for the beep (or the end of the greeting) and
//!   leave the message on it (`leave_message`); machines get no answer flow.
//!
//! Without an answer flow the call ends after the message (`broadcast.delivered`), or at once
//! when the opt-out key is pressed (`broadcast.opted_out`).

use super::*;
use crate::broadcast::amd::{AmdSettings, Detector, Verdict};
use crate::broadcast::{AmdMode, Message};

/// How far the detector is moved on by the clock when no audio arrives.
const DETECT_TICK: Duration = Duration::from_millis(100);

/// How far behind the clock the timer moves the detector: heard audio is released after the
/// media session's playout delay (plus a late packet's margin), and the detector ignores audio
/// older than what it has already judged, so silence must not be assumed too early.
const TIMER_LAG: u64 = crate::media::session::PLAYOUT_DELAY + 8 * 200;

/// What the call task needs to run a broadcast call.
pub struct BroadcastSetup {
    pub message: Message,
    /// `Message::Audio` files are relative to the data directory.
    pub data_dir: PathBuf,
    pub amd: AmdMode,
    pub amd_settings: AmdSettings,
    pub answer_flow: Option<IvrSetup>,
    pub opt_out_digit: Option<char>,
}

pub use crate::broadcast::MessageState;

enum Phase {
    Detecting(Detector),
    /// A machine: waiting for its beep before the message.
    WaitingForBeep(Detector),
    Message {
        on_machine: bool,
    },
    Flow,
    Over,
}

pub(super) struct Broadcast {
    setup: BroadcastSetup,
    phase: Phase,
}

impl Broadcast {
    pub(super) fn new(setup: BroadcastSetup, start_sample: u64) -> Broadcast {
        let phase = match setup.amd {
            AmdMode::Off => Phase::Message { on_machine: false },
            AmdMode::Hangup | AmdMode::LeaveMessage => {
                Phase::Detecting(Detector::new(setup.amd_settings, start_sample))
            }
        };
        Broadcast { setup, phase }
    }

    /// The detector wants audio (the session must emit what it hears).
    pub(super) fn listening(&self) -> bool {
        matches!(self.phase, Phase::Detecting(_) | Phase::WaitingForBeep(_))
    }

    /// While detecting, the clock moves the detector on even without audio.
    pub(super) fn poll_timeout(&self, now: Instant) -> Option<Instant> {
        self.listening().then_some(now + DETECT_TICK)
    }
}

impl Task {
    /// Called once at the start of a broadcast call.
    pub(super) fn broadcast_start(&mut self) {
        if matches!(
            self.broadcast.as_ref().map(|b| &b.phase),
            Some(Phase::Message { .. })
        ) {
            self.play_message(false);
        }
        self.update_recording_flag();
    }

    /// Audio heard while detecting.
    pub(super) fn broadcast_heard(&mut self, at_sample: u64, samples: &[i16]) {
        let decided = match self.broadcast.as_mut().map(|b| &mut b.phase) {
            Some(Phase::Detecting(d)) => d.push(at_sample, samples),
            Some(Phase::WaitingForBeep(d)) => {
                d.push(at_sample, samples);
                None
            }
            _ => return,
        };
        self.broadcast_progress(decided);
    }

    /// The clock moved on while detecting.
    pub(super) fn broadcast_timer(&mut self, now: Instant) {
        let position = position_at(self.t0, now).saturating_sub(TIMER_LAG);
        let decided = match self.broadcast.as_mut().map(|b| &mut b.phase) {
            Some(Phase::Detecting(d)) => d.advance(position),
            Some(Phase::WaitingForBeep(d)) => {
                d.advance(position);
                None
            }
            _ => return,
        };
        self.broadcast_progress(decided);
    }

    fn broadcast_progress(&mut self, decided: Option<crate::broadcast::amd::Decision>) {
        if let Some(decision) = decided {
            tracing::info!(
                verdict = decision.verdict.as_str(),
                reason = decision.reason,
                after_ms = decision.after.as_millis() as u64,
                "answering-machine detection"
            );
            self.notify(CallNotice::Amd {
                leg: self.setup_leg,
                verdict: decision.verdict,
                reason: decision.reason,
            });
            let Some(b) = self.broadcast.as_mut() else {
                return;
            };
            let phase = std::mem::replace(&mut b.phase, Phase::Over);
            match (decision.verdict, b.setup.amd, phase) {
                (Verdict::Machine, AmdMode::LeaveMessage, Phase::Detecting(d)) => {
                    b.phase = Phase::WaitingForBeep(d);
                }
                (Verdict::Machine, _, _) => {
                    self.update_recording_flag();
                    self.broadcast_hangup("broadcast.machine_hangup");
                    return;
                }
                _ => {
                    b.phase = Phase::Message { on_machine: false };
                    self.play_message(false);
                }
            }
        }
        let ready = match self.broadcast.as_ref().map(|b| &b.phase) {
            Some(Phase::WaitingForBeep(d)) => d.ready_for_message(),
            _ => None,
        };
        if let Some(ready) = ready {
            tracing::info!(?ready, "leaving the message on the machine");
            if let Some(b) = self.broadcast.as_mut() {
                b.phase = Phase::Message { on_machine: true };
            }
            self.play_message(true);
        }
        self.update_recording_flag();
    }

    fn play_message(&mut self, on_machine: bool) {
        let Some(b) = self.broadcast.as_ref() else {
            return;
        };
        let items = match &b.setup.message {
            Message::Audio { file } => ivr_io::PlayItems::Owned(b.setup.data_dir.join(file)),
            Message::Text { text, voice } => ivr_io::PlayItems::Ivr(vec![ivr::Prompt::Say {
                text: text.clone(),
                voice: voice.clone(),
            }]),
        };
        // A person may skip to the answer flow with a key; a machine cannot. Without a flow a
        // key does not cut the message short (the opt-out digit stops it in broadcast_digit).
        let barge_in = !on_machine && b.setup.answer_flow.is_some();
        self.stop_audio();
        self.notify(CallNotice::Message {
            leg: self.setup_leg,
            state: MessageState::Started,
        });
        self.load(items, PlayOwner::Broadcast, barge_in);
    }

    /// The message cannot be played here: the person would hear silence, so the call ends as
    /// a failure (retried by the campaign's `failed` rule) instead of counting as delivered.
    pub(super) fn broadcast_message_failed(&mut self, error: &str) {
        tracing::error!(%error, "the broadcast's message cannot be played");
        self.notify(CallNotice::Message {
            leg: self.setup_leg,
            state: MessageState::Failed,
        });
        self.broadcast_hangup("failed.message_unplayable");
    }

    /// The message ended (`interrupted`: stopped by a key or the hang-up).
    pub(super) fn broadcast_message_done(&mut self, interrupted: bool) {
        let state = if interrupted {
            MessageState::Partial
        } else {
            MessageState::Complete
        };
        self.notify(CallNotice::Message {
            leg: self.setup_leg,
            state,
        });
        if interrupted {
            return; // a key: broadcast_digit decides
        }
        let on_machine = matches!(
            self.broadcast.as_ref().map(|b| &b.phase),
            Some(Phase::Message { on_machine: true })
        );
        if on_machine {
            self.broadcast_hangup("broadcast.left_on_machine");
        } else if !self.start_answer_flow(None) {
            self.broadcast_hangup("broadcast.delivered");
        }
    }

    /// A key while no answer flow runs yet. True when the broadcast took it (the engine must
    /// not see it again).
    pub(super) fn broadcast_digit(&mut self, digit: char) -> bool {
        let Some(b) = self.broadcast.as_ref() else {
            return false;
        };
        match b.phase {
            Phase::Flow => false,
            Phase::Over | Phase::WaitingForBeep(_) => true,
            Phase::Message { on_machine: true } => true,
            Phase::Detecting(_) | Phase::Message { on_machine: false } => {
                let opt_out = b.setup.opt_out_digit == Some(digit);
                let has_flow = b.setup.answer_flow.is_some();
                if !has_flow && !opt_out {
                    // No menu to go to: the message plays on (the digit is still recorded).
                    return true;
                }
                let playing = self.playing == Some(PlayOwner::Broadcast)
                    || matches!(self.loading, Some((_, PlayOwner::Broadcast, _)));
                if playing {
                    self.stop_audio();
                    self.notify(CallNotice::Message {
                        leg: self.setup_leg,
                        state: MessageState::Partial,
                    });
                }
                if has_flow {
                    self.start_answer_flow(Some(digit));
                } else if opt_out {
                    self.broadcast_hangup("broadcast.opted_out");
                }
                true
            }
        }
    }

    /// Starts the answer flow (with the key that skipped the message, if any); false when the
    /// campaign has none.
    fn start_answer_flow(&mut self, digit: Option<char>) -> bool {
        let Some(b) = self.broadcast.as_mut() else {
            return false;
        };
        let Some(ivr) = b.setup.answer_flow.take() else {
            return false;
        };
        b.phase = Phase::Flow;
        match ivr::Call::new(ivr.flows, &ivr.flow, ivr.variables) {
            Ok(engine) => self.engine = Some(engine),
            Err(e) => {
                tracing::error!(error = %e, "cannot start the broadcast's answer flow");
                self.broadcast_hangup("broadcast.delivered");
                return true;
            }
        }
        let now = Instant::now();
        let first = match self.engine.as_mut() {
            Some(engine) => engine.start(now, self.setup.clock.timestamp()),
            None => Vec::new(),
        };
        self.execute(first);
        if let Some(digit) = digit {
            self.engine_event(IvrEvent::Digit(digit));
        }
        true
    }

    fn broadcast_hangup(&mut self, disposition: &str) {
        if let Some(b) = self.broadcast.as_mut() {
            b.phase = Phase::Over;
        }
        self.stop_audio();
        self.disposition = Some(disposition.to_string());
        self.notify(CallNotice::Hangup {
            leg: self.setup_leg,
            disposition: disposition.to_string(),
        });
    }
}
