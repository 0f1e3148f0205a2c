//! Queue benchmark operators: N phones on 127.0.0.1 that register extensions with digest auth,
//! answer every INVITE the server sends them (100, 180, then 200 with an SDP answer; the 200 is
//! re-sent until the ACK), talk for a random time, hang up with BYE, and measure how long each
//! phone waits, once free, until the server rings it again.
//!
//! One sample is one phone's BYE followed by the next INVITE it receives:
//! - `bye_to_ring`: from just before the phone sends its BYE until the INVITE arrives;
//! - `ok_to_ring`: from the arrival of the server's 200 to that BYE until the INVITE arrives (the
//!   server answers the BYE before it rings anyone, so this leaves out the BYE's own handling).
//!
//! Arrivals are the kernel's receive timestamps (`SO_TIMESTAMPNS`, bench/udp_timestamps.rs): on
//! loopback the server's `sendto` stamps them, so this client's own scheduling is not in the
//! numbers. `read_lag` (when this client got to the INVITE, minus its kernel stamp) shows what that
//! would have added. Not samples: a phone's first INVITE, an INVITE after the server hung up on the
//! phone (a 200 that crossed a CANCEL), and every ring after `--samples` were measured.
//!
//! The phones neither send nor read RTP: they bind a port for their SDP only (the benchmark's
//! callers send no RTP either, so a bridged call carries none).
//!
//! ```text
//! cargo run --release --example queue_operators -- --sip 127.0.0.1:5060 --operators 50 \
//!     --first-ext 101 --password-prefix bench- --samples 1000 --csv samples.csv
//! ```
//! It prints `ready operators=N` on stdout once every phone is registered, runs until SIGTERM or
//! SIGINT, then prints one `key=value` summary line (p50/p90/p99/max in ms) and writes the CSV.
//! bench/queue_ring.sh starts the server, this and the SIPp callers.

#[path = "udp_timestamps.rs"]
mod udp_timestamps;

use openline::sip::auth::{self, Algorithm, Challenge};
use rand::{Rng, SeedableRng, rngs::StdRng};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::time::Instant;
use udp_timestamps::{enable_kernel_timestamps, recv_with_timestamp};

/// RFC 3261 T1 and T2: the 200 to an INVITE is re-sent from T1, doubling up to T2, until the ACK.
const T1: Duration = Duration::from_millis(500);
const T2: Duration = Duration::from_secs(4);

struct Args {
    sip: SocketAddr,
    operators: u32,
    first_ext: u32,
    password_prefix: String,
    talk_min: Duration,
    talk_max: Duration,
    samples: usize,
    csv: Option<PathBuf>,
    seed: u64,
}

fn args() -> Args {
    let mut a = Args {
        sip: "127.0.0.1:5060".parse().expect("literal"),
        operators: 50,
        first_ext: 101,
        password_prefix: "bench-".into(),
        talk_min: Duration::from_millis(1000),
        talk_max: Duration::from_millis(3000),
        samples: 1000,
        csv: None,
        seed: 1,
    };
    let argv: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i + 1 < argv.len() {
        let v = &argv[i + 1];
        let ms = |v: &str| Duration::from_millis(v.parse().expect("milliseconds"));
        match argv[i].as_str() {
            "--sip" => a.sip = v.parse().expect("--sip ADDR"),
            "--operators" => a.operators = v.parse().expect("--operators N"),
            "--first-ext" => a.first_ext = v.parse().expect("--first-ext EXT"),
            "--password-prefix" => a.password_prefix = v.clone(),
            "--talk-min-ms" => a.talk_min = ms(v),
            "--talk-max-ms" => a.talk_max = ms(v),
            "--samples" => a.samples = v.parse().expect("--samples N"),
            "--csv" => a.csv = Some(PathBuf::from(v)),
            "--seed" => a.seed = v.parse().expect("--seed N"),
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    assert!(a.sip.ip().is_loopback(), "the benchmark stays on 127.0.0.1");
    assert!(
        a.talk_min <= a.talk_max,
        "--talk-min-ms above --talk-max-ms"
    );
    a
}

/// Wall-clock ns since the Unix epoch: the clock the kernel's receive timestamps use.
fn realtime_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

/// The first value of a header (full or compact name), trimmed.
fn header<'a>(msg: &'a str, name: &'a str, compact: &'a str) -> Option<&'a str> {
    headers(msg, name, compact).next()
}

/// Every value of a header, in order (a message may carry several Via lines).
fn headers<'a>(
    msg: &'a str,
    name: &'a str,
    compact: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    let head = msg.split("\r\n\r\n").next().unwrap_or(msg);
    head.lines().skip(1).filter_map(move |l| {
        let (n, v) = l.split_once(':')?;
        let n = n.trim();
        (n.eq_ignore_ascii_case(name) || n.eq_ignore_ascii_case(compact)).then(|| v.trim())
    })
}

/// One free → ring measurement, all times in wall-clock ns.
struct Sample {
    ext: u32,
    bye_sent: i128,
    /// `None` when the INVITE came before the 200 to the BYE.
    bye_ok: Option<i128>,
    /// The INVITE's kernel receive stamp, and when this client read it.
    ring: i128,
    ring_read: i128,
}

/// What one phone counted besides its samples.
#[derive(Default, Clone, Copy)]
struct Counters {
    invites: u64,
    /// A phone's first ring, or a ring after the server hung up on it: no free moment of its own.
    unpaired_rings: u64,
    /// Rings after `--samples` were taken.
    unmeasured_rings: u64,
    byes_sent: u64,
    bye_retransmits: u64,
    ok_retransmits: u64,
    server_byes: u64,
    cancels: u64,
    busy: u64,
    no_ack: u64,
    no_kernel_timestamp: u64,
}

impl Counters {
    fn add(&mut self, o: &Counters) {
        self.invites += o.invites;
        self.unpaired_rings += o.unpaired_rings;
        self.unmeasured_rings += o.unmeasured_rings;
        self.byes_sent += o.byes_sent;
        self.bye_retransmits += o.bye_retransmits;
        self.ok_retransmits += o.ok_retransmits;
        self.server_byes += o.server_byes;
        self.cancels += o.cancels;
        self.busy += o.busy;
        self.no_ack += o.no_ack;
        self.no_kernel_timestamp += o.no_kernel_timestamp;
    }
}

/// The call a phone is in: the INVITE it answered, its 200 (re-sent until the ACK) and when
/// the operator hangs up.
struct Call {
    call_id: String,
    invite: String,
    ok: String,
    acked: bool,
    resend_at: Instant,
    resend_every: Duration,
    give_up_at: Instant,
    hang_up_at: Instant,
}

/// Our BYE, re-sent every T1 until its final response (at most 7 times, as Timer E would).
struct ByeInFlight {
    call_id: String,
    text: String,
    resend_at: Instant,
    sent: u32,
}

/// When the phone became free: its BYE went out, and the 200 to it arrived.
struct Free {
    bye_sent: i128,
    bye_ok: Option<i128>,
}

/// One operator phone's SIP state; the shell in [`run_phone`] moves datagrams and time in and out.
struct Phone {
    ext: u32,
    local: SocketAddr,
    rtp_port: u16,
    rng: StdRng,
    talk: (Duration, Duration),
    call: Option<Call>,
    bye: Option<ByeInFlight>,
    free: Option<Free>,
    cseq: u32,
    samples: Vec<Sample>,
    counters: Counters,
    /// Shared by all phones: how many samples were taken so far.
    taken: Arc<AtomicUsize>,
    wanted: usize,
}

/// A datagram to send; `frees` marks the first sending of a BYE (the phone is free from then).
struct Out {
    text: String,
    frees: bool,
}

impl Phone {
    /// A response to `request` carrying its Via, From, Call-ID and CSeq, and To with our tag.
    fn respond(&self, request: &str, status: &str, extra: &str, body: &str) -> String {
        let mut out = format!("SIP/2.0 {status}\r\n");
        for via in headers(request, "Via", "v") {
            out.push_str(&format!("Via: {via}\r\n"));
        }
        for (name, compact) in [("From", "f"), ("Call-ID", "i"), ("CSeq", "")] {
            if let Some(v) = header(request, name, compact) {
                out.push_str(&format!("{name}: {v}\r\n"));
            }
        }
        let to = header(request, "To", "t").unwrap_or_default();
        if to.contains("tag=") {
            out.push_str(&format!("To: {to}\r\n"));
        } else {
            out.push_str(&format!("To: {to};tag=op{}\r\n", self.ext));
        }
        out.push_str(extra);
        out.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        out
    }

    /// The earliest timer: a 200 to re-send, a hang-up, a BYE to re-send.
    fn next_wake(&self) -> Option<Instant> {
        let call = self.call.as_ref().map(|c| {
            if c.acked {
                c.hang_up_at
            } else {
                c.resend_at.min(c.give_up_at)
            }
        });
        let bye = self.bye.as_ref().map(|b| b.resend_at);
        call.into_iter().chain(bye).min()
    }

    /// A datagram from the server; `ring` is its kernel receive stamp, `read` when we read it.
    fn on_message(&mut self, now: Instant, msg: &str, ring: i128, read: i128, out: &mut Vec<Out>) {
        let call_id = header(msg, "Call-ID", "i").unwrap_or_default().to_string();
        let reply = |text: String| Out { text, frees: false };
        if msg.starts_with("SIP/2.0 ") {
            let is_bye = header(msg, "CSeq", "").is_some_and(|c| c.ends_with("BYE"));
            let final_status = !msg.starts_with("SIP/2.0 1");
            if is_bye && final_status && self.bye.as_ref().is_some_and(|b| b.call_id == call_id) {
                self.bye = None;
                if let Some(free) = self.free.as_mut() {
                    free.bye_ok = Some(ring);
                }
            }
            return;
        }
        let method = msg.split(' ').next().unwrap_or_default();
        match method {
            "INVITE" => self.on_invite(now, msg, call_id, ring, read, out),
            "ACK" => {
                if let Some(call) = self.call.as_mut().filter(|c| c.call_id == call_id) {
                    call.acked = true;
                }
            }
            "BYE" => {
                out.push(reply(self.respond(msg, "200 OK", "", "")));
                if self.call.as_ref().is_some_and(|c| c.call_id == call_id) {
                    // The server hung up (a 200 that crossed its CANCEL): free, but not by our
                    // BYE, so the next ring is not a sample.
                    self.call = None;
                    self.free = None;
                    self.counters.server_byes += 1;
                }
            }
            "CANCEL" => {
                // Every INVITE is answered at once, so a CANCEL always comes after our 200 and
                // changes nothing (RFC 3261 §9.2): the server ACKs the 200 and sends BYE.
                out.push(reply(self.respond(msg, "200 OK", "", "")));
                self.counters.cancels += 1;
            }
            "OPTIONS" => out.push(reply(self.respond(msg, "200 OK", "", ""))),
            _ => out.push(reply(self.respond(msg, "501 Not Implemented", "", ""))),
        }
    }

    fn on_invite(
        &mut self,
        now: Instant,
        msg: &str,
        call_id: String,
        ring: i128,
        read: i128,
        out: &mut Vec<Out>,
    ) {
        if let Some(call) = self.call.as_ref() {
            let text = if call.call_id == call_id {
                call.ok.clone() // a retransmission of the INVITE we answered
            } else {
                self.counters.busy += 1;
                self.respond(msg, "486 Busy Here", "", "")
            };
            out.push(Out { text, frees: false });
            return;
        }
        self.counters.invites += 1;
        match self.free.take() {
            Some(free) if self.taken.fetch_add(1, Ordering::Relaxed) < self.wanted => {
                self.samples.push(Sample {
                    ext: self.ext,
                    bye_sent: free.bye_sent,
                    bye_ok: free.bye_ok,
                    ring,
                    ring_read: read,
                });
            }
            Some(_) => self.counters.unmeasured_rings += 1,
            None => self.counters.unpaired_rings += 1,
        }
        let sdp = format!(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {} RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n\
             a=fmtp:101 0-16\r\na=sendrecv\r\n",
            self.rtp_port
        );
        let contact = format!(
            "Contact: <sip:{}@{}>\r\nContent-Type: application/sdp\r\n",
            self.ext, self.local
        );
        let ok = self.respond(msg, "200 OK", &contact, &sdp);
        for status in ["100 Trying", "180 Ringing"] {
            out.push(Out {
                text: self.respond(msg, status, "", ""),
                frees: false,
            });
        }
        out.push(Out {
            text: ok.clone(),
            frees: false,
        });
        let (min, max) = self.talk;
        let talk = self.rng.random_range(min..=max);
        self.call = Some(Call {
            call_id,
            invite: msg.to_string(),
            ok,
            acked: false,
            resend_at: now + T1,
            resend_every: T1,
            give_up_at: now + 64 * T1,
            hang_up_at: now + talk,
        });
    }

    fn on_timer(&mut self, now: Instant, out: &mut Vec<Out>) {
        if let Some(call) = self.call.as_mut() {
            if !call.acked && now >= call.give_up_at {
                self.counters.no_ack += 1;
                self.call = None;
                self.free = None;
            } else if !call.acked && now >= call.resend_at {
                self.counters.ok_retransmits += 1;
                call.resend_every = (call.resend_every * 2).min(T2);
                call.resend_at = now + call.resend_every;
                out.push(Out {
                    text: call.ok.clone(),
                    frees: false,
                });
            } else if call.acked && now >= call.hang_up_at {
                let call = self.call.take().expect("checked above");
                self.hang_up(now, &call, out);
            }
        }
        if let Some(bye) = self.bye.as_mut()
            && now >= bye.resend_at
        {
            if bye.sent >= 7 {
                self.bye = None; // no answer: the phone stays free, the sample has no 200
            } else {
                bye.sent += 1;
                bye.resend_at = now + T1;
                self.counters.bye_retransmits += 1;
                out.push(Out {
                    text: bye.text.clone(),
                    frees: false,
                });
            }
        }
    }

    /// BYE for the dialog the server's INVITE created, to its Contact.
    fn hang_up(&mut self, now: Instant, call: &Call, out: &mut Vec<Out>) {
        let invite = &call.invite;
        let target = header(invite, "Contact", "m")
            .and_then(|c| c.split('<').nth(1))
            .and_then(|c| c.split('>').next())
            .unwrap_or("sip:openline@127.0.0.1")
            .to_string();
        let from = header(invite, "From", "f").unwrap_or_default();
        let to = header(invite, "To", "t").unwrap_or_default();
        self.cseq += 1;
        let text = format!(
            "BYE {target} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKbye{ext}x{cseq};rport\r\n\
             Max-Forwards: 70\r\nFrom: {to};tag=op{ext}\r\nTo: {from}\r\nCall-ID: {call_id}\r\n\
             CSeq: {cseq} BYE\r\nContent-Length: 0\r\n\r\n",
            local = self.local,
            ext = self.ext,
            cseq = self.cseq,
            call_id = call.call_id,
        );
        self.counters.byes_sent += 1;
        self.bye = Some(ByeInFlight {
            call_id: call.call_id.clone(),
            text: text.clone(),
            resend_at: now + T1,
            sent: 1,
        });
        out.push(Out { text, frees: true });
    }
}

/// Waits up to `within` for a response whose first line starts with `status`, re-sending
/// `request` every T1.
async fn transact(
    socket: &UdpSocket,
    server: SocketAddr,
    request: &str,
    status: &str,
    within: Duration,
) -> Result<String, String> {
    let deadline = Instant::now() + within;
    let mut buf = vec![0u8; 65535];
    while Instant::now() < deadline {
        socket
            .send_to(request.as_bytes(), server)
            .await
            .map_err(|e| e.to_string())?;
        let resend = (Instant::now() + T1).min(deadline);
        while let Ok(got) = tokio::time::timeout_at(resend, socket.recv_from(&mut buf)).await {
            let (n, _) = got.map_err(|e| e.to_string())?;
            let msg = String::from_utf8_lossy(&buf[..n]);
            if msg.starts_with(&format!("SIP/2.0 {status}")) {
                return Ok(msg.into_owned());
            }
        }
    }
    Err(format!(
        "no {status} to {}",
        request.lines().next().unwrap_or("")
    ))
}

/// REGISTER the extension: 401, then the answer to its MD5 digest challenge, then 200.
async fn register(
    socket: &UdpSocket,
    server: SocketAddr,
    ext: u32,
    password: &str,
) -> Result<(), String> {
    let local = socket.local_addr().map_err(|e| e.to_string())?;
    let register = |cseq: u32, authz: Option<&str>| {
        let authz = authz
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        format!(
            "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKreg{ext}x{cseq};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:{ext}@127.0.0.1>;tag=r{ext}\r\nTo: <sip:{ext}@127.0.0.1>\r\n\
             Call-ID: reg-{ext}-{port}\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{ext}@{local}>\r\n\
             Expires: 3600\r\n{authz}Content-Length: 0\r\n\r\n",
            port = local.port()
        )
    };
    let within = Duration::from_secs(10);
    let challenge = transact(socket, server, &register(1, None), "401", within).await?;
    let md5 = headers(&challenge, "WWW-Authenticate", "")
        .filter_map(|v| Challenge::parse(v).ok())
        .find(|c| c.algorithm == Algorithm::Md5)
        .ok_or("no MD5 challenge")?;
    let authz = auth::authorize(
        &md5,
        &ext.to_string(),
        password,
        "REGISTER",
        "sip:127.0.0.1",
        1,
        "bench",
    );
    transact(socket, server, &register(2, Some(&authz)), "200", within).await?;
    Ok(())
}

/// One phone: registers, reports it, then answers and hangs up until `stop`.
async fn run_phone(
    ext: u32,
    args: Arc<Args>,
    taken: Arc<AtomicUsize>,
    registered: tokio::sync::mpsc::Sender<Result<u32, String>>,
    mut stop: watch::Receiver<bool>,
) -> (Vec<Sample>, Counters) {
    let setup = async {
        let sip = UdpSocket::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        // Bound for the SDP only: the port stays open so the server's packets, if any, are not
        // refused; nothing is read from it.
        let rtp = UdpSocket::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let password = format!("{}{ext}", args.password_prefix);
        register(&sip, args.sip, ext, &password).await?;
        Ok::<_, String>((sip, rtp))
    };
    let (sip, rtp) = match setup.await {
        Ok(sockets) => sockets,
        Err(e) => {
            let _ = registered.send(Err(format!("{ext}: {e}"))).await;
            return (Vec::new(), Counters::default());
        }
    };
    let _ = registered.send(Ok(ext)).await;
    let stamped = enable_kernel_timestamps(&sip);
    let mut phone = Phone {
        ext,
        local: sip.local_addr().expect("bound"),
        rtp_port: rtp.local_addr().map(|a| a.port()).unwrap_or(9),
        rng: StdRng::seed_from_u64(
            args.seed
                .wrapping_mul(1_000_003)
                .wrapping_add(u64::from(ext)),
        ),
        talk: (args.talk_min, args.talk_max),
        call: None,
        bye: None,
        free: None,
        cseq: 0,
        samples: Vec::new(),
        counters: Counters::default(),
        taken,
        wanted: args.samples,
    };
    let mut buf = vec![0u8; 65535];
    let mut out = Vec::new();
    loop {
        let wake = phone
            .next_wake()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            _ = stop.changed() => break,
            got = sip.async_io(Interest::READABLE, || recv_with_timestamp(&sip, &mut buf)) => {
                let Ok((n, kernel)) = got else { continue };
                let read = realtime_ns();
                let arrived = if stamped && kernel != 0 {
                    kernel
                } else {
                    phone.counters.no_kernel_timestamp += 1;
                    read
                };
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                phone.on_message(Instant::now(), &msg, arrived, read, &mut out);
            }
            _ = tokio::time::sleep_until(wake) => phone.on_timer(Instant::now(), &mut out),
        }
        for o in out.drain(..) {
            if o.frees {
                phone.free = Some(Free {
                    bye_sent: realtime_ns(),
                    bye_ok: None,
                });
            }
            let _ = sip.send_to(o.text.as_bytes(), args.sip).await;
        }
    }
    drop(rtp);
    (phone.samples, phone.counters)
}

/// Nearest-rank percentile of sorted values, in ms.
fn percentile_ms(sorted_ns: &[i128], p: f64) -> String {
    if sorted_ns.is_empty() {
        return "NA".into();
    }
    let i = ((sorted_ns.len() - 1) as f64 * p).round() as usize;
    format!("{:.3}", sorted_ns[i] as f64 / 1e6)
}

fn summary(name: &str, mut values: Vec<i128>) -> String {
    values.sort_unstable();
    [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0)]
        .iter()
        .map(|(label, p)| format!("{name}_{label}_ms={}", percentile_ms(&values, *p)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn write_csv(path: &PathBuf, samples: &[Sample]) -> std::io::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(
        f,
        "ext,bye_sent_ns,bye_ok_ns,ring_ns,ring_read_ns,bye_to_ring_us,ok_to_ring_us,read_lag_us"
    )?;
    for s in samples {
        let ok = s.bye_ok.map(|t| t.to_string()).unwrap_or_default();
        let ok_to_ring = s
            .bye_ok
            .map(|t| format!("{:.1}", (s.ring - t) as f64 / 1e3))
            .unwrap_or_default();
        writeln!(
            f,
            "{},{},{ok},{},{},{:.1},{ok_to_ring},{:.1}",
            s.ext,
            s.bye_sent,
            s.ring,
            s.ring_read,
            (s.ring - s.bye_sent) as f64 / 1e3,
            (s.ring_read - s.ring) as f64 / 1e3,
        )?;
    }
    f.flush()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = Arc::new(args());
    let taken = Arc::new(AtomicUsize::new(0));
    let (stop_tx, stop_rx) = watch::channel(false);
    let (reg_tx, mut reg_rx) = tokio::sync::mpsc::channel(args.operators.max(1) as usize);
    let mut phones = Vec::new();
    for ext in args.first_ext..args.first_ext + args.operators {
        phones.push(tokio::spawn(run_phone(
            ext,
            args.clone(),
            taken.clone(),
            reg_tx.clone(),
            stop_rx.clone(),
        )));
    }
    drop(reg_tx);
    let mut ok = 0;
    while ok < args.operators {
        match reg_rx.recv().await {
            Some(Ok(_)) => ok += 1,
            Some(Err(e)) => {
                eprintln!("queue_operators: registration failed: {e}");
                std::process::exit(1);
            }
            None => break,
        }
    }
    println!("ready operators={ok}");
    let _ = std::io::stdout().flush();

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    let _ = stop_tx.send(true);
    let mut samples = Vec::new();
    let mut counters = Counters::default();
    for phone in phones {
        if let Ok((s, c)) = phone.await {
            samples.extend(s);
            counters.add(&c);
        }
    }
    samples.sort_by_key(|s| s.ring);
    let bye_to_ring: Vec<i128> = samples.iter().map(|s| s.ring - s.bye_sent).collect();
    let ok_to_ring: Vec<i128> = samples
        .iter()
        .filter_map(|s| s.bye_ok.map(|ok| s.ring - ok))
        .collect();
    let read_lag: Vec<i128> = samples.iter().map(|s| s.ring_read - s.ring).collect();
    let window = |s: Option<&Sample>| {
        s.map(|s| format!("{:.3}", s.ring as f64 / 1e9))
            .unwrap_or_else(|| "NA".into())
    };
    println!(
        "samples={} {} {} ok_missing={} {} window_start_s={} window_end_s={} invites={} \
         unpaired_rings={} unmeasured_rings={} byes_sent={} bye_retransmits={} ok_retransmits={} \
         server_byes={} cancels={} busy={} no_ack={} no_kernel_timestamp={}",
        samples.len(),
        summary("bye_to_ring", bye_to_ring),
        summary("ok_to_ring", ok_to_ring.clone()),
        samples.len() - ok_to_ring.len(),
        summary("read_lag", read_lag),
        window(samples.first()),
        window(samples.last()),
        counters.invites,
        counters.unpaired_rings,
        counters.unmeasured_rings,
        counters.byes_sent,
        counters.bye_retransmits,
        counters.ok_retransmits,
        counters.server_byes,
        counters.cancels,
        counters.busy,
        counters.no_ack,
        counters.no_kernel_timestamp,
    );
    if let Some(path) = &args.csv
        && let Err(e) = write_csv(path, &samples)
    {
        eprintln!("queue_operators: {}: {e}", path.display());
    }
}
