//! Test-only virtual clock and drivers for the transaction machines (RFC 3261 §17): time is an `Instant`
//! base captured once plus `Duration`s; nothing sleeps.

use super::Action;
use bytes::Bytes;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The one real instant the tests read; every other instant is this plus a `Duration`.
pub(crate) fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

pub(crate) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// `base() + n ms`.
pub(crate) fn at(n: u64) -> Instant {
    base() + ms(n)
}

/// Milliseconds since `base()`, for readable timelines.
pub(crate) fn ms_since_base(t: Instant) -> u64 {
    u64::try_from(t.duration_since(base()).as_millis()).unwrap_or(u64::MAX)
}

pub(crate) fn tx(s: &'static str) -> Action {
    Action::Transmit(Bytes::from_static(s.as_bytes()))
}

pub(crate) use super::Machine;

pub(crate) fn drain(m: &mut impl Machine) -> Vec<Action> {
    std::iter::from_fn(|| m.poll_action()).collect()
}

/// Jump from one armed deadline to the next up to `end` (inclusive) and record what fires, as
/// `(ms since base, action)`. One nanosecond before each deadline it checks that nothing fires early.
pub(crate) fn run_until(m: &mut impl Machine, end: Instant) -> Vec<(u64, Action)> {
    let mut timeline = Vec::new();
    for _ in 0..10_000 {
        let Some(deadline) = m.poll_timeout() else {
            return timeline;
        };
        if deadline > end {
            return timeline;
        }
        if let Some(just_before) = deadline.checked_sub(Duration::from_nanos(1)) {
            m.handle_timeout(just_before);
            assert_eq!(drain(m), [], "fired before its deadline {deadline:?}");
        }
        m.handle_timeout(deadline);
        let fired = drain(m);
        assert!(
            !fired.is_empty(),
            "deadline {deadline:?} passed with no effect"
        );
        timeline.extend(fired.into_iter().map(|a| (ms_since_base(deadline), a)));
    }
    panic!("machine kept re-arming past 10 000 deadlines");
}

/// After Terminated a machine is inert: no deadline, and nothing fires however far time moves.
pub(crate) fn assert_inert(m: &mut impl Machine) {
    assert!(m.is_terminated());
    assert_eq!(m.poll_timeout(), None);
    m.handle_timeout(at(10_000_000));
    assert_eq!(drain(m), []);
}

/// Just the instants of the `Transmit` entries of a timeline.
pub(crate) fn transmit_times(timeline: &[(u64, Action)]) -> Vec<u64> {
    timeline
        .iter()
        .filter(|(_, a)| matches!(a, Action::Transmit(_)))
        .map(|(t, _)| *t)
        .collect()
}

/// The non-`Transmit` entries of a timeline: where the machine timed out and ended.
pub(crate) fn endings(timeline: &[(u64, Action)]) -> Vec<(u64, Action)> {
    timeline
        .iter()
        .filter(|(_, a)| !matches!(a, Action::Transmit(_)))
        .cloned()
        .collect()
}
