//! Queues end to end over real sockets, with hand-driven operator phones (registered with
//! digest auth) and a SIP caller going through the IVR into a queue:
//! * `all`: both phones ring, one answers, the other gets a CANCEL with the RFC 3326 Reason;
//!   audio flows both ways, the recording is stereo (caller left, operator right), and after the
//!   operator hangs up the caller's key lands as the call's rating;
//! * `in_order` and `evenly` ring the member the strategy names;
//! * abandon: the caller hangs up while phones ring: each gets a CANCEL, no INVITE follows, and
//!   the call ends `queue.abandoned` with its wait;
//! * missed rings set an operator away, visible in the API, and away operators are not rung;
//! * the gauges `openline_queue_waiting` and `openline_operators{state}` follow a queue call.
//!
//! baresip stands in for real softphones in `softphone_e2e.rs`.

mod common;

use common::phone::Phone;
use common::rtp::{RtpPeer, assemble, best_correlation, test_signal};
use common::*;
use std::path::Path;
use std::time::{Duration, Instant};

const MAIN: &str = "id: main\nentry: q\nnodes:\n  q:\n    queue: sales\n";

const RATING: &str = "id: rating
entry: rate
nodes:
  rate:
    rate: { play: rating.wav, timeout: 8s, retries: 1, next: thanks, on_fail: thanks }
  thanks:
    play: thanks.wav
";

fn queue_server(temp: &Path, queue: &str) -> Server {
    let dir = temp.join("flows");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("main.yaml"), MAIN).unwrap();
    std::fs::write(dir.join("rating.yaml"), RATING).unwrap();
    Server::start_in(temp, queue, &["--flows", dir.to_str().unwrap()])
}

/// The caller dials in and is answered by the flow; returns the 200.
fn call_in(sip: &UdpPeer, rtp: &mut RtpPeer, call_id: &str) -> String {
    let ok = invite_with(sip, call_id, "100", &offer(rtp.port(), 101));
    rtp.remote = Some(sdp_media_addr(&ok));
    ack(sip, call_id, &ok);
    ok
}

/// Waits for an INVITE on `phone` while the caller's RTP keeps flowing.
fn rung(rtp: &mut RtpPeer, phone: &mut Phone, within: Duration) -> Option<String> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        rtp.converse(&[0; 160], &[]);
        if let Some(invite) = phone.wait_for("INVITE ", Duration::from_millis(20)) {
            return Some(invite);
        }
    }
    None
}

const ALL: &str = r#"
[[queues]]
name = "sales"
members = ["101", "102"]
strategy = "all"
ring_timeout = "15s"
record = true
rating_flow = "rating"
"#;

#[test]
fn ring_all_bridges_the_first_answer_records_stereo_and_takes_the_rating() {
    let temp = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let server = queue_server(temp.path(), ALL);
    let mut p101 = Phone::register(server.sip, "101", "s3cret-101");
    let mut p102 = Phone::register(server.sip, "102", "s3cret-102");

    let sip = UdpPeer::new(server.sip);
    let mut rtp = RtpPeer::new();
    call_in(&sip, &mut rtp, "q-all");

    // Both ring; 102 answers, 101 is cancelled with the Reason of a lost race.
    let deadline = Instant::now() + Duration::from_secs(15);
    let (mut inv101, mut inv102) = (None, None);
    while inv101.is_none() || inv102.is_none() {
        assert!(Instant::now() < deadline, "both phones must ring");
        rtp.converse(&[0; 160], &[]);
        if inv101.is_none() {
            inv101 = p101.wait_for("INVITE ", Duration::from_millis(20));
        }
        if inv102.is_none() {
            inv102 = p102.wait_for("INVITE ", Duration::from_millis(20));
        }
    }
    let (inv101, inv102) = (inv101.unwrap(), inv102.unwrap());
    p101.ringing(&inv101);
    p102.ringing(&inv102);
    let mut op_rtp = RtpPeer::new();
    op_rtp.remote = Some(sdp_media_addr(&inv102));
    p102.answer(&inv102, op_rtp.port());
    let cancel = p101
        .wait_for("CANCEL ", Duration::from_secs(5))
        .expect("the other phone is cancelled");
    assert_eq!(
        header(&cancel, "Reason"),
        Some("SIP;cause=200;text=\"Call completed elsewhere\""),
        "{cancel}"
    );

    // Both directions of the bridge.
    let caller_voice = test_signal(8000, 3.0, 5.0);
    let operator_voice = test_signal(8000, 3.0, 9.0);
    let operator = std::thread::spawn(move || {
        let (heard, _) = op_rtp.converse(&operator_voice, &[]);
        (assemble(&heard), operator_voice)
    });
    let (caller_heard, _) = rtp.converse(&caller_voice, &[]);
    let (operator_heard, operator_voice) = operator.join().unwrap();
    let (c, _) = best_correlation(
        &operator_heard,
        &caller_voice[4_000..12_000],
        operator_heard.len(),
    );
    assert!(c >= 0.9, "the operator hears the caller (r = {c:.3})");
    let caller_heard = assemble(&caller_heard);
    let (c, _) = best_correlation(
        &caller_heard,
        &operator_voice[4_000..12_000],
        caller_heard.len(),
    );
    assert!(c >= 0.9, "the caller hears the operator (r = {c:.3})");

    // The operator hangs up first: the caller is taken to the rating flow and presses 4.
    eprintln!("T bridge checked {:?}", started.elapsed());
    p102.bye(&inv102);
    rtp.converse(&vec![0i16; 8000 * 4], &[(8000 * 2, '4', 101)]);
    answer_server_bye(&sip, &mut rtp);

    eprintln!("T rated {:?}", started.elapsed());
    let call = server.finished_call("q-all");
    eprintln!("T finished {:?}", started.elapsed());
    assert_eq!(call["queue"], "sales", "{call:#}");
    assert_eq!(call["operator"], "102", "{call:#}");
    assert_eq!(call["rating"], 4, "{call:#}");
    assert!(call["wait_ms"].as_i64().is_some(), "{call:#}");
    let flows: Vec<&str> = call["flow_path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["flow"].as_str().unwrap())
        .collect();
    assert!(flows.contains(&"rating"), "{call:#}");

    // The recording: stereo, caller left, operator right.
    let id = call["recording_id"]
        .as_str()
        .unwrap_or_else(|| panic!("a recording: {call:#}"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, call) = server.get(&format!("/api/v1/calls/{}", call["id"].as_str().unwrap()));
        if call["recordings"][0]["status"] == "complete" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "recording {id} not complete: {call:#}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // As a manager gets it: through the API.
    let auth = format!("Bearer {MANAGER_TOKEN}");
    let download = send(
        server.http,
        "GET",
        &format!("/api/v1/recordings/{id}"),
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(download.status, 200);
    let mut wav = hound::WavReader::new(std::io::Cursor::new(download.body)).unwrap();
    assert_eq!(wav.spec().channels, 2);
    let samples: Vec<i16> = wav.samples::<i16>().map(Result::unwrap).collect();
    let left: Vec<i16> = samples.iter().step_by(2).copied().collect();
    let right: Vec<i16> = samples.iter().skip(1).step_by(2).copied().collect();
    let (c, _) = best_correlation(&left, &caller_voice[4_000..12_000], left.len());
    assert!(c >= 0.9, "the caller is on the left (r = {c:.3})");
    let (c, _) = best_correlation(&right, &operator_voice[4_000..12_000], right.len());
    assert!(c >= 0.9, "the operator is on the right (r = {c:.3})");

    eprintln!("T recording checked {:?}", started.elapsed());
    // Ratings per operator.
    let (status, ratings) = server.get("/api/v1/ratings?operator=102");
    assert_eq!(status, 200, "{ratings:#}");
    assert_eq!(ratings["averages"][0]["operator"], "102", "{ratings:#}");
    assert_eq!(ratings["averages"][0]["count"], 1, "{ratings:#}");
}

#[test]
fn in_order_rings_members_in_their_order_one_at_a_time() {
    let temp = tempfile::tempdir().unwrap();
    let config = "[[queues]]\nname = \"sales\"\nmembers = [\"102\", \"101\"]\nstrategy = \"in_order\"\nring_timeout = \"15s\"\n";
    let server = queue_server(temp.path(), config);
    let mut p101 = Phone::register(server.sip, "101", "s3cret-101");
    let mut p102 = Phone::register(server.sip, "102", "s3cret-102");
    let sip = UdpPeer::new(server.sip);
    let mut rtp = RtpPeer::new();
    let ok = call_in(&sip, &mut rtp, "q-order");

    let inv102 = rung(&mut rtp, &mut p102, Duration::from_secs(15)).expect("102 is first");
    p102.ringing(&inv102);
    p101.drain(Duration::from_millis(300));
    assert_eq!(p101.invites(), 0, "101 is not rung while 102 rings");
    // 102 declines: the next member in order is rung.
    p102.reply(&inv102, "486 Busy Here", "", "");
    let inv101 = rung(&mut rtp, &mut p101, Duration::from_secs(10)).expect("then 101");
    let mut op_rtp = RtpPeer::new();
    op_rtp.remote = Some(sdp_media_addr(&inv101));
    p101.answer(&inv101, op_rtp.port());
    op_rtp.converse(&[0; 1600], &[]);
    bye(&sip, "q-order", &ok);
    let call = server.finished_call("q-order");
    assert_eq!(call["operator"], "101", "{call:#}");
    assert_eq!(call["disposition"], "queue.completed", "{call:#}");
}

#[test]
fn evenly_gives_the_next_caller_to_the_member_idle_longest() {
    let temp = tempfile::tempdir().unwrap();
    let config = "[[queues]]\nname = \"sales\"\nmembers = [\"101\", \"102\"]\nstrategy = \"evenly\"\nwrap_up = \"0s\"\n";
    let server = queue_server(temp.path(), config);
    let mut p101 = Phone::register(server.sip, "101", "s3cret-101");
    let mut p102 = Phone::register(server.sip, "102", "s3cret-102");
    let mut answered_by = Vec::new();
    for n in 0..2 {
        let sip = UdpPeer::new(server.sip);
        let mut rtp = RtpPeer::new();
        let call_id = format!("q-even-{n}");
        let ok = call_in(&sip, &mut rtp, &call_id);
        let deadline = Instant::now() + Duration::from_secs(15);
        let (phone, invite) = loop {
            assert!(Instant::now() < deadline, "nobody was rung");
            rtp.converse(&[0; 160], &[]);
            if let Some(i) = p101.wait_for("INVITE ", Duration::from_millis(20)) {
                break (&mut p101, i);
            }
            if let Some(i) = p102.wait_for("INVITE ", Duration::from_millis(20)) {
                break (&mut p102, i);
            }
        };
        answered_by.push(phone.ext.clone());
        let mut op_rtp = RtpPeer::new();
        op_rtp.remote = Some(sdp_media_addr(&invite));
        phone.answer(&invite, op_rtp.port());
        op_rtp.converse(&[0; 800], &[]);
        bye(&sip, &call_id, &ok);
        phone
            .wait_for("BYE ", Duration::from_secs(5))
            .expect("the operator's leg ends");
        server.finished_call(&call_id);
    }
    assert_eq!(answered_by.len(), 2);
    assert_ne!(
        answered_by[0], answered_by[1],
        "the second caller goes to the member who has waited longer"
    );
}

#[test]
fn a_caller_who_hangs_up_while_phones_ring_cancels_every_ring_and_is_abandoned() {
    let temp = tempfile::tempdir().unwrap();
    let server = queue_server(temp.path(), ALL);
    let mut p101 = Phone::register(server.sip, "101", "s3cret-101");
    let mut p102 = Phone::register(server.sip, "102", "s3cret-102");
    let sip = UdpPeer::new(server.sip);
    let mut rtp = RtpPeer::new();
    let ok = call_in(&sip, &mut rtp, "q-abandon");
    let inv101 = rung(&mut rtp, &mut p101, Duration::from_secs(15)).expect("101 rings");
    let inv102 = rung(&mut rtp, &mut p102, Duration::from_secs(15)).expect("102 rings");
    p101.ringing(&inv101);
    p102.ringing(&inv102);
    rtp.converse(&[0; 4000], &[]);

    bye(&sip, "q-abandon", &ok);
    for phone in [&mut p101, &mut p102] {
        let cancel = phone
            .wait_for("CANCEL ", Duration::from_secs(5))
            .unwrap_or_else(|| panic!("{} got no CANCEL", phone.ext));
        assert!(header(&cancel, "Reason").is_none(), "{cancel}");
        // Whatever else the phone received: one INVITE only, and nothing but the ACK for its
        // 487 after the CANCEL.
        phone.drain(Duration::from_millis(1500));
        let after: Vec<&String> = phone
            .requests
            .iter()
            .skip_while(|r| !r.starts_with("CANCEL "))
            .skip(1)
            .collect();
        assert!(
            after
                .iter()
                .all(|r| r.starts_with("ACK ") || r.starts_with("CANCEL ")),
            "{:?}",
            phone.requests
        );
        assert_eq!(phone.invites(), 1, "{:?}", phone.requests);
    }
    let call = server.finished_call("q-abandon");
    assert_eq!(call["disposition"], "queue.abandoned", "{call:#}");
    assert_eq!(call["queue"], "sales", "{call:#}");
    assert!(call["operator"].is_null(), "{call:#}");
    let waited = call["wait_ms"].as_i64().expect("the wait is on the call");
    assert!(waited >= 400, "waited {waited} ms");
}

#[test]
fn missed_rings_set_the_operator_away_with_the_reason_until_set_online() {
    let temp = tempfile::tempdir().unwrap();
    let config = "[[queues]]\nname = \"sales\"\nmembers = [\"101\"]\nstrategy = \"in_order\"\nring_timeout = \"1s\"\nmissed_rings_to_away = 2\n";
    let server = queue_server(temp.path(), config);
    let mut p101 = Phone::register(server.sip, "101", "s3cret-101");
    let (_, ops) = server.get("/api/v1/operators");
    let op = ops
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["extension"] == "101")
        .unwrap()
        .clone();
    assert_eq!(op["state"], "available", "{ops:#}");

    let sip = UdpPeer::new(server.sip);
    let mut rtp = RtpPeer::new();
    let ok = call_in(&sip, &mut rtp, "q-missed");
    for n in 0..2 {
        let invite = rung(&mut rtp, &mut p101, Duration::from_secs(10))
            .unwrap_or_else(|| panic!("ring {n}"));
        p101.ringing(&invite);
    }
    // Two rings missed: away, with the reason, and not rung again.
    let deadline = Instant::now() + Duration::from_secs(10);
    let op = loop {
        rtp.converse(&[0; 160], &[]);
        p101.poll();
        let (_, ops) = server.get("/api/v1/operators");
        let op = ops
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["extension"] == "101")
            .unwrap()
            .clone();
        if op["status"] == "away" {
            break op;
        }
        assert!(Instant::now() < deadline, "101 was not set away: {ops:#}");
    };
    assert_eq!(op["status_reason"], "missed_rings:2", "{op:#}");
    let (_, queue) = server.get("/api/v1/queues/sales");
    assert_eq!(queue["waiting"].as_array().unwrap().len(), 1, "{queue:#}");
    assert_eq!(queue["operators"][0]["state"], "away", "{queue:#}");
    let invites = p101.invites();
    rtp.converse(&[0; 8000 * 2], &[]);
    p101.drain(Duration::from_millis(200));
    assert_eq!(p101.invites(), invites, "an away operator is not rung");

    // Back online: rung again for the caller still waiting.
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let put = send(
        server.http,
        "PUT",
        "/api/v1/operators/101/status",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        br#"{"status":"online"}"#,
    );
    assert_eq!(put.status, 200, "{}", put.text());
    let invite = rung(&mut rtp, &mut p101, Duration::from_secs(10)).expect("rung again");
    p101.ringing(&invite);
    bye(&sip, "q-missed", &ok);
    p101.wait_for("CANCEL ", Duration::from_secs(5))
        .expect("cancelled");
    let call = server.finished_call("q-missed");
    assert_eq!(call["disposition"], "queue.abandoned", "{call:#}");
}

/// Polls `GET /metrics` until every line of `want` is in it, or panics with the last scrape.
fn wait_for_metrics(server: &Server, want: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, text) = server.text("/metrics");
        if want.iter().all(|line| text.lines().any(|l| l == *line)) {
            return;
        }
        assert!(Instant::now() < deadline, "want {want:?} in:\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn gauges_show_the_waiting_caller_and_each_operator_state_through_a_queue_call() {
    let temp = tempfile::tempdir().unwrap();
    let config = "[[queues]]\nname = \"sales\"\nmembers = [\"101\", \"102\"]\nstrategy = \"in_order\"\nwrap_up = \"0s\"\n";
    let server = queue_server(temp.path(), config);
    let mut p101 = Phone::register(server.sip, "101", "s3cret-101");
    wait_for_metrics(
        &server,
        &[
            "openline_queue_waiting{queue=\"sales\"} 0",
            "openline_operators{state=\"available\"} 1",
            "openline_operators{state=\"unregistered\"} 1",
            "openline_operators{state=\"ringing\"} 0",
        ],
    );

    let sip = UdpPeer::new(server.sip);
    let mut rtp = RtpPeer::new();
    let ok = call_in(&sip, &mut rtp, "q-gauges");
    let invite = rung(&mut rtp, &mut p101, Duration::from_secs(15)).expect("101 rings");
    p101.ringing(&invite);
    wait_for_metrics(
        &server,
        &[
            "openline_queue_waiting{queue=\"sales\"} 1",
            "openline_operators{state=\"ringing\"} 1",
            "openline_operators{state=\"available\"} 0",
        ],
    );

    let mut op_rtp = RtpPeer::new();
    op_rtp.remote = Some(sdp_media_addr(&invite));
    p101.answer(&invite, op_rtp.port());
    wait_for_metrics(
        &server,
        &[
            "openline_queue_waiting{queue=\"sales\"} 0",
            "openline_operators{state=\"talking\"} 1",
            "openline_operators{state=\"ringing\"} 0",
        ],
    );

    // The caller hangs up: the operator's leg ends and (no wrap-up) they are available again.
    bye(&sip, "q-gauges", &ok);
    p101.wait_for("BYE ", Duration::from_secs(5))
        .expect("the operator's leg ends");
    wait_for_metrics(
        &server,
        &[
            "openline_operators{state=\"talking\"} 0",
            "openline_operators{state=\"available\"} 1",
            "openline_operators{state=\"unregistered\"} 1",
        ],
    );
    let call = server.finished_call("q-gauges");
    assert_eq!(call["operator"], "101", "{call:#}");
}
