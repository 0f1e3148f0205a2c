//! Engine tests: every node kind, driven by a fake clock (an `Instant` base plus offsets) and
//! explicit UTC timestamps; assertions are on the commands returned and the path kept.

use super::*;
use crate::ivr::load::load_set;

/// Flows from YAML (every sound exists, TTS is available); panics on load errors.
pub(super) fn flows(texts: &[&str]) -> Arc<FlowSet> {
    let files: Vec<(String, String)> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| (format!("f{i}.yaml"), (*t).to_owned()))
        .collect();
    let report = load_set(&files, &|_| true, true);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    Arc::new(FlowSet::new(report.flows))
}

pub(super) struct Harness {
    pub call: Call,
    pub t0: Instant,
    pub now: Instant,
    pub utc: Timestamp,
}

impl Harness {
    pub fn new(flows: Arc<FlowSet>, flow: &str) -> Harness {
        let vars = [
            ("caller", "+380441234567"),
            ("called", "100"),
            ("call_id", "c1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let t0 = crate::testing::t0();
        Harness {
            call: Call::new(flows, flow, vars).unwrap(),
            t0,
            now: t0,
            utc: "2026-03-09T13:30:00Z".parse().unwrap(),
        }
    }

    pub fn start(&mut self) -> Vec<Command> {
        self.call.start(self.now, self.utc)
    }

    /// Moves the clock to `ms` after the start and delivers `event`.
    pub fn at(&mut self, ms: u64, event: Event) -> Vec<Command> {
        self.now = self.t0 + Duration::from_millis(ms);
        self.call.step(self.now, self.utc, event)
    }

    pub fn ev(&mut self, event: Event) -> Vec<Command> {
        self.call.step(self.now, self.utc, event)
    }

    pub fn finished(&mut self) -> Vec<Command> {
        self.ev(Event::PlaybackFinished { interrupted: false })
    }

    pub fn key(&mut self, c: char) -> Vec<Command> {
        self.ev(Event::Digit(c))
    }

    /// Advances to the engine's deadline and delivers the timeout.
    pub fn fire(&mut self) -> Vec<Command> {
        let deadline = self.call.poll_timeout().expect("a timer is set");
        self.now = deadline;
        self.call.step(self.now, self.utc, Event::Timeout)
    }

    pub fn path(&self) -> Vec<(String, String, String)> {
        self.call
            .path()
            .iter()
            .map(|s| (s.flow.to_string(), s.node.to_string(), s.digits.clone()))
            .collect()
    }

    pub fn nodes(&self) -> Vec<String> {
        self.call
            .path()
            .iter()
            .map(|s| format!("{}{}", s.node, s.digits))
            .collect()
    }
}

pub(super) fn play(files: &[&str], barge_in: bool) -> Command {
    Command::Play {
        prompts: files
            .iter()
            .map(|f| Prompt::File((*f).to_owned()))
            .collect(),
        barge_in,
    }
}

pub(super) fn say(text: &str, voice: Option<&str>) -> Command {
    Command::Play {
        prompts: vec![Prompt::Say {
            text: text.to_owned(),
            voice: voice.map(str::to_owned),
        }],
        barge_in: false,
    }
}

pub(super) fn hangup(disposition: &str) -> Command {
    Command::Hangup {
        disposition: disposition.to_owned(),
    }
}

pub(super) fn is_log(c: &Command) -> bool {
    matches!(c, Command::Log { .. })
}

const MENU: &str = r#"
id: main
entry: menu
nodes:
  menu:
    menu:
      play: menu.wav
      timeout: 5s
      retries: 2
      options: { "1": sales, "2": support, "*": menu, "0": operator }
      on_invalid: invalid
      on_fail: operator
  invalid:
    play: invalid.wav
    next: menu
  sales:
    play: [sales.wav, goodbye.wav]
  support:
    queue: support
  operator:
    dial: "101"
    on_fail: sorry
  sorry:
    hangup:
"#;

#[test]
fn menu_key_after_the_prompt() {
    let mut h = Harness::new(flows(&[MENU]), "main");
    assert_eq!(h.start(), vec![play(&["menu.wav"], true)]);
    assert_eq!(
        h.call.poll_timeout(),
        None,
        "no timer while the prompt plays"
    );
    assert_eq!(
        h.at(4000, Event::PlaybackFinished { interrupted: false }),
        vec![]
    );
    assert_eq!(h.call.poll_timeout(), Some(h.t0 + Duration::from_secs(9)));
    assert_eq!(
        h.at(6000, Event::Digit('1')),
        vec![play(&["sales.wav", "goodbye.wav"], false)]
    );
    assert_eq!(h.finished(), vec![hangup("ivr.completed")]);
    assert_eq!(h.nodes(), vec!["menu1", "sales"]);
    assert_eq!(h.call.disposition(), Some("ivr.completed"));
    assert!(h.call.is_ended());
}

#[test]
fn menu_barge_in_stops_the_prompt_and_stale_finishes_are_ignored() {
    let mut h = Harness::new(flows(&[MENU]), "main");
    h.start();
    assert_eq!(
        h.key('2'),
        vec![
            Command::StopPlayback,
            Command::Enqueue {
                queue: "support".into(),
                skills: vec![],
                priority: 0,
            }
        ]
    );
    // The media session reports the stopped prompt afterwards: nothing happens.
    assert_eq!(h.ev(Event::PlaybackFinished { interrupted: true }), vec![]);
    assert_eq!(
        h.ev(Event::Digit('1')),
        vec![],
        "keys in a queue are the queue's"
    );
    assert_eq!(
        h.ev(Event::QueueResult(QueueResult::Unavailable)),
        vec![hangup("queue.unavailable")]
    );
    assert_eq!(h.nodes(), vec!["menu2", "support"]);
}

#[test]
fn without_barge_in_keys_during_the_prompt_are_ignored() {
    let text = MENU.replace(
        "      on_fail: operator\n",
        "      on_fail: operator\n      barge_in: false\n",
    );
    let mut h = Harness::new(flows(&[&text]), "main");
    assert_eq!(h.start(), vec![play(&["menu.wav"], false)]);
    assert_eq!(h.key('1'), vec![]);
    assert_eq!(h.finished(), vec![]);
    assert_eq!(h.key('1'), vec![play(&["sales.wav", "goodbye.wav"], false)]);
    assert_eq!(h.nodes(), vec!["menu1", "sales"]);
}

/// The try count survives the trip through `on_invalid` and back, so a caller pressing wrong
/// keys reaches `on_fail` after `retries` + 1 tries instead of looping forever.
#[test]
fn menu_retry_count_survives_on_invalid_round_trips() {
    let mut h = Harness::new(flows(&[MENU]), "main");
    h.start();
    h.finished();
    assert_eq!(h.key('9'), vec![play(&["invalid.wav"], false)]);
    assert_eq!(h.finished(), vec![play(&["menu.wav"], true)]);
    h.finished();
    assert_eq!(h.key('8'), vec![play(&["invalid.wav"], false)]);
    assert_eq!(h.finished(), vec![play(&["menu.wav"], true)]);
    h.finished();
    assert_eq!(
        h.key('7'),
        vec![Command::Dial {
            target: "101".into(),
            timeout: Duration::from_secs(30),
            literal: true,
        }]
    );
    assert_eq!(
        h.nodes(),
        vec!["menu9", "invalid", "menu8", "invalid", "menu7", "operator"]
    );
}

#[test]
fn menu_timeouts_repeat_the_prompt_and_count_as_tries() {
    let mut h = Harness::new(flows(&[MENU]), "main");
    h.start();
    h.at(3000, Event::PlaybackFinished { interrupted: false });
    assert_eq!(
        h.at(7999, Event::Timeout),
        vec![],
        "an early timeout is ignored"
    );
    assert_eq!(h.fire(), vec![play(&["menu.wav"], true)]);
    assert_eq!(h.now, h.t0 + Duration::from_secs(8));
    h.finished();
    assert_eq!(
        h.key('5'),
        vec![play(&["invalid.wav"], false)],
        "wrong keys and timeouts add up"
    );
    h.finished();
    h.finished();
    assert_eq!(
        h.fire(),
        vec![Command::Dial {
            target: "101".into(),
            timeout: Duration::from_secs(30),
            literal: true,
        }]
    );
    assert_eq!(
        h.ev(Event::DialResult(DialResult::Failed {
            reason: "busy".into()
        })),
        vec![hangup("ivr.completed")]
    );
    assert_eq!(h.call.variables()["dial_error"], "busy");
}

#[test]
fn a_right_key_starts_the_count_again() {
    let mut h = Harness::new(flows(&[MENU]), "main");
    h.start();
    h.finished();
    h.key('9'); // try 1
    h.finished(); // invalid.wav done, menu again
    h.finished();
    h.key('8'); // try 2
    h.finished();
    h.finished();
    assert_eq!(
        h.key('*'),
        vec![play(&["menu.wav"], true)],
        "`*` repeats the menu"
    );
    h.finished();
    assert_eq!(
        h.key('9'),
        vec![play(&["invalid.wav"], false)],
        "the count started again"
    );
}

#[test]
fn menu_fail_without_on_fail_ends_the_call() {
    let text = "id: m\nentry: m\nnodes:\n  m:\n    menu: { play: m.wav, retries: 0, options: { \"1\": m } }\n";
    let mut h = Harness::new(flows(&[text]), "m");
    h.start();
    h.finished();
    assert_eq!(h.key('#'), vec![hangup("ivr.menu_failed")]);
    assert_eq!(
        h.ev(Event::Digit('1')),
        vec![],
        "an ended call ignores events"
    );
    assert_eq!(h.start(), vec![]);
}

const GATHER: &str = r#"
id: g
entry: pin
nodes:
  pin:
    gather:
      play: enter-pin.wav
      var: pin
      min_digits: 3
      max_digits: 5
      timeout: 5s
      inter_digit_timeout: 2s
      retries: 1
      next: thanks
      on_fail: bye
  thanks:
    say: "Your PIN is ${pin}"
  bye:
    play: bye.wav
"#;

#[test]
fn gather_ends_on_the_terminator() {
    let mut h = Harness::new(flows(&[GATHER]), "g");
    assert_eq!(h.start(), vec![play(&["enter-pin.wav"], true)]);
    h.at(1000, Event::PlaybackFinished { interrupted: false });
    assert_eq!(
        h.call.poll_timeout(),
        Some(h.t0 + Duration::from_secs(6)),
        "first-key timeout"
    );
    for (i, c) in ['1', '2', '3'].into_iter().enumerate() {
        assert_eq!(h.at(2000 + i as u64 * 500, Event::Digit(c)), vec![]);
    }
    assert_eq!(
        h.call.poll_timeout(),
        Some(h.t0 + Duration::from_millis(5000)),
        "inter-digit"
    );
    assert_eq!(h.key('#'), vec![say("Your PIN is 123", None)]);
    assert_eq!(h.call.variables()["pin"], "123");
    assert_eq!(h.nodes(), vec!["pin123#", "thanks"]);
}

#[test]
fn gather_ends_at_max_digits() {
    let mut h = Harness::new(flows(&[GATHER]), "g");
    h.start();
    // Barge-in: the first key stops the prompt.
    assert_eq!(h.key('9'), vec![Command::StopPlayback]);
    for c in ['8', '7', '6'] {
        assert_eq!(h.key(c), vec![]);
    }
    assert_eq!(h.key('5'), vec![say("Your PIN is 98765", None)]);
}

#[test]
fn gather_inter_digit_timeout_completes_when_enough_digits() {
    let mut h = Harness::new(flows(&[GATHER]), "g");
    h.start();
    h.finished();
    for c in ['4', '2', '0'] {
        h.key(c);
    }
    assert_eq!(h.fire(), vec![say("Your PIN is 420", None)]);
}

#[test]
fn gather_too_few_digits_retries_then_fails() {
    let mut h = Harness::new(flows(&[GATHER]), "g");
    h.start();
    h.finished();
    h.key('4');
    h.key('2');
    assert_eq!(
        h.fire(),
        vec![play(&["enter-pin.wav"], true)],
        "too few: try again"
    );
    h.finished();
    assert_eq!(
        h.fire(),
        vec![play(&["bye.wav"], false)],
        "no first key: on_fail"
    );
    assert_eq!(h.nodes(), vec!["pin42", "bye"]);
    assert!(!h.call.variables().contains_key("pin"));
}

#[test]
fn gather_terminator_too_early_is_a_failed_try() {
    let mut h = Harness::new(flows(&[GATHER]), "g");
    h.start();
    h.finished();
    h.key('1');
    assert_eq!(h.key('#'), vec![play(&["enter-pin.wav"], true)]);
}

#[test]
fn gather_without_prompt_or_terminator() {
    let text = "id: g\nentry: ext\nnodes:\n  ext:\n    gather: { var: ext, max_digits: 3, terminator: none, next: call }\n  call:\n    dial: \"${ext}\"\n    on_fail: nobody\n  nobody:\n    play: nobody.wav\n";
    let mut h = Harness::new(flows(&[text]), "g");
    assert_eq!(h.start(), vec![]);
    assert_eq!(h.call.poll_timeout(), Some(h.t0 + Duration::from_secs(5)));
    h.key('#');
    h.key('1');
    assert_eq!(
        h.key('0'),
        vec![Command::Dial {
            target: "#10".into(),
            timeout: Duration::from_secs(30),
            literal: false,
        }]
    );
}

const RATE: &str = r#"
id: rating
entry: ask
nodes:
  ask:
    rate: { play: rate.wav, retries: 1, next: thanks }
  thanks:
    play: thanks.wav
"#;

#[test]
fn rate_stores_one_to_five() {
    for (key, rating) in [('1', 1), ('2', 2), ('3', 3), ('4', 4), ('5', 5)] {
        let mut h = Harness::new(flows(&[RATE]), "rating");
        assert_eq!(h.start(), vec![play(&["rate.wav"], true)]);
        h.finished();
        assert_eq!(
            h.key(key),
            vec![Command::SetRating(rating), play(&["thanks.wav"], false)]
        );
        assert_eq!(h.call.variables()["rating"], rating.to_string());
        assert_eq!(h.nodes(), vec![format!("ask{key}"), "thanks".to_owned()]);
    }
}

#[test]
fn rate_rejects_other_keys() {
    for key in ['0', '6', '7', '8', '9', '*', '#', 'A'] {
        let mut h = Harness::new(flows(&[RATE]), "rating");
        h.start();
        h.finished();
        assert_eq!(
            h.key(key),
            vec![play(&["rate.wav"], true)],
            "{key}: asked again"
        );
        h.finished();
        assert_eq!(
            h.key(key),
            vec![hangup("ivr.rate_failed")],
            "{key}: tries spent"
        );
    }
}

#[test]
fn rate_barge_in_and_timeout() {
    let mut h = Harness::new(flows(&[RATE]), "rating");
    h.start();
    assert_eq!(
        h.key('4'),
        vec![
            Command::StopPlayback,
            Command::SetRating(4),
            play(&["thanks.wav"], false)
        ]
    );
    let mut h = Harness::new(flows(&[RATE]), "rating");
    h.start();
    h.finished();
    assert_eq!(h.fire(), vec![play(&["rate.wav"], true)]);
    h.finished();
    assert_eq!(h.fire(), vec![hangup("ivr.rate_failed")]);
}

#[path = "tests_more.rs"]
mod more;
