//! Queues changed live, over real sockets with hand-driven operator phones: members added and
//! removed through the API are rung / stop being rung without a restart (a member removed while
//! ringing gets a CANCEL and the caller goes to the next), and a flow's `queue` node asking for a
//! skill rings the member who has it ahead of the one listed first, and a VIP's higher priority
//! puts them ahead of a caller who waited longer. An operator paused with a reason is not rung
//! until back online.

mod common;

use common::phone::Phone;
use common::rtp::RtpPeer;
use common::*;
use std::path::Path;
use std::time::{Duration, Instant};

fn server(temp: &Path, main_flow: &str, config: &str) -> Server {
    let dir = temp.join("flows");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("main.yaml"), main_flow).unwrap();
    Server::start_in(temp, config, &["--flows", dir.to_str().unwrap()])
}

/// The caller dials in and is answered by the flow; returns the 200.
fn call_in(sip: &UdpPeer, rtp: &mut RtpPeer, call_id: &str) -> String {
    let ok = invite_with(sip, call_id, "100", &offer(rtp.port(), 101));
    rtp.remote = Some(sdp_media_addr(&ok));
    ack(sip, call_id, &ok);
    ok
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

fn members(server: &Server, method: &str, path: &str, token: &str, body: &str) -> HttpResponse {
    let auth = format!("Bearer {token}");
    send(
        server.http,
        method,
        &format!("/api/v1/queues/{path}"),
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    )
}

fn member_list(queue: &serde_json::Value) -> Vec<String> {
    queue["operators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["extension"].as_str().unwrap().to_string())
        .collect()
}

const MAIN: &str = "id: main\nentry: q\nnodes:\n  q:\n    queue: sales\n";

const ONE_MEMBER: &str = r#"
[[queues]]
name = "sales"
members = ["101"]
strategy = "in_order"
ring_timeout = "20s"
"#;

#[test]
fn members_changed_through_the_api_are_rung_or_stop_being_rung_at_once() {
    let temp = tempfile::tempdir().unwrap();
    let server = server(temp.path(), MAIN, ONE_MEMBER);
    let mut p101 = Phone::register(server.sip, "101", "s3cret-101");
    let mut p102 = Phone::register(server.sip, "102", "s3cret-102");

    // What is refused, and why.
    let refusals = [
        (
            "PUT",
            "sales/members",
            ADMIN_TOKEN,
            r#"{"members":["999"]}"#,
            422,
            "queue.unknown_operator",
        ),
        (
            "PUT",
            "sales/members",
            ADMIN_TOKEN,
            r#"{"members":[]}"#,
            422,
            "queue.invalid_members",
        ),
        (
            "PUT",
            "sales/members",
            ADMIN_TOKEN,
            r#"{"members":["101","101"]}"#,
            422,
            "queue.invalid_members",
        ),
        (
            "PUT",
            "sales/members",
            MANAGER_TOKEN,
            r#"{"members":["102"]}"#,
            403,
            "auth.forbidden",
        ),
        (
            "PUT",
            "nope/members",
            ADMIN_TOKEN,
            r#"{"members":["102"]}"#,
            404,
            "queue.not_found",
        ),
        (
            "PUT",
            "sales/members",
            ADMIN_TOKEN,
            r#"{"members":"102"}"#,
            400,
            "request.invalid_body",
        ),
        (
            "POST",
            "sales/members",
            ADMIN_TOKEN,
            r#"{"extension":"101"}"#,
            409,
            "queue.already_member",
        ),
        (
            "DELETE",
            "sales/members/102",
            ADMIN_TOKEN,
            "",
            404,
            "queue.not_member",
        ),
        (
            "DELETE",
            "sales/members/101",
            ADMIN_TOKEN,
            "",
            422,
            "queue.invalid_members",
        ),
    ];
    for (method, path, token, body, status, code) in refusals {
        let answer = members(&server, method, path, token, body);
        assert_eq!(
            answer.status,
            status,
            "{method} {path} {body}: {}",
            answer.text()
        );
        assert_eq!(
            answer.json()["error"]["code"],
            code,
            "{method} {path} {body}"
        );
    }

    // 102 replaces 101: the next caller rings 102 only.
    let answer = members(
        &server,
        "PUT",
        "sales/members",
        ADMIN_TOKEN,
        r#"{"members":["102"]}"#,
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(member_list(&answer.json()), vec!["102"]);
    let sip = UdpPeer::new(server.sip);
    let mut rtp = RtpPeer::new();
    let ok = call_in(&sip, &mut rtp, "qm-1");
    let ring102 = wait_on(&mut rtp, &mut p102, "INVITE ", Duration::from_secs(15))
        .expect("the new member is rung");
    p102.ringing(&ring102);

    // 101 is added back behind 102, then 102 is removed while ringing: CANCEL, and 101 rings.
    let answer = members(
        &server,
        "POST",
        "sales/members",
        ADMIN_TOKEN,
        r#"{"extension":"101"}"#,
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(member_list(&answer.json()), vec!["102", "101"]);
    assert_eq!(p101.invites(), 0, "102 is still ringing for the caller");
    let answer = members(&server, "DELETE", "sales/members/102", ADMIN_TOKEN, "");
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(member_list(&answer.json()), vec!["101"]);
    wait_on(&mut rtp, &mut p102, "CANCEL ", Duration::from_secs(10))
        .expect("the removed member's ring is cancelled");
    wait_on(&mut rtp, &mut p101, "INVITE ", Duration::from_secs(15))
        .expect("the caller goes to the member added back");
    bye(&sip, "qm-1", &ok);
    p102.drain(Duration::from_millis(500));
    assert_eq!(p102.invites(), 1, "a removed member is not rung again");
}

const SKILLED: &str = "id: main
entry: q
nodes:
  q:
    queue: { name: sales, skills: [ukrainian], priority: 5 }
";

const TWO_MEMBERS: &str = r#"
[[operators]]
extension = "103"
name = "Oksana"
password = "s3cret-103"
skills = ["ukrainian", "billing"]

[[queues]]
name = "sales"
members = ["102", "103"]
strategy = "in_order"
ring_timeout = "20s"
"#;

#[test]
fn a_caller_asking_for_a_skill_rings_the_member_who_has_it_before_the_one_listed_first() {
    let temp = tempfile::tempdir().unwrap();
    let server = server(temp.path(), SKILLED, TWO_MEMBERS);
    let mut p102 = Phone::register(server.sip, "102", "s3cret-102");
    let mut p103 = Phone::register(server.sip, "103", "s3cret-103");
    let sip = UdpPeer::new(server.sip);
    let mut rtp = RtpPeer::new();
    let ok = call_in(&sip, &mut rtp, "qm-skill");
    wait_on(&mut rtp, &mut p103, "INVITE ", Duration::from_secs(15)).expect("103 speaks Ukrainian");
    let (status, queue) = server.get("/api/v1/queues/sales");
    assert_eq!(status, 200, "{queue}");
    let waiting = &queue["waiting"][0];
    assert_eq!(waiting["priority"], 5, "{queue:#}");
    assert_eq!(
        waiting["skills"],
        serde_json::json!(["ukrainian"]),
        "{queue:#}"
    );
    assert_eq!(waiting["ringing"], serde_json::json!(["103"]), "{queue:#}");
    p102.drain(Duration::from_millis(300));
    assert_eq!(p102.invites(), 0, "102, listed first, has not the skill");
    bye(&sip, "qm-skill", &ok);
}

fn set_status(server: &Server, token: &str, body: &str) -> HttpResponse {
    let auth = format!("Bearer {token}");
    send(
        server.http,
        "PUT",
        "/api/v1/operators/101/status",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    )
}

#[test]
fn an_operator_paused_with_a_reason_is_not_rung_until_back_online() {
    let temp = tempfile::tempdir().unwrap();
    let server = server(temp.path(), MAIN, ONE_MEMBER);
    let mut p101 = Phone::register(server.sip, "101", "s3cret-101");

    let long = format!(r#"{{"status":"away","reason":"{}"}}"#, "x".repeat(101));
    for body in [
        r#"{"status":"online","reason":"lunch"}"#,
        long.as_str(),
        r#"{"status":"away","reason":"a\nb"}"#,
    ] {
        let refused = set_status(&server, OPERATOR_TOKEN, body);
        assert_eq!(refused.status, 400, "{body}: {}", refused.text());
        assert_eq!(
            refused.json()["error"]["code"],
            "operator.invalid_reason",
            "{body}"
        );
    }
    // The operator pauses themself, for lunch.
    let paused = set_status(
        &server,
        OPERATOR_TOKEN,
        r#"{"status":"away","reason":" lunch "}"#,
    );
    assert_eq!(paused.status, 200, "{}", paused.text());
    assert_eq!(paused.json()["status"], "away");
    assert_eq!(paused.json()["status_reason"], "lunch");
    assert_eq!(paused.json()["state"], "away");

    let sip = UdpPeer::new(server.sip);
    let mut rtp = RtpPeer::new();
    let ok = call_in(&sip, &mut rtp, "qm-pause");
    assert!(
        wait_on(&mut rtp, &mut p101, "INVITE ", Duration::from_secs(2)).is_none(),
        "a paused operator is not rung"
    );
    let back = set_status(&server, OPERATOR_TOKEN, r#"{"status":"online"}"#);
    assert_eq!(back.json()["status_reason"], serde_json::Value::Null);
    wait_on(&mut rtp, &mut p101, "INVITE ", Duration::from_secs(10))
        .expect("rung once back online");
    bye(&sip, "qm-pause", &ok);
}

/// A VIP number's own flow: the same queue, ahead of everyone of a lower priority.
const VIP: &str = "id: vip\nentry: q\nnodes:\n  q:\n    queue: { name: sales, priority: 10 }\n";

#[test]
fn a_vip_caller_who_came_later_is_rung_before_the_caller_who_waited_longer() {
    let temp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(temp.path().join("flows")).unwrap();
    std::fs::write(temp.path().join("flows").join("vip.yaml"), VIP).unwrap();
    let config = format!("{ONE_MEMBER}\n[routes]\n\"100\" = \"main\"\n\"777\" = \"vip\"\n");
    let server = server(temp.path(), MAIN, &config);
    let mut p101 = Phone::register(server.sip, "101", "s3cret-101");
    let away = set_status(&server, OPERATOR_TOKEN, r#"{"status":"away"}"#);
    assert_eq!(away.status, 200, "{}", away.text());

    // An ordinary caller waits first; a VIP (the number 777 routes to) joins after them.
    let sip = UdpPeer::new(server.sip);
    let mut rtp = RtpPeer::new();
    let ok = call_in(&sip, &mut rtp, "qm-plain");
    let vip_sip = UdpPeer::new(server.sip);
    let mut vip_rtp = RtpPeer::new();
    let vip_ok = invite_with(&vip_sip, "qm-vip", "777", &offer(vip_rtp.port(), 101));
    vip_rtp.remote = Some(sdp_media_addr(&vip_ok));
    ack(&vip_sip, "qm-vip", &vip_ok);
    let waiting = |server: &Server| -> Vec<(i64, serde_json::Value)> {
        let (status, queue) = server.get("/api/v1/queues/sales");
        assert_eq!(status, 200, "{queue}");
        queue["waiting"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| (w["priority"].as_i64().unwrap(), w["ringing"].clone()))
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while waiting(&server).len() < 2 {
        assert!(Instant::now() < deadline, "both callers wait");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        waiting(&server).iter().map(|(p, _)| *p).collect::<Vec<_>>(),
        [10, 0],
        "the VIP is first in line"
    );

    // 101 comes back: the VIP's call rings, the earlier caller still waits.
    set_status(&server, OPERATOR_TOKEN, r#"{"status":"online"}"#);
    wait_on(&mut rtp, &mut p101, "INVITE ", Duration::from_secs(10)).expect("101 is rung");
    assert_eq!(
        waiting(&server),
        [(10, serde_json::json!(["101"])), (0, serde_json::json!([]))],
        "the VIP's phone call is the one ringing"
    );
    bye(&vip_sip, "qm-vip", &vip_ok);
    bye(&sip, "qm-plain", &ok);
}
