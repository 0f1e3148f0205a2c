//! Transaction timers of RFC 3261 §17 (Table 4) and RFC 6026 §8.4 (L, M), kept as plain data: which timer,
//! when it fires, and the interval it is running at.

use std::time::{Duration, Instant};

/// The timers of RFC 3261 Table 4 plus RFC 6026's L (server INVITE Accepted) and M (client INVITE Accepted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    /// Client INVITE retransmit (unreliable only), T1 doubling with no cap.
    A,
    /// Client INVITE timeout in Calling, 64·T1.
    B,
    /// Client INVITE wait for final response retransmissions, 32 s (0 on reliable transports).
    D,
    /// Client non-INVITE retransmit (unreliable only), T1 doubling capped at T2.
    E,
    /// Client non-INVITE timeout, 64·T1.
    F,
    /// Server INVITE final response retransmit (unreliable only), T1 doubling capped at T2.
    G,
    /// Server INVITE wait for ACK, 64·T1.
    H,
    /// Server INVITE wait for ACK retransmissions, T4 (0 on reliable transports).
    I,
    /// Server non-INVITE wait for request retransmissions, 64·T1 (0 on reliable transports).
    J,
    /// Client non-INVITE wait for response retransmissions, T4 (0 on reliable transports).
    K,
    /// Server INVITE Accepted: wait for INVITE retransmissions and ACKs after a 2xx, 64·T1.
    L,
    /// Client INVITE Accepted: wait for 2xx retransmissions, 64·T1.
    M,
}

/// T1 (RTT estimate), T2 (cap on non-INVITE and response retransmit intervals) and T4 (how long a message
/// may linger in the network), RFC 3261 §17.1.1.1 and Table 4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    pub t1: Duration,
    pub t2: Duration,
    pub t4: Duration,
}

impl Default for TimerConfig {
    /// The RFC defaults: T1 = 500 ms, T2 = 4 s, T4 = 5 s.
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

/// Smallest value a configured timer may take: a zero T1 would make a retransmit timer fire in a loop.
const MIN_TIMER: Duration = Duration::from_millis(1);
/// Largest value a configured timer may take: keeps `64·T1` and `Instant` arithmetic far from overflow.
const MAX_TIMER: Duration = Duration::from_secs(3600);

/// Timer D on unreliable transports (RFC 3261 Table 4).
pub(crate) const TIMER_D_UNRELIABLE: Duration = Duration::from_secs(32);

/// How many timers one `handle_timeout` call may fire. A machine has at most two armed timers and every
/// re-armed timer lands strictly after `now`, so this bound is never reached; it only guarantees that no
/// input can make `handle_timeout` spin.
pub(crate) const MAX_FIRINGS_PER_CALL: usize = 16;

impl TimerConfig {
    /// 64·T1: the transaction timeout (B, F, H) and the J, L and M waits.
    pub fn timeout(&self) -> Duration {
        self.t1.saturating_mul(64)
    }

    /// A copy with every value clamped to 1 ms ..= 1 h, so that no configuration can make a machine spin
    /// (zero intervals) or overflow `Instant`. Machines store the clamped copy.
    pub(crate) fn clamped(self) -> Self {
        let clamp = |d: Duration| d.clamp(MIN_TIMER, MAX_TIMER);
        Self {
            t1: clamp(self.t1),
            t2: clamp(self.t2),
            t4: clamp(self.t4),
        }
    }
}

/// One armed timer. `interval` is the span that produced `deadline`; retransmit timers grow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Armed {
    pub(crate) timer: Timer,
    pub(crate) deadline: Instant,
    pub(crate) interval: Duration,
}

impl Armed {
    pub(crate) fn start(timer: Timer, now: Instant, interval: Duration) -> Self {
        Self {
            timer,
            deadline: after(now, interval),
            interval,
        }
    }

    /// Re-arm after firing at `now` with the interval doubled, capped at `cap` when given (A has no cap; E
    /// and G are capped at T2). The next interval counts from the firing, so a late wake-up sends one
    /// retransmission rather than a burst of overdue ones.
    pub(crate) fn doubled(self, now: Instant, cap: Option<Duration>) -> Self {
        let doubled = self.interval.saturating_mul(2);
        let interval = cap.map_or(doubled, |cap| doubled.min(cap));
        Self::start(self.timer, now, interval)
    }

    /// Re-arm after firing at `now` with a fixed interval (E in Proceeding runs at T2).
    pub(crate) fn restarted(self, now: Instant, interval: Duration) -> Self {
        Self::start(self.timer, now, interval)
    }
}

/// `now + d`; an unrepresentable instant (not reachable with a clamped config) degrades to `now`.
fn after(now: Instant, d: Duration) -> Instant {
    now.checked_add(d).unwrap_or(now)
}

/// The earliest deadline among a machine's armed timers: what `poll_timeout` returns.
pub(crate) fn earliest(armed: &[Option<Armed>]) -> Option<Instant> {
    armed.iter().flatten().map(|a| a.deadline).min()
}

/// The armed timer with the earliest deadline that is due at `now`, if any.
pub(crate) fn next_due(armed: &[Option<Armed>], now: Instant) -> Option<Timer> {
    armed
        .iter()
        .flatten()
        .filter(|a| a.deadline <= now)
        .min_by_key(|a| a.deadline)
        .map(|a| a.timer)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{base, ms};
    use super::*;

    #[test]
    fn defaults_are_the_rfc_values() {
        let cfg = TimerConfig::default();
        assert_eq!(cfg.t1, ms(500));
        assert_eq!(cfg.t2, ms(4_000));
        assert_eq!(cfg.t4, ms(5_000));
        assert_eq!(cfg.timeout(), ms(32_000));
    }

    #[test]
    fn clamping_keeps_values_in_range() {
        let zero = TimerConfig {
            t1: Duration::ZERO,
            t2: Duration::ZERO,
            t4: Duration::ZERO,
        }
        .clamped();
        assert_eq!(
            (zero.t1, zero.t2, zero.t4),
            (MIN_TIMER, MIN_TIMER, MIN_TIMER)
        );
        let huge = TimerConfig {
            t1: Duration::MAX,
            t2: Duration::MAX,
            t4: Duration::MAX,
        };
        assert_eq!(huge.timeout(), Duration::MAX, "saturates, never panics");
        let huge = huge.clamped();
        assert_eq!(
            (huge.t1, huge.t2, huge.t4),
            (MAX_TIMER, MAX_TIMER, MAX_TIMER)
        );
        assert_eq!(TimerConfig::default().clamped(), TimerConfig::default());
    }

    #[test]
    fn doubling_with_and_without_cap() {
        let t0 = base();
        let a = Armed::start(Timer::A, t0, ms(500));
        assert_eq!(a.deadline, t0 + ms(500));
        let mut uncapped = a;
        let mut capped = a;
        let mut intervals = Vec::new();
        for _ in 0..5 {
            uncapped = uncapped.doubled(uncapped.deadline, None);
            capped = capped.doubled(capped.deadline, Some(ms(4_000)));
            intervals.push((uncapped.interval, capped.interval));
        }
        let want = [
            (ms(1_000), ms(1_000)),
            (ms(2_000), ms(2_000)),
            (ms(4_000), ms(4_000)),
            (ms(8_000), ms(4_000)),
            (ms(16_000), ms(4_000)),
        ];
        assert_eq!(intervals, want);
    }

    #[test]
    fn late_firing_rearms_from_the_firing_time() {
        let t0 = base();
        let a = Armed::start(Timer::A, t0, ms(500));
        let late = t0 + ms(10_000);
        assert_eq!(a.doubled(late, None).deadline, late + ms(1_000));
        assert_eq!(a.restarted(late, ms(4_000)).deadline, late + ms(4_000));
    }

    #[test]
    fn next_due_picks_the_earliest_due_timer() {
        let t0 = base();
        let b = Some(Armed::start(Timer::B, t0, ms(32_000)));
        let a = Some(Armed::start(Timer::A, t0, ms(500)));
        let armed = [b, a, None];
        assert_eq!(earliest(&armed), Some(t0 + ms(500)));
        assert_eq!(next_due(&armed, t0 + ms(499)), None);
        assert_eq!(next_due(&armed, t0 + ms(500)), Some(Timer::A));
        assert_eq!(next_due(&armed, t0 + ms(40_000)), Some(Timer::A));
        assert_eq!(next_due(&[b], t0 + ms(40_000)), Some(Timer::B));
        assert_eq!(earliest(&[None, None]), None);
    }
}
