//! Server non-INVITE transaction: RFC 3261 §17.2.2.

use super::timer::Armed;
use super::{Action, Class, Machine, Timer, TimerConfig};
use bytes::Bytes;
use std::collections::VecDeque;
use std::time::Instant;

#[derive(Debug, Clone)]
enum State {
    /// The request is with the TU and nothing has been sent: retransmissions are absorbed.
    Trying,
    /// A provisional was sent; retransmissions get it again.
    Proceeding {
        last_provisional: Bytes,
    },
    /// A final was sent; retransmissions get it again until J ends the transaction.
    Completed {
        response: Bytes,
        timer_j: Armed,
    },
    Terminated,
}

/// RFC 3261 §17.2.2 server non-INVITE transaction, sans IO.
#[derive(Debug, Clone)]
pub struct ServerNonInvite {
    state: State,
    cfg: TimerConfig,
    reliable: bool,
    actions: VecDeque<Action>,
}

impl ServerNonInvite {
    /// Start in Trying: the owner has already passed the request to the TU.
    pub fn new(now: Instant, cfg: TimerConfig, reliable: bool) -> Self {
        let _ = now; // Nothing is armed until the TU answers.
        Self {
            state: State::Trying,
            cfg: cfg.clamped(),
            reliable,
            actions: VecDeque::new(),
        }
    }

    /// The TU sends a response. After a final, further responses are dropped (§17.2.2), as are status codes
    /// outside 100–699.
    pub fn send_response(&mut self, now: Instant, status: u16, response: Bytes) {
        let Some(class) = Class::of(status) else {
            return;
        };
        if !matches!(self.state, State::Trying | State::Proceeding { .. }) {
            return;
        }
        self.actions.push_back(Action::Transmit(response.clone()));
        match class {
            Class::Provisional => {
                self.state = State::Proceeding {
                    last_provisional: response,
                }
            }
            // Timer J is zero on reliable transports: this machine terminates on the transition itself.
            Class::Success | Class::Failure if self.reliable => self.terminate(),
            Class::Success | Class::Failure => {
                let timer_j = Armed::start(Timer::J, now, self.cfg.timeout());
                self.state = State::Completed { response, timer_j };
            }
        }
    }

    /// A retransmission of the request arrived: repeat the last response sent, or absorb it in Trying.
    pub fn on_request_retransmit(&mut self, now: Instant) {
        let _ = now;
        let again = match &self.state {
            State::Proceeding { last_provisional } => last_provisional.clone(),
            State::Completed { response, .. } => response.clone(),
            State::Trying | State::Terminated => return,
        };
        self.actions.push_back(Action::Transmit(again));
    }

    pub fn state_name(&self) -> &'static str {
        match self.state {
            State::Trying => "Trying",
            State::Proceeding { .. } => "Proceeding",
            State::Completed { .. } => "Completed",
            State::Terminated => "Terminated",
        }
    }

    pub fn is_terminated(&self) -> bool {
        matches!(self.state, State::Terminated)
    }

    pub(crate) fn armed(&self) -> [Option<Armed>; 1] {
        match &self.state {
            State::Completed { timer_j, .. } => [Some(*timer_j)],
            State::Trying | State::Proceeding { .. } | State::Terminated => [None],
        }
    }

    fn terminate(&mut self) {
        if !self.is_terminated() {
            self.state = State::Terminated;
            self.actions.push_back(Action::Terminated);
        }
    }
}

impl ServerNonInvite {
    /// J, armed only in Completed, is this machine's one timer.
    fn fire_due(&mut self, _now: Instant, due: Timer) {
        if due == Timer::J {
            self.terminate();
        }
    }
}

impl Machine for ServerNonInvite {
    fn timers(&self) -> [Option<Armed>; 2] {
        [self.armed()[0], None]
    }

    fn fire(&mut self, now: Instant, due: Timer) {
        self.fire_due(now, due);
    }

    fn actions(&mut self) -> &mut VecDeque<Action> {
        &mut self.actions
    }

    fn is_terminated(&self) -> bool {
        ServerNonInvite::is_terminated(self)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    fn start(cfg: TimerConfig, reliable: bool) -> ServerNonInvite {
        let m = ServerNonInvite::new(base(), cfg, reliable);
        assert_eq!(m.state_name(), "Trying");
        assert_eq!(m.poll_timeout(), None);
        m
    }

    fn udp() -> ServerNonInvite {
        start(TimerConfig::default(), false)
    }

    fn send(m: &mut ServerNonInvite, t: u64, status: u16, text: &'static str) {
        m.send_response(at(t), status, Bytes::from_static(text.as_bytes()));
    }

    #[test]
    fn retransmissions_absorbed_in_trying_then_answered() {
        let mut m = udp();
        m.on_request_retransmit(at(10));
        assert_eq!(drain(&mut m), [], "Trying absorbs");
        send(&mut m, 20, 100, "100");
        send(&mut m, 30, 180, "180");
        assert_eq!(m.state_name(), "Proceeding");
        m.on_request_retransmit(at(40));
        assert_eq!(drain(&mut m), [tx("100"), tx("180"), tx("180")]);
        send(&mut m, 50, 200, "200");
        assert_eq!(m.state_name(), "Completed");
        m.on_request_retransmit(at(60));
        m.on_request_retransmit(at(70));
        assert_eq!(drain(&mut m), [tx("200"), tx("200"), tx("200")]);
    }

    #[test]
    fn completed_drops_further_responses_and_j_ends_it() {
        let cases: [(TimerConfig, u64); 2] = [
            (TimerConfig::default(), 32_000),
            (
                TimerConfig {
                    t1: ms(100),
                    ..TimerConfig::default()
                },
                6_400,
            ),
        ];
        for (cfg, j) in cases {
            let mut m = start(cfg, false);
            send(&mut m, 0, 404, "404");
            send(&mut m, 10, 200, "200");
            send(&mut m, 10, 100, "100");
            assert_eq!(drain(&mut m), [tx("404")]);
            let timeline = run_until(&mut m, at(1_000_000));
            assert_eq!(
                timeline,
                [(j, Action::Terminated)],
                "J = 64·T1, never a timeout"
            );
            m.on_request_retransmit(at(j));
            assert_inert(&mut m);
        }
    }

    #[test]
    fn tcp_final_terminates_at_once() {
        // Timer J is zero on reliable transports: this machine terminates on the transition itself.
        let mut m = start(TimerConfig::default(), true);
        send(&mut m, 0, 100, "100");
        send(&mut m, 5, 200, "200");
        assert_eq!(drain(&mut m), [tx("100"), tx("200"), Action::Terminated]);
        m.on_request_retransmit(at(10));
        send(&mut m, 10, 500, "500");
        assert_inert(&mut m);
    }

    #[test]
    fn send_sequences_table() {
        // (statuses sent in order, statuses on the wire, final state)
        let cases: [(&[u16], &[u16], &str); 6] = [
            (&[100], &[100], "Proceeding"),
            (&[200], &[200], "Completed"),
            (&[100, 183, 481], &[100, 183, 481], "Completed"),
            (&[202, 200, 100], &[202], "Completed"),
            (&[0, 99, 700, u16::MAX], &[], "Trying"),
            (&[100, 42, 699], &[100, 699], "Completed"),
        ];
        for (statuses, wire, state) in cases {
            let mut m = udp();
            for status in statuses {
                m.send_response(at(10), *status, Bytes::from(status.to_string()));
            }
            let want: Vec<Action> = wire
                .iter()
                .map(|s| Action::Transmit(Bytes::from(s.to_string())))
                .collect();
            assert_eq!(drain(&mut m), want, "{statuses:?}");
            assert_eq!(m.state_name(), state, "{statuses:?}");
        }
    }

    #[test]
    fn no_timer_runs_before_a_final() {
        let mut m = udp();
        send(&mut m, 0, 100, "100");
        assert_eq!(drain(&mut m), [tx("100")]);
        assert_eq!(m.poll_timeout(), None);
        assert_eq!(run_until(&mut m, at(1_000_000)), []);
        assert_eq!(m.state_name(), "Proceeding");
    }
}
