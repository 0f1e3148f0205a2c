//! Parser tests, including every RFC 4475 torture message at the parse level (the end-to-end reaction
//! of the running server is tested in tests/rfc4475.rs).

use super::*;

fn torture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/data/rfc4475/dat/{name}.dat",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// What the parser alone must do with each RFC 4475 message.
#[derive(Debug, PartialEq)]
enum Outcome {
    Request,
    Response,
    Reject(u16),
    Drop,
}

fn outcome(bytes: &[u8]) -> Outcome {
    match parse(bytes) {
        Ok(Message::Request(_)) => Outcome::Request,
        Ok(Message::Response(_)) => Outcome::Response,
        Err(ParseError::Reject(r)) => Outcome::Reject(r.status),
        Err(ParseError::Drop(_)) => Outcome::Drop,
    }
}

#[test]
fn rfc4475_parse_reactions() {
    use Outcome::*;
    let table = [
        ("wsinv", Request),
        ("intmeth", Reject(501)),
        ("esc01", Request),
        ("escnull", Request),
        ("esc02", Reject(501)),
        ("lwsdisp", Request),
        ("longreq", Request),
        ("dblreq", Request),
        ("semiuri", Request),
        ("transports", Request),
        ("mpart01", Request),
        ("unreason", Response),
        ("noreason", Response),
        ("badinv01", Reject(400)),
        ("clerr", Reject(400)),
        ("ncl", Reject(400)),
        ("scalar02", Reject(400)),
        ("scalarlg", Drop),
        ("quotbal", Reject(400)),
        ("ltgtruri", Reject(400)),
        ("lwsruri", Reject(400)),
        ("lwsstart", Reject(400)),
        ("trws", Reject(400)),
        ("escruri", Reject(400)),
        ("baddate", Request),
        ("regbadct", Reject(400)),
        ("badaspec", Reject(400)),
        ("baddn", Reject(400)),
        ("badvers", Reject(505)),
        ("mismatch01", Reject(400)),
        ("mismatch02", Reject(501)),
        ("bigcode", Drop),
        ("badbranch", Request),
        ("insuf", Reject(400)),
        ("unkscm", Request),
        ("novelsc", Request),
        ("unksm2", Request),
        ("bext01", Request),
        ("invut", Request),
        ("regaut01", Request),
        ("multi01", Reject(400)),
        ("mcl01", Reject(400)),
        ("bcast", Response),
        ("zeromf", Request),
        ("cparam01", Request),
        ("cparam02", Request),
        ("regescrt", Request),
        ("sdp01", Request),
        ("inv2543", Request),
    ];
    let mut wrong = Vec::new();
    for (name, expected) in table {
        let got = outcome(&torture(name));
        if got != expected {
            wrong.push(format!(
                "{name}: expected {expected:?}, got {got:?} ({:?})",
                parse(&torture(name)).err()
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn dblreq_keeps_only_the_first_message() {
    let Ok(Message::Request(r)) = parse(&torture("dblreq")) else {
        panic!()
    };
    assert_eq!(r.method, Method::Register);
    assert!(r.body.is_empty());
}

#[test]
fn wsinv_fields_are_typed() {
    let Ok(Message::Request(r)) = parse(&torture("wsinv")) else {
        panic!()
    };
    assert_eq!(r.cseq, 9);
    assert_eq!(r.max_forwards, Some(68));
    assert_eq!(r.to.tag(), Some("1918181833n"));
    assert_eq!(r.from.tag(), Some("98asjd8"));
    assert_eq!(r.headers.count("Via"), 3);
    assert_eq!(r.top_via.branch(), Some("390skdjuw"));
    assert_eq!(r.body.len(), 150);
}

#[test]
fn compact_forms_parse() {
    let msg = b"OPTIONS sip:a@127.0.0.1 SIP/2.0\r\nv: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKc\r\nf: <sip:b@127.0.0.1>;tag=1\r\nt: <sip:a@127.0.0.1>\r\ni: compact-1\r\nCSeq: 1 OPTIONS\r\nm: <sip:b@127.0.0.1:5070>\r\nl: 0\r\n\r\n";
    let Ok(Message::Request(r)) = parse(msg) else {
        panic!()
    };
    assert_eq!(r.call_id, "compact-1");
    assert_eq!(r.headers.get("Contact"), Some("<sip:b@127.0.0.1:5070>"));
}

#[test]
fn garbage_never_panics() {
    let valid = torture("wsinv");
    for cut in 0..valid.len() {
        let _ = parse(&valid[..cut]);
    }
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..2000 {
        let len = (seed % 300) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed & 0xff) as u8
            })
            .collect();
        let _ = parse(&bytes);
    }
}

/// Regression (issue: hardening): a 64 KiB request of thousands of tiny headers, or one Via line
/// listing thousands of hops, was parsed into as many allocations; beyond 256 fields it is
/// refused with a reason, and a request at the limit still parses.
#[test]
fn too_many_header_fields_get_400() {
    let base = "OPTIONS sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKm\r\nFrom: <sip:b@127.0.0.1>;tag=1\r\nTo: <sip:a@127.0.0.1>\r\nCall-ID: many-1\r\nCSeq: 1 OPTIONS\r\n";
    let with = |extra: &str| format!("{base}{extra}Content-Length: 0\r\n\r\n").into_bytes();
    let fill = |n: usize| "X-A: 1\r\n".repeat(n);
    // Five headers above plus Content-Length: 250 more reach exactly 256.
    assert_eq!(outcome(&with(&fill(250))), Outcome::Request);
    let Err(ParseError::Reject(r)) = parse(&with(&fill(251))) else {
        panic!("257 fields must be refused")
    };
    assert_eq!(
        (r.status, r.reason.as_str()),
        (400, "Too Many Header Fields")
    );
    let hops = vec!["SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx"; 300].join(",");
    let Err(ParseError::Reject(r)) = parse(&with(&format!("Via: {hops}\r\n"))) else {
        panic!("a Via list of 300 hops must be refused")
    };
    assert_eq!(r.status, 400);
    let response = format!(
        "SIP/2.0 200 OK\r\n{}{}Content-Length: 0\r\n\r\n",
        &base[base.find("\r\n").unwrap() + 2..],
        fill(300)
    );
    assert_eq!(outcome(response.as_bytes()), Outcome::Drop);
}

/// Regression (fuzz: sip_message, crash 1): a Request-Line whose version has a multi-byte
/// character across its fourth byte (`SIPʚ/2.0`) panicked the parser, so one datagram could
/// stop the SIP task. It is a malformed Request-Line (400).
#[test]
fn a_version_with_a_multibyte_character_is_a_malformed_request_line() {
    let msg = "INVITE sip:user@example.com SIP\u{29a}/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKv\r\nTo: <sip:user@example.com>\r\nFrom: <sip:caller@example.net>;tag=1\r\nCall-ID: v-1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
    assert_eq!(outcome(msg.as_bytes()), Outcome::Reject(400));
    let sip_like = msg.replace("SIP\u{29a}/2.0", "SIP/\u{29a}");
    assert_eq!(outcome(sip_like.as_bytes()), Outcome::Reject(505));
}
