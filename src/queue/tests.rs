//! Queue state machine tests in virtual time: one base instant plus durations, no clock reads.

use super::*;
use AwayReason::MissedRings;
use CancelReason::*;
use QueueCommand::{Announce, Bridge, CancelRing, Reject, Ring, SetAway};
use std::time::{Duration, Instant};

const RING: Duration = Duration::from_secs(20);
const WRAP: Duration = Duration::from_secs(10);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

pub(super) fn config(strategy: Strategy, members: &[&str]) -> QueueConfig {
    QueueConfig {
        name: "sales".into(),
        members: members.iter().map(|m| m.to_string()).collect(),
        strategy,
        ring_timeout: RING,
        wrap_up: WRAP,
        max_wait: None,
        overflow: super::Overflow::Hangup,
        announce_every: None,
        missed_rings_to_away: 0,
        skills_wait: None,
    }
}

/// A queue of online operators 101, 102, 103 (unless `cfg` says otherwise).
struct T {
    q: Queue,
    t0: Instant,
}

impl T {
    fn with(cfg: QueueConfig) -> Self {
        let t0 = crate::testing::t0();
        let members = cfg.members.clone();
        let mut q = Queue::new(cfg).unwrap();
        for m in members {
            q.operator_changed(t0, OperatorState::online(m));
        }
        assert_eq!(q.poll_command(), None);
        T { q, t0 }
    }

    fn new(strategy: Strategy) -> Self {
        T::with(config(strategy, &["101", "102", "103"]))
    }

    fn at(&self, s: u64) -> Instant {
        self.t0 + secs(s)
    }

    fn drain(&mut self) -> Vec<QueueCommand> {
        std::iter::from_fn(|| self.q.poll_command()).collect()
    }

    fn join(&mut self, s: u64, caller: CallerId) -> Vec<QueueCommand> {
        self.q.join(self.at(s), caller).unwrap();
        self.drain()
    }

    fn timeout(&mut self, s: u64) -> Vec<QueueCommand> {
        self.q.handle_timeout(self.at(s));
        self.drain()
    }

    fn answer(&mut self, s: u64, caller: CallerId, ext: &str) -> Vec<QueueCommand> {
        self.q.ring_answered(self.at(s), caller, ext);
        self.drain()
    }

    fn set(&mut self, s: u64, ext: &str, f: impl FnOnce(&mut OperatorState)) -> Vec<QueueCommand> {
        let mut op = self.q.operator(ext).unwrap().clone();
        f(&mut op);
        self.q.operator_changed(self.at(s), op);
        self.drain()
    }
}

fn ring(caller: CallerId, ext: &str) -> QueueCommand {
    Ring {
        caller,
        ext: ext.into(),
    }
}

fn cancel(caller: CallerId, ext: &str, reason: CancelReason) -> QueueCommand {
    CancelRing {
        caller,
        ext: ext.into(),
        reason,
    }
}

fn bridge(caller: CallerId, ext: &str, waited: u64) -> QueueCommand {
    Bridge {
        caller,
        ext: ext.into(),
        waited: secs(waited),
    }
}

#[test]
fn in_order_tries_members_in_order_and_wraps_after_the_last() {
    let mut t = T::new(Strategy::InOrder);
    assert_eq!(t.join(0, 1), [ring(1, "101")]);
    assert_eq!(t.q.poll_timeout(), Some(t.at(20)));
    assert_eq!(t.timeout(19), []);
    assert_eq!(t.timeout(20), [cancel(1, "101", Timeout), ring(1, "102")]);
    assert_eq!(t.timeout(40), [cancel(1, "102", Timeout), ring(1, "103")]);
    assert_eq!(t.timeout(60), [cancel(1, "103", Timeout), ring(1, "101")]);
    assert_eq!(t.answer(65, 1, "101"), [bridge(1, "101", 65)]);
    assert_eq!(t.q.poll_timeout(), None);
}

#[test]
fn in_order_skips_unavailable_and_returns_to_the_first_when_it_frees() {
    let mut t = T::new(Strategy::InOrder);
    t.set(0, "101", |op| op.active_calls = 1);
    assert_eq!(t.join(0, 1), [ring(1, "102")]);
    assert_eq!(t.set(5, "101", |op| op.active_calls = 0), []);
    // 102 does not answer: 101, free again and untried, comes first.
    assert_eq!(t.timeout(20), [cancel(1, "102", Timeout), ring(1, "101")]);
}

#[test]
fn evenly_rings_who_waited_longest_and_rotates() {
    let mut t = T::new(Strategy::Evenly);
    let t0 = t.at(0);
    t.set(0, "101", |op| op.last_call_ended = Some(t0));
    let mut order = Vec::new();
    for (i, caller) in (1..=3).enumerate() {
        let s = 100 * (i as u64 + 1);
        let cmds = t.join(s, caller);
        let [Ring { ext, .. }] = cmds.as_slice() else {
            panic!("{cmds:?}")
        };
        let ext = ext.clone();
        assert_eq!(t.answer(s + 1, caller, &ext), [bridge(caller, &ext, 1)]);
        t.q.call_ended(t.at(s + 50), &ext);
        order.push(ext);
    }
    // Never called first (102 then 103 by members order), then 101 (oldest last call).
    assert_eq!(order, ["102", "103", "101"]);
    // All three have had a call; 102's ended longest ago.
    assert_eq!(t.join(400, 4), [ring(4, "102")]);
}

#[test]
fn all_rings_everyone_first_answer_wins_the_rest_are_cancelled() {
    let mut t = T::new(Strategy::All);
    assert_eq!(
        t.join(0, 1),
        [ring(1, "101"), ring(1, "102"), ring(1, "103")]
    );
    assert_eq!(
        t.answer(3, 1, "102"),
        [
            bridge(1, "102", 3),
            cancel(1, "101", AnsweredElsewhere),
            cancel(1, "103", AnsweredElsewhere),
        ]
    );
    // 101's 200 crossed our CANCEL: ACK and BYE it, nothing else.
    assert_eq!(
        t.answer(3, 1, "101"),
        [Reject {
            caller: 1,
            ext: "101".into()
        }]
    );
    assert_eq!(t.q.operator("101").unwrap().active_calls, 0);
    assert_eq!(t.q.operator("102").unwrap().active_calls, 1);
}

#[test]
fn all_rings_again_after_a_timeout_and_adds_operators_who_become_available() {
    let mut t = T::new(Strategy::All);
    t.set(0, "103", |op| op.status = Presence::Away);
    assert_eq!(t.join(0, 1), [ring(1, "101"), ring(1, "102")]);
    assert_eq!(
        t.set(5, "103", |op| op.status = Presence::Online),
        [ring(1, "103")]
    );
    assert_eq!(t.q.poll_timeout(), Some(t.at(20)));
    assert_eq!(
        t.timeout(20),
        [
            cancel(1, "101", Timeout),
            cancel(1, "102", Timeout),
            ring(1, "101"),
            ring(1, "102")
        ]
    );
    assert_eq!(t.timeout(25), [cancel(1, "103", Timeout), ring(1, "103")]);
}

#[test]
fn callers_are_offered_in_fifo_order() {
    let mut t = T::new(Strategy::All);
    assert_eq!(t.join(0, 1).len(), 3);
    // Everyone rings for the head: the second caller waits.
    assert_eq!(t.join(1, 2), []);
    assert_eq!(
        t.answer(2, 1, "101"),
        [
            bridge(1, "101", 2),
            cancel(1, "102", AnsweredElsewhere),
            cancel(1, "103", AnsweredElsewhere),
            ring(2, "102"),
            ring(2, "103"),
        ]
    );

    // One at a time per caller: the next caller takes the next free operator.
    let mut t = T::new(Strategy::InOrder);
    assert_eq!(t.join(0, 1), [ring(1, "101")]);
    assert_eq!(t.join(1, 2), [ring(2, "102")]);
    assert_eq!(t.join(2, 3), [ring(3, "103")]);
    assert_eq!(t.join(3, 4), []);
    // 101 misses caller 1; the head gets first pick of the freed operator.
    assert_eq!(t.timeout(20), [cancel(1, "101", Timeout), ring(1, "101")]);
    assert_eq!(t.answer(22, 2, "102"), [bridge(2, "102", 21)]);
    assert_eq!(t.q.position(4), Some(3));
}

#[test]
fn in_a_long_queue_a_freed_operator_goes_to_the_first_caller_it_may_serve() {
    // `dispatch` stops at the first caller who finds nobody to ring (the callers behind would
    // find nobody either): the freed operator must still go where FIFO and the strategy say.
    for strategy in [Strategy::Evenly, Strategy::InOrder, Strategy::All] {
        let mut cfg = config(strategy, &["101", "102", "103"]);
        cfg.wrap_up = Duration::ZERO;
        let mut t = T::with(cfg);
        let mut rings: Vec<(CallerId, String)> = Vec::new();
        let note = |cmds: Vec<QueueCommand>, rings: &mut Vec<(CallerId, String)>| {
            for cmd in cmds {
                match cmd {
                    Ring { caller, ext } => rings.push((caller, ext)),
                    CancelRing { caller, ext, .. } => rings.retain(|r| *r != (caller, ext.clone())),
                    _ => {}
                }
            }
        };
        for caller in 1..=500 {
            let cmds = t.join(0, caller);
            note(cmds, &mut rings);
        }
        // Every ring is answered until all three operators talk (to callers 1, 2, 3).
        while !rings.is_empty() {
            let (caller, ext) = rings.remove(0);
            let cmds = t.answer(1, caller, &ext);
            note(cmds, &mut rings);
        }
        assert_eq!(t.q.position(4), Some(1), "{strategy:?}");
        assert_eq!(t.q.waiting_count(), 497, "{strategy:?}");

        t.q.call_ended(t.at(10), "102");
        assert_eq!(t.drain(), [ring(4, "102")], "{strategy:?}");
        t.q.call_ended(t.at(11), "101");
        let want = match strategy {
            // `all` tops up the ring of the head caller ...
            Strategy::All => ring(4, "101"),
            // ... the others ring one member per caller: the next caller without a ring.
            Strategy::Evenly | Strategy::InOrder => ring(5, "101"),
        };
        assert_eq!(t.drain(), [want], "{strategy:?}");
    }
}

#[test]
fn wrap_up_keeps_an_operator_from_ringing_until_it_ends() {
    let mut t = T::with(config(Strategy::InOrder, &["101"]));
    assert_eq!(t.join(0, 1), [ring(1, "101")]);
    assert_eq!(t.answer(1, 1, "101"), [bridge(1, "101", 1)]);
    assert_eq!(t.join(2, 2), []);
    t.q.call_ended(t.at(30), "101");
    assert_eq!(t.drain(), []);
    let op = t.q.operator("101").unwrap();
    assert_eq!(op.wrap_up_until, Some(t.at(30) + WRAP));
    assert_eq!(op.last_call_ended, Some(t.at(30)));
    assert_eq!(t.q.poll_timeout(), Some(t.at(40)));
    assert_eq!(t.timeout(39), []);
    assert_eq!(t.timeout(40), [ring(2, "101")]);
}

#[test]
fn zero_wrap_up_rings_again_at_once() {
    let mut cfg = config(Strategy::Evenly, &["101"]);
    cfg.wrap_up = Duration::ZERO;
    let mut t = T::with(cfg);
    t.join(0, 1);
    t.answer(1, 1, "101");
    t.join(2, 2);
    t.q.call_ended(t.at(3), "101");
    assert_eq!(t.drain(), [ring(2, "101")]);
}

#[test]
fn max_calls_is_respected() {
    let mut t = T::with(config(Strategy::Evenly, &["101"]));
    t.set(0, "101", |op| op.max_calls = 2);
    assert_eq!(t.join(0, 1), [ring(1, "101")]);
    assert_eq!(t.answer(1, 1, "101"), [bridge(1, "101", 1)]);
    // One slot left.
    assert_eq!(t.join(2, 2), [ring(2, "101")]);
    assert_eq!(t.answer(3, 2, "101"), [bridge(2, "101", 1)]);
    // At max_calls: not rung, also not once the second call's wrap-up would have ended.
    assert_eq!(t.join(4, 3), []);
    assert_eq!(t.timeout(100), []);
    t.q.call_ended(t.at(100), "101");
    assert_eq!(t.drain(), []);
    assert_eq!(t.timeout(110), [ring(3, "101")]);
}

#[test]
fn missed_rings_in_a_row_set_away_and_stop_ringing() {
    let mut cfg = config(Strategy::InOrder, &["101", "102"]);
    cfg.missed_rings_to_away = 2;
    let mut t = T::with(cfg);
    assert_eq!(t.join(0, 1), [ring(1, "101")]);
    assert_eq!(t.timeout(20), [cancel(1, "101", Timeout), ring(1, "102")]);
    // Busy is not a miss.
    t.q.ring_failed(t.at(21), 1, "102", RingFailure::Busy);
    assert_eq!(t.drain(), [ring(1, "101")]);
    t.q.ring_failed(t.at(22), 1, "101", RingFailure::NoAnswer);
    assert_eq!(
        t.drain(),
        [
            SetAway {
                ext: "101".into(),
                reason: MissedRings { count: 2 }
            },
            ring(1, "102"),
        ]
    );
    assert_eq!(t.q.operator("101").unwrap().status, Presence::Away);
    assert_eq!(t.q.operator("102").unwrap().missed_in_a_row, 0);
    // 101 is never rung again while away; 102 keeps being tried.
    assert_eq!(t.timeout(42), [cancel(1, "102", Timeout), ring(1, "102")]);
    assert_eq!(
        t.timeout(62),
        [
            cancel(1, "102", Timeout),
            SetAway {
                ext: "102".into(),
                reason: MissedRings { count: 2 }
            },
        ]
    );
    assert_eq!(t.q.poll_timeout(), None);
}

#[test]
fn an_answer_resets_the_missed_count() {
    let mut cfg = config(Strategy::InOrder, &["101"]);
    cfg.missed_rings_to_away = 2;
    cfg.wrap_up = Duration::ZERO;
    let mut t = T::with(cfg);
    t.join(0, 1);
    assert_eq!(t.timeout(20), [cancel(1, "101", Timeout), ring(1, "101")]);
    assert_eq!(t.q.operator("101").unwrap().missed_in_a_row, 1);
    t.answer(21, 1, "101");
    assert_eq!(t.q.operator("101").unwrap().missed_in_a_row, 0);
    t.q.call_ended(t.at(30), "101");
    t.join(30, 2);
    // Rejected counts as a miss, but this is only the first in a row.
    t.q.ring_failed(t.at(31), 2, "101", RingFailure::Rejected);
    assert_eq!(t.drain(), [ring(2, "101")]);
}

#[test]
fn caller_abandon_during_ringing_cancels_every_ring_and_never_rings_again() {
    let mut t = T::new(Strategy::All);
    t.join(0, 1);
    assert_eq!(t.join(1, 2), []);
    assert_eq!(t.q.leave(t.at(7), 1), Some(secs(7)));
    // Every ring for the leaver is cancelled first; only then is the next caller offered.
    assert_eq!(
        t.drain(),
        [
            cancel(1, "101", CallerLeft),
            cancel(1, "102", CallerLeft),
            cancel(1, "103", CallerLeft),
            ring(2, "101"),
            ring(2, "102"),
            ring(2, "103"),
        ]
    );
    // A 200 that crossed the CANCEL is refused, and nothing rings for caller 1 again.
    assert_eq!(
        t.answer(8, 1, "102"),
        [Reject {
            caller: 1,
            ext: "102".into()
        }]
    );
    assert_eq!(t.q.leave(t.at(9), 2), Some(secs(8)));
    let later = [t.timeout(100), t.set(101, "101", |op| op.active_calls = 0)].concat();
    let mut tail = t.drain();
    tail.extend(later);
    assert!(tail.iter().all(|c| !matches!(c, Ring { .. })), "{tail:?}");
    assert_eq!(t.q.leave(t.at(110), 1), None);
    assert_eq!(t.q.poll_timeout(), None);
}

#[test]
fn abandon_while_ringing_one_operator_in_order() {
    let mut t = T::new(Strategy::InOrder);
    t.join(0, 1);
    t.q.leave(t.at(5), 1);
    assert_eq!(t.drain(), [cancel(1, "101", CallerLeft)]);
    // The INVITE's own failure after our CANCEL is ignored (no miss, no ring).
    t.q.ring_failed(t.at(6), 1, "101", RingFailure::NoAnswer);
    assert_eq!(t.drain(), []);
    assert_eq!(t.q.operator("101").unwrap().missed_in_a_row, 0);
    assert_eq!(t.timeout(20), []);
}

#[test]
fn operator_going_away_or_unregistering_while_ringing_is_cancelled() {
    let away: fn(&mut OperatorState) = |op| op.status = Presence::Away;
    let offline: fn(&mut OperatorState) = |op| op.status = Presence::Offline;
    let unregistered: fn(&mut OperatorState) = |op| op.registered = false;
    for change in [away, offline, unregistered] {
        let mut t = T::new(Strategy::InOrder);
        t.join(0, 1);
        assert_eq!(
            t.set(5, "101", change),
            [cancel(1, "101", OperatorUnavailable), ring(1, "102")]
        );
        assert_eq!(t.q.operator("101").unwrap().missed_in_a_row, 0);
        // Its 200 crossing that CANCEL is refused.
        assert_eq!(
            t.answer(6, 1, "101"),
            [Reject {
                caller: 1,
                ext: "101".into()
            }]
        );
    }
}

#[test]
fn call_count_or_wrap_up_changes_do_not_cancel_a_ring_in_flight() {
    let mut t = T::new(Strategy::InOrder);
    t.join(0, 1);
    assert_eq!(t.set(1, "101", |op| op.active_calls = 1), []);
    assert_eq!(t.answer(2, 1, "101"), [bridge(1, "101", 2)]);
    assert_eq!(t.q.operator("101").unwrap().active_calls, 2);
}

#[test]
fn answer_after_ring_timeout_is_rejected() {
    let mut t = T::new(Strategy::InOrder);
    t.join(0, 1);
    assert_eq!(t.timeout(20), [cancel(1, "101", Timeout), ring(1, "102")]);
    let reject = |ext: &str, caller| Reject {
        caller,
        ext: ext.into(),
    };
    assert_eq!(t.answer(20, 1, "101"), [reject("101", 1)]);
    assert_eq!(t.answer(20, 99, "103"), [reject("103", 99)]);
    // The live ring still wins, once.
    assert_eq!(t.answer(21, 1, "102"), [bridge(1, "102", 21)]);
    assert_eq!(t.answer(21, 1, "102"), [reject("102", 1)]);
}

#[test]
fn positions_are_announced_every_interval() {
    let mut cfg = config(Strategy::InOrder, &["101"]);
    cfg.announce_every = Some(secs(30));
    let mut t = T::with(cfg);
    t.set(0, "101", |op| op.status = Presence::Away);
    t.join(0, 1);
    t.join(10, 2);
    assert_eq!(t.q.poll_timeout(), Some(t.at(30)));
    assert_eq!(
        t.timeout(30),
        [Announce {
            caller: 1,
            position: 1
        }]
    );
    assert_eq!(t.q.poll_timeout(), Some(t.at(40)));
    assert_eq!(
        t.timeout(40),
        [Announce {
            caller: 2,
            position: 2
        }]
    );
    t.q.leave(t.at(50), 1);
    assert_eq!(t.timeout(60), []);
    assert_eq!(
        t.timeout(70),
        [Announce {
            caller: 2,
            position: 1
        }]
    );
}

#[test]
fn max_wait_overflows_and_cancels_rings() {
    let mut cfg = config(Strategy::All, &["101", "102"]);
    cfg.max_wait = Some(secs(15));
    cfg.overflow = super::Overflow::Flow("voicemail".into());
    let mut t = T::with(cfg);
    t.join(0, 1);
    assert_eq!(t.q.poll_timeout(), Some(t.at(15)));
    assert_eq!(
        t.timeout(15),
        [
            cancel(1, "101", CancelReason::Overflow),
            cancel(1, "102", CancelReason::Overflow),
            QueueCommand::Overflow {
                caller: 1,
                to: super::Overflow::Flow("voicemail".into())
            },
        ]
    );
    assert_eq!(t.q.position(1), None);
    assert_eq!(t.q.poll_timeout(), None);
    assert_eq!(t.q.operator("101").unwrap().missed_in_a_row, 0);
}

#[test]
fn members_the_queue_has_not_heard_of_are_never_rung() {
    let t0 = crate::testing::t0();
    let mut q = Queue::new(config(Strategy::All, &["101", "102"])).unwrap();
    q.operator_changed(t0, OperatorState::online("999"));
    q.join(t0, 1).unwrap();
    assert_eq!(q.poll_command(), None);
    q.operator_changed(t0, OperatorState::online("102"));
    assert_eq!(q.poll_command(), Some(ring(1, "102")));
    assert_eq!(
        q.join(t0, 1),
        Err(QueueError::AlreadyWaiting {
            queue: "sales".into(),
            caller: 1
        })
    );
}

#[test]
fn huge_durations_do_not_panic() {
    let mut cfg = config(Strategy::InOrder, &["101"]);
    cfg.ring_timeout = Duration::MAX;
    cfg.wrap_up = Duration::MAX;
    cfg.max_wait = Some(Duration::MAX);
    cfg.announce_every = Some(Duration::MAX);
    let mut t = T::with(cfg);
    assert_eq!(t.join(0, 1), [ring(1, "101")]);
    assert_eq!(t.q.poll_timeout(), None);
    t.answer(1, 1, "101");
    t.q.call_ended(t.at(2), "101");
    t.q.call_ended(t.at(2), "101");
    assert_eq!(t.q.operator("101").unwrap().active_calls, 0);
}

#[test]
fn config_validation() {
    let ok = config(Strategy::Evenly, &["101"]);
    assert_eq!(ok.validate(), Ok(()));
    let q = || "sales".to_string();
    type Edit = fn(&mut QueueConfig);
    let cases: [(Edit, QueueConfigError); 5] = [
        (|c| c.name = " ".into(), QueueConfigError::EmptyName),
        (
            |c| c.members.clear(),
            QueueConfigError::NoMembers { queue: q() },
        ),
        (
            |c| c.members.push("101".into()),
            QueueConfigError::DuplicateMember {
                queue: q(),
                extension: "101".into(),
            },
        ),
        (
            |c| c.ring_timeout = Duration::ZERO,
            QueueConfigError::ZeroRingTimeout { queue: q() },
        ),
        (
            |c| c.announce_every = Some(Duration::ZERO),
            QueueConfigError::ZeroAnnounceEvery { queue: q() },
        ),
    ];
    for (change, want) in cases {
        let mut c = ok.clone();
        change(&mut c);
        assert_eq!(c.validate(), Err(want.clone()));
        assert_eq!(Queue::new(c).err(), Some(want));
    }
}
