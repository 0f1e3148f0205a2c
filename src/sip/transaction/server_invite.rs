//! Server INVITE transaction: RFC 3261 §17.2.1 with the Accepted state of RFC 6026 §7.1 (Timer L).

use super::timer::Armed;
use super::{Action, Class, Machine, Timer, TimerConfig};
use bytes::Bytes;
use std::collections::VecDeque;
use std::time::Instant;

#[derive(Debug, Clone)]
enum State {
    /// The INVITE is with the TU. INVITE retransmissions get the last provisional again, if any. (Sending
    /// 100 Trying within 200 ms, §17.2.1, is the owner's job: it builds the bytes and calls `send_response`.)
    Proceeding {
        last_provisional: Option<Bytes>,
    },
    /// A 300–699 was sent. G retransmits it (unreliable only) until the ACK; H gives up waiting for the ACK.
    Completed {
        response: Bytes,
        timer_g: Option<Armed>,
        timer_h: Armed,
    },
    /// The ACK arrived; I absorbs its retransmissions.
    Confirmed {
        timer_i: Armed,
    },
    /// A 2xx was sent (RFC 6026): L keeps the transaction to absorb INVITE retransmissions and to route ACKs
    /// (and further 2xx from the UAS core, which retransmits them itself per §13.3.1.4).
    Accepted {
        timer_l: Armed,
    },
    Terminated,
}

/// RFC 3261 §17.2.1 server INVITE transaction, sans IO.
#[derive(Debug, Clone)]
pub struct ServerInvite {
    state: State,
    cfg: TimerConfig,
    reliable: bool,
    actions: VecDeque<Action>,
}

impl ServerInvite {
    /// Start in Proceeding: the owner has already passed the INVITE to the TU.
    pub fn new(now: Instant, cfg: TimerConfig, reliable: bool) -> Self {
        let _ = now; // Nothing is armed until the TU answers.
        Self {
            state: State::Proceeding {
                last_provisional: None,
            },
            cfg: cfg.clamped(),
            reliable,
            actions: VecDeque::new(),
        }
    }

    /// The TU sends a response. Responses the current state does not allow (anything after a final, a
    /// non-2xx after a 2xx, a status outside 100–699) are dropped.
    pub fn send_response(&mut self, now: Instant, status: u16, response: Bytes) {
        let Some(class) = Class::of(status) else {
            return;
        };
        match (class, &mut self.state) {
            (Class::Provisional, State::Proceeding { last_provisional }) => {
                *last_provisional = Some(response.clone());
            }
            (Class::Success, State::Proceeding { .. }) => {
                let timer_l = Armed::start(Timer::L, now, self.cfg.timeout());
                self.state = State::Accepted { timer_l };
            }
            (Class::Success, State::Accepted { .. }) => {}
            (Class::Failure, State::Proceeding { .. }) => {
                let timer_g = (!self.reliable).then(|| Armed::start(Timer::G, now, self.cfg.t1));
                let timer_h = Armed::start(Timer::H, now, self.cfg.timeout());
                self.state = State::Completed {
                    response: response.clone(),
                    timer_g,
                    timer_h,
                };
            }
            _ => return,
        }
        self.actions.push_back(Action::Transmit(response));
    }

    /// A retransmission of the INVITE arrived: answer with the latest response this layer owns, or absorb.
    pub fn on_request_retransmit(&mut self, now: Instant) {
        let _ = now;
        let again = match &self.state {
            State::Proceeding { last_provisional } => last_provisional.clone(),
            State::Completed { response, .. } => Some(response.clone()),
            // After a 2xx the UAS core owns retransmission; after the ACK there is nothing to answer.
            State::Accepted { .. } | State::Confirmed { .. } | State::Terminated => None,
        };
        if let Some(bytes) = again {
            self.actions.push_back(Action::Transmit(bytes));
        }
    }

    /// An ACK matched this transaction. Returns true when it must be passed up to the TU: only in Accepted
    /// (the ACK of a 2xx belongs to the dialog). The ACK of a non-2xx ends here (§17.2.1).
    pub fn on_ack(&mut self, now: Instant) -> bool {
        match self.state {
            State::Completed { .. } if self.reliable => {
                // Timer I is zero on reliable transports: this machine terminates on the transition itself.
                self.terminate();
                false
            }
            State::Completed { .. } => {
                let timer_i = Armed::start(Timer::I, now, self.cfg.t4);
                self.state = State::Confirmed { timer_i };
                false
            }
            State::Accepted { .. } => true,
            _ => false,
        }
    }

    pub fn state_name(&self) -> &'static str {
        match self.state {
            State::Proceeding { .. } => "Proceeding",
            State::Completed { .. } => "Completed",
            State::Confirmed { .. } => "Confirmed",
            State::Accepted { .. } => "Accepted",
            State::Terminated => "Terminated",
        }
    }

    pub fn is_terminated(&self) -> bool {
        matches!(self.state, State::Terminated)
    }

    pub(crate) fn armed(&self) -> [Option<Armed>; 2] {
        match &self.state {
            State::Completed {
                timer_g, timer_h, ..
            } => [*timer_g, Some(*timer_h)],
            State::Confirmed { timer_i } => [Some(*timer_i), None],
            State::Accepted { timer_l } => [Some(*timer_l), None],
            State::Proceeding { .. } | State::Terminated => [None, None],
        }
    }

    fn fire_due(&mut self, now: Instant, due: Timer) {
        let t2 = self.cfg.t2;
        match (&mut self.state, due) {
            (
                State::Completed {
                    response,
                    timer_g: Some(g),
                    ..
                },
                Timer::G,
            ) => {
                *g = g.doubled(now, Some(t2));
                self.actions.push_back(Action::Transmit(response.clone()));
            }
            (State::Completed { .. }, Timer::H) => {
                self.actions.push_back(Action::Timeout);
                self.terminate();
            }
            (State::Confirmed { .. }, Timer::I) | (State::Accepted { .. }, Timer::L) => {
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

impl Machine for ServerInvite {
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
        ServerInvite::is_terminated(self)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    fn start(cfg: TimerConfig, reliable: bool) -> ServerInvite {
        let mut m = ServerInvite::new(base(), cfg, reliable);
        assert_eq!(m.state_name(), "Proceeding");
        assert_eq!(m.poll_timeout(), None);
        assert_eq!(drain(&mut m), []);
        m
    }

    fn udp() -> ServerInvite {
        start(TimerConfig::default(), false)
    }

    fn send(m: &mut ServerInvite, t: u64, status: u16, text: &'static str) {
        m.send_response(at(t), status, Bytes::from_static(text.as_bytes()));
    }

    #[test]
    fn udp_timer_g_doubles_up_to_t2_until_h_times_out() {
        let fast = TimerConfig {
            t1: ms(100),
            t2: ms(400),
            t4: ms(1_000),
        };
        // Response sent at 1 s: G at +T1, +3·T1, +7·T1, then every T2; H at +64·T1.
        let cases: [(TimerConfig, Vec<u64>, u64); 2] = [
            (
                TimerConfig::default(),
                [
                    1_500, 2_500, 4_500, 8_500, 12_500, 16_500, 20_500, 24_500, 28_500, 32_500,
                ]
                .into(),
                33_000,
            ),
            (
                fast,
                [1_100, 1_300]
                    .into_iter()
                    .chain((0..15).map(|k| 1_700 + 400 * k))
                    .collect(),
                7_400,
            ),
        ];
        for (cfg, sends, h) in cases {
            let mut m = start(cfg, false);
            send(&mut m, 1_000, 486, "486");
            assert_eq!(drain(&mut m), [tx("486")]);
            assert_eq!(m.state_name(), "Completed");
            let timeline = run_until(&mut m, at(1_000_000));
            assert_eq!(transmit_times(&timeline), sends, "{cfg:?}");
            let mut finals = timeline
                .iter()
                .filter(|(_, a)| matches!(a, Action::Transmit(_)));
            assert!(
                finals.all(|(_, a)| *a == tx("486")),
                "G retransmits the final"
            );
            assert_eq!(
                endings(&timeline),
                [(h, Action::Timeout), (h, Action::Terminated)],
                "{cfg:?}"
            );
            assert_inert(&mut m);
        }
    }

    #[test]
    fn tcp_never_retransmits_the_final_but_h_still_times_out() {
        let mut m = start(TimerConfig::default(), true);
        send(&mut m, 0, 603, "603");
        assert_eq!(drain(&mut m), [tx("603")]);
        let timeline = run_until(&mut m, at(1_000_000));
        assert_eq!(
            timeline,
            [(32_000, Action::Timeout), (32_000, Action::Terminated)]
        );
        assert_inert(&mut m);
    }

    #[test]
    fn ack_for_failure_confirms_inside_the_transaction() {
        let mut m = udp();
        send(&mut m, 0, 404, "404");
        assert_eq!(drain(&mut m), [tx("404")]);
        assert_eq!(
            run_until(&mut m, at(2_000)),
            [(500, tx("404")), (1_500, tx("404"))]
        );
        assert!(
            !m.on_ack(at(2_000)),
            "the ACK of a non-2xx never reaches the TU"
        );
        assert_eq!(m.state_name(), "Confirmed");
        assert_eq!(
            m.poll_timeout(),
            Some(at(7_000)),
            "I = T4; G and H are gone"
        );
        // Retransmitted ACKs and INVITEs are absorbed; late responses from the TU are dropped.
        assert!(!m.on_ack(at(3_000)));
        m.on_request_retransmit(at(3_000));
        send(&mut m, 3_000, 200, "200");
        assert_eq!(drain(&mut m), []);
        assert_eq!(
            run_until(&mut m, at(1_000_000)),
            [(7_000, Action::Terminated)]
        );
        assert_inert(&mut m);
    }

    #[test]
    fn tcp_ack_for_failure_terminates_at_once() {
        // Timer I is zero on reliable transports: this machine terminates on the transition itself.
        let mut m = start(TimerConfig::default(), true);
        send(&mut m, 0, 486, "486");
        assert!(!m.on_ack(at(100)));
        assert_eq!(drain(&mut m), [tx("486"), Action::Terminated]);
        assert_inert(&mut m);
    }

    #[test]
    fn request_retransmissions_get_the_latest_response() {
        let mut m = udp();
        m.on_request_retransmit(at(10));
        assert_eq!(drain(&mut m), [], "nothing to repeat before a provisional");
        send(&mut m, 20, 100, "100");
        send(&mut m, 30, 180, "180");
        send(&mut m, 40, 183, "183");
        assert_eq!(drain(&mut m), [tx("100"), tx("180"), tx("183")]);
        m.on_request_retransmit(at(50));
        assert_eq!(drain(&mut m), [tx("183")]);
        send(&mut m, 60, 480, "480");
        m.on_request_retransmit(at(70));
        m.on_request_retransmit(at(80));
        assert_eq!(drain(&mut m), [tx("480"), tx("480"), tx("480")]);
    }

    #[test]
    fn success_enters_accepted_and_l_ends_it_without_timeout() {
        for reliable in [false, true] {
            let mut m = start(TimerConfig::default(), reliable);
            send(&mut m, 100, 180, "180");
            send(&mut m, 1_000, 200, "200");
            assert_eq!(m.state_name(), "Accepted");
            assert_eq!(m.poll_timeout(), Some(at(33_000)), "L = 64·T1");
            assert_eq!(drain(&mut m), [tx("180"), tx("200")]);
            // INVITE retransmissions are absorbed: the UAS core retransmits the 2xx itself.
            m.on_request_retransmit(at(1_500));
            assert_eq!(drain(&mut m), []);
            // ...and its 2xx retransmissions pass through; nothing else does.
            send(&mut m, 1_500, 200, "200");
            send(&mut m, 1_600, 180, "180");
            send(&mut m, 1_700, 500, "500");
            assert_eq!(drain(&mut m), [tx("200")]);
            // ACKs for the 2xx go to the TU, every time, and the state holds.
            assert!(m.on_ack(at(2_000)));
            assert!(m.on_ack(at(2_100)));
            assert_eq!(m.state_name(), "Accepted");
            let timeline = run_until(&mut m, at(1_000_000));
            assert_eq!(
                timeline,
                [(33_000, Action::Terminated)],
                "reliable={reliable}"
            );
            assert_inert(&mut m);
        }
    }

    #[test]
    fn responses_not_allowed_in_a_state_are_dropped() {
        // (responses sent in order, statuses expected on the wire, final state)
        let cases: [(&[u16], &[u16], &str); 7] = [
            (&[486, 180, 200, 603], &[486], "Completed"),
            (&[200, 180, 486], &[200], "Accepted"),
            (&[0, 99, 700, u16::MAX], &[], "Proceeding"),
            (&[100, 180, 183], &[100, 180, 183], "Proceeding"),
            (&[180, 200, 200, 200], &[180, 200, 200, 200], "Accepted"),
            (&[699], &[699], "Completed"),
            (&[300, 300], &[300], "Completed"),
        ];
        for (statuses, wire, state) in cases {
            let mut m = udp();
            for status in statuses {
                m.send_response(at(10), *status, Bytes::from(status.to_string()));
            }
            let sent = drain(&mut m);
            let want: Vec<Action> = wire
                .iter()
                .map(|s| Action::Transmit(Bytes::from(s.to_string())))
                .collect();
            assert_eq!(sent, want, "{statuses:?}");
            assert_eq!(m.state_name(), state, "{statuses:?}");
        }
    }

    #[test]
    fn ack_outside_completed_or_accepted_is_ignored() {
        let mut m = udp();
        assert!(!m.on_ack(at(10)), "no ACK before a final");
        assert_eq!(m.state_name(), "Proceeding");
        send(&mut m, 20, 487, "487");
        m.handle_timeout(at(32_020));
        assert_eq!(drain(&mut m).last(), Some(&Action::Terminated));
        assert!(!m.on_ack(at(32_030)));
        m.on_request_retransmit(at(32_030));
        send(&mut m, 32_030, 200, "200");
        assert_inert(&mut m);
    }

    #[test]
    fn late_wake_up_sends_one_retransmission_then_times_out_once() {
        let mut m = udp();
        send(&mut m, 0, 500, "500");
        m.handle_timeout(at(50_000));
        m.handle_timeout(at(50_000));
        assert_eq!(
            drain(&mut m),
            [tx("500"), tx("500"), Action::Timeout, Action::Terminated]
        );
        assert_inert(&mut m);
    }
}
