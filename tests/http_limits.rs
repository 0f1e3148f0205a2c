//! The HTTP listener under clients that hold it: a request body sent too slowly is cut off at the
//! request deadline, and past the concurrency cap requests get 503 at once while `/healthz`
//! still answers.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

/// A POST whose body never arrives: declared 100 bytes, one sent.
fn stalled_post(server: &Server) -> TcpStream {
    let mut tcp = TcpStream::connect(server.http).unwrap();
    tcp.write_all(
        format!(
            "POST /api/v1/contacts HTTP/1.1\r\nHost: openline\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
        )
        .as_bytes(),
    )
    .unwrap();
    tcp
}

fn read_response(tcp: &mut TcpStream, within: Duration) -> String {
    tcp.set_read_timeout(Some(within)).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = tcp.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        if String::from_utf8_lossy(&out).contains("}}") {
            break;
        }
    }
    String::from_utf8_lossy(&out).to_string()
}

#[test]
fn a_request_body_that_never_arrives_gets_503_at_the_request_deadline() {
    let server = Server::start("[http]\nrequest_timeout = \"1s\"\n");
    let mut slow = stalled_post(&server);
    let answer = read_response(&mut slow, Duration::from_secs(10));
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("\"code\":\"http.timeout\""), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 1"),
        "{answer}"
    );
    let (status, _) = server.get("/api/v1/calls");
    assert_eq!(status, 200);
}

#[test]
fn past_the_concurrency_cap_requests_get_503_at_once_and_healthz_still_answers() {
    let server = Server::start("[http]\nmax_concurrent_requests = 1\nrequest_timeout = \"30s\"\n");
    let slow = stalled_post(&server);
    // The stalled POST holds the one place (once the server has read its head).
    let deadline = Instant::now() + Duration::from_secs(10);
    let refused = loop {
        let r = send(
            server.http,
            "GET",
            "/api/v1/calls",
            &[("Authorization", &format!("Bearer {ADMIN_TOKEN}"))],
            b"",
        );
        if r.status == 503 {
            break r;
        }
        assert!(Instant::now() < deadline, "never refused: {}", r.status);
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(refused.json()["error"]["code"], "server.busy");
    assert_eq!(refused.header("retry-after"), Some("1"));
    let (status, health) = server.text("/healthz");
    assert_eq!(status, 200, "{health}");
    // The client gives up; its place comes back.
    drop(slow);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = server.get("/api/v1/calls");
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the place never came back");
        std::thread::sleep(Duration::from_millis(50));
    }
}
