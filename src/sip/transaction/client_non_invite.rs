//! Client non-INVITE transaction: RFC 3261 §17.1.2.

use super::timer::Armed;
use super::{Action, Class, Machine, Timer, TimerConfig};
use bytes::Bytes;
use std::collections::VecDeque;
use std::time::Instant;

#[derive(Debug, Clone)]
enum State {
    /// Request sent, nothing heard. E retransmits (unreliable only, T1 doubling up to T2); F gives up.
    Trying {
        timer_e: Option<Armed>,
        timer_f: Armed,
    },
    /// A provisional arrived: E keeps retransmitting, now every T2; F still gives up.
    Proceeding {
        timer_e: Option<Armed>,
        timer_f: Armed,
    },
    /// A final arrived; K absorbs its retransmissions.
    Completed {
        timer_k: Armed,
    },
    Terminated,
}

/// RFC 3261 §17.1.2 client non-INVITE transaction, sans IO.
#[derive(Debug, Clone)]
pub struct ClientNonInvite {
    state: State,
    cfg: TimerConfig,
    reliable: bool,
    request: Bytes,
    actions: VecDeque<Action>,
}

impl ClientNonInvite {
    /// Start the transaction at `now`: queues the first `Transmit(request)`, arms E (unreliable only) and F.
    pub fn new(now: Instant, cfg: TimerConfig, reliable: bool, request: Bytes) -> Self {
        let cfg = cfg.clamped();
        let timer_e = (!reliable).then(|| Armed::start(Timer::E, now, cfg.t1));
        let timer_f = Armed::start(Timer::F, now, cfg.timeout());
        Self {
            state: State::Trying { timer_e, timer_f },
            cfg,
            reliable,
            actions: VecDeque::from([Action::Transmit(request.clone())]),
            request,
        }
    }

    /// A response matched this transaction. Returns true when it must be passed up to the TU. Status codes
    /// outside 100–699 are ignored.
    pub fn on_response(&mut self, now: Instant, status: u16) -> bool {
        let Some(class) = Class::of(status) else {
            return false;
        };
        let (State::Trying { timer_e, timer_f } | State::Proceeding { timer_e, timer_f }) =
            self.state
        else {
            // Completed absorbs retransmitted responses; Terminated ignores everything.
            return false;
        };
        match class {
            Class::Provisional => self.state = State::Proceeding { timer_e, timer_f },
            Class::Success | Class::Failure if self.reliable => {
                // Timer K is zero on reliable transports: no retransmission can follow.
                self.terminate();
            }
            Class::Success | Class::Failure => {
                let timer_k = Armed::start(Timer::K, now, self.cfg.t4);
                self.state = State::Completed { timer_k };
            }
        }
        true
    }

    pub fn state_name(&self) -> &'static str {
        match self.state {
            State::Trying { .. } => "Trying",
            State::Proceeding { .. } => "Proceeding",
            State::Completed { .. } => "Completed",
            State::Terminated => "Terminated",
        }
    }

    pub fn is_terminated(&self) -> bool {
        matches!(self.state, State::Terminated)
    }

    pub(crate) fn armed(&self) -> [Option<Armed>; 2] {
        match &self.state {
            State::Trying { timer_e, timer_f } | State::Proceeding { timer_e, timer_f } => {
                [*timer_e, Some(*timer_f)]
            }
            State::Completed { timer_k } => [Some(*timer_k), None],
            State::Terminated => [None, None],
        }
    }

    fn fire_due(&mut self, now: Instant, due: Timer) {
        let t2 = self.cfg.t2;
        match (&mut self.state, due) {
            (
                State::Trying {
                    timer_e: Some(e), ..
                },
                Timer::E,
            ) => {
                *e = e.doubled(now, Some(t2));
                self.actions
                    .push_back(Action::Transmit(self.request.clone()));
            }
            // §17.1.2.2: in Proceeding E is reset to T2 each time it fires.
            (
                State::Proceeding {
                    timer_e: Some(e), ..
                },
                Timer::E,
            ) => {
                *e = e.restarted(now, t2);
                self.actions
                    .push_back(Action::Transmit(self.request.clone()));
            }
            (State::Trying { .. } | State::Proceeding { .. }, Timer::F) => {
                self.actions.push_back(Action::Timeout);
                self.terminate();
            }
            (State::Completed { .. }, Timer::K) => self.terminate(),
            // `next_due` only yields timers armed in the current state.
            _ => {}
        }
    }

    fn terminate(&mut self) {
        if !self.is_terminated() {
            self.state = State::Terminated;
            self.actions.push_back(Action::Terminated);
        }
    }
}

impl Machine for ClientNonInvite {
    fn timers(&self) -> [Option<Armed>; 2] {
        self.armed()
    }

    fn fire(&mut self, now: Instant, due: Timer) {
        self.fire_due(now, due);
    }

    fn actions(&mut self) -> &mut VecDeque<Action> {
        &mut self.actions
    }

    fn is_terminated(&self) -> bool {
        ClientNonInvite::is_terminated(self)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    const REQ: &str = "OPTIONS";

    fn start(cfg: TimerConfig, reliable: bool) -> ClientNonInvite {
        let mut m = ClientNonInvite::new(base(), cfg, reliable, Bytes::from_static(REQ.as_bytes()));
        assert_eq!(drain(&mut m), [tx(REQ)], "the request goes out at once");
        m
    }

    fn udp() -> ClientNonInvite {
        start(TimerConfig::default(), false)
    }

    #[test]
    fn udp_timer_e_doubles_up_to_t2_until_f() {
        let fast = TimerConfig {
            t1: ms(100),
            t2: ms(400),
            t4: ms(1_000),
        };
        let fast_sends: Vec<u64> = [100, 300]
            .into_iter()
            .chain((0..15).map(|k| 700 + 400 * k))
            .collect();
        let cases: [(TimerConfig, Vec<u64>, u64); 2] = [
            (
                TimerConfig::default(),
                vec![
                    500, 1_500, 3_500, 7_500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500,
                ],
                32_000,
            ),
            (fast, fast_sends, 6_400),
        ];
        for (cfg, sends, f) in cases {
            let mut m = start(cfg, false);
            let timeline = run_until(&mut m, at(1_000_000));
            assert_eq!(transmit_times(&timeline), sends, "{cfg:?}");
            let mut retransmits = timeline
                .iter()
                .filter(|(_, a)| matches!(a, Action::Transmit(_)));
            assert!(retransmits.all(|(_, a)| *a == tx(REQ)));
            assert_eq!(
                endings(&timeline),
                [(f, Action::Timeout), (f, Action::Terminated)],
                "{cfg:?}"
            );
            assert_inert(&mut m);
        }
    }

    #[test]
    fn in_proceeding_e_fires_every_t2() {
        // (when the provisional arrives, expected sends). The E already armed keeps its deadline; every
        // firing after that is T2 later.
        let cases: [(u64, Vec<u64>); 3] = [
            (100, (0..8).map(|k| 500 + 4_000 * k).collect()),
            (
                600,
                [500]
                    .into_iter()
                    .chain((0..8).map(|k| 1_500 + 4_000 * k))
                    .collect(),
            ),
            (
                9_000,
                [
                    500, 1_500, 3_500, 7_500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500,
                ]
                .into(),
            ),
        ];
        for (provisional_at, sends) in cases {
            let mut m = udp();
            let mut timeline = run_until(&mut m, at(provisional_at));
            assert!(m.on_response(at(provisional_at), 100));
            assert_eq!(m.state_name(), "Proceeding");
            timeline.extend(run_until(&mut m, at(1_000_000)));
            assert_eq!(transmit_times(&timeline), sends, "1xx at {provisional_at}");
            assert_eq!(
                endings(&timeline),
                [(32_000, Action::Timeout), (32_000, Action::Terminated)]
            );
        }
    }

    #[test]
    fn tcp_never_retransmits_but_f_still_times_out() {
        let mut m = start(TimerConfig::default(), true);
        assert!(m.on_response(at(1_000), 100));
        let timeline = run_until(&mut m, at(1_000_000));
        assert_eq!(
            timeline,
            [(32_000, Action::Timeout), (32_000, Action::Terminated)]
        );
        assert_inert(&mut m);
    }

    #[test]
    fn final_completes_and_k_absorbs_retransmissions() {
        for final_status in [200, 404] {
            let mut m = udp();
            assert_eq!(run_until(&mut m, at(600)), [(500, tx(REQ))]);
            assert!(m.on_response(at(700), 180));
            assert!(
                m.on_response(at(800), final_status),
                "the first final goes up"
            );
            assert_eq!(m.state_name(), "Completed");
            for status in [final_status, 100, 200, 503] {
                assert!(!m.on_response(at(900), status));
            }
            assert_eq!(drain(&mut m), []);
            assert_eq!(
                run_until(&mut m, at(1_000_000)),
                [(5_800, Action::Terminated)],
                "K = T4 after the final, no retransmission, no timeout"
            );
            assert_inert(&mut m);
        }
    }

    #[test]
    fn tcp_final_terminates_at_once() {
        // Timer K is zero on reliable transports: this machine terminates on the transition itself.
        let mut m = start(TimerConfig::default(), true);
        assert!(m.on_response(at(50), 200));
        assert_eq!(drain(&mut m), [Action::Terminated]);
        assert!(!m.on_response(at(60), 200));
        assert_inert(&mut m);
    }

    #[test]
    fn custom_t4_sets_k() {
        let cfg = TimerConfig {
            t4: ms(1_234),
            ..TimerConfig::default()
        };
        let mut m = start(cfg, false);
        assert!(m.on_response(at(100), 202));
        assert_eq!(
            run_until(&mut m, at(1_000_000)),
            [(1_334, Action::Terminated)]
        );
    }

    #[test]
    fn response_sequences_table() {
        let cases: [(&[u16], &[bool], &str); 6] = [
            (&[100], &[true], "Proceeding"),
            (&[100, 180, 100], &[true, true, true], "Proceeding"),
            (&[200, 200], &[true, false], "Completed"),
            (
                &[100, 481, 200, 100],
                &[true, true, false, false],
                "Completed",
            ),
            (&[0, 99, 700], &[false; 3], "Trying"),
            (
                &[700, 100, 999, 200],
                &[false, true, false, true],
                "Completed",
            ),
        ];
        for (statuses, want, state) in cases {
            let mut m = udp();
            let got: Vec<bool> = statuses
                .iter()
                .map(|s| m.on_response(at(100), *s))
                .collect();
            assert_eq!(got, want, "{statuses:?}");
            assert_eq!(m.state_name(), state, "{statuses:?}");
        }
    }

    #[test]
    fn timeout_is_queued_exactly_once() {
        let mut m = udp();
        m.handle_timeout(at(32_000));
        m.handle_timeout(at(32_000));
        m.handle_timeout(at(64_000));
        let actions = drain(&mut m);
        assert_eq!(actions.iter().filter(|a| **a == Action::Timeout).count(), 1);
        assert_eq!(
            actions.iter().filter(|a| **a == Action::Terminated).count(),
            1
        );
        assert_eq!(actions.last(), Some(&Action::Terminated));
        assert_inert(&mut m);
    }
}
