//! Dialing out: an authenticated operator dials the dialplan's prefix + a number, and the server
//! sends the INVITE to the trunk's proxy, answers the trunk's digest challenge with the trunk's
//! account, and bridges the operator to the far end. The trunk is SIPp (tests/data/
//! trunk_uas_auth.xml), which checks the digest with its own code and echoes RTP.

mod common;

use common::rtp::{RtpPeer, assemble, best_correlation, test_signal};
use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const NUMBER: &str = "380441234567";

/// The operator's INVITE to `9` + NUMBER from `peer`, with `extra` headers and CSeq `cseq`.
fn operator_invite(peer: &UdpPeer, rtp_port: u16, cseq: u32, extra: &str) -> String {
    let port = peer.port();
    let sdp = offer(rtp_port, 101);
    format!(
        "INVITE sip:9{NUMBER}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKout{cseq};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:101@127.0.0.1>;tag=op101\r\nTo: <sip:9{NUMBER}@127.0.0.1>\r\n\
         Call-ID: trunk-out\r\nCSeq: {cseq} INVITE\r\nContact: <sip:101@127.0.0.1:{port}>\r\n{extra}\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

/// Waits for a final response (provisional ones skipped), up to `within`.
fn final_response(peer: &UdpPeer, within: Duration) -> Option<String> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(msg) = peer.recv()
            && msg.starts_with("SIP/2.0 ")
            && !msg.starts_with("SIP/2.0 1")
        {
            return Some(msg);
        }
    }
    None
}

/// SIPp standing in for the carrier, logging every message it gets to `trunk_messages.log`.
struct Trunk {
    sipp: std::process::Child,
    port: u16,
    log: std::path::PathBuf,
}

impl Trunk {
    fn start(dir: &std::path::Path) -> Trunk {
        let port = free_port();
        let media = free_media_port();
        let log = dir.join("trunk_messages.log");
        let sipp = Command::new("sipp")
            .current_dir(dir)
            .args(["-sf", data_path("trunk_uas_auth.xml").to_str().unwrap()])
            .args(["-i", "127.0.0.1", "-p", &port.to_string()])
            .args(["-mp", &media.to_string(), "-rtp_echo", "-m", "1"])
            .args(["-nostdin", "-timeout", "60", "-timeout_error"])
            .args(["-trace_msg", "-message_file"])
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sipp must be installed (scripts/test.sh installs Debian's sip-tester)");
        Trunk { sipp, port, log }
    }

    fn config(&self) -> String {
        format!(
            "[[trunks]]\nname = \"carrier\"\nproxy = \"127.0.0.1:{}\"\n\
             username = \"acme\"\npassword = \"trunk-pass\"\nfrom_user = \"442071234567\"\n\n\
             [dialplan]\nexternal = {{ prefix = \"9\", trunk = \"carrier\" }}\n",
            self.port
        )
    }

    fn seen(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the scenario's end and checks what the trunk saw: a challenged INVITE for
    /// NUMBER (without the prefix), then one with the right credentials.
    fn check_finished(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.sipp.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "the trunk stand-in did not finish"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        let seen = self.seen();
        assert!(
            status.success(),
            "the trunk's scenario failed ({status}):\n{seen}"
        );
        let request_line = format!("INVITE sip:{NUMBER}@127.0.0.1:{} SIP/2.0", self.port);
        let invites: Vec<&str> = seen
            .split("\n\n")
            .filter(|m| m.contains(&request_line))
            .collect();
        assert_eq!(invites.len(), 2, "challenged once, answered once:\n{seen}");
        assert!(!invites[0].contains("Authorization:"), "{}", invites[0]);
        let second = invites[1];
        assert!(
            second.contains("Authorization: Digest username=\"acme\""),
            "{second}"
        );
        assert!(second.contains("opaque=\"op42\""), "{second}");
        assert!(second.contains("CSeq: 2 INVITE"), "{second}");
        assert!(
            second.contains("<sip:442071234567@"),
            "the trunk's caller id:\n{second}"
        );
    }
}

/// Talks for 3 s and checks that what comes back is our own voice (SIPp echoes it).
fn check_echo(rtp: &mut RtpPeer, who: &str) {
    let voice = test_signal(8000, 3.0, 4.0);
    let (heard, _) = rtp.converse(&voice, &[]);
    let heard = assemble(&heard);
    let (c, _) = best_correlation(&heard, &voice[4_000..16_000], heard.len());
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

    // Our own INVITE is challenged first (an operator proves who they are).
    sip.send(operator_invite(&sip, rtp.port(), 1, "").as_bytes());
    let challenged = final_response(&sip, Duration::from_secs(10)).expect("a challenge");
    assert!(challenged.starts_with("SIP/2.0 407 "), "{challenged}");
    let port = sip.port();
    sip.send(
        format!(
            "ACK sip:9{NUMBER}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKout1;rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:101@127.0.0.1>;tag=op101\r\nTo: {}\r\nCall-ID: trunk-out\r\n\
             CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
            header(&challenged, "To").unwrap()
        )
        .as_bytes(),
    );
    let challenge = header(&challenged, "Proxy-Authenticate")
        .map(|v| openline::sip::auth::Challenge::parse(v).unwrap())
        .unwrap();
    let credentials = openline::sip::auth::authorize(
        &challenge,
        "101",
        "s3cret-101",
        "INVITE",
        &format!("sip:9{NUMBER}@127.0.0.1"),
        1,
        "0a4f113b",
    );
    let extra = format!("Proxy-Authorization: {credentials}\r\n");
    sip.send(operator_invite(&sip, rtp.port(), 2, &extra).as_bytes());

    // The trunk challenges the server, gets the right digest and answers: so do we.
    let ok = final_response(&sip, Duration::from_secs(20))
        .unwrap_or_else(|| panic!("no answer; the trunk saw:\n{}", trunk.seen()));
    assert!(ok.starts_with("SIP/2.0 200 "), "{ok}");
    rtp.remote = Some(sdp_media_addr(&ok));
    let to = header(&ok, "To").unwrap();
    sip.send(
        format!(
            "ACK sip:openline@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKoutack;rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:101@127.0.0.1>;tag=op101\r\nTo: {to}\r\nCall-ID: trunk-out\r\n\
             CSeq: 2 ACK\r\nContent-Length: 0\r\n\r\n"
        )
        .as_bytes(),
    );

    // Audio goes out through the trunk and comes back (SIPp echoes it): both directions.
    check_echo(&mut rtp, "operator");

    sip.request(
        &format!(
            "BYE sip:openline@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKoutbye;rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:101@127.0.0.1>;tag=op101\r\nTo: {to}\r\nCall-ID: trunk-out\r\n\
             CSeq: 3 BYE\r\nContent-Length: 0\r\n\r\n"
        ),
        "200 OK",
    );

    // The trunk's scenario ran to its end: challenge, valid credentials, answer, our BYE.
    trunk.check_finished();

    // The call is on record with the trunk's leg.
    let call = server.finished_call("trunk-out");
    assert_eq!(call["callee"], format!("9{NUMBER}"), "{call:#}");
    let legs = call["legs"].as_array().unwrap();
    assert_eq!(legs.len(), 2, "{call:#}");
    assert!(
        legs[1]["remote_uri"]
            .as_str()
            .unwrap()
            .starts_with(&format!("sip:{NUMBER}@")),
        "{call:#}"
    );
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
    trunk.check_finished();

    let call = server.finished_call("flow-out");
    let legs = call["legs"].as_array().unwrap();
    assert_eq!(legs.len(), 2, "{call:#}");
    assert!(
        legs[1]["remote_uri"]
            .as_str()
            .unwrap()
            .starts_with(&format!("sip:{NUMBER}@")),
        "{call:#}"
    );
}
