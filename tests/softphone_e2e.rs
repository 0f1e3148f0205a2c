//! A real softphone as the operator: baresip registers as 101 with digest auth and the flow's
//! `dial` node rings it. Answering at once, it and the caller hear each other's audio, and when it
//! hangs up the caller gets a BYE. Left ringing, it gets a CANCEL when the caller gives up.

mod common;

use common::baresip::{Answer, BARESIP_SERVER_CONFIG, Baresip, BaresipConfig, read_wav, write_wav};
use common::rtp::{RtpPeer, assemble, best_correlation, test_signal};
use common::*;
use std::path::Path;
use std::time::{Duration, Instant};

const FLOW: &str = "id: main
entry: op
nodes:
  op:
    dial: { to: \"101\", timeout: 30s, next: done, on_fail: failed }
  done:
    hangup:
  failed:
    play: goodbye.wav
";

fn server_with_flow(temp: &Path) -> Server {
    let flows = temp.join("flows");
    std::fs::create_dir_all(&flows).unwrap();
    std::fs::write(flows.join("main.yaml"), FLOW).unwrap();
    Server::start_in(
        temp,
        BARESIP_SERVER_CONFIG,
        &["--flows", flows.to_str().unwrap()],
    )
}

fn operator(server: &Server, play_wav: &Path, answer: Answer) -> Baresip {
    Baresip::start(BaresipConfig {
        extension: "101".into(),
        password: "s3cret-101".into(),
        server_sip: server.sip,
        play_wav: play_wav.to_path_buf(),
        answer,
    })
}

/// Reads SIP from the caller's socket until the server's BYE, and answers it.
fn expect_bye(sip: &UdpPeer) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some(msg) = sip.recv()
            && msg.starts_with("BYE ")
        {
            answer_ok(sip, &msg);
            return;
        }
    }
    panic!("the server did not hang up on the caller");
}

#[test]
fn baresip_answers_both_hear_each_other_and_its_hangup_ends_the_call() {
    let temp = tempfile::tempdir().unwrap();
    let server = server_with_flow(temp.path());
    let operator_voice = test_signal(8000, 2.0, 9.0);
    let operator_wav = temp.path().join("operator.wav");
    write_wav(&operator_wav, &operator_voice);
    let mut phone = operator(&server, &operator_wav, Answer::Auto);

    let caller_voice = test_signal(8000, 4.0, 5.0);
    let sip = UdpPeer::new(server.sip);
    let mut rtp = RtpPeer::new();
    let ok = invite_with(&sip, "softphone-talk", "100", &offer(rtp.port(), 101));
    rtp.remote = Some(sdp_media_addr(&ok));
    ack(&sip, "softphone-talk", &ok);
    let (heard, _) = rtp.converse(&caller_voice, &[]);
    phone.wait_for_event("CALL_ESTABLISHED");

    // The phone answers within a few hundred milliseconds and talks from then on (its WAV loops).
    let caller_heard = assemble(&heard);
    let (c, _) = best_correlation(
        &caller_heard,
        &operator_voice[4_000..12_000],
        caller_heard.len(),
    );
    assert!(c >= 0.9, "the caller hears baresip's WAV (r = {c:.3})");
    eprintln!("the caller hears baresip's WAV: r = {c:.3}");

    phone.hangup();
    expect_bye(&sip);
    assert_eq!(
        phone.call_events(),
        ["CALL_ESTABLISHED", "CALL_CLOSED"],
        "{:?}",
        phone.events()
    );

    // What baresip heard: the caller's voice from about the moment it answered.
    let operator_heard = read_wav(&phone.received_wav());
    let (c, _) = best_correlation(
        &operator_heard,
        &caller_voice[12_000..20_000],
        operator_heard.len(),
    );
    assert!(c >= 0.9, "baresip hears the caller (r = {c:.3})");
    eprintln!("baresip hears the caller: r = {c:.3}");
}

#[test]
fn a_ringing_baresip_gets_a_cancel_when_the_caller_gives_up() {
    let temp = tempfile::tempdir().unwrap();
    let server = server_with_flow(temp.path());
    let wav = temp.path().join("operator.wav");
    write_wav(&wav, &test_signal(8000, 1.0, 3.0));
    let phone = operator(&server, &wav, Answer::Manual);

    let sip = UdpPeer::new(server.sip);
    let rtp = RtpPeer::new();
    let ok = invite_with(&sip, "softphone-cancel", "100", &offer(rtp.port(), 101));
    ack(&sip, "softphone-cancel", &ok);
    phone.wait_for_event("CALL_INCOMING");

    bye(&sip, "softphone-cancel", &ok);
    let closed = phone.wait_for_event("CALL_CLOSED");
    assert_eq!(
        phone.call_events(),
        ["CALL_INCOMING", "CALL_CLOSED"],
        "{:?}",
        phone.events()
    );
    assert_eq!(closed.param, "Connection reset by peer", "{closed:?}");
    // The trace on stdout may lag behind the event.
    phone.wait_for_request("CANCEL");
    let requests = phone.received_requests();
    assert!(
        requests[0].starts_with("INVITE ") && requests[1].starts_with("CANCEL "),
        "{requests:?}"
    );
}

#[test]
fn a_manual_baresip_answers_on_command_and_gets_the_callers_bye() {
    let temp = tempfile::tempdir().unwrap();
    let server = server_with_flow(temp.path());
    let wav = temp.path().join("operator.wav");
    write_wav(&wav, &test_signal(8000, 1.0, 3.0));
    let mut phone = operator(&server, &wav, Answer::Manual);

    let sip = UdpPeer::new(server.sip);
    let rtp = RtpPeer::new();
    let ok = invite_with(&sip, "softphone-accept", "100", &offer(rtp.port(), 101));
    ack(&sip, "softphone-accept", &ok);
    phone.wait_for_event("CALL_INCOMING");
    phone.answer();

    bye(&sip, "softphone-accept", &ok);
    phone.wait_for_event("CALL_CLOSED");
    assert_eq!(
        phone.call_events(),
        ["CALL_INCOMING", "CALL_ESTABLISHED", "CALL_CLOSED"],
        "{:?}",
        phone.events()
    );
    phone.wait_for_request("BYE");
}
