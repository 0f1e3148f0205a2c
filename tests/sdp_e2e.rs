//! SDP offer/answer over the wire: an offer of audio and video gets one `m=` line per stream,
//! a re-INVITE hold with `c=0.0.0.0` and an UPDATE with an offer are answered within the same
//! SDP session (same `o=` id and address, the version one higher each time).

mod common;

use common::*;

/// `(session id, version, address)` of the `o=` line and the `c=` address of a message's SDP.
fn origin_and_connection(message: &str) -> ((String, u64, String), String) {
    let body = message.split("\r\n\r\n").nth(1).expect("a body");
    let o: Vec<&str> = body
        .lines()
        .find_map(|l| l.strip_prefix("o="))
        .expect("o=")
        .split_whitespace()
        .collect();
    let c = body
        .lines()
        .find_map(|l| l.strip_prefix("c=IN IP4 "))
        .expect("c=")
        .trim()
        .to_string();
    (
        (o[1].to_string(), o[2].parse().unwrap(), o[5].to_string()),
        c,
    )
}

/// An in-dialog request from the caller with an SDP body; returns the server's 200.
fn in_dialog(
    peer: &UdpPeer,
    call_id: &str,
    ok: &str,
    method: &str,
    cseq: u32,
    sdp: &str,
) -> String {
    let port = peer.port();
    let to = header(ok, "To").unwrap();
    let msg = format!(
        "{method} sip:openline@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{call_id}{cseq};rport\r\n\
         Max-Forwards: 70\r\nFrom: \"Test\" <sip:caller@127.0.0.1>;tag=uac{call_id}\r\nTo: {to}\r\n\
         Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContact: <sip:caller@127.0.0.1:{port}>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    peer.request(&msg, "200 OK")
}

fn ack_cseq(peer: &UdpPeer, call_id: &str, ok: &str, cseq: u32) {
    let port = peer.port();
    let to = header(ok, "To").unwrap();
    peer.send(
        format!(
            "ACK sip:openline@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{call_id}a{cseq};rport\r\n\
             Max-Forwards: 70\r\nFrom: \"Test\" <sip:caller@127.0.0.1>;tag=uac{call_id}\r\nTo: {to}\r\n\
             Call-ID: {call_id}\r\nCSeq: {cseq} ACK\r\nContent-Length: 0\r\n\r\n"
        )
        .as_bytes(),
    );
}

/// Regression (review of 832cd51): the answer had one `m=` line whatever was offered, every
/// re-INVITE answer started a new SDP session (new id, same version), a `c=0.0.0.0` hold was
/// answered with 127.0.0.1 off loopback, and an UPDATE's offer got our old SDP back.
#[test]
fn answers_keep_one_m_line_per_stream_and_one_sdp_session_through_hold_and_update() {
    let server = Server::start("");
    let peer = UdpPeer::new(server.sip);
    let audio_video = format!(
        "{}m=video 7082 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n",
        offer(7078, 101)
    );
    let ok = invite_with(&peer, "sdp-1", "100", &audio_video);
    let body = ok.split("\r\n\r\n").nth(1).unwrap();
    let m_lines: Vec<&str> = body.lines().filter(|l| l.starts_with("m=")).collect();
    assert_eq!(m_lines.len(), 2, "{body}");
    assert!(m_lines[0].starts_with("m=audio ") && !m_lines[0].starts_with("m=audio 0 "));
    assert_eq!(m_lines[1], "m=video 0 RTP/AVP 96");
    ack(&peer, "sdp-1", &ok);
    let ((session, version, address), connection) = origin_and_connection(&ok);

    let hold = offer(7078, 101)
        .replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0")
        .replace("a=sendrecv", "a=sendonly");
    let held = in_dialog(&peer, "sdp-1", &ok, "INVITE", 2, &hold);
    ack_cseq(&peer, "sdp-1", &ok, 2);
    let ((s2, v2, a2), c2) = origin_and_connection(&held);
    assert_eq!(
        (s2.as_str(), a2.as_str()),
        (session.as_str(), address.as_str()),
        "{held}"
    );
    assert_eq!(v2, version + 1, "{held}");
    assert_eq!(c2, connection, "our address stays what we first answered");
    assert!(held.contains("a=inactive"), "{held}");

    let resumed = in_dialog(&peer, "sdp-1", &ok, "UPDATE", 3, &offer(7078, 101));
    let ((s3, v3, _), _) = origin_and_connection(&resumed);
    assert_eq!(s3, session);
    assert_eq!(v3, version + 2, "{resumed}");
    assert!(resumed.contains("a=sendrecv"), "{resumed}");
}
