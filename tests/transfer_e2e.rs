//! Transfers with real softphones: baresip operators transfer with their `transfer` command
//! (REFER, RFC 3515) and through the API; a Linphone operator transfers attended from the phone
//! (REFER with Replaces, RFC 3891). One call id across the legs, audio both ways
//! after each transfer (correlation), the recording follows (each operator on its right channel
//! in turn), the rating runs after the last operator, and the CRM timeline names the transfers.

mod common;

use common::baresip::{Answer, BARESIP_SERVER_CONFIG, Baresip, BaresipConfig, read_wav, write_wav};
use common::linphone::Linphone;
use common::rtp::{RtpPeer, assemble, best_correlation, test_signal};
use common::trunk::Trunk;
use common::*;
use std::path::Path;
use std::time::{Duration, Instant};

const CONFIG: &str = r#"
[[operators]]
extension = "103"
name = "Iryna"
password = "s3cret-103"

[routes]
"201" = "q_first"

[[queues]]
name = "first"
members = ["101"]
record = true
rating_flow = "rating"
wrap_up = "0s"
missed_rings_to_away = 0

[[trunks]]
name = "carrier"
proxy = "127.0.0.1:9"   # never dialled here: the external transfers below are refused

[dialplan]
external = { prefix = "9", trunk = "carrier", deny = ["_380."] }

[[queues]]
name = "second"
members = ["103"]
wrap_up = "0s"
missed_rings_to_away = 0
"#;

const RATING: &str = "id: rating
entry: rate
nodes:
  rate:
    rate: { play: rating.wav, timeout: 8s, retries: 1, next: thanks, on_fail: thanks }
  thanks:
    play: thanks.wav
";

/// Where an operator sends a caller for a quick question (a transfer to a flow).
const SURVEY: &str = "id: survey
transfer: true
entry: ask
nodes:
  ask:
    menu: { play: rating.wav, timeout: 8s, retries: 1, options: { \"1\": thanks }, on_fail: thanks }
  thanks:
    play: thanks.wav
";

fn start(temp: &Path) -> Server {
    start_with(temp, CONFIG)
}

/// The test flows with `config` (the operators, queues and trunk a test needs).
fn start_with(temp: &Path, config: &str) -> Server {
    let flows = temp.join("flows");
    std::fs::create_dir_all(&flows).unwrap();
    std::fs::write(
        flows.join("q_first.yaml"),
        "id: q_first\nentry: q\nnodes:\n  q:\n    queue: first\n",
    )
    .unwrap();
    std::fs::write(flows.join("rating.yaml"), RATING).unwrap();
    std::fs::write(flows.join("survey.yaml"), SURVEY).unwrap();
    Server::start_in(
        temp,
        &format!("{BARESIP_SERVER_CONFIG}{config}"),
        &["--flows", flows.to_str().unwrap()],
    )
}

/// An operator's softphone playing `voice` (written to `dir`) as its microphone.
fn phone(server: &Server, dir: &Path, ext: &str, voice: &[i16]) -> Baresip {
    phone_answering(server, dir, ext, voice, Answer::Auto)
}

fn phone_answering(
    server: &Server,
    dir: &Path,
    ext: &str,
    voice: &[i16],
    answer: Answer,
) -> Baresip {
    let wav = dir.join(format!("{ext}.wav"));
    write_wav(&wav, voice);
    Baresip::start(BaresipConfig {
        extension: ext.into(),
        password: format!("s3cret-{ext}"),
        server_sip: server.sip,
        play_wav: wav,
        answer,
    })
}

/// A caller from a Kyiv number dials `number` and is answered by its flow.
fn call_in(server: &Server, number: &str, call_id: &str) -> (UdpPeer, RtpPeer, String) {
    let sip = UdpPeer::new(server.sip);
    let mut rtp = RtpPeer::new();
    let sdp = offer(rtp.port(), 101);
    let port = sip.port();
    let invite = format!(
        "INVITE sip:{number}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{call_id}i;rport\r\n\
         Max-Forwards: 70\r\nFrom: \"Olena K\" <sip:0441234567@127.0.0.1>;tag=uac{call_id}\r\nTo: <sip:{number}@127.0.0.1>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:0441234567@127.0.0.1:{port}>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    let ok = sip.request(&invite, "200 OK");
    rtp.remote = Some(sdp_media_addr(&ok));
    ack(&sip, call_id, &ok);
    (sip, rtp, ok)
}

/// The caller talks for `seconds` (the start of `caller_voice`); returns what it heard. The
/// checks come after the call: correlating in a debug build takes seconds, and a caller silent
/// for a minute would be hung up.
fn talk(rtp: &mut RtpPeer, caller_voice: &[i16], seconds: usize) -> Vec<i16> {
    let (heard, _) = rtp.converse(&caller_voice[..8000 * seconds], &[]);
    assemble(&heard)
}

/// `heard` contains `voice` (an operator's WAV, from its start).
fn assert_heard(heard: &[i16], voice: &[i16], who: &str) {
    let (c, _) = best_correlation(heard, &voice[4_000..12_000], heard.len());
    assert!(c >= 0.9, "the caller hears {who} (r = {c:.3})");
}

/// What `phone` heard on its last call contains the second `second` of the caller's voice.
fn operator_heard_caller(phone: &Baresip, caller_voice: &[i16], second: usize) {
    let heard = read_wav(&phone.received_wav());
    let needle = &caller_voice[second * 8000..(second + 1) * 8000];
    let (c, _) = best_correlation(&heard, needle, heard.len());
    assert!(
        c >= 0.9,
        "{} hears the caller (r = {c:.3})",
        phone.config.extension
    );
}

/// The live call's id in the API, by the caller's SIP Call-ID.
fn live_call_id(server: &Server, sip_call_id: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, body) = server.get("/api/v1/calls?limit=20");
        for c in body["calls"].as_array().cloned().unwrap_or_default() {
            let (_, call) = server.get(&format!("/api/v1/calls/{}", c["id"].as_str().unwrap()));
            if call["legs"][0]["sip_call_id"] == sip_call_id {
                return c["id"].as_str().unwrap().to_string();
            }
        }
        assert!(Instant::now() < deadline, "no call {sip_call_id}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn kinds_and_targets(events: &serde_json::Value) -> Vec<(String, String)> {
    events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            let kind = e["event"].as_str().or(e["kind"].as_str()).unwrap_or("");
            kind.starts_with("transfer")
        })
        .map(|e| {
            let kind = e["event"].as_str().or(e["kind"].as_str()).unwrap_or("");
            let detail = if e["detail"].is_object() {
                &e["detail"]
            } else {
                e
            };
            (
                kind.to_string(),
                detail["to"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn operators_transfer_by_refer_to_a_colleague_and_to_a_queue_with_audio_recording_and_timeline() {
    let temp = tempfile::tempdir().unwrap();
    let server = start(temp.path());
    let voices: Vec<Vec<i16>> = [7.0, 9.0, 11.0]
        .iter()
        .map(|seed| test_signal(8000, 2.0, *seed))
        .collect();
    let mut p101 = phone_answering(&server, temp.path(), "101", &voices[0], Answer::Manual);
    let mut p102 = phone(&server, temp.path(), "102", &voices[1]);
    let mut p103 = phone(&server, temp.path(), "103", &voices[2]);
    let caller_voice = test_signal(8000, 30.0, 5.0);

    let (sip, mut rtp, _) = call_in(&server, "201", "xfer-refer");
    // The caller waits 3 s in the first queue before 101 answers.
    p101.wait_for_event("CALL_INCOMING");
    rtp.converse(&vec![0i16; 8000 * 3], &[]);
    p101.answer();
    let heard101 = talk(&mut rtp, &caller_voice, 4);

    // 101 transfers to 102: REFER, 202, NOTIFY 200, and 101's call closes.
    p101.command("transfer", "102");
    p101.wait_for_event("CALL_CLOSED");
    let notify = p101.wait_for_request("NOTIFY");
    assert!(notify.starts_with("NOTIFY "), "{notify}");
    p102.wait_for_event("CALL_ESTABLISHED");
    let heard102 = talk(&mut rtp, &caller_voice[8000 * 4..], 4);

    // 102 transfers to the queue `second`: 103 answers there.
    p102.command("transfer", "second");
    p102.wait_for_event("CALL_CLOSED");
    p103.wait_for_event("CALL_ESTABLISHED");
    let heard103 = talk(&mut rtp, &caller_voice[8000 * 9..], 4);

    // 103 hangs up: the first queue's rating flow runs; the caller presses 4.
    p103.hangup();
    rtp.converse(&vec![0i16; 8000 * 4], &[(8000 * 2, '4', 101)]);
    answer_server_bye(&sip, &mut rtp);
    assert_heard(&heard101, &voices[0], "101 (from the queue)");
    assert_heard(&heard102, &voices[1], "102 after the transfer");
    assert_heard(&heard103, &voices[2], "103 from the second queue");
    operator_heard_caller(&p101, &caller_voice, 1);
    operator_heard_caller(&p102, &caller_voice, 5);
    operator_heard_caller(&p103, &caller_voice, 10);

    let call = server.finished_call("xfer-refer");
    assert_eq!(call["rating"], 4, "{call:#}");
    assert_eq!(call["queue"], "second", "{call:#}");
    assert_eq!(call["operator"], "103", "{call:#}");
    assert!(
        call["wait_ms"].as_i64().unwrap_or(0) >= 3_000,
        "the second queue's wait counts the 3 s waited in the first: {call:#}"
    );
    let expected: Vec<(String, String)> = [
        ("transfer", "102"),
        ("transfer_connected", "102"),
        ("transfer", "second"),
        ("transfer_connected", "103"),
    ]
    .iter()
    .map(|(k, t)| (k.to_string(), t.to_string()))
    .collect();
    assert_eq!(
        kinds_and_targets(&call["events"]),
        expected,
        "{:#}",
        call["events"]
    );
    let first = call["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "transfer")
        .unwrap();
    assert_eq!(first["detail"]["from"], "101");
    assert_eq!(first["detail"]["by"], "refer");

    // One recording: the caller on the left, each operator in turn on the right.
    let id = call["id"].as_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.get(&format!("/api/v1/calls/{id}")).1["recordings"][0]["status"] != "complete" {
        assert!(Instant::now() < deadline, "recording not complete");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, view) = server.get(&format!("/api/v1/calls/{id}"));
    assert_eq!(view["recordings"].as_array().unwrap().len(), 1, "{view:#}");
    let rec = view["recordings"][0]["id"].as_str().unwrap();
    let auth = format!("Bearer {MANAGER_TOKEN}");
    let wav = send(
        server.http,
        "GET",
        &format!("/api/v1/recordings/{rec}"),
        &[("Authorization", &auth)],
        b"",
    );
    let mut reader = hound::WavReader::new(std::io::Cursor::new(wav.body)).unwrap();
    assert_eq!(reader.spec().channels, 2);
    let samples: Vec<i16> = reader.samples::<i16>().map(Result::unwrap).collect();
    let right: Vec<i16> = samples.iter().skip(1).step_by(2).copied().collect();
    for (i, voice) in voices.iter().enumerate() {
        let (c, _) = best_correlation(&right, &voice[4_000..12_000], right.len());
        assert!(
            c >= 0.9,
            "operator 10{} is on the right channel (r = {c:.3})",
            i + 1
        );
    }

    // The CRM timeline of the caller's new lead names the transfers.
    let leads = wait_for_json(&server, "/api/v1/leads", "the lead", |b| {
        b["items"].as_array().is_some_and(|a| a.len() == 1)
    });
    let lead = leads["items"][0]["id"].as_str().unwrap();
    let timeline = wait_for_json(
        &server,
        &format!("/api/v1/leads/{lead}/timeline"),
        "the call on the timeline",
        |b| b["entries"].as_array().is_some_and(|a| !a.is_empty()),
    );
    let data = &timeline["entries"][0]["data"];
    assert_eq!(kinds_and_targets(&data["transfers"]), expected, "{data:#}");
    assert_eq!(data["transfers"][0]["from"], "101", "{data:#}");
    assert_eq!(data["transfers"][2]["from"], "102", "{data:#}");
}

/// `POST /api/v1/calls/{id}/transfer` with `token` and `body`.
fn transfer(server: &Server, id: &str, token: &str, body: &str) -> (u16, serde_json::Value) {
    let auth = format!("Bearer {token}");
    let r = send(
        server.http,
        "POST",
        &format!("/api/v1/calls/{id}/transfer"),
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    );
    let body = serde_json::from_slice(&r.body).unwrap_or(serde_json::Value::Null);
    (r.status, body)
}

#[test]
fn the_api_transfers_refuses_what_it_cannot_do_and_an_unreachable_target_returns_the_caller_to_the_queue()
 {
    let temp = tempfile::tempdir().unwrap();
    let server = start(temp.path());
    let voice101 = test_signal(8000, 2.0, 7.0);
    let voice103 = test_signal(8000, 2.0, 11.0);
    let _p101 = phone(&server, temp.path(), "101", &voice101);
    let p103 = phone(&server, temp.path(), "103", &voice103);
    let caller_voice = test_signal(8000, 30.0, 5.0);

    let (sip, mut rtp, ok) = call_in(&server, "201", "xfer-api");
    let first = talk(&mut rtp, &caller_voice, 3);
    let id = live_call_id(&server, "xfer-api");

    // Refusals, each with its code; none disturbs the call.
    let cases: &[(&str, &str, &str, u16, &str)] = &[
        (
            "a call that is not up",
            "0190f000-0000-7000-8000-000000000000",
            r#"{"to":"102"}"#,
            404,
            "call.not_live",
        ),
        ("no body", &id, "", 400, "request.invalid_body"),
        (
            "an unknown field",
            &id,
            r#"{"to":"102","mode":"x"}"#,
            400,
            "request.invalid_body",
        ),
        (
            "an empty target",
            &id,
            r#"{"to":" "}"#,
            400,
            "transfer.invalid_target",
        ),
        (
            "a target with odd characters",
            &id,
            r#"{"to":"10 2"}"#,
            400,
            "transfer.invalid_target",
        ),
        (
            "nobody by that name",
            &id,
            r#"{"to":"nobody"}"#,
            404,
            "transfer.unknown_target",
        ),
        (
            "a number the dialplan denies 101: no toll fraud by transfer",
            &id,
            r#"{"to":"9380441234567"}"#,
            403,
            "transfer.external_not_allowed",
        ),
        (
            "the operator already on it",
            &id,
            r#"{"to":"101"}"#,
            409,
            "transfer.same_operator",
        ),
    ];
    for (what, call, body, status, code) in cases {
        let (got, answer) = transfer(&server, call, MANAGER_TOKEN, body);
        assert_eq!(
            (got, answer["error"]["code"].as_str()),
            (*status, Some(*code)),
            "{what}: {answer}"
        );
    }
    let after_refusals = talk(&mut rtp, &caller_voice[8000 * 3..], 3);

    // The caller's side cannot transfer the call (no outside party sends a call elsewhere).
    let to = header(&ok, "To").unwrap();
    let port = sip.port();
    let refer = format!(
        "REFER sip:openline@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKxferapir;rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:0441234567@127.0.0.1>;tag=uacxfer-api\r\nTo: {to}\r\n\
         Call-ID: xfer-api\r\nCSeq: 5 REFER\r\nRefer-To: <sip:90079991234567@127.0.0.1>\r\nContent-Length: 0\r\n\r\n"
    );
    let answer = sip.request(&refer, "SIP/2.0 ");
    assert!(answer.starts_with("SIP/2.0 403"), "{answer}");

    // The operator 101 (their own token) sends the caller to 102, whose phone is not
    // registered: the caller goes back to the queue they came from, and 101 answers again.
    let (got, answer) = transfer(&server, &id, OPERATOR_TOKEN, r#"{"to":"102"}"#);
    assert_eq!(
        (got, answer["kind"].as_str(), answer["to"].as_str()),
        (202, Some("operator"), Some("102")),
        "{answer}"
    );
    let back = talk(&mut rtp, &caller_voice[8000 * 6..], 5);

    // A manager sends the caller to 103 by extension: 103 answers.
    let (got, answer) = transfer(&server, &id, MANAGER_TOKEN, r#"{"to":"103"}"#);
    assert_eq!(got, 202, "{answer}");
    p103.wait_for_event("CALL_ESTABLISHED");
    let heard103 = talk(&mut rtp, &caller_voice[8000 * 11..], 4);
    // 101's token no longer reaches the call: it is 103's now.
    let (got, answer) = transfer(&server, &id, OPERATOR_TOKEN, r#"{"to":"second"}"#);
    assert_eq!(
        (got, answer["error"]["code"].as_str()),
        (404, Some("call.not_live")),
        "{answer}"
    );
    // (CSeq past the REFER's.)
    let bye = format!(
        "BYE sip:openline@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKxferapib;rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:0441234567@127.0.0.1>;tag=uacxfer-api\r\nTo: {to}\r\n\
         Call-ID: xfer-api\r\nCSeq: 6 BYE\r\nContent-Length: 0\r\n\r\n"
    );
    sip.request(&bye, "200 OK");
    assert_heard(&first, &voice101, "101");
    assert_heard(&after_refusals, &voice101, "101 still, after the refusals");
    assert_heard(&back, &voice101, "101 again, back from the queue");
    assert_heard(&heard103, &voice103, "103");
    p103.wait_for_event("CALL_CLOSED");
    operator_heard_caller(&p103, &caller_voice, 12);

    let call = server.finished_call("xfer-api");
    let got: Vec<(String, String)> = kinds_and_targets(&call["events"]);
    let expected: Vec<(String, String)> = [
        ("transfer", "102"),
        ("transfer_failed", "102"),
        ("transfer_connected", "101"),
        ("transfer", "103"),
        ("transfer_connected", "103"),
    ]
    .iter()
    .map(|(k, t)| (k.to_string(), t.to_string()))
    .collect();
    assert_eq!(got, expected, "{:#}", call["events"]);
    let failed = call["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "transfer_failed")
        .unwrap();
    assert_eq!(
        failed["detail"]["reason"], "dial.not_registered",
        "{failed}"
    );
    assert_eq!(failed["detail"]["back_to"], "first", "{failed}");
    assert_eq!(call["disposition"], "queue.completed", "{call:#}");
}

/// `POST /api/v1/calls/{id}/transfer/{action}` as a manager.
fn consult_step(server: &Server, id: &str, action: &str) -> (u16, serde_json::Value) {
    let auth = format!("Bearer {MANAGER_TOKEN}");
    let r = send(
        server.http,
        "POST",
        &format!("/api/v1/calls/{id}/transfer/{action}"),
        &[("Authorization", &auth)],
        b"",
    );
    let body = serde_json::from_slice(&r.body).unwrap_or(serde_json::Value::Null);
    (r.status, body)
}

#[test]
fn an_attended_transfer_consults_with_the_caller_on_hold_then_returns_or_completes() {
    let temp = tempfile::tempdir().unwrap();
    let server = start(temp.path());
    let voice101 = test_signal(8000, 2.0, 7.0);
    let voice102 = test_signal(8000, 2.0, 9.0);
    let p101 = phone(&server, temp.path(), "101", &voice101);
    let p102 = phone(&server, temp.path(), "102", &voice102);
    let caller_voice = test_signal(8000, 40.0, 5.0);

    let (sip, mut rtp, ok) = call_in(&server, "201", "xfer-att");
    let with_101 = talk(&mut rtp, &caller_voice, 3);
    let id = live_call_id(&server, "xfer-att");

    // Nothing to complete or cancel yet; an attended transfer goes to a person, not a queue.
    assert_eq!(
        consult_step(&server, &id, "complete").1["error"]["code"],
        "transfer.no_consultation"
    );
    assert_eq!(
        consult_step(&server, &id, "cancel").1["error"]["code"],
        "transfer.no_consultation"
    );
    let (got, answer) = transfer(
        &server,
        &id,
        MANAGER_TOKEN,
        r#"{"to":"second","attended":true}"#,
    );
    assert_eq!(
        (got, answer["error"]["code"].as_str()),
        (409, Some("transfer.attended_to_queue"))
    );
    let (got, answer) = transfer(
        &server,
        &id,
        MANAGER_TOKEN,
        r#"{"to":"survey","attended":true}"#,
    );
    assert_eq!(
        (got, answer["error"]["code"].as_str()),
        (409, Some("transfer.attended_to_flow"))
    );

    // Consult 102: the caller is on hold while 101 and 102 talk; then cancel.
    let (got, answer) = transfer(
        &server,
        &id,
        MANAGER_TOKEN,
        r#"{"to":"102","attended":true}"#,
    );
    assert_eq!((got, answer["to"].as_str()), (202, Some("102")), "{answer}");
    p102.wait_for_event("CALL_ESTABLISHED");
    let on_hold = talk(&mut rtp, &caller_voice[8000 * 3..], 4);
    let (got, answer) = transfer(&server, &id, MANAGER_TOKEN, r#"{"to":"103"}"#);
    assert_eq!(
        (got, answer["error"]["code"].as_str()),
        (409, Some("transfer.in_progress"))
    );
    let (got, _) = consult_step(&server, &id, "cancel");
    assert_eq!(got, 202);
    p102.wait_for_event("CALL_CLOSED");
    let heard_by_102_consulting = read_wav(&p102.received_wav());
    let back_with_101 = talk(&mut rtp, &caller_voice[8000 * 7..], 3);

    // Consult 102 again, and complete: the caller talks with 102, 101's call ends.
    let (got, _) = transfer(
        &server,
        &id,
        MANAGER_TOKEN,
        r#"{"to":"102","attended":true}"#,
    );
    assert_eq!(got, 202);
    p102.wait_for_event_after("CALL_ESTABLISHED", 1);
    talk(&mut rtp, &caller_voice[8000 * 10..], 1);
    let (got, answer) = consult_step(&server, &id, "complete");
    assert_eq!(
        (got, answer["kind"].as_str()),
        (202, Some("operator")),
        "{answer}"
    );
    p101.wait_for_event("CALL_CLOSED");
    let with_102 = talk(&mut rtp, &caller_voice[8000 * 11..], 4);
    let (status, _) = consult_step(&server, &id, "complete");
    assert_eq!(status, 409, "nothing left to complete");
    let port = sip.port();
    let to = header(&ok, "To").unwrap();
    let bye = format!(
        "BYE sip:openline@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKxferattb;rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:0441234567@127.0.0.1>;tag=uacxfer-att\r\nTo: {to}\r\n\
         Call-ID: xfer-att\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
    );
    sip.request(&bye, "200 OK");
    p102.wait_for_event_after("CALL_CLOSED", 1);

    assert_heard(&with_101, &voice101, "101");
    for (voice, who) in [(&voice101, "101"), (&voice102, "102")] {
        let (c, _) = best_correlation(&on_hold, &voice[4_000..12_000], on_hold.len());
        assert!(c < 0.5, "the caller on hold never hears {who} (r = {c:.3})");
    }
    assert_heard(
        &back_with_101,
        &voice101,
        "101 after the cancelled consultation",
    );
    assert_heard(&with_102, &voice102, "102 after the completed transfer");
    let (c, _) = best_correlation(
        &heard_by_102_consulting,
        &voice101[4_000..12_000],
        heard_by_102_consulting.len(),
    );
    assert!(c >= 0.9, "102 hears 101 while consulted (r = {c:.3})");
    let (c, _) = best_correlation(
        &heard_by_102_consulting,
        &caller_voice[8000 * 4..8000 * 5],
        heard_by_102_consulting.len(),
    );
    assert!(
        c < 0.5,
        "102 does not hear the caller while consulted (r = {c:.3})"
    );
    let heard_by_101 = read_wav(&p101.received_wav());
    let (c, _) = best_correlation(&heard_by_101, &voice102[4_000..12_000], heard_by_101.len());
    assert!(c >= 0.9, "101 hears 102 while consulting (r = {c:.3})");
    operator_heard_caller(&p102, &caller_voice, 12);

    let call = server.finished_call("xfer-att");
    let kinds: Vec<String> = kinds_and_targets(&call["events"])
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        kinds,
        [
            "transfer",
            "transfer_consulting",
            "transfer_cancelled",
            "transfer",
            "transfer_consulting",
            "transfer_connected"
        ],
        "{:#}",
        call["events"]
    );
    let legs = call["legs"].as_array().unwrap();
    assert_eq!(
        legs.len(),
        4,
        "caller, 101, 102 twice: all legs of one call: {call:#}"
    );
}

/// A REFER from the caller's side of `call_id` (its dialog as `ok` set it up) with `refer_to`:
/// the status line of the answer.
fn caller_refer(sip: &UdpPeer, call_id: &str, ok: &str, cseq: u32, refer_to: &str) -> String {
    let port = sip.port();
    let to = header(ok, "To").unwrap();
    let refer = format!(
        "REFER sip:openline@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKref{cseq};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:0441234567@127.0.0.1>;tag=uac{call_id}\r\nTo: {to}\r\n\
         Call-ID: {call_id}\r\nCSeq: {cseq} REFER\r\nRefer-To: {refer_to}\r\nContent-Length: 0\r\n\r\n"
    );
    sip.send(refer.as_bytes());
    let answer = sip.expect("SIP/2.0 ");
    answer.lines().next().unwrap_or("").to_string()
}

#[test]
fn an_operators_phone_transfers_attended_by_refer_with_replaces_to_the_colleague_it_consulted() {
    let temp = tempfile::tempdir().unwrap();
    let server = start(temp.path());
    let voice102 = test_signal(8000, 2.0, 9.0);
    // 101 (the queue's member) on Linphone, 102 on baresip.
    let mut p101 = Linphone::start("101", "s3cret-101", server.sip);
    let p102 = phone(&server, temp.path(), "102", &voice102);
    let caller_voice = test_signal(8000, 40.0, 5.0);

    let (sip, mut rtp, ok) = call_in(&server, "201", "xfer-replaces");
    p101.wait_for_call(1, "StreamsRunning");
    talk(&mut rtp, &caller_voice, 1);

    // A caller can name dialogs too (real ones or not): never theirs to hand over, and no
    // answer tells them whether a dialog exists.
    let our_tag = header(&ok, "To")
        .unwrap()
        .split("tag=")
        .nth(1)
        .unwrap()
        .to_string();
    let own_dialog = format!(
        "<sip:102@127.0.0.1?Replaces=xfer-replaces%3Bto-tag%3D{our_tag}%3Bfrom-tag%3Duacxfer-replaces>"
    );
    assert_eq!(
        caller_refer(&sip, "xfer-replaces", &ok, 5, &own_dialog),
        "SIP/2.0 403 Forbidden"
    );
    let nobody = "<sip:102@127.0.0.1?Replaces=nothing-here%3Bto-tag%3Da%3Bfrom-tag%3Db>";
    assert_eq!(
        caller_refer(&sip, "xfer-replaces", &ok, 6, nobody),
        "SIP/2.0 403 Forbidden"
    );

    // 101 holds the caller, calls 102 (an own call), and presses transfer: REFER with Replaces.
    p101.command("pause 1");
    p101.wait_for_call(1, "Paused");
    p101.command(&format!("call sip:102@{}", server.sip));
    p102.wait_for_event("CALL_ESTABLISHED");
    p101.wait_for_call(2, "StreamsRunning");
    talk(&mut rtp, &caller_voice[8000..], 1);
    p101.command("transfer 1 --to-call 2");
    // Both of 101's calls end; the caller talks with 102, on 102's same call.
    p101.wait_for_no_calls();
    let with_102 = talk(&mut rtp, &caller_voice[8000 * 2..], 4);
    // 101 is free again: the queue's next caller reaches them.
    let (next_sip, _next_rtp, next_ok) = call_in(&server, "201", "xfer-replaces-next");
    p101.wait_for_call(3, "StreamsRunning");
    bye(&next_sip, "xfer-replaces-next", &next_ok);
    talk(&mut rtp, &caller_voice[8000 * 6..], 1);
    let port = sip.port();
    let to = header(&ok, "To").unwrap();
    let bye = format!(
        "BYE sip:openline@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKxferrepb;rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:0441234567@127.0.0.1>;tag=uacxfer-replaces\r\nTo: {to}\r\n\
         Call-ID: xfer-replaces\r\nCSeq: 9 BYE\r\nContent-Length: 0\r\n\r\n"
    );
    sip.request(&bye, "200 OK");
    p102.wait_for_event("CALL_CLOSED");
    assert_eq!(
        p102.events()
            .iter()
            .filter(|e| e.kind == "CALL_ESTABLISHED")
            .count(),
        1,
        "102 kept the one call 101 placed: the caller joined it"
    );

    assert_heard(&with_102, &voice102, "102 after the attended transfer");
    operator_heard_caller(&p102, &caller_voice, 4);
    let call = server.finished_call("xfer-replaces");
    let transfers: Vec<&serde_json::Value> = call["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["kind"]
                .as_str()
                .is_some_and(|k| k.starts_with("transfer"))
        })
        .collect();
    assert_eq!(transfers.len(), 2, "{:#}", call["events"]);
    let (started, connected) = (&transfers[0]["detail"], &transfers[1]);
    assert_eq!(transfers[0]["kind"], "transfer");
    assert_eq!(
        (
            started["from"].as_str(),
            started["to"].as_str(),
            started["by"].as_str(),
            started["attended"].as_bool()
        ),
        (Some("101"), Some("102"), Some("refer"), Some(true)),
        "{started:#}"
    );
    assert_eq!(connected["kind"], "transfer_connected");
    assert_eq!(connected["detail"]["to"], "102");
    // 101's own call to 102 ended by the hand-over.
    let own = server.wait_for_calls("&direction=internal", "101's own call", |calls| {
        calls.iter().any(|c| !c["ended_at"].is_null())
    });
    assert_eq!(own[0]["disposition"], "answered.transferred", "{own:#?}");
    assert_eq!(started["consultation_call_id"], own[0]["id"], "{started:#}");
}

#[test]
fn an_operator_transfers_a_caller_to_a_flow_which_takes_the_callers_keys() {
    let temp = tempfile::tempdir().unwrap();
    let server = start(temp.path());
    let voice101 = test_signal(8000, 2.0, 7.0);
    let mut p101 = phone(&server, temp.path(), "101", &voice101);
    let caller_voice = test_signal(8000, 10.0, 5.0);

    let (sip, mut rtp, _) = call_in(&server, "201", "xfer-flow");
    p101.wait_for_event("CALL_ESTABLISHED");
    let with_101 = talk(&mut rtp, &caller_voice, 2);
    // A flow not marked `transfer: true` (the rating flow) is no transfer target.
    let id = live_call_id(&server, "xfer-flow");
    let (got, answer) = transfer(&server, &id, MANAGER_TOKEN, r#"{"to":"rating"}"#);
    assert_eq!(
        (got, answer["error"]["code"].as_str()),
        (404, Some("transfer.unknown_target")),
        "{answer}"
    );

    // 101 transfers to the flow `survey` by its id; the flow asks, the caller presses 1.
    p101.command("transfer", "survey");
    p101.wait_for_event("CALL_CLOSED");
    let (heard, _) = rtp.converse(&vec![0i16; 8000 * 3], &[(8000 * 2, '1', 101)]);
    let in_the_flow = assemble(&heard);
    answer_server_bye(&sip, &mut rtp);

    assert_heard(&with_101, &voice101, "101 before the transfer");
    let loud = in_the_flow
        .iter()
        .filter(|s| s.unsigned_abs() > 500)
        .count();
    assert!(
        loud > 8000 / 2,
        "the caller hears the flow's prompt after the transfer ({loud} loud samples)"
    );
    let call = server.finished_call("xfer-flow");
    let transfers: Vec<(String, String)> = kinds_and_targets(&call["events"]);
    assert_eq!(
        transfers,
        [
            ("transfer".to_string(), "survey".to_string()),
            ("transfer_connected".to_string(), "survey".to_string())
        ],
        "{:#}",
        call["events"]
    );
    let steps: Vec<(String, String, String)> = call["flow_path"]
        .as_array()
        .unwrap_or_else(|| panic!("no flow path: {call:#}"))
        .iter()
        .map(|s| {
            (
                s["flow"].as_str().unwrap().to_string(),
                s["node"].as_str().unwrap().to_string(),
                s["digits"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected: Vec<(String, String, String)> = [
        ("q_first", "q", ""),
        ("survey", "ask", "1"),
        ("survey", "thanks", ""),
    ]
    .iter()
    .map(|(f, n, d)| (f.to_string(), n.to_string(), d.to_string()))
    .collect();
    assert_eq!(
        steps, expected,
        "the path runs from the queue into the flow: {call:#}"
    );
}

#[test]
fn an_operator_transfers_a_caller_out_through_the_trunk_to_an_external_number() {
    let temp = tempfile::tempdir().unwrap();
    let mut trunk = Trunk::start(temp.path());
    let config = format!(
        "[routes]\n\"201\" = \"q_first\"\n\n[[queues]]\nname = \"first\"\nmembers = [\"101\"]\nwrap_up = \"0s\"\n\n{}",
        trunk.config()
    );
    let server = start_with(temp.path(), &config);
    let voice101 = test_signal(8000, 2.0, 7.0);
    let mut p101 = phone(&server, temp.path(), "101", &voice101);
    let caller_voice = test_signal(8000, 12.0, 5.0);

    let (sip, mut rtp, ok) = call_in(&server, "201", "xfer-out");
    p101.wait_for_event("CALL_ESTABLISHED");
    talk(&mut rtp, &caller_voice, 1);

    // 101 sends the caller to a number outside: the dialplan's prefix 9 and the number.
    let number = "380441234567";
    p101.command("transfer", &format!("9{number}"));
    p101.wait_for_event("CALL_CLOSED");
    // The trunk challenges, rings 2 s and answers; then it echoes what the caller says.
    let heard = talk(&mut rtp, &caller_voice[8000..], 8);
    let port = sip.port();
    let to = header(&ok, "To").unwrap();
    let bye = format!(
        "BYE sip:openline@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKxferoutb;rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:0441234567@127.0.0.1>;tag=uacxfer-out\r\nTo: {to}\r\n\
         Call-ID: xfer-out\r\nCSeq: 9 BYE\r\nContent-Length: 0\r\n\r\n"
    );
    sip.request(&bye, "200 OK");
    trunk.check_finished(number);

    // Seconds 6-7 of the caller's voice come back through the trunk: both directions.
    let (c, _) = best_correlation(&heard, &caller_voice[8000 * 6..8000 * 7], heard.len());
    assert!(c >= 0.9, "the caller hears the far end's echo (r = {c:.3})");
    let call = server.finished_call("xfer-out");
    assert_eq!(
        kinds_and_targets(&call["events"]),
        [
            ("transfer".to_string(), number.to_string()),
            ("transfer_connected".to_string(), number.to_string())
        ],
        "{:#}",
        call["events"]
    );
    let legs = call["legs"].as_array().unwrap();
    assert!(
        legs.iter().any(|l| l["remote_uri"]
            .as_str()
            .is_some_and(|u| u.starts_with(&format!("sip:{number}@")))),
        "the trunk's leg is on the caller's call: {call:#}"
    );
}
