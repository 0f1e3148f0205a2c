//! Overload and abandoned sessions: what the node holds must fall back when the load does.

mod common;

use common::*;
use std::time::{Duration, Instant};

/// What the node holds, from its own gauges.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Held {
    calls: f64,
    legs: f64,
    transactions: f64,
    ports_free: f64,
    tasks: f64,
}

fn held(server: &Server) -> Held {
    Held {
        calls: server.metric("openline_calls_active "),
        legs: server.metric("openline_sip_legs "),
        transactions: server.metric("openline_sip_transactions "),
        ports_free: server.metric("openline_rtp_ports_free "),
        tasks: server.metric("openline_tasks_alive "),
    }
}

/// Waits until the node holds no call, leg or transaction and at least `ports_free` RTP ports
/// are free (a port is given back a moment after its call's leg is gone).
fn wait_until_idle(server: &Server, ports_free: f64, within: Duration) -> Held {
    let deadline = Instant::now() + within;
    loop {
        let now = held(server);
        if now.calls == 0.0
            && now.legs == 0.0
            && now.transactions == 0.0
            && now.ports_free >= ports_free
        {
            return now;
        }
        assert!(Instant::now() < deadline, "still held: {now:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// 60 callers take the 200 and never ACK it (a scanner, or a NAT that eats the ACK): after Timer H
/// (64·T1; T1 is 50 ms here, so 3.2 s) each session is ended with a BYE and recorded as
/// `failed.ack_timeout`, and the node holds no leg, transaction, port or extra task afterwards.
#[test]
fn sessions_whose_200_is_never_acked_are_gone_after_timer_h() {
    let server = Server::start("[sip]\nt1 = \"50ms\"\nt2 = \"400ms\"\n");
    // Before any call, every RTP port is free: an OPTIONS makes the SIP task set the gauges
    // (after it has sent the 200, so the scrape may come first: asked until they are there).
    let peer = UdpPeer::new(server.sip);
    peer.request(&options(peer.port(), "ports"), "SIP/2.0 200 OK");
    let deadline = Instant::now() + Duration::from_secs(10);
    let ports = loop {
        let ports = server.metric("openline_rtp_ports_free ");
        if ports > 0.0 {
            break ports;
        }
        assert!(Instant::now() < deadline, "ports gauge exported");
        std::thread::sleep(Duration::from_millis(50));
    };
    // The first answer starts the node's lazily made tasks (prompt cache, writers): idle after
    // one ordinary call is the baseline.
    let ok = invite(&peer, "baseline-1", "100");
    ack(&peer, "baseline-1", &ok);
    bye(&peer, "baseline-1", &ok);
    let before = wait_until_idle(&server, ports, Duration::from_secs(30));
    assert!(before.tasks > 0.0, "tasks gauge exported: {before:?}");

    let work = tempfile::tempdir().unwrap();
    let scenario = data_path("sipp/uac_no_ack.xml").display().to_string();
    let args: Vec<String> = [
        server.sip.to_string().as_str(),
        "-i",
        "127.0.0.1",
        "-mp",
        &free_media_port().to_string(),
        "-sf",
        &scenario,
        "-m",
        "60",
        "-r",
        "30",
        "-l",
        "60",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (code, output) = sipp(work.path(), &args);
    assert_eq!(
        code, 0,
        "every unACKed call must get the server's BYE:\n{output}"
    );

    let calls = server.wait_for_calls("&disposition=failed.ack_timeout", "60 ACK timeouts", |c| {
        c.len() == 60 && c.iter().all(|c| !c["ended_at"].is_null())
    });
    assert!(
        calls
            .iter()
            .all(|c| c["disposition"] == "failed.ack_timeout")
    );
    let after = wait_until_idle(&server, ports, Duration::from_secs(30));
    eprintln!("held before {before:?}, after {after:?}");
    // Tasks may differ by a connection or two (the HTTP client asking), not by 60 sessions.
    assert!(
        (after.tasks - before.tasks).abs() <= 3.0,
        "tasks before {before:?}, after {after:?}"
    );
}

/// SIPp arguments for `tests/data/sipp/uac_or_refused.xml`: `calls` at `rate` per second.
fn refusable_calls(server: &Server, calls: u32, rate: u32) -> Vec<String> {
    let scenario = data_path("sipp/uac_or_refused.xml").display().to_string();
    [
        server.sip.to_string(),
        "-i".into(),
        "127.0.0.1".into(),
        "-mp".into(),
        free_media_port().to_string(),
        "-sf".into(),
        scenario,
        "-m".into(),
        calls.to_string(),
        "-r".into(),
        rate.to_string(),
    ]
    .to_vec()
}

/// `calls.max_call_rate = 10`, 60 INVITEs in one second: one second's burst plus the rate get
/// through and complete; the rest get 503 with Retry-After (the scenario fails a 503 without
/// one) and are counted as refused for `call_rate`. None fails.
#[test]
fn a_call_rate_ceiling_refuses_the_excess_with_503_and_retry_after() {
    let server = Server::start("[calls]\nmax_call_rate = 10\n");
    let work = tempfile::tempdir().unwrap();
    let (code, output) = sipp(work.path(), &refusable_calls(&server, 60, 60));
    assert_eq!(code, 0, "no call may fail, refused or not:\n{output}");
    let refused = server.metric("openline_calls_refused_total{reason=\"call_rate\"}");
    let calls = server.wait_for_calls("", "the admitted calls, ended", |c| {
        c.len() as f64 + refused == 60.0 && c.iter().all(|c| !c["ended_at"].is_null())
    });
    // 10 at once, then 10 per second while the INVITEs keep coming for about a second.
    assert!(
        (10..=25).contains(&calls.len()),
        "{} admitted, {refused} refused",
        calls.len()
    );
    for call in &calls {
        let disposition = call["disposition"].as_str().unwrap_or("");
        assert!(!disposition.starts_with("failed"), "{call}");
        assert!(!call["answered_at"].is_null(), "{call}");
    }
}

/// With a lag limit no scheduler can meet (1 µs), the node counts as overloaded all the time:
/// every new call gets 503 + Retry-After and is counted as refused for `overload`; OPTIONS
/// and REGISTER are still answered.
#[test]
fn an_overloaded_node_refuses_new_calls_but_still_answers_other_requests() {
    let server = Server::start("[calls]\noverload_lag = \"1us\"\n");
    // The gate closes once the lag has been over the limit for about 200 ms.
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.metric("openline_overloaded ") != 1.0 {
        assert!(Instant::now() < deadline, "the lag gate never closed");
        std::thread::sleep(Duration::from_millis(50));
    }
    let work = tempfile::tempdir().unwrap();
    let (code, output) = sipp(work.path(), &refusable_calls(&server, 5, 5));
    assert_eq!(code, 0, "{output}");
    assert_eq!(
        server.metric("openline_calls_refused_total{reason=\"overload\"}"),
        5.0
    );
    let (_, body) = server.get("/api/v1/calls");
    assert_eq!(body["calls"].as_array().map(Vec::len), Some(0), "{body}");
    assert!(server.metric("openline_runtime_lag_seconds ") > 0.0);
    let peer = UdpPeer::new(server.sip);
    peer.request(&options(peer.port(), "while-overloaded"), "SIP/2.0 200 OK");
    // An operator's phone still registers.
    common::phone::Phone::register(server.sip, "101", "s3cret-101");
    let direct = UdpPeer::new(server.sip);
    let ok = invite_expect(&direct, "overloaded-1", "100", &offer(7078, 101), "503");
    assert!(ok.starts_with("SIP/2.0 503"), "{ok}");
    assert!(header(&ok, "Retry-After") == Some("2"), "{ok}");
}
