//! The IVR `dial` node end to end over real sockets: an operator registers with digest from its
//! own socket and answers the INVITE the flow sends it; caller and operator hear each other through
//! the bridge; when the operator hangs up, the caller goes on in the flow. Dialing an extension
//! with no live binding takes the node's `on_fail` branch at once.

mod common;

use common::rtp::RtpPeer;
use common::*;
use std::time::{Duration, Instant};

const FLOW: &str = "id: main
entry: op
nodes:
  op:
    dial: { to: \"101\", timeout: 10s, next: after, on_fail: failed }
  after:
    play: thanks.wav
  failed:
    play: goodbye.wav
";

#[test]
fn dialing_an_unregistered_extension_takes_on_fail() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("flows");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("main.yaml"), FLOW).unwrap();
    let server = Server::start_in(temp.path(), "", &["--flows", dir.to_str().unwrap()]);

    let sip = UdpPeer::new(server.sip);
    let mut rtp = RtpPeer::new();
    let ok = invite_with(&sip, "dial-unregistered", "100", &offer(rtp.port(), 101));
    rtp.remote = Some(sdp_media_addr(&ok));
    ack(&sip, "dial-unregistered", &ok);
    rtp.converse(&vec![0; 1600], &[]);

    let deadline = Instant::now() + Duration::from_secs(20);
    let mut hung_up = false;
    while !hung_up && Instant::now() < deadline {
        if let Some(msg) = sip.recv()
            && msg.starts_with("BYE ")
        {
            answer_ok(&sip, &msg);
            hung_up = true;
        }
    }
    assert!(hung_up, "the server did not hang up");

    let call = loop {
        let (_, body) = server.get("/api/v1/calls?limit=10");
        let found = body["calls"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .find_map(|c| {
                let (_, call) = server.get(&format!("/api/v1/calls/{}", c["id"].as_str().unwrap()));
                (call["legs"][0]["sip_call_id"] == "dial-unregistered"
                    && !call["ended_at"].is_null())
                .then_some(call)
            });
        if let Some(call) = found {
            break call;
        }
        assert!(Instant::now() < deadline, "the call did not finish");
        std::thread::sleep(Duration::from_millis(100));
    };
    let nodes: Vec<&str> = call["flow_path"]
        .as_array()
        .unwrap_or_else(|| panic!("no flow path: {call:#}"))
        .iter()
        .map(|s| s["node"].as_str().unwrap())
        .collect();
    assert_eq!(nodes, ["op", "failed"], "{call:#}");
    assert!(
        server.log().contains("dial.not_registered"),
        "{}",
        server.log()
    );
}

/// The operator's side: REGISTER with digest from `sip`, then answer one INVITE with our RTP port.
fn register_operator(sip: &UdpPeer) {
    use openline::sip::auth::{self, Algorithm, Challenge};
    let port = sip.port();
    let register = |cseq: u32, authz: Option<&str>| {
        let authz = authz
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        format!(
            "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKopreg{cseq};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:101@127.0.0.1>;tag=op\r\nTo: <sip:101@127.0.0.1>\r\nCall-ID: op-reg\r\n\
             CSeq: {cseq} REGISTER\r\nContact: <sip:101@127.0.0.1:{port}>\r\nExpires: 600\r\n{authz}Content-Length: 0\r\n\r\n"
        )
    };
    let challenge = sip.request(&register(1, None), "401");
    let md5 = challenge
        .lines()
        .filter_map(|l| l.strip_prefix("WWW-Authenticate: "))
        .map(|v| Challenge::parse(v).unwrap())
        .find(|c| c.algorithm == Algorithm::Md5)
        .unwrap();
    let authz = auth::authorize(
        &md5,
        "101",
        "s3cret-101",
        "REGISTER",
        "sip:127.0.0.1",
        1,
        "feed",
    );
    sip.request(&register(2, Some(&authz)), "200 OK");
}

/// Answers the server's INVITE (180, 200 with `rtp_port`), waits for the ACK; returns the INVITE.
fn answer_invite(sip: &UdpPeer, rtp_port: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    let invite = loop {
        assert!(Instant::now() < deadline, "the operator was never rung");
        if let Some(msg) = sip.recv()
            && msg.starts_with("INVITE ")
        {
            break msg;
        }
    };
    let mirror = |status: &str, extra: &str, body: &str| {
        let mut out = format!("SIP/2.0 {status}\r\n");
        for name in ["Via", "From", "Call-ID", "CSeq"] {
            if let Some(v) = header(&invite, name) {
                out.push_str(&format!("{name}: {v}\r\n"));
            }
        }
        let to = header(&invite, "To").unwrap();
        out.push_str(&format!("To: {to};tag=opleg\r\n{extra}"));
        out.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        out
    };
    sip.send(mirror("180 Ringing", "", "").as_bytes());
    let sdp = offer(rtp_port, 101);
    let contact = format!(
        "Contact: <sip:101@127.0.0.1:{}>\r\nContent-Type: application/sdp\r\n",
        sip.port()
    );
    let ok = mirror("200 OK", &contact, &sdp);
    // Re-send the 200 until the ACK arrives, as a UAS does (§13.3.1.4).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline, "no ACK for the operator's 200");
        sip.send(ok.as_bytes());
        if let Some(msg) = sip.recv()
            && msg.starts_with("ACK ")
        {
            return invite;
        }
    }
}

/// The operator puts the caller on hold: a re-INVITE with `a=sendonly`, answered `a=recvonly`.
fn operator_hold(sip: &UdpPeer, invite: &str, rtp_port: u16) {
    let port = sip.port();
    let from = header(invite, "From").unwrap();
    let to = header(invite, "To").unwrap();
    let call_id = header(invite, "Call-ID").unwrap();
    let target = header(invite, "Contact")
        .and_then(|c| c.split('<').nth(1))
        .and_then(|c| c.split('>').next())
        .unwrap()
        .to_string();
    let sdp = offer(rtp_port, 101).replace("a=sendrecv", "a=sendonly");
    let reinvite = format!(
        "INVITE {target} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKophold;rport\r\nMax-Forwards: 70\r\n\
         From: {to};tag=opleg\r\nTo: {from}\r\nCall-ID: {call_id}\r\nCSeq: 5 INVITE\r\n\
         Contact: <sip:101@127.0.0.1:{port}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    let ok = sip.request(&reinvite, "200 OK");
    assert!(ok.contains("a=recvonly"), "{ok}");
    let to_tagged = header(&ok, "To").unwrap();
    let ack = format!(
        "ACK {target} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKopholdack;rport\r\nMax-Forwards: 70\r\n\
         From: {to};tag=opleg\r\nTo: {to_tagged}\r\nCall-ID: {call_id}\r\nCSeq: 5 ACK\r\nContent-Length: 0\r\n\r\n"
    );
    sip.send(ack.as_bytes());
}

/// The operator hangs up: BYE in the dialog the INVITE created.
fn operator_bye(sip: &UdpPeer, invite: &str) {
    let port = sip.port();
    let from = header(invite, "From").unwrap();
    let to = header(invite, "To").unwrap();
    let call_id = header(invite, "Call-ID").unwrap();
    let target = header(invite, "Contact")
        .and_then(|c| c.split('<').nth(1))
        .and_then(|c| c.split('>').next())
        .unwrap()
        .to_string();
    let bye = format!(
        "BYE {target} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKopbye;rport\r\nMax-Forwards: 70\r\n\
         From: {to};tag=opleg\r\nTo: {from}\r\nCall-ID: {call_id}\r\nCSeq: 10 BYE\r\nContent-Length: 0\r\n\r\n"
    );
    sip.request(&bye, "200 OK");
}

#[test]
fn a_registered_operator_is_rung_bridged_both_ways_and_the_flow_goes_on_after() {
    use common::rtp::{assemble, best_correlation, test_signal};
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("flows");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("main.yaml"), FLOW).unwrap();
    let server = Server::start_in(
        temp.path(),
        "[calls]\nrecord = true\n",
        &["--flows", dir.to_str().unwrap()],
    );
    let op_sip = UdpPeer::new(server.sip);
    register_operator(&op_sip);

    let caller_voice = test_signal(8000, 4.0, 5.0);
    let operator_voice = test_signal(8000, 2.0, 9.0);
    let sip = UdpPeer::new(server.sip);
    let mut rtp = RtpPeer::new();
    let ok = invite_with(&sip, "dial-op", "100", &offer(rtp.port(), 101));
    rtp.remote = Some(sdp_media_addr(&ok));
    ack(&sip, "dial-op", &ok);

    let operator = std::thread::spawn(move || {
        let mut op_rtp = RtpPeer::new();
        let invite = answer_invite(&op_sip, op_rtp.port());
        assert!(invite.contains("From: \"Test\" <sip:caller@"), "{invite}");
        op_rtp.remote = Some(sdp_media_addr(&invite));
        let (heard, _) = op_rtp.converse(&operator_voice, &[]);
        operator_hold(&op_sip, &invite, op_rtp.port());
        operator_bye(&op_sip, &invite);
        (assemble(&heard), operator_voice)
    });
    let (caller_heard, _) = rtp.converse(&caller_voice, &[]);
    let (operator_heard, operator_voice) = operator.join().unwrap();

    // The operator talks for 2 s right after answering; it hears the caller's first seconds.
    let (c, _) = best_correlation(
        &operator_heard,
        &caller_voice[4_000..12_000],
        operator_heard.len(),
    );
    assert!(c >= 0.9, "the operator hears the caller (r = {c:.3})");
    let caller_heard = assemble(&caller_heard);
    let (c, _) = best_correlation(
        &caller_heard,
        &operator_voice[4_000..12_000],
        caller_heard.len(),
    );
    assert!(c >= 0.9, "the caller hears the operator (r = {c:.3})");
    eprintln!("bridge: both directions correlate (r >= 0.9)");

    // After the operator's BYE the flow plays `after` and hangs up.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(
            Instant::now() < deadline,
            "the server did not hang up on the caller"
        );
        if let Some(msg) = sip.recv()
            && msg.starts_with("BYE ")
        {
            answer_ok(&sip, &msg);
            break;
        }
    }
    let call = loop {
        let (_, body) = server.get("/api/v1/calls?limit=10");
        let id = body["calls"][0]["id"].as_str().map(str::to_string);
        if let Some(id) = id {
            let (_, call) = server.get(&format!("/api/v1/calls/{id}"));
            if !call["ended_at"].is_null() && call["legs"].as_array().is_some_and(|l| l.len() == 2)
            {
                break call;
            }
        }
        assert!(Instant::now() < deadline, "no finished call with two legs");
        std::thread::sleep(Duration::from_millis(100));
    };
    let nodes: Vec<&str> = call["flow_path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["node"].as_str().unwrap())
        .collect();
    assert_eq!(nodes, ["op", "after"], "{call:#}");
    assert_eq!(call["legs"][1]["direction"], "outbound");
    assert!(
        call["legs"][1]["sip_call_id"]
            .as_str()
            .is_some_and(|c| !c.is_empty() && !c.starts_with("outbound-"))
    );
    assert!(!call["legs"][1]["answered_at"].is_null());
}
