//! End-to-end SIP tests: the real server binary on free ports, driven by SIPp and by hand-written
//! messages over real UDP and TCP sockets on 127.0.0.1.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

fn sipp_args(server: &Server, extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        server.sip.to_string(),
        "-i".into(),
        "127.0.0.1".into(),
        "-mp".into(),
        free_media_port().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

#[test]
fn sipp_uac_200_calls_at_50_per_second_are_all_answered_and_recorded() {
    let server = Server::start("");
    let work = tempfile::tempdir().unwrap();
    let args = sipp_args(
        &server,
        &["-sn", "uac", "-r", "50", "-m", "200", "-l", "200"],
    );
    let (code, output) = sipp(work.path(), &args);
    assert_eq!(code, 0, "SIPp reported failed calls:\n{output}");
    assert!(output.contains("Successful call"), "{output}");
    let calls = server.wait_for_calls("", "200 completed call rows", |calls| {
        calls.len() == 200 && calls.iter().all(|c| !c["ended_at"].is_null())
    });
    for call in &calls {
        assert_eq!(call["disposition"], "ivr.abandoned", "{call}");
        assert_eq!(call["direction"], "inbound");
        assert!(!call["answered_at"].is_null());
    }
    let (_, metrics) = server.text("/metrics");
    assert!(
        metrics.contains("openline_calls_started_total 200"),
        "{metrics}"
    );
}

#[test]
fn sipp_register_with_digest_and_a_wrong_password_never_gets_200() {
    let server = Server::start("");
    let work = tempfile::tempdir().unwrap();
    let scenario = data_path("sipp/register.xml").display().to_string();
    let args = sipp_args(
        &server,
        &[
            "-sf",
            &scenario,
            "-s",
            "101",
            "-au",
            "101",
            "-ap",
            "s3cret-101",
            "-m",
            "1",
        ],
    );
    let (code, output) = sipp(work.path(), &args);
    assert_eq!(
        code, 0,
        "REGISTER with the right password failed:\n{output}"
    );

    let wrong = data_path("sipp/register_wrong.xml").display().to_string();
    for (user, password) in [("101", "not-the-password"), ("777", "whatever")] {
        let args = sipp_args(
            &server,
            &[
                "-sf", &wrong, "-s", user, "-au", user, "-ap", password, "-m", "1",
            ],
        );
        let (code, output) = sipp(work.path(), &args);
        assert_eq!(
            code, 0,
            "{user}: expected 401/403 after a wrong password:\n{output}"
        );
    }
}

#[test]
fn sipp_cancel_before_answer_gets_487() {
    // Ring for a while before answering, so the CANCEL arrives while the INVITE is pending.
    let server = Server::start("[calls]\nanswer_delay = \"10s\"\n");
    let work = tempfile::tempdir().unwrap();
    let scenario = data_path("sipp/uac_cancel.xml").display().to_string();
    let args = sipp_args(&server, &["-sf", &scenario, "-m", "3", "-r", "3"]);
    let (code, output) = sipp(work.path(), &args);
    assert_eq!(code, 0, "CANCEL scenario failed:\n{output}");
    let calls = server.wait_for_calls("", "3 cancelled calls", |calls| {
        calls.len() == 3 && calls.iter().all(|c| !c["ended_at"].is_null())
    });
    for call in calls {
        assert_eq!(call["disposition"], "cancelled.by_caller", "{call}");
        assert!(call["answered_at"].is_null());
    }
}

#[test]
fn garbage_and_truncated_tcp_leave_the_server_answering() {
    let server = Server::start("");
    let peer = UdpPeer::new(server.sip);
    // Garbage datagrams of every shape.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..300usize {
        let len = i % 1400 + 1;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed & 0xff) as u8
            })
            .collect();
        peer.send(&bytes);
    }
    peer.send(b"INVITE sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1\r\n\r\n");
    peer.send(&[0u8; 2000]);
    // A TCP peer that sends half a message and stays connected, and one that disconnects mid-message.
    let mut stuck = TcpStream::connect(server.sip).unwrap();
    stuck
        .write_all(b"OPTIONS sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1;branch=z9hG4bKt\r\nContent-Length: 500\r\n\r\nabc")
        .unwrap();
    let mut gone = TcpStream::connect(server.sip).unwrap();
    gone.write_all(b"REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.")
        .unwrap();
    drop(gone);
    // The server still answers OPTIONS over UDP and over a fresh TCP connection.
    let probe = UdpPeer::new(server.sip);
    let answer = probe.request(&options(probe.port(), "after-garbage"), "SIP/2.0 200 OK");
    assert!(header(&answer, "Allow").unwrap().contains("INVITE"));
    let mut tcp = TcpStream::connect(server.sip).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    tcp.write_all(options(0, "tcp-after").replace("UDP", "TCP").as_bytes())
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = tcp.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("SIP/2.0 200 OK"));
    drop(stuck);
}

#[test]
fn malformed_requests_get_400_with_a_reason() {
    let server = Server::start("");
    let peer = UdpPeer::new(server.sip);
    let port = peer.port();
    let bad_cseq = options(port, "badcseq").replace("CSeq: 1 OPTIONS", "CSeq: x OPTIONS");
    peer.send(bad_cseq.as_bytes());
    let answer = peer.expect("400");
    assert!(answer.starts_with("SIP/2.0 400 Bad CSeq"), "{answer}");
    let no_from = options(port, "nofrom").replace("From: <sip:probe@127.0.0.1>;tag=nofrom\r\n", "");
    peer.send(no_from.as_bytes());
    assert!(
        peer.expect("400")
            .starts_with("SIP/2.0 400 Missing Required Header: From")
    );
    let version = options(port, "ver").replacen("SIP/2.0\r\n", "SIP/3.0\r\n", 1);
    peer.send(version.as_bytes());
    peer.expect("505");
}

#[test]
fn compact_header_forms_over_the_wire() {
    let server = Server::start("");
    let peer = UdpPeer::new(server.sip);
    let port = peer.port();
    let msg = format!(
        "OPTIONS sip:ping@127.0.0.1 SIP/2.0\r\nv: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKcompact;rport\r\n\
         f: <sip:probe@127.0.0.1>;tag=c1\r\nt: <sip:ping@127.0.0.1>\r\ni: compact@test\r\n\
         CSeq: 7 OPTIONS\r\nl: 0\r\n\r\n"
    );
    peer.send(msg.as_bytes());
    let answer = peer.expect("200 OK");
    assert_eq!(header(&answer, "Call-ID"), Some("compact@test"));
    assert_eq!(header(&answer, "CSeq"), Some("7 OPTIONS"));
}

#[test]
fn tcp_framing_handles_pipelined_split_and_oversized_messages() {
    let server = Server::start("");
    let mut tcp = TcpStream::connect(server.sip).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let one = options(0, "pipe1").replace("UDP", "TCP");
    let two = options(0, "pipe2").replace("UDP", "TCP");
    let both = format!("{one}{two}");
    let (first, second) = both.as_bytes().split_at(one.len() + 17);
    tcp.write_all(first).unwrap();
    tcp.flush().unwrap();
    std::thread::sleep(Duration::from_millis(50)); // force a partial read on the server
    tcp.write_all(second).unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 8192];
    while seen.matches("SIP/2.0 200 OK").count() < 2 {
        let n = tcp.read(&mut buf).unwrap();
        assert!(n > 0, "connection closed early: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(seen.contains("pipe1@test") && seen.contains("pipe2@test"));

    let mut big = TcpStream::connect(server.sip).unwrap();
    big.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let huge = options(0, "huge")
        .replace("UDP", "TCP")
        .replace("Content-Length: 0", "Content-Length: 10000000");
    big.write_all(huge.as_bytes()).unwrap();
    let mut reply = String::new();
    let _ = big.read_to_string(&mut reply);
    assert!(
        reply.starts_with("SIP/2.0 413 Message Too Large"),
        "{reply}"
    );
}

#[test]
fn sha256_digest_register_with_our_own_client() {
    use openline::sip::auth::{self, Algorithm, Challenge};
    let server = Server::start("");
    let peer = UdpPeer::new(server.sip);
    let port = peer.port();
    let register =
        |cseq: u32, authz: Option<&str>| register_message(port, "102", "sha-reg", cseq, authz);
    peer.send(register(1, None).as_bytes());
    let challenge = peer.expect("401");
    let sha = challenge
        .lines()
        .filter_map(|l| l.strip_prefix("WWW-Authenticate: "))
        .map(|v| Challenge::parse(v).unwrap())
        .find(|c| c.algorithm == Algorithm::Sha256)
        .expect("a SHA-256 challenge");
    let authz = auth::authorize(
        &sha,
        "102",
        "s3cret-102",
        "REGISTER",
        "sip:127.0.0.1",
        1,
        "0a4f113b",
    );
    assert!(authz.contains("algorithm=SHA-256"));
    peer.send(register(2, Some(&authz)).as_bytes());
    let ok = peer.expect("200 OK");
    assert!(header(&ok, "Contact").unwrap().contains("expires="), "{ok}");
    // The same response replayed with a wrong password is refused.
    let bad = auth::authorize(
        &sha,
        "102",
        "wrong-password",
        "REGISTER",
        "sip:127.0.0.1",
        2,
        "0a4f113c",
    );
    peer.send(register(3, Some(&bad)).as_bytes());
    peer.expect("401");
}

#[test]
fn call_held_then_bye_from_caller_is_recorded() {
    let server = Server::start("");
    let peer = UdpPeer::new(server.sip);
    let ok = invite(&peer, "held-1", "100");
    assert!(ok.contains("m=audio "), "{ok}");
    assert!(!ok.contains("0.0.0.0"));
    ack(&peer, "held-1", &ok);
    let port = peer.port();
    let to = header(&ok, "To").unwrap();
    let bye = format!(
        "BYE sip:openline@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKheldbye;rport\r\n\
         Max-Forwards: 70\r\nFrom: \"Test\" <sip:caller@127.0.0.1>;tag=uacheld-1\r\nTo: {to}\r\n\
         Call-ID: held-1\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
    );
    peer.send(bye.as_bytes());
    peer.expect("200 OK");
    let calls = server.wait_for_calls("", "the ended call", |c| {
        c.len() == 1 && !c[0]["ended_at"].is_null()
    });
    assert_eq!(calls[0]["caller"], "caller");
    assert_eq!(calls[0]["caller_name"], "Test");
    assert_eq!(calls[0]["callee"], "100");
    let id = calls[0]["id"].as_str().unwrap();
    let (status, call) = server.get(&format!("/api/v1/calls/{id}"));
    assert_eq!(status, 200);
    assert_eq!(call["legs"][0]["sip_call_id"], "held-1");
}

/// Regression (review of 832cd51): nothing capped calls per source or in total. Over
/// `max_calls_per_source` one source gets 486, over `max_calls` everyone gets 503, each counted
/// in `openline_calls_refused_total`; a hung-up call frees its place.
#[test]
fn calls_are_capped_per_source_and_in_total() {
    let server = Server::start("[calls]\nmax_calls = 3\nmax_calls_per_source = 2\n");
    let sdp = || offer(free_media_port(), 101);
    let a = UdpPeer::from_ip(server.sip, "127.0.0.1");
    let a1 = invite_with(&a, "cap-a1", "100", &sdp());
    ack(&a, "cap-a1", &a1);
    let a2 = invite_with(&a, "cap-a2", "100", &sdp());
    ack(&a, "cap-a2", &a2);
    let busy = invite_expect(&a, "cap-a3", "100", &sdp(), "486");
    assert!(busy.starts_with("SIP/2.0 486 Busy Here"), "{busy}");
    ack_refusal(&a, "cap-a3", &busy);
    let b = UdpPeer::from_ip(server.sip, "127.0.0.2");
    let b1 = invite_with(&b, "cap-b1", "100", &sdp());
    ack(&b, "cap-b1", &b1);
    let c = UdpPeer::from_ip(server.sip, "127.0.0.3");
    let full = invite_expect(&c, "cap-c1", "100", &sdp(), "503");
    assert!(full.starts_with("SIP/2.0 503 "), "{full}");
    ack_refusal(&c, "cap-c1", &full);
    let (_, metrics) = server.text("/metrics");
    for reason in ["source_limit", "node_full"] {
        let line = format!("openline_calls_refused_total{{reason=\"{reason}\"}} 1");
        assert!(metrics.contains(&line), "{line} in\n{metrics}");
    }
    bye(&a, "cap-a1", &a1);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut tries = 0;
    let again = loop {
        tries += 1;
        let id = format!("cap-a4-{tries}"); // a new call each time, not a retransmission
        invite_expect(&a, &id, "100", &sdp(), "100 Trying");
        let reply = final_for(&a, &id);
        if reply.starts_with("SIP/2.0 200") {
            break (id, reply);
        }
        // Until the hung-up call's task has finished, its place is still taken: the source's
        // (486) or, with b1 up, the node's (503).
        assert!(
            reply.starts_with("SIP/2.0 486") || reply.starts_with("SIP/2.0 503"),
            "{reply}"
        );
        ack_refusal(&a, &id, &reply);
        assert!(std::time::Instant::now() < deadline, "{reply}");
        std::thread::sleep(Duration::from_millis(200));
    };
    ack(&a, &again.0, &again.1);
    bye(&a, &again.0, &again.1);
    bye(&a, "cap-a2", &a2);
    bye(&b, "cap-b1", &b1);
}

/// The ACK for a final error response to INVITE `call_id` from `peer` (stops its retransmissions).
fn ack_refusal(peer: &UdpPeer, call_id: &str, refusal: &str) {
    let port = peer.port();
    let to = header(refusal, "To").unwrap_or("<sip:100@127.0.0.1>");
    peer.send(
        format!(
            "ACK sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{call_id}i;rport\r\n\
             Max-Forwards: 70\r\nFrom: \"Test\" <sip:caller@127.0.0.1>;tag=uac{call_id}\r\nTo: {to}\r\n\
             Call-ID: {call_id}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
        )
        .as_bytes(),
    );
}

/// The final response to INVITE `call_id`, skipping what else arrives on the socket (other
/// calls' retransmissions, the server's requests).
fn final_for(peer: &UdpPeer, call_id: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        let Some(msg) = peer.recv() else { continue };
        let final_status = msg.starts_with("SIP/2.0 ") && !msg.starts_with("SIP/2.0 1");
        if final_status && header(&msg, "Call-ID") == Some(call_id) {
            return msg;
        }
    }
    panic!("no final response to {call_id}");
}

/// Regression (review of 832cd51): ICMP "port unreachable" did not stop our RTP, so a call whose
/// media address was closed (a phone gone, an address that never was a phone) got a packet every
/// 20 ms until the 60 s media timeout.
#[test]
fn icmp_port_unreachable_for_our_rtp_stops_the_stream_and_ends_the_call() {
    let server = Server::start("");
    let peer = UdpPeer::new(server.sip);
    // A port nothing listens on: the kernel answers our RTP with ICMP port unreachable.
    let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let ok = invite_with(&peer, "icmp-1", "100", &offer(closed_port, 101));
    ack(&peer, "icmp-1", &ok);
    let started = std::time::Instant::now();
    // The server gives up on the media and hangs up: its BYE is answered.
    let bye = loop {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no BYE: the ICMP errors did not stop the call"
        );
        if let Some(msg) = peer.recv()
            && msg.starts_with("BYE ")
        {
            break msg;
        }
    };
    answer_ok(&peer, &bye);
    let calls = server.wait_for_calls("&number=100", "the call ended by ICMP", |c| {
        c.len() == 1 && !c[0]["ended_at"].is_null()
    });
    assert_eq!(
        calls[0]["disposition"], "failed.media_unreachable",
        "{:#}",
        calls[0]
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "ended only after {:?}: the media timeout, not the ICMP errors",
        started.elapsed()
    );
}

/// Regression (issue: digest replay): nonce counts were not tracked, so a captured REGISTER's
/// Authorization could be sent again in a new request for the nonce's whole lifetime (5 min).
#[test]
fn a_captured_digest_response_sent_again_is_challenged_and_a_growing_count_is_not() {
    use openline::sip::auth::{self, Challenge};
    let server = Server::start("");
    let peer = UdpPeer::new(server.sip);
    let port = peer.port();
    let register =
        |cseq: u32, authz: Option<&str>| register_message(port, "101", "replay-reg", cseq, authz);
    peer.send(register(1, None).as_bytes());
    let challenged = peer.expect("401");
    let challenge = challenged
        .lines()
        .find_map(|l| l.strip_prefix("WWW-Authenticate: "))
        .map(|v| Challenge::parse(v).unwrap())
        .unwrap();
    let first = auth::authorize(
        &challenge,
        "101",
        "s3cret-101",
        "REGISTER",
        "sip:127.0.0.1",
        1,
        "c1",
    );
    peer.send(register(2, Some(&first)).as_bytes());
    peer.expect("200 OK");
    // An eavesdropper sends the captured header again in a request of its own.
    peer.send(register(3, Some(&first)).as_bytes());
    let replayed = peer.expect("401");
    assert!(
        replayed.to_ascii_lowercase().contains("stale=true"),
        "a replay gets a fresh nonce: {replayed}"
    );
    // The real client's next request on the same nonce counts up: accepted.
    let next = auth::authorize(
        &challenge,
        "101",
        "s3cret-101",
        "REGISTER",
        "sip:127.0.0.1",
        2,
        "c2",
    );
    peer.send(register(4, Some(&next)).as_bytes());
    peer.expect("200 OK");
}

/// A REGISTER of `user` from `port` (Call-ID `call_id`, branch from it and `cseq`), with an
/// `Authorization` header when given.
fn register_message(
    port: u16,
    user: &str,
    call_id: &str,
    cseq: u32,
    authz: Option<&str>,
) -> String {
    let authz = authz
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    format!(
        "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{call_id}{cseq};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:{user}@127.0.0.1>;tag=r{user}\r\nTo: <sip:{user}@127.0.0.1>\r\nCall-ID: {call_id}\r\n\
         CSeq: {cseq} REGISTER\r\nContact: <sip:{user}@127.0.0.1:{port}>\r\nExpires: 600\r\n{authz}Content-Length: 0\r\n\r\n"
    )
}
