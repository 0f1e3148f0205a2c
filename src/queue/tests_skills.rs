//! Queue core tests for skills, priority and live membership, table-style in virtual time.

use super::tests::config;
use super::*;
use CancelReason::OperatorUnavailable;
use QueueCommand::{CancelRing, Ring};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// A member: extension, skills, when their last call ended (seconds after t0; `None`: never).
type Member<'a> = (&'a str, &'a [&'a str], Option<u64>);

/// A queue of online members as described, at t0 + 100 s; `skills_wait` in seconds.
fn queue(strategy: Strategy, members: &[Member], skills_wait: Option<u64>) -> (Queue, Instant) {
    let t0 = crate::testing::t0();
    let exts: Vec<&str> = members.iter().map(|m| m.0).collect();
    let mut cfg = config(strategy, &exts);
    cfg.wrap_up = Duration::ZERO;
    cfg.skills_wait = skills_wait.map(secs);
    let mut q = Queue::new(cfg).unwrap();
    for (ext, skills, ended) in members {
        let mut op = OperatorState::online(*ext);
        op.skills = set(skills);
        op.last_call_ended = ended.map(|s| t0 + secs(s));
        q.operator_changed(t0, op);
    }
    assert_eq!(q.poll_command(), None);
    (q, t0 + secs(100))
}

fn drain(q: &mut Queue) -> Vec<QueueCommand> {
    std::iter::from_fn(|| q.poll_command()).collect()
}

fn ring(caller: CallerId, ext: &str) -> QueueCommand {
    Ring {
        caller,
        ext: ext.into(),
    }
}

const TEAM: &[Member] = &[
    ("101", &["ukrainian"], Some(10)),
    ("102", &["ukrainian", "billing"], Some(30)),
    ("103", &["ukrainian", "billing"], Some(20)),
    ("104", &[], None),
];

#[test]
fn a_caller_asking_for_skills_rings_the_longest_idle_member_with_all_of_them() {
    let cases: &[(&str, Strategy, &[&str], &[&str])] = &[
        (
            "both skills, evenly: 103 idle longer than 102",
            Strategy::Evenly,
            &["ukrainian", "billing"],
            &["103"],
        ),
        (
            "one skill, evenly: 101 idle longest of three",
            Strategy::Evenly,
            &["ukrainian"],
            &["101"],
        ),
        (
            "no skills, evenly: 104 never called",
            Strategy::Evenly,
            &[],
            &["104"],
        ),
        (
            "both skills, in order: 102 is listed first",
            Strategy::InOrder,
            &["billing", "ukrainian"],
            &["102"],
        ),
        (
            "both skills, all: every member with both",
            Strategy::All,
            &["ukrainian", "billing"],
            &["102", "103"],
        ),
        (
            "a skill nobody has: nobody yet",
            Strategy::Evenly,
            &["french"],
            &[],
        ),
    ];
    for (name, strategy, skills, expected) in cases {
        let (mut q, now) = queue(*strategy, TEAM, None);
        let request = JoinRequest {
            priority: 0,
            skills: set(skills),
            ..Default::default()
        };
        q.join_with(now, 1, request).unwrap();
        let expected: Vec<QueueCommand> = expected.iter().map(|e| ring(1, e)).collect();
        assert_eq!(drain(&mut q), expected, "{name}");
    }
}

#[test]
fn after_skills_wait_any_member_may_take_the_caller_and_without_it_nobody_else_does() {
    let cases: &[(&str, Option<u64>, u64)] = &[
        ("fallback after 30 s", Some(30), 30),
        ("still waiting just before", Some(30), 29),
        ("no skills_wait: never falls back", None, 3600),
    ];
    for (name, wait, after) in cases {
        let (mut q, now) = queue(Strategy::Evenly, TEAM, *wait);
        let request = JoinRequest {
            priority: 0,
            skills: set(&["french"]),
            ..Default::default()
        };
        q.join_with(now, 1, request).unwrap();
        assert_eq!(drain(&mut q), vec![], "{name}: nobody speaks French");
        let falls_back = wait.is_some_and(|w| *after >= w);
        if let Some(w) = wait {
            assert_eq!(
                q.poll_timeout(),
                Some(now + secs(*w)),
                "{name}: a wake-up for the fallback"
            );
        }
        q.handle_timeout(now + secs(*after));
        let expected = if falls_back {
            vec![ring(1, "104")]
        } else {
            vec![]
        };
        assert_eq!(drain(&mut q), expected, "{name}");
    }
}

#[test]
fn a_caller_no_skilled_member_can_take_does_not_hold_back_the_callers_behind() {
    let (mut q, now) = queue(Strategy::Evenly, TEAM, None);
    let french = JoinRequest {
        priority: 0,
        skills: set(&["french"]),
        ..Default::default()
    };
    q.join_with(now, 1, french).unwrap();
    q.join(now + secs(1), 2).unwrap();
    assert_eq!(drain(&mut q), vec![ring(2, "104")]);
    assert_eq!(q.position(1), Some(1), "the first caller keeps the head");
}

#[test]
fn callers_wait_by_priority_then_in_join_order() {
    type Joins<'a> = &'a [(CallerId, i32)];
    let cases: &[(&str, Joins, &[CallerId])] = &[
        (
            "all equal: join order",
            &[(1, 0), (2, 0), (3, 0)],
            &[1, 2, 3],
        ),
        ("a VIP goes ahead", &[(1, 0), (2, 10), (3, 0)], &[2, 1, 3]),
        (
            "FIFO within each priority",
            &[(1, 5), (2, 10), (3, 5), (4, 10)],
            &[2, 4, 1, 3],
        ),
        (
            "a negative priority waits behind",
            &[(1, 0), (2, -1), (3, 0)],
            &[1, 3, 2],
        ),
    ];
    for (name, joins, expected) in cases {
        // Nobody online: the order is all that happens.
        let (mut q, now) = queue(Strategy::Evenly, &[("101", &[], None)], None);
        let mut op = q.operator("101").unwrap().clone();
        op.status = Presence::Away;
        q.operator_changed(now, op.clone());
        for (i, (caller, priority)) in joins.iter().enumerate() {
            let request = JoinRequest {
                priority: *priority,
                skills: BTreeSet::new(),
                ..Default::default()
            };
            q.join_with(now + secs(i as u64), *caller, request).unwrap();
        }
        let order: Vec<CallerId> = q.waiting().map(|(c, _)| c).collect();
        assert_eq!(order, *expected, "{name}");
        for (i, caller) in expected.iter().enumerate() {
            assert_eq!(q.position(*caller), Some(i + 1), "{name}: positions follow");
        }
        // The operator comes back: the head of that order is rung.
        op.status = Presence::Online;
        q.operator_changed(now + secs(10), op);
        assert_eq!(drain(&mut q), vec![ring(expected[0], "101")], "{name}");
    }
}

#[test]
fn members_change_live() {
    let (mut q, now) = queue(
        Strategy::InOrder,
        &[("101", &[], None), ("102", &[], None)],
        None,
    );
    q.join(now, 1).unwrap();
    assert_eq!(drain(&mut q), vec![ring(1, "101")]);

    // 101 leaves the queue while ringing: cancelled, and the caller is offered to 102.
    q.set_members(now + secs(1), vec!["102".into()]).unwrap();
    let cancel = CancelRing {
        caller: 1,
        ext: "101".into(),
        reason: OperatorUnavailable,
    };
    assert_eq!(drain(&mut q), vec![cancel, ring(1, "102")]);
    assert!(q.operator("101").is_none(), "a removed member is forgotten");
    // Reports about a removed member change nothing.
    q.operator_changed(now + secs(2), OperatorState::online("101"));
    assert_eq!(drain(&mut q), vec![]);

    // 103 joins the queue: rung for the next caller once the shell reports their state.
    q.set_members(now + secs(3), vec!["102".into(), "103".into()])
        .unwrap();
    q.join(now + secs(4), 2).unwrap();
    assert_eq!(drain(&mut q), vec![], "103's state is not known yet");
    q.operator_changed(now + secs(5), OperatorState::online("103"));
    assert_eq!(drain(&mut q), vec![ring(2, "103")]);

    // What the config refuses, a live change refuses too; the members stay.
    let refused = [vec![], vec!["102".to_string(), "102".to_string()]];
    for members in refused {
        assert!(q.set_members(now + secs(6), members).is_err());
    }
    assert_eq!(q.config().members, vec!["102", "103"]);
}

#[test]
fn a_transferred_caller_keeps_its_wait_and_its_place() {
    // (caller, priority, seconds already waited in another queue); one join per second.
    type Case = (
        &'static str,
        &'static [(CallerId, i32, u64)],
        &'static [CallerId],
    );
    let cases: &[Case] = &[
        (
            "no earlier wait: joining order",
            &[(1, 0, 0), (2, 0, 0), (3, 0, 0)],
            &[1, 2, 3],
        ),
        (
            "a caller who waited since before the others goes ahead of them",
            &[(1, 0, 0), (2, 0, 0), (3, 0, 30)],
            &[3, 1, 2],
        ),
        (
            "only ahead of those who began waiting later",
            &[(1, 0, 0), (2, 0, 0), (3, 0, 2)],
            &[1, 3, 2],
        ),
        (
            "the same start as the one ahead: behind it",
            &[(1, 0, 0), (2, 0, 0), (3, 0, 1)],
            &[1, 2, 3],
        ),
        (
            "priority still comes first",
            &[(1, 5, 0), (2, 0, 0), (3, 0, 30)],
            &[1, 3, 2],
        ),
    ];
    for (name, joins, expected) in cases {
        let (mut q, now) = queue(Strategy::Evenly, &[("101", &[], None)], None);
        let mut op = q.operator("101").unwrap().clone();
        op.status = Presence::Away;
        q.operator_changed(now, op.clone());
        for (i, (caller, priority, waited)) in joins.iter().enumerate() {
            let request = JoinRequest {
                priority: *priority,
                waited: secs(*waited),
                ..Default::default()
            };
            q.join_with(now + secs(i as u64), *caller, request).unwrap();
        }
        let order: Vec<CallerId> = q.waiting().map(|(c, _)| c).collect();
        assert_eq!(order, *expected, "{name}");
    }

    // The wait the queue reports at the answer counts the earlier one.
    let (mut q, now) = queue(Strategy::Evenly, &[("101", &[], None)], None);
    let request = JoinRequest {
        waited: secs(40),
        ..Default::default()
    };
    q.join_with(now, 1, request).unwrap();
    assert_eq!(drain(&mut q), vec![ring(1, "101")]);
    q.ring_answered(now + secs(5), 1, "101");
    let bridged = QueueCommand::Bridge {
        caller: 1,
        ext: "101".into(),
        waited: secs(45),
    };
    assert_eq!(drain(&mut q), vec![bridged]);
}
