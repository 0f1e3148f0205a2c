//! The waiting states of a [`Call`]: what a key, a timeout, a finished prompt or an answer from
//! the shell means in a menu, a rate, a gather, a recording, a webhook, a queue or a dial.

use super::MIN_MESSAGE_MS;
use super::{
    Call, Command, DialResult, Event, Next, QueueResult, State, d, later, next_or_done, or_end,
};
use crate::ivr::flow::{Dtmf, Gather, Menu, NodeId, NodeKind, Rate, Webhook};
use crate::ivr::template::is_var_name;
use serde_json::Value as Json;
use std::sync::Arc;
use std::time::Instant;

/// A webhook answer read whole: the node to go to and the variables to set (`None`: unset).
type Answer = (NodeId, Vec<(String, Option<String>)>);

impl Call {
    /// Reacts to an event in a waiting state: the state to keep, and where to go, if anywhere.
    pub(super) fn handle(
        &mut self,
        state: State,
        now: Instant,
        event: Event,
        out: &mut Vec<Command>,
    ) -> (State, Option<Next>) {
        let flow = Arc::clone(&self.flow);
        let finished = event == (Event::PlaybackFinished { interrupted: false });
        let node_of = |node: &NodeId| flow.node(node);
        match state {
            State::Playing { next } if finished => (State::Ended, Some(next_or_done(&next))),
            State::Menu { node, deadline } => match node_of(&node) {
                Some(NodeKind::Menu(m)) => self.on_menu(node.clone(), deadline, m, now, event, out),
                _ => (State::Ended, Some(Next::Done)),
            },
            State::Rate {
                node,
                tries,
                deadline,
            } => match node_of(&node) {
                Some(NodeKind::Rate(r)) => {
                    self.on_rate(node.clone(), tries, deadline, r, now, event, out)
                }
                _ => (State::Ended, Some(Next::Done)),
            },
            State::Gather {
                node,
                tries,
                digits,
                deadline,
            } => match node_of(&node) {
                Some(NodeKind::Gather(g)) => {
                    self.on_gather(node.clone(), tries, digits, deadline, g, now, event, out)
                }
                _ => (State::Ended, Some(Next::Done)),
            },
            State::Greeting { node } if finished => {
                self.start_recording(node, now, out);
                let state = std::mem::replace(&mut self.state, State::Ended);
                (state, None)
            }
            State::Recording { node, deadline } => match event {
                Event::Digit('#') => {
                    out.push(Command::StopRecording);
                    (State::Recording { node, deadline }, None)
                }
                Event::RecordingFinished { duration_ms } => {
                    self.outcome = Some(if duration_ms < MIN_MESSAGE_MS {
                        d::VOICEMAIL_EMPTY
                    } else {
                        d::VOICEMAIL_LEFT
                    });
                    (State::Ended, Some(self.voicemail_next(&node)))
                }
                Event::Timeout if now >= deadline => {
                    // The shell never said the recording ended: stop it and go on.
                    out.push(Command::StopRecording);
                    self.outcome = Some(d::VOICEMAIL_LEFT);
                    (State::Ended, Some(self.voicemail_next(&node)))
                }
                _ => (State::Recording { node, deadline }, None),
            },
            State::Webhook { node } => match (event, node_of(&node)) {
                (Event::WebhookResult(result), Some(NodeKind::Webhook(w))) => (
                    State::Ended,
                    Some(self.webhook_answer(&node, w, result, out)),
                ),
                (_, _) => (State::Webhook { node }, None),
            },
            State::Queued { answered } => match event {
                Event::QueueResult(QueueResult::Answered) => {
                    (State::Queued { answered: true }, None)
                }
                Event::QueueResult(QueueResult::Unavailable) => (
                    State::Ended,
                    Some(Next::End(d::QUEUE_UNAVAILABLE.to_owned())),
                ),
                Event::QueueResult(QueueResult::Continue { flow }) => {
                    (State::Ended, Some(self.flow_named(&flow, None, out)))
                }
                Event::QueueResult(QueueResult::Ended { disposition }) => {
                    (State::Ended, Some(Next::End(disposition)))
                }
                _ => (State::Queued { answered }, None),
            },
            State::Dialing { node, answered } => match (event, node_of(&node)) {
                (Event::DialResult(DialResult::Answered), _) => (
                    State::Dialing {
                        node,
                        answered: true,
                    },
                    None,
                ),
                (Event::DialResult(DialResult::Completed), Some(NodeKind::Dial { next, .. })) => {
                    (State::Ended, Some(or_end(next, d::DIAL_COMPLETED)))
                }
                (
                    Event::DialResult(DialResult::Failed { reason }),
                    Some(NodeKind::Dial { on_fail, .. }),
                ) => {
                    self.vars.insert("dial_error".to_owned(), reason);
                    (State::Ended, Some(or_end(on_fail, d::DIAL_FAILED)))
                }
                _ => (State::Dialing { node, answered }, None),
            },
            other => (other, None),
        }
    }

    fn voicemail_next(&self, node: &NodeId) -> Next {
        match self.flow.node(node) {
            Some(NodeKind::Voicemail { next, .. }) => next_or_done(next),
            _ => Next::Done,
        }
    }

    /// A menu: one key picks an option; a wrong key or the timeout uses up a try.
    fn on_menu(
        &mut self,
        node: NodeId,
        deadline: Option<Instant>,
        m: &Menu,
        now: Instant,
        event: Event,
        out: &mut Vec<Command>,
    ) -> (State, Option<Next>) {
        let waiting = |deadline| State::Menu {
            node: node.clone(),
            deadline,
        };
        let key = (self.flow.id.clone(), node.clone());
        let wrong_key = match (event, deadline) {
            (Event::PlaybackFinished { interrupted: false }, None) => {
                return (waiting(Some(later(now, m.timeout))), None);
            }
            (Event::Digit(c), _) => match self.accept_key(c, deadline, m.barge_in, out) {
                Some(digit) => match m.options.get(&digit) {
                    Some(target) => {
                        self.menu_tries.remove(&key);
                        return (State::Ended, Some(Next::Node(target.clone())));
                    }
                    None => true,
                },
                None => return (waiting(deadline), None),
            },
            (Event::Timeout, Some(t)) if now >= t => false,
            _ => return (waiting(deadline), None),
        };
        let tries = self.menu_tries.get(&key).copied().unwrap_or(0) + 1;
        if tries > m.retries {
            self.menu_tries.remove(&key);
            return (State::Ended, Some(or_end(&m.on_fail, d::MENU_FAILED)));
        }
        self.menu_tries.insert(key, tries);
        if wrong_key && let Some(invalid) = &m.on_invalid {
            return (State::Ended, Some(Next::Node(invalid.clone())));
        }
        self.play(&m.prompt, m.barge_in, out);
        (waiting(None), None)
    }

    /// A key that counts: a DTMF symbol, during the prompt only with barge-in (the prompt is
    /// stopped), and recorded in the path.
    fn accept_key(
        &mut self,
        c: char,
        deadline: Option<Instant>,
        barge_in: bool,
        out: &mut Vec<Command>,
    ) -> Option<Dtmf> {
        let digit = Dtmf::new(c)?;
        if deadline.is_none() {
            if !barge_in {
                return None;
            }
            out.push(Command::StopPlayback);
        }
        self.record_digit(digit);
        Some(digit)
    }

    /// `rate`: a menu whose keys are 1–5, stored as the rating.
    #[allow(clippy::too_many_arguments)]
    fn on_rate(
        &mut self,
        node: NodeId,
        tries: u32,
        deadline: Option<Instant>,
        r: &Rate,
        now: Instant,
        event: Event,
        out: &mut Vec<Command>,
    ) -> (State, Option<Next>) {
        let waiting = |tries, deadline| State::Rate {
            node: node.clone(),
            tries,
            deadline,
        };
        match (event, deadline) {
            (Event::PlaybackFinished { interrupted: false }, None) => {
                return (waiting(tries, Some(later(now, r.timeout))), None);
            }
            (Event::Digit(c), _) => match self.accept_key(c, deadline, r.barge_in, out) {
                Some(digit) => {
                    if let Some(rating) = digit.rating() {
                        out.push(Command::SetRating(rating));
                        self.vars.insert("rating".to_owned(), rating.to_string());
                        return (State::Ended, Some(next_or_done(&r.next)));
                    }
                }
                None => return (waiting(tries, deadline), None),
            },
            (Event::Timeout, Some(t)) if now >= t => {}
            _ => return (waiting(tries, deadline), None),
        }
        if tries + 1 > r.retries {
            return (State::Ended, Some(or_end(&r.on_fail, d::RATE_FAILED)));
        }
        self.play(&r.prompt, r.barge_in, out);
        (waiting(tries + 1, None), None)
    }

    /// `gather`: keys until the terminator, `max_digits`, or the inter-digit timeout.
    #[allow(clippy::too_many_arguments)]
    fn on_gather(
        &mut self,
        node: NodeId,
        tries: u32,
        mut digits: String,
        deadline: Option<Instant>,
        g: &Gather,
        now: Instant,
        event: Event,
        out: &mut Vec<Command>,
    ) -> (State, Option<Next>) {
        let complete = match (event, deadline) {
            (Event::PlaybackFinished { interrupted: false }, None) => {
                let deadline = Some(later(now, g.timeout));
                return (
                    State::Gather {
                        node,
                        tries,
                        digits,
                        deadline,
                    },
                    None,
                );
            }
            (Event::Digit(c), _) => match self.accept_key(c, deadline, g.barge_in, out) {
                Some(digit) if Some(digit) == g.terminator => true,
                Some(digit) => {
                    digits.push(digit.as_char());
                    if digits.len() >= g.max_digits as usize {
                        true
                    } else {
                        let deadline = Some(later(now, g.inter_digit_timeout));
                        return (
                            State::Gather {
                                node,
                                tries,
                                digits,
                                deadline,
                            },
                            None,
                        );
                    }
                }
                None => {
                    return (
                        State::Gather {
                            node,
                            tries,
                            digits,
                            deadline,
                        },
                        None,
                    );
                }
            },
            // The first key never came, or the caller stopped typing.
            (Event::Timeout, Some(t)) if now >= t => !digits.is_empty(),
            _ => {
                return (
                    State::Gather {
                        node,
                        tries,
                        digits,
                        deadline,
                    },
                    None,
                );
            }
        };
        if complete && digits.len() >= g.min_digits as usize {
            self.vars.insert(g.var.clone(), digits);
            return (State::Ended, Some(Next::Node(g.next.clone())));
        }
        if tries + 1 > g.retries {
            return (State::Ended, Some(or_end(&g.on_fail, d::GATHER_FAILED)));
        }
        let deadline = self.gather_prompt(g, now, out);
        (
            State::Gather {
                node,
                tries: tries + 1,
                digits: String::new(),
                deadline,
            },
            None,
        )
    }

    /// The webhook's answer: `{"next": …, "set": {…}}`, checked whole before anything is applied.
    fn webhook_answer(
        &mut self,
        node: &NodeId,
        w: &Webhook,
        result: Result<Json, String>,
        out: &mut Vec<Command>,
    ) -> Next {
        match self.read_answer(w, result) {
            Ok((next, set)) => {
                for (name, value) in set {
                    match value {
                        Some(v) => self.vars.insert(name, v),
                        None => self.vars.remove(&name),
                    };
                }
                Next::Node(next)
            }
            Err(problem) => {
                out.push(Command::Log {
                    message: format!(
                        "webhook of node `{node}` in flow `{}`: {problem}",
                        self.flow.id
                    ),
                });
                self.vars.insert("webhook_error".to_owned(), problem);
                or_end(&w.on_error, d::WEBHOOK_FAILED)
            }
        }
    }

    fn read_answer(&self, w: &Webhook, result: Result<Json, String>) -> Result<Answer, String> {
        let answer = match result? {
            Json::Null => serde_json::Map::new(),
            Json::Object(map) => map,
            _ => return Err("the answer is not a JSON object".to_owned()),
        };
        let mut set = Vec::new();
        match answer.get("set") {
            None | Some(Json::Null) => {}
            Some(Json::Object(values)) => {
                for (name, value) in values {
                    if !is_var_name(name) {
                        return Err(format!("`set`: `{name}` is not a variable name"));
                    }
                    let value = match value {
                        Json::Null => None,
                        Json::String(s) => Some(s.clone()),
                        Json::Bool(_) | Json::Number(_) => Some(value.to_string()),
                        _ => {
                            return Err(format!(
                                "`set`: `{name}` must be text, a number or true/false"
                            ));
                        }
                    };
                    set.push((name.clone(), value));
                }
            }
            Some(_) => return Err("`set` is not an object".to_owned()),
        }
        let next = match answer.get("next") {
            None | Some(Json::Null) => w
                .next
                .clone()
                .ok_or("the answer picked no node and the webhook node has no `next`")?,
            Some(Json::String(name)) => {
                let id = NodeId::new(name)
                    .ok()
                    .filter(|id| self.flow.nodes.contains_key(id))
                    .ok_or_else(|| {
                        format!("the answer picked `{name}`, which is not a node of this flow")
                    })?;
                if w.choices.as_ref().is_some_and(|c| !c.contains(&id)) {
                    return Err(format!(
                        "the answer picked `{name}`, which is not one of the webhook's `choices`"
                    ));
                }
                id
            }
            Some(_) => return Err("`next` is not a node name".to_owned()),
        };
        Ok((next, set))
    }
}
