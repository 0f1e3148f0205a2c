//! Queues with real softphones: two baresip instances register as operators 101 and 102 with
//! digest auth and play a WAV when they answer; a SIP caller goes through the IVR into a queue.
//! For each strategy the right operator answers; audio flows both ways; the recording is stereo
//! with the caller left and the operator right; after the operator hangs up the caller's key is
//! the call's rating.

mod common;

use common::baresip::{Answer, BARESIP_SERVER_CONFIG, Baresip, BaresipConfig, read_wav, write_wav};
use common::rtp::{RtpPeer, assemble, best_correlation, test_signal};
use common::*;
use std::path::Path;
use std::time::{Duration, Instant};

const QUEUES: &str = r#"
[routes]
"201" = "q_all"
"202" = "q_order"
"203" = "q_even"

[[queues]]
name = "all"
members = ["101", "102"]
strategy = "all"
record = true
rating_flow = "rating"
missed_rings_to_away = 0

[[queues]]
name = "order"
members = ["101", "102"]
strategy = "in_order"
ring_timeout = "2s"
missed_rings_to_away = 0

[[queues]]
name = "even"
members = ["101", "102"]
strategy = "evenly"
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

fn start(temp: &Path) -> Server {
    let flows = temp.join("flows");
    std::fs::create_dir_all(&flows).unwrap();
    for (id, queue) in [("q_all", "all"), ("q_order", "order"), ("q_even", "even")] {
        let flow = format!("id: {id}\nentry: q\nnodes:\n  q:\n    queue: {queue}\n");
        std::fs::write(flows.join(format!("{id}.yaml")), flow).unwrap();
    }
    std::fs::write(flows.join("rating.yaml"), RATING).unwrap();
    Server::start_in(
        temp,
        &format!("{BARESIP_SERVER_CONFIG}{QUEUES}"),
        &["--flows", flows.to_str().unwrap()],
    )
}

fn phone(server: &Server, ext: &str, wav: &Path, answer: Answer) -> Baresip {
    Baresip::start(BaresipConfig {
        extension: ext.into(),
        password: format!("s3cret-{ext}"),
        server_sip: server.sip,
        play_wav: wav.to_path_buf(),
        answer,
    })
}

/// The caller dials `number` and is answered by its flow.
fn call_in(server: &Server, number: &str, call_id: &str) -> (UdpPeer, RtpPeer, String) {
    let sip = UdpPeer::new(server.sip);
    let mut rtp = RtpPeer::new();
    let ok = invite_with(&sip, call_id, number, &offer(rtp.port(), 101));
    rtp.remote = Some(sdp_media_addr(&ok));
    ack(&sip, call_id, &ok);
    (sip, rtp, ok)
}

#[test]
fn each_strategy_reaches_the_right_softphone_with_audio_recording_and_rating() {
    let temp = tempfile::tempdir().unwrap();
    let server = start(temp.path());
    let voice101 = test_signal(8000, 2.0, 7.0);
    let voice102 = test_signal(8000, 2.0, 9.0);
    let (wav101, wav102) = (temp.path().join("101.wav"), temp.path().join("102.wav"));
    write_wav(&wav101, &voice101);
    write_wav(&wav102, &voice102);
    let mut p101 = phone(&server, "101", &wav101, Answer::Manual);
    let mut p102 = phone(&server, "102", &wav102, Answer::Auto);

    // `all`: both ring; 102 answers at once, 101 (never answering) is cancelled.
    let caller_voice = test_signal(8000, 4.0, 5.0);
    let (sip, mut rtp, _) = call_in(&server, "201", "sq-all");
    let (heard, _) = rtp.converse(&caller_voice, &[]);
    p102.wait_for_event("CALL_ESTABLISHED");
    // (The harness sees first lines only; the CANCEL's Reason is checked in queue_e2e.rs.)
    let cancel = p101.wait_for_request("CANCEL");
    assert!(cancel.starts_with("CANCEL "), "{cancel}");
    let caller_heard = assemble(&heard);
    let (c, _) = best_correlation(&caller_heard, &voice102[4_000..12_000], caller_heard.len());
    assert!(c >= 0.9, "the caller hears 102 (r = {c:.3})");
    // 102 hangs up: the caller rates the call with 5.
    p102.hangup();
    rtp.converse(&vec![0i16; 8000 * 4], &[(8000 * 2, '5', 101)]);
    answer_server_bye(&sip, &mut rtp);
    let heard_by_102 = read_wav(&p102.received_wav());
    let (c, _) = best_correlation(
        &heard_by_102,
        &caller_voice[8_000..16_000],
        heard_by_102.len(),
    );
    assert!(c >= 0.9, "102 hears the caller (r = {c:.3})");
    let call = server.finished_call("sq-all");
    assert_eq!(call["operator"], "102", "{call:#}");
    assert_eq!(call["queue"], "all", "{call:#}");
    assert_eq!(call["rating"], 5, "{call:#}");
    // The recording, as a manager downloads it: caller left, operator right.
    let id = call["recording_id"].as_str().expect("recorded");
    let deadline = Instant::now() + Duration::from_secs(10);
    while server
        .get(&format!("/api/v1/calls/{}", call["id"].as_str().unwrap()))
        .1["recordings"][0]["status"]
        != "complete"
    {
        assert!(Instant::now() < deadline, "recording not complete");
        std::thread::sleep(Duration::from_millis(100));
    }
    let auth = format!("Bearer {MANAGER_TOKEN}");
    let wav = send(
        server.http,
        "GET",
        &format!("/api/v1/recordings/{id}"),
        &[("Authorization", &auth)],
        b"",
    );
    let mut reader = hound::WavReader::new(std::io::Cursor::new(wav.body)).unwrap();
    assert_eq!(reader.spec().channels, 2);
    let samples: Vec<i16> = reader.samples::<i16>().map(Result::unwrap).collect();
    let left: Vec<i16> = samples.iter().step_by(2).copied().collect();
    let right: Vec<i16> = samples.iter().skip(1).step_by(2).copied().collect();
    let (c, _) = best_correlation(&left, &caller_voice[8_000..16_000], left.len());
    assert!(c >= 0.9, "caller on the left (r = {c:.3})");
    let (c, _) = best_correlation(&right, &voice102[4_000..12_000], right.len());
    assert!(c >= 0.9, "operator on the right (r = {c:.3})");

    // `in_order`: 101 first; it does not answer within 2 s, so 102 is rung and answers.
    let (sip, mut rtp, ok) = call_in(&server, "202", "sq-order");
    let (heard, _) = rtp.converse(&vec![0i16; 8000 * 5], &[]);
    p101.wait_for_event_after("CALL_INCOMING", 1);
    p102.wait_for_event_after("CALL_ESTABLISHED", 1);
    let caller_heard = assemble(&heard);
    let (c, _) = best_correlation(&caller_heard, &voice102[4_000..12_000], caller_heard.len());
    assert!(
        c >= 0.9,
        "the caller hears 102 after 101's turn (r = {c:.3})"
    );
    bye(&sip, "sq-order", &ok);
    let call = server.finished_call("sq-order");
    assert_eq!(call["operator"], "102", "{call:#}");
    assert_eq!(call["disposition"], "queue.completed", "{call:#}");

    // `evenly`: 102 took the last calls, so 101 (idle longest) gets this one and answers.
    let seen = p101.events().len();
    let (sip, mut rtp, ok) = call_in(&server, "203", "sq-even");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !p101.events()[seen..]
        .iter()
        .any(|e| e.kind == "CALL_INCOMING")
    {
        assert!(
            Instant::now() < deadline,
            "101 was not rung: {:?}",
            p101.events()
        );
        rtp.converse(&[0; 160], &[]);
    }
    p101.answer();
    let (heard, _) = rtp.converse(&vec![0i16; 8000 * 3], &[]);
    let caller_heard = assemble(&heard);
    let (c, _) = best_correlation(&caller_heard, &voice101[4_000..12_000], caller_heard.len());
    assert!(c >= 0.9, "the caller hears 101 (r = {c:.3})");
    bye(&sip, "sq-even", &ok);
    let call = server.finished_call("sq-even");
    assert_eq!(call["operator"], "101", "{call:#}");
}
