//! Toll fraud: an INVITE to the dialplan's external prefix + a number must come from an
//! authenticated operator. Unauthenticated (or with wrong credentials, or claiming to be an
//! operator without proving it) it is refused, and a SIPp UAS standing in for the trunk sees no
//! INVITE at all.

mod common;

use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn invite(peer: &UdpPeer, call_id: &str, from_user: &str, to_user: &str, extra: &str) -> String {
    let port = peer.port();
    let sdp = offer(7078, 101);
    format!(
        "INVITE sip:{to_user}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{call_id};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:{from_user}@127.0.0.1>;tag=f{call_id}\r\nTo: <sip:{to_user}@127.0.0.1>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:{from_user}@127.0.0.1:{port}>\r\n{extra}\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

/// The final response (≥ 200) to what was sent.
fn final_response(peer: &UdpPeer, request: &str) -> String {
    peer.send(request.as_bytes());
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(msg) = peer.recv()
            && msg.starts_with("SIP/2.0 ")
            && !msg.starts_with("SIP/2.0 1")
        {
            return msg;
        }
    }
    panic!("no final response");
}

/// SIPp's built-in UAS standing in for the trunk for 8 s, logging every datagram it receives.
fn start_trunk(dir: &std::path::Path) -> (std::process::Child, u16, std::path::PathBuf) {
    let port = free_port();
    let log = dir.join("trunk_messages.log");
    let trunk = Command::new("sipp")
        .current_dir(dir)
        .args(["-sn", "uas", "-i", "127.0.0.1", "-p", &port.to_string()])
        .args(["-nostdin", "-timeout", "8", "-trace_msg", "-message_file"])
        .arg(&log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sipp must be installed (scripts/test.sh installs Debian's sip-tester)");
    (trunk, port, log)
}

/// Waits for the trunk stand-in to stop and checks it never got an INVITE.
fn assert_no_invite(trunk: &mut std::process::Child, log: &std::path::Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while trunk.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "sipp did not stop");
        std::thread::sleep(Duration::from_millis(100));
    }
    // SIPp creates its message log at start and writes every datagram it receives into it.
    let seen = std::fs::read_to_string(log).expect("the trunk stand-in ran");
    assert!(
        !seen.contains("INVITE sip:"),
        "the trunk was reached:\n{seen}"
    );
}

#[test]
fn unauthenticated_calls_to_external_numbers_never_reach_the_trunk() {
    let temp = tempfile::tempdir().unwrap();
    let (mut trunk, trunk_port, trunk_log) = start_trunk(temp.path());
    let config = format!(
        "[[trunks]]\nname = \"carrier\"\nproxy = \"127.0.0.1:{trunk_port}\"\n\n\
         [dialplan]\nexternal = {{ prefix = \"9\", trunk = \"carrier\" }}\n"
    );
    let server = Server::start_in(temp.path(), &config, &[]);
    let sip = UdpPeer::new(server.sip);

    // No credentials: a challenge, not a call.
    let refused = final_response(&sip, &invite(&sip, "tf1", "caller", "9380441234567", ""));
    assert!(refused.starts_with("SIP/2.0 407 "), "{refused}");
    assert!(refused.contains("Proxy-Authenticate: Digest"), "{refused}");

    // Wrong credentials for an operator: refused again.
    let challenge = refused
        .lines()
        .find_map(|l| l.strip_prefix("Proxy-Authenticate: "))
        .map(|v| openline::sip::auth::Challenge::parse(v).unwrap())
        .unwrap();
    let wrong = openline::sip::auth::authorize(
        &challenge,
        "101",
        "not-the-password",
        "INVITE",
        "sip:9380441234567@127.0.0.1",
        1,
        "cafe",
    );
    let extra = format!("Proxy-Authorization: {wrong}\r\n");
    let refused = final_response(&sip, &invite(&sip, "tf2", "101", "9380441234567", &extra));
    assert!(
        refused.starts_with("SIP/2.0 407 ") || refused.starts_with("SIP/2.0 403 "),
        "{refused}"
    );

    // Claiming to be an operator without proof: challenged even for an internal number.
    let refused = final_response(&sip, &invite(&sip, "tf3", "102", "100", ""));
    assert!(refused.starts_with("SIP/2.0 407 "), "{refused}");

    // Regression (review of 832cd51): a missing extension got 200 where an existing one got
    // 407, which told a scanner which extensions exist. Both are challenged alike now.
    let missing = final_response(&sip, &invite(&sip, "tf3m", "199", "100", ""));
    let status = |m: &str| m.lines().next().unwrap_or("").to_string();
    assert_eq!(status(&missing), status(&refused), "{missing}");
    let header_names = |m: &str| -> Vec<String> {
        m.lines()
            .skip(1)
            .take_while(|l| !l.is_empty())
            .filter_map(|l| l.split(':').next())
            .map(str::to_ascii_lowercase)
            .collect()
    };
    assert_eq!(header_names(&missing), header_names(&refused));

    // An outside caller to an ordinary number still reaches the flow.
    let ok = final_response(&sip, &invite(&sip, "tf4", "caller", "100", ""));
    assert!(ok.starts_with("SIP/2.0 200 "), "{ok}");
    ack(&sip, "tf4", &ok);
    bye(&sip, "tf4", &ok);

    // The trunk stand-in ran the whole time and saw no INVITE.
    assert_no_invite(&mut trunk, &trunk_log);
    let log = server.log();
    assert!(!log.contains("ringing an operator"), "{log}");
}

#[test]
fn a_flow_dial_built_from_what_the_caller_sent_never_reaches_the_trunk() {
    let temp = tempfile::tempdir().unwrap();
    let (mut trunk, trunk_port, trunk_log) = start_trunk(temp.path());
    let flows = temp.path().join("flows");
    std::fs::create_dir_all(&flows).unwrap();
    // "Call the caller back": the target is the caller's own From user, which they choose.
    std::fs::write(
        flows.join("main.yaml"),
        "id: main\nentry: back\nnodes:\n  back:\n    dial: { to: \"${caller}\", timeout: 5s, next: done, on_fail: done }\n  done:\n    hangup: true\n",
    )
    .unwrap();
    let config = format!(
        "[[trunks]]\nname = \"carrier\"\nproxy = \"127.0.0.1:{trunk_port}\"\n\n\
         [dialplan]\nexternal = {{ prefix = \"9\", trunk = \"carrier\" }}\n"
    );
    let server = Server::start_in(temp.path(), &config, &["--flows", flows.to_str().unwrap()]);
    let sip = UdpPeer::new(server.sip);
    let ok = final_response(&sip, &invite(&sip, "tf5", "9380441234567", "100", ""));
    assert!(ok.starts_with("SIP/2.0 200 "), "{ok}");
    ack(&sip, "tf5", &ok);
    // The flow's dial is refused at once and the flow hangs up.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(msg) = sip.recv()
            && msg.starts_with("BYE ")
        {
            answer_ok(&sip, &msg);
            break;
        }
        assert!(Instant::now() < deadline, "the flow did not hang up");
    }
    assert_no_invite(&mut trunk, &trunk_log);
    let log = server.log();
    assert!(log.contains("refused (toll fraud)"), "{log}");
}
