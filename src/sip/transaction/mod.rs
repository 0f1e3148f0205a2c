//! SIP transactions (RFC 3261 §17, RFC 6026 §7–8): four sans-IO state machines and the keys that match
//! messages to them.
//!
//! A machine never touches a socket or a clock. Its owner feeds it what happened and when (`now`), drains
//! [`Action`]s with `poll_action`, sleeps until `poll_timeout`, then calls `handle_timeout`. The owner also
//! builds every message (ACKs included): machines only carry opaque bytes.

pub mod client_invite;
pub mod client_non_invite;
pub mod key;
pub mod server_invite;
pub mod server_non_invite;
pub mod timer;

#[cfg(test)]
mod test_support;

pub use client_invite::ClientInvite;
pub use client_non_invite::ClientNonInvite;
pub use key::TransactionKey;
pub use server_invite::ServerInvite;
pub use server_non_invite::ServerNonInvite;
pub use timer::{Timer, TimerConfig};

/// What a machine asks its owner (the endpoint/transport shell) to do.
/// The driving surface the four machines share: the owner drains `poll_action`, sleeps until
/// `poll_timeout` and calls `handle_timeout`. Each machine supplies its armed timers (timers are
/// data), what a due timer does, and its action queue.
pub(crate) trait Machine {
    fn timers(&self) -> [Option<timer::Armed>; 2];
    fn fire(&mut self, now: std::time::Instant, due: Timer);
    fn actions(&mut self) -> &mut std::collections::VecDeque<Action>;
    /// For the test drivers; the owner learns it from `Action::Terminated`.
    #[cfg_attr(not(test), allow(dead_code))]
    fn is_terminated(&self) -> bool;

    /// The next thing the owner must do, in order.
    fn poll_action(&mut self) -> Option<Action> {
        self.actions().pop_front()
    }

    /// The earliest armed timer deadline.
    fn poll_timeout(&self) -> Option<std::time::Instant> {
        timer::earliest(&self.timers())
    }

    /// Fires every armed timer due at `now`, earliest first (bounded, so a bad clock cannot spin).
    fn handle_timeout(&mut self, now: std::time::Instant) {
        for _ in 0..timer::MAX_FIRINGS_PER_CALL {
            let Some(due) = timer::next_due(&self.timers(), now) else {
                return;
            };
            self.fire(now, due);
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send these bytes to the transaction's peer over its transport.
    Transmit(bytes::Bytes),
    /// Timer B, F or H fired: tell the TU the transaction timed out. Timers D, I, J, K, L and M ending a
    /// transaction are normal ends, not timeouts.
    Timeout,
    /// The machine reached Terminated: the owner drops it. Queued exactly once.
    Terminated,
}

/// The response classes the machines tell apart. Status codes outside 100–699 are not responses a
/// transaction can act on; machines ignore them rather than guess.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    Provisional,
    Success,
    Failure,
}

impl Class {
    pub(crate) fn of(status: u16) -> Option<Self> {
        match status {
            100..=199 => Some(Self::Provisional),
            200..=299 => Some(Self::Success),
            300..=699 => Some(Self::Failure),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;
    use bytes::Bytes;

    /// On TCP no timer ever transmits: A, E and G are never armed. Each machine is pushed to the state where
    /// its retransmit timer would run and time is advanced well past 64·T1; the only transmissions are the
    /// ones the owner's own calls caused. B, F and H still time out.
    #[test]
    fn reliable_transport_never_retransmits_from_a_timer() {
        let cfg = TimerConfig::default();
        let req = || Bytes::from_static(b"req");
        let end = at(200_000);

        let mut ci = ClientInvite::new(base(), cfg, true, req());
        assert_eq!(drain(&mut ci), [tx("req")]);
        assert!(ci.armed().iter().flatten().all(|a| a.timer != Timer::A));
        let ci_timeline = run_until(&mut ci, end);

        let mut cn = ClientNonInvite::new(base(), cfg, true, req());
        assert_eq!(drain(&mut cn), [tx("req")]);
        assert!(
            cn.on_response(at(1), 100),
            "E would run every T2 in Proceeding"
        );
        assert!(cn.armed().iter().flatten().all(|a| a.timer != Timer::E));
        let cn_timeline = run_until(&mut cn, end);

        let mut si = ServerInvite::new(base(), cfg, true);
        si.send_response(base(), 500, req());
        assert_eq!(drain(&mut si), [tx("req")]);
        assert!(si.armed().iter().flatten().all(|a| a.timer != Timer::G));
        let si_timeline = run_until(&mut si, end);

        let timed_out = [(32_000, Action::Timeout), (32_000, Action::Terminated)];
        assert_eq!(ci_timeline, timed_out, "B");
        assert_eq!(cn_timeline, timed_out, "F");
        assert_eq!(si_timeline, timed_out, "H");
    }

    /// The 64·T1 timers follow T1 on every machine, reliable or not.
    #[test]
    fn timeouts_follow_custom_t1() {
        for t1 in [100, 250, 500, 2_000] {
            let cfg = TimerConfig {
                t1: ms(t1),
                t2: ms(4_000),
                t4: ms(5_000),
            };
            let want = [(64 * t1, Action::Timeout), (64 * t1, Action::Terminated)];
            for reliable in [false, true] {
                let mut ci = ClientInvite::new(base(), cfg, reliable, Bytes::new());
                let mut cn = ClientNonInvite::new(base(), cfg, reliable, Bytes::new());
                let mut si = ServerInvite::new(base(), cfg, reliable);
                si.send_response(base(), 408, Bytes::new());
                drain(&mut ci);
                drain(&mut cn);
                drain(&mut si);
                assert_eq!(
                    endings(&run_until(&mut ci, at(1_000_000))),
                    want,
                    "B, T1={t1}"
                );
                assert_eq!(
                    endings(&run_until(&mut cn, at(1_000_000))),
                    want,
                    "F, T1={t1}"
                );
                assert_eq!(
                    endings(&run_until(&mut si, at(1_000_000))),
                    want,
                    "H, T1={t1}"
                );
            }
        }
    }

    #[test]
    fn status_classes_cover_100_to_699_only() {
        let cases = [
            (0, None),
            (99, None),
            (100, Some(Class::Provisional)),
            (199, Some(Class::Provisional)),
            (200, Some(Class::Success)),
            (299, Some(Class::Success)),
            (300, Some(Class::Failure)),
            (699, Some(Class::Failure)),
            (700, None),
            (u16::MAX, None),
        ];
        for (status, class) in cases {
            assert_eq!(Class::of(status), class, "status {status}");
        }
    }
}
