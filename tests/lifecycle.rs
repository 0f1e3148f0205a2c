//! Server lifecycle: crash repair at start (SIGKILL during a call), graceful SIGTERM that drains
//! and hangs up calls, and a first start with no config that prints a random admin token once.

mod common;

use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn sigkill_during_a_call_then_restart_closes_the_row_as_crashed() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(dir.path(), "", &[]);
    let peer = UdpPeer::new(server.sip);
    let ok = invite(&peer, "crash-1", "100");
    ack(&peer, "crash-1", &ok);
    let calls = server.wait_for_calls("", "the answered call row", |c| {
        c.len() == 1 && !c[0]["answered_at"].is_null()
    });
    assert!(calls[0]["ended_at"].is_null());
    let id = calls[0]["id"].as_str().unwrap().to_string();
    server.kill();

    let server = Server::start_in(dir.path(), "", &[]);
    let (status, call) = server.get(&format!("/api/v1/calls/{id}"));
    assert_eq!(status, 200);
    assert_eq!(call["disposition"], "system.crashed", "{call}");
    assert!(!call["ended_at"].is_null());
    assert!(!call["legs"][0]["ended_at"].is_null(), "{call}");
}

#[test]
fn sigterm_drains_refuses_new_calls_hangs_up_the_rest_and_exits_zero() {
    let mut server = Server::start("[shutdown]\ndrain_timeout = \"2s\"\n");
    let peer = UdpPeer::new(server.sip);
    let ok = invite(&peer, "drain-1", "100");
    ack(&peer, "drain-1", &ok);
    server.wait_for_calls("", "the answered call", |c| {
        c.len() == 1 && !c[0]["answered_at"].is_null()
    });
    let pid = server.pid();
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();

    // While draining, a new INVITE is refused with 503.
    let late = UdpPeer::new(server.sip);
    let port = late.port();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut refused = false;
    let mut attempt = 0;
    while !refused && Instant::now() < deadline {
        attempt += 1;
        let msg = format!(
            "INVITE sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKlate{attempt};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:late@127.0.0.1>;tag=l\r\nTo: <sip:100@127.0.0.1>\r\nCall-ID: late-{attempt}\r\n\
              CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
        );
        late.send(msg.as_bytes());
        while let Some(answer) = late.recv() {
            let first = answer.lines().next().unwrap_or("");
            if first.contains("503") {
                refused = true;
                break;
            }
            if first.contains("200 OK") {
                // Sent before the signal was handled: not a drain answer, try again.
                break;
            }
        }
    }
    assert!(refused, "no 503 while draining");

    // After the drain deadline the held call gets a BYE; we answer it.
    let bye = loop {
        let msg = peer.recv().expect("BYE from the server");
        if msg.starts_with("BYE ") {
            break msg;
        }
    };
    answer_ok(&peer, &bye);
    let status = server.terminate();
    assert!(status.success(), "exit status {status:?}");
    assert!(server.log().contains("shutdown complete"));
}

/// Runs `openline serve` in `dir` with no config file; (its stdout up to "openline ready", the
/// running server).
fn run(dir: &std::path::Path) -> (String, std::process::Child) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_openline"))
        .current_dir(dir)
        .args(["serve", "--sip", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut text = String::new();
    loop {
        let mut line = String::new();
        if std::io::BufRead::read_line(&mut stdout, &mut line).unwrap() == 0 {
            break;
        }
        text.push_str(&line);
        if line.starts_with("openline ready") {
            break;
        }
    }
    (text, child)
}

const MINTED: &str = "openline: created an admin API token (shown only now, keep it): ";

#[test]
fn first_start_without_config_prints_a_random_admin_token_once() {
    let dir = tempfile::tempdir().unwrap();
    let (first, mut child) = run(dir.path());
    let _ = child.kill();
    let _ = child.wait();
    let token = first
        .lines()
        .find_map(|l| l.strip_prefix(MINTED))
        .expect("token printed on first start");
    assert!(token.len() >= 32);
    assert!(
        dir.path().join("data/openline.db").exists(),
        "default SQLite file created"
    );
    let (second, mut child) = run(dir.path());
    let _ = child.kill();
    let _ = child.wait();
    assert!(!second.contains(token), "the token is shown only once");
    assert!(second.contains("openline ready sip=127.0.0.1:"));
}

#[test]
fn on_postgresql_calls_are_recorded_and_a_crash_is_repaired() {
    let Some(url) = postgres_database() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_with_database(dir.path(), "", &[], Some(&url));
    let work = tempfile::tempdir().unwrap();
    let args: Vec<String> = [
        server.sip.to_string().as_str(),
        "-sn",
        "uac",
        "-r",
        "20",
        "-m",
        "20",
        "-mp",
        &free_media_port().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (code, output) = sipp(work.path(), &args);
    assert_eq!(code, 0, "{output}");
    server.wait_for_calls("", "20 finished calls", |c| {
        c.len() == 20 && c.iter().all(|c| c["disposition"] == "ivr.abandoned")
    });
    let peer = UdpPeer::new(server.sip);
    let ok = invite(&peer, "pg-crash", "100");
    ack(&peer, "pg-crash", &ok);
    let calls = server.wait_for_calls("&number=100", "the held call", |c| {
        c.len() == 1 && !c[0]["answered_at"].is_null()
    });
    let id = calls[0]["id"].as_str().unwrap().to_string();
    server.kill();
    let server = Server::start_with_database(dir.path(), "", &[], Some(&url));
    let (_, call) = server.get(&format!("/api/v1/calls/{id}"));
    assert_eq!(call["disposition"], "system.crashed", "{call}");
}

/// Regression (issue: hardening): a token taken out of the config kept working, since the
/// database kept its hash. It stops at the next start; the tokens still configured do not.
#[test]
fn an_api_token_removed_from_the_config_stops_working_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    const LEAVER: &str = "token-of-a-manager-who-left-0123";
    let extra = format!("[[api_tokens]]\ntoken = \"{LEAVER}\"\nrole = \"manager\"\n");
    let calls_with = |server: &Server, token: &str| {
        send(
            server.http,
            "GET",
            "/api/v1/calls",
            &[("Authorization", &format!("Bearer {token}"))],
            b"",
        )
    };
    let mut server = Server::start_in(dir.path(), &extra, &[]);
    assert_eq!(calls_with(&server, LEAVER).status, 200);
    server.terminate();
    let server = Server::start_in(dir.path(), "", &[]);
    let refused = calls_with(&server, LEAVER);
    assert_eq!(refused.status, 401, "{}", refused.text());
    assert_eq!(refused.json()["error"]["code"], "auth.invalid_token");
    assert_eq!(
        calls_with(&server, ADMIN_TOKEN).status,
        200,
        "the configured ones still work"
    );
}

/// The only admin token cannot be revoked through the API (nobody could manage tokens until a
/// restart); once a second admin token exists, it can, and then gets 401.
#[test]
fn the_last_admin_token_cannot_be_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let (out, mut child) = run(dir.path());
    let admin = out
        .lines()
        .find_map(|l| l.strip_prefix(MINTED))
        .unwrap()
        .to_string();
    let http: std::net::SocketAddr = out
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http="))
        .expect("ready line names the HTTP address")
        .parse()
        .unwrap();
    let call = |method: &str, path: &str, token: &str, body: &str| {
        let auth = format!("Bearer {token}");
        send(
            http,
            method,
            path,
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            body.as_bytes(),
        )
    };
    let list = call("GET", "/api/v1/tokens", &admin, "").json();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    assert_eq!(items[0]["label"], "generated at first start");
    let first = items[0]["id"].as_i64().unwrap();
    let refused = call("DELETE", &format!("/api/v1/tokens/{first}"), &admin, "");
    assert_eq!(refused.status, 409);
    assert_eq!(refused.json()["error"]["code"], "token.last_admin");

    let created = call(
        "POST",
        "/api/v1/tokens",
        &admin,
        r#"{"role":"admin","label":"second admin"}"#,
    );
    assert_eq!(created.status, 201, "{}", created.text());
    let second = created.json()["token"].as_str().unwrap().to_string();
    let done = call("DELETE", &format!("/api/v1/tokens/{first}"), &second, "");
    assert_eq!(done.status, 204, "{}", done.text());
    assert_eq!(call("GET", "/api/v1/tokens", &admin, "").status, 401);
    assert_eq!(call("GET", "/api/v1/tokens", &second, "").status, 200);
    let _ = child.kill();
    let _ = child.wait();
}
