//! Call queues (ACD), sans IO: who rings next and when, for callers waiting in one `[[queues]]` entry.
//!
//! The queue task owns one [`Queue`]. It feeds it inputs with the time they happened
//! ([`Queue::join`], [`Queue::leave`], [`Queue::operator_changed`], [`Queue::ring_answered`],
//! [`Queue::ring_failed`], [`Queue::call_ended`], [`Queue::handle_timeout`]), drains
//! [`Queue::poll_command`] and carries the [`QueueCommand`]s out, and wakes at
//! [`Queue::poll_timeout`]. Who rings next is the pure function [`policy::pick`].
//!
//! Decisions (the contract with the shell):
//! * **Availability**: a member is rung only if registered, `Online`, below `max_calls`, out of
//!   wrap-up and not already ringing for any caller of this queue (never two rings at once).
//! * **FIFO**: callers are offered in join order. Each caller without a ring in flight takes its pick
//!   from the operators still free, so the head caller always chooses first and a second caller is
//!   only offered to operators the head caller's offer left over. Under `all` the offer to a ringing
//!   caller is topped up: an operator who becomes available joins the head caller's ring.
//! * **Rounds**: `in_order` and `evenly` ring one member at a time per caller. A member is tried once
//!   per round for a caller; when every available member has been tried the round restarts, so
//!   `in_order` wraps to the first member after the last and the caller waits until `max_wait`.
//! * **Missed rings**: a ring timeout, `NoAnswer` or `Rejected` counts as a miss; `Busy`,
//!   `Unreachable` and rings the queue cancels itself (caller left, answered elsewhere, operator went
//!   away, overflow) do not. After `missed_rings_to_away` misses in a row (0 = never) the queue emits
//!   [`QueueCommand::SetAway`], marks its view `Away` and resets the count. An answer resets it.
//! * **Status changes while ringing**: an operator who goes `Away` or `Offline`, or unregisters, while
//!   ringing gets [`CancelReason::OperatorUnavailable`] and the caller is offered to the next one.
//!   Changes of `active_calls` or wrap-up do not cancel a ring already in flight (the shell may report
//!   the effect of an answer before [`Queue::ring_answered`] arrives; cancelling would lose the call).
//! * **A 200 crossing a CANCEL**: [`Queue::ring_answered`] for a ring that is no longer live (caller
//!   left, answered elsewhere, timed out, cancelled) yields [`QueueCommand::Reject`]: the shell ACKs
//!   and BYEs that operator. A caller is bridged at most once.
//! * **Operator view**: [`Queue::operator_changed`] replaces the queue's view of a member wholesale;
//!   the shell's operator registry is the source of truth and must apply the same effects the queue
//!   applies to its own copy (answer: `active_calls + 1`, missed count 0; call end: `active_calls - 1`,
//!   wrap-up, `last_call_ended`; `SetAway`: `Away`, missed count 0). Non-members are ignored; a member
//!   the queue has never heard of is never rung.
//! * **Priority**: a caller joins behind every caller of the same or higher priority and ahead of
//!   those of lower priority (FIFO within a priority); positions are places in that order.
//! * **Skills**: a caller may ask for skills; only members who have every one of them are offered
//!   the caller, until `skills_wait` after joining (then any member may be; `None`: never). A
//!   caller no skilled member can take does not hold back the callers behind.
//! * **Membership** changes live ([`Queue::set_members`]): a removed member's rings are cancelled
//!   (`OperatorUnavailable`) and they are not rung again; an added member is rung once the shell
//!   reports their state.
//! * **Announcements**: every `announce_every` after joining (none at join itself), with the caller's
//!   1-based position. **Overflow**: at `join + max_wait` the caller's rings are cancelled and
//!   [`QueueCommand::Overflow`] is emitted; the caller leaves the queue.
//! * Commands for one input come out in the order they must be carried out: cancels before rings,
//!   the `Bridge` before the `CancelRing(AnsweredElsewhere)` for the others.

mod machine;
pub mod policy;
#[cfg(test)]
mod tests;

pub use machine::Queue;
#[cfg(test)]
mod tests_skills;

use std::time::{Duration, Instant};

/// A waiting caller, as the shell numbers its calls.
pub type CallerId = u64;

/// How a queue shares callers among its members.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// The available member who has waited longest since their last call.
    Evenly,
    /// Members strictly in their configured order, the next on no answer.
    InOrder,
    /// Every available member at once; the first answer wins.
    All,
}

/// Where a caller goes after `max_wait`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Overflow {
    /// Into an IVR flow, by flow id.
    Flow(String),
    /// Into another queue, by name.
    Queue(String),
    /// The call is ended.
    Hangup,
}

/// One `[[queues]]` entry, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    pub name: String,
    /// Operator extensions, in order (`in_order` rings them in this order).
    pub members: Vec<String>,
    pub strategy: Strategy,
    /// Per operator attempt.
    pub ring_timeout: Duration,
    /// After-call time before the operator is rung again.
    pub wrap_up: Duration,
    pub max_wait: Option<Duration>,
    pub overflow: Overflow,
    /// Position announcements; `None` for none.
    pub announce_every: Option<Duration>,
    /// Missed rings in a row that set an operator away; 0 never does.
    pub missed_rings_to_away: u32,
    /// How long a caller's skills are required; after it any member may take them.
    pub skills_wait: Option<Duration>,
}

/// What a caller asks of the queue on joining.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JoinRequest {
    /// Higher first; 0 by default (a VIP contact might get 10).
    pub priority: i32,
    /// Every one of these must be among a member's skills (e.g. `ukrainian`, `billing`).
    pub skills: std::collections::BTreeSet<String>,
    /// How long the caller already waited elsewhere (a transfer from another queue): counted in
    /// the wait this queue reports, and the caller takes their place among callers of the same
    /// priority by when they first started waiting. `max_wait` still runs from the join.
    pub waited: std::time::Duration,
}

/// Why a queue config cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueConfigError {
    #[error("queue has an empty name")]
    EmptyName,
    #[error("queue {queue:?} has no members")]
    NoMembers { queue: String },
    #[error("queue {queue:?} lists member {extension:?} twice")]
    DuplicateMember { queue: String, extension: String },
    #[error("queue {queue:?} has a zero ring_timeout")]
    ZeroRingTimeout { queue: String },
    #[error("queue {queue:?} has a zero announce_every")]
    ZeroAnnounceEvery { queue: String },
}

impl QueueConfig {
    /// Checks what the queue relies on: a name, distinct members, non-zero timers.
    pub fn validate(&self) -> Result<(), QueueConfigError> {
        let queue = || self.name.clone();
        if self.name.trim().is_empty() {
            return Err(QueueConfigError::EmptyName);
        }
        if self.members.is_empty() {
            return Err(QueueConfigError::NoMembers { queue: queue() });
        }
        for (i, m) in self.members.iter().enumerate() {
            if self.members[..i].contains(m) {
                return Err(QueueConfigError::DuplicateMember {
                    queue: queue(),
                    extension: m.clone(),
                });
            }
        }
        if self.ring_timeout.is_zero() {
            return Err(QueueConfigError::ZeroRingTimeout { queue: queue() });
        }
        if self.announce_every.is_some_and(|d| d.is_zero()) {
            return Err(QueueConfigError::ZeroAnnounceEvery { queue: queue() });
        }
        Ok(())
    }
}

/// The status an operator sets (the derived ringing / talking / wrap-up states come from the rest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    Online,
    Away,
    Offline,
}

/// What the queue needs to know about one operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorState {
    pub extension: String,
    pub status: Presence,
    /// A live SIP registration exists.
    pub registered: bool,
    pub max_calls: u32,
    pub active_calls: u32,
    /// In wrap-up until then (exclusive).
    pub wrap_up_until: Option<Instant>,
    pub last_call_ended: Option<Instant>,
    pub missed_in_a_row: u32,
    /// Ringing for a caller of another queue (an operator is in several queues; one ring at a time).
    pub ringing_elsewhere: bool,
    /// What callers may ask for (languages, topics).
    pub skills: std::collections::BTreeSet<String>,
}

impl OperatorState {
    /// A registered, online operator with one call slot, never called.
    pub fn online(extension: impl Into<String>) -> Self {
        OperatorState {
            extension: extension.into(),
            status: Presence::Online,
            registered: true,
            max_calls: 1,
            active_calls: 0,
            wrap_up_until: None,
            last_call_ended: None,
            missed_in_a_row: 0,
            ringing_elsewhere: false,
            skills: Default::default(),
        }
    }

    /// Has every one of `skills`.
    pub fn has_skills(&self, skills: &std::collections::BTreeSet<String>) -> bool {
        skills.is_subset(&self.skills)
    }

    /// In wrap-up at `now`.
    pub fn in_wrap_up(&self, now: Instant) -> bool {
        self.wrap_up_until.is_some_and(|until| now < until)
    }

    /// May be offered a call at `now` (ringing elsewhere is the queue's business, not this).
    pub fn is_available(&self, now: Instant) -> bool {
        self.registered
            && self.status == Presence::Online
            && self.active_calls < self.max_calls
            && !self.in_wrap_up(now)
            && !self.ringing_elsewhere
    }
}

/// Why an operator's INVITE ended without an answer (reported by the shell).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingFailure {
    /// 408/480 or the phone's own no-answer timer.
    NoAnswer,
    /// 486/600.
    Busy,
    /// 603 or another decline by the operator.
    Rejected,
    /// Not reachable (transport error, 404, 503).
    Unreachable,
}

/// Why the queue cancels a ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelReason {
    /// Another operator answered; send `Reason: SIP;cause=200;text="Call completed elsewhere"`.
    AnsweredElsewhere,
    /// The caller hung up.
    CallerLeft,
    /// No answer within `ring_timeout`.
    Timeout,
    /// The operator went away, offline or unregistered while ringing.
    OperatorUnavailable,
    /// The caller reached `max_wait` and overflows.
    Overflow,
}

/// Why the queue sets an operator away (shown in the API).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwayReason {
    /// Missed this many rings in a row.
    MissedRings { count: u32 },
}

/// What the shell must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueCommand {
    /// INVITE the operator for this caller.
    Ring { caller: CallerId, ext: String },
    /// CANCEL that INVITE (after its 1xx).
    CancelRing {
        caller: CallerId,
        ext: String,
        reason: CancelReason,
    },
    /// The operator answered: bridge them; the caller has left the queue.
    Bridge {
        caller: CallerId,
        ext: String,
        waited: Duration,
    },
    /// The operator answered a ring that is no longer live: ACK and BYE it.
    Reject { caller: CallerId, ext: String },
    /// Tell the caller their 1-based position.
    Announce { caller: CallerId, position: usize },
    /// `max_wait` passed: the caller has left the queue and goes there.
    Overflow { caller: CallerId, to: Overflow },
    /// Set the operator's status to away.
    SetAway { ext: String, reason: AwayReason },
}

/// Why an input was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    #[error("caller {caller} is already in queue {queue:?}")]
    AlreadyWaiting { queue: String, caller: CallerId },
}
