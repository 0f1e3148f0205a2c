//! The ACD: every configured queue's [`Queue`] core plus the operator registry that feeds them,
//! without IO. The call layer (inside the SIP task) feeds it what happened and carries out the
//! [`AcdAction`]s it drains, so every SIP consequence (INVITE, CANCEL, BYE) is one step away.
//!
//! Decisions:
//! * **One owner**: the ACD lives in the SIP task next to the endpoint. Every queue command is a
//!   SIP action on that task, so a separate queue task would only add a channel hop each way.
//! * **The registry is the source of truth** for an operator (status, registration, calls in
//!   progress, wrap-up, missed rings). A queue's own effects (an answer counts a call, a miss
//!   counts a miss, `SetAway`) are adopted from that queue's view and pushed to the operator's
//!   other queues, so an operator in several queues is rung for one caller at a time
//!   (`ringing_elsewhere`) and is never over `max_calls`.
//! * **Overflow into another queue** happens here: the caller joins that queue at once (keeping
//!   nothing of the first queue's wait, priority or skills) and the shell hears
//!   [`AcdAction::Joined`] again.
//! * **Wrap-up** follows queue calls only (the queue's `wrap_up`); a call from a flow's `dial`
//!   counts toward `max_calls` but has no wrap-up.
//! * **Gauges** (`openline_queue_waiting{queue}`, `openline_operators{state}`) are set whenever the
//!   ACD settles after an input, i.e. on ACD changes only, never per SIP message. The one change
//!   without an input, a wrap-up running out, is a wake-up of its own in [`Acd::poll_timeout`].

mod members;

pub use members::{MembersEdit, MembersError};

use crate::config::QueueFileConfig;
use crate::queue::{
    AwayReason, CallerId, CancelReason, JoinRequest, OperatorState, Overflow, Presence, Queue,
    QueueCommand, RingFailure,
};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// What a queue plays and where its callers go afterwards (the parts the core does not need).
#[derive(Debug, Clone)]
pub struct QueueMedia {
    pub hold_music: String,
    pub announce_recording: Option<String>,
    pub record: bool,
    pub rating_flow: Option<String>,
}

/// What the call layer must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcdAction {
    /// The caller is now waiting in `queue` (joined, or overflowed into it).
    Joined {
        caller: CallerId,
        queue: String,
        position: usize,
    },
    /// INVITE the operator for this caller.
    Ring {
        caller: CallerId,
        ext: String,
        queue: String,
    },
    /// CANCEL that ring; `completed_elsewhere` asks for the RFC 3326 Reason of a lost race.
    Cancel {
        caller: CallerId,
        ext: String,
        completed_elsewhere: bool,
    },
    /// The operator answered: bridge them to the caller.
    Bridge {
        caller: CallerId,
        ext: String,
        queue: String,
        waited: Duration,
    },
    /// The operator answered a ring that is no longer live: BYE it.
    Reject { caller: CallerId, ext: String },
    /// Tell the caller their 1-based position.
    Announce { caller: CallerId, position: usize },
    /// `max_wait` passed: the caller goes to a flow (`Some`) or is hung up (`None`).
    Overflow {
        caller: CallerId,
        queue: String,
        waited: Duration,
        flow: Option<String>,
    },
    /// The operator's status changed by the server (missed rings): persist and publish it.
    OperatorStatus {
        ext: String,
        status: Presence,
        reason: Option<String>,
    },
}

/// An operator as the ACD sees them.
#[derive(Debug, Clone)]
struct Operator {
    name: String,
    state: OperatorState,
    /// Ringing for this caller of this queue.
    ringing: Option<(String, CallerId)>,
    /// Why the status is what it is, when the server set it (`missed_rings:3`).
    status_reason: Option<String>,
}

struct QueueEntry {
    core: Queue,
    media: QueueMedia,
    /// `openline_queue_waiting{queue=…}`.
    waiting_gauge: metrics::Gauge,
}

/// An operator's live state: what the API shows and what `openline_operators{state}` counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LiveState {
    Offline,
    Away,
    Ringing,
    Talking,
    WrapUp,
    Available,
    Unregistered,
}

impl LiveState {
    /// In declaration order, so `state as usize` is a state's index here.
    const ALL: [LiveState; 7] = [
        LiveState::Offline,
        LiveState::Away,
        LiveState::Ringing,
        LiveState::Talking,
        LiveState::WrapUp,
        LiveState::Available,
        LiveState::Unregistered,
    ];

    fn as_str(self) -> &'static str {
        match self {
            LiveState::Offline => "offline",
            LiveState::Away => "away",
            LiveState::Ringing => "ringing",
            LiveState::Talking => "talking",
            LiveState::WrapUp => "wrap-up",
            LiveState::Available => "available",
            LiveState::Unregistered => "unregistered",
        }
    }

    /// The first that holds, in this order: a status a person set to offline, ringing, on a
    /// call, in wrap-up, away, not registered, else available.
    fn of(op: &Operator, now: Instant) -> LiveState {
        let s = &op.state;
        if s.status == Presence::Offline {
            LiveState::Offline
        } else if op.ringing.is_some() {
            LiveState::Ringing
        } else if s.active_calls > 0 {
            LiveState::Talking
        } else if s.in_wrap_up(now) {
            LiveState::WrapUp
        } else if s.status == Presence::Away {
            LiveState::Away
        } else if !s.registered {
            LiveState::Unregistered
        } else {
            LiveState::Available
        }
    }
}

/// One operator's live state for the API.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct OperatorSnapshot {
    pub extension: String,
    pub name: String,
    /// `online` | `away` | `offline` (what the operator or a manager set).
    pub status: String,
    pub status_reason: Option<String>,
    /// `offline` | `away` | `ringing` | `talking` | `wrap-up` | `available` | `unregistered`.
    pub state: String,
    pub registered: bool,
    pub active_calls: u32,
    pub max_calls: u32,
    pub missed_in_a_row: u32,
}

/// A waiting caller for the API.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct WaitingSnapshot {
    pub position: usize,
    /// The call's id.
    pub call_id: String,
    pub waited_ms: u64,
    /// Extensions ringing for this caller now.
    pub ringing: Vec<String>,
    /// The caller's priority (higher waits ahead).
    pub priority: i32,
    /// Skills still asked for (none once the queue's `skills_wait` has passed).
    pub skills: Vec<String>,
}

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct QueueSnapshot {
    pub name: String,
    pub strategy: String,
    pub waiting: Vec<WaitingSnapshot>,
    pub operators: Vec<OperatorSnapshot>,
}

pub struct Acd {
    queues: BTreeMap<String, QueueEntry>,
    operators: BTreeMap<String, Operator>,
    /// Waiting callers: which queue they are in.
    callers: HashMap<CallerId, String>,
    actions: std::collections::VecDeque<AcdAction>,
    /// `openline_operators{state=…}`, in [`LiveState::ALL`] order. Handles are looked up once:
    /// setting one is an atomic store.
    state_gauges: [metrics::Gauge; LiveState::ALL.len()],
    /// The next wrap-up end, when an operator's state (and the gauges) change with no input.
    next_wrap_up_end: Option<Instant>,
}

/// An operator from the config with the status stored for them.
pub struct OperatorSeed {
    pub extension: String,
    pub name: String,
    pub max_calls: u32,
    pub status: Presence,
    pub status_reason: Option<String>,
    /// `[[operators]] skills`.
    pub skills: Vec<String>,
}

pub fn presence_name(p: Presence) -> &'static str {
    match p {
        Presence::Online => "online",
        Presence::Away => "away",
        Presence::Offline => "offline",
    }
}

pub fn parse_presence(text: &str) -> Option<Presence> {
    match text {
        "online" => Some(Presence::Online),
        "away" => Some(Presence::Away),
        "offline" => Some(Presence::Offline),
        _ => None,
    }
}

impl Acd {
    /// Queues from the config (validated there) and the operators with their stored status;
    /// nobody is registered yet.
    pub fn new(queues: &[QueueFileConfig], operators: Vec<OperatorSeed>, now: Instant) -> Self {
        let mut acd = Acd {
            queues: BTreeMap::new(),
            operators: BTreeMap::new(),
            callers: HashMap::new(),
            actions: Default::default(),
            state_gauges: LiveState::ALL
                .map(|state| metrics::gauge!("openline_operators", "state" => state.as_str())),
            next_wrap_up_end: None,
        };
        for q in queues {
            match Queue::new(q.core()) {
                Ok(core) => {
                    acd.queues.insert(
                        q.name.clone(),
                        QueueEntry {
                            core,
                            media: QueueMedia {
                                hold_music: q.hold_music.clone(),
                                announce_recording: q.announce_recording.clone(),
                                record: q.record,
                                rating_flow: q.rating_flow.clone(),
                            },
                            waiting_gauge: metrics::gauge!(
                                "openline_queue_waiting", "queue" => q.name.clone()
                            ),
                        },
                    );
                }
                Err(e) => tracing::error!(queue = %q.name, error = %e, "queue not started"),
            }
        }
        for seed in operators {
            let mut state = OperatorState::online(seed.extension.clone());
            state.status = seed.status;
            state.registered = false;
            state.max_calls = seed.max_calls.max(1);
            state.skills = seed.skills.iter().map(|s| s.to_lowercase()).collect();
            acd.operators.insert(
                seed.extension.clone(),
                Operator {
                    name: seed.name,
                    state,
                    ringing: None,
                    status_reason: seed.status_reason,
                },
            );
        }
        let exts: Vec<String> = acd.operators.keys().cloned().collect();
        for ext in exts {
            acd.push(now, &ext);
        }
        acd.publish(now);
        acd
    }

    pub fn has_queue(&self, name: &str) -> bool {
        self.queues.contains_key(name)
    }

    pub fn media(&self, queue: &str) -> Option<&QueueMedia> {
        self.queues.get(queue).map(|q| &q.media)
    }

    pub fn is_operator(&self, ext: &str) -> bool {
        self.operators.contains_key(ext)
    }

    pub fn poll_action(&mut self) -> Option<AcdAction> {
        self.actions.pop_front()
    }

    /// When to call [`Acd::handle_timeout`]: the queues' timers, and the next wrap-up end.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.queues
            .values()
            .filter_map(|q| q.core.poll_timeout())
            .chain(self.next_wrap_up_end)
            .min()
    }

    /// The caller enters `queue`; false when there is no such queue.
    pub fn join(
        &mut self,
        now: Instant,
        caller: CallerId,
        queue: &str,
        mut request: JoinRequest,
    ) -> bool {
        let Some(q) = self.queues.get_mut(queue) else {
            return false;
        };
        // Skills no member has at all (a typo in a flow, the last skilled member removed) would
        // keep the caller on hold music for ever: they are dropped, loudly.
        let operators = &self.operators;
        let someone_has_them = q.core.config().members.iter().any(|m| {
            operators
                .get(m)
                .is_some_and(|op| op.state.has_skills(&request.skills))
        });
        if !someone_has_them && !request.skills.is_empty() {
            tracing::warn!(%queue, skills = ?request.skills, "no member of the queue has these skills; the caller takes any member");
            request.skills.clear();
        }
        if q.core.join_with(now, caller, request).is_err() {
            return true; // already waiting there
        }
        self.callers.insert(caller, queue.to_string());
        let position = q.core.position(caller).unwrap_or(1);
        self.actions.push_back(AcdAction::Joined {
            caller,
            queue: queue.to_string(),
            position,
        });
        self.settle(now);
        true
    }

    /// The caller hung up while waiting: their rings are cancelled. Returns the queue and the
    /// wait, or `None` if they were not waiting.
    pub fn leave(&mut self, now: Instant, caller: CallerId) -> Option<(String, Duration)> {
        let queue = self.callers.remove(&caller)?;
        let waited = self.queues.get_mut(&queue)?.core.leave(now, caller)?;
        self.settle(now);
        Some((queue, waited))
    }

    /// Whether the operator has a live registration now.
    pub fn set_registered(&mut self, now: Instant, ext: &str, registered: bool) {
        let Some(op) = self.operators.get_mut(ext) else {
            return;
        };
        if op.state.registered == registered {
            return;
        }
        op.state.registered = registered;
        self.push(now, ext);
        self.settle(now);
    }

    /// The operator or a manager set the status (the API).
    pub fn set_status(
        &mut self,
        now: Instant,
        ext: &str,
        status: Presence,
        reason: Option<String>,
    ) -> bool {
        let Some(op) = self.operators.get_mut(ext) else {
            return false;
        };
        op.state.status = status;
        op.state.missed_in_a_row = 0;
        op.status_reason = reason;
        self.push(now, ext);
        self.settle(now);
        true
    }

    /// The operator answered the ring for this caller.
    pub fn ring_answered(&mut self, now: Instant, caller: CallerId, ext: &str) {
        let queue = self.ringing_queue(ext, caller);
        match queue {
            Some(queue) => {
                self.clear_ringing(ext, caller);
                if let Some(q) = self.queues.get_mut(&queue) {
                    q.core.ring_answered(now, caller, ext);
                }
                self.adopt(now, &queue, ext);
            }
            None => self.actions.push_back(AcdAction::Reject {
                caller,
                ext: ext.to_string(),
            }),
        }
        self.settle(now);
    }

    /// The ring ended without an answer (busy, no answer, unreachable).
    pub fn ring_failed(&mut self, now: Instant, caller: CallerId, ext: &str, why: RingFailure) {
        let Some(queue) = self.ringing_queue(ext, caller) else {
            return;
        };
        self.clear_ringing(ext, caller);
        if let Some(q) = self.queues.get_mut(&queue) {
            q.core.ring_failed(now, caller, ext, why);
        }
        self.adopt(now, &queue, ext);
        self.settle(now);
    }

    /// New skills for an operator (config reload); callers waiting are offered by them now.
    pub fn set_skills(&mut self, now: Instant, ext: &str, skills: &[String]) {
        let Some(op) = self.operators.get_mut(ext) else {
            return;
        };
        op.state.skills = skills.iter().map(|s| s.to_lowercase()).collect();
        self.push(now, ext);
        self.settle(now);
    }

    /// An operator added by a config reload (online, `registered` as the registrar says), or
    /// one whose name or `max_calls` changed; their queues see them at once.
    pub fn upsert_operator(&mut self, now: Instant, seed: OperatorSeed, registered: bool) {
        let op = self
            .operators
            .entry(seed.extension.clone())
            .or_insert_with(|| {
                let mut state = OperatorState::online(seed.extension.clone());
                state.status = seed.status;
                state.registered = registered;
                Operator {
                    name: String::new(),
                    state,
                    ringing: None,
                    status_reason: seed.status_reason.clone(),
                }
            });
        op.name = seed.name;
        op.state.max_calls = seed.max_calls.max(1);
        op.state.skills = seed.skills.iter().map(|s| s.to_lowercase()).collect();
        self.push(now, &seed.extension);
        self.settle(now);
    }

    /// Calls the operator is on now (queue calls and others), or is being rung for.
    pub fn is_busy(&self, ext: &str) -> bool {
        self.operators
            .get(ext)
            .is_some_and(|op| op.state.active_calls > 0 || op.ringing.is_some())
    }

    /// A call of the operator's began outside the queues (a flow's `dial`).
    pub fn call_started(&mut self, now: Instant, ext: &str) {
        let Some(op) = self.operators.get_mut(ext) else {
            return;
        };
        op.state.active_calls = op.state.active_calls.saturating_add(1);
        self.push(now, ext);
        self.settle(now);
    }

    /// A call of the operator's ended; a queue call starts that queue's wrap-up.
    pub fn call_ended(&mut self, now: Instant, ext: &str, queue: Option<&str>) {
        let wrap_up = queue
            .and_then(|q| self.queues.get(q))
            .map(|q| q.core.config().wrap_up)
            .unwrap_or_default();
        let Some(op) = self.operators.get_mut(ext) else {
            return;
        };
        op.state.active_calls = op.state.active_calls.saturating_sub(1);
        if queue.is_some() {
            op.state.last_call_ended = Some(now);
            op.state.wrap_up_until = (!wrap_up.is_zero())
                .then(|| now.checked_add(wrap_up))
                .flatten();
        }
        self.push(now, ext);
        self.settle(now);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let names: Vec<String> = self.queues.keys().cloned().collect();
        for name in names {
            let due = self.queues[&name]
                .core
                .poll_timeout()
                .is_some_and(|t| t <= now);
            if due && let Some(q) = self.queues.get_mut(&name) {
                q.core.handle_timeout(now);
            }
        }
        self.settle(now);
    }

    /// Every queue's state for the API.
    pub fn snapshot(
        &self,
        now: Instant,
        call_ids: &dyn Fn(CallerId) -> String,
    ) -> Vec<QueueSnapshot> {
        self.queues
            .iter()
            .map(|(name, q)| {
                let waiting = q
                    .core
                    .waiting_requests()
                    .enumerate()
                    .map(|(i, (caller, joined, priority, skills))| WaitingSnapshot {
                        position: i + 1,
                        call_id: call_ids(caller),
                        waited_ms: now.saturating_duration_since(joined).as_millis() as u64,
                        ringing: q
                            .core
                            .ringing()
                            .filter(|(c, _)| *c == caller)
                            .map(|(_, ext)| ext.to_string())
                            .collect(),
                        priority,
                        skills: skills.iter().cloned().collect(),
                    })
                    .collect();
                let config = q.core.config();
                QueueSnapshot {
                    name: name.clone(),
                    strategy: match config.strategy {
                        crate::queue::Strategy::Evenly => "evenly",
                        crate::queue::Strategy::InOrder => "in_order",
                        crate::queue::Strategy::All => "all",
                    }
                    .to_string(),
                    waiting,
                    operators: config
                        .members
                        .iter()
                        .filter_map(|m| self.operator_snapshot(now, m))
                        .collect(),
                }
            })
            .collect()
    }

    pub fn operators_snapshot(&self, now: Instant) -> Vec<OperatorSnapshot> {
        self.operators
            .keys()
            .filter_map(|ext| self.operator_snapshot(now, ext))
            .collect()
    }

    fn operator_snapshot(&self, now: Instant, ext: &str) -> Option<OperatorSnapshot> {
        let op = self.operators.get(ext)?;
        let s = &op.state;
        Some(OperatorSnapshot {
            extension: ext.to_string(),
            name: op.name.clone(),
            status: presence_name(s.status).to_string(),
            status_reason: op.status_reason.clone(),
            state: LiveState::of(op, now).as_str().to_string(),
            registered: s.registered,
            active_calls: s.active_calls,
            max_calls: s.max_calls,
            missed_in_a_row: s.missed_in_a_row,
        })
    }

    fn ringing_queue(&self, ext: &str, caller: CallerId) -> Option<String> {
        let op = self.operators.get(ext)?;
        match &op.ringing {
            Some((queue, c)) if *c == caller => Some(queue.clone()),
            _ => None,
        }
    }

    fn clear_ringing(&mut self, ext: &str, caller: CallerId) {
        if let Some(op) = self.operators.get_mut(ext)
            && op.ringing.as_ref().is_some_and(|(_, c)| *c == caller)
        {
            op.ringing = None;
        }
    }

    /// Takes a queue's own changes to an operator (answers, misses, away) into the registry and
    /// tells the operator's other queues.
    fn adopt(&mut self, now: Instant, queue: &str, ext: &str) {
        let Some(view) = self.queues.get(queue).and_then(|q| q.core.operator(ext)) else {
            // Not a member any more (removed while ringing): nothing to adopt, but the other
            // queues must still hear that the ring is over (`ringing_elsewhere`).
            self.push(now, ext);
            return;
        };
        let (status, active, missed) = (view.status, view.active_calls, view.missed_in_a_row);
        if let Some(op) = self.operators.get_mut(ext) {
            op.state.status = status;
            op.state.active_calls = active;
            op.state.missed_in_a_row = missed;
        }
        self.push(now, ext);
    }

    /// Replaces every member queue's view of the operator with the registry's.
    fn push(&mut self, now: Instant, ext: &str) {
        let Some(op) = self.operators.get(ext) else {
            return;
        };
        for (name, q) in self.queues.iter_mut() {
            if !q.core.config().members.iter().any(|m| m == ext) {
                continue;
            }
            let mut state = op.state.clone();
            state.ringing_elsewhere = op.ringing.as_ref().is_some_and(|(rq, _)| rq != name);
            if q.core.operator(ext) != Some(&state) {
                q.core.operator_changed(now, state);
            }
        }
    }

    /// Drains every queue's commands into actions until no queue has more (one queue's command
    /// can change an operator that another queue then acts on).
    fn settle(&mut self, now: Instant) {
        loop {
            let mut any = false;
            let names: Vec<String> = self.queues.keys().cloned().collect();
            for name in names {
                while let Some(command) = self
                    .queues
                    .get_mut(&name)
                    .and_then(|q| q.core.poll_command())
                {
                    any = true;
                    self.apply(now, &name, command);
                }
            }
            if !any {
                break;
            }
        }
        self.publish(now);
    }

    /// Sets the gauges from the state the last input left, and notes the next wrap-up end (an
    /// operator becomes available then with no input, so [`Acd::poll_timeout`] wakes for it).
    /// A walk over the operators, once per ACD input.
    fn publish(&mut self, now: Instant) {
        for q in self.queues.values() {
            q.waiting_gauge.set(q.core.waiting_count() as f64);
        }
        let mut counts = [0u32; LiveState::ALL.len()];
        let mut next_wrap_up_end: Option<Instant> = None;
        for op in self.operators.values() {
            counts[LiveState::of(op, now) as usize] += 1;
            if let Some(until) = op.state.wrap_up_until.filter(|t| *t > now) {
                next_wrap_up_end = Some(next_wrap_up_end.map_or(until, |t| t.min(until)));
            }
        }
        for (gauge, count) in self.state_gauges.iter().zip(counts) {
            gauge.set(f64::from(count));
        }
        self.next_wrap_up_end = next_wrap_up_end;
    }

    fn apply(&mut self, now: Instant, queue: &str, command: QueueCommand) {
        match command {
            QueueCommand::Ring { caller, ext } => {
                if let Some(op) = self.operators.get_mut(&ext) {
                    op.ringing = Some((queue.to_string(), caller));
                }
                self.actions.push_back(AcdAction::Ring {
                    caller,
                    ext: ext.clone(),
                    queue: queue.to_string(),
                });
                self.push(now, &ext);
            }
            QueueCommand::CancelRing {
                caller,
                ext,
                reason,
            } => {
                self.clear_ringing(&ext, caller);
                self.actions.push_back(AcdAction::Cancel {
                    caller,
                    ext: ext.clone(),
                    completed_elsewhere: reason == CancelReason::AnsweredElsewhere,
                });
                self.adopt(now, queue, &ext);
            }
            QueueCommand::Bridge {
                caller,
                ext,
                waited,
            } => {
                self.callers.remove(&caller);
                self.actions.push_back(AcdAction::Bridge {
                    caller,
                    ext,
                    queue: queue.to_string(),
                    waited,
                });
            }
            QueueCommand::Reject { caller, ext } => {
                self.actions.push_back(AcdAction::Reject { caller, ext });
            }
            QueueCommand::Announce { caller, position } => {
                self.actions
                    .push_back(AcdAction::Announce { caller, position });
            }
            QueueCommand::Overflow { caller, to } => {
                self.callers.remove(&caller);
                let waited = self.queues[queue]
                    .core
                    .config()
                    .max_wait
                    .unwrap_or_default();
                let flow = match to {
                    Overflow::Queue(next) if self.queues.contains_key(&next) && next != queue => {
                        self.join(now, caller, &next, JoinRequest::default());
                        return;
                    }
                    Overflow::Flow(flow) => Some(flow),
                    Overflow::Queue(_) | Overflow::Hangup => None,
                };
                self.actions.push_back(AcdAction::Overflow {
                    caller,
                    queue: queue.to_string(),
                    waited,
                    flow,
                });
            }
            QueueCommand::SetAway { ext, reason } => {
                let AwayReason::MissedRings { count } = reason;
                let why = format!("missed_rings:{count}");
                if let Some(op) = self.operators.get_mut(&ext) {
                    op.status_reason = Some(why.clone());
                }
                self.actions.push_back(AcdAction::OperatorStatus {
                    ext: ext.clone(),
                    status: Presence::Away,
                    reason: Some(why),
                });
                self.adopt(now, queue, &ext);
            }
        }
    }
}

#[cfg(test)]
mod tests;
