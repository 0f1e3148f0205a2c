//! ACD policy: which members to ring for one caller, a pure function of the queue's state.

use super::{OperatorState, Strategy};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

/// The state one offer is decided from.
#[derive(Debug, Clone, Copy)]
pub struct Offer<'a> {
    /// The queue's members, in configured order.
    pub members: &'a [String],
    /// The queue's view of its members; a member missing here is never rung.
    pub operators: &'a BTreeMap<String, OperatorState>,
    /// Members ringing for any caller of the queue right now.
    pub ringing: &'a BTreeSet<String>,
    /// Members already tried for this caller in the current round.
    pub tried: &'a BTreeSet<String>,
    /// Skills the caller still asks for (empty: any member).
    pub skills: &'a BTreeSet<String>,
    pub now: Instant,
}

/// The members to ring, in members order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pick {
    pub ring: Vec<String>,
    /// Every candidate had been tried: the caller's round starts over with this pick.
    pub new_round: bool,
}

/// Members who may be rung now: available, not ringing, with the skills asked for, in members
/// order.
pub fn candidates<'a>(offer: &Offer<'a>) -> Vec<&'a OperatorState> {
    offer
        .members
        .iter()
        .filter(|m| !offer.ringing.contains(*m))
        .filter_map(|m| offer.operators.get(m))
        .filter(|op| op.is_available(offer.now) && op.has_skills(offer.skills))
        .collect()
}

/// Who rings next for one caller.
///
/// * `InOrder`: the first untried candidate in members order.
/// * `Evenly`: the untried candidate who has waited longest since their last call: never called
///   first, then the oldest `last_call_ended`, ties by members order.
/// * `All`: every candidate.
///
/// When every candidate has been tried this round, a new round starts (`new_round`), so `InOrder`
/// wraps to the first member after the last. The pick is empty only when there is no candidate,
/// which depends on the caller only through `skills` (`tried` only orders the candidates).
pub fn pick(strategy: Strategy, offer: &Offer<'_>) -> Pick {
    let all = candidates(offer);
    if all.is_empty() {
        return Pick::default();
    }
    if strategy == Strategy::All {
        return Pick {
            ring: all.iter().map(|op| op.extension.clone()).collect(),
            new_round: false,
        };
    }
    let untried: Vec<&OperatorState> = all
        .iter()
        .copied()
        .filter(|op| !offer.tried.contains(&op.extension))
        .collect();
    let new_round = untried.is_empty();
    let pool = if new_round { all } else { untried };
    let chosen = match strategy {
        // `min_by_key` keeps the first of equal keys, so ties go by members order.
        Strategy::Evenly => pool
            .iter()
            .min_by_key(|op| (op.last_call_ended.is_some(), op.last_call_ended)),
        _ => pool.first(),
    };
    Pick {
        ring: chosen.map(|op| op.extension.clone()).into_iter().collect(),
        new_round,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::Presence;
    use std::time::Duration;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    /// One member's state in a table row.
    #[derive(Clone, Copy)]
    enum Op {
        /// Available, never called.
        Free,
        /// Available, last call ended at base + n s.
        EndedAt(u64),
        Unregistered,
        Away,
        Offline,
        AtMaxCalls,
        /// Wrap-up until base + 100 s (the offer is at base + 50 s).
        WrapUp,
        /// Wrap-up ended at base + 10 s.
        WrapUpOver,
        /// Ringing for another caller.
        Ringing,
        /// Available but already tried for this caller.
        Tried,
        /// Not known to the queue.
        Unknown,
    }

    fn run(strategy: Strategy, ops: &[Op]) -> Pick {
        let base = crate::testing::t0();
        let now = base + secs(50);
        let members: Vec<String> = (0..ops.len()).map(|i| format!("10{i}")).collect();
        let mut operators = BTreeMap::new();
        let mut ringing = BTreeSet::new();
        let mut tried = BTreeSet::new();
        for (ext, op) in members.iter().zip(ops) {
            let mut s = OperatorState::online(ext.clone());
            match op {
                Op::Free => {}
                Op::EndedAt(t) => s.last_call_ended = Some(base + secs(*t)),
                Op::Unregistered => s.registered = false,
                Op::Away => s.status = Presence::Away,
                Op::Offline => s.status = Presence::Offline,
                Op::AtMaxCalls => s.active_calls = 1,
                Op::WrapUp => s.wrap_up_until = Some(base + secs(100)),
                Op::WrapUpOver => s.wrap_up_until = Some(base + secs(10)),
                Op::Ringing => {
                    ringing.insert(ext.clone());
                }
                Op::Tried => {
                    tried.insert(ext.clone());
                }
                Op::Unknown => continue,
            }
            operators.insert(ext.clone(), s);
        }
        let offer = Offer {
            members: &members,
            operators: &operators,
            ringing: &ringing,
            tried: &tried,
            skills: &BTreeSet::new(),
            now,
        };
        pick(strategy, &offer)
    }

    fn exts(picked: &[&str]) -> Vec<String> {
        picked.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn unavailable_operators_are_never_picked_by_any_strategy() {
        use Op::*;
        let unavailable = [
            Unregistered,
            Away,
            Offline,
            AtMaxCalls,
            WrapUp,
            Ringing,
            Unknown,
        ];
        for strategy in [Strategy::Evenly, Strategy::InOrder, Strategy::All] {
            for op in unavailable {
                assert_eq!(run(strategy, &[op, op]), Pick::default(), "{strategy:?}");
                let with_one_free = run(strategy, &[op, Free, op]);
                assert_eq!(with_one_free.ring, exts(&["101"]), "{strategy:?}");
            }
        }
    }

    #[test]
    fn table() {
        use Op::*;
        use Strategy::*;
        #[rustfmt::skip]
        let rows: &[(Strategy, &[Op], &[&str], bool)] = &[
            // in_order: the first untried candidate in members order
            (InOrder, &[Free, Free, Free], &["100"], false),
            (InOrder, &[Away, Free, Free], &["101"], false),
            (InOrder, &[Tried, Free, Free], &["101"], false),
            (InOrder, &[Tried, Ringing, Free], &["102"], false),
            (InOrder, &[EndedAt(1), EndedAt(40), Free], &["100"], false),
            (InOrder, &[WrapUpOver, Free], &["100"], false),
            // in_order wraps: all tried, the round restarts at the first candidate
            (InOrder, &[Tried, Tried, Tried], &["100"], true),
            (InOrder, &[Away, Tried, Tried], &["101"], true),
            // evenly: never called first, then the longest since the last call, ties by order
            (Evenly, &[EndedAt(30), Free, EndedAt(10)], &["101"], false),
            (Evenly, &[EndedAt(30), EndedAt(20), EndedAt(10)], &["102"], false),
            (Evenly, &[EndedAt(10), EndedAt(10)], &["100"], false),
            (Evenly, &[Free, Free], &["100"], false),
            (Evenly, &[EndedAt(30), EndedAt(5), AtMaxCalls], &["101"], false),
            (Evenly, &[EndedAt(30), Tried, EndedAt(20)], &["102"], false),
            (Evenly, &[EndedAt(30), WrapUp, EndedAt(20)], &["102"], false),
            (Evenly, &[Tried, Tried], &["100"], true),
            // all: every candidate at once
            (All, &[Free, EndedAt(3), Free], &["100", "101", "102"], false),
            (All, &[Free, Away, Ringing, Tried, WrapUp, Free], &["100", "103", "105"], false),
            (All, &[Tried, Tried], &["100", "101"], false),
        ];
        for (i, (strategy, ops, want, new_round)) in rows.iter().enumerate() {
            let got = run(*strategy, ops);
            assert_eq!(got.ring, exts(want), "row {i}: {strategy:?}");
            assert_eq!(got.new_round, *new_round, "row {i}: {strategy:?}");
        }
    }

    #[test]
    fn two_slots_one_busy_is_still_available() {
        let base = crate::testing::t0();
        let members = exts(&["100"]);
        let mut s = OperatorState::online("100");
        s.max_calls = 2;
        s.active_calls = 1;
        let operators = BTreeMap::from([("100".to_string(), s)]);
        let none = BTreeSet::new();
        let offer = Offer {
            members: &members,
            operators: &operators,
            ringing: &none,
            tried: &none,
            skills: &none,
            now: base,
        };
        assert_eq!(pick(Strategy::InOrder, &offer).ring, members);
    }
}
