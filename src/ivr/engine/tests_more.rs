//! Engine tests, continued: play, say, set, hours across DST, goto, queue, dial, voicemail,
//! webhook, hangup, and the loop guard.

use super::*;

#[test]
fn play_list_then_next_then_end() {
    let text = "id: p\nentry: a\nnodes:\n  a:\n    play: [one.wav, two.wav]\n    next: b\n  b:\n    play: three.wav\n";
    let mut h = Harness::new(flows(&[text]), "p");
    assert_eq!(h.start(), vec![play(&["one.wav", "two.wav"], false)]);
    assert_eq!(h.key('1'), vec![], "keys during a play node are ignored");
    assert_eq!(h.ev(Event::Timeout), vec![]);
    assert_eq!(h.finished(), vec![play(&["three.wav"], false)]);
    assert_eq!(h.finished(), vec![hangup("ivr.completed")]);
    assert_eq!(h.nodes(), vec!["a", "b"]);
}

#[test]
fn set_and_interpolation_in_say() {
    let text = r#"
id: s
entry: set
nodes:
  set:
    set: { greeting: "Hello ${caller}", n: 42, empty: ~ }
    next: speak
  speak:
    say: "${greeting}, you are caller ${n}${empty}. ${nobody}$5"
    voice: en-us
    next: bye
  bye:
    hangup:
"#;
    let mut h = Harness::new(flows(&[text]), "s");
    assert_eq!(
        h.start(),
        vec![say(
            "Hello +380441234567, you are caller 42. $5",
            Some("en-us")
        )]
    );
    assert_eq!(h.call.variables()["n"], "42");
    assert_eq!(h.finished(), vec![hangup("ivr.completed")]);
    assert_eq!(h.nodes(), vec!["set", "speak", "bye"]);
}

const HOURS: &str = r#"
id: h
entry: check
nodes:
  check:
    hours:
      timezone: America/New_York
      open: { mon-fri: "09:00-18:00" }
      holidays: ["2026-07-03", "12-25"]
      when_open: open
      when_closed: closed
  open:
    play: open.wav
  closed:
    play: closed.wav
"#;

/// New York, open 09:00–18:00 local. 13:30 UTC is 08:30 EST before March 8, 2026 and 09:30 EDT
/// after it; 22:30 UTC is 17:30 EST and 18:30 EDT. In November it flips back.
#[test]
fn hours_across_dst_changes_and_holidays() {
    let cases = [
        ("2026-03-06T13:30:00Z", "closed.wav"), // Fri 08:30 EST
        ("2026-03-06T22:30:00Z", "open.wav"),   // Fri 17:30 EST
        ("2026-03-09T13:30:00Z", "open.wav"),   // Mon 09:30 EDT
        ("2026-03-09T22:30:00Z", "closed.wav"), // Mon 18:30 EDT
        ("2026-10-30T13:30:00Z", "open.wav"),   // Fri 09:30 EDT
        ("2026-11-02T13:30:00Z", "closed.wav"), // Mon 08:30 EST
        ("2026-11-02T14:00:00Z", "open.wav"),   // Mon 09:00 EST
        ("2026-03-07T16:00:00Z", "closed.wav"), // Saturday
        ("2026-07-03T16:00:00Z", "closed.wav"), // Friday, a holiday
        ("2026-12-25T16:00:00Z", "closed.wav"), // Friday, every year
        ("2026-12-24T16:00:00Z", "open.wav"),
    ];
    for (utc, file) in cases {
        let mut h = Harness::new(flows(&[HOURS]), "h");
        h.utc = utc.parse().unwrap();
        assert_eq!(h.start(), vec![play(&[file], false)], "{utc}");
        assert_eq!(h.call.path().len(), 2);
    }
}

const RATING_FLOW: &str = "id: rating\nentry: intro\nnodes:\n  intro:\n    play: intro.wav\n    next: ask\n  ask:\n    rate: rate.wav\n";

#[test]
fn goto_across_flows_keeps_the_path() {
    let main = "id: main\nentry: a\nnodes:\n  a:\n    play: a.wav\n    next: jump\n  jump:\n    goto: { flow: rating, node: ask }\n";
    let mut h = Harness::new(flows(&[main, RATING_FLOW]), "main");
    h.start();
    assert_eq!(h.finished(), vec![play(&["rate.wav"], true)]);
    assert_eq!(h.call.flow().as_str(), "rating");
    h.finished();
    assert_eq!(
        h.key('5'),
        vec![Command::SetRating(5), hangup("ivr.completed")]
    );
    assert_eq!(
        h.path(),
        vec![
            ("main".into(), "a".into(), "".into()),
            ("main".into(), "jump".into(), "".into()),
            ("rating".into(), "ask".into(), "5".into()),
        ]
    );
}

#[test]
fn goto_to_a_flow_missing_from_the_snapshot() {
    let main = "id: main\nentry: jump\nnodes:\n  jump:\n    goto: rating\n";
    let all = flows(&[main, RATING_FLOW]);
    let only_main = Arc::new(FlowSet::new(all.get("main").map(|f| (**f).clone())));
    let mut h = Harness::new(only_main, "main");
    let out = h.start();
    assert!(is_log(&out[0]), "{out:?}");
    assert_eq!(out[1], hangup("ivr.goto_failed"));
}

#[test]
fn a_call_keeps_the_flows_it_started_with() {
    let v1 =
        "id: main\nentry: a\nnodes:\n  a:\n    play: v1.wav\n    next: b\n  b:\n    play: b1.wav\n";
    let set1 = flows(&[v1]);
    let mut h = Harness::new(set1.clone(), "main");
    h.start();
    let set2 = flows(&[&v1.replace("b1.wav", "b2.wav")]); // a reload
    assert_eq!(h.finished(), vec![play(&["b1.wav"], false)]);
    let mut next_call = Harness::new(set2, "main");
    next_call.start();
    assert_eq!(next_call.finished(), vec![play(&["b2.wav"], false)]);
    assert!(Call::new(set1, "nope", BTreeMap::new()).is_err());
}

#[test]
fn queue_results() {
    let main = "id: main\nentry: q\nnodes:\n  q:\n    queue: sales\n";
    let set = flows(&[main, RATING_FLOW]);
    let mut h = Harness::new(set.clone(), "main");
    assert_eq!(
        h.start(),
        vec![Command::Enqueue {
            queue: "sales".into(),
            skills: vec![],
            priority: 0,
        }]
    );
    assert_eq!(h.call.poll_timeout(), None);
    let rating = FlowId::new("rating").unwrap();
    assert_eq!(
        h.ev(Event::QueueResult(QueueResult::Continue { flow: rating })),
        vec![play(&["intro.wav"], false)]
    );

    let mut h = Harness::new(set.clone(), "main");
    h.start();
    let ended = QueueResult::Ended {
        disposition: "queue.answered".into(),
    };
    assert_eq!(
        h.ev(Event::QueueResult(ended)),
        vec![hangup("queue.answered")]
    );

    let mut h = Harness::new(set.clone(), "main");
    h.start();
    assert_eq!(h.ev(Event::Hangup), vec![hangup("queue.abandoned")]);

    // Talking to the operator, then the caller hangs up: completed, not abandoned.
    let mut h = Harness::new(set.clone(), "main");
    h.start();
    assert_eq!(h.ev(Event::QueueResult(QueueResult::Answered)), vec![]);
    assert_eq!(h.ev(Event::Hangup), vec![hangup("queue.completed")]);

    // The operator hung up first: the rating flow takes the caller.
    let mut h = Harness::new(set, "main");
    h.start();
    h.ev(Event::QueueResult(QueueResult::Answered));
    let rating = FlowId::new("rating").unwrap();
    assert_eq!(
        h.ev(Event::QueueResult(QueueResult::Continue { flow: rating })),
        vec![play(&["intro.wav"], false)]
    );
}

#[test]
fn a_transfer_to_a_flow_starts_it_wherever_the_caller_was_and_the_path_goes_on() {
    let main = "id: main\nentry: q\nnodes:\n  q:\n    queue: sales\n";
    let dial = "id: d\nentry: op\nnodes:\n  op:\n    dial: { to: \"101\", timeout: 20s }\n";
    let set = flows(&[main, dial, RATING_FLOW]);
    let rating = FlowId::new("rating").unwrap();
    for (flow, connected) in [
        ("main", Event::QueueResult(QueueResult::Answered)),
        ("d", Event::DialResult(DialResult::Answered)),
    ] {
        let mut h = Harness::new(set.clone(), flow);
        h.start();
        assert_eq!(h.ev(connected), vec![]);
        assert_eq!(
            h.ev(Event::Transfer {
                flow: rating.clone()
            }),
            vec![play(&["intro.wav"], false)],
            "{flow}"
        );
        assert_eq!(h.call.flow().as_str(), "rating");
        let path = h.path();
        assert_eq!(
            path[0].0, flow,
            "the way before the transfer stays on the path"
        );
        assert_eq!(path.last().unwrap().0, "rating", "{path:?}");
    }
    // A flow added since the call began (a hot reload), once the call adopts the new set.
    let mut h = Harness::new(flows(&[main]), "main");
    h.start();
    h.ev(Event::QueueResult(QueueResult::Answered));
    h.call.adopt_flows(set.clone());
    assert_eq!(
        h.ev(Event::Transfer {
            flow: rating.clone()
        }),
        vec![play(&["intro.wav"], false)]
    );
    // A flow that is not loaded: logged, the call ends.
    let mut h = Harness::new(set, "main");
    h.start();
    h.ev(Event::QueueResult(QueueResult::Answered));
    let out = h.ev(Event::Transfer {
        flow: FlowId::new("gone").unwrap(),
    });
    assert!(is_log(&out[0]), "{out:?}");
    assert_eq!(out[1], hangup("ivr.goto_failed"));
}

#[test]
fn dial_answered_completed_and_failed() {
    let text = "id: d\nentry: op\nnodes:\n  op:\n    dial: { to: \"101\", timeout: 20s, next: rate }\n  rate:\n    play: rate.wav\n";
    let set = flows(&[text]);
    let mut h = Harness::new(set.clone(), "d");
    assert_eq!(
        h.start(),
        vec![Command::Dial {
            target: "101".into(),
            timeout: Duration::from_secs(20),
            literal: true,
        }]
    );
    assert_eq!(h.ev(Event::DialResult(DialResult::Answered)), vec![]);
    assert_eq!(
        h.ev(Event::DialResult(DialResult::Completed)),
        vec![play(&["rate.wav"], false)]
    );

    let mut h = Harness::new(set.clone(), "d");
    h.start();
    h.ev(Event::DialResult(DialResult::Answered));
    assert_eq!(h.ev(Event::Hangup), vec![hangup("dial.completed")]);

    let mut h = Harness::new(set, "d");
    h.start();
    let failed = DialResult::Failed {
        reason: "no answer".into(),
    };
    assert_eq!(h.ev(Event::DialResult(failed)), vec![hangup("dial.failed")]);
}

const VOICEMAIL: &str = "id: vm\nentry: closed\nnodes:\n  closed:\n    voicemail: { greeting: closed.wav, max_length: 60s }\n";

#[test]
fn voicemail_greeting_record_and_hash() {
    let mut h = Harness::new(flows(&[VOICEMAIL]), "vm");
    assert_eq!(h.start(), vec![play(&["closed.wav"], false)]);
    let record = Command::Record {
        max_length: Duration::from_secs(60),
        beep: true,
        finish_digit: Some('#'),
    };
    assert_eq!(
        h.at(3000, Event::PlaybackFinished { interrupted: false }),
        vec![record]
    );
    assert_eq!(h.key('5'), vec![]);
    assert_eq!(h.key('#'), vec![Command::StopRecording]);
    assert_eq!(
        h.ev(Event::RecordingFinished {
            duration_ms: 12_000
        }),
        vec![hangup("voicemail.left")]
    );
}

#[test]
fn voicemail_ends() {
    // The caller hangs up while recording: that is a message.
    let mut h = Harness::new(flows(&[VOICEMAIL]), "vm");
    h.start();
    h.finished();
    assert_eq!(
        h.ev(Event::Hangup),
        vec![Command::StopRecording, hangup("voicemail.left")]
    );
    // A silent second is no message.
    let mut h = Harness::new(flows(&[VOICEMAIL]), "vm");
    h.start();
    h.finished();
    assert_eq!(
        h.ev(Event::RecordingFinished { duration_ms: 400 }),
        vec![hangup("voicemail.empty")]
    );
    // The shell never reports the end: the engine stops after max_length and a grace period.
    let mut h = Harness::new(flows(&[VOICEMAIL]), "vm");
    h.start();
    h.at(2000, Event::PlaybackFinished { interrupted: false });
    assert_eq!(h.call.poll_timeout(), Some(h.t0 + Duration::from_secs(67)));
    assert_eq!(
        h.fire(),
        vec![Command::StopRecording, hangup("voicemail.left")]
    );
    // With a `next`, the message is still what the call is remembered by.
    let text = "id: vm\nentry: v\nnodes:\n  v:\n    voicemail: { beep: false }\n    next: thanks\n  thanks:\n    play: thanks.wav\n";
    let mut h = Harness::new(flows(&[text]), "vm");
    let out = h.start();
    assert!(
        matches!(out[..], [Command::Record { beep: false, .. }]),
        "{out:?}"
    );
    assert_eq!(
        h.ev(Event::RecordingFinished { duration_ms: 5000 }),
        vec![play(&["thanks.wav"], false)]
    );
    assert_eq!(h.ev(Event::Hangup), vec![hangup("voicemail.left")]);
}

const WEBHOOK: &str = r#"
id: w
entry: lookup
nodes:
  lookup:
    webhook:
      url: "http://127.0.0.1:9/lookup?caller=${caller}"
      timeout: 2s
      body: { account: "${account}", source: ivr }
    next: default
    on_error: sorry
  vip:
    say: "Welcome back ${name}"
  default:
    play: default.wav
  sorry:
    say: "Sorry: ${webhook_error}"
"#;

#[test]
fn webhook_request() {
    let mut h = Harness::new(flows(&[WEBHOOK]), "w");
    let out = h.start();
    let expected = Command::Webhook {
        url: "http://127.0.0.1:9/lookup?caller=%2B380441234567".into(),
        body: serde_json::json!({
            "flow": "w",
            "node": "lookup",
            "variables": { "caller": "+380441234567", "called": "100", "call_id": "c1" },
            "account": "",
            "source": "ivr",
        }),
        timeout: Duration::from_secs(2),
    };
    assert_eq!(out, vec![expected]);
    assert_eq!(h.call.poll_timeout(), None, "the shell times webhooks");
    assert_eq!(h.key('1'), vec![]);
}

#[test]
fn webhook_answers() {
    use serde_json::json;
    let ok = |v: serde_json::Value| Event::WebhookResult(Ok(v));
    let cases: Vec<(&str, Event, Command)> = vec![
        (
            "next and set",
            ok(json!({"next": "vip", "set": {"name": "Olena"}})),
            say("Welcome back Olena", None),
        ),
        (
            "empty answer",
            ok(json!(null)),
            play(&["default.wav"], false),
        ),
        (
            "no choice",
            ok(json!({"set": {"tier": 3}})),
            play(&["default.wav"], false),
        ),
        (
            "http error",
            Event::WebhookResult(Err("HTTP 500".into())),
            say("Sorry: HTTP 500", None),
        ),
        (
            "timeout",
            Event::WebhookResult(Err("timeout".into())),
            say("Sorry: timeout", None),
        ),
        (
            "unknown node",
            ok(json!({"next": "nowhere"})),
            say(
                "Sorry: the answer picked `nowhere`, which is not a node of this flow",
                None,
            ),
        ),
        (
            "not an object",
            ok(json!([1, 2])),
            say("Sorry: the answer is not a JSON object", None),
        ),
        (
            "bad set",
            ok(json!({"next": "vip", "set": {"bad name": "x"}})),
            say("Sorry: `set`: `bad name` is not a variable name", None),
        ),
    ];
    for (what, event, expected) in cases {
        let mut h = Harness::new(flows(&[WEBHOOK]), "w");
        h.start();
        let out = h.ev(event);
        assert_eq!(out.last(), Some(&expected), "{what}: {out:?}");
        let failed = out.iter().any(is_log);
        assert_eq!(
            failed,
            h.call.variables().contains_key("webhook_error"),
            "{what}"
        );
        assert!(
            !h.call.variables().contains_key("name") || what == "next and set",
            "{what}"
        );
    }
    let mut h = Harness::new(flows(&[WEBHOOK]), "w");
    h.start();
    h.ev(Event::WebhookResult(Ok(
        json!({"set": {"tier": 3, "vip": true, "gone": null}}),
    )));
    assert_eq!(h.call.variables()["tier"], "3");
    assert_eq!(h.call.variables()["vip"], "true");
}

#[test]
fn webhook_choices_and_no_on_error() {
    let text = "id: w\nentry: hook\nnodes:\n  hook:\n    webhook: { url: \"https://crm.example/x\", choices: [a] }\n  a:\n    hangup:\n  b:\n    hangup:\n";
    let mut h = Harness::new(flows(&[text]), "w");
    h.start();
    let out = h.ev(Event::WebhookResult(Ok(serde_json::json!({"next": "b"}))));
    assert!(is_log(&out[0]));
    assert_eq!(out[1], hangup("ivr.webhook_failed"));
    let mut h = Harness::new(flows(&[text]), "w");
    h.start();
    let out = h.ev(Event::WebhookResult(Ok(serde_json::json!({}))));
    assert_eq!(out[1], hangup("ivr.webhook_failed"), "no `next` anywhere");
}

#[test]
fn caller_hangs_up_in_the_ivr() {
    let mut h = Harness::new(flows(&[super::MENU]), "main");
    h.start();
    assert_eq!(h.ev(Event::Hangup), vec![hangup("ivr.abandoned")]);
    assert_eq!(h.call.disposition(), Some("ivr.abandoned"));
    assert_eq!(h.ev(Event::Hangup), vec![]);
}

#[test]
fn a_loop_without_waiting_ends_the_call() {
    let text = "id: l\nentry: a\nnodes:\n  a:\n    set: { x: \"${x}1\" }\n    next: b\n  b:\n    goto: { flow: l, node: a }\n";
    let mut h = Harness::new(flows(&[text]), "l");
    let out = h.start();
    assert!(is_log(&out[0]), "{out:?}");
    assert_eq!(out[1], hangup("ivr.loop"));
    assert!(
        h.call.path().len() < 100,
        "each hop is a node or a flow switch"
    );
}

#[test]
fn a_dial_target_from_an_empty_variable_goes_to_on_fail() {
    let text = "id: d\nentry: op\nnodes:\n  op:\n    dial: \"${ext}\"\n    on_fail: sorry\n  sorry:\n    play: sorry.wav\n";
    let mut h = Harness::new(flows(&[text]), "d");
    let out = h.start();
    assert!(is_log(&out[0]), "{out:?}");
    assert_eq!(out[1], play(&["sorry.wav"], false));
}

#[test]
fn hangup_before_start_and_thread_safety() {
    let mut h = Harness::new(flows(&[super::MENU]), "main");
    assert_eq!(h.ev(Event::Hangup), vec![hangup("ivr.abandoned")]);
    assert_eq!(h.start(), vec![]);
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Call>();
    send_sync::<FlowSet>();
}

/// Any order of events (stale, early, unknown keys) leaves the engine consistent: a timer only
/// in waiting states, and a hang-up always ends the call.
#[test]
fn random_event_sequences_never_panic() {
    let set = flows(&[
        super::MENU,
        super::GATHER,
        super::RATE,
        WEBHOOK,
        VOICEMAIL,
        HOURS,
    ]);
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut rand = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for flow in ["main", "g", "rating", "w", "vm", "h"] {
        for _ in 0..200 {
            let mut h = Harness::new(set.clone(), flow);
            h.start();
            for _ in 0..30 {
                let event = match rand(10) {
                    0 => Event::PlaybackFinished {
                        interrupted: rand(2) == 0,
                    },
                    1 | 2 => {
                        Event::Digit(['1', '2', '5', '9', '*', '#', 'x', '0'][rand(8) as usize])
                    }
                    3 => Event::Timeout,
                    4 => Event::WebhookResult(Ok(serde_json::json!({"next": "vip"}))),
                    5 => Event::RecordingFinished {
                        duration_ms: rand(5000),
                    },
                    6 => Event::QueueResult(QueueResult::Unavailable),
                    7 => Event::DialResult(DialResult::Failed { reason: "x".into() }),
                    8 => Event::Transfer {
                        flow: FlowId::new(["rating", "w", "nope"][rand(3) as usize]).unwrap(),
                    },
                    _ => Event::PlaybackFinished { interrupted: false },
                };
                let ms = rand(20_000);
                h.now += Duration::from_millis(ms);
                h.call.step(h.now, h.utc, event);
            }
            h.ev(Event::Hangup);
            assert!(h.call.is_ended());
            assert!(h.call.disposition().is_some());
            assert_eq!(h.call.poll_timeout(), None);
        }
    }
}
