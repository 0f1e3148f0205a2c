//! Operator call control end to end, over real sockets: a queue call between a SIP caller and a
//! hand-driven operator phone, recorded; the operator pauses the recording through the API while
//! card details are read out, then resumes. The paused stretch is silence in the WAV on both
//! channels (the audio spoken then is nowhere in the file), the file's comment names the stretch,
//! and the call's events carry the pause and the resume. Keys sent by SIP INFO on either side
//! reach the other side as RFC 4733 events, and a key typed while paused is on the call masked.
//! The operator's phone pauses and resumes with key codes (`*1`, `*2`) too.

mod common;

use common::phone::Phone;
use common::rtp::{RtpPeer, best_correlation, test_signal};
use common::*;
use std::time::{Duration, Instant};

const MAIN: &str = "id: main\nentry: q\nnodes:\n  q:\n    queue: sales\n";

const QUEUE: &str = r#"
[[queues]]
name = "sales"
members = ["101"]
strategy = "in_order"
ring_timeout = "15s"
record = true

[[api_tokens]]
token = "test-operator-102-token-0123456789abcdef"
role = "operator"
extension = "102"
"#;

const OTHER_OPERATOR: &str = "test-operator-102-token-0123456789abcdef";

/// `POST /api/v1/calls/{id}/recording/{action}` with `token`.
fn recording(server: &Server, id: &str, action: &str, token: &str) -> HttpResponse {
    let auth = format!("Bearer {token}");
    send(
        server.http,
        "POST",
        &format!("/api/v1/calls/{id}/recording/{action}"),
        &[("Authorization", &auth)],
        b"",
    )
}

/// Both sides speak at once for the length of their signals (the operator's peer is handed back).
fn talk(
    caller: &mut RtpPeer,
    operator: RtpPeer,
    caller_voice: &[i16],
    operator_voice: Vec<i16>,
    caller_keys: &[(usize, char, u8)],
) -> RtpPeer {
    let op = std::thread::spawn(move || {
        let mut operator = operator;
        operator.converse(&operator_voice, &[]);
        operator
    });
    caller.converse(caller_voice, caller_keys);
    op.join().unwrap()
}

/// What is read out while paused: noise, unlike the test signal (whose chirp every phase shares),
/// so finding it in the file could only mean it was recorded.
fn noise(seconds: f64, seed: u64) -> Vec<i16> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..(8000.0 * seconds) as usize)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x >> 48) as i16) / 8
        })
        .collect()
}

/// A recorded queue call, answered by operator 101's hand-driven phone.
struct QueueCall {
    server: Server,
    phone: Phone,
    sip: UdpPeer,
    caller: RtpPeer,
    /// The caller's 200 OK.
    ok: String,
    /// The INVITE the operator's phone answered.
    invite: String,
    operator: RtpPeer,
    /// The call's id in the API.
    id: String,
}

/// Starts the server in `temp`, registers 101, calls in as `call_id` and answers on 101's phone.
fn answered_queue_call(temp: &std::path::Path, call_id: &str) -> QueueCall {
    let dir = temp.join("flows");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("main.yaml"), MAIN).unwrap();
    let server = Server::start_in(temp, QUEUE, &["--flows", dir.to_str().unwrap()]);
    let mut phone = Phone::register(server.sip, "101", "s3cret-101");
    let sip = UdpPeer::new(server.sip);
    let mut caller = RtpPeer::new();
    let ok = invite_with(&sip, call_id, "100", &offer(caller.port(), 101));
    caller.remote = Some(sdp_media_addr(&ok));
    ack(&sip, call_id, &ok);
    let deadline = Instant::now() + Duration::from_secs(15);
    let invite = loop {
        assert!(Instant::now() < deadline, "the operator's phone must ring");
        caller.converse(&[0; 160], &[]);
        if let Some(invite) = phone.wait_for("INVITE ", Duration::from_millis(20)) {
            break invite;
        }
    };
    let mut operator = RtpPeer::new();
    operator.remote = Some(sdp_media_addr(&invite));
    phone.answer(&invite, operator.port());
    let calls = server.wait_for_calls("", "the call, answered", |c| {
        c.len() == 1 && !c[0]["answered_at"].is_null()
    });
    let id = calls[0]["id"].as_str().unwrap().to_string();
    QueueCall {
        server,
        phone,
        sip,
        caller,
        ok,
        invite,
        operator,
        id,
    }
}

#[test]
fn a_paused_stretch_of_the_recording_is_silence_named_in_the_file_and_on_the_call() {
    let temp = tempfile::tempdir().unwrap();
    let QueueCall {
        server,
        mut phone,
        sip,
        mut caller,
        ok,
        invite,
        mut operator,
        id,
    } = answered_queue_call(temp.path(), "cc-pause");

    // Before the pause: both talk.
    let (caller_before, operator_before) =
        (test_signal(8000, 1.5, 3.0), test_signal(8000, 1.5, 4.0));
    operator = talk(
        &mut caller,
        operator,
        &caller_before,
        operator_before.clone(),
        &[],
    );

    // Who may pause: not an operator who is not on the call, not a call that is not up.
    let refused = recording(&server, &id, "pause", OTHER_OPERATOR);
    assert_eq!(refused.status, 404, "{}", refused.text());
    assert_eq!(refused.json()["error"]["code"], "call.not_live");
    let missing = "00000000-0000-4000-8000-000000000000";
    let refused = recording(&server, missing, "pause", MANAGER_TOKEN);
    assert_eq!(refused.status, 404, "{}", refused.text());

    // The operator on the call pauses it (twice: the second changes nothing).
    for _ in 0..2 {
        let paused = recording(&server, &id, "pause", OPERATOR_TOKEN);
        assert_eq!(paused.status, 200, "{}", paused.text());
        assert_eq!(paused.json()["recording"], "paused");
    }
    let (caller_card, operator_card) = (noise(2.0, 5), noise(2.0, 6));
    // The caller also types a key (a card digit) while paused.
    operator = talk(
        &mut caller,
        operator,
        &caller_card,
        operator_card.clone(),
        &[(4000, '9', 101)],
    );
    let resumed = recording(&server, &id, "resume", MANAGER_TOKEN);
    assert_eq!(resumed.status, 200, "{}", resumed.text());
    assert_eq!(resumed.json()["recording"], "recording");

    let (caller_after, operator_after) = (test_signal(8000, 1.5, 7.0), test_signal(8000, 1.5, 8.0));
    let operator = talk(
        &mut caller,
        operator,
        &caller_after,
        operator_after.clone(),
        &[],
    );

    // Keys sent by SIP INFO cross the bridge as RFC 4733 events: the operator's 7, the caller's 4.
    let listen = |mut peer: RtpPeer| {
        std::thread::spawn(move || {
            let (heard, _) = peer.converse(&[0; 8000], &[]);
            (peer, heard)
        })
    };
    let (operator_side, caller_side) = (listen(operator), listen(caller));
    std::thread::sleep(Duration::from_millis(200));
    let relay = "Content-Type: application/dtmf-relay\r\n";
    let answer = phone.in_dialog(&invite, "INFO", 5, relay, "Signal=7\r\nDuration=160\r\n");
    assert!(answer.starts_with("SIP/2.0 200"), "{answer}");
    let answer = info(&sip, "cc-pause", &ok, 3, "application/dtmf", "4");
    assert!(answer.starts_with("SIP/2.0 200"), "{answer}");
    let (_operator, operator_heard) = operator_side.join().unwrap();
    let (mut caller, caller_heard) = caller_side.join().unwrap();
    // One key press is one RTP timestamp (its packets and end repeats share it): counting
    // distinct (timestamp, key) pairs shows a key sent twice.
    let events = |heard: &common::rtp::Received| -> Vec<u8> {
        let mut presses: Vec<(u32, u8)> = heard
            .iter()
            .filter(|(_, pt, _)| *pt == 101)
            .map(|(ts, _, p)| (*ts, p[0]))
            .collect();
        presses.sort();
        presses.dedup();
        presses.into_iter().map(|(_, key)| key).collect()
    };
    assert_eq!(
        events(&caller_heard),
        vec![7],
        "the caller gets the operator's key"
    );
    assert_eq!(
        events(&operator_heard),
        vec![4],
        "the operator gets the caller's key"
    );
    phone.bye(&invite);
    answer_server_bye(&sip, &mut caller);

    // The call's events: one pause, one resume, with where they are in the file.
    let call = server.finished_call("cc-pause");
    let marks: Vec<(String, u64)> = call["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"].as_str().unwrap().starts_with("recording_"))
        .map(|e| {
            let kind = e["kind"].as_str().unwrap().to_string();
            (kind, e["detail"]["recording_ms"].as_u64().unwrap())
        })
        .collect();
    // The key typed while paused is on the call as a masked press: that, not which.
    let digits: Vec<(&str, &str)> = call["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "digit")
        .map(|e| {
            (
                e["detail"]["digit"].as_str().unwrap_or("masked"),
                e["detail"]["source"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        digits,
        vec![("masked", "rfc4733"), ("4", "sip_info")],
        "the caller's key is on the call, the operator's is not"
    );
    let [(paused_kind, paused_ms), (resumed_kind, resumed_ms)] = &marks[..] else {
        panic!("one pause and one resume: {call:#}");
    };
    assert_eq!(
        (paused_kind.as_str(), resumed_kind.as_str()),
        ("recording_paused", "recording_resumed")
    );
    assert!(
        resumed_ms - paused_ms >= 1900,
        "paused {paused_ms}..{resumed_ms} ms"
    );

    // The file, as a manager downloads it.
    let recording_id = call["recording_id"]
        .as_str()
        .unwrap_or_else(|| panic!("{call:#}"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.get(&format!("/api/v1/calls/{id}")).1["recordings"][0]["status"] != "complete" {
        assert!(Instant::now() < deadline, "the recording did not complete");
        std::thread::sleep(Duration::from_millis(100));
    }
    let auth = format!("Bearer {MANAGER_TOKEN}");
    let download = send(
        server.http,
        "GET",
        &format!("/api/v1/recordings/{recording_id}"),
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(download.status, 200);
    let file = temp.path().join("downloaded.wav");
    std::fs::write(&file, &download.body).unwrap();
    let comment = openline::media::recorder::read_comment(&file)
        .unwrap()
        .unwrap_or_default();
    let clock = |ms: u64| format!("{}:{:02}.{:03}", ms / 60_000, ms / 1000 % 60, ms % 1000);
    assert!(
        comment.starts_with(&format!("recording paused {}-", clock(*paused_ms))),
        "{comment:?}"
    );

    let samples: Vec<i16> = hound::WavReader::open(&file)
        .unwrap()
        .into_samples::<i16>()
        .map(Result::unwrap)
        .collect();
    let left: Vec<i16> = samples.iter().step_by(2).copied().collect();
    let right: Vec<i16> = samples.iter().skip(1).step_by(2).copied().collect();
    // Silence, exactly, from the pause to the resume (a sample of slack for the ms rounding).
    let stretch = (*paused_ms as usize * 8 + 8)..(*resumed_ms as usize * 8);
    assert!(
        left[stretch.clone()].iter().all(|s| *s == 0),
        "caller channel silent while paused"
    );
    assert!(
        right[stretch].iter().all(|s| *s == 0),
        "operator channel silent while paused"
    );
    // What was said before and after is there; what was said while paused is not.
    // (200 ms of each is unambiguous, and keeps a debug build's search over the file short.)
    let found = |channel: &[i16], voice: &[i16]| {
        best_correlation(channel, &voice[2_000..3_600], channel.len()).0
    };
    for (name, channel, before, card, after) in [
        ("caller", &left, &caller_before, &caller_card, &caller_after),
        (
            "operator",
            &right,
            &operator_before,
            &operator_card,
            &operator_after,
        ),
    ] {
        assert!(
            found(channel, before) >= 0.9,
            "{name} before the pause is recorded"
        );
        assert!(
            found(channel, after) >= 0.9,
            "{name} after the resume is recorded"
        );
        let leaked = found(channel, card);
        assert!(
            leaked < 0.3,
            "{name} while paused is not in the file (r = {leaked:.3})"
        );
    }
}

#[test]
fn the_operator_pauses_and_resumes_the_recording_with_key_codes_from_the_phone() {
    let temp = tempfile::tempdir().unwrap();
    let QueueCall {
        server,
        mut phone,
        sip,
        mut caller,
        invite,
        mut operator,
        ..
    } = answered_queue_call(temp.path(), "cc-keys");

    // A lone `1` and `*5` are only keys; `*1` (RFC 4733) pauses; the card is read out; `*2`
    // resumes.
    let keys = |codes: &[(usize, char)]| -> Vec<(usize, char, u8)> {
        codes.iter().map(|(at, key)| (*at, *key, 101)).collect()
    };
    let operator_talks = |operator: RtpPeer,
                          caller: &mut RtpPeer,
                          voice: Vec<i16>,
                          codes: Vec<(usize, char, u8)>| {
        let op = std::thread::spawn(move || {
            let mut operator = operator;
            operator.converse(&voice, &codes);
            operator
        });
        caller.converse(&vec![0; 8000], &[]);
        op.join().unwrap()
    };
    let before = test_signal(8000, 1.0, 3.0);
    operator = operator_talks(
        operator,
        &mut caller,
        before.clone(),
        keys(&[
            (800, '1'),
            (2400, '*'),
            (4000, '5'),
            (5600, '*'),
            (7200, '1'),
        ]),
    );
    let card = noise(1.0, 9);
    operator = operator_talks(operator, &mut caller, card.clone(), keys(&[]));
    let after = test_signal(8000, 1.0, 7.0);
    let operator = operator_talks(
        operator,
        &mut caller,
        after,
        keys(&[(800, '*'), (2400, '2')]),
    );
    let after_resume = test_signal(8000, 1.5, 8.0);
    operator_talks(operator, &mut caller, after_resume.clone(), keys(&[]));
    phone.bye(&invite);
    answer_server_bye(&sip, &mut caller);

    let call = server.finished_call("cc-keys");
    let marks: Vec<(String, String)> = call["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"].as_str().unwrap().starts_with("recording_"))
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_string(),
                e["detail"]["by"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        marks,
        [
            ("recording_paused".to_string(), "phone".to_string()),
            ("recording_resumed".to_string(), "phone".to_string())
        ],
        "{:#}",
        call["events"]
    );
    // The file: what the operator read while paused is not in it; what followed the resume is.
    let deadline = Instant::now() + Duration::from_secs(10);
    let id = call["id"].as_str().unwrap().to_string();
    while server.get(&format!("/api/v1/calls/{id}")).1["recordings"][0]["status"] != "complete" {
        assert!(Instant::now() < deadline, "the recording did not complete");
        std::thread::sleep(Duration::from_millis(100));
    }
    let recording_id = call["recording_id"].as_str().unwrap();
    let auth = format!("Bearer {MANAGER_TOKEN}");
    let download = send(
        server.http,
        "GET",
        &format!("/api/v1/recordings/{recording_id}"),
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(download.status, 200);
    let file = temp.path().join("downloaded.wav");
    std::fs::write(&file, &download.body).unwrap();
    let samples: Vec<i16> = hound::WavReader::open(&file)
        .unwrap()
        .into_samples::<i16>()
        .map(Result::unwrap)
        .collect();
    let right: Vec<i16> = samples.iter().skip(1).step_by(2).copied().collect();
    let found = |voice: &[i16]| best_correlation(&right, &voice[2_000..3_600], right.len()).0;
    // (A lone `1` or `*5` pausing early would have cut this out: the pause is the `*1`.)
    assert!(
        found(&before) >= 0.9,
        "the operator before the `*1` is recorded"
    );
    assert!(
        found(&after_resume) >= 0.9,
        "the operator after the resume is recorded"
    );
    let leaked = found(&card);
    assert!(
        leaked < 0.3,
        "the card read while paused is not in the file (r = {leaked:.3})"
    );
}
