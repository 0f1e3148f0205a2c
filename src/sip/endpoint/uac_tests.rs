//! Outbound-call tests: a leg we dial, driven through the sans-IO core in virtual time with the
//! callee's responses written by hand.

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

fn phone() -> Peer {
    Peer {
        transport: TransportKind::Udp,
        addr: "127.0.0.1:7000".parse().unwrap(),
        conn: None,
    }
}

fn utc() -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap()
}

fn target() -> OutboundTarget {
    OutboundTarget {
        uri: "sip:101@127.0.0.1:7000".into(),
        peer: phone(),
        from_display: Some("Caller".into()),
        from_user: "5551234".into(),
        sdp: Bytes::from_static(b"v=0\r\n"),
        login: None,
    }
}

/// A trunk's challenge to `request`: `status` 401 or 407 with its digest header.
fn challenge(request: &str, status: u16, nonce: &str, stale: bool) -> Vec<u8> {
    let (reason, header_name) = match status {
        401 => ("Unauthorized", "WWW-Authenticate"),
        _ => ("Proxy Authentication Required", "Proxy-Authenticate"),
    };
    let value = crate::sip::auth::Challenge {
        realm: "carrier".into(),
        nonce: nonce.into(),
        opaque: Some("op1".into()),
        algorithm: crate::sip::auth::Algorithm::Md5,
        qop_auth: true,
        stale,
    }
    .to_header_value();
    let mut bytes = response(request, status, reason, "");
    let at = bytes
        .windows(16)
        .position(|w| w == b"Content-Length: ")
        .unwrap();
    bytes.splice(at..at, format!("{header_name}: {value}\r\n").into_bytes());
    bytes
}

fn trunk_target() -> OutboundTarget {
    OutboundTarget {
        uri: "sip:380441234567@127.0.0.1:7000".into(),
        login: Some(DigestLogin {
            username: "acme".into(),
            password: "secret".into(),
            realm: None,
        }),
        ..target()
    }
}

/// The INVITE among what was sent.
fn sent_invite(sent: &[String]) -> String {
    sent.iter()
        .find(|m| m.starts_with("INVITE "))
        .unwrap_or_else(|| panic!("no INVITE in {sent:?}"))
        .clone()
}

/// Every message sent (whole text) and every event.
fn drain(ep: &mut Endpoint) -> (Vec<String>, Vec<Event>) {
    let (mut sent, mut events) = (Vec::new(), Vec::new());
    while let Some(out) = ep.poll_output() {
        match out {
            Output::Send { peer, bytes } => {
                assert_eq!(
                    peer.addr,
                    phone().addr,
                    "everything goes to the binding's peer"
                );
                sent.push(String::from_utf8_lossy(&bytes).to_string());
            }
            Output::Event(e) => events.push(e),
        }
    }
    (sent, events)
}

fn first_lines(sent: &[String]) -> Vec<&str> {
    sent.iter()
        .map(|m| m.lines().next().unwrap_or(""))
        .collect()
}

fn header<'a>(message: &'a str, name: &str) -> &'a str {
    message
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no {name} in {message}"))
}

/// The callee's response to `request` (the INVITE or a CANCEL), with its To tag.
fn response(request: &str, status: u16, reason: &str, body: &str) -> Vec<u8> {
    let to = header(request, "To");
    let to = if status == 100 || to.contains(";tag=") {
        to.to_string()
    } else {
        format!("{to};tag=phone1")
    };
    let contact = if (200..300).contains(&status) {
        "Contact: <sip:101@127.0.0.1:7000;ob>\r\nContent-Type: application/sdp\r\n"
    } else {
        ""
    };
    format!(
        "SIP/2.0 {status} {reason}\r\nVia: {}\r\nFrom: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\n\
         {contact}Content-Length: {}\r\n\r\n{body}",
        header(request, "Via"),
        header(request, "From"),
        header(request, "Call-ID"),
        header(request, "CSeq"),
        body.len()
    )
    .into_bytes()
}

/// A request from the phone inside the dialog the INVITE created.
fn in_dialog(invite: &str, method: &str, cseq: u32) -> Vec<u8> {
    let from_tag = header(invite, "From").rsplit_once("tag=").unwrap().1;
    format!(
        "{method} sip:openline@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:7000;branch=z9hG4bKph{cseq}\r\n\
         From: <sip:101@127.0.0.1>;tag=phone1\r\nTo: <sip:5551234@127.0.0.1>;tag={from_tag}\r\n\
         Call-ID: {}\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        header(invite, "Call-ID"),
    )
    .into_bytes()
}

fn feed(ep: &mut Endpoint, now: Instant, bytes: &[u8]) -> (Vec<String>, Vec<Event>) {
    ep.handle_packet(now, utc(), phone(), bytes);
    drain(ep)
}

fn ended(events: &[Event]) -> Option<EndReason> {
    events.iter().find_map(|e| match e {
        Event::LegEnded { reason, .. } => Some(*reason),
        _ => None,
    })
}

/// Dials and returns the leg and the INVITE as sent.
fn dial(ep: &mut Endpoint, now: Instant) -> (LegId, String) {
    let leg = ep.dial(now, target());
    let (sent, events) = drain(ep);
    assert!(events.is_empty());
    assert_eq!(
        first_lines(&sent),
        ["INVITE sip:101@127.0.0.1:7000 SIP/2.0"]
    );
    (leg, sent[0].clone())
}

#[test]
fn invite_ringing_answer_and_ack() {
    let mut ep = endpoint();
    let t0 = crate::testing::t0();
    let (leg, invite) = dial(&mut ep, t0);
    assert!(header(&invite, "Via").starts_with("SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK"));
    assert_eq!(header(&invite, "Contact"), "<sip:openline@127.0.0.1:5060>");
    assert!(header(&invite, "From").starts_with("\"Caller\" <sip:5551234@127.0.0.1>;tag="));
    assert_eq!(header(&invite, "CSeq"), "1 INVITE");
    assert_eq!(header(&invite, "Content-Type"), "application/sdp");
    assert!(invite.ends_with("\r\n\r\nv=0\r\n"));

    // Timer A retransmits the INVITE until something is heard.
    ep.handle_timeout(t0 + Duration::from_millis(500));
    assert_eq!(
        first_lines(&drain(&mut ep).0),
        ["INVITE sip:101@127.0.0.1:7000 SIP/2.0"]
    );
    let (sent, events) = feed(&mut ep, t0, &response(&invite, 100, "Trying", ""));
    assert!(sent.is_empty() && events.is_empty(), "100 is not passed up");
    let (_, events) = feed(&mut ep, t0, &response(&invite, 180, "Ringing", ""));
    assert!(matches!(
        events[..],
        [Event::Outbound {
            update: OutboundUpdate::Progress(180),
            ..
        }]
    ));
    ep.handle_timeout(t0 + Duration::from_secs(40));
    assert!(
        drain(&mut ep).0.is_empty(),
        "no retransmission and no Timer B once ringing"
    );

    let ok = response(&invite, 200, "OK", "v=0\r\no=phone\r\n");
    let (sent, events) = feed(&mut ep, t0, &ok);
    match &events[..] {
        [
            Event::Outbound {
                leg: l,
                update: OutboundUpdate::Answered { sdp },
            },
        ] => {
            assert_eq!(*l, leg);
            assert_eq!(&sdp[..], b"v=0\r\no=phone\r\n");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        first_lines(&sent),
        ["ACK sip:101@127.0.0.1:7000;ob SIP/2.0"],
        "to the Contact"
    );
    let ack = &sent[0];
    assert_eq!(header(ack, "CSeq"), "1 ACK");
    assert!(header(ack, "To").ends_with(";tag=phone1"));
    assert_ne!(
        header(ack, "Via"),
        header(&invite, "Via"),
        "the 2xx ACK is a new transaction"
    );
    // A retransmitted 2xx gets the same ACK again, and no second answer.
    let (again, events) = feed(&mut ep, t0, &ok);
    assert_eq!(again, sent);
    assert!(events.is_empty());
}

#[test]
fn busy_ends_the_leg_and_the_transaction_acks_it() {
    let mut ep = endpoint();
    let t0 = crate::testing::t0();
    let (leg, invite) = dial(&mut ep, t0);
    let busy = response(&invite, 486, "Busy Here", "");
    let (sent, events) = feed(&mut ep, t0, &busy);
    assert_eq!(first_lines(&sent), ["ACK sip:101@127.0.0.1:7000 SIP/2.0"]);
    assert_eq!(
        header(&sent[0], "Via"),
        header(&invite, "Via"),
        "§17.1.1.3: same branch"
    );
    assert!(header(&sent[0], "To").ends_with(";tag=phone1"));
    assert!(matches!(
        events[..],
        [Event::LegEnded { leg: l, reason: EndReason::Rejected(486) }] if l == leg
    ));
    assert_eq!(ep.leg_count(), 0);
    // The retransmitted 486 is ACKed by the transaction (Timer D), not reported again.
    let (sent, events) = feed(&mut ep, t0, &busy);
    assert_eq!(first_lines(&sent), ["ACK sip:101@127.0.0.1:7000 SIP/2.0"]);
    assert!(events.is_empty());
    ep.handle_timeout(t0 + Duration::from_secs(33));
    assert_eq!(ep.transaction_count(), 0);
}

#[test]
fn no_answer_cancel_waits_for_a_provisional_then_487() {
    let mut ep = endpoint();
    let t0 = crate::testing::t0();
    let (leg, invite) = dial(&mut ep, t0);
    // §9.1: no CANCEL before a provisional has arrived.
    ep.cancel(t0, leg);
    assert!(drain(&mut ep).0.is_empty());
    let (sent, _) = feed(&mut ep, t0, &response(&invite, 180, "Ringing", ""));
    assert_eq!(
        first_lines(&sent),
        ["CANCEL sip:101@127.0.0.1:7000 SIP/2.0"]
    );
    let cancel = &sent[0];
    assert_eq!(header(cancel, "Via"), header(&invite, "Via"));
    assert_eq!(header(cancel, "CSeq"), "1 CANCEL");
    assert_eq!(header(cancel, "To"), header(&invite, "To"));
    let (_, events) = feed(&mut ep, t0, &response(cancel, 200, "OK", ""));
    assert!(ended(&events).is_none());
    let (sent, events) = feed(
        &mut ep,
        t0,
        &response(&invite, 487, "Request Terminated", ""),
    );
    assert_eq!(first_lines(&sent), ["ACK sip:101@127.0.0.1:7000 SIP/2.0"]);
    assert_eq!(ended(&events), Some(EndReason::Cancelled));
    assert_eq!(ep.leg_count(), 0);
}

#[test]
fn a_cancel_for_a_ring_answered_elsewhere_carries_the_reason() {
    let mut ep = endpoint();
    let t0 = crate::testing::t0();
    let (leg, invite) = dial(&mut ep, t0);
    ep.cancel_because(t0, leg, Some(REASON_COMPLETED_ELSEWHERE));
    let (sent, _) = feed(&mut ep, t0, &response(&invite, 180, "Ringing", ""));
    assert_eq!(
        first_lines(&sent),
        ["CANCEL sip:101@127.0.0.1:7000 SIP/2.0"]
    );
    assert_eq!(
        header(&sent[0], "Reason"),
        "SIP;cause=200;text=\"Call completed elsewhere\""
    );
    // A plain CANCEL has none.
    let (leg, invite) = dial(&mut ep, t0);
    feed(&mut ep, t0, &response(&invite, 180, "Ringing", ""));
    ep.cancel(t0, leg);
    let (sent, _) = drain(&mut ep);
    assert!(!sent[0].contains("Reason:"));
}

#[test]
fn hangup_of_a_ringing_outbound_leg_cancels_it() {
    let mut ep = endpoint();
    let t0 = crate::testing::t0();
    let (leg, invite) = dial(&mut ep, t0);
    feed(&mut ep, t0, &response(&invite, 183, "Session Progress", ""));
    ep.hangup(t0, leg);
    assert_eq!(
        first_lines(&drain(&mut ep).0),
        ["CANCEL sip:101@127.0.0.1:7000 SIP/2.0"]
    );
    // The phone never answers the CANCEL's INVITE: after 64·T1 the leg is given up.
    ep.handle_timeout(t0 + Duration::from_secs(33));
    let (_, events) = drain(&mut ep);
    assert_eq!(ended(&events), Some(EndReason::Cancelled));
    assert_eq!(ep.leg_count(), 0);
}

#[test]
fn a_200_crossing_the_cancel_is_acked_and_byed() {
    let mut ep = endpoint();
    let t0 = crate::testing::t0();
    let (leg, invite) = dial(&mut ep, t0);
    feed(&mut ep, t0, &response(&invite, 180, "Ringing", ""));
    ep.cancel(t0, leg);
    drain(&mut ep);
    let (sent, events) = feed(&mut ep, t0, &response(&invite, 200, "OK", "v=0\r\n"));
    assert_eq!(
        first_lines(&sent),
        [
            "ACK sip:101@127.0.0.1:7000;ob SIP/2.0",
            "BYE sip:101@127.0.0.1:7000;ob SIP/2.0"
        ]
    );
    assert_eq!(header(&sent[1], "CSeq"), "2 BYE");
    assert!(header(&sent[1], "To").ends_with(";tag=phone1"));
    assert!(
        !events.iter().any(|e| matches!(e, Event::Outbound { .. })),
        "never reported as answered"
    );
    assert_eq!(ended(&events), Some(EndReason::Cancelled));
    let (_, events) = feed(&mut ep, t0, &response(&sent[1], 200, "OK", ""));
    assert!(events.is_empty(), "the end was reported once");
    assert_eq!(ep.leg_count(), 0);
}

#[test]
fn bye_in_both_directions() {
    let mut ep = endpoint();
    let t0 = crate::testing::t0();
    // The operator hangs up.
    let (leg, invite) = dial(&mut ep, t0);
    feed(&mut ep, t0, &response(&invite, 200, "OK", "v=0\r\n"));
    let (sent, events) = feed(&mut ep, t0, &in_dialog(&invite, "BYE", 1));
    assert_eq!(first_lines(&sent), ["SIP/2.0 200 OK"]);
    assert!(matches!(
        events[..],
        [Event::LegEnded { leg: l, reason: EndReason::RemoteBye }] if l == leg
    ));
    // We hang up.
    let (leg, invite) = dial(&mut ep, t0);
    feed(&mut ep, t0, &response(&invite, 200, "OK", "v=0\r\n"));
    ep.hangup(t0, leg);
    let (sent, _) = drain(&mut ep);
    assert_eq!(
        first_lines(&sent),
        ["BYE sip:101@127.0.0.1:7000;ob SIP/2.0"]
    );
    let (_, events) = feed(&mut ep, t0, &response(&sent[0], 200, "OK", ""));
    assert_eq!(ended(&events), Some(EndReason::LocalBye));
    assert_eq!(ep.leg_count(), 0);
}

#[test]
fn nobody_home_times_out_with_timer_b() {
    let mut ep = endpoint();
    let t0 = crate::testing::t0();
    let (leg, _) = dial(&mut ep, t0);
    ep.handle_timeout(t0 + Duration::from_secs(31));
    let (sent, events) = drain(&mut ep);
    assert!(sent.iter().all(|m| m.starts_with("INVITE ")));
    assert!(ended(&events).is_none());
    ep.handle_timeout(t0 + Duration::from_secs(32));
    let (_, events) = drain(&mut ep);
    assert!(matches!(
        events[..],
        [Event::LegEnded { leg: l, reason: EndReason::Timeout }] if l == leg
    ));
    assert_eq!((ep.leg_count(), ep.transaction_count()), (0, 0));
}

#[test]
fn a_407_is_answered_once_with_credentials_in_the_same_dialog() {
    let mut ep = endpoint();
    let t0 = crate::testing::t0();
    let leg = ep.dial(t0, trunk_target());
    let (sent, _) = drain(&mut ep);
    let first = sent_invite(&sent);
    assert!(!first.contains("Authorization"), "{first}");

    let (sent, events) = feed(&mut ep, t0, &challenge(&first, 407, "n1", false));
    assert!(ended(&events).is_none(), "{events:?}");
    let ack = sent
        .iter()
        .find(|m| m.starts_with("ACK "))
        .expect("the 407 is ACKed");
    assert_eq!(header(ack, "CSeq"), "1 ACK");
    assert_eq!(header(ack, "Via"), header(&first, "Via"), "§17.1.1.3");
    assert!(header(ack, "To").ends_with(";tag=phone1"), "{ack}");
    let second = sent_invite(&sent);
    assert_eq!(header(&second, "CSeq"), "2 INVITE");
    assert_eq!(header(&second, "Call-ID"), header(&first, "Call-ID"));
    assert_eq!(header(&second, "From"), header(&first, "From"));
    assert_ne!(
        header(&second, "Via"),
        header(&first, "Via"),
        "a new branch"
    );
    let creds =
        crate::sip::auth::Credentials::parse(header(&second, "Proxy-Authorization")).unwrap();
    assert_eq!(
        (creds.username.as_str(), creds.realm.as_str()),
        ("acme", "carrier")
    );
    assert_eq!(creds.uri, "sip:380441234567@127.0.0.1:7000");
    assert_eq!(creds.opaque.as_deref(), Some("op1"));
    let ha1 = crate::sip::auth::ha1(
        crate::sip::auth::Algorithm::Md5,
        "acme",
        "carrier",
        "secret",
    );
    let expected = crate::sip::auth::response(
        crate::sip::auth::Algorithm::Md5,
        &ha1,
        "INVITE",
        &creds.uri,
        "n1",
        Some((creds.nc.unwrap(), creds.cnonce.as_deref().unwrap())),
    );
    assert_eq!(creds.response, expected, "the digest checks out");

    // A retransmission of the old challenge is absorbed (re-ACKed), not answered again.
    let (sent, _) = feed(&mut ep, t0, &challenge(&first, 407, "n1", false));
    assert_eq!(
        first_lines(&sent),
        ["ACK sip:380441234567@127.0.0.1:7000 SIP/2.0"]
    );

    // The answer: the ACK continues the new CSeq, and BYE follows it.
    let (sent, events) = feed(&mut ep, t0, &response(&second, 200, "OK", "v=0\r\n"));
    assert!(matches!(
        events.as_slice(),
        [Event::Outbound {
            update: OutboundUpdate::Answered { .. },
            ..
        }]
    ));
    assert_eq!(header(&sent[0], "CSeq"), "2 ACK");
    ep.hangup(t0, leg);
    let (sent, _) = drain(&mut ep);
    assert_eq!(header(&sent[0], "CSeq"), "3 BYE");
}

#[test]
fn wrong_credentials_end_the_leg_at_the_second_challenge_unless_stale() {
    let mut ep = endpoint();
    let t0 = crate::testing::t0();
    let leg = ep.dial(t0, trunk_target());
    let (sent, _) = drain(&mut ep);
    let first = sent_invite(&sent);
    let (sent, _) = feed(&mut ep, t0, &challenge(&first, 401, "n1", false));
    let second = sent_invite(&sent);
    assert!(header(&second, "Authorization").starts_with("Digest "));

    // The nonce went stale: answered again with the new one.
    let (sent, events) = feed(&mut ep, t0, &challenge(&second, 401, "n2", true));
    assert!(ended(&events).is_none());
    let third = sent_invite(&sent);
    assert_eq!(header(&third, "CSeq"), "3 INVITE");
    assert!(header(&third, "Authorization").contains("nonce=\"n2\""));

    // A plain challenge again: the credentials are wrong, the leg ends.
    let (sent, events) = feed(&mut ep, t0, &challenge(&third, 401, "n3", false));
    assert!(!sent.iter().any(|m| m.starts_with("INVITE ")), "{sent:?}");
    assert_eq!(ended(&events), Some(EndReason::Rejected(401)));
    assert!(!ep.legs.contains_key(&leg));
}

#[test]
fn without_an_account_a_challenge_is_a_refusal() {
    let mut ep = endpoint();
    let t0 = crate::testing::t0();
    ep.dial(t0, target());
    let (sent, _) = drain(&mut ep);
    let (sent, events) = feed(
        &mut ep,
        t0,
        &challenge(&sent_invite(&sent), 407, "n1", false),
    );
    assert!(!sent.iter().any(|m| m.starts_with("INVITE ")));
    assert_eq!(ended(&events), Some(EndReason::Rejected(407)));
}

#[test]
fn a_cancel_while_challenged_is_not_followed_by_a_new_invite() {
    let mut ep = endpoint();
    let t0 = crate::testing::t0();
    let leg = ep.dial(t0, trunk_target());
    let (sent, _) = drain(&mut ep);
    ep.cancel(t0, leg); // before any provisional: the CANCEL waits
    let (sent, events) = feed(
        &mut ep,
        t0,
        &challenge(&sent_invite(&sent), 407, "n1", false),
    );
    assert!(!sent.iter().any(|m| m.starts_with("INVITE ")));
    assert_eq!(ended(&events), Some(EndReason::Cancelled));
}

#[test]
fn a_cancel_goes_after_100_trying_too() {
    let mut ep = endpoint();
    let t0 = crate::testing::t0();
    let (leg, invite) = dial(&mut ep, t0);
    let (_, events) = feed(&mut ep, t0, &response(&invite, 100, "Trying", ""));
    assert!(
        events.is_empty(),
        "100 is not progress for the call layer: {events:?}"
    );
    ep.cancel(t0, leg);
    let (sent, _) = drain(&mut ep);
    assert_eq!(
        first_lines(&sent),
        ["CANCEL sip:101@127.0.0.1:7000 SIP/2.0"]
    );
}

#[test]
fn a_cancel_after_a_challenge_belongs_to_the_repeated_invite() {
    let mut ep = endpoint();
    let t0 = crate::testing::t0();
    let leg = ep.dial(t0, trunk_target());
    let (sent, _) = drain(&mut ep);
    let (sent, _) = feed(
        &mut ep,
        t0,
        &challenge(&sent_invite(&sent), 407, "n1", false),
    );
    let second = sent_invite(&sent);
    let (_, events) = feed(&mut ep, t0, &response(&second, 180, "Ringing", ""));
    assert!(matches!(
        events.as_slice(),
        [Event::Outbound {
            update: OutboundUpdate::Progress(180),
            ..
        }]
    ));
    ep.cancel(t0, leg);
    let (sent, _) = drain(&mut ep);
    assert_eq!(
        first_lines(&sent),
        ["CANCEL sip:380441234567@127.0.0.1:7000 SIP/2.0"]
    );
    assert_eq!(header(&sent[0], "Via"), header(&second, "Via"));
    assert_eq!(header(&sent[0], "CSeq"), "2 CANCEL");
    let (sent, events) = feed(
        &mut ep,
        t0,
        &response(&second, 487, "Request Terminated", ""),
    );
    assert_eq!(header(&sent[0], "CSeq"), "2 ACK");
    assert_eq!(ended(&events), Some(EndReason::Cancelled));
}

#[test]
fn over_tcp_a_challenge_is_answered_and_a_487_after_cancel_is_a_cancel() {
    let tcp = Peer {
        transport: TransportKind::Tcp,
        ..phone()
    };
    let mut ep = endpoint();
    let t0 = crate::testing::t0();
    let leg = ep.dial(
        t0,
        OutboundTarget {
            peer: tcp,
            ..trunk_target()
        },
    );
    let (sent, _) = drain(&mut ep);
    ep.handle_packet(
        t0,
        utc(),
        tcp,
        &challenge(&sent_invite(&sent), 401, "n1", false),
    );
    let (sent, events) = drain(&mut ep);
    assert!(ended(&events).is_none(), "{events:?}");
    let second = sent_invite(&sent);
    assert!(header(&second, "Authorization").starts_with("Digest "));
    ep.handle_packet(t0, utc(), tcp, &response(&second, 180, "Ringing", ""));
    ep.cancel(t0, leg);
    let (sent, _) = drain(&mut ep);
    assert!(first_lines(&sent).contains(&"CANCEL sip:380441234567@127.0.0.1:7000 SIP/2.0"));
    ep.handle_packet(
        t0,
        utc(),
        tcp,
        &response(&second, 487, "Request Terminated", ""),
    );
    let (_, events) = drain(&mut ep);
    assert_eq!(ended(&events), Some(EndReason::Cancelled));
}

#[test]
fn a_challenge_to_our_bye_is_answered_once_on_a_trunk_leg() {
    let mut ep = endpoint();
    let t0 = crate::testing::t0();
    let leg = ep.dial(t0, trunk_target());
    let (sent, _) = drain(&mut ep);
    let invite = sent_invite(&sent);
    feed(&mut ep, t0, &response(&invite, 200, "OK", "v=0\r\n"));
    ep.hangup(t0, leg);
    let (sent, _) = drain(&mut ep);
    let bye = sent[0].clone();
    assert_eq!(header(&bye, "CSeq"), "2 BYE");

    let (sent, events) = feed(&mut ep, t0, &challenge(&bye, 407, "b1", false));
    assert!(events.is_empty(), "the leg is not over yet: {events:?}");
    let again = sent
        .iter()
        .find(|m| m.starts_with("BYE "))
        .expect("a second BYE");
    assert_eq!(header(again, "CSeq"), "3 BYE");
    let creds = crate::sip::auth::Credentials::parse(header(again, "Proxy-Authorization")).unwrap();
    assert_eq!(
        (creds.username.as_str(), creds.uri.as_str()),
        ("acme", "sip:101@127.0.0.1:7000;ob")
    );

    // A second challenge is not answered again: the leg ends.
    let (sent, events) = feed(&mut ep, t0, &challenge(again, 407, "b2", false));
    assert!(!sent.iter().any(|m| m.starts_with("BYE ")), "{sent:?}");
    assert_eq!(ended(&events), Some(EndReason::LocalBye));
}

#[test]
fn a_challenge_from_another_realm_than_the_trunks_is_not_answered() {
    let mut ep = endpoint();
    let t0 = crate::testing::t0();
    let mut target = trunk_target();
    if let Some(login) = target.login.as_mut() {
        login.realm = Some("the-carrier".into()); // the challenges here say "carrier"
    }
    ep.dial(t0, target);
    let (sent, _) = drain(&mut ep);
    let (sent, events) = feed(
        &mut ep,
        t0,
        &challenge(&sent_invite(&sent), 401, "n1", false),
    );
    assert!(!sent.iter().any(|m| m.starts_with("INVITE ")), "{sent:?}");
    assert_eq!(ended(&events), Some(EndReason::Rejected(401)));
}
