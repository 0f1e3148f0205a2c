//! SIP over TCP against peers that misbehave on purpose: a slow-loris that drips one byte now and
//! then, a source that opens connections without end, and a Content-Length that would wrap.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

/// Whether the server has closed `tcp` (a read sees EOF or a reset) within `within`.
fn closed_within(tcp: &mut TcpStream, within: Duration) -> bool {
    tcp.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match tcp.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
    false
}

fn options_over_tcp(tcp: &mut TcpStream, branch: &str) -> String {
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    tcp.write_all(options(0, branch).replace("UDP", "TCP").as_bytes())
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = tcp.read(&mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).to_string()
}

#[test]
fn a_tcp_peer_dripping_a_byte_at_a_time_is_cut_off_at_the_whole_message_deadline() {
    let server = Server::start("[sip]\ntcp_message_timeout = \"1s\"\n");
    let mut loris = TcpStream::connect(server.sip).unwrap();
    let message = options(0, "loris").replace("UDP", "TCP");
    let started = Instant::now();
    let mut cut_off = false;
    // One byte every 200 ms: each read comes well inside any per-read timeout, so only a
    // deadline for the whole message ends it. The message would take minutes to complete.
    for byte in message.as_bytes() {
        if loris.write_all(&[*byte]).is_err()
            || closed_within(&mut loris, Duration::from_millis(200))
        {
            cut_off = true;
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "still connected after 20 s"
        );
    }
    assert!(
        cut_off,
        "the whole message was dripped in without the server closing"
    );
    // A well-behaved connection is untouched, even when it idles longer than the deadline.
    let mut good = TcpStream::connect(server.sip).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(options_over_tcp(&mut good, "good").starts_with("SIP/2.0 200 OK"));
}

#[test]
fn connections_past_the_per_source_cap_are_closed_at_once_and_places_come_back() {
    let server = Server::start("[sip]\nmax_tcp_connections_per_source = 3\n");
    let mut open: Vec<TcpStream> = (0..3)
        .map(|i| {
            let mut tcp = TcpStream::connect(server.sip).unwrap();
            assert!(options_over_tcp(&mut tcp, &format!("cap-{i}")).starts_with("SIP/2.0 200 OK"));
            tcp
        })
        .collect();
    let mut fourth = TcpStream::connect(server.sip).unwrap();
    assert!(
        closed_within(&mut fourth, Duration::from_secs(5)),
        "a fourth connection from the same address was kept"
    );
    // UDP from the same address is not affected.
    let probe = UdpPeer::new(server.sip);
    probe.request(&options(probe.port(), "udp-while-full"), "SIP/2.0 200 OK");
    // One closes; its place is given back.
    drop(open.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut again = TcpStream::connect(server.sip).unwrap();
        if options_over_tcp(&mut again, "cap-again").starts_with("SIP/2.0 200 OK") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the closed connection's place never came back"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, metrics) = server.text("/metrics");
    assert!(
        metrics.contains("openline_sip_tcp_refused_total{reason=\"source_full\"}"),
        "{metrics}"
    );
}

#[test]
fn a_content_length_that_would_overflow_gets_413_and_the_server_goes_on() {
    let server = Server::start("");
    let mut tcp = TcpStream::connect(server.sip).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    tcp.write_all(
        format!(
            "OPTIONS sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1;branch=z9hG4bKwrap\r\n\
             From: <sip:x@127.0.0.1>;tag=w\r\nTo: <sip:a@127.0.0.1>\r\nCall-ID: wrap\r\nCSeq: 1 OPTIONS\r\n\
             Content-Length: {}\r\n\r\n",
            u64::MAX
        )
        .as_bytes(),
    )
    .unwrap();
    let mut buf = [0u8; 4096];
    let n = tcp.read(&mut buf).unwrap_or(0);
    let answer = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(answer.starts_with("SIP/2.0 413"), "{answer}");
    let mut fresh = TcpStream::connect(server.sip).unwrap();
    assert!(options_over_tcp(&mut fresh, "after-wrap").starts_with("SIP/2.0 200 OK"));
}
