//! Registrar tests: digest flows, enumeration resistance, throttling and binding rules, in virtual time.

use super::*;
use crate::sip::message::{Message, parse};
use crate::sip::transport::TransportKind;

const SECRET: [u8; 32] = [7; 32];

fn registrar() -> Registrar {
    let mut r = Registrar::new(RegistrarConfig::default(), SECRET);
    r.set_operator(
        "101",
        OperatorSecret {
            ha1_md5: auth::ha1(auth::Algorithm::Md5, "101", "openline", "s3cret"),
            ha1_sha256: auth::ha1(auth::Algorithm::Sha256, "101", "openline", "s3cret"),
        },
    );
    r
}

fn peer(ip: &str) -> Peer {
    Peer {
        transport: TransportKind::Udp,
        addr: std::net::SocketAddr::new(ip.parse().unwrap(), 5062),
        conn: None,
    }
}

fn register(user: &str, cseq: u32, extra: &str) -> Request {
    let text = format!(
        "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK{cseq}\r\n\
         From: <sip:{user}@127.0.0.1>;tag=a\r\nTo: <sip:{user}@127.0.0.1>\r\nCall-ID: reg-{user}\r\n\
         CSeq: {cseq} REGISTER\r\nMax-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n"
    );
    match parse(text.as_bytes()) {
        Ok(Message::Request(r)) => r,
        other => panic!("{other:?}"),
    }
}

fn status(outcome: &RegisterOutcome) -> u16 {
    match outcome {
        RegisterOutcome::Reply { status, .. } => *status,
        RegisterOutcome::Ignore => 0,
    }
}

fn challenge_of(outcome: &RegisterOutcome, algorithm: auth::Algorithm) -> Challenge {
    let RegisterOutcome::Reply { extra, .. } = outcome else {
        panic!("no reply")
    };
    extra
        .iter()
        .filter(|(n, _)| n == "WWW-Authenticate")
        .map(|(_, v)| Challenge::parse(v).unwrap())
        .find(|c| c.algorithm == algorithm)
        .expect("challenge for algorithm")
}

/// Runs a full 401 → REGISTER-with-credentials exchange; returns the second outcome.
fn login(
    r: &mut Registrar,
    now: Instant,
    user: &str,
    password: &str,
    alg: auth::Algorithm,
    contact: &str,
    cseq: u32,
) -> RegisterOutcome {
    login_from(r, now, "127.0.0.1", user, password, alg, contact, cseq)
}

/// [`login`] from another source address.
#[allow(clippy::too_many_arguments)]
fn login_from(
    r: &mut Registrar,
    now: Instant,
    ip: &str,
    user: &str,
    password: &str,
    alg: auth::Algorithm,
    contact: &str,
    cseq: u32,
) -> RegisterOutcome {
    let utc = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap();
    let first = r.handle_register(now, utc, &register(user, cseq, contact), peer(ip));
    assert_eq!(status(&first), 401);
    let challenge = challenge_of(&first, alg);
    answer(r, now, ip, &challenge, user, password, contact, cseq + 1)
}

/// A REGISTER from `ip` answering `challenge` with `password`.
#[allow(clippy::too_many_arguments)]
fn answer(
    r: &mut Registrar,
    now: Instant,
    ip: &str,
    challenge: &Challenge,
    user: &str,
    password: &str,
    contact: &str,
    cseq: u32,
) -> RegisterOutcome {
    let utc = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap();
    let authz = auth::authorize(
        challenge,
        user,
        password,
        "REGISTER",
        "sip:127.0.0.1",
        1,
        "c0ffee",
    );
    let extra = format!("{contact}Authorization: {authz}\r\n");
    r.handle_register(now, utc, &register(user, cseq, &extra), peer(ip))
}

#[test]
fn md5_and_sha256_logins_create_a_binding() {
    for alg in [auth::Algorithm::Md5, auth::Algorithm::Sha256] {
        let mut r = registrar();
        let now = crate::testing::t0();
        let out = login(
            &mut r,
            now,
            "101",
            "s3cret",
            alg,
            "Contact: <sip:101@10.0.0.5:5062>\r\n",
            1,
        );
        assert_eq!(status(&out), 200, "{alg:?}");
        let bindings = r.bindings("101", now);
        assert_eq!(bindings.len(), 1);
        assert_eq!(bindings[0].peer.addr.to_string(), "127.0.0.1:5062");
        let RegisterOutcome::Reply { extra, .. } = out else {
            panic!()
        };
        assert!(
            extra
                .iter()
                .any(|(n, v)| n == "Contact" && v.contains("expires=3600"))
        );
    }
}

#[test]
fn wrong_password_and_unknown_user_look_the_same() {
    let mut r = registrar();
    let now = crate::testing::t0();
    let contact = "Contact: <sip:x@10.0.0.5>\r\n";
    let wrong = login(&mut r, now, "101", "nope", auth::Algorithm::Md5, contact, 1);
    let unknown = login(&mut r, now, "999", "nope", auth::Algorithm::Md5, contact, 1);
    assert_eq!(status(&wrong), 401);
    assert_eq!(status(&unknown), 401);
    let header_names = |o: &RegisterOutcome| match o {
        RegisterOutcome::Reply { extra, .. } => {
            extra.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>()
        }
        RegisterOutcome::Ignore => vec![],
    };
    assert_eq!(header_names(&wrong), header_names(&unknown));
    assert!(r.bindings("101", now).is_empty());
}

#[test]
fn repeated_failures_are_throttled_per_address_and_user() {
    let mut r = registrar();
    let now = crate::testing::t0();
    let contact = "Contact: <sip:x@10.0.0.5>\r\n";
    for i in 0..5 {
        let out = login(
            &mut r,
            now,
            "101",
            "bad",
            auth::Algorithm::Md5,
            contact,
            i * 2 + 1,
        );
        let expected = if i < 4 { 401 } else { 403 };
        assert_eq!(status(&out), expected, "attempt {i}");
    }
    // Blocked now: no answer at all (no challenge to try a password against).
    let utc = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap();
    let out = r.handle_register(now, utc, &register("101", 50, contact), peer("127.0.0.1"));
    assert_eq!(out, RegisterOutcome::Ignore);
    // Another phone of the same office (same IP, other user) is not affected.
    let other = r.handle_register(now, utc, &register("102", 1, contact), peer("127.0.0.1"));
    assert_eq!(status(&other), 401);
    // After the cool-down the right password works again.
    let later = now + Duration::from_secs(301);
    let out = login(
        &mut r,
        later,
        "101",
        "s3cret",
        auth::Algorithm::Md5,
        contact,
        60,
    );
    assert_eq!(status(&out), 200);
}

/// Regression (issue: hardening): 403 for every try of a blocked pair kept svcrack sending
/// REGISTERs as fast as the 403s came back. Wrong passwords for 20 different users from one
/// address block the whole address; the endpoint then drops its new requests. Tries count once
/// per user, and only wrong passwords: stale nonces after a restart do not block an office.
#[test]
fn wrong_passwords_for_many_users_block_the_whole_source() {
    let mut r = registrar();
    let now = crate::testing::t0();
    let contact = "Contact: <sip:x@10.0.0.5>\r\n";
    let here: std::net::IpAddr = "127.0.0.1".parse().unwrap();
    // Many tries for few users: the pairs block, the source does not.
    for user in ["101", "102"] {
        for cseq in (1..10).step_by(2) {
            login(
                &mut r,
                now,
                user,
                "bad",
                auth::Algorithm::Md5,
                contact,
                cseq,
            );
        }
    }
    assert!(!r.source_blocked(now, here));
    // A nonce from another address is not ours to check a password with (BadNonce): 30
    // such users do not count.
    let utc = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap();
    let elsewhere = r.handle_register(now, utc, &register("103", 1, contact), peer("127.0.0.9"));
    let nonce_elsewhere = challenge_of(&elsewhere, auth::Algorithm::Md5);
    for n in 0..30 {
        let user = format!("2{n:02}");
        let out = answer(
            &mut r,
            now,
            "127.0.0.1",
            &nonce_elsewhere,
            &user,
            "bad",
            contact,
            2,
        );
        assert_eq!(
            status(&out),
            401,
            "a nonce bound to another address is re-challenged"
        );
    }
    assert!(!r.source_blocked(now, here));
    // Wrong passwords for 18 more users (20 with 101 and 102): the address is blocked.
    for n in 0..18 {
        assert!(!r.source_blocked(now, here), "blocked after {n}");
        login(
            &mut r,
            now,
            &format!("3{n:02}"),
            "bad",
            auth::Algorithm::Md5,
            contact,
            1,
        );
    }
    assert!(r.source_blocked(now, here));
    assert!(!r.source_blocked(now, "127.0.0.2".parse().unwrap()));
    let blocks = r.auth_blocks(now);
    let whole: Vec<_> = blocks.iter().filter(|b| b.user.is_none()).collect();
    assert_eq!(whole.len(), 1, "{blocks:?}");
    assert_eq!(whole[0].until, now + Duration::from_secs(300));
    assert!(r.lift_blocks(here) > 1);
    assert!(!r.source_blocked(now, here));
    assert!(r.auth_blocks(now).is_empty());
}

/// IPv6 sources are counted per /64: walking the addresses of one's own /64 starts no new count.
#[test]
fn an_ipv6_source_is_its_slash_64() {
    let mut r = registrar();
    let now = crate::testing::t0();
    let contact = "Contact: <sip:x@[2001:db8::5]>\r\n";
    for n in 0..20u16 {
        let ip = format!("2001:db8:0:7::{:x}", n + 1);
        let user = format!("4{n:02}");
        login_from(
            &mut r,
            now,
            &ip,
            &user,
            "bad",
            auth::Algorithm::Md5,
            contact,
            1,
        );
    }
    assert!(r.source_blocked(now, "2001:db8:0:7::ffff".parse().unwrap()));
    assert!(!r.source_blocked(now, "2001:db8:0:8::1".parse().unwrap()));
}

#[test]
fn scanners_get_no_answer() {
    let mut r = registrar();
    let utc = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap();
    let req = register("101", 1, "User-Agent: friendly-scanner\r\n");
    let out = r.handle_register(crate::testing::t0(), utc, &req, peer("127.0.0.1"));
    assert_eq!(out, RegisterOutcome::Ignore);
}

#[test]
fn binding_rules() {
    let mut r = registrar();
    let now = crate::testing::t0();
    let md5 = auth::Algorithm::Md5;
    let brief = login(
        &mut r,
        now,
        "101",
        "s3cret",
        md5,
        "Contact: <sip:a@h>;expires=10\r\n",
        1,
    );
    assert_eq!(status(&brief), 423);
    let two = "Contact: <sip:a@h>;expires=120, <sip:b@h>\r\n";
    assert_eq!(
        status(&login(&mut r, now, "101", "s3cret", md5, two, 3)),
        200
    );
    assert_eq!(r.bindings("101", now).len(), 2);
    // Expiry: the 120 s binding lapses, the 3600 s one stays.
    let later = now + Duration::from_secs(121);
    let removed = r.expire(later);
    assert_eq!(removed.len(), 1);
    assert_eq!(r.bindings("101", later).len(), 1);
    // "*" with Expires: 0 removes everything.
    let star = "Contact: *\r\nExpires: 0\r\n";
    assert_eq!(
        status(&login(&mut r, later, "101", "s3cret", md5, star, 5)),
        200
    );
    assert!(r.bindings("101", later).is_empty());
    // "*" without Expires: 0 is a client error.
    let bad_star = "Contact: *\r\n";
    assert_eq!(
        status(&login(&mut r, later, "101", "s3cret", md5, bad_star, 7)),
        400
    );
}

#[test]
fn an_operator_registers_only_its_own_extension() {
    let mut r = registrar();
    let now = crate::testing::t0();
    let utc = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap();
    let first = r.handle_register(now, utc, &register("102", 1, ""), peer("127.0.0.1"));
    let challenge = challenge_of(&first, auth::Algorithm::Md5);
    let authz = auth::authorize(
        &challenge,
        "101",
        "s3cret",
        "REGISTER",
        "sip:127.0.0.1",
        1,
        "ab",
    );
    let req = register(
        "102",
        2,
        &format!("Contact: <sip:x@h>\r\nAuthorization: {authz}\r\n"),
    );
    assert_eq!(
        status(&r.handle_register(now, utc, &req, peer("127.0.0.1"))),
        403
    );
}

#[test]
fn an_address_of_record_that_is_not_a_sip_uri_is_a_bad_request() {
    // RFC 4475 §3.3.4 (unksm2.dat): a To of another scheme gets 400, not a challenge or 404.
    let mut r = registrar();
    let text = "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK1\r\n\
                From: <http://www.example.com>;tag=a\r\nTo: isbn:2983792873\r\nCall-ID: unksm2\r\n\
                CSeq: 1 REGISTER\r\nContact: <name:John_Smith>\r\nContent-Length: 0\r\n\r\n";
    let Ok(Message::Request(req)) = parse(text.as_bytes()) else {
        panic!("parses")
    };
    let utc = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap();
    let outcome = r.handle_register(crate::testing::t0(), utc, &req, peer("127.0.0.1"));
    assert_eq!(status(&outcome), 400);
}

fn invite_request(user: &str, cseq: u32, extra: &str) -> Request {
    let text = format!(
        "INVITE sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKi{cseq}\r\n\
         From: <sip:{user}@127.0.0.1>;tag=f{cseq}\r\nTo: <sip:100@127.0.0.1>\r\nCall-ID: inv-{cseq}\r\n\
         CSeq: {cseq} INVITE\r\nMax-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n"
    );
    match parse(text.as_bytes()) {
        Ok(Message::Request(r)) => r,
        other => panic!("{other:?}"),
    }
}

/// Acceptance (issue: hardening): a captured INVITE Proxy-Authorization sent again is refused
/// (a fresh challenge with stale=true), as for REGISTER.
#[test]
fn a_replayed_invite_authorization_is_challenged_again() {
    let mut r = registrar();
    let now = crate::testing::t0();
    let utc = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap();
    let from = peer("127.0.0.1");
    let InviteAuth::Refuse { status, extra, .. } =
        r.authorize_invite(now, utc, &invite_request("101", 1, ""), from, true)
    else {
        panic!("no challenge")
    };
    assert_eq!(status, 407);
    let challenge = extra
        .iter()
        .filter(|(n, _)| n == "Proxy-Authenticate")
        .map(|(_, v)| Challenge::parse(v).unwrap())
        .find(|c| c.algorithm == auth::Algorithm::Md5)
        .unwrap();
    let authz = auth::authorize(
        &challenge,
        "101",
        "s3cret",
        "INVITE",
        "sip:100@127.0.0.1",
        1,
        "ab",
    );
    let answered = invite_request("101", 2, &format!("Proxy-Authorization: {authz}\r\n"));
    assert_eq!(
        r.authorize_invite(now, utc, &answered, from, true),
        InviteAuth::Operator("101".into())
    );
    let InviteAuth::Refuse { status, extra, .. } =
        r.authorize_invite(now, utc, &answered, from, true)
    else {
        panic!("the replay was accepted")
    };
    assert_eq!(status, 407);
    assert!(
        extra.iter().any(|(_, v)| v.contains("stale=true")),
        "{extra:?}"
    );
}
