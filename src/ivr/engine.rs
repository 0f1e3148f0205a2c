//! The flow engine: one [`Call`] walks one caller through a flow, sans IO. The call task feeds it
//! [`Event`]s with the time they happened (`now` for timers, `utc` for business hours) and carries
//! out the [`Command`]s it returns; [`Call::poll_timeout`] says when to feed it [`Event::Timeout`].
//!
//! Contract with the shell:
//! * `Play` replaces whatever is playing. Report the end of each `Play` (all its prompts) once as
//!   `PlaybackFinished { interrupted: false }`, also when a file cannot be played (the caller must
//!   not be left waiting). A prompt stopped by a key (barge-in), by `StopPlayback` or by a newer
//!   `Play` is `interrupted: true`, which the engine ignores — it already moved on.
//! * Digits go to the engine as they are detected; it decides what they mean.
//! * Each `Webhook` gets exactly one `WebhookResult` (the shell enforces the timeout and sends
//!   `Err("timeout")`); each `Record` one `RecordingFinished`; each `Dial` and `Enqueue` their result.
//! * `Hangup { disposition }` ends the call (send BYE). After `Event::Hangup` (the caller left) the
//!   engine still returns a `Hangup` saying how the call ended, for the call record.
//! * A call keeps the [`FlowSet`] snapshot it started with: a reload never changes its flows.

use super::flow::{
    Dtmf, Flow, FlowId, FlowSet, Gather, MAX_PRIORITY, NodeId, NodeKind, PromptSpec,
};
use super::schema::dial_target_ok;
use super::template::percent_encode;
use jiff::Timestamp;
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Stable dotted codes for how a call left the IVR (stored in call records).
pub mod disposition {
    /// The flow ended: a `hangup` node or a node with nowhere to go next.
    pub const COMPLETED: &str = "ivr.completed";
    /// The caller hung up in the IVR.
    pub const ABANDONED: &str = "ivr.abandoned";
    pub const MENU_FAILED: &str = "ivr.menu_failed";
    pub const GATHER_FAILED: &str = "ivr.gather_failed";
    pub const RATE_FAILED: &str = "ivr.rate_failed";
    pub const WEBHOOK_FAILED: &str = "ivr.webhook_failed";
    /// A `goto` or queue overflow named a flow that is not loaded.
    pub const GOTO_FAILED: &str = "ivr.goto_failed";
    /// The flow went round without waiting for the caller.
    pub const LOOP: &str = "ivr.loop";
    pub const QUEUE_UNAVAILABLE: &str = "queue.unavailable";
    pub const QUEUE_ABANDONED: &str = "queue.abandoned";
    /// An operator from the queue talked to the caller (and no rating flow followed).
    pub const QUEUE_COMPLETED: &str = "queue.completed";
    pub const DIAL_FAILED: &str = "dial.failed";
    pub const DIAL_COMPLETED: &str = "dial.completed";
    pub const VOICEMAIL_LEFT: &str = "voicemail.left";
    /// The caller recorded (almost) nothing.
    pub const VOICEMAIL_EMPTY: &str = "voicemail.empty";
}
use disposition as d;

/// Nodes a call may pass in one step without waiting for the caller.
const MAX_HOPS: usize = 100;
/// Path steps kept for the call record.
const MAX_PATH: usize = 1000;
/// Keys kept per path step.
const MAX_STEP_DIGITS: usize = 256;
/// A recording shorter than this is an empty voicemail.
const MIN_MESSAGE_MS: u64 = 1000;
/// Beyond `max_length`, how long the engine waits for `RecordingFinished` before it stops.
const RECORD_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompt {
    /// Relative to the sounds dir.
    File(String),
    Say {
        text: String,
        voice: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Play {
        prompts: Vec<Prompt>,
        barge_in: bool,
    },
    StopPlayback,
    /// Voicemail: beep if asked, record until `finish_digit`, `max_length` or hang-up; stored as
    /// a recording of the call.
    Record {
        max_length: Duration,
        beep: bool,
        finish_digit: Option<char>,
    },
    StopRecording,
    /// HTTP POST of `body` as JSON; answer with one `Event::WebhookResult`.
    Webhook {
        url: String,
        body: Json,
        timeout: Duration,
    },
    Enqueue {
        queue: String,
        skills: Vec<String>,
        priority: i32,
    },
    Dial {
        target: String,
        timeout: Duration,
        /// The target is written out in the flow file (no `${var}`): only then may it be an
        /// external number for the trunk. A target built from variables can carry what the
        /// caller typed or dialed, and must never place a call on the trunk (toll fraud).
        literal: bool,
    },
    SetRating(u8),
    /// Something an admin should see in the log (a webhook error, a loop).
    Log {
        message: String,
    },
    Hangup {
        disposition: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum QueueResult {
    /// No such queue: the call ends as `queue.unavailable`.
    Unavailable,
    /// An operator answered; the caller talks to them (a hangup now is `queue.completed`).
    Answered,
    /// The queue hands the caller to a flow (overflow `flow:ID`, or a rating flow after the call).
    Continue { flow: FlowId },
    /// The queue ended the call with this disposition.
    Ended { disposition: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialResult {
    /// The other side answered; the legs are bridged.
    Answered,
    /// The other side hung up after talking; the caller is still here.
    Completed,
    /// Busy, no answer, unreachable or not allowed.
    Failed { reason: String },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    PlaybackFinished {
        interrupted: bool,
    },
    Digit(char),
    /// `poll_timeout` has passed.
    Timeout,
    WebhookResult(Result<Json, String>),
    RecordingFinished {
        duration_ms: u64,
    },
    QueueResult(QueueResult),
    DialResult(DialResult),
    /// The operator transferred the caller to this flow: it starts there, whatever node had
    /// connected them (the path goes on, so the call's record keeps the whole way).
    Transfer {
        flow: FlowId,
    },
    /// The caller hung up.
    Hangup,
}

/// One node visited, with the keys pressed there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathStep {
    pub flow: FlowId,
    pub node: NodeId,
    pub digits: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("no flow `{0}` is loaded")]
    UnknownFlow(String),
}

/// Where to go after a node.
enum Next {
    Node(NodeId),
    Flow(Arc<Flow>, Option<NodeId>),
    /// The flow ran out of nodes: `ivr.completed`, or what an earlier node decided (voicemail).
    Done,
    End(String),
}

/// A deadline `after` from `now` (flow durations are at most 24h; never overflows).
fn later(now: Instant, after: Duration) -> Instant {
    now.checked_add(after).unwrap_or(now)
}

fn next_or_done(next: &Option<NodeId>) -> Next {
    next.clone().map_or(Next::Done, Next::Node)
}

fn or_end(next: &Option<NodeId>, disposition: &str) -> Next {
    next.clone()
        .map_or_else(|| Next::End(disposition.to_owned()), Next::Node)
}

/// What the call waits for. `None` deadlines: the prompt is still playing.
#[derive(Debug)]
enum State {
    NotStarted,
    Playing {
        next: Option<NodeId>,
    },
    Menu {
        node: NodeId,
        deadline: Option<Instant>,
    },
    Rate {
        node: NodeId,
        tries: u32,
        deadline: Option<Instant>,
    },
    Gather {
        node: NodeId,
        tries: u32,
        digits: String,
        deadline: Option<Instant>,
    },
    Greeting {
        node: NodeId,
    },
    Recording {
        node: NodeId,
        deadline: Instant,
    },
    Webhook {
        node: NodeId,
    },
    /// Waiting in a queue, or (`answered`) talking to the operator it found.
    Queued {
        answered: bool,
    },
    Dialing {
        node: NodeId,
        answered: bool,
    },
    Ended,
}

pub struct Call {
    flows: Arc<FlowSet>,
    flow: Arc<Flow>,
    state: State,
    vars: BTreeMap<String, String>,
    path: Vec<PathStep>,
    /// Failed tries per menu, kept across `on_invalid` trips; cleared by a right key or on_fail.
    menu_tries: BTreeMap<(FlowId, NodeId), u32>,
    /// How the call ends when the flow runs out (`voicemail.left` once a message is recorded).
    outcome: Option<&'static str>,
    disposition: Option<String>,
}

impl Call {
    /// A call about to enter `flow`; `vars` are the first variables (`caller`, `called`, `call_id`).
    pub fn new(
        flows: Arc<FlowSet>,
        flow: &str,
        vars: BTreeMap<String, String>,
    ) -> Result<Call, CallError> {
        let start = flows
            .get(flow)
            .cloned()
            .ok_or_else(|| CallError::UnknownFlow(flow.to_owned()))?;
        Ok(Call {
            flows,
            flow: start,
            state: State::NotStarted,
            vars,
            path: Vec::new(),
            menu_tries: BTreeMap::new(),
            outcome: None,
            disposition: None,
        })
    }

    /// Enters the flow's entry node.
    pub fn start(&mut self, now: Instant, utc: Timestamp) -> Vec<Command> {
        let mut out = Vec::new();
        if matches!(self.state, State::NotStarted) {
            let entry = self.flow.entry.clone();
            self.go(now, utc, Next::Node(entry), &mut out);
        }
        out
    }

    pub fn step(&mut self, now: Instant, utc: Timestamp, event: Event) -> Vec<Command> {
        let mut out = Vec::new();
        let state = std::mem::replace(&mut self.state, State::Ended);
        if matches!(state, State::NotStarted) && event == Event::Hangup {
            self.end(d::ABANDONED, &mut out);
            return out;
        }
        if matches!(state, State::NotStarted | State::Ended) {
            self.state = state;
            return out;
        }
        if event == Event::Hangup {
            self.caller_left(state, &mut out);
            return out;
        }
        if let Event::Transfer { flow } = &event {
            let next = self.flow_named(flow, None, &mut out);
            self.go(now, utc, next, &mut out);
            return out;
        }
        let (state, next) = self.handle(state, now, event, &mut out);
        self.state = state;
        if let Some(next) = next {
            self.go(now, utc, next, &mut out);
        }
        out
    }

    /// When to call `step` with `Event::Timeout`.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            State::Menu { deadline, .. }
            | State::Rate { deadline, .. }
            | State::Gather { deadline, .. } => *deadline,
            State::Recording { deadline, .. } => Some(*deadline),
            _ => None,
        }
    }

    /// Every node visited, in order, with the keys pressed there.
    pub fn path(&self) -> &[PathStep] {
        &self.path
    }

    pub fn variables(&self) -> &BTreeMap<String, String> {
        &self.vars
    }

    /// The flow the caller is in now.
    pub fn flow(&self) -> &FlowId {
        &self.flow.id
    }

    /// How the call ended, once it has.
    pub fn disposition(&self) -> Option<&str> {
        self.disposition.as_deref()
    }

    /// The flows this call reaches from now on (a transfer hands the caller to a flow in the
    /// set in force now, which a hot reload may have changed since the call began).
    pub fn adopt_flows(&mut self, flows: Arc<FlowSet>) {
        self.flows = flows;
    }

    pub fn is_ended(&self) -> bool {
        matches!(self.state, State::Ended)
    }

    fn go(&mut self, now: Instant, utc: Timestamp, mut next: Next, out: &mut Vec<Command>) {
        for _ in 0..MAX_HOPS {
            next = match next {
                Next::Done => {
                    let d = self.outcome.unwrap_or(d::COMPLETED);
                    return self.end(d, out);
                }
                Next::End(d) => return self.end(&d, out),
                Next::Flow(flow, node) => {
                    let node = node.unwrap_or_else(|| flow.entry.clone());
                    self.flow = flow;
                    Next::Node(node)
                }
                Next::Node(id) => match self.enter(now, utc, id, out) {
                    Some(next) => next,
                    None => return,
                },
            };
        }
        out.push(Command::Log {
            message: format!(
                "flow `{}` went through {MAX_HOPS} nodes without waiting for the caller",
                self.flow.id
            ),
        });
        self.end(d::LOOP, out);
    }

    fn end(&mut self, disposition: &str, out: &mut Vec<Command>) {
        self.state = State::Ended;
        self.disposition = Some(disposition.to_owned());
        out.push(Command::Hangup {
            disposition: disposition.to_owned(),
        });
    }

    fn caller_left(&mut self, state: State, out: &mut Vec<Command>) {
        let disposition = match state {
            State::Recording { .. } => {
                out.push(Command::StopRecording);
                d::VOICEMAIL_LEFT
            }
            State::Queued { answered: false } => d::QUEUE_ABANDONED,
            State::Queued { answered: true } => d::QUEUE_COMPLETED,
            State::Dialing { answered: true, .. } => d::DIAL_COMPLETED,
            _ => self.outcome.unwrap_or(d::ABANDONED),
        };
        self.end(disposition, out);
    }

    fn record_digit(&mut self, digit: Dtmf) {
        if let Some(step) = self.path.last_mut()
            && step.digits.len() < MAX_STEP_DIGITS
        {
            step.digits.push(digit.as_char());
        }
    }

    fn prompts(&self, spec: &PromptSpec) -> Vec<Prompt> {
        match spec {
            PromptSpec::Files(files) => files.iter().cloned().map(Prompt::File).collect(),
            PromptSpec::Say { text, voice } => vec![Prompt::Say {
                text: text.render(&self.vars),
                voice: voice.clone(),
            }],
        }
    }

    fn play(&self, spec: &PromptSpec, barge_in: bool, out: &mut Vec<Command>) {
        out.push(Command::Play {
            prompts: self.prompts(spec),
            barge_in,
        });
    }

    /// Runs a node: returns where to go at once, or `None` when the call now waits.
    fn enter(
        &mut self,
        now: Instant,
        utc: Timestamp,
        id: NodeId,
        out: &mut Vec<Command>,
    ) -> Option<Next> {
        let flow = Arc::clone(&self.flow);
        let Some(kind) = flow.node(&id) else {
            out.push(Command::Log {
                message: format!("flow `{}` has no node `{id}`", flow.id),
            });
            return Some(Next::End(d::COMPLETED.to_owned()));
        };
        if self.path.len() < MAX_PATH {
            self.path.push(PathStep {
                flow: flow.id.clone(),
                node: id.clone(),
                digits: String::new(),
            });
        }
        match kind {
            NodeKind::Play { files, next } => {
                self.play(&PromptSpec::Files(files.clone()), false, out);
                self.state = State::Playing { next: next.clone() };
            }
            NodeKind::Say { text, voice, next } => {
                let spec = PromptSpec::Say {
                    text: text.clone(),
                    voice: voice.clone(),
                };
                self.play(&spec, false, out);
                self.state = State::Playing { next: next.clone() };
            }
            NodeKind::Menu(m) => {
                self.play(&m.prompt, m.barge_in, out);
                self.state = State::Menu {
                    node: id,
                    deadline: None,
                };
            }
            NodeKind::Rate(r) => {
                self.play(&r.prompt, r.barge_in, out);
                self.state = State::Rate {
                    node: id,
                    tries: 0,
                    deadline: None,
                };
            }
            NodeKind::Gather(g) => {
                let deadline = self.gather_prompt(g, now, out);
                self.state = State::Gather {
                    node: id,
                    tries: 0,
                    digits: String::new(),
                    deadline,
                };
            }
            NodeKind::Queue {
                queue,
                skills,
                priority,
            } => {
                let priority = priority.as_ref().map_or(0, |p| {
                    let text = p.render(&self.vars);
                    match text.trim().parse::<i32>() {
                        Ok(n) if (-MAX_PRIORITY..=MAX_PRIORITY).contains(&n) => n,
                        _ => {
                            tracing::warn!(%queue, priority = %text, "queue priority is not a whole number from -1000 to 1000; 0 is used");
                            0
                        }
                    }
                });
                out.push(Command::Enqueue {
                    queue: queue.clone(),
                    skills: skills.clone(),
                    priority,
                });
                self.state = State::Queued { answered: false };
            }
            NodeKind::Dial {
                target,
                timeout,
                next: _,
                on_fail,
            } => {
                let literal = target.as_literal().is_some();
                let target = target.render(&self.vars);
                if !dial_target_ok(&target) {
                    out.push(Command::Log {
                        message: format!(
                            "node `{id}`: `{target}` is not an extension or number to dial"
                        ),
                    });
                    return Some(or_end(on_fail, d::DIAL_FAILED));
                }
                out.push(Command::Dial {
                    target,
                    timeout: *timeout,
                    literal,
                });
                self.state = State::Dialing {
                    node: id,
                    answered: false,
                };
            }
            NodeKind::Voicemail { greeting, .. } => {
                if greeting.is_empty() {
                    self.start_recording(id, now, out);
                } else {
                    self.play(&PromptSpec::Files(greeting.clone()), false, out);
                    self.state = State::Greeting { node: id };
                }
            }
            NodeKind::Hours {
                schedule,
                when_open,
                when_closed,
            } => {
                let to = if schedule.is_open(utc) {
                    when_open
                } else {
                    when_closed
                };
                return Some(Next::Node(to.clone()));
            }
            NodeKind::Goto { flow: target, node } => {
                return Some(self.flow_named(target, node.clone(), out));
            }
            NodeKind::Set { vars, next } => {
                for (name, value) in vars {
                    let value = value.render(&self.vars);
                    self.vars.insert(name.clone(), value);
                }
                return Some(next_or_done(next));
            }
            NodeKind::Webhook(w) => {
                let mut body = serde_json::Map::new();
                body.insert("flow".into(), Json::from(flow.id.as_str()));
                body.insert("node".into(), Json::from(id.as_str()));
                let vars: serde_json::Map<String, Json> = self
                    .vars
                    .iter()
                    .map(|(k, v)| (k.clone(), Json::from(v.as_str())))
                    .collect();
                body.insert("variables".into(), Json::Object(vars));
                for (name, value) in &w.body {
                    body.insert(name.clone(), Json::from(value.render(&self.vars)));
                }
                out.push(Command::Webhook {
                    url: w.url.render_with(&self.vars, percent_encode),
                    body: Json::Object(body),
                    timeout: w.timeout,
                });
                self.state = State::Webhook { node: id };
            }
            NodeKind::Hangup => return Some(Next::Done),
        }
        None
    }

    fn flow_named(&self, flow: &FlowId, node: Option<NodeId>, out: &mut Vec<Command>) -> Next {
        match self.flows.get(flow.as_str()) {
            Some(f) => Next::Flow(Arc::clone(f), node),
            None => {
                out.push(Command::Log {
                    message: format!("flow `{flow}` is not loaded"),
                });
                Next::End(d::GOTO_FAILED.to_owned())
            }
        }
    }

    fn start_recording(&mut self, node: NodeId, now: Instant, out: &mut Vec<Command>) {
        let (max_length, beep) = match self.flow.node(&node) {
            Some(NodeKind::Voicemail {
                max_length, beep, ..
            }) => (*max_length, *beep),
            _ => (Duration::from_secs(120), true),
        };
        out.push(Command::Record {
            max_length,
            beep,
            finish_digit: Some('#'),
        });
        self.state = State::Recording {
            node,
            deadline: later(now, max_length.saturating_add(RECORD_GRACE)),
        };
    }

    /// Plays a gather's prompt; without one, the first-key timer starts now.
    fn gather_prompt(&self, g: &Gather, now: Instant, out: &mut Vec<Command>) -> Option<Instant> {
        match &g.prompt {
            Some(p) => {
                self.play(p, g.barge_in, out);
                None
            }
            None => Some(later(now, g.timeout)),
        }
    }
}

mod waiting;

#[cfg(test)]
mod tests;
