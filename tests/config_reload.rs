//! Config reload over real sockets: the admin edits the config file and asks for a reload (the
//! API, then SIGHUP); a queue's new members are rung for the next caller without a restart, what
//! takes a restart is named, and a broken file changes nothing and says where it is broken.

mod common;

use common::phone::Phone;
use common::rtp::RtpPeer;
use common::*;
use std::path::Path;
use std::time::{Duration, Instant};

const MAIN: &str = "id: main\nentry: q\nnodes:\n  q:\n    queue: sales\n";

fn queue(members: &str, strategy: &str) -> String {
    format!(
        "[[queues]]\nname = \"sales\"\nmembers = [{members}]\nstrategy = \"{strategy}\"\nring_timeout = \"20s\"\n"
    )
}

/// The config file the server reads, rewritten as an admin would.
fn write_config(server: &Server, extra: &str) {
    std::fs::write(server.dir.join("openline.toml"), test_config(extra)).unwrap();
}

fn reload(server: &Server, token: &str) -> HttpResponse {
    let auth = format!("Bearer {token}");
    send(
        server.http,
        "POST",
        "/api/v1/config/reload",
        &[("Authorization", &auth)],
        b"",
    )
}

fn members(server: &Server) -> Vec<String> {
    members_of(server, "sales")
}

/// Waits for a request on `phone` while the caller's RTP keeps flowing.
fn wait_on(rtp: &mut RtpPeer, phone: &mut Phone, method: &str, within: Duration) -> Option<String> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        rtp.converse(&[0; 160], &[]);
        if let Some(request) = phone.wait_for(method, Duration::from_millis(20)) {
            return Some(request);
        }
    }
    None
}

fn start(temp: &Path) -> Server {
    let dir = temp.join("flows");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("main.yaml"), MAIN).unwrap();
    Server::start_in(
        temp,
        &queue("\"101\"", "in_order"),
        &["--flows", dir.to_str().unwrap()],
    )
}

#[test]
fn a_reloaded_config_changes_queue_members_live_and_a_broken_one_changes_nothing() {
    let temp = tempfile::tempdir().unwrap();
    let server = start(temp.path());
    let mut p101 = Phone::register(server.sip, "101", "s3cret-101");
    let mut p102 = Phone::register(server.sip, "102", "s3cret-102");

    // Nothing edited: nothing to do.
    let answer = reload(&server, ADMIN_TOKEN);
    assert_eq!(answer.status, 200, "{}", answer.text());
    let empty = serde_json::json!({ "applied": [], "failed": [], "restart_needed": [] });
    assert_eq!(answer.json(), empty);

    // 102 replaces 101, and the strategy changes (that one takes a restart).
    write_config(&server, &queue("\"102\"", "all"));
    let answer = reload(&server, MANAGER_TOKEN);
    assert_eq!(
        (answer.status, answer.json()["error"]["code"].clone()),
        (403, "auth.forbidden".into())
    );
    let answer = reload(&server, ADMIN_TOKEN);
    assert_eq!(answer.status, 200, "{}", answer.text());
    let expected = serde_json::json!({
        "applied": ["queue sales: members 102"],
        "failed": [],
        "restart_needed": ["queue sales: settings other than members"],
    });
    assert_eq!(answer.json(), expected);
    assert_eq!(members(&server), vec!["102"]);

    // The next caller rings 102, not 101.
    let sip = UdpPeer::new(server.sip);
    let mut rtp = RtpPeer::new();
    let ok = invite_with(&sip, "reload-1", "100", &offer(rtp.port(), 101));
    rtp.remote = Some(sdp_media_addr(&ok));
    ack(&sip, "reload-1", &ok);
    wait_on(&mut rtp, &mut p102, "INVITE ", Duration::from_secs(15))
        .expect("the new member is rung");
    p101.drain(Duration::from_millis(300));
    assert_eq!(p101.invites(), 0, "101 is no member any more");
    bye(&sip, "reload-1", &ok);

    // A broken file: 422 naming file, line and column; the queue is as it was.
    write_config(
        &server,
        "[[queues]]\nname = \"sales\"\nmembers = [\"101\"\n",
    );
    let answer = reload(&server, ADMIN_TOKEN);
    assert_eq!(answer.status, 422, "{}", answer.text());
    let error = answer.json()["error"].clone();
    assert_eq!(error["code"], "config.invalid", "{error}");
    let message = error["message"].as_str().unwrap_or_default();
    let at = format!("{}:", server.dir.join("openline.toml").display());
    assert!(message.starts_with(&at), "names the file: {message}");
    let position = message[at.len()..].split(':').take(2).collect::<Vec<_>>();
    assert!(
        position.len() == 2 && position.iter().all(|n| n.parse::<u32>().is_ok()),
        "then line:column: {message}"
    );
    assert_eq!(members(&server), vec!["102"]);

    // A file the checks refuse (a member who is no operator) changes nothing either.
    write_config(&server, &queue("\"999\"", "in_order"));
    let answer = reload(&server, ADMIN_TOKEN);
    assert_eq!(answer.status, 422, "{}", answer.text());
    assert_eq!(members(&server), vec!["102"]);

    // SIGHUP does the same as the API: 101 and 102, in that order.
    write_config(&server, &queue("\"101\", \"102\"", "in_order"));
    let status = std::process::Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    while members(&server) != ["101", "102"] {
        assert!(
            Instant::now() < deadline,
            "SIGHUP reloads: {:?}",
            members(&server)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, _) = server.get("/healthz");
    assert_eq!(status, 200, "the server lives on after SIGHUP");
}

/// `BASE_CONFIG`'s operator 102, as the file names it (removed by cutting it out).
const OPERATOR_102: &str =
    "[[operators]]\nextension = \"102\"\nname = \"Taras\"\npassword = \"s3cret-102\"\n";

/// A second queue the file never changes (its members the API edits).
const SUPPORT: &str = "[[queues]]\nname = \"support\"\nmembers = [\"101\"]\n";

fn members_of(server: &Server, queue: &str) -> Vec<String> {
    let (status, body) = server.get(&format!("/api/v1/queues/{queue}"));
    assert_eq!(status, 200, "{body}");
    body["operators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["extension"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_reload_adds_changes_and_removes_operators_without_a_restart() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("flows");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("main.yaml"), MAIN).unwrap();
    let server = Server::start_in(
        temp.path(),
        &format!("{}{SUPPORT}", queue("\"101\"", "in_order")),
        &["--flows", dir.to_str().unwrap()],
    );
    let mut p102 = Phone::register(server.sip, "102", "s3cret-102");
    // 102 joins `support` through the API: the file will never name them there.
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let added = send(
        server.http,
        "POST",
        "/api/v1/queues/support/members",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        br#"{"extension":"102"}"#,
    );
    assert_eq!(added.status, 200, "{}", added.text());
    assert_eq!(members_of(&server, "support"), ["101", "102"]);
    assert!(
        Phone::register_status(server.sip, "103", "s3cret-103").starts_with("SIP/2.0 40"),
        "103 is nobody yet"
    );

    // The admin hires 103 (straight into the queue), gives 101 a new password and lets 102 go.
    let file = test_config(&format!(
        "[[operators]]\nextension = \"103\"\nname = \"Iryna\"\npassword = \"s3cret-103\"\nskills = [\"billing\"]\n{}{SUPPORT}",
        queue("\"103\", \"101\"", "in_order")
    ))
    .replace("password = \"s3cret-101\"", "password = \"n3w-pass-101\"");
    assert!(
        file.contains(OPERATOR_102),
        "the base config names 102 as expected"
    );
    std::fs::write(
        server.dir.join("openline.toml"),
        file.replace(OPERATOR_102, ""),
    )
    .unwrap();
    let answer = reload(&server, ADMIN_TOKEN);
    assert_eq!(answer.status, 200, "{}", answer.text());
    let expected = serde_json::json!({
        "applied": [
            "operator 101: changed",
            "operator 103: added",
            "queue sales: members 103, 101",
            "operator 102: removed",
        ],
        "failed": [],
        "restart_needed": [],
    });
    assert_eq!(answer.json(), expected);
    assert_eq!(members(&server), vec!["103", "101"]);
    assert_eq!(
        members_of(&server, "support"),
        ["101"],
        "a removed operator leaves the queues the file did not change too"
    );
    let (status, listed) = server.get("/api/v1/operators");
    assert_eq!(status, 200);
    let extensions: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["extension"].as_str().unwrap())
        .collect();
    assert_eq!(extensions, ["101", "103"], "{listed:#}");

    // The new password, not the old; 102 cannot register any more.
    assert!(
        !Phone::register_status(server.sip, "101", "s3cret-101").starts_with("SIP/2.0 200"),
        "101's old password is refused"
    );
    Phone::register(server.sip, "101", "n3w-pass-101");
    let status_102 = Phone::register_status(server.sip, "102", "s3cret-102");
    assert!(!status_102.starts_with("SIP/2.0 200"), "{status_102}");

    // 103 registers and takes the next caller (first in order); 102's phone is not rung.
    let mut p103 = Phone::register(server.sip, "103", "s3cret-103");
    let sip = UdpPeer::new(server.sip);
    let mut rtp = RtpPeer::new();
    let ok = invite_with(&sip, "reload-ops", "100", &offer(rtp.port(), 101));
    rtp.remote = Some(sdp_media_addr(&ok));
    ack(&sip, "reload-ops", &ok);
    wait_on(&mut rtp, &mut p103, "INVITE ", Duration::from_secs(15))
        .expect("the operator added by the reload is rung");
    p102.drain(Duration::from_millis(300));
    assert_eq!(p102.invites(), 0, "the removed operator is not rung");
    bye(&sip, "reload-ops", &ok);

    // The same file again: nothing to do.
    let answer = reload(&server, ADMIN_TOKEN);
    let empty = serde_json::json!({ "applied": [], "failed": [], "restart_needed": [] });
    assert_eq!(answer.json(), empty);
}
