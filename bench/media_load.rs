//! Concurrent-calls media benchmark client: N callers on loopback, each dialling the server over
//! SIP/UDP, sending 20 ms G.711 RTP and receiving the server's stream (the greeting prompt, then
//! silence) for the whole call. It reports what the callers saw: packets lost, and how far each
//! packet's arrival strays from the 20 ms grid its timestamp puts it on (p50/p99/max).
//!
//! Two clocks are read for every packet:
//! - `send_dev_*`: the kernel's receive timestamp (`SO_TIMESTAMPNS`). On loopback the packet is
//!   stamped inside the server's `sendto`, so this is the server's send-time deviation, free of
//!   this client's scheduling.
//! - `recv_dev_*`: when this client's task got to the packet: the above plus the client's own
//!   scheduling delay (it shares the CPUs with the server).
//!
//! `cargo run --release --example media_load -- --sip 127.0.0.1:5060 --calls 500 --seconds 30`
//! (bench/media_calls.sh starts the server, samples its CPU and RSS and runs this at rising N).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::Mutex;

#[path = "udp_timestamps.rs"]
mod udp_timestamps;
use udp_timestamps::{enable_kernel_timestamps, recv_with_timestamp};

struct Args {
    sip: SocketAddr,
    calls: usize,
    seconds: u64,
    ramp_per_second: usize,
}

fn args() -> Args {
    let mut a = Args {
        sip: "127.0.0.1:5060".parse().expect("literal"),
        calls: 100,
        seconds: 20,
        ramp_per_second: 200,
    };
    let argv: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i + 1 < argv.len() {
        let v = &argv[i + 1];
        match argv[i].as_str() {
            "--sip" => a.sip = v.parse().expect("--sip ADDR"),
            "--calls" => a.calls = v.parse().expect("--calls N"),
            "--seconds" => a.seconds = v.parse().expect("--seconds S"),
            "--ramp" => a.ramp_per_second = v.parse().expect("--ramp CALLS_PER_SECOND"),
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    a
}

/// What one caller measured.
#[derive(Default)]
struct CallStats {
    answered: bool,
    received: u64,
    expected: u64,
    /// How late each packet arrived against the 20 ms grid its timestamp puts it on, in µs,
    /// relative to the earliest packet of the call (so the reference is not one lucky packet):
    /// by the kernel's receive timestamp (= the server's send time on loopback) ...
    send_dev_us: Vec<u32>,
    /// ... and by when this client's task read it.
    recv_dev_us: Vec<u32>,
    /// Packets that came without a kernel timestamp.
    no_timestamp: u64,
}

/// Deviation from the grid relative to the call's earliest packet.
fn relative(offsets: &[i64]) -> Vec<u32> {
    let Some(min) = offsets.iter().min().copied() else {
        return Vec::new();
    };
    offsets
        .iter()
        .map(|o| (o - min).min(i64::from(u32::MAX)) as u32)
        .collect()
}

fn sdp(port: u16) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
    )
}

fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Routes SIP responses to the caller waiting for them, by Call-ID.
type Waiters = Arc<Mutex<HashMap<String, tokio::sync::mpsc::UnboundedSender<String>>>>;

async fn sip_reader(socket: Arc<UdpSocket>, waiters: Waiters) {
    let mut buf = vec![0u8; 65535];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let msg = String::from_utf8_lossy(&buf[..n]).to_string();
        let Some(call_id) = header(&msg, "Call-ID").map(str::to_string) else {
            continue;
        };
        if msg.starts_with("BYE ") {
            // The server hung up (it shouldn't in this benchmark): answer so it stops retrying.
            let mut ok = String::from("SIP/2.0 200 OK\r\n");
            for h in ["Via", "From", "To", "Call-ID", "CSeq"] {
                if let Some(v) = header(&msg, h) {
                    ok.push_str(&format!("{h}: {v}\r\n"));
                }
            }
            ok.push_str("Content-Length: 0\r\n\r\n");
            let _ = socket.send_to(ok.as_bytes(), from).await;
            continue;
        }
        if let Some(tx) = waiters.lock().await.get(&call_id) {
            let _ = tx.send(msg);
        }
    }
}

async fn one_call(
    index: usize,
    args: Arc<Args>,
    sip: Arc<UdpSocket>,
    waiters: Waiters,
    start_at: Instant,
) -> CallStats {
    tokio::time::sleep_until(start_at.into()).await;
    let mut stats = CallStats::default();
    let rtp = match UdpSocket::bind("127.0.0.1:0").await {
        Ok(s) => s,
        Err(_) => return stats,
    };
    enable_kernel_timestamps(&rtp);
    let rtp_port = rtp.local_addr().map(|a| a.port()).unwrap_or(0);
    let sip_port = sip.local_addr().map(|a| a.port()).unwrap_or(0);
    let call_id = format!("bench-{index}-{}", std::process::id());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    waiters.lock().await.insert(call_id.clone(), tx);
    let body = sdp(rtp_port);
    let invite = format!(
        "INVITE sip:100@{server} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{sip_port};branch=z9hG4bK{call_id};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:bench{index}@127.0.0.1>;tag=b{index}\r\nTo: <sip:100@{server}>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:bench@127.0.0.1:{sip_port}>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
        body.len(),
        server = args.sip
    );
    let mut ok = None;
    for _ in 0..7 {
        let _ = sip.send_to(invite.as_bytes(), args.sip).await;
        let deadline = tokio::time::Instant::now() + Duration::from_millis(1000);
        while let Ok(Some(msg)) = tokio::time::timeout_at(deadline, rx.recv()).await {
            if msg.starts_with("SIP/2.0 200") {
                ok = Some(msg);
                break;
            }
        }
        if ok.is_some() {
            break;
        }
    }
    let Some(ok) = ok else {
        waiters.lock().await.remove(&call_id);
        return stats;
    };
    stats.answered = true;
    let to = header(&ok, "To").unwrap_or_default().to_string();
    let media: Option<SocketAddr> = ok.split("\r\n\r\n").nth(1).and_then(|b| {
        let ip = b
            .lines()
            .find_map(|l| l.strip_prefix("c=IN IP4 "))?
            .trim()
            .to_string();
        let port = b
            .lines()
            .find_map(|l| l.strip_prefix("m=audio "))?
            .split_whitespace()
            .next()?
            .to_string();
        format!("{ip}:{port}").parse().ok()
    });
    let ack = format!(
        "ACK sip:openline@{server} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{sip_port};branch=z9hG4bK{call_id}a;rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:bench{index}@127.0.0.1>;tag=b{index}\r\nTo: {to}\r\nCall-ID: {call_id}\r\n\
         CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
        server = args.sip
    );
    let _ = sip.send_to(ack.as_bytes(), args.sip).await;
    let Some(media) = media else { return stats };

    // Talk and listen for the call's length.
    let t0 = tokio::time::Instant::now();
    let end = t0 + Duration::from_secs(args.seconds);
    let mut tick = tokio::time::interval_at(t0, Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut seq: u16 = 0;
    let mut packet = vec![0u8; 172];
    packet[0] = 0x80;
    packet[8..12].copy_from_slice(&(index as u32).to_be_bytes());
    let mut buf = [0u8; 2048];
    let mut first: Option<(Instant, i128, u32)> = None;
    let mut last_ts = 0u32;
    let mut recv_offsets_us: Vec<i64> = Vec::new();
    let mut send_offsets_us: Vec<i64> = Vec::new();
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if tokio::time::Instant::now() >= end { break; }
                packet[2..4].copy_from_slice(&seq.to_be_bytes());
                packet[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
                for b in &mut packet[12..] { *b = 0xff; }
                let _ = rtp.send_to(&packet, media).await;
                seq = seq.wrapping_add(1);
            }
            r = rtp.async_io(Interest::READABLE, || recv_with_timestamp(&rtp, &mut buf)) => {
                let Ok((n, kernel_ns)) = r else { continue };
                if n < 12 || buf[1] & 0x7f != 0 { continue; }
                let now = Instant::now();
                let ts = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
                stats.received += 1;
                let (t_first, k_first, ts_first) = *first.get_or_insert((now, kernel_ns, ts));
                let grid_us = i64::from(ts.wrapping_sub(ts_first) as i32) * 125;
                recv_offsets_us.push(now.duration_since(t_first).as_micros() as i64 - grid_us);
                if kernel_ns != 0 && k_first != 0 {
                    send_offsets_us.push(((kernel_ns - k_first) / 1000) as i64 - grid_us);
                } else {
                    stats.no_timestamp += 1;
                }
                last_ts = ts;
            }
        }
    }
    if let Some((_, _, ts_first)) = first {
        stats.expected = u64::from(last_ts.wrapping_sub(ts_first)) / 160 + 1;
    }
    stats.recv_dev_us = relative(&recv_offsets_us);
    stats.send_dev_us = relative(&send_offsets_us);
    let bye = format!(
        "BYE sip:openline@{server} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{sip_port};branch=z9hG4bK{call_id}b;rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:bench{index}@127.0.0.1>;tag=b{index}\r\nTo: {to}\r\nCall-ID: {call_id}\r\n\
         CSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
        server = args.sip
    );
    for _ in 0..5 {
        let _ = sip.send_to(bye.as_bytes(), args.sip).await;
        let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
        let mut done = false;
        while let Ok(Some(msg)) = tokio::time::timeout_at(deadline, rx.recv()).await {
            if msg.starts_with("SIP/2.0 200") && msg.contains("BYE") {
                done = true;
                break;
            }
        }
        if done {
            break;
        }
    }
    waiters.lock().await.remove(&call_id);
    stats
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = Arc::new(args());
    let sip = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("bind sip"));
    let waiters: Waiters = Arc::default();
    tokio::spawn(sip_reader(sip.clone(), waiters.clone()));
    let start = Instant::now() + Duration::from_millis(100);
    let mut handles = Vec::with_capacity(args.calls);
    for i in 0..args.calls {
        let at = start + Duration::from_secs_f64(i as f64 / args.ramp_per_second.max(1) as f64);
        handles.push(tokio::spawn(one_call(
            i,
            args.clone(),
            sip.clone(),
            waiters.clone(),
            at,
        )));
    }
    let mut answered = 0;
    let (mut received, mut expected, mut no_timestamp) = (0u64, 0u64, 0u64);
    let mut send_dev = Vec::new();
    let mut recv_dev = Vec::new();
    for h in handles {
        if let Ok(s) = h.await {
            answered += usize::from(s.answered);
            received += s.received;
            expected += s.expected;
            no_timestamp += s.no_timestamp;
            send_dev.extend(s.send_dev_us);
            recv_dev.extend(s.recv_dev_us);
        }
    }
    send_dev.sort_unstable();
    recv_dev.sort_unstable();
    let loss = if expected > 0 {
        100.0 * (expected.saturating_sub(received)) as f64 / expected as f64
    } else {
        100.0
    };
    println!(
        "calls={} answered={} received={} expected={} loss_pct={:.3} \
         send_dev_p50_ms={:.2} send_dev_p99_ms={:.2} send_dev_max_ms={:.2} \
         recv_dev_p50_ms={:.2} recv_dev_p99_ms={:.2} recv_dev_max_ms={:.2} no_kernel_timestamp={}",
        args.calls,
        answered,
        received,
        expected,
        loss,
        percentile(&send_dev, 0.50),
        percentile(&send_dev, 0.99),
        percentile(&send_dev, 1.0),
        percentile(&recv_dev, 0.50),
        percentile(&recv_dev, 0.99),
        percentile(&recv_dev, 1.0),
        no_timestamp,
    );
}
