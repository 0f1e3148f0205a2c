//! Supervision with real softphones: a baresip supervisor (`supervisor = true`) is rung through
//! the API onto a live queue call answered by a baresip operator, and listens, whispers and barges
//! in. What the caller hears never contains the supervisor while listening or whispering, and
//! does once they barge in; the supervisor hears both sides; the operator hears the whisper.
//! A supervisor also gets there from the phone: a feature code (`*81101`) and keys 1–3.

mod common;

use common::baresip::{Answer, BARESIP_SERVER_CONFIG, Baresip, BaresipConfig, read_wav, write_wav};
use common::rtp::{RtpPeer, assemble, best_correlation, test_signal};
use common::*;
use std::path::Path;

const CONFIG: &str = r#"
[[operators]]
extension = "103"
name = "Iryna"
password = "s3cret-103"
supervisor = true

[routes]
"201" = "q_first"

[[queues]]
name = "first"
members = ["101"]
wrap_up = "0s"
missed_rings_to_away = 0
"#;

fn start(temp: &Path) -> Server {
    let flows = temp.join("flows");
    std::fs::create_dir_all(&flows).unwrap();
    std::fs::write(
        flows.join("q_first.yaml"),
        "id: q_first\nentry: q\nnodes:\n  q:\n    queue: first\n",
    )
    .unwrap();
    Server::start_in(
        temp,
        &format!("{BARESIP_SERVER_CONFIG}{CONFIG}"),
        &["--flows", flows.to_str().unwrap()],
    )
}

fn phone(server: &Server, dir: &Path, ext: &str, voice: &[i16]) -> Baresip {
    let wav = dir.join(format!("{ext}.wav"));
    write_wav(&wav, voice);
    Baresip::start(BaresipConfig {
        extension: ext.into(),
        password: format!("s3cret-{ext}"),
        server_sip: server.sip,
        play_wav: wav,
        answer: Answer::Auto,
    })
}

/// The caller talks for `seconds`; what it heard (checked after the call: correlating in a debug
/// build is slow, and a caller silent for a minute would be hung up).
fn talk(rtp: &mut RtpPeer, caller_voice: &[i16], seconds: usize) -> Vec<i16> {
    let (heard, _) = rtp.converse(&caller_voice[..8000 * seconds], &[]);
    assemble(&heard)
}

/// White noise from a seeded generator: unlike `test_signal`s (which share a chirp), two noises
/// of different seeds do not correlate, so "the supervisor is not in this audio" can be told.
fn noise(seconds: usize, seed: u64) -> Vec<i16> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..8000 * seconds)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) % 10_001) as i16 - 5_000
        })
        .collect()
}

/// The best correlation of one second of `voice` (from 0.5 s into it) anywhere in `heard`.
fn presence(heard: &[i16], voice: &[i16]) -> f64 {
    best_correlation(heard, &voice[4_000..12_000], heard.len()).0
}

/// What the caller heard: the operator in every phase, the supervisor only in `barging`.
fn check_caller(
    unheard: &[(&Vec<i16>, &str)],
    barging: &[i16],
    operator_voice: &[i16],
    supervisor_voice: &[i16],
) {
    for (heard, what) in unheard {
        let c = presence(heard, operator_voice);
        assert!(
            c >= 0.9,
            "{what}: the caller hears the operator (r = {c:.3})"
        );
        let c = presence(heard, supervisor_voice);
        assert!(
            c < 0.5,
            "{what}: the caller does not hear the supervisor (r = {c:.3})"
        );
    }
    let c = presence(barging, supervisor_voice);
    assert!(
        c >= 0.5,
        "barge: the caller hears the supervisor (r = {c:.3})"
    );
    let c = presence(barging, operator_voice);
    assert!(c >= 0.5, "barge: and still the operator (r = {c:.3})");
}

/// The caller dials the queue; returns its SIP and RTP peers and the 200.
fn call_in(server: &Server, call_id: &str) -> (UdpPeer, RtpPeer, String) {
    let sip = UdpPeer::new(server.sip);
    let mut rtp = RtpPeer::new();
    let ok = invite_with(&sip, call_id, "201", &offer(rtp.port(), 101));
    rtp.remote = Some(sdp_media_addr(&ok));
    ack(&sip, call_id, &ok);
    (sip, rtp, ok)
}

/// `(kind, mode, by)` triples as `supervision_steps` returns them.
fn steps(list: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    list.iter()
        .map(|(k, m, b)| (k.to_string(), m.to_string(), b.to_string()))
        .collect()
}

/// `POST /api/v1/calls/{id}/supervise` with `token` and `body`.
fn supervise(server: &Server, id: &str, token: &str, body: &str) -> (u16, serde_json::Value) {
    let auth = format!("Bearer {token}");
    let r = send(
        server.http,
        "POST",
        &format!("/api/v1/calls/{id}/supervise"),
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    );
    let body = serde_json::from_slice(&r.body).unwrap_or(serde_json::Value::Null);
    (r.status, body)
}

/// The kinds, modes and ways in (`by`) of the call's supervision events.
fn supervision_steps(call: &serde_json::Value) -> Vec<(String, String, String)> {
    call["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["kind"]
                .as_str()
                .is_some_and(|k| k.starts_with("supervision"))
        })
        .map(|e| {
            let field = |name: &str| e["detail"][name].as_str().unwrap_or("").to_string();
            (
                e["kind"].as_str().unwrap().to_string(),
                field("mode"),
                field("by"),
            )
        })
        .collect()
}

#[test]
fn a_supervisor_listens_whispers_and_barges_in_and_the_caller_hears_them_only_in_barge() {
    let temp = tempfile::tempdir().unwrap();
    let server = start(temp.path());
    let operator_voice = test_signal(8000, 2.0, 7.0);
    let supervisor_voice = noise(2, 11);
    let p101 = phone(&server, temp.path(), "101", &operator_voice);
    let mut p103 = phone(&server, temp.path(), "103", &supervisor_voice);
    let caller_voice = noise(40, 5);

    let (sip, mut rtp, ok) = call_in(&server, "sup-1");
    let before = talk(&mut rtp, &caller_voice, 3);
    let calls = server.wait_for_calls("", "the call", |c| c.len() == 1);
    let id = calls[0]["id"].as_str().unwrap().to_string();

    // Refusals: not a supervisor, an operator token for someone else, a bad mode.
    let cases: &[(&str, &str, &str, u16, &str)] = &[
        (
            "102 is no supervisor",
            MANAGER_TOKEN,
            r#"{"mode":"listen","supervisor":"102"}"#,
            403,
            "supervise.not_supervisor",
        ),
        (
            "101's token as 103",
            OPERATOR_TOKEN,
            r#"{"mode":"listen","supervisor":"103"}"#,
            403,
            "supervise.not_yourself",
        ),
        (
            "no supervisor named",
            MANAGER_TOKEN,
            r#"{"mode":"listen"}"#,
            400,
            "supervise.supervisor_required",
        ),
        (
            "a mode that is none",
            MANAGER_TOKEN,
            r#"{"mode":"shout","supervisor":"103"}"#,
            400,
            "request.invalid_body",
        ),
    ];
    for (what, token, body, status, code) in cases {
        let (got, answer) = supervise(&server, &id, token, body);
        assert_eq!(
            (got, answer["error"]["code"].as_str()),
            (*status, Some(*code)),
            "{what}: {answer}"
        );
    }

    let (got, answer) = supervise(
        &server,
        &id,
        MANAGER_TOKEN,
        r#"{"mode":"listen","supervisor":"103"}"#,
    );
    assert_eq!(
        (got, answer["state"].as_str()),
        (202, Some("ringing")),
        "{answer}"
    );
    p103.wait_for_event("CALL_ESTABLISHED");
    let listening = talk(&mut rtp, &caller_voice[8000 * 3..], 5);
    let (got, answer) = supervise(
        &server,
        &id,
        MANAGER_TOKEN,
        r#"{"mode":"whisper","supervisor":"103"}"#,
    );
    assert_eq!(
        (got, answer["state"].as_str()),
        (202, Some("changed")),
        "{answer}"
    );
    let whispering = talk(&mut rtp, &caller_voice[8000 * 8..], 5);
    let (got, _) = supervise(
        &server,
        &id,
        MANAGER_TOKEN,
        r#"{"mode":"barge","supervisor":"103"}"#,
    );
    assert_eq!(got, 202);
    let barging = talk(&mut rtp, &caller_voice[8000 * 13..], 5);
    p103.hangup();
    let after = talk(&mut rtp, &caller_voice[8000 * 18..], 3);
    bye(&sip, "sup-1", &ok);
    p101.wait_for_event("CALL_CLOSED");

    // The caller: the operator all along, the supervisor only while barging in.
    check_caller(
        &[
            (&before, "before"),
            (&listening, "listen"),
            (&whispering, "whisper"),
            (&after, "after"),
        ],
        &barging,
        &operator_voice,
        &supervisor_voice,
    );

    // The supervisor heard both sides; the operator heard the supervisor (whisper, barge).
    let supervisor_heard = read_wav(&p103.received_wav());
    let c = presence(&supervisor_heard, &operator_voice);
    assert!(c >= 0.5, "the supervisor hears the operator (r = {c:.3})");
    let c = best_correlation(
        &supervisor_heard,
        &caller_voice[8000 * 5..8000 * 6],
        supervisor_heard.len(),
    )
    .0;
    assert!(c >= 0.5, "the supervisor hears the caller (r = {c:.3})");
    let operator_heard = read_wav(&p101.received_wav());
    let c = presence(&operator_heard, &supervisor_voice);
    assert!(c >= 0.5, "the operator hears the whisper (r = {c:.3})");

    let call = server.finished_call("sup-1");
    let expected = steps(&[
        ("supervision_started", "listen", "api"),
        ("supervision_mode", "whisper", "api"),
        ("supervision_mode", "barge", "api"),
        ("supervision_ended", "", ""),
    ]);
    assert_eq!(supervision_steps(&call), expected, "{:#}", call["events"]);
}

#[test]
fn a_supervisor_dials_a_feature_code_to_listen_and_presses_3_to_barge_in() {
    let temp = tempfile::tempdir().unwrap();
    let server = start(temp.path());
    let operator_voice = test_signal(8000, 2.0, 7.0);
    let supervisor_voice = noise(2, 13);
    let p101 = phone(&server, temp.path(), "101", &operator_voice);
    let mut p102 = phone(&server, temp.path(), "102", &noise(2, 17));
    let mut p103 = phone(&server, temp.path(), "103", &supervisor_voice);
    let caller_voice = noise(30, 3);

    let (sip, mut rtp, ok) = call_in(&server, "sup-code");
    let before = talk(&mut rtp, &caller_voice, 2);

    // 102 is no supervisor: its feature code is refused, and the call goes on untouched.
    p102.command("dial", "*81101");
    let closed = p102.wait_for_event("CALL_CLOSED");
    assert!(
        closed.param.contains("403"),
        "102's code is refused: {closed:?}"
    );

    p103.command("dial", "*81101");
    p103.wait_for_event("CALL_ESTABLISHED");
    let listening = talk(&mut rtp, &caller_voice[8000 * 2..], 5);
    p103.command("sndcode", "3");
    talk(&mut rtp, &caller_voice[8000 * 7..], 1); // the key travels
    let barging = talk(&mut rtp, &caller_voice[8000 * 8..], 5);
    p103.hangup();
    let after = talk(&mut rtp, &caller_voice[8000 * 13..], 3);
    bye(&sip, "sup-code", &ok);
    p101.wait_for_event("CALL_CLOSED");

    check_caller(
        &[
            (&before, "before"),
            (&listening, "listen"),
            (&after, "after"),
        ],
        &barging,
        &operator_voice,
        &supervisor_voice,
    );

    let call = server.finished_call("sup-code");
    let expected = steps(&[
        ("supervision_started", "listen", "phone"),
        ("supervision_mode", "barge", "phone"),
        ("supervision_ended", "", ""),
    ]);
    assert_eq!(supervision_steps(&call), expected, "{:#}", call["events"]);
}
