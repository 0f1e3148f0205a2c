//! The RFC 4475 torture messages against the running server: every message from
//! `tests/data/rfc4475/dat/` is sent from its own socket and must get the reaction the RFC
//! describes for it (valid requests parsed and answered, invalid ones 400 or the specific code the
//! RFC names, responses dropped). Afterwards the server must still answer OPTIONS and complete a
//! call. The parse-level reactions alone are unit-tested in `src/sip/message/tests.rs`.
//!
//! The messages name outside hosts (192.0.2.x, example.com, 255.255.255.255 in a Via). So that
//! nothing can leave the machine whatever the server does with them, the test body runs in a
//! network namespace that has only loopback: `rfc4475_torture_messages` re-runs this test binary
//! under `unshare -n` (root or CAP_SYS_ADMIN needed; without them it fails, it never skips), and
//! the ignored `rfc4475_in_namespace` refuses to run anywhere else.

mod common;

use common::{Server, UdpPeer, free_media_port, free_port, header, options, sipp};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// Set (to "1") only by the outer test for the run inside the namespace.
const INSIDE_NAMESPACE: &str = "OPENLINE_RFC4475_NETNS";
const INNER_TEST: &str = "rfc4475_in_namespace";
/// Longest wait for an expected answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// After the last expected answer: anything else the server sends for our messages (a second
/// answer, an answer to a message it should drop) must show up within this window.
const QUIET_WINDOW: Duration = Duration::from_millis(500);
/// A request over UDP without any answer for this long is sent again (T1).
const RESEND: Duration = Duration::from_millis(500);

/// The reaction a message must get.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// Exactly one final response with this code (retransmissions of it aside), nothing else.
    Final(u16),
    /// A new INVITE: 100, 180, then 200 with SDP; the test ACKs and hangs up (BYE gets 200).
    Call,
    /// No answer at all.
    NoAnswer,
    /// Not an RFC 4475 message (test.dat): sent only to show the server survives it.
    Unchecked,
}

use Expect::{Call, Final, NoAnswer, Unchecked};

/// Every file in the directory, with its RFC 4475 section and the reaction expected from this server
/// (a registrar and call-answering UAS). Where the RFC allows alternatives, the server's choice is
/// noted.
const TABLE: &[(&str, &str, Expect)] = &[
    // 3.1.1 Valid messages: parsed and answered.
    // Its To has a tag but no dialog matches: 481 (RFC 3261 §12.2.2).
    ("wsinv", "3.1.1.1", Final(481)),
    // An unknown method: 501 (RFC 3261 §21.5.2).
    ("intmeth", "3.1.1.2", Final(501)),
    ("esc01", "3.1.1.3", Call),
    // A REGISTER without credentials is challenged.
    ("escnull", "3.1.1.4", Final(401)),
    // RE%47IST%45R is not REGISTER: "an endpoint would reject this message with a 501".
    ("esc02", "3.1.1.5", Final(501)),
    ("lwsdisp", "3.1.1.6", Final(200)),
    ("longreq", "3.1.1.7", Call),
    // The REGISTER is challenged; the INVITE after it in the datagram is noise and gets nothing.
    ("dblreq", "3.1.1.8", Final(401)),
    ("semiuri", "3.1.1.9", Final(200)),
    ("transports", "3.1.1.10", Final(200)),
    // Framed and parsed; MESSAGE is not a method this server implements: 405 with Allow.
    ("mpart01", "3.1.1.11", Final(405)),
    // Valid responses that match no transaction: dropped (RFC 3261 §18.1.2).
    ("unreason", "3.1.1.12", NoAnswer),
    ("noreason", "3.1.1.13", NoAnswer),
    // 3.1.2 Invalid messages.
    ("badinv01", "3.1.2.1", Final(400)),
    ("clerr", "3.1.2.2", Final(400)),
    ("ncl", "3.1.2.3", Final(400)),
    ("scalar02", "3.1.2.4", Final(400)),
    ("scalarlg", "3.1.2.5", NoAnswer),
    ("quotbal", "3.1.2.6", Final(400)),
    ("ltgtruri", "3.1.2.7", Final(400)),
    ("lwsruri", "3.1.2.8", Final(400)),
    ("lwsstart", "3.1.2.9", Final(400)),
    ("trws", "3.1.2.10", Final(400)),
    ("escruri", "3.1.2.11", Final(400)),
    // The RFC allows ignoring a Date the element does not use: the server does, and answers.
    ("baddate", "3.1.2.12", Call),
    ("regbadct", "3.1.2.13", Final(400)),
    ("badaspec", "3.1.2.14", Final(400)),
    ("baddn", "3.1.2.15", Final(400)),
    ("badvers", "3.1.2.16", Final(505)),
    ("mismatch01", "3.1.2.17", Final(400)),
    // 501 rather than 400, as the RFC prefers.
    ("mismatch02", "3.1.2.18", Final(501)),
    ("bigcode", "3.1.2.19", NoAnswer),
    // 3.2 Transaction layer: the server falls back to RFC 2543 matching and answers.
    ("badbranch", "3.2.1", Final(200)),
    // 3.3 Application-layer semantics.
    ("insuf", "3.3.1", Final(400)),
    ("unkscm", "3.3.2", Final(416)),
    // The server will never accept soap.beep: treated as unknown, 416.
    ("novelsc", "3.3.3", Final(416)),
    // "A registrar would reject this request with a 400 Bad Request response, since the To: header
    // field is required to contain a SIP or SIPS URI as an AOR."
    ("unksm2", "3.3.4", Final(400)),
    // 420 with both Require option tags in Unsupported (checked below).
    ("bext01", "3.3.5", Final(420)),
    ("invut", "3.3.6", Final(415)),
    // A registrar that cares about authentication: 401 with a Digest challenge (checked below).
    ("regaut01", "3.3.7", Final(401)),
    ("multi01", "3.3.8", Final(400)),
    ("mcl01", "3.3.9", Final(400)),
    ("bcast", "3.3.10", NoAnswer),
    // The RFC's reaction for a proxy; an endpoint "should process the request as if the
    // Max-Forwards field value were still positive". The server answers as a proxy would.
    ("zeromf", "3.3.11", Final(483)),
    // "This REGISTER should succeed": it is processed as any REGISTER, and without credentials
    // this registrar's first answer is the challenge.
    ("cparam01", "3.3.12", Final(401)),
    ("cparam02", "3.3.13", Final(401)),
    ("regescrt", "3.3.14", Final(401)),
    ("sdp01", "3.3.15", Final(406)),
    // 3.4 Backward compatibility: accepted.
    ("inv2543", "3.4.1", Call),
    // Not part of RFC 4475 (shipped next to it).
    ("test", "-", Unchecked),
];

/// The messages whose Via says they came over a stream transport (TCP, or TLS for bext01): sent
/// over TCP too, to exercise framing; each must get the same final answer there.
const OVER_TCP: &[&str] = &[
    "intmeth", "esc02", "scalar02", "trws", "unkscm", "novelsc", "regaut01", "bext01",
];

/// Messages that carry the transaction id (top Via branch and sent-by, and method) of an earlier
/// one: novelsc that of unkscm, cparam02 that of cparam01, regescrt that of escnull. A server rightly
/// takes each for a retransmission of the earlier request (RFC 3261 §17.2.3) and repeats its answer
/// to the first sender, so these go to a server of their own. For the same reason the TCP copies
/// go to a third one (over TCP a non-INVITE transaction ends with its final answer, so unkscm and
/// novelsc do not collide there).
const REPEATS: &[&str] = &["novelsc", "cparam02", "regescrt"];

#[derive(Debug, Clone, Copy)]
enum Transport {
    Udp,
    Tcp,
}

fn names() -> impl Iterator<Item = &'static str> {
    TABLE.iter().map(|(name, ..)| *name)
}

/// Sends each message from its own socket (or connection), so every answer can be told apart, and
/// waits for its expected answer; then makes sure the server has dealt with all of them and
/// collects anything else they were sent.
fn send_all(
    server: &Server,
    messages: &[(&'static str, Transport)],
    bytes_of: &dyn Fn(&str) -> Vec<u8>,
) -> Vec<Probe> {
    let mut probes = Vec::new();
    for &(name, transport) in messages {
        let &(_, section, expect) = TABLE.iter().find(|(n, ..)| *n == name).expect("in TABLE");
        let mut probe = match transport {
            Transport::Udp => Probe::udp(name, section, expect, bytes_of(name), server.sip),
            Transport::Tcp => Probe::tcp(name, section, expect, bytes_of(name), server.sip),
        };
        probe.exchange();
        probes.push(probe);
    }
    // The server takes UDP packets in arrival order, and each TCP message above was answered, so
    // once this is answered every message has been dealt with; the quiet window then catches
    // anything sent late.
    options_answered(server, "rfc4475-sentinel");
    let quiet_until = Instant::now() + QUIET_WINDOW;
    for probe in &mut probes {
        probe.drain(quiet_until);
    }
    probes
}

/// The outer test: runs the inner one in a fresh network namespace that has only loopback.
#[test]
fn rfc4475_torture_messages() {
    let exe = std::env::current_exe().expect("path of this test binary");
    let output = Command::new("unshare")
        .args(["-n", "--", "sh", "-c"])
        .arg(r#"ip link set lo up && exec "$0" --exact "$1" --include-ignored --nocapture"#)
        .arg(&exe)
        .arg(INNER_TEST)
        .env(INSIDE_NAMESPACE, "1")
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run unshare (util-linux) to make a network namespace: {e}")
        });
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !stdout.contains("running 1 test") {
        panic!(
            "the RFC 4475 test must run in a network namespace with only loopback, and none could be \
             made: `unshare -n` needs root or CAP_SYS_ADMIN (and `ip` from iproute2). This test fails \
             rather than skip.\nexit: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
            output.status
        );
    }
    assert!(
        output.status.success() && stdout.contains(&format!("test {INNER_TEST} ... ok")),
        "the test inside the namespace failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
}

/// The test body; only ever run by `rfc4475_torture_messages`, inside the namespace.
#[test]
#[ignore = "runs inside a network namespace, started by rfc4475_torture_messages"]
fn rfc4475_in_namespace() {
    assert_eq!(
        std::env::var(INSIDE_NAMESPACE).as_deref(),
        Ok("1"),
        "refusing to send the RFC 4475 messages outside the network namespace; run rfc4475_torture_messages"
    );
    assert_only_loopback();
    let started = Instant::now();
    let files = torture_files();
    let bytes_of = |name: &str| -> Vec<u8> {
        let (_, bytes) = files.iter().find(|(n, _)| n == name).expect("read");
        bytes.clone()
    };
    let udp = |name: &&str| !REPEATS.contains(name);
    let first: Vec<(&str, Transport)> = names().filter(udp).map(|n| (n, Transport::Udp)).collect();
    let repeats: Vec<(&str, Transport)> = REPEATS.iter().map(|n| (*n, Transport::Udp)).collect();
    let tcp: Vec<(&str, Transport)> = OVER_TCP.iter().map(|n| (*n, Transport::Tcp)).collect();

    let server = Server::start("");
    let mut probes = send_all(&server, &first, &bytes_of);
    let repeats_server = Server::start("");
    probes.extend(send_all(&repeats_server, &repeats, &bytes_of));
    let tcp_server = Server::start("");
    probes.extend(send_all(&tcp_server, &tcp, &bytes_of));

    let mut wrong = Vec::new();
    for probe in &probes {
        if let Err(why) = probe.check() {
            wrong.push(format!(
                "{} ({}, §{}): {why}\n  received: {:?}",
                probe.name,
                probe.transport(),
                probe.section,
                probe
                    .received
                    .iter()
                    .map(|m| first_line(m))
                    .collect::<Vec<_>>()
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "RFC 4475 reactions differ:\n{}",
        wrong.join("\n")
    );

    // Still alive: OPTIONS from a new peer to each server, and on the one that took most of the
    // messages a whole call from SIPp, which shows up in the API next to the torture INVITEs that
    // were answered.
    for server in [&server, &repeats_server, &tcp_server] {
        options_answered(server, "rfc4475-after");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let args: Vec<String> = [
        server.sip.to_string(),
        "-sn".into(),
        "uac".into(),
        "-m".into(),
        "1".into(),
        "-i".into(),
        "127.0.0.1".into(),
        "-p".into(),
        free_port().to_string(),
        "-mp".into(),
        free_media_port().to_string(),
        "-s".into(),
        "rfc4475-after".into(),
    ]
    .into();
    let (code, out) = sipp(dir.path(), &args);
    assert_eq!(
        code, 0,
        "SIPp call after the torture messages failed:\n{out}"
    );
    let torture_calls = TABLE
        .iter()
        .filter(|(name, _, expect)| *expect == Call && !REPEATS.contains(name))
        .count();
    server.wait_for_calls(
        "",
        "the SIPp call and the answered torture INVITEs",
        |calls| {
            let ended = |c: &serde_json::Value| c["disposition"] == "ivr.abandoned";
            calls.len() == torture_calls + 1
                && calls.iter().all(ended)
                && calls.iter().any(|c| c["callee"] == "rfc4475-after")
        },
    );
    eprintln!(
        "rfc4475: {} exchanges checked in {:?}",
        probes.len(),
        started.elapsed()
    );
}

/// OPTIONS from a new peer gets 200 (sent again every `RESEND` until then, at most 10 s).
fn options_answered(server: &Server, branch: &str) {
    let peer = UdpPeer::new(server.sip);
    peer.socket.set_read_timeout(Some(RESEND)).expect("timeout");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        peer.send(options(peer.port(), branch).as_bytes());
        if peer.recv().is_some_and(|m| status(&m) == Some(200)) {
            return;
        }
    }
    panic!("no 200 for OPTIONS from {}", server.sip);
}

/// Fails unless this process's network namespace has no interface but `lo`.
fn assert_only_loopback() {
    let dev = std::fs::read_to_string("/proc/net/dev").expect("read /proc/net/dev");
    let interfaces: Vec<&str> = dev
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(str::trim)
        .collect();
    assert_eq!(
        interfaces,
        ["lo"],
        "this network namespace has more than loopback"
    );
}

/// (name without .dat, bytes) of every file in the shared directory; each must be in `TABLE`.
fn torture_files() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/rfc4475/dat");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("dir entry").path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(name) = name.strip_suffix(".dat") else {
            continue;
        };
        assert!(
            TABLE.iter().any(|(n, ..)| *n == name),
            "{name}.dat has no expected reaction in TABLE"
        );
        files.push((name.to_string(), std::fs::read(&path).expect("read .dat")));
    }
    assert_eq!(
        files.len(),
        TABLE.len(),
        "TABLE names files that are not in {}",
        dir.display()
    );
    files
}

enum Link {
    Udp(UdpSocket),
    /// The stream and the bytes read but not yet framed.
    Tcp(TcpStream, Vec<u8>),
}

/// One torture message sent on its own socket or connection, and everything that came back.
struct Probe {
    name: &'static str,
    section: &'static str,
    expect: Expect,
    request: Vec<u8>,
    server: SocketAddr,
    link: Link,
    received: Vec<String>,
}

impl Probe {
    fn udp(
        name: &'static str,
        section: &'static str,
        expect: Expect,
        request: Vec<u8>,
        server: SocketAddr,
    ) -> Probe {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
        Probe {
            name,
            section,
            expect,
            request,
            server,
            link: Link::Udp(socket),
            received: Vec::new(),
        }
    }

    fn tcp(
        name: &'static str,
        section: &'static str,
        expect: Expect,
        request: Vec<u8>,
        server: SocketAddr,
    ) -> Probe {
        let stream = TcpStream::connect(server).expect("connect SIP over TCP");
        Probe {
            name,
            section,
            expect,
            request,
            server,
            link: Link::Tcp(stream, Vec::new()),
            received: Vec::new(),
        }
    }

    fn transport(&self) -> &'static str {
        match self.link {
            Link::Udp(_) => "UDP",
            Link::Tcp(..) => "TCP",
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        match &mut self.link {
            Link::Udp(socket) => {
                socket.send_to(bytes, self.server).expect("send");
            }
            Link::Tcp(stream, _) => stream.write_all(bytes).expect("write"),
        }
    }

    /// Sends the message and waits for its expected answer (for a call: answers it and hangs up).
    /// Messages that must get no answer are only sent: silence is checked at the end.
    fn exchange(&mut self) {
        let request = self.request.clone();
        let deadline = Instant::now() + ANSWER_TIMEOUT;
        match self.expect {
            Final(_) => {
                self.ask(&request, deadline, |m| status(m).is_some_and(|s| s >= 200));
            }
            Call => {
                let is_ok = |m: &str| status(m) == Some(200) && cseq_method(m) == "INVITE";
                if let Some(ok) = self.ask(&request, deadline, is_ok) {
                    self.hang_up(&ok, deadline);
                }
            }
            NoAnswer | Unchecked => self.send(&request),
        }
    }

    /// ACK for the 200, then BYE, and waits for the BYE's 200.
    fn hang_up(&mut self, ok: &str, deadline: Instant) {
        let port = match &self.link {
            Link::Udp(socket) => socket.local_addr().expect("addr").port(),
            Link::Tcp(stream, _) => stream.local_addr().expect("addr").port(),
        };
        let target = header(ok, "Contact")
            .unwrap_or_default()
            .trim_matches(['<', '>'])
            .to_string();
        let from = header(ok, "From").unwrap_or_default().to_string();
        let to = header(ok, "To").unwrap_or_default().to_string();
        let call_id = header(ok, "Call-ID").unwrap_or_default().to_string();
        let cseq: u32 = header(ok, "CSeq")
            .and_then(|c| c.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .expect("CSeq number in the 200");
        let request = |method: &str, cseq: u32| {
            format!(
                "{method} {target} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{}-{method};rport\r\n\
                 Max-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n\
                 Content-Length: 0\r\n\r\n",
                self.name
            )
        };
        let (ack, bye) = (request("ACK", cseq), request("BYE", cseq + 1));
        self.send(ack.as_bytes());
        self.ask(bye.as_bytes(), deadline, |m| {
            status(m) == Some(200) && cseq_method(m) == "BYE"
        });
    }

    /// Sends `request` and reads (keeping everything) until a message satisfies `done`, or the
    /// deadline. Over UDP the request is sent again after each `RESEND` without any answer, as a
    /// UAC's Timer A/E would: a datagram may be lost on a busy machine.
    fn ask(
        &mut self,
        request: &[u8],
        deadline: Instant,
        done: impl Fn(&str) -> bool,
    ) -> Option<String> {
        self.send(request);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let resend = matches!(self.link, Link::Udp(_)) && left > RESEND;
            match self.recv(if resend { RESEND } else { left }) {
                Some(message) => {
                    self.received.push(message.clone());
                    if done(&message) {
                        return Some(message);
                    }
                }
                None if resend => self.send(request),
                None => {}
            }
        }
    }

    /// Reads whatever else arrives until `until`.
    fn drain(&mut self, until: Instant) {
        while let Some(message) = self.recv(until.saturating_duration_since(Instant::now())) {
            self.received.push(message);
        }
    }

    /// The next whole message, waiting at most `wait` (at least 1 ms).
    fn recv(&mut self, wait: Duration) -> Option<String> {
        let wait = wait.max(Duration::from_millis(1));
        match &mut self.link {
            Link::Udp(socket) => {
                socket.set_read_timeout(Some(wait)).expect("timeout");
                let mut buf = vec![0u8; 65_535];
                let (n, _) = socket.recv_from(&mut buf).ok()?;
                Some(String::from_utf8_lossy(&buf[..n]).into_owned())
            }
            Link::Tcp(stream, pending) => {
                let deadline = Instant::now() + wait;
                loop {
                    if let Some(message) = next_frame(pending) {
                        return Some(message);
                    }
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return None;
                    }
                    stream.set_read_timeout(Some(left)).expect("timeout");
                    let mut buf = [0u8; 16 * 1024];
                    match stream.read(&mut buf) {
                        Ok(0) => return None,
                        Ok(n) => pending.extend_from_slice(&buf[..n]),
                        Err(_) => return None,
                    }
                }
            }
        }
    }

    /// Compares what came back with the expectation.
    fn check(&self) -> Result<(), String> {
        let request = String::from_utf8_lossy(&self.request);
        for message in &self.received {
            let Some(code) = status(message) else {
                return Err(format!("not a SIP response: {:?}", first_line(message)));
            };
            // Attributable: the answer copies the Call-ID of what we sent on this socket.
            if let Some(call_id) = header(message, "Call-ID")
                && !request.contains(call_id)
            {
                return Err(format!(
                    "{code} carries Call-ID {call_id:?} of another message"
                ));
            }
        }
        // Retransmissions of a final answer (Timer G for an INVITE's error) are not new answers.
        let mut answers: Vec<(u16, String)> = self
            .received
            .iter()
            .map(|m| (status(m).unwrap_or(0), cseq_method(m).to_string()))
            .collect();
        answers.dedup();
        let codes: Vec<u16> = answers.iter().map(|(c, _)| *c).collect();
        match self.expect {
            Unchecked => Ok(()),
            NoAnswer if codes.is_empty() => Ok(()),
            NoAnswer => Err("expected no answer".into()),
            Final(code) if codes == [code] => self.check_headers(code),
            Final(code) => Err(format!("expected exactly one final {code}")),
            Call => {
                let expected = [
                    (100, "INVITE"),
                    (180, "INVITE"),
                    (200, "INVITE"),
                    (200, "BYE"),
                ];
                let matches = answers.len() == expected.len()
                    && answers
                        .iter()
                        .zip(expected)
                        .all(|((c, m), (ec, em))| *c == ec && m == em);
                if !matches {
                    return Err("expected 100, 180, 200 for the INVITE and 200 for our BYE".into());
                }
                let ok = self
                    .received
                    .iter()
                    .find(|m| status(m) == Some(200))
                    .expect("200");
                if header(ok, "Content-Type") != Some("application/sdp") {
                    return Err("the 200 for the INVITE has no SDP answer".into());
                }
                Ok(())
            }
        }
    }

    /// Headers the RFC asks for in particular answers.
    fn check_headers(&self, code: u16) -> Result<(), String> {
        let answer = self
            .received
            .iter()
            .find(|m| status(m) == Some(code))
            .expect("answer");
        match code {
            420 => {
                let unsupported = header(answer, "Unsupported").unwrap_or_default();
                let tags: Vec<&str> = unsupported.split(',').map(str::trim).collect();
                if tags != ["nothingSupportsThis", "nothingSupportsThisEither"] {
                    return Err(format!(
                        "420 must list both Require option tags in Unsupported, got {unsupported:?}"
                    ));
                }
            }
            401 => {
                let challenge = header(answer, "WWW-Authenticate").unwrap_or_default();
                if !challenge.starts_with("Digest ") {
                    return Err(format!("401 without a Digest challenge: {challenge:?}"));
                }
            }
            405 if header(answer, "Allow").is_none() => return Err("405 without Allow".into()),
            _ => {}
        }
        Ok(())
    }
}

/// Cuts one message (head + Content-Length body) off the front of a TCP buffer.
fn next_frame(pending: &mut Vec<u8>) -> Option<String> {
    let head_end = pending.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&pending[..head_end]).into_owned();
    let length: usize = header(&head, "Content-Length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if pending.len() < head_end + length {
        return None;
    }
    let message: Vec<u8> = pending.drain(..head_end + length).collect();
    Some(String::from_utf8_lossy(&message).into_owned())
}

fn first_line(message: &str) -> &str {
    message.lines().next().unwrap_or("")
}

/// The status code of a response, or None for anything else.
fn status(message: &str) -> Option<u16> {
    let mut parts = first_line(message).split(' ');
    if parts.next() != Some("SIP/2.0") {
        return None;
    }
    parts.next()?.parse().ok()
}

fn cseq_method(message: &str) -> &str {
    header(message, "CSeq")
        .and_then(|c| c.split_whitespace().nth(1))
        .unwrap_or("")
}
