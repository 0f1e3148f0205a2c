//! The queue state machine: waiting callers, rings in flight, timers; drained for commands.

use super::policy::{self, Offer};
use super::{
    AwayReason, CallerId, CancelReason, JoinRequest, OperatorState, Presence, QueueCommand,
    QueueConfig, QueueConfigError, QueueError, RingFailure,
};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

/// A caller waiting in the queue.
#[derive(Debug, Clone)]
struct Waiting {
    id: CallerId,
    joined: Instant,
    /// `max_wait` reached (overflow).
    deadline: Option<Instant>,
    next_announce: Option<Instant>,
    /// Members tried in the current round.
    tried: BTreeSet<String>,
    priority: i32,
    /// Skills still required (cleared at `skills_until`).
    skills: BTreeSet<String>,
    skills_until: Option<Instant>,
}

/// One operator ringing for one caller.
#[derive(Debug, Clone)]
struct Attempt {
    caller: CallerId,
    ext: String,
    /// `ring_timeout` reached.
    deadline: Option<Instant>,
}

/// One queue's state. See the module docs for the contract.
#[derive(Debug, Clone)]
pub struct Queue {
    config: QueueConfig,
    operators: BTreeMap<String, OperatorState>,
    /// By priority, then FIFO: the head is offered first.
    waiting: Vec<Waiting>,
    attempts: Vec<Attempt>,
    commands: VecDeque<QueueCommand>,
}

/// `t + d`, or `None` (never) when that is past what an `Instant` can hold.
fn after(t: Instant, d: Duration) -> Option<Instant> {
    t.checked_add(d)
}

impl Queue {
    pub fn new(config: QueueConfig) -> Result<Self, QueueConfigError> {
        config.validate()?;
        Ok(Queue {
            config,
            operators: BTreeMap::new(),
            waiting: Vec::new(),
            attempts: Vec::new(),
            commands: VecDeque::new(),
        })
    }

    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    /// The queue's view of a member.
    pub fn operator(&self, ext: &str) -> Option<&OperatorState> {
        self.operators.get(ext)
    }

    /// Waiting callers in FIFO order with their join time.
    pub fn waiting(&self) -> impl Iterator<Item = (CallerId, Instant)> + '_ {
        self.waiting.iter().map(|w| (w.id, w.joined))
    }

    /// Waiting callers in order with their join time, priority and the skills still asked for.
    pub fn waiting_requests(
        &self,
    ) -> impl Iterator<Item = (CallerId, Instant, i32, &BTreeSet<String>)> + '_ {
        self.waiting
            .iter()
            .map(|w| (w.id, w.joined, w.priority, &w.skills))
    }

    /// How many callers are waiting.
    pub fn waiting_count(&self) -> usize {
        self.waiting.len()
    }

    /// 1-based position of a waiting caller.
    pub fn position(&self, caller: CallerId) -> Option<usize> {
        self.waiting
            .iter()
            .position(|w| w.id == caller)
            .map(|i| i + 1)
    }

    /// Rings in flight as `(caller, ext)`.
    pub fn ringing(&self) -> impl Iterator<Item = (CallerId, &str)> + '_ {
        self.attempts.iter().map(|a| (a.caller, a.ext.as_str()))
    }

    /// The next command for the shell, in order.
    pub fn poll_command(&mut self) -> Option<QueueCommand> {
        self.commands.pop_front()
    }

    /// When to call [`Queue::handle_timeout`] next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let rings = self.attempts.iter().filter_map(|a| a.deadline);
        let callers = self
            .waiting
            .iter()
            .flat_map(|w| [w.deadline, w.next_announce, w.skills_until])
            .flatten();
        // Wrap-up ends matter only while someone waits; `dispatch` clears those already past.
        let wrap_ups = self
            .operators
            .values()
            .filter(|_| !self.waiting.is_empty())
            .filter_map(|op| op.wrap_up_until);
        rings.chain(callers).chain(wrap_ups).min()
    }

    /// A caller enters the queue with no priority and no skills asked.
    pub fn join(&mut self, now: Instant, caller: CallerId) -> Result<(), QueueError> {
        self.join_with(now, caller, JoinRequest::default())
    }

    /// A caller enters the queue, behind every caller of the same or a higher priority.
    pub fn join_with(
        &mut self,
        now: Instant,
        caller: CallerId,
        request: JoinRequest,
    ) -> Result<(), QueueError> {
        if self.position(caller).is_some() {
            return Err(QueueError::AlreadyWaiting {
                queue: self.config.name.clone(),
                caller,
            });
        }
        let skills_until = match (request.skills.is_empty(), self.config.skills_wait) {
            (false, Some(wait)) => after(now, wait),
            _ => None,
        };
        let joined = now.checked_sub(request.waited).unwrap_or(now);
        let at = self
            .waiting
            .iter()
            .position(|w| {
                w.priority < request.priority
                    || (w.priority == request.priority && w.joined > joined)
            })
            .unwrap_or(self.waiting.len());
        self.waiting.insert(
            at,
            Waiting {
                id: caller,
                joined,
                deadline: self.config.max_wait.and_then(|d| after(now, d)),
                next_announce: self
                    .config
                    .announce_every
                    .filter(|d| !d.is_zero())
                    .and_then(|d| after(now, d)),
                tried: BTreeSet::new(),
                priority: request.priority,
                skills: request.skills,
                skills_until,
            },
        );
        self.dispatch(now);
        Ok(())
    }

    /// The members change (API, config reload): a removed member's rings are cancelled and their
    /// view forgotten; an added one is rung once the shell reports their state. Rejects what
    /// the config would (no members, a member twice).
    pub fn set_members(
        &mut self,
        now: Instant,
        members: Vec<String>,
    ) -> Result<(), QueueConfigError> {
        let config = QueueConfig {
            members,
            ..self.config.clone()
        };
        config.validate()?;
        let removed: Vec<String> = self
            .config
            .members
            .iter()
            .filter(|m| !config.members.contains(m))
            .cloned()
            .collect();
        self.config = config;
        for ext in removed {
            self.operators.remove(&ext);
            self.cancel_member_rings(&ext);
        }
        self.dispatch(now);
        Ok(())
    }

    /// The caller hung up: their rings are cancelled and nobody is rung for them again.
    /// Returns how long they waited, or `None` for a caller not waiting here.
    pub fn leave(&mut self, now: Instant, caller: CallerId) -> Option<Duration> {
        let i = self.waiting.iter().position(|w| w.id == caller)?;
        let w = self.waiting.remove(i);
        self.cancel_rings(caller, None, CancelReason::CallerLeft);
        self.dispatch(now);
        Some(now.saturating_duration_since(w.joined))
    }

    /// The shell's view of a member changed (replaces the queue's view wholesale).
    pub fn operator_changed(&mut self, now: Instant, state: OperatorState) {
        if !self.config.members.contains(&state.extension) {
            return;
        }
        let gone = !state.registered || state.status != Presence::Online;
        let ext = state.extension.clone();
        self.operators.insert(ext.clone(), state);
        if gone {
            self.cancel_member_rings(&ext);
        }
        self.dispatch(now);
    }

    /// The operator answered (200 to the INVITE for this caller).
    pub fn ring_answered(&mut self, now: Instant, caller: CallerId, ext: &str) {
        let live = self.take_attempt(caller, ext);
        let waiting = self.waiting.iter().position(|w| w.id == caller);
        let (true, Some(i)) = (live, waiting) else {
            self.commands.push_back(QueueCommand::Reject {
                caller,
                ext: ext.to_string(),
            });
            return;
        };
        let w = self.waiting.remove(i);
        if let Some(op) = self.operators.get_mut(ext) {
            op.active_calls = op.active_calls.saturating_add(1);
            op.missed_in_a_row = 0;
        }
        self.commands.push_back(QueueCommand::Bridge {
            caller,
            ext: ext.to_string(),
            waited: now.saturating_duration_since(w.joined),
        });
        self.cancel_rings(caller, None, CancelReason::AnsweredElsewhere);
        self.dispatch(now);
    }

    /// The operator's INVITE for this caller ended without an answer.
    pub fn ring_failed(&mut self, now: Instant, caller: CallerId, ext: &str, reason: RingFailure) {
        if !self.take_attempt(caller, ext) {
            return;
        }
        if matches!(reason, RingFailure::NoAnswer | RingFailure::Rejected) {
            self.missed(ext);
        }
        self.dispatch(now);
    }

    /// An operator's call (from this queue or not) ended: wrap-up starts.
    pub fn call_ended(&mut self, now: Instant, ext: &str) {
        let wrap_up = self.config.wrap_up;
        let Some(op) = self.operators.get_mut(ext) else {
            return;
        };
        op.active_calls = op.active_calls.saturating_sub(1);
        op.last_call_ended = Some(now);
        op.wrap_up_until = if wrap_up.is_zero() {
            None
        } else {
            after(now, wrap_up)
        };
        self.dispatch(now);
    }

    /// Ring timeouts, overflows, announcements and wrap-up ends due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let timed_out: Vec<(CallerId, String)> = self
            .attempts
            .iter()
            .filter(|a| a.deadline.is_some_and(|t| t <= now))
            .map(|a| (a.caller, a.ext.clone()))
            .collect();
        for (caller, ext) in timed_out {
            self.cancel_rings(caller, Some(&ext), CancelReason::Timeout);
            self.missed(&ext);
        }

        let overflowing: Vec<CallerId> = self
            .waiting
            .iter()
            .filter(|w| w.deadline.is_some_and(|t| t <= now))
            .map(|w| w.id)
            .collect();
        for caller in overflowing {
            self.waiting.retain(|w| w.id != caller);
            self.cancel_rings(caller, None, CancelReason::Overflow);
            self.commands.push_back(QueueCommand::Overflow {
                caller,
                to: self.config.overflow.clone(),
            });
        }

        for w in &mut self.waiting {
            if w.skills_until.is_some_and(|t| t <= now) {
                w.skills.clear();
                w.skills_until = None;
            }
        }

        if let Some(every) = self.config.announce_every.filter(|d| !d.is_zero()) {
            for (i, w) in self.waiting.iter_mut().enumerate() {
                if w.next_announce.is_some_and(|t| t <= now) {
                    w.next_announce = after(now, every);
                    self.commands.push_back(QueueCommand::Announce {
                        caller: w.id,
                        position: i + 1,
                    });
                }
            }
        }

        self.dispatch(now);
    }

    /// Removes a live attempt; false if there was none.
    fn take_attempt(&mut self, caller: CallerId, ext: &str) -> bool {
        let before = self.attempts.len();
        self.attempts
            .retain(|a| !(a.caller == caller && a.ext == ext));
        self.attempts.len() != before
    }

    /// Cancels the caller's rings (only to `ext` if given), in the order they started.
    fn cancel_rings(&mut self, caller: CallerId, ext: Option<&str>, reason: CancelReason) {
        let hit = |a: &Attempt| a.caller == caller && ext.is_none_or(|e| a.ext == e);
        for a in self.attempts.iter().filter(|a| hit(a)) {
            self.commands.push_back(QueueCommand::CancelRing {
                caller,
                ext: a.ext.clone(),
                reason,
            });
        }
        self.attempts.retain(|a| !hit(a));
    }

    /// Cancels every ring of a member who went away or left the queue.
    fn cancel_member_rings(&mut self, ext: &str) {
        let callers: Vec<CallerId> = self
            .attempts
            .iter()
            .filter(|a| a.ext == ext)
            .map(|a| a.caller)
            .collect();
        for caller in callers {
            self.cancel_rings(caller, Some(ext), CancelReason::OperatorUnavailable);
        }
    }

    /// Counts a missed ring; sets the operator away after too many in a row.
    fn missed(&mut self, ext: &str) {
        let limit = self.config.missed_rings_to_away;
        let Some(op) = self.operators.get_mut(ext) else {
            return;
        };
        op.missed_in_a_row = op.missed_in_a_row.saturating_add(1);
        if limit > 0 && op.missed_in_a_row >= limit {
            let count = op.missed_in_a_row;
            op.status = Presence::Away;
            op.missed_in_a_row = 0;
            self.commands.push_back(QueueCommand::SetAway {
                ext: ext.to_string(),
                reason: AwayReason::MissedRings { count },
            });
        }
    }

    /// Offers waiting callers, head first, to the operators still free, until none is.
    fn dispatch(&mut self, now: Instant) {
        for op in self.operators.values_mut() {
            if op.wrap_up_until.is_some_and(|t| t <= now) {
                op.wrap_up_until = None;
            }
        }
        let strategy = self.config.strategy;
        let mut ringing: BTreeSet<String> = self.attempts.iter().map(|a| a.ext.clone()).collect();
        for w in &mut self.waiting {
            let offered = self.attempts.iter().any(|a| a.caller == w.id);
            if offered && strategy != super::Strategy::All {
                continue;
            }
            let offer = Offer {
                members: &self.config.members,
                operators: &self.operators,
                ringing: &ringing,
                tried: &w.tried,
                skills: &w.skills,
                now,
            };
            let pick = policy::pick(strategy, &offer);
            if pick.ring.is_empty() {
                if !w.skills.is_empty() {
                    continue; // nobody with these skills; a caller behind may ask for less
                }
                // Nobody may be rung, and a caller asking no skills is offered everyone: the
                // callers behind would find nobody either. Stopping here keeps a dispatch with
                // a long queue and busy operators from walking every caller × every member (it
                // was about half of the SIP task's time with 150 waiting and 50 members).
                break;
            }
            if pick.new_round {
                w.tried.clear();
            }
            for ext in pick.ring {
                w.tried.insert(ext.clone());
                ringing.insert(ext.clone());
                self.attempts.push(Attempt {
                    caller: w.id,
                    ext: ext.clone(),
                    deadline: after(now, self.config.ring_timeout),
                });
                self.commands
                    .push_back(QueueCommand::Ring { caller: w.id, ext });
            }
        }
    }
}
