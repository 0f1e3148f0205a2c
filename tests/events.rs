//! The live event WebSocket `/api/v1/events`: call started/answered/ended from real SIP calls and
//! operator status changes, filtered by role (an operator sees only its own calls and status).

mod common;

use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(server: &Server, token: &str) -> Socket {
    let mut request = format!("ws://{}/api/v1/events", server.http)
        .into_client_request()
        .expect("request");
    request.headers_mut().insert(
        "Authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("websocket");
    assert_eq!(next(&mut socket).await.expect("ready")["type"], "ready");
    socket
}

/// The next JSON event, or None after two seconds of silence.
async fn next(socket: &mut Socket) -> Option<Value> {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(2), socket.next())
            .await
            .ok()??
            .ok()?;
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).ok();
        }
    }
}

async fn call(server: &Server, id: &'static str, from: &'static str, to: &'static str) {
    let sip = server.sip;
    tokio::task::spawn_blocking(move || place_call(sip, id, from, "Caller", to))
        .await
        .expect("call");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_follow_calls_and_status_by_role() {
    let server = Server::start("");
    let mut admin = connect(&server, ADMIN_TOKEN).await;
    let mut operator = connect(&server, OPERATOR_TOKEN).await;

    call(&server, "ev-100", "+380441230100", "100").await;
    call(&server, "ev-101", "+380441230101", "101").await;
    let mut seen = Vec::new();
    while seen.len() < 6 {
        let event = next(&mut admin).await.expect("an event for the admin");
        seen.push(event);
    }
    // Each call's events come in order; two calls may interleave (a call's end is written when
    // its media task has finished, which can be after the next call started).
    let mut by_call: Vec<(String, Vec<&serde_json::Value>)> = Vec::new();
    for event in &seen {
        let id = event["call_id"].as_str().unwrap().to_string();
        match by_call.iter_mut().find(|(c, _)| *c == id) {
            Some((_, list)) => list.push(event),
            None => by_call.push((id, vec![event])),
        }
    }
    assert_eq!(by_call.len(), 2, "{seen:#?}");
    for (_, events) in &by_call {
        let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(types, ["call_started", "call_answered", "call_ended"]);
    }
    let first = &by_call[0].1;
    assert_eq!(first[0]["callee"], "100");
    assert_eq!(first[0]["caller_name"], "Caller");
    assert_eq!(first[2]["disposition"], "ivr.abandoned");

    // The operator (extension 101) sees only the call to 101.
    let first = next(&mut operator).await.expect("the operator's call");
    assert_eq!(first["type"], "call_started");
    assert_eq!(first["callee"], "101");
    let answered = next(&mut operator).await.expect("answered");
    let ended = next(&mut operator).await.expect("ended");
    assert_eq!(answered["call_id"], first["call_id"]);
    assert_eq!(ended["type"], "call_ended");

    // Status changes: the operator sees its own, not another's.
    let http = server.http;
    tokio::task::spawn_blocking(move || {
        for (ext, token) in [("102", ADMIN_TOKEN), ("101", OPERATOR_TOKEN)] {
            let bearer = format!("Bearer {token}");
            let r = send(
                http,
                "PUT",
                &format!("/api/v1/operators/{ext}/status"),
                &[("Authorization", &bearer)],
                br#"{"status":"away"}"#,
            );
            assert_eq!(r.status, 200, "{}", r.text());
        }
    })
    .await
    .expect("status");
    let status = next(&mut operator).await.expect("own status");
    assert_eq!(status["type"], "operator_status");
    assert_eq!(status["extension"], "101");
    assert_eq!(status["status"], "away");
    assert!(next(&mut operator).await.is_none(), "nothing else");
    let mut admin_status = Vec::new();
    while let Some(e) = next(&mut admin).await {
        admin_status.push(e["extension"].as_str().unwrap_or("").to_string());
    }
    assert_eq!(admin_status, ["102", "101"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_need_a_token() {
    let server = Server::start("");
    let url = format!("ws://{}/api/v1/events", server.http);
    let err = tokio_tungstenite::connect_async(url)
        .await
        .expect_err("refused");
    match err {
        tokio_tungstenite::tungstenite::Error::Http(response) => {
            assert_eq!(response.status(), 401)
        }
        other => panic!("unexpected {other:?}"),
    }
}

/// Regression (review of 832cd51): `call_answered` always had `operator: null`, so an operator's
/// stream never saw the queue calls they took.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_sees_the_queue_call_they_answer() {
    let temp = tempfile::tempdir().unwrap();
    let flows = temp.path().join("flows");
    std::fs::create_dir_all(&flows).unwrap();
    std::fs::write(
        flows.join("main.yaml"),
        "id: main\nentry: q\nnodes:\n  q:\n    queue: sales\n",
    )
    .unwrap();
    let config = "[[queues]]\nname = \"sales\"\nmembers = [\"101\"]\nstrategy = \"all\"\nring_timeout = \"15s\"\n";
    let server = Server::start_in(temp.path(), config, &["--flows", flows.to_str().unwrap()]);
    let mut operator = connect(&server, OPERATOR_TOKEN).await;
    let sip = server.sip;
    let call = tokio::task::spawn_blocking(move || {
        let mut phone = common::phone::Phone::register(sip, "101", "s3cret-101");
        let caller = UdpPeer::new(sip);
        let rtp = common::rtp::RtpPeer::new();
        let ok = invite_with(&caller, "ev-queue", "100", &offer(rtp.port(), 101));
        ack(&caller, "ev-queue", &ok);
        let invite = phone
            .wait_for("INVITE ", Duration::from_secs(15))
            .expect("the operator is rung");
        phone.ringing(&invite);
        let op_rtp = common::rtp::RtpPeer::new();
        phone.answer(&invite, op_rtp.port());
        std::thread::sleep(Duration::from_millis(500));
        bye(&caller, "ev-queue", &ok);
    });
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    while std::time::Instant::now() < deadline {
        // Two quiet seconds are normal here (registering, ringing): keep listening.
        let Some(event) = next(&mut operator).await else {
            continue;
        };
        let done = event["type"] == "call_ended";
        seen.push(event);
        if done {
            break;
        }
    }
    call.await.expect("the call");
    let types: Vec<&str> = seen.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        ["call_answered", "queue_left", "call_ended"],
        "{seen:#?}"
    );
    assert_eq!(seen[0]["operator"], "101", "{seen:#?}");
    assert_eq!(seen[1]["reason"], "answered", "{seen:#?}");
    assert!(seen.iter().all(|e| e["call_id"] == seen[0]["call_id"]));
}

/// Regression (review of 832cd51): the event WebSocket outlived the session that opened it, so
/// a manager who signed out (or whose session expired) went on receiving calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_ends_when_its_session_signs_out() {
    let server = Server::start("");
    let body = format!(r#"{{"token":"{MANAGER_TOKEN}"}}"#);
    let r = send(server.http, "POST", "/api/v1/session", &[], body.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    let cookie = r
        .header("set-cookie")
        .expect("cookie")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let csrf = r.json()["csrf"].as_str().unwrap().to_string();
    let mut request = format!("ws://{}/api/v1/events", server.http)
        .into_client_request()
        .expect("request");
    request
        .headers_mut()
        .insert("Cookie", cookie.parse().expect("header"));
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("websocket with the session cookie");
    assert_eq!(next(&mut socket).await.expect("ready")["type"], "ready");

    let r = send(
        server.http,
        "DELETE",
        "/api/v1/session",
        &[("Cookie", &cookie), ("X-CSRF-Token", &csrf)],
        b"",
    );
    assert_eq!(r.status, 204);
    // Within the re-check interval (5 s) the stream says why and closes.
    let mut ended = false;
    let mut closed = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(1), socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                ended |= text.contains("session_ended");
            }
            Ok(Some(Ok(Message::Close(frame)))) => {
                assert_eq!(frame.map(|f| u16::from(f.code)), Some(1008));
                closed = true;
                break;
            }
            Ok(None) | Ok(Some(Err(_))) => {
                closed = true;
                break;
            }
            _ => {}
        }
    }
    assert!(ended, "no session_ended message");
    assert!(closed, "the stream stayed open after sign-out");
}
