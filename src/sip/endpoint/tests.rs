//! Endpoint tests: whole request/response exchanges through the sans-IO core in virtual time.

use super::*;
use crate::sip::transport::TransportKind;

fn endpoint() -> Endpoint {
    Endpoint::new(EndpointConfig {
        timers: TimerConfig::default(),
        registrar: RegistrarConfig::default(),
        advertised: "127.0.0.1:5060".into(),
        external_prefix: Some("9".into()),
        nonce_secret: [1; 32],
    })
}

fn udp() -> Peer {
    Peer {
        transport: TransportKind::Udp,
        addr: "127.0.0.1:6000".parse().unwrap(),
        conn: None,
    }
}

fn utc() -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap()
}

fn request(method: &str, branch: &str, cseq: u32, to_tag: Option<&str>, extra: &str) -> Vec<u8> {
    let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
    format!(
        "{method} sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6000;branch=z9hG4bK{branch};rport\r\n\
         From: <sip:caller@127.0.0.1>;tag=caller1\r\nTo: <sip:100@127.0.0.1>{to_tag}\r\nCall-ID: call-1\r\n\
         CSeq: {cseq} {method}\r\nMax-Forwards: 70\r\nContact: <sip:caller@127.0.0.1:6000>\r\n{extra}Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// Drains the endpoint: (status lines and request lines sent, events).
fn drain(ep: &mut Endpoint) -> (Vec<String>, Vec<Event>) {
    let (mut sent, mut events) = (Vec::new(), Vec::new());
    while let Some(out) = ep.poll_output() {
        match out {
            Output::Send { bytes, .. } => {
                let text = String::from_utf8_lossy(&bytes).to_string();
                sent.push(text.lines().next().unwrap_or("").to_string());
            }
            Output::Event(e) => events.push(e),
        }
    }
    (sent, events)
}

fn to_tag_of(ep: &mut Endpoint, leg: LegId) -> String {
    ep.legs[&leg].local_tag.clone()
}

fn incoming_leg(events: &[Event]) -> LegId {
    events
        .iter()
        .find_map(|e| match e {
            Event::IncomingCall(c) => Some(c.leg),
            _ => None,
        })
        .expect("incoming call")
}

#[test]
fn invite_ring_answer_ack_bye() {
    let mut ep = endpoint();
    let t0 = crate::testing::t0();
    ep.handle_packet(t0, utc(), udp(), &request("INVITE", "inv1", 1, None, ""));
    let (sent, events) = drain(&mut ep);
    assert_eq!(sent, vec!["SIP/2.0 100 Trying"]);
    let leg = incoming_leg(&events);
    ep.ring(t0, leg);
    ep.answer(t0, leg, Bytes::from_static(b"v=0\r\n"));
    let (sent, _) = drain(&mut ep);
    assert_eq!(sent, vec!["SIP/2.0 180 Ringing", "SIP/2.0 200 OK"]);
    // No ACK yet: the 2xx is retransmitted at T1 by the UAS core, also on UDP.
    ep.handle_timeout(t0 + Duration::from_millis(500));
    assert_eq!(drain(&mut ep).0, vec!["SIP/2.0 200 OK"]);
    let tag = to_tag_of(&mut ep, leg);
    ep.handle_packet(t0, utc(), udp(), &request("ACK", "ack1", 1, Some(&tag), ""));
    let (_, events) = drain(&mut ep);
    assert!(matches!(events[..], [Event::LegConfirmed { .. }]));
    ep.handle_timeout(t0 + Duration::from_secs(40));
    assert!(
        drain(&mut ep).0.iter().all(|l| !l.contains("200 OK")),
        "no 2xx after ACK"
    );
    ep.handle_packet(t0, utc(), udp(), &request("BYE", "bye1", 2, Some(&tag), ""));
    let (sent, events) = drain(&mut ep);
    assert_eq!(sent, vec!["SIP/2.0 200 OK"]);
    assert!(matches!(
        events[..],
        [Event::LegEnded {
            reason: EndReason::RemoteBye,
            ..
        }]
    ));
    assert_eq!(ep.leg_count(), 0);
}

#[test]
fn invite_retransmission_is_absorbed() {
    let mut ep = endpoint();
    let t0 = crate::testing::t0();
    let invite = request("INVITE", "inv2", 1, None, "");
    ep.handle_packet(t0, utc(), udp(), &invite);
    let (_, events) = drain(&mut ep);
    assert_eq!(events.len(), 1);
    ep.handle_packet(t0, utc(), udp(), &invite);
    let (sent, events) = drain(&mut ep);
    assert_eq!(sent, vec!["SIP/2.0 100 Trying"], "last provisional re-sent");
    assert!(events.is_empty(), "no second call");
}

#[test]
fn cancel_before_answer_gives_200_and_487() {
    let mut ep = endpoint();
    let t0 = crate::testing::t0();
    ep.handle_packet(t0, utc(), udp(), &request("INVITE", "inv3", 1, None, ""));
    let (_, events) = drain(&mut ep);
    let leg = incoming_leg(&events);
    ep.ring(t0, leg);
    drain(&mut ep);
    ep.handle_packet(t0, utc(), udp(), &request("CANCEL", "inv3", 1, None, ""));
    let (sent, events) = drain(&mut ep);
    assert_eq!(
        sent,
        vec!["SIP/2.0 200 OK", "SIP/2.0 487 Request Terminated"]
    );
    assert!(matches!(
        events[..],
        [Event::LegEnded {
            reason: EndReason::Cancelled,
            ..
        }]
    ));
    // The 487 is retransmitted until its ACK (Timer G), then absorbed.
    ep.handle_timeout(t0 + Duration::from_millis(500));
    assert_eq!(drain(&mut ep).0, vec!["SIP/2.0 487 Request Terminated"]);
    ep.handle_packet(t0, utc(), udp(), &request("ACK", "inv3", 1, None, ""));
    ep.handle_timeout(t0 + Duration::from_secs(2));
    assert!(drain(&mut ep).0.is_empty());
}

#[test]
fn cancel_for_unknown_invite_is_481() {
    let mut ep = endpoint();
    ep.handle_packet(
        crate::testing::t0(),
        utc(),
        udp(),
        &request("CANCEL", "nope", 1, None, ""),
    );
    assert_eq!(
        drain(&mut ep).0,
        vec!["SIP/2.0 481 Call/Transaction Does Not Exist"]
    );
}

#[test]
fn stateless_and_uas_checks() {
    let mut ep = endpoint();
    let now = crate::testing::t0();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (request("OPTIONS", "o1", 1, None, ""), "SIP/2.0 200 OK"),
        (request("BYE", "b1", 1, Some("x"), ""), "SIP/2.0 481 Call/Transaction Does Not Exist"),
        (request("BYE", "b2", 1, None, ""), "SIP/2.0 481 Call/Transaction Does Not Exist"),
        (request("SUBSCRIBE", "s1", 1, None, ""), "SIP/2.0 405 Method Not Allowed"),
        (request("OPTIONS", "o2", 1, None, "Require: foo\r\n"), "SIP/2.0 420 Bad Extension"),
        (
            b"FOO sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKf\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: f\r\nCSeq: 1 FOO\r\n\r\n".to_vec(),
            "SIP/2.0 501 Not Implemented",
        ),
    ];
    for (bytes, expected) in cases {
        ep.handle_packet(now, utc(), udp(), &bytes);
        assert_eq!(drain(&mut ep).0, vec![expected.to_string()]);
    }
    // Max-Forwards: 0 is refused with 483.
    let zero = String::from_utf8(request("OPTIONS", "o3", 1, None, ""))
        .unwrap()
        .replace("Max-Forwards: 70", "Max-Forwards: 0");
    ep.handle_packet(now, utc(), udp(), zero.as_bytes());
    assert_eq!(drain(&mut ep).0, vec!["SIP/2.0 483 Too Many Hops"]);
}

#[test]
fn unacknowledged_2xx_ends_with_bye_after_64_t1() {
    let mut ep = endpoint();
    let t0 = crate::testing::t0();
    ep.handle_packet(t0, utc(), udp(), &request("INVITE", "inv4", 1, None, ""));
    let (_, events) = drain(&mut ep);
    let leg = incoming_leg(&events);
    ep.answer(t0, leg, Bytes::from_static(b"v=0\r\n"));
    drain(&mut ep);
    let mut now = t0;
    let mut ended = false;
    let mut byes = 0;
    while let Some(next) = ep.poll_timeout() {
        if next > t0 + Duration::from_secs(70) {
            break;
        }
        now = next;
        ep.handle_timeout(now);
        let (sent, events) = drain(&mut ep);
        byes += sent.iter().filter(|l| l.starts_with("BYE ")).count();
        ended |= events.iter().any(|e| {
            matches!(
                e,
                Event::LegEnded {
                    reason: EndReason::AckTimeout,
                    ..
                }
            )
        });
    }
    assert!(ended);
    assert_eq!(
        byes,
        1 + 10,
        "one BYE, retransmitted by its transaction on UDP"
    );
    let _ = now;
}

#[test]
fn hangup_sends_bye_and_ends_on_200() {
    let mut ep = endpoint();
    let t0 = crate::testing::t0();
    ep.handle_packet(t0, utc(), udp(), &request("INVITE", "inv5", 1, None, ""));
    let (_, events) = drain(&mut ep);
    let leg = incoming_leg(&events);
    ep.answer(t0, leg, Bytes::from_static(b"v=0\r\n"));
    let tag = to_tag_of(&mut ep, leg);
    ep.handle_packet(t0, utc(), udp(), &request("ACK", "ack5", 1, Some(&tag), ""));
    drain(&mut ep);
    ep.hangup(t0, leg);
    let mut bye = None;
    while let Some(out) = ep.poll_output() {
        if let Output::Send { bytes, .. } = out {
            bye = Some(String::from_utf8_lossy(&bytes).to_string());
        }
    }
    let bye = bye.expect("BYE sent");
    assert!(bye.starts_with("BYE sip:caller@127.0.0.1:6000 SIP/2.0\r\n"));
    let via = bye.lines().find(|l| l.starts_with("Via:")).unwrap();
    let branch = via
        .split("branch=")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap();
    let ok = format!(
        "SIP/2.0 200 OK\r\n{via}\r\nFrom: <sip:100@127.0.0.1>;tag={tag}\r\nTo: <sip:caller@127.0.0.1>;tag=caller1\r\nCall-ID: call-1\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n"
    );
    assert!(ok.contains(branch));
    ep.handle_packet(t0, utc(), udp(), ok.as_bytes());
    let (_, events) = drain(&mut ep);
    assert!(matches!(
        events[..],
        [Event::LegEnded {
            reason: EndReason::LocalBye,
            ..
        }]
    ));
    assert_eq!(ep.leg_count(), 0);
}

#[test]
fn draining_endpoint_refuses_new_calls_with_503() {
    let mut ep = endpoint();
    ep.set_accepting(false);
    ep.handle_packet(
        crate::testing::t0(),
        utc(),
        udp(),
        &request("INVITE", "inv6", 1, None, ""),
    );
    assert_eq!(
        drain(&mut ep).0,
        vec!["SIP/2.0 100 Trying", "SIP/2.0 503 Service Unavailable"]
    );
}

fn tcp() -> Peer {
    Peer {
        transport: TransportKind::Tcp,
        addr: "127.0.0.1:6001".parse().unwrap(),
        conn: Some(7),
    }
}

#[test]
fn the_uas_core_retransmits_2xx_on_tcp_too_but_transactions_do_not() {
    let mut ep = endpoint();
    let t0 = crate::testing::t0();
    let invite = String::from_utf8(request("INVITE", "tcp1", 1, None, ""))
        .unwrap()
        .replace("SIP/2.0/UDP", "SIP/2.0/TCP");
    ep.handle_packet(t0, utc(), tcp(), invite.as_bytes());
    let (_, events) = drain(&mut ep);
    let leg = incoming_leg(&events);
    ep.answer(t0, leg, Bytes::from_static(b"v=0\r\n"));
    drain(&mut ep);
    ep.handle_timeout(t0 + Duration::from_millis(500));
    assert_eq!(
        drain(&mut ep).0,
        vec!["SIP/2.0 200 OK"],
        "§13.3.1.4 on any transport"
    );
    // A rejected INVITE on TCP: the 486 is sent once, never retransmitted by Timer G.
    let invite2 = invite
        .replace("z9hG4bKtcp1", "z9hG4bKtcp2")
        .replace("call-1", "call-2");
    ep.handle_packet(t0, utc(), tcp(), invite2.as_bytes());
    let (_, events) = drain(&mut ep);
    let leg2 = incoming_leg(&events);
    ep.reject(t0, leg2, 486, "Busy Here");
    assert_eq!(drain(&mut ep).0, vec!["SIP/2.0 486 Busy Here"]);
    ep.handle_timeout(t0 + Duration::from_secs(20));
    let (sent, _) = drain(&mut ep);
    assert!(!sent.iter().any(|l| l.contains("486")), "{sent:?}");
}

#[test]
fn reinvite_in_a_confirmed_dialog_gets_the_same_answer() {
    let mut ep = endpoint();
    let t0 = crate::testing::t0();
    ep.handle_packet(t0, utc(), udp(), &request("INVITE", "re1", 1, None, ""));
    let (_, events) = drain(&mut ep);
    let leg = incoming_leg(&events);
    ep.answer(t0, leg, Bytes::from_static(b"v=0\r\no=answer\r\n"));
    let tag = to_tag_of(&mut ep, leg);
    ep.handle_packet(t0, utc(), udp(), &request("ACK", "re1a", 1, Some(&tag), ""));
    drain(&mut ep);
    // A re-INVITE (session refresh / hold) is answered with our current SDP.
    ep.handle_packet(
        t0,
        utc(),
        udp(),
        &request("INVITE", "re2", 2, Some(&tag), ""),
    );
    let mut answer = None;
    while let Some(out) = ep.poll_output() {
        if let Output::Send { bytes, .. } = out {
            answer = Some(String::from_utf8_lossy(&bytes).to_string());
        }
    }
    let answer = answer.expect("an answer to the re-INVITE");
    assert!(answer.starts_with("SIP/2.0 200 OK"));
    assert!(answer.ends_with("v=0\r\no=answer\r\n"));
    // A re-INVITE with an older CSeq is out of order.
    ep.handle_packet(
        t0,
        utc(),
        udp(),
        &request("INVITE", "re3", 1, Some(&tag), ""),
    );
    assert_eq!(drain(&mut ep).0, vec!["SIP/2.0 500 Server Internal Error"]);
    // ACK for the re-INVITE's 2xx stops its retransmission.
    ep.handle_packet(t0, utc(), udp(), &request("ACK", "re2a", 2, Some(&tag), ""));
    let (_, events) = drain(&mut ep);
    assert!(matches!(events[..], [Event::LegConfirmed { .. }]));
    ep.handle_timeout(t0 + Duration::from_secs(5));
    let (sent, _) = drain(&mut ep);
    // (The 500 is retransmitted by its transaction until its ACK: that is Timer G, not a 2xx.)
    assert!(!sent.iter().any(|l| l.contains("200 OK")), "{sent:?}");
}

#[test]
fn reinvite_offers_go_to_the_call_layer() {
    let mut ep = endpoint();
    let t0 = crate::testing::t0();
    ep.handle_packet(t0, utc(), udp(), &request("INVITE", "ro1", 1, None, ""));
    let (_, events) = drain(&mut ep);
    let leg = incoming_leg(&events);
    ep.answer(t0, leg, Bytes::from_static(b"v=0\r\n"));
    let tag = to_tag_of(&mut ep, leg);
    ep.handle_packet(t0, utc(), udp(), &request("ACK", "ro1a", 1, Some(&tag), ""));
    drain(&mut ep);
    let hold = String::from_utf8(request(
        "INVITE",
        "ro2",
        2,
        Some(&tag),
        "Content-Type: application/sdp\r\n",
    ))
    .unwrap()
    .replace(
        "Content-Length: 0\r\n\r\n",
        "Content-Length: 12\r\n\r\na=sendonly\r\n",
    );
    ep.handle_packet(t0, utc(), udp(), hold.as_bytes());
    let (sent, events) = drain(&mut ep);
    assert!(sent.is_empty(), "{sent:?}");
    assert!(
        matches!(&events[..], [Event::Reoffer { offer, .. }] if offer.starts_with(b"a=sendonly"))
    );
    ep.answer_reinvite(t0, leg, Bytes::from_static(b"v=0\r\na=recvonly\r\n"));
    assert_eq!(drain(&mut ep).0, vec!["SIP/2.0 200 OK"]);
    // A second offer the call layer cannot use is refused; the dialog stays.
    ep.handle_packet(t0, utc(), udp(), &request("ACK", "ro2a", 2, Some(&tag), ""));
    let bad = hold
        .replace("z9hG4bKro2", "z9hG4bKro3")
        .replace("CSeq: 2 INVITE", "CSeq: 3 INVITE");
    ep.handle_packet(t0, utc(), udp(), bad.as_bytes());
    drain(&mut ep);
    ep.reject_reinvite(t0, leg, 488, "Not Acceptable Here");
    assert_eq!(drain(&mut ep).0, vec!["SIP/2.0 488 Not Acceptable Here"]);
    assert_eq!(ep.leg_count(), 1);
}

/// Regression (review of 832cd51): an UPDATE carrying an offer was answered with our old SDP,
/// ignoring the offer (a hold by UPDATE never reached the media).
#[test]
fn an_update_with_an_offer_is_answered_by_the_call_layer_without_an_ack() {
    let mut ep = endpoint();
    let t0 = crate::testing::t0();
    ep.handle_packet(t0, utc(), udp(), &request("INVITE", "up1", 1, None, ""));
    let (_, events) = drain(&mut ep);
    let leg = incoming_leg(&events);
    ep.answer(t0, leg, Bytes::from_static(b"v=0\r\n"));
    let tag = to_tag_of(&mut ep, leg);
    ep.handle_packet(t0, utc(), udp(), &request("ACK", "up1a", 1, Some(&tag), ""));
    drain(&mut ep);
    let update = String::from_utf8(request(
        "UPDATE",
        "up2",
        2,
        Some(&tag),
        "Content-Type: application/sdp\r\n",
    ))
    .unwrap()
    .replace(
        "Content-Length: 0\r\n\r\n",
        "Content-Length: 12\r\n\r\na=sendonly\r\n",
    );
    ep.handle_packet(t0, utc(), udp(), update.as_bytes());
    let (sent, events) = drain(&mut ep);
    assert!(
        sent.is_empty(),
        "no answer before the call layer's: {sent:?}"
    );
    assert!(
        matches!(&events[..], [Event::Reoffer { offer, .. }] if offer.starts_with(b"a=sendonly"))
    );
    // A second offer while the first is open: 491.
    let second = update
        .replace("z9hG4bKup2", "z9hG4bKup3")
        .replace("CSeq: 2 UPDATE", "CSeq: 3 UPDATE");
    ep.handle_packet(t0, utc(), udp(), second.as_bytes());
    assert_eq!(drain(&mut ep).0, vec!["SIP/2.0 491 Request Pending"]);
    ep.answer_reinvite(t0, leg, Bytes::from_static(b"v=0\r\na=recvonly\r\n"));
    assert_eq!(drain(&mut ep).0, vec!["SIP/2.0 200 OK"]);
    // No ACK follows a 200 to UPDATE: nothing is retransmitted later.
    let later = t0 + std::time::Duration::from_secs(5);
    ep.handle_timeout(later);
    assert!(drain(&mut ep).0.is_empty());
}

/// A request of the confirmed call-1 dialog with `body` of `content_type` (none when `None`).
fn with_body(
    method: &str,
    branch: &str,
    cseq: u32,
    tag: &str,
    content_type: Option<&str>,
    body: &str,
) -> Vec<u8> {
    let extra = content_type
        .map(|t| format!("Content-Type: {t}\r\n"))
        .unwrap_or_default();
    String::from_utf8(request(method, branch, cseq, Some(tag), &extra))
        .unwrap()
        .replace(
            "Content-Length: 0\r\n\r\n",
            &format!("Content-Length: {}\r\n\r\n{body}", body.len()),
        )
        .into_bytes()
}

#[test]
fn info_key_presses_reach_the_call_layer_and_bad_bodies_are_refused() {
    let mut ep = endpoint();
    let t0 = crate::testing::t0();
    ep.handle_packet(t0, utc(), udp(), &request("INVITE", "in1", 1, None, ""));
    let (_, events) = drain(&mut ep);
    let leg = incoming_leg(&events);
    ep.answer(t0, leg, Bytes::from_static(b"v=0\r\n"));
    let tag = to_tag_of(&mut ep, leg);
    ep.handle_packet(t0, utc(), udp(), &request("ACK", "in1a", 1, Some(&tag), ""));
    drain(&mut ep);

    let relay = Some("application/dtmf-relay");
    let cases: &[(Option<&str>, &str, &str, Option<char>)] = &[
        (
            relay,
            "Signal=5\r\nDuration=160\r\n",
            "SIP/2.0 200 OK",
            Some('5'),
        ),
        (Some("application/dtmf"), "#", "SIP/2.0 200 OK", Some('#')),
        (None, "", "SIP/2.0 200 OK", None),
        (relay, "Signal=X\r\n", "SIP/2.0 400 Bad DTMF Body", None),
        (
            Some("application/xml"),
            "<x/>",
            "SIP/2.0 415 Unsupported Media Type",
            None,
        ),
    ];
    for (i, (content_type, body, status, digit)) in cases.iter().enumerate() {
        let cseq = 2 + i as u32;
        let info = with_body("INFO", &format!("info{i}"), cseq, &tag, *content_type, body);
        ep.handle_packet(t0, utc(), udp(), &info);
        let (sent, events) = drain(&mut ep);
        assert_eq!(sent, vec![status.to_string()], "{body:?}");
        let got: Vec<char> = events
            .iter()
            .filter_map(|e| match e {
                Event::InfoDigit { leg: l, digit } if *l == leg => Some(*digit),
                _ => None,
            })
            .collect();
        assert_eq!(got, digit.iter().copied().collect::<Vec<_>>(), "{body:?}");
    }
    assert_eq!(ep.leg_count(), 1, "a refused INFO leaves the call up");
}

/// Everything the endpoint sent, whole.
fn drain_messages(ep: &mut Endpoint) -> (Vec<String>, Vec<Event>) {
    let (mut sent, mut events) = (Vec::new(), Vec::new());
    while let Some(out) = ep.poll_output() {
        match out {
            Output::Send { bytes, .. } => sent.push(String::from_utf8_lossy(&bytes).to_string()),
            Output::Event(e) => events.push(e),
        }
    }
    (sent, events)
}

#[test]
fn a_refer_goes_to_the_call_layer_and_its_notifys_report_the_transfer() {
    let mut ep = endpoint();
    let t0 = crate::testing::t0();
    ep.handle_packet(t0, utc(), udp(), &request("INVITE", "in1", 1, None, ""));
    let leg = incoming_leg(&drain(&mut ep).1);
    // Before the call is up: refused.
    let early = request(
        "REFER",
        "r0",
        2,
        Some(&to_tag_of(&mut ep, leg)),
        "Refer-To: <sip:102@127.0.0.1>\r\n",
    );
    ep.handle_packet(t0, utc(), udp(), &early);
    assert_eq!(drain(&mut ep).0, vec!["SIP/2.0 403 Call Not Established"]);
    ep.answer(t0, leg, Bytes::from_static(b"v=0\r\n"));
    let tag = to_tag_of(&mut ep, leg);
    ep.handle_packet(t0, utc(), udp(), &request("ACK", "in1a", 1, Some(&tag), ""));
    drain(&mut ep);

    let refusals = [
        ("", "SIP/2.0 400 Missing Refer-To"),
        (
            "Refer-To: <http://example.com/>\r\n",
            "SIP/2.0 400 Bad Refer-To",
        ),
        (
            "Refer-To: <sip:1@h>\r\nRefer-To: <sip:2@h>\r\n",
            "SIP/2.0 400 Bad Refer-To",
        ),
        (
            "r: <sip:1@h?Replaces=x%3Bto-tag%3D1>\r\n",
            "SIP/2.0 400 Bad Replaces",
        ),
    ];
    for (i, (extra, status)) in refusals.iter().enumerate() {
        let refer = request("REFER", &format!("bad{i}"), 3 + i as u32, Some(&tag), extra);
        ep.handle_packet(t0, utc(), udp(), &refer);
        let (sent, events) = drain(&mut ep);
        assert_eq!(sent, vec![status.to_string()], "{extra:?}");
        assert!(events.is_empty(), "{extra:?}");
    }
    // The dialog's ids from another host (someone who saw them on the wire): refused.
    let elsewhere = Peer {
        addr: "127.0.0.9:6000".parse().unwrap(),
        ..udp()
    };
    let forged = request(
        "REFER",
        "forged",
        9,
        Some(&tag),
        "Refer-To: <sip:102@h>\r\n",
    );
    ep.handle_packet(t0, utc(), elsewhere, &forged);
    let (sent, events) = drain(&mut ep);
    assert_eq!(sent, vec!["SIP/2.0 403 Forbidden".to_string()]);
    assert!(events.is_empty());

    // A good one (compact `r:`): the call layer hears it; a second waits with 491.
    let refer = request(
        "REFER",
        "ok1",
        10,
        Some(&tag),
        "r: \"Sales\" <sip:102@127.0.0.1>\r\n",
    );
    ep.handle_packet(t0, utc(), udp(), &refer);
    let (sent, events) = drain(&mut ep);
    assert!(sent.is_empty(), "{sent:?}");
    let to = events
        .iter()
        .find_map(|e| match e {
            Event::Refer {
                leg: l, refer_to, ..
            } if *l == leg => Some(refer_to.clone()),
            _ => None,
        })
        .expect("Event::Refer");
    assert_eq!(to.user.as_deref(), Some("102"));
    ep.handle_packet(
        t0,
        utc(),
        udp(),
        &request("REFER", "ok2", 11, Some(&tag), "r: <sip:103@h>\r\n"),
    );
    assert_eq!(drain(&mut ep).0, vec!["SIP/2.0 491 Request Pending"]);

    // Accepted: 202, then NOTIFY 100 (active) and, when it is done, NOTIFY 200 (terminated).
    ep.accept_refer(t0, leg);
    ep.notify_refer(t0, leg, 200, "OK");
    let (sent, _) = drain_messages(&mut ep);
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert!(sent[0].starts_with("SIP/2.0 202 Accepted"), "{}", sent[0]);
    for (notify, frag, state) in [
        (
            &sent[1],
            "SIP/2.0 100 Trying\r\n",
            "Subscription-State: active;expires=60",
        ),
        (
            &sent[2],
            "SIP/2.0 200 OK\r\n",
            "Subscription-State: terminated;reason=noresource",
        ),
    ] {
        assert!(
            notify.starts_with("NOTIFY sip:caller@127.0.0.1:6000 SIP/2.0"),
            "{notify}"
        );
        assert!(notify.contains("\r\nEvent: refer\r\n"), "{notify}");
        assert!(notify.contains(state), "{notify}");
        assert!(
            notify.contains("Content-Type: message/sipfrag;version=2.0"),
            "{notify}"
        );
        assert!(notify.ends_with(frag), "{notify}");
    }
    // Nothing more to say once terminated; the NOTIFY's 200 does not end the call.
    ep.notify_refer(t0, leg, 503, "Service Unavailable");
    assert!(drain(&mut ep).0.is_empty());
    let branch = sent[2]
        .split("branch=")
        .nth(1)
        .and_then(|b| b.split([';', '\r']).next())
        .expect("branch")
        .to_string();
    let ok = format!(
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch={branch}\r\nFrom: <sip:100@127.0.0.1>;tag={tag}\r\n\
         To: <sip:caller@127.0.0.1>;tag=caller1\r\nCall-ID: call-1\r\nCSeq: 3 NOTIFY\r\nContent-Length: 0\r\n\r\n"
    );
    ep.handle_packet(t0, utc(), udp(), ok.as_bytes());
    drain(&mut ep);
    assert_eq!(ep.leg_count(), 1, "the call is still up");

    // A later REFER in the dialog: its NOTIFYs carry its CSeq as the event id (RFC 3515 §2.4.6).
    ep.handle_packet(
        t0,
        utc(),
        udp(),
        &request("REFER", "ok3", 12, Some(&tag), "r: <sip:103@h>\r\n"),
    );
    drain(&mut ep);
    ep.accept_refer(t0, leg);
    let (sent, _) = drain_messages(&mut ep);
    assert!(
        sent[1].contains("\r\nEvent: refer;id=12\r\n"),
        "{}",
        sent[1]
    );
    // Refused by the call layer: the status goes back on the REFER.
    ep.handle_packet(
        t0,
        utc(),
        udp(),
        &request("REFER", "ok4", 13, Some(&tag), "r: <sip:999@h>\r\n"),
    );
    drain(&mut ep);
    ep.reject_refer(t0, leg, 404, "Not Found");
    assert_eq!(drain(&mut ep).0, vec!["SIP/2.0 404 Not Found"]);
}

#[test]
fn a_replaces_finds_a_confirmed_dialog_by_its_call_id_and_both_tags_in_either_order() {
    let mut ep = endpoint();
    let t0 = crate::testing::t0();
    ep.handle_packet(t0, utc(), udp(), &request("INVITE", "rp1", 1, None, ""));
    let leg = incoming_leg(&drain(&mut ep).1);
    let ours = to_tag_of(&mut ep, leg);
    // Early: not a dialog a transfer may replace.
    assert_eq!(ep.leg_of_dialog("call-1", &ours, "caller1"), None);
    ep.answer(t0, leg, Bytes::from_static(b"v=0\r\n"));
    ep.handle_packet(
        t0,
        utc(),
        udp(),
        &request("ACK", "rp1a", 1, Some(&ours), ""),
    );
    drain(&mut ep);
    // As the phone that placed the call names it (to-tag ours), and the other way round.
    assert_eq!(ep.leg_of_dialog("call-1", &ours, "caller1"), Some(leg));
    assert_eq!(ep.leg_of_dialog("call-1", "caller1", &ours), Some(leg));
    // Any part wrong: no dialog.
    assert_eq!(ep.leg_of_dialog("call-2", &ours, "caller1"), None);
    assert_eq!(ep.leg_of_dialog("call-1", &ours, "someone"), None);
    assert_eq!(ep.leg_of_dialog("call-1", &ours, &ours), None);
}
