//! Client INVITE transaction: RFC 3261 §17.1.1 with the Accepted state of RFC 6026 §8.4 (Timer M).

use super::timer::{Armed, TIMER_D_UNRELIABLE};
use super::{Action, Class, Machine, Timer, TimerConfig};
use bytes::Bytes;
use std::collections::VecDeque;
use std::time::Instant;

#[derive(Debug, Clone)]
enum State {
    /// INVITE sent, nothing heard. A retransmits it (unreliable transports only); B gives up.
    Calling {
        timer_a: Option<Armed>,
        timer_b: Armed,
    },
    /// A provisional arrived: retransmission stops and B no longer applies; the TU bounds the wait (e.g.
    /// Timer C of a proxy), not this layer.
    Proceeding,
    /// A 300–699 arrived and was ACKed; D keeps the ACK around to answer retransmissions of that response.
    Completed {
        ack: Option<Bytes>,
        timer_d: Armed,
    },
    /// A 2xx arrived (RFC 6026): M keeps the transaction so retransmitted 2xx still reach the TU, which ACKs.
    Accepted {
        timer_m: Armed,
    },
    Terminated,
}

/// RFC 3261 §17.1.1 client INVITE transaction, sans IO.
#[derive(Debug, Clone)]
pub struct ClientInvite {
    state: State,
    cfg: TimerConfig,
    reliable: bool,
    invite: Bytes,
    actions: VecDeque<Action>,
}

impl ClientInvite {
    /// Start the transaction at `now`: queues the first `Transmit(invite)`, arms A (unreliable only) and B.
    pub fn new(now: Instant, cfg: TimerConfig, reliable: bool, invite: Bytes) -> Self {
        let cfg = cfg.clamped();
        let timer_a = (!reliable).then(|| Armed::start(Timer::A, now, cfg.t1));
        let timer_b = Armed::start(Timer::B, now, cfg.timeout());
        Self {
            state: State::Calling { timer_a, timer_b },
            cfg,
            reliable,
            actions: VecDeque::from([Action::Transmit(invite.clone())]),
            invite,
        }
    }

    /// A response matched this transaction. Returns true when it must be passed up to the TU.
    ///
    /// For a 300–699 the owner passes the ACK it built (§17.1.1.3); it is sent now and again for every
    /// retransmission of that response. Status codes outside 100–699 are ignored.
    pub fn on_response(
        &mut self,
        now: Instant,
        status: u16,
        ack_for_failure: Option<Bytes>,
    ) -> bool {
        let Some(class) = Class::of(status) else {
            return false;
        };
        match (class, &self.state) {
            (Class::Provisional, State::Calling { .. } | State::Proceeding) => {
                self.state = State::Proceeding;
                true
            }
            (Class::Success, State::Calling { .. } | State::Proceeding) => {
                let timer_m = Armed::start(Timer::M, now, self.cfg.timeout());
                self.state = State::Accepted { timer_m };
                true
            }
            // RFC 6026 §8.4: every 2xx in Accepted goes up so the TU can ACK it again.
            (Class::Success, State::Accepted { .. }) => true,
            (Class::Failure, State::Calling { .. } | State::Proceeding) => {
                if let Some(ack) = &ack_for_failure {
                    self.actions.push_back(Action::Transmit(ack.clone()));
                }
                if self.reliable {
                    // Timer D is zero on reliable transports: no retransmission can follow.
                    self.terminate();
                } else {
                    let timer_d = Armed::start(Timer::D, now, TIMER_D_UNRELIABLE);
                    self.state = State::Completed {
                        ack: ack_for_failure,
                        timer_d,
                    };
                }
                true
            }
            // A retransmitted final: re-send the ACK we stored, keep it from the TU.
            (Class::Failure, State::Completed { ack, .. }) => {
                if let Some(ack) = ack {
                    self.actions.push_back(Action::Transmit(ack.clone()));
                }
                false
            }
            _ => false,
        }
    }

    pub fn state_name(&self) -> &'static str {
        match self.state {
            State::Calling { .. } => "Calling",
            State::Proceeding => "Proceeding",
            State::Completed { .. } => "Completed",
            State::Accepted { .. } => "Accepted",
            State::Terminated => "Terminated",
        }
    }

    pub fn is_terminated(&self) -> bool {
        matches!(self.state, State::Terminated)
    }

    pub(crate) fn armed(&self) -> [Option<Armed>; 2] {
        match &self.state {
            State::Calling { timer_a, timer_b } => [*timer_a, Some(*timer_b)],
            State::Completed { timer_d, .. } => [Some(*timer_d), None],
            State::Accepted { timer_m } => [Some(*timer_m), None],
            State::Proceeding | State::Terminated => [None, None],
        }
    }

    fn fire_due(&mut self, now: Instant, due: Timer) {
        match (&mut self.state, due) {
            (
                State::Calling {
                    timer_a: Some(a), ..
                },
                Timer::A,
            ) => {
                // §17.1.1.2: A doubles on every firing and, unlike E and G, is not capped by T2.
                *a = a.doubled(now, None);
                self.actions
                    .push_back(Action::Transmit(self.invite.clone()));
            }
            (State::Calling { .. }, Timer::B) => {
                self.actions.push_back(Action::Timeout);
                self.terminate();
            }
            (State::Completed { .. }, Timer::D) | (State::Accepted { .. }, Timer::M) => {
                self.terminate();
            }
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

impl Machine for ClientInvite {
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
        ClientInvite::is_terminated(self)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    const INVITE: &str = "INVITE";
    const ACK: &str = "ACK";

    fn udp(cfg: TimerConfig) -> ClientInvite {
        let mut m = ClientInvite::new(base(), cfg, false, Bytes::from_static(INVITE.as_bytes()));
        assert_eq!(drain(&mut m), [tx(INVITE)], "the INVITE goes out at once");
        m
    }

    fn tcp() -> ClientInvite {
        let cfg = TimerConfig::default();
        let mut m = ClientInvite::new(base(), cfg, true, Bytes::from_static(INVITE.as_bytes()));
        assert_eq!(drain(&mut m), [tx(INVITE)]);
        m
    }

    fn ack() -> Option<Bytes> {
        Some(Bytes::from_static(ACK.as_bytes()))
    }

    #[test]
    fn udp_timer_a_doubles_without_cap_until_b() {
        let cases: [(TimerConfig, &[u64], u64); 3] = [
            (
                TimerConfig::default(),
                &[500, 1_500, 3_500, 7_500, 15_500, 31_500],
                32_000,
            ),
            (
                TimerConfig {
                    t1: ms(100),
                    t2: ms(400),
                    t4: ms(1_000),
                },
                &[100, 300, 700, 1_500, 3_100, 6_300],
                6_400,
            ),
            // T1 = 1 s: A keeps doubling past T2 = 4 s (1, 2, 4, 8, 16, 32 s intervals).
            (
                TimerConfig {
                    t1: ms(1_000),
                    ..TimerConfig::default()
                },
                &[1_000, 3_000, 7_000, 15_000, 31_000, 63_000],
                64_000,
            ),
        ];
        for (cfg, sends, b) in cases {
            let mut m = udp(cfg);
            let timeline = run_until(&mut m, at(1_000_000));
            assert_eq!(transmit_times(&timeline), sends, "{cfg:?}");
            assert!(timeline.iter().all(|(_, a)| *a != tx(ACK)));
            assert_eq!(
                endings(&timeline),
                [(b, Action::Timeout), (b, Action::Terminated)],
                "{cfg:?}"
            );
            assert_inert(&mut m);
        }
    }

    #[test]
    fn every_retransmission_carries_the_invite() {
        let mut m = udp(TimerConfig::default());
        let timeline = run_until(&mut m, at(31_999));
        assert_eq!(timeline.len(), 6);
        assert!(timeline.iter().all(|(_, a)| *a == tx(INVITE)));
        assert_eq!(m.state_name(), "Calling");
    }

    #[test]
    fn tcp_never_retransmits_but_b_still_times_out() {
        let mut m = tcp();
        assert_eq!(m.poll_timeout(), Some(at(32_000)));
        let timeline = run_until(&mut m, at(1_000_000));
        assert_eq!(
            timeline,
            [(32_000, Action::Timeout), (32_000, Action::Terminated)]
        );
        assert_inert(&mut m);
    }

    #[test]
    fn late_wake_up_fires_each_timer_once_in_deadline_order() {
        let mut m = udp(TimerConfig::default());
        m.handle_timeout(at(40_000));
        assert_eq!(
            drain(&mut m),
            [tx(INVITE), Action::Timeout, Action::Terminated]
        );
        assert_inert(&mut m);
    }

    #[test]
    fn provisional_stops_retransmission_and_timer_b() {
        let mut m = udp(TimerConfig::default());
        assert_eq!(run_until(&mut m, at(600)), [(500, tx(INVITE))]);
        assert!(m.on_response(at(700), 100, None));
        assert!(m.on_response(at(800), 180, None));
        assert_eq!(m.state_name(), "Proceeding");
        assert_eq!(m.poll_timeout(), None);
        assert_eq!(run_until(&mut m, at(1_000_000)), []);
        assert!(!m.is_terminated(), "the TU, not B, bounds Proceeding");
    }

    #[test]
    fn success_enters_accepted_and_m_ends_it_without_timeout() {
        for reliable in [false, true] {
            let mut m = if reliable {
                tcp()
            } else {
                udp(TimerConfig::default())
            };
            assert!(m.on_response(at(1_000), 180, None));
            assert!(m.on_response(at(2_000), 200, None));
            assert_eq!(m.state_name(), "Accepted");
            assert_eq!(m.poll_timeout(), Some(at(34_000)), "M = 64·T1");
            // Retransmitted 2xx (also from a forking proxy's other branch) go up so the TU ACKs them.
            assert!(m.on_response(at(3_000), 200, None));
            assert!(m.on_response(at(4_000), 202, None));
            // Anything else is absorbed.
            assert!(!m.on_response(at(5_000), 180, None));
            assert!(!m.on_response(at(5_000), 486, ack()));
            assert_eq!(drain(&mut m), [], "this layer never ACKs a 2xx");
            let timeline = run_until(&mut m, at(1_000_000));
            assert_eq!(
                timeline,
                [(34_000, Action::Terminated)],
                "reliable={reliable}"
            );
            assert_inert(&mut m);
        }
    }

    #[test]
    fn success_straight_from_calling_stops_a_and_b() {
        let mut m = udp(TimerConfig::default());
        assert!(m.on_response(at(100), 200, None));
        assert_eq!(m.armed()[0].map(|a| a.timer), Some(Timer::M));
        assert_eq!(
            run_until(&mut m, at(1_000_000)),
            [(32_100, Action::Terminated)]
        );
    }

    #[test]
    fn failure_is_acked_and_its_retransmissions_are_absorbed() {
        let mut m = udp(TimerConfig::default());
        assert!(m.on_response(at(200), 180, None));
        assert!(
            m.on_response(at(1_000), 486, ack()),
            "the first final goes up"
        );
        assert_eq!(m.state_name(), "Completed");
        assert_eq!(drain(&mut m), [tx(ACK)]);
        for t in [2_000, 5_000, 20_000] {
            // The owner may pass a fresh ACK or none: the stored one is what goes out.
            assert!(!m.on_response(at(t), 486, None));
            assert_eq!(drain(&mut m), [tx(ACK)]);
        }
        assert!(!m.on_response(at(21_000), 180, None));
        assert!(!m.on_response(at(21_000), 200, None));
        assert_eq!(drain(&mut m), []);
        assert_eq!(
            run_until(&mut m, at(1_000_000)),
            [(33_000, Action::Terminated)],
            "D = 32 s"
        );
        assert_inert(&mut m);
    }

    #[test]
    fn failure_without_ack_bytes_transmits_nothing() {
        let mut m = udp(TimerConfig::default());
        assert!(m.on_response(at(100), 503, None));
        assert!(!m.on_response(at(200), 503, ack()));
        assert_eq!(drain(&mut m), []);
        assert_eq!(m.state_name(), "Completed");
    }

    #[test]
    fn tcp_failure_acks_then_terminates_at_once() {
        // Timer D is zero on reliable transports: this machine terminates on the transition itself.
        let mut m = tcp();
        assert!(m.on_response(at(300), 404, ack()));
        assert_eq!(drain(&mut m), [tx(ACK), Action::Terminated]);
        assert_eq!(m.state_name(), "Terminated");
        assert!(!m.on_response(at(400), 404, ack()));
        assert_inert(&mut m);
    }

    #[test]
    fn response_sequences_table() {
        // (statuses in order, pass-up flags, final state)
        let cases: [(&[u16], &[bool], &str); 8] = [
            (&[100], &[true], "Proceeding"),
            (&[180, 183, 180], &[true, true, true], "Proceeding"),
            (&[200], &[true], "Accepted"),
            (
                &[180, 200, 200, 180],
                &[true, true, true, false],
                "Accepted",
            ),
            (&[300], &[true], "Completed"),
            (
                &[183, 699, 699, 200],
                &[true, true, false, false],
                "Completed",
            ),
            (&[0, 99, 700, u16::MAX], &[false; 4], "Calling"),
            (&[180, 700, 200], &[true, false, true], "Accepted"),
        ];
        for (statuses, want, state) in cases {
            let mut m = udp(TimerConfig::default());
            let got: Vec<bool> = statuses
                .iter()
                .map(|s| m.on_response(at(100), *s, ack()))
                .collect();
            assert_eq!(got, want, "{statuses:?}");
            assert_eq!(m.state_name(), state, "{statuses:?}");
        }
    }

    #[test]
    fn nothing_happens_after_termination() {
        let mut m = udp(TimerConfig::default());
        m.handle_timeout(at(32_000));
        assert_eq!(drain(&mut m).last(), Some(&Action::Terminated));
        for status in [100, 200, 486] {
            assert!(!m.on_response(at(33_000), status, ack()));
        }
        assert_inert(&mut m);
    }

    #[test]
    fn absurd_timer_config_neither_panics_nor_spins() {
        let zero = TimerConfig {
            t1: ms(0),
            t2: ms(0),
            t4: ms(0),
        };
        let mut m = udp(zero);
        let timeline = run_until(&mut m, at(1_000));
        assert_eq!(endings(&timeline).last(), Some(&(64, Action::Terminated)));
        let huge = TimerConfig {
            t1: std::time::Duration::MAX,
            ..zero
        };
        let mut m = udp(huge);
        m.handle_timeout(at(1_000));
        assert_eq!(drain(&mut m), []);
    }
}
