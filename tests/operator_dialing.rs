//! Operators' own calls. An authenticated operator dialing a colleague's extension rings that
//! phone directly. Dialing the dialplan's prefix + a number, the server sends the INVITE to the
//! trunk's proxy, answers the trunk's digest challenge with the trunk's account, and bridges the
//! operator to the far end; a flow's `dial` does the same. The trunk is SIPp (tests/data/
//! trunk_uas_auth.xml), which checks the digest with its own code and echoes RTP.

mod common;

use common::rtp::{RtpPeer, assemble, best_correlation, test_signal};
use common::trunk::Trunk;
use common::*;
use std::time::{Duration, Instant};

const NUMBER: &str = "380441234567";

/// Operator 101's INVITE to `to` from `peer`, with `extra` headers and CSeq `cseq`.
fn operator_invite(
    peer: &UdpPeer,
    call_id: &str,
    to: &str,
    rtp_port: u16,
    cseq: u32,
    extra: &str,
) -> String {
    let port = peer.port();
    let sdp = offer(rtp_port, 101);
    format!(
        "INVITE sip:{to}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{call_id}{cseq};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:101@127.0.0.1>;tag=op101\r\nTo: <sip:{to}@127.0.0.1>\r\n\
         Call-ID: {call_id}\r\nCSeq: {cseq} INVITE\r\nContact: <sip:101@127.0.0.1:{port}>\r\n{extra}\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

/// Operator 101 (password from BASE_CONFIG) calls `to` with a digest-authenticated INVITE: the
/// first is challenged with 407, ACKed, and sent again with Proxy-Authorization. Returns the
/// final response to that second INVITE (ACKed when it is a refusal).
fn call_as_operator(sip: &UdpPeer, call_id: &str, to: &str, rtp_port: u16) -> Option<String> {
    call_as_operator_within(sip, call_id, to, rtp_port, Duration::from_secs(20))
}

/// `call_as_operator`, waiting `within` for the final response.
fn call_as_operator_within(
    sip: &UdpPeer,
    call_id: &str,
    to: &str,
    rtp_port: u16,
    within: Duration,
) -> Option<String> {
    sip.send(operator_invite(sip, call_id, to, rtp_port, 1, "").as_bytes());
    let challenged = final_response(sip, call_id, 1, Duration::from_secs(10)).expect("a challenge");
    assert!(challenged.starts_with("SIP/2.0 407 "), "{challenged}");
    ack_refusal(sip, call_id, to, 1, &challenged);
    let challenge = header(&challenged, "Proxy-Authenticate")
        .map(|v| openline::sip::auth::Challenge::parse(v).unwrap())
        .unwrap();
    let credentials = openline::sip::auth::authorize(
        &challenge,
        "101",
        "s3cret-101",
        "INVITE",
        &format!("sip:{to}@127.0.0.1"),
        1,
        "0a4f113b",
    );
    let extra = format!("Proxy-Authorization: {credentials}\r\n");
    sip.send(operator_invite(sip, call_id, to, rtp_port, 2, &extra).as_bytes());
    let last = final_response(sip, call_id, 2, within)?;
    if !last.starts_with("SIP/2.0 2") {
        ack_refusal(sip, call_id, to, 2, &last);
    }
    Some(last)
}

/// ACK (CSeq 2) or BYE (CSeq 3) from operator 101 in the dialog `ok` created.
fn in_dialog(sip: &UdpPeer, call_id: &str, ok: &str, method: &str) -> String {
    let (port, to) = (sip.port(), header(ok, "To").unwrap());
    let cseq = if method == "ACK" { 2 } else { 3 };
    format!(
        "{method} sip:openline@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{call_id}{method};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:101@127.0.0.1>;tag=op101\r\nTo: {to}\r\nCall-ID: {call_id}\r\n\
         CSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n"
    )
}

/// Waits for a final response to INVITE `cseq` of `call_id` (provisional ones and
/// retransmissions of earlier finals skipped), up to `within`.
fn final_response(peer: &UdpPeer, call_id: &str, cseq: u32, within: Duration) -> Option<String> {
    let deadline = Instant::now() + within;
    let want = format!("{cseq} INVITE");
    while Instant::now() < deadline {
        if let Some(msg) = peer.recv()
            && msg.starts_with("SIP/2.0 ")
            && !msg.starts_with("SIP/2.0 1")
            && header(&msg, "Call-ID") == Some(call_id)
            && header(&msg, "CSeq") == Some(want.as_str())
        {
            return Some(msg);
        }
    }
    None
}

/// The ACK for a non-2xx final to INVITE `cseq` (RFC 3261 §17.1.1.3: the INVITE's branch).
fn ack_refusal(sip: &UdpPeer, call_id: &str, to: &str, cseq: u32, refusal: &str) {
    let port = sip.port();
    sip.send(
        format!(
            "ACK sip:{to}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{call_id}{cseq};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:101@127.0.0.1>;tag=op101\r\nTo: {}\r\nCall-ID: {call_id}\r\n\
             CSeq: {cseq} ACK\r\nContent-Length: 0\r\n\r\n",
            header(refusal, "To").unwrap()
        )
        .as_bytes(),
    );
}

/// The call has two legs, the second to the far number at the trunk.
fn assert_trunk_leg(call: &serde_json::Value) {
    let legs = call["legs"].as_array().unwrap();
    assert_eq!(legs.len(), 2, "{call:#}");
    let remote = legs[1]["remote_uri"].as_str().unwrap();
    assert!(remote.starts_with(&format!("sip:{NUMBER}@")), "{call:#}");
}

/// Talks for 4 s and checks that what comes back is our own voice (SIPp echoes it). The window
/// compared (2.5–3.5 s) starts after the trunk's 2 s of ringing, for a caller a flow answered.
fn check_echo(rtp: &mut RtpPeer, who: &str) {
    let voice = test_signal(8000, 4.0, 4.0);
    let (heard, _) = rtp.converse(&voice, &[]);
    let heard = assemble(&heard);
    let (c, _) = best_correlation(&heard, &voice[20_000..28_000], heard.len());
    assert!(
        c >= 0.9,
        "the {who} hears the far end's echo of their voice (r = {c:.3})"
    );
}

#[test]
fn an_operator_dials_out_through_the_trunk_with_digest_auth_and_talks() {
    let temp = tempfile::tempdir().unwrap();
    let mut trunk = Trunk::start(temp.path());
    let server = Server::start_in(temp.path(), &trunk.config(), &[]);
    let sip = UdpPeer::new(server.sip);
    let mut rtp = RtpPeer::new();

    // Our own INVITE is challenged first (an operator proves who they are); then the trunk
    // challenges the server, gets the right digest and answers: so do we.
    let (sip_ref, rtp_port) = (&sip, rtp.port());
    let ok = std::thread::scope(|s| {
        let calling = s
            .spawn(move || call_as_operator(sip_ref, "trunk-out", &format!("9{NUMBER}"), rtp_port));
        // While the far end rings, the call already counts as the operator's (max_calls).
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (_, ops) = server.get("/api/v1/operators");
            let counted = ops
                .as_array()
                .unwrap()
                .iter()
                .any(|o| o["extension"] == "101" && o["active_calls"] == 1);
            if counted {
                // The far end answers 2 s after its 180: counted while it still rings.
                assert!(!calling.is_finished(), "counted only after the answer");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the ringing call is not the operator's: {ops:#}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        calling.join().unwrap()
    })
    .unwrap_or_else(|| panic!("no answer; the trunk saw:\n{}", trunk.seen()));
    assert!(ok.starts_with("SIP/2.0 200 "), "{ok}");
    rtp.remote = Some(sdp_media_addr(&ok));
    sip.send(in_dialog(&sip, "trunk-out", &ok, "ACK").as_bytes());

    // Audio goes out through the trunk and comes back (SIPp echoes it): both directions.
    check_echo(&mut rtp, "operator");

    sip.request(&in_dialog(&sip, "trunk-out", &ok, "BYE"), "200 OK");

    // The trunk's scenario ran to its end: challenge, valid credentials, answer, our BYE.
    trunk.check_finished(NUMBER);

    // The call is on record as the operator's outbound call to the far number, with the trunk's
    // leg, and the unknown number became a lead with the call on its timeline.
    let call = server.finished_call("trunk-out");
    assert_eq!(call["direction"], "outbound", "{call:#}");
    assert_eq!(
        (&call["caller"], &call["callee"]),
        (&"101".into(), &NUMBER.into()),
        "{call:#}"
    );
    let id = call["id"].as_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let lead = loop {
        let (_, view) = server.get(&format!("/api/v1/calls/{id}"));
        if let Some(lead) = view["person"]["id"].as_str() {
            break lead.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no CRM person on the call: {view:#}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let (_, timeline) = server.get(&format!("/api/v1/leads/{lead}/timeline"));
    assert_eq!(timeline["entries"][0]["call_id"], id, "{timeline:#}");
    assert_eq!(
        timeline["entries"][0]["data"]["number"], "+380441234567",
        "{timeline:#}"
    );
    assert_trunk_leg(&call);
}

#[test]
fn a_flow_dials_an_external_number_through_the_trunk() {
    let temp = tempfile::tempdir().unwrap();
    let mut trunk = Trunk::start(temp.path());
    let flows = temp.path().join("flows");
    std::fs::create_dir_all(&flows).unwrap();
    std::fs::write(
        flows.join("main.yaml"),
        format!(
            "id: main\nentry: out\nnodes:\n  out:\n    dial: {{ to: \"9{NUMBER}\", timeout: 20s, next: bye, on_fail: bye }}\n  bye:\n    hangup: true\n"
        ),
    )
    .unwrap();
    let server = Server::start_in(
        temp.path(),
        &trunk.config(),
        &["--flows", flows.to_str().unwrap()],
    );

    // An outside caller reaches the flow (routed by [routes]), whose `dial` goes out.
    let sip = UdpPeer::new(server.sip);
    let mut rtp = RtpPeer::new();
    let ok = invite_with(&sip, "flow-out", "100", &offer(rtp.port(), 101));
    rtp.remote = Some(sdp_media_addr(&ok));
    ack(&sip, "flow-out", &ok);
    check_echo(&mut rtp, "caller");
    bye(&sip, "flow-out", &ok);
    trunk.check_finished(NUMBER);

    let call = server.finished_call("flow-out");
    assert_trunk_leg(&call);
}

#[test]
fn an_operator_calls_a_colleague_directly_and_busy_comes_back_as_486() {
    let server = Server::start("");
    let mut colleague = common::phone::Phone::register(server.sip, "102", "s3cret-102");
    let sip = UdpPeer::new(server.sip);
    let mut rtp = RtpPeer::new();
    let (sip_ref, rtp_port) = (&sip, rtp.port());

    // 102 is busy: the caller hears 486, and no flow ever answered the call.
    let busy = std::thread::scope(|s| {
        let calling = s.spawn(move || call_as_operator(sip_ref, "colleague-busy", "102", rtp_port));
        let invite = colleague
            .wait_for("INVITE ", Duration::from_secs(10))
            .expect("the colleague's phone rings");
        assert!(
            invite.contains("<sip:101@"),
            "the caller's extension is shown:\n{invite}"
        );
        colleague.reply(&invite, "486 Busy Here", "", "");
        colleague
            .wait_for("ACK ", Duration::from_secs(5))
            .expect("the 486 is ACKed");
        calling.join().unwrap().expect("a final response")
    });
    assert!(busy.starts_with("SIP/2.0 486 "), "{busy}");

    // 102 answers: both hear each other through the bridge.
    let ok = std::thread::scope(|s| {
        let calling = s.spawn(move || call_as_operator(sip_ref, "colleague-ok", "102", rtp_port));
        let invite = colleague
            .wait_for("INVITE ", Duration::from_secs(10))
            .expect("the colleague's phone rings");
        let mut colleague_rtp = RtpPeer::new();
        colleague.answer(&invite, colleague_rtp.port());
        colleague_rtp.remote = Some(sdp_media_addr(&invite));
        let ok = calling.join().unwrap().expect("a final response");
        assert!(ok.starts_with("SIP/2.0 200 "), "{ok}");
        sip.send(in_dialog(&sip, "colleague-ok", &ok, "ACK").as_bytes());
        rtp.remote = Some(sdp_media_addr(&ok));
        let caller_voice = test_signal(8000, 3.0, 2.0);
        let colleague_voice = test_signal(8000, 3.0, 7.0);
        let theirs = s.spawn(move || {
            let (heard, _) = colleague_rtp.converse(&colleague_voice, &[]);
            (assemble(&heard), colleague_voice)
        });
        let (heard, _) = rtp.converse(&caller_voice, &[]);
        let (colleague_heard, colleague_voice) = theirs.join().unwrap();
        let heard = assemble(&heard);
        let (c, _) = best_correlation(&heard, &colleague_voice[4_000..16_000], heard.len());
        assert!(c >= 0.9, "the caller hears the colleague (r = {c:.3})");
        let (c, _) = best_correlation(
            &colleague_heard,
            &caller_voice[4_000..16_000],
            colleague_heard.len(),
        );
        assert!(c >= 0.9, "the colleague hears the caller (r = {c:.3})");
        ok
    });
    sip.request(&in_dialog(&sip, "colleague-ok", &ok, "BYE"), "200 OK");
    colleague
        .wait_for("BYE ", Duration::from_secs(10))
        .expect("the colleague's leg is hung up");

    let call = server.finished_call("colleague-ok");
    assert_eq!(call["direction"], "internal", "{call:#}");
    assert_eq!(
        (&call["caller"], &call["callee"]),
        (&"101".into(), &"102".into())
    );
    let busy = server.finished_call("colleague-busy");
    assert_eq!(busy["direction"], "internal", "{busy:#}");
    assert!(busy["answered_at"].is_null(), "{busy:#}");
}

/// A carrier that rings for ever: every INVITE it gets is answered 180 and kept; the test reads
/// which numbers reached it.
struct RingingTrunk {
    port: u16,
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl RingingTrunk {
    fn start() -> RingingTrunk {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let port = socket.local_addr().unwrap().port();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 65535];
            loop {
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    if std::sync::Arc::strong_count(&log) == 1 {
                        return;
                    }
                    continue;
                };
                let text = String::from_utf8_lossy(&buf[..n]).to_string();
                if !text.starts_with("INVITE ") {
                    continue;
                }
                let line = text.lines().next().unwrap_or("").to_string();
                {
                    let mut seen = log.lock().unwrap();
                    if !seen.contains(&line) {
                        seen.push(line);
                    }
                }
                let copy = |name: &str| {
                    text.lines()
                        .filter(|l| {
                            l.to_ascii_lowercase()
                                .starts_with(&format!("{}:", name.to_ascii_lowercase()))
                        })
                        .map(|l| format!("{l}\r\n"))
                        .collect::<String>()
                };
                let ringing = format!(
                    "SIP/2.0 180 Ringing\r\n{}{}{};tag=carrier\r\n{}{}Content-Length: 0\r\n\r\n",
                    copy("Via"),
                    copy("From"),
                    copy("To").trim_end(),
                    copy("Call-ID"),
                    copy("CSeq"),
                );
                let _ = socket.send_to(ringing.as_bytes(), from);
            }
        });
        RingingTrunk { port, seen }
    }

    fn numbers(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

/// Regression (review of 832cd51): an authenticated operator could dial any 3–20 digits through
/// the trunk (premium rate, international) and as many calls at once as the carrier allowed.
#[test]
fn the_dialplan_refuses_denied_and_unlisted_numbers_and_caps_the_trunks_channels() {
    let trunk = RingingTrunk::start();
    let server = Server::start(&format!(
        "[[trunks]]\nname = \"carrier\"\nproxy = \"127.0.0.1:{}\"\n\n\
         [dialplan]\nexternal = {{ prefix = \"9\", trunk = \"carrier\", \
         allow = [\"_0XXXXXXXXX\", \"_00.\", \"_+.\"], deny = [\"_0900.\", \"_00.\", \"_+.\"], \
         max_channels = 1 }}\n",
        trunk.port
    ));
    let sip = UdpPeer::new(server.sip);
    let refused = |call_id: &str, to: &str| {
        let last = call_as_operator(&sip, call_id, to, 7078).expect("an answer");
        assert!(last.starts_with("SIP/2.0 403 "), "{to}: {last}");
    };
    refused("dp-premium", "90900123456"); // deny
    refused("dp-intl", "900442071234567"); // in allow, but deny wins
    refused("dp-short", "912345"); // not in allow
    refused("dp-plus", "9+442071234567"); // international form: `_+.` denies it
    assert!(trunk.numbers().is_empty(), "{:?}", trunk.numbers());

    // An allowed number rings at the trunk and holds its one channel.
    let ringing =
        call_as_operator_within(&sip, "dp-ok", "90441234567", 7078, Duration::from_secs(3));
    assert!(ringing.is_none(), "still ringing: {ringing:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while trunk.numbers().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the allowed number never reached the trunk"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let second = UdpPeer::new(server.sip);
    let busy = call_as_operator(&second, "dp-second", "90441234568", 7080).expect("an answer");
    assert!(busy.starts_with("SIP/2.0 503 "), "{busy}");
    let numbers = trunk.numbers();
    assert_eq!(numbers.len(), 1, "{numbers:?}");
    assert!(
        numbers[0].starts_with("INVITE sip:0441234567@"),
        "{numbers:?}"
    );
    let (_, metrics) = server.text("/metrics");
    for reason in ["number_not_allowed", "trunk_channels"] {
        assert!(
            metrics.contains(&format!(
                "openline_calls_refused_total{{reason=\"{reason}\"}}"
            )),
            "{reason}: {metrics}"
        );
    }
    // The refused attempts are on record (who tried what), as outbound calls.
    let calls = server.wait_for_calls("&number=0900123456", "the refused premium call", |c| {
        c.len() == 1 && !c[0]["ended_at"].is_null()
    });
    assert_eq!(calls[0]["direction"], "outbound");
    assert_eq!(calls[0]["disposition"], "rejected.403", "{:#}", calls[0]);
}
