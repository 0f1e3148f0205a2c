//! ACD shell tests: wrap-up wake-ups and skills at join, in virtual time.

use super::*;
use std::time::Duration;

fn acd(queue_toml: &str, now: Instant) -> Acd {
    #[derive(serde::Deserialize)]
    struct File {
        queues: Vec<QueueFileConfig>,
    }
    let file: File = toml::from_str(queue_toml).unwrap();
    let seed = OperatorSeed {
        extension: "101".into(),
        name: "Olena".into(),
        max_calls: 1,
        status: Presence::Online,
        status_reason: None,
        skills: vec![],
    };
    let mut acd = Acd::new(&file.queues, vec![seed], now);
    acd.set_registered(now, "101", true);
    acd
}

fn state(acd: &Acd, now: Instant) -> String {
    acd.operators_snapshot(now)[0].state.clone()
}

#[test]
fn the_end_of_a_wrap_up_is_a_wake_up_even_with_nobody_waiting() {
    // The operator's state (and its gauge) changes when wrap-up runs out, with no input:
    // the ACD must ask to be woken then, or the gauge would show wrap-up until the next call.
    let t0 = crate::testing::t0();
    let mut acd = acd(
        "[[queues]]\nname = \"sales\"\nmembers = [\"101\"]\nwrap_up = \"10s\"\n",
        t0,
    );
    assert_eq!(acd.poll_timeout(), None);
    acd.call_started(t0, "101");
    assert_eq!(state(&acd, t0), "talking");
    let ended = t0 + Duration::from_secs(5);
    acd.call_ended(ended, "101", Some("sales"));
    assert_eq!(state(&acd, ended), "wrap-up");
    let until = ended + Duration::from_secs(10);
    assert_eq!(acd.poll_timeout(), Some(until));

    acd.handle_timeout(until);
    assert_eq!(state(&acd, until), "available");
    assert_eq!(acd.poll_timeout(), None, "no wake-up left");
}

/// Review: a caller asking for skills nobody in the queue has (a typo in a flow) waited on
/// hold music for ever; the skills are dropped instead.
#[test]
fn skills_no_member_has_are_dropped_at_join() {
    let t0 = crate::testing::t0();
    let mut acd = acd("[[queues]]\nname = \"sales\"\nmembers = [\"101\"]\n", t0);
    std::iter::from_fn(|| acd.poll_action()).for_each(drop);
    let request = JoinRequest {
        priority: 0,
        skills: ["ukranian".to_string()].into(),
        ..Default::default()
    };
    assert!(acd.join(t0, 7, "sales", request));
    let rung = std::iter::from_fn(|| acd.poll_action())
        .any(|a| matches!(a, AcdAction::Ring { caller: 7, ref ext, .. } if ext == "101"));
    assert!(
        rung,
        "the caller is offered the member they did not ask for"
    );
}
